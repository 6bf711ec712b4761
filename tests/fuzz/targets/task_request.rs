//! What an executor does with the bytes of a `RunTask` call before running anything: decode the
//! protobuf `TaskRequest`, the query spec JSON (with its IPC-encoded schemas), the task kind, the
//! batch context, the rows sent with the task and the connector's split; and parse the query's
//! SQL as compiling it would.

use prost::Message;
use sluice_common::BatchContext;
use sluice_connectors::nexmark::NexmarkSplit;
use sluice_connectors::rate::{read_rate_split, RateSplit};
use sluice_connectors::rate_micro_batch::RateMicroBatchSplit;
use sluice_connectors::source::SplitDescriptor;
use sluice_connectors::{Connectors, InProcessIo};
use sluice_driver::job::JobFile;
use sluice_plan::compile::parse_query;
use sluice_plan::{BlockSource, QuerySpec, TaskKind};
use sluice_proto::v1::{self, TaskPart, TaskRequest};

use crate::Target;

pub const TARGET: Target = Target {
    name: "task_request",
    seeds,
    store_seeds: true,
    dictionary: &[
        "\"kind\":\"stateless\"",
        "\"kind\":\"reduce\"",
        "\"split\":",
        "\"select_sql\":",
        "\"schema\":\"",
        "null",
        "{",
        "}",
    ],
    run,
};

fn run(input: &[u8]) {
    let Ok(req) = TaskRequest::decode(input) else { return };
    decode_task(&req);
    // The JSON documents inside are fuzzed on their own too, as if the protobuf were intact.
    decode_task(&TaskRequest {
        query_spec_json: input.to_vec(),
        parts: vec![TaskPart { partition_index: 0, task_kind_json: input.to_vec(), inline_rows: input.to_vec() }],
        ..req
    });
}

fn decode_task(req: &TaskRequest) {
    if let Ok(spec) = serde_json::from_slice::<QuerySpec>(&req.query_spec_json) {
        let _ = spec.fingerprint();
        let _ = parse_query(&spec.select_sql);
        for (_, view) in &spec.views {
            let _ = parse_query(view);
        }
    }
    if let Some(b) = &req.batch {
        let _ = BatchContext::from(b);
    }
    for part in &req.parts {
        let _ = sluice_common::ipc::decode(&part.inline_rows, "the rows sent with the task");
        if let Ok(TaskKind::Stateless { split, .. } | TaskKind::Map { split, .. }) =
            serde_json::from_slice::<TaskKind>(&part.task_kind_json)
        {
            decode_split(&split);
        }
    }
}

/// Each generated source's split reader decodes the split; small ones are read.
fn decode_split(split: &SplitDescriptor) {
    if let Ok(s) = split.decode::<RateSplit>("rate") {
        if s.range_end.saturating_sub(s.range_start) <= 2_000 {
            let _ = read_rate_split(&s);
        }
    }
    let _ = split.decode::<RateMicroBatchSplit>("rate-micro-batch");
    let _ = split.decode::<NexmarkSplit>("nexmark");
    let _ = split.decode::<sluice_connectors::kafka::offsets::OffsetRange>("kafka");
    let _ = split.decode::<sluice_connectors::files::splits::FileSplit>("files");
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    use sluice_connectors::rate::{RateOptions, RateSource};
    use sluice_connectors::source::Source;
    super::block_on(async {
        let connectors = Connectors::builtin(&InProcessIo::default());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut out = Vec::new();
        for example in ["rate_to_console.sql", "windowed_counts.sql"] {
            let text = std::fs::read_to_string(dir.join(example)).expect("reading an example job");
            let job = JobFile::parse(example, &text).expect("parsing an example job");
            let Ok(resolved) = sluice_driver::query::resolve_query(&job, &job.queries[0], &connectors).await else { continue };
            let spec = resolved.spec;
            let mut rate = RateSource::new(RateOptions::parse(&sluice_common::options::Options::new()).expect("options"));
            let splits = rate.plan_splits(Some("3"), "5", 2).await.expect("rate splits");
            let kinds = [
                ("stateless", TaskKind::Stateless { source_index: 0, split: splits[1].split.clone() }),
                (
                    "reduce",
                    TaskKind::Reduce {
                        op: 0,
                        partition: 3,
                        inputs: vec![vec![BlockSource { producer: 0, endpoint: "http://127.0.0.1:7078".into() }]],
                    },
                ),
            ];
            for (kind_name, kind) in kinds {
                let (_, schema, batches) = super::ipc::sample_batches().swap_remove(0);
                let req = TaskRequest {
                    task_id: format!("{}-7-{kind_name}", spec.name.clone().unwrap_or_default()),
                    query_spec_json: serde_json::to_vec(&spec).expect("spec JSON"),
                    spec_hash: spec.fingerprint().expect("a fingerprint"),
                    query_run_id: "2b7e1516-28ae-4d2a-a6d2-8a1e1b4f7c3d".into(),
                    batch: Some(v1::BatchContext {
                        batch_id: 7,
                        attempt: 1,
                        timestamp_ms: 1_706_695_200_000,
                        late_watermark_ms: 5_000,
                        eviction_watermark_ms: 10_000,
                    }),
                    parts: vec![TaskPart {
                        partition_index: 1,
                        task_kind_json: serde_json::to_vec(&kind).expect("kind JSON"),
                        inline_rows: if kind_name == "stateless" {
                            sluice_common::ipc::encode(&schema, &batches).expect("rows").to_vec()
                        } else {
                            Vec::new()
                        },
                    }],
                    leader_term: 12,
                    shuffle_key: "7c1f".repeat(16),
                };
                out.push((format!("{}-{kind_name}.pb", example.trim_end_matches(".sql")), req.encode_to_vec()));
            }
        }
        out
    })
}
