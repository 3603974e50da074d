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
