//! The Redis live counters against ground truth: visitors in the last five minutes, page views per
//! minute, top pages — and unchanged after every event is delivered a second time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use beacon_jetstream::ConsumerKind;
use beacon_store::LiveKeys;
use beacon_store::live::{LiveStats, minute_start};

use crate::aggregator_faults::republish_some;
use crate::common::{Beacon, Namespace, beacon_ok, eventually, redis_url, test_event};

const MIN: i64 = 60_000;

/// Waits until the aggregator has nothing pending or unacknowledged.
async fn wait_drained(ns: &Namespace) {
    let js = ns.jetstream().await;
    let topology = ns.topology();
    eventually(
        "the aggregator to drain the stream",
        Duration::from_secs(60),
        || {
            let (js, topology) = (js.clone(), topology.clone());
            async move {
                let stream = js.get_stream(topology.events_stream()).await.ok()?;
                let mut consumer: beacon_jetstream::async_nats::jetstream::consumer::PullConsumer =
                    stream
                        .get_consumer(&topology.consumer_name(ConsumerKind::Aggregator))
                        .await
                        .ok()?;
                let info = consumer.info().await.ok()?;
                (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_counters_equal_the_ground_truth_even_after_redelivery() {
    let ns = Namespace::new("live_truth");
    let env = ns.env();
    beacon_ok(&env, &["migrate"]);
    let now = chrono::Utc::now().timestamp_millis();
    // Recent events (the last three minutes) and older ones (10 to 25 minutes ago); none near the
    // five-minute edge, so the expectation cannot race the clock.
    let mut events = Vec::new();
    for n in 0..300usize {
        let mut e = test_event("live.test", n);
        let age = if n % 3 == 0 {
            (n as i64 * 577) % (3 * MIN)
        } else {
            10 * MIN + (n as i64 * 7919) % (15 * MIN)
        };
        e.timestamp_ms = now - age;
        e.id = beacon_schemas::EventId::new_at(e.timestamp_ms);
        e.visitor_id = (n % 41) as u64;
        if n % 10 == 0 {
            e.name = "Signup".into();
        }
        events.push(e);
    }
    let mut expected_visitors = BTreeSet::new();
    let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
    let mut pages: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        if e.timestamp_ms > now - 5 * MIN {
            expected_visitors.insert(e.visitor_id);
        }
        if e.name == "pageview" {
            *per_minute.entry(minute_start(e.timestamp_ms)).or_default() += 1;
            if e.timestamp_ms >= minute_start(now) - 4 * MIN {
                *pages.entry(e.pathname.clone()).or_default() += 1;
            }
        }
    }

    let client = async_nats::connect(crate::common::nats_url())
        .await
        .expect("NATS");
    let publisher =
        beacon_jetstream::Publisher::new(client, ns.topology(), Duration::from_secs(10));
    for e in &events {
        publisher.publish(e).await.expect("published");
    }
    let mut aggregator = Beacon::spawn(&env, &["aggregator"]);
    wait_drained(&ns).await;

    let redis = beacon_store::live::connect(&redis_url())
        .await
        .expect("redis");
    let keys = LiveKeys::new(&ns.name);
    let read = || async {
        let read_at = chrono::Utc::now().timestamp_millis();
        beacon_store::live::read(&redis, &keys, "live.test", read_at, 100)
            .await
            .expect("read")
    };
    let check = |live: &LiveStats, when: &str| {
        assert_eq!(
            live.visitors,
            expected_visitors.len() as u64,
            "{when}: visitors"
        );
        let counted: BTreeMap<i64, u64> = live
            .pageviews_per_minute
            .iter()
            .filter(|(_, n)| *n > 0)
            .copied()
            .collect();
        assert_eq!(counted, per_minute, "{when}: page views per minute");
        let mut expected_pages: Vec<(String, u64)> = pages.clone().into_iter().collect();
        expected_pages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        assert_eq!(live.top_pages, expected_pages, "{when}: top pages");
    };
    let first = read().await;
    check(&first, "after delivery");

    // Every fifth event again, as new messages: the counters must not move.
    republish_some(&ns).await;
    wait_drained(&ns).await;
    check(&read().await, "after redelivery");
    aggregator.assert_running();
}
