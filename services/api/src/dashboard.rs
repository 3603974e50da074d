//! The owner's browser side: sign-in (cookie session, CSRF-safe), the dashboard and pipeline
//! pages, their static assets, and the list of the owner's sites the site picker reads.

use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use beacon_store::{login_sessions, sites};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{OPERATORS_ONLY, Owner, SESSION_COOKIE, session_token};
use crate::error::ApiError;

const DASHBOARD_HTML: &str = include_str!("../assets/dashboard.html");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../assets/dashboard.css");
const LOGIN_HTML: &str = include_str!("../assets/login.html");
const PIPELINE_HTML: &str = include_str!("../assets/pipeline.html");
const PIPELINE_JS: &str = include_str!("../assets/pipeline.js");
const OPENAPI_JSON: &str = include_str!("../assets/openapi.json");

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

pub async fn dashboard_js() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

pub async fn pipeline_js() -> Response {
    asset("text/javascript; charset=utf-8", PIPELINE_JS)
}

pub async fn dashboard_css() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

pub async fn openapi() -> Response {
    asset("application/json", OPENAPI_JSON)
}

/// `GET /`: the dashboard for a signed-in owner, else the sign-in page.
pub async fn dashboard(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Ok(true) => Html(DASHBOARD_HTML).into_response(),
        Ok(false) => Redirect::to("/login").into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /pipeline`: stream and consumer lag for operators (reads `/api/pipeline`); an owner who is
/// not one gets `403`.
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

/// `GET /login`.
pub async fn login_page() -> Html<&'static str> {
    Html(LOGIN_HTML)
}

#[derive(Debug, Deserialize)]
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

/// `POST /logout`: ends the session and clears the cookie.
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

/// `GET /api/sites`: the caller's sites, for the site picker.
pub async fn my_sites(
    owner: Owner,
    State(state): State<Arc<AppState>>,
) -> Result<Json<Value>, ApiError> {
    let all = sites::list(&state.pool)
        .await
        .map_err(ApiError::unavailable)?;
    let mine: Vec<Value> = all
        .into_iter()
        .filter(|s| s.owner_id == Some(owner.0.id))
        .map(|s| json!({ "domain": s.domain, "timezone": s.timezone.name() }))
        .collect();
    // The dashboard links to the pipeline page for operators only.
    Ok(Json(json!({ "sites": mine, "operator": owner.0.operator })))
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

    #[test]
    fn the_openapi_document_is_json_and_names_every_endpoint() {
        let doc: Value = serde_json::from_str(OPENAPI_JSON).expect("valid JSON");
        for path in [
            "/api/v1/stats/realtime/visitors",
            "/api/v1/stats/aggregate",
            "/api/v1/stats/timeseries",
            "/api/v1/stats/breakdown",
            "/api/stats",
            "/api/pipeline",
            "/api/sites",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
    }
}
