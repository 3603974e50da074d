//! The deployment kit counts right. Behind the TLS proxy every HTTPS site needs (Caddy, as
//! `docker-compose.yml` runs it, with `BEACON_TRUSTED_PROXIES` set to it), visitors are the clients,
//! not the proxy: 200 requests from 200 client addresses through Caddy count as 200 visitors, and
//! none is refused with `429` (the rate limit is per client address). And `beacon healthcheck`,
//! the container's health check, tells a ready process from none.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::common::{beacon_fails, beacon_ok, free_port, wait_for_port};
use crate::ground_truth::{start_pipeline_with, wait_applied};

/// Caddy reverse-proxying plain HTTP on a free port to `upstream` (`127.0.0.1:PORT`).
struct Caddy {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Caddy {
    fn start(upstream: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("beacon-caddy-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("caddy dir");
        let config = dir.join("Caddyfile");
        std::fs::write(
            &config,
            format!(
                "{{\n\tadmin off\n\tauto_https off\n}}\n\nhttp://127.0.0.1:{port} {{\n\treverse_proxy {upstream}\n}}\n"
            ),
        )
        .expect("write Caddyfile");
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&config)
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", &dir)
            .env("XDG_CONFIG_HOME", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("caddy.log")).expect("log"))
            .spawn()
            .expect("caddy must be installed (scripts/test installs it)");
        wait_for_port(port, "caddy", Duration::from_secs(20));
        Self { port, dir, child }
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_through_caddy_are_two_hundred_visitors() {
    let http = reqwest::Client::new();
    // Caddy connects to the collector from 127.0.0.1: the proxy the collector believes. The rate
    // limit is the default one (50 requests a second per client address, bursts of 100).
    let pipeline = start_pipeline_with(
        "proxy",
        &http,
        &[
            ("BEACON_TRUSTED_PROXIES", "127.0.0.1"),
            ("BEACON_RATE_LIMIT", "50"),
        ],
    )
    .await;
    let upstream = pipeline.collector.trim_start_matches("http://").to_string();
    let caddy = Caddy::start(&upstream);
    let site = "gt-utc.test";
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..200u8 {
        // Each client from an address of its own on loopback (127.0.0.2 to 127.0.0.201).
        let client = reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
            .build()
            .expect("client");
        let status = client
            .post(format!("http://127.0.0.1:{}/track", caddy.port))
            .header("user-agent", firefox)
            // A client's own X-Forwarded-For is not believed: Caddy replaces it.
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"url": format!("https://{site}/")}))
            .send()
            .await
            .expect("through caddy")
            .status()
            .as_u16();
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(statuses, [(202, 200)].into(), "answers through the proxy");
    wait_applied(&pipeline.ns.pg().await, 200).await;
    let today = Utc::now().date_naive();
    let body: Value = http
        .get(format!(
            "{}/api/v1/stats/aggregate?site_id={site}&period=day&date={today}&metrics=visitors,pageviews",
            pipeline.api
        ))
        .bearer_auth(&pipeline.key)
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    assert_eq!(body["results"]["visitors"]["value"], 200, "{body}");
    assert_eq!(body["results"]["pageviews"]["value"], 200, "{body}");
    drop(caddy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_tells_a_ready_beacon_from_none() {
    let http = reqwest::Client::new();
    let admin = format!("127.0.0.1:{}", free_port());
    let pipeline = start_pipeline_with("health", &http, &[("BEACON_ADMIN_ADDR", &admin)]).await;
    beacon_ok(&pipeline.env, &["healthcheck"]);
    let mut nobody = pipeline.env.clone();
    nobody.insert(
        "BEACON_ADMIN_ADDR".into(),
        format!("0.0.0.0:{}", free_port()),
    );
    let said = beacon_fails(&nobody, &["healthcheck"]);
    assert!(said.contains("/readyz"), "{said}");
}
