//! Every endpoint of the REST API against `sluice run`, with the answers checked against what
//! the query must be doing (its configuration, Spark's progress rules) and the error codes for
//! unknown ids and bad input.

use serde_json::{json, Value};

use crate::{named, UiRun, WINDOWED_COUNTS};

/// Spark's `StreamingQueryStatus` messages.
const SPARK_STATUS_MESSAGES: [&str; 5] =
    ["Initializing sources", "Processing new data", "Waiting for data to arrive", "Waiting for next trigger", "Stopped"];

fn is_spark_status(message: &str) -> bool {
    SPARK_STATUS_MESSAGES.contains(&message) || message.starts_with("Getting offsets from ")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_answers_for_a_running_stateful_query() {
    let run = UiRun::start(WINDOWED_COUNTS);
    let info = run.wait_for_batch("counts", 3).await;
    let id = info["id"].as_str().expect("id").to_string();

    // The query, as `spark.streams.get(id)` shows it.
    let q = run.get_json(&format!("/api/v1/queries/{id}"), 200).await;
    assert_eq!(q["id"], id.as_str());
    assert_eq!(q["name"], "counts");
    assert_eq!(q["isActive"], true);
    assert_eq!(q["exception"], Value::Null);
    assert!(uuid_like(&q["runId"]), "{q:#}");
    let status = &q["status"];
    assert!(is_spark_status(status["message"].as_str().unwrap_or("")), "{status}");
    assert!(status["isDataAvailable"].is_boolean() && status["isTriggerActive"].is_boolean(), "{status}");
    // spark.sql.shuffle.partitions = 4: four state partitions, spread over the two executors.
    let placed: u64 = q["statePartitions"].as_object().expect("statePartitions").values().map(|v| v.as_u64().unwrap_or(0)).sum();
    assert_eq!(placed, 4, "{q:#}");

    // lastProgress: Spark's report of this query's newest batch.
    let last = run.get_json(&format!("/api/v1/queries/{id}/lastProgress"), 200).await;
    assert_eq!(last["id"], id.as_str());
    assert_eq!(last["name"], "counts");
    assert!(last["batchId"].as_u64().is_some_and(|b| b >= 3), "{last:#}");
    assert_eq!(last["stateOperators"][0]["operatorName"], "stateStoreSave");
    assert_eq!(last["stateOperators"][0]["numShufflePartitions"], 4);
    // Every batch of the micro-batch rate source reads exactly rowsPerBatch rows.
    assert_eq!(last["numInputRows"], 20, "{last:#}");
    assert!(last["eventTime"]["watermark"].is_string(), "a query with a watermark reports it: {last:#}");

    // recentProgress: consecutive batches, oldest first, the newest at least lastProgress.
    let recent = run.get_json(&format!("/api/v1/queries/{id}/recentProgress"), 200).await;
    let batches: Vec<u64> = recent.as_array().expect("array").iter().map(|p| p["batchId"].as_u64().expect("batchId")).collect();
    assert!(batches.len() >= 4 && batches.len() <= 100, "{batches:?}");
    assert!(batches.windows(2).all(|w| w[1] == w[0] + 1), "consecutive: {batches:?}");
    assert_eq!(batches[0], 0, "the run started at batch 0: {batches:?}");
    assert!(batches.last() >= last["batchId"].as_u64().as_ref(), "{batches:?} vs {}", last["batchId"]);

    // The executors of the embedded cluster, with what they hold and do.
    let execs = run.get_json("/api/v1/executors", 200).await;
    let execs = execs["executors"].as_array().expect("executors").clone();
    let ids: Vec<&str> = execs.iter().map(|e| e["id"].as_str().unwrap_or("")).collect();
    assert_eq!(ids, ["executor-0", "executor-1"], "{execs:#?}");
    for e in &execs {
        assert_eq!(e["state"], "active", "{e}");
        assert!(e["address"].as_str().is_some_and(|a| a.starts_with("http://127.0.0.1:")), "{e}");
        assert!(e["slots"].as_u64().is_some_and(|s| s >= 1), "{e}");
        assert!(e["tasksSucceeded"].as_u64().is_some_and(|t| t > 0), "every executor ran tasks: {e}");
        assert!(e["memoryBytes"].as_u64().is_some_and(|m| m > 1 << 20), "the process's RSS: {e}");
    }
    let held: u64 = execs.iter().map(|e| e["statePartitions"].as_u64().unwrap_or(0)).sum();
    assert_eq!(held, 4, "the executors hold the query's four state partitions: {execs:#?}");

    // Bad input and unknown ids.
    let e = run.get_json("/api/v1/queries/not-a-uuid", 400).await;
    assert!(e["error"].as_str().is_some_and(|m| m.contains("not-a-uuid") && m.contains("UUID")), "{e}");
    let unknown = "00000000-0000-4000-8000-000000000000";
    for path in ["", "/lastProgress", "/recentProgress"] {
        let e = run.get_json(&format!("/api/v1/queries/{unknown}{path}"), 404).await;
        assert!(e["error"].as_str().is_some_and(|m| m.contains(unknown)), "{e}");
    }
    run.post_json(&format!("/api/v1/queries/{unknown}/stop"), &json!({}), 404).await;
    let e = run.post_json("/api/v1/jobs", &json!({"job": "CREATE STREAM oops"}), 400).await;
    assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    let e = run.post_json("/api/v1/jobs", &json!({"text": "no job field"}), 400).await;
    assert!(e["error"].as_str().is_some_and(|m| m.contains("job")), "{e}");
    let not_json = run.http.post(run.url("/api/v1/jobs")).body("CREATE STREAM x").send().await.expect("POST");
    assert_eq!(not_json.status().as_u16(), 415, "a body without a JSON content type");
    // A second query under an active query's name is refused with Spark's message.
    let e = run.post_json("/api/v1/jobs", &json!({"job": WINDOWED_COUNTS}), 400).await;
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("Cannot start query with name counts as a query with that name is already active")),
        "{e}"
    );

    // Submit another job through the API, see it run, stop it.
    let second = WINDOWED_COUNTS.replace("'counts'", "'second'");
    let started = run.post_json("/api/v1/jobs", &json!({"job": second, "origin": "second.sql"}), 201).await;
    let started = started["queries"].as_array().expect("queries").clone();
    assert_eq!(started.len(), 1, "{started:#?}");
    assert_eq!(started[0]["name"], "second");
    let second_id = started[0]["id"].as_str().expect("id").to_string();
    assert_ne!(second_id, id);
    run.wait_for_batch("second", 1).await;
    let stopped = run.post_json(&format!("/api/v1/queries/{second_id}/stop"), &json!({}), 200).await;
    assert_eq!(stopped["isActive"], false, "{stopped:#}");
    assert_eq!(stopped["status"]["message"], "Stopped", "{stopped:#}");
    assert_eq!(stopped["status"]["isTriggerActive"], false, "{stopped:#}");
    // Stopping again is harmless; the list keeps the terminated query beside the active one.
    run.post_json(&format!("/api/v1/queries/{second_id}/stop"), &json!({}), 200).await;
    let list = run.get_json("/api/v1/queries", 200).await;
    assert_eq!(named(&list, "second").map(|q| q["isActive"].clone()), Some(json!(false)), "{list:#}");
    assert_eq!(named(&list, "counts").map(|q| q["isActive"].clone()), Some(json!(true)), "{list:#}");

    // The UI is one redirect away, and its page loads its script.
    let page = run.http.get(run.url("/")).send().await.expect("GET /");
    assert!(page.status().is_success() && page.url().path() == "/ui/", "{:?}", page.url());
    let html = page.text().await.unwrap_or_default();
    assert!(html.contains("app.js"), "{html}");
}

fn uuid_like(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4)
}
