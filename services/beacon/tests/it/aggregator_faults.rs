//! The aggregator under SIGKILL (one and two processes) while events flow: afterwards the rollups
//! count every published page view exactly once, and the live counter is not inflated by the
//! redeliveries.

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::*;

use crate::common::{
    Beacon, Namespace, beacon_ok, free_port, publish_events, redis_url, stream_events, wait_ready,
};
use crate::dataset::{Hit, Rng, SITES, generate};
use crate::ground_truth::{
    add_truth_site, count, geoip_db, send_chunk, site_tokens, wait_applied, wait_visits_closed,
};
use crate::truth_checks::verify;
use beacon_testkit::PrivatePostgres;

fn fault_env(ns: &Namespace) -> HashMap<String, String> {
    let mut env = ns.env();
    env.insert("BEACON_CONSUMER_ACK_WAIT".into(), "3s".into());
    env.insert("BEACON_CONSUMER_BATCH".into(), "100".into());
    env
}

async fn rollup_total(pool: &beacon_store::Pool) -> i64 {
    let client = pool.get().await.expect("pg");
    client
        .query_one(
            "SELECT coalesce(sum(pageviews), 0)::int8 FROM rollups WHERE property = '' AND span = '15m'",
            &[],
        )
        .await
        .expect("sum")
        .get(0)
}

async fn kill_while_flowing(copies: usize, rounds: usize, label: &str) {
    let ns = Namespace::new(label);
    let env = fault_env(&ns);
    beacon_ok(&env, &["migrate"]);
    let pool = ns.pg().await;
    let topology = ns.topology();
    let publishing =
        tokio::spawn(async move { publish_events(&topology, "a.com", 8000, Some(800)).await });
    for round in 0..rounds {
        let before = rollup_total(&pool).await;
        let mut running: Vec<Beacon> = (0..copies)
            .map(|_| Beacon::spawn(&env, &["aggregator"]))
            .collect();
        // Killed only once they have counted something: a kill mid-work, not before the start.
        crate::common::eventually(
            "the aggregators of this round to count something",
            Duration::from_secs(30),
            || async { (rollup_total(&pool).await > before).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100 + 200 * (round as u64 % 3))).await;
        for p in running.iter_mut() {
            p.assert_running();
            p.kill();
        }
    }
    let ids = publishing.await.expect("publisher");
    let mut survivors: Vec<Beacon> = (0..copies)
        .map(|_| Beacon::spawn(&env, &["aggregator"]))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while rollup_total(&pool).await < ids.len() as i64 {
        for p in survivors.iter_mut() {
            p.assert_running();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every event aggregated after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        rollup_total(&pool).await,
        ids.len() as i64,
        "every page view counted exactly once"
    );
    let client = pool.get().await.expect("pg");
    let applied: i64 = client
        .query_one("SELECT count(*) FROM applied_events", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(applied, ids.len() as i64, "one applied id per event");

    // The test events come from 97 visitors (visitor_id = n % 97): redeliveries must not add more.
    let redis = beacon_store::live::connect(&redis_url())
        .await
        .expect("redis");
    let live: u64 = redis
        .zcount(
            beacon_store::LiveKeys::new(&ns.name).visitors("a.com"),
            f64::NEG_INFINITY,
            f64::INFINITY,
        )
        .await
        .expect("zcount");
    assert_eq!(
        live, 97,
        "live visitors counted once each despite redeliveries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_aggregator_neither_loses_nor_double_counts() {
    kill_while_flowing(1, 4, "agg_kill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_aggregators_killed_repeatedly_count_exactly_once() {
    kill_while_flowing(2, 3, "agg_two").await;
}

/// The ground-truth dataset flows in steadily while aggregators are SIGKILLed at random moments —
/// one alone, two at once, and two while their (private) PostgreSQL restarts. Afterwards every
/// metric, series and breakdown equals the ground truth exactly, before and after the visits close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_and_a_postgres_restart_leave_every_number_right() {
    let http = reqwest::Client::new();
    let mut pg = PrivatePostgres::start();
    let ns = Namespace::new("agg_truth");
    let mut env = fault_env(&ns);
    env.insert("BEACON_POSTGRES_URL".into(), pg.url());
    let (c, a) = (free_port(), free_port());
    let collector = format!("http://127.0.0.1:{c}");
    let api = format!("http://127.0.0.1:{a}");
    env.insert("BEACON_COLLECTOR_ADDR".into(), format!("127.0.0.1:{c}"));
    env.insert("BEACON_API_ADDR".into(), format!("127.0.0.1:{a}"));
    env.insert("BEACON_GEOIP_DB".into(), geoip_db());
    env.insert("BEACON_RATE_LIMIT".into(), "0".into());
    // Longer than any delay the faults cause (ack wait 3 s), as the 30-minute default is longer
    // than any delay a healthy pipeline has: a visit closes only when nothing more is coming.
    env.insert("BEACON_SESSION_CLOSE_AFTER".into(), "15s".into());
    beacon_ok(&env, &["migrate"]);
    beacon_ok(&env, &["user", "add", "faults@example.com"]);
    let key = beacon_ok(&env, &["key", "create", "--user", "faults@example.com"])
        .trim()
        .to_string();
    for (site, tz) in SITES {
        add_truth_site(&env, site, tz.name(), "faults@example.com");
    }
    let tokens = site_tokens(&env);
    let mut front = Beacon::spawn(&env, &["collector"]);
    let mut api_process = Beacon::spawn(&env, &["api"]);
    wait_ready(
        &http,
        &format!("{collector}/readyz"),
        &mut front,
        Duration::from_secs(60),
    )
    .await;
    wait_ready(
        &http,
        &format!("{api}/readyz"),
        &mut api_process,
        Duration::from_secs(60),
    )
    .await;

    let first_day = chrono::Utc::now().date_naive() - chrono::Days::new(9);
    let dataset = std::sync::Arc::new(generate(7, first_day, 3, 40));
    let counted = dataset.hits.iter().filter(|h| !h.bot).count();
    let flow = {
        let (http, collector, dataset) = (http.clone(), collector.clone(), dataset.clone());
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let mut sorted: Vec<&Hit> = dataset.hits.iter().collect();
            sorted.sort_by_key(|h| h.ts_ms);
            for chunk in sorted.chunks(100) {
                let bodies: Vec<&serde_json::Value> = chunk.iter().map(|h| &h.body).collect();
                send_chunk(&http, &collector, &tokens, &bodies).await;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };

    // (aggregators, restart PostgreSQL meanwhile)
    let rounds = [
        (1, false),
        (2, false),
        (1, false),
        (2, true),
        (1, false),
        (2, false),
        (1, false),
    ];
    let mut rng = Rng::new(0x5eed);
    for (round, (copies, restart)) in rounds.into_iter().enumerate() {
        if round == 3 {
            // What a redelivery after a lost ack looks like to the aggregator: events it has
            // (mostly) applied already, delivered again. Copies are published as new messages.
            republish_some(&ns).await;
        }
        let mut running: Vec<Beacon> = (0..copies)
            .map(|_| Beacon::spawn(&env, &["aggregator"]))
            .collect();
        tokio::time::sleep(Duration::from_millis(400 + rng.below(900))).await;
        if restart {
            pg.stop();
            tokio::time::sleep(Duration::from_millis(800)).await;
            pg.resume();
            tokio::time::sleep(Duration::from_millis(300 + rng.below(900))).await;
        }
        for p in running.iter_mut() {
            p.assert_running();
            p.kill();
        }
    }
    flow.await.expect("the flow of events");
    let mut survivors: Vec<Beacon> = (0..2)
        .map(|_| Beacon::spawn(&env, &["aggregator"]))
        .collect();
    let pool = beacon_store::postgres::pool(&pg.url(), &ns.name, 2).expect("pool");
    wait_applied(&pool, counted).await;
    verify(&http, &api, &key, &dataset, "after the faults", true).await;
    wait_visits_closed(&pool).await;
    verify(
        &http,
        &api,
        &key,
        &dataset,
        "after the faults, every visit closed",
        true,
    )
    .await;
    let applied = count(&pool, "SELECT count(*) FROM applied_events").await;
    assert_eq!(
        applied,
        Some(counted as i64),
        "one applied id per counted hit"
    );
    for p in survivors.iter_mut().chain([&mut front, &mut api_process]) {
        p.assert_running();
    }
}

/// Publishes every 5th message of the events stream again (as a new message, no dedup id).
pub async fn republish_some(ns: &Namespace) -> usize {
    let js = ns.jetstream().await;
    let messages = stream_events(ns).await;
    let mut copies = Vec::new();
    for (subject, payload) in messages.into_iter().step_by(5) {
        copies.push(
            js.publish(subject, payload.into())
                .await
                .expect("publish copy"),
        );
    }
    let n = copies.len();
    for ack in copies {
        ack.await.expect("copy stored");
    }
    assert!(n > 20, "only {n} copies");
    n
}
