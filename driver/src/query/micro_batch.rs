//! The micro-batch loop of one query: Spark's `MicroBatchExecution` (docs/semantics.md §2).
//!
//! Per trigger: ask sources how far data goes, write `offsets/N` *before* anything runs, plan and
//! run the batch's tasks, commit the sink (idempotent by batch id), then write `commits/N` with
//! the next watermark. A restart resumes exactly as docs/semantics.md §1 "Restart" says — a batch in the WAL
//! but not committed re-runs with its recorded offsets, watermark and timestamp.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state_manifests::{write_manifests, BundleRetention};
use crate::checkpoint::{Checkpoint, CommitMetadata, OffsetSeq, OffsetSeqMetadata, QueryShape, StartDecision};
use crate::progress::StateOperatorProgress;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use sluice_common::error::{ErrorKind, Result, SluiceError};
use sluice_common::redact::Redactor;
use sluice_common::time::now_ms;
use sluice_common::{BatchContext, BatchId, BatchWatermarks};
use sluice_connectors::source::{AvailableNowSupport, PlannedSplit, ReadLimit, Source, SourceCheckpoint};
use sluice_connectors::{SinkCommitter, TaskSinkResult};
use sluice_plan::{EventTimeStats, QuerySpec};

use super::events::{Listeners, QueryEvent};
use super::fence::Fence;
use super::handle::{QueryShared, QueryState};
use super::map_ahead::{runs_ahead, AheadBatch, AheadPlan};
use super::progress::{build_progress, BatchFacts, PhaseTimer, SourceBatchFacts};
use super::resolve::OperatorInfo;
use super::scheduler::{QueryRun, TaskResult, TaskScheduler};
use super::stages::StageRunner;
use super::trigger::{next_batch_time, Trigger};
use super::watermark::WatermarkTracker;

/// Spark's `pollingDelay`: how long an idle default trigger waits before asking again.
const POLLING_DELAY: Duration = Duration::from_millis(10);
/// Attempts of one batch before the query fails (each with the same offsets and timestamp).
const MAX_BATCH_ATTEMPTS: u32 = 6;
/// Backoff before the second attempt; doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// A batch whose offsets are in the WAL.
#[derive(Debug, Clone)]
struct PlannedBatch {
    id: BatchId,
    start: Vec<Option<String>>,
    end: Vec<Option<String>>,
    /// What `latestOffset` answered (for progress); equal to `end` for recovered batches.
    latest: Vec<Option<String>>,
    metadata: OffsetSeqMetadata,
}

/// Everything one query's loop owns.
pub struct MicroBatchExecution {
    pub(crate) spec: Arc<QuerySpec>,
    pub(crate) run: QueryRun,
    pub(crate) checkpoint: Checkpoint,
    /// Delete the checkpoint when the query ends (temporary checkpoints only).
    pub(crate) delete_checkpoint_on_exit: bool,
    pub(crate) sources: Vec<Box<dyn Source>>,
    pub(crate) sink: Box<dyn SinkCommitter>,
    pub(crate) schema: SchemaRef,
    pub(crate) trigger: Trigger,
    pub(crate) stages: StageRunner,
    pub(crate) scheduler: TaskScheduler,
    pub(crate) shared: Arc<QueryShared>,
    pub(crate) listeners: Listeners,
    pub(crate) fence: Arc<dyn Fence>,
    /// The secrets of the spec's options: scrubbed from the query's error, its retry warnings and
    /// its progress descriptions.
    redactor: Redactor,
    // Loop state.
    watermark: WatermarkTracker,
    /// For each watermark node, the source index it watches.
    watermark_sources: Vec<usize>,
    batch_id: BatchId,
    committed: Vec<Option<String>>,
    /// Watermark of the previous batch (late-row filter of stateful operators).
    previous_batch_watermark_ms: i64,
    recovered: Option<PlannedBatch>,
    /// Set when this run takes over from a driver that died: the first committed batch reports
    /// the outage, measured from the previous run's last checkpoint write.
    pub(crate) took_over: bool,
    /// Since when the query has been down, until the first batch of this run commits.
    outage_since: Option<chrono::DateTime<chrono::Utc>>,
    last_trigger_start_ms: Option<i64>,
    /// When the last progress or idle event was posted: an idle query posts a `QueryIdleEvent`
    /// at most once per `noDataProgressEventInterval` after it (Spark's `finishTrigger`).
    last_event_at: Option<Instant>,
    /// Spark's status while a trigger asks the sources how far data goes (their descriptions
    /// do not change during a run).
    getting_offsets: String,
    /// Deletes state bundles no load needs any more, in the background.
    bundle_retention: BundleRetention,
    /// Whether the next batch's map stage runs ahead (see [`super::map_ahead`]).
    map_ahead: bool,
    /// The next batch, whose map stage is running ahead.
    ahead: Option<AheadBatch>,
}

impl MicroBatchExecution {
    /// Assembles a query loop; nothing is read or written until [`Self::run`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: Arc<QuerySpec>,
        checkpoint: Checkpoint,
        delete_checkpoint_on_exit: bool,
        sources: Vec<Box<dyn Source>>,
        sink: Box<dyn SinkCommitter>,
        schema: SchemaRef,
        trigger: Trigger,
        operators: Vec<OperatorInfo>,
        needs_gather: bool,
        scheduler: TaskScheduler,
        shared: Arc<QueryShared>,
        listeners: Listeners,
        fence: Arc<dyn Fence>,
    ) -> Result<Self> {
        let spec_json = Bytes::from(serde_json::to_vec(spec.as_ref())?);
        let run = QueryRun::new(spec.run_id.to_string(), spec_json, spec.fingerprint()?, fence.term());
        let watermark_sources: Vec<usize> =
            spec.sources.iter().filter(|s| s.watermark.is_some()).map(|s| s.source.index).collect();
        let delays = spec.sources.iter().filter_map(|s| s.watermark.as_ref().map(|w| w.delay_ms)).collect();
        let n = sources.len();
        let input_wait = sources.iter().map(|s| s.read_wait()).max().unwrap_or_default();
        let stages = StageRunner::new(operators, needs_gather, spec.conf.shuffle_partitions, input_wait);
        let redactor = spec.redactor();
        let descriptions: Vec<String> = sources.iter().map(|s| redactor.scrub(&s.description()).into_owned()).collect();
        let getting_offsets = format!("Getting offsets from {}", descriptions.join(", "));
        let bundle_retention = BundleRetention::new(Duration::from_millis(spec.conf.maintenance_interval_ms));
        let map_ahead =
            runs_ahead(spec.conf.map_ahead, trigger, !stages.operators.is_empty(), sources.iter().all(|s| s.plans_ahead()));
        Ok(Self {
            stages,
            watermark: WatermarkTracker::new(spec.conf.watermark_policy, delays),
            watermark_sources,
            spec,
            run,
            checkpoint,
            delete_checkpoint_on_exit,
            sources,
            sink,
            schema,
            trigger,
            scheduler,
            shared,
            listeners,
            fence,
            redactor,
            batch_id: BatchId::FIRST,
            committed: vec![None; n],
            previous_batch_watermark_ms: 0,
            recovered: None,
            took_over: false,
            outage_since: None,
            last_trigger_start_ms: None,
            last_event_at: None,
            getting_offsets,
            bundle_retention,
            map_ahead,
            ahead: None,
        })
    }

    /// Runs the query until its trigger ends it, it is stopped, or it fails; the outcome is also
    /// published on the query's handle.
    pub async fn run(mut self) -> Result<()> {
        let result = self.run_inner().await;
        // A next batch running ahead is cancelled before the run's blocks are released.
        self.ahead = None;
        for s in &mut self.sources {
            s.stop().await;
        }
        // The run is over, whatever ended it: executors drop its plan, blocks and state.
        self.scheduler.release(&self.run.run_id, None, &[]).await;
        if self.delete_checkpoint_on_exit {
            let _ = tokio::fs::remove_dir_all(self.checkpoint.location.url.path()).await;
        }
        // What ends the query is shown to people (`sluice run`, `sluice queries`, logs); a
        // connector's message may quote an option's value.
        let result = result.map_err(|e| self.redactor.scrub_error(e));
        let error = result.as_ref().err().cloned();
        if let Some(e) = &error {
            // Reported to whoever holds the query handle (the CLI prints it as one line).
            tracing::debug!(query = %self.shared.id, error = %e, "query terminated with an error");
        }
        let message = match &error {
            Some(e) => format!("Terminated with exception: {}", e.one_line()),
            None => "Stopped".to_string(),
        };
        self.shared.set_status(message, None, Some(false));
        // Listeners hear of the end before `awaitTermination` returns, as in Spark.
        self.listeners.post(&QueryEvent::Terminated {
            id: self.shared.id,
            run_id: self.shared.run_id,
            exception: error.as_ref().map(|e| e.one_line()),
            error_class_on_exception: None,
        });
        self.shared.state.send_replace(QueryState::Terminated(error));
        result
    }

    fn stop_requested(&self) -> bool {
        *self.shared.stop.borrow()
    }

    async fn run_inner(&mut self) -> Result<()> {
        self.start().await?;
        self.shared.state.send_replace(QueryState::Active);
        match self.trigger {
            Trigger::ProcessingTime(interval) => {
                let interval_ms = interval.as_millis() as i64;
                while !self.stop_requested() {
                    let t0 = now_ms();
                    let ran = self.execute_one_batch(ReadLimit::Default).await?;
                    let wait = if interval_ms == 0 {
                        if ran {
                            Duration::ZERO
                        } else {
                            POLLING_DELAY
                        }
                    } else {
                        let next = next_batch_time(t0, interval_ms);
                        let now = now_ms();
                        if now - t0 > interval_ms {
                            tracing::warn!(
                                query = %self.shared.id,
                                "Current batch is falling behind. The trigger interval is {interval_ms} milliseconds, but spent {} milliseconds",
                                now - t0
                            );
                        }
                        Duration::from_millis((next - now).max(0) as u64)
                    };
                    if !wait.is_zero() {
                        let mut stop = self.shared.stop.subscribe();
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.wait_for(|s| *s) => {}
                        }
                    }
                }
            }
            Trigger::Once => {
                self.execute_one_batch(ReadLimit::AllAvailable).await?;
            }
            Trigger::AvailableNow => {
                let mut limit = ReadLimit::Default;
                for s in &mut self.sources {
                    if s.prepare_for_available_now().await? == AvailableNowSupport::Unsupported {
                        tracing::warn!(source = %self.redactor.scrub(&s.description()), "source does not support Trigger.AvailableNow; falling back to Trigger.Once semantics");
                        limit = ReadLimit::AllAvailable;
                    }
                }
                while !self.stop_requested() && self.execute_one_batch(limit).await? {}
            }
        }
        Ok(())
    }

    /// Reads the checkpoint and decides where to resume.
    async fn start(&mut self) -> Result<()> {
        if tracing::enabled!(tracing::Level::DEBUG) {
            // Options print redacted (`Options`' Debug is Spark's redaction).
            let sources: Vec<String> = self
                .spec
                .sources
                .iter()
                .map(|s| format!("{} ({}) {:?}", s.source.name, s.source.connector, s.source.options))
                .collect();
            let sink = &self.spec.sink;
            tracing::debug!(
                query = %self.shared.id,
                sources = ?sources,
                sink = %format!("{} ({}) {:?}", sink.name, sink.connector, sink.options),
                "query options"
            );
        }
        let shape = QueryShape {
            sources: self.sources.iter().map(|s| s.identity()).collect(),
            stateful_operators: self.stages.operators.iter().map(|o| o.shape.clone()).collect(),
        };
        self.checkpoint.check_shape(&shape).await?;
        let decision = self.checkpoint.start_decision().await?;
        let n = self.sources.len();
        let check_len = |seq: &OffsetSeq, id: BatchId| -> Result<()> {
            if seq.offsets.len() != n {
                return Err(SluiceError::user(format!(
                    "There are [{}] sources in the checkpoint offsets and now there are [{n}] sources requested by the query. Cannot continue. (offsets/{id} in {})",
                    seq.offsets.len(),
                    self.checkpoint.describe()
                )));
            }
            Ok(())
        };
        // A run that takes over from a dead driver, or finds a batch its predecessor never
        // committed, is recovering: how long the query was down is part of its recovery time.
        if self.took_over || matches!(decision, StartDecision::Rerun { .. }) {
            self.outage_since = self.checkpoint.last_write_time().await?;
        }
        match decision {
            StartDecision::Fresh => {
                tracing::info!(query = %self.shared.id, "starting new streaming query");
            }
            StartDecision::Next { batch_id, start_offsets, watermark_ms } => {
                check_len(&start_offsets, batch_id.previous().unwrap_or(batch_id))?;
                tracing::info!(query = %self.shared.id, batch_id = batch_id.0, "resuming at batch {batch_id}");
                self.batch_id = batch_id;
                self.previous_batch_watermark_ms = start_offsets.metadata.batch_watermark_ms;
                self.committed = start_offsets.offsets;
                self.watermark.set(watermark_ms);
            }
            StartDecision::Rerun { batch_id, start_offsets, end_offsets, commit_log_lagging } => {
                check_len(&end_offsets, batch_id)?;
                if commit_log_lagging {
                    tracing::warn!(query = %self.shared.id, batch_id = batch_id.0, "the commit log lags the offsets log by more than one batch; re-running the last batch");
                }
                tracing::info!(query = %self.shared.id, batch_id = batch_id.0, "re-running batch {batch_id} with its recorded offsets");
                let start = match start_offsets {
                    Some(s) => {
                        self.previous_batch_watermark_ms = s.metadata.batch_watermark_ms;
                        s.offsets
                    }
                    None => vec![None; n],
                };
                self.batch_id = batch_id;
                self.committed = start.clone();
                self.watermark.set(end_offsets.metadata.batch_watermark_ms);
                self.recovered = Some(PlannedBatch {
                    id: batch_id,
                    start,
                    latest: end_offsets.offsets.clone(),
                    end: end_offsets.offsets,
                    metadata: end_offsets.metadata,
                });
            }
        }
        for (i, source) in self.sources.iter_mut().enumerate() {
            let dir = SourceCheckpoint { dir: self.checkpoint.location.join(&format!("sources/{i}")) };
            source
                .open(&dir, self.committed[i].as_deref())
                .await
                .map_err(|e| e.context(format!("opening source {i} ({})", source.description())))?;
        }
        Ok(())
    }

    /// One trigger: construct (or recover) a batch and run it. False when there was nothing to do.
    async fn execute_one_batch(&mut self, limit: ReadLimit) -> Result<bool> {
        let mut timer = PhaseTimer::start();
        let trigger_started = Instant::now();
        self.shared.set_status(self.getting_offsets.as_str(), None, Some(true));
        let batch = match self.recovered.take() {
            Some(b) => b,
            None => match self.construct_next_batch(limit, &mut timer).await? {
                Some(b) => b,
                None => {
                    self.shared.set_status("Waiting for data to arrive", Some(false), Some(false));
                    self.post_idle_event(trigger_started, timer.trigger_start_ms);
                    self.shared.idle_since.send_replace(Some(trigger_started));
                    self.shared.set_status("Waiting for next trigger", None, None);
                    return Ok(false);
                }
            },
        };
        self.shared.set_status("Processing new data", Some(true), None);
        self.run_batch(batch, timer, limit).await?;
        self.last_event_at = Some(Instant::now());
        self.shared.set_status("Waiting for next trigger", None, Some(false));
        Ok(true)
    }

    /// Posts a `QueryIdleEvent` for a trigger that found no data, unless one (or a progress
    /// event) was posted less than `noDataProgressEventInterval` ago.
    fn post_idle_event(&mut self, now: Instant, trigger_start_ms: i64) {
        let interval = Duration::from_millis(self.spec.conf.no_data_progress_event_interval_ms);
        if self.last_event_at.is_some_and(|last| now.duration_since(last) < interval) {
            return;
        }
        self.last_event_at = Some(now);
        self.listeners.post(&QueryEvent::Idle {
            id: self.shared.id,
            run_id: self.shared.run_id,
            timestamp: sluice_common::time::format_iso_millis(trigger_start_ms),
        });
    }

    async fn construct_next_batch(&mut self, limit: ReadLimit, timer: &mut PhaseTimer) -> Result<Option<PlannedBatch>> {
        let shared = Arc::clone(&self.shared);
        let _progress_locked = shared.progress_lock.lock().await;
        let t = Instant::now();
        // A next batch planned ahead keeps the offsets and timestamp its map stage ran with.
        if self.ahead.as_ref().is_some_and(|a| a.plan.id != self.batch_id || a.plan.start != self.committed) {
            self.ahead = None;
        }
        let planned_ahead = self.ahead.as_ref().map(|a| (a.plan.end.clone(), a.plan.timestamp_ms));
        let (latest, batch_timestamp_ms) = match planned_ahead {
            Some(fixed) => fixed,
            None => (latest_offsets(&mut self.sources, &self.committed, limit).await?, timer.trigger_start_ms),
        };
        timer.record("latestOffset", t);
        let has_new_data = latest.iter().zip(&self.committed).any(|(l, c)| l != c);
        // A no-data batch runs when the watermark moved past what the last batch evicted with
        // and some operator's state is evictable by it (Spark's `shouldRunAnotherBatch`).
        let needs_no_data_batch = self.spec.conf.no_data_micro_batches
            && self.batch_id > BatchId::FIRST
            && self.watermark.has_watermark()
            && self.stages.operators.iter().any(|o| o.evicts_by_watermark)
            && self.watermark.current_ms() > self.previous_batch_watermark_ms;
        if !has_new_data && !needs_no_data_batch {
            return Ok(None);
        }
        let t = Instant::now();
        let metadata = OffsetSeqMetadata {
            batch_watermark_ms: self.watermark.current_ms(),
            batch_timestamp_ms,
            conf: self.spec.conf.to_offset_conf(),
        };
        let seq = OffsetSeq { offsets: latest.clone(), metadata: metadata.clone() };
        self.fence.check().await?;
        self.checkpoint.write_offsets(self.batch_id, &seq).await?;
        super::fault::pause_point("after-offsets", self.batch_id).await;
        // The previous batch is durable: let sources release its input (cleanSource).
        for (i, source) in self.sources.iter_mut().enumerate() {
            if let Some(prev) = &self.committed[i] {
                source.commit(prev).await?;
            }
        }
        let retain = self.spec.conf.min_batches_to_retain;
        if retain < self.batch_id.0 {
            if let Err(e) = self.checkpoint.purge(self.batch_id.0 - retain).await {
                tracing::warn!(error = %e, "could not purge old checkpoint log entries");
            }
            // Batch N reads state version N: versions from N − retain on stay loadable.
            let operators = self.stages.operators.len();
            self.bundle_retention.maybe_start(&self.checkpoint.location, operators, self.batch_id.0 - retain);
        }
        timer.record("walCommit", t);
        // Progress shows what the source saw as available (Kafka: before rate limiting).
        let reported = self.sources.iter().zip(&latest).map(|(s, l)| s.reported_latest_offset().or_else(|| l.clone())).collect();
        Ok(Some(PlannedBatch { id: self.batch_id, start: self.committed.clone(), end: latest, latest: reported, metadata }))
    }

    async fn run_batch(&mut self, batch: PlannedBatch, mut timer: PhaseTimer, limit: ReadLimit) -> Result<()> {
        let t = Instant::now();
        let ahead = self.ahead.take().filter(|a| a.plan.id == batch.id);
        let splits = match &ahead {
            Some(a) => a.plan.splits.clone(),
            None => {
                let parallelism = self.scheduler.parallelism().await;
                plan_splits(&mut self.sources, &batch.start, &batch.end, parallelism).await?
            }
        };
        timer.record("queryPlanning", t);

        let t = Instant::now();
        // The next batch's map stage queues behind this batch's on the executors' map slots: it
        // starts now when this batch's map stage already ran (or runs) ahead, and only once this
        // batch's tasks are done otherwise (its first batch, or after a failure), so that it
        // never takes the map slots before this batch's own map tasks.
        let this_ran_ahead = ahead.is_some();
        if this_ran_ahead {
            self.start_next_ahead(&batch, limit).await;
        }
        let (results, sink_rows, recovery) = self.run_attempts(&batch, &splits, ahead).await?;
        if !this_ran_ahead {
            self.start_next_ahead(&batch, limit).await;
        }
        timer.record("addBatch", t);
        // Recovery: from the first failed attempt to this successful one, or — for the first
        // batch after a driver died — from the previous run's last checkpoint write.
        let outage_ms = self.outage_since.take().map(|t| (chrono::Utc::now() - t).num_milliseconds().max(0) as u64);
        let attempts_ms = recovery.map(|r| r.as_millis() as u64);
        if let Some(ms) = outage_ms.max(attempts_ms) {
            timer.set("recovery", ms);
        }

        // Fold the batch's event-time stats into the watermark for the next batch.
        let mut node_stats: Vec<Option<EventTimeStats>> = vec![None; self.watermark_sources.len()];
        for r in &results {
            for (src, s) in &r.metrics.event_time {
                if let Some(node) = self.watermark_sources.iter().position(|x| x == src) {
                    match &mut node_stats[node] {
                        Some(acc) => acc.merge(s),
                        None => node_stats[node] = Some(*s),
                    }
                }
            }
        }
        self.watermark.update(&node_stats);

        let t = Instant::now();
        let commit = CommitMetadata { next_batch_watermark_ms: self.watermark.current_ms() };
        self.fence.check().await?;
        self.checkpoint.write_commit(batch.id, &commit).await?;
        super::fault::pause_point("after-commit", batch.id).await;
        timer.record("commitOffsets", t);

        self.report(&batch, &results, &node_stats, sink_rows, timer);
        self.previous_batch_watermark_ms = batch.metadata.batch_watermark_ms;
        self.committed = batch.end;
        self.batch_id = batch.id.next();
        Ok(())
    }

    /// Runs the batch's tasks and commits the sink, retrying the whole attempt on retryable
    /// failures with the same offsets, watermark and timestamp.
    async fn run_attempts(
        &mut self,
        batch: &PlannedBatch,
        splits: &[(usize, PlannedSplit)],
        ahead: Option<AheadBatch>,
    ) -> Result<(Vec<TaskResult>, u64, Option<Duration>)> {
        let mut attempt = 0;
        let mut first_failure: Option<Instant> = None;
        let mut ran_ahead = None;
        if let Some(ahead) = ahead {
            match ahead.results().await {
                Ok(results) => {
                    self.shared.batches_run_ahead.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    ran_ahead = Some(results);
                }
                Err(e) => {
                    // Its blocks are attempt 0's: the batch's own first attempt is numbered 1.
                    attempt = 1;
                    let e = self.redactor.scrub_error(e);
                    tracing::info!(query = %self.shared.id, batch = batch.id.0, error = %e, "the map stage run ahead failed; the batch runs it again");
                }
            }
        }
        loop {
            let context = BatchContext {
                id: batch.id,
                attempt,
                timestamp_ms: batch.metadata.batch_timestamp_ms,
                watermarks: BatchWatermarks {
                    late_ms: self.previous_batch_watermark_ms,
                    eviction_ms: batch.metadata.batch_watermark_ms,
                },
            };
            let ran = self.stages.run(&self.scheduler, &self.run, &context, splits, ran_ahead.take()).await;
            self.release_moved_partitions();
            let outcome = match ran {
                Ok(results) => {
                    let sink_results: Vec<TaskSinkResult> = results
                        .sink
                        .iter()
                        .map(|r| TaskSinkResult { partition_index: r.partition_index, output: r.sink_output.clone() })
                        .collect();
                    // The state manifests first: the version they name is this attempt's, and
                    // both must be written before `commits/N`.
                    let committed = async {
                        self.fence.check().await?;
                        write_manifests(&self.checkpoint.location, &results.all)
                            .await
                            .map_err(|e| e.context(format!("committing the state of batch {}", batch.id)))?;
                        self.sink
                            .commit(batch.id, &self.schema, sink_results.clone())
                            .await
                            .map_err(|e| e.context(format!("committing batch {} to the sink", batch.id)))
                    }
                    .await;
                    match committed {
                        Ok(rows) => Ok((results.all, rows)),
                        Err(e) => {
                            self.sink.abort(batch.id, sink_results).await;
                            Err(e)
                        }
                    }
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok((results, rows)) => {
                    if let Ok(mut placed) = self.shared.state_partitions.lock() {
                        *placed = self.stages.partitions_by_executor();
                    }
                    return Ok((results, rows, first_failure.map(|t| t.elapsed())));
                }
                Err(e) if e.retryable && attempt + 1 < MAX_BATCH_ATTEMPTS => {
                    attempt += 1;
                    first_failure.get_or_insert_with(Instant::now);
                    self.shared.batches_retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let backoff = (FIRST_BACKOFF * 2u32.pow(attempt - 1)).min(MAX_BACKOFF);
                    let e = self.redactor.scrub_error(e);
                    tracing::warn!(query = %self.shared.id, batch = batch.id.0, attempt, error = %e, "batch attempt failed; retrying with the same offsets");
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => {
                    let e = if e.kind == ErrorKind::External && e.retryable {
                        e.context(format!("batch {} failed after {MAX_BATCH_ATTEMPTS} attempts", batch.id))
                    } else {
                        e
                    };
                    return Err(e);
                }
            }
        }
    }

    /// Fixes the batch after `batch` — its offsets from where `batch` ends, its timestamp now —
    /// and starts its map stage ahead ([`super::map_ahead`]), if the query runs ahead and the
    /// sources have new data. A source that cannot answer leaves the next batch to be planned
    /// after this one commits, which meets the same error in its place.
    async fn start_next_ahead(&mut self, batch: &PlannedBatch, limit: ReadLimit) {
        if !self.map_ahead {
            return;
        }
        let planned = async {
            let end = latest_offsets(&mut self.sources, &batch.end, limit).await?;
            if end == batch.end {
                return Ok(None);
            }
            let parallelism = self.scheduler.parallelism().await;
            let splits = plan_splits(&mut self.sources, &batch.end, &end, parallelism).await?;
            Ok::<_, SluiceError>(Some(AheadPlan {
                id: batch.id.next(),
                start: batch.end.clone(),
                end,
                timestamp_ms: now_ms(),
                splits,
            }))
        }
        .await;
        let plan = match planned {
            Ok(Some(plan)) => plan,
            Ok(None) => return,
            Err(e) => {
                let e = self.redactor.scrub_error(e);
                tracing::debug!(query = %self.shared.id, error = %e, "the next batch is not planned ahead");
                return;
            }
        };
        // Map tasks read neither watermark: the running batch's stands in for both.
        let context = BatchContext {
            id: plan.id,
            attempt: 0,
            timestamp_ms: plan.timestamp_ms,
            watermarks: BatchWatermarks {
                late_ms: batch.metadata.batch_watermark_ms,
                eviction_ms: batch.metadata.batch_watermark_ms,
            },
        };
        let stage = self.stages.run_ahead(&self.scheduler, &self.run, &context, &plan.splits);
        self.ahead = Some(AheadBatch::start(plan, stage));
    }

    /// Tells the previous owners of partitions that moved to drop their copies, in the
    /// background: a release never holds up a batch.
    fn release_moved_partitions(&mut self) {
        let moved = self.stages.take_moved();
        if moved.is_empty() {
            return;
        }
        let operators = self.stages.operators.len() as u32;
        let (scheduler, run_id) = (self.scheduler.clone(), self.run.run_id.clone());
        tokio::spawn(async move {
            let mut by_owner: std::collections::BTreeMap<String, Vec<(u32, u32)>> = Default::default();
            for (owner, partition) in moved {
                by_owner.entry(owner).or_default().extend((0..operators).map(|op| (op, partition)));
            }
            for (owner, partitions) in by_owner {
                scheduler.release(&run_id, Some(&owner), &partitions).await;
            }
        });
    }

    fn report(
        &mut self,
        batch: &PlannedBatch,
        results: &[TaskResult],
        node_stats: &[Option<EventTimeStats>],
        sink_rows: u64,
        timer: PhaseTimer,
    ) {
        let trigger_start_ms = timer.trigger_start_ms;
        let (durations, trigger_ms) = timer.finish();
        let sources = self
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mine = results.iter().filter(|r| r.metrics.source_index == Some(i));
                let (rows, malformed, lost) = mine.fold((0, 0, 0), |(a, b, c), r| {
                    (a + r.metrics.input_rows, b + r.metrics.malformed_rows, c + r.metrics.lost_offsets)
                });
                let mut metrics = s.progress_metrics(batch.end[i].as_deref());
                if lost > 0 {
                    metrics.insert("numLostOffsets".to_string(), lost.to_string());
                }
                SourceBatchFacts {
                    description: self.redactor.scrub(&s.description()).into_owned(),
                    start: batch.start[i].clone(),
                    end: batch.end[i].clone(),
                    latest: batch.latest[i].clone(),
                    input_rows: rows,
                    malformed_rows: malformed,
                    metrics,
                }
            })
            .collect();
        let facts = BatchFacts {
            id: self.shared.id,
            run_id: self.shared.run_id,
            name: self.shared.name.clone(),
            batch_id: batch.id,
            trigger_start_ms,
            previous_trigger_start_ms: self.last_trigger_start_ms,
            durations,
            trigger_ms,
            sources,
            batch_watermark_ms: self.watermark.has_watermark().then_some(batch.metadata.batch_watermark_ms),
            event_time: node_stats.iter().flatten().find(|s| s.count > 0).copied(),
            state_operators: state_operator_progress(&self.stages, results),
            sink_description: self.redactor.scrub(&self.sink.description()).into_owned(),
            sink_rows,
        };
        self.last_trigger_start_ms = Some(trigger_start_ms);
        let progress = build_progress(&facts);
        tracing::info!(target: "sluice::progress", query = %self.shared.id, batch = batch.id.0, "{}", progress.json());
        self.shared.push_progress(progress.clone());
        self.listeners.post(&QueryEvent::Progress(Arc::new(progress)));
    }
}

/// How far each source's data goes from `committed` under `limit` (a source with nothing new
/// stays where it was).
async fn latest_offsets(
    sources: &mut [Box<dyn Source>],
    committed: &[Option<String>],
    limit: ReadLimit,
) -> Result<Vec<Option<String>>> {
    let mut latest = Vec::with_capacity(sources.len());
    for (i, source) in sources.iter_mut().enumerate() {
        let end = source
            .latest_offset(committed[i].as_deref(), limit)
            .await
            .map_err(|e| e.context(format!("source {i} ({})", source.description())))?;
        latest.push(end.or_else(|| committed[i].clone()));
    }
    Ok(latest)
}

/// The input splits of a batch from `start` to `end`: (source index, split).
async fn plan_splits(
    sources: &mut [Box<dyn Source>],
    start: &[Option<String>],
    end: &[Option<String>],
    parallelism: usize,
) -> Result<Vec<(usize, PlannedSplit)>> {
    let mut splits = Vec::new();
    for (i, source) in sources.iter_mut().enumerate() {
        let Some(end) = &end[i] else { continue };
        if start[i].as_ref() == Some(end) {
            continue;
        }
        for split in source.plan_splits(start[i].as_deref(), end, parallelism).await? {
            splits.push((i, split));
        }
    }
    Ok(splits)
}

/// Spark's `stateOperators` progress entries, topmost operator first: each operator's metrics
/// summed over its partitions' tasks.
fn state_operator_progress(stages: &StageRunner, results: &[TaskResult]) -> Vec<StateOperatorProgress> {
    stages
        .operators
        .iter()
        .rev()
        .map(|op| {
            let mut p = StateOperatorProgress {
                operator_name: op.name.to_string(),
                num_shuffle_partitions: stages.partitions as u64,
                num_state_store_instances: stages.partitions as u64 * op.stores_per_partition as u64,
                ..Default::default()
            };
            for m in results.iter().flat_map(|r| r.metrics.state.iter()).filter(|m| m.operator == op.id) {
                p.num_rows_total += m.num_rows_total;
                p.num_rows_updated += m.num_rows_updated;
                p.num_rows_removed += m.num_rows_removed;
                p.num_rows_dropped_by_watermark += m.num_rows_dropped_by_watermark;
                p.memory_used_bytes += m.memory_used_bytes;
                p.all_updates_time_ms += m.all_updates_time_ms;
                p.all_removals_time_ms += m.all_removals_time_ms;
                p.commit_time_ms += m.commit_time_ms;
                for (k, v) in &m.custom {
                    *p.custom_metrics.entry(k.clone()).or_default() += v;
                }
            }
            p
        })
        .collect()
}
