//! The Nexmark job files of `bench/nexmark/`, run as shipped (only the sink swapped for memory
//! and the event count made small) and checked against a batch recomputation over the
//! `nexmark` crate's own sequential event stream.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;
use nexmark::EventGenerator;
use sluice_tests::{settle, Harness};

const BASE_TIME_MS: i64 = 1_700_000_000_000;
/// 20,000 events at 100 events/s of event time: 200 s of bids, so 20 tumbling windows of 10 s.
const EVENTS: u64 = 20_000;
const EVENT_RATE: u64 = 100;
/// The job files' `WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND`.
const DELAY_MS: i64 = 2_000;

/// (auction, bidder, price, date_time ms) of every bid among the first `EVENTS` events.
fn bids() -> Vec<(i64, i64, i64, i64)> {
    let cfg = NexmarkConfig {
        base_time: BASE_TIME_MS as u64,
        first_rate: EVENT_RATE as usize,
        next_rate: EVENT_RATE as usize,
        ..NexmarkConfig::default()
    };
    EventGenerator::new(cfg)
        .take(EVENTS as usize)
        .filter_map(|e| match e {
            Event::Bid(b) => Some((b.auction as i64, b.bidder as i64, b.price as i64, b.date_time as i64)),
            _ => None,
        })
        .collect()
}

/// The persons (id, name, city, state, date_time ms) and auctions (id, seller, category,
/// date_time ms) among the first `EVENTS` events.
#[allow(clippy::type_complexity)]
fn people_and_auctions() -> (Vec<(i64, String, String, String, i64)>, Vec<(i64, i64, i64, i64)>) {
    let cfg = NexmarkConfig {
        base_time: BASE_TIME_MS as u64,
        first_rate: EVENT_RATE as usize,
        next_rate: EVENT_RATE as usize,
        ..NexmarkConfig::default()
    };
    let (mut people, mut auctions) = (Vec::new(), Vec::new());
    for e in EventGenerator::new(cfg).take(EVENTS as usize) {
        match e {
            Event::Person(p) => people.push((p.id as i64, p.name, p.city, p.state, p.date_time as i64)),
            Event::Auction(a) => auctions.push((a.id as i64, a.seller as i64, a.category as i64, a.date_time as i64)),
            _ => {}
        }
    }
    (people, auctions)
}

/// `bench/nexmark/<query>.sql` as shipped, with a memory sink and the first `events` events.
fn job_text(query: &str, events: u64) -> String {
    let path = format!("{}/../bench/nexmark/{query}.sql", env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let job = shipped
        .replace("'connector' = 'noop'", "'connector' = 'memory'")
        .replace("'maxEvents' = '10000000'", &format!("'maxEvents' = '{events}', 'eventRate' = '{EVENT_RATE}'"))
        .replace("'maxEventsPerTrigger' = '1000000'", "'maxEventsPerTrigger' = '6000'");
    assert_ne!(job, shipped, "{path}: the options the test rewrites are gone");
    job
}

/// Runs `job` to its end; returns the rows its memory sink took, the final watermark and the
/// operator names of its last progress report.
async fn run_to_end(h: &Harness, job: &str) -> (Vec<RecordBatch>, Option<String>, Vec<String>) {
    let q = h.run(job).await.remove(0);
    q.await_termination().await.unwrap();
    settle(&q).await;
    let rows = h.session.memory_table("out").unwrap().all_rows();
    h.session.clear_memory_table("out");
    let last = q.last_progress();
    let watermark = last.as_ref().and_then(|p| p.event_time.get("watermark").cloned());
    let operators = last.map(|p| p.state_operators.iter().map(|o| o.operator_name.clone()).collect()).unwrap_or_default();
    (rows, watermark, operators)
}

/// Runs `bench/nexmark/<query>.sql` into a memory sink; returns the rows and the final watermark.
async fn run_job_file(query: &str) -> (Vec<RecordBatch>, Option<String>) {
    let h = Harness::start().await;
    let (rows, watermark, _) = run_to_end(&h, &job_text(query, EVENTS)).await;
    h.shutdown().await;
    (rows, watermark)
}

fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn longs(b: &RecordBatch, i: usize) -> Vec<i64> {
    b.column(i).as_primitive::<Int64Type>().values().to_vec()
}

fn millis(b: &RecordBatch, i: usize) -> Vec<i64> {
    b.column(i).as_primitive::<TimestampMicrosecondType>().values().iter().map(|us| us / 1000).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q2_selects_the_bids_on_every_123rd_auction() {
    let (rows, _) = run_job_file("q2").await;
    let mut got: Vec<(i64, i64)> = rows.iter().flat_map(|b| longs(b, 0).into_iter().zip(longs(b, 1))).collect();
    got.sort_unstable();
    let mut want: Vec<(i64, i64)> = bids().into_iter().filter(|b| b.0 % 123 == 0).map(|b| (b.0, b.2)).collect();
    want.sort_unstable();
    assert!(!want.is_empty(), "the generator bids on auctions divisible by 123 within {EVENTS} events");
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q7_reports_every_top_bid_of_every_closed_tumbling_window() {
    let (rows, watermark) = run_job_file("q7").await;
    let bids = bids();
    let max_time = bids.iter().map(|b| b.3).max().unwrap();
    let final_watermark = max_time - DELAY_MS;
    assert_eq!(watermark, Some(iso_ms(final_watermark)));

    // Append mode: a window's top bids come out once the watermark reaches its end — all of
    // them when several bids share the top price.
    let end_of = |t: i64| t - t.rem_euclid(10_000) + 10_000;
    let mut best: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &bids {
        let top = best.entry(end_of(b.3)).or_insert(i64::MIN);
        *top = (*top).max(b.2);
    }
    let mut want: Vec<(i64, i64, i64, i64)> = bids
        .iter()
        .filter(|b| end_of(b.3) <= final_watermark && best[&end_of(b.3)] == b.2)
        .map(|b| (b.0, b.2, b.1, b.3))
        .collect();
    want.sort_unstable();
    assert!(want.len() >= 15, "most of the 20 windows close: {}", want.len());

    let mut got = Vec::new();
    for b in &rows {
        let (auctions, prices, bidders, times) = (longs(b, 0), longs(b, 1), longs(b, 2), millis(b, 3));
        for i in 0..b.num_rows() {
            got.push((auctions[i], prices[i], bidders[i], times[i]));
        }
    }
    got.sort_unstable();
    assert_eq!(got, want);
}

/// q5's rows over the first `EVENTS` events, recomputed: (window start ms, auction, bids) of
/// every auction with the most bids of a window the final watermark closed.
fn q5_expected() -> Vec<(i64, i64, i64)> {
    let bids = bids();
    let final_watermark = bids.iter().map(|b| b.3).max().unwrap() - DELAY_MS;
    // Windows of 10 s every 2 s, aligned to the epoch: a bid at t is in the windows starting at
    // the multiples of 2 s in (t - 10 s, t].
    let mut counts: HashMap<(i64, i64), i64> = HashMap::new();
    for b in &bids {
        let last_start = b.3 - b.3.rem_euclid(2_000);
        let mut start = last_start;
        while start > b.3 - 10_000 {
            *counts.entry((start, b.0)).or_default() += 1;
            start -= 2_000;
        }
    }
    let mut hottest: BTreeMap<i64, i64> = BTreeMap::new();
    for ((start, _), n) in &counts {
        let top = hottest.entry(*start).or_insert(0);
        *top = (*top).max(*n);
    }
    let mut want: Vec<(i64, i64, i64)> = counts
        .iter()
        .filter(|((start, _), n)| start + 10_000 <= final_watermark && hottest[start] == **n)
        .map(|((start, auction), n)| (*start, *auction, *n))
        .collect();
    want.sort_unstable();
    let windows = want.iter().map(|w| w.0).collect::<std::collections::BTreeSet<_>>().len();
    assert!(windows >= 80, "most of the ~100 windows close: {windows}");
    want
}

/// q5's output rows as (window start ms, auction, bids), sorted; every window is 10 s long.
fn q5_rows(rows: &[RecordBatch]) -> Vec<(i64, i64, i64)> {
    let mut got = Vec::new();
    for b in rows {
        let (starts, ends, auctions, nums) = (millis(b, 0), millis(b, 1), longs(b, 2), longs(b, 3));
        for i in 0..b.num_rows() {
            assert_eq!(ends[i] - starts[i], 10_000);
            got.push((starts[i], auctions[i], nums[i]));
        }
    }
    got.sort_unstable();
    got
}

/// The view of per-auction counts is used twice; planned once, it is one aggregation feeding
/// both the maximum and the join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q5_reports_every_most_bid_on_auction_of_every_closed_sliding_window() {
    let h = Harness::start().await;
    let (rows, watermark, operators) = run_to_end(&h, &job_text("q5", EVENTS)).await;
    h.shutdown().await;
    let final_watermark = bids().iter().map(|b| b.3).max().unwrap() - DELAY_MS;
    assert_eq!(watermark, Some(iso_ms(final_watermark)));
    // Progress lists operators from the sink down, as Spark does.
    assert_eq!(operators, ["symmetricHashJoin", "stateStoreSave", "stateStoreSave"], "the counts are planned once");
    assert_eq!(q5_rows(&rows), q5_expected());
}

/// A checkpoint started without sharing (as every checkpoint before sharing was) keeps one
/// operator per use of the view when the query goes on with sharing switched on: its state is
/// numbered that way. The two runs together give exactly the rows of one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q5_keeps_the_operators_its_checkpoint_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let with_checkpoint = |events: u64, extra: &str| {
        job_text("q5", events).replace(
            "SET 'trigger' = 'availableNow';",
            &format!("SET 'trigger' = 'availableNow';\nSET 'checkpointLocation' = '{}';\n{extra}", dir.path().display()),
        )
    };
    let h = Harness::start().await;
    let unshared = "SET 'sluice.streaming.shareIdenticalOperators' = 'false';";
    let (first, _, operators) = run_to_end(&h, &with_checkpoint(EVENTS / 2, unshared)).await;
    let four = ["symmetricHashJoin", "stateStoreSave", "stateStoreSave", "stateStoreSave"];
    assert_eq!(operators, four, "one operator per use of the view");
    let (second, watermark, operators) = run_to_end(&h, &with_checkpoint(EVENTS, "")).await;
    h.shutdown().await;
    assert_eq!(operators, four, "the checkpoint's choice wins over the job's default");
    let final_watermark = bids().iter().map(|b| b.3).max().unwrap() - DELAY_MS;
    assert_eq!(watermark, Some(iso_ms(final_watermark)));
    assert!(!first.is_empty() && !second.is_empty(), "both runs close windows");
    assert_eq!(q5_rows(&[first, second].concat()), q5_expected());
}

/// The offsets lines of `offsets/0..` in a checkpoint (the metadata line, which holds the
/// batch's timestamp, left out), and whether every one of those batches committed.
fn logged_offsets(checkpoint: &std::path::Path) -> (Vec<String>, bool) {
    let mut logged = Vec::new();
    let mut all_committed = true;
    for batch in 0.. {
        let Ok(text) = std::fs::read_to_string(checkpoint.join(format!("offsets/{batch}"))) else { break };
        logged.push(text.lines().skip(2).collect::<Vec<_>>().join("\n"));
        all_committed &= checkpoint.join(format!("commits/{batch}")).exists();
    }
    (logged, all_committed)
}

/// With `sluice.streaming.mapAhead` on (the default), each batch after the first whose input
/// was known while the batch before it ran starts from a map stage run ahead of it; the rows are
/// the recomputation's, and the checkpoint logs the same batches, with the same offsets, as a
/// run with it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q5_runs_the_next_batchs_map_stage_ahead_and_logs_the_same_batches() {
    let mut logs = Vec::new();
    for (setting, ahead) in [("", true), ("SET 'sluice.streaming.mapAhead' = 'false';", false)] {
        let dir = tempfile::tempdir().unwrap();
        let job = job_text("q5", EVENTS).replace(
            "SET 'trigger' = 'availableNow';",
            &format!("SET 'trigger' = 'availableNow';\nSET 'checkpointLocation' = '{}';\n{setting}", dir.path().display()),
        );
        let h = Harness::start().await;
        let q = h.run(&job).await.remove(0);
        q.await_termination().await.unwrap();
        settle(&q).await;
        let rows = h.session.memory_table("out").unwrap().all_rows();
        let run_ahead = q.batches_run_ahead();
        h.shutdown().await;
        // Batches of 6,000 events; the first has nothing before it to run ahead of, and the
        // no-data batches after the last have no input.
        let data_batches = EVENTS.div_ceil(6_000);
        assert_eq!(run_ahead, if ahead { data_batches - 1 } else { 0 }, "{setting}");
        assert_eq!(q5_rows(&rows), q5_expected(), "{setting}");
        let (offsets, all_committed) = logged_offsets(dir.path());
        assert!(all_committed, "{setting}: every logged batch committed");
        assert!(offsets.len() as u64 > data_batches, "{setting}: the data batches and a no-data batch: {offsets:?}");
        logs.push(offsets);
    }
    assert_eq!(logs[0], logs[1], "the same batches, with the same offsets");
}

/// An executor stopped while batches run their next batch's map stage ahead: a stage that
/// lost its executor runs again with its batch, whose offsets it had already fixed, and the rows
/// are still exactly the recomputation's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q5_loses_no_row_when_an_executor_stops_under_a_map_stage_run_ahead() {
    let job = job_text("q5", EVENTS).replace("'maxEventsPerTrigger' = '6000'", "'maxEventsPerTrigger' = '1000'");
    let mut h = Harness::with_executors(3, 1).await;
    let q = h.run(&job).await.remove(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while q.batches_run_ahead() < 2 {
        assert!(std::time::Instant::now() < deadline, "no batch ran ahead");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let victim = h.executor_ids()[0].clone();
    h.stop_executor(&victim).await;
    q.await_termination().await.unwrap();
    settle(&q).await;
    let rows = h.session.memory_table("out").unwrap().all_rows();
    let last_batch = q.last_progress().map(|p| p.batch_id);
    h.shutdown().await;
    assert!(last_batch >= Some(EVENTS / 1_000), "the batches of 1,000 events: {last_batch:?}");
    assert_eq!(q5_rows(&rows), q5_expected());
}

fn strings(b: &RecordBatch, i: usize) -> Vec<String> {
    b.column(i).as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q3_joins_category_10_auctions_with_their_sellers_in_three_states() {
    let (rows, _) = run_job_file("q3").await;
    let (people, auctions) = people_and_auctions();
    let mut want: Vec<(String, String, String, i64)> = Vec::new();
    for a in auctions.iter().filter(|a| a.2 == 10) {
        for p in people.iter().filter(|p| p.0 == a.1 && ["or", "id", "ca"].contains(&p.3.as_str())) {
            want.push((p.1.clone(), p.2.clone(), p.3.clone(), a.0));
        }
    }
    want.sort();
    assert!(!want.is_empty(), "the generator has category-10 auctions of sellers in OR, ID or CA within {EVENTS} events");
    let mut got: Vec<(String, String, String, i64)> = Vec::new();
    for b in &rows {
        let (names, cities, states, ids) = (strings(b, 0), strings(b, 1), strings(b, 2), longs(b, 3));
        for i in 0..b.num_rows() {
            got.push((names[i].clone(), cities[i].clone(), states[i].clone(), ids[i]));
        }
    }
    got.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q8_lists_people_who_sold_in_the_window_they_registered_in() {
    let (rows, _) = run_job_file("q8").await;
    let (people, auctions) = people_and_auctions();
    let window = |ms: i64| ms - ms.rem_euclid(10_000);
    let mut want: Vec<(i64, String, i64)> = people
        .iter()
        .filter(|p| auctions.iter().any(|a| a.1 == p.0 && window(a.3) == window(p.4)))
        .map(|p| (p.0, p.1.clone(), window(p.4)))
        .collect();
    want.sort();
    want.dedup();
    assert!(want.len() >= 5, "the generator's sellers open auctions in their first window: {}", want.len());
    let mut got: Vec<(i64, String, i64)> = Vec::new();
    for b in &rows {
        let (ids, names, starts) = (longs(b, 0), strings(b, 1), millis(b, 2));
        for i in 0..b.num_rows() {
            got.push((ids[i], names[i].clone(), starts[i]));
        }
    }
    got.sort();
    assert_eq!(got, want);
}
