//! Who may set the server-side fields of an event. `ip`, `user_agent`, `timestamp` and `id` in a
//! `/track` body let a sender forge visitors, pass the bot filter and backdate events; they are
//! honoured only with a site ingest token (`Authorization: Bearer bit_…`, from `beacon token
//! create --site DOMAIN`), and only for that site's events. Verdicts are cached for a minute, so
//! a server-side sender costs one PostgreSQL lookup a minute, not one a request.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use beacon_store::Pool;
use quick_cache::sync::Cache;

use crate::error::ApiError;

/// How long a token's verdict (valid for a site, or not valid) is believed.
const VERDICT_TTL: Duration = Duration::from_secs(60);
/// Tokens whose verdicts are remembered.
const CACHED_TOKENS: usize = 1_000;

/// The fields only a token holder may set.
pub const SERVER_SIDE_FIELDS: [&str; 4] = ["id", "timestamp", "ip", "user_agent"];

pub struct IngestTokens {
    pool: Pool,
    verdicts: Cache<String, (Option<String>, Instant)>,
}

impl IngestTokens {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            verdicts: Cache::new(CACHED_TOKENS),
        }
    }

    /// The site the request's bearer token is for; `None` without an `Authorization` header;
    /// `401` for a header that is not a valid token.
    pub async fn site_of(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("authorization", "is not 'Bearer <ingest token>'"))?;
        if let Some((verdict, at)) = self.verdicts.get(token)
            && at.elapsed() < VERDICT_TTL
        {
            return verdict
                .map(Some)
                .ok_or_else(|| unauthorized("authorization", "is not a valid ingest token"));
        }
        let verdict = beacon_store::ingest_tokens::site_for_token(&self.pool, token)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot check an ingest token");
                ApiError::unavailable("token check unavailable; retry later")
            })?;
        self.verdicts
            .insert(token.to_owned(), (verdict.clone(), Instant::now()));
        verdict
            .map(Some)
            .ok_or_else(|| unauthorized("authorization", "is not a valid ingest token"))
    }
}

/// `401` naming the field that needs (or is) a credential.
pub fn unauthorized(field: &str, message: &str) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        ..ApiError::field(field, message)
    }
}

/// `403`: the token is valid, for another site.
pub fn forbidden(field: &str, message: String) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        ..ApiError::field(field, message)
    }
}
