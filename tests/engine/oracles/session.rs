//! T12: StreamingSessionWindowSuite (docs/semantics.md §12).

use sluice_tests::oracle::StreamTest;
use sluice_tests::rows::str_long;

/// Query S: words of each line are session ids; sessions with a 10-second gap; watermark 30 s.
fn query_s(mode: &str) -> String {
    format!(
        "CREATE STREAM input (value STRING, t BIGINT, eventTime AS CAST(t AS TIMESTAMP),
                              WATERMARK FOR eventTime AS eventTime - INTERVAL '30' SECOND) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = '{mode}';
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out
         SELECT sessionId, CAST(s.start AS BIGINT) AS s_start, CAST(s.end AS BIGINT) AS s_end,
                CAST(s.end AS BIGINT) - CAST(s.start AS BIGINT) AS duration, numEvents
         FROM (
           SELECT session_window(eventTime, '10 seconds') AS s, sessionId, count(*) AS numEvents
           FROM (SELECT unnest(string_to_array(value, ' ')) AS sessionId, eventTime FROM input)
           GROUP BY session_window(eventTime, '10 seconds'), sessionId
         );"
    )
}

const FIRST_FIVE: [&str; 5] = [
    "(hello, 40, 51, 11, 2)",
    "(world, 40, 51, 11, 2)",
    "(streaming, 40, 51, 11, 2)",
    "(spark, 40, 50, 10, 1)",
    "(structured, 41, 51, 10, 1)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_session_window_complete_mode() {
    let mut t = StreamTest::start(&query_s("complete")).await;
    t.add_batch(str_long("value", "t", &[("hello world spark streaming", 40), ("world hello structured streaming", 41)]));
    t.check_last_batch(&FIRST_FIVE).await;
    t.add_batch(str_long("value", "t", &[("spark streaming", 25)]));
    let mut expected: Vec<&str> = vec!["(spark, 25, 35, 10, 1)", "(streaming, 25, 35, 10, 1)"];
    expected.extend(FIRST_FIVE);
    t.check_last_batch(&expected).await;
    t.add_batch(str_long("value", "t", &[("spark streaming", 30)]));
    let merged = [
        "(spark, 25, 50, 25, 3)",
        "(streaming, 25, 51, 26, 4)",
        "(hello, 40, 51, 11, 2)",
        "(world, 40, 51, 11, 2)",
        "(structured, 41, 51, 10, 1)",
    ];
    t.check_last_batch(&merged).await;
    t.add_batch(str_long("value", "t", &[("hello apache spark", 60)]));
    let mut expected: Vec<&str> = merged.to_vec();
    expected.extend(["(hello, 60, 70, 10, 1)", "(apache, 60, 70, 10, 1)", "(spark, 60, 70, 10, 1)"]);
    t.check_last_batch(&expected).await;
    t.add_batch(str_long("value", "t", &[("structured streaming", 90)]));
    expected.extend(["(structured, 90, 100, 10, 1)", "(streaming, 90, 100, 10, 1)"]);
    t.check_last_batch(&expected).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_session_window_append_mode() {
    let mut t = StreamTest::start(&query_s("append")).await;
    t.add_batch(str_long("value", "t", &[("hello world spark streaming", 40), ("world hello structured streaming", 41)]));
    t.check_new_answer(&[]).await;
    t.add_batch(str_long("value", "t", &[("spark streaming", 25)]));
    t.check_new_answer(&[]).await;
    // The watermark is 11 now: sessions ending at or before it are late.
    let before: u64 = t.all_progress().iter().map(|p| p.state_operators[0].num_rows_dropped_by_watermark).sum();
    t.add_batch(str_long("value", "t", &[("spark streaming", 0)]));
    t.check_new_answer(&[]).await;
    let after: u64 = t.all_progress().iter().map(|p| p.state_operators[0].num_rows_dropped_by_watermark).sum();
    assert_eq!(after - before, 2);
    t.add_batch(str_long("value", "t", &[("spark streaming", 30)]));
    t.check_new_answer(&[]).await;
    t.add_batch(str_long("value", "t", &[("hello apache spark", 60)]));
    t.check_new_answer(&[]).await;
    t.add_batch(str_long("value", "t", &[("structured streaming", 90)]));
    t.check_new_answer(&[
        "(spark, 25, 50, 25, 3)",
        "(streaming, 25, 51, 26, 4)",
        "(hello, 40, 51, 11, 2)",
        "(world, 40, 51, 11, 2)",
        "(structured, 41, 51, 10, 1)",
    ])
    .await;
    assert_eq!(t.last_progress().state_operators[0].operator_name, "sessionWindowStateStoreSaveExec");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_session_window_rejects_update_mode_and_global_aggregation() {
    let h = sluice_tests::Harness::start().await;
    let e = h.run_err(&query_s("update")).await;
    assert!(e.contains("Update output mode not supported for session window on streaming DataFrames/DataSets"), "{e}");
    let e = h
        .run_err(
            "CREATE STREAM input (t BIGINT, eventTime AS CAST(t AS TIMESTAMP), WATERMARK FOR eventTime AS eventTime - INTERVAL '30' SECOND) WITH ('connector' = 'memory');
             CREATE SINK out WITH ('connector' = 'memory');
             INSERT INTO out SELECT session_window(eventTime, '10 seconds') AS s, count(*) FROM input GROUP BY session_window(eventTime, '10 seconds');",
        )
        .await;
    assert!(e.contains("Global aggregation with session window in streaming query is not supported"), "{e}");
    h.shutdown().await;
}
