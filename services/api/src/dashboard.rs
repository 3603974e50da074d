//! The owner's browser side: sign-in (cookie session, CSRF-safe), the dashboard and pipeline
//! pages, their static assets, and the list of the owner's sites the site picker reads.

use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use beacon_store::{login_sessions, sites};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{OPERATORS_ONLY, Owner, SESSION_COOKIE, session_token};
use crate::error::{ApiError, ErrorBody, OwnerRefusals};

const DASHBOARD_HTML: &str = include_str!("../assets/dashboard.html");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../assets/dashboard.css");
const LOGIN_HTML: &str = include_str!("../assets/login.html");
const PIPELINE_HTML: &str = include_str!("../assets/pipeline.html");
const PIPELINE_JS: &str = include_str!("../assets/pipeline.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The dashboard's script.
#[utoipa::path(get, path = "/assets/dashboard.js", tag = "dashboard", security(()), responses(
    (status = 200, description = "The dashboard's script.", body = String, content_type = "text/javascript"),
))]
pub async fn dashboard_js() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

/// The lag dashboard's script.
#[utoipa::path(get, path = "/assets/pipeline.js", tag = "dashboard", security(()), responses(
    (status = 200, description = "The lag dashboard's script.", body = String, content_type = "text/javascript"),
))]
pub async fn pipeline_js() -> Response {
    asset("text/javascript; charset=utf-8", PIPELINE_JS)
}

/// The dashboard's style sheet.
#[utoipa::path(get, path = "/assets/dashboard.css", tag = "dashboard", security(()), responses(
    (status = 200, description = "The dashboard's style sheet.", body = String, content_type = "text/css"),
))]
pub async fn dashboard_css() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

/// This document: the API's operations and the collector's (tag `collector`, on the
/// collector's address), generated from the handlers and their types.
#[utoipa::path(get, path = "/api/openapi.json", tag = "dashboard", security(()), responses(
    (status = 200, description = "OpenAPI 3.1", body = Object),
))]
pub async fn openapi(State(state): State<Arc<AppState>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        state.document.clone(),
    )
        .into_response()
}

/// The dashboard for a signed-in owner, else a redirect to the sign-in page.
#[utoipa::path(get, path = "/", tag = "dashboard", responses(
    (status = 200, description = "The dashboard.", body = String, content_type = "text/html"),
    (status = 303, description = "Not signed in: to `/login`."),
))]
pub async fn dashboard(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Ok(true) => Html(DASHBOARD_HTML).into_response(),
        Ok(false) => Redirect::to("/login").into_response(),
        Err(e) => e.into_response(),
    }
}

/// The lag dashboard: stream and consumer lag for operators (reads `/api/pipeline`).
#[utoipa::path(get, path = "/pipeline", tag = "dashboard", responses(
    (status = 200, description = "The lag dashboard.", body = String, content_type = "text/html"),
    (status = 303, description = "Not signed in: to `/login`."),
    (status = 403, description = "Signed in, but not an operator.", body = String, content_type = "text/html"),
))]
pub async fn pipeline_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match signed_in_user(&state, &headers).await {
        Ok(Some(user)) if user.operator => Html(PIPELINE_HTML).into_response(),
        Ok(Some(_)) => (
            StatusCode::FORBIDDEN,
            Html(format!(
                "<!doctype html><title>Beacon</title><p>{OPERATORS_ONLY}. <a href=\"/\">Back to \
                 the dashboard</a></p>"
            )),
        )
            .into_response(),
        Ok(None) => Redirect::to("/login").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<bool, ApiError> {
    Ok(signed_in_user(state, headers).await?.is_some())
}

async fn signed_in_user(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<beacon_store::users::User>, ApiError> {
    let Some(token) = session_token(headers) else {
        return Ok(None);
    };
    login_sessions::user_for_token(&state.pool, &token)
        .await
        .map_err(ApiError::unavailable)
}

/// The sign-in page.
#[utoipa::path(get, path = "/login", tag = "dashboard", security(()), responses(
    (status = 200, description = "The sign-in form.", body = String, content_type = "text/html"),
))]
pub async fn login_page() -> Html<&'static str> {
    Html(LOGIN_HTML)
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    email: String,
    password: String,
}

/// A state-changing request must come from a page of this very server: a browser always sends
/// `Origin` on a cross-site POST, so a foreign one is refused (no login CSRF, no forced sign-out).
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser (curl, scripts): nothing to forge.
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or(origin);
    !host.is_empty() && origin_host == host
}

fn session_cookie(token: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// `POST /login` (a form): a session cookie and the dashboard, or the form again with an error.
#[utoipa::path(post, path = "/login", tag = "dashboard", security(()),
    request_body(content = Credentials, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To `/` with the session cookie, or back to `/login?failed=1`."),
        (status = 403, description = "A cross-site request.", body = String, content_type = "text/plain"),
        (status = 429, description = "Too many failed sign-ins for this address or account.", body = String, content_type = "text/plain"),
        (status = 415, description = "The body is not a form (`application/x-www-form-urlencoded`).", body = String, content_type = "text/plain"),
        (status = 422, description = "The form lacks `email` or `password`.", body = String, content_type = "text/plain"),
        (status = 503, description = "PostgreSQL is unreachable.", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(credentials): Form<Credentials>,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site sign-in refused").into_response();
    }
    let now = std::time::Instant::now();
    // An email has at most 254 characters; a longer string (a hostile megabyte) is keyed by its
    // start, so the throttle's memory stays small.
    let email: String = credentials.email.trim().chars().take(254).collect();
    let account = format!("account:{}", email.to_lowercase());
    let keys = [format!("ip:{}", peer.ip()), account.clone()];
    if let Some(wait) = state.sign_in_throttle.retry_after(&keys, now) {
        metrics::counter!(beacon_metrics::API_SIGN_IN_THROTTLED.name).increment(1);
        let secs = wait.as_secs().max(1);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            format!("too many failed sign-ins; try again in {secs} s"),
        )
            .into_response();
    }
    let user = match login_sessions::check_password(
        &state.pool,
        &credentials.email,
        &credentials.password,
    )
    .await
    {
        Ok(user) => user,
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    let Some(user) = user else {
        state.sign_in_throttle.record_failure(&keys, now);
        metrics::counter!(beacon_metrics::API_SIGN_IN_FAILURES.name).increment(1);
        return Redirect::to("/login?failed=1").into_response();
    };
    state.sign_in_throttle.record_success(&account);
    let token = match login_sessions::start(&state.pool, &user).await {
        Ok(token) => token,
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(
            &token,
            login_sessions::SESSION_TTL.as_secs(),
            behind_https(&headers),
        ),
    );
    response
}

/// Ends the session and clears the cookie.
#[utoipa::path(post, path = "/logout", tag = "dashboard", security(()), responses(
    (status = 303, description = "To `/login`."),
    (status = 403, description = "A cross-site request.", body = String, content_type = "text/plain"),
    (status = 503, description = "PostgreSQL is unreachable.", body = ErrorBody),
))]
pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site sign-out refused").into_response();
    }
    if let Some(token) = session_token(&headers)
        && let Err(e) = login_sessions::end(&state.pool, &token).await
    {
        return ApiError::unavailable(e).into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", 0, behind_https(&headers)),
    );
    response
}

/// The caller's sites, for the site picker.
#[derive(Debug, Serialize, ToSchema)]
pub struct MySites {
    pub sites: Vec<MySite>,
    /// Whether the caller may open the pipeline page (the dashboard links to it then).
    pub operator: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MySite {
    pub domain: String,
    /// IANA time zone: the site's days.
    pub timezone: String,
}

/// The caller's sites, for the site picker.
#[utoipa::path(get, path = "/api/sites", tag = "stats",
    responses((status = 200, description = "The sites the signed-in owner may read.", body = MySites), OwnerRefusals))]
pub async fn my_sites(
    owner: Owner,
    State(state): State<Arc<AppState>>,
) -> Result<Json<MySites>, ApiError> {
    let all = sites::list(&state.pool)
        .await
        .map_err(ApiError::unavailable)?;
    let sites = all
        .into_iter()
        .filter(|s| s.owner_id == Some(owner.0.id))
        .map(|s| MySite {
            domain: s.domain,
            timezone: s.timezone.name().to_string(),
        })
        .collect();
    Ok(Json(MySites {
        sites,
        operator: owner.0.operator,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_this_servers_pages_may_post() {
        assert!(same_origin(&headers(&[
            ("host", "stats.example.com"),
            ("origin", "https://stats.example.com")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:8000")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "stats.example.com"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "https://stats.example.com"
        )])));
        assert!(
            same_origin(&headers(&[("host", "stats.example.com")])),
            "non-browser clients send no Origin"
        );
    }

    #[test]
    fn the_session_cookie_is_http_only_and_strict() {
        let cookie = session_cookie("abc", 60, true);
        let text = cookie.to_str().expect("ascii");
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }
}
