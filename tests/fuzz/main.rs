//! Fuzzing the decoders that bytes from disk and network go through: zero panics allowed.
//!
//! Every target is one module with a seed corpus (`corpus/<target>/`, written by the engine's own
//! writers — `FUZZ_WRITE_SEEDS=1` regenerates it) and a `run` function that feeds one input
//! through the engine's real entry point. Inputs are half mutated seeds (truncated, flipped,
//! spliced, nested deeply, given huge numbers and multibyte UTF-8, so they get past the first
//! parse step) and half arbitrary bytes. Inputs come from proptest, which persists the seed of a
//! failing case in `regressions/<target>.txt` and replays it first on the next run.
//!
//! A panic is caught and counted as a failure, with the input written to
//! `regressions/<target>/`; every input there is run again at the start of each run. A stack overflow or an allocation failure aborts the
//! process instead; `FUZZ_LAST_INPUT=<file>` writes each input to that file before running it,
//! so the input that killed the process can be replayed. An input that runs longer than
//! [`CASE_LIMIT`] is a hang: a watchdog saves it to `regressions/<target>/` and ends the process
//! with a message naming the file, rather than letting the suite run into CI's time limit. Targets run on 2 MiB stacks, the stack
//! of the tokio worker threads the engine parses and decodes on.
//!
//! * `FUZZ_CASES` — cases per target (default 256: the suite's run takes seconds);
//!   the long run is `FUZZ_CASES=100000 cargo test --workspace --test fuzz`.
//! * `FUZZ_TARGETS` — comma-separated target names to run (default: all).
//! * `FUZZ_LAST_INPUT` — file each input is written to before it runs.
//! * `FUZZ_WRITE_SEEDS` — set to regenerate `corpus/` from the engine's writers, then exit.
//! * `FUZZ_REPLAY=<file>` — runs that one input through the `FUZZ_TARGETS` targets (all by
//!   default) with panics printed, to see where a saved failure happens.
//! * `FUZZ_SEED=<n>` — the same for the input the mutator makes from seed `n` for each target
//!   (a hang report names its seed: the input itself stays on the machine that found it).

mod corpus;
mod mutate;
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};

/// One fuzz target: a decoder and the seeds that show it well-formed input.
pub struct Target {
    /// Name used for `FUZZ_TARGETS`, the corpus directory and the report.
    pub name: &'static str,
    /// Seed inputs made by the engine's own writers (what `FUZZ_WRITE_SEEDS` stores).
    pub seeds: fn() -> Vec<(String, Vec<u8>)>,
    /// Whether `FUZZ_WRITE_SEEDS` stores the seeds under `corpus/`; false when they are files
    /// of the repository already (the example jobs), read where they are.
    pub store_seeds: bool,
    /// Words the mutator splices in: keywords, option names, field names of the format.
    pub dictionary: &'static [&'static str],
    /// Feeds one input through the engine; errors are fine, panics are not.
    pub run: fn(&[u8]),
}

/// What one target's run found.
struct Report {
    name: &'static str,
    cases: u64,
    seconds: f64,
    panics: u64,
    failure: Option<String>,
}

const DEFAULT_CASES: u32 = 256;
/// Tokio's default worker stack: what the engine's parsing really runs on.
const STACK_BYTES: usize = 2 << 20;
/// Longest one input may take. Inputs take well under a millisecond each (the long run does
/// 1.3 million in minutes, in a debug build); seconds mean a decoder loops or backtracks
/// exponentially, which in the engine would hang a driver's parse or an executor's task.
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// Watches the input a target is running and ends the process when one runs over
/// [`CASE_LIMIT`]: a hung thread cannot be stopped from outside, and a panic would not end it.
struct HangWatch {
    target: &'static str,
    failures_dir: PathBuf,
    /// `None` between inputs.
    current: Mutex<Option<RunningInput>>,
    finished: AtomicBool,
}

/// The input a target is running.
struct RunningInput {
    since: Instant,
    /// The mutator seed it came from; none for a saved input.
    seed: Option<u64>,
    input: Vec<u8>,
}

impl HangWatch {
    /// Starts the watchdog thread; it stops once [`HangWatch::finish`] is called.
    fn start(target: &'static str, failures_dir: PathBuf) -> Arc<Self> {
        let watch = Arc::new(HangWatch { target, failures_dir, current: Mutex::new(None), finished: AtomicBool::new(false) });
        let w = watch.clone();
        std::thread::Builder::new()
            .name(format!("hang-watch-{target}"))
            .spawn(move || w.watch())
            .expect("spawning a hang watchdog");
        watch
    }

    /// Runs one input under the watch.
    fn run(&self, seed: Option<u64>, input: &[u8], case: impl FnOnce()) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(RunningInput { since: Instant::now(), seed, input: input.to_vec() });
        case();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    fn watch(&self) {
        while !self.finished.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            let Some(RunningInput { since, seed, input }) = current.as_ref() else { continue };
            if since.elapsed() < CASE_LIMIT {
                continue;
            }
            let file = save_failure(&self.failures_dir, input);
            // The file stays on the machine that found the hang (a CI clone, say): its log
            // needs the seed or the bytes to reproduce it anywhere.
            let from = match seed {
                Some(seed) => format!("FUZZ_TARGETS={} FUZZ_SEED={seed} reproduces it", self.target),
                None => "a saved input".to_string(),
            };
            let shown = &input[..input.len().min(4096)];
            eprintln!(
                "fuzz: {}: an input ran for over {} s without finishing (a hang; {from}; input in {}, replay it with FUZZ_REPLAY); its first {} of {} bytes: b\"{}\"",
                self.target,
                CASE_LIMIT.as_secs(),
                file.display(),
                shown.len(),
                input.len(),
                shown.escape_ascii()
            );
            std::process::exit(1);
        }
    }
}

/// Keeps a failing input as bytes in `dir`, named by its hash, and returns where.
fn save_failure(dir: &std::path::Path, input: &[u8]) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let file = dir.join(format!("{:016x}", fxhash(input)));
    let _ = std::fs::write(&file, input);
    file
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let all = targets::all();
    if std::env::var_os("FUZZ_WRITE_SEEDS").is_some() {
        for t in all.iter().filter(|t| t.store_seeds) {
            let written = corpus::write_seeds(&root, t);
            println!("{:<16} {written} seed files", t.name);
        }
        return;
    }
    let cases: u32 = std::env::var("FUZZ_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_CASES);
    let selected: Option<Vec<String>> = std::env::var("FUZZ_TARGETS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
    if let Some(names) = &selected {
        for n in names {
            assert!(all.iter().any(|t| t.name == n), "FUZZ_TARGETS names an unknown target '{n}'");
        }
    }
    if let Some(file) = std::env::var_os("FUZZ_REPLAY") {
        let file = PathBuf::from(file);
        let input = std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        replay(all, selected, |_| input.clone());
        return;
    }
    if let Ok(seed) = std::env::var("FUZZ_SEED") {
        let seed: u64 = seed.trim().parse().unwrap_or_else(|e| panic!("FUZZ_SEED '{seed}' is not a u64: {e}"));
        replay(all, selected, |t| mutate::input(seed, &corpus::load(&root, t), t.dictionary));
        return;
    }
    // Panics inside cases are caught and reported per target (and the engine catches some on
    // purpose); the default hook would print every one. Panics elsewhere still print.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !std::thread::current().name().is_some_and(|n| n.starts_with("fuzz-")) {
            default_hook(info);
        }
    }));
    let started = Instant::now();
    let mut reports = Vec::new();
    for t in all {
        if selected.as_ref().is_some_and(|names| !names.iter().any(|n| n == t.name)) {
            continue;
        }
        let root = root.clone();
        let handle = std::thread::Builder::new()
            .name(format!("fuzz-{}", t.name))
            .stack_size(STACK_BYTES)
            .spawn(move || fuzz(&root, &t, cases))
            .expect("spawning a fuzz thread");
        let report = handle.join().expect("a fuzz thread failed outside a case");
        // Progress as it happens: a run the OOM killer ends still shows how far it got.
        eprintln!("fuzz: {} done, {} cases in {:.1}s, {} panics", report.name, report.cases, report.seconds, report.panics);
        reports.push(report);
    }
    println!("\n{:<16} {:>9} {:>9} {:>7}", "target", "cases", "seconds", "panics");
    for r in &reports {
        println!("{:<16} {:>9} {:>9.1} {:>7}", r.name, r.cases, r.seconds, r.panics);
    }
    let total_cases: u64 = reports.iter().map(|r| r.cases).sum();
    let total_panics: u64 = reports.iter().map(|r| r.panics).sum();
    println!("{:<16} {:>9} {:>9.1} {:>7}", "total", total_cases, started.elapsed().as_secs_f64(), total_panics);
    let failures: Vec<&String> = reports.iter().filter_map(|r| r.failure.as_ref()).collect();
    for f in &failures {
        eprintln!("{f}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

/// Runs one input (a saved file's, or a seed's) through each selected target with the default
/// panic hook, so a failure prints where it happened (`RUST_BACKTRACE=1` for the whole stack).
fn replay(all: Vec<Target>, selected: Option<Vec<String>>, input_for: impl Fn(&Target) -> Vec<u8>) {
    for t in all {
        if selected.as_ref().is_none_or(|names| names.iter().any(|n| n == t.name)) {
            let input = input_for(&t);
            // Length and hash name the input as a saved failure's file name does.
            let (len, hash) = (input.len(), fxhash(&input));
            let outcome = std::thread::Builder::new()
                .stack_size(STACK_BYTES)
                .spawn(move || (t.run)(&input))
                .expect("spawning a replay thread")
                .join();
            let verdict = if outcome.is_ok() { "ok" } else { "PANICKED" };
            println!("{:<16} {verdict} ({len} bytes, {hash:016x})", t.name);
        }
    }
}

/// Runs `cases` inputs through `t`, stopping at the first panic (proptest then shrinks it and
/// persists its seed).
fn fuzz(root: &std::path::Path, t: &Target, cases: u32) -> Report {
    let seeds = corpus::load(root, t);
    let last_input = std::env::var_os("FUZZ_LAST_INPUT").map(PathBuf::from);
    let failures_dir = root.join("regressions").join(t.name);
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(leak(
            root.join("regressions").join(format!("{}.txt", t.name)).to_string_lossy().into_owned(),
        )))),
        max_shrink_iters: 16,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let executed = Arc::new(AtomicU64::new(0));
    let panics = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let watch = HangWatch::start(t.name, failures_dir.clone());
    let report = |failure: Option<String>| Report {
        name: t.name,
        cases: executed.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        panics: panics.load(Ordering::Relaxed),
        failure,
    };
    // Inputs that failed before come first: once fixed, they are the regression tests.
    let mut saved: Vec<PathBuf> = std::fs::read_dir(&failures_dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    saved.sort();
    for file in saved {
        let Ok(input) = std::fs::read(&file) else { continue };
        executed.fetch_add(1, Ordering::Relaxed);
        let mut panicked = false;
        watch.run(None, &input, || panicked = catch_unwind(AssertUnwindSafe(|| (t.run)(&input))).is_err());
        if panicked {
            panics.fetch_add(1, Ordering::Relaxed);
            watch.finish();
            return report(Some(format!("{}: the saved input {} still panics", t.name, file.display())));
        }
    }
    let seeds = Arc::new(seeds);
    let dictionary = t.dictionary;
    let strategy = any::<u64>().prop_map(move |seed| (seed, mutate::input(seed, &seeds, dictionary)));
    let outcome = runner.run(&strategy, |(seed, input)| {
        executed.fetch_add(1, Ordering::Relaxed);
        if let Some(path) = &last_input {
            let _ = std::fs::write(path, &input);
        }
        let mut outcome = Ok(());
        watch.run(Some(seed), &input, || outcome = catch_unwind(AssertUnwindSafe(|| (t.run)(&input))));
        match outcome {
            Ok(()) => Ok(()),
            Err(panic) => {
                panics.fetch_add(1, Ordering::Relaxed);
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                let file = save_failure(&failures_dir, &input);
                Err(TestCaseError::fail(format!("{what} (input in {}; FUZZ_SEED={seed})", file.display())))
            }
        }
    });
    watch.finish();
    report(outcome.err().map(|e| match e {
        // The reason names the input file; the input itself can be 64 KiB.
        TestError::Fail(reason, _) => format!("{}: {reason}", t.name),
        TestError::Abort(reason) => format!("{}: aborted: {reason}", t.name),
    }))
}

/// proptest wants the persistence path for the whole run.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}
