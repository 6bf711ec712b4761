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
    assert_eq!(
        sorted_rows(&table.all_rows()),
        multiset(&["(1, 10)", "(3, 30)", "(5, 50)", "(7, 70)", "(9, 90)", "(11, 110)"])
    );
    // Each executed batch is stored with its own batch id, ascending.
    let ids: Vec<u64> = table.batches.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    q.stop().await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_split_into_partitions_keeps_row_order_within_the_batch() {
    let h = Harness::start().await;
    let q = h
        .run("CREATE STREAM nums (value BIGINT) WITH ('connector' = 'memory', 'numPartitions' = '4');
              CREATE SINK out WITH ('connector' = 'memory');
              INSERT INTO out SELECT value FROM nums;")
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
    for key in ["id", "runId", "name", "timestamp", "batchId", "batchDuration", "numInputRows", "durationMs", "stateOperators", "sources", "sink"] {
        assert!(json.get(key).is_some(), "progress JSON lacks {key}: {json}");
    }
    assert!(json["durationMs"].get("walCommit").is_some() && json["durationMs"].get("addBatch").is_some());
    q.stop().await.unwrap();
    h.shutdown().await;
}
