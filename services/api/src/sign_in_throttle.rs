//! Failed sign-ins, counted per client address and per account: past the limit within the
//! window, further attempts are answered `429` with `Retry-After` before any password is hashed.
//! So a guesser gets a handful of tries a quarter of an hour per account and per address, and
//! cannot make the API hash passwords for it at will. Memory is bounded: expired entries are
//! swept as the table grows, and past its bound the oldest half is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per key within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// How long failures count.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys remembered at most.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct SignInThrottle {
    /// Key → (failures, first failure of the window).
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl SignInThrottle {
    /// How long until `keys` may try again; `None` when none of them is over the limit.
    pub fn retry_after(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|key| failures.get(key))
            .filter(|(count, since)| *count >= MAX_FAILURES && now.duration_since(*since) < WINDOW)
            .map(|(_, since)| WINDOW - now.duration_since(*since))
            .max()
    }

    /// Counts one failed sign-in against each of `keys`.
    pub fn record_failure(&self, keys: &[String], now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
            if failures.len() >= MAX_KEYS {
                let mut starts: Vec<Instant> = failures.values().map(|(_, s)| *s).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                failures.retain(|_, (_, since)| *since > cut);
            }
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((0, now));
            if now.duration_since(entry.1) >= WINDOW {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn record_success(&self, account_key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(account_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ip: &str, email: &str) -> Vec<String> {
        vec![format!("ip:{ip}"), format!("account:{email}")]
    }

    #[test]
    fn the_limit_holds_per_address_and_per_account_until_the_window_passes() {
        let throttle = SignInThrottle::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(
                throttle.retry_after(&keys("1.1.1.1", "a@x.com"), t0),
                None,
                "try {i}"
            );
            throttle.record_failure(&keys("1.1.1.1", "a@x.com"), t0);
        }
        let later = t0 + Duration::from_secs(60);
        let wait = throttle
            .retry_after(&keys("1.1.1.1", "a@x.com"), later)
            .expect("throttled");
        assert_eq!(wait, WINDOW - Duration::from_secs(60));
        // The same account from another address, and another account from the same address.
        assert!(
            throttle
                .retry_after(&keys("2.2.2.2", "a@x.com"), later)
                .is_some()
        );
        assert!(
            throttle
                .retry_after(&keys("1.1.1.1", "b@x.com"), later)
                .is_some()
        );
        assert_eq!(
            throttle.retry_after(&keys("2.2.2.2", "b@x.com"), later),
            None
        );
        assert_eq!(
            throttle.retry_after(&keys("1.1.1.1", "a@x.com"), t0 + WINDOW),
            None
        );
    }

    #[test]
    fn success_clears_the_account_and_memory_stays_bounded() {
        let throttle = SignInThrottle::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            throttle.record_failure(&["account:a@x.com".to_string()], t0);
        }
        throttle.record_success("account:a@x.com");
        assert_eq!(
            throttle.retry_after(&["account:a@x.com".to_string()], t0),
            None
        );
        for i in 0..(MAX_KEYS + 10) {
            throttle.record_failure(&[format!("ip:{i}")], t0 + Duration::from_nanos(i as u64));
        }
        let len = throttle.failures.lock().map(|f| f.len()).unwrap_or(0);
        assert!(len <= MAX_KEYS, "{len} keys");
    }
}
