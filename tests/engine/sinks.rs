//! The `files` sink: Spark's output layout and its `_spark_metadata` commit protocol; the `noop`
//! sink's row counts.

use std::fs;

use sluice_tests::rows::{longs, multiset, sorted_rows};
use sluice_tests::{path_lit, settle, Harness};

fn manifest_files(out: &std::path::Path, batch: u64) -> Vec<String> {
    let text = fs::read_to_string(out.join(format!("_spark_metadata/{batch}"))).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("v1"));
    lines
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["action"], "add");
            assert_eq!(v["isDir"], false);
            v["path"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_follows_sparks_writer_and_is_committed_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let h = Harness::start().await;
    let q = h
        .run(&format!(
            "CREATE STREAM s (value BIGINT) WITH ('connector'='memory');
             CREATE SINK o WITH ('connector'='files','format'='json','path'='{}');
             SET 'checkpointLocation' = '{}';
             INSERT INTO o SELECT value, timestamp_seconds(value) AS ts, CASE WHEN value > 1 THEN 'big' END AS label,
                    named_struct('a', value, 'b', 'x') AS st FROM s;",
            path_lit(&out),
            path_lit(&dir.path().join("chk"))
        ))
        .await
        .remove(0);
    let s = h.session.memory_stream("s").unwrap();
    s.add_data(longs("value", &[1, 2])).unwrap();
    settle(&q).await;
    s.add_data(longs("value", &[3])).unwrap();
    settle(&q).await;
    q.stop().await.unwrap();
    let mut lines: Vec<String> = Vec::new();
    for b in 0..2 {
        for f in manifest_files(&out, b) {
            assert!(f.starts_with("file:///") && f.contains("/part-") && f.ends_with(".json"), "{f}");
            lines.extend(fs::read_to_string(f.trim_start_matches("file://")).unwrap().lines().map(str::to_string));
        }
    }
    lines.sort();
    // Spark's JSON writer: nulls omitted, timestamps ISO-8601 with millis and Z, structs nested.
    assert_eq!(
        lines,
        vec![
            r#"{"value":1,"ts":"1970-01-01T00:00:01.000Z","st":{"a":1,"b":"x"}}"#,
            r#"{"value":2,"ts":"1970-01-01T00:00:02.000Z","label":"big","st":{"a":2,"b":"x"}}"#,
            r#"{"value":3,"ts":"1970-01-01T00:00:03.000Z","label":"big","st":{"a":3,"b":"x"}}"#,
        ]
    );
    h.shutdown().await;
}

/// The partition values the test query below gives `value`, derived here in Rust from the same
/// rule its SQL states: (parity, tag), tag NULL for 5.
fn partition_of(value: i64) -> (&'static str, Option<&'static str>) {
    let parity = if value % 2 == 0 { "even" } else { "odd" };
    let tag = match value {
        5 => None,
        v if v % 3 == 0 => Some("a:b/c"),
        _ => Some("x"),
    };
    (parity, tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_by_writes_hive_directories_and_readers_take_the_values_from_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let h = Harness::start().await;
    let q = h
        .run(&format!(
            "CREATE STREAM s (value BIGINT) WITH ('connector'='memory');
             CREATE SINK o WITH ('connector'='files','format'='parquet','path'='{}','partitionBy'='Parity,tag');
             SET 'checkpointLocation' = '{}';
             INSERT INTO o SELECT value, CASE WHEN value % 2 = 0 THEN 'even' ELSE 'odd' END AS parity,
                    CASE WHEN value = 5 THEN NULL WHEN value % 3 = 0 THEN 'a:b/c' ELSE 'x' END AS tag FROM s;",
            path_lit(&out),
            path_lit(&dir.path().join("chk"))
        ))
        .await
        .remove(0);
    let values = [1i64, 2, 3, 4, 5, 6];
    h.session.memory_stream("s").unwrap().add_data(longs("value", &values)).unwrap();
    settle(&q).await;
    q.stop().await.unwrap();

    // Spark's layout: one `parity=…/tag=…` directory per value pair, escaped as Spark escapes
    // path names, NULL as the Hive default partition, and no partition column inside the files.
    // The log holds URLs (a `%` in a directory name is `%25` there); compare file system paths.
    let files: Vec<std::path::PathBuf> =
        manifest_files(&out, 0).iter().map(|f| url::Url::parse(f).unwrap().to_file_path().unwrap()).collect();
    let mut dirs: Vec<String> =
        files.iter().map(|f| f.parent().unwrap().strip_prefix(&out).unwrap().to_str().unwrap().to_string()).collect();
    dirs.sort();
    dirs.dedup();
    let escape =
        |t: Option<&str>| t.map_or("__HIVE_DEFAULT_PARTITION__".to_string(), |t| t.replace(':', "%3A").replace('/', "%2F"));
    let mut expected_dirs: Vec<String> = values
        .iter()
        .map(|v| {
            let (parity, tag) = partition_of(*v);
            format!("parity={parity}/tag={}", escape(tag))
        })
        .collect();
    expected_dirs.sort();
    expected_dirs.dedup();
    assert_eq!(dirs, expected_dirs);
    for d in &expected_dirs {
        assert!(
            out.join(d).is_dir(),
            "{d} is not a directory under {}: {:?}",
            out.display(),
            fs::read_dir(out.join("parity=even")).map(|r| r.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
        );
    }
    let first = fs::File::open(&files[0]).unwrap();
    let columns: Vec<String> =
        parquet::file::reader::FileReader::metadata(&parquet::file::serialized_reader::SerializedFileReader::new(first).unwrap())
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
    assert_eq!(columns, ["value"]);

    // A part file that no batch committed (a failed attempt's leftovers) must stay invisible.
    let stray = out.join("parity=odd/tag=x/part-99999-stray.c000.snappy.parquet");
    fs::copy(&files[0], &stray).unwrap();

    let expected: Vec<String> = values
        .iter()
        .map(|v| {
            let (parity, tag) = partition_of(*v);
            format!("({v}, {parity}, {})", tag.unwrap_or("null"))
        })
        .collect();
    // A stream declaring the partition columns reads them from the path.
    let q = h
        .run(&format!(
            "CREATE STREAM back (value BIGINT, parity STRING, tag STRING) WITH ('connector'='files','format'='parquet','path'='{}');
             CREATE SINK m WITH ('connector'='memory');
             SET 'trigger' = 'availableNow';
             INSERT INTO m SELECT value, parity, tag FROM back;",
            path_lit(&out)
        ))
        .await
        .remove(0);
    q.await_termination().await.unwrap();
    assert_eq!(sorted_rows(&h.session.memory_table("m").unwrap().all_rows()), multiset(&expected));

    // A table taking its schema from the files finds the partition columns, as `spark.read.parquet` does.
    let (schema, rows) = h
        .session
        .run_batch(
            "test",
            &format!(
                "CREATE TABLE t WITH ('connector'='files','format'='parquet','path'='{}');
                 CREATE SINK r WITH ('connector'='noop');
                 INSERT INTO r SELECT * FROM t;",
                path_lit(&out)
            ),
            &[],
        )
        .await
        .unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["value", "parity", "tag"]);
    assert_eq!(sorted_rows(&rows), multiset(&expected));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_output_and_file_sink_rejects_other_modes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let h = Harness::start().await;
    let job = |mode: &str| {
        format!(
            "CREATE STREAM s (value BIGINT) WITH ('connector'='memory');
             CREATE SINK o WITH ('connector'='files','format'='csv','header'='true','path'='{}');
             SET 'checkpointLocation' = '{}';
             SET 'outputMode' = '{mode}';
             INSERT INTO o SELECT value, concat('v,', CAST(value AS STRING)) AS label FROM s;",
            path_lit(&out),
            path_lit(&dir.path().join("chk"))
        )
    };
    let e = h.run_err(&job("update")).await;
    assert!(e.contains("Data source csv does not support Update output mode"), "{e}");
    let q = h.run(&job("append")).await.remove(0);
    h.session.memory_stream("s").unwrap().add_data(longs("value", &[7])).unwrap();
    settle(&q).await;
    q.stop().await.unwrap();
    let f = &manifest_files(&out, 0)[0];
    assert_eq!(fs::read_to_string(f.trim_start_matches("file://")).unwrap(), "value,label\n7,\"v,7\"\n");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_sink_runs_the_query_and_counts_its_rows_in_any_mode() {
    let h = Harness::start().await;
    // 7 rows per batch, values 0..7 then 7..14: `value % 3` has 3 groups from the first batch.
    let q = h
        .run(
            "CREATE STREAM r WITH ('connector'='rate-micro-batch','rowsPerBatch'='7','numPartitions'='2');
             CREATE SINK out WITH ('connector' = 'noop');
             SET 'outputMode' = 'complete';
             SET 'trigger' = 'processingTime=50 milliseconds';
             INSERT INTO out SELECT value % 3 AS k, count(*) AS n FROM r GROUP BY value % 3;",
        )
        .await
        .remove(0);
    while q.recent_progress().len() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    q.stop().await.unwrap();
    let progress = q.recent_progress();
    assert_eq!(progress[0].sink.description, "NoopTable");
    for p in &progress[..2] {
        assert_eq!(p.num_input_rows, 7, "batch {}", p.batch_id);
        assert_eq!(p.sink.num_output_rows, 3, "complete mode re-emits every group, batch {}", p.batch_id);
    }
    let err = h
        .run_err("CREATE STREAM r WITH ('connector'='rate-micro-batch','rowsPerBatch'='1'); CREATE SINK out WITH ('connector'='noop','path'='/x'); INSERT INTO out SELECT * FROM r;")
        .await;
    assert!(err.contains("unknown option 'path' for connector 'noop'"), "{err}");
    h.shutdown().await;
}
