//! How long a task may run before the driver stops waiting for it.
//!
//! An executor that is SIGSTOPped, stuck on a disk, or cut off behind a half-open connection
//! answers nothing and refuses nothing: without a deadline its task holds the batch until TCP
//! keepalive or the executor's lease gives up, many seconds later. Each stage of a query gets a
//! deadline from the durations of its recent tasks — a task taking [`FACTOR`] times longer than
//! the slowest of them, and at least [`FLOOR`], is given up on and the batch attempt retried; its
//! executor is set aside for the retry when it does not answer a ping either (a paused or cut-off
//! process), and kept when it does (its task was only slow, or waiting on a peer that is not). A stage with no history yet (a query's first batch,
//! which also compiles the plan) has no deadline. Pure bookkeeping: the scheduler applies it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// A task may take this many times the slowest recent task of its stage.
pub const FACTOR: u32 = 4;
/// No deadline is shorter than this: short tasks vary a lot in relative terms.
pub const FLOOR: Duration = Duration::from_secs(1);
/// Durations remembered per stage.
const WINDOW: usize = 64;

/// Recent task durations of one query, per stage (0: the input stage; k: operator k's tasks).
#[derive(Debug, Default)]
pub struct TaskDeadlines {
    recent: BTreeMap<u32, VecDeque<Duration>>,
}

impl TaskDeadlines {
    /// The deadline of a task of `stage`, if the stage has run before.
    pub fn for_stage(&self, stage: u32) -> Option<Duration> {
        let slowest = self.recent.get(&stage)?.iter().max()?;
        Some((*slowest * FACTOR).max(FLOOR))
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
    fn no_history_means_no_deadline() {
        assert_eq!(TaskDeadlines::default().for_stage(0), None);
    }

    #[test]
    fn the_deadline_is_a_multiple_of_the_slowest_recent_task_with_a_floor() {
        let mut d = TaskDeadlines::default();
        d.record(0, [Duration::from_millis(20), Duration::from_millis(50)]);
        assert_eq!(d.for_stage(0), Some(FLOOR), "short tasks get the floor");
        d.record(1, [Duration::from_secs(2), Duration::from_millis(500)]);
        assert_eq!(d.for_stage(1), Some(Duration::from_secs(8)));
        assert_eq!(d.for_stage(2), None, "stages are tracked apart");
    }

    #[test]
    fn only_recent_tasks_count() {
        let mut d = TaskDeadlines::default();
        d.record(0, [Duration::from_secs(10)]);
        d.record(0, std::iter::repeat_n(Duration::from_millis(300), WINDOW));
        assert_eq!(d.for_stage(0), Some(Duration::from_millis(1200)));
    }
}
