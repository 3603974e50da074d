//! Cached reads the collector needs on every request: which sites exist, and today's salt.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use beacon_pipeline::visitor::Salt;
use beacon_store::StoreError;
use chrono::NaiveDate;
use tokio::sync::Mutex;

use crate::seams::Records;

/// How long a site list is trusted; a known site past it is still answered from the list while
/// a fresh one is read in the background, so no request waits for the periodic re-read.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// An unknown domain re-reads the list (and waits for it) at most this often: a just-added site is
/// seen quickly, and a flood of unknown domains cannot hammer PostgreSQL.
const MISS_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The registered sites, as last read.
pub struct SiteDirectory {
    inner: Arc<Sites>,
}

struct Sites {
    records: Arc<dyn Records>,
    fresh_for: Duration,
    miss_reload_every: Duration,
    snapshot: RwLock<Option<Snapshot>>,
    /// Held by whoever reads the list, inline or in the background: one read at a time.
    reload: Arc<Mutex<()>>,
}

struct Snapshot {
    domains: HashSet<String>,
    /// When the list was last read, or last tried to be (a failed read is not retried at once).
    attempted_at: Instant,
}

/// What the cached list says of a domain.
enum Lookup {
    Answer(bool),
    /// A known site in a list past its freshness: answer yes, and read the list anew.
    KnownButStale,
    /// No list yet, or an unknown domain and the list may have changed since: read it now.
    Reload,
}

impl SiteDirectory {
    pub fn new(records: Arc<dyn Records>) -> Self {
        Self::with_timings(records, FRESH_FOR, MISS_RELOAD_EVERY)
    }

    fn with_timings(
        records: Arc<dyn Records>,
        fresh_for: Duration,
        miss_reload_every: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Sites {
                records,
                fresh_for,
                miss_reload_every,
                snapshot: RwLock::new(None),
                reload: Arc::new(Mutex::new(())),
            }),
        }
    }

    /// Whether `domain` is a registered site.
    pub async fn contains(&self, domain: &str) -> Result<bool, StoreError> {
        match self.inner.lookup(domain) {
            Lookup::Answer(known) => Ok(known),
            Lookup::KnownButStale => {
                self.refresh_in_background();
                Ok(true)
            }
            Lookup::Reload => {
                let _one_read_at_a_time = self.inner.reload.lock().await;
                if let Lookup::Answer(known) = self.inner.lookup(domain) {
                    return Ok(known);
                }
                self.inner.read().await?;
                // Known in the list just read (which may already count as stale when the
                // freshness is very short).
                Ok(matches!(
                    self.inner.lookup(domain),
                    Lookup::Answer(true) | Lookup::KnownButStale
                ))
            }
        }
    }

    /// Starts reading the list anew unless a read is already under way.
    fn refresh_in_background(&self) {
        let Ok(guard) = self.inner.reload.clone().try_lock_owned() else {
            return;
        };
        let sites = self.inner.clone();
        tokio::spawn(async move {
            let _one_read_at_a_time = guard;
            if sites.lookup_needs_refresh()
                && let Err(e) = sites.read().await
            {
                tracing::warn!(error = %e, "cannot re-read the sites; answering from the last list");
            }
        });
    }
}

impl Sites {
    fn lookup(&self, domain: &str) -> Lookup {
        let guard = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        let Some(snapshot) = guard.as_ref() else {
            return Lookup::Reload;
        };
        let age = snapshot.attempted_at.elapsed();
        match snapshot.domains.contains(domain) {
            true if age < self.fresh_for => Lookup::Answer(true),
            true => Lookup::KnownButStale,
            false if age < self.miss_reload_every => Lookup::Answer(false),
            false => Lookup::Reload,
        }
    }

    /// Whether the list is still past its freshness (another read may have just finished).
    fn lookup_needs_refresh(&self) -> bool {
        let guard = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .is_none_or(|snapshot| snapshot.attempted_at.elapsed() >= self.fresh_for)
    }

    /// Reads the list; on failure keeps the last one, and notes the attempt.
    async fn read(&self) -> Result<(), StoreError> {
        let result = self.records.site_domains().await;
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let attempted_at = Instant::now();
        match result {
            Ok(list) => {
                let domains = list.into_iter().collect();
                *guard = Some(Snapshot {
                    domains,
                    attempted_at,
                });
                Ok(())
            }
            Err(e) => {
                if let Some(snapshot) = guard.as_mut() {
                    snapshot.attempted_at = attempted_at;
                }
                Err(e)
            }
        }
    }
}

/// The day's salts: today's (created on first use) and yesterday's if it still exists.
#[derive(Debug, Clone, Copy)]
pub struct DaySalts {
    pub today: Salt,
    pub yesterday: Option<Salt>,
}

/// Today's visitor-hash salts, read once per day per process.
pub struct SaltCache {
    records: Arc<dyn Records>,
    current: RwLock<Option<(NaiveDate, DaySalts)>>,
    refresh: Mutex<()>,
}

impl SaltCache {
    pub fn new(records: Arc<dyn Records>) -> Self {
        Self {
            records,
            current: RwLock::new(None),
            refresh: Mutex::new(()),
        }
    }

    fn cached(&self, day: NaiveDate) -> Option<DaySalts> {
        match *self.current.read().unwrap_or_else(|e| e.into_inner()) {
            Some((cached_day, salts)) if cached_day == day => Some(salts),
            _ => None,
        }
    }

    pub async fn salts_for(&self, day: NaiveDate) -> Result<DaySalts, StoreError> {
        if let Some(salts) = self.cached(day) {
            return Ok(salts);
        }
        let _one_refresh_at_a_time = self.refresh.lock().await;
        if let Some(salts) = self.cached(day) {
            return Ok(salts);
        }
        let today = self.records.salt_for(day).await?;
        let yesterday = match day.pred_opt() {
            Some(previous) => self.records.existing_salt(previous).await?,
            None => None,
        };
        let salts = DaySalts { today, yesterday };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some((day, salts));
        Ok(salts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeRecords;

    /// The periodic re-read must not hold requests: while the database cannot answer it, a known
    /// site is still answered at once from the last list.
    #[tokio::test]
    async fn a_known_site_past_its_freshness_is_answered_at_once_and_re_read_in_the_background() {
        let records = Arc::new(FakeRecords::with_sites(&[
            "kept.example",
            "removed.example",
        ]));
        let directory = SiteDirectory::with_timings(
            records.clone(),
            Duration::from_millis(200),
            Duration::from_millis(50),
        );
        assert!(directory.contains("removed.example").await.expect("read"));

        let closed = records.gate.write().await;
        records
            .sites
            .lock()
            .expect("sites")
            .retain(|s| s != "removed.example");
        tokio::time::sleep(Duration::from_millis(250)).await;
        for domain in ["kept.example", "removed.example"] {
            let answer =
                tokio::time::timeout(Duration::from_millis(100), directory.contains(domain))
                    .await
                    .expect("a known site waited for the re-read of the list");
            assert!(answer.expect("answer"), "{domain} is in the last list");
        }
        drop(closed);

        // Once the background read gets through, the removed site is gone and the kept one stays.
        let deadline = Instant::now() + Duration::from_secs(5);
        while directory.contains("removed.example").await.expect("read") {
            assert!(Instant::now() < deadline, "the list was not read anew");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(directory.contains("kept.example").await.expect("read"));
    }

    #[tokio::test]
    async fn a_site_added_is_seen_once_the_miss_window_has_passed() {
        let records = Arc::new(FakeRecords::with_sites(&["first.example"]));
        let directory = SiteDirectory::with_timings(
            records.clone(),
            Duration::from_secs(60),
            Duration::from_millis(100),
        );
        assert!(!directory.contains("new.example").await.expect("read"));
        records
            .sites
            .lock()
            .expect("sites")
            .push("new.example".into());
        // Within the window the last list answers (no read per unknown domain)…
        assert!(!directory.contains("new.example").await.expect("read"));
        // …after it, an unknown domain reads the list again and finds the new site.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(directory.contains("new.example").await.expect("read"));
        assert!(directory.contains("first.example").await.expect("read"));
    }

    #[tokio::test]
    async fn the_last_list_answers_while_the_database_is_down() {
        let records = Arc::new(FakeRecords::with_sites(&["a.example"]));
        let directory =
            SiteDirectory::with_timings(records.clone(), Duration::ZERO, Duration::ZERO);
        assert!(directory.contains("a.example").await.expect("read"));
        records
            .down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            directory
                .contains("a.example")
                .await
                .expect("known: answered from the list")
        );
        assert!(
            directory.contains("other.example").await.is_err(),
            "unknown: the error shows"
        );
    }
}
