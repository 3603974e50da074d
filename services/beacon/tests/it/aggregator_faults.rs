//! The aggregator under SIGKILL (one and two processes) while events flow: afterwards the rollups
//! count every published page view exactly once, and the live counter is not inflated by the
//! redeliveries.

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::*;

use crate::common::{Beacon, Namespace, beacon_ok, publish_events, redis_url};

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
            "SELECT coalesce(sum(pageviews), 0)::int8 FROM rollups WHERE property = ''",
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
        tokio::spawn(async move { publish_events(&topology, "a.com", 4000, Some(800)).await });
    for round in 0..rounds {
        let mut running: Vec<Beacon> = (0..copies)
            .map(|_| Beacon::spawn(&env, &["aggregator"]))
            .collect();
        tokio::time::sleep(Duration::from_millis(900 + 500 * (round as u64 % 3))).await;
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
