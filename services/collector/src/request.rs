//! Reading a request the same way on every endpoint: the body (with a JSON error for oversize or
//! unreadable bodies), JSON with errors that name the field, and who sent it (address, user agent,
//! rate limit).

use std::net::SocketAddr;

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::client_ip::client_ip;
use crate::error::Refusal;
use crate::ingest::Client;
use beacon_schemas::text::{TextProblem, check_required_text, check_text};

/// Longest user agent kept (longer ones are cut at a character boundary).
pub const MAX_USER_AGENT: usize = 1024;

pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Refusal> {
    body.map_err(|rejection| Refusal {
        status: rejection.status(),
        field: None,
        message: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            format!("body is larger than {} bytes", crate::MAX_BODY_BYTES)
        } else {
            rejection.body_text()
        },
        retry_after: None,
    })
}

/// Parses JSON; a type error names the field's path, a missing field its name.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::body("body is empty; expected JSON"));
    }
    // The fast path parses once; only a body that fails is parsed again to find the field's path.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return Refusal::body(format!("body is not valid JSON: {inner}"));
        }
        let message = inner.to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => Some(name.to_string()),
            (".", None) => None,
            (path, Some(name)) => Some(format!("{path}.{name}")),
            (path, None) => Some(path.to_string()),
        };
        match field {
            Some(field) => Refusal::field(field, message),
            None => Refusal::body(message),
        }
    })
}

/// `value` when it keeps the envelope's text rules ([`beacon_schemas::text`]: no control
/// character, at most `max` bytes); else a `400` naming `field`.
pub fn text_field<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, Refusal> {
    check_text(value, max)
        .map(|()| value)
        .map_err(|problem| text_error(field, problem))
}

/// [`text_field`] that also refuses the empty string.
pub fn required_text_field<'a>(
    field: &str,
    value: &'a str,
    max: usize,
) -> Result<&'a str, Refusal> {
    check_required_text(value, max)
        .map(|()| value)
        .map_err(|problem| text_error(field, problem))
}

/// For text that is cut rather than refused when long (a user agent, Plausible's referrer): the
/// first `count` characters of `value`, refused with a `400` naming `field` only if they hold a
/// control character.
pub fn cut_text_field<'a>(field: &str, value: &'a str, count: usize) -> Result<&'a str, Refusal> {
    text_field(field, first_chars(value, count), usize::MAX)
}

fn text_error(field: &str, problem: TextProblem) -> Refusal {
    Refusal::field(field, problem.to_string())
}

/// Input echoed in an error message: at most 64 characters, control characters escaped.
pub fn echo(input: &str) -> String {
    let short = first_chars(input.trim(), 64);
    let escaped: String = short.escape_debug().collect();
    if short.len() < input.trim().len() {
        format!("{escaped}…")
    } else {
        escaped
    }
}

/// The first `count` characters of `text` (all of it when shorter).
pub fn first_chars(text: &str, count: usize) -> &str {
    match text.char_indices().nth(count) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The sender: client address (through trusted proxies), user agent; refuses it past its rate.
pub fn sender(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<Client, Refusal> {
    let ip = client_ip(peer.ip(), headers, &state.trusted_proxies);
    if let Some(limiter) = &state.rate_limiter
        && limiter.check_key(&ip).is_err()
    {
        metrics::counter!(beacon_metrics::COLLECTOR_RATE_LIMITED.name).increment(1);
        return Err(Refusal::rate_limited());
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(Client {
        ip,
        user_agent: first_chars(user_agent, MAX_USER_AGENT).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::first_chars;

    #[test]
    fn first_chars_cuts_at_a_character_boundary() {
        assert_eq!(first_chars("curl/8.5", 100), "curl/8.5");
        assert_eq!(first_chars("curl/8.5", 4), "curl");
        assert_eq!(first_chars("", 3), "");
        // Multi-byte characters count as one each and are never split.
        assert_eq!(first_chars("ééé", 2), "éé");
        assert_eq!(first_chars("日本語のUA", 3), "日本語");
    }
}
