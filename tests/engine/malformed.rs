//! Malformed records follow the source's `mode` and are counted in progress.

use std::fs;

use sluice_tests::rows::{multiset, sorted_rows};
use sluice_tests::{path_lit, Harness};

const JSON: &str =
    "{\"id\":1,\"name\":\"ok\"}\n{\"id\":\"two\",\"name\":\"bad type\"}\n{not json\n{\"id\":4,\"name\":\"fine\"}\n";
const CSV: &str = "1,ok\nx,bad\n3\n4,fine\n";

async fn run(format: &str, data: &str, mode: &str, corrupt_col: bool) -> Result<(Vec<String>, u64), String> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(format!("in.{format}")), data).unwrap();
    let corrupt = if corrupt_col { ", _corrupt_record STRING" } else { "" };
    let h = Harness::start().await;
    let q = h
        .run(&format!(
            "CREATE STREAM ev (id BIGINT, name STRING{corrupt}) WITH ('connector'='files','format'='{format}','mode'='{mode}','path'='{}');
             CREATE SINK out WITH ('connector'='memory');
             SET 'trigger' = 'availableNow';
             INSERT INTO out SELECT * FROM ev;",
            path_lit(dir.path())
        ))
        .await
        .remove(0);
    let outcome = q.await_termination().await;
    let result = match outcome {
        Ok(()) => {
            let rows = sorted_rows(&h.session.memory_table("out").unwrap().all_rows());
            let malformed =
                q.last_progress().unwrap().sources[0].metrics.get("numMalformedRecords").map(|v| v.parse().unwrap()).unwrap_or(0);
            Ok((rows, malformed))
        }
        Err(e) => Err(e.one_line()),
    };
    h.shutdown().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_permissive_keeps_partial_rows_with_the_raw_record() {
    let (rows, malformed) = run("json", JSON, "PERMISSIVE", true).await.unwrap();
    assert_eq!(malformed, 2);
    assert_eq!(
        rows,
        multiset(&[
            "(1, ok, null)",
            "(4, fine, null)",
            // A type mismatch keeps the fields that did parse (Spark 3 partial results).
            "(null, bad type, {\"id\":\"two\",\"name\":\"bad type\"})",
            "(null, null, {not json)",
        ])
    );
    // Without a corrupt-record column the bad rows still appear, as nulls.
    let (rows, malformed) = run("json", JSON, "permissive", false).await.unwrap();
    assert_eq!((rows.len(), malformed), (4, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_dropmalformed_and_failfast() {
    let (rows, malformed) = run("json", JSON, "DROPMALFORMED", false).await.unwrap();
    assert_eq!(rows, multiset(&["(1, ok)", "(4, fine)"]));
    assert_eq!(malformed, 2, "dropped records are still counted");
    let e = run("json", JSON, "FAILFAST", false).await.unwrap_err();
    assert!(e.contains("Malformed records are detected in record parsing") && e.contains("FAILFAST"), "{e}");
    assert!(e.contains("in.json"), "the error names the file: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_modes() {
    let (rows, malformed) = run("csv", CSV, "PERMISSIVE", true).await.unwrap();
    assert_eq!(malformed, 2);
    assert_eq!(rows, multiset(&["(1, ok, null)", "(4, fine, null)", "(null, bad, x,bad)", "(3, null, 3)"]));
    let (rows, _) = run("csv", CSV, "DROPMALFORMED", false).await.unwrap();
    assert_eq!(rows, multiset(&["(1, ok)", "(4, fine)"]));
    let e = run("csv", CSV, "FAILFAST", false).await.unwrap_err();
    assert!(e.contains("Malformed records are detected"), "{e}");
}
