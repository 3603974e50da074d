//! Who is asking: the owner behind the `Authorization: Bearer` API key, or behind the dashboard's
//! sign-in cookie. Every statistics endpoint takes an [`Owner`]; a site that belongs to someone
//! else answers exactly like a missing one. (The cookie is `SameSite=Strict` and these endpoints
//! only read, so a cookie-authenticated request cannot be forged from another site.)

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use beacon_pipeline::domain::normalize_domain;
use beacon_store::login_sessions;
use beacon_store::sites::{self, Site};
use beacon_store::users::{self, User};

use crate::AppState;
use crate::error::ApiError;

pub struct Owner(pub User);

impl FromRequestParts<Arc<AppState>> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            let token = session_token(&parts.headers).ok_or_else(|| {
                ApiError::unauthorized("missing API key: send `Authorization: Bearer <key>`")
            })?;
            return match login_sessions::user_for_token(&state.pool, &token).await {
                Ok(Some(user)) => Ok(Owner(user)),
                Ok(None) => Err(ApiError::unauthorized("signed out: sign in again")),
                Err(e) => Err(ApiError::unavailable(e)),
            };
        };
        let key = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <key>`")
            })?;
        match users::user_for_key(&state.pool, key).await {
            Ok(Some(user)) => Ok(Owner(user)),
            Ok(None) => Err(ApiError::unauthorized("invalid API key")),
            Err(e) => Err(ApiError::unavailable(e)),
        }
    }
}

/// An [`Owner`] who is also an operator: the pipeline as a whole tells of every tenant's traffic,
/// so anyone else gets `403`.
pub struct Operator;

/// What a signed-in owner who is not an operator is told.
pub const OPERATORS_ONLY: &str =
    "the pipeline is for operators; `beacon user operator EMAIL` makes one";

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Owner(user) = Owner::from_request_parts(parts, state).await?;
        if user.operator {
            Ok(Operator)
        } else {
            Err(ApiError::forbidden(OPERATORS_ONLY))
        }
    }
}

/// Name of the dashboard's sign-in cookie.
pub const SESSION_COOKIE: &str = "beacon_session";

/// The sign-in token from the request's cookies, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// The site `raw` names if `owner` owns it. Someone else's site is indistinguishable from a
/// missing one (404), so a key cannot probe which sites exist.
pub async fn owned_site(state: &AppState, owner: &Owner, raw: &str) -> Result<Site, ApiError> {
    let domain =
        normalize_domain(raw).map_err(|e| ApiError::bad_request(format!("site '{raw}' {e}")))?;
    sites::find(&state.pool, &domain)
        .await
        .map_err(ApiError::unavailable)?
        .filter(|site| site.owner_id == Some(owner.0.id))
        .ok_or_else(|| ApiError::not_found(format!("site '{domain}' not found")))
}
