//! The next batch's map stage, run ahead of it.
//!
//! A stateful batch is a map stage (read the input splits, partially aggregate, shuffle) and
//! then the operators' reduce stages. The map stage reads no state and writes nothing durable:
//! its output is a function of the batch's offsets and timestamp alone. So once batch N has
//! started, the driver may fix batch N+1's offsets and timestamp and run N+1's map stage while
//! N's reduce stages run. Executors run map tasks from a slot pool of their own, beside the
//! reduce tasks, and the cores a batch leaves idle — one map task finishing before the other,
//! the gaps between stages, the commit — read the next batch's input instead.
//!
//! Nothing of N+1 is written until N commits. Then `offsets/N+1` records exactly the offsets and
//! timestamp its map stage ran with, and the batch takes that stage's results as its first
//! attempt's map stage. A restart in between finds no trace of N+1 and plans it afresh, as a run
//! without map-ahead would. When the stage run ahead failed, the batch runs its map stage itself,
//! under a new attempt number, so that no block of the abandoned stage is ever read.
//!
//! Only sources whose offsets are arithmetic on where the last batch ended plan ahead
//! (`Source::plans_ahead`): asking them early changes nothing they record or report.
//!
//! [`runs_ahead`] is the pure decision; [`AheadBatch`] is the stage in flight.

use std::future::Future;

use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchId;
use sluice_connectors::source::PlannedSplit;

use super::scheduler::TaskResult;
use super::trigger::Trigger;

/// Whether a query's batches run the next batch's map stage ahead.
///
/// Only under triggers that start a batch as soon as the last one ends: a processing-time
/// trigger with an interval waits for its next tick, and fixing the next batch's timestamp
/// (Spark's trigger time) early would move it. Only for stateful queries: a stateless query is
/// one stage, which writes the sink.
pub fn runs_ahead(enabled: bool, trigger: Trigger, stateful: bool, sources_plan_ahead: bool) -> bool {
    let back_to_back =
        matches!(trigger, Trigger::ProcessingTime(interval) if interval.is_zero()) || matches!(trigger, Trigger::AvailableNow);
    enabled && stateful && sources_plan_ahead && back_to_back
}

/// The next batch, as fixed when its map stage started.
#[derive(Debug, Clone)]
pub struct AheadPlan {
    /// Its id: one past the batch that was running.
    pub id: BatchId,
    /// Where it starts: the running batch's end offsets.
    pub start: Vec<Option<String>>,
    /// Its end offsets, as the sources answered.
    pub end: Vec<Option<String>>,
    /// Its batch timestamp (`current_timestamp()`), which its map tasks computed with.
    pub timestamp_ms: i64,
    /// The splits its map tasks read (source index, split).
    pub splits: Vec<(usize, PlannedSplit)>,
}

/// A next batch whose map stage is running, or has run, on the executors. Dropping it cancels
/// the stage (the query stopped, or failed): its tasks' calls are dropped, which executors take
/// as cancellation.
#[derive(Debug)]
pub struct AheadBatch {
    /// What the stage runs.
    pub plan: AheadPlan,
    stage: Option<tokio::task::JoinHandle<Result<Vec<TaskResult>>>>,
}

impl AheadBatch {
    /// Starts `stage`, the map stage of `plan`, in the background.
    pub fn start(plan: AheadPlan, stage: impl Future<Output = Result<Vec<TaskResult>>> + Send + 'static) -> Self {
        Self { plan, stage: Some(tokio::spawn(stage)) }
    }

    /// Waits for the stage: its tasks' results, or why it failed.
    pub async fn results(mut self) -> Result<Vec<TaskResult>> {
        let stage = self.stage.take().ok_or_else(|| SluiceError::internal("map stage run ahead was already taken"))?;
        match stage.await {
            Ok(results) => results,
            Err(e) => Err(SluiceError::internal(format!("map stage run ahead did not finish: {e}"))),
        }
    }
}

impl Drop for AheadBatch {
    fn drop(&mut self) {
        if let Some(stage) = &self.stage {
            stage.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_back_to_back_stateful_queries_over_sources_that_plan_ahead_run_ahead() {
        let default = Trigger::ProcessingTime(Duration::ZERO);
        assert!(runs_ahead(true, default, true, true));
        assert!(runs_ahead(true, Trigger::AvailableNow, true, true));
        assert!(!runs_ahead(false, default, true, true), "switched off");
        assert!(!runs_ahead(true, Trigger::ProcessingTime(Duration::from_secs(1)), true, true), "waits for its tick");
        assert!(!runs_ahead(true, Trigger::Once, true, true), "one batch: nothing to run ahead of");
        assert!(!runs_ahead(true, default, false, true), "stateless: one stage, which writes the sink");
        assert!(!runs_ahead(true, default, true, false), "a source that records or reports what it is asked");
    }

    #[tokio::test]
    async fn dropping_a_batch_cancels_its_stage() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let plan = AheadPlan { id: BatchId(1), start: vec![], end: vec![], timestamp_ms: 0, splits: vec![] };
        let ahead = AheadBatch::start(plan, async move {
            // Holds `tx` until cancelled: the receiver hears the drop.
            let _tx = tx;
            std::future::pending::<()>().await;
            Ok(Vec::new())
        });
        drop(ahead);
        let heard = tokio::time::timeout(Duration::from_secs(5), rx).await;
        assert!(matches!(heard, Ok(Err(_))), "the stage's future was dropped: {heard:?}");
    }
}
