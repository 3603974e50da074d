//! Poison in the stream: dead-lettered with its reason, the line moves on, and the operator tools
//! (`beacon dlq list`, `beacon dlq retry`) see and re-publish it.

use std::time::Duration;

use serde_json::Value;

use crate::common::{Beacon, Namespace, archived_ids, beacon_ok, eventually, publish_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_good_events_still_archived_and_retry_republishes() {
    let ns = Namespace::new("dlq");
    let env = ns.env();
    beacon_ok(&env, &["migrate"]);
    let js = ns.jetstream().await;
    let subject = ns.topology().events_subject("a.com");
    js.publish(subject.clone(), "\u{1}definitely not msgpack".into())
        .await
        .expect("send")
        .await
        .expect("stored");
    let mut ids = publish_events(&ns.topology(), "a.com", 20, None).await;
    ids.sort();

    let archive = ns.archive().await;
    let mut archiver = Beacon::spawn(&env, &["archiver"]);
    eventually("good events archived", Duration::from_secs(60), || async {
        (archived_ids(&archive).await == ids).then_some(())
    })
    .await;
    archiver.assert_running();

    let list = |env| -> Vec<Value> {
        serde_json::from_str(&beacon_ok(env, &["dlq", "list", "--json"])).expect("json")
    };
    let letters = eventually(
        "the poison in the dead-letter stream",
        Duration::from_secs(10),
        || async {
            let letters = list(&env);
            (!letters.is_empty()).then_some(letters)
        },
    )
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["stream_sequence"], 1);
    assert_eq!(
        letter["consumer"],
        ns.topology()
            .consumer_name(beacon_jetstream::ConsumerKind::Archiver)
    );
    assert_eq!(letter["subject"], subject);
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot decode")),
        "{letter}"
    );

    let seq = letter["sequence"].as_u64().expect("seq").to_string();
    let output = beacon_ok(&env, &["dlq", "retry", "--seq", &seq]);
    assert!(
        output.contains(&format!("retried #{seq} as events stream sequence")),
        "{output}"
    );

    // Still poison: the archiver dead-letters the re-published copy again, under a new sequence.
    let again = eventually(
        "the retried poison dead-lettered again",
        Duration::from_secs(30),
        || async {
            let letters = list(&env);
            letters
                .iter()
                .any(|l| l["stream_sequence"].as_u64() > Some(1))
                .then_some(letters)
        },
    )
    .await;
    assert_eq!(
        again.len(),
        1,
        "the retried letter left the DLQ; its copy came back: {again:?}"
    );
    assert!(again[0]["stream_sequence"].as_u64() > Some(21));
    assert_eq!(
        archived_ids(&archive).await,
        ids,
        "nothing else changed in the archive"
    );
}
