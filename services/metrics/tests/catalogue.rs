//! The catalogue is well formed, and the code records only what it declares.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use beacon_metrics::{ALL, Kind};

#[test]
fn names_follow_prometheus_conventions_and_are_unique() {
    let mut seen = HashSet::new();
    for m in ALL {
        assert!(seen.insert(m.name), "{} declared twice", m.name);
        assert!(m.name.starts_with("beacon_"), "{}", m.name);
        assert!(
            m.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{}",
            m.name
        );
        assert_eq!(
            m.kind == Kind::Counter,
            m.name.ends_with("_total"),
            "{}: counters, and only counters, end in _total",
            m.name
        );
        assert!(
            m.help.ends_with('.') && m.help.len() > 20,
            "{}: help is a sentence",
            m.name
        );
        match m.kind {
            Kind::Histogram => {
                assert!(
                    m.buckets.windows(2).all(|w| w[0] < w[1]) && !m.buckets.is_empty(),
                    "{}: buckets rise",
                    m.name
                );
                if m.unit == metrics::Unit::Seconds {
                    assert!(m.name.ends_with("_seconds"), "{}", m.name);
                }
            }
            _ => assert!(
                m.buckets.is_empty(),
                "{}: buckets only for histograms",
                m.name
            ),
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !["target", "node_modules", ".git", ".services"].contains(&name.as_str()) {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// A metric recorded under a literal name bypasses the catalogue (no help, no unit, and the
/// operators' rules cannot be checked against it).
#[test]
fn no_metric_is_recorded_under_a_literal_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 50, "found only {} Rust files", files.len());
    let mut literal = Vec::new();
    // This file names the macros in strings.
    for file in files
        .iter()
        .filter(|f| !f.ends_with("services/metrics/tests/catalogue.rs"))
    {
        let text = std::fs::read_to_string(file).expect("read");
        for macro_name in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = text[at + macro_name.len()..].trim_start();
                if rest.starts_with('"') {
                    literal.push(format!(
                        "{}: {}",
                        file.display(),
                        &rest[..rest.len().min(60)]
                    ));
                }
            }
        }
    }
    assert!(
        literal.is_empty(),
        "metrics named by a literal:\n{}",
        literal.join("\n")
    );
}

/// `docs/metrics.md` is the catalogue's own table.
#[test]
fn the_metrics_document_is_generated_from_the_catalogue() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
    let expected = beacon_metrics::markdown();
    if std::env::var_os("BEACON_BLESS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/metrics.md");
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "docs/metrics.md differs from the catalogue: run BEACON_BLESS=1 cargo test -p beacon-metrics"
    );
}
