//! The hostile corpus: while 1,000 ordinary page views flow through `beacon all`, every kind of
//! hostile request the issue names is sent to every ingest endpoint. Each hostile request is
//! refused with a 4xx naming its field (or, where the text is cleaned by rule, accepted and
//! counted like any event); every accepted event is counted exactly once; nothing is
//! dead-lettered (the collector let nothing poisonous through); every visit closes, none is
//! quarantined; the process is alive at the end.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{env_or, eventually};
use crate::ground_truth::{count, start_pipeline, wait_visits_closed};

const SITE: &str = "gt-utc.test";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";

/// One hostile request: endpoint, body, whether it carries the site's token, the statuses
/// allowed, and the field a 4xx must name (if any).
struct Case {
    what: String,
    path: &'static str,
    body: String,
    token: bool,
    status: u16,
    field: Option<&'static str>,
}

fn case(
    what: impl Into<String>,
    path: &'static str,
    body: String,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    Case {
        what: what.into(),
        path,
        body,
        token: false,
        status,
        field,
    }
}

fn corpus() -> Vec<Case> {
    let url = format!("https://{SITE}/page");
    let mut cases = Vec::new();
    // A NUL and an escape character in every text field of every endpoint.
    for bad in ["\u{0}", "\u{1b}", "\u{7f}", "\u{85}"] {
        let t = |body: Value| body.to_string();
        cases.push(case(
            format!("track name {bad:?}"),
            "/track",
            t(json!({"url": url, "name": format!("a{bad}b")})),
            400,
            Some("name"),
        ));
        cases.push(case(
            format!("track url {bad:?}"),
            "/track",
            t(json!({"url": format!("{url}/a{bad}b")})),
            400,
            Some("url"),
        ));
        cases.push(case(
            format!("track site {bad:?}"),
            "/track",
            t(json!({"url": url, "site": format!("gt{bad}.test")})),
            400,
            Some("site"),
        ));
        cases.push(case(
            format!("track referrer {bad:?}"),
            "/track",
            t(json!({"url": url, "referrer": format!("https://x.com/a{bad}b")})),
            400,
            Some("referrer"),
        ));
        cases.push(case(
            format!("track prop key {bad:?}"),
            "/track",
            t(json!({"url": url, "props": {format!("k{bad}"): "v"}})),
            400,
            Some("props"),
        ));
        cases.push(case(
            format!("batch name {bad:?}"),
            "/track/batch",
            t(json!([{"url": url}, {"url": url, "name": format!("{bad}")}])),
            400,
            Some("[1].name"),
        ));
        cases.push(case(
            format!("plausible n {bad:?}"),
            "/api/event",
            t(json!({"n": format!("x{bad}y"), "u": url})),
            400,
            Some("n"),
        ));
        cases.push(case(
            format!("plausible u {bad:?}"),
            "/api/event",
            t(json!({"n": "pageview", "u": format!("{url}/a{bad}b")})),
            400,
            Some("u"),
        ));
        cases.push(case(
            format!("plausible d {bad:?}"),
            "/api/event",
            t(json!({"n": "pageview", "u": url, "d": format!("{SITE},a{bad}b")})),
            400,
            Some("d"),
        ));
        cases.push(case(
            format!("plausible r {bad:?}"),
            "/api/event",
            t(json!({"n": "pageview", "u": url, "r": format!("https://x.com/a{bad}b")})),
            400,
            Some("r"),
        ));
        cases.push(case(
            format!("plausible p key {bad:?}"),
            "/api/event",
            t(json!({"n": "e", "u": url, "p": {format!("{bad}"): "v"}})),
            400,
            Some("p"),
        ));
    }
    // Server-side fields without a token; far-past and far-future times with one.
    for (field, value) in [
        ("id", json!("0192f3a4-5b6c-7d8e-9f01-23456789abcd")),
        ("timestamp", json!(1)),
        ("ip", json!("203.0.113.9")),
        ("user_agent", json!(FIREFOX)),
    ] {
        let mut body = json!({"url": url});
        body[field] = value;
        cases.push(case(
            format!("anonymous {field}"),
            "/track",
            body.to_string(),
            401,
            Some(field),
        ));
    }
    for (what, ts) in [
        ("far future", json!("9999-12-31T23:59:59Z")),
        ("before 1970", json!(-5)),
        ("huge number", json!(1e300)),
        ("year 0", json!("0000-01-01T00:00:00Z")),
    ] {
        let mut c = case(
            format!("token timestamp {what}"),
            "/track",
            json!({"url": url, "timestamp": ts}).to_string(),
            400,
            Some("timestamp"),
        );
        c.token = true;
        cases.push(c);
    }
    // Sizes: every limit plus one byte, long values, many props, long domain lists, nesting.
    cases.push(case(
        "10k-character name",
        "/track",
        json!({"url": url, "name": "n".repeat(10_000)}).to_string(),
        400,
        Some("name"),
    ));
    cases.push(case(
        "10k-character prop",
        "/track",
        json!({"url": url, "props": {"k": "v".repeat(10_000)}}).to_string(),
        400,
        Some("props.k"),
    ));
    cases.push(case("31 props", "/track", json!({"url": url, "props": (0..31).map(|i| (i.to_string(), json!("x"))).collect::<serde_json::Map<_, _>>()}).to_string(), 400, Some("props")));
    cases.push(case(
        "url of 2049 bytes",
        "/track",
        json!({"url": format!("{url}/{}", "a".repeat(2049 - url.len() - 1))}).to_string(),
        400,
        Some("url"),
    ));
    cases.push(case("1000 distinct d", "/api/event", json!({"n": "pageview", "u": url, "d": (0..1000).map(|i| format!("s{i}.test")).collect::<Vec<_>>().join(",")}).to_string(), 400, Some("d")));
    let body_limit = 64 * 1024;
    let pad = |n: usize| json!({"url": url, "props": {"k": "v"}, "x": "p".repeat(n)}).to_string();
    let over = pad(body_limit + 1 - pad(0).len());
    assert_eq!(over.len(), body_limit + 1);
    cases.push(case("body 64 KiB + 1", "/track", over.clone(), 413, None));
    cases.push(case(
        "plausible body 64 KiB + 1",
        "/api/event",
        over,
        413,
        None,
    ));
    cases.push(case(
        "batch of 1001",
        "/track/batch",
        json!(vec![json!({"url": url}); 1001]).to_string(),
        400,
        None,
    ));
    cases.push(case(
        "deep nesting",
        "/track",
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        413,
        None,
    ));
    cases.push(case(
        "nested 200 deep",
        "/track",
        format!(
            r#"{{"url": "{url}", "props": {}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        ),
        400,
        None,
    ));
    cases.push(case(
        "lone surrogate",
        "/track",
        format!(r#"{{"url": "{url}", "name": "\ud800"}}"#),
        400,
        None,
    ));
    cases.push(case(
        "name is a huge number",
        "/api/event",
        format!(r#"{{"n": 1e999, "u": "{url}"}}"#),
        400,
        None,
    ));
    cases.push(case(
        "scroll depth out of range",
        "/api/event",
        json!({"n": "engagement", "u": url, "sd": -1, "e": -1}).to_string(),
        400,
        Some("sd"),
    ));
    cases.push(case(
        "revenue of 41 digits",
        "/api/event",
        json!({"n": "Buy", "u": url, "$": {"amount": "1".repeat(41), "currency": "EUR"}})
            .to_string(),
        400,
        Some("$.amount"),
    ));
    cases
}

/// Requests that are hostile in form but cleaned by rule: accepted and counted like any event.
fn cleaned() -> Vec<(&'static str, String)> {
    let url = format!("https://{SITE}/clean");
    let mut bodies = vec![
        (
            "/track",
            json!({"url": url, "props": {"title": "line\nbreak\u{0}nul"}}).to_string(),
        ),
        (
            "/api/event",
            json!({"n": "pageview", "u": url, "d": vec![SITE; 1000].join(",")}).to_string(),
        ),
    ];
    for param in [
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "ref",
        "source",
    ] {
        bodies.push((
            "/api/event",
            json!({"n": "pageview", "u": format!("{url}?{param}=%00x%00")}).to_string(),
        ));
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_while_ordinary_events_count_exactly_once() {
    let http = reqwest::Client::new();
    let mut pipeline = start_pipeline("corpus", &http).await;
    let collector = pipeline.collector.clone();
    let token = pipeline.tokens[SITE].clone();
    // `BEACON_CORPUS_ROUNDS=N` (1 in CI) sends the corpus N times beside N × 1,000 page views.
    let rounds: usize = env_or("BEACON_CORPUS_ROUNDS", "1")
        .parse()
        .expect("BEACON_CORPUS_ROUNDS");

    // 1,000 ordinary page views a round from 100 visitors, sent while the corpus is sent.
    let flow = {
        let (http, collector) = (http.clone(), collector.clone());
        tokio::spawn(async move {
            let mut accepted = 0;
            for n in 0..1000 * rounds {
                let r = http
                    .post(format!("{collector}/track"))
                    .header("user-agent", FIREFOX)
                    .header("x-forwarded-for", format!("198.51.100.{}", n % 100))
                    .json(&json!({"url": format!("https://{SITE}/p/{}", n % 7)}))
                    .send()
                    .await
                    .expect("answer");
                assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
                accepted += 1;
            }
            accepted
        })
    };
    let mut refused = 0;
    let mut cleaned_accepted = 0;
    for _ in 0..rounds {
        for c in corpus() {
            let mut request = http
                .post(format!("{collector}{}", c.path))
                .header("user-agent", FIREFOX)
                .header("content-type", "application/json")
                .body(c.body.clone());
            if c.token {
                request = request.bearer_auth(&token);
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", c.what));
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, c.status, "{}: {body}", c.what);
            if let Some(field) = c.field {
                assert_eq!(body["field"], field, "{}: {body}", c.what);
            }
            refused += 1;
        }
        for (path, body) in cleaned() {
            let r = http
                .post(format!("{collector}{path}"))
                .header("user-agent", FIREFOX)
                .header("content-type", "text/plain")
                .body(body.clone())
                .send()
                .await
                .expect("answer");
            assert_eq!(
                r.status(),
                202,
                "{body}: {}",
                r.text().await.unwrap_or_default()
            );
            cleaned_accepted += 1;
        }
    }
    let accepted = flow.await.expect("flow") + cleaned_accepted;
    assert!(refused > 60 * rounds, "the corpus ran: {refused} refused");

    let pool = pipeline.ns.pg().await;
    eventually(
        "every accepted event applied",
        Duration::from_secs(60),
        || async {
            let n = count(&pool, "SELECT count(*) FROM applied_events").await?;
            (n >= accepted).then_some(())
        },
    )
    .await;
    // Every accepted event is a page view: counted exactly once.
    let pageviews = count(
        &pool,
        &format!("SELECT coalesce(sum(pageviews), 0)::int8 FROM rollups WHERE site = '{SITE}' AND property = '' AND span = '15m'"),
    )
    .await
    .expect("pageviews");
    assert_eq!(pageviews, accepted);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM applied_events").await,
        Some(accepted)
    );
    wait_visits_closed(&pool).await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM sessions WHERE quarantine IS NOT NULL"
        )
        .await,
        Some(0)
    );
    let letters = beacon_jetstream::list_dead_letters(
        &pipeline.ns.jetstream().await,
        &pipeline.ns.topology(),
    )
    .await
    .expect("dead letters");
    assert!(
        letters.is_empty(),
        "the collector let poison through: {letters:?}"
    );
    pipeline.process.assert_running();
    println!(
        "{rounds} round(s): {refused} hostile requests refused as expected, {accepted} events \
         accepted ({cleaned_accepted} of them cleaned) and each counted once, 0 dead letters, \
         0 quarantined visits"
    );
}
