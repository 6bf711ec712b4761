//! The memory source and memory sink: Spark's MemoryStream/MemorySink contract.

use sluice_tests::rows::{longs, multiset, rows, sorted_rows};
use sluice_tests::{settle, Harness};

const JOB: &str = "
CREATE STREAM nums (value BIGINT) WITH ('connector' = 'memory', 'numPartitions' = '3');
CREATE SINK out WITH ('connector' = 'memory');
INSERT INTO out SELECT value, value * 10 AS tenfold FROM nums WHERE value % 2 = 1;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_added_block_is_processed_exactly_once() {
    let h = Harness::start().await;
    let q = h.run(JOB).await.remove(0);
    let nums = h.session.memory_stream("nums").expect("declared memory stream");
    nums.add_data(longs("value", &[1, 2, 3, 4, 5, 6, 7])).unwrap();
    settle(&q).await;
    let table = h.session.memory_table("out").unwrap();
    assert_eq!(sorted_rows(&table.all_rows()), multiset(&["(1, 10)", "(3, 30)", "(5, 50)", "(7, 70)"]));

    // Two blocks added before the next trigger can land in one batch or two; either way
    // each row appears exactly once.
    nums.add_data(longs("value", &[9])).unwrap();
    nums.add_data(longs("value", &[11, 12])).unwrap();
    settle(&q).await;
    let table = h.session.memory_table("out").unwrap();
    assert_eq!(sorted_rows(&table.all_rows()), multiset(&["(1, 10)", "(3, 30)", "(5, 50)", "(7, 70)", "(9, 90)", "(11, 110)"]));
    // Each executed batch is stored with its own batch id, ascending.
    let ids: Vec<u64> = table.batches.iter().map(|(id, _)| id.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    q.stop().await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_split_into_partitions_keeps_row_order_within_the_batch() {
    let h = Harness::start().await;
    let q = h
        .run(
            "CREATE STREAM nums (value BIGINT) WITH ('connector' = 'memory', 'numPartitions' = '4');
              CREATE SINK out WITH ('connector' = 'memory');
              INSERT INTO out SELECT value FROM nums;",
        )
        .await
        .remove(0);
    let values: Vec<i64> = (0..40).collect();
    h.session.memory_stream("nums").unwrap().add_data(longs("value", &values)).unwrap();
    settle(&q).await;
    let got = rows(&h.session.memory_table("out").unwrap().last_batch());
    let want: Vec<String> = values.iter().map(|v| format!("({v})")).collect();
    assert_eq!(got, want, "tasks are ordered by partition, partitions are contiguous slices");
    q.stop().await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reports_rows_offsets_and_sink_counts() {
    let h = Harness::start().await;
    let q = h.run(JOB).await.remove(0);
    let nums = h.session.memory_stream("nums").unwrap();
    nums.add_data(longs("value", &[1, 2, 3])).unwrap();
    settle(&q).await;
    nums.add_data(longs("value", &[4, 5])).unwrap();
    settle(&q).await;
    let progress = q.recent_progress();
    assert_eq!(progress.len(), 2, "one report per executed batch, none for idle triggers");
    let p0 = &progress[0];
    assert_eq!((p0.batch_id, p0.num_input_rows, p0.sink.num_output_rows), (0, 3, 2));
    assert_eq!(p0.sources[0].start_offset, serde_json::Value::Null);
    assert_eq!(p0.sources[0].end_offset, serde_json::json!(0));
    let p1 = &progress[1];
    assert_eq!((p1.batch_id, p1.num_input_rows, p1.sink.num_output_rows), (1, 2, 1));
    assert_eq!(p1.sources[0].start_offset, serde_json::json!(0));
    assert_eq!(p1.sources[0].end_offset, serde_json::json!(1));
    let json: serde_json::Value = serde_json::from_str(&p1.json()).unwrap();
    for key in [
        "id",
        "runId",
        "name",
        "timestamp",
        "batchId",
        "batchDuration",
        "numInputRows",
        "durationMs",
        "stateOperators",
        "sources",
        "sink",
    ] {
        assert!(json.get(key).is_some(), "progress JSON lacks {key}: {json}");
    }
    assert!(json["durationMs"].get("walCommit").is_some() && json["durationMs"].get("addBatch").is_some());
    q.stop().await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_replayed_after_its_sink_commit_is_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("chk");
    let job = format!(
        "CREATE STREAM nums (value BIGINT) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'checkpointLocation' = '{}';
         INSERT INTO out SELECT value FROM nums;",
        sluice_tests::path_lit(&chk)
    );
    let h = Harness::start().await;
    let q = h.run(&job).await.remove(0);
    let nums = h.session.memory_stream("nums").unwrap();
    nums.add_data(longs("value", &[1])).unwrap();
    settle(&q).await;
    nums.add_data(longs("value", &[2])).unwrap();
    settle(&q).await;
    q.stop().await.unwrap();
    // A crash after the sink accepted batch 1 but before commits/1 was written.
    std::fs::remove_file(chk.join("commits/1")).unwrap();
    let q = h.run(&job).await.remove(0);
    settle(&q).await;
    let first = q.recent_progress().first().cloned().expect("batch 1 re-ran");
    assert_eq!(first.batch_id, 1);
    assert_eq!(first.sink.num_output_rows, 0, "the memory sink ignored the replayed batch id");
    assert_eq!(sorted_rows(&h.session.memory_table("out").unwrap().all_rows()), multiset(&["(1)", "(2)"]));
    assert!(chk.join("commits/1").exists());
    q.stop().await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_functions_and_casts() {
    let h = Harness::start().await;
    let q = h
        .run(
            "CREATE STREAM j (value STRING) WITH ('connector' = 'memory');
             CREATE SINK out WITH ('connector' = 'memory');
             INSERT INTO out
             SELECT p.a, p.b, CAST(p.ts AS BIGINT) AS secs, CAST(CAST(p.a AS TIMESTAMP) AS STRING) AS as_ts,
                    date_format(to_timestamp(p.b, 'dd/MM/yyyy HH:mm'), 'yyyy-MM-dd''T''HH:mm') AS reformatted,
                    CAST(p.a AS STRING) AS a_text, CAST(p.a * 1.5e10 AS STRING) AS big_double
             FROM (SELECT from_json(value, 'a BIGINT, b STRING, ts TIMESTAMP') AS p FROM j);",
        )
        .await
        .remove(0);
    h.session
        .memory_stream("j")
        .unwrap()
        .add_data(sluice_tests::rows::strings(
            "value",
            &[r#"{"a": 2, "b": "27/03/2016 19:39", "ts": "1970-01-01T00:00:15Z"}"#, "not json"],
        ))
        .unwrap();
    settle(&q).await;
    assert_eq!(
        sorted_rows(&h.session.memory_table("out").unwrap().all_rows()),
        multiset(&[
            "(2, 27/03/2016 19:39, 15, 1970-01-01 00:00:02, 2016-03-27T19:39, 2, 3.0E10)",
            "(null, null, null, null, null, null, null)",
        ])
    );
    q.stop().await.unwrap();
    h.shutdown().await;
}
