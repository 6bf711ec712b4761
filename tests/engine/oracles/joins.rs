//! T13: StreamingJoinSuite (docs/semantics.md §12), on two executors and five state partitions,
//! with restarts between steps. Every expected row and state metric is the oracle's.

use sluice_tests::oracle::StreamTest;
use sluice_tests::rows::{batch, long_col, longs};

/// `setupStream(p, m)` windowed: `(key = value, window(pTime, 10 s), pValue = value·m)`, with
/// a 10 s watermark on `pTime` when `watermark`.
fn windowed_side(stream: &str, p: &str, m: i64, watermark: bool) -> (String, String) {
    let wm = if watermark { format!(", WATERMARK FOR {p}Time AS {p}Time - INTERVAL '10' SECOND") } else { String::new() };
    let decl =
        format!("CREATE STREAM {stream} (value BIGINT, {p}Time AS timestamp_seconds(value){wm}) WITH ('connector' = 'memory');");
    let select = format!("SELECT value AS key, window({p}Time, '10 seconds') AS w, value * {m} AS {p}Value FROM {stream}");
    (decl, select)
}

/// The windowed join query: output `(key, window end in seconds, leftValue, rightValue)`, key
/// and window taken from `key_side`.
fn windowed_join(join: &str, key_side: &str, right_watermark: bool) -> String {
    let (l_decl, l_sel) = windowed_side("input1", "left", 2, true);
    let (r_decl, r_sel) = windowed_side("input2", "right", 3, right_watermark);
    format!(
        "{l_decl}
         {r_decl}
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out
         SELECT {key_side}.key, CAST({key_side}.w.end AS BIGINT) AS window_end, l.leftValue, r.rightValue
         FROM ({l_sel}) l {join} JOIN ({r_sel}) r ON l.key = r.key AND l.w = r.w;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_inner_windows_with_watermark_on_left_only() {
    let mut t = StreamTest::start(&windowed_join("INNER", "l", false)).await;
    t.add_batch_to("input1", longs("value", &[1]));
    t.check_answer(&[]).await;
    t.assert_state_rows(&[1], &[1]);
    t.add_batch_to("input2", longs("value", &[1]));
    t.check_answer(&["(1, 10, 2, 3)"]).await;
    t.assert_state_rows(&[2], &[1]);
    t.restart().await;
    // The watermark moves to 15: the no-data batch removes both rows of window [0, 10).
    t.add_batch_to("input1", longs("value", &[25]));
    t.check_new_answer(&[]).await;
    t.assert_state_rows(&[1], &[1]);
    t.add_batch_to("input2", longs("value", &[25]));
    t.check_new_answer(&["(25, 30, 50, 75)"]).await;
    t.assert_state_rows(&[2], &[1]);
    t.restart().await;
    // Not stored: its window ends at 10, at or below the state watermark 15.
    t.add_batch_to("input2", longs("value", &[1]));
    t.check_new_answer(&[]).await;
    t.assert_state_rows(&[2], &[0]);
    // Late on the watermarked side: dropped.
    t.add_batch_to("input1", longs("value", &[5]));
    t.check_new_answer(&[]).await;
    assert_eq!(t.dropped_since_last_assert(), vec![1]);
    t.assert_state_rows(&[2], &[0]);
    let join = &t.last_progress().state_operators[0];
    assert_eq!(join.operator_name, "symmetricHashJoin");
    assert_eq!((join.num_shuffle_partitions, join.num_state_store_instances), (5, 10));
    t.finish().await;
}

async fn windowed_outer(join: &str, key_side: &str, step2: &[&str]) {
    let mut t = StreamTest::start(&windowed_join(join, key_side, true)).await;
    t.multi_add(vec![("input1", longs("value", &[1, 2, 3, 4, 5])), ("input2", longs("value", &[3, 4, 5, 6, 7]))]).await;
    t.check_new_answer(&["(3, 10, 6, 9)", "(4, 10, 8, 12)", "(5, 10, 10, 15)"]).await;
    t.assert_state_rows(&[10], &[10]);
    t.restart().await;
    // Watermark 11: the no-data batch evicts window [0, 10) on both sides.
    t.multi_add(vec![("input1", longs("value", &[21])), ("input2", longs("value", &[22]))]).await;
    t.check_new_answer(step2).await;
    t.assert_state_rows(&[2], &[2]);
    t.add_batch_to("input1", longs("value", &[22]));
    t.check_new_answer(&["(22, 30, 44, 66)"]).await;
    t.assert_state_rows(&[3], &[1]);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_windowed_left_outer_join() {
    windowed_outer("LEFT", "l", &["(1, 10, 2, null)", "(2, 10, 4, null)"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_windowed_right_outer_join() {
    windowed_outer("RIGHT", "r", &["(6, 10, null, 18)", "(7, 10, null, 21)"]).await;
}

/// The range-condition query: `(pKey, pTime = timestamp_seconds(time), pValue)` per side, 10 s
/// watermarks, `leftKey = rightKey AND leftTime BETWEEN rightTime ± 5 s`.
fn range_join(join: &str) -> String {
    let side = |stream: &str, p: &str, m: i64| {
        format!(
            "CREATE STREAM {stream} ({p}Key BIGINT, time BIGINT, {p}Time AS timestamp_seconds(time),
               WATERMARK FOR {p}Time AS {p}Time - INTERVAL '10' SECOND) WITH ('connector' = 'memory');
             CREATE VIEW {p}_side AS SELECT {p}Key, {p}Time, {p}Key * {m} AS {p}Value FROM {stream};"
        )
    };
    format!(
        "{}
         {}
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out
         SELECT leftKey, rightKey, CAST(leftTime AS INT) AS lt, CAST(rightTime AS INT) AS rt
         FROM left_side {join} JOIN right_side ON leftKey = rightKey
           AND leftTime BETWEEN rightTime - INTERVAL '5' SECOND AND rightTime + INTERVAL '5' SECOND;",
        side("input1", "left", 2),
        side("input2", "right", 3)
    )
}

fn key_time(key: &str, rows: &[(i64, i64)]) -> arrow::array::RecordBatch {
    batch(vec![(key, long_col(rows.iter().map(|r| r.0))), ("time", long_col(rows.iter().map(|r| r.1)))])
}

async fn range_outer(join: &str, third: i64, step3: &[&str], step4: &[&str], last: &[&str]) {
    let mut t = StreamTest::start(&range_join(join)).await;
    t.add_batch_to("input1", key_time("leftKey", &[(1, 5), (3, 5)]));
    t.check_new_answer(&[]).await;
    t.add_batch_to("input2", key_time("rightKey", &[(1, 10), (2, 5)]));
    t.check_new_answer(&["(1, 1, 5, 10)"]).await;
    t.restart().await;
    t.add_batch_to("input2", key_time("rightKey", &[(1, third)]));
    t.check_new_answer(step3).await;
    t.assert_state_rows(&[5], &[5]);
    t.add_batch_to("input1", key_time("leftKey", &[(1, 7), (1, 30)]));
    t.check_new_answer(step4).await;
    t.assert_state_rows(&[7], &[2]);
    // (No restart here: a new run forgets each stream's maximum event time, as Spark's does,
    // so the left stream would count as 0 until it sees data again and hold the watermark.)
    // Both watermarks reach 20: state watermarks 14.999 s evict every row but the two at 30 s,
    // and the unmatched ones of the preserved side come out NULL-padded.
    t.add_batch_to("input2", key_time("rightKey", &[(0, 30)]));
    t.check_new_answer(last).await;
    t.assert_state_rows(&[2], &[1]);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_left_outer_with_watermark_range_condition() {
    range_outer("LEFT", 11, &[], &["(1, 1, 7, 10)", "(1, 1, 7, 11)"], &["(3, null, 5, null)"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_right_outer_with_watermark_range_condition() {
    range_outer("RIGHT", 11, &[], &["(1, 1, 7, 10)", "(1, 1, 7, 11)"], &["(null, 2, null, 5)"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_full_outer_with_watermark_range_condition() {
    range_outer("FULL", 9, &["(1, 1, 5, 9)"], &["(1, 1, 7, 9)", "(1, 1, 7, 10)"], &["(3, null, 5, null)", "(null, 2, null, 5)"])
        .await;
}
