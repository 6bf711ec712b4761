//! The JSON-lines reader (`files` source with `format = json`, and `from_json`): Jackson's
//! dialect lexed and converted into Spark's types, in every parse mode.

use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::SchemaRef;
use sluice_common::options::Options;
use sluice_common::types::parse_ddl_schema;
use sluice_formats::json_read::{decode_json_lines, json_to_struct, JsonReadOptions};
use sluice_formats::json_write::{write_json_lines, JsonWriteOptions};

use crate::Target;

pub const TARGET: Target = Target {
    name: "json_lines",
    seeds,
    store_seeds: true,
    dictionary: &[
        "{",
        "}",
        "[",
        "]",
        "\"event_time\"",
        "\"user_id\"",
        "\"amount\"",
        "\"m\"",
        "\"s\"",
        "null",
        "true",
        "false",
        "NaN",
        "-Infinity",
        "\"2024-01-31T10:00:00.123Z\"",
        "\"2024-02-30\"",
        "1E+400",
        "\\u0000",
        "\\ud800",
        "/* c */",
        "'single'",
        "\"a\\\"b\"",
        "\"_corrupt_record\"",
    ],
    run,
};

/// Flat Spark types, nested types, and a corrupt-record column: every converter the reader has.
const SCHEMAS: &[&str] = &[
    "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING, _corrupt_record STRING",
    "b BOOLEAN, i INT, d DOUBLE, f FLOAT, dec DECIMAL(12,2), dt DATE, bin BINARY, ntz TIMESTAMP_NTZ, t TINYINT, s SMALLINT",
    "a ARRAY<STRUCT<x: INT, y: ARRAY<STRING>>>, m MAP<STRING, BIGINT>, s STRUCT<ts: TIMESTAMP, n: STRUCT<d: DECIMAL(38,10)>>",
];

/// Parse modes and date-time patterns the reader is run with.
const OPTIONS: &[&[(&str, &str)]] = &[
    &[],
    &[("mode", "DROPMALFORMED"), ("allowNonNumericNumbers", "false")],
    &[("mode", "FAILFAST"), ("timestampFormat", "yyyy-MM-dd HH:mm[:ss][.SSS]XXX"), ("dateFormat", "dd/MM/yyyy")],
];

fn schemas() -> Vec<SchemaRef> {
    SCHEMAS.iter().map(|s| Arc::new(parse_ddl_schema(s).expect("a valid schema"))).collect()
}

fn run(input: &[u8]) {
    thread_local! {
        static SETUP: (Vec<SchemaRef>, Vec<JsonReadOptions>) = (
            schemas(),
            OPTIONS.iter().map(|o| JsonReadOptions::from_options(&Options::from_pairs(o.iter().copied()), &[]).expect("valid options")).collect(),
        );
    }
    SETUP.with(|(schemas, options)| {
        let pick = input.len();
        let schema = &schemas[pick % schemas.len()];
        let opts = &options[(pick / 3) % options.len()];
        let _ = decode_json_lines(input, schema, opts);
        // `from_json` on each line: the same lexer, one value at a time.
        let text = String::from_utf8_lossy(input);
        let values = StringArray::from(text.lines().take(64).collect::<Vec<_>>());
        if opts.mode() != sluice_formats::ParseMode::DropMalformed {
            let _ = json_to_struct(&values, schema.fields(), opts);
        }
    });
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data");
    let mut out = Vec::new();
    for (dir, file) in [("events", "events-0.json"), ("clicks", "clicks-1.json")] {
        out.push((file.to_string(), std::fs::read(root.join(dir).join(file)).expect("reading an example data file")));
    }
    // Every type, nested, written by the JSON writer the files sink uses.
    let schema = &schemas()[2];
    let rows = b"{\"a\":[{\"x\":1,\"y\":[\"p\",null]}],\"m\":{\"k\":5},\"s\":{\"ts\":\"2024-01-31T10:00:00.000Z\",\"n\":{\"d\":1.5}}}\n{\"a\":null}\n";
    let opts = JsonReadOptions::from_options(&Options::new(), &[]).expect("default options");
    let batch = decode_json_lines(rows, schema, &opts).expect("decoding the nested rows").batch;
    let mut written = Vec::new();
    write_json_lines(&batch, &JsonWriteOptions::from_options(&Options::new(), &[]).expect("default options"), &mut written)
        .expect("writing JSON lines");
    out.push(("nested.json".into(), written));
    let flat = &schemas()[1];
    let rows = b"{\"b\":true,\"i\":-7,\"d\":1.5e300,\"f\":2.5,\"dec\":\"12.25\",\"dt\":\"2024-02-29\",\"bin\":\"AAEC\",\"ntz\":\"2024-01-31 10:00:00\",\"t\":1,\"s\":300}\n";
    let batch = decode_json_lines(rows, flat, &opts).expect("decoding the flat rows").batch;
    let mut written = Vec::new();
    write_json_lines(&batch, &JsonWriteOptions::from_options(&Options::new(), &[]).expect("default options"), &mut written)
        .expect("writing JSON lines");
    out.push(("types.json".into(), written));
    out
}
