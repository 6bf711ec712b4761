//! T1–T5: EventTimeWatermarkSuite over query W (docs/semantics.md §12).

use sluice_tests::oracle::StreamTest;

/// Query W: `MemoryStream[Int]` → eventTime = timestamp_seconds(value), watermark 10 s,
/// count per 5-second window, output (window start in seconds, count).
fn query_w(mode: &str, watermark: bool) -> String {
    let wm = if watermark { ", WATERMARK FOR eventTime AS eventTime - INTERVAL '10' SECOND" } else { "" };
    format!(
        "CREATE STREAM input (value BIGINT, eventTime AS timestamp_seconds(value){wm}) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = '{mode}';
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out
         SELECT CAST(w.start AS BIGINT) AS start, cnt FROM (
           SELECT window(eventTime, '5 seconds') AS w, count(*) AS cnt FROM input GROUP BY window(eventTime, '5 seconds')
         );"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_append_mode() {
    let mut t = StreamTest::start(&query_w("append", true)).await;
    t.add_longs(&[10, 11, 12, 13, 14, 15]);
    t.check_new_answer(&[]).await;
    t.add_longs(&[25]);
    t.check_new_answer(&["(10, 5)"]).await;
    assert_eq!(t.last_progress().state_operators[0].num_rows_total, 2);
    assert_eq!(t.dropped_since_last_assert(), vec![0]);
    t.assert_state_rows(&[2], &[t.all_progress().iter().map(|p| p.state_operators[0].num_rows_updated).sum()]);
    t.add_longs(&[10]);
    t.check_new_answer(&[]).await;
    assert_eq!(t.last_progress().state_operators[0].num_rows_total, 2);
    assert_eq!(t.dropped_since_last_assert(), vec![1]);
    // The derived trace: b0 (data), b1 no-data at wm 5, b2 (25), b3 no-data at wm 15, b4 (10).
    let wms: Vec<String> = t.all_progress().iter().map(|p| p.event_time["watermark"].clone()).collect();
    assert_eq!(
        wms,
        vec![
            "1970-01-01T00:00:00.000Z",
            "1970-01-01T00:00:05.000Z",
            "1970-01-01T00:00:05.000Z",
            "1970-01-01T00:00:15.000Z",
            "1970-01-01T00:00:15.000Z"
        ]
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t2_update_mode() {
    let mut t = StreamTest::start(&query_w("update", true).replace("'5';", "'10';")).await;
    t.add_longs(&[10, 11, 12, 13, 14, 15]);
    t.check_new_answer(&["(10, 5)", "(15, 1)"]).await;
    t.add_longs(&[25]);
    t.check_new_answer(&["(25, 1)"]).await;
    assert_eq!(t.last_progress().state_operators[0].num_rows_total, 2);
    assert_eq!(t.dropped_since_last_assert(), vec![0]);
    t.assert_state_rows(&[2], &[t.all_progress().iter().map(|p| p.state_operators[0].num_rows_updated).sum()]);
    t.add_longs(&[10, 25]);
    t.check_new_answer(&["(25, 2)"]).await;
    assert_eq!(t.last_progress().state_operators[0].num_rows_total, 2);
    assert_eq!(t.dropped_since_last_assert(), vec![1]);
    t.assert_state_rows(&[2], &[1]);
    t.add_longs(&[10]);
    t.check_new_answer(&[]).await;
    assert_eq!(t.last_progress().state_operators[0].num_rows_total, 2);
    assert_eq!(t.dropped_since_last_assert(), vec![1]);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t3_complete_mode() {
    let mut t = StreamTest::start(&query_w("complete", true)).await;
    t.add_longs(&[10, 11, 12]);
    t.check_last_batch(&["(10, 3)"]).await;
    t.add_longs(&[25]);
    t.check_last_batch(&["(10, 3)", "(25, 1)"]).await;
    t.add_longs(&[25]);
    t.check_last_batch(&["(10, 3)", "(25, 2)"]).await;
    t.add_longs(&[10]);
    t.check_last_batch(&["(10, 4)", "(25, 2)"]).await;
    t.add_longs(&[25]);
    t.check_last_batch(&["(10, 4)", "(25, 3)"]).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t3_group_by_on_raw_timestamp() {
    let job = "CREATE STREAM input (value BIGINT, eventTime AS timestamp_seconds(value), WATERMARK FOR eventTime AS eventTime - INTERVAL '10' SECOND) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = 'append';
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out SELECT CAST(eventTime AS BIGINT) AS t, count(*) AS cnt FROM input GROUP BY eventTime;";
    let mut t = StreamTest::start(job).await;
    t.add_longs(&[10]);
    t.check_answer(&[]).await;
    t.add_longs(&[25]);
    t.check_answer(&["(10, 1)"]).await;
    t.finish().await;
}

fn event_time(t: &StreamTest) -> std::collections::BTreeMap<String, String> {
    // Spark takes the stats from the last progress with input rows.
    t.all_progress().iter().rev().find(|p| p.num_input_rows > 0).expect("a data batch").event_time.clone()
}

fn iso(sec: i64) -> String {
    sluice_common::time::format_iso_millis(sec * 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_event_time_and_watermark_metrics() {
    // (a) without a watermark: no eventTime map.
    let mut t = StreamTest::start(&query_w("complete", false)).await;
    t.add_longs(&[15]);
    t.check_answer(&["(15, 1)"]).await;
    assert!(t.last_progress().event_time.is_empty());
    t.add_longs(&[10, 12, 14]);
    t.check_answer(&["(10, 3)", "(15, 1)"]).await;
    assert!(t.last_progress().event_time.is_empty());
    t.finish().await;

    // (b) with the watermark, in append mode.
    let mut t = StreamTest::start(&query_w("append", true)).await;
    t.add_longs(&[15]);
    t.check_answer(&[]).await;
    let e = event_time(&t);
    assert_eq!((&e["min"], &e["max"], &e["avg"], &e["watermark"]), (&iso(15), &iso(15), &iso(15), &iso(0)));
    t.add_longs(&[10, 12, 14]);
    t.check_answer(&[]).await;
    let e = event_time(&t);
    assert_eq!((&e["min"], &e["max"], &e["avg"], &e["watermark"]), (&iso(10), &iso(14), &iso(12), &iso(5)));
    t.add_longs(&[25]);
    t.check_answer(&["(10, 3)"]).await;
    let e = event_time(&t);
    assert_eq!((&e["min"], &e["max"], &e["avg"], &e["watermark"]), (&iso(25), &iso(25), &iso(25), &iso(5)));
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t5_trigger_once_watermark() {
    let job = query_w("append", true).replace("SET 'outputMode'", "SET 'trigger' = 'once'; SET 'outputMode'");
    let mut t = StreamTest::start(&job).await;
    t.query.as_ref().unwrap().await_termination().await.unwrap();
    // (added values, expected rows, expected eventTime (min, max, avg, watermark) in seconds)
    type Step<'a> = (&'a [i64], &'a [&'a str], (i64, i64, i64, i64));
    let steps: [Step; 5] = [
        (&[15], &[], (15, 15, 15, 0)),
        (&[10, 12, 14], &[], (10, 14, 12, 5)),
        (&[25], &[], (25, 25, 25, 5)),
        (&[50], &["(10, 3)"], (50, 50, 50, 15)),
        (&[50], &["(15, 1)", "(25, 1)"], (50, 50, 50, 40)),
    ];
    for (data, expected, (min, max, avg, wm)) in steps {
        t.add_longs(data);
        t.restart().await;
        t.query.as_ref().unwrap().await_termination().await.unwrap();
        t.check_new_answer(expected).await;
        let p = t.last_progress();
        assert_eq!(p.num_input_rows, data.len() as u64, "Trigger.Once runs exactly one batch, with data");
        let e = &p.event_time;
        assert_eq!(
            (&e["min"], &e["max"], &e["avg"], &e["watermark"]),
            (&iso(min), &iso(max), &iso(avg), &iso(wm)),
            "after adding {data:?}"
        );
    }
    t.finish().await;
}
