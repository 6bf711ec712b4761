//! The CSV reader (`files` source with `format = csv`): univocity's tokenizer (quotes, escapes,
//! comments, separators) and the conversion of fields into Spark's types.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use sluice_common::options::Options;
use sluice_common::types::parse_ddl_schema;
use sluice_formats::csv_read::{decode_csv, CsvReadOptions};
use sluice_formats::csv_write::{write_csv, CsvWriteOptions};
use sluice_formats::json_read::{decode_json_lines, JsonReadOptions};

use crate::Target;

pub const TARGET: Target = Target {
    name: "csv",
    seeds,
    store_seeds: true,
    dictionary: &[
        "\"",
        "\"\"",
        ",",
        ";",
        "|",
        "\\",
        "#",
        "\r\n",
        "null",
        "NaN",
        "Inf",
        "-Inf",
        "2024-01-31T10:00:00Z",
        "1E10",
        " ",
    ],
    run,
};

const SCHEMA: &str =
    "event_time TIMESTAMP, user_id STRING, amount BIGINT, price DECIMAL(10,2), ok BOOLEAN, d DATE, x DOUBLE, _corrupt_record STRING";

/// Separator, quote, escape and comment characters, headers and modes the tokenizer runs with.
const OPTIONS: &[&[(&str, &str)]] = &[
    &[],
    &[("header", "true"), ("sep", ";"), ("quote", "'"), ("escape", "\\"), ("comment", "#"), ("mode", "DROPMALFORMED")],
    &[("sep", "|"), ("nullValue", "null"), ("nanValue", "NaN"), ("ignoreLeadingWhiteSpace", "true"), ("mode", "FAILFAST")],
    &[("sep", "\t"), ("emptyValue", "E"), ("timestampFormat", "dd.MM.yyyy HH:mm"), ("ignoreTrailingWhiteSpace", "true")],
];

fn run(input: &[u8]) {
    thread_local! {
        static SETUP: (SchemaRef, Vec<CsvReadOptions>) = (
            Arc::new(parse_ddl_schema(SCHEMA).expect("a valid schema")),
            OPTIONS.iter().map(|o| CsvReadOptions::from_options(&Options::from_pairs(o.iter().copied()), &[]).expect("valid options")).collect(),
        );
    }
    SETUP.with(|(schema, options)| {
        let opts = &options[input.len() % options.len()];
        let _ = decode_csv(input, opts.header(), schema, opts);
    });
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let events = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/events/events-0.json"))
        .expect("reading the example events");
    let schema = Arc::new(parse_ddl_schema(SCHEMA).expect("a valid schema"));
    let batch = decode_json_lines(&events, &schema, &JsonReadOptions::from_options(&Options::new(), &[]).expect("options"))
        .expect("decoding the example events")
        .batch;
    let mut out = Vec::new();
    for (name, opts, header) in [
        ("events.csv", vec![], false),
        ("events-header-semicolon.csv", vec![("sep", ";"), ("quote", "'"), ("escape", "\\")], true),
        ("events-quote-all.csv", vec![("quoteAll", "true"), ("nullValue", "null")], true),
    ] {
        let opts = CsvWriteOptions::from_options(&Options::from_pairs(opts), &[]).expect("valid write options");
        let mut written = Vec::new();
        write_csv(&batch, &opts, header, &mut written).expect("writing CSV");
        out.push((name.to_string(), written));
    }
    out.push((
        "quoted-fields.csv".into(),
        b"2024-01-31T10:00:00Z,\"a,\"\"b\"\"\nc\",5,1.25,true,2024-02-29,1e3\n#x\n,,,,,,\n".to_vec(),
    ));
    out
}
