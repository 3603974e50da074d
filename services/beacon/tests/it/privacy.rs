//! No raw IP address is ever stored or published: not in the stream, the archive, the rollups or
//! the live counters.

use std::time::Duration;

use fred::prelude::*;
use mongodb::bson::doc;
use serde_json::json;

use crate::common::{
    Beacon, Namespace, archived_ids, beacon_ok, eventually, free_port, redis_url, stream_events,
    wait_ready,
};

const CLIENT_IP: &str = "203.0.113.77";
const SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

fn contains_ip(haystack: &[u8]) -> bool {
    let text = CLIENT_IP.as_bytes();
    let raw = [203u8, 0, 113, 77];
    haystack.windows(text.len()).any(|w| w == text) || haystack.windows(4).any(|w| w == raw)
}

/// The raw bytes of every string in a Redis reply.
fn value_bytes(value: &fred::types::Value, out: &mut Vec<u8>) {
    use fred::types::Value;
    match value {
        Value::Bytes(b) => out.extend_from_slice(b),
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        Value::Array(items) => items.iter().for_each(|v| value_bytes(v, out)),
        Value::Map(map) => {
            for (k, v) in map.clone().inner() {
                out.extend_from_slice(k.as_bytes());
                value_bytes(&v, out);
            }
        }
        other => out.extend_from_slice(format!("{other:?}").as_bytes()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_raw_ip_anywhere() {
    let ns = Namespace::new("privacy");
    let http = reqwest::Client::new();
    let mut env = ns.env();
    let (c, a) = (free_port(), free_port());
    env.insert("BEACON_COLLECTOR_ADDR".into(), format!("127.0.0.1:{c}"));
    env.insert("BEACON_API_ADDR".into(), format!("127.0.0.1:{a}"));
    env.insert("BEACON_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    beacon_ok(&env, &["migrate"]);
    beacon_ok(&env, &["site", "add", "example.com"]);
    let mut beacon = Beacon::spawn(&env, &["all"]);
    wait_ready(
        &http,
        &format!("http://127.0.0.1:{c}/readyz"),
        &mut beacon,
        Duration::from_secs(60),
    )
    .await;

    for (path, body) in [
        (
            "/track",
            json!({"url": "https://example.com/a", "props": {"k": "v"}}).to_string(),
        ),
        (
            "/api/event",
            r#"{"n":"Signup","u":"https://example.com/b"}"#.to_string(),
        ),
    ] {
        let r = http
            .post(format!("http://127.0.0.1:{c}{path}"))
            .header("user-agent", SAFARI)
            .header("x-forwarded-for", CLIENT_IP)
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 202);
    }
    let archive = ns.archive().await;
    eventually("both events archived", Duration::from_secs(30), || async {
        (archived_ids(&archive).await.len() == 2).then_some(())
    })
    .await;
    let pool = ns.pg().await;
    let pg = pool.get().await.expect("pg");
    eventually(
        "both events aggregated",
        Duration::from_secs(30),
        || async {
            let n: i64 = pg
                .query_one("SELECT count(*) FROM applied_events", &[])
                .await
                .ok()?
                .get(0);
            (n == 2).then_some(())
        },
    )
    .await;

    // The stream (raw MessagePack bytes).
    let messages = stream_events(&ns).await;
    assert_eq!(messages.len(), 2);
    for (_, payload) in &messages {
        assert!(!contains_ip(payload), "IP in the stream");
    }
    // The archive (every document, every field).
    let mut cursor = archive.events().find(doc! {}).await.expect("find");
    let mut documents = 0;
    while cursor.advance().await.expect("cursor") {
        let document = cursor.deserialize_current().expect("document");
        assert!(
            !contains_ip(format!("{document:?}").as_bytes()),
            "IP in MongoDB: {document:?}"
        );
        documents += 1;
    }
    assert_eq!(documents, 2);
    // Every PostgreSQL table of the namespace.
    let tables = pg
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1",
            &[&ns.name],
        )
        .await
        .expect("tables");
    assert!(tables.len() >= 4);
    for row in tables {
        let table: String = row.get(0);
        let dump: Option<String> = pg
            .query_one(
                &format!(
                    "SELECT string_agg(t::text, E'\\n') FROM \"{}\".\"{table}\" t",
                    ns.name
                ),
                &[],
            )
            .await
            .expect("dump")
            .get(0);
        assert!(
            !contains_ip(dump.unwrap_or_default().as_bytes()),
            "IP in PostgreSQL table {table}"
        );
    }
    // Every Redis key of the namespace, with its members.
    let redis = beacon_store::live::connect(&redis_url())
        .await
        .expect("redis");
    let keys: Vec<String> = redis
        .custom(fred::cmd!("KEYS"), vec![format!("{}:*", ns.name)])
        .await
        .expect("keys");
    assert!(!keys.is_empty(), "the live counter exists");
    for key in keys {
        assert!(!contains_ip(key.as_bytes()), "IP in a Redis key");
        // Every value, whatever its type; an error fails the test rather than hiding a value.
        let kind: String = redis
            .custom(fred::cmd!("TYPE"), vec![key.clone()])
            .await
            .expect("type");
        let (command, args): (&'static str, Vec<String>) = match kind.as_str() {
            "string" => ("GET", vec![key.clone()]),
            "zset" => (
                "ZRANGE",
                vec![key.clone(), "0".into(), "-1".into(), "WITHSCORES".into()],
            ),
            "hash" => ("HGETALL", vec![key.clone()]),
            "set" => ("SMEMBERS", vec![key.clone()]),
            "list" => ("LRANGE", vec![key.clone(), "0".into(), "-1".into()]),
            other => panic!("{key} holds a {other}, which this scan cannot read"),
        };
        let value: fred::types::Value = redis
            .custom(
                fred::types::CustomCommand::new_static(command, None, false),
                args,
            )
            .await
            .unwrap_or_else(|e| panic!("reading {key} ({kind}): {e}"));
        let mut bytes = Vec::new();
        value_bytes(&value, &mut bytes);
        assert!(!bytes.is_empty(), "{key} ({kind}) read as empty");
        assert!(!contains_ip(&bytes), "IP in Redis {key}");
    }
    beacon.terminate();
}
