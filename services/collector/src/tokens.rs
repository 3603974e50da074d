//! Who may set the server-side fields of an event. `ip`, `user_agent`, `timestamp` and `id` in a
//! `/track` body let a sender forge visitors, pass the bot filter and backdate events; they are
//! honoured only with a site ingest token (`Authorization: Bearer bit_…`, from `beacon token
//! create --site DOMAIN`), and only for that site's events. Verdicts are cached for a minute, so
//! a server-side sender costs one PostgreSQL lookup a minute, not one a request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use quick_cache::sync::Cache;

use crate::error::Refusal;
use crate::seams::Records;

/// How long a token's verdict (valid for a site, or not valid) is believed.
const VERDICT_TTL: Duration = Duration::from_secs(60);
/// Tokens whose verdicts are remembered.
const CACHED_TOKENS: usize = 1_000;

/// The fields only a token holder may set.
pub const SERVER_SIDE_FIELDS: [&str; 4] = ["id", "timestamp", "ip", "user_agent"];

pub struct IngestTokens {
    records: Arc<dyn Records>,
    verdicts: Cache<String, (Option<String>, Instant)>,
}

impl IngestTokens {
    pub fn new(records: Arc<dyn Records>) -> Self {
        Self {
            records,
            verdicts: Cache::new(CACHED_TOKENS),
        }
    }

    /// The site the request's bearer token is for; `None` without an `Authorization` header;
    /// `401` for a header that is not a valid token.
    pub async fn site_of(&self, headers: &HeaderMap) -> Result<Option<String>, Refusal> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("authorization", "is not 'Bearer <ingest token>'"))?;
        // Nothing that long is a token: refused before it is hashed or remembered.
        if token.len() > beacon_store::ingest_tokens::MAX_TOKEN_LEN {
            return valid(None);
        }
        if let Some((verdict, at)) = self.verdicts.get(token)
            && at.elapsed() < VERDICT_TTL
        {
            return valid(verdict);
        }
        let verdict = self.records.site_for_token(token).await.map_err(|e| {
            tracing::error!(error = %e, "cannot check an ingest token");
            Refusal::unavailable("token check unavailable; retry later")
        })?;
        self.verdicts
            .insert(token.to_owned(), (verdict.clone(), Instant::now()));
        valid(verdict)
    }
}

/// A token's verdict as the answer: its site, or `401`.
fn valid(verdict: Option<String>) -> Result<Option<String>, Refusal> {
    verdict
        .map(Some)
        .ok_or_else(|| unauthorized("authorization", "is not a valid ingest token"))
}

/// `401` naming the field that needs (or is) a credential.
pub fn unauthorized(field: &str, message: &str) -> Refusal {
    Refusal {
        status: StatusCode::UNAUTHORIZED,
        ..Refusal::field(field, message)
    }
}

/// `403`: the token is valid, for another site.
pub fn forbidden(field: &str, message: String) -> Refusal {
    Refusal {
        status: StatusCode::FORBIDDEN,
        ..Refusal::field(field, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records that cannot be read: a lookup through them answers 503, not 401.
    fn unreachable() -> Arc<dyn Records> {
        let records = crate::fakes::FakeRecords::default();
        records
            .down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Arc::new(records)
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        headers
    }

    #[tokio::test]
    async fn hostile_credentials_are_refused_without_a_lookup() {
        let tokens = IngestTokens::new(unreachable());
        assert_eq!(tokens.site_of(&HeaderMap::new()).await.ok(), Some(None));
        let huge = format!("bit_{}", "a".repeat(10_000));
        for headers in [bearer(&huge), bearer("bit_x").clone(), {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
            h
        }] {
            let error = tokens.site_of(&headers).await.expect_err("refused");
            let looked_up = error.status == StatusCode::SERVICE_UNAVAILABLE;
            if headers == bearer("bit_x") {
                assert!(looked_up, "a plausible token is looked up");
            } else {
                assert_eq!(error.status, StatusCode::UNAUTHORIZED, "{}", error.message);
                assert_eq!(error.field.as_deref(), Some("authorization"));
            }
        }
        assert_eq!(
            tokens.verdicts.len(),
            0,
            "nothing refused or unanswered is remembered"
        );
    }
}
