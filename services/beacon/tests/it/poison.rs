//! Poison never stalls the line. Envelopes published straight to the stream with hostile text
//! (NUL in a name, a prop key, a UTM tag; times out of range) are dead-lettered by both consumers
//! while the events around them are archived and counted exactly once; a batch PostgreSQL refuses
//! because of one event is split until that event stands alone; a visit PostgreSQL refuses to
//! close is quarantined while the other visits of its site close.
//!
//! PostgreSQL's refusals are real: a trigger in the test's schema raises a data exception
//! (SQLSTATE 22023) for rows of a chosen site or value, the way a NUL or an oversized index row
//! makes PostgreSQL refuse data the envelope checks did not foresee.

use std::time::Duration;

use beacon_jetstream::async_nats::HeaderMap;
use beacon_jetstream::{ConsumerKind, list_dead_letters, pipeline_state};
use beacon_schemas::Event;

use crate::common::{
    Beacon, Namespace, archived_ids, beacon_ok, eventually, test_event, wait_all_acked,
};

/// Publishes each event's MessagePack (valid or not) under its own message id.
async fn publish_all(ns: &Namespace, events: &[Event]) {
    let js = ns.jetstream().await;
    let mut acks = Vec::new();
    for (n, event) in events.iter().enumerate() {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{}-{n}", event.id).as_str());
        let payload = beacon_schemas::encode(event).expect("encode");
        acks.push(
            js.publish_with_headers(
                ns.topology().events_subject(&event.site),
                headers,
                payload.into(),
            )
            .await
            .expect("send"),
        );
    }
    for ack in acks {
        ack.await.expect("stored");
    }
}

async fn pageviews(pool: &beacon_store::Pool, site: &str) -> i64 {
    pool.get()
        .await
        .expect("pg")
        .query_one(
            "SELECT coalesce(sum(pageviews), 0)::int8 FROM rollups
             WHERE site = $1 AND property = '' AND span = '15m'",
            &[&site],
        )
        .await
        .expect("sum")
        .get(0)
}

fn hostile_envelopes() -> Vec<(&'static str, Event)> {
    let base = || test_event("a.com", 5);
    let mut cases = Vec::new();
    let mut e = base();
    e.name = "x\u{0}y".into();
    cases.push(("name", e));
    let mut e = base();
    e.props.insert("k\u{0}".into(), "v".into());
    cases.push(("props", e));
    let mut e = base();
    e.props.insert("k".into(), "v\u{0}".into());
    cases.push(("props.k", e));
    let mut e = base();
    e.enrichment.utm_source = Some("\u{0}".into());
    cases.push(("enrichment.utm_source", e));
    let mut e = base();
    e.props.insert("big".into(), "x".repeat(10_000));
    cases.push(("props.big", e));
    let mut e = base();
    e.timestamp_ms = i64::MAX;
    cases.push(("timestamp_ms", e));
    let mut e = base();
    e.pathname = format!("/{}", "p".repeat(5_000));
    cases.push(("pathname", e));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_envelopes_are_dead_lettered_and_the_events_beside_them_counted_once() {
    let ns = Namespace::new("poison_env");
    let env = ns.env();
    beacon_ok(&env, &["migrate"]);
    let hostile = hostile_envelopes();
    let mut events = Vec::new();
    let mut good = Vec::new();
    // Poison spread through the stream, each among ordinary events of the same batch.
    for n in 0..300 {
        if n % 40 == 20
            && let Some((_, poison)) = hostile.get(n / 40)
        {
            events.push(poison.clone());
        }
        let event = test_event("a.com", n);
        good.push(event.id.to_string());
        events.push(event);
    }
    good.sort();
    publish_all(&ns, &events).await;

    let mut archiver = Beacon::spawn(&env, &["archiver"]);
    let mut aggregator = Beacon::spawn(&env, &["aggregator"]);
    wait_all_acked(
        &ns.jetstream().await,
        &ns.topology(),
        2,
        Duration::from_secs(60),
    )
    .await;
    archiver.assert_running();
    aggregator.assert_running();

    let archive = ns.archive().await;
    assert_eq!(
        archived_ids(&archive).await,
        good,
        "exactly the ordinary events are archived"
    );
    let pool = ns.pg().await;
    assert_eq!(
        pageviews(&pool, "a.com").await,
        300,
        "each ordinary event counted once"
    );

    let letters = list_dead_letters(&ns.jetstream().await, &ns.topology())
        .await
        .expect("dead letters");
    for kind in [ConsumerKind::Archiver, ConsumerKind::Aggregator] {
        let consumer = ns.topology().consumer_name(kind);
        let mine: Vec<_> = letters.iter().filter(|l| l.consumer == consumer).collect();
        assert_eq!(mine.len(), hostile.len(), "{consumer}: {mine:?}");
        for (field, _) in &hostile {
            assert!(
                mine.iter()
                    .any(|l| l.reason.contains(&format!("field `{field}`"))),
                "{consumer}: no dead letter names `{field}`: {mine:?}"
            );
        }
    }
}

/// Creates, in the namespace's schema, a trigger that makes PostgreSQL refuse rollup rows whose
/// site and property match, with a data exception.
async fn refuse_rollup_rows(pool: &beacon_store::Pool, condition: &str) {
    pool.get()
        .await
        .expect("pg")
        .batch_execute(&format!(
            "CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF {condition} THEN
                 RAISE EXCEPTION 'test refuses this row' USING ERRCODE = '22023';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_row BEFORE INSERT ON rollups
               FOR EACH ROW EXECUTE FUNCTION refuse_row();"
        ))
        .await
        .expect("trigger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_postgres_refuses_for_one_event_is_split_and_that_event_alone_dead_lettered() {
    let ns = Namespace::new("poison_pg");
    let env = ns.env();
    beacon_ok(&env, &["migrate"]);
    let pool = ns.pg().await;
    refuse_rollup_rows(&pool, "NEW.site = 'refused.example'").await;
    let mut events: Vec<Event> = (0..400).map(|n| test_event("a.com", n)).collect();
    let refused = test_event("refused.example", 1);
    events.insert(200, refused.clone());
    publish_all(&ns, &events).await;

    let mut aggregator = Beacon::spawn(&env, &["aggregator"]);
    // One consumer exists per kind; only the aggregator runs, so wait for its floor alone.
    let js = ns.jetstream().await;
    eventually(
        "the aggregator to acknowledge the whole stream",
        Duration::from_secs(60),
        || async {
            let state = pipeline_state(&js, &ns.topology()).await.ok()?;
            let name = ns.topology().consumer_name(ConsumerKind::Aggregator);
            state
                .consumers
                .iter()
                .any(|c| {
                    c.name == name
                        && c.ack_floor == state.stream.last_sequence
                        && c.ack_pending == 0
                })
                .then_some(())
        },
    )
    .await;
    aggregator.assert_running();
    assert_eq!(
        pageviews(&pool, "a.com").await,
        400,
        "the events beside it counted once"
    );
    assert_eq!(pageviews(&pool, "refused.example").await, 0);

    let letters = list_dead_letters(&js, &ns.topology())
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].stream_sequence, 201);
    assert!(
        letters[0].reason.contains("22023") && letters[0].reason.contains("test refuses this row"),
        "the reason is PostgreSQL's own, not \"db error\": {}",
        letters[0].reason
    );
    let applied: i64 = pool
        .get()
        .await
        .expect("pg")
        .query_one(
            "SELECT count(*) FROM applied_events WHERE event_id = $1",
            &[&refused.id.as_uuid()],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        applied, 0,
        "the refused event's transaction left nothing behind"
    );
}

/// Visits of a.com in the visit rows (closed ones).
async fn closed_visits(client: &tokio_postgres::Client) -> Option<i64> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(visits), 0)::int8 FROM rollups
             WHERE site = 'a.com' AND property = 'visit' AND span = '15m'",
            &[],
        )
        .await
        .ok()?;
    Some(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_postgres_refuses_to_close_is_quarantined_and_the_others_close() {
    let ns = Namespace::new("poison_close");
    let mut env = ns.env();
    env.insert("BEACON_SESSION_CLOSE_AFTER".into(), "1s".into());
    beacon_ok(&env, &["migrate"]);
    let pool = ns.pg().await;
    refuse_rollup_rows(
        &pool,
        "NEW.property = 'visit:utm_source' AND NEW.value = 'refused'",
    )
    .await;
    // Twenty visitors on one site; one of them came by a link its visit rows cannot hold.
    let mut events: Vec<Event> = (0..20).map(|n| test_event("a.com", n)).collect();
    for (n, event) in events.iter_mut().enumerate() {
        event.visitor_id = 1000 + n as u64;
    }
    events[7].enrichment.utm_source = Some("refused".into());
    publish_all(&ns, &events).await;

    let mut aggregator = Beacon::spawn(&env, &["aggregator"]);
    let client = pool.get().await.expect("pg");
    let visits = eventually(
        "the nineteen other visits to close",
        Duration::from_secs(60),
        || async {
            let visits = closed_visits(&client).await?;
            (visits >= 19).then_some(visits)
        },
    )
    .await;
    assert_eq!(visits, 19);
    let quarantined: Vec<serde_json::Value> =
        serde_json::from_str(&beacon_ok(&env, &["sessions", "quarantined", "--json"]))
            .expect("json");
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0]["visitor_id"], format!("{:016x}", 1007u64));
    assert!(
        quarantined[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("22023")),
        "{quarantined:?}"
    );
    let open: i64 = client
        .query_one("SELECT count(*) FROM sessions WHERE NOT closed", &[])
        .await
        .expect("open")
        .get(0);
    assert_eq!(
        open, 1,
        "the quarantined visit stays open (and counted by the API)"
    );

    // After the fix, `sessions retry` lets it close.
    client
        .batch_execute("DROP TRIGGER refuse_row ON rollups")
        .await
        .expect("drop trigger");
    beacon_ok(&env, &["sessions", "retry"]);
    eventually(
        "the released visit to close",
        Duration::from_secs(30),
        || async {
            let visits = closed_visits(&client).await?;
            (visits == 20).then_some(())
        },
    )
    .await;
    aggregator.assert_running();
}
