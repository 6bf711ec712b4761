//! Property test: random two-stream inputs — out of order, late, several keys — through a
//! range join (`l.key = r.key AND lt BETWEEN rt − 5 s AND rt + 5 s`, 5 s watermarks on both
//! streams) as inner, left outer and full outer joins, checked per step against a model of
//! Spark's semantics written here, independently of the engine's join.
//!
//! The model (docs/semantics.md §3, §7): each step's rows of both streams land in one batch; it
//! runs with the current watermark G both to drop late rows (t ≤ G) and to evict; then each
//! stream's watermark becomes max(previous, max t − 5 s) — late rows included, a stream without
//! data so far counts as 0 — and G the larger of itself and the smaller of the two; when G
//! moved, a no-data batch evicts with it. A side's state watermark is G − 5 s − 1 ms (solved
//! from the BETWEEN, `>=`/`<=` subtracting 1 ms). Left rows probe the right state and are
//! stored; right rows probe the left state (this batch's left rows included) and are stored
//! unless already evictable and not owed a NULL row; eviction emits the unmatched rows of the
//! preserved sides NULL-padded.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use proptest::prelude::*;
use sluice_tests::oracle::StreamTest;

const DELAY_MS: i64 = 5_000;
const RANGE_MS: i64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    key: &'static str,
    /// Event time in seconds.
    t: i64,
    id: i64,
}

/// Steps of (left rows, right rows).
type Steps = Vec<(Vec<Row>, Vec<Row>)>;

fn steps() -> impl Strategy<Value = Steps> {
    let row = (prop::sample::select(vec!["a", "b", "c"]), 0i64..60, 0i64..100).prop_map(|(key, t, id)| Row { key, t, id });
    let side = prop::collection::vec(row, 0..6);
    prop::collection::vec((side.clone(), side), 1..7)
}

fn batch(rows: &[Row]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("t", DataType::Int64, true),
        Field::new("id", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.key).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.t).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.id).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

fn job(join: &str) -> String {
    let stream = |name: &str, p: &str| {
        format!(
            "CREATE STREAM {name} (key STRING, t BIGINT, id BIGINT, {p}t AS timestamp_seconds(t),
               WATERMARK FOR {p}t AS {p}t - INTERVAL '5' SECOND) WITH ('connector' = 'memory');"
        )
    };
    format!(
        "{} {}
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'spark.sql.shuffle.partitions' = '3';
         INSERT INTO out SELECT l.key, l.t, l.id, r.key, r.t, r.id
         FROM lefts l {join} JOIN rights r
           ON l.key = r.key AND l.lt BETWEEN r.rt - INTERVAL '5' SECOND AND r.rt + INTERVAL '5' SECOND;",
        stream("lefts", "l"),
        stream("rights", "r")
    )
}

fn show(l: Option<&Row>, r: Option<&Row>) -> String {
    let part = |x: Option<&Row>| x.map_or("null, null, null".to_string(), |x| format!("{}, {}, {}", x.key, x.t, x.id));
    format!("({}, {})", part(l), part(r))
}

/// A stored row and its `matched` flag.
type Stored = (Row, bool);

fn matches(l: &Row, r: &Row) -> bool {
    l.key == r.key && l.t * 1000 >= r.t * 1000 - RANGE_MS && l.t * 1000 <= r.t * 1000 + RANGE_MS
}

/// The model: expected new rows per step.
fn model(steps: &[(Vec<Row>, Vec<Row>)], join: &str) -> Vec<Vec<String>> {
    let (left_outer, right_outer) = match join {
        "LEFT" => (true, false),
        "FULL" => (true, true),
        _ => (false, false),
    };
    let (mut left, mut right): (Vec<Stored>, Vec<Stored>) = (Vec::new(), Vec::new());
    let (mut node_l, mut node_r): (Option<i64>, Option<i64>) = (None, None);
    let mut global = 0i64; // ms
    let mut out = Vec::new();
    for (ls, rs) in steps {
        let mut emitted = Vec::new();
        if ls.is_empty() && rs.is_empty() {
            out.push(emitted);
            continue;
        }
        let state_wm = |g: i64| g - RANGE_MS - 1;
        let evict = |g: i64, left: &mut Vec<Stored>, right: &mut Vec<Stored>, emitted: &mut Vec<String>| {
            let wm = state_wm(g);
            left.retain(|(row, matched)| {
                let gone = row.t * 1000 <= wm;
                if gone && left_outer && !matched {
                    emitted.push(show(Some(row), None));
                }
                !gone
            });
            right.retain(|(row, matched)| {
                let gone = row.t * 1000 <= wm;
                if gone && right_outer && !matched {
                    emitted.push(show(None, Some(row)));
                }
                !gone
            });
        };
        // The data batch, at watermark `global`.
        for l in ls.iter().filter(|l| l.t * 1000 > global) {
            let mut matched = false;
            for (r, r_matched) in right.iter_mut() {
                if matches(l, r) {
                    emitted.push(show(Some(l), Some(r)));
                    *r_matched = true;
                    matched = true;
                }
            }
            left.push((*l, matched));
        }
        for r in rs.iter().filter(|r| r.t * 1000 > global) {
            let mut matched = false;
            for (l, l_matched) in left.iter_mut() {
                if matches(l, r) {
                    emitted.push(show(Some(l), Some(r)));
                    *l_matched = true;
                    matched = true;
                }
            }
            let evictable_now = r.t * 1000 <= state_wm(global);
            if !evictable_now || (right_outer && !matched) {
                right.push((*r, matched));
            }
        }
        evict(global, &mut left, &mut right, &mut emitted);
        // Watermarks after the batch; a no-data batch when the global one moved.
        if let Some(m) = ls.iter().map(|r| r.t * 1000 - DELAY_MS).max() {
            node_l = Some(node_l.map_or(m, |n| n.max(m)));
        }
        if let Some(m) = rs.iter().map(|r| r.t * 1000 - DELAY_MS).max() {
            node_r = Some(node_r.map_or(m, |n| n.max(m)));
        }
        let candidate = node_l.unwrap_or(0).min(node_r.unwrap_or(0));
        if candidate > global {
            global = candidate;
            evict(global, &mut left, &mut right, &mut emitted);
        }
        emitted.sort();
        out.push(emitted);
    }
    out
}

async fn run(join: &str, steps: &[(Vec<Row>, Vec<Row>)]) -> Vec<Vec<String>> {
    let t = StreamTest::start(&job(join)).await;
    let mut got = Vec::new();
    let mut seen_batches = 0;
    for (ls, rs) in steps {
        let mut data = Vec::new();
        if !ls.is_empty() {
            data.push(("lefts", batch(ls)));
        }
        if !rs.is_empty() {
            data.push(("rights", batch(rs)));
        }
        t.multi_add(data).await;
        t.settle().await;
        let table = t.harness.session.memory_table("out").unwrap_or_default();
        let new: Vec<RecordBatch> = table.batches.iter().skip(seen_batches).flat_map(|(_, b)| b.iter().cloned()).collect();
        seen_batches = table.batches.len();
        got.push(sluice_tests::rows::sorted_rows(&new));
    }
    t.finish().await;
    got
}

fn check(join: &'static str) -> impl Fn(Steps) -> Result<(), TestCaseError> {
    move |steps| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let got = rt.block_on(run(join, &steps));
        prop_assert_eq!(got, model(&steps, join), "steps: {:?}", steps);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn inner_range_join_matches_the_model(steps in steps()) {
        check("INNER")(steps)?;
    }

    #[test]
    fn left_outer_range_join_matches_the_model(steps in steps()) {
        check("LEFT")(steps)?;
    }

    #[test]
    fn full_outer_range_join_matches_the_model(steps in steps()) {
        check("FULL")(steps)?;
    }
}
