//! Arbitrary envelopes straight into the stream, past the collector (anyone with access to the
//! NATS account could publish them): hostile text in every field, any time, and raw bytes that are
//! no envelope at all. The real archiver and aggregator must acknowledge all of it, and what they
//! do must follow the envelope check exactly: every event that passes `Event::validate` is
//! archived once and applied once; every other message is dead-lettered by both, with a reason.
//!
//! `BEACON_FUZZ_ENVELOPES` sets how many (300 in CI); `bench/results/fuzz.md` has a long run.

use std::collections::BTreeSet;
use std::time::Duration;

use beacon_jetstream::async_nats::HeaderMap;
use beacon_jetstream::{ConsumerKind, list_dead_letters};
use beacon_schemas::{Event, EventId};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::common::{Beacon, Namespace, archived_ids, beacon_ok, env_or, wait_all_acked};

fn strip_controls(event: &mut Event) {
    let clean = |t: &mut String| t.retain(|c| !c.is_control());
    for text in [
        &mut event.site,
        &mut event.name,
        &mut event.url,
        &mut event.hostname,
        &mut event.pathname,
    ] {
        clean(text);
    }
    if let Some(referrer) = event.referrer.as_mut() {
        clean(referrer);
    }
    if let Some(utm) = event.enrichment.utm_source.as_mut() {
        clean(utm);
    }
    event.props = std::mem::take(&mut event.props)
        .into_iter()
        .map(|(mut k, mut v)| {
            clean(&mut k);
            clean(&mut v);
            (k, v)
        })
        .collect();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_envelopes_are_stored_or_dead_lettered_as_the_check_says() {
    let n: usize = env_or("BEACON_FUZZ_ENVELOPES", "300")
        .parse()
        .expect("BEACON_FUZZ_ENVELOPES");
    let ns = Namespace::new("env_fuzz");
    let env = ns.env();
    beacon_ok(&env, &["migrate"]);
    beacon_ok(&env, &["site", "add", "a.com"]);

    // A fixed seed: a failure is reproduced by running the test again.
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = beacon_schemas::arbitrary::hostile_event();
    let now = chrono::Utc::now().timestamp_millis();
    let js = ns.jetstream().await;
    let subject = ns.topology().events_subject("a.com");
    let (mut valid, mut refused) = (BTreeSet::new(), 0usize);
    let mut acks = Vec::new();
    for i in 0..n {
        let mut event = strategy
            .new_tree(&mut runner)
            .expect("generate an envelope")
            .current();
        event.id = EventId::new_at(now + i as i64);
        // The hostile alphabet puts a control character in almost every envelope; half of them
        // lose theirs, so that long, multi-byte and far-dated text also reaches the stores.
        if i % 2 == 0 {
            strip_controls(&mut event);
        }
        // Every tenth message is not an envelope at all.
        let payload = if i % 10 == 9 {
            refused += 1;
            format!("\u{c1}not MessagePack {i}").into_bytes()
        } else {
            if event.validate().is_ok() {
                valid.insert(event.id.to_string());
            } else {
                refused += 1;
            }
            beacon_schemas::encode(&event).expect("encode")
        };
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("fuzz-{i}").as_str());
        acks.push(
            js.publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .expect("send"),
        );
        // The client holds a bounded number of unconfirmed publishes.
        if acks.len() >= 256 {
            for ack in acks.drain(..) {
                ack.await.expect("stored");
            }
        }
    }
    for ack in acks {
        ack.await.expect("stored");
    }
    assert!(
        valid.len() > n / 5 && refused > n / 5,
        "a mix of valid ({}) and refused ({refused}) envelopes",
        valid.len()
    );

    let mut archiver = Beacon::spawn(&env, &["archiver"]);
    let mut aggregator = Beacon::spawn(&env, &["aggregator"]);
    wait_all_acked(&js, &ns.topology(), 2, Duration::from_secs(180)).await;
    archiver.assert_running();
    aggregator.assert_running();

    let archived: BTreeSet<String> = archived_ids(&ns.archive().await)
        .await
        .into_iter()
        .collect();
    assert_eq!(archived, valid, "archived: exactly the valid envelopes");
    let client = ns.pg().await.get().await.expect("pg");
    let applied: BTreeSet<String> = client
        .query("SELECT event_id::text FROM applied_events", &[])
        .await
        .expect("applied")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(applied, valid, "applied: exactly the valid envelopes");

    println!(
        "{n} messages: {} valid envelopes archived and applied once, {refused} refused and \
         dead-lettered by both consumers",
        valid.len()
    );
    let letters = list_dead_letters(&js, &ns.topology())
        .await
        .expect("dead letters");
    for kind in [ConsumerKind::Archiver, ConsumerKind::Aggregator] {
        let consumer = ns.topology().consumer_name(kind);
        let mine: BTreeSet<u64> = letters
            .iter()
            .filter(|l| l.consumer == consumer && !l.reason.is_empty())
            .map(|l| l.stream_sequence)
            .collect();
        assert_eq!(
            mine.len(),
            refused,
            "{consumer}: one dead letter per refused message"
        );
    }
}
