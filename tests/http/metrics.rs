//! `/metrics` scraped during a stateful query: the text parses with Prometheus' own OpenMetrics
//! parser, and every per-query value equals what the progress reports of the same batch say.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{UiRun, WINDOWED_COUNTS};

/// Samples as (name, labels) → value, parsed by `prometheus_client.openmetrics.parser` from the
/// test venv — a parser that refuses anything Prometheus would.
fn parse_openmetrics(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let python = sluice_tests::venv_python();
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the test venv's Python ({}) is needed for Prometheus' parser (tests/venv.sh): {e}", python.display())
        });
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write metrics");
    }
    let out = child.wait_with_output().expect("parser runs");
    assert!(
        out.status.success(),
        "Prometheus' OpenMetrics parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, BTreeMap<String, String>, f64)> = serde_json::from_slice(&out.stdout).expect("parser output");
    samples.into_iter().map(|(n, l, v)| ((n, l), v)).collect()
}

fn sample(samples: &BTreeMap<(String, BTreeMap<String, String>), f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    samples.get(&(name.to_string(), labels)).copied()
}

fn sum(
    samples: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    filter: impl Fn(&BTreeMap<String, String>) -> bool,
) -> f64 {
    samples.iter().filter(|((n, l), _)| n == name && filter(l)).map(|(_, v)| v).sum()
}

fn iso_ms(t: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(t).expect("ISO timestamp").timestamp_millis() as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_match_the_progress_of_the_same_batch_and_parse_as_openmetrics() {
    let run = UiRun::start(WINDOWED_COUNTS);
    let info = run.wait_for_batch("counts", 4).await;
    let id = info["id"].as_str().expect("id").to_string();
    let labels = [("query_name", "counts"), ("query_id", id.as_str())];

    // One scrape between two reads that show the same batch and no trigger running: the scrape
    // saw exactly that batch's reports (a trigger that started in between would still run).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (text, recent) = loop {
        assert!(Instant::now() < deadline, "never caught the query between batches");
        let before = run.get_json(&format!("/api/v1/queries/{id}"), 200).await;
        let recent = run.get_json(&format!("/api/v1/queries/{id}/recentProgress"), 200).await;
        let response = run.http.get(run.url("/metrics")).send().await.expect("GET /metrics");
        let content_type = response.headers().get("content-type").and_then(|c| c.to_str().ok()).unwrap_or("").to_string();
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        let text = response.text().await.expect("metrics text");
        let after = run.get_json(&format!("/api/v1/queries/{id}"), 200).await;
        let batch = |q: &Value| q["lastProgress"]["batchId"].as_u64();
        let idle = |q: &Value| q["status"]["isTriggerActive"] == false;
        let newest = recent.as_array().and_then(|r| r.last()).and_then(|p| p["batchId"].as_u64());
        if batch(&before) == batch(&after) && newest == batch(&before) && idle(&before) && idle(&after) {
            break (text, recent);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let samples = parse_openmetrics(&text);
    let reports = recent.as_array().expect("reports");
    let p = reports.last().expect("a report");
    assert!(reports.len() < 100, "every report of the run is retained, so counters can be summed from them");

    // Spark's gauges, from the last report.
    let gauge = |name: &str| sample(&samples, name, &labels).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    assert_eq!(gauge("sluice_query_last_batch_id"), p["batchId"].as_f64().expect("batchId"));
    assert_eq!(
        gauge("sluice_query_latency_milliseconds"),
        p["durationMs"]["triggerExecution"].as_f64().expect("triggerExecution")
    );
    assert_eq!(gauge("sluice_query_processed_rows_per_second"), p["processedRowsPerSecond"].as_f64().expect("processed rate"));
    assert_eq!(gauge("sluice_query_input_rows_per_second"), p["inputRowsPerSecond"].as_f64().expect("input rate"));
    assert_eq!(
        gauge("sluice_query_event_time_watermark_milliseconds"),
        iso_ms(p["eventTime"]["watermark"].as_str().expect("watermark"))
    );
    let ops = p["stateOperators"].as_array().expect("stateOperators");
    let op_sum = |key: &str| ops.iter().map(|o| o[key].as_f64().unwrap_or(0.0)).sum::<f64>();
    assert_eq!(gauge("sluice_query_state_rows"), op_sum("numRowsTotal"));
    assert_eq!(gauge("sluice_query_state_memory_bytes"), op_sum("memoryUsedBytes"));

    // Counters and histograms, from every report of the run.
    let all = |f: &dyn Fn(&Value) -> f64| reports.iter().map(f).sum::<f64>();
    let ops_all = |key: &'static str| {
        move |r: &Value| r["stateOperators"].as_array().map_or(0.0, |o| o.iter().map(|o| o[key].as_f64().unwrap_or(0.0)).sum())
    };
    assert_eq!(gauge("sluice_query_batches_total"), reports.len() as f64);
    assert_eq!(gauge("sluice_query_input_rows_total"), all(&|r| r["numInputRows"].as_f64().unwrap_or(0.0)));
    assert_eq!(gauge("sluice_query_output_rows_total"), all(&|r| r["sink"]["numOutputRows"].as_f64().unwrap_or(0.0)));
    assert_eq!(gauge("sluice_query_state_rows_updated_total"), all(&ops_all("numRowsUpdated")));
    assert_eq!(gauge("sluice_query_state_rows_removed_total"), all(&ops_all("numRowsRemoved")));
    assert_eq!(gauge("sluice_query_rows_dropped_by_watermark_total"), all(&ops_all("numRowsDroppedByWatermark")));
    assert_eq!(gauge("sluice_query_recoveries_total"), 0.0);
    assert_eq!(gauge("sluice_query_batch_retries_total"), 0.0);
    assert_eq!(gauge("sluice_query_batch_duration_seconds_count"), reports.len() as f64);
    let total_seconds = all(&|r| r["batchDuration"].as_f64().unwrap_or(0.0)) / 1000.0;
    assert!((gauge("sluice_query_batch_duration_seconds_sum") - total_seconds).abs() < 1e-6);
    for phase in ["latestOffset", "walCommit", "queryPlanning", "addBatch", "commitOffsets"] {
        let count =
            sample(&samples, "sluice_query_batch_phase_duration_seconds_count", &[labels[0], labels[1], ("phase", phase)]);
        let reported = reports.iter().filter(|r| r["durationMs"].get(phase).is_some()).count() as f64;
        assert_eq!(count, Some(reported), "phase {phase}");
    }
    assert_eq!(sample(&samples, "sluice_queries_active", &[]), Some(1.0));
    assert_eq!(sample(&samples, "sluice_executors_registered", &[]), Some(2.0));

    // The executors: what they ran and hold, under their ids, in the one process.
    let succeeded = sum(&samples, "sluice_executor_tasks_total", |l| l.get("outcome").map(String::as_str) == Some("succeeded"));
    assert!(succeeded >= reports.len() as f64, "at least a task per batch ran: {succeeded}");
    let partitions = sum(&samples, "sluice_executor_state_partitions", |_| true);
    assert_eq!(partitions, 4.0, "spark.sql.shuffle.partitions = 4");
    let state_rows = sum(&samples, "sluice_executor_state_rows", |l| l.get("query_id") == Some(&id));
    assert_eq!(state_rows, op_sum("numRowsTotal"), "per-partition state rows add up to the operator's total");
    for e in ["executor-0", "executor-1"] {
        assert!(sample(&samples, "sluice_executor_task_slots", &[("executor_id", e)]).is_some_and(|s| s >= 1.0), "{e}");
    }
    assert!(sample(&samples, "process_resident_memory_bytes", &[]).is_some_and(|b| b > 1_048_576.0));
}
