//! Arrow IPC decoding: the rows that travel with tasks (memory and socket sources), the rows
//! tasks send back (console and memory sinks), state file bodies, and the schemas inside query
//! specs — all through `sluice_common::ipc`.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use sluice_common::options::Options;
use sluice_common::types::parse_ddl_schema;
use sluice_connectors::sink::{collected_rows, SinkTaskOutput, TaskSinkResult};
use sluice_formats::json_read::{decode_json_lines, JsonReadOptions};

use crate::Target;

pub const TARGET: Target =
    Target { name: "ipc", seeds, store_seeds: true, dictionary: &["\u{ff}\u{ff}\u{ff}\u{ff}", "ARROW1", "\0\0\0\0"], run };

fn run(input: &[u8]) {
    let _ = sluice_common::ipc::decode(input, "fuzzed rows");
    let _ = sluice_common::ipc::decode_schema(input, "fuzzed schema");
    let result = TaskSinkResult {
        partition_index: 0,
        output: SinkTaskOutput { rows: Some(Bytes::copy_from_slice(input)), ..Default::default() },
    };
    let _ = collected_rows(&[result]);
}

/// Batches of the shapes sluice ships: example events, nested types, a schema without rows.
pub fn sample_batches() -> Vec<(String, SchemaRef, Vec<RecordBatch>)> {
    let opts = JsonReadOptions::from_options(&Options::new(), &[]).expect("default options");
    let events = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/events/events-0.json"))
        .expect("reading the example events");
    let schema: SchemaRef = Arc::new(
        parse_ddl_schema("event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING").expect("schema"),
    );
    let batch = decode_json_lines(&events, &schema, &opts).expect("decoding events").batch;
    let nested: SchemaRef = Arc::new(
        parse_ddl_schema(
            "a ARRAY<STRUCT<x: INT, y: ARRAY<STRING>>>, m MAP<STRING, BIGINT>, d DECIMAL(38,10), b BINARY, dt DATE, ok BOOLEAN",
        )
        .expect("schema"),
    );
    let rows = b"{\"a\":[{\"x\":1,\"y\":[\"p\",null]}],\"m\":{\"k\":5},\"d\":\"1.5\",\"b\":\"AAEC\",\"dt\":\"2024-02-29\",\"ok\":true}\n{}\n";
    let nested_batch = decode_json_lines(rows, &nested, &opts).expect("decoding nested rows").batch;
    let empty: SchemaRef = Arc::new(Schema::empty());
    vec![
        ("events".into(), Arc::clone(&schema), vec![batch.slice(0, batch.num_rows().min(4)), batch.slice(0, 0)]),
        ("nested".into(), nested, vec![nested_batch]),
        ("schema-only".into(), schema, vec![]),
        ("no-columns".into(), empty, vec![]),
    ]
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    sample_batches()
        .into_iter()
        .map(|(name, schema, batches)| {
            (format!("{name}.arrows"), sluice_common::ipc::encode(&schema, &batches).expect("encoding").to_vec())
        })
        .collect()
}
