//! Test helpers of the integration tests: the real `beacon` binary as a child process, and what
//! the tests share about the pipeline (the namespace, private servers and waiting come from
//! `beacon-testkit`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use beacon_jetstream::Topology;
use beacon_jetstream::async_nats::jetstream;
pub use beacon_testkit::{
    Namespace, PrivateMongo, PrivateNats, env_or, eventually, free_port, nats_url, redis_url,
    wait_for_port,
};

/// A `beacon` child process, killed (SIGKILL) on drop if still running.
pub struct Beacon {
    child: Child,
    pub log: PathBuf,
    pub what: String,
}

fn log_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("beacon-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

fn run_beacon(env: &HashMap<String, String>, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(args)
        .envs(env)
        .output()
        .expect("run beacon");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// Runs `beacon ARGS` to completion; panics with its output if it fails.
pub fn beacon_ok(env: &HashMap<String, String>, args: &[&str]) -> String {
    let (success, stdout, stderr) = run_beacon(env, args);
    assert!(success, "beacon {args:?} failed: {stdout}\n{stderr}");
    stdout
}

/// Runs `beacon ARGS` that must fail; returns its stderr (panics if it succeeds).
pub fn beacon_fails(env: &HashMap<String, String>, args: &[&str]) -> String {
    let (success, stdout, stderr) = run_beacon(env, args);
    assert!(!success, "beacon {args:?} succeeded: {stdout}\n{stderr}");
    stderr
}

impl Beacon {
    pub fn spawn(env: &HashMap<String, String>, args: &[&str]) -> Self {
        let what = args.join("-");
        let ns = env.get("BEACON_NAMESPACE").cloned().unwrap_or_default();
        let log = log_dir().join(format!("{ns}-{what}-{}.log", free_port()));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_beacon"))
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone"))
            .stderr(file)
            .spawn()
            .expect("spawn beacon");
        Self { child, log, what }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "beacon {} did not stop on SIGTERM:\n{}",
                self.what,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} beacon {}", self.what);
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            panic!(
                "beacon {} exited with {status}:\n{}",
                self.what,
                self.log_text()
            );
        }
    }
}

impl Drop for Beacon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `url` until it answers 200, or panics after `timeout` with the process log.
pub async fn wait_ready(
    http: &reqwest::Client,
    url: &str,
    process: &mut Beacon,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        process.assert_running();
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready after {timeout:?}:\n{}",
            process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `beacon site add SITE --timezone TZ --owner OWNER`.
pub fn add_owned_site(env: &HashMap<String, String>, site: &str, tz: &str, owner: &str) {
    beacon_ok(
        env,
        &["site", "add", site, "--timezone", tz, "--owner", owner],
    );
}

/// Waits until `consumers` consumers have acknowledged the whole events stream: nothing waits
/// behind poison or a fault.
pub async fn wait_all_acked(
    js: &jetstream::Context,
    topology: &Topology,
    consumers: usize,
    within: Duration,
) {
    eventually(
        "every consumer to acknowledge the whole stream",
        within,
        || async {
            let state = beacon_jetstream::pipeline_state(js, topology).await.ok()?;
            (state.consumers.len() == consumers
                && state
                    .consumers
                    .iter()
                    .all(|c| c.ack_floor == state.stream.last_sequence && c.ack_pending == 0))
            .then_some(())
        },
    )
    .await;
}

/// A valid page view of `site`, as the collector would publish it.
pub fn test_event(site: &str, n: usize) -> beacon_schemas::Event {
    let now = chrono::Utc::now().timestamp_millis();
    beacon_schemas::Event {
        v: beacon_schemas::SCHEMA_VERSION,
        id: beacon_schemas::EventId::new_at(now),
        site: site.to_string(),
        name: "pageview".to_string(),
        timestamp_ms: now,
        received_at_ms: now,
        url: format!("https://{site}/p/{}", n % 10),
        hostname: site.to_string(),
        pathname: format!("/p/{}", n % 10),
        referrer: None,
        props: Default::default(),
        visitor_id: n as u64 % 97,
        interactive: true,
        enrichment: Default::default(),
        previous_visitor_id: None,
        scroll_depth: None,
        engagement_ms: None,
        revenue: None,
    }
}

/// Publishes `count` events durably (acks awaited, many in flight); returns their ids.
pub async fn publish_events(
    topology: &Topology,
    site: &str,
    count: usize,
    per_second: Option<u32>,
) -> Vec<String> {
    let client = async_nats::connect(nats_url()).await.expect("NATS");
    let publisher =
        beacon_jetstream::Publisher::new(client, topology.clone(), Duration::from_secs(10));
    let mut ids = Vec::with_capacity(count);
    let mut pending = Vec::new();
    for n in 0..count {
        let event = test_event(site, n);
        ids.push(event.id.to_string());
        pending.push(publisher.send(&event).await.expect("send"));
        if pending.len() >= 256 {
            for ack in pending.drain(..) {
                ack.await.expect("stored");
            }
        }
        if let Some(rate) = per_second {
            tokio::time::sleep(Duration::from_secs(1) / rate).await;
        }
    }
    for ack in pending {
        ack.await.expect("stored");
    }
    ids
}

/// Ids of every archived event of the namespace.
pub async fn archived_ids(archive: &beacon_store::Archive) -> Vec<String> {
    let mut ids: Vec<String> = archive
        .events()
        .distinct("_id", mongodb::bson::doc! {})
        .await
        .expect("distinct")
        .into_iter()
        .filter_map(|b| b.as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Every message in the namespace's events stream, in order.
pub async fn stream_events(ns: &Namespace) -> Vec<(String, Vec<u8>)> {
    stream_events_at(&nats_url(), ns).await
}

/// Every message in the namespace's events stream on the NATS server at `url`, in order.
pub async fn stream_events_at(url: &str, ns: &Namespace) -> Vec<(String, Vec<u8>)> {
    use beacon_jetstream::async_nats::jetstream::consumer::{PullConsumer, pull};
    use futures::StreamExt;
    let client = async_nats::connect(url).await.expect("NATS");
    let js = jetstream::new(client);
    let stream = js
        .get_stream(ns.topology().events_stream())
        .await
        .expect("events stream");
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config::default())
        .await
        .expect("ephemeral consumer");
    let mut out = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_millis(300))
            .messages()
            .await
            .expect("fetch");
        let before = out.len();
        while let Some(Ok(message)) = batch.next().await {
            out.push((message.subject.to_string(), message.payload.to_vec()));
            let _ = message.ack().await;
        }
        if out.len() == before {
            return out;
        }
    }
}
