//! The soak: hundreds of batches through partition moves and a failover, watching executor memory.
//!
//! Executors hold a run's compiled plans, its shuffle blocks and its state partitions. The
//! driver releases them when a run ends or is superseded and when a partition moves; if any of
//! those were kept, an executor's resident memory would grow with every batch, every move and
//! every failover. The soak runs the chaos query over a few hundred batches while a fourth
//! executor joins (partitions move to it) and is killed (they move back), then the leading driver
//! is killed (a new run supersedes the old one), and samples the resident set size of the three
//! executors that live throughout. Their memory at the end must be what it was once warmed up.

use std::time::{Duration, Instant};

use sluice_tests::binary::stderr;
use sluice_tests::cluster::ClusterProcs;

use super::{chaos_query, committed_batches, World, PACING};

/// Resident set size of process `pid`, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Memory may end up this much above its warmed-up level (allocator slack, a larger state
/// between window closes) — far below what one retained copy of a batch's blocks per batch, or
/// of the state per move, would add over the run.
const SLACK_KB: u64 = 24 * 1024;
const SLACK_RATIO: f64 = 1.25;

/// Runs the soak on `world` (a few hundred input files); returns the report line.
pub fn run(world: &World) -> Result<String, String> {
    let started = Instant::now();
    // A processing-time trigger and the paced drivers keep the query running long enough for
    // the moves and the failover to land mid-stream; it must still run at the end.
    let dir = world.run_dir_with_trigger("soak", "processingTime=100 milliseconds");
    let mut cluster = ClusterProcs::start_with_driver_env(2, 3, &[PACING]);
    let out = cluster.sluice(&dir, &["submit", "job.sql"]);
    if !out.status.success() {
        return Err(format!("submit failed: {}", stderr(&out)));
    }
    let batches = world.batches;
    let (join_at, leave_at, failover_at) = (batches / 4, batches / 2, batches * 2 / 3);
    let warm = (batches / 6, batches / 3);
    // (committed batches, RSS in kB of executors 0, 1, 2)
    let mut samples: Vec<(usize, [u64; 3])> = Vec::new();
    let mut step = 0;
    let mut last_sample = 0;
    let mut last_status = Instant::now();
    loop {
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("the soak did not finish in 10 minutes\n{}", cluster.dump_logs()));
        }
        let done = committed_batches(&dir);
        if done >= last_sample + 5 {
            let rss = [0, 1, 2].map(|i| cluster.executor_pid(i).and_then(rss_kb).unwrap_or(0));
            samples.push((done, rss));
            last_sample = done;
        }
        match step {
            0 if done >= join_at => {
                cluster.start_executor(3);
                step += 1;
            }
            1 if done >= leave_at => {
                cluster.kill_executor(3);
                step += 1;
            }
            2 if done >= failover_at => {
                cluster.kill_driver(0);
                cluster.start_driver(0);
                step += 1;
            }
            _ => {}
        }
        if done * 4 >= batches * 3
            && world.expectation(&dir, &cluster.progress_reports()).ok().flatten().is_some_and(|e| done >= e.batches)
        {
            break;
        }
        if last_status.elapsed() > Duration::from_secs(1) {
            if let Some(q) = chaos_query(&cluster) {
                if q["state"] == "failed" {
                    return Err(format!("the query failed: {}\n{}", q["error"], cluster.dump_logs()));
                }
            }
            last_status = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if step < 3 {
        return Err(format!("the soak ended before its partition moves and failover (step {step})"));
    }
    match chaos_query(&cluster) {
        Some(q) if q["state"] == "active" => {}
        other => return Err(format!("the query is not running at the end of the soak: {other:?}")),
    }
    if let Err(e) = world.check(&dir, &cluster, "the soak") {
        // Which batches read what, and where the watermark went, locate the loss.
        let batches: Vec<String> = cluster
            .progress_reports()
            .iter()
            .map(|p| {
                format!("{}:{}:{}:{}", p["batchId"], p["numInputRows"], p["eventTime"]["watermark"], p["sink"]["numOutputRows"])
            })
            .collect();
        return Err(format!("{e}\nbatches (id:input rows:watermark:output rows): {}", batches.join(" ")));
    }
    let mut lines = Vec::new();
    for e in 0..3 {
        let warmed: Vec<u64> = samples.iter().filter(|(b, _)| (warm.0..=warm.1).contains(b)).map(|(_, r)| r[e]).collect();
        let end: Vec<u64> = samples.iter().rev().take(3).map(|(_, r)| r[e]).collect();
        let (Some(&base), Some(&last)) = (warmed.iter().max(), end.iter().min()) else {
            return Err(format!("too few memory samples: {samples:?}"));
        };
        let peak = samples.iter().map(|(_, r)| r[e]).max().unwrap_or(0);
        lines.push(format!("executor-{e} RSS warmed up {} MB, end {} MB, peak {} MB", base / 1024, last / 1024, peak / 1024));
        if last as f64 > base as f64 * SLACK_RATIO + SLACK_KB as f64 {
            return Err(format!(
                "executor-{e}'s memory grew from {} MB (warmed up) to {} MB over the soak; samples (batches, kB): {samples:?}",
                base / 1024,
                last / 1024
            ));
        }
    }
    Ok(format!(
        "{} batches in {:.0} s with a partition move in, one out and a failover: output exact; {}",
        committed_batches(&dir),
        started.elapsed().as_secs_f64(),
        lines.join("; ")
    ))
}
