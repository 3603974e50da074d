//! Who is asking: the owner behind the `Authorization: Bearer` API key. Every statistics endpoint
//! takes an [`Owner`]; a site that belongs to someone else answers exactly like a missing one.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
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
