//! The job-file parser: `CREATE STREAM/TABLE/SINK/VIEW`, `SET`, `INSERT INTO … SELECT`, with
//! watermark intervals and Spark types; then each query's SQL as executors re-parse it.

use sluice_driver::job::JobFile;
use sluice_plan::compile::parse_query;

use crate::Target;

pub const TARGET: Target = Target {
    name: "job_file",
    seeds,
    store_seeds: false,
    dictionary: &[
        "CREATE STREAM",
        "CREATE TABLE",
        "CREATE SINK",
        "CREATE VIEW",
        "INSERT INTO",
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP BY",
        "WITH (",
        "'connector' = 'rate'",
        "SET",
        "WATERMARK FOR",
        "AS",
        "INTERVAL '10' MINUTE",
        "INTERVAL '1 hour'",
        "-",
        "TIMESTAMP",
        "STRUCT<a: INT>",
        "ARRAY<",
        "MAP<STRING, ",
        "DECIMAL(38, 10)",
        "window(",
        "session_window(",
        "CAST(",
        "DISTINCT ON (",
        "within_watermark(",
        "NOT",
        "DIV",
        "CASE WHEN",
        "END",
        ";",
        "--",
        "/*",
        "*/",
        "`",
        "'",
        "\"",
        "(",
        ")",
        "<",
        ">",
        ">>",
        "!",
        "a.b.c",
        "9999999999999999999 years",
    ],
    run,
};

fn run(input: &[u8]) {
    let text = super::text(input);
    if let Ok(job) = JobFile::parse("fuzz.sql", &text) {
        for q in &job.queries {
            let _ = parse_query(&q.select_sql);
        }
        for (_, view) in &job.views {
            let _ = parse_query(view);
        }
    }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    // The README's example jobs: what users really write.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("listing examples/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read(dir.join(&n)).expect("reading an example job");
            (n, text)
        })
        .collect()
}
