//! Who is asking: the owner behind the `Authorization: Bearer` API key. Every statistics endpoint
//! takes an [`Owner`]; a site that belongs to someone else answers exactly like a missing one.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use beacon_pipeline::domain::normalize_domain;
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
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("missing API key: send `Authorization: Bearer <key>`")
            })?;
        let key = header
            .strip_prefix("Bearer ")
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
