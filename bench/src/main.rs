//! `sluice-bench`: the pieces of the benchmark suite that must be fast or must use sluice's own
//! code — generating the tutorials' event files, measuring the decode limit (how fast sluice's
//! JSON decoder alone turns the same files into Arrow on the same cores) and the Nexmark
//! generator limit. The workloads themselves run through the real `sluice` binary and PySpark,
//! driven by `bench/run.py`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use clap::{Parser, Subcommand};
use sluice_common::options::Options;
use sluice_common::types::timestamp_type;
use sluice_connectors::files::options::{parse_format, FILE_TABLE_OPTIONS};
use sluice_connectors::files::reader::read_file_range;
use sluice_connectors::files::splits::FileRange;
use sluice_connectors::nexmark::{read_nexmark_split, NexmarkOptions, NexmarkSplit};

/// The allocator `sluice` runs with, so the decode limit is measured under the same conditions.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "sluice-bench", about = "Benchmark input generator and decode-limit probe")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes JSON-lines files of the tutorials' events (event_time, user_id, action, amount,
    /// event_id) with out-of-order, duplicated and late events; file modification times increase
    /// with the file number so every engine reads them in the same order.
    Gen {
        #[arg(long)]
        rows: u64,
        #[arg(long, default_value_t = 20)]
        files: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Decodes every file of a directory into Arrow with sluice's JSON decoder on `threads`
    /// threads and prints `{"rows":…,"bytes":…,"seconds":…}`.
    Decode {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Generates Nexmark events of one type into Arrow with the `nexmark` connector's own split
    /// reader on `threads` threads (the generator limit of the Nexmark queries) and prints
    /// `{"events":…,"rows":…,"seconds":…}`.
    NexmarkGen {
        #[arg(long)]
        events: u64,
        #[arg(long, default_value = "bid")]
        event_type: String,
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// Events per batch, as the job files' maxEventsPerTrigger.
        #[arg(long, default_value_t = 1_000_000)]
        batch: u64,
    },
}

/// A small deterministic generator (Knuth's MMIX LCG), so inputs repeat across runs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 2024-01-01T00:00:00Z in milliseconds.
const T0_MS: i64 = 1_704_067_200_000;
/// Nominal event rate of the generated stream: 100 events per second of event time.
const EVENT_SPACING_MS: i64 = 10;
const ACTIONS: [&str; 4] = ["view", "click", "cart", "buy"];

fn event_line(id: u64, time_ms: i64, user: u64, action: &str, amount: u64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(time_ms).unwrap_or_default();
    format!(
        "{{\"event_time\":\"{}\",\"user_id\":\"u{user}\",\"action\":\"{action}\",\"amount\":{amount},\"event_id\":\"e{id}\"}}\n",
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
}

fn generate(rows: u64, files: u64, out: &Path, seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let mut rng = Lcg(seed);
    let per_file = rows.div_ceil(files.max(1));
    let oldest = SystemTime::now() - Duration::from_secs(files + 60);
    let mut written = 0u64;
    let mut pending_duplicates: Vec<String> = Vec::new();
    for f in 0..files {
        let mut text = String::with_capacity(per_file as usize * 110);
        let end = (written + per_file).min(rows);
        while written < end {
            let id = written;
            // Up to 60 s out of order; 0.1% arrive 20 minutes late (past a 10-minute watermark).
            let mut time_ms = T0_MS + id as i64 * EVENT_SPACING_MS - rng.below(60_000) as i64;
            if rng.below(1000) == 0 {
                time_ms -= 20 * 60_000;
            }
            let action = ACTIONS[[0, 0, 0, 1, 1, 2, 3][rng.below(7) as usize]];
            let line = event_line(id, time_ms, rng.below(10_000), action, 1 + rng.below(500));
            // 2% are delivered twice, a few lines later.
            if rng.below(50) == 0 {
                pending_duplicates.push(line.clone());
            }
            text.push_str(&line);
            written += 1;
            if pending_duplicates.len() > 3 || written == end {
                for d in pending_duplicates.drain(..) {
                    text.push_str(&d);
                }
            }
        }
        let path = out.join(format!("events-{f:05}.json"));
        std::fs::write(&path, text)?;
        let file = std::fs::File::options().write(true).open(&path)?;
        file.set_modified(oldest + Duration::from_secs(f))?;
    }
    Ok(())
}

fn event_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_time", timestamp_type(), true),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("action", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
        Field::new("event_id", DataType::Utf8, true),
    ]))
}

async fn decode(dir: &Path, threads: usize) -> Result<serde_json::Value, String> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| {
            let size = e.metadata().ok()?.len();
            let path = std::fs::canonicalize(e.path()).ok()?;
            Some((format!("file://{}", path.display()), size))
        })
        .collect();
    files.sort();
    let format =
        parse_format(&Options::from_pairs([("format", "json")]), FILE_TABLE_OPTIONS, "decode").map_err(|e| e.one_line())?;
    let schema = event_schema();
    let bytes: u64 = files.iter().map(|(_, s)| s).sum();
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..threads.max(1) {
        let mine: Vec<(String, u64)> = files.iter().skip(w).step_by(threads.max(1)).cloned().collect();
        let (format, schema) = (format.clone(), Arc::clone(&schema));
        workers.push(tokio::spawn(async move {
            let mut rows = 0u64;
            for (url, size) in mine {
                let range = FileRange { url, start: 0, length: size, file_size: size };
                let decoded = read_file_range(&range, &format, &schema).await.map_err(|e| e.one_line())?;
                rows += decoded.batch.num_rows() as u64;
            }
            Ok::<u64, String>(rows)
        }));
    }
    let mut rows = 0u64;
    for w in workers {
        rows += w.await.map_err(|e| e.to_string())??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({"rows": rows, "bytes": bytes, "seconds": seconds, "rows_per_sec": rows as f64 / seconds}))
}

/// Generates `events` Nexmark events batch by batch, each batch split over `threads` threads
/// exactly as the source plans it.
fn nexmark_gen(events: u64, event_type: &str, threads: u32, batch: u64) -> Result<serde_json::Value, String> {
    let options = Options::from_pairs([("eventType", event_type)]);
    let table = NexmarkOptions::parse(&options).map_err(|e| e.one_line())?.table;
    let threads = threads.max(1);
    let started = Instant::now();
    let mut rows = 0u64;
    let mut start = 0u64;
    while start < events {
        let end = (start + batch.max(1)).min(events);
        let workers: Vec<_> = (0..threads)
            .map(|partition| {
                let split = NexmarkSplit {
                    table,
                    base_time_ms: 1_700_000_000_000,
                    event_rate: 10_000,
                    start_event: start,
                    end_event: end,
                    partition,
                    num_partitions: threads,
                };
                std::thread::spawn(move || read_nexmark_split(&split).map(|b| b.num_rows() as u64))
            })
            .collect();
        for w in workers {
            rows += w.join().map_err(|_| "generator thread panicked".to_string())?.map_err(|e| e.one_line())?;
        }
        start = end;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({"events": events, "rows": rows, "seconds": seconds, "events_per_sec": events as f64 / seconds}))
}

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Gen { rows, files, out, seed } => {
            generate(rows, files, &out, seed).map_err(|e| format!("{}: {e}", out.display()))
        }
        Command::Decode { dir, threads } => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(decode(&dir, threads)))
            .map(|v| println!("{v}")),
        Command::NexmarkGen { events, event_type, threads, batch } => {
            nexmark_gen(events, &event_type, threads, batch).map(|v| println!("{v}"))
        }
    };
    if let Err(e) = outcome {
        eprintln!("sluice-bench: error: {e}");
        std::process::exit(1);
    }
}
