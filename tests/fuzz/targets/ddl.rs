//! Spark DDL: schema strings (`a INT, b STRUCT<c: ARRAY<STRING>> NOT NULL`, as `from_json` and
//! `StructType.fromDDL` take them) and single type names, mapped onto Arrow.

use sluice_common::types::{parse_ddl_schema, parse_type, spark_type_name};

use crate::Target;

pub const TARGET: Target = Target {
    name: "ddl",
    seeds,
    store_seeds: true,
    dictionary: &[
        "STRUCT<",
        "ARRAY<",
        "MAP<",
        ">",
        ">>",
        ",",
        ":",
        "NOT NULL",
        "COMMENT 'x'",
        "DECIMAL(",
        "DECIMAL(39, 40)",
        ")",
        "TIMESTAMP_NTZ",
        "TIMESTAMP_LTZ",
        "LONG",
        "SHORT",
        "BYTE",
        "STRING",
        "VARCHAR(10)",
        "BINARY",
        "`a b`",
        "struct",
    ],
    run,
};

fn run(input: &[u8]) {
    let text = super::text(input);
    if let Ok(schema) = parse_ddl_schema(&text) {
        for f in schema.fields() {
            let _ = spark_type_name(f.data_type());
        }
    }
    if let Ok(dt) = parse_type(&text) {
        let _ = spark_type_name(&dt);
    }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    // Schemas the README's jobs and `from_json` calls declare, and every type name sluice maps.
    [
        ("events.ddl", "event_time TIMESTAMP, user_id STRING, action STRING, amount BIGINT, event_id STRING"),
        ("from-json.ddl", "event_time TIMESTAMP, event_id STRING"),
        ("nested.ddl", "a STRUCT<b: ARRAY<MAP<STRING, DECIMAL(12,2)>>, c: TIMESTAMP_NTZ> NOT NULL COMMENT 'x', d LONG"),
        ("struct-form.ddl", "struct<x: double, y: array<struct<z: binary>>>"),
        ("all-types.ddl", "a BOOLEAN, b TINYINT, c SMALLINT, d INT, e BIGINT, f FLOAT, g DOUBLE, h DECIMAL, i DATE, j BINARY, k TIMESTAMP_LTZ, l SHORT, m BYTE"),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()))
    .collect()
}
