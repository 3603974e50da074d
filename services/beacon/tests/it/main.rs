//! Beacon's integration tests: one binary (links once), against the real NATS JetStream,
//! PostgreSQL, Redis and MongoDB-compatible servers, each test in its own namespace.
//!
//! `scripts/test` brings the servers up first; a test whose server is missing fails loudly.

mod aggregator_faults;
mod archiver_faults;
mod browser;
mod chaos;
mod chaos_fleet;
mod collector;
mod common;
mod consume;
mod dashboard_browser;
mod dataset;
mod dead_letters;
mod deployment;
mod duplicates;
mod e2e;
mod envelope_fuzz;
mod fuzz;
mod goals;
mod ground_truth;
mod hostile_corpus;
mod import;
mod import_formats;
mod lag_time;
mod live_counters;
mod owner_access;
mod pipeline_browser;
mod plausible_clients;
mod poison;
mod privacy;
mod publish_confirm;
mod redis_down;
mod replay;
mod schemathesis;
mod site_delete;
mod stream_settings;
mod truth_checks;
