//! API errors as `{"error": "..."}` with the status Plausible's API uses for the same case.

use axum::Json;
use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::{IntoResponses, ToSchema};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// `401` with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// A dependency failed: the detail goes to the log, not to the client.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "temporarily unavailable; try again".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// Every refusal's body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: String,
}

/// What a site owner's request may get besides its answer (in the OpenAPI document).
#[derive(IntoResponses)]
#[allow(dead_code)] // a document: `ApiError` is what the handlers return
pub enum OwnerRefusals {
    /// A parameter is missing or wrong; the message names it.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No key or sign-in, or an unknown or revoked key (with `WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No such site among the caller's (another owner's site answers the same).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A store is unreachable: try again.
    #[response(status = 503, headers(("Retry-After" = String, description = "Seconds to wait.")))]
    Unavailable(ErrorBody),
}

/// What an operator's request may get besides its answer.
#[derive(IntoResponses)]
#[allow(dead_code)] // a document: `ApiError` is what the handlers return
pub enum OperatorRefusals {
    /// No key or sign-in, or an unknown or revoked key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller is not an operator (`beacon user operator EMAIL`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// JetStream or PostgreSQL is unreachable: try again.
    #[response(status = 503, headers(("Retry-After" = String, description = "Seconds to wait.")))]
    Unavailable(ErrorBody),
}

/// The query string as `T`; a parameter that does not parse (repeated, wrong type) is this API's
/// JSON `400` naming it, not axum's plain-text refusal.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}
