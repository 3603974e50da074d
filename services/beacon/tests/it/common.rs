//! Test helpers: a unique namespace per test that deletes everything it created on drop, and the
//! real `beacon` binary as a child process.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use beacon_jetstream::async_nats::jetstream;
use beacon_jetstream::{ConsumerPolicy, Topology, ensure_topology};

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn nats_url() -> String {
    env_or("BEACON_NATS_URL", "nats://127.0.0.1:4222")
}
pub fn postgres_url() -> String {
    env_or(
        "BEACON_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
}
pub fn mongo_url() -> String {
    env_or(
        "BEACON_MONGO_URL",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    )
}
pub fn redis_url() -> String {
    env_or("BEACON_REDIS_URL", "redis://127.0.0.1:6379")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A namespace unique to one test; on drop, its streams, schema, database and keys are deleted.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Self {
            name: format!("t_{label}_{}_{n}_{:x}", std::process::id(), nanos % 0xfffff),
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.name)
    }

    /// The environment a `beacon` process of this namespace runs with.
    pub fn env(&self) -> HashMap<String, String> {
        HashMap::from([
            ("BEACON_NAMESPACE".to_string(), self.name.clone()),
            ("BEACON_NATS_URL".to_string(), nats_url()),
            ("BEACON_POSTGRES_URL".to_string(), postgres_url()),
            ("BEACON_MONGO_URL".to_string(), mongo_url()),
            ("BEACON_REDIS_URL".to_string(), redis_url()),
            ("BEACON_ADMIN_ADDR".to_string(), "127.0.0.1:0".to_string()),
            ("RUST_LOG".to_string(), "info".to_string()),
        ])
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(nats_url())
            .await
            .expect("NATS must run (scripts/services up)");
        jetstream::new(client)
    }

    /// Creates the streams and consumers with the given consumer policy.
    pub async fn ensure_topology(&self, policy: &ConsumerPolicy) -> jetstream::Context {
        let js = self.jetstream().await;
        ensure_topology(
            &js,
            &self.topology(),
            &beacon_runtime::Config::defaults().stream_settings(),
            policy,
        )
        .await
        .expect("ensure topology");
        js
    }

    pub async fn pg(&self) -> beacon_store::Pool {
        beacon_store::postgres::migrate(&postgres_url(), &self.name)
            .await
            .expect("PostgreSQL must run");
        beacon_store::postgres::pool(&postgres_url(), &self.name, 4).expect("pool")
    }

    pub async fn archive(&self) -> beacon_store::Archive {
        let archive = beacon_store::Archive::connect(&mongo_url(), &self.name)
            .await
            .expect("mongo client");
        archive
            .ensure_indexes(None)
            .await
            .expect("MongoDB (or SecantusDB) must run");
        archive
    }

    async fn cleanup(name: String) {
        let topology = Topology::new(&name);
        if let Ok(client) = async_nats::connect(nats_url()).await {
            let js = jetstream::new(client);
            let _ = js.delete_stream(topology.events_stream()).await;
            let _ = js.delete_stream(topology.dead_letter_stream()).await;
        }
        let _ = beacon_store::postgres::drop_namespace(&postgres_url(), &name).await;
        if let Ok(archive) = beacon_store::Archive::connect(&mongo_url(), &name).await {
            let _ = archive.drop_namespace().await;
        }
        if let Ok(redis) = beacon_store::live::connect(&redis_url()).await {
            let _ = beacon_store::live::drop_namespace(&redis, &name).await;
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(Namespace::cleanup(name));
            }
        })
        .join();
    }
}

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

/// Blocks until something accepts connections on 127.0.0.1:`port`; panics after `timeout`.
pub fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// Polls `probe` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
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

/// A private SecantusDB (MongoDB-wire-compatible) server for tests that stop their MongoDB.
pub struct PrivateMongo {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn secantusd() -> PathBuf {
    if let Ok(path) = std::env::var("BEACON_SECANTUSD") {
        return PathBuf::from(path);
    }
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.services/venv/bin/secantusd-py");
    assert!(
        path.exists(),
        "SecantusDB not installed at {} (scripts/services up installs it)",
        path.display()
    );
    path
}

impl PrivateMongo {
    pub fn start() -> Self {
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("mongo-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("storage dir");
        let mut mongo = Self {
            port,
            dir,
            child: None,
        };
        mongo.resume();
        mongo
    }

    pub fn url(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=2000",
            self.port
        )
    }

    /// Starts (again) on the same port and storage.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.with_extension("log")).expect("log");
        let child = Command::new(secantusd())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--storage-path",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone"))
            .stderr(log)
            .spawn()
            .expect("start SecantusDB");
        self.child = Some(child);
        wait_for_port(self.port, "SecantusDB", Duration::from_secs(30));
    }

    /// Stops the server (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateMongo {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

/// A private `nats-server` with JetStream for tests that stop their broker.
pub struct PrivateNats {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("nats-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("store dir");
        let mut nats = Self {
            port,
            dir,
            child: None,
        };
        nats.resume();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn resume(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (scripts/services installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "nats-server", Duration::from_secs(10));
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its connections open but answers nothing (a stalled broker).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Self::freeze`]: it processes what queued up meanwhile.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("nats-server runs");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} nats-server");
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
