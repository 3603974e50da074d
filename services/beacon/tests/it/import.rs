//! `beacon import` against the ground truth: NDJSON history over 90 days goes through the stream
//! like live traffic and every API number equals what the test computes from the file; importing
//! again, or after a kill halfway, changes nothing; bad lines are reported and the rest imported.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{Days, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};

use crate::common::{beacon_ok, eventually};
use crate::dataset::{Hit, SITES, generate};
use crate::ground_truth::{Pipeline, count, start_pipeline_with, wait_applied, wait_visits_closed};
use crate::replay::stored_state;
use crate::truth_checks::verify_days;

/// A scratch directory removed at the end.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "beacon-{label}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The dataset's hits of `site` as NDJSON import lines: the `/track` body, the visitor as an
/// opaque string (the dataset's visitor is one person on every day), every other line without
/// its id (derived from the line by the import).
fn ndjson_of(hits: &[Hit], site: &str) -> String {
    let mut out = String::new();
    for (i, hit) in hits.iter().filter(|h| h.site == site).enumerate() {
        let mut line = hit.body.clone();
        line["visitor"] = json!(format!("visitor-{}", hit.visitor));
        if i % 2 == 0 {
            line.as_object_mut().map(|o| o.remove("id"));
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

fn import_json(pipeline: &Pipeline, file: &Path, site: &str) -> Value {
    let said = beacon_ok(
        &pipeline.env,
        &["import", &file.to_string_lossy(), "--site", site, "--json"],
    );
    serde_json::from_str(&said).expect("a JSON summary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninety_days_of_ndjson_import_exactly_once_even_twice_or_killed() {
    let http = reqwest::Client::new();
    let pipeline = start_pipeline_with("import", &http, &[]).await;
    let first_day = Utc::now().date_naive() - Days::new(95);
    let dataset = generate(20261206, first_day, 90, 130);
    let counted = dataset.hits.iter().filter(|h| !h.bot).count();
    eprintln!("{} lines, {counted} counted", dataset.hits.len());
    let scratch = Scratch::new("import");
    let files: HashMap<&str, PathBuf> = SITES
        .iter()
        .map(|(site, _)| {
            (
                *site,
                write(
                    &scratch.0,
                    &format!("{site}.ndjson"),
                    &ndjson_of(&dataset.hits, site),
                ),
            )
        })
        .collect();
    let pool = pipeline.ns.pg().await;
    let started = std::time::Instant::now();

    // The first site's import is killed halfway, then run again to the end. Held to 200 events
    // a second (5 s a batch) and stopped once its first batch is in, it is still running while
    // operators look, however fast the machine.
    let (first, _) = SITES[0];
    let mut child = Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(["import", &files[first].to_string_lossy(), "--site", first])
        .args(["--max-rate", "200"])
        .envs(&pipeline.env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn import");
    let lines_of_first = dataset
        .hits
        .iter()
        .filter(|h| h.site == first && !h.bot)
        .count();
    assert!(
        lines_of_first > 2_000,
        "{lines_of_first} lines: more than two batches"
    );
    eventually(
        "the import to be partly done",
        Duration::from_secs(120),
        || async {
            let n = count(&pool, "SELECT count(*) FROM imported_events").await?;
            (n > 0).then_some(())
        },
    )
    .await;
    let stopped = Command::new("kill")
        .args(["-STOP", &child.id().to_string()])
        .status()
        .expect("kill -STOP");
    assert!(stopped.success(), "stop the import");
    // While it runs, operators see it: `beacon lag` and /api/pipeline.
    beacon_ok(&pipeline.env, &["user", "operator", "truth@example.com"]);
    let lag: Value =
        serde_json::from_str(&beacon_ok(&pipeline.env, &["lag", "--json"])).expect("lag JSON");
    let running = &lag["backfills"][0];
    assert_eq!(
        (
            running["kind"].as_str(),
            running["site"].as_str(),
            running["unit"].as_str()
        ),
        (Some("import"), Some(first), Some("bytes")),
        "{lag}"
    );
    let shown: Value = http
        .get(format!("{}/api/pipeline", pipeline.api))
        .bearer_auth(&pipeline.key)
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    assert_eq!(
        shown["backfills"][0]["site"].as_str(),
        Some(first),
        "{shown}"
    );
    assert!(shown["backfills"][0]["total"].as_i64() > Some(0), "{shown}");
    // Another owner, not an operator, does not learn which site is being imported.
    crate::owner_access::add_user_with_password(
        &pipeline.env,
        "other@example.com",
        "another long password",
    );
    let other_key = beacon_ok(
        &pipeline.env,
        &["key", "create", "--user", "other@example.com"],
    );
    let seen = http
        .get(format!("{}/api/pipeline", pipeline.api))
        .bearer_auth(other_key.trim())
        .send()
        .await
        .expect("api");
    assert_eq!(seen.status(), 403);
    child.kill().expect("kill the import");
    let _ = child.wait();
    let partly = count(&pool, "SELECT count(*) FROM imported_events")
        .await
        .expect("count");
    assert!(
        (partly as usize) < lines_of_first,
        "the import was killed before its end ({partly} of {lines_of_first})"
    );
    let resumed = import_json(&pipeline, &files[first], first);
    assert_eq!(resumed["duplicates_skipped"], json!(partly), "{resumed}");
    assert_eq!(
        resumed["imported"],
        json!(lines_of_first as i64 - partly),
        "{resumed}"
    );

    for &(site, _) in &SITES[1..] {
        let summary = import_json(&pipeline, &files[site], site);
        let lines = dataset.hits.iter().filter(|h| h.site == site);
        let bots = lines.clone().filter(|h| h.bot).count();
        assert_eq!(
            summary["imported"],
            json!(lines.count() - bots),
            "{summary}"
        );
        assert_eq!(summary["bots_skipped"], json!(bots), "{summary}");
        assert_eq!(summary["rejected"], json!(0), "{summary}");
    }
    eprintln!("imported after {:.0?}", started.elapsed());
    wait_applied(&pool, counted).await;
    wait_visits_closed(&pool).await;
    eprintln!("applied after {:.0?}", started.elapsed());
    // The killed run's row goes stale; the finished runs removed theirs.
    eventually(
        "no backfill shown running",
        Duration::from_secs(90),
        || async {
            let lag: Value =
                serde_json::from_str(&beacon_ok(&pipeline.env, &["lag", "--json"])).ok()?;
            (lag["backfills"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;
    // Every range spanning days, and one single day in six (with its hourly series).
    let numbers = verify_days(
        &http,
        &pipeline.api,
        &pipeline.key,
        &dataset,
        "after the import",
        true,
        |i| i % 6 == 0 || i + 2 >= dataset.days,
    )
    .await;
    eprintln!("{numbers} numbers checked after {:.0?}", started.elapsed());

    // Importing every file again, long after the stream's duplicate window: nothing changes.
    let before = stored_state(&pool).await;
    for &(site, _) in SITES {
        let again = import_json(&pipeline, &files[site], site);
        assert_eq!(again["imported"], json!(0), "{again}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM applied_events").await,
        Some(counted as i64)
    );
    assert_eq!(
        stored_state(&pool).await,
        before,
        "a second import changes nothing"
    );
    drop(pipeline);
}

/// Good lines are imported whatever lines sit between them; the bad ones are reported by line
/// with the field, and the exit code says so. And what "visitors" means for history hashed from
/// address and user agent: the same person is one visitor within a day and a visit across
/// midnight goes on, but two days count two visitors (as the collector's daily salt does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_reported_and_address_visitors_are_per_day() {
    let http = reqwest::Client::new();
    let pipeline = start_pipeline_with("import_lines", &http, &[]).await;
    let (site, _) = SITES[0];
    let day: NaiveDate = Utc::now().date_naive() - Days::new(20);
    let at = |d: NaiveDate, h: u32, m: u32| {
        Utc.from_utc_datetime(&d.and_hms_opt(h, m, 0).expect("time"))
            .timestamp_millis()
    };
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";
    let line = |ip: &str, path: &str, ts: i64| {
        json!({"url": format!("https://{site}{path}"), "timestamp": ts, "ip": ip,
               "user_agent": firefox})
        .to_string()
    };
    let next = day + Days::new(1);
    let mut lines = vec![
        line("192.0.2.1", "/", at(day, 10, 0)),
        "{not json".to_string(),
        line("192.0.2.2", "/", at(day, 10, 5)),
        json!({"url": format!("https://{site}/"), "ip": "192.0.2.9", "user_agent": firefox}).to_string(),
        line("192.0.2.1", "/b", at(day, 10, 20)),
        json!({"url": "not a url", "timestamp": at(day, 11, 0), "visitor": "x"}).to_string(),
        // One visit across midnight (UTC, the site's zone): 23:50 and 00:10.
        line("192.0.2.3", "/late", at(day, 23, 50)),
        line("192.0.2.3", "/later", at(next, 0, 10)),
        json!({"site": "other.example", "url": format!("https://{site}/"), "timestamp": at(day, 12, 0), "visitor": "x"}).to_string(),
        line("192.0.2.1", "/", at(next, 15, 0)),
        line("192.0.2.2", "/", at(next, 15, 0)),
        json!({"url": format!("https://{site}/"), "timestamp": at(day, 12, 0), "visitor": "x", "colour": "red"}).to_string(),
        json!({"url": format!("https://{site}/"), "timestamp": at(day, 12, 0), "ip": "192.0.2.8",
               "user_agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}).to_string(),
        "x".repeat(70_000),
    ];
    lines.push(String::from_utf8_lossy(&[0xff, 0xfe]).to_string());
    let scratch = Scratch::new("import-lines");
    let mut text = lines.join("\n");
    text.push('\n');
    let file = write(&scratch.0, "mixed.ndjson", &text);
    // A line that is not UTF-8 at all.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .expect("open")
        .write_all(b"{\"url\":\"\xff\"}\n")
        .expect("append");
    let file_arg = file.to_string_lossy().to_string();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_beacon"))
            .args(["import", &file_arg, "--site", site])
            .envs(&pipeline.env)
            .output()
            .expect("run import")
    };
    let output = run();
    assert_eq!(output.status.code(), Some(1), "rejected lines: exit code 1");
    let report = String::from_utf8_lossy(&output.stdout).to_string();
    for expected in [
        "16 lines read, 7 events imported, 0 imported before (skipped), 1 bots skipped, 8 rejected",
        ":2: ",
        ":4: timestamp: is required",
        ":6: url: ",
        ":9: site: is other.example, but this import is for gt-utc.test",
        ":12: ",
        "colour",
        ":14: is longer than 65536 bytes",
        ":15: ",
        ":16: is not UTF-8",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing from:\n{report}"
        );
    }
    let again = String::from_utf8_lossy(&run().stdout).to_string();
    assert!(
        again.contains("0 events imported, 7 imported before (skipped)"),
        "{again}"
    );
    let pool = pipeline.ns.pg().await;
    wait_applied(&pool, 7).await;
    wait_visits_closed(&pool).await;

    let stats = |period: String| {
        let http = http.clone();
        let url = format!(
            "{}/api/v1/stats/aggregate?site_id={site}&{period}&metrics=visitors,visits,pageviews",
            pipeline.api
        );
        let key = pipeline.key.clone();
        async move {
            let body: Value = http
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("api")
                .json()
                .await
                .expect("json");
            let value = |m: &str| body["results"][m]["value"].as_i64().expect(m);
            (value("visitors"), value("visits"), value("pageviews"))
        }
    };
    // Day one: three people, three visits (.1's 10:00 and 10:20 are one), the midnight visit
    // counted on the day it starts.
    assert_eq!(stats(format!("period=day&date={day}")).await, (3, 3, 4));
    assert_eq!(stats(format!("period=day&date={next}")).await, (3, 2, 3));
    // Two days: six visitors — an address and user agent hash with each day's salt, so the same
    // person on two days is two visitors, as with live traffic; the midnight visit is one visit.
    assert_eq!(
        stats(format!("period=custom&date={day},{next}")).await,
        (6, 5, 7)
    );
    drop(pipeline);
}

/// Owners own their data: the ground-truth dataset sent live, exported from the archive, and
/// imported into a fresh namespace answers every Stats API number the same (both equal the truth).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_a_fresh_namespace_answers_the_same() {
    let http = reqwest::Client::new();
    let source = start_pipeline_with("export_src", &http, &[]).await;
    let first_day = Utc::now().date_naive() - Days::new(10);
    let dataset = generate(20261207, first_day, 3, 30);
    let counted = dataset.hits.iter().filter(|h| !h.bot).count();
    crate::ground_truth::send_hits(&http, &source.collector, &source.tokens, &dataset.hits).await;
    let pool = source.ns.pg().await;
    wait_applied(&pool, counted).await;
    let archive = source.ns.archive().await;
    eventually(
        "the archive to hold every event",
        Duration::from_secs(120),
        || async { (crate::common::archived_ids(&archive).await.len() == counted).then_some(()) },
    )
    .await;
    wait_visits_closed(&pool).await;
    verify_days(
        &http,
        &source.api,
        &source.key,
        &dataset,
        "the source",
        true,
        |_| true,
    )
    .await;

    let scratch = Scratch::new("export");
    let (since, until) = (
        (first_day - Days::new(1)).to_string(),
        (first_day + Days::new(u64::from(dataset.days) + 1)).to_string(),
    );
    let target = start_pipeline_with("export_dst", &http, &[]).await;
    for &(site, _) in SITES {
        let file = scratch.0.join(format!("{site}.ndjson"));
        let file_arg = file.to_string_lossy().to_string();
        beacon_ok(
            &source.env,
            &[
                "export", "--site", site, "--since", &since, "--until", &until, "-o", &file_arg,
            ],
        );
        let text = std::fs::read_to_string(&file).expect("exported file");
        assert!(
            !text.contains("\"ip\"") && !text.contains("Mozilla"),
            "no address or user agent leaves"
        );
        let summary = import_json(&target, &file, site);
        assert_eq!(summary["rejected"], json!(0), "{summary}");
    }
    let target_pool = target.ns.pg().await;
    wait_applied(&target_pool, counted).await;
    wait_visits_closed(&target_pool).await;
    verify_days(
        &http,
        &target.api,
        &target.key,
        &dataset,
        "exported and imported",
        true,
        |_| true,
    )
    .await;
    drop(target);
    drop(source);
}
