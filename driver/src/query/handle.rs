//! `StreamingQuery`: what a user (or a test) holds to watch and control a running query.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::events::QueryStatus;
use crate::progress::StreamingQueryProgress;
use sluice_common::error::{Result, SluiceError};
use tokio::sync::watch;

/// How many progress reports a query keeps (Spark's `recentProgress` default).
pub const PROGRESS_RETAINED: usize = 100;

/// Lifecycle of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryState {
    /// Reading the checkpoint, opening sources.
    Initializing,
    /// Running batches.
    Active,
    /// Stopped; with the error that stopped it, if any.
    Terminated(Option<SluiceError>),
}

/// State shared between a query's loop and its handles.
#[derive(Debug)]
pub struct QueryShared {
    /// Persistent query id from the checkpoint's `metadata` file; the same across restarts.
    pub id: uuid::Uuid,
    /// Id of this run; a restart on the same checkpoint gets a new one.
    pub run_id: uuid::Uuid,
    /// The `queryName` setting, if any.
    pub name: Option<String>,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) state: watch::Sender<QueryState>,
    /// Start time of the most recent trigger that found nothing to do.
    pub(crate) idle_since: watch::Sender<Option<Instant>>,
    pub(crate) progress: Mutex<VecDeque<StreamingQueryProgress>>,
    /// Spark's `status`: what the loop is doing now.
    pub(crate) status: Mutex<QueryStatus>,
    /// Batch attempts retried after a failure.
    pub(crate) batches_retried: std::sync::atomic::AtomicU64,
    /// Batches that started from a map stage run ahead of them.
    pub(crate) batches_run_ahead: std::sync::atomic::AtomicU64,
    /// State partitions per executor id, as placed for the last batch.
    pub(crate) state_partitions: Mutex<BTreeMap<String, u32>>,
    /// Held while the next batch's offsets are chosen (Spark's `awaitProgressLock`), so data
    /// added to several sources under it lands in one batch.
    pub(crate) progress_lock: tokio::sync::Mutex<()>,
}

impl QueryShared {
    pub(crate) fn new(id: uuid::Uuid, run_id: uuid::Uuid, name: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            id,
            run_id,
            name,
            stop: watch::channel(false).0,
            state: watch::channel(QueryState::Initializing).0,
            idle_since: watch::channel(None).0,
            progress: Mutex::new(VecDeque::new()),
            status: Mutex::new(QueryStatus::default()),
            batches_retried: std::sync::atomic::AtomicU64::new(0),
            batches_run_ahead: std::sync::atomic::AtomicU64::new(0),
            state_partitions: Mutex::new(BTreeMap::new()),
            progress_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Updates the status message, and the two flags where given.
    pub(crate) fn set_status(&self, message: impl Into<String>, data_available: Option<bool>, trigger_active: Option<bool>) {
        if let Ok(mut s) = self.status.lock() {
            s.message = message.into();
            if let Some(d) = data_available {
                s.is_data_available = d;
            }
            if let Some(t) = trigger_active {
                s.is_trigger_active = t;
            }
        }
    }

    pub(crate) fn push_progress(&self, p: StreamingQueryProgress) {
        if let Ok(mut q) = self.progress.lock() {
            if q.len() == PROGRESS_RETAINED {
                q.pop_front();
            }
            q.push_back(p);
        }
    }
}

/// A handle to a running (or finished) query.
#[derive(Debug, Clone)]
pub struct StreamingQuery {
    pub(crate) shared: Arc<QueryShared>,
}

impl StreamingQuery {
    /// The persistent query id (from the checkpoint).
    pub fn id(&self) -> uuid::Uuid {
        self.shared.id
    }

    /// This run's id.
    pub fn run_id(&self) -> uuid::Uuid {
        self.shared.run_id
    }

    /// `queryName`, if set.
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// A name for messages: the query name, or its id.
    pub fn display_name(&self) -> String {
        self.shared.name.clone().unwrap_or_else(|| self.shared.id.to_string())
    }

    /// The current lifecycle state.
    pub fn state(&self) -> QueryState {
        self.shared.state.borrow().clone()
    }

    /// True until the query terminates.
    pub fn is_active(&self) -> bool {
        !matches!(self.state(), QueryState::Terminated(_))
    }

    /// Spark's `status`: the loop's current activity.
    pub fn status(&self) -> QueryStatus {
        self.shared.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The last `PROGRESS_RETAINED` progress reports, oldest first.
    pub fn recent_progress(&self) -> Vec<StreamingQueryProgress> {
        self.shared.progress.lock().map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }

    /// Batch attempts retried after failures.
    pub fn batches_retried(&self) -> u64 {
        self.shared.batches_retried.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Batches that started from their map stage run ahead, beside the previous batch
    /// (`sluice.streaming.mapAhead`).
    pub fn batches_run_ahead(&self) -> u64 {
        self.shared.batches_run_ahead.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many state partitions each executor owns (executor id → count): shows where state
    /// lives and that a joining executor got its share.
    pub fn state_partitions(&self) -> BTreeMap<String, u32> {
        self.shared.state_partitions.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The newest progress report.
    pub fn last_progress(&self) -> Option<StreamingQueryProgress> {
        self.shared.progress.lock().ok().and_then(|q| q.back().cloned())
    }

    /// Runs `f` while the query cannot choose its next batch's offsets: everything `f` adds to
    /// the query's sources lands in the same batch (Spark's `StreamProgressLockedActions`, what
    /// its `MultiAddData` test step uses).
    pub async fn with_progress_locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let _held = self.shared.progress_lock.lock().await;
        f()
    }

    /// Asks the query to stop after the batch in flight; returns at once.
    pub fn request_stop(&self) {
        self.shared.stop.send_replace(true);
    }

    /// Stops the query and waits for it to terminate.
    pub async fn stop(&self) -> Result<()> {
        self.request_stop();
        self.await_termination().await
    }

    /// Waits until the query has read its checkpoint and opened its sources: true when it runs,
    /// false when it terminated first (it failed to start, or was stopped).
    pub async fn await_started(&self) -> bool {
        let mut rx = self.shared.state.subscribe();
        let started = rx.wait_for(|s| !matches!(s, QueryState::Initializing)).await;
        started.is_ok_and(|s| matches!(*s, QueryState::Active))
    }

    /// Waits for termination; the query's error, if it failed.
    pub async fn await_termination(&self) -> Result<()> {
        let mut rx = self.shared.state.subscribe();
        let state = rx
            .wait_for(|s| matches!(s, QueryState::Terminated(_)))
            .await
            .map_err(|_| SluiceError::internal("query loop vanished"))?
            .clone();
        match state {
            QueryState::Terminated(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Spark's `processAllAvailable`: waits until every row available when called is processed,
    /// including the no-data batches it triggers — i.e. until a trigger that *started after this
    /// call* found nothing left to do. Fails if the query terminates with an error first.
    pub async fn process_all_available(&self, timeout: Duration) -> Result<()> {
        let called = Instant::now();
        let mut idle = self.shared.idle_since.subscribe();
        let mut state = self.shared.state.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if idle.borrow_and_update().is_some_and(|t| t > called) {
                return Ok(());
            }
            if let QueryState::Terminated(e) = state.borrow_and_update().clone() {
                return match e {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            tokio::select! {
                _ = idle.changed() => {}
                _ = state.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(SluiceError::internal(format!(
                        "query {} did not process all available data within {}s",
                        self.display_name(),
                        timeout.as_secs()
                    )));
                }
            }
        }
    }
}
