//! `BEACON_STREAM_REPLICAS` and a list of NATS servers, against the real NATS server: a live
//! stream's replicas are never changed in place, and a server of the list that is down is passed
//! over.

use crate::common::{Namespace, beacon_fails, beacon_ok};
use beacon_jetstream::async_nats::{self, jetstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_streams_replicas_stay_and_a_list_of_servers_is_taken() {
    let ns = Namespace::new("stream_settings");
    let mut env = ns.env();
    let live = env["BEACON_NATS_URL"].clone();
    // The first server of the list listens nowhere: the client goes on to the next.
    let nowhere = beacon_testkit::free_port();
    env.insert(
        "BEACON_NATS_URL".into(),
        format!("nats://127.0.0.1:{nowhere}, {live}"),
    );
    beacon_ok(&env, &["migrate"]);

    // Asked for three replicas, the live one-replica streams stay as they are, and the error
    // names the variable.
    env.insert("BEACON_STREAM_REPLICAS".into(), "3".into());
    let error = beacon_fails(&env, &["migrate"]);
    assert!(
        error.contains("BEACON_STREAM_REPLICAS") && error.contains("keeps 1 replicas"),
        "{error}"
    );
    let js = jetstream::new(async_nats::connect(&live).await.expect("NATS"));
    let mut stream = js
        .get_stream(format!("{}-events", ns.name))
        .await
        .expect("the events stream");
    assert_eq!(stream.info().await.expect("info").config.num_replicas, 1);
    env.insert("BEACON_STREAM_REPLICAS".into(), "1".into());
    beacon_ok(&env, &["migrate"]);

    // Three replicas asked of a server that is in no cluster: NATS's refusal, at once (not
    // after a minute of startup retries), for a namespace whose streams do not exist yet.
    let fresh = Namespace::new("stream_settings_fresh");
    let mut fresh_env = fresh.env();
    fresh_env.insert("BEACON_STREAM_REPLICAS".into(), "3".into());
    let started = std::time::Instant::now();
    let error = beacon_fails(&fresh_env, &["migrate"]);
    assert!(error.contains("non-clustered"), "{error}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "refused after {:?}: retried as if it could pass",
        started.elapsed()
    );

    // Every URL of the list is checked.
    env.insert(
        "BEACON_NATS_URL".into(),
        format!("{live},http://127.0.0.1:{nowhere}"),
    );
    let error = beacon_fails(&env, &["migrate"]);
    assert!(
        error.contains("BEACON_NATS_URL") && error.contains("http://"),
        "{error}"
    );
}
