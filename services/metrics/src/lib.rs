//! Every metric Beacon exports, declared once: name, kind, unit, help, labels and (for
//! histograms) buckets. Code records through these constants (`metrics::counter!(ACCEPTED.name)`),
//! the binary describes them all at start, and the operators' rules and dashboards are checked
//! against this list: a name cannot drift between the code, `/metrics` and `deploy/`.

mod catalogue;

pub use catalogue::*;

/// What a metric measures over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// A current value.
    Gauge,
    /// A distribution of observations, in `buckets`.
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: metrics::Unit,
    pub help: &'static str,
    /// Label names the metric carries (values vary).
    pub labels: &'static [&'static str],
    /// Upper bounds of the histogram's buckets; empty for counters and gauges.
    pub buckets: &'static [f64],
}

impl Metric {
    const fn new(
        name: &'static str,
        kind: Kind,
        unit: metrics::Unit,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            unit,
            help,
            labels,
            buckets: &[],
        }
    }

    pub const fn counter(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self::new(name, Kind::Counter, metrics::Unit::Count, labels, help)
    }

    pub const fn gauge(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self::new(name, Kind::Gauge, metrics::Unit::Count, labels, help)
    }

    pub const fn histogram(
        name: &'static str,
        unit: metrics::Unit,
        buckets: &'static [f64],
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self {
            buckets,
            ..Self::new(name, Kind::Histogram, unit, labels, help)
        }
    }

    pub const fn with_unit(self, unit: metrics::Unit) -> Self {
        Self { unit, ..self }
    }
}

/// Registers the help text and unit of every metric with the installed recorder.
pub fn describe_all() {
    for m in ALL {
        let (name, unit, help) = (m.name, m.unit, m.help);
        match m.kind {
            Kind::Counter => metrics::describe_counter!(name, unit, help),
            Kind::Gauge => metrics::describe_gauge!(name, unit, help),
            Kind::Histogram => metrics::describe_histogram!(name, unit, help),
        }
    }
}

/// The metric named `name`, if Beacon exports it.
pub fn find(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}

/// The catalogue as a Markdown table (`docs/metrics.md` is this, checked by a test).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Metrics\n\nEvery service exports these on its admin listener (`BEACON_ADMIN_ADDR`, \
         `GET /metrics`, Prometheus text format). Generated from `services/metrics/src/catalogue.rs`; \
         `BEACON_BLESS=1 cargo test -p beacon-metrics` rewrites this file.\n\n\
         | name | kind | unit | labels | meaning |\n|---|---|---|---|---|\n",
    );
    for m in ALL {
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let labels = m
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out += &format!(
            "| `{}` | {kind} | {} | {labels} | {} |\n",
            m.name,
            m.unit.as_str(),
            m.help
        );
    }
    out
}
