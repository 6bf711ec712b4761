//! The REST API against its own OpenAPI document: the document is valid OpenAPI, and
//! schemathesis (from the test venv) drives every operation with generated requests — valid and
//! invalid ids, bodies, content types — checking status codes, content types and response
//! bodies against the document.

use std::process::Command;

use crate::{UiRun, WINDOWED_COUNTS};

#[tokio::test(flavor = "multi_thread")]
async fn the_api_conforms_to_its_openapi_document() {
    // A driver process: schemathesis finds the query's id in the list and stops it, as it
    // should; `sluice run` would exit then.
    let run = UiRun::cluster(WINDOWED_COUNTS).await;
    run.wait_for_batch("counts", 1).await;
    let doc = run.get_json("/api/v1/openapi.json", 200).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc:#}");
    for path in [
        "/api/v1/queries",
        "/api/v1/queries/{id}",
        "/api/v1/queries/{id}/lastProgress",
        "/api/v1/queries/{id}/recentProgress",
        "/api/v1/queries/{id}/stop",
        "/api/v1/jobs",
        "/api/v1/executors",
        "/api/v1/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
    let venv = sluice_tests::venv_python();
    let schemathesis = venv.parent().expect("venv bin").join("schemathesis");
    // schemathesis keeps a cache in its working directory: not in the repository.
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = Command::new(&schemathesis)
        .current_dir(scratch.path())
        .args([
            "run",
            &run.url("/api/v1/openapi.json"),
            "--checks",
            "all",
            // A syntactically valid body is not a valid job file; a 400 for it is right.
            "--exclude-checks",
            "positive_data_acceptance",
            // An endless stream: checked in tests/http/events.rs.
            "--exclude-path",
            "/api/v1/events",
            "--max-examples",
            "25",
            "--request-timeout",
            "20",
            "--seed",
            "17",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap_or_else(|e| panic!("schemathesis is needed ({}; tests/venv.sh installs it): {e}", schemathesis.display()));
    let report = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found the API and its document disagree:\n{report}");
    // The server is still there after the onslaught.
    run.get_json("/api/v1/queries", 200).await;
}
