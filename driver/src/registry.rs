//! Which executors the driver can use: registration, heartbeats and liveness.
//!
//! In the embedded cluster and in a plain multi-process cluster executors register here
//! directly over gRPC; the registry is the driver's view of membership either way.
//!
//! A batch attempt *engages* the executors it runs on ([`ExecutorRegistry::engage`]); an
//! executor that is decommissioning gets no new attempts and is dismissed once the attempts
//! engaging it end (see [`crate::decommission`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_common::error::{Result, SluiceError};
use sluice_proto::v1::executor_service_client::ExecutorServiceClient;
use sluice_proto::v1::DismissRequest;
use sluice_proto::MAX_MESSAGE_BYTES;
use sluice_security::Transport;
use tokio::sync::{watch, Mutex};
use tonic::transport::Channel;

use crate::decommission::DecommissionBook;

/// How long a dismissal waits for the executor to answer.
const DISMISS_TIMEOUT: Duration = Duration::from_secs(5);

/// A registered executor.
#[derive(Debug, Clone)]
pub struct ExecutorInfo {
    /// The id the executor registered with; tasks and state partitions are placed by it.
    pub id: String,
    /// URL of the executor's gRPC service (`http://host:port`) that `client` dials.
    pub endpoint: String,
    /// Tasks the executor runs at once (at least 1); caps the scheduler's in-flight tasks on it.
    pub task_slots: usize,
    /// Lazily connected client, with HTTP/2 keep-alives so a dead peer is noticed within seconds.
    pub client: ExecutorServiceClient<Channel>,
    last_seen: Instant,
    /// Not scheduled until then: a task RPC to it failed.
    suspended_until: Option<Instant>,
}

/// The live executors, with a change counter that schedulers can wait on.
#[derive(Debug, Clone)]
pub struct ExecutorRegistry {
    inner: Arc<Mutex<BTreeMap<String, ExecutorInfo>>>,
    changes: watch::Sender<u64>,
    /// Decommissioning executors and the attempts that still use them. A std mutex: an
    /// [`Engagement`] updates it when dropped, which cannot await.
    book: Arc<std::sync::Mutex<DecommissionBook>>,
    /// An executor that has not heartbeated for this long is considered gone; `None` when
    /// liveness comes from elsewhere (etcd leases).
    pub liveness_timeout: Option<Duration>,
    /// How long a failed executor is left out of scheduling.
    pub suspension: Duration,
    /// How executors are dialled (TLS, presenting this driver's member certificate, or plain).
    transport: Transport,
}

impl Default for ExecutorRegistry {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

impl ExecutorRegistry {
    /// An empty registry of the one driver of a cluster (it runs queries, so it dismisses
    /// decommissioning executors).
    pub fn new(liveness_timeout: Duration) -> Self {
        Self {
            inner: Arc::default(),
            changes: watch::channel(0).0,
            book: Arc::new(std::sync::Mutex::new(DecommissionBook::new(true))),
            liveness_timeout: Some(liveness_timeout),
            suspension: liveness_timeout,
            transport: Transport::Plain,
        }
    }

    /// A registry whose membership is maintained externally (etcd): no heartbeat expiry, and no
    /// dismissals until [`Self::set_leading`] says this driver runs the queries.
    pub fn external(suspension: Duration) -> Self {
        Self {
            inner: Arc::default(),
            changes: watch::channel(0).0,
            book: Arc::new(std::sync::Mutex::new(DecommissionBook::new(false))),
            liveness_timeout: None,
            suspension,
            transport: Transport::Plain,
        }
    }

    /// Dials executors through `transport` (set before the first executor registers).
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The decommission book (a panic elsewhere while holding it leaves it usable: every update
    /// is a single insert or removal).
    fn book(&self) -> std::sync::MutexGuard<'_, DecommissionBook> {
        self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the decommission book and dismisses the executors it returns.
    fn with_book(&self, f: impl FnOnce(&mut DecommissionBook) -> Vec<String>) {
        let due = f(&mut self.book());
        if !due.is_empty() {
            self.dismiss(due);
        }
    }

    /// Whether new work may go to `id` (it is not decommissioning).
    /// Whether new work may go to executor `id`: false while it decommissions.
    pub fn schedulable(&self, id: &str) -> bool {
        self.book().schedulable(id)
    }

    /// This driver started (true) or stopped (false) running the cluster's queries: only then
    /// does it dismiss decommissioning executors.
    pub fn set_leading(&self, leading: bool) {
        self.with_book(|b| b.set_leading(leading));
    }

    /// Tells each executor in `ids` that it may exit, in the background.
    fn dismiss(&self, ids: Vec<String>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let inner = Arc::clone(&self.inner);
        runtime.spawn(async move {
            for id in ids {
                let Some(mut client) = inner.lock().await.get(&id).map(|e| e.client.clone()) else { continue };
                match tokio::time::timeout(DISMISS_TIMEOUT, client.dismiss(DismissRequest {})).await {
                    Ok(Ok(_)) => {
                        tracing::info!(executor = %id, "dismissed the decommissioned executor: no batch in flight needs it")
                    }
                    Ok(Err(status)) => {
                        tracing::warn!(executor = %id, error = %status.message(), "could not dismiss a decommissioned executor")
                    }
                    Err(_) => tracing::warn!(executor = %id, "dismissing a decommissioned executor timed out"),
                }
            }
        });
    }

    /// The executor `id` is shutting down: no new batch attempt uses it, and it is dismissed
    /// once the attempts in flight that use it end.
    pub async fn decommission(&self, id: &str) {
        if self.inner.lock().await.contains_key(id) && self.schedulable(id) {
            tracing::info!(executor = %id, "executor decommissioning: no new batches go to it");
            self.with_book(|b| b.decommission(id));
            self.changes.send_modify(|c| *c += 1);
        }
    }

    /// Adds or refreshes an executor from its etcd record; a record saying it is decommissioning
    /// decommissions it.
    pub async fn register_record(&self, record: &sluice_cluster::ExecutorRecord) -> Result<()> {
        let same = self.inner.lock().await.get(&record.id).is_some_and(|e| e.endpoint == record.endpoint);
        if !same {
            self.register(&record.id, &record.endpoint, record.task_slots).await?;
        }
        if record.decommissioning {
            self.decommission(&record.id).await;
        }
        Ok(())
    }

    /// Adds or refreshes an executor; connects lazily. A registration is a new process (or one
    /// that came back): it is schedulable, whatever an earlier process with its id was doing.
    pub async fn register(&self, id: &str, endpoint: &str, task_slots: usize) -> Result<()> {
        let channel = self
            .transport
            .endpoint(endpoint)
            .map_err(|e| e.context(format!("executor {id} registered the endpoint '{endpoint}'")))?
            .connect_timeout(Duration::from_secs(5))
            // Notice a dead or partitioned peer within seconds, even mid-task.
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let channel = self.transport.connect_lazy(channel);
        let client = ExecutorServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let info = ExecutorInfo {
            id: id.to_string(),
            endpoint: endpoint.to_string(),
            task_slots: task_slots.max(1),
            client,
            last_seen: Instant::now(),
            suspended_until: None,
        };
        self.inner.lock().await.insert(id.to_string(), info);
        self.book().forget(id);
        tracing::info!(executor = %id, %endpoint, task_slots, "executor registered");
        self.changes.send_modify(|c| *c += 1);
        Ok(())
    }

    /// Makes membership exactly `records` (an etcd snapshot): registers the new, drops the gone.
    pub async fn sync(&self, records: &[sluice_cluster::ExecutorRecord]) -> Result<()> {
        let known: Vec<String> = self.inner.lock().await.keys().cloned().collect();
        for id in known.iter().filter(|id| !records.iter().any(|r| &r.id == *id)) {
            self.remove(id, "no longer registered in etcd").await;
        }
        for r in records {
            self.register_record(r).await?;
        }
        Ok(())
    }

    /// Records a heartbeat; false when the executor is unknown and must register again.
    pub async fn heartbeat(&self, id: &str, decommissioning: bool) -> bool {
        let known = match self.inner.lock().await.get_mut(id) {
            Some(info) => {
                info.last_seen = Instant::now();
                true
            }
            None => false,
        };
        if known && decommissioning {
            self.decommission(id).await;
        }
        known
    }

    /// Drops an executor (it failed, stopped heartbeating or left).
    pub async fn remove(&self, id: &str, why: &str) {
        if self.inner.lock().await.remove(id).is_some() {
            let gracefully = {
                let mut book = self.book();
                let decommissioned = !book.schedulable(id);
                book.forget(id);
                decommissioned
            };
            if gracefully {
                tracing::info!(executor = %id, reason = why, "decommissioned executor left");
            } else {
                tracing::warn!(executor = %id, reason = why, "executor removed");
            }
            self.changes.send_modify(|c| *c += 1);
        }
    }

    /// Leaves an executor out of scheduling for a while after a failed task RPC; it comes back
    /// when the suspension ends or it registers again (a restarted process).
    pub async fn suspend(&self, id: &str, why: &str) {
        if let Some(e) = self.inner.lock().await.get_mut(id) {
            tracing::warn!(executor = %id, reason = why, "executor suspended from scheduling");
            e.suspended_until = Some(Instant::now() + self.suspension);
            self.changes.send_modify(|c| *c += 1);
        }
    }

    /// Live executors that are not suspended, in id order; expires those past the heartbeat
    /// timeout (when heartbeats are the liveness signal).
    pub async fn live(&self) -> Vec<ExecutorInfo> {
        let mut map = self.inner.lock().await;
        let now = Instant::now();
        let expired: Vec<String> = match self.liveness_timeout {
            Some(timeout) => map.values().filter(|e| now.duration_since(e.last_seen) > timeout).map(|e| e.id.clone()).collect(),
            None => Vec::new(),
        };
        for id in &expired {
            map.remove(id);
            tracing::warn!(executor = %id, "executor missed its heartbeats; removed");
        }
        if !expired.is_empty() {
            self.changes.send_modify(|c| *c += 1);
        }
        map.values().filter(|e| e.suspended_until.is_none_or(|t| t <= now)).cloned().collect()
    }

    /// Live executors that new work may go to: not suspended, not decommissioning.
    pub async fn schedulable_executors(&self) -> Vec<ExecutorInfo> {
        self.live().await.into_iter().filter(|e| self.schedulable(&e.id)).collect()
    }

    /// Total task slots of the executors new work may go to.
    pub async fn total_slots(&self) -> usize {
        self.schedulable_executors().await.iter().map(|e| e.task_slots).sum()
    }

    /// The executors a batch attempt runs on: waits for at least one schedulable executor (up
    /// to `timeout`), and keeps those it returns from being dismissed until the engagement is
    /// dropped, even if they start decommissioning meanwhile.
    pub async fn engage(&self, timeout: Duration) -> Result<Engagement> {
        loop {
            let candidates = self.wait_for(1, timeout).await?;
            // Check and engage under one lock: an executor decommissioning between the two
            // would otherwise be dismissed under this attempt.
            let engaged = {
                let mut book = self.book();
                let executors: Vec<ExecutorInfo> = candidates.into_iter().filter(|e| book.schedulable(&e.id)).collect();
                book.engage(executors.iter().map(|e| e.id.as_str()));
                executors
            };
            if !engaged.is_empty() {
                return Ok(Engagement { executors: engaged, registry: self.clone() });
            }
        }
    }

    /// Waits until at least `n` executors are schedulable, or fails after `timeout`. Wakes on
    /// membership changes and when a suspension ends.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<ExecutorInfo>> {
        let mut rx = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let live = self.schedulable_executors().await;
            if live.len() >= n.max(1) {
                return Ok(live);
            }
            let (registered, next_resume) = {
                let map = self.inner.lock().await;
                (map.len(), map.values().filter_map(|e| e.suspended_until).filter(|t| *t > Instant::now()).min())
            };
            let wake = next_resume.map(tokio::time::Instant::from_std).unwrap_or(deadline).min(deadline);
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(SluiceError::external(format!(
                            "no executors available after {}s (need {n}; {registered} registered, {} of them suspended after failed task RPCs or decommissioning)",
                            timeout.as_secs(),
                            registered - live.len()
                        )));
                    }
                }
            }
        }
    }
}

/// The executors one batch attempt runs on; while it lives none of them is dismissed.
pub struct Engagement {
    /// The engaged executors, in id order.
    pub executors: Vec<ExecutorInfo>,
    registry: ExecutorRegistry,
}

impl Engagement {
    /// Ids of the engaged executors.
    pub fn ids(&self) -> Vec<String> {
        self.executors.iter().map(|e| e.id.clone()).collect()
    }
}

impl Drop for Engagement {
    fn drop(&mut self) {
        let ids: Vec<&str> = self.executors.iter().map(|e| e.id.as_str()).collect();
        self.registry.with_book(|b| b.disengage(ids));
    }
}
