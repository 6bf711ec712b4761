//! The executor process: its gRPC service, registration with the driver and heartbeats, and
//! its graceful shutdown.
//!
//! On SIGTERM an executor *decommissions* (Spark's word): it tells the driver — in its etcd
//! record, or in its heartbeats — and keeps serving, so the batch in flight finishes with its
//! tasks, shuffle blocks and state partitions where they are; the leading driver gives it no new
//! batch, moves its state partitions at the next batch boundary, and dismisses it once nothing
//! in flight needs it. Then it exits, revoking its registration. A driver that never answers
//! (none leads) cannot hold it past its drain timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{AbortHandle, AbortRegistration, Abortable};
use futures::FutureExt;
use sluice_cluster::etcd::register_executor;
use sluice_cluster::{EtcdConfig, ExecutorRecord, LeaseSession};
use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchContext;
use sluice_connectors::{Connectors, InProcessIo};
use sluice_plan::TaskKind;
use sluice_proto::v1::driver_service_client::DriverServiceClient;
use sluice_proto::v1::executor_service_server::{ExecutorService, ExecutorServiceServer};
use sluice_proto::v1::{
    task_response, AwaitStateWritesRequest, AwaitStateWritesResponse, DismissRequest, DismissResponse, HeartbeatRequest,
    OperatorWriteTime, PingRequest, PingResponse, RegisterExecutorRequest, ReleaseQueryRequest, ReleaseQueryResponse, TaskPart,
    TaskPartSuccess, TaskRequest, TaskResponse, TaskSuccess,
};
use sluice_proto::wire::error_to_proto;
use sluice_proto::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION, SHUTDOWN_GRACE};
use sluice_security::tls::ClientAuth;
use sluice_security::{Audience, AuthorizeLayer, Guard, Transport};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::call_commits::{CallCommits, StateWrites};
use crate::compute::{computes_rows, off_async_workers};
use crate::metrics::{ExecutorMeter, ExecutorMetrics};
use crate::query_cache::{PreparedQuery, QueryCache};
use crate::shuffle::{BlockStore, Neighbours, Peers, ShuffleService};
use crate::state_cache::StateCache;
use crate::task_runner::{run_task, TaskContext, TaskEnv, TaskOutcome};
use crate::task_slot::{SlotPools, TaskSlot};
use crate::term_fence::TermFence;

/// How an executor is started.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// The driver's gRPC endpoint, e.g. `http://127.0.0.1:7077`.
    pub driver_endpoint: String,
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Tasks run at once, in each of the two slot pools ([`SlotPools`]: map tasks have a pool of
    /// their own, so a batch's map stage can run ahead beside the previous batch's reduce tasks).
    pub task_slots: usize,
    /// Stable id; a random one when absent.
    pub executor_id: Option<String>,
    /// Interval between heartbeats.
    pub heartbeat_interval: Duration,
    /// Address the driver and other executors use to reach this one (default: the bound one).
    pub advertise: Option<String>,
    /// Register in etcd (with a lease) instead of with the driver directly.
    pub etcd: Option<EtcdConfig>,
    /// TLS (only members may connect, and this executor presents its member certificate to
    /// the driver and to peers) or plain text.
    pub transport: Transport,
    /// Where the executor's metrics go: the process's registry (its `/metrics`), shared by
    /// every executor of the process, or families registered nowhere.
    pub metrics: ExecutorMetrics,
    /// The executors of this process whose shuffle blocks tasks read from memory, this one
    /// joining them (an embedded cluster's executors share one); `None`: every peer's blocks
    /// come over Flight.
    pub neighbours: Option<Arc<Neighbours>>,
}

impl ExecutorConfig {
    /// Defaults for an executor of the driver at `driver_endpoint` on this machine.
    pub fn local(driver_endpoint: impl Into<String>) -> Self {
        Self {
            driver_endpoint: driver_endpoint.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            task_slots: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            executor_id: None,
            heartbeat_interval: Duration::from_secs(1),
            advertise: None,
            etcd: None,
            transport: Transport::Plain,
            metrics: ExecutorMetrics::default(),
            neighbours: None,
        }
    }
}

struct Service {
    queries: QueryCache,
    /// Turns true when the driver dismisses this (decommissioning) executor.
    dismissed: watch::Sender<bool>,
    /// Refuses tasks of deposed leaders.
    fence: Arc<TermFence>,
    /// What tasks use: task slots, blocks, state partitions, this executor's endpoint (blocks
    /// produced here are read locally), connections to the other executors, and this
    /// executor's metrics (which its ping answer reads back).
    resources: TaskResources,
    /// The state bundles calls are still writing.
    state_writes: StateWrites,
}

#[tonic::async_trait]
impl ExecutorService for Service {
    async fn run_task(&self, request: Request<TaskRequest>) -> Result<Response<TaskResponse>, Status> {
        let req = request.into_inner();
        if let Err(e) = self.fence.admit(req.leader_term) {
            tracing::warn!(task = %req.task_id, term = req.leader_term, newest = self.fence.newest(), "refused a task of a deposed leader");
            self.resources.meter.task_refused();
            return Ok(Response::new(TaskResponse { outcome: Some(task_response::Outcome::Error(error_to_proto(&e))) }));
        }
        let (task_id, batch) = (req.task_id.clone(), req.batch.as_ref().map(|b| b.batch_id));
        // A panic (a bug, ours or a library's) fails the request, not the executor.
        let outcome = match std::panic::AssertUnwindSafe(self.execute(req)).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => Err(task_panicked(panic)),
        };
        // Whatever the tasks did to this executor's state partitions (checked one out, or failed
        // and left it to reload) shows in the count before the driver hears the outcome.
        self.resources.meter.set_state_partitions(self.resources.states.partitions());
        let response = match outcome {
            Ok(success) => TaskResponse { outcome: Some(task_response::Outcome::Success(success)) },
            Err(e) => {
                tracing::warn!(task = %task_id, batch, error = %e, "task failed");
                TaskResponse { outcome: Some(task_response::Outcome::Error(error_to_proto(&e))) }
            }
        };
        Ok(Response::new(response))
    }

    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        let stats = self.resources.meter.stats();
        Ok(Response::new(PingResponse {
            tasks_running: stats.tasks_running,
            tasks_succeeded: stats.tasks_succeeded,
            tasks_failed: stats.tasks_failed,
            state_partitions: stats.state_partitions,
            rss_bytes: sluice_common::process::resident_memory_bytes().unwrap_or(0),
            task_slots: stats.task_slots,
        }))
    }

    async fn dismiss(&self, _request: Request<DismissRequest>) -> Result<Response<DismissResponse>, Status> {
        tracing::info!("dismissed by the driver: no batch in flight needs this executor");
        self.dismissed.send_replace(true);
        Ok(Response::new(DismissResponse {}))
    }

    async fn release_query(&self, request: Request<ReleaseQueryRequest>) -> Result<Response<ReleaseQueryResponse>, Status> {
        let req = request.into_inner();
        if req.partitions.is_empty() {
            self.release_run(&req.query_run_id).await;
        } else {
            let parts: Vec<(usize, u32)> = req.partitions.iter().map(|p| (p.operator as usize, p.partition)).collect();
            tracing::debug!(run = %req.query_run_id, partitions = parts.len(), "releasing state partitions that moved away");
            self.resources.states.release_partitions(&req.query_run_id, &parts);
            self.resources.meter.state_partitions_released(&req.query_run_id, &parts);
            self.resources.meter.set_state_partitions(self.resources.states.partitions());
        }
        Ok(Response::new(ReleaseQueryResponse {}))
    }

    async fn await_state_writes(
        &self,
        request: Request<AwaitStateWritesRequest>,
    ) -> Result<Response<AwaitStateWritesResponse>, Status> {
        let req = request.into_inner();
        let response = match self.state_writes.wait(&req.query_run_id, &req.bundles).await {
            Ok(times) => AwaitStateWritesResponse {
                error: None,
                writes: times.into_iter().map(|(operator, ms)| OperatorWriteTime { operator: operator as u32, ms }).collect(),
            },
            Err(e) => {
                tracing::warn!(run = %req.query_run_id, error = %e, "state bundles were not written");
                AwaitStateWritesResponse { error: Some(error_to_proto(&e)), writes: Vec::new() }
            }
        };
        Ok(Response::new(response))
    }
}

impl Service {
    /// Drops everything held for a run: its plan, shuffle blocks and state partitions.
    async fn release_run(&self, run: &str) {
        tracing::debug!(%run, "releasing a query run");
        self.queries.release(run).await;
        self.resources.blocks.release(run);
        self.forget_state(run);
    }

    /// Drops a run's state partitions, and their metrics with them, and forgets its bundle writes.
    fn forget_state(&self, run: &str) {
        self.resources.states.release(run);
        self.state_writes.release(run);
        self.resources.meter.query_run_released(run);
        self.resources.meter.set_state_partitions(self.resources.states.partitions());
    }

    /// Runs a request's parts, each on its own tokio task (so they use every core) once it
    /// holds a task slot; the first failure cancels the others and fails the request, as a
    /// dropped call (the driver gave up) cancels them all.
    async fn execute(&self, req: TaskRequest) -> Result<TaskSuccess> {
        let prepared = self.queries.get_or_prepare(&req.query_run_id, req.spec_hash, &req.query_spec_json).await?;
        for run in &prepared.superseded {
            tracing::info!(%run, new_run = %req.query_run_id, "a new run of the query started here; releasing the old one");
            self.resources.blocks.release(run);
            self.forget_state(run);
        }
        self.resources.blocks.learn_key(&req.query_run_id, &req.shuffle_key);
        let batch = req.batch.as_ref().ok_or_else(|| SluiceError::internal("task from the driver has no batch context"))?;
        let request = Arc::new(RequestCx {
            query: prepared.query,
            run_id: req.query_run_id,
            batch: batch.into(),
            task_id: req.task_id,
            shuffle_key: req.shuffle_key,
            commits: CallCommits::default(),
        });
        let mut cancels = Vec::with_capacity(req.parts.len());
        let handles: Vec<tokio::task::JoinHandle<Result<TaskOutcome>>> = req
            .parts
            .into_iter()
            .enumerate()
            // Boxed: a part's future is large, and tokio moves an unboxed future (and each stage
            // of its task) by value — memmoves that were ~6% of a small batch's CPU.
            .map(|(i, part)| {
                let (cancel, registration) = AbortHandle::new_pair();
                cancels.push(cancel);
                tokio::spawn(Box::pin(self.resources.clone().run_part(Arc::clone(&request), i, part, registration)))
            })
            .collect();
        let _cancel_on_drop = AbortAll { tasks: handles.iter().map(|h| h.abort_handle()).collect(), admitted: cancels };
        let mut outcomes = futures::future::try_join_all(handles.into_iter().map(|h| async move {
            match h.await {
                Ok(part) => part,
                Err(e) if e.is_panic() => Err(task_panicked(e.into_panic())),
                Err(_) => Err(task_cancelled()),
            }
        }))
        .await?;
        // Every part has succeeded: the call's state commits are all staged. Their bundles are
        // written while the batch goes on; the driver waits for them before the manifests.
        if request.commits.any_staged() {
            let checkpoint = sluice_common::storage::resolve(&request.query.compiled.spec.checkpoint_url)?;
            let id = format!("{}-{}", request.batch.attempt, uuid::Uuid::new_v4().simple());
            let version = request.batch.id.state_to_write().0;
            let deltas = request.commits.start_write(
                &checkpoint,
                version,
                &id,
                &self.state_writes,
                (&request.run_id, request.batch.id.0),
            )?;
            for (part, delta) in deltas {
                if let Some(o) = outcomes.get_mut(part) {
                    o.metrics.state_deltas.push(delta);
                }
            }
        }
        let parts = outcomes.into_iter().map(part_success).collect::<Result<Vec<_>>>()?;
        Ok(TaskSuccess { parts })
    }
}

/// A part's outcome as the driver reads it.
fn part_success(outcome: TaskOutcome) -> Result<TaskPartSuccess> {
    Ok(TaskPartSuccess {
        metrics_json: serde_json::to_vec(&outcome.metrics)?,
        sink_output_json: serde_json::to_vec(&outcome.sink_output)?,
        rows: outcome.sink_output.rows.map(|b| b.to_vec()).unwrap_or_default(),
    })
}

/// The error a cancelled task fails with.
fn task_cancelled() -> SluiceError {
    SluiceError::internal("task was cancelled")
}

/// The error a panicking task fails with, quoting the panic's message.
fn task_panicked(panic: Box<dyn std::any::Any + Send>) -> SluiceError {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    SluiceError::internal(format!("task panicked: {what}"))
}

/// What the parts of one request share.
struct RequestCx {
    query: Arc<PreparedQuery>,
    run_id: String,
    batch: BatchContext,
    task_id: String,
    shuffle_key: String,
    /// The parts' state commits, written when they have all succeeded.
    commits: CallCommits,
}

/// Aborts a request's part tasks when the request ends early (a part failed, or the call was
/// dropped); finished ones are unaffected. A part waiting for its slot is aborted as a tokio
/// task; one that holds its slot runs off the async workers ([`off_async_workers`]), where only
/// its own abort handle reaches it, at its next await.
struct AbortAll {
    tasks: Vec<tokio::task::AbortHandle>,
    admitted: Vec<AbortHandle>,
}

impl Drop for AbortAll {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::AbortHandle::abort);
        self.admitted.iter().for_each(AbortHandle::abort);
    }
}

/// The executor's resources a task uses, owned so that a part can run on a task of its own.
#[derive(Clone)]
struct TaskResources {
    slots: SlotPools,
    blocks: Arc<BlockStore>,
    states: Arc<StateCache>,
    endpoint: Arc<str>,
    peers: Arc<Peers>,
    meter: ExecutorMeter,
}

impl TaskResources {
    /// Runs the part at `position` in its request once a task slot is free.
    /// `cancel` stops it once it holds its slot (see [`AbortAll`]).
    async fn run_part(
        self,
        request: Arc<RequestCx>,
        position: usize,
        part: TaskPart,
        cancel: AbortRegistration,
    ) -> Result<TaskOutcome> {
        let kind: TaskKind = serde_json::from_slice(&part.task_kind_json)
            .map_err(|e| SluiceError::internal(format!("task description from the driver is unreadable: {e}")))?;
        let slot = TaskSlot::acquire(self.slots.for_kind(&kind)).await?;
        // Counted from here: a cancelled part drops the guard, and counts as failed.
        let running = self.meter.task_started();
        let computes = computes_rows(&kind);
        let admitted = Abortable::new(self.run_admitted(&request, position, kind, part, &slot), cancel);
        let outcome = if computes { off_async_workers(admitted).await } else { admitted.await };
        let outcome = outcome.unwrap_or_else(|_| Err(task_cancelled()));
        running.finish(outcome.is_ok());
        outcome
    }

    async fn run_admitted(
        &self,
        request: &RequestCx,
        position: usize,
        kind: TaskKind,
        part: TaskPart,
        slot: &TaskSlot,
    ) -> Result<TaskOutcome> {
        let ctx = TaskContext { run_id: request.run_id.clone(), batch: request.batch, partition_index: part.partition_index };
        let env = TaskEnv {
            blocks: &self.blocks,
            states: &self.states,
            endpoint: &self.endpoint,
            peers: &self.peers,
            shuffle_key: &request.shuffle_key,
            meter: &self.meter,
            slot,
            commits: &request.commits,
            part: position,
        };
        let started = std::time::Instant::now();
        let outcome = run_task(&request.query, &kind, &part.inline_rows, &ctx, &env)
            .await
            .map_err(|e| e.context(format!("batch {} task {}", ctx.batch.id, part.partition_index)))?;
        tracing::debug!(
            task = %request.task_id,
            batch = ctx.batch.id.0,
            stage = kind_name(&kind),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "task finished"
        );
        Ok(outcome)
    }
}

/// The kind of a task, for logs.
fn kind_name(kind: &TaskKind) -> String {
    match kind {
        TaskKind::Stateless { .. } => "stateless".into(),
        TaskKind::Map { .. } => "map".into(),
        TaskKind::Reduce { op, partition, .. } => format!("reduce op {op} partition {partition}"),
        TaskKind::Gather { .. } => "gather".into(),
    }
}

/// What an executor's readiness probe reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecutorStatus {
    /// Registered (with the driver, or in etcd) and serving.
    pub registered: bool,
    /// Shutting down: finishing what is in flight, taking no new batches.
    pub decommissioning: bool,
}

impl ExecutorStatus {
    /// Whether the executor can take new work, or why not.
    pub fn readiness(&self) -> std::result::Result<(), &'static str> {
        match (self.registered, self.decommissioning) {
            (_, true) => Err("decommissioning"),
            (false, _) => Err("not registered with the cluster yet"),
            (true, false) => Ok(()),
        }
    }
}

/// How a decommissioned executor's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// The driver dismissed it and its running tasks finished: nothing was cut short.
    Dismissed,
    /// No driver leads the cluster (or, without etcd, the driver does not answer), so no batch
    /// can be using it.
    NoDriver,
    /// The drain timeout passed first (a batch ran too long, or the driver never answered).
    TimedOut,
}

/// Resolves once no driver can be waiting for this executor: with etcd, when no driver holds
/// the leadership (checked every half second); without, when heartbeats stop reaching the driver.
async fn no_driver(etcd: Option<EtcdConfig>, mut status: watch::Receiver<ExecutorStatus>) {
    match etcd {
        Some(config) => loop {
            if let Ok(None) = sluice_cluster::etcd::leader_endpoint(&config).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        },
        None => {
            let _ = status.wait_for(|s| !s.registered).await;
        }
    }
}

/// A running executor.
pub struct ExecutorHandle {
    /// The id it registered with.
    pub id: String,
    /// Where the driver reaches it.
    pub endpoint: String,
    status: watch::Receiver<ExecutorStatus>,
    decommissioning: watch::Sender<bool>,
    dismissed: watch::Receiver<bool>,
    slots: SlotPools,
    /// The cluster's etcd, if it registers there: where a draining executor checks for a leader.
    etcd: Option<EtcdConfig>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Its metrics, removed from the process's `/metrics` when it stops.
    meter: ExecutorMeter,
    /// The executors of this process it joined, left when it stops.
    neighbours: Option<Arc<Neighbours>>,
}

impl ExecutorHandle {
    /// Starts serving and registers with the driver (retrying until the driver answers).
    pub async fn start(config: ExecutorConfig) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.bind).await.map_err(|e| {
            SluiceError::external(format!("executor cannot listen on {}: {e}", config.bind)).with_retryable(false)
        })?;
        let addr = listener.local_addr()?;
        let endpoint = config.advertise.clone().unwrap_or_else(|| config.transport.url(addr));
        let id = config.executor_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let (shutdown, mut stop_rx) = watch::channel(false);
        let blocks = Arc::new(BlockStore::default());
        let slots = SlotPools::new(config.task_slots);
        let (dismissed_tx, dismissed) = watch::channel(false);
        let (decommissioning, _) = watch::channel(false);
        let (status_tx, status) = watch::channel(ExecutorStatus::default());
        let fence = Arc::new(TermFence::default());
        let meter = ExecutorMeter::new(config.metrics.clone(), id.clone());
        meter.set_task_slots(config.task_slots.max(1));
        let states = Arc::new(StateCache::default());
        tokio::spawn(state_maintenance(Arc::clone(&states), shutdown.subscribe()));
        let service = Service {
            queries: QueryCache::new(Connectors::builtin(&InProcessIo::default())),
            dismissed: dismissed_tx,
            fence: Arc::clone(&fence),
            resources: TaskResources {
                slots: slots.clone(),
                blocks: Arc::clone(&blocks),
                states,
                endpoint: Arc::from(endpoint.as_str()),
                peers: Arc::new(Peers::new(config.transport.clone(), config.neighbours.clone())),
                meter: meter.clone(),
            },
            state_writes: StateWrites::default(),
        };
        let server_svc = ExecutorServiceServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        // Shuffle blocks are served over Arrow Flight on the same port.
        if let Some(neighbours) = &config.neighbours {
            neighbours.join(&endpoint, Arc::clone(&blocks));
        }
        let flight_svc = arrow_flight::flight_service_server::FlightServiceServer::new(ShuffleService { blocks })
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        // Only cluster members may connect (with TLS); every call is for members.
        let incoming = config.transport.incoming(listener, ClientAuth::MembersOnly)?;
        let guard = Guard::new(config.transport.tls().cloned(), None, |_| Audience::Members);
        let server = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .layer(AuthorizeLayer::new(guard))
                .add_service(server_svc)
                .add_service(flight_svc)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "executor gRPC server stopped");
            }
        });
        let signals =
            RegistrationSignals { stop: shutdown.subscribe(), decommissioning: decommissioning.subscribe(), status: status_tx };
        let heartbeat = match &config.etcd {
            Some(etcd) => {
                let record = ExecutorRecord {
                    id: id.clone(),
                    endpoint: endpoint.clone(),
                    task_slots: config.task_slots,
                    decommissioning: false,
                };
                tokio::spawn(follow_leader_term(etcd.clone(), fence, shutdown.subscribe()));
                tokio::spawn(etcd_registration_loop(etcd.clone(), record, signals))
            }
            None => tokio::spawn(heartbeat_loop(config.clone(), id.clone(), endpoint.clone(), signals)),
        };
        tracing::info!(executor = %id, %endpoint, driver = %config.driver_endpoint, slots = config.task_slots, "executor started");
        let etcd = config.etcd.clone();
        let neighbours = config.neighbours.clone();
        Ok(Self { id, endpoint, status, decommissioning, dismissed, slots, etcd, shutdown, server, heartbeat, meter, neighbours })
    }

    /// Registration and readiness, as they change (for the readiness probe).
    pub fn status(&self) -> watch::Receiver<ExecutorStatus> {
        self.status.clone()
    }

    /// Shuts down gracefully: announces it is decommissioning, keeps serving until the driver
    /// dismisses it and its running tasks end — or until `timeout` — then stops. With no driver
    /// to dismiss it (none leads, or the driver is unreachable: the whole cluster is going down)
    /// nothing can need it, and it stops at once.
    pub async fn decommission(self, timeout: Duration) -> DrainOutcome {
        tracing::info!(executor = %self.id, timeout_s = timeout.as_secs_f64(), "decommissioning: finishing the work in flight");
        self.decommissioning.send_replace(true);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut dismissed = self.dismissed.clone();
        let drained = async {
            let _ = dismissed.wait_for(|d| *d).await;
            // Dismissed: no attempt uses this executor, so any task still running here belongs
            // to an attempt that already failed; let it end rather than cut it.
            self.slots.idle().await;
        };
        let orphaned = no_driver(self.etcd.clone(), self.status.clone());
        let outcome = match tokio::time::timeout_at(deadline, async {
            tokio::select! {
                _ = drained => DrainOutcome::Dismissed,
                _ = orphaned => {
                    tracing::info!(executor = %self.id, "no driver leads the cluster: nothing can need this executor; stopping");
                    DrainOutcome::NoDriver
                }
            }
        })
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(executor = %self.id, "drain timeout passed before the driver dismissed this executor; stopping anyway");
                DrainOutcome::TimedOut
            }
        };
        self.shutdown().await;
        outcome
    }

    /// Stops serving and waits for the server to finish; the registration ends with it (the
    /// etcd lease is revoked).
    pub async fn shutdown(self) {
        self.leave_neighbours();
        let _ = self.shutdown.send(true);
        // The registration loop revokes its lease when told to stop; give it a moment.
        let mut heartbeat = self.heartbeat;
        if tokio::time::timeout(Duration::from_secs(2), &mut heartbeat).await.is_err() {
            heartbeat.abort();
        }
        // In-flight calls finish, within SHUTDOWN_GRACE.
        let mut server = self.server;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
            tracing::warn!("connections still open {} s after stopping; closing them", SHUTDOWN_GRACE.as_secs());
            server.abort();
        }
        self.meter.forget();
    }

    /// Stops offering its blocks to the executors of this process: a stopped executor's blocks
    /// are gone for them as for remote peers.
    fn leave_neighbours(&self) {
        if let Some(n) = &self.neighbours {
            n.leave(&self.endpoint);
        }
    }

    /// Waits until the executor stops (its server ends).
    pub async fn wait(mut self) {
        let _ = (&mut self.server).await;
        self.leave_neighbours();
        self.heartbeat.abort();
        self.meter.forget();
    }
}

/// What the registration loops watch and report.
struct RegistrationSignals {
    /// Turns true when the executor stops.
    stop: watch::Receiver<bool>,
    /// Turns true when the executor starts decommissioning.
    decommissioning: watch::Receiver<bool>,
    /// Where the loop reports registration (for readiness).
    status: watch::Sender<ExecutorStatus>,
}

impl RegistrationSignals {
    fn report(&self, registered: bool) {
        let decommissioning = *self.decommissioning.borrow();
        self.status.send_if_modified(|s| {
            let new = ExecutorStatus { registered, decommissioning };
            std::mem::replace(s, new) != new
        });
    }
}

/// How often the state maintenance looks for partitions whose maintenance interval has
/// passed: a round that finds none is a walk over the cached partitions, nothing more.
const MAINTENANCE_TICK: Duration = Duration::from_millis(100);

/// The executor's state maintenance (Spark's maintenance task), until the executor stops.
async fn state_maintenance(states: Arc<StateCache>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(MAINTENANCE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tokio::select! {
            changed = stop.changed() => if changed.is_err() { return },
            _ = tick.tick() => states.maintain().await,
        }
    }
}

/// Reads the current leader's term from etcd every second into `fence`, so a deposed leader's
/// tasks are refused even before the new leader's first task arrives here.
async fn follow_leader_term(config: EtcdConfig, fence: Arc<TermFence>, mut stop: watch::Receiver<bool>) {
    let mut client = None;
    loop {
        if client.is_none() {
            client = sluice_cluster::etcd::connect(&config).await.ok();
        }
        if let Some(c) = client.as_mut() {
            match sluice_cluster::etcd::leader_term(c, &config).await {
                Ok(Some(term)) => fence.observe(term.max(0) as u64),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the leader's term in etcd; retrying");
                    client = None;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Keeps this executor registered in etcd under a live lease, re-registering with a new lease
/// whenever the old one is lost (etcd unreachable for longer than the TTL), and republishing its
/// record when it starts decommissioning.
async fn etcd_registration_loop(config: EtcdConfig, mut record: ExecutorRecord, mut signals: RegistrationSignals) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if *signals.stop.borrow() {
            return;
        }
        record.decommissioning = *signals.decommissioning.borrow();
        let attempt = async {
            let mut session = LeaseSession::start(&config).await?;
            register_executor(&mut session, &config, &record).await?;
            Ok::<_, SluiceError>(session)
        };
        match attempt.await {
            Ok(mut session) => {
                tracing::info!(executor = %record.id, "registered in etcd");
                signals.report(true);
                backoff = Duration::from_millis(200);
                let mut lost = session.lost();
                enum Event {
                    LeaseLost,
                    Stop,
                    Decommission,
                }
                let stopping = loop {
                    let event = tokio::select! {
                        _ = lost.wait_for(|l| *l) => Event::LeaseLost,
                        _ = signals.stop.wait_for(|s| *s) => Event::Stop,
                        Ok(()) = signals.decommissioning.changed(), if !record.decommissioning => Event::Decommission,
                    };
                    match event {
                        Event::LeaseLost => break false,
                        Event::Stop => break true,
                        // `decommissioning` only ever turns true.
                        Event::Decommission => {
                            record.decommissioning = true;
                            signals.report(true);
                            if let Err(e) = register_executor(&mut session, &config, &record).await {
                                // The driver then learns it when the lease goes, later.
                                tracing::warn!(executor = %record.id, error = %e, "could not publish that this executor is decommissioning");
                            }
                        }
                    }
                };
                if stopping {
                    signals.report(false);
                    session.close().await;
                    return;
                }
                signals.report(false);
                tracing::warn!(executor = %record.id, "etcd lease lost; registering again");
            }
            Err(e) => {
                tracing::warn!(executor = %record.id, error = %e, "cannot register in etcd; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = signals.stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Registers, then heartbeats (saying when it decommissions, at once); re-registers whenever the
/// driver forgets us or restarts.
async fn heartbeat_loop(config: ExecutorConfig, id: String, endpoint: String, mut signals: RegistrationSignals) {
    let mut registered = false;
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    let mut client: Option<DriverServiceClient<tonic::transport::Channel>> = None;
    loop {
        if *signals.stop.borrow() {
            return;
        }
        let decommissioning = *signals.decommissioning.borrow();
        let step = async {
            if client.is_none() {
                let target = config.transport.endpoint(&config.driver_endpoint).map_err(|e| e.one_line())?;
                let channel = config.transport.connect(target).await.map_err(|e| e.to_string())?;
                client = Some(DriverServiceClient::new(channel));
            }
            let Some(client) = client.as_mut() else { return Err("no driver connection".to_string()) };
            if !registered {
                let resp = client
                    .register_executor(RegisterExecutorRequest {
                        protocol_version: PROTOCOL_VERSION,
                        endpoint: endpoint.clone(),
                        task_slots: config.task_slots as u32,
                        executor_id: id.clone(),
                    })
                    .await
                    .map_err(|e| e.message().to_string())?
                    .into_inner();
                if resp.protocol_version != PROTOCOL_VERSION {
                    return Err(format!(
                        "driver speaks protocol {} but this executor speaks {PROTOCOL_VERSION}",
                        resp.protocol_version
                    ));
                }
                tracing::info!(executor = %id, "registered with the driver");
                return Ok(true);
            }
            let resp = client
                .heartbeat(HeartbeatRequest { executor_id: id.clone(), decommissioning })
                .await
                .map_err(|e| e.message().to_string())?
                .into_inner();
            Ok(!resp.reregister)
        };
        let wait = match step.await {
            Ok(ok) => {
                registered = ok;
                failures = 0;
                backoff = Duration::from_millis(100);
                config.heartbeat_interval
            }
            Err(e) => {
                // A driver that is restarting is normal; one that stays out of reach (or refuses
                // this executor's certificate) is worth an operator's attention.
                failures += 1;
                if failures.is_multiple_of(10) {
                    tracing::warn!(executor = %id, error = %e, attempts = failures, "cannot register with the driver; retrying");
                } else {
                    tracing::debug!(executor = %id, error = %e, "driver not reachable; retrying");
                }
                registered = false;
                client = None;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                backoff
            }
        };
        signals.report(registered);
        // A heartbeat goes out at once when decommissioning starts.
        let announce = !decommissioning;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = signals.stop.changed() => {}
            Ok(()) = signals.decommissioning.changed(), if announce => {}
        }
    }
}
