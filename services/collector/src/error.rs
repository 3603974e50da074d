//! `Refusal`: every collector answer that is not `202`, as JSON naming the field (the API has its
//! own `ApiError`; the two services never share an error type).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::document::RefusalBody;

#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub field: Option<String>,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// `400` about one field of the request.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            field: Some(field.into()),
            message: message.into(),
            retry_after: None,
        }
    }

    /// `400` about the body as a whole.
    pub fn body(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            field: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `429`: this client sends faster than its allowed rate.
    pub fn rate_limited() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            field: None,
            message: "too many requests; slow down".into(),
            retry_after: Some(Duration::from_secs(1)),
        }
    }

    /// `503` with `Retry-After`: the event was not stored; the client should send it again.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            field: None,
            message: message.into(),
            retry_after: Some(Duration::from_secs(1)),
        }
    }

    /// `503` after JetStream stayed silent about events already handed to it: they may or may
    /// not have been stored. Sending them again with the same ids (server-side senders set
    /// `id`) is safe: the stream keeps one copy per id.
    pub fn unconfirmed(events: usize, waited: Duration) -> Self {
        Self::unavailable(format!(
            "the event stream did not confirm {events} event(s) within {} s; they may have been \
             stored: send them again with the same ids, which cannot count them twice",
            waited.as_secs()
        ))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let errors = self
            .field
            .clone()
            .map(|f| BTreeMap::from([(f, vec![self.message.clone()])]));
        let body = RefusalBody {
            error: self.message,
            field: self.field,
            errors,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&secs) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
