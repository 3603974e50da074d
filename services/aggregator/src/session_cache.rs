//! The sessions this process last wrote, kept in memory so that a batch need not read them back
//! from PostgreSQL. A site's cached sessions are used only while they are provably what is stored:
//! every transaction that changes a site's sessions raises the site's generation (migration V7),
//! and a batch uses the cache only if its own transaction raised the generation to exactly one past
//! the value this process's last commit for the site recorded — nobody else (another aggregator,
//! the prune, a commit whose outcome this process never learned) wrote in between.
//!
//! Per visitor the cache holds every stored session ending after a horizon; a batch whose events
//! reach further back than the horizon loads the visitor from PostgreSQL instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use beacon_pipeline::session::Session;

/// What the cache knows of a batch's visitors on one site.
#[derive(Debug, Default)]
pub struct Known {
    /// Per visitor found: its stored sessions ending after the batch's bound (often none).
    pub sessions: HashMap<u64, Vec<Session>>,
    /// Visitors to load from PostgreSQL.
    pub missing: Vec<u64>,
}

/// Bounded by visitor count; `capacity` 0 turns it off (every visitor is loaded).
pub struct SessionCache {
    inner: Option<Mutex<Inner>>,
    /// Held from before a commit until it is recorded, and around a lookup: a batch of this
    /// process that waited for another batch's site lock (so for its commit) finds that commit
    /// recorded, instead of a generation gap that would empty the site's cache.
    recording: tokio::sync::Mutex<()>,
    /// Visitors answered from memory since the start (also counted in the metrics).
    hits: AtomicU64,
}

struct Inner {
    sites: HashMap<String, SiteState>,
    /// Keyed by (the site's current slot, visitor id). A site gets a fresh slot whenever its
    /// cached sessions may be stale, which orphans its old entries until they are evicted.
    visitors: quick_cache::unsync::Cache<(u64, u64), Entry>,
    next_slot: u64,
}

struct SiteState {
    slot: u64,
    /// The generation this process's last recorded commit left the site at.
    generation: i64,
}

#[derive(Clone)]
struct Entry {
    /// Every stored session of the visitor that ends after this instant is in `sessions`.
    horizon_ms: i64,
    sessions: Vec<Session>,
}

impl SessionCache {
    pub fn new(capacity: usize) -> Self {
        let inner = (capacity > 0).then(|| {
            Mutex::new(Inner {
                sites: HashMap::new(),
                visitors: quick_cache::unsync::Cache::new(capacity),
                next_slot: 0,
            })
        });
        Self {
            inner,
            recording: tokio::sync::Mutex::new(()),
            hits: AtomicU64::new(0),
        }
    }

    /// Visitors answered from memory so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Hold while committing and recording a transaction that raised generations, and while
    /// asking [`SessionCache::known`].
    pub async fn recording(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.recording.lock().await
    }

    /// The stored sessions ending after `after_ms` of each of `visitors` on `site`, for the
    /// visitors the cache can answer for; `generation` is the site's generation as raised by the
    /// calling transaction (under the site's lock).
    pub fn known(
        &self,
        site: &str,
        generation: i64,
        visitors: impl IntoIterator<Item = u64>,
        after_ms: i64,
    ) -> Known {
        let mut known = Known::default();
        let Some(inner) = &self.inner else {
            known.missing = visitors.into_iter().collect();
            return known;
        };
        let inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        let slot = inner
            .sites
            .get(site)
            .filter(|state| state.generation.checked_add(1) == Some(generation))
            .map(|state| state.slot);
        for visitor in visitors {
            let entry = slot
                .and_then(|slot| inner.visitors.get(&(slot, visitor)))
                .filter(|entry| entry.horizon_ms <= after_ms);
            match entry {
                Some(entry) => {
                    let sessions = entry
                        .sessions
                        .iter()
                        .filter(|s| s.end_ms > after_ms)
                        .cloned()
                        .collect();
                    known.sessions.insert(visitor, sessions);
                }
                None => known.missing.push(visitor),
            }
        }
        self.hits
            .fetch_add(known.sessions.len() as u64, Ordering::Relaxed);
        metrics::counter!(beacon_metrics::AGGREGATOR_SESSION_CACHE_HITS.name)
            .increment(known.sessions.len() as u64);
        metrics::counter!(beacon_metrics::AGGREGATOR_SESSION_CACHE_MISSES.name)
            .increment(known.missing.len() as u64);
        known
    }

    /// Records a committed batch prepared (before its commit) by [`BatchRecord::new`].
    pub fn record(&self, batch: BatchRecord) {
        let Some(inner) = &self.inner else { return };
        let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        // If this is not the next generation after the recorded one, `known` answered nothing
        // for this batch (the generation only grows), so `before` came from PostgreSQL whole.
        let Some(slot) = inner.advance(&batch.site, batch.generation) else {
            return;
        };
        // A change to a visitor the batch did not look at (not expected: sessions carry the id of
        // one of their events) leaves that visitor unknown.
        for visitor in batch.orphans {
            inner.visitors.remove(&(slot, visitor));
        }
        for (visitor, sessions) in batch.after {
            let entry = Entry {
                horizon_ms: batch.after_ms,
                sessions,
            };
            inner.visitors.insert((slot, visitor), entry);
        }
    }

    /// Records a commit at `generation` that left the sessions of `site` as they were.
    pub fn record_unchanged(&self, site: &str, generation: i64) {
        let Some(inner) = &self.inner else { return };
        let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.advance(site, generation);
    }

    /// Records a committed closing of `closed` (sessions of `site`) at `generation`.
    pub fn record_closed(&self, site: &str, generation: i64, closed: &[Session]) {
        let Some(inner) = &self.inner else { return };
        let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = inner.advance(site, generation) else {
            return;
        };
        for s in closed {
            if let Some(mut entry) = inner.visitors.get_mut(&(slot, s.visitor_id)) {
                for kept in entry.sessions.iter_mut() {
                    if kept.start_ms == s.start_ms {
                        kept.closed = true;
                    }
                }
            }
        }
    }
}

/// A batch's sessions of one site as its commit leaves them, worked out before the commit so that
/// recording it after the commit is quick (a later batch of this process waits for that).
pub struct BatchRecord {
    site: String,
    generation: i64,
    after_ms: i64,
    /// Per visitor the batch looked at: its stored sessions ending after `after_ms`.
    after: HashMap<u64, Vec<Session>>,
    /// Visitors whose sessions changed but whom the batch did not look at.
    orphans: Vec<u64>,
}

impl BatchRecord {
    /// The batch on `site` committing at `generation`. `before` holds, for every visitor the
    /// batch looked at, all its stored sessions ending after `after_ms` as they were before the
    /// batch (known plus loaded); `removed` and `added` are the batch's session changes (any site).
    pub fn new(
        site: &str,
        generation: i64,
        after_ms: i64,
        mut before: HashMap<u64, Vec<Session>>,
        removed: &[Session],
        added: &[Session],
    ) -> Self {
        let mut orphans = Vec::new();
        for s in removed.iter().filter(|s| s.site == site) {
            match before.get_mut(&s.visitor_id) {
                Some(sessions) => sessions.retain(|kept| kept.start_ms != s.start_ms),
                None => orphans.push(s.visitor_id),
            }
        }
        for s in added.iter().filter(|s| s.site == site) {
            match before.get_mut(&s.visitor_id) {
                Some(sessions) => {
                    sessions.retain(|kept| kept.start_ms != s.start_ms);
                    sessions.push(s.clone());
                }
                None => orphans.push(s.visitor_id),
            }
        }
        Self {
            site: site.to_owned(),
            generation,
            after_ms,
            after: before,
            orphans,
        }
    }
}

impl Inner {
    /// Moves `site` to `generation` after a commit; returns the slot to record under, or `None`
    /// when a later commit is already recorded. A gap (someone else wrote) starts a fresh slot.
    fn advance(&mut self, site: &str, generation: i64) -> Option<u64> {
        match self.sites.get_mut(site) {
            Some(state) if generation <= state.generation => None,
            Some(state) if state.generation.checked_add(1) == Some(generation) => {
                state.generation = generation;
                Some(state.slot)
            }
            _ => {
                let slot = self.next_slot;
                self.next_slot += 1;
                self.sites
                    .insert(site.to_owned(), SiteState { slot, generation });
                Some(slot)
            }
        }
    }
}

#[cfg(test)]
#[path = "session_cache_tests.rs"]
mod tests;
