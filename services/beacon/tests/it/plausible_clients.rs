//! Third-party Plausible Stats API v1 clients, run unmodified against Beacon, and every number
//! they read must equal the ground truth of the dataset: `kctl-plausible` (PyPI, installed by
//! scripts/test into .services/kctl) exports breakdowns; `plausible-mcp` (PyPI, an MCP server
//! over the Stats API, in .services/plausible-mcp) reads the daily timeseries through its
//! `get_timeseries` tool, called over MCP's stdio transport by `tests/clients/plausible_mcp_timeseries.py`.
//! kctl-plausible also reads goals and their conversion rates (an `event:goal` breakdown).
//!
//! What could not be used, and why (so nobody tries again blindly): Airbyte's `source-plausible`
//! 0.1.14 validates `api_url` against a pattern no URL with a scheme matches, so it only ever talks
//! to plausible.io (and its CDK does not import on Python 3.11); `kctl-plausible`'s own `stats
//! timeseries` and `stats aggregate` commands crash in its output layer (`Output.table() got
//! multiple values for argument 'title'`) against any server, so only its export commands run.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use chrono::{Days, Utc};
use serde_json::{Value, json};

use crate::dataset::{ExpectedVisit, Hit, generate, local_midnight, metrics};
use crate::ground_truth::{Pipeline, send_hits, start_pipeline, wait_applied};
use crate::truth_checks::{
    conversion_rate, distinct_visitors, goal_of, labeller, reaches, site_truth,
};

fn client() -> String {
    std::env::var("BEACON_KCTL_PLAUSIBLE").unwrap_or_else(|_| {
        panic!(
            "BEACON_KCTL_PLAUSIBLE is not set: scripts/test installs kctl-plausible into \
             .services/kctl and sets it"
        )
    })
}

/// The virtualenv holding plausible-mcp and the MCP client library.
fn plausible_mcp() -> String {
    std::env::var("BEACON_PLAUSIBLE_MCP").unwrap_or_else(|_| {
        panic!(
            "BEACON_PLAUSIBLE_MCP is not set: scripts/test installs plausible-mcp into \
             .services/plausible-mcp and sets it"
        )
    })
}

/// plausible-mcp's `get_timeseries` answer for `site` and `range` (its JSON), the server talking
/// to Beacon's API with the test's key.
fn plausible_mcp_timeseries(pipeline: &Pipeline, site: &str, range: &str) -> Value {
    let venv = plausible_mcp();
    let driver = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/plausible_mcp_timeseries.py"
    );
    let output = Command::new(format!("{venv}/bin/python"))
        .args([driver, &format!("{venv}/bin/plausible-mcp"), site, range])
        .env("PLAUSIBLE_BASE_URL", &pipeline.api)
        .env("PLAUSIBLE_API_KEY", &pipeline.key)
        .env("DO_NOT_TRACK", "1")
        .output()
        .expect("run plausible-mcp");
    printed_json("plausible-mcp get_timeseries", &output)
}

/// What a client printed, as JSON; the test fails with its output if it failed or printed
/// something else.
fn printed_json(what: &str, output: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// Runs the client (profile `beacon`, its configuration in a home of the test's own) and returns
/// what it prints.
fn run(pipeline: &Pipeline, args: &[&str]) -> std::process::Output {
    let home = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&pipeline.ns.name);
    std::fs::create_dir_all(&home).expect("home");
    Command::new(client())
        .args(args)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .output()
        .expect("run kctl-plausible")
}

/// Runs a `stats` command with `--json` against Beacon's API and parses what it prints.
fn kctl(pipeline: &Pipeline, args: &[&str]) -> Value {
    let mut all = vec!["--json", "--quiet", "--profile", "beacon"];
    all.extend_from_slice(args);
    printed_json(&format!("kctl-plausible {args:?}"), &run(pipeline, &all))
}

/// The rows of a client answer, whether it prints `{"results": [...]}` or the bare list.
/// kctl's `export json` of a breakdown by `property`: its answer, and its rows by their `key`.
fn kctl_breakdown(
    pipeline: &Pipeline,
    site: &str,
    property: &str,
    metrics: &str,
    key: &str,
) -> (Value, BTreeMap<String, Value>) {
    let answer = kctl(
        pipeline,
        &[
            "export",
            "json",
            site,
            "--property",
            property,
            "--metrics",
            metrics,
        ],
    );
    let exported = rows(&answer)
        .into_iter()
        .map(|r| (r[key].as_str().unwrap_or_default().to_string(), r))
        .collect();
    (answer, exported)
}

fn rows(answer: &Value) -> Vec<Value> {
    answer
        .get("results")
        .unwrap_or(answer)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_plausible_client_reads_the_right_numbers() {
    client();
    plausible_mcp();
    let http = reqwest::Client::new();
    let pipeline = start_pipeline("kctl", &http).await;
    let first_day = Utc::now().date_naive() - Days::new(8);
    let dataset = generate(13, first_day, 4, 20);
    let counted = dataset.hits.iter().filter(|h| !h.bot).count();
    send_hits(&http, &pipeline.collector, &pipeline.tokens, &dataset.hits).await;
    wait_applied(&pipeline.ns.pg().await, counted).await;

    let init = run(
        &pipeline,
        &[
            "config",
            "init",
            "--name",
            "beacon",
            "--url",
            &pipeline.api,
            "--api-key",
            &pipeline.key,
        ],
    );
    assert!(
        init.status.success(),
        "config init: {}",
        String::from_utf8_lossy(&init.stderr)
    );

    let (site, tz) = ("gt-kolkata.test", chrono_tz::Asia::Kolkata);
    let label = labeller(&dataset);
    let truth = site_truth(&dataset, site, &label);
    // `export json` asks for `period=30d`: today and the 29 days before, in the site's zone.
    let today = Utc::now().with_timezone(&tz).date_naive();
    let from = local_midnight(tz, today - Days::new(29)).timestamp_millis();
    let to = local_midnight(tz, today + Days::new(1)).timestamp_millis();
    let (hits, visits) = truth.in_range(from, to);
    for (property, key) in [("visit:source", "source"), ("event:page", "page")] {
        let (answer, exported) =
            kctl_breakdown(&pipeline, site, property, "visitors,pageviews", key);
        let mut expected: BTreeMap<String, Vec<&Hit>> = BTreeMap::new();
        match property {
            "event:page" => {
                for h in hits.iter().copied().filter(|h| h.name != "engagement") {
                    expected.entry(h.path.clone()).or_default().push(h);
                }
                assert_eq!(exported.len(), expected.len(), "{answer}");
                for (page, group) in &expected {
                    let m = metrics(group, &[]);
                    assert_eq!(exported[page]["visitors"], m["visitors"], "{page}");
                    assert_eq!(exported[page]["pageviews"], m["pageviews"], "{page}");
                }
            }
            _ => {
                let mut by_source: BTreeMap<String, Vec<&ExpectedVisit>> = BTreeMap::new();
                for v in &visits {
                    let name = match v.props["visit:source"].as_str() {
                        "" => "Direct / None".to_string(),
                        other => other.to_string(),
                    };
                    by_source.entry(name).or_default().push(v);
                }
                assert_eq!(
                    exported.keys().collect::<Vec<_>>(),
                    by_source.keys().collect::<Vec<_>>(),
                    "{answer}"
                );
                for (source, group) in &by_source {
                    let visitors: BTreeSet<usize> = group.iter().map(|v| v.visitor).collect();
                    let pageviews: i64 = group.iter().map(|v| v.pageviews).sum();
                    assert_eq!(
                        exported[source]["visitors"],
                        json!(visitors.len()),
                        "{source}"
                    );
                    assert_eq!(exported[source]["pageviews"], json!(pageviews), "{source}");
                }
            }
        }
    }
    // Goals and their conversion rates, through the same client's breakdown export: the goals
    // the pipeline configured (an event and a page pattern), nothing else (`pageview` and
    // `Scrolled` are event names, not goals).
    let (answer, exported) = kctl_breakdown(
        &pipeline,
        site,
        "event:goal",
        "visitors,events,conversion_rate",
        "goal",
    );
    let everyone = distinct_visitors(hits.iter().copied());
    let mut by_goal: BTreeMap<String, Vec<&Hit>> = BTreeMap::new();
    for h in hits.iter().copied() {
        if let Some(goal) = goal_of(h) {
            by_goal.entry(goal).or_default().push(h);
        }
    }
    assert_eq!(
        exported.keys().collect::<Vec<_>>(),
        by_goal.keys().collect::<Vec<_>>(),
        "{answer}"
    );
    for (goal, group) in &by_goal {
        let converted = distinct_visitors(hits.iter().copied().filter(|h| reaches(h, goal)));
        assert_eq!(exported[goal]["visitors"], json!(converted), "{goal}");
        assert_eq!(exported[goal]["events"], json!(group.len()), "{goal}");
        assert_eq!(
            exported[goal]["conversion_rate"],
            conversion_rate(converted, everyone),
            "{goal}: {answer}"
        );
    }

    // plausible-mcp's get_timeseries: visitors per local day of the last 30 days.
    let answer = plausible_mcp_timeseries(&pipeline, site, "30d");
    let points = answer["timeseries"].as_array().cloned().unwrap_or_default();
    assert_eq!(points.len(), 30, "{answer}");
    let days_with_visitors = points.iter().filter(|p| p["visitors"] != json!(0)).count();
    assert!(
        days_with_visitors >= 3,
        "the dataset's days are in range: {answer}"
    );
    for (i, point) in points.iter().enumerate() {
        let day = today - Days::new(29) + Days::new(i as u64);
        let (hits, visits) = truth.in_range(
            local_midnight(tz, day).timestamp_millis(),
            local_midnight(tz, day + Days::new(1)).timestamp_millis(),
        );
        assert_eq!(
            point["date"],
            json!(day.format("%Y-%m-%d").to_string()),
            "{answer}"
        );
        assert_eq!(
            point["visitors"],
            metrics(&hits, &visits)["visitors"],
            "{day}: {answer}"
        );
    }
}
