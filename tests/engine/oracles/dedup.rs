//! T10–T11: StreamingDeduplicationSuite and StreamingDeduplicationWithinWatermarkSuite
//! (docs/semantics.md §12).

use arrow::array::RecordBatch;
use sluice_tests::oracle::StreamTest;
use sluice_tests::rows::{batch, long_col, str_long, strings};

fn pairs(a: &str, b: &str, rows: &[(i64, i64)]) -> RecordBatch {
    batch(vec![(a, long_col(rows.iter().map(|r| r.0))), (b, long_col(rows.iter().map(|r| r.1)))])
}

fn ten_to_fifteen_five_times() -> Vec<i64> {
    (0..5).flat_map(|_| 10..=15).collect()
}

const W_INPUT: &str = "CREATE STREAM input (value BIGINT, eventTime AS timestamp_seconds(value), WATERMARK FOR eventTime AS eventTime - INTERVAL '10' SECOND) WITH ('connector' = 'memory');
CREATE SINK out WITH ('connector' = 'memory');
SET 'spark.sql.shuffle.partitions' = '5';";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_deduplicate_with_all_columns() {
    let mut t = StreamTest::start(
        "CREATE STREAM input (value STRING) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out SELECT DISTINCT value FROM input;",
    )
    .await;
    t.add_batch(strings("value", &["a"]));
    t.check_last_batch(&["(a)"]).await;
    t.assert_state_rows(&[1], &[1]);
    t.add_batch(strings("value", &["a"]));
    t.check_last_batch(&[]).await;
    t.assert_state_rows(&[1], &[0]);
    t.add_batch(strings("value", &["b"]));
    t.check_last_batch(&["(b)"]).await;
    t.assert_state_rows(&[2], &[1]);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_deduplicate_with_watermark() {
    let mut t = StreamTest::start(&format!(
        "{W_INPUT} INSERT INTO out SELECT CAST(eventTime AS BIGINT) AS t FROM (SELECT DISTINCT * FROM input);"
    ))
    .await;
    t.add_longs(&ten_to_fifteen_five_times());
    t.check_answer(&["(10)", "(11)", "(12)", "(13)", "(14)", "(15)"]).await;
    t.assert_state_rows(&[6], &[6]);
    // SPARK-35880: the 24 repeats are counted.
    let dups: i64 = t
        .all_progress()
        .iter()
        .map(|p| p.state_operators[0].custom_metrics.get("numDroppedDuplicateRows").copied().unwrap_or(0))
        .sum();
    assert_eq!(dups, 24);
    t.add_longs(&[25]);
    t.check_new_answer(&["(25)"]).await;
    t.assert_state_rows(&[1], &[1]);
    t.add_longs(&[10]);
    t.check_new_answer(&[]).await;
    assert_eq!(t.dropped_since_last_assert(), vec![1]);
    t.assert_state_rows(&[1], &[0]);
    t.add_longs(&[45]);
    t.check_new_answer(&["(45)"]).await;
    t.assert_state_rows(&[1], &[1]);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_deduplicate_with_aggregate_append_mode() {
    let mut t = StreamTest::start(&format!(
        "{W_INPUT} SET 'outputMode' = 'append';
         INSERT INTO out SELECT CAST(w.start AS BIGINT) AS start, cnt FROM (
           SELECT window(eventTime, '5 seconds') AS w, count(*) AS cnt
           FROM (SELECT DISTINCT * FROM input) GROUP BY window(eventTime, '5 seconds'));"
    ))
    .await;
    t.add_longs(&ten_to_fifteen_five_times());
    t.check_last_batch(&[]).await;
    t.assert_state_rows(&[2, 6], &[2, 6]);
    t.add_longs(&[25]);
    t.check_last_batch(&["(10, 5)"]).await;
    t.assert_state_rows(&[2, 1], &[1, 1]);
    t.add_longs(&[10]);
    t.check_last_batch(&[]).await;
    assert_eq!(t.dropped_since_last_assert(), vec![0, 1]);
    t.assert_state_rows(&[2, 1], &[0, 0]);
    t.add_longs(&[40]);
    t.check_last_batch(&["(15, 1)", "(25, 1)"]).await;
    t.assert_state_rows(&[1, 1], &[1, 1]);
    let names: Vec<String> = t.last_progress().state_operators.iter().map(|s| s.operator_name.clone()).collect();
    assert_eq!(names, vec!["stateStoreSave", "dedupe"], "topmost operator first");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_spark_19841_dedup_on_key_and_event_time() {
    let mut t = StreamTest::start(
        "CREATE STREAM input (t BIGINT, id BIGINT, time AS timestamp_seconds(t), WATERMARK FOR time AS time - INTERVAL '1' SECOND) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out SELECT id FROM (SELECT DISTINCT ON (id, time) * FROM input);",
    )
    .await;
    t.add_batch(pairs("t", "id", &[(1, 1), (1, 1), (1, 2)]));
    t.check_answer(&["(1)", "(2)"]).await;
    t.add_batch(pairs("t", "id", &[(1, 1), (2, 3), (2, 4)]));
    t.check_new_answer(&["(3)", "(4)"]).await;
    t.add_batch(pairs("t", "id", &[(1, 0), (1, 1), (3, 5), (3, 6)]));
    t.check_new_answer(&["(5)", "(6)"]).await;
    t.add_batch(pairs("t", "id", &[(1, 0), (4, 7)]));
    t.check_new_answer(&["(7)"]).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_spark_21546_first_occurrence_wins() {
    let mut t = StreamTest::start(
        "CREATE STREAM input (id BIGINT, t BIGINT, time AS timestamp_seconds(t), WATERMARK FOR time AS time - INTERVAL '1' SECOND) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out SELECT id, CAST(time AS BIGINT) AS time FROM (SELECT DISTINCT ON (id) * FROM input);",
    )
    .await;
    t.add_batch(pairs("id", "t", &[(1, 1), (1, 2), (2, 2)]));
    t.check_answer(&["(1, 1)", "(2, 2)"]).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_within_watermark_on_all_columns() {
    let mut t = StreamTest::start(&format!(
        "{W_INPUT} INSERT INTO out SELECT CAST(eventTime AS BIGINT) AS t FROM (SELECT DISTINCT ON (within_watermark(value, eventTime)) * FROM input);"
    ))
    .await;
    t.add_longs(&ten_to_fifteen_five_times());
    t.check_answer(&["(10)", "(11)", "(12)", "(13)", "(14)", "(15)"]).await;
    t.assert_state_rows(&[6], &[6]);
    t.add_longs(&[13, 14, 15, 16, 17]);
    t.check_new_answer(&["(16)", "(17)"]).await;
    t.assert_state_rows(&[8], &[2]);
    t.add_longs(&[5]);
    t.check_new_answer(&[]).await;
    assert_eq!(t.dropped_since_last_assert(), vec![1]);
    t.assert_state_rows(&[8], &[0]);
    t.add_longs(&[35]);
    t.check_new_answer(&["(35)"]).await;
    t.assert_state_rows(&[3], &[1]);
    t.add_longs(&[55]);
    t.check_new_answer(&["(55)"]).await;
    t.assert_state_rows(&[1], &[1]);
    assert_eq!(t.last_progress().state_operators[0].operator_name, "dedupeWithinWatermark");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_within_watermark_on_a_key() {
    let mut t = StreamTest::start(
        "CREATE STREAM input (k STRING, v BIGINT, eventTime AS timestamp_seconds(v), WATERMARK FOR eventTime AS eventTime - INTERVAL '2' SECOND) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out SELECT k, CAST(eventTime AS BIGINT) AS t FROM (SELECT DISTINCT ON (within_watermark(k)) * FROM input);",
    )
    .await;
    t.add_batch(str_long("k", "v", &[("a", 17)]));
    t.check_new_answer(&["(a, 17)"]).await;
    t.assert_state_rows(&[1], &[1]);
    t.add_batch(str_long("k", "v", &[("a", 16)]));
    t.check_new_answer(&[]).await;
    t.assert_state_rows(&[1], &[0]);
    t.add_batch(str_long("k", "v", &[("a", 13)]));
    t.check_new_answer(&[]).await;
    assert_eq!(t.dropped_since_last_assert(), vec![1]);
    t.assert_state_rows(&[1], &[0]);
    t.add_batch(str_long("k", "v", &[("b", 22), ("c", 21)]));
    t.check_new_answer(&["(b, 22)", "(c, 21)"]).await;
    t.assert_state_rows(&[2], &[2]);
    t.add_batch(str_long("k", "v", &[("a", 21)]));
    t.check_new_answer(&["(a, 21)"]).await;
    t.assert_state_rows(&[3], &[1]);
    t.add_batch(str_long("k", "v", &[("d", 25)]));
    t.check_new_answer(&["(d, 25)"]).await;
    t.assert_state_rows(&[2], &[1]);
    t.finish().await;
}
