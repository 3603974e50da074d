//! Who may read what: API keys and the dashboard's sign-in cookie, tenant isolation on every
//! statistics endpoint, CSRF refusal, and the query cache following new data.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::common::{Beacon, Namespace, beacon_ok, eventually, free_port, wait_ready};

/// `beacon user add EMAIL --password-stdin` with `password` on stdin.
pub fn add_user_with_password(env: &HashMap<String, String>, email: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(["user", "add", email, "--password-stdin"])
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run beacon");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password");
    assert!(child.wait().expect("wait").success(), "user add {email}");
}

struct Owners {
    api: String,
    collector: String,
    alice_key: String,
    bob_key: String,
    _process: Beacon,
    ns: Namespace,
}

async fn two_owners(http: &reqwest::Client) -> Owners {
    let ns = Namespace::new("owners");
    let mut env = ns.env();
    let (c, a) = (free_port(), free_port());
    env.insert("BEACON_COLLECTOR_ADDR".into(), format!("127.0.0.1:{c}"));
    env.insert("BEACON_API_ADDR".into(), format!("127.0.0.1:{a}"));
    beacon_ok(&env, &["migrate"]);
    add_user_with_password(&env, "alice@example.com", "alice's long passphrase");
    add_user_with_password(&env, "bob@example.com", "bob's long passphrase");
    let key = |email: &str| {
        beacon_ok(&env, &["key", "create", "--user", email])
            .trim()
            .to_string()
    };
    let (alice_key, bob_key) = (key("alice@example.com"), key("bob@example.com"));
    for (site, owner) in [
        ("alice.example", "alice@example.com"),
        ("bob.example", "bob@example.com"),
    ] {
        beacon_ok(&env, &["site", "add", site, "--owner", owner]);
    }
    let mut process = Beacon::spawn(&env, &["all"]);
    let api = format!("http://127.0.0.1:{a}");
    let collector = format!("http://127.0.0.1:{c}");
    wait_ready(
        http,
        &format!("{api}/readyz"),
        &mut process,
        Duration::from_secs(60),
    )
    .await;
    wait_ready(
        http,
        &format!("{collector}/readyz"),
        &mut process,
        Duration::from_secs(60),
    )
    .await;
    Owners {
        api,
        collector,
        alice_key,
        bob_key,
        _process: process,
        ns,
    }
}

/// Every statistics endpoint for `site`.
fn endpoints(site: &str) -> Vec<String> {
    vec![
        format!("/api/stats?site={site}&period=day"),
        format!("/api/v1/stats/realtime/visitors?site_id={site}"),
        format!("/api/v1/stats/aggregate?site_id={site}&period=7d&metrics=visitors,visits"),
        format!("/api/v1/stats/timeseries?site_id={site}&period=7d"),
        format!("/api/v1/stats/breakdown?site_id={site}&period=7d&property=visit:source"),
        format!(
            "/api/v1/stats/aggregate?site_id={site}&period=7d&filters=visit:source%3D%3DGoogle"
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_owner_reads_another_owners_site_by_any_endpoint() {
    let http = reqwest::Client::new();
    let o = two_owners(&http).await;
    let get = |path: String, key: Option<&str>| {
        let request = http.get(format!("{}{path}", o.api));
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        async move {
            let response = request.send().await.expect("api answers");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    for path in endpoints("alice.example") {
        assert_eq!(
            get(path.clone(), Some(&o.alice_key)).await.0,
            StatusCode::OK,
            "{path}"
        );
        let (status, body) = get(path.clone(), Some(&o.bob_key)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(
            body["error"],
            json!("site 'alice.example' not found"),
            "{path}"
        );
        assert_eq!(
            get(path.clone(), None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            get(path.clone(), Some("bk_0000")).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let (_, sites) = get("/api/sites".into(), Some(&o.bob_key)).await;
    assert_eq!(
        sites,
        json!({"sites": [{"domain": "bob.example", "timezone": "UTC"}], "operator": false})
    );
    assert_eq!(
        get("/api/pipeline".into(), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The pipeline tells of every tenant's traffic: owners who are not operators get 403.
    assert_eq!(
        get("/api/pipeline".into(), Some(&o.bob_key)).await.0,
        StatusCode::FORBIDDEN
    );
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("beacon_session="))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_signs_in_with_a_strict_http_only_cookie_and_refuses_cross_site_posts() {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let o = two_owners(&http).await;
    let login = |email: &str, password: &str, origin: Option<&str>| {
        let mut request = http
            .post(format!("{}/login", o.api))
            .form(&[("email", email), ("password", password)]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };

    let signed_out = http.get(format!("{}/", o.api)).send().await.expect("get /");
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_out.headers()["location"], "/login");

    let wrong = login("alice@example.com", "guess", None)
        .await
        .expect("login");
    assert_eq!(wrong.headers()["location"], "/login?failed=1");
    assert!(session_cookie(&wrong).is_none());
    let unknown = login("nobody@example.com", "guess", None)
        .await
        .expect("login");
    assert_eq!(unknown.headers()["location"], "/login?failed=1");

    let host = o.api.trim_start_matches("http://").to_string();
    let forged = login(
        "alice@example.com",
        "alice's long passphrase",
        Some("https://evil.example"),
    )
    .await
    .expect("login");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "cross-site sign-in");

    let ok = login(
        "alice@example.com",
        "alice's long passphrase",
        Some(&format!("http://{host}")),
    )
    .await
    .expect("login");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let set_cookie = session_cookie(&ok).expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().expect("pair").to_string();
    let with_cookie = |path: &str| {
        http.get(format!("{}{path}", o.api))
            .header("cookie", &cookie)
            .send()
    };

    let page = with_cookie("/").await.expect("dashboard");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("dashboard.js"));
    assert_eq!(
        with_cookie("/api/v1/stats/aggregate?site_id=alice.example")
            .await
            .expect("own")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        with_cookie("/api/v1/stats/aggregate?site_id=bob.example")
            .await
            .expect("other")
            .status(),
        StatusCode::NOT_FOUND
    );
    let openapi: Value = with_cookie("/api/openapi.json")
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert_eq!(openapi["openapi"], json!("3.1.0"));
    // The pipeline page is for operators; made one, the same sign-in opens it.
    let refused = with_cookie("/pipeline").await.expect("pipeline page");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .text()
            .await
            .expect("html")
            .contains("beacon user operator")
    );
    let email = "alice@example.com";
    crate::common::beacon_ok(&o.ns.env(), &["user", "operator", email]);
    assert_eq!(
        with_cookie("/pipeline").await.expect("page").status(),
        StatusCode::OK
    );
    crate::common::beacon_ok(&o.ns.env(), &["user", "operator", email, "--revoke"]);
    assert_eq!(
        with_cookie("/pipeline").await.expect("page").status(),
        StatusCode::FORBIDDEN
    );

    let forged_logout = http
        .post(format!("{}/logout", o.api))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("logout");
    assert_eq!(forged_logout.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        with_cookie("/api/sites").await.expect("sites").status(),
        StatusCode::OK
    );

    let logout = http
        .post(format!("{}/logout", o.api))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&logout).is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(
        with_cookie("/api/sites").await.expect("sites").status(),
        StatusCode::UNAUTHORIZED,
        "the session ended on the server, not only in the browser"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_follow_new_data() {
    use fred::prelude::{ClientLike, KeysInterface};
    let http = reqwest::Client::new();
    let o = two_owners(&http).await;
    let pageviews = || async {
        let body: Value = http
            .get(format!(
                "{}/api/v1/stats/aggregate?site_id=alice.example&period=day&metrics=pageviews",
                o.api
            ))
            .bearer_auth(&o.alice_key)
            .send()
            .await
            .expect("aggregate")
            .json()
            .await
            .expect("json");
        body["results"]["pageviews"]["value"].as_i64().unwrap_or(-1)
    };
    let send = || async {
        let status = http
            .post(format!("{}/track", o.collector))
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            )
            .json(&json!({"url": "https://alice.example/"}))
            .send()
            .await
            .expect("track")
            .status();
        assert_eq!(status, StatusCode::ACCEPTED);
    };
    assert_eq!(pageviews().await, 0);
    // The answer is in Redis now; plant a different number in it: the next answer must be the
    // planted one, which only the cache can give.
    let redis = beacon_store::live::connect(&crate::common::redis_url())
        .await
        .expect("redis");
    let pattern = format!(
        "{}*",
        beacon_store::LiveKeys::new(&o.ns.name).cached("alice.example", 0, "")
    );
    let keys: Vec<String> = redis
        .custom(fred::cmd!("KEYS"), vec![pattern])
        .await
        .expect("keys");
    assert_eq!(keys.len(), 1, "one cached answer: {keys:?}");
    let planted = json!({"results": {"pageviews": {"value": 4242}}}).to_string();
    let _: () = redis
        .set(&keys[0], planted, None, None, false)
        .await
        .expect("plant");
    assert_eq!(
        pageviews().await,
        4242,
        "the same query answered from the cache"
    );
    for expected in [1, 2] {
        send().await;
        eventually(
            "the new page view in the answer",
            Duration::from_secs(30),
            || async { (pageviews().await == expected).then_some(()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled_per_account_with_retry_after() {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let o = two_owners(&http).await;
    let login = |email: &'static str, password: &'static str| {
        http.post(format!("{}/login", o.api))
            .form(&[("email", email), ("password", password)])
            .send()
    };
    for _ in 0..10 {
        let r = login("alice@example.com", "guess").await.expect("login");
        assert_eq!(r.headers()["location"], "/login?failed=1");
    }
    // The eleventh try is refused before any password is checked, even the right one.
    let r = login("alice@example.com", "alice's long passphrase")
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert!(session_cookie(&r).is_none());
}

/// Lifecycle of credentials: a user's keys are listed (never shown again) with when they were
/// last used, a revoked key stops working at once, and a new password signs every session out
/// and replaces the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_listed_and_revoked_and_a_new_password_signs_sessions_out() {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let o = two_owners(&http).await;
    let env = o.ns.env();
    let sites = |auth: (&'static str, String)| {
        http.get(format!("{}/api/sites", o.api))
            .header(auth.0, auth.1)
            .send()
    };
    let bearer = |key: &str| ("authorization", format!("Bearer {key}"));
    assert_eq!(
        sites(bearer(&o.alice_key)).await.expect("sites").status(),
        200
    );

    let listed: Value = serde_json::from_str(&beacon_ok(
        &env,
        &["key", "list", "--user", "alice@example.com", "--json"],
    ))
    .expect("json");
    let keys = listed.as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{listed}");
    let prefix = keys[0]["prefix"].as_str().expect("prefix");
    assert!(
        o.alice_key.starts_with(prefix) && prefix.len() < 12,
        "{listed}"
    );
    assert!(
        !listed.to_string().contains(&o.alice_key),
        "the key is never shown again"
    );
    assert!(
        keys[0]["last_used_at"].is_string(),
        "used just now: {listed}"
    );
    let id = keys[0]["id"].as_i64().expect("id").to_string();
    // Bob cannot revoke Alice's key by its id.
    crate::common::beacon_fails(
        &env,
        &["key", "revoke", "--user", "bob@example.com", "--id", &id],
    );
    assert_eq!(
        sites(bearer(&o.alice_key)).await.expect("sites").status(),
        200
    );
    beacon_ok(
        &env,
        &["key", "revoke", "--user", "alice@example.com", "--id", &id],
    );
    assert_eq!(
        sites(bearer(&o.alice_key)).await.expect("sites").status(),
        401
    );

    let login = |password: &'static str| {
        http.post(format!("{}/login", o.api))
            .form(&[("email", "alice@example.com"), ("password", password)])
            .send()
    };
    let signed_in = login("alice's long passphrase").await.expect("login");
    let cookie = session_cookie(&signed_in).expect("a session");
    let cookie = cookie.split(';').next().expect("cookie").to_string();
    assert_eq!(
        sites(("cookie", cookie.clone()))
            .await
            .expect("sites")
            .status(),
        200
    );
    let mut passwd = std::process::Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(["user", "passwd", "alice@example.com", "--password-stdin"])
        .envs(&env)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("beacon user passwd");
    std::io::Write::write_all(
        passwd.stdin.as_mut().expect("stdin"),
        b"a brand new passphrase\n",
    )
    .expect("write");
    assert!(passwd.wait().expect("wait").success());
    assert_eq!(
        sites(("cookie", cookie)).await.expect("sites").status(),
        401,
        "the old session is signed out"
    );
    assert!(session_cookie(&login("alice's long passphrase").await.expect("login")).is_none());
    assert!(session_cookie(&login("a brand new passphrase").await.expect("login")).is_some());
}
