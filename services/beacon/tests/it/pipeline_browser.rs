//! The lag dashboard in headless Chromium (`tests/npm/pipeline.mjs`), as an operator: with the
//! aggregator stopped while events flow, its lag in time and pending count grow on the charts;
//! started again, they fall to zero; after a reload the charts still hold the last minutes. A
//! screenshot is saved (to `docs/pipeline.png` with `BEACON_WRITE_SCREENSHOT=1`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::browser::chromium;
use crate::common::{Beacon, beacon_ok};
use crate::dashboard_browser::absolute;
use crate::ground_truth::{TRUTH_PASSWORD, start_split_pipeline};
use crate::lag_time::send_pageviews;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_dashboard_shows_a_stopped_aggregator_fall_behind_and_catch_up() {
    let http = reqwest::Client::new();
    let mut pipeline = start_split_pipeline("pipeline_page", &http).await;
    beacon_ok(&pipeline.env, &["user", "operator", "truth@example.com"]);
    let mut aggregator = pipeline.roles.remove(2);
    assert_eq!(aggregator.what, "aggregator");
    aggregator.terminate();
    send_pageviews(&http, &pipeline.collector, "gt-utc.test", 60).await;

    let npm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    let screenshot = if std::env::var("BEACON_WRITE_SCREENSHOT").is_ok_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/pipeline.png")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pipeline.png")
    };
    let _ = std::fs::remove_file(&screenshot);
    let mut node = Command::new("node")
        .arg("pipeline.mjs")
        .current_dir(&npm)
        .env("BEACON_URL", &pipeline.api)
        .env("BEACON_EMAIL", "truth@example.com")
        .env("BEACON_PASSWORD", TRUTH_PASSWORD)
        .env("CHROMIUM", absolute(chromium()))
        .env("SCREENSHOT", &screenshot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed (scripts/test installs it)");
    let stdout = node.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            let behind = line.trim() == "BEHIND";
            seen.push(std::mem::take(&mut line));
            if behind {
                return (true, seen, reader);
            }
        }
        (false, seen, reader)
    })
    .await
    .expect("read node");
    let (behind, mut said, mut reader) = lines;
    let mut restarted = None;
    if behind {
        // The page saw the lag: the aggregator runs again, and events keep coming.
        restarted = Some(Beacon::spawn(&pipeline.env, &["aggregator"]));
        send_pageviews(&http, &pipeline.collector, "gt-utc.test", 10).await;
    }
    let output = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
        said.push(rest);
        let mut stderr = String::new();
        if let Some(mut e) = node.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        (node.wait().expect("node"), said.concat(), stderr)
    })
    .await
    .expect("node");
    drop(restarted);
    let (status, stdout, stderr) = output;
    assert!(
        status.success(),
        "pipeline page check failed:\n{stdout}\n{stderr}"
    );
    assert!(behind && stdout.contains("OK points="), "{stdout}");
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "screenshot {} is {size} bytes",
        screenshot.display()
    );
}
