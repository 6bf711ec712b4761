//! T9: StreamingAggregationSuite (no watermark), docs/semantics.md §12.

use sluice_tests::oracle::StreamTest;

fn count_by_value(mode: &str) -> String {
    format!(
        "CREATE STREAM input (value BIGINT) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = '{mode}';
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out SELECT value, count(*) AS cnt FROM input GROUP BY value;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t9_simple_count_update_mode() {
    let mut t = StreamTest::start(&count_by_value("update")).await;
    t.add_longs(&[3]);
    t.check_last_batch(&["(3, 1)"]).await;
    t.add_longs(&[3, 2]);
    t.check_last_batch(&["(3, 2)", "(2, 1)"]).await;
    t.restart().await;
    t.add_longs(&[3, 2, 1]);
    t.check_last_batch(&["(3, 3)", "(2, 2)", "(1, 1)"]).await;
    t.add_longs(&[4, 4, 4, 4]);
    t.check_last_batch(&["(4, 4)"]).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t9_simple_count_complete_mode() {
    let mut t = StreamTest::start(&count_by_value("complete")).await;
    t.add_longs(&[3]);
    t.check_last_batch(&["(3, 1)"]).await;
    t.add_longs(&[2]);
    t.check_last_batch(&["(3, 1)", "(2, 1)"]).await;
    t.restart().await;
    t.add_longs(&[3, 2, 1]);
    t.check_last_batch(&["(3, 2)", "(2, 2)", "(1, 1)"]).await;
    t.add_longs(&[4, 4, 4, 4]);
    t.check_last_batch(&["(4, 4)", "(3, 2)", "(2, 2)", "(1, 1)"]).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t9_simple_count_append_mode_is_rejected() {
    let h = sluice_tests::Harness::start().await;
    let e = h.run_err(&count_by_value("append")).await.to_lowercase();
    assert!(e.contains("append") && e.contains("not supported"), "{e}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t9_sort_after_aggregate_in_complete_mode() {
    let job = "CREATE STREAM input (value BIGINT) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = 'complete';
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out SELECT value, count(*) AS cnt FROM input GROUP BY value ORDER BY cnt DESC;";
    let mut t = StreamTest::start(job).await;
    t.add_longs(&[3]);
    t.check_last_batch_sorted(&["(3, 1)"]).await;
    t.add_longs(&[2, 3]);
    t.check_last_batch_sorted(&["(3, 2)", "(2, 1)"]).await;
    t.restart().await;
    t.add_longs(&[3, 2, 1]);
    t.check_last_batch_sorted(&["(3, 3)", "(2, 2)", "(1, 1)"]).await;
    t.add_longs(&[4, 4, 4, 4]);
    t.check_last_batch_sorted(&["(4, 4)", "(3, 3)", "(2, 2)", "(1, 1)"]).await;
    t.finish().await;
}

fn state_metrics_job(mode: &str) -> String {
    // flatMap(x => Seq(x, x + 1)) then count, written as a union of two projections.
    format!(
        "CREATE STREAM input (value BIGINT) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = '{mode}';
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out SELECT v, count(*) AS cnt FROM (
           SELECT unnest(make_array(value, value + 1)) AS v FROM input
         ) GROUP BY v;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t9_state_metrics_update_mode() {
    let mut t = StreamTest::start(&state_metrics_job("update")).await;
    t.add_longs(&[1]);
    t.check_last_batch(&["(1, 1)", "(2, 1)"]).await;
    assert_eq!(t.last_progress().sink.num_output_rows, 2);
    t.assert_state_rows(&[2], &[2]);
    t.add_longs(&[2, 3]);
    t.check_last_batch(&["(2, 2)", "(3, 2)", "(4, 1)"]).await;
    assert_eq!(t.last_progress().sink.num_output_rows, 3);
    t.assert_state_rows(&[4], &[3]);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t9_state_metrics_complete_mode() {
    let mut t = StreamTest::start(&state_metrics_job("complete")).await;
    t.add_longs(&[1]);
    t.check_last_batch(&["(1, 1)", "(2, 1)"]).await;
    assert_eq!(t.last_progress().sink.num_output_rows, 2);
    t.assert_state_rows(&[2], &[2]);
    t.add_longs(&[2, 3]);
    t.check_last_batch(&["(1, 1)", "(2, 2)", "(3, 2)", "(4, 1)"]).await;
    assert_eq!(t.last_progress().sink.num_output_rows, 4);
    t.assert_state_rows(&[4], &[3]);
    t.finish().await;
}
