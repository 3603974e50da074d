//! `POST /track`: Beacon's own JSON event, validated field by field, enriched, published durably.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use beacon_pipeline::domain::normalize_domain;
use beacon_pipeline::url_parts::split_url;
use beacon_pipeline::visitor::visitor_id;
use beacon_schemas::{Enrichment, Event, EventId, MAX_NAME_LEN, MAX_URL_LEN, SCHEMA_VERSION};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::AppState;
use crate::client_ip::client_ip;
use crate::error::ApiError;

const MAX_PROPS: usize = 30;
const MAX_PROP_KEY: usize = 300;
const MAX_PROP_VALUE: usize = 2000;
const MAX_REFERRER: usize = 2048;
const MAX_USER_AGENT: usize = 1024;

#[derive(Debug, Deserialize)]
struct TrackBody {
    site: Option<String>,
    name: Option<String>,
    url: String,
    referrer: Option<String>,
    props: Option<Map<String, Value>>,
    interactive: Option<bool>,
}

/// Everything of a request except the site check and the salt: pure, so it is unit tested.
#[derive(Debug, PartialEq)]
struct ValidHit {
    site: String,
    name: String,
    url: String,
    hostname: String,
    pathname: String,
    referrer: Option<String>,
    props: BTreeMap<String, String>,
    interactive: bool,
}

pub async fn track(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let result = accept(&state, peer, &headers, body).await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        Err(_) => "rejected",
    };
    metrics::counter!("beacon_collector_events_total", "outcome" => outcome).increment(1);
    result
}

async fn accept(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(|rejection| ApiError {
        status: rejection.status(),
        field: None,
        message: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            format!("body is larger than {} bytes", crate::MAX_BODY_BYTES)
        } else {
            rejection.body_text()
        },
        retry_after: None,
    })?;
    let hit = validate(&parse(&body)?)?;

    let known = state.sites.contains(&hit.site).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read sites");
        ApiError::unavailable("site directory unavailable")
    })?;
    if !known {
        return Err(ApiError::field(
            "site",
            format!(
                "unknown site '{}'; register it with `beacon site add`",
                hit.site
            ),
        ));
    }

    let now = chrono::Utc::now();
    let salt = state.salts.salt_for(now.date_naive()).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read salt");
        ApiError::unavailable("salt store unavailable")
    })?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let user_agent: String = user_agent.chars().take(MAX_USER_AGENT).collect();
    let ip = client_ip(peer.ip(), headers, &state.trusted_proxies);

    let now_ms = now.timestamp_millis();
    let event = Event {
        v: SCHEMA_VERSION,
        id: EventId::new_at(now_ms),
        visitor_id: visitor_id(&salt, &hit.site, ip, &user_agent),
        site: hit.site,
        name: hit.name,
        timestamp_ms: now_ms,
        received_at_ms: now_ms,
        url: hit.url,
        hostname: hit.hostname,
        pathname: hit.pathname,
        referrer: hit.referrer,
        props: hit.props,
        interactive: hit.interactive,
        enrichment: Enrichment::default(),
    };
    match state.publisher.publish(&event).await {
        Ok(_) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "id": event.id })),
        )),
        Err(e) if e.is_retryable() => {
            tracing::warn!(error = %e, "publish failed");
            Err(ApiError::unavailable(
                "event stream unavailable; retry later",
            ))
        }
        Err(e) => Err(ApiError::body(e.to_string())),
    }
}

fn parse(body: &[u8]) -> Result<TrackBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::body("body is empty; expected a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::body(format!("body is not valid JSON: {inner}"));
        }
        let message = inner.to_string();
        let field = if path == "." {
            message
                .split('`')
                .nth(1)
                .map(str::to_string)
                .filter(|_| message.starts_with("missing field"))
        } else {
            Some(path)
        };
        match field {
            Some(field) => ApiError::field(field, message),
            None => ApiError::body(message),
        }
    })
}

fn validate(body: &TrackBody) -> Result<ValidHit, ApiError> {
    if body.url.len() > MAX_URL_LEN {
        return Err(ApiError::field(
            "url",
            format!("is longer than {} bytes", MAX_URL_LEN),
        ));
    }
    let parts = split_url(&body.url).map_err(|e| ApiError::field("url", e.to_string()))?;
    let site_raw = body.site.as_deref().unwrap_or(&parts.hostname);
    let site = normalize_domain(site_raw)
        .map_err(|e| ApiError::field("site", format!("'{site_raw}' {e}")))?;
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .unwrap_or("pageview")
        .to_string();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ApiError::field(
            "name",
            format!("must be 1 to {} bytes", MAX_NAME_LEN),
        ));
    }
    let referrer = body
        .referrer
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if referrer.is_some_and(|r| r.len() > MAX_REFERRER) {
        return Err(ApiError::field(
            "referrer",
            format!("is longer than {MAX_REFERRER} bytes"),
        ));
    }
    Ok(ValidHit {
        site,
        name,
        url: body.url.trim().to_string(),
        hostname: parts.hostname,
        pathname: parts.pathname,
        referrer: referrer.map(str::to_string),
        props: props(body.props.as_ref())?,
        interactive: body.interactive.unwrap_or(true),
    })
}

/// Scalar props become strings; nested values and nulls are dropped.
fn props(raw: Option<&Map<String, Value>>) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(raw) = raw else {
        return Ok(BTreeMap::new());
    };
    if raw.len() > MAX_PROPS {
        return Err(ApiError::field(
            "props",
            format!("has more than {MAX_PROPS} properties"),
        ));
    }
    let mut props = BTreeMap::new();
    for (key, value) in raw {
        if key.is_empty() || key.len() > MAX_PROP_KEY {
            return Err(ApiError::field(
                "props",
                format!("property names must be 1 to {MAX_PROP_KEY} bytes"),
            ));
        }
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null | Value::Array(_) | Value::Object(_) => continue,
        };
        if value.len() > MAX_PROP_VALUE {
            return Err(ApiError::field(
                format!("props.{key}"),
                format!("is longer than {MAX_PROP_VALUE} bytes"),
            ));
        }
        props.insert(key.clone(), value);
    }
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<ValidHit, ApiError> {
        validate(&parse(json.as_bytes())?)
    }

    fn field_of(json: &str) -> Option<String> {
        check(json).expect_err(json).field
    }

    #[test]
    fn minimal_body_defaults_to_a_pageview_of_the_url_host() {
        let hit = check(r#"{"url": "https://www.Example.com/a?x=1"}"#).expect("valid");
        assert_eq!(hit.site, "example.com");
        assert_eq!(hit.name, "pageview");
        assert_eq!(hit.pathname, "/a");
        assert!(hit.interactive);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"site": "a.com"}"#).as_deref(), Some("url"));
        assert_eq!(field_of(r#"{"url": 5}"#).as_deref(), Some("url"));
        assert_eq!(field_of(r#"{"url": "not a url"}"#).as_deref(), Some("url"));
        assert_eq!(
            field_of(r#"{"url": "https://a.com/", "site": "bad site"}"#).as_deref(),
            Some("site")
        );
        assert_eq!(
            field_of(r#"{"url": "https://a.com/", "name": ""}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of(r#"{"url": "https://a.com/", "props": []}"#).as_deref(),
            Some("props")
        );
        let long = format!(
            r#"{{"url": "https://a.com/", "props": {{"k": "{}"}}}}"#,
            "x".repeat(3000)
        );
        assert_eq!(field_of(&long).as_deref(), Some("props.k"));
    }

    #[test]
    fn garbage_bodies_are_body_errors() {
        for body in ["", "   ", "{", "[1,2]", "null", "\u{0}\u{1}"] {
            let error = check(body).expect_err(body);
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{body:?}");
        }
    }

    #[test]
    fn nested_props_are_dropped_and_scalars_kept_as_text() {
        let hit = check(r#"{"url": "https://a.com/", "props": {"n": 3, "b": true, "s": "x", "o": {"a": 1}, "z": null}}"#)
            .expect("valid");
        let expected: BTreeMap<String, String> = [("b", "true"), ("n", "3"), ("s", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(hit.props, expected);
    }
}
