//! Cached reads the collector needs on every request: which sites exist, and today's salt.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use beacon_pipeline::visitor::Salt;
use beacon_store::{Pool, StoreError, salts, sites};
use chrono::NaiveDate;
use tokio::sync::Mutex;

/// How long a known site list is trusted before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// An unknown domain re-reads the list at most this often (a just-added site is seen quickly,
/// and a flood of unknown domains cannot hammer PostgreSQL).
const MISS_RELOAD_EVERY: Duration = Duration::from_secs(1);

pub struct SiteDirectory {
    pool: Pool,
    snapshot: RwLock<Option<(HashSet<String>, Instant)>>,
    reload: Mutex<()>,
}

impl SiteDirectory {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            snapshot: RwLock::new(None),
            reload: Mutex::new(()),
        }
    }

    fn cached(&self, domain: &str) -> Option<bool> {
        let guard = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        let (domains, loaded_at) = guard.as_ref()?;
        let age = loaded_at.elapsed();
        match domains.contains(domain) {
            true if age < FRESH_FOR => Some(true),
            false if age < MISS_RELOAD_EVERY => Some(false),
            _ => None,
        }
    }

    /// Whether `domain` is a registered site.
    pub async fn contains(&self, domain: &str) -> Result<bool, StoreError> {
        if let Some(answer) = self.cached(domain) {
            return Ok(answer);
        }
        let _one_reload_at_a_time = self.reload.lock().await;
        if let Some(answer) = self.cached(domain) {
            return Ok(answer);
        }
        let domains: HashSet<String> = sites::list(&self.pool)
            .await?
            .into_iter()
            .map(|s| s.domain)
            .collect();
        let known = domains.contains(domain);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Some((domains, Instant::now()));
        Ok(known)
    }
}

/// The day's salts: today's (created on first use) and yesterday's if it still exists.
#[derive(Debug, Clone, Copy)]
pub struct DaySalts {
    pub today: Salt,
    pub yesterday: Option<Salt>,
}

/// Today's visitor-hash salts, read from PostgreSQL once per day per process.
pub struct SaltCache {
    pool: Pool,
    current: RwLock<Option<(NaiveDate, DaySalts)>>,
    refresh: Mutex<()>,
}

impl SaltCache {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
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
        let today = salts::salt_for(&self.pool, day).await?;
        let yesterday = match day.pred_opt() {
            Some(previous) => salts::existing_salt(&self.pool, previous).await?,
            None => None,
        };
        let salts = DaySalts { today, yesterday };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some((day, salts));
        Ok(salts)
    }
}
