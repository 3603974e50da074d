//! schemathesis (PyPI) against the OpenAPI document the API serves: generated and boundary
//! requests (NUL bytes included) to every operation of the API and the collector; no answer may be
//! a `5xx`, and every answer must match the document (status, content type, headers, schema).
//!
//! `BEACON_SCHEMATHESIS_EXAMPLES` sets the examples per operation (30 in CI); with
//! `BEACON_SCHEMATHESIS_REPORT=FILE` the outputs of the runs are written there.

use std::process::Command;
use std::time::Instant;

use serde_json::json;

use crate::common::env_or;
use crate::ground_truth::start_pipeline;

fn schemathesis() -> String {
    std::env::var("BEACON_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!(
            "BEACON_SCHEMATHESIS is not set: scripts/test installs schemathesis into \
             .services/schemathesis and sets it"
        )
    })
}

/// The checks: everything about a single answer (the stateful and authorization checks need
/// links between operations, which the document does not declare).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

struct Run {
    label: &'static str,
    base_url: String,
    selection: [&'static str; 2],
    header: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_within_its_document() {
    let http = reqwest::Client::new();
    let pipeline = start_pipeline("schemathesis", &http).await;
    let examples = env_or("BEACON_SCHEMATHESIS_EXAMPLES", "30");
    // The document's example site, with traffic, so that generated queries also meet answers
    // with data.
    crate::common::beacon_ok(
        &pipeline.env,
        &["site", "add", "example.com", "--owner", "truth@example.com"],
    );
    for page in ["/", "/pricing", "/blog"] {
        let answer = http
            .post(format!("{}/track", pipeline.collector))
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            )
            .json(&json!({"url": format!("https://example.com{page}")}))
            .send()
            .await
            .expect("collector");
        assert_eq!(answer.status(), 202);
    }
    let token =
        crate::common::beacon_ok(&pipeline.env, &["token", "create", "--site", "example.com"]);
    let document = format!("{}/api/openapi.json", pipeline.api);
    let runs = [
        Run {
            label: "Stats API (with an API key)",
            base_url: pipeline.api.clone(),
            selection: ["--exclude-tag", "collector"],
            header: Some(format!("Authorization: Bearer {}", pipeline.key)),
        },
        Run {
            label: "collector, anonymous",
            base_url: pipeline.collector.clone(),
            selection: ["--include-tag", "collector"],
            header: None,
        },
        Run {
            label: "collector, with the ingest token of example.com",
            base_url: pipeline.collector.clone(),
            selection: ["--include-tag", "collector"],
            header: Some(format!("Authorization: Bearer {}", token.trim())),
        },
    ];
    let mut report = String::new();
    let mut failed = Vec::new();
    for run in runs {
        let started = Instant::now();
        let mut command = Command::new(schemathesis());
        command
            // It keeps a database of examples in its working directory: not in the repository.
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .args(["run", &document, "--url", &run.base_url])
            .args(run.selection)
            .args(["--checks", CHECKS, "--max-examples", &examples])
            .args(["--seed", "20261203", "--no-color"]);
        if let Some(header) = &run.header {
            command.args(["--header", header]);
        }
        let output = command.output().expect("run schemathesis");
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        let summary: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.contains("SUMMARY"))
            .collect();
        report += &format!(
            "### {} ({} s)\n\n```\n{}\n```\n\n",
            run.label,
            started.elapsed().as_secs(),
            summary.join("\n")
        );
        if !output.status.success() {
            failed.push(format!("{}:\n{text}", run.label));
        }
    }
    println!("{report}");
    if let Ok(path) = std::env::var("BEACON_SCHEMATHESIS_REPORT") {
        std::fs::write(&path, &report).expect("write the schemathesis report");
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// The document the API serves is valid OpenAPI (openapi-spec-validator, beside schemathesis),
/// holds the API's and the collector's operations, and every operation in it is served where it
/// says (none answers the router's bare `404` or `405`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_valid_and_every_operation_in_it_is_served() {
    let http = reqwest::Client::new();
    let pipeline = start_pipeline("openapi_doc", &http).await;
    let document: serde_json::Value = http
        .get(format!("{}/api/openapi.json", pipeline.api))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("JSON");
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("beacon-openapi.json");
    std::fs::write(&file, document.to_string()).expect("write the document");
    let validator = std::path::Path::new(&schemathesis()).with_file_name("openapi-spec-validator");
    let output = Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", validator.display()));
    assert!(
        output.status.success(),
        "the served document is not valid OpenAPI:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Redirects are answers of their own (`/` to `/login`), not followed.
    let direct = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let paths = document["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        let collector = item["servers"][0]["url"] == "{collector}";
        let base = if collector {
            &pipeline.collector
        } else {
            &pipeline.api
        };
        for method in ["get", "post"] {
            if item.get(method).is_none() {
                continue;
            }
            let url = format!("{base}{}", path.replace("{sequence}", "1"));
            let answer = direct
                .request(method.to_uppercase().parse().expect("method"), &url)
                .header("authorization", format!("Bearer {}", pipeline.key))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("answer");
            let status = answer.status();
            let body = answer.bytes().await.expect("body");
            assert!(
                status != 405 && !(status == 404 && body.is_empty()),
                "{method} {url} is documented but not served ({status})"
            );
            checked += 1;
        }
    }
    // The API's operations, its health checks and the collector's five.
    assert!(checked >= 26, "only {checked} operations in the document");
    for path in [
        "/track",
        "/track/batch",
        "/api/event",
        "/api/v1/stats/aggregate",
    ] {
        assert!(paths.contains_key(path), "{path} is missing");
    }
}
