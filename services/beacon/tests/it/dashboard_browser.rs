//! The dashboard in headless Chromium (driven by puppeteer-core from the npm lockfile): sign in,
//! the numbers shown equal the API's, a click on a source filters them, it fits a phone screen,
//! and a screenshot is saved (to `docs/dashboard.png` with `BEACON_WRITE_SCREENSHOT=1`).

use std::path::PathBuf;
use std::process::Command;

use chrono::{Days, Utc};

use crate::browser::chromium;
use crate::dataset::generate;
use crate::ground_truth::{TRUTH_PASSWORD, send_hits, start_pipeline, wait_applied};

/// Puppeteer wants the browser's full path.
pub fn absolute(program: PathBuf) -> String {
    let output = Command::new("which").arg(&program).output().expect("which");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_signs_in_and_the_dashboard_shows_the_apis_numbers() {
    let http = reqwest::Client::new();
    let pipeline = start_pipeline("dashboard", &http).await;
    // Local days up to the day before yesterday: New York's yesterday is still running until
    // 05:00 UTC today, and the collector refuses events from the future.
    let dataset = generate(11, Utc::now().date_naive() - Days::new(7), 6, 30);
    let counted = dataset.hits.iter().filter(|h| !h.bot).count();
    send_hits(&http, &pipeline.collector, &pipeline.tokens, &dataset.hits).await;
    wait_applied(&pipeline.ns.pg().await, counted).await;
    // A day of Plausible totals, imported: shown only when the owner switches imports on.
    let imported_day = (Utc::now().date_naive() - Days::new(2)).format("%Y%m%d");
    let imported = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "imported_visitors_{imported_day}_{imported_day}.csv"
    ));
    std::fs::write(
        &imported,
        format!(
            "date,visitors,pageviews,bounces,visits,visit_duration\n{},1000,2000,500,1200,60000\n",
            Utc::now().date_naive() - Days::new(2)
        ),
    )
    .expect("write the Plausible table");
    crate::common::beacon_ok(
        &pipeline.env,
        &[
            "import",
            "--format",
            "plausible-csv",
            "--site",
            "gt-kolkata.test",
            &imported.to_string_lossy(),
        ],
    );

    let npm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    assert!(
        npm.join("node_modules/puppeteer-core").exists(),
        "puppeteer-core missing: scripts/test runs npm ci in tests/npm"
    );
    let screenshot = if std::env::var("BEACON_WRITE_SCREENSHOT").is_ok_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
    };
    let _ = std::fs::remove_file(&screenshot);
    let output = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&npm)
        .env("BEACON_URL", &pipeline.api)
        .env("BEACON_EMAIL", "truth@example.com")
        .env("BEACON_PASSWORD", TRUTH_PASSWORD)
        .env("BEACON_SITE", "gt-kolkata.test")
        .env("BEACON_KEY", &pipeline.key)
        .env("CHROMIUM", absolute(chromium()))
        .env("SCREENSHOT", &screenshot)
        .env("PERIOD", "7d")
        .env("IMPORTED_VISITORS", "1000")
        .output()
        .expect("node must be installed (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "dashboard check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK visitors="), "{stdout}");
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "screenshot {} is {size} bytes",
        screenshot.display()
    );
}
