//! The chaos run: steady traffic for a while (`BEACON_CHAOS_SECONDS`, 45 s in CI) while the
//! collector, the archivers, the aggregators and the API are SIGKILLed at random, NATS and
//! PostgreSQL restart, MongoDB stops, NATS stalls until the collector's in-flight budget is
//! exhausted, and poison is published straight to the stream. Then conservation:
//!
//! - the ground-truth dataset (server-side sender with ids, resending until `202`) shows in every
//!   metric, series and breakdown exactly, before and after its visits close;
//! - one-shot browser events (never resent): each `202` is archived once and counted once, each
//!   plain `503` (and each refused connection) is absent, each "may have been stored" answer is
//!   there at most once;
//! - every poison message is dead-lettered by both consumers, nothing else is.
//!
//! With `BEACON_CHAOS_REPORT=FILE` the run's tally is written there (`scripts/chaos` does it for
//! the committed long run, `bench/results/chaos.md`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use beacon_jetstream::async_nats::{self, HeaderMap, jetstream};
use beacon_jetstream::{ConsumerKind, Topology, list_dead_letters};
use chrono::{Days, Utc};
use futures::TryStreamExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::chaos_fleet::{Fleet, Role};
use crate::common::{
    Namespace, PrivateMongo, PrivateNats, beacon_ok, env_or, free_port, test_event, wait_all_acked,
};
use crate::dataset::{Hit, Rng, SITES, generate};
use crate::ground_truth::{add_truth_site, count, geoip_db, site_tokens, wait_visits_closed};
use crate::truth_checks::verify;
use beacon_testkit::PrivatePostgres;

/// The site of the one-shot browser events (not one of the dataset's sites).
const BROWSER_SITE: &str = "chaos.example";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
/// A small in-flight budget, so that a stalled broker exhausts it.
const MAX_IN_FLIGHT: usize = 64;

/// What became of one one-shot browser event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Accepted,
    /// A plain `503` or a refused connection: certainly not stored.
    Refused,
    /// `503` "may have been stored", `408`, or the connection broke mid-request.
    Uncertain,
    Unexpected(String),
}

#[derive(Default)]
struct Tally {
    faults: BTreeMap<&'static str, usize>,
    /// Dataset requests and how they were answered (each refused one is sent again).
    dataset_requests: BTreeMap<String, usize>,
    /// Pathname of each one-shot event and its answer.
    browser: Vec<(String, Answer)>,
    capacity_refusals: usize,
    poison: Vec<(&'static str, u64)>,
}

fn classify(result: Result<(u16, String), reqwest::Error>) -> Answer {
    match result {
        Ok((202, _)) => Answer::Accepted,
        Ok((503, body)) if body.contains("may have been stored") => Answer::Uncertain,
        // The request timeout cut the handler off, perhaps while it waited for JetStream.
        Ok((408, _)) => Answer::Uncertain,
        Ok((503, _)) => Answer::Refused,
        Ok((status, body)) => Answer::Unexpected(format!("{status} {body}")),
        Err(e) if e.is_connect() => Answer::Refused,
        Err(_) => Answer::Uncertain,
    }
}

async fn send_browser_event(
    http: &reqwest::Client,
    collector: &str,
    n: usize,
) -> (String, Answer, bool) {
    let path = format!("/b/{n}");
    let body =
        json!({"n": "pageview", "u": format!("https://{BROWSER_SITE}{path}"), "d": BROWSER_SITE});
    let result = async {
        let response = http
            .post(format!("{collector}/api/event"))
            .header("user-agent", BROWSER)
            .header("content-type", "text/plain")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }
    .await;
    let at_capacity = matches!(&result, Ok((503, b)) if b.contains("at capacity"));
    (path, classify(result), at_capacity)
}

/// The server-side sender: the dataset in time order, each site's hits with its token, every
/// refused or broken request sent again (the hits carry their ids).
async fn send_dataset(
    http: reqwest::Client,
    collector: String,
    tokens: HashMap<String, String>,
    hits: Vec<Hit>,
    pace: Duration,
    tally: Arc<Mutex<Tally>>,
) {
    let mut sorted = hits;
    sorted.sort_by_key(|h| h.ts_ms);
    for chunk in sorted.chunks(40) {
        let mut by_site: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for hit in chunk {
            by_site.entry(hit.site).or_default().push(&hit.body);
        }
        for (site, bodies) in by_site {
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                let answer = async {
                    let response = http
                        .post(format!("{collector}/track/batch"))
                        .bearer_auth(&tokens[site])
                        .json(&bodies)
                        .send()
                        .await?;
                    let status = response.status().as_u16();
                    Ok::<_, reqwest::Error>((status, response.text().await.unwrap_or_default()))
                }
                .await;
                let label = match &answer {
                    Ok((status, _)) => status.to_string(),
                    Err(e) if e.is_connect() => "connection refused".into(),
                    Err(_) => "connection broken".into(),
                };
                *tally
                    .lock()
                    .await
                    .dataset_requests
                    .entry(label.clone())
                    .or_default() += 1;
                if label == "202" {
                    break;
                }
                assert!(
                    ["503", "408"].contains(&label.as_str()) || label.starts_with("connection"),
                    "dataset request answered {label}: {answer:?}"
                );
                assert!(
                    Instant::now() < deadline,
                    "dataset chunk not accepted in 180 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        tokio::time::sleep(pace).await;
    }
}

/// Publishes hostile envelopes and raw garbage straight to the stream, as anyone with access to
/// the NATS account could.
async fn publish_poison(
    nats_url: &str,
    topology: &Topology,
    round: usize,
) -> Vec<(&'static str, u64)> {
    let mut nul_name = test_event(BROWSER_SITE, round);
    nul_name.name = "x\u{0}y".into();
    let mut nul_key = test_event(BROWSER_SITE, round);
    nul_key.props.insert("k\u{0}".into(), "v".into());
    let mut far_future = test_event(BROWSER_SITE, round);
    far_future.timestamp_ms = i64::MAX;
    let payloads: Vec<(&'static str, Vec<u8>)> = vec![
        ("name", beacon_schemas::encode(&nul_name).expect("encode")),
        ("props", beacon_schemas::encode(&nul_key).expect("encode")),
        (
            "timestamp_ms",
            beacon_schemas::encode(&far_future).expect("encode"),
        ),
        ("not MessagePack", b"\xc1\xff garbage".to_vec()),
    ];
    let Ok(client) = async_nats::connect(nats_url).await else {
        return Vec::new();
    };
    let js = jetstream::new(client);
    let mut stored = Vec::new();
    for (n, (what, payload)) in payloads.into_iter().enumerate() {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("poison-{round}-{n}").as_str());
        let subject = topology.events_subject(BROWSER_SITE);
        if let Ok(ack) = js
            .publish_with_headers(subject, headers, payload.into())
            .await
            && let Ok(Ok(ack)) = tokio::time::timeout(Duration::from_secs(5), ack).await
        {
            stored.push((what, ack.sequence));
        }
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_loses_nothing_and_counts_nothing_twice() {
    let seconds: u64 = env_or("BEACON_CHAOS_SECONDS", "45")
        .parse()
        .expect("BEACON_CHAOS_SECONDS");
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut nats = PrivateNats::start();
    let mut pg = PrivatePostgres::start();
    let mut mongo = PrivateMongo::start();
    let ns = Namespace::new("chaos");
    let mut env = ns.env();
    env.insert("BEACON_NATS_URL".into(), nats.url());
    env.insert("BEACON_POSTGRES_URL".into(), pg.url());
    env.insert("BEACON_MONGO_URL".into(), mongo.url());
    env.insert("BEACON_GEOIP_DB".into(), geoip_db());
    env.insert("BEACON_RATE_LIMIT".into(), "0".into());
    env.insert("BEACON_MAX_IN_FLIGHT".into(), MAX_IN_FLIGHT.to_string());
    env.insert("BEACON_CONSUMER_ACK_WAIT".into(), "3s".into());
    env.insert("BEACON_CONSUMER_BATCH".into(), "100".into());
    env.insert("BEACON_NATS_TIMEOUT".into(), "2s".into());
    env.insert("BEACON_HTTP_REQUEST_TIMEOUT".into(), "10s".into());
    // Short waits on PostgreSQL, so that a request the restart catches is answered (503) within
    // the request timeout rather than cut off (408).
    env.insert("BEACON_POSTGRES_TIMEOUT".into(), "3s".into());
    // Longer than any delay the faults cause, as the 30-minute default is longer than any delay
    // of a healthy pipeline: a visit closes only when nothing more is coming.
    env.insert("BEACON_SESSION_CLOSE_AFTER".into(), "30s".into());
    let (c, a) = (free_port(), free_port());
    env.insert("BEACON_COLLECTOR_ADDR".into(), format!("127.0.0.1:{c}"));
    env.insert("BEACON_API_ADDR".into(), format!("127.0.0.1:{a}"));
    let collector = format!("http://127.0.0.1:{c}");
    let api = format!("http://127.0.0.1:{a}");
    beacon_ok(&env, &["migrate"]);
    beacon_ok(&env, &["user", "add", "chaos@example.com"]);
    let key = beacon_ok(&env, &["key", "create", "--user", "chaos@example.com"])
        .trim()
        .to_string();
    for (site, tz) in SITES
        .iter()
        .map(|(s, tz)| (*s, tz.name()))
        .chain([(BROWSER_SITE, "UTC")])
    {
        add_truth_site(&env, site, tz, "chaos@example.com");
    }
    let tokens = site_tokens(&env);
    let mut fleet = Fleet::start(&env, &http, &collector, &api).await;

    // Enough visitors that the dataset flows for the whole run, at least as many as CI's, and at
    // most 500 a site: above 512 distinct visitors the counts are HyperLogLog estimates, which the
    // exact ground truth would call wrong.
    let visitors = (seconds as usize).clamp(40, 500);
    let first_day = Utc::now().date_naive() - Days::new(9);
    let dataset = generate(0xc4a05, first_day, 3, visitors);
    let counted = dataset.hits.iter().filter(|h| !h.bot).count();
    let chunks = dataset.hits.len().div_ceil(40) as u32;
    let pace = Duration::from_secs(seconds) / chunks.max(1);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let dataset_flow = tokio::spawn(send_dataset(
        http.clone(),
        collector.clone(),
        tokens,
        dataset.hits.clone(),
        pace,
        tally.clone(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let browser_flow = {
        let (http, collector, tally, stop) =
            (http.clone(), collector.clone(), tally.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let (path, answer, _) = send_browser_event(&http, &collector, n).await;
                tally.lock().await.browser.push((path, answer));
                n += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    // The faults, one every 1.5–4 s, in a seeded random order.
    let mut rng = Rng::new(0xdead_beef ^ seconds);
    let mut browser_n = 1_000_000;
    let mut poison_round = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(1500 + rng.below(2500))).await;
        fleet.assert_running();
        let fault = match rng.below(10) {
            0 => fleet.kill_and_restart(Role::Collector, 0),
            1 => fleet.kill_and_restart(Role::Archiver, rng.below(2) as usize),
            2 => fleet.kill_and_restart(Role::Aggregator, rng.below(2) as usize),
            3 => {
                for i in 0..2 {
                    fleet.kill_and_restart(Role::Archiver, i);
                    fleet.kill_and_restart(Role::Aggregator, i);
                }
                "SIGKILL of both archivers and both aggregators"
            }
            4 => fleet.kill_and_restart(Role::Api, 0),
            5 => {
                nats.stop();
                tokio::time::sleep(Duration::from_millis(1000 + rng.below(1500))).await;
                nats.resume();
                "NATS restart (SIGKILL, then start)"
            }
            6 => {
                pg.stop();
                tokio::time::sleep(Duration::from_millis(1000 + rng.below(1500))).await;
                pg.resume();
                "PostgreSQL restart (immediate stop, then start)"
            }
            7 => {
                mongo.stop();
                tokio::time::sleep(Duration::from_millis(2000 + rng.below(3000))).await;
                mongo.resume();
                "MongoDB stopped for 2–5 s"
            }
            8 => {
                // NATS stalls; a burst of browser events holds the whole in-flight budget, the
                // rest are refused at once; the stall ends before the collector's patience.
                nats.freeze();
                let burst: Vec<_> = (0..MAX_IN_FLIGHT * 2)
                    .map(|i| {
                        let (http, collector) = (http.clone(), collector.clone());
                        tokio::spawn(async move {
                            send_browser_event(&http, &collector, browser_n + i).await
                        })
                    })
                    .collect();
                browser_n += MAX_IN_FLIGHT * 2;
                tokio::time::sleep(Duration::from_millis(2000)).await;
                nats.thaw();
                for task in burst {
                    let (path, answer, at_capacity) = task.await.expect("burst request");
                    let mut t = tally.lock().await;
                    t.capacity_refusals += usize::from(at_capacity);
                    t.browser.push((path, answer));
                }
                "NATS stalled 2 s under a burst (in-flight budget exhausted)"
            }
            _ => {
                let stored = publish_poison(&nats.url(), &ns.topology(), poison_round).await;
                poison_round += 1;
                tally.lock().await.poison.extend(stored);
                "poison published to the stream"
            }
        };
        *tally.lock().await.faults.entry(fault).or_default() += 1;
    }
    stop.store(true, Ordering::Relaxed);
    browser_flow.await.expect("browser flow");
    dataset_flow.await.expect("dataset flow");
    fleet.assert_running();
    fleet.wait_ready().await;
    let fault_seconds = started.elapsed().as_secs();

    // Everything in the stream is acknowledged by both consumers: nothing waits behind poison.
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    wait_all_acked(&js, &ns.topology(), 2, Duration::from_secs(180)).await;
    let tally = Arc::try_unwrap(tally)
        .ok()
        .expect("flows done")
        .into_inner();

    // The archive: every dataset hit the collector kept once, every browser `202` once, no
    // refused one; "uncertain" ones at most once (`_id` is unique; a second copy would need a
    // second id, so count by path).
    let archive = beacon_store::Archive::connect(&mongo.url(), &ns.name)
        .await
        .expect("mongo");
    let dataset_ids: HashSet<String> = dataset
        .hits
        .iter()
        .filter(|h| !h.bot)
        .map(|h| {
            h.body["id"]
                .as_str()
                .expect("dataset hits carry ids")
                .to_string()
        })
        .collect();
    let mut archived_dataset = 0usize;
    let mut browser_paths: HashMap<String, usize> = HashMap::new();
    let mut cursor = archive
        .events()
        .find(mongodb::bson::doc! {})
        .await
        .expect("find");
    while let Some(doc) = cursor.try_next().await.expect("archive") {
        let id = doc.get_str("_id").expect("_id");
        if doc.get_str("site") == Ok(BROWSER_SITE) {
            *browser_paths
                .entry(doc.get_str("pathname").expect("pathname").to_string())
                .or_default() += 1;
        } else {
            assert!(
                dataset_ids.contains(id),
                "archived event {id} was never sent"
            );
            archived_dataset += 1;
        }
    }
    assert_eq!(
        archived_dataset,
        dataset_ids.len(),
        "every dataset hit archived exactly once"
    );
    let mut outcome: BTreeMap<&str, usize> = BTreeMap::new();
    for (path, answer) in &tally.browser {
        let archived = browser_paths.get(path).copied().unwrap_or(0);
        match answer {
            Answer::Accepted => assert_eq!(archived, 1, "{path} got 202"),
            Answer::Refused => assert_eq!(archived, 0, "{path} was refused"),
            Answer::Uncertain => assert!(archived <= 1, "{path} archived {archived} times"),
            Answer::Unexpected(what) => panic!("{path} answered {what}"),
        }
        let label = match (answer, archived) {
            (Answer::Accepted, _) => "202",
            (Answer::Refused, _) => "refused (503 or connection refused)",
            (_, 0) => "uncertain, not stored",
            _ => "uncertain, stored once",
        };
        *outcome.entry(label).or_default() += 1;
    }
    let stored_paths: usize = browser_paths.values().sum();
    assert_eq!(
        browser_paths.len(),
        stored_paths,
        "no browser event stored twice"
    );

    // The rollups: the dataset in every metric; each stored browser event counted once.
    let pool = beacon_store::postgres::pool(&pg.url(), &ns.name, 2).expect("pool");
    let mut checked = verify(&http, &api, &key, &dataset, "after the chaos", true).await;
    let counted_pages = browser_pageviews(&http, &api, &key).await;
    assert_eq!(
        counted_pages.len(),
        browser_paths.len(),
        "one page row per stored browser event"
    );
    for (path, pageviews) in &counted_pages {
        assert_eq!(
            browser_paths.get(path),
            Some(pageviews),
            "{path}: pageviews"
        );
    }
    wait_visits_closed(&pool).await;
    checked += verify(
        &http,
        &api,
        &key,
        &dataset,
        "after the chaos, every visit closed",
        true,
    )
    .await;
    let applied = count(&pool, "SELECT count(*) FROM applied_events")
        .await
        .expect("applied");
    assert_eq!(
        applied as usize,
        counted + stored_paths,
        "one applied id per stored event"
    );

    // Dead letters: each poison message once per consumer, nothing else.
    let letters = list_dead_letters(&js, &ns.topology())
        .await
        .expect("dead letters");
    let poison: HashSet<u64> = tally.poison.iter().map(|(_, seq)| *seq).collect();
    for kind in [ConsumerKind::Archiver, ConsumerKind::Aggregator] {
        let consumer = ns.topology().consumer_name(kind);
        let mine: HashSet<u64> = letters
            .iter()
            .filter(|l| l.consumer == consumer)
            .map(|l| l.stream_sequence)
            .collect();
        assert_eq!(
            mine, poison,
            "{consumer}: dead letters are exactly the poison"
        );
    }
    fleet.assert_running();

    let report = Report {
        seconds: fault_seconds,
        tally: &tally,
        browser_sent: tally.browser.len(),
        outcome,
        dataset_hits: dataset.hits.len(),
        counted,
        checked,
        letters: letters.len(),
    }
    .render();
    println!("{report}");
    if let Ok(path) = std::env::var("BEACON_CHAOS_REPORT") {
        std::fs::write(&path, report).expect("write the chaos report");
    }
}

/// Pageviews of each page of the browser site, today and yesterday (UTC), from the Stats API.
async fn browser_pageviews(http: &reqwest::Client, api: &str, key: &str) -> HashMap<String, usize> {
    let today = Utc::now().date_naive();
    let range = format!("{},{}", today - Days::new(1), today);
    let mut out = HashMap::new();
    for page in 1.. {
        let url = format!(
            "{api}/api/v1/stats/breakdown?site_id={BROWSER_SITE}&period=custom&date={range}&property=event:page&metrics=pageviews&limit=1000&page={page}"
        );
        let body: Value = http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("api")
            .json()
            .await
            .expect("json");
        let rows = body["results"].as_array().expect("results").clone();
        for row in &rows {
            let path = row["page"].as_str().expect("page").to_string();
            out.insert(path, row["pageviews"].as_u64().expect("pageviews") as usize);
        }
        if rows.len() < 1000 {
            break;
        }
    }
    out
}

struct Report<'a> {
    seconds: u64,
    tally: &'a Tally,
    browser_sent: usize,
    outcome: BTreeMap<&'static str, usize>,
    dataset_hits: usize,
    counted: usize,
    checked: usize,
    letters: usize,
}

impl Report<'_> {
    fn render(&self) -> String {
        let mut out = format!(
            "## Chaos run: {} s of faults\n\n### Faults injected\n\n| fault | times |\n|---|---:|\n",
            self.seconds
        );
        for (fault, n) in &self.tally.faults {
            out += &format!("| {fault} | {n} |\n");
        }
        out += &format!(
            "\n### Server-side sender (ground-truth dataset, resends until `202`)\n\n\
             {} hits ({} counted, the rest bots the collector drops), in requests answered:\n\n| answer | requests |\n|---|---:|\n",
            self.dataset_hits, self.counted
        );
        for (answer, n) in &self.tally.dataset_requests {
            out += &format!("| {answer} | {n} |\n");
        }
        out += &format!(
            "\nArchived exactly once: {c} of {c}. Numbers compared with the ground truth through the \
             Stats API (every metric, series and breakdown, before and after the visits closed): \
             {}, mismatches 0.\n",
            self.checked,
            c = self.counted
        );
        out += &format!(
            "\n### One-shot browser events (never resent)\n\n{} sent; {} refused at once because the \
             in-flight budget was exhausted.\n\n| answer | events |\n|---|---:|\n",
            self.browser_sent, self.tally.capacity_refusals
        );
        for (label, n) in &self.outcome {
            out += &format!("| {label} | {n} |\n");
        }
        out += "\nEvery `202` archived once and counted once; every refused one absent; lost 0, \
                duplicated 0.\n";
        out += &format!(
            "\n### Poison\n\n{} messages published straight to the stream; {} dead letters: each \
             poison message once per consumer, no other event.\n",
            self.tally.poison.len(),
            self.letters
        );
        out
    }
}
