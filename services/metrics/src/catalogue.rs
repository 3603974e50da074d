//! The catalogue: one constant per metric, grouped by the part of Beacon that records it.

use metrics::Unit;

use crate::Metric;

/// Latency buckets (seconds) of request and batch timings.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets (seconds) of how long an event takes to reach the statistics.
pub const FRESHNESS_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];
/// Buckets of batch sizes (messages).
pub const SIZE_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

// HTTP, every listener.
pub const HTTP_REQUESTS: Metric = Metric::counter(
    "beacon_http_requests_total",
    &["route", "method", "status"],
    "HTTP requests answered, by route pattern, method and status code.",
);
pub const HTTP_REQUEST_DURATION: Metric = Metric::histogram(
    "beacon_http_request_duration_seconds",
    Unit::Seconds,
    SECONDS_BUCKETS,
    &["route"],
    "Time from a request's arrival to its answer, by route pattern.",
);

// Collector.
pub const COLLECTOR_ACCEPTED: Metric = Metric::counter(
    "beacon_collector_accepted_total",
    &[],
    "Events stored in the stream and answered 202.",
);
pub const COLLECTOR_DROPPED: Metric = Metric::counter(
    "beacon_collector_dropped_total",
    &["reason"],
    "Hits answered 202 but not stored: bots (crawler, headless, tool, no_user_agent) and \
     unregistered sites on Plausible's endpoint (unknown_site).",
);
pub const COLLECTOR_OVERLOADED: Metric = Metric::counter(
    "beacon_collector_overloaded_total",
    &[],
    "Requests answered 503 because BEACON_MAX_IN_FLIGHT events already awaited acks.",
);
pub const COLLECTOR_UNCONFIRMED: Metric = Metric::counter(
    "beacon_collector_unconfirmed_total",
    &[],
    "Events answered 503 'may have been stored': JetStream took them but did not confirm in time.",
);
pub const COLLECTOR_RATE_LIMITED: Metric = Metric::counter(
    "beacon_collector_rate_limited_total",
    &[],
    "Requests answered 429 because their address exceeded BEACON_RATE_LIMIT.",
);

// Consumers (archiver and aggregator): the pull loop.
pub const CONSUMER_BATCH_DURATION: Metric = Metric::histogram(
    "beacon_consumer_batch_seconds",
    Unit::Seconds,
    SECONDS_BUCKETS,
    &["consumer"],
    "Time a consumer's handler took for one batch.",
);
pub const CONSUMER_BATCH_SIZE: Metric = Metric::histogram(
    "beacon_consumer_batch_size",
    Unit::Count,
    SIZE_BUCKETS,
    &["consumer"],
    "Messages per batch handed to a consumer's handler.",
);
pub const CONSUMER_MESSAGES: Metric = Metric::counter(
    "beacon_consumer_messages_total",
    &["consumer", "outcome"],
    "Messages a consumer finished, by outcome: ack, retry, dead_letter.",
);
pub const CONSUMER_RESTARTS: Metric = Metric::counter(
    "beacon_consumer_restarts_total",
    &["consumer"],
    "Times a consumer's pull loop stopped on an error and started again.",
);
pub const DEAD_LETTERED: Metric = Metric::counter(
    "beacon_dead_letters_total",
    &["consumer"],
    "Messages this process copied to the dead-letter stream.",
);

// Stream and consumer state, as JetStream reports it (sampled by the consumers).
pub const CONSUMER_PENDING: Metric = Metric::gauge(
    "beacon_consumer_pending",
    &["consumer"],
    "Messages in the stream the consumer has not been delivered yet.",
);
pub const CONSUMER_ACK_PENDING: Metric = Metric::gauge(
    "beacon_consumer_ack_pending",
    &["consumer"],
    "Messages delivered to the consumer and not acknowledged yet.",
);
pub const CONSUMER_REDELIVERED: Metric = Metric::gauge(
    "beacon_consumer_redelivered",
    &["consumer"],
    "Messages being delivered to the consumer again (ack timeout or retry).",
);
pub const CONSUMER_WAITING: Metric = Metric::gauge(
    "beacon_consumer_waiting",
    &["consumer"],
    "Pull requests waiting on the server for the consumer.",
);
pub const CONSUMER_LAG_SECONDS: Metric = Metric::gauge(
    "beacon_consumer_lag_seconds",
    &["consumer"],
    "Age of the oldest event in the stream the consumer has not acknowledged; 0 when it has acknowledged everything.",
)
.with_unit(Unit::Seconds);
pub const CONSUMER_COMPLETE_THROUGH: Metric = Metric::gauge(
    "beacon_consumer_complete_through_timestamp_seconds",
    &["consumer"],
    "Unix time at which the newest event of the consumer's unbroken acknowledged prefix was stored: what it produces is complete up to then.",
)
.with_unit(Unit::Seconds);
pub const CONSUMER_ACK_FLOOR: Metric = Metric::gauge(
    "beacon_consumer_ack_floor",
    &["consumer"],
    "Stream sequence up to which the consumer has acknowledged everything.",
);
pub const STREAM_MESSAGES: Metric = Metric::gauge(
    "beacon_stream_messages",
    &[],
    "Messages held by the events stream.",
);
pub const STREAM_BYTES: Metric = Metric::gauge(
    "beacon_stream_bytes",
    &[],
    "Bytes held by the events stream.",
)
.with_unit(Unit::Bytes);
pub const STREAM_LAST_SEQUENCE: Metric = Metric::gauge(
    "beacon_stream_last_sequence",
    &[],
    "Sequence of the newest message in the events stream.",
);
pub const DEAD_LETTERS_STORED: Metric = Metric::gauge(
    "beacon_dead_letters",
    &[],
    "Messages held by the dead-letter stream.",
);

// Archiver.
pub const ARCHIVER_INSERTED: Metric = Metric::counter(
    "beacon_archiver_inserted_total",
    &[],
    "Events written to MongoDB for the first time.",
);
pub const ARCHIVER_DUPLICATES: Metric = Metric::counter(
    "beacon_archiver_duplicates_total",
    &[],
    "Events MongoDB already held (redeliveries): counted as done, not written twice.",
);

// Aggregator.
pub const AGGREGATOR_FRESHNESS: Metric = Metric::histogram(
    "beacon_event_freshness_seconds",
    Unit::Seconds,
    FRESHNESS_BUCKETS,
    &[],
    "Time from the collector's acceptance of an event to the commit that puts it in the statistics the API reads.",
);
pub const AGGREGATOR_APPLIED: Metric = Metric::counter(
    "beacon_aggregator_applied_total",
    &[],
    "Events applied to the rollups for the first time.",
);
pub const AGGREGATOR_ALREADY_APPLIED: Metric = Metric::counter(
    "beacon_aggregator_already_applied_total",
    &[],
    "Events whose id was applied before (redeliveries, resends): skipped.",
);
pub const AGGREGATOR_LIVE_ERRORS: Metric = Metric::counter(
    "beacon_aggregator_live_errors_total",
    &[],
    "Batches whose live counters could not be written to Redis (the rollups went on).",
);
pub const AGGREGATOR_SESSIONS_CLOSED: Metric = Metric::counter(
    "beacon_aggregator_sessions_closed_total",
    &[],
    "Visits closed into the rollups after BEACON_SESSION_CLOSE_AFTER without events.",
);
pub const AGGREGATOR_SESSIONS_QUARANTINED: Metric = Metric::counter(
    "beacon_aggregator_sessions_quarantined_total",
    &[],
    "Visits PostgreSQL refused to close, set aside for `beacon sessions quarantined`.",
);
pub const AGGREGATOR_SESSIONS_REOPENED: Metric = Metric::counter(
    "beacon_aggregator_sessions_reopened_total",
    &[],
    "Closed visits reopened by a late event (their rollup rows are taken out and re-added).",
);
pub const AGGREGATOR_SESSION_CACHE_HITS: Metric = Metric::counter(
    "beacon_aggregator_session_cache_hits_total",
    &[],
    "Open visits found in the aggregator's memory.",
);
pub const AGGREGATOR_SESSION_CACHE_MISSES: Metric = Metric::counter(
    "beacon_aggregator_session_cache_misses_total",
    &[],
    "Open visits read from PostgreSQL because memory did not hold them.",
);

// API.
pub const API_CACHE: Metric = Metric::counter(
    "beacon_api_cache_total",
    &["result"],
    "Statistics answers served from the Redis cache (hit) or computed (miss).",
);
pub const API_SIGN_IN_FAILURES: Metric = Metric::counter(
    "beacon_api_sign_in_failures_total",
    &[],
    "Dashboard sign-ins refused for a wrong email or password.",
);
pub const API_SIGN_IN_THROTTLED: Metric = Metric::counter(
    "beacon_api_sign_in_throttled_total",
    &[],
    "Dashboard sign-ins answered 429 after too many failures from the address or for the account.",
);

/// Every metric above.
pub const ALL: &[Metric] = &[
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    COLLECTOR_ACCEPTED,
    COLLECTOR_DROPPED,
    COLLECTOR_OVERLOADED,
    COLLECTOR_UNCONFIRMED,
    COLLECTOR_RATE_LIMITED,
    CONSUMER_BATCH_DURATION,
    CONSUMER_BATCH_SIZE,
    CONSUMER_MESSAGES,
    CONSUMER_RESTARTS,
    DEAD_LETTERED,
    CONSUMER_PENDING,
    CONSUMER_ACK_PENDING,
    CONSUMER_REDELIVERED,
    CONSUMER_WAITING,
    CONSUMER_ACK_FLOOR,
    CONSUMER_LAG_SECONDS,
    CONSUMER_COMPLETE_THROUGH,
    STREAM_MESSAGES,
    STREAM_BYTES,
    STREAM_LAST_SEQUENCE,
    DEAD_LETTERS_STORED,
    ARCHIVER_INSERTED,
    ARCHIVER_DUPLICATES,
    AGGREGATOR_APPLIED,
    AGGREGATOR_ALREADY_APPLIED,
    AGGREGATOR_LIVE_ERRORS,
    AGGREGATOR_SESSIONS_CLOSED,
    AGGREGATOR_SESSIONS_QUARANTINED,
    AGGREGATOR_SESSIONS_REOPENED,
    AGGREGATOR_SESSION_CACHE_HITS,
    AGGREGATOR_SESSION_CACHE_MISSES,
    AGGREGATOR_FRESHNESS,
    API_CACHE,
    API_SIGN_IN_FAILURES,
    API_SIGN_IN_THROTTLED,
];
