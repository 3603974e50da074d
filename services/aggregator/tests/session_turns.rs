//! The batch write against a real PostgreSQL, with two processes' session caches taking turns and
//! the closing task in between: the stored visits must be the ones a cacheless write would store.

use std::time::Duration;

use beacon_pipeline::session::Session;
use beacon_schemas::Event;
use beacon_store::{Pool, sessions};

use beacon_aggregator::{SessionCache, apply, close_quiet_sessions};
use beacon_testkit::TestSchema;

const SITE: &str = "turns.example";
const T0: i64 = 1_780_000_000_000;
const MINUTE: i64 = 60_000;

fn pageview(visitor: u64, ts: i64) -> Event {
    beacon_pipeline::test_events::event(SITE, "pageview", ts, visitor)
}

/// A test's schema, with what the tests read of it.
struct Schema(TestSchema);

impl std::ops::Deref for Schema {
    type Target = TestSchema;
    fn deref(&self) -> &TestSchema {
        &self.0
    }
}

impl Schema {
    async fn new(label: &str) -> Self {
        Self(TestSchema::migrated(label, 2).await)
    }

    async fn open_sessions(&self) -> Vec<Session> {
        let client = self.pool.get().await.expect("connection");
        let mut open = sessions::open_in_range(&**client, SITE, 0, i64::MAX)
            .await
            .expect("open sessions");
        open.sort_by_key(|s| (s.visitor_id, s.start_ms));
        open
    }

    /// (visitor, page views) of the open sessions of visitors `base + 1 ..= base + 9`.
    async fn pageviews_of(&self, base: u64) -> Vec<(u64, i64)> {
        self.open_sessions()
            .await
            .iter()
            .filter(|s| s.visitor_id > base && s.visitor_id < base + 10)
            .map(|s| (s.visitor_id, s.pageviews))
            .collect()
    }

    /// Visits in the 15-minute visit rows (the closed ones).
    async fn closed_visits(&self) -> i64 {
        let client = self.pool.get().await.expect("connection");
        let rows = client
            .query(
                "SELECT coalesce(sum(visits), 0)::int8 FROM rollups
                 WHERE site = $1 AND property = 'visit' AND span = '15m'",
                &[&SITE],
            )
            .await
            .expect("visit rows");
        rows[0].get(0)
    }
}

async fn apply_one(pool: &Pool, cache: &SessionCache, event: Event) {
    let applied = apply(pool, cache, &[event]).await.expect("apply");
    assert_eq!(applied.len(), 1);
}

/// Process A writes a visit, process B extends it, A extends it again: A must see B's page
/// view although its cache remembers the visit without it.
#[tokio::test]
async fn a_visit_extended_by_another_process_is_read_again() {
    let db = Schema::new("cache_turns").await;
    let (a, b) = (SessionCache::new(1000), SessionCache::new(1000));
    apply_one(&db.pool, &a, pageview(1, T0)).await;
    apply_one(&db.pool, &b, pageview(1, T0 + MINUTE)).await;
    apply_one(&db.pool, &a, pageview(1, T0 + 2 * MINUTE)).await;
    apply_one(&db.pool, &a, pageview(1, T0 + 3 * MINUTE)).await;

    let stored = db.open_sessions().await;
    assert_eq!(stored.len(), 1, "one visit: {stored:?}");
    assert_eq!(stored[0].pageviews, 4);
    assert_eq!(
        (stored[0].start_ms, stored[0].end_ms),
        (T0, T0 + 3 * MINUTE)
    );
}

/// While nobody else writes, the cache answers instead of PostgreSQL: a session deleted behind
/// its back without raising the generation (which no real writer does) is still extended.
#[tokio::test]
async fn alone_the_process_reads_its_visits_from_memory() {
    let db = Schema::new("cache_alone").await;
    let a = SessionCache::new(1000);
    apply_one(&db.pool, &a, pageview(1, T0)).await;
    let client = db.pool.get().await.expect("connection");
    client
        .execute("DELETE FROM sessions", &[])
        .await
        .expect("delete");
    apply_one(&db.pool, &a, pageview(1, T0 + MINUTE)).await;
    assert_eq!(db.open_sessions().await[0].pageviews, 2);

    // Raising the generation as a writer must makes the next batch read PostgreSQL again.
    client
        .execute("DELETE FROM sessions", &[])
        .await
        .expect("delete");
    client
        .execute(
            "UPDATE site_generations SET generation = generation + 1",
            &[],
        )
        .await
        .expect("raise");
    apply_one(&db.pool, &a, pageview(1, T0 + 2 * MINUTE)).await;
    assert_eq!(db.open_sessions().await[0].pageviews, 1);
}

/// The closing task closes a visit (into the visit rows); a late page view reopens it, which
/// takes the visit back out of the rows. Were the cache unaware of the closing, the visit would
/// count twice: once in the rows, once open. The closer is this process, then another one.
#[tokio::test]
async fn a_visit_closed_in_between_is_reopened_not_counted_twice() {
    let db = Schema::new("cache_close").await;
    let (a, other) = (SessionCache::new(1000), SessionCache::new(1000));
    for (visitor, closer) in [(1, &a), (2, &other)] {
        let before = db.closed_visits().await;
        apply_one(&db.pool, &a, pageview(visitor, T0)).await;
        close_quiet_sessions(&db.pool, closer, Duration::ZERO)
            .await
            .expect("close");
        assert_eq!(db.closed_visits().await, before + 1);
        apply_one(&db.pool, &a, pageview(visitor, T0 + MINUTE)).await;
        assert_eq!(
            db.closed_visits().await,
            before,
            "the reopened visit left the visit rows"
        );
        let open = db.open_sessions().await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!((open[0].visitor_id, open[0].pageviews), (visitor, 2));
        close_quiet_sessions(&db.pool, &a, Duration::ZERO)
            .await
            .expect("close");
    }
}

/// Two batches of one process on one site at once (`BEACON_CONSUMER_CONCURRENCY`), twenty times:
/// the second waits for the first's site lock, and must find the first's commit in the cache (not
/// a gap that empties it). Each batch has a visitor of its own, so whichever commits second, the
/// cache must hold both afterwards: deleting the stored sessions behind its back (which no real
/// writer does) shows that the next batch extends both visits from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_batches_at_once_both_count_and_keep_the_cache() {
    let db = Schema::new("cache_pair").await;
    let a = std::sync::Arc::new(SessionCache::new(1000));
    for round in 0..20 {
        let base = 10 * round;
        let t = T0 + round as i64 * 60 * MINUTE;
        apply_one(&db.pool, &a, pageview(base + 1, t)).await;
        let first = vec![pageview(base + 1, t + MINUTE), pageview(base + 2, t)];
        let second = vec![pageview(base + 1, t + 2 * MINUTE), pageview(base + 3, t)];
        let hits = a.hits();
        let (pool, cache) = (db.pool.clone(), a.clone());
        let x = tokio::spawn(async move { apply(&pool, &cache, &first).await.map(|e| e.len()) });
        let (pool, cache) = (db.pool.clone(), a.clone());
        let y = tokio::spawn(async move { apply(&pool, &cache, &second).await.map(|e| e.len()) });
        let applied =
            x.await.expect("join").expect("first") + y.await.expect("join").expect("second");
        assert_eq!(applied, 4);
        assert_eq!(
            a.hits() - hits,
            2,
            "round {round}: both batches found visitor {} in memory",
            base + 1
        );
        let pageviews = db.pageviews_of(base).await;
        assert_eq!(pageviews, [(base + 1, 3), (base + 2, 1), (base + 3, 1)]);

        let client = db.pool.get().await.expect("connection");
        client
            .execute("DELETE FROM sessions", &[])
            .await
            .expect("delete");
        let third = [
            pageview(base + 2, t + MINUTE),
            pageview(base + 3, t + MINUTE),
        ];
        apply(&db.pool, &a, &third).await.expect("third");
        let pageviews = db.pageviews_of(base).await;
        assert_eq!(
            pageviews,
            [(base + 2, 2), (base + 3, 2)],
            "round {round}: both visits came from memory"
        );
    }
}
