//! Lag as users feel it: with the aggregator stopped while events flow, `/api/pipeline` shows its
//! lag in time and its pending count grow (while the running archiver stays caught up); started
//! again, the aggregator catches up and its statistics are complete through the last event.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Beacon, beacon_ok, eventually};
use crate::ground_truth::start_split_pipeline;

/// The consumer of `/api/pipeline` whose name ends with `kind`.
fn consumer<'a>(pipeline: &'a Value, kind: &str) -> &'a Value {
    pipeline["consumers"]
        .as_array()
        .expect("consumers")
        .iter()
        .find(|c| c["name"].as_str().is_some_and(|n| n.ends_with(kind)))
        .unwrap_or_else(|| panic!("no {kind} consumer in {pipeline}"))
}

/// `n` page views of `site` through the collector, each answered `202`.
pub async fn send_pageviews(http: &reqwest::Client, collector: &str, site: &str, n: usize) {
    for i in 0..n {
        let answer = http
            .post(format!("{collector}/track"))
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Firefox/130.0",
            )
            .json(&json!({"url": format!("https://{site}/p{i}")}))
            .send()
            .await
            .expect("collector");
        assert_eq!(answer.status(), 202);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_aggregators_lag_grows_in_time_and_falls_when_it_runs() {
    let http = reqwest::Client::new();
    let mut pipeline = start_split_pipeline("lag_time", &http).await;
    beacon_ok(&pipeline.env, &["user", "operator", "truth@example.com"]);
    let state = || {
        let (http, url, key) = (
            http.clone(),
            format!("{}/api/pipeline", pipeline.api),
            pipeline.key.clone(),
        );
        async move {
            let response = http.get(url).bearer_auth(key).send().await.ok()?;
            response.json::<Value>().await.ok()
        }
    };

    let mut aggregator = pipeline.roles.remove(2);
    assert_eq!(aggregator.what, "aggregator");
    aggregator.terminate();
    let sent_from = chrono::Utc::now().timestamp_millis();
    send_pageviews(&http, &pipeline.collector, "gt-utc.test", 40).await;
    let behind = eventually(
        "the aggregator's lag to reach 3 s",
        Duration::from_secs(30),
        || async {
            let state = state().await?;
            let aggregator = consumer(&state, "aggregator");
            let lag = aggregator["lag_seconds"].as_f64()?;
            (lag >= 3.0 && aggregator["pending"].as_u64()? >= 40).then_some(state)
        },
    )
    .await;
    // The server's history (sampled every 5 s) has caught the lag too.
    eventually(
        "a stored sample with the lag",
        Duration::from_secs(30),
        || async {
            let history: Value = http
                .get(format!("{}/api/pipeline/history", pipeline.api))
                .bearer_auth(&pipeline.key)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            history["samples"]
                .as_array()?
                .iter()
                .any(|s| consumer(s, "aggregator")["lag_seconds"].as_f64() >= Some(2.0))
                .then_some(())
        },
    )
    .await;
    let archiver = consumer(&behind, "archiver");
    assert!(
        archiver["lag_seconds"].as_f64().expect("lag") < 3.0,
        "the running archiver keeps up: {behind}"
    );

    let _restarted = Beacon::spawn(&pipeline.env, &["aggregator"]);
    let caught_up = eventually(
        "the aggregator to catch up",
        Duration::from_secs(60),
        || async {
            let state = state().await?;
            let aggregator = consumer(&state, "aggregator");
            (aggregator["lag_seconds"].as_f64()? == 0.0 && aggregator["pending"].as_u64()? == 0)
                .then_some(state)
        },
    )
    .await;
    let through = consumer(&caught_up, "aggregator")["complete_through_ms"]
        .as_i64()
        .expect("complete through");
    assert!(
        through >= sent_from,
        "complete through {through}, sent from {sent_from}"
    );
    let lag_text = beacon_ok(&pipeline.env, &["lag"]);
    assert!(lag_text.contains("complete through"), "{lag_text}");

    // The history the page draws is kept by the server: the lag's rise is in it.
    let history: Value = http
        .get(format!("{}/api/pipeline/history", pipeline.api))
        .bearer_auth(&pipeline.key)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    let samples = history["samples"].as_array().expect("samples");
    let peak = samples
        .iter()
        .filter_map(|s| consumer(s, "aggregator")["lag_seconds"].as_f64())
        .fold(0.0, f64::max);
    assert!(peak >= 2.0, "the stored history shows the lag: {history}");
    assert!(
        samples
            .windows(2)
            .all(|w| w[0]["at"].as_i64() < w[1]["at"].as_i64()),
        "one sample a slot, oldest first"
    );
    // Retrying a dead letter: from another site's page refused, a missing one 404.
    let retry = |origin: Option<&'static str>| {
        let mut request = http
            .post(format!(
                "{}/api/pipeline/dead-letters/999/retry",
                pipeline.api
            ))
            .bearer_auth(&pipeline.key);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(
        retry(Some("https://evil.example"))
            .await
            .expect("post")
            .status(),
        403
    );
    assert_eq!(retry(None).await.expect("post").status(), 404);
}
