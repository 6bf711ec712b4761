//! Task scheduling: spreading a stage's tasks over the live executors and gathering results.
//!
//! Each executor runs at most its slot count of tasks at once; tasks are handed out in order to
//! whichever executor has a free slot, so a slow executor gets fewer tasks. The first failure
//! aborts the stage (the batch attempt), carrying the task's own typed error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchContext;
use sluice_connectors::SinkTaskOutput;
use sluice_plan::{TaskKind, TaskMetrics};
use sluice_proto::v1::{task_response, PingRequest, ReleaseQueryRequest, StatePartitionRef, TaskRequest};
use sluice_proto::wire::error_from_proto;
use tokio::sync::Semaphore;

use crate::registry::{ExecutorInfo, ExecutorRegistry};

/// How long an executor may take to answer a ping before it counts as unresponsive.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a release waits for an executor before giving up on it.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// A task to run.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// The task's index in its stage.
    pub partition_index: u32,
    /// What it does.
    pub kind: TaskKind,
    /// Rows that travel with it (memory and socket sources), Arrow IPC.
    pub inline_rows: Option<Bytes>,
    /// The executor that must run the task (the owner of its state partition), if any.
    pub executor: Option<String>,
}

/// The query run a stage belongs to.
#[derive(Debug, Clone)]
pub struct QueryRun {
    /// Id of this run of the query.
    pub run_id: String,
    /// The query's spec as JSON, sent with every task.
    pub spec_json: Bytes,
    /// Fingerprint of the spec, under which executors cache its compiled form.
    pub spec_hash: u64,
}

/// A finished task.
#[derive(Debug, Clone)]
pub struct TaskResult {
    /// The task's index in its stage.
    pub partition_index: u32,
    /// The executor that ran it.
    pub executor_id: String,
    /// Where the executor serves the task's shuffle blocks.
    pub endpoint: String,
    /// What the task read and did.
    pub metrics: TaskMetrics,
    /// What its sink writer reported, with the rows of collecting sinks.
    pub sink_output: SinkTaskOutput,
}

/// Runs stages on the registry's executors.
#[derive(Debug, Clone)]
pub struct TaskScheduler {
    registry: ExecutorRegistry,
    /// How long a stage waits for at least one executor.
    pub executor_wait: Duration,
}

impl TaskScheduler {
    /// A scheduler over `registry`.
    pub fn new(registry: ExecutorRegistry) -> Self {
        Self { registry, executor_wait: Duration::from_secs(60) }
    }

    /// Ids of the live executors.
    pub async fn live_executors(&self) -> Result<Vec<String>> {
        Ok(self.registry.wait_for(1, self.executor_wait).await?.into_iter().map(|e| e.id).collect())
    }

    /// Task slots the cluster offers (Spark's default parallelism).
    pub async fn parallelism(&self) -> usize {
        self.registry.total_slots().await.max(1)
    }

    /// Tells executors to drop what they hold for the run `run_id`: everything, on every executor
    /// (`partitions` empty: the run ended), or the listed (operator, partition)s on `executor`
    /// (they moved away). Best effort and bounded in time: an executor that does not answer
    /// drops the run anyway when the query's next run reaches it.
    pub async fn release(&self, run_id: &str, executor: Option<&str>, partitions: &[(u32, u32)]) {
        let request = ReleaseQueryRequest {
            query_run_id: run_id.to_string(),
            partitions: partitions
                .iter()
                .map(|(operator, partition)| StatePartitionRef { operator: *operator, partition: *partition })
                .collect(),
        };
        let targets: Vec<ExecutorInfo> =
            self.registry.live().await.into_iter().filter(|e| executor.is_none_or(|id| id == e.id)).collect();
        let calls = targets.into_iter().map(|e| {
            let mut client = e.client.clone();
            let request = request.clone();
            async move {
                match tokio::time::timeout(RELEASE_TIMEOUT, client.release_query(request)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(status)) => tracing::debug!(executor = %e.id, error = %status.message(), "release not delivered"),
                    Err(_) => tracing::debug!(executor = %e.id, "release timed out"),
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Runs every task of a stage; results come back ordered by partition index. A task that
    /// runs past `deadline` fails the stage, and its executor is set aside so the retried attempt
    /// runs elsewhere.
    pub async fn run_stage(
        &self,
        run: &QueryRun,
        batch: &BatchContext,
        tasks: Vec<TaskSpec>,
        deadline: Option<Duration>,
    ) -> Result<Vec<TaskResult>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let executors = self.registry.wait_for(1, self.executor_wait).await?;
        let slots: Vec<(ExecutorInfo, Arc<Semaphore>)> =
            executors.into_iter().map(|e| (e.clone(), Arc::new(Semaphore::new(e.task_slots)))).collect();
        let mut pending = FuturesUnordered::new();
        let mut next = 0usize;
        for task in tasks.into_iter() {
            // Pinned tasks go to their partition's owner; the others round-robin. Each
            // executor's semaphore bounds its concurrency.
            let (exec, sem) = match &task.executor {
                Some(id) => slots.iter().find(|(e, _)| &e.id == id).cloned().ok_or_else(|| {
                    SluiceError::external(format!("executor {id}, owner of a state partition, is no longer available"))
                })?,
                None => {
                    next += 1;
                    slots[(next - 1) % slots.len()].clone()
                }
            };
            let request = TaskRequest {
                task_id: uuid::Uuid::new_v4().to_string(),
                query_spec_json: run.spec_json.to_vec(),
                spec_hash: run.spec_hash,
                query_run_id: run.run_id.clone(),
                batch: Some(batch.into()),
                partition_index: task.partition_index,
                task_kind_json: serde_json::to_vec(&task.kind)?,
                inline_rows: task.inline_rows.map(|b| b.to_vec()).unwrap_or_default(),
            };
            let registry = self.registry.clone();
            pending.push(async move {
                let _permit = sem.acquire_owned().await.map_err(|_| SluiceError::internal("scheduler semaphore closed"))?;
                run_one(&registry, exec, request, deadline).await
            });
        }
        let mut results = Vec::new();
        while let Some(r) = pending.next().await {
            results.push(r?);
        }
        results.sort_by_key(|r| r.partition_index);
        Ok(results)
    }
}

async fn run_one(
    registry: &ExecutorRegistry,
    exec: ExecutorInfo,
    request: TaskRequest,
    deadline: Option<Duration>,
) -> Result<TaskResult> {
    let partition_index = request.partition_index;
    let mut client = exec.client.clone();
    let call = client.run_task(request);
    let answered = match deadline {
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(answer) => answer,
            Err(_) => {
                // Stop waiting. An executor that does not even answer a ping (paused, cut off)
                // is set aside so the retried attempt runs elsewhere; one that answers is only
                // slow, or waiting on a peer that is not, and keeps its place.
                let mut probe = exec.client.clone();
                let alive = matches!(tokio::time::timeout(PING_TIMEOUT, probe.ping(PingRequest {})).await, Ok(Ok(_)));
                if !alive {
                    registry.suspend(&exec.id, "a task ran past its deadline and the executor does not answer").await;
                }
                return Err(SluiceError::external(format!(
                    "executor {} ({}) did not finish task {partition_index} within its deadline of {} ms",
                    exec.id,
                    exec.endpoint,
                    limit.as_millis()
                )));
            }
        },
        None => call.await,
    };
    let response = match answered {
        Ok(r) => r.into_inner(),
        Err(status) => {
            // A transport failure means the executor is gone or unreachable: leave it out so
            // the retried attempt runs on the survivors.
            if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled) {
                registry.suspend(&exec.id, "task RPC failed").await;
            }
            return Err(SluiceError::external(format!(
                "executor {} ({}) failed to run task {partition_index}: {}",
                exec.id,
                exec.endpoint,
                status.message()
            )));
        }
    };
    match response.outcome {
        Some(task_response::Outcome::Success(s)) => {
            let metrics: TaskMetrics = serde_json::from_slice(&s.metrics_json)
                .map_err(|e| SluiceError::internal(format!("unreadable task metrics: {e}")))?;
            let mut sink_output: SinkTaskOutput = serde_json::from_slice(&s.sink_output_json)
                .map_err(|e| SluiceError::internal(format!("unreadable task sink output: {e}")))?;
            sink_output.rows = (!s.rows.is_empty()).then(|| Bytes::from(s.rows));
            Ok(TaskResult { partition_index, executor_id: exec.id, endpoint: exec.endpoint, metrics, sink_output })
        }
        Some(task_response::Outcome::Error(e)) => Err(error_from_proto(e)),
        None => Err(SluiceError::internal(format!("executor {} returned an empty task response", exec.id))),
    }
}
