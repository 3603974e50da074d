//! Redis is a cache and the live counters, never a dependency of the numbers: with Redis
//! stopped, the API still answers the statistics (realtime numbers `null`), at once rather than
//! after Redis comes back. Uses a private `redis-server` (the shared one stays up).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Beacon, Namespace, beacon_ok, free_port, wait_ready};

struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        crate::common::wait_for_port(port, "redis-server", Duration::from_secs(10));
        Self { port, child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_answer_while_redis_is_down() {
    let ns = Namespace::new("redis_down");
    let mut redis = PrivateRedis::start();
    let mut env = ns.env();
    let port = free_port();
    env.insert("BEACON_API_ADDR".into(), format!("127.0.0.1:{port}"));
    env.insert(
        "BEACON_REDIS_URL".into(),
        format!("redis://127.0.0.1:{}", redis.port),
    );
    env.insert("BEACON_REDIS_TIMEOUT".into(), "500ms".into());
    beacon_ok(&env, &["migrate"]);
    beacon_ok(&env, &["user", "add", "owner@example.com"]);
    let key = beacon_ok(&env, &["key", "create", "--user", "owner@example.com"]);
    beacon_ok(
        &env,
        &["site", "add", "example.com", "--owner", "owner@example.com"],
    );
    let http = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{port}");
    let mut process = Beacon::spawn(&env, &["api"]);
    wait_ready(
        &http,
        &format!("{api}/readyz"),
        &mut process,
        Duration::from_secs(60),
    )
    .await;
    let stats = || async {
        let started = Instant::now();
        let r = http
            .get(format!("{api}/api/stats?site=example.com&period=day"))
            .bearer_auth(key.trim())
            .send()
            .await
            .expect("answer");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        (status.as_u16(), body, started.elapsed())
    };

    let (status, body, _) = stats().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["realtime_visitors"], 0, "{body}");

    redis.stop();
    for _ in 0..3 {
        let (status, body, took) = stats().await;
        assert_eq!(status, 200, "statistics answer without Redis: {body}");
        assert!(body["realtime_visitors"].is_null(), "{body}");
        assert_eq!(body["pageviews"], 0, "{body}");
        assert!(took < Duration::from_secs(5), "answered after {took:?}");
    }
    process.assert_running();
}
