//! How long the driver waits on a running task, and when it checks that the executor is alive.
//!
//! An executor that is SIGSTOPped, stuck on a disk, or cut off behind a half-open connection
//! answers nothing and refuses nothing: without a watch its task holds the batch until TCP
//! keepalive or the executor's lease gives up, many seconds later — where a killed executor
//! costs a fraction of a second, because its connections fail at once. Two signals close the gap:
//!
//! * **Liveness probes.** The driver pings a task's executor when it sends the task, and again
//!   while the task runs, every [`PROBE_FACTOR`] times the slowest recent task of its stage (at
//!   least [`PROBE_FLOOR`]; [`PROBE_NO_HISTORY`] before the stage has run). An executor that
//!   does not answer a ping is given up on at once: the batch attempt is retried without it.
//!   This is what makes a paused executor cost about as much as a dead one.
//! * **A deadline.** A task taking [`FACTOR`] times longer than the slowest recent task of its
//!   stage, at least [`FLOOR`], is given up on even though its executor answers pings (it is
//!   stuck on something else: a disk, a peer). A stage with no history yet (a query's first
//!   batch, which also compiles the plan) has no deadline, only probes.
//!
//! Waiting for an attempt's state writes ([`STATE_WRITES`]) is watched the same way, against
//! how long recent writes took, but with a storage floor ([`STORAGE_FLOOR`]): a write waits on
//! a disk or an object store, whose latency tails reach seconds (an fsync queued behind the
//! page cache's writeback, a throttled PUT retried with backoff) without anything being wrong.
//! Giving up does not make the storage faster, and the retry repeats the whole batch; with
//! the task floor, one fsync stalled for a second behind other writes on the host cost a
//! 2.8-second batch of Nexmark q5 in place of a 0.7-second one.
//!
//! Pure bookkeeping: the scheduler applies it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// A task may take this many times the slowest recent task of its stage.
pub const FACTOR: u32 = 4;
/// No deadline is shorter than this: short tasks vary a lot in relative terms.
pub const FLOOR: Duration = Duration::from_secs(1);
/// A task running this many times longer than the slowest recent task of its stage gets its
/// executor pinged.
pub const PROBE_FACTOR: u32 = 2;
/// No wait for state writes is given up on sooner than this (see the module docs): long enough
/// for storage that is slow for a moment, short against a write that hangs.
pub const STORAGE_FLOOR: Duration = Duration::from_secs(10);
/// The history of an attempt's state writes, kept apart from every stage's: the durations of
/// the writes the executors report, watched with [`STORAGE_FLOOR`].
pub const STATE_WRITES: u32 = u32::MAX;
/// Probes are never more frequent than this: a ping costs little, but not nothing.
pub const PROBE_FLOOR: Duration = Duration::from_millis(100);
/// Probe interval of a stage that has not run yet.
pub const PROBE_NO_HISTORY: Duration = Duration::from_secs(1);
/// Durations remembered per stage.
const WINDOW: usize = 64;

/// How the scheduler watches one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskWatch {
    /// Ping the executor again at this interval while the task runs (the first ping goes out with the task).
    pub probe_every: Duration,
    /// Give up on the task after this long even if its executor answers.
    pub deadline: Option<Duration>,
}

/// Recent task durations of one query, per stage (0: the input stage; k: operator k's tasks).
#[derive(Debug, Default)]
pub struct TaskDeadlines {
    recent: BTreeMap<u32, VecDeque<Duration>>,
    /// The longest a read of the query's sources may wait on them before failing on its own
    /// (Kafka's `kafkaConsumer.pollTimeoutMs`): no input task's deadline is shorter, so the
    /// source's own error (data loss, a timeout naming the broker) is what ends such a read.
    input_wait: Duration,
}

impl TaskDeadlines {
    /// Deadlines for a query whose source reads may wait up to `input_wait`.
    pub fn with_input_wait(input_wait: Duration) -> Self {
        Self { input_wait, ..Self::default() }
    }

    /// How to watch a task of `stage`.
    pub fn watch(&self, stage: u32) -> TaskWatch {
        match self.recent.get(&stage).and_then(|r| r.iter().max()) {
            Some(slowest) => {
                let floor = match stage {
                    0 => FLOOR.max(self.input_wait),
                    STATE_WRITES => STORAGE_FLOOR,
                    _ => FLOOR,
                };
                TaskWatch {
                    probe_every: (*slowest * PROBE_FACTOR).max(PROBE_FLOOR),
                    deadline: Some((*slowest * FACTOR).max(floor)),
                }
            }
            None => TaskWatch { probe_every: PROBE_NO_HISTORY, deadline: None },
        }
    }

    /// Remembers how long the tasks of one stage took.
    pub fn record(&mut self, stage: u32, durations: impl IntoIterator<Item = Duration>) {
        let recent = self.recent.entry(stage).or_default();
        for d in durations {
            if recent.len() == WINDOW {
                recent.pop_front();
            }
            recent.push_back(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_history_means_probes_but_no_deadline() {
        assert_eq!(TaskDeadlines::default().watch(0), TaskWatch { probe_every: PROBE_NO_HISTORY, deadline: None });
    }

    #[test]
    fn probes_and_deadline_are_multiples_of_the_slowest_recent_task_with_floors() {
        let mut d = TaskDeadlines::default();
        d.record(0, [Duration::from_millis(20), Duration::from_millis(50)]);
        assert_eq!(d.watch(0), TaskWatch { probe_every: PROBE_FLOOR, deadline: Some(FLOOR) }, "short tasks get the floors");
        d.record(1, [Duration::from_secs(2), Duration::from_millis(500)]);
        assert_eq!(d.watch(1), TaskWatch { probe_every: Duration::from_secs(4), deadline: Some(Duration::from_secs(8)) });
        assert_eq!(d.watch(2).deadline, None, "stages are tracked apart");
    }

    #[test]
    fn input_tasks_may_wait_as_long_as_their_source_does() {
        let mut d = TaskDeadlines::with_input_wait(Duration::from_secs(10));
        d.record(0, [Duration::from_millis(250)]);
        d.record(1, [Duration::from_millis(250)]);
        assert_eq!(d.watch(0).deadline, Some(Duration::from_secs(10)));
        assert_eq!(d.watch(0).probe_every, Duration::from_millis(500), "probes still find a paused executor");
        assert_eq!(d.watch(1).deadline, Some(FLOOR), "operator stages do not wait on the source");
    }

    #[test]
    fn state_writes_wait_at_least_the_storage_floor() {
        let mut d = TaskDeadlines::default();
        d.record(STATE_WRITES, [Duration::from_millis(60), Duration::from_millis(70)]);
        d.record(1, [Duration::from_millis(70)]);
        assert_eq!(d.watch(STATE_WRITES), TaskWatch { probe_every: Duration::from_millis(140), deadline: Some(STORAGE_FLOOR) });
        assert_eq!(d.watch(1).deadline, Some(FLOOR), "tasks keep the task floor");
        d.record(STATE_WRITES, [Duration::from_secs(4)]);
        assert_eq!(d.watch(STATE_WRITES).deadline, Some(Duration::from_secs(16)), "slow storage stretches it");
    }

    #[test]
    fn only_recent_tasks_count() {
        let mut d = TaskDeadlines::default();
        d.record(0, [Duration::from_secs(10)]);
        d.record(0, std::iter::repeat_n(Duration::from_millis(300), WINDOW));
        assert_eq!(
            d.watch(0),
            TaskWatch { probe_every: Duration::from_millis(600), deadline: Some(Duration::from_millis(1200)) }
        );
    }
}
