//! The marathon: every fault at once, many times, against one query.
//!
//! Two drivers, three executors and etcd, each on its own node of a private network, with the
//! object store failing in every process (errors, lost responses, latency, torn writes). While
//! the stateful, exactly-once query runs, the marathon keeps disturbing it, one disruption at a
//! time, each followed by the wait for the next committed batch (the recovery time):
//!
//! * an executor SIGKILLed (restarted at once or after the recovery);
//! * the leading driver SIGKILLed and restarted (its standby takes over);
//! * the leading driver paused past its lease (SIGSTOP), then resumed: it must step down;
//! * a node cut off the network for a few seconds, then reconnected: an executor, the leading
//!   driver, or etcd itself.
//!
//! It stops disturbing once every target count is reached, waits until the query has committed
//! all its input, and compares the committed output with the batch recomputation: no row lost,
//! none duplicated. The query runs on a processing-time trigger, so it must still be running at
//! the end — nothing may have failed it for good.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sluice_tests::binary::stderr;
use sluice_tests::cluster::{ClusterProcs, Node};

use super::model::Lcg;
use super::{chaos_query, committed_batches, injected_faults, time_to_next_commit, World, PACING};

/// How many of each disruption a run must have made.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    /// Executors SIGKILLed.
    pub executor_kills: usize,
    /// Drivers SIGKILLed.
    pub driver_kills: usize,
    /// Leadership moved from one driver to the other.
    pub failovers: usize,
    /// Nodes cut off the network.
    pub partitions: usize,
    /// Object store faults injected, of each kind.
    pub faults_each: usize,
}

impl Targets {
    /// The suite's short run.
    pub const SHORT: Targets = Targets { executor_kills: 4, driver_kills: 1, failovers: 2, partitions: 3, faults_each: 1 };
    /// The long run the README documents (`CHAOS_LONG=1`).
    pub const LONG: Targets = Targets { executor_kills: 50, driver_kills: 10, failovers: 5, partitions: 10, faults_each: 100 };
}

/// Object store fault rate of the marathon's processes.
const FAULT_RATE: &str = "0.06";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Disruption {
    ExecutorKill,
    DriverKill,
    LeaderPause,
    Partition,
}

impl Disruption {
    fn name(self) -> &'static str {
        match self {
            Disruption::ExecutorKill => "executor SIGKILL",
            Disruption::DriverKill => "leader SIGKILL",
            Disruption::LeaderPause => "leader SIGSTOP past its lease",
            Disruption::Partition => "network partition",
        }
    }
}

/// What the run did and saw.
#[derive(Default)]
struct Tally {
    executor_kills: usize,
    driver_kills: usize,
    pauses: usize,
    failovers: usize,
    /// Partitions per node kind ("executor", "leader", "etcd").
    partitions: BTreeMap<&'static str, usize>,
    /// Disruption → next committed batch, ms, per disruption.
    recoveries: BTreeMap<Disruption, Vec<u128>>,
}

impl Tally {
    fn partitions(&self) -> usize {
        self.partitions.values().sum()
    }

    /// The disruption still most needed, chosen at random weighted by what is missing.
    fn next(&self, t: &Targets, rng: &mut Lcg) -> Option<Disruption> {
        let missing = [
            (Disruption::ExecutorKill, t.executor_kills.saturating_sub(self.executor_kills)),
            (Disruption::DriverKill, t.driver_kills.saturating_sub(self.driver_kills)),
            // Kills of the leader fail over too; pauses make up the rest.
            (Disruption::LeaderPause, t.failovers.saturating_sub(self.failovers)),
            (Disruption::Partition, t.partitions.saturating_sub(self.partitions())),
        ];
        let total: usize = missing.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return None;
        }
        let mut pick = rng.below(total as u64) as usize;
        for (d, n) in missing {
            if pick < n {
                return Some(d);
            }
            pick -= n;
        }
        None
    }

    fn done(&self, t: &Targets) -> bool {
        self.executor_kills >= t.executor_kills
            && self.driver_kills >= t.driver_kills
            && self.failovers >= t.failovers
            && self.partitions() >= t.partitions
    }

    fn summary(&self) -> String {
        let parts: Vec<String> = self.partitions.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!(
            "{} executor SIGKILLs, {} driver SIGKILLs, {} leader pauses, {} leader failovers, {} partitions ({})",
            self.executor_kills,
            self.driver_kills,
            self.pauses,
            self.failovers,
            self.partitions(),
            parts.join(", ")
        )
    }
}

/// p50/p90/p99/max of recovery times.
fn percentiles(v: &[u128]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    format!("n={} p50 {} ms, p90 {} ms, p99 {} ms, max {} ms", s.len(), at(0.5), at(0.9), at(0.99), s[s.len() - 1])
}

/// Waits (up to a minute) for a batch to commit beyond `before` after disruption `what`; the
/// time since `since`. A query that does not recover fails the run with every process's last
/// log lines, so the stall can be told apart after the fact.
fn next_commit(dir: &Path, before: usize, since: Instant, what: Disruption, cluster: &ClusterProcs) -> Result<u128, String> {
    time_to_next_commit(dir, before, since).ok_or_else(|| {
        format!("no batch committed within 60 s of a disruption ({what:?}; committed: {before})\n{}", cluster.dump_logs())
    })
}

/// Runs the marathon on `world`'s input until `targets` are met and the query finished.
pub fn run(world: &World, targets: Targets) -> Result<String, String> {
    let started = Instant::now();
    let dir = world.run_dir_with_trigger("marathon", "processingTime=100 milliseconds");
    let log = dir.join("faults.log");
    let plan = format!("seed={},rate={FAULT_RATE},latency-ms=40", world.seed);
    let env = [("SLUICE_STORE_FAULTS", plan.as_str()), ("SLUICE_STORE_FAULTS_LOG", log.to_str().unwrap_or_default())];
    let mut cluster = ClusterProcs::start_partitionable(2, 3, &[PACING], &env)?;
    let out = cluster.sluice(&dir, &["submit", "job.sql"]);
    if !out.status.success() {
        return Err(format!("submit failed: {}", stderr(&out)));
    }
    let mut rng = Lcg(world.seed ^ 0x6d61_7261);
    let mut tally = Tally::default();
    let mut leader = 0usize;
    let mut retried = 0u64;
    // Leave the query a few batches between disruptions, and the last ones undisturbed.
    let spare = 3;
    loop {
        if let Some(q) = &chaos_query(&cluster) {
            retried = retried.max(q["batchesRetried"].as_u64().unwrap_or(0));
            match q["state"].as_str() {
                Some("active" | "initializing") => {}
                _ => return Err(format!("the query is {}: {}\n{}", q["state"], q["error"], cluster.dump_logs())),
            }
        }
        // Done once every batch up to the no-data batch after the last file committed (a batch
        // may have read two files: see `grouping`). Once a batch has taken the last file, no
        // batch is left to recover with: the disruptions stop.
        let done = committed_batches(&dir);
        let mut last_file_taken = false;
        if done * 4 >= world.batches * 3 {
            if let Some(expected) = world.expectation(&dir, &cluster.progress_reports()).ok().flatten() {
                if done >= expected.batches {
                    break;
                }
                last_file_taken = true;
            }
        }
        if started.elapsed() > Duration::from_secs(3600) {
            return Err(format!("the marathon did not finish within an hour ({})", tally.summary()));
        }
        let Some(next) = tally.next(&targets, &mut rng) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if done == 0 || last_file_taken || done + spare >= world.batches {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let at = Instant::now();
        let recovery = match next {
            Disruption::ExecutorKill => {
                let running = cluster.running_executors();
                let victim = running[rng.below(running.len() as u64) as usize];
                cluster.kill_executor(victim);
                tally.executor_kills += 1;
                let restart_now = rng.below(2) == 0 || cluster.running_executors().len() < 2;
                if restart_now {
                    cluster.start_executor(victim);
                }
                let r = next_commit(&dir, done, at, next, &cluster);
                if !restart_now {
                    cluster.start_executor(victim);
                }
                r?
            }
            Disruption::DriverKill => {
                cluster.kill_driver(leader);
                tally.driver_kills += 1;
                cluster.start_driver(leader);
                next_commit(&dir, done, at, next, &cluster)?
            }
            Disruption::LeaderPause => {
                cluster.signal_driver(leader, Signal::SIGSTOP);
                tally.pauses += 1;
                let r = next_commit(&dir, done, at, next, &cluster);
                cluster.signal_driver(leader, Signal::SIGCONT);
                r?
            }
            Disruption::Partition => {
                let (node, kind) = match rng.below(10) {
                    0..=4 => (Node::Executor(rng.below(3) as usize), "executor"),
                    5..=7 => (Node::Driver(leader), "leader"),
                    _ => (Node::Etcd, "etcd"),
                };
                cluster.cut(node);
                *tally.partitions.entry(kind).or_default() += 1;
                let hold = Duration::from_millis(2500 + rng.below(1500));
                // Batches may commit during the cut (an executor's): the first one is the recovery.
                let mut first = None;
                while at.elapsed() < hold {
                    if first.is_none() && committed_batches(&dir) > done {
                        first = Some(at.elapsed().as_millis());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                cluster.heal(node);
                match first {
                    Some(ms) => ms,
                    None => next_commit(&dir, done, at, next, &cluster)?,
                }
            }
        };
        tally.recoveries.entry(next).or_default().push(recovery);
        // Whoever wrote the latest progress report leads now (it follows the commit closely).
        std::thread::sleep(Duration::from_millis(50));
        if let Some(now) = cluster.latest_progress_writer() {
            if now != leader {
                tally.failovers += 1;
                leader = now;
            }
        }
        // A few undisturbed batches before the next disruption.
        let after = committed_batches(&dir);
        let _ = time_to_next_commit(&dir, after + rng.below(2) as usize, Instant::now());
    }
    if !tally.done(&targets) {
        return Err(format!(
            "the input ran out before the targets were met ({}); give the marathon more input (CHAOS_FILES)",
            tally.summary()
        ));
    }
    // Nothing is left to commit; let a few idle triggers pass, then the query must still run.
    std::thread::sleep(Duration::from_millis(500));
    let expected = world.check(&dir, &cluster, "the marathon")?;
    match chaos_query(&cluster) {
        Some(q) if q["state"] == "active" => {}
        other => return Err(format!("the query is not running at the end: {other:?}")),
    }
    if committed_batches(&dir) != expected.batches {
        return Err(format!("{} batches committed where the input makes {}", committed_batches(&dir), expected.batches));
    }
    let mut faults = Vec::new();
    for (kind, n) in injected_faults(&log) {
        if n < targets.faults_each {
            return Err(format!("only {n} '{kind}' store faults were injected (target {})", targets.faults_each));
        }
        faults.push(format!("{n} {kind}"));
    }
    let mut lines = vec![
        format!(
            "{} in {:.0} s over {} committed batches ({} of them read more than one input file): rows lost 0, rows duplicated 0 ({} output rows equal the recomputation), {} batch attempts retried, query still running",
            tally.summary(),
            started.elapsed().as_secs_f64(),
            committed_batches(&dir),
            expected.merged,
            expected.rows.len(),
            retried
        ),
        format!("store faults injected: {}", faults.join(", ")),
    ];
    let mut all = Vec::new();
    for (d, v) in &tally.recoveries {
        lines.push(format!("recovery after {}: {}", d.name(), percentiles(v)));
        all.extend(v);
    }
    lines.push(format!("recovery, every disruption: {}", percentiles(&all)));
    Ok(lines.join("\n  "))
}
