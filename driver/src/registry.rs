//! Which executors the driver can use: registration, heartbeats and liveness.
//!
//! In the embedded cluster and in a plain multi-process cluster executors register here
//! directly over gRPC; the registry is the driver's view of membership either way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_common::error::{Result, SluiceError};
use sluice_proto::v1::executor_service_client::ExecutorServiceClient;
use sluice_proto::MAX_MESSAGE_BYTES;
use tokio::sync::{watch, Mutex};
use tonic::transport::Channel;

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
    /// An executor that has not heartbeated for this long is considered gone; `None` when
    /// liveness comes from elsewhere (etcd leases).
    pub liveness_timeout: Option<Duration>,
    /// How long a failed executor is left out of scheduling.
    pub suspension: Duration,
}

impl Default for ExecutorRegistry {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

impl ExecutorRegistry {
    /// An empty registry.
    pub fn new(liveness_timeout: Duration) -> Self {
        Self {
            inner: Arc::default(),
            changes: watch::channel(0).0,
            liveness_timeout: Some(liveness_timeout),
            suspension: liveness_timeout,
        }
    }

    /// A registry whose membership is maintained externally (etcd): no heartbeat expiry.
    pub fn external(suspension: Duration) -> Self {
        Self { inner: Arc::default(), changes: watch::channel(0).0, liveness_timeout: None, suspension }
    }

    /// Adds or refreshes an executor; connects lazily.
    pub async fn register(&self, id: &str, endpoint: &str, task_slots: usize) -> Result<()> {
        let channel = Channel::from_shared(endpoint.to_string())
            .map_err(|e| SluiceError::user(format!("executor endpoint '{endpoint}' is not a URL: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            // Notice a dead or partitioned peer within seconds, even mid-task.
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
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
            let same = self.inner.lock().await.get(&r.id).is_some_and(|e| e.endpoint == r.endpoint);
            if !same {
                self.register(&r.id, &r.endpoint, r.task_slots).await?;
            }
        }
        Ok(())
    }

    /// Records a heartbeat; false when the executor is unknown and must register again.
    pub async fn heartbeat(&self, id: &str) -> bool {
        match self.inner.lock().await.get_mut(id) {
            Some(info) => {
                info.last_seen = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Drops an executor (it failed or stopped heartbeating).
    pub async fn remove(&self, id: &str, why: &str) {
        if self.inner.lock().await.remove(id).is_some() {
            tracing::warn!(executor = %id, reason = why, "executor removed");
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

    /// Total task slots of the live executors.
    pub async fn total_slots(&self) -> usize {
        self.live().await.iter().map(|e| e.task_slots).sum()
    }

    /// Waits until at least `n` executors are live, or fails after `timeout`. Wakes on
    /// membership changes and when a suspension ends.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<ExecutorInfo>> {
        let mut rx = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let live = self.live().await;
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
                            "no executors available after {}s (need {n}; {registered} registered, {} of them suspended after failed task RPCs)",
                            timeout.as_secs(),
                            registered - live.len()
                        )));
                    }
                }
            }
        }
    }
}
