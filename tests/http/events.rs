//! The listener events on the HTTP event stream: for one query, started → idle → progress … →
//! terminated, in that order, each with Spark's fields and the query's ids.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::{UiRun, WINDOWED_COUNTS};

/// Reads server-sent events (`event:`/`data:` lines, a blank line ends one) from a response.
struct EventReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl EventReader {
    /// The next event as (kind, data), or `None` at `deadline`.
    async fn next(&mut self, deadline: Instant) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut kind = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(k) = line.strip_prefix("event:") {
                        kind = Some(k.trim().to_string());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                match kind {
                    Some(kind) => {
                        return Some((
                            kind,
                            serde_json::from_str(&data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}")),
                        ))
                    }
                    None => continue, // a keep-alive comment
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Some(Err(e))) => panic!("the event stream failed: {e}"),
                Ok(None) => panic!("the event stream ended"),
                Err(_) => return None,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_events_arrive_in_order_with_sparks_fields() {
    let run = UiRun::start(WINDOWED_COUNTS);
    run.wait_for_batch("counts", 0).await;
    let response = run.http.get(run.url("/api/v1/events")).timeout(Duration::from_secs(600)).send().await.expect("GET events");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").and_then(|c| c.to_str().ok()).unwrap_or("").to_string();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut events = EventReader { body: Box::pin(response.bytes_stream()), buffer: String::new() };

    // A query over an empty directory: idle until a file arrives, idle events every 500 ms.
    let input = run.dir.path().join("in");
    std::fs::create_dir_all(&input).expect("input dir");
    let job = format!(
        "CREATE STREAM f (a BIGINT) WITH ('connector' = 'files', 'format' = 'json', 'path' = '{}');
         CREATE SINK out WITH ('connector' = 'noop');
         SET 'queryName' = 'watched';
         SET 'spark.sql.streaming.noDataProgressEventInterval' = '500ms';
         INSERT INTO out SELECT a FROM f;",
        sluice_tests::path_lit(&input)
    );
    let started = run.post_json("/api/v1/jobs", &json!({ "job": job }), 201).await;
    let id = started["queries"][0]["id"].as_str().expect("id").to_string();
    let run_id = started["queries"][0]["runId"].as_str().expect("runId").to_string();

    // Only the watched query's events, in arrival order.
    let mut seen: Vec<(String, Value)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wrote = false;
    let mut stopped = false;
    while let Some((kind, data)) = events.next(deadline).await {
        let about = if kind == "QueryProgressEvent" { data["progress"]["id"].clone() } else { data["id"].clone() };
        if about != id.as_str() {
            continue;
        }
        seen.push((kind.clone(), data));
        let idles = seen.iter().filter(|(k, _)| k == "QueryIdleEvent").count();
        if idles >= 1 && !wrote {
            std::fs::write(input.join("1.json"), "{\"a\": 1}\n{\"a\": 2}\n{\"a\": 3}\n").expect("input file");
            wrote = true;
        }
        let progressed = seen.iter().any(|(k, _)| k == "QueryProgressEvent");
        if progressed && idles >= 2 && !stopped {
            run.post_json(&format!("/api/v1/queries/{id}/stop"), &json!({}), 200).await;
            stopped = true;
        }
        if kind == "QueryTerminatedEvent" {
            break;
        }
    }
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"QueryStartedEvent"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"QueryTerminatedEvent"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "QueryStartedEvent" || **k == "QueryTerminatedEvent").count(), 2, "{kinds:?}");
    let first_progress = kinds.iter().position(|k| *k == "QueryProgressEvent").expect("a progress event");
    assert!(
        kinds[1..first_progress].iter().all(|k| *k == "QueryIdleEvent") && first_progress > 1,
        "idle before the file: {kinds:?}"
    );

    // Spark's fields, exactly.
    let (_, started) = &seen[0];
    assert_eq!(keys(started), ["id", "name", "runId", "timestamp"], "{started}");
    assert_eq!(started["runId"], run_id.as_str());
    assert_eq!(started["name"], "watched");
    assert!(started["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{started}");
    for (kind, data) in &seen {
        match kind.as_str() {
            "QueryIdleEvent" => {
                assert_eq!(keys(data), ["id", "runId", "timestamp"], "{data}");
                assert_eq!(data["runId"], run_id.as_str());
            }
            "QueryProgressEvent" => {
                assert_eq!(keys(data), ["progress"], "{data}");
                assert_eq!(data["progress"]["runId"], run_id.as_str());
            }
            _ => {}
        }
    }
    let progress: Vec<&Value> = seen.iter().filter(|(k, _)| k == "QueryProgressEvent").map(|(_, d)| &d["progress"]).collect();
    assert_eq!(progress[0]["batchId"], 0);
    assert_eq!(progress[0]["numInputRows"], 3, "the file's three rows: {:#}", progress[0]);
    let (_, ended) = seen.last().expect("terminated");
    assert_eq!(keys(ended), ["errorClassOnException", "exception", "id", "runId"], "{ended}");
    assert_eq!(ended["exception"], Value::Null, "stopped, not failed: {ended}");
    assert_eq!(ended["runId"], run_id.as_str());
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}
