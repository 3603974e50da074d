//! The collector's part of the OpenAPI document: the answers its handlers give, the refusals
//! they share, and the server its paths live on (the collector's address, not the API's). The
//! API serves the whole document; [`openapi`] is how it gets this part without a server.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::openapi::OpenApi;
use utoipa::openapi::server::{ServerBuilder, ServerVariableBuilder};
use utoipa::{IntoResponses, ToSchema};

/// The refusal of a request, naming the field at fault when there is one.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CollectorError)]
pub struct RefusalBody {
    pub error: String,
    /// The field at fault (`[i].url` in a batch), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Plausible's shape: the field and its messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

/// `202` of `POST /track`: the event's id, or `dropped` = 1 when it was filtered out as a bot.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackAccepted {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = "uuid")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<usize>,
}

/// `202` of `POST /track/batch`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAccepted {
    pub accepted: usize,
    /// Items filtered out (bots, crawlers, HTTP tools).
    pub dropped: usize,
    /// The ids of the accepted events, in the batch's order.
    #[schema(value_type = Vec<String>)]
    pub ids: Vec<String>,
}

/// A custom property's value: flat values only.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema: the parser reads props as JSON values and checks each
pub enum PropValue {
    /// At most 2,000 bytes.
    Text(String),
    Number(f64),
    Flag(bool),
}

/// An event time: RFC 3339 or Unix milliseconds; not in the future.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema: the parser reads the JSON value and tries both
pub enum Timestamp {
    #[schema(format = DateTime)]
    Rfc3339(String),
    UnixMs(i64),
}

/// What Plausible's tracker sends to `POST /api/event` (also as `text/plain`); the long names
/// (`name`, `url`, `domain`, `referrer`, `props`, `revenue`) are accepted too.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema: the parser reads the body as a JSON object field by field
pub struct PlausibleEvent {
    /// Event name (`pageview`, `engagement`, a goal).
    n: String,
    /// Page URL.
    #[schema(max_length = 2000)]
    u: String,
    /// Comma-separated site domains (at most 10 distinct); default: the URL's host.
    d: Option<String>,
    /// Referrer.
    #[schema(max_length = 2000)]
    r: Option<String>,
    /// Props: an object or its JSON as a string.
    #[schema(value_type = Option<Object>)]
    p: Option<()>,
    /// 1: hash mode (the URL's fragment is part of the path).
    h: Option<i64>,
    /// false: a non-interactive event (does not affect bounce).
    i: Option<bool>,
    /// Scroll depth % (engagement events).
    sd: Option<i64>,
    /// Engaged milliseconds (engagement events).
    e: Option<i64>,
    /// Revenue: `{amount, currency}` or its JSON as a string.
    #[schema(value_type = Option<Object>, rename = "$")]
    revenue: Option<()>,
}

/// The answers every ingest endpoint may give besides its `202`.
#[derive(IntoResponses)]
#[allow(dead_code)] // a document: `Refusal` is what the handlers return
pub enum Refusals {
    /// Bad input: `field` names it (`[i].url` in a batch).
    #[response(status = 400)]
    BadInput(RefusalBody),
    /// `id`, `timestamp`, `ip` or `user_agent` without an ingest token (`field` names it), or an
    /// unknown token.
    #[response(status = 401)]
    Unauthorized(RefusalBody),
    /// The ingest token belongs to another site; `field` is `site`.
    #[response(status = 403)]
    Forbidden(RefusalBody),
    /// The body is over the size limit (64 KiB; 4 MiB for `/track/batch`).
    #[response(status = 413)]
    TooLarge,
    /// Over `BEACON_RATE_LIMIT` requests per second from this address.
    #[response(status = 429, headers(("Retry-After" = String, description = "Seconds to wait before sending again.")))]
    TooMany(RefusalBody),
    /// Nothing was stored (JetStream unreachable, in-flight budget reached, a store unavailable):
    /// send again. When the message says the events *may have been stored*, JetStream took them
    /// but did not confirm in time: a resend with the same `id` cannot count them twice.
    #[response(status = 503, headers(("Retry-After" = String, description = "Seconds to wait before sending again.")))]
    Unavailable(RefusalBody),
}

/// The answers of the tracker script's two paths.
#[derive(IntoResponses)]
#[allow(dead_code)] // a document: the handlers build the responses
pub enum TrackerScript {
    /// The script (with `ETag` and `Cache-Control`).
    #[response(status = 200, content_type = "application/javascript")]
    Script(String),
    /// Unchanged since the `If-None-Match` tag.
    #[response(status = 304)]
    Unchanged,
}

/// The collector's operations, on the collector's address.
pub fn openapi() -> OpenApi {
    let mut document = crate::routes().into_openapi();
    let server = ServerBuilder::new()
        .url("{collector}")
        .description(Some(
            "The collector's public URL (`BEACON_COLLECTOR_ADDR`), not the API's.",
        ))
        .parameter(
            "collector",
            ServerVariableBuilder::new().default_value("http://localhost:8080"),
        )
        .build();
    for item in document.paths.paths.values_mut() {
        item.servers = Some(vec![server.clone()]);
    }
    document
}
