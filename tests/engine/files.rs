//! The `files` source and sink on real files.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use sluice_tests::rows::{multiset, sorted_rows};
use sluice_tests::{path_lit, settle, Harness};

/// Writes `lines` to `dir/name` with a modification time `age_s` seconds in the past, so tests
/// control the order the source sees files in.
fn write_file(dir: &Path, name: &str, text: &str, age_s: u64) {
    let p = dir.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    let f = fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(age_s)).unwrap();
}

fn json_job(input: &Path, extra_options: &str, trigger: &str) -> String {
    format!(
        "CREATE STREAM ev (id BIGINT, name STRING) WITH ('connector'='files', 'format'='json', 'path'='{}'{extra_options});
         CREATE SINK out WITH ('connector'='memory');
         SET 'trigger' = '{trigger}';
         INSERT INTO out SELECT id, name FROM ev;",
        path_lit(input)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn available_now_splits_by_max_files_per_trigger_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_file(&input, "a.json", "{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":\"b\"}\n", 30);
    write_file(&input, "b.json", "{\"id\":3,\"name\":\"c\"}\n", 20);
    write_file(&input, "c.json", "{\"id\":4,\"name\":\"d\"}\n", 10);
    let h = Harness::start().await;
    let q = h.run(&json_job(&input, ", 'maxFilesPerTrigger'='1'", "availableNow")).await.remove(0);
    q.await_termination().await.unwrap();
    let table = h.session.memory_table("out").unwrap();
    // One file per batch, oldest first.
    let per_batch: Vec<Vec<String>> = table.batches.iter().map(|(_, b)| sorted_rows(b)).collect();
    assert_eq!(per_batch, vec![multiset(&["(1, a)", "(2, b)"]), multiset(&["(3, c)"]), multiset(&["(4, d)"])]);
    // A file arriving after the run is left for the next run; restarting on the same
    // (temporary) checkpoint is not possible, so start a fresh query to show it is there.
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_once_reads_everything_in_one_batch_ignoring_read_limits() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    for i in 0..3 {
        write_file(&input, &format!("f{i}.json"), &format!("{{\"id\":{i},\"name\":\"n{i}\"}}\n"), 30 - i);
    }
    let h = Harness::start().await;
    let q = h.run(&json_job(&input, ", 'maxFilesPerTrigger'='1'", "once")).await.remove(0);
    q.await_termination().await.unwrap();
    let table = h.session.memory_table("out").unwrap();
    assert_eq!(table.batches.len(), 1);
    assert_eq!(sorted_rows(&table.all_rows()), multiset(&["(0, n0)", "(1, n1)", "(2, n2)"]));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_first_and_max_bytes_per_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_file(&input, "old.json", "{\"id\":1,\"name\":\"old\"}\n", 30);
    write_file(&input, "new.json", "{\"id\":2,\"name\":\"new\"}\n", 10);
    let h = Harness::start().await;
    let q = h.run(&json_job(&input, ", 'maxFilesPerTrigger'='1', 'latestFirst'='true'", "availableNow")).await.remove(0);
    q.await_termination().await.unwrap();
    let table = h.session.memory_table("out").unwrap();
    let firsts: Vec<Vec<String>> = table.batches.iter().map(|(_, b)| sorted_rows(b)).collect();
    assert_eq!(firsts, vec![vec!["(2, new)".to_string()], vec!["(1, old)".to_string()]]);
    h.shutdown().await;

    // maxBytesPerTrigger: each file is 23 bytes; a 30-byte budget admits one file per batch.
    let h = Harness::start().await;
    let q = h.run(&json_job(&input, ", 'maxBytesPerTrigger'='30'", "availableNow")).await.remove(0);
    q.await_termination().await.unwrap();
    assert_eq!(h.session.memory_table("out").unwrap().batches.len(), 2);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_text_and_parquet_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("csv");
    write_file(&csv, "a.csv", "id;name\n1;x\n2;\"y;z\"\n", 10);
    let text = dir.path().join("text");
    write_file(&text, "a.txt", "hello world\nsecond line\n", 10);
    let pq = dir.path().join("pq");
    fs::create_dir_all(&pq).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(vec![7, 8])), Arc::new(StringArray::from(vec![Some("p"), None]))],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(fs::File::create(pq.join("a.parquet")).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let h = Harness::start().await;
    let job = format!(
        "CREATE STREAM c (id BIGINT, name STRING) WITH ('connector'='files','format'='csv','header'='true','sep'=';','path'='{}');
         CREATE STREAM t (value STRING) WITH ('connector'='files','format'='text','path'='{}');
         CREATE STREAM p (name STRING, id BIGINT) WITH ('connector'='files','format'='parquet','path'='{}');
         CREATE SINK cs WITH ('connector'='memory');
         CREATE SINK ts WITH ('connector'='memory');
         CREATE SINK ps WITH ('connector'='memory');
         SET 'trigger' = 'availableNow';
         INSERT INTO cs SELECT * FROM c;
         INSERT INTO ts SELECT upper(value) FROM t;
         INSERT INTO ps SELECT * FROM p;",
        path_lit(&csv),
        path_lit(&text),
        path_lit(&pq)
    );
    for q in h.run(&job).await {
        q.await_termination().await.unwrap();
    }
    let get = |n: &str| sorted_rows(&h.session.memory_table(n).unwrap().all_rows());
    assert_eq!(get("cs"), multiset(&["(1, x)", "(2, y;z)"]));
    assert_eq!(get("ts"), multiset(&["(HELLO WORLD)", "(SECOND LINE)"]));
    // Columns are matched by name, not position.
    assert_eq!(get("ps"), multiset(&["(p, 7)", "(null, 8)"]));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_is_read_by_several_tasks_and_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let n = 3000;
    let text: String = (0..n).map(|i| format!("{{\"id\":{i},\"name\":\"row-{i:05}\"}}\n")).collect();
    write_file(&input, "big.json", &text, 10);
    let out = dir.path().join("out");
    let chk = dir.path().join("chk");
    let h = Harness::start().await;
    let q = h
        .run(&format!(
            "CREATE STREAM ev (id BIGINT, name STRING) WITH ('connector'='files','format'='json','path'='{}');
             CREATE SINK o WITH ('connector'='files','format'='json','path'='{}');
             SET 'checkpointLocation' = '{}';
             SET 'spark.sql.files.maxPartitionBytes' = '8k';
             SET 'spark.sql.files.openCostInBytes' = '0';
             SET 'trigger' = 'availableNow';
             INSERT INTO o SELECT id FROM ev;",
            path_lit(&input),
            path_lit(&out),
            path_lit(&chk)
        ))
        .await
        .remove(0);
    q.await_termination().await.unwrap();
    // The manifest lists one part file per task that produced rows.
    let manifest = fs::read_to_string(out.join("_spark_metadata/0")).unwrap();
    let files: Vec<serde_json::Value> = manifest.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(files.len() >= text.len() / 8192, "expected several part files, got {}", files.len());
    let mut ids: Vec<i64> = Vec::new();
    for f in &files {
        let path = f["path"].as_str().unwrap().trim_start_matches("file://");
        for line in fs::read_to_string(path).unwrap().lines() {
            ids.push(serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].as_i64().unwrap());
        }
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..n as i64).collect::<Vec<_>>());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_source_deletes_or_archives_committed_files() {
    for mode in ["delete", "archive"] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let archive = dir.path().join("archive");
        write_file(&input, "a.json", "{\"id\":1,\"name\":\"a\"}\n", 30);
        write_file(&input, "b.json", "{\"id\":2,\"name\":\"b\"}\n", 20);
        let h = Harness::start().await;
        let extra = format!(", 'maxFilesPerTrigger'='1', 'cleanSource'='{mode}', 'sourceArchiveDir'='{}'", path_lit(&archive));
        let q = h.run(&json_job(&input, &extra, "default")).await.remove(0);
        settle(&q).await;
        // Files are cleaned when the *next* batch's offsets are written (Spark's commit of the
        // previous batch), so a.json goes once b.json's batch starts; b.json stays.
        assert!(!input.join("a.json").exists(), "{mode}: a.json should be cleaned");
        assert!(input.join("b.json").exists(), "{mode}: b.json belongs to the last batch");
        let archived = archive.join(input.join("a.json").strip_prefix("/").unwrap());
        assert_eq!(archived.exists(), mode == "archive", "{mode}: archived copy at {}", archived.display());
        q.stop().await.unwrap();
        h.shutdown().await;
    }
}
