//! The operators' files under `deploy/` stay true to the code: the Prometheus alert rules load and
//! pass their unit tests (`promtool`, which the test command installs), the scrape configuration
//! loads, the Grafana dashboard is a dashboard, and every metric they name is one Beacon exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use beacon_metrics::{ALL, Kind};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn promtool(args: &[&str]) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .expect("promtool must be installed (scripts/test installs Debian's prometheus package)");
    assert!(
        output.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_load_and_pass_their_tests() {
    promtool(&["check", "rules", "rules.yml"]);
    promtool(&["test", "rules", "rules_test.yml"]);
}

#[test]
fn the_scrape_configuration_loads() {
    // It names the rules where the compose file mounts them; checked here beside the file.
    let config = std::fs::read_to_string(deploy().join("prometheus/prometheus.yml")).expect("read");
    let rules = deploy().join("prometheus/rules.yml");
    let local = config.replace("/etc/prometheus/rules.yml", &rules.to_string_lossy());
    let copy = std::env::temp_dir().join(format!("beacon-prometheus-{}.yml", std::process::id()));
    std::fs::write(&copy, local).expect("write");
    promtool(&["check", "config", &copy.to_string_lossy()]);
    let _ = std::fs::remove_file(copy);
}

/// Every `beacon_…` series a rule or a dashboard reads, with a histogram's `_bucket`, `_sum` and
/// `_count` series named by their histogram.
fn metrics_named(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("beacon_") {
        let start = at + found;
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(text.len() - start);
        let before = start.checked_sub(1).map(|i| bytes[i]);
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            names.insert(text[start..end].to_string());
        }
        at = end;
    }
    names
}

fn exported(name: &str) -> bool {
    ALL.iter().any(|m| {
        m.name == name
            || (m.kind == Kind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(m.name)))
    })
}

#[test]
fn the_rules_and_the_dashboard_name_only_exported_metrics() {
    let rules = std::fs::read_to_string(deploy().join("prometheus/rules.yml")).expect("read");
    let dashboard =
        std::fs::read_to_string(deploy().join("grafana/dashboards/beacon.json")).expect("read");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{} panels", panels.len());
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{target}"
            );
        }
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
    }
    for (file, text) in [("rules.yml", &rules), ("beacon.json", &dashboard)] {
        let names = metrics_named(text);
        assert!(
            names.contains("beacon_consumer_lag_seconds"),
            "{file} reads no lag: {names:?}"
        );
        let unknown: Vec<&String> = names.iter().filter(|n| !exported(n)).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics Beacon does not export: {unknown:?}"
        );
    }
    assert!(metrics_named("x beacon_a_total{y} zbeacon_b").len() == 1);
    assert!(!exported("beacon_nonexistent_total"));
    assert!(exported("beacon_event_freshness_seconds_bucket"));
}
