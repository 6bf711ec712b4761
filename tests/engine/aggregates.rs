//! Aggregate functions, HAVING and dynamic session gaps on streams, checked against values
//! computed by hand from the inputs.

use sluice_tests::oracle::StreamTest;
use sluice_tests::rows::str_long;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_aggregate_function_merges_across_batches_and_partitions() {
    let mut t = StreamTest::start(
        "CREATE STREAM input (k STRING, v BIGINT) WITH ('connector' = 'memory', 'numPartitions' = '2');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = 'complete';
         SET 'spark.sql.shuffle.partitions' = '4';
         INSERT INTO out
         SELECT k, count(*) AS n, count(v) AS nv, sum(v) AS s, avg(v) AS a, min(v) AS lo, max(v) AS hi,
                first(v) AS f, last(v) AS l, approx_count_distinct(v) AS d
         FROM input GROUP BY k HAVING count(*) > 1;",
    )
    .await;
    t.add_batch(str_long("k", "v", &[("x", 1), ("x", 5), ("y", 7), ("z", 2)]));
    t.check_last_batch(&["(x, 2, 2, 6, 3.0, 1, 5, 1, 5, 2)"]).await;
    t.add_batch(str_long("k", "v", &[("x", 5), ("y", 3), ("z", 2)]));
    // first/last follow arrival order across batches; approx_count_distinct is exact at this size.
    t.check_last_batch(&[
        "(x, 3, 3, 11, 3.6666666666666665, 1, 5, 1, 5, 2)",
        "(y, 2, 2, 10, 5.0, 3, 7, 7, 3, 2)",
        "(z, 2, 2, 4, 2.0, 2, 2, 2, 2, 1)",
    ])
    .await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_gap_can_be_a_per_row_expression() {
    // Gap 10 s for key a, 2 s for key b; zero-length gaps yield no session (dropped).
    let mut t = StreamTest::start(
        "CREATE STREAM input (k STRING, v BIGINT, eventTime AS timestamp_seconds(v),
                              WATERMARK FOR eventTime AS eventTime - INTERVAL '30' SECOND) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = 'complete';
         SET 'spark.sql.shuffle.partitions' = '3';
         INSERT INTO out SELECT k, CAST(s.start AS BIGINT) AS st, CAST(s.end AS BIGINT) AS en, n FROM (
           SELECT session_window(eventTime, CASE WHEN k = 'a' THEN '10 seconds' WHEN k = 'b' THEN '2 seconds' ELSE '0 seconds' END) AS s,
                  k, count(*) AS n
           FROM input
           GROUP BY session_window(eventTime, CASE WHEN k = 'a' THEN '10 seconds' WHEN k = 'b' THEN '2 seconds' ELSE '0 seconds' END), k);",
    )
    .await;
    t.add_batch(str_long("k", "v", &[("a", 1), ("a", 8), ("b", 1), ("b", 5), ("c", 3)]));
    // a: [1,11) and [8,18) overlap → [1,18); b: [1,3) and [5,7) stay apart; c has no session.
    t.check_last_batch(&["(a, 1, 18, 2)", "(b, 1, 3, 1)", "(b, 5, 7, 1)"]).await;
    t.add_batch(str_long("k", "v", &[("b", 3)]));
    // [3,5) touches both b sessions (start <= end is inclusive): all three merge into [1,7).
    t.check_last_batch(&["(a, 1, 18, 2)", "(b, 1, 7, 3)"]).await;
    t.finish().await;
}
