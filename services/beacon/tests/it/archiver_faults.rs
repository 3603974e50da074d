//! The archiver under faults: SIGTERM mid-batch, SIGKILL while events flow (one and two
//! processes), MongoDB stopped for a while. Afterwards the archive holds exactly the published
//! events, each once.

use std::time::Duration;

use beacon_jetstream::ConsumerKind;
use beacon_jetstream::async_nats::jetstream::consumer::PullConsumer;
use mongodb::bson::doc;

use crate::common::{
    Beacon, Namespace, PrivateMongo, archived_ids, beacon_ok, eventually, publish_events,
};

fn fault_env(ns: &Namespace) -> std::collections::HashMap<String, String> {
    let mut env = ns.env();
    env.insert("BEACON_CONSUMER_ACK_WAIT".into(), "3s".into());
    env.insert("BEACON_CONSUMER_BATCH".into(), "200".into());
    env
}

async fn count(archive: &beacon_store::Archive) -> u64 {
    archive.events().count_documents(doc! {}).await.unwrap_or(0)
}

async fn wait_for_all(archive: &beacon_store::Archive, n: usize, processes: &mut [Beacon]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while count(archive).await < n as u64 {
        for p in processes.iter_mut() {
            p.assert_running();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every event archived after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A late duplicate would show up now.
    tokio::time::sleep(Duration::from_secs(4)).await;
}

fn assert_exactly(mut expected: Vec<String>, archived: Vec<String>, total: u64) {
    expected.sort();
    assert_eq!(total as usize, expected.len(), "one document per event");
    assert_eq!(
        archived, expected,
        "the archive holds exactly the published ids"
    );
}

async fn ack_floor(ns: &Namespace) -> u64 {
    let js = ns.jetstream().await;
    let stream = js
        .get_stream(ns.topology().events_stream())
        .await
        .expect("stream");
    let mut consumer: PullConsumer = stream
        .get_consumer(&ns.topology().consumer_name(ConsumerKind::Archiver))
        .await
        .expect("consumer");
    consumer
        .info()
        .await
        .expect("info")
        .ack_floor
        .stream_sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_batch_acks_only_what_was_written() {
    let ns = Namespace::new("arch_term");
    let env = fault_env(&ns);
    beacon_ok(&env, &["migrate"]);
    let archive = ns.archive().await;
    let ids = publish_events(&ns.topology(), "a.com", 4000, None).await;

    let mut archiver = Beacon::spawn(&env, &["archiver"]);
    eventually(
        "the archiver to start writing",
        Duration::from_secs(60),
        || async { (count(&archive).await > 0).then_some(()) },
    )
    .await;
    let status = archiver.terminate();
    assert!(
        status.success(),
        "clean exit: {status}\n{}",
        archiver.log_text()
    );
    let written = count(&archive).await;
    let acked = ack_floor(&ns).await;
    assert!(
        acked <= written,
        "acked through sequence {acked} but only {written} documents are written"
    );
    assert!(
        (written as usize) < ids.len(),
        "SIGTERM came mid-stream (wrote {written})"
    );

    let mut again = vec![Beacon::spawn(&env, &["archiver"])];
    wait_for_all(&archive, ids.len(), &mut again).await;
    assert_exactly(ids, archived_ids(&archive).await, count(&archive).await);
}

async fn kill_loop(
    env: &std::collections::HashMap<String, String>,
    archive: &beacon_store::Archive,
    copies: usize,
    rounds: usize,
) -> Vec<Beacon> {
    for round in 0..rounds {
        let before = count(archive).await;
        let mut running: Vec<Beacon> = (0..copies)
            .map(|_| Beacon::spawn(env, &["archiver"]))
            .collect();
        // Killed only once they have archived something: a kill mid-work, not before the start.
        crate::common::eventually(
            "the archivers of this round to archive something",
            Duration::from_secs(30),
            || async { (count(archive).await > before).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100 + 150 * (round as u64 % 3))).await;
        for p in running.iter_mut() {
            p.assert_running();
        }
        // SIGKILL: no chance to finish the batch or ack it.
        for p in running.iter_mut() {
            p.kill();
        }
    }
    (0..copies)
        .map(|_| Beacon::spawn(env, &["archiver"]))
        .collect()
}

/// Publishes 6000 events at 600/s while `copies` archivers are killed `rounds` times, then checks
/// the survivors archive every event exactly once.
async fn archive_while_killing(label: &str, copies: usize, rounds: usize) {
    let ns = Namespace::new(label);
    let env = fault_env(&ns);
    beacon_ok(&env, &["migrate"]);
    let archive = ns.archive().await;
    let topology = ns.topology();
    let publishing =
        tokio::spawn(async move { publish_events(&topology, "a.com", 6000, Some(600)).await });
    let mut survivors = kill_loop(&env, &archive, copies, rounds).await;
    let ids = publishing.await.expect("publisher");
    wait_for_all(&archive, ids.len(), &mut survivors).await;
    assert_exactly(ids, archived_ids(&archive).await, count(&archive).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_events_flow_loses_and_duplicates_nothing() {
    archive_while_killing("arch_kill", 1, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_archivers_killed_repeatedly_share_the_work_exactly_once() {
    archive_while_killing("arch_two", 2, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_down_for_a_while_delays_but_loses_nothing() {
    let ns = Namespace::new("arch_mongo");
    let mut mongo = PrivateMongo::start();
    let mut env = fault_env(&ns);
    env.insert("BEACON_MONGO_URL".into(), mongo.url());
    beacon_ok(&env, &["migrate"]);
    let archive = beacon_store::Archive::connect(&mongo.url(), &ns.name)
        .await
        .expect("client");
    let mut archivers = vec![Beacon::spawn(&env, &["archiver"])];

    let mut ids = publish_events(&ns.topology(), "a.com", 500, None).await;
    wait_for_all(&archive, ids.len(), &mut archivers).await;

    mongo.stop();
    ids.extend(publish_events(&ns.topology(), "a.com", 500, None).await);
    tokio::time::sleep(Duration::from_secs(6)).await;
    archivers[0].assert_running();
    mongo.resume();

    wait_for_all(&archive, ids.len(), &mut archivers).await;
    assert_exactly(ids, archived_ids(&archive).await, count(&archive).await);
}

/// The TTL index's expiry: `None` without one, `Some(None)` for one without an expiry.
async fn ttl_index(archive: &beacon_store::Archive) -> Option<Option<Duration>> {
    let indexes = archive.events().list_indexes().await.expect("list");
    let indexes: Vec<mongodb::IndexModel> = futures::TryStreamExt::try_collect(indexes)
        .await
        .expect("collect");
    indexes.into_iter().find_map(|i| {
        let options = i.options?;
        (options.name.as_deref() == Some("ts_ttl")).then_some(options.expire_after)
    })
}

#[tokio::test]
async fn archive_retention_is_a_ttl_index_that_follows_the_setting() {
    let ns = Namespace::new("ttl");
    let archive = ns.archive().await;
    for days in [1, 30] {
        let retention = Duration::from_secs(days * 86_400);
        archive.ensure_indexes(Some(retention)).await.expect("ttl");
        assert_eq!(
            ttl_index(&archive).await,
            Some(Some(retention)),
            "changing the retention replaces the index"
        );
    }
    archive.ensure_indexes(None).await.expect("no ttl");
    assert_eq!(
        ttl_index(&archive).await,
        None,
        "retention off drops the TTL index"
    );
}
