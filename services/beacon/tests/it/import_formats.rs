//! `beacon import` of other tools' exports, built from their documented formats: GoatCounter's CSV
//! export (version 2) imports as events and reads back as the numbers the rows imply.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::Command;

use chrono::{Days, NaiveDate, TimeZone, Utc};
use serde_json::Value;

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
