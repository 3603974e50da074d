//! Where the shared test servers are (the `BEACON_*_URL` variables, or the local defaults), free
//! ports, and waiting for a condition instead of sleeping.

use std::net::TcpListener;
use std::time::{Duration, Instant};

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

/// Blocks until something accepts connections on 127.0.0.1:`port`; panics after `timeout`.
pub fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
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

/// Runs `cleanup` to its end from a `Drop`: drop cannot await and may run on a runtime's own
/// thread (or while a test panics), so it runs on a thread of its own with its own runtime.
pub fn block_on_aside(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(cleanup);
        }
    })
    .join();
}
