//! `beacon import` of other tools' exports, built from their documented formats: GoatCounter's CSV
//! export (version 2) imports as events and reads back as the numbers the rows imply.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::Command;

use chrono::{Days, NaiveDate, TimeZone, Utc};
use serde_json::Value;

use crate::common::beacon_ok;
use crate::ground_truth::{Pipeline, start_pipeline_with, wait_applied, wait_visits_closed};
use crate::import::Scratch;

/// The header GoatCounter's export writes (the version glued to the first column's name).
const GOATCOUNTER_HEADER: &str = "2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,\
                                  Referrer scheme,Screen size,Location,FirstVisit,Date";

/// One GoatCounter row, as the fixture writes it and the test counts it.
struct GoatRow {
    path: String,
    event: bool,
    session: String,
    referrer: (&'static str, &'static str),
    browser: &'static str,
    system: &'static str,
    width: u32,
    location: &'static str,
    at: i64,
}

impl GoatRow {
    fn csv(&self) -> String {
        let date = chrono::DateTime::from_timestamp_millis(self.at)
            .expect("time")
            .format("%Y-%m-%dT%H:%M:%SZ");
        format!(
            "{},\"Title, with a comma\",{},,{},{},{},0,{},{},\"{},0,1\",{},1,{date}",
            self.path,
            u8::from(self.event),
            self.browser,
            self.system,
            self.session,
            self.referrer.0,
            self.referrer.1,
            self.width,
            self.location,
        )
    }
}

/// 3 days, 45 sessions of 1 to 4 page views (some with an event), sources of each scheme.
fn goatcounter_rows(first_day: NaiveDate) -> Vec<GoatRow> {
    let mut rows = Vec::new();
    for s in 0..45u32 {
        let day = first_day + Days::new(u64::from(s % 3));
        let start = Utc
            .from_utc_datetime(&day.and_hms_opt(8 + s % 12, s % 50, 7).expect("time"))
            .timestamp_millis();
        let referrer = match s % 4 {
            0 => ("Google", "g"),
            1 => ("www.reddit.com/r/rust", "h"),
            2 => ("", "o"),
            _ => ("newsletter", "c"),
        };
        let (browser, system, width) = match s % 3 {
            0 => ("Firefox 128", "macOS 10.15", 1920),
            1 => ("Chrome 133", "Android 14", 412),
            _ => ("Safari 17.4", "iOS 17.4", 800),
        };
        let location = ["NL-NH", "US", "DE", ""][(s % 4) as usize];
        let session = format!("{s:x}f3e-8e4f5c975b8fee06");
        for v in 0..=(s % 4) {
            rows.push(GoatRow {
                path: format!("/page-{v}"),
                event: false,
                session: session.clone(),
                referrer,
                browser,
                system,
                width,
                location,
                at: start + i64::from(v) * 120_000,
            });
        }
        if s % 5 == 0 {
            // An event a second after the session's last page view.
            rows.push(GoatRow {
                path: "signup-click".into(),
                event: true,
                session,
                referrer,
                browser,
                system,
                width,
                location,
                at: start + i64::from(s % 4) * 120_000 + 1_000,
            });
        }
    }
    rows
}

async fn stats(pipeline: &Pipeline, site: &str, query: &str) -> Value {
    let url = format!(
        "{}/api/v1/stats/{query}{}site_id={site}",
        pipeline.api,
        if query.contains('?') { "&" } else { "?" }
    );
    reqwest::Client::new()
        .get(url)
        .bearer_auth(&pipeline.key)
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json")
}

/// Breakdown rows as value → visitors.
fn by_value(body: &Value, key: &str) -> BTreeMap<String, i64> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r[key].as_str().expect("value").to_string(),
                r["visitors"].as_i64().expect("visitors"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goatcounter_export_imports_and_reads_back() {
    let http = reqwest::Client::new();
    let pipeline = start_pipeline_with("import_goat", &http, &[]).await;
    let site = "gt-utc.test";
    let first_day = Utc::now().date_naive() - Days::new(30);
    let rows = goatcounter_rows(first_day);
    let scratch = Scratch::new("goatcounter");
    // Two files: the first gzipped as GoatCounter writes it, the second plain with a bot's row
    // and a broken row.
    let (a, b) = rows.split_at(rows.len() / 2);
    let text = |rows: &[GoatRow]| {
        let mut out = format!("{GOATCOUNTER_HEADER}\n");
        for row in rows {
            out.push_str(&row.csv());
            out.push('\n');
        }
        out
    };
    let gz = scratch.0.join("goatcounter-export-a.csv.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::default(),
    );
    encoder.write_all(text(a).as_bytes()).expect("write");
    encoder.finish().expect("gzip");
    let mut plain = text(b);
    plain.push_str(&format!(
        "/,Home,0,,Chrome 1,Linux ,b0t-1,7,,o,\"0,0,1\",,1,{first_day}T10:00:00Z\n"
    ));
    plain.push_str("/,Home,0,,Chrome 1,Linux ,x-1,0,,o,\"0,0,1\",,1,yesterday\n");
    let csv = scratch.0.join("goatcounter-export-b.csv");
    std::fs::write(&csv, plain).expect("write");

    let run = || {
        Command::new(env!("CARGO_BIN_EXE_beacon"))
            .args([
                "import",
                "--format",
                "goatcounter-csv",
                "--site",
                site,
                "--json",
            ])
            .arg(&gz)
            .arg(&csv)
            .envs(&pipeline.env)
            .output()
            .expect("run import")
    };
    let output = run();
    assert_eq!(output.status.code(), Some(1), "a rejected row: exit code 1");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("json summary");
    let imported = rows.len() as i64;
    assert_eq!(summary["imported"], imported, "{summary}");
    assert_eq!(summary["bots_skipped"], 1, "{summary}");
    assert_eq!(summary["rejected"], 1, "{summary}");
    let rejection = &summary["rejections"][0];
    assert_eq!(rejection["line"], (b.len() + 3) as i64, "{summary}");
    assert!(
        rejection["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("Date:"),
        "{summary}"
    );
    let again: Value = serde_json::from_slice(&run().stdout).expect("json summary");
    assert_eq!(again["imported"], 0, "{again}");
    assert_eq!(again["duplicates_skipped"], imported, "{again}");

    let pool = pipeline.ns.pg().await;
    wait_applied(&pool, rows.len()).await;
    wait_visits_closed(&pool).await;

    // What the rows imply: a session is a visitor and (its rows minutes apart) one visit.
    let last_day = first_day + Days::new(2);
    let period = format!("period=custom&date={first_day},{last_day}");
    let sessions: BTreeSet<&str> = rows.iter().map(|r| r.session.as_str()).collect();
    let pageviews = rows.iter().filter(|r| !r.event).count() as i64;
    let events = rows.len() as i64;
    let body = stats(
        &pipeline,
        site,
        &format!("aggregate?{period}&metrics=visitors,visits,pageviews,events"),
    )
    .await;
    let value = |m: &str| body["results"][m]["value"].as_i64().expect(m);
    assert_eq!(value("visitors"), sessions.len() as i64, "{body}");
    assert_eq!(value("visits"), sessions.len() as i64, "{body}");
    assert_eq!(value("pageviews"), pageviews, "{body}");
    assert_eq!(value("events"), events, "{body}");

    let visitors_by = |f: &dyn Fn(&GoatRow) -> String| {
        let mut sets: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for r in &rows {
            sets.entry(f(r)).or_default().insert(&r.session);
        }
        sets.into_iter()
            .map(|(k, v)| (k, v.len() as i64))
            .collect::<BTreeMap<_, _>>()
    };
    let breakdown = |property: &str| {
        let query = format!("breakdown?{period}&property={property}&metrics=visitors");
        let pipeline = &pipeline;
        async move { stats(pipeline, site, &query).await }
    };
    let sources = by_value(&breakdown("visit:source").await, "source");
    let expected_sources = visitors_by(&|r| {
        match r.referrer.1 {
            "g" => "Google",
            "h" => "Reddit",
            "c" => "newsletter",
            _ => "Direct / None",
        }
        .to_string()
    });
    assert_eq!(sources, expected_sources);
    let countries = by_value(&breakdown("visit:country").await, "country");
    let expected_countries = visitors_by(&|r| match r.location.get(..2) {
        Some(country) => country.to_string(),
        None => "(none)".to_string(),
    });
    assert_eq!(countries, expected_countries);
    let os = by_value(&breakdown("visit:os").await, "os");
    let expected_os = visitors_by(&|r| {
        match r.system.split(' ').next().unwrap_or("") {
            "macOS" => "Mac",
            other => other,
        }
        .to_string()
    });
    assert_eq!(os, expected_os);
    let devices = by_value(&breakdown("visit:device").await, "device");
    let expected_devices = visitors_by(&|r| {
        match r.width {
            w if w < 768 => "Mobile",
            w if w < 1024 => "Tablet",
            _ => "Desktop",
        }
        .to_string()
    });
    assert_eq!(devices, expected_devices);
    let names = breakdown("event:name").await;
    let signups = names["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["name"] == "signup-click")
        .map(|r| r["visitors"].as_i64().expect("visitors"));
    let event_sessions: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.event)
        .map(|r| r.session.as_str())
        .collect();
    assert_eq!(signups, Some(event_sessions.len() as i64), "{names}");
    drop(pipeline);
}

/// Writes a zip of `(name, text)` files, as Plausible's export is.
fn zip_of(path: &std::path::Path, files: &[(&str, String)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).expect("create"));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, text) in files {
        zip.start_file(*name, options).expect("entry");
        zip.write_all(text.as_bytes()).expect("write");
    }
    zip.finish().expect("zip");
}

fn metric(body: &Value, name: &str) -> i64 {
    body["results"][name]["value"]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} in {body}"))
}

/// A Plausible export built from its documented layout imports as the imported layer: shown with
/// `with_imported=true` (saying that visitors are summed daily uniques), never mixed into the
/// numbers counted from events, skipped with Plausible's warning where a query cannot use it, and
/// the same after a second import.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plausible_export_imports_as_a_layer_shown_on_request() {
    let http = reqwest::Client::new();
    let pipeline = start_pipeline_with("import_plausible", &http, &[]).await;
    let site = "gt-utc.test";
    let (d1, d2) = (
        NaiveDate::from_ymd_opt(2024, 1, 1).expect("day"),
        NaiveDate::from_ymd_opt(2024, 1, 2).expect("day"),
    );
    let suffix = "20240101_20240102";
    let files = [
        (
            format!("imported_visitors_{suffix}.csv"),
            "\"date\",\"visitors\",\"pageviews\",\"bounces\",\"visits\",\"visit_duration\"\n\
             \"2024-01-01\",412,987,251,455,40713\n\
             \"2024-01-02\",530,1204,318,589,55120\n"
                .to_string(),
        ),
        (
            format!("imported_sources_{suffix}.csv"),
            "date,source,referrer,utm_source,utm_medium,utm_campaign,utm_content,utm_term,pageviews,visitors,visits,visit_duration,bounces\n\
             2024-01-01,,,,,,,,402,180,196,17230,110\n\
             2024-01-01,Google,google.com,,,,,,311,140,151,15020,84\n\
             2024-01-01,Newsletter,,newsletter,email,jan,,,274,92,108,8463,57\n\
             2024-01-02,Google,google.com,,,,,,600,300,320,30000,150\n\
             2024-01-02,Newsletter,,newsletter,email,jan,,,604,230,269,25120,168\n\
             2024-01-03,Google,google.com,,,,,,1,1,1,1,1\n"
                .to_string(),
        ),
        (
            // Columns in another order, one missing: matched by name, the missing one counts 0.
            format!("imported_browsers_{suffix}.csv"),
            "date,visitors,browser,browser_version,visits,bounces,pageviews\n\
             2024-01-01,300,Chrome,120.0,330,180,700\n\
             2024-01-01,112,Safari,17.2,125,71,287\n\
             2024-01-02,530,Chrome,121.0,589,318,1204\n"
                .to_string(),
        ),
        (
            format!("imported_custom_events_{suffix}.csv"),
            "date,name,link_url,path,visitors,events\n\
             2024-01-01,Signup,,,12,12\n\
             2024-01-01,Outbound Link: Click,https://github.com/x,,9,11\n\
             2024-01-02,Signup,,,20,25\n"
                .to_string(),
        ),
        ("notes.txt".to_string(), "not a table".to_string()),
    ];
    let scratch = Scratch::new("plausible");
    let zip = scratch.0.join("gt-utc_test_20240103.zip");
    let entries: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    zip_of(&zip, &entries);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_beacon"))
            .args([
                "import",
                "--format",
                "plausible-csv",
                "--site",
                site,
                "--json",
            ])
            .arg(&zip)
            .envs(&pipeline.env)
            .output()
            .expect("run import")
    };
    let output = run();
    assert_eq!(
        output.status.code(),
        Some(1),
        "a row off the file's days: exit 1"
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("json summary");
    assert_eq!(
        summary["tables"].as_array().map(Vec::len),
        Some(4),
        "{summary}"
    );
    assert_eq!(summary["rejected"], 2, "{summary}");
    let reasons = summary["rejections"].to_string();
    assert!(reasons.contains("notes.txt"), "{reasons}");
    assert!(reasons.contains("2024-01-03 is outside"), "{reasons}");

    let get = |query: String| {
        let pipeline = &pipeline;
        async move { stats(pipeline, site, &query).await }
    };
    let period = format!("period=custom&date={d1},{d2}");
    let all = "visitors,visits,pageviews,bounce_rate,visit_duration,events";
    let check_totals = |body: &Value| {
        assert_eq!(metric(body, "visitors"), 412 + 530, "{body}");
        assert_eq!(metric(body, "visits"), 455 + 589, "{body}");
        assert_eq!(metric(body, "pageviews"), 987 + 1204, "{body}");
        let visits = f64::from(455 + 589);
        let bounce = (f64::from(251 + 318) / visits * 100.0).round() as i64;
        assert_eq!(metric(body, "bounce_rate"), bounce, "{body}");
        let duration = (f64::from(40713 + 55120) / visits).round() as i64;
        assert_eq!(metric(body, "visit_duration"), duration, "{body}");
        assert_eq!(body["meta"]["imports_included"], true, "{body}");
        assert!(
            body["meta"]["imports_note"]
                .as_str()
                .unwrap_or("")
                .contains("summed"),
            "{body}"
        );
    };
    let with = get(format!(
        "aggregate?{period}&metrics={all}&with_imported=true"
    ))
    .await;
    check_totals(&with);
    let without = get(format!("aggregate?{period}&metrics={all}")).await;
    assert_eq!(metric(&without, "visitors"), 0, "never mixed in: {without}");
    assert_eq!(metric(&without, "pageviews"), 0, "{without}");
    assert!(without.get("meta").is_none(), "{without}");

    let sources = get(format!(
        "breakdown?{period}&property=visit:source&metrics=visitors,visits&with_imported=true"
    ))
    .await;
    assert_eq!(
        by_value(&sources, "source"),
        BTreeMap::from([
            ("Direct / None".to_string(), 180),
            ("Google".to_string(), 440),
            ("Newsletter".to_string(), 322),
        ]),
        "{sources}"
    );
    let medium = get(format!(
        "breakdown?{period}&property=visit:utm_medium&metrics=visitors&with_imported=true&filters=visit:utm_medium%3D%3Demail"
    ))
    .await;
    assert_eq!(
        by_value(&medium, "utm_medium"),
        BTreeMap::from([("email".to_string(), 322)])
    );
    let versions = get(format!(
        "breakdown?{period}&property=visit:browser_version&metrics=visitors&with_imported=true"
    ))
    .await;
    assert_eq!(
        by_value(&versions, "browser_version"),
        BTreeMap::from([
            ("120.0".to_string(), 300),
            ("121.0".to_string(), 530),
            ("17.2".to_string(), 112),
        ])
    );
    let links = get(format!(
        "breakdown?{period}&property=event:props:url&metrics=visitors,events&with_imported=true"
    ))
    .await;
    assert_eq!(
        links["results"][0]["url"], "https://github.com/x",
        "{links}"
    );
    assert_eq!(links["results"][0]["events"], 11, "{links}");
    // What the imported tables cannot answer is left out whole, with Plausible's warning.
    let crossed = get(format!(
        "breakdown?{period}&property=visit:source&metrics=visitors&with_imported=true&filters=visit:source%3D%3DGoogle"
    ))
    .await;
    assert_eq!(
        by_value(&crossed, "source").get("Google"),
        Some(&440),
        "{crossed}"
    );
    let props = get(format!(
        "breakdown?{period}&property=event:props:plan&metrics=visitors&with_imported=true"
    ))
    .await;
    assert_eq!(
        props["meta"]["imports_skip_reason"], "unsupported_query",
        "{props}"
    );
    assert!(
        props["warning"]
            .as_str()
            .unwrap_or("")
            .starts_with("Imported stats are not included")
    );
    let series = get(format!(
        "timeseries?{period}&metrics=visitors,pageviews&interval=date&with_imported=true"
    ))
    .await;
    assert_eq!(series["results"][0]["date"], d1.to_string(), "{series}");
    assert_eq!(series["results"][0]["visitors"], 412, "{series}");
    assert_eq!(series["results"][1]["pageviews"], 1204, "{series}");
    let hourly = get(format!(
        "timeseries?period=day&date={d1}&metrics=visitors&interval=hour&with_imported=true"
    ))
    .await;
    assert_eq!(
        hourly["meta"]["imports_skip_reason"], "unsupported_interval",
        "{hourly}"
    );
    assert_eq!(hourly["results"][0]["visitors"], 0, "{hourly}");
    let empty = get("aggregate?period=day&date=2023-06-01&with_imported=true".into()).await;
    assert_eq!(
        empty["meta"]["imports_skip_reason"], "no_imported_data",
        "{empty}"
    );

    // Importing the same export again replaces what the first import left: the same numbers.
    let again: Value = serde_json::from_slice(&run().stdout).expect("json summary");
    assert!(again["replaced"].as_i64().unwrap_or(0) > 0, "{again}");
    check_totals(
        &get(format!(
            "aggregate?{period}&metrics={all}&with_imported=true"
        ))
        .await,
    );

    // Numbers at the edge of range (a forged or broken export) saturate; they never fail the
    // query or overflow.
    let max = i64::MAX;
    let huge = scratch.0.join(format!("imported_visitors_{suffix}.csv"));
    std::fs::write(
        &huge,
        format!(
            "date,visitors,pageviews,bounces,visits,visit_duration\n\
             2024-01-01,{max},{max},{max},{max},{max}\n2024-01-02,{max},{max},{max},{max},{max}\n"
        ),
    )
    .expect("write");
    beacon_ok(
        &pipeline.env,
        &[
            "import",
            "--format",
            "plausible-csv",
            "--site",
            "gt-ny.test",
            &huge.to_string_lossy(),
        ],
    );
    let url = format!(
        "{}/api/v1/stats/aggregate?site_id=gt-ny.test&{period}&metrics={all}&with_imported=true",
        pipeline.api
    );
    let answer = reqwest::Client::new()
        .get(url)
        .bearer_auth(&pipeline.key)
        .send()
        .await
        .expect("api");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(metric(&body, "visitors"), max, "{body}");
    assert_eq!(metric(&body, "pageviews"), max, "{body}");
    drop(pipeline);
}

/// Beacon's Plausible export, imported into a fresh site, answers each day with imported rows as
/// the original answers it with its events: the export writes what Plausible's tables hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plausible_export_of_beacon_imports_back_day_by_day() {
    let http = reqwest::Client::new();
    let pipeline = start_pipeline_with("plausible_roundtrip", &http, &[]).await;
    let (site, copy) = ("gt-utc.test", "copy.test");
    crate::common::add_owned_site(&pipeline.env, copy, "UTC", "truth@example.com");
    let first_day = Utc::now().date_naive() - Days::new(30);
    let last_day = first_day + Days::new(2);
    let rows = goatcounter_rows(first_day);
    let scratch = Scratch::new("plausible-roundtrip");
    let mut text = format!("{GOATCOUNTER_HEADER}\n");
    for row in &rows {
        text.push_str(&row.csv());
        text.push('\n');
    }
    let csv = scratch.0.join("goatcounter.csv");
    std::fs::write(&csv, text).expect("write");
    let csv_arg = csv.to_string_lossy().to_string();
    crate::common::beacon_ok(
        &pipeline.env,
        &[
            "import",
            "--format",
            "goatcounter-csv",
            "--site",
            site,
            &csv_arg,
        ],
    );
    let pool = pipeline.ns.pg().await;
    wait_applied(&pool, rows.len()).await;
    wait_visits_closed(&pool).await;

    let zip = scratch.0.join("export.zip");
    let zip_arg = zip.to_string_lossy().to_string();
    let (since, until) = (first_day.to_string(), last_day.to_string());
    crate::common::beacon_ok(
        &pipeline.env,
        &[
            "export",
            "--format",
            "plausible-csv",
            "--site",
            site,
            "--since",
            &since,
            "--until",
            &until,
            "-o",
            &zip_arg,
        ],
    );
    crate::common::beacon_ok(
        &pipeline.env,
        &[
            "import",
            "--format",
            "plausible-csv",
            "--site",
            copy,
            &zip_arg,
        ],
    );

    let visit = "visitors,visits,pageviews,bounce_rate,visit_duration";
    // Versions, referrers and UTM tags are not compared: Beacon keeps them apart from the browser
    // or source they belong with, so its export leaves those columns empty.
    let breakdowns: [(&str, &str, &str); 9] = [
        ("visit:source", "source", visit),
        ("visit:entry_page", "entry_page", visit),
        ("visit:exit_page", "exit_page", visit),
        ("visit:country", "country", visit),
        ("visit:device", "device", visit),
        ("visit:browser", "browser", visit),
        ("visit:os", "os", visit),
        ("event:page", "page", "visitors,pageviews"),
        ("event:name", "name", "visitors,events"),
    ];
    let mut compared = 0;
    for day in first_day.iter_days().take(3) {
        let period = format!("period=day&date={day}");
        let original = stats(
            &pipeline,
            site,
            &format!("aggregate?{period}&metrics={visit}"),
        )
        .await;
        let imported = stats(
            &pipeline,
            copy,
            &format!("aggregate?{period}&metrics={visit}&with_imported=true"),
        )
        .await;
        assert!(metric(&original, "visitors") > 0, "{original}");
        assert_eq!(original["results"], imported["results"], "{day}");
        compared += 5;
        for (property, key, metrics) in breakdowns {
            let query = format!("breakdown?{period}&property={property}&metrics={metrics}");
            let original = stats(&pipeline, site, &query).await;
            let imported = stats(&pipeline, copy, &format!("{query}&with_imported=true")).await;
            let rows = |body: &Value| -> BTreeMap<String, Value> {
                body["results"]
                    .as_array()
                    .expect("results")
                    .iter()
                    // Pages where only events happened are not in Plausible's pages table.
                    .filter(|r| property != "event:page" || r["pageviews"] != 0)
                    // The name of page views is not a custom event.
                    .filter(|r| r[key] != "pageview")
                    // Plausible's export leaves unknown countries out.
                    .filter(|r| property != "visit:country" || r[key] != "(none)")
                    .map(|r| (r[key].as_str().unwrap_or("").to_string(), r.clone()))
                    .collect()
            };
            let expected = rows(&original);
            assert!(!expected.is_empty(), "{property} on {day}: {original}");
            assert_eq!(expected, rows(&imported), "{property} on {day}");
            compared += expected.len() * metrics.split(',').count();
        }
    }
    // Over the three days page views add up; visitors can only be summed daily uniques.
    let period = format!("period=custom&date={first_day},{last_day}");
    let original = stats(
        &pipeline,
        site,
        &format!("aggregate?{period}&metrics={visit}"),
    )
    .await;
    let imported = stats(
        &pipeline,
        copy,
        &format!("aggregate?{period}&metrics={visit}&with_imported=true"),
    )
    .await;
    assert_eq!(
        metric(&original, "pageviews"),
        metric(&imported, "pageviews")
    );
    assert_eq!(metric(&original, "visits"), metric(&imported, "visits"));
    assert!(metric(&imported, "visitors") >= metric(&original, "visitors"));
    assert!(compared > 200, "{compared} numbers compared");
    drop(pipeline);
}
