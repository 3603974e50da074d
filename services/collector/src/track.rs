//! `POST /track` and `POST /track/batch`: Beacon's own JSON events, validated field by field.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use beacon_pipeline::domain::normalize_domain;
use beacon_pipeline::url_parts::split_url;
use beacon_schemas::EventId;
use beacon_schemas::text::{
    MAX_NAME_LEN, MAX_PROP_KEY_LEN, MAX_PROP_VALUE_LEN, MAX_PROPS, MAX_REFERRER_LEN, MAX_URL_LEN,
    without_controls,
};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::AppState;
use crate::document::{BatchAccepted, PropValue, Refusals, Timestamp, TrackAccepted};
use crate::error::Refusal;
use crate::ingest::{Client, Hit, UnknownSite, ingest};
use crate::request::{
    MAX_USER_AGENT, body_bytes, cut_text_field, echo, parse_json, required_text_field, sender,
    text_field,
};
use crate::tokens::{SERVER_SIDE_FIELDS, forbidden, unauthorized};

/// Largest batch `POST /track/batch` takes.
pub const MAX_BATCH: usize = 1000;
/// How far in the future a sender's clock may be.
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// One page view or event. Text must be free of control characters; bounds are in bytes of
/// UTF-8.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TrackEvent)]
struct TrackBody {
    /// A registered site's domain.
    #[schema(max_length = 253)]
    site: Option<String>,
    /// `pageview` (the default) or a custom event's name.
    #[schema(max_length = 120)]
    name: Option<String>,
    /// The page's full URL. Its host is the site unless `site` is given.
    #[schema(max_length = 2048)]
    url: String,
    #[schema(max_length = 2048)]
    referrer: Option<String>,
    /// Custom properties: at most 30, keys up to 300 bytes; flat values only.
    #[schema(value_type = Option<BTreeMap<String, PropValue>>)]
    props: Option<Map<String, Value>>,
    /// `false`: a non-interactive event (does not affect bounce). Default `true`.
    interactive: Option<bool>,
    /// Ingest token only. A UUID chosen by the sender: resends of the same event are then
    /// idempotent.
    #[schema(format = "uuid")]
    id: Option<String>,
    /// Ingest token only. Event time (RFC 3339 or Unix ms), for server-side senders and
    /// backfills.
    #[schema(value_type = Option<Timestamp>)]
    timestamp: Option<Value>,
    /// Ingest token only. The visitor's user agent (cut to 1,024 bytes); needs `ip`.
    user_agent: Option<String>,
    /// Ingest token only. The visitor's address (hashed, never stored).
    ip: Option<String>,
}

/// Record one page view or event.
///
/// Beacon's own endpoint. Anonymous senders (browsers) are timed and identified by the
/// collector. Server-side senders authenticate with a site ingest token (`beacon token create
/// --site DOMAIN`) to set `id`, `timestamp`, `ip` and `user_agent`.
#[utoipa::path(post, path = "/track", tag = "collector",
    security((), ("ingest_token" = [])),
    request_body = TrackBody,
    responses(
        (status = 202, description = "Stored in the stream (or dropped as a bot: `dropped` = 1).",
            body = TrackAccepted, headers(
                ("X-Beacon-Dropped" = String, description = "Hits filtered out (bots, crawlers, HTTP tools)."),
                ("X-Plausible-Dropped" = String, description = "The same, under Plausible's name."),
            )),
        Refusals,
    ))]
pub async fn track(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, HeaderMap, Json<TrackAccepted>), Refusal> {
    let sender = sender(&state, peer, &headers)?;
    let token_site = state.tokens.site_of(&headers).await?;
    let body = body_bytes(body)?;
    let hit = validate(
        &parse_json::<TrackBody>(&body)?,
        "",
        chrono::Utc::now().timestamp_millis(),
        token_site.as_deref(),
    )?;
    let outcome = ingest(&state, &sender, vec![hit], UnknownSite::Reject).await?;
    let body = match outcome.accepted.first() {
        Some(id) => TrackAccepted {
            id: Some(id.to_string()),
            dropped: None,
        },
        None => TrackAccepted {
            id: None,
            dropped: Some(outcome.dropped),
        },
    };
    Ok((
        StatusCode::ACCEPTED,
        dropped_header(outcome.dropped),
        Json(body),
    ))
}

/// Record up to 1,000 events at once.
///
/// Each item as in `POST /track`; the batch is validated whole (one bad item refuses it, naming
/// `[i].field`) and stored whole.
#[utoipa::path(post, path = "/track/batch", tag = "collector",
    security((), ("ingest_token" = [])),
    request_body(content = Vec<TrackBody>, description = "1 to 1,000 events."),
    responses(
        (status = 202, description = "Stored in the stream, bots dropped.",
            body = BatchAccepted, headers(
                ("X-Beacon-Dropped" = String, description = "Hits filtered out (bots, crawlers, HTTP tools)."),
                ("X-Plausible-Dropped" = String, description = "The same, under Plausible's name."),
            )),
        Refusals,
    ))]
pub async fn track_batch(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, HeaderMap, Json<BatchAccepted>), Refusal> {
    let sender = sender(&state, peer, &headers)?;
    let token_site = state.tokens.site_of(&headers).await?;
    let body = body_bytes(body)?;
    let items = parse_json::<Vec<TrackBody>>(&body)?;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(Refusal::body(format!(
            "a batch holds 1 to {MAX_BATCH} events, not {}",
            items.len()
        )));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let hits = items
        .iter()
        .enumerate()
        .map(|(i, item)| validate(item, &format!("[{i}]."), now_ms, token_site.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = ingest(&state, &sender, hits, UnknownSite::Reject).await?;
    let body = BatchAccepted {
        accepted: outcome.accepted.len(),
        dropped: outcome.dropped,
        ids: outcome.accepted.iter().map(ToString::to_string).collect(),
    };
    Ok((
        StatusCode::ACCEPTED,
        dropped_header(outcome.dropped),
        Json(body),
    ))
}

/// `X-Beacon-Dropped: N` when hits were filtered (bots, unknown sites), as Plausible signals it.
pub fn dropped_header(dropped: usize) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if dropped > 0 {
        headers.insert("x-beacon-dropped", dropped.into());
        headers.insert("x-plausible-dropped", dropped.into());
    }
    headers
}

/// Checks one event of a body. `token_site` is the site of the request's ingest token: only then
/// are the server-side fields honoured, and only for that site.
fn validate(
    body: &TrackBody,
    prefix: &str,
    now_ms: i64,
    token_site: Option<&str>,
) -> Result<Hit, Refusal> {
    // A single event's fields are named as they are; a batch item's after its index. Built
    // only when a field is refused or for a batch, never for every field of a valid event.
    let field = |name: &'static str| -> Cow<'static, str> {
        if prefix.is_empty() {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(format!("{prefix}{name}"))
        }
    };
    let server_side = [
        body.id.is_some(),
        body.timestamp.is_some(),
        body.ip.is_some(),
        body.user_agent.is_some(),
    ];
    if token_site.is_none()
        && let Some(i) = server_side.iter().position(|set| *set)
    {
        return Err(unauthorized(
            &field(SERVER_SIDE_FIELDS[i]),
            "may be set only with a site ingest token (Authorization: Bearer …; \
             `beacon token create --site DOMAIN`)",
        ));
    }
    let url = text_field(&field("url"), body.url.trim(), MAX_URL_LEN)?;
    let parts = split_url(url).map_err(|e| Refusal::field(field("url"), e.to_string()))?;
    let site_raw = body.site.as_deref().unwrap_or(&parts.hostname);
    let site = normalize_domain(site_raw)
        .map_err(|e| Refusal::field(field("site"), format!("'{}' {e}", echo(site_raw))))?;
    if let Some(allowed) = token_site
        && allowed != site
    {
        return Err(forbidden(
            &field("site"),
            format!("the ingest token is for '{allowed}', not '{site}'"),
        ));
    }
    let name = body.name.as_deref().map(str::trim).unwrap_or("pageview");
    let name = required_text_field(&field("name"), name, MAX_NAME_LEN)?.to_string();
    let referrer = match body.referrer.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => Some(text_field(&field("referrer"), r, MAX_REFERRER_LEN)?),
        _ => None,
    };
    let mut hit = Hit::new(site, name, url.to_string(), parts.hostname, parts.pathname);
    hit.referrer = referrer.map(str::to_string);
    hit.props = props(body.props.as_ref(), prefix)?;
    hit.interactive = body.interactive.unwrap_or(true);
    hit.id = body
        .id
        .as_deref()
        .map(|id| {
            id.parse::<EventId>()
                .map_err(|_| Refusal::field(field("id"), "is not a UUID"))
        })
        .transpose()?;
    hit.timestamp_ms = body
        .timestamp
        .as_ref()
        .map(|t| timestamp(t, now_ms, &field("timestamp")))
        .transpose()?;
    if body.user_agent.is_some() || body.ip.is_some() {
        let ip = match body.ip.as_deref() {
            Some(ip) => ip
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| Refusal::field(field("ip"), "is not an IP address"))?,
            None => return Err(Refusal::field(field("ip"), "is required with user_agent")),
        };
        let user_agent = cut_text_field(
            &field("user_agent"),
            body.user_agent.as_deref().unwrap_or(""),
            MAX_USER_AGENT,
        )?
        .to_owned();
        hit.client = Some(Client { ip, user_agent });
    }
    Ok(hit)
}

fn timestamp(value: &Value, now_ms: i64, field: &str) -> Result<i64, Refusal> {
    let ms = match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| Refusal::field(field, "is not a whole number of milliseconds"))?,
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| Refusal::field(field, "is not an RFC 3339 time or Unix milliseconds"))?
            .timestamp_millis(),
        _ => {
            return Err(Refusal::field(
                field,
                "is not an RFC 3339 time or Unix milliseconds",
            ));
        }
    };
    if ms <= 0 || ms > now_ms + MAX_CLOCK_SKEW_MS {
        return Err(Refusal::field(field, "is before 1970 or in the future"));
    }
    Ok(ms)
}

/// A prop's value as stored: scalars as text; blanks, nulls and nested values have none. Control
/// characters in a string (a page title's line break, a decoded `%00`) are cleaned, not refused:
/// each run becomes one space ([`without_controls`]).
pub fn prop_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => {
            let cleaned = without_controls(s);
            (!cleaned.trim().is_empty()).then(|| cleaned.into_owned())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Scalar props become strings; nested values and nulls are dropped.
pub fn props(
    raw: Option<&Map<String, Value>>,
    prefix: &str,
) -> Result<BTreeMap<String, String>, Refusal> {
    let Some(raw) = raw else {
        return Ok(BTreeMap::new());
    };
    if raw.len() > MAX_PROPS {
        return Err(Refusal::field(
            format!("{prefix}props"),
            format!("has more than {MAX_PROPS} properties"),
        ));
    }
    let field = format!("{prefix}props");
    let mut props = BTreeMap::new();
    for (key, value) in raw {
        if let Some(value) = prop(&field, key, value)? {
            props.insert(key.clone(), value);
        }
    }
    Ok(props)
}

/// One prop, checked: its name printable and 1 to [`MAX_PROP_KEY_LEN`] bytes (a `400` naming
/// `field`), its value as [`prop_text`] keeps it and at most [`MAX_PROP_VALUE_LEN`] bytes (a
/// `400` naming `field.key`).
pub fn prop(field: &str, key: &str, value: &Value) -> Result<Option<String>, Refusal> {
    required_text_field(field, key, MAX_PROP_KEY_LEN).map_err(|e| Refusal {
        message: format!("property name '{}' {}", echo(key), e.message),
        ..e
    })?;
    let Some(value) = prop_text(value) else {
        return Ok(None);
    };
    text_field(&format!("{field}.{key}"), &value, MAX_PROP_VALUE_LEN)?;
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn check(json: &str) -> Result<Hit, Refusal> {
        validate(&parse_json(json.as_bytes())?, "", NOW, Some("a.com"))
    }

    fn anonymous(json: &str) -> Result<Hit, Refusal> {
        validate(&parse_json(json.as_bytes())?, "", NOW, None)
    }

    fn field_of(json: &str) -> Option<String> {
        check(json).expect_err(json).field
    }

    #[test]
    fn minimal_body_defaults_to_a_pageview_of_the_url_host() {
        let hit = anonymous(r#"{"url": "https://www.Example.com/a?x=1"}"#).expect("valid");
        assert_eq!(hit.site, "example.com");
        assert_eq!(hit.name, "pageview");
        assert_eq!(hit.pathname, "/a");
        assert!(hit.interactive);
        assert_eq!((hit.id, hit.timestamp_ms, hit.client), (None, None, None));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"site": "a.com"}"#, "url"),
            (r#"{"url": 5}"#, "url"),
            (r#"{"url": "not a url"}"#, "url"),
            (r#"{"url": "https://a.com/", "site": "bad site"}"#, "site"),
            (r#"{"url": "https://a.com/", "name": ""}"#, "name"),
            (r#"{"url": "https://a.com/", "props": []}"#, "props"),
            (r#"{"url": "https://a.com/", "id": "nope"}"#, "id"),
            (
                r#"{"url": "https://a.com/", "timestamp": "yesterday"}"#,
                "timestamp",
            ),
            (
                r#"{"url": "https://a.com/", "timestamp": 1900000000000}"#,
                "timestamp",
            ),
            (r#"{"url": "https://a.com/", "user_agent": "x"}"#, "ip"),
            (r#"{"url": "https://a.com/", "ip": "1.2.3"}"#, "ip"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body).as_deref(), Some(field), "{body}");
        }
        let long = format!(
            r#"{{"url": "https://a.com/", "props": {{"k": "{}"}}}}"#,
            "x".repeat(3000)
        );
        assert_eq!(field_of(&long).as_deref(), Some("props.k"));
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        let cases = [
            (r#"{"url": "https://a.com/\u0000"}"#, "url"),
            (r#"{"url": "https://a.com/", "name": "x\u0000y"}"#, "name"),
            (r#"{"url": "https://a.com/", "name": "x\u001by"}"#, "name"),
            (
                r#"{"url": "https://a.com/", "referrer": "https://b.com/\u0000"}"#,
                "referrer",
            ),
            (
                r#"{"url": "https://a.com/", "site": "a\u0000.com"}"#,
                "site",
            ),
            (
                r#"{"url": "https://a.com/", "props": {"k\u0000": "v"}}"#,
                "props",
            ),
            (
                r#"{"url": "https://a.com/", "ip": "1.2.3.4", "user_agent": "UA\u0000"}"#,
                "user_agent",
            ),
        ];
        for (body, field) in cases {
            let error = check(body).expect_err(body);
            assert_eq!(
                error.field.as_deref(),
                Some(field),
                "{body}: {}",
                error.message
            );
            assert!(
                !error.message.contains('\u{0}'),
                "the message escapes what it echoes"
            );
        }
        let long_key = format!(
            r#"{{"url": "https://a.com/", "props": {{"{}": "v"}}}}"#,
            "k".repeat(301)
        );
        assert_eq!(field_of(&long_key).as_deref(), Some("props"));
        let batch_field = validate(
            &parse_json(br#"{"url": "https://a.com/", "name": "\u0000"}"#).expect("json"),
            "[3].",
            NOW,
            None,
        )
        .expect_err("refused")
        .field;
        assert_eq!(batch_field.as_deref(), Some("[3].name"));
    }

    #[test]
    fn control_characters_in_prop_values_are_cleaned() {
        let hit = check(r#"{"url": "https://a.com/", "props": {"title": "Line one\r\nline\u0000two", "z": "\u0000"}}"#)
            .expect("valid");
        assert_eq!(
            hit.props.get("title").map(String::as_str),
            Some("Line one line two")
        );
        assert!(
            !hit.props.contains_key("z"),
            "nothing but controls is no value"
        );
    }

    #[test]
    fn server_side_fields_need_a_token_for_the_events_site() {
        for (body, field) in [
            (
                r#"{"url": "https://a.com/", "id": "0192f3a4-5b6c-7d8e-9f01-23456789abcd"}"#,
                "id",
            ),
            (r#"{"url": "https://a.com/", "timestamp": 1}"#, "timestamp"),
            (
                r#"{"url": "https://a.com/", "ip": "1.2.3.4", "user_agent": "UA"}"#,
                "ip",
            ),
            (
                r#"{"url": "https://a.com/", "user_agent": "UA"}"#,
                "user_agent",
            ),
        ] {
            let error = anonymous(body).expect_err(body);
            assert_eq!(error.status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(error.field.as_deref(), Some(field), "{body}");
        }
        let other_site =
            check(r#"{"url": "https://b.com/"}"#).expect_err("b.com with a.com's token");
        assert_eq!(other_site.status, StatusCode::FORBIDDEN);
        assert_eq!(other_site.field.as_deref(), Some("site"));
        assert!(
            anonymous(r#"{"url": "https://b.com/"}"#).is_ok(),
            "no token, no server-side fields"
        );
    }

    #[test]
    fn a_long_server_side_user_agent_is_cut_not_refused() {
        let body = format!(
            r#"{{"url": "https://a.com/", "ip": "1.2.3.4", "user_agent": "{}"}}"#,
            "日".repeat(5000)
        );
        let client = check(&body).expect("valid").client.expect("client");
        assert_eq!(client.user_agent.chars().count(), MAX_USER_AGENT);
    }

    #[test]
    fn server_side_fields_are_taken() {
        let hit = check(
            r#"{"url": "https://a.com/", "id": "0192f3a4-5b6c-7d8e-9f01-23456789abcd",
                "timestamp": "2026-01-02T03:04:05Z", "ip": "198.51.100.7", "user_agent": "Mozilla/5.0"}"#,
        )
        .expect("valid");
        assert_eq!(hit.timestamp_ms, Some(1_767_323_045_000));
        assert_eq!(
            hit.id.map(|id| id.to_string()).as_deref(),
            Some("0192f3a4-5b6c-7d8e-9f01-23456789abcd")
        );
        assert_eq!(
            hit.client,
            Some(Client {
                ip: "198.51.100.7".parse().expect("ip"),
                user_agent: "Mozilla/5.0".into()
            })
        );
    }

    #[test]
    fn garbage_bodies_are_body_errors() {
        for body in ["", "   ", "{", "[1,2]", "null", "\u{0}\u{1}"] {
            let error = check(body).expect_err(body);
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{body:?}");
        }
    }

    #[test]
    fn nested_and_blank_props_are_dropped_and_scalars_kept_as_text() {
        let hit = check(
            r#"{"url": "https://a.com/", "props": {"n": 3, "b": true, "s": "x", "o": {"a": 1}, "z": null, "e": " "}}"#,
        )
        .expect("valid");
        let expected: BTreeMap<String, String> = [("b", "true"), ("n", "3"), ("s", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(hit.props, expected);
    }
}
