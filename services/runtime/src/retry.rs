//! The one place Beacon retries transient failures with exponential backoff.
//!
//! Built on the `backoff` crate (the product owner's choice). It is unmaintained (RUSTSEC-2025-0012);
//! nothing else in the workspace names it, so swapping in `backon` means rewriting this file only.

use std::future::Future;
use std::time::Duration;

use backoff::ExponentialBackoffBuilder;

/// How long and how often to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max_interval: Duration,
    /// Give up after this long; `None` retries until it succeeds.
    pub max_elapsed: Option<Duration>,
}

impl RetryPolicy {
    /// Connecting to a dependency at start: up to a minute, then give up with the last error.
    pub const STARTUP: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(200),
        max_interval: Duration::from_secs(5),
        max_elapsed: Some(Duration::from_secs(60)),
    };

    /// A long-running loop that must come back by itself: forever, at most every 10 s.
    pub const FOREVER: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(200),
        max_interval: Duration::from_secs(10),
        max_elapsed: None,
    };
}

/// Runs `op` until it succeeds or the policy gives up, logging each failure with `what`.
pub async fn retry<T, E, F, Fut>(what: &str, policy: RetryPolicy, op: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_transient(what, policy, |_| true, op).await
}

/// Like [`retry`], but an error for which `transient` is false ends the retries at once.
pub async fn retry_transient<T, E, F, Fut>(
    what: &str,
    policy: RetryPolicy,
    transient: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let backoff = ExponentialBackoffBuilder::new()
        .with_initial_interval(policy.initial)
        .with_max_interval(policy.max_interval)
        .with_max_elapsed_time(policy.max_elapsed)
        .build();
    backoff::future::retry_notify(
        backoff,
        || {
            let attempt = op();
            let transient = &transient;
            async move {
                attempt.await.map_err(|e| {
                    if transient(&e) {
                        backoff::Error::transient(e)
                    } else {
                        backoff::Error::permanent(e)
                    }
                })
            }
        },
        |error: E, wait: Duration| tracing::warn!(%error, ?wait, "{what} failed; retrying"),
    )
    .await
}

/// A growing delay for loops that restart themselves (attempt 0, 1, 2, …).
pub fn restart_delay(attempt: u32) -> Duration {
    Duration::from_millis(200)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn retries_until_success() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            initial: Duration::from_millis(1),
            max_interval: Duration::from_millis(2),
            max_elapsed: None,
        };
        let result: Result<u32, String> = retry("test", policy, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(format!("fail {n}"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test]
    async fn retries_until_max_elapsed_then_gives_up() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            initial: Duration::from_millis(5),
            max_interval: Duration::from_millis(5),
            max_elapsed: Some(Duration::from_millis(60)),
        };
        let started = std::time::Instant::now();
        let result: Result<(), String> = retry("test", policy, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { Err(format!("down {n}")) }
        })
        .await;
        let calls = calls.load(Ordering::SeqCst);
        // The last error comes back, after several attempts spread over the allowed time.
        assert_eq!(result, Err(format!("down {}", calls - 1)));
        assert!(calls >= 3, "only {calls} attempts");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_permanent_error_is_not_retried() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            initial: Duration::from_millis(1),
            max_interval: Duration::from_millis(1),
            max_elapsed: None,
        };
        let result: Result<(), String> = retry_transient(
            "test",
            policy,
            |e: &String| e != "bad input",
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err("bad input".to_string()) }
            },
        )
        .await;
        assert_eq!(result, Err("bad input".to_string()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn restart_delay_grows_and_caps() {
        assert_eq!(restart_delay(0), Duration::from_millis(200));
        assert_eq!(restart_delay(1), Duration::from_millis(400));
        assert_eq!(restart_delay(30), Duration::from_secs(10));
    }
}
