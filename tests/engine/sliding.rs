//! Sliding-window aggregation — which the map side runs by panes when the window is a whole
//! number of slides (`sluice_plan::sliding`) — checked two ways on random event streams, out of
//! order and late, over several batches:
//!
//! * against a model written here from the definitions (docs/semantics.md §3, §4, §6): a row
//!   belongs to every window `[s, s + 10)` with `s ≡ 1 (mod 2)` holding it, late when the
//!   window's end is at or below the watermark, as `tests/engine/property.rs` models tumbling
//!   windows;
//! * against the same query with one more aggregate that keeps it off the pane path
//!   (`approx_count_distinct`, not one the planner merges by panes): with state per window
//!   (update mode, or `sluice.streaming.slidingWindowStateByPane` off) it must produce the same
//!   rows in the same order and the same state metrics, batch for batch; with state per pane
//!   (append mode) the same rows, and the state metrics of a model of pane rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use proptest::prelude::*;
use sluice_common::conf::SLIDING_WINDOW_STATE_BY_PANE;
use sluice_formats::java_fmt::double_to_string;
use sluice_tests::oracle::StreamTest;

const WINDOW: i64 = 10;
const SLIDE: i64 = 2;
const START: i64 = 1;
const DELAY: i64 = 5;

#[derive(Debug, Clone, Copy)]
struct Event {
    t: i64,
    key: &'static str,
    v: i64,
}

fn events() -> impl Strategy<Value = Vec<Vec<Event>>> {
    // Times from before the epoch (windows ending at or before the initial watermark, 0, are
    // late) to well past the watermark's reach, so later batches bring late rows.
    let event = (-15i64..70, prop::sample::select(vec!["a", "b", "c"]), -5i64..50).prop_map(|(t, key, v)| Event { t, key, v });
    prop::collection::vec(prop::collection::vec(event, 0..12), 1..6)
}

fn batch(events: &[Event]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("t", DataType::Int64, true),
        Field::new("key", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(events.iter().map(|e| e.t).collect::<Vec<_>>())),
            Arc::new(StringArray::from(events.iter().map(|e| e.key).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(events.iter().map(|e| e.v).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

fn job(mode: &str, partitions: u32, extra_aggregate: &str) -> String {
    format!(
        "CREATE STREAM input (t BIGINT, key STRING, v BIGINT, eventTime AS timestamp_seconds(t),
           WATERMARK FOR eventTime AS eventTime - INTERVAL '5' SECOND) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'spark.sql.shuffle.partitions' = '{partitions}';
         SET 'outputMode' = '{mode}';
         INSERT INTO out SELECT CAST(w.start AS BIGINT) AS start, key, cnt, total, lo, hi, mean FROM (
           SELECT key, window(eventTime, '10 seconds', '2 seconds', '1 second') AS w,
                  count(*) AS cnt, sum(v) AS total, min(v) AS lo, max(v) AS hi, avg(v) AS mean{extra_aggregate}
           FROM input GROUP BY key, window(eventTime, '10 seconds', '2 seconds', '1 second'));"
    )
}

/// The starts of the windows holding `t`, by the definition.
fn window_starts(t: i64) -> impl Iterator<Item = i64> {
    (t - WINDOW + 1..=t).filter(|s| (s - START).rem_euclid(SLIDE) == 0)
}

/// count, sum, min, max.
#[derive(Debug, Clone, Copy)]
struct Group(i64, i64, i64, i64);

fn row(k: &(i64, &str), g: &Group) -> String {
    let avg = double_to_string(g.1 as f64 / g.0 as f64);
    format!("({}, {}, {}, {}, {}, {}, {avg})", k.0, k.1, g.0, g.1, g.2, g.3)
}

/// Expected new rows per batch in `mode` (append or update): every data batch drops late rows
/// and evicts with the watermark after the previous batch, then a no-data batch evicts with the
/// new one (the model of `property.rs`).
fn model(steps: &[Vec<Event>], mode: &str) -> Vec<Vec<String>> {
    let mut wm = 0i64;
    let mut state: BTreeMap<(i64, &'static str), Group> = BTreeMap::new();
    let mut out = Vec::new();
    for events in steps {
        let mut changed = BTreeSet::new();
        for e in events {
            for s in window_starts(e.t) {
                if s + WINDOW <= wm {
                    continue;
                }
                let g = state.entry((s, e.key)).or_insert(Group(0, 0, i64::MAX, i64::MIN));
                *g = Group(g.0 + 1, g.1 + e.v, g.2.min(e.v), g.3.max(e.v));
                changed.insert((s, e.key));
            }
        }
        let mut emitted: Vec<String> = Vec::new();
        if mode == "update" {
            emitted.extend(changed.iter().map(|k| row(k, &state[k])));
        }
        let new_wm = events.iter().map(|e| e.t - DELAY).max().map_or(wm, |m| wm.max(m));
        for evict_at in [wm, new_wm] {
            let done: Vec<(i64, &str)> = state.keys().filter(|(s, _)| s + WINDOW <= evict_at).copied().collect();
            for k in done {
                if let Some(g) = state.remove(&k) {
                    if mode == "append" {
                        emitted.push(row(&k, &g));
                    }
                }
            }
        }
        wm = new_wm;
        emitted.sort();
        out.push(emitted);
    }
    out
}

/// Expected state metrics of an append-mode aggregation with state per pane, for each batch the
/// run made (`batches[i]` for step `i`: its data batch, then the no-data batch when one ran):
/// rows are one per pane `[p, p + 2)` and key, kept until the watermark reaches `p + 10`, the
/// end of the newest window holding the pane; the late groups are the distinct (window, key)
/// pairs of the batch whose window ends at or below the watermark.
fn pane_metrics(steps: &[Vec<Event>], batches: &[usize]) -> Vec<Vec<[u64; 4]>> {
    let pane_of = |t: i64| t - (t - START).rem_euclid(SLIDE);
    let mut wm = 0i64;
    let mut state: BTreeSet<(i64, &str)> = BTreeSet::new();
    let mut out = Vec::new();
    for (events, batches) in steps.iter().zip(batches) {
        let late: BTreeSet<(i64, &str)> =
            events.iter().flat_map(|e| window_starts(e.t).filter(|s| s + WINDOW <= wm).map(|s| (s, e.key))).collect();
        let updated: BTreeSet<(i64, &str)> =
            events.iter().map(|e| (pane_of(e.t), e.key)).filter(|(p, _)| p + WINDOW > wm).collect();
        state.extend(updated.iter().copied());
        let mut metrics = vec![[state.len() as u64, updated.len() as u64, 0, late.len() as u64]];
        let new_wm = events.iter().map(|e| e.t - DELAY).max().map_or(wm, |m| wm.max(m));
        if *batches > 1 {
            let before = state.len();
            state.retain(|(p, _)| p + WINDOW > new_wm);
            metrics.push([state.len() as u64, 0, (before - state.len()) as u64, 0]);
        }
        wm = new_wm;
        out.push(metrics);
    }
    out
}

/// Per batch: the sink's new rows in the order written, and the aggregation's state metrics
/// (total, updated, removed, dropped by watermark) of every batch run for it.
type Run = (Vec<Vec<String>>, Vec<Vec<[u64; 4]>>);

async fn run(job: &str, steps: &[Vec<Event>]) -> Run {
    run_restarting(job, steps, None).await
}

/// [`run`], stopping the query before step `restart.0` and starting it again as `restart.1`.
async fn run_restarting(job: &str, steps: &[Vec<Event>], restart: Option<(usize, &str)>) -> Run {
    let mut t = StreamTest::start(job).await;
    let (mut rows, mut metrics) = (Vec::new(), Vec::new());
    let (mut seen_batches, mut seen_progress) = (0, 0);
    for (step, events) in steps.iter().enumerate() {
        if let Some((_, again)) = restart.filter(|(at, _)| *at == step) {
            t.restart_with(again).await;
        }
        t.add_batch(batch(events));
        t.settle().await;
        let table = t.harness.session.memory_table("out").unwrap_or_default();
        let new: Vec<RecordBatch> = table.batches.iter().skip(seen_batches).flat_map(|(_, b)| b.iter().cloned()).collect();
        seen_batches = table.batches.len();
        rows.push(sluice_tests::rows::rows(&new));
        let progress = t.all_progress();
        metrics.push(
            progress[seen_progress..]
                .iter()
                .flat_map(|p| &p.state_operators)
                .map(|o| [o.num_rows_total, o.num_rows_updated, o.num_rows_removed, o.num_rows_dropped_by_watermark])
                .collect(),
        );
        seen_progress = progress.len();
    }
    t.finish().await;
    (rows, metrics)
}

fn sorted(batches: Vec<Vec<String>>) -> Vec<Vec<String>> {
    batches
        .into_iter()
        .map(|mut b| {
            b.sort();
            b
        })
        .collect()
}

fn matches_the_model(mode: &'static str) -> impl Fn(Vec<Vec<Event>>) -> Result<(), TestCaseError> {
    move |steps| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (got, _) = rt.block_on(run(&job(mode, 3, ""), &steps));
        prop_assert_eq!(sorted(got), model(&steps, mode), "steps: {:?}", steps);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn sliding_window_aggregation_append_matches_the_model(steps in events()) {
        matches_the_model("append")(steps)?;
    }

    #[test]
    fn sliding_window_aggregation_update_matches_the_model(steps in events()) {
        matches_the_model("update")(steps)?;
    }
}

/// A fixed stream: rows in and out of order, on both sides of the epoch, late ones in later
/// batches, NULL-free keys spread over three groups.
fn fixed_steps() -> Vec<Vec<Event>> {
    let mut seed = 0x5eed_u64;
    let mut next = move |n: i64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) % n as u64) as i64
    };
    let keys = ["a", "b", "c"];
    (0..6)
        .map(|step| {
            (0..40).map(|_| Event { t: step * 12 - 14 + next(30), key: keys[next(3) as usize], v: next(60) - 10 }).collect()
        })
        .collect()
}

fn with_by_pane(by_pane: bool, job: &str) -> String {
    format!("SET '{SLIDING_WINDOW_STATE_BY_PANE}' = '{by_pane}';\n{job}")
}

async fn same_as_the_expansion(mode: &str) {
    let steps = fixed_steps();
    let expanded = run(&job(mode, 1, ", approx_count_distinct(key) AS one"), &steps).await;
    assert_eq!(sorted(expanded.0.clone()), model(&steps, mode), "{mode}: the model");
    assert!(expanded.1.iter().flatten().any(|m| m[3] > 0), "{mode}: some groups were late");
    let per_window = run(&with_by_pane(false, &job(mode, 1, "")), &steps).await;
    assert_eq!(per_window, expanded, "{mode}, state per window: rows in order and state metrics");
    let by_pane = run(&job(mode, 1, ""), &steps).await;
    if mode == "append" {
        assert_eq!(sorted(by_pane.0), model(&steps, mode), "{mode}, state per pane: the model");
        let batches: Vec<usize> = expanded.1.iter().map(Vec::len).collect();
        assert_eq!(by_pane.1, pane_metrics(&steps, &batches), "{mode}, state per pane: state metrics");
    } else {
        assert_eq!(by_pane, expanded, "{mode} keeps state per window: rows in order and state metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_append_by_panes_is_the_expansion_row_for_row() {
    same_as_the_expansion("append").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_update_by_panes_is_the_expansion_row_for_row() {
    same_as_the_expansion("update").await;
}

/// State per pane is restored after a restart, and a checkpoint keeps the state layout it
/// started with whatever the restarted session asks for: the rows are the model's in each case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sliding_window_aggregation_keeps_its_state_layout() {
    let steps = fixed_steps();
    for (first, then) in [(true, true), (false, true), (true, false)] {
        let (rows, _) = run_restarting(
            &with_by_pane(first, &job("append", 3, "")),
            &steps,
            Some((3, &with_by_pane(then, &job("append", 3, "")))),
        )
        .await;
        assert_eq!(sorted(rows), model(&steps, "append"), "state per pane {first}, then asked {then}");
    }
}
