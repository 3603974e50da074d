//! The same event delivered more than once — what a redelivery after a crash between commit and
//! ack looks like to a consumer — is archived once and counted once, also with two aggregators.
//! (The copies are published under other `Nats-Msg-Id`s so JetStream keeps them.)

use std::time::Duration;

use beacon_jetstream::async_nats::HeaderMap;
use mongodb::bson::doc;

use crate::common::{Beacon, Namespace, archived_ids, beacon_ok, eventually, test_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_copy_of_an_event_counts_once() {
    let ns = Namespace::new("dups");
    let mut env = ns.env();
    // Small batches put copies of an event into different batches (within one batch the
    // aggregator collapses them before the transaction; this tests the transaction's guard).
    env.insert("BEACON_CONSUMER_BATCH".into(), "20".into());
    beacon_ok(&env, &["migrate"]);
    let js = ns.jetstream().await;
    let subject = ns.topology().events_subject("a.com");
    let events: Vec<_> = (0..300).map(|n| test_event("a.com", n)).collect();
    // Every event once, then a third of them twice more, interleaved with the originals' tail.
    let mut sends = Vec::new();
    for (copy, event) in events
        .iter()
        .enumerate()
        .chain(events.iter().enumerate().step_by(3))
        .chain(events.iter().enumerate().step_by(3))
    {
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}-{}", event.id, sends.len() + copy).as_str(),
        );
        let payload = beacon_schemas::encode(event).expect("encode");
        sends.push(
            js.publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .expect("send"),
        );
    }
    for ack in sends {
        ack.await.expect("stored");
    }

    let _processes = [
        Beacon::spawn(&env, &["archiver"]),
        Beacon::spawn(&env, &["aggregator"]),
        Beacon::spawn(&env, &["aggregator"]),
    ];
    let archive = ns.archive().await;
    let pool = ns.pg().await;
    let client = pool.get().await.expect("pg");
    eventually(
        "the consumers to finish",
        Duration::from_secs(60),
        || async {
            let acked = beacon_jetstream::pipeline_state(&js, &ns.topology())
                .await
                .ok()?;
            acked
                .consumers
                .iter()
                .all(|c| c.ack_floor == acked.stream.last_sequence && c.ack_pending == 0)
                .then_some(())
        },
    )
    .await;

    let mut expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    expected.sort();
    assert_eq!(
        archive
            .events()
            .count_documents(doc! {})
            .await
            .expect("count"),
        300
    );
    assert_eq!(archived_ids(&archive).await, expected);
    let total: i64 = client
        .query_one(
            "SELECT coalesce(sum(pageviews), 0)::int8 FROM rollups WHERE property = '' AND span = '15m'",
            &[],
        )
        .await
        .expect("sum")
        .get(0);
    assert_eq!(
        total, 300,
        "each event counted once although 500 messages carried it"
    );
}
