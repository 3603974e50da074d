//! A broker that stalls while the collector waits for its ack: the collector sends the events
//! again with the same ids until JetStream confirms them, so the client gets a definite `202`
//! (one event, one id) instead of a `503` for an event that was stored after all; when the stall outlasts
//! the collector's patience, the `503` says the events may have been stored.

use std::time::Duration;

use beacon_schemas::decode;
use serde_json::json;

use crate::collector::collector;
use crate::common::{Namespace, PrivateNats, stream_events_at};

const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

/// (pathname, event id) of every message in the stream.
async fn stored(nats: &PrivateNats, ns: &Namespace) -> Vec<(String, String)> {
    stream_events_at(&nats.url(), ns)
        .await
        .into_iter()
        .map(|(_, payload)| {
            let event = decode(&payload).expect("decodes");
            (event.pathname, event.id.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_broker_gets_a_definite_answer_and_one_copy() {
    let ns = Namespace::new("pub_confirm");
    let nats = PrivateNats::start();
    let http = reqwest::Client::new();
    let nats_url = nats.url();
    // Acks time out after 1 s; the collector keeps re-sending for half the request timeout (4 s).
    let mut c = collector(
        &ns,
        &[
            ("BEACON_NATS_URL", nats_url.as_str()),
            ("BEACON_NATS_TIMEOUT", "1s"),
            ("BEACON_HTTP_REQUEST_TIMEOUT", "8s"),
        ],
        &http,
    )
    .await;
    let url = c.url.clone();
    let send = |path: &str| {
        http.post(format!("{url}/track"))
            .header("user-agent", BROWSER)
            .json(&json!({ "url": format!("https://example.com{path}") }))
            .send()
    };

    // A stall shorter than the patience: the first ack times out, the server then stores the
    // event, and the re-send is recognised as its duplicate. One answer, 202; one copy.
    nats.freeze();
    let short = tokio::spawn(send("/short-stall"));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    nats.thaw();
    let answer = short.await.expect("task").expect("collector answers");
    let status = answer.status();
    assert_eq!(status, 202, "{}", answer.text().await.unwrap_or_default());

    // A stall longer than the patience: 503, and the answer says the event may be stored.
    nats.freeze();
    let long = tokio::spawn(send("/long-stall"));
    tokio::time::sleep(Duration::from_millis(6000)).await;
    nats.thaw();
    let answer = long.await.expect("task").expect("collector answers");
    assert_eq!(answer.status(), 503);
    let text = answer.text().await.expect("body");
    assert!(text.contains("may have been stored"), "{text}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    // Re-sends carry the event's id: the stream drops those within its 1-second duplicate
    // window, and the consumers count an id once however late a copy comes. So what must hold
    // is one id per event, never a second event.
    let messages = stored(&nats, &ns).await;
    let ids = |p: &str| {
        let ids: std::collections::BTreeSet<&str> = messages
            .iter()
            .filter(|(path, _)| path == p)
            .map(|(_, id)| id.as_str())
            .collect();
        ids.len()
    };
    assert_eq!(ids("/short-stall"), 1, "stored, once: {messages:?}");
    assert!(
        ids("/long-stall") <= 1,
        "never a second event: {messages:?}"
    );
    c.process.assert_running();
}
