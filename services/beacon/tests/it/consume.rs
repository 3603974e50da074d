//! The pull-consume loop against real JetStream: redelivery, nak delays, dead letters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use beacon_jetstream::async_nats::jetstream::consumer::PullConsumer;
use beacon_jetstream::{
    BatchHandler, ConsumerKind, ConsumerPolicy, DEAD_LETTER_CONSUMER, DEAD_LETTER_REASON,
    DEAD_LETTER_STREAM_SEQ, DeadLetterer, Decision, Delivery, run_consumer,
};
use beacon_runtime::CancellationToken;
use futures::StreamExt;

use crate::common::{Namespace, eventually};

/// Records every delivery; decides with a closure of (payload, delivery count).
struct Recorder<F> {
    seen: Mutex<Vec<(String, i64, Instant)>>,
    decide: F,
}

impl<F: Fn(&str, i64) -> Decision + Send + Sync> BatchHandler for Recorder<F> {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Decision> {
        let mut seen = self.seen.lock().expect("lock");
        batch
            .iter()
            .map(|d| {
                let payload = String::from_utf8_lossy(d.payload()).to_string();
                seen.push((payload.clone(), d.delivered, Instant::now()));
                (self.decide)(&payload, d.delivered)
            })
            .collect()
    }
}

fn fast_policy() -> ConsumerPolicy {
    ConsumerPolicy {
        max_batch: 10,
        linger: Duration::from_millis(20),
        ack_wait: Duration::from_secs(2),
        max_deliver: 3,
        retry_base: Duration::from_millis(700),
        retry_max: Duration::from_secs(2),
        ..beacon_runtime::Config::defaults().consumer_policy()
    }
}

async fn publish_raw(
    js: &beacon_jetstream::async_nats::jetstream::Context,
    subject: String,
    payload: &str,
) {
    js.publish(subject, payload.to_string().into())
        .await
        .expect("send")
        .await
        .expect("stored");
}

struct Harness {
    ns: Namespace,
    js: beacon_jetstream::async_nats::jetstream::Context,
    consumer: PullConsumer,
    name: String,
    policy: ConsumerPolicy,
}

async fn harness(label: &str) -> Harness {
    let ns = Namespace::new(label);
    let policy = fast_policy();
    let js = ns.ensure_topology(&policy).await;
    let name = ns.topology().consumer_name(ConsumerKind::Archiver);
    let consumer: PullConsumer = js
        .get_stream(ns.topology().events_stream())
        .await
        .expect("stream")
        .get_consumer(&name)
        .await
        .expect("consumer");
    Harness {
        ns,
        js,
        consumer,
        name,
        policy,
    }
}

impl Harness {
    /// Runs the loop with `handler` until `done` says so (or 20 s pass), then stops it.
    async fn run_until<H: BatchHandler>(&self, handler: &H, done: impl Fn() -> bool) {
        let shutdown = CancellationToken::new();
        let dead_letters = DeadLetterer::new(self.js.clone(), &self.ns.topology(), &self.name);
        let stopper = shutdown.clone();
        let watch = async {
            eventually(
                "the handler to see what the test waits for",
                Duration::from_secs(20),
                || async { done().then_some(()) },
            )
            .await;
            stopper.cancel();
        };
        let (result, ()) = tokio::join!(
            run_consumer(
                &self.consumer,
                &self.name,
                &self.policy,
                handler,
                &dead_letters,
                &shutdown
            ),
            watch
        );
        result.expect("loop ends cleanly on shutdown");
    }

    async fn dead_letters(&self) -> Vec<beacon_jetstream::async_nats::jetstream::Message> {
        let stream = self
            .js
            .get_stream(self.ns.topology().dead_letter_stream())
            .await
            .expect("dlq stream");
        let consumer: PullConsumer = stream
            .create_consumer(
                beacon_jetstream::async_nats::jetstream::consumer::pull::Config::default(),
            )
            .await
            .expect("ephemeral");
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("fetch");
        let mut out = Vec::new();
        while let Some(Ok(m)) = batch.next().await {
            out.push(m);
        }
        out
    }
}

/// Counts how many batches it is handling at once; each takes a while.
#[derive(Default)]
struct Overlap {
    running: AtomicUsize,
    most: AtomicUsize,
    handled: AtomicUsize,
}

impl BatchHandler for Overlap {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Decision> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.handled.fetch_add(batch.len(), Ordering::SeqCst);
        vec![Decision::Ack; batch.len()]
    }
}

#[tokio::test]
async fn batches_are_handled_concurrently_up_to_the_limit_and_all_acked() {
    let mut h = harness("overlap").await;
    h.policy.concurrency = 2;
    for n in 0..60 {
        publish_raw(
            &h.js,
            h.ns.topology().events_subject("a.com"),
            &format!("m{n}"),
        )
        .await;
    }
    let handler = Overlap::default();
    h.run_until(&handler, || handler.handled.load(Ordering::SeqCst) >= 60)
        .await;
    assert_eq!(
        handler.most.load(Ordering::SeqCst),
        2,
        "six batches of ten, two at a time"
    );
    // The loop settles every batch before it returns.
    let info = h.consumer.info().await.expect("consumer info");
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.ack_floor.stream_sequence, 60);
}

#[tokio::test]
async fn unacked_message_is_redelivered_after_ack_wait() {
    let h = harness("redeliver").await;
    publish_raw(&h.js, h.ns.topology().events_subject("a.com"), "first").await;
    // A consumer that takes the message and dies without acking.
    let mut taken = h
        .consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .expect("fetch");
    let message = taken.next().await.expect("one").expect("ok");
    assert_eq!(&message.payload[..], b"first");
    drop(taken);
    let started = Instant::now();

    let handler = Recorder {
        seen: Mutex::new(Vec::new()),
        decide: |_: &str, _| Decision::Ack,
    };
    h.run_until(&handler, || !handler.seen.lock().expect("lock").is_empty())
        .await;
    let seen = handler.seen.lock().expect("lock").clone();
    assert_eq!(seen[0].0, "first");
    assert_eq!(seen[0].1, 2, "second delivery");
    assert!(
        seen[0].2 - started >= Duration::from_millis(1500),
        "not before ack_wait"
    );
}

#[tokio::test]
async fn retry_is_redelivered_after_the_nak_delay() {
    let h = harness("nak").await;
    publish_raw(&h.js, h.ns.topology().events_subject("a.com"), "flaky").await;
    let handler = Recorder {
        seen: Mutex::new(Vec::new()),
        decide: |_: &str, delivered| {
            if delivered == 1 {
                Decision::Retry {
                    reason: "store down".into(),
                }
            } else {
                Decision::Ack
            }
        },
    };
    h.run_until(&handler, || handler.seen.lock().expect("lock").len() >= 2)
        .await;
    let seen = handler.seen.lock().expect("lock").clone();
    assert_eq!((seen[0].1, seen[1].1), (1, 2));
    let gap = seen[1].2 - seen[0].2;
    assert!(
        gap >= Duration::from_millis(650),
        "nak delay honoured, got {gap:?}"
    );
    assert!(
        gap < Duration::from_millis(1900),
        "redelivered by the nak, not by ack_wait: {gap:?}"
    );
}

#[tokio::test]
async fn message_failing_max_deliver_times_is_dead_lettered_with_the_reason() {
    let h = harness("maxdeliver").await;
    publish_raw(&h.js, h.ns.topology().events_subject("a.com"), "hopeless").await;
    publish_raw(&h.js, h.ns.topology().events_subject("a.com"), "fine").await;
    let handler = Recorder {
        seen: Mutex::new(Vec::new()),
        decide: |payload: &str, _| {
            if payload == "hopeless" {
                Decision::Retry {
                    reason: "constraint violated".into(),
                }
            } else {
                Decision::Ack
            }
        },
    };
    // Keep consuming after the third failure for longer than any redelivery could take (an ack
    // wait plus the longest retry delay, twice): a fourth delivery would be seen.
    let third = std::sync::OnceLock::new();
    let quiet = (fast_policy().ack_wait + fast_policy().retry_max) * 2;
    h.run_until(&handler, || {
        let failures = handler
            .seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.0 == "hopeless")
            .count();
        failures >= 3 && third.get_or_init(std::time::Instant::now).elapsed() > quiet
    })
    .await;
    let dead = h.dead_letters().await;
    assert_eq!(dead.len(), 1, "one dead letter");
    let headers = dead[0].headers.as_ref().expect("headers");
    let reason = headers.get(DEAD_LETTER_REASON).expect("reason").as_str();
    assert!(
        reason.contains("failed 3 deliveries") && reason.contains("constraint violated"),
        "{reason}"
    );
    assert_eq!(
        headers
            .get(DEAD_LETTER_CONSUMER)
            .expect("consumer")
            .as_str(),
        h.name
    );
    assert_eq!(
        headers.get(DEAD_LETTER_STREAM_SEQ).expect("seq").as_str(),
        "1"
    );
    assert_eq!(&dead[0].payload[..], b"hopeless");
    let seen = handler.seen.lock().expect("lock").clone();
    assert_eq!(
        seen.iter().filter(|s| s.0 == "hopeless").count(),
        3,
        "no delivery after the dead letter"
    );
    assert!(seen.iter().any(|s| s.0 == "fine"), "the line moved on");
}

#[tokio::test]
async fn dead_letter_decision_moves_the_message_aside_at_once() {
    let h = harness("poison").await;
    publish_raw(&h.js, h.ns.topology().events_subject("a.com"), "poison").await;
    publish_raw(&h.js, h.ns.topology().events_subject("a.com"), "good").await;
    let handler = Recorder {
        seen: Mutex::new(Vec::new()),
        decide: |payload: &str, _| {
            if payload == "poison" {
                Decision::DeadLetter {
                    reason: "cannot decode".into(),
                }
            } else {
                Decision::Ack
            }
        },
    };
    h.run_until(&handler, || {
        handler
            .seen
            .lock()
            .expect("lock")
            .iter()
            .any(|s| s.0 == "good")
    })
    .await;
    let dead = h.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0]
            .headers
            .as_ref()
            .and_then(|h| h.get(DEAD_LETTER_REASON))
            .map(|v| v.as_str()),
        Some("cannot decode")
    );
}

/// The events stream forgets message ids after a second (the consumers de-duplicate by event id
/// however late a copy comes; a long window made nats-server stall publishing, see
/// bench/results/collector.md); the dead-letter stream keeps them longer than the ack wait, so a
/// message dead-lettered again after a crash is recognised.
#[tokio::test]
async fn the_streams_keep_message_ids_for_their_windows() {
    let h = harness("windows").await;
    let window = |stream: String| {
        let js = h.js.clone();
        async move {
            js.get_stream(stream)
                .await
                .expect("stream")
                .get_info()
                .await
                .expect("stream info")
                .config
                .duplicate_window
        }
    };
    let topology = h.ns.topology();
    assert_eq!(
        window(topology.events_stream()).await,
        Duration::from_secs(1)
    );
    let dead_letters = window(topology.dead_letter_stream()).await;
    assert_eq!(dead_letters, beacon_jetstream::DEAD_LETTER_DUPLICATE_WINDOW);
    assert!(dead_letters > beacon_runtime::Config::defaults().consumer_ack_wait * 2);
}
