//! Beacon benchmarks (see bench/README.md once they land).
