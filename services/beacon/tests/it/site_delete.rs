//! `beacon site delete`: without `--yes` nothing goes; with it, the site and everything every
//! store holds of it (rollups and visits, archived events, its events in the stream, live
//! counters) are gone, while another site's data stays whole.

use std::time::Duration;

use crate::common::{beacon_fails, beacon_ok, stream_events, wait_all_acked};
use crate::ground_truth::{count, start_pipeline_with, wait_applied, wait_visits_closed};
use crate::lag_time::send_pageviews;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_site_removes_its_data_from_every_store_and_only_its() {
    let http = reqwest::Client::new();
    let pipeline = start_pipeline_with("site_delete", &http, &[]).await;
    let (gone, kept) = ("gt-utc.test", "gt-ny.test");
    for site in [gone, kept] {
        send_pageviews(&http, &pipeline.collector, site, 5).await;
    }
    let pool = pipeline.ns.pg().await;
    wait_applied(&pool, 10).await;
    wait_visits_closed(&pool).await;
    let js = pipeline.ns.jetstream().await;
    wait_all_acked(&js, &pipeline.ns.topology(), 2, Duration::from_secs(60)).await;
    let archive = pipeline.ns.archive().await;
    let held = |site: &'static str| {
        let (pool, archive, ns) = (pool.clone(), &archive, &pipeline.ns);
        async move {
            let rows = count(
                &pool,
                &format!("SELECT count(*) FROM rollups WHERE site = '{site}'"),
            )
            .await
            .expect("rollups");
            let visits = count(
                &pool,
                &format!("SELECT count(*) FROM sessions WHERE site = '{site}'"),
            )
            .await
            .expect("sessions");
            let mut archived = 0;
            archive
                .site_events(site, 0, 4_102_444_800_000, |_| archived += 1)
                .await
                .expect("archive");
            let subject = ns.topology().events_subject(site);
            let streamed = stream_events(ns)
                .await
                .iter()
                .filter(|(s, _)| *s == subject)
                .count();
            (rows, visits, archived, streamed)
        }
    };
    let before = held(gone).await;
    assert!(
        before.0 > 0 && before.1 > 0 && before.2 == 5 && before.3 == 5,
        "{before:?}"
    );
    let kept_before = held(kept).await;

    let said = beacon_fails(&pipeline.env, &["site", "delete", gone]);
    assert!(said.contains("--yes"), "{said}");
    assert_eq!(held(gone).await, before, "nothing deleted without --yes");

    beacon_ok(&pipeline.env, &["site", "delete", gone, "--yes"]);
    assert_eq!(held(gone).await, (0, 0, 0, 0));
    assert_eq!(held(kept).await, kept_before, "another site's data stays");
    let sites = beacon_ok(&pipeline.env, &["site", "list"]);
    assert!(!sites.contains(gone) && sites.contains(kept), "{sites}");
    let stats = http
        .get(format!(
            "{}/api/v1/stats/aggregate?site_id={gone}",
            pipeline.api
        ))
        .bearer_auth(&pipeline.key)
        .send()
        .await
        .expect("api");
    assert_eq!(stats.status(), 404);
    let redis = beacon_store::live::connect(&crate::common::redis_url())
        .await
        .expect("redis");
    let left: Vec<String> = fred::interfaces::ClientLike::custom(
        &redis,
        fred::cmd!("KEYS"),
        vec![format!("{}:*{gone}*", pipeline.ns.name)],
    )
    .await
    .expect("keys");
    assert!(left.is_empty(), "Redis keys left: {left:?}");
}
