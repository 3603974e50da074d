//! Logging and the Prometheus recorder. Installed by the binary, never by a library, so tests can
//! install their own recorder.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Human-readable logs in a terminal, JSON lines when asked; level from `RUST_LOG` (default info).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn,refinery_core=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("tracing already initialised");
    }
}

/// Installs the global Prometheus recorder: every histogram with its catalogued buckets, every
/// metric described (help and unit) from the catalogue.
pub fn install_prometheus() -> Result<PrometheusHandle, String> {
    let mut builder = PrometheusBuilder::new();
    for metric in beacon_metrics::ALL.iter().filter(|m| !m.buckets.is_empty()) {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(metric.name.into()), metric.buckets)
            .map_err(|e| e.to_string())?;
    }
    let handle = builder.install_recorder().map_err(|e| e.to_string())?;
    beacon_metrics::describe_all();
    Ok(handle)
}
