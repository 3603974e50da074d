//! The API's rollup reads against a real PostgreSQL (the shared test server; each test migrates a
//! schema of its own, dropped at the end): what the fast tests beside the code cannot show.

use std::collections::BTreeMap;

use beacon_api::grouping::Grouping;
use beacon_api::rollup_query::{GroupKey, Read, RollupQuery, Sums, ValueMatch};
use beacon_api::tiling::tile;
use beacon_pipeline::rollup::{Rollup, VISITS};
use beacon_store::zones::Zones;
use beacon_testkit::TestSchema;
use chrono::{DateTime, Utc};

/// A visit that closes between a report's two reads (the visit rows, then the open sessions)
/// is counted once when both reads come from one snapshot, as the API takes them
/// (`read_snapshot`). Read separately, it would be in neither.
#[tokio::test]
async fn a_visit_closing_between_the_two_reads_counts_once_in_a_snapshot() {
    use beacon_pipeline::rollup::UtcCalendar;
    use beacon_pipeline::session::Session;
    use beacon_store::{rollups, sessions};

    const SITE: &str = "snapshot.example";
    let schema = TestSchema::migrated("snapshot", 3).await;
    let pool = &schema.pool;
    let day = DateTime::<Utc>::from_timestamp(1_700_006_400, 0).expect("time"); // a midnight
    let event = beacon_pipeline::test_events::event(
        SITE,
        "pageview",
        day.timestamp_millis() + 3_600_000,
        7,
    );
    let writer = pool.get().await.expect("connection");
    sessions::replace(&**writer, &[], &[Session::of_event(&event)])
        .await
        .expect("open visit");

    let all = ValueMatch::All;
    let query = RollupQuery {
        site: SITE,
        tz: chrono_tz::UTC,
        property: VISITS,
        from: day,
        to: day + chrono::Duration::days(1),
        values: &all,
        grouping: Grouping::None,
    };
    let calendar = Zones::of(SITE, chrono_tz::UTC);
    let pieces = tile(&calendar, SITE, query.from, query.to, query.grouping);
    let mut reader = pool.get().await.expect("connection");
    let snapshot = beacon_store::postgres::read_snapshot(&mut reader)
        .await
        .expect("snapshot");
    let mut groups = query
        .fetch(&*snapshot, &pieces, Read::Counters)
        .await
        .expect("rows");

    // The closing task's transaction commits between the two reads.
    let mut closer = pool.get().await.expect("connection");
    let tx = closer.transaction().await.expect("begin");
    let keys = sessions::idle_keys(&*tx, SITE, std::time::Duration::ZERO, 10)
        .await
        .expect("quiet sessions");
    let closed = sessions::close_idle(&*tx, SITE, &keys, std::time::Duration::ZERO)
        .await
        .expect("close");
    assert_eq!(closed.len(), 1);
    rollups::apply(&*tx, &Rollup::of_closed(&closed, &UtcCalendar))
        .await
        .expect("visit rows");
    tx.commit().await.expect("commit");

    query
        .add_open_visits(&*snapshot, &calendar, &pieces, &mut groups)
        .await
        .expect("open visits");
    let visits: i64 = groups.values().map(|s| s.visits).sum();
    assert_eq!(visits, 1, "the visit, once: {groups:?}");
    drop(snapshot);

    // The same two reads now, outside that snapshot: the visit is in the rows only.
    let mut groups = query
        .fetch(&**reader, &pieces, Read::Counters)
        .await
        .expect("rows");
    query
        .add_open_visits(&**reader, &calendar, &pieces, &mut groups)
        .await
        .expect("open visits");
    assert_eq!(groups.values().map(|s| s.visits).sum::<i64>(), 1);

    // Back to the pool, so that the schema can be dropped.
    drop((writer, closer, reader));
}

/// Against a real PostgreSQL: the top values read with pruning rank and count exactly as the
/// full breakdown's, and fewer values are read.
#[tokio::test]
async fn the_top_values_equal_the_full_breakdowns_top() {
    use beacon_pipeline::sketch::VisitorSketch;
    use chrono::{DateTime, Utc};

    let schema = TestSchema::migrated("top_values", 2).await;
    let pool = &schema.pool;
    let client = pool.get().await.expect("connection");

    let day0 = DateTime::<Utc>::from_timestamp(1_700_006_400, 0).expect("time"); // a midnight
    let day = chrono::Duration::days(1);
    let mut next_id = 0u64;
    for i in 0..40u64 {
        // Ten decoys with the most page views of all, from 90 visitors a day each: their
        // bounds are far above their visitors. Then pages whose every visitor saw them once
        // (bound = visitors), from 120 visitors a day down: the top ones outrank the decoys
        // only by a little, so a bound any lower than the truth would leave them out.
        let (value, visitors, pageviews) = if i < 10 {
            (format!("/decoy{i}"), 90, 10_000)
        } else {
            let visitors = (40 - i) * 4;
            (format!("/p{:02}", i - 10), visitors, visitors)
        };
        for d in 0..2 {
            let mut sketch = VisitorSketch::default();
            for _ in 0..visitors {
                sketch.insert(next_id);
                next_id += 1;
            }
            client
                .execute(
                    "INSERT INTO rollups (site, property, value, span, bucket, pageviews,
                         visitors) VALUES ('top.example', 'event:page', $1, 'day', $2, $3, $4)",
                    &[
                        &value,
                        &(day0 + day * d),
                        &(pageviews as i64),
                        &sketch.to_bytes(),
                    ],
                )
                .await
                .expect("insert");
        }
    }

    let all = ValueMatch::All;
    let query = RollupQuery {
        site: "top.example",
        tz: chrono_tz::UTC,
        property: "event:page",
        from: day0,
        to: day0 + day * 2,
        values: &all,
        grouping: Grouping::Value,
    };
    let ranked = |groups: &BTreeMap<GroupKey, Sums>| {
        let mut rows: Vec<(String, u64, i64)> = groups
            .iter()
            .map(|(k, s)| (format!("{k:?}"), s.visitors.count(), s.pageviews))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows
    };
    let full = ranked(&query.run(&**client).await.expect("full breakdown"));
    assert_eq!(full.len(), 40);
    for n in [1, 3, 10, 38, 40, 100] {
        let top = ranked(&query.run_top_visitors(&**client, n).await.expect("top"));
        let shown = n.min(40);
        assert_eq!(top[..shown], full[..shown], "top {n}");
        if n <= 3 {
            assert!(top.len() <= 20, "top {n} read {} values", top.len());
        }
    }
}
