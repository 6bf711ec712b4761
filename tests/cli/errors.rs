//! Bad input: one clear line on stderr, a non-zero exit, and the checkpoint left as it was.

use std::collections::BTreeMap;
use std::path::Path;

use sluice_tests::binary::{run_sluice, stderr};

/// Every file under `dir` with its contents, to prove a failed run changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Runs a job that must fail; returns its single stderr line.
fn fails(dir: &Path, job: &str) -> String {
    std::fs::write(dir.join("job.sql"), job).unwrap();
    let out = run_sluice(dir, &["run", "job.sql"]);
    assert!(!out.status.success(), "job unexpectedly succeeded:\n{job}");
    let err = stderr(&out);
    // A query that started and then failed was announced with its UI's address first; the
    // error itself is one line.
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("sluice: UI at ")).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    assert!(lines[0].starts_with("sluice: error: "), "{err}");
    lines[0].to_string()
}

const SINK: &str = "CREATE SINK out WITH ('connector'='console');";

#[test]
fn bad_sql_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let e =
        fails(dir.path(), &format!("{SINK}\nCREATE STREAM r WITH ('connector'='rate');\nINSERT INTO out SELEC value FROM r;"));
    assert!(e.contains("job.sql:3:"), "{e}");
    let e =
        fails(dir.path(), &format!("{SINK}\nCREATE STREAM r WITH ('connector'='rate');\nINSERT INTO out SELECT nope FROM r;"));
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn unknown_connectors_formats_and_options_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(dir.path(), &format!("{SINK} CREATE STREAM s WITH ('connector'='kinesis'); INSERT INTO out SELECT * FROM s;"));
    assert!(
        e.contains(
            "unknown connector 'kinesis'; available connectors: files, kafka, nexmark, rate, rate-micro-batch, socket, memory"
        ),
        "{e}"
    );
    let e = fails(dir.path(), &format!("{SINK} CREATE STREAM s (a INT) WITH ('connector'='files','format'='avro','path'='x'); INSERT INTO out SELECT * FROM s;"));
    assert!(e.contains("unknown format 'avro'"), "{e}");
    let e = fails(
        dir.path(),
        &format!("{SINK} CREATE STREAM s WITH ('connector'='rate','rowsPerSec'='5'); INSERT INTO out SELECT * FROM s;"),
    );
    assert!(e.contains("unknown option 'rowsPerSec'") && e.contains("rowsPerSecond"), "{e}");
    let e = fails(dir.path(), "CREATE SINK out WITH ('connector'='console','rows'='5'); CREATE STREAM s WITH ('connector'='rate'); INSERT INTO out SELECT * FROM s;");
    assert!(e.contains("unknown option 'rows'") && e.contains("numRows"), "{e}");
    let e = fails(
        dir.path(),
        &format!(
            "{SINK} SET 'outputMod' = 'append'; CREATE STREAM s WITH ('connector'='rate'); INSERT INTO out SELECT * FROM s;"
        ),
    );
    assert!(e.contains("unknown option 'outputMod'") && e.contains("outputMode"), "{e}");
}

#[test]
fn missing_schema_and_unsupported_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(
        dir.path(),
        &format!(
            "{SINK} CREATE STREAM s WITH ('connector'='files','format'='json','path'='in'); INSERT INTO out SELECT * FROM s;"
        ),
    );
    assert!(e.contains("Schema must be specified when creating a streaming source DataFrame"), "{e}");
    let e = fails(
        dir.path(),
        &format!("{SINK} CREATE STREAM s WITH ('connector'='rate'); INSERT INTO out SELECT value FROM s ORDER BY value;"),
    );
    assert!(e.contains("Sorting is not supported on streaming DataFrames/Datasets"), "{e}");
}

#[test]
fn unreadable_paths_fail_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A "directory" that is really a file: listing it fails.
    std::fs::write(dir.path().join("plain-file"), "x").unwrap();
    let e = fails(
        dir.path(),
        &format!("{SINK} CREATE STREAM s (a INT) WITH ('connector'='files','format'='json','path'='plain-file/inside'); INSERT INTO out SELECT * FROM s;"),
    );
    assert!(e.contains("plain-file"), "{e}");
    let e = fails(
        dir.path(),
        "CREATE SINK out WITH ('connector'='files','format'='json','path'='o');
         SET 'checkpointLocation' = 'plain-file/chk';
         CREATE STREAM s WITH ('connector'='rate'); INSERT INTO out SELECT * FROM s;",
    );
    assert!(e.contains("plain-file/chk"), "{e}");
}

const RUN_ONCE: &str = "
CREATE STREAM r WITH ('connector'='rate-micro-batch','rowsPerBatch'='2');
CREATE SINK o WITH ('connector'='files','format'='json','path'='out');
SET 'checkpointLocation' = 'chk';
SET 'trigger' = 'once';
INSERT INTO o SELECT value FROM r;";

#[test]
fn a_checkpoint_of_another_query_shape_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), RUN_ONCE).unwrap();
    assert!(run_sluice(dir.path(), &["run", "job.sql"]).status.success());
    let before = snapshot(&dir.path().join("chk"));
    let e = fails(
        dir.path(),
        "CREATE STREAM r WITH ('connector'='rate');
         CREATE SINK o WITH ('connector'='files','format'='json','path'='out');
         SET 'checkpointLocation' = 'chk';
         INSERT INTO o SELECT value FROM r;",
    );
    assert!(e.contains("was written by a different query") && e.contains("rate-micro-batch"), "{e}");
    assert_eq!(snapshot(&dir.path().join("chk")), before, "the checkpoint must be left intact");
}

#[test]
fn a_corrupt_offsets_file_is_named_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), RUN_ONCE).unwrap();
    assert!(run_sluice(dir.path(), &["run", "job.sql"]).status.success());
    assert!(run_sluice(dir.path(), &["run", "job.sql"]).status.success());
    // Damaged, not cut short: a write its writer died in the middle of counts as never written
    // (restart.rs), an entry with wrong bytes in it is corruption.
    std::fs::write(dir.path().join("chk/offsets/1"), "v1\n{\"batchWatermarkMs\":0,\"batchTim\u{0}\"}\n{}").unwrap();
    let before = snapshot(&dir.path().join("chk"));
    let e = fails(dir.path(), RUN_ONCE);
    assert!(e.contains("offsets/1 is corrupt"), "{e}");
    assert_eq!(snapshot(&dir.path().join("chk")), before);
}
