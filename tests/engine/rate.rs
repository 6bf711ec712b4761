//! The `rate` and `rate-micro-batch` sources against Spark's formulas (docs/semantics.md §9).

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use sluice_tests::{path_lit, settle, Harness};

fn values_and_ts(batches: &[RecordBatch]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let ts = b.column(0).as_primitive::<TimestampMicrosecondType>();
        let v = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((v.value(i), ts.value(i)));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_emits_contiguous_values_with_sparks_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join("chk");
    let h = Harness::start().await;
    let q = h
        .run(&format!(
            "CREATE STREAM r WITH ('connector'='rate','rowsPerSecond'='10','numPartitions'='3');
             CREATE SINK out WITH ('connector'='memory');
             SET 'checkpointLocation' = '{}';
             INSERT INTO out SELECT timestamp, value FROM r;",
            path_lit(&chk)
        ))
        .await
        .remove(0);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    settle(&q).await;
    q.stop().await.unwrap();
    let creation_ms: i64 = std::fs::read_to_string(chk.join("sources/0/0")).unwrap().lines().nth(1).unwrap().parse().unwrap();
    let rows = values_and_ts(&h.session.memory_table("out").unwrap().all_rows());
    assert!(rows.len() >= 10, "at least a second of rows: {}", rows.len());
    assert_eq!(rows.len() % 10, 0, "whole seconds only");
    for (i, (v, ts)) in rows.iter().enumerate() {
        assert_eq!(*v, i as i64, "values are 0..n without gaps or repeats");
        // With no ramp-up, value v is produced at creation + v/rowsPerSecond seconds.
        assert_eq!(*ts, (creation_ms + v * 100) * 1000, "timestamp of value {v}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_micro_batch_is_deterministic_per_batch() {
    let h = Harness::start().await;
    let q = h
        .run(
            "CREATE STREAM r WITH ('connector'='rate-micro-batch','rowsPerBatch'='5','startTimestamp'='1000','advanceMillisPerBatch'='100','numPartitions'='2');
             CREATE SINK out WITH ('connector'='memory');
             SET 'trigger' = 'processingTime=100 milliseconds';
             INSERT INTO out SELECT timestamp, value FROM r;",
        )
        .await
        .remove(0);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    q.stop().await.unwrap();
    let t = h.session.memory_table("out").unwrap();
    assert!(t.batches.len() >= 3);
    for (id, batch) in &t.batches {
        let rows = values_and_ts(batch);
        let k = id.0 as i64;
        let want: Vec<(i64, i64)> = (5 * k..5 * k + 5).map(|v| (v, (1000 + 100 * k) * 1000)).collect();
        assert_eq!(rows, want, "batch {id}");
    }
    h.shutdown().await;

    // AvailableNow: exactly one batch.
    let h = Harness::start().await;
    let q = h
        .run(
            "CREATE STREAM r WITH ('connector'='rate-micro-batch','rowsPerBatch'='3');
             CREATE SINK out WITH ('connector'='memory');
             SET 'trigger' = 'availableNow';
             INSERT INTO out SELECT value FROM r;",
        )
        .await
        .remove(0);
    q.await_termination().await.unwrap();
    assert_eq!(h.session.memory_table("out").unwrap().batches.len(), 1);
    settle(&q).await;
    h.shutdown().await;
}
