//! Task scheduling: spreading a stage's tasks over the live executors and gathering results.
//!
//! Tasks pinned to an executor (the state partitions it owns) go to it in one call, which it
//! runs on its task slots; the others are dealt out round-robin, one call each, at most an
//! executor's slot count of calls in flight to it. The first failure aborts the stage (the batch
//! attempt), carrying the task's own typed error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchContext;
use sluice_connectors::SinkTaskOutput;
use sluice_plan::{TaskKind, TaskMetrics};
use sluice_proto::v1::executor_service_client::ExecutorServiceClient;
use sluice_proto::v1::{
    task_response, AwaitStateWritesRequest, PingRequest, ReleaseQueryRequest, StatePartitionRef, TaskPart, TaskPartSuccess,
    TaskRequest,
};
use sluice_proto::wire::error_from_proto;
use tokio::sync::Semaphore;
use tonic::transport::Channel;

use super::deadline::TaskWatch;
use crate::registry::{Engagement, ExecutorInfo, ExecutorRegistry};

/// How long an executor may take to answer a ping before it counts as unresponsive. Pings share
/// the executor's runtime with its tasks, so this leaves room for a busy executor's long polls.
const PING_TIMEOUT: Duration = Duration::from_millis(200);

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
///
/// `Debug` leaves out the spec (its options hold passwords) and the shuffle key.
#[derive(Clone)]
pub struct QueryRun {
    /// Id of this run of the query.
    pub run_id: String,
    /// The query's spec as JSON, sent with every task.
    pub spec_json: Bytes,
    /// Fingerprint of the spec, under which executors cache its compiled form.
    pub spec_hash: u64,
    /// The run's shuffle key: executors serve its shuffle blocks only to tickets carrying it.
    pub shuffle_key: String,
    /// The leadership term tasks are sent under (0 without etcd): executors refuse older terms.
    pub leader_term: u64,
}

impl std::fmt::Debug for QueryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRun")
            .field("run_id", &self.run_id)
            .field("spec_json", &format_args!("<{} bytes>", self.spec_json.len()))
            .field("spec_hash", &self.spec_hash)
            .field("shuffle_key", &sluice_common::redact::REDACTION_REPLACEMENT_TEXT)
            .field("leader_term", &self.leader_term)
            .finish_non_exhaustive()
    }
}

impl QueryRun {
    /// A run of `spec_json`, with a fresh shuffle key (256 random bits).
    pub fn new(run_id: String, spec_json: Bytes, spec_hash: u64, leader_term: u64) -> Self {
        Self { run_id, spec_json, spec_hash, shuffle_key: sluice_security::token::random_secret(), leader_term }
    }
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

    /// The executors a batch attempt runs on (see [`ExecutorRegistry::engage`]).
    pub async fn engage(&self) -> Result<Engagement> {
        self.registry.engage(self.executor_wait).await
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

    /// Runs every task of a stage on the attempt's executors; results come back ordered by
    /// partition index. A task whose executor stops answering pings, or that runs past its
    /// deadline, fails the stage; an executor that does not answer is set aside so the retried
    /// attempt runs elsewhere.
    pub async fn run_stage(
        &self,
        run: &QueryRun,
        batch: &BatchContext,
        executors: &Engagement,
        tasks: Vec<TaskSpec>,
        watch: TaskWatch,
    ) -> Result<Vec<TaskResult>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        // One liveness probe per executor for the whole stage (not one per task: with 200
        // state partitions that was 200 pings per stage); it stops when the stage ends.
        let slots: Vec<(ExecutorInfo, Arc<Semaphore>, Liveness)> = executors
            .executors
            .iter()
            .map(|e| (e.clone(), Arc::new(Semaphore::new(e.task_slots)), Liveness::probe(e, watch.probe_every)))
            .collect();
        let ids: Vec<&str> = slots.iter().map(|(e, _, _)| e.id.as_str()).collect();
        let calls = calls_of(tasks, &ids)?;
        let mut pending = FuturesUnordered::new();
        for (at, group) in calls {
            let (exec, sem, alive) = slots[at].clone();
            let partitions: Vec<u32> = group.iter().map(|t| t.partition_index).collect();
            let parts = group
                .into_iter()
                .map(|t| {
                    Ok(TaskPart {
                        partition_index: t.partition_index,
                        task_kind_json: serde_json::to_vec(&t.kind)?,
                        inline_rows: t.inline_rows.map(|b| b.to_vec()).unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let request = TaskRequest {
                task_id: uuid::Uuid::new_v4().to_string(),
                query_spec_json: run.spec_json.to_vec(),
                spec_hash: run.spec_hash,
                query_run_id: run.run_id.clone(),
                batch: Some(batch.into()),
                parts,
                leader_term: run.leader_term,
                shuffle_key: run.shuffle_key.clone(),
            };
            let registry = self.registry.clone();
            pending.push(async move {
                let _permit = sem.acquire_owned().await.map_err(|_| SluiceError::internal("scheduler semaphore closed"))?;
                run_call(&registry, exec, request, &partitions, watch, alive).await
            });
        }
        let mut results = Vec::new();
        while let Some(r) = pending.next().await {
            results.extend(r?);
        }
        results.sort_by_key(|r| r.partition_index);
        Ok(results)
    }

    /// Waits until every state bundle the attempt's tasks named is on storage. An executor
    /// answers a call once its partitions are committed in memory and writes their bundle while
    /// the batch's later stages run; the manifests that name the bundles must wait for this.
    /// Each executor's write times are added to the commit time of its first task of the
    /// operator. An executor that stops answering, runs past the watch's deadline, or does not
    /// know a bundle (it restarted) fails the attempt, as a failed task does. Returns the
    /// longest write an executor reported, or `None` when the attempt wrote no state.
    pub async fn await_state_writes(
        &self,
        run: &QueryRun,
        executors: &Engagement,
        results: &mut [TaskResult],
        watch: TaskWatch,
    ) -> Result<Option<Duration>> {
        let mut bundles: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> = Default::default();
        for r in results.iter() {
            for d in &r.metrics.state_deltas {
                bundles.entry(r.executor_id.as_str()).or_default().insert(d.entry.bundle.as_str());
            }
        }
        let waits = bundles.into_iter().map(|(id, names)| {
            let exec = executors.executors.iter().find(|e| e.id == id).cloned();
            let request = AwaitStateWritesRequest {
                query_run_id: run.run_id.clone(),
                bundles: names.into_iter().map(str::to_string).collect(),
            };
            let id = id.to_string();
            async move {
                let exec = exec.ok_or_else(|| SluiceError::internal(format!("executor {id} ran a task but is not engaged")))?;
                let times = await_writes(&self.registry, &exec, request, watch).await?;
                Ok::<_, SluiceError>((id, times))
            }
        });
        let mut longest: Option<u64> = None;
        for (id, times) in futures::future::try_join_all(waits).await? {
            for (operator, ms) in times {
                longest = longest.max(Some(ms));
                let first = results
                    .iter_mut()
                    .filter(|r| r.executor_id == id)
                    .flat_map(|r| r.metrics.state.iter_mut())
                    .find(|m| m.operator == operator);
                if let Some(m) = first {
                    m.commit_time_ms += ms;
                }
            }
        }
        Ok(longest.map(Duration::from_millis))
    }
}

/// Waits for one executor's state bundles (see [`TaskScheduler::await_state_writes`]); returns
/// the write time of each operator's bundles.
async fn await_writes(
    registry: &ExecutorRegistry,
    exec: &ExecutorInfo,
    request: AwaitStateWritesRequest,
    watch: TaskWatch,
) -> Result<Vec<(usize, u64)>> {
    let alive = Liveness::probe(exec, watch.probe_every);
    let doing = format!("writing {} state bundle(s)", request.bundles.len());
    let mut client = exec.client.clone();
    let answer = watched(registry, exec, alive, watch.deadline, &doing, client.await_state_writes(request)).await?;
    match answer.error {
        Some(e) => Err(error_from_proto(e)),
        None => Ok(answer.writes.into_iter().map(|w| (w.operator as usize, w.ms)).collect()),
    }
}

/// Waits for `call`, an RPC to `exec`, while watching the executor: it fails as soon as the
/// executor misses a ping (one that does not answer — paused, cut off — is set aside at once,
/// so the retried attempt runs elsewhere), once `deadline` passes (the executor answers but
/// the call is stuck on a disk or a peer: it keeps its place), or when the transport fails (the
/// executor is gone or unreachable: set aside). `doing` names the call's work in the errors.
async fn watched<T>(
    registry: &ExecutorRegistry,
    exec: &ExecutorInfo,
    mut alive: Liveness,
    deadline: Option<Duration>,
    doing: &str,
    call: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    let started = tokio::time::Instant::now();
    let answered = tokio::select! {
        answer = call => answer,
        () = alive.lost() => {
            registry.suspend(&exec.id, "it does not answer pings").await;
            return Err(SluiceError::external(format!(
                "executor {} ({}) stopped answering while {doing} ({} ms in)",
                exec.id,
                exec.endpoint,
                started.elapsed().as_millis()
            )));
        }
        _ = sleep_until_opt(deadline.map(|d| started + d)) => {
            return Err(SluiceError::external(format!(
                "executor {} ({}) did not finish {doing} within the deadline of {} ms",
                exec.id,
                exec.endpoint,
                deadline.unwrap_or_default().as_millis()
            )));
        }
    };
    match answered {
        Ok(answer) => Ok(answer.into_inner()),
        Err(status) => {
            if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled) {
                registry.suspend(&exec.id, "an RPC to it failed").await;
            }
            Err(SluiceError::external(format!(
                "executor {} ({}) failed while {doing}: {}",
                exec.id,
                exec.endpoint,
                status.message()
            )))
        }
    }
}

/// Cuts a stage's tasks into calls, each with the index (in `executors`) of the executor it goes
/// to. Tasks pinned to an executor (a reduce stage's state partitions) go to it in one call: at
/// Spark's default of 200 partitions, one call per task was most of a small batch's time. The
/// others go one per call, round-robin; the executor's semaphore bounds the calls in flight to
/// it, and the executor runs a call's tasks on its own task slots.
fn calls_of(tasks: Vec<TaskSpec>, executors: &[&str]) -> Result<Vec<(usize, Vec<TaskSpec>)>> {
    let mut calls: Vec<(usize, Vec<TaskSpec>)> = Vec::new();
    // The call collecting each executor's pinned tasks, by executor index.
    let mut pinned_call: Vec<Option<usize>> = vec![None; executors.len()];
    let mut next = 0usize;
    for task in tasks {
        match &task.executor {
            Some(id) => {
                let at = executors.iter().position(|e| e == id).ok_or_else(|| {
                    SluiceError::external(format!("executor {id}, owner of a state partition, is no longer available"))
                })?;
                match pinned_call[at] {
                    Some(call) => calls[call].1.push(task),
                    None => {
                        pinned_call[at] = Some(calls.len());
                        calls.push((at, vec![task]));
                    }
                }
            }
            None if executors.is_empty() => return Err(SluiceError::internal("a stage has tasks but no executor")),
            None => {
                calls.push((next % executors.len(), vec![task]));
                next += 1;
            }
        }
    }
    Ok(calls)
}

/// How a call's tasks are named in errors: `task 3`, or `3 tasks (0, 4, 8)`.
fn tasks_named(partitions: &[u32]) -> String {
    match partitions {
        [one] => format!("task {one}"),
        many => {
            let shown: Vec<String> = many.iter().take(5).map(u32::to_string).collect();
            let more = if many.len() > 5 { ", …" } else { "" };
            format!("{} tasks ({}{more})", many.len(), shown.join(", "))
        }
    }
}

/// Runs one call: the tasks of `partitions`, on `exec`.
async fn run_call(
    registry: &ExecutorRegistry,
    exec: ExecutorInfo,
    request: TaskRequest,
    partitions: &[u32],
    watch: TaskWatch,
    alive: Liveness,
) -> Result<Vec<TaskResult>> {
    let tasks = tasks_named(partitions);
    let mut client = exec.client.clone();
    // A task's deadline holds for each wave of tasks the executor's slots run one after another.
    let waves = partitions.len().div_ceil(exec.task_slots.max(1)) as u32;
    let deadline = watch.deadline.map(|d| d * waves);
    let response = watched(registry, &exec, alive, deadline, &format!("running {tasks}"), client.run_task(request)).await?;
    match response.outcome {
        Some(task_response::Outcome::Success(s)) if s.parts.len() == partitions.len() => s
            .parts
            .into_iter()
            .zip(partitions)
            .map(|(part, &partition_index)| task_result(&exec, partition_index, part))
            .collect(),
        Some(task_response::Outcome::Success(s)) => {
            Err(SluiceError::internal(format!("executor {} answered {} results for {tasks}", exec.id, s.parts.len())))
        }
        Some(task_response::Outcome::Error(e)) => Err(error_from_proto(e)),
        None => Err(SluiceError::internal(format!("executor {} returned an empty task response", exec.id))),
    }
}

/// One task's result, from its part of a call's answer.
fn task_result(exec: &ExecutorInfo, partition_index: u32, part: TaskPartSuccess) -> Result<TaskResult> {
    let metrics: TaskMetrics =
        serde_json::from_slice(&part.metrics_json).map_err(|e| SluiceError::internal(format!("unreadable task metrics: {e}")))?;
    let mut sink_output: SinkTaskOutput = serde_json::from_slice(&part.sink_output_json)
        .map_err(|e| SluiceError::internal(format!("unreadable task sink output: {e}")))?;
    sink_output.rows = (!part.rows.is_empty()).then(|| Bytes::from(part.rows));
    Ok(TaskResult { partition_index, executor_id: exec.id.clone(), endpoint: exec.endpoint.clone(), metrics, sink_output })
}

/// Whether one executor still answers pings, as a stage's tasks on it see it: a probe pings it
/// when the stage starts (so an executor already paused or cut off when the tasks went out is
/// caught one ping timeout later), then every `probe_every` while the stage runs, and stops at
/// the first missed answer or when the stage's last handle is dropped.
#[derive(Debug, Clone)]
struct Liveness {
    answers: tokio::sync::watch::Receiver<bool>,
    _probe: Arc<AbortOnDrop>,
}

/// Aborts the probe task once no task of the stage holds the [`Liveness`] any more.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Liveness {
    fn probe(exec: &ExecutorInfo, every: Duration) -> Self {
        let (tx, answers) = tokio::sync::watch::channel(true);
        let client = exec.client.clone();
        let task = tokio::spawn(async move {
            while answers_ping(client.clone()).await {
                tokio::time::sleep(every).await;
            }
            let _ = tx.send(false);
        });
        Self { answers, _probe: Arc::new(AbortOnDrop(task.abort_handle())) }
    }

    /// Resolves when the executor has missed a ping; pending for as long as it answers.
    async fn lost(&mut self) {
        if self.answers.wait_for(|answers| !answers).await.is_err() {
            // The probe ended without a verdict (aborted with the stage): nothing to report.
            std::future::pending::<()>().await;
        }
    }
}

/// Whether the executor answers a ping within [`PING_TIMEOUT`].
async fn answers_ping(mut client: ExecutorServiceClient<Channel>) -> bool {
    matches!(tokio::time::timeout(PING_TIMEOUT, client.ping(PingRequest {})).await, Ok(Ok(_)))
}

/// Sleeps until `at`, or for ever without one.
async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(partition_index: u32, executor: Option<&str>) -> TaskSpec {
        TaskSpec {
            partition_index,
            kind: TaskKind::Gather { inputs: Vec::new() },
            inline_rows: None,
            executor: executor.map(str::to_string),
        }
    }

    fn shape(calls: &[(usize, Vec<TaskSpec>)]) -> Vec<(usize, Vec<u32>)> {
        calls.iter().map(|(at, tasks)| (*at, tasks.iter().map(|t| t.partition_index).collect())).collect()
    }

    #[test]
    fn pinned_tasks_go_to_their_owner_in_one_call() {
        let owners = ["b", "a", "b", "b", "a"];
        let tasks = owners.iter().enumerate().map(|(p, o)| task(p as u32, Some(o))).collect();
        let calls = calls_of(tasks, &["a", "b"]).unwrap();
        assert_eq!(shape(&calls), [(1, vec![0, 2, 3]), (0, vec![1, 4])]);
    }

    #[test]
    fn unpinned_tasks_go_one_per_call_round_robin() {
        let calls = calls_of((0..5).map(|p| task(p, None)).collect(), &["a", "b"]).unwrap();
        assert_eq!(shape(&calls), [(0, vec![0]), (1, vec![1]), (0, vec![2]), (1, vec![3]), (0, vec![4])]);
    }

    #[test]
    fn a_task_pinned_to_a_lost_executor_fails_the_stage() {
        let err = calls_of(vec![task(0, Some("a")), task(1, Some("gone"))], &["a"]).unwrap_err();
        assert!(err.to_string().contains("executor gone, owner of a state partition, is no longer available"), "{err}");
        assert!(calls_of(vec![task(0, None)], &[]).is_err());
    }

    #[test]
    fn calls_name_their_tasks() {
        assert_eq!(tasks_named(&[3]), "task 3");
        assert_eq!(tasks_named(&[0, 2, 4]), "3 tasks (0, 2, 4)");
        assert_eq!(tasks_named(&[0, 1, 2, 3, 4, 5, 6]), "7 tasks (0, 1, 2, 3, 4, …)");
    }
}
