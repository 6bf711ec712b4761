//! Triggers (docs/semantics.md §8) and stateless output modes (docs/semantics.md §5).

use std::time::Duration;

use sluice_tests::rows::longs;
use sluice_tests::{settle, Harness};

const MEMORY_JOB: &str = "
CREATE STREAM s (value BIGINT) WITH ('connector'='memory');
CREATE SINK out WITH ('connector'='memory');
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_time_runs_at_most_one_batch_per_interval() {
    let h = Harness::start().await;
    let q = h
        .run(&format!("{MEMORY_JOB} SET 'trigger' = 'processingTime=1 second'; INSERT INTO out SELECT value FROM s;"))
        .await
        .remove(0);
    let s = h.session.memory_stream("s").unwrap();
    // Data arrives faster than the interval; batches must still be at least ~an interval apart.
    for i in 0..12 {
        s.add_data(longs("value", &[i])).unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    settle(&q).await;
    let starts: Vec<i64> = q
        .recent_progress()
        .iter()
        .map(|p| chrono::DateTime::parse_from_rfc3339(&p.timestamp).unwrap().timestamp_millis())
        .collect();
    assert!(starts.len() >= 2, "{starts:?}");
    // After the first trigger, triggers start on interval boundaries, so no two batches share
    // an interval: at most one batch per second even though data arrived every 250 ms.
    let slots: Vec<i64> = starts.iter().map(|t| t / 1000).collect();
    assert!(slots.windows(2).all(|w| w[0] < w[1]), "two batches in one interval: {starts:?}");
    assert!(starts.len() <= 5, "12 rows over 3 s must not become {} batches", starts.len());
    let rows: usize = h.session.memory_table("out").unwrap().all_rows().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 12);
    q.stop().await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_runs_a_single_batch_and_terminates() {
    let h = Harness::start().await;
    let s_job = format!("{MEMORY_JOB} SET 'trigger' = 'once'; INSERT INTO out SELECT value FROM s;");
    let resolved = h.session.prepare_job("t.sql", &s_job).await.unwrap();
    let s = h.session.memory_stream("s").unwrap();
    s.add_data(longs("value", &[1])).unwrap();
    s.add_data(longs("value", &[2])).unwrap();
    let q = h.session.start(resolved.into_iter().next().unwrap()).await.unwrap();
    q.await_termination().await.unwrap();
    assert_eq!(q.recent_progress().len(), 1);
    assert_eq!(h.session.memory_table("out").unwrap().batches.len(), 1);
    assert!(!q.is_active());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_trigger_is_rejected_clearly() {
    let h = Harness::start().await;
    let e = h.run_err(&format!("{MEMORY_JOB} SET 'trigger' = 'continuous=1 second'; INSERT INTO out SELECT value FROM s;")).await;
    assert!(e.contains("continuous processing") && e.contains("not supported"), "{e}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_output_modes_follow_spark() {
    let h = Harness::start().await;
    // Update without aggregation behaves like append.
    let q = h.run(&format!("{MEMORY_JOB} SET 'outputMode' = 'update'; INSERT INTO out SELECT value FROM s;")).await.remove(0);
    let s = h.session.memory_stream("s").unwrap();
    s.add_data(longs("value", &[1, 2])).unwrap();
    settle(&q).await;
    s.add_data(longs("value", &[3])).unwrap();
    settle(&q).await;
    let t = h.session.memory_table("out").unwrap();
    assert_eq!(t.batches.len(), 2);
    assert_eq!(t.all_rows().iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    q.stop().await.unwrap();

    let e = h.run_err(&format!("{MEMORY_JOB} SET 'outputMode' = 'complete'; INSERT INTO out SELECT value FROM s;")).await;
    assert!(
        e.contains(
            "Complete output mode not supported when there are no streaming aggregations on streaming DataFrames/Datasets"
        ),
        "{e}"
    );
    h.shutdown().await;
}
