//! The chaos job's input generator and an independent batch recomputation of its output.
//!
//! The recomputation follows docs/semantics.md, batch by batch, with plain Rust collections: batch `k`
//! reads the rows it is given (input file `k`, unless a failure made a batch read more: see
//! `grouping.rs`); rows at or below the previous batch's watermark are late and dropped by
//! the deduplication; deduplication keeps the first `(event_id, event_time)`; a 1-minute window
//! is emitted (append mode) once the batch's watermark reaches its end; the watermark after
//! batch `k` is `max(previous, max event time seen - 30 s)`; after the last file one no-data
//! batch runs at the final watermark.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A small deterministic generator, so a failing seed reproduces.
pub struct Lcg(pub u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One input row.
#[derive(Clone, Debug)]
pub struct Event {
    /// Event time, ms since the epoch.
    pub time_ms: i64,
    pub user: String,
    pub action: &'static str,
    pub amount: i64,
    pub id: String,
}

impl Event {
    fn json(&self) -> String {
        let t = chrono::DateTime::from_timestamp_millis(self.time_ms).expect("valid time");
        format!(
            r#"{{"event_time": "{}", "user_id": "{}", "action": "{}", "amount": {}, "event_id": "{}"}}"#,
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            self.user,
            self.action,
            self.amount,
            self.id
        )
    }
}

const ACTIONS: [&str; 3] = ["click", "view", "buy"];
const DELAY_MS: i64 = 30_000;
const WINDOW_MS: i64 = 60_000;

/// Writes `files` JSON-lines files into `dir` (increasing modification times, so the source
/// reads them in order, one per batch) and returns their rows. Event time moves forward ~20 s per
/// file; rows arrive up to 40 s out of order, some far behind (late), and some are exact copies
/// of earlier rows (duplicates, in the same file or a later one). Each file holds `rows` to
/// `2 × rows_per_file` fresh rows.
pub fn generate_input(dir: &Path, files: usize, rows_per_file: u64, rng: &mut Lcg) -> Vec<Vec<Event>> {
    std::fs::create_dir_all(dir).expect("input dir");
    let base_ms = 1_714_557_600_000; // 2024-05-01T10:00:00Z
    let base_mtime = SystemTime::now() - Duration::from_secs(3600);
    let mut all: Vec<Event> = Vec::new();
    let mut out = Vec::with_capacity(files);
    let mut next_id = 0;
    for f in 0..files {
        let frontier = base_ms + (f as i64 + 1) * 20_000;
        let mut rows = Vec::new();
        for _ in 0..(rows_per_file + rng.below(rows_per_file)) {
            let behind = match rng.below(10) {
                0 => 60_000 + rng.below(90_000) as i64, // likely late
                _ => rng.below(40_000) as i64,
            };
            let e = Event {
                time_ms: frontier - behind,
                user: format!("u{}", rng.below(5)),
                action: ACTIONS[rng.below(3) as usize],
                amount: 1 + rng.below(100) as i64,
                id: format!("e{next_id:06}"),
            };
            next_id += 1;
            rows.push(e);
        }
        // Duplicates: exact copies of earlier rows, this file's or older ones.
        for _ in 0..rng.below(rows_per_file / 2) {
            let pool = all.len() + rows.len();
            let i = rng.below(pool as u64) as usize;
            let copy = if i < all.len() { all[i].clone() } else { rows[i - all.len()].clone() };
            let at = rng.below(rows.len() as u64 + 1) as usize;
            rows.insert(at, copy);
        }
        let path = dir.join(format!("part-{f:05}.json"));
        let text: String = rows.iter().map(|e| e.json() + "\n").collect();
        std::fs::write(&path, text).expect("input file");
        let file = std::fs::File::options().write(true).open(&path).expect("input file");
        file.set_modified(base_mtime + Duration::from_secs(f as u64 * 10)).expect("set mtime");
        all.extend(rows.iter().cloned());
        out.push(rows);
    }
    out
}

/// The job's committed rows, as `sluice cat` prints them (JSON lines), sorted.
pub fn expected_output(batches: &[Vec<Event>]) -> Vec<String> {
    // (window start ms, action) -> (count, sum)
    let mut windows: BTreeMap<(i64, &str), (i64, i64)> = BTreeMap::new();
    let mut seen: HashSet<(String, i64)> = HashSet::new();
    let mut emitted = Vec::new();
    let mut watermark = 0i64; // the watermark of the batch being run
    let mut late_watermark = 0i64; // the previous batch's watermark
    let mut max_event_time = i64::MIN;
    let mut emit = |windows: &mut BTreeMap<(i64, &str), (i64, i64)>, wm: i64| {
        let due: Vec<(i64, &str)> = windows.keys().filter(|(start, _)| start + WINDOW_MS <= wm).copied().collect();
        for key in due {
            let (n, total) = windows.remove(&key).expect("present");
            emitted.push(format!(r#"{{"start":{},"action":"{}","n":{n},"total":{total}}}"#, key.0 / 1000, key.1));
        }
    };
    for rows in batches {
        for e in rows {
            max_event_time = max_event_time.max(e.time_ms);
            if e.time_ms <= late_watermark || !seen.insert((e.id.clone(), e.time_ms)) {
                continue;
            }
            let start = e.time_ms.div_euclid(WINDOW_MS) * WINDOW_MS;
            let w = windows.entry((start, e.action)).or_insert((0, 0));
            w.0 += 1;
            w.1 += e.amount;
        }
        emit(&mut windows, watermark);
        late_watermark = watermark;
        watermark = watermark.max(max_event_time - DELAY_MS);
    }
    // The no-data batch at the final watermark.
    emit(&mut windows, watermark);
    emitted.sort();
    emitted
}
