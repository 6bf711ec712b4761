//! T14: window assignment (DataFrameTimeWindowingSuite, docs/semantics.md §12), on streams.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use sluice_tests::oracle::StreamTest;

fn micros(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap().and_utc().timestamp_micros()
}

fn rows(data: &[(Option<&str>, i64, &str)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("time", DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("value", DataType::Int64, true),
        Field::new("id", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(
                TimestampMicrosecondArray::from(data.iter().map(|r| r.0.map(micros)).collect::<Vec<_>>()).with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from(data.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(StringArray::from(data.iter().map(|r| r.2).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

const INPUT: &str = "CREATE STREAM input (time TIMESTAMP, value BIGINT, id STRING) WITH ('connector' = 'memory');
CREATE SINK out WITH ('connector' = 'memory');
SET 'spark.sql.shuffle.partitions' = '5';";

fn three_rows() -> RecordBatch {
    rows(&[(Some("2016-03-27 19:39:34"), 1, "a"), (Some("2016-03-27 19:39:56"), 2, "a"), (Some("2016-03-27 19:39:27"), 4, "b")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_tumbling_window_assignment() {
    let mut t = StreamTest::start(&format!(
        "{INPUT} INSERT INTO out SELECT w.start, w.end, value FROM (SELECT window(time, '10 seconds') AS w, value FROM input);"
    ))
    .await;
    t.add_batch(three_rows());
    t.check_answer(&[
        "(2016-03-27 19:39:20, 2016-03-27 19:39:30, 4)",
        "(2016-03-27 19:39:30, 2016-03-27 19:39:40, 1)",
        "(2016-03-27 19:39:50, 2016-03-27 19:40:00, 2)",
    ])
    .await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_sliding_window_counts() {
    let mut t = StreamTest::start(&format!(
        "{INPUT} SET 'outputMode' = 'complete';
         INSERT INTO out SELECT w.start, w.end, cnt FROM (
           SELECT window(time, '10 seconds', '3 seconds', '0 second') AS w, count(*) AS cnt FROM input
           GROUP BY window(time, '10 seconds', '3 seconds', '0 second'));"
    ))
    .await;
    t.add_batch(three_rows());
    t.check_last_batch(&[
        "(2016-03-27 19:39:18, 2016-03-27 19:39:28, 1)",
        "(2016-03-27 19:39:21, 2016-03-27 19:39:31, 1)",
        "(2016-03-27 19:39:24, 2016-03-27 19:39:34, 1)",
        "(2016-03-27 19:39:27, 2016-03-27 19:39:37, 2)",
        "(2016-03-27 19:39:30, 2016-03-27 19:39:40, 1)",
        "(2016-03-27 19:39:33, 2016-03-27 19:39:43, 1)",
        "(2016-03-27 19:39:48, 2016-03-27 19:39:58, 1)",
        "(2016-03-27 19:39:51, 2016-03-27 19:40:01, 1)",
        "(2016-03-27 19:39:54, 2016-03-27 19:40:04, 1)",
    ])
    .await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_numeric_slide_is_microseconds_and_start_offsets() {
    let mut t = StreamTest::start(&format!(
        "{INPUT} INSERT INTO out SELECT w.start, w.end, value FROM (SELECT window(time, '10 seconds', 10000000, '5 seconds') AS w, value FROM input);"
    ))
    .await;
    t.add_batch(three_rows());
    t.check_answer(&[
        "(2016-03-27 19:39:25, 2016-03-27 19:39:35, 1)",
        "(2016-03-27 19:39:25, 2016-03-27 19:39:35, 4)",
        "(2016-03-27 19:39:55, 2016-03-27 19:40:05, 2)",
    ])
    .await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_negative_timestamps() {
    let mut t = StreamTest::start(&format!(
        "{INPUT} INSERT INTO out SELECT w.start, w.end, value FROM (SELECT window(time, '10 seconds', '10 seconds', '5 seconds') AS w, value FROM input);"
    ))
    .await;
    t.add_batch(rows(&[(Some("1970-01-01 00:00:02"), 1, "a"), (Some("1970-01-01 00:00:12"), 2, "a")]));
    t.check_answer(&["(1969-12-31 23:59:55, 1970-01-01 00:00:05, 1)", "(1970-01-01 00:00:05, 1970-01-01 00:00:15, 2)"]).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_millisecond_sliding_windows() {
    let mut t = StreamTest::start(&format!(
        "{INPUT} SET 'outputMode' = 'complete';
         INSERT INTO out SELECT w.start, cnt FROM (
           SELECT window(time, '200 milliseconds', '40 milliseconds') AS w, count(*) AS cnt FROM input
           GROUP BY window(time, '200 milliseconds', '40 milliseconds'));"
    ))
    .await;
    t.add_batch(rows(&[
        (Some("2016-03-27 09:00:00.41"), 1, "a"),
        (Some("2016-03-27 09:00:00.62"), 2, "a"),
        (Some("2016-03-27 09:00:00.715"), 3, "b"),
    ]));
    // 12 windows from .24–.44 to .68–.88; .52–.72, .56–.76 and .60–.80 hold two rows.
    let starts = ["24", "28", "32", "36", "40", "44", "48", "52", "56", "60", "64", "68"];
    let expected: Vec<String> = starts
        .iter()
        .map(|s| {
            let cnt = if ["52", "56", "60"].contains(s) { 2 } else { 1 };
            // Spark prints fractions without trailing zeros (.40 → .4).
            format!("(2016-03-27 09:00:00.{}, {cnt})", s.trim_end_matches('0'))
        })
        .collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    t.check_last_batch(&expected).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_null_times_are_dropped_by_window() {
    let mut t = StreamTest::start(&format!(
        "{INPUT} INSERT INTO out SELECT w.start, value FROM (SELECT window(time, '10 seconds') AS w, value FROM input);"
    ))
    .await;
    t.add_batch(rows(&[(None, 1, "a"), (Some("2016-03-27 19:39:34"), 2, "a")]));
    t.check_answer(&["(2016-03-27 19:39:30, 2)"]).await;
    t.finish().await;
}
