//! Property tests: random event streams — out of order, late, duplicated — through windowed
//! aggregation in every output mode and through deduplication, checked against a model of
//! Spark's semantics written here, independently of the engine's operators.
//!
//! The model (docs/semantics.md §3, §6): batches run one per `AddData`; after each data batch the watermark
//! becomes `max(previous, max event time − delay)`, and when it moved a no-data batch evicts
//! with it, so every data batch filters late rows and evicts with the same (current) watermark.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use proptest::prelude::*;
use sluice_tests::oracle::StreamTest;

const WINDOW: i64 = 10;
const DELAY: i64 = 5;

#[derive(Debug, Clone, Copy)]
struct Event {
    t: i64,
    key: &'static str,
    id: i64,
}

fn events() -> impl Strategy<Value = Vec<Vec<Event>>> {
    let event = (0i64..80, prop::sample::select(vec!["a", "b", "c"]), 0i64..6).prop_map(|(t, key, id)| Event { t, key, id });
    prop::collection::vec(prop::collection::vec(event, 0..10), 1..6)
}

fn batch(events: &[Event]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("t", DataType::Int64, true),
        Field::new("key", DataType::Utf8, true),
        Field::new("id", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(events.iter().map(|e| e.t).collect::<Vec<_>>())),
            Arc::new(StringArray::from(events.iter().map(|e| e.key).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(events.iter().map(|e| e.id).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

const INPUT: &str = "CREATE STREAM input (t BIGINT, key STRING, id BIGINT, eventTime AS timestamp_seconds(t),
                         WATERMARK FOR eventTime AS eventTime - INTERVAL '5' SECOND) WITH ('connector' = 'memory');
                     CREATE SINK out WITH ('connector' = 'memory');
                     SET 'spark.sql.shuffle.partitions' = '3';";

fn aggregation_job(mode: &str) -> String {
    format!(
        "{INPUT} SET 'outputMode' = '{mode}';
         INSERT INTO out SELECT CAST(w.start AS BIGINT) AS start, key, cnt, total FROM (
           SELECT window(eventTime, '10 seconds') AS w, key, count(*) AS cnt, sum(id) AS total
           FROM input GROUP BY window(eventTime, '10 seconds'), key);"
    )
}

/// (window start, key) → (count, sum of ids).
type Groups = BTreeMap<(i64, &'static str), (i64, i64)>;

fn row(k: &(i64, &str), v: &(i64, i64)) -> String {
    format!("({}, {}, {}, {})", k.0, k.1, v.0, v.1)
}

/// Expected new rows per step for windowed aggregation in `mode`.
fn model_aggregation(steps: &[Vec<Event>], mode: &str) -> Vec<Vec<String>> {
    let mut wm = 0i64; // seconds (all event times are whole seconds)
    let mut state: Groups = BTreeMap::new();
    let mut out = Vec::new();
    for events in steps {
        let mut changed: BTreeSet<(i64, &str)> = BTreeSet::new();
        for e in events {
            let start = e.t - e.t.rem_euclid(WINDOW);
            let late = start + WINDOW <= wm;
            if late && mode != "complete" {
                continue;
            }
            let g = state.entry((start, e.key)).or_default();
            g.0 += 1;
            g.1 += e.id;
            changed.insert((start, e.key));
        }
        let mut emitted = Vec::new();
        if mode == "update" {
            emitted.extend(changed.iter().map(|k| row(k, &state[k])));
        }
        let max_t = events.iter().map(|e| e.t).max();
        let new_wm = max_t.map_or(wm, |m| wm.max(m - DELAY));
        // Eviction with the data batch's watermark, then with the no-data batch's.
        for evict_at in [wm, new_wm] {
            if mode == "complete" {
                continue;
            }
            let done: Vec<(i64, &str)> = state.keys().filter(|(s, _)| s + WINDOW <= evict_at).copied().collect();
            for k in done {
                let v = state.remove(&k).unwrap();
                if mode == "append" {
                    emitted.push(row(&k, &v));
                }
            }
        }
        if mode == "complete" {
            emitted = state.iter().map(|(k, v)| row(k, v)).collect();
        }
        wm = new_wm;
        emitted.sort();
        out.push(emitted);
    }
    out
}

/// Expected new rows per step for `DISTINCT ON (key, eventTime)`: first arrival of a key wins,
/// rows at or below the watermark are late.
fn model_dedup(steps: &[Vec<Event>]) -> Vec<Vec<String>> {
    let mut wm = 0i64;
    let mut seen: BTreeSet<(&str, i64)> = BTreeSet::new();
    let mut out = Vec::new();
    for events in steps {
        let mut emitted = Vec::new();
        for e in events {
            if e.t <= wm || !seen.insert((e.key, e.t)) {
                continue;
            }
            emitted.push(format!("({}, {}, {})", e.key, e.t, e.id));
        }
        if let Some(m) = events.iter().map(|e| e.t).max() {
            wm = wm.max(m - DELAY);
        }
        emitted.sort();
        out.push(emitted);
    }
    out
}

async fn run_steps(job: &str, steps: &[Vec<Event>], last_batch_only: bool) -> Vec<Vec<String>> {
    let t = StreamTest::start(job).await;
    let mut got = Vec::new();
    let mut seen_batches = 0;
    for events in steps {
        t.add_batch(batch(events));
        t.settle().await;
        let table = t.harness.session.memory_table("out").unwrap_or_default();
        let new: Vec<RecordBatch> = if last_batch_only {
            table.last_batch()
        } else {
            table.batches.iter().skip(seen_batches).flat_map(|(_, b)| b.iter().cloned()).collect()
        };
        seen_batches = table.batches.len();
        got.push(sluice_tests::rows::sorted_rows(&new));
    }
    t.finish().await;
    got
}

fn check(mode: &'static str) -> impl Fn(Vec<Vec<Event>>) -> Result<(), TestCaseError> {
    move |steps| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (got, want) = if mode == "dedup" {
            let job =
                format!("{INPUT} INSERT INTO out SELECT key, t, id FROM (SELECT DISTINCT ON (key, eventTime) * FROM input);");
            (rt.block_on(run_steps(&job, &steps, false)), model_dedup(&steps))
        } else {
            (rt.block_on(run_steps(&aggregation_job(mode), &steps, mode == "complete")), model_aggregation(&steps, mode))
        };
        prop_assert_eq!(got, want, "steps: {:?}", steps);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn windowed_aggregation_append_matches_the_model(steps in events()) {
        check("append")(steps)?;
    }

    #[test]
    fn windowed_aggregation_update_matches_the_model(steps in events()) {
        check("update")(steps)?;
    }

    #[test]
    fn windowed_aggregation_complete_matches_the_model(steps in events()) {
        check("complete")(steps)?;
    }

    #[test]
    fn deduplication_matches_the_model(steps in events()) {
        check("dedup")(steps)?;
    }
}
