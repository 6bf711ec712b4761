//! What the driver does with the bytes of a `RunTask` answer: decode the protobuf
//! `TaskResponse`, the task's metrics and sink report (JSON), the rows it collected (IPC), or
//! its structured error.

use bytes::Bytes;
use prost::Message;
use sluice_common::error::SluiceError;
use sluice_connectors::sink::{collected_rows, SinkTaskOutput, TaskSinkResult};
use sluice_plan::{EventTimeStats, StateOperatorMetrics, TaskMetrics};
use sluice_proto::v1::{task_response::Outcome, TaskPartSuccess, TaskResponse, TaskSuccess};
use sluice_proto::wire::{error_from_proto, error_to_proto};

use crate::Target;

pub const TARGET: Target = Target {
    name: "task_response",
    seeds,
    store_seeds: true,
    dictionary: &[
        "\"input_rows\":",
        "\"event_time\":{\"0\":",
        "\"max_ms\":",
        "\"avg_ms\":",
        "\"num_rows\":",
        "\"commit_message\":",
        "NaN",
    ],
    run,
};

fn run(input: &[u8]) {
    let Ok(resp) = TaskResponse::decode(input) else { return };
    match resp.outcome {
        Some(Outcome::Success(s)) => {
            for part in &s.parts {
                on_success(part);
            }
            // The documents inside, fuzzed as if the protobuf were intact.
            on_success(&TaskPartSuccess { metrics_json: input.to_vec(), sink_output_json: input.to_vec(), rows: input.to_vec() });
        }
        Some(Outcome::Error(e)) => {
            let _ = error_from_proto(e).one_line();
        }
        None => {}
    }
}

/// The driver's side: metrics merged into progress, sink reports and rows handed to the sink.
fn on_success(s: &TaskPartSuccess) {
    if let Ok(metrics) = serde_json::from_slice::<TaskMetrics>(&s.metrics_json) {
        let mut merged = EventTimeStats { max_ms: i64::MIN, min_ms: i64::MAX, avg_ms: 0.0, count: 0 };
        for stats in metrics.event_time.values() {
            merged.merge(stats);
        }
    }
    if let Ok(mut output) = serde_json::from_slice::<SinkTaskOutput>(&s.sink_output_json) {
        output.rows = (!s.rows.is_empty()).then(|| Bytes::from(s.rows.clone()));
        let _ = collected_rows(&[TaskSinkResult { partition_index: 0, output }]);
    }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let (_, schema, batches) = super::ipc::sample_batches().swap_remove(0);
    let metrics = TaskMetrics {
        source_index: Some(0),
        input_rows: 4,
        malformed_rows: 1,
        output_rows: 4,
        event_time: [(
            0,
            EventTimeStats { max_ms: 1_706_695_260_000, min_ms: 1_706_695_200_000, avg_ms: 1_706_695_230_000.5, count: 4 },
        )]
        .into(),
        duration_ms: 12,
        state: vec![StateOperatorMetrics {
            operator: 0,
            num_rows_total: 3,
            custom: [("numDroppedDuplicateRows".to_string(), 2)].into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let output = SinkTaskOutput {
        num_rows: 4,
        commit_message: serde_json::json!([{"path": "memory:///fuzz/out/part-00000.json", "size": 100}]),
        ..Default::default()
    };
    let success = TaskResponse {
        outcome: Some(Outcome::Success(TaskSuccess {
            parts: vec![TaskPartSuccess {
                metrics_json: serde_json::to_vec(&metrics).expect("metrics JSON"),
                sink_output_json: serde_json::to_vec(&output).expect("output JSON"),
                rows: sluice_common::ipc::encode(&schema, &batches).expect("rows").to_vec(),
            }],
        })),
    };
    let error = SluiceError::external("not found: fuzz/in/f1.json").context("batch 7 task 1").with_retryable(false);
    let failure = TaskResponse { outcome: Some(Outcome::Error(error_to_proto(&error))) };
    let no_rows = TaskResponse {
        outcome: Some(Outcome::Success(TaskSuccess {
            parts: vec![TaskPartSuccess {
                metrics_json: serde_json::to_vec(&TaskMetrics::default()).expect("metrics JSON"),
                sink_output_json: b"{\"num_rows\":0}".to_vec(),
                rows: Vec::new(),
            }],
        })),
    };
    vec![
        ("success-with-rows.pb".into(), success.encode_to_vec()),
        ("error.pb".into(), failure.encode_to_vec()),
        ("success-no-rows.pb".into(), no_rows.encode_to_vec()),
    ]
}
