//! `POST /api/event`: Plausible's Events API, so Plausible's trackers and server-side senders work
//! unchanged. Same guarantees as `/track`; Plausible's answers (`202 ok`, dropped-count header for
//! filtered hits, `400 {"errors": …}`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use beacon_pipeline::domain::normalize_domain;
use beacon_pipeline::url_parts::split_url;
use beacon_schemas::Revenue;
use beacon_schemas::text::{MAX_NAME_LEN, MAX_PROPS};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::AppState;
#[allow(unused_imports)] // named by the document
use crate::document::{PlausibleEvent, RefusalBody};
use crate::error::Refusal;
use crate::ingest::{Hit, UnknownSite, ingest};
use crate::request::{
    body_bytes, cut_text_field, echo, parse_json, required_text_field, sender, text_field,
};
use crate::track::{dropped_header, prop};
use beacon_schemas::MAX_ENGAGEMENT_MS;

/// Plausible's limits on the page URL and referrer.
const MAX_URL: usize = 2000;
const MAX_REFERRER: usize = 2000;
/// Most distinct sites one body may name in `d` (a comma-separated list, so that one page view
/// is recorded for a few sites at once): a body is one item, and becomes at most this many events.
pub const MAX_DOMAINS: usize = 10;
/// Longest revenue amount, as text.
const MAX_AMOUNT_LEN: usize = 40;

/// Plausible's Events API.
///
/// What Plausible's tracker sends (`text/plain` or JSON). Events for unregistered sites and bots
/// are dropped with `202` and `X-Plausible-Dropped`. `d` lists up to 10 distinct sites; each gets
/// the event once.
#[utoipa::path(post, path = "/api/event", tag = "collector",
    security(()),
    request_body(content(
        (PlausibleEvent = "application/json"),
        (String = "text/plain"),
    )),
    responses(
        (status = 202, description = "`ok`", body = String, content_type = "text/plain",
            headers(
                ("X-Beacon-Dropped" = String, description = "Hits filtered out (bots, crawlers, HTTP tools)."),
                ("X-Plausible-Dropped" = String, description = "The same, under Plausible's name."),
            )),
        (status = 400, description = "Bad input, in Plausible's shape: `errors` maps the field (`n`, `u`, `d`, …) to messages.", body = RefusalBody),
        (status = 413, description = "The body is over the size limit (64 KiB)."),
        (status = 429, description = "Over `BEACON_RATE_LIMIT` requests per second from this address.", body = RefusalBody,
            headers(("Retry-After" = String, description = "Seconds to wait before sending again."))),
        (status = 503, description = "Nothing was stored: send again (see `POST /track`).", body = RefusalBody,
            headers(("Retry-After" = String, description = "Seconds to wait before sending again."))),
    ))]
pub async fn event(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let sender = sender(&state, peer, &headers)?;
    let body = body_bytes(body)?;
    let hits = parse(&body)?;
    let outcome = ingest(&state, &sender, hits, UnknownSite::Drop).await?;
    let mut headers = dropped_header(outcome.dropped);
    headers.insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8"
            .parse()
            .map_err(|_| Refusal::body("header"))?,
    );
    Ok((StatusCode::ACCEPTED, headers, "ok").into_response())
}

/// The first of `names` present in `body` (Plausible accepts short and long field names).
fn field<'a>(
    body: &'a Map<String, Value>,
    names: &[&'static str],
) -> Option<(&'static str, &'a Value)> {
    names
        .iter()
        .find_map(|name| body.get(*name).filter(|v| !v.is_null()).map(|v| (*name, v)))
}

/// Parses one Plausible body into one hit per domain it names.
pub fn parse(body: &[u8]) -> Result<Vec<Hit>, Refusal> {
    let body: Map<String, Value> = parse_json(body)?;

    let (name_field, name) =
        field(&body, &["n", "name"]).ok_or_else(|| Refusal::field("n", "is required"))?;
    let name = match name {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(Refusal::field(name_field, "must be a string")),
    };
    required_text_field(name_field, &name, MAX_NAME_LEN)?;

    let (url_field, url) =
        field(&body, &["u", "url"]).ok_or_else(|| Refusal::field("u", "is required"))?;
    let url = url
        .as_str()
        .ok_or_else(|| Refusal::field(url_field, "must be a string"))?
        .trim();
    text_field(url_field, url, MAX_URL)?;
    let parts = split_url(url).map_err(|e| Refusal::field(url_field, e.to_string()))?;
    let hash_mode = matches!(
        field(&body, &["h", "hashMode"]),
        Some((_, Value::Bool(true)))
    ) || field(&body, &["h", "hashMode"]).and_then(|(_, v)| v.as_i64()) == Some(1);
    let pathname = match (hash_mode, url.split_once('#')) {
        (true, Some((_, fragment))) if !fragment.is_empty() => {
            format!("{}#{fragment}", parts.pathname)
        }
        _ => parts.pathname.clone(),
    };

    let domains: Vec<String> = match field(&body, &["d", "domain"]) {
        Some((f, Value::String(list))) => domain_list(f, list)?,
        Some((f, _)) => return Err(Refusal::field(f, "must be a string")),
        None => vec![
            normalize_domain(&parts.hostname)
                .map_err(|e| Refusal::field(url_field, e.to_string()))?,
        ],
    };

    let referrer = match field(&body, &["r", "referrer"]) {
        Some((f, Value::String(r))) => {
            let r = cut_text_field(f, r.trim(), MAX_REFERRER)?;
            Some(r.to_owned()).filter(|r| !r.is_empty())
        }
        Some((f, _)) => return Err(Refusal::field(f, "must be a string")),
        None => None,
    };
    let props = props(field(&body, &["p", "props", "m", "meta"]))?;
    let interactive = match field(&body, &["i", "interactive"]) {
        Some((_, Value::Bool(b))) => *b,
        Some((f, _)) => return Err(Refusal::field(f, "must be true or false")),
        None => true,
    };
    let revenue = field(&body, &["$", "revenue"]).map(revenue).transpose()?;
    let (scroll_depth, engagement_ms) = engagement(&body, &name)?;

    Ok(domains
        .into_iter()
        .map(|site| {
            let mut hit = Hit::new(
                site,
                name.clone(),
                url.to_string(),
                parts.hostname.clone(),
                pathname.clone(),
            );
            hit.referrer = referrer.clone();
            hit.props = props.clone();
            hit.interactive = interactive;
            hit.revenue = revenue.clone();
            hit.scroll_depth = scroll_depth;
            hit.engagement_ms = engagement_ms;
            hit
        })
        .collect())
}

/// `d`: sites separated by commas, each normalised; repeats count once, and more than
/// [`MAX_DOMAINS`] distinct sites are refused.
fn domain_list(f: &'static str, list: &str) -> Result<Vec<String>, Refusal> {
    let mut domains: Vec<String> = Vec::new();
    for raw in list.split(',') {
        let domain =
            normalize_domain(raw).map_err(|e| Refusal::field(f, format!("'{}' {e}", echo(raw))))?;
        if !domains.contains(&domain) {
            if domains.len() == MAX_DOMAINS {
                return Err(Refusal::field(
                    f,
                    format!("names more than {MAX_DOMAINS} distinct sites"),
                ));
            }
            domains.push(domain);
        }
    }
    Ok(domains)
}

/// `p` as an object or as a JSON string of one. Like Plausible: the first 30 kept, empty and
/// nested values dropped, over-long keys or values refused.
fn props(
    raw: Option<(&'static str, &Value)>,
) -> Result<std::collections::BTreeMap<String, String>, Refusal> {
    let Some((f, raw)) = raw else {
        return Ok(Default::default());
    };
    let object = object_or_json_string(f, raw)?;
    let mut props = std::collections::BTreeMap::new();
    for (key, value) in &object {
        let Some(value) = prop(f, key, value)? else {
            continue;
        };
        if props.len() < MAX_PROPS {
            props.insert(key.clone(), value);
        }
    }
    Ok(props)
}

/// Plausible accepts `p` and `$` as an object or as a string holding a JSON object.
fn object_or_json_string(f: &'static str, raw: &Value) -> Result<Map<String, Value>, Refusal> {
    match raw {
        Value::Object(map) => Ok(map.clone()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Refusal::field(f, "is not a JSON object")),
        },
        _ => Err(Refusal::field(f, "must be an object")),
    }
}

fn revenue((f, raw): (&'static str, &Value)) -> Result<Revenue, Refusal> {
    let object = object_or_json_string(f, raw)?;
    let amount = match object.get("amount") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s))
            if s.trim().len() <= MAX_AMOUNT_LEN
                && s.trim().parse::<f64>().is_ok_and(f64::is_finite) =>
        {
            s.trim().to_string()
        }
        _ => return Err(Refusal::field(format!("{f}.amount"), "must be a number")),
    };
    let currency = match object.get("currency") {
        Some(Value::String(c)) if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
            c.to_ascii_uppercase()
        }
        _ => {
            return Err(Refusal::field(
                format!("{f}.currency"),
                "must be a three-letter ISO 4217 code",
            ));
        }
    };
    Ok(Revenue { amount, currency })
}

/// `sd` (scroll depth %, capped at 100) and `e` (engaged ms) of engagement events.
fn engagement(body: &Map<String, Value>, name: &str) -> Result<(Option<u8>, Option<u64>), Refusal> {
    let sd = body
        .get("sd")
        .and_then(Value::as_i64)
        .filter(|v| *v >= 0)
        .map(|v| v.min(100) as u8);
    let e = body
        .get("e")
        .and_then(Value::as_u64)
        .filter(|v| *v <= MAX_ENGAGEMENT_MS);
    if name == "engagement" && sd.is_none() && e.is_none() {
        return Err(Refusal::field(
            "sd",
            "engagement events need a scroll depth (sd) or engaged time (e)",
        ));
    }
    Ok((sd, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Hit {
        let mut hits = parse(json.as_bytes()).expect(json);
        assert_eq!(hits.len(), 1);
        hits.remove(0)
    }

    fn field_of(json: &str) -> Option<String> {
        parse(json.as_bytes()).expect_err(json).field
    }

    #[test]
    fn the_trackers_body_is_a_pageview_of_the_domain() {
        let hit = one(
            r#"{"n":"pageview","u":"https://www.example.com/docs?x=1","d":"example.com","r":"https://duckduckgo.com/"}"#,
        );
        assert_eq!(
            (hit.site.as_str(), hit.name.as_str(), hit.pathname.as_str()),
            ("example.com", "pageview", "/docs")
        );
        assert_eq!(hit.referrer.as_deref(), Some("https://duckduckgo.com/"));
        assert!(hit.interactive);
    }

    #[test]
    fn long_names_props_as_string_and_interactive() {
        let hit = one(
            r#"{"name":"Signup","url":"https://a.com/x","domain":"a.com","props":"{\"plan\":\"pro\",\"n\":2,\"o\":{}}","interactive":false}"#,
        );
        assert_eq!(hit.name, "Signup");
        assert_eq!(hit.props.get("plan").map(String::as_str), Some("pro"));
        assert_eq!(hit.props.get("n").map(String::as_str), Some("2"));
        assert!(!hit.props.contains_key("o"));
        assert!(!hit.interactive);
    }

    #[test]
    fn a_domain_list_records_the_event_for_each_site() {
        let hits = parse(br#"{"n":"pageview","u":"https://a.com/","d":"a.com,www.b.org"}"#)
            .expect("valid");
        let sites: Vec<_> = hits.iter().map(|h| h.site.as_str()).collect();
        assert_eq!(sites, ["a.com", "b.org"]);
    }

    #[test]
    fn a_domain_list_counts_each_site_once_and_at_most_ten() {
        let repeated = format!(
            r#"{{"n":"pageview","u":"https://a.com/","d":"{}"}}"#,
            vec!["a.com"; 1000].join(",")
        );
        let hits = parse(repeated.as_bytes()).expect("one site, named 1,000 times");
        assert_eq!(hits.len(), 1);
        let ten: Vec<String> = (0..MAX_DOMAINS).map(|i| format!("s{i}.com")).collect();
        let body = format!(
            r#"{{"n":"pageview","u":"https://a.com/","d":"{}"}}"#,
            ten.join(",")
        );
        assert_eq!(
            parse(body.as_bytes()).expect("ten sites").len(),
            MAX_DOMAINS
        );
        let eleven = format!(
            r#"{{"n":"pageview","u":"https://a.com/","d":"{},www.s0.com,s10.com"}}"#,
            ten.join(",")
        );
        assert_eq!(field_of(&eleven).as_deref(), Some("d"));
    }

    #[test]
    fn control_characters_are_refused_or_cleaned() {
        for (body, field) in [
            (r#"{"n":"x\u0000y","u":"https://example.com/"}"#, "n"),
            (r#"{"n":"pageview","u":"https://example.com/\u0007"}"#, "u"),
            (r#"{"n":"pageview","u":"https://a.com/","r":"\u0000"}"#, "r"),
            (
                r#"{"n":"pageview","u":"https://a.com/","d":"a.com,\u0000"}"#,
                "d",
            ),
            (r#"{"n":"e","u":"https://a.com/","p":{"k\u0000":"v"}}"#, "p"),
            (
                r#"{"n":"e","u":"https://a.com/","p":"{\"k\u0000\":\"v\"}"}"#,
                "p",
            ),
        ] {
            assert_eq!(field_of(body).as_deref(), Some(field), "{body}");
        }
        let hit = one(r#"{"n":"e","u":"https://a.com/","p":{"title":"a\u0000b"}}"#);
        assert_eq!(hit.props.get("title").map(String::as_str), Some("a b"));
        let amount = format!(
            r#"{{"n":"P","u":"https://a.com/","$":{{"amount":"{}","currency":"EUR"}}}}"#,
            "1".repeat(41)
        );
        assert_eq!(field_of(&amount).as_deref(), Some("$.amount"));
    }

    #[test]
    fn a_long_referrer_is_cut_not_refused() {
        let long = format!("https://b.com/{}", "é".repeat(3000));
        let body =
            serde_json::json!({"n": "pageview", "u": "https://a.com/", "r": long}).to_string();
        let referrer = one(&body).referrer.expect("kept");
        assert_eq!(referrer.chars().count(), MAX_REFERRER);
    }

    #[test]
    fn hash_mode_keeps_the_fragment_in_the_path() {
        assert_eq!(
            one(r#"{"n":"pageview","u":"https://a.com/app#/settings","h":1}"#).pathname,
            "/app#/settings"
        );
        assert_eq!(
            one(r#"{"n":"pageview","u":"https://a.com/app#/settings"}"#).pathname,
            "/app"
        );
    }

    #[test]
    fn engagement_carries_scroll_depth_and_time() {
        let hit = one(r#"{"n":"engagement","u":"https://a.com/","sd":130,"e":4200}"#);
        assert_eq!(
            (hit.scroll_depth, hit.engagement_ms),
            (Some(100), Some(4200))
        );
        assert_eq!(
            field_of(r#"{"n":"engagement","u":"https://a.com/"}"#).as_deref(),
            Some("sd")
        );
    }

    #[test]
    fn revenue_is_an_amount_and_a_currency() {
        let hit =
            one(r#"{"n":"Purchase","u":"https://a.com/","$":{"amount":"19.90","currency":"eur"}}"#);
        assert_eq!(
            hit.revenue,
            Some(Revenue {
                amount: "19.90".into(),
                currency: "EUR".into()
            })
        );
        assert_eq!(
            field_of(r#"{"n":"P","u":"https://a.com/","$":{"amount":"x","currency":"EUR"}}"#)
                .as_deref(),
            Some("$.amount")
        );
    }

    #[test]
    fn only_the_first_30_props_are_kept() {
        let props: Map<String, Value> = (0..40)
            .map(|i| (format!("k{i:02}"), Value::from(i)))
            .collect();
        let body = serde_json::json!({"n": "e", "u": "https://a.com/", "p": props}).to_string();
        assert_eq!(one(&body).props.len(), 30);
    }

    #[test]
    fn errors_name_plausibles_fields() {
        assert_eq!(field_of(r#"{"u":"https://a.com/"}"#).as_deref(), Some("n"));
        assert_eq!(field_of(r#"{"n":"pageview"}"#).as_deref(), Some("u"));
        assert_eq!(
            field_of(r#"{"n":"pageview","u":"data:text/html,hi"}"#).as_deref(),
            Some("u")
        );
        assert_eq!(
            field_of(r#"{"n":"pageview","u":"https://a.com/","d":"bad domain"}"#).as_deref(),
            Some("d")
        );
        assert_eq!(
            field_of(r#"{"n":"pageview","u":"https://a.com/","p":[1]}"#).as_deref(),
            Some("p")
        );
        assert_eq!(
            field_of(r#"{"n":{},"u":"https://a.com/"}"#).as_deref(),
            Some("n")
        );
        assert!(parse(b"[]").is_err() && parse(b"nope").is_err());
    }
}
