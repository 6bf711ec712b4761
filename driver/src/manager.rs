//! The queries a driver process runs: submitted jobs, their lifecycle, and — with etcd — the
//! stored definitions that let a new leader resume every query from its checkpoint.
//!
//! A query that fails on something that may pass (a store or broker down for longer than a
//! batch's attempts last) is restarted from its checkpoint with backoff, up to
//! [`RestartPolicy::max_restarts`] times; `sluice queries` shows how often. A query that fails on
//! the user's input or code, or that was stopped, stays down.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sluice_cluster::etcd::{delete_query, list_queries, put_query};
use sluice_cluster::{EtcdConfig, QueryRecord};
use sluice_common::error::{Result, SluiceError};
use sluice_proto::v1::QueryStatus;
use tokio::sync::Mutex;

use crate::query::events::EventHub;
use crate::query::{QueryState, StreamingQuery};
use crate::session::Session;

/// Where submitted queries are remembered across drivers.
pub struct QueryStore {
    client: etcd_client::Client,
    config: EtcdConfig,
}

impl QueryStore {
    /// The store of the cluster in `config`.
    pub fn new(client: etcd_client::Client, config: EtcdConfig) -> Self {
        Self { client, config }
    }
}

struct ManagedQuery {
    query: StreamingQuery,
    record: QueryRecord,
    /// Times this query was restarted after a failure, up to this run.
    restarts: u32,
}

/// When a failed query is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts after which a failing query stays failed.
    pub max_restarts: u32,
    /// Wait before the first restart; doubles per restart up to a minute.
    pub first_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self { max_restarts: 10, first_backoff: Duration::from_secs(1) }
    }
}

impl RestartPolicy {
    fn backoff(&self, restarts: u32) -> Duration {
        (self.first_backoff * 2u32.saturating_pow(restarts)).min(Duration::from_secs(60))
    }
}

/// Starts, tracks and stops a driver's queries.
pub struct QueryManager {
    session: Session,
    queries: Mutex<Vec<ManagedQuery>>,
    store: Option<Mutex<QueryStore>>,
    restarts: RestartPolicy,
    /// Set once the manager stops or abandons its queries: nothing is restarted after that.
    retired: std::sync::atomic::AtomicBool,
    /// Whether a query's final failure is logged: a daemon's queries have nobody else to tell,
    /// while `sluice run` prints the failure itself, as its one line.
    log_failures: bool,
    /// This manager, for the tasks that watch queries to restart them.
    this: Weak<QueryManager>,
}

/// A query's status for `sluice queries`; `restarts` counts its restarts after failures.
pub fn status_of(q: &StreamingQuery, restarts: u32) -> QueryStatus {
    let (state, error) = match q.state() {
        QueryState::Initializing => ("initializing", String::new()),
        QueryState::Active => ("active", String::new()),
        QueryState::Terminated(None) => ("terminated", String::new()),
        QueryState::Terminated(Some(e)) => ("failed", e.one_line()),
    };
    let status = q.status();
    QueryStatus {
        id: q.id().to_string(),
        run_id: q.run_id().to_string(),
        status_message: status.message,
        is_data_available: status.is_data_available,
        is_trigger_active: status.is_trigger_active,
        name: q.name().unwrap_or_default().to_string(),
        state: state.to_string(),
        error,
        last_progress_json: q.last_progress().map(|p| p.json()).unwrap_or_default(),
        batches_retried: q.batches_retried(),
        state_partitions: q.state_partitions().into_iter().collect(),
        restarts,
    }
}

impl QueryManager {
    /// A manager starting queries on `session`, remembering them in `store` if given, and
    /// restarting failed ones under `restarts`.
    pub fn new(session: Session, store: Option<QueryStore>, restarts: RestartPolicy) -> Arc<Self> {
        Self::build(session, store, restarts, false)
    }

    /// A manager as [`QueryManager::new`] that also logs, at error level, every query that
    /// fails for good: a driver daemon's, whose queries nobody watches from a terminal.
    pub fn logging_failures(session: Session, store: Option<QueryStore>, restarts: RestartPolicy) -> Arc<Self> {
        Self::build(session, store, restarts, true)
    }

    fn build(session: Session, store: Option<QueryStore>, restarts: RestartPolicy, log_failures: bool) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            session,
            queries: Mutex::new(Vec::new()),
            store: store.map(Mutex::new),
            restarts,
            retired: std::sync::atomic::AtomicBool::new(false),
            log_failures,
            this: this.clone(),
        })
    }

    /// Starts query `record.index` of a job; `replaces` is the stored query it supersedes,
    /// `took_over` says a new leader is resuming it after its driver died, and `restarts` how
    /// often it was restarted after failures before this run.
    async fn start_one(
        &self,
        record: QueryRecord,
        replaces: Option<String>,
        took_over: bool,
        restarts: u32,
    ) -> Result<StreamingQuery> {
        let mut resolved = self.session.prepare_job(&record.origin, &record.job).await?;
        if record.index >= resolved.len() {
            return Err(SluiceError::user(format!("{} has no query #{}", record.origin, record.index + 1)));
        }
        let r = resolved.swap_remove(record.index);
        {
            let active = self.queries.lock().await;
            if let Some(name) = &r.spec.name {
                if active.iter().any(|m| m.query.is_active() && m.query.name() == Some(name.as_str())) {
                    return Err(SluiceError::user(format!(
                        "Cannot start query with name {name} as a query with that name is already active"
                    )));
                }
            }
        }
        let query = if took_over { self.session.take_over(r).await? } else { self.session.start(r).await? };
        if let Some(store) = &self.store {
            let mut store = store.lock().await;
            let QueryStore { client, config } = &mut *store;
            let id = query.id().to_string();
            if let Some(old) = replaces.filter(|old| *old != id) {
                delete_query(client, config, &old).await?;
            }
            put_query(client, config, &id, &record).await?;
        }
        {
            let mut queries = self.queries.lock().await;
            queries.push(ManagedQuery { query: query.clone(), record: record.clone(), restarts });
            forget_oldest_terminated(&mut queries);
        }
        self.supervise(query.clone(), record, restarts);
        Ok(query)
    }

    /// Watches a query run and, when it fails with an error that may pass, starts it again from
    /// its checkpoint after a backoff — as long as it is still this manager's current run of
    /// the query (not stopped, replaced or abandoned meanwhile) and the policy allows.
    fn supervise(&self, query: StreamingQuery, record: QueryRecord, restarts: u32) {
        let manager = self.this.clone();
        let policy = self.restarts;
        tokio::spawn(async move {
            let Err(e) = query.await_termination().await else { return };
            if !e.retryable {
                // Said at error level: nothing else in a daemon's log tells an operator why a
                // query stopped committing. A run this manager abandoned (it stepped down) fails
                // on its fence, which is no news.
                let tell =
                    manager.upgrade().is_some_and(|m| m.log_failures && !m.retired.load(std::sync::atomic::Ordering::SeqCst));
                if tell {
                    tracing::error!(query = %query.id(), error = %e, "query failed with an error a restart cannot fix; it stays failed until it is submitted again");
                }
                return;
            }
            if restarts >= policy.max_restarts {
                tracing::error!(query = %query.id(), restarts, error = %e, "query failed again; restart limit reached, leaving it failed");
                return;
            }
            let wait = policy.backoff(restarts);
            tracing::warn!(query = %query.id(), restart = restarts + 1, wait_ms = wait.as_millis() as u64, error = %e, "query failed; restarting it from its checkpoint");
            tokio::time::sleep(wait).await;
            let Some(manager) = manager.upgrade() else { return };
            if manager.retired.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            {
                let mut queries = manager.queries.lock().await;
                let Some(i) = queries.iter().position(|m| m.query.run_id() == query.run_id()) else { return };
                // Stopped, or replaced by a later submission, while waiting: nothing to restart.
                let same = |m: &ManagedQuery| {
                    m.query.id() == query.id() || (m.record.job == record.job && m.record.index == record.index)
                };
                if queries.iter().skip(i + 1).any(same) {
                    return;
                }
                queries.remove(i);
            }
            let id = query.id().to_string();
            if let Err(e) = manager.start_one(record, Some(id), false, restarts + 1).await {
                tracing::error!(query = %query.id(), error = %e, "the failed query could not be restarted");
            }
        });
    }

    /// The session queries start from (its memory sinks, connectors and policy).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Validates a whole job, then starts each of its queries. A query submitted under the name
    /// of a stopped or failed one replaces it in the store (it usually resumes its checkpoint).
    pub async fn submit(&self, origin: &str, job: &str) -> Result<Vec<StreamingQuery>> {
        let prepared = self.session.prepare_job(origin, job).await?;
        let mut started = Vec::with_capacity(prepared.len());
        for (index, resolved) in prepared.iter().enumerate() {
            let replaces = match &resolved.spec.name {
                Some(name) => self.inactive_named(name).await,
                None => None,
            };
            let record = QueryRecord { job: job.to_string(), origin: origin.to_string(), index };
            started.push(self.start_one(record, replaces, false, 0).await?);
        }
        Ok(started)
    }

    /// The id of the latest inactive query named `name`, if any.
    async fn inactive_named(&self, name: &str) -> Option<String> {
        let queries = self.queries.lock().await;
        queries
            .iter()
            .rev()
            .find(|m| m.query.name() == Some(name))
            .filter(|m| !m.query.is_active())
            .map(|m| m.query.id().to_string())
    }

    /// Starts every query stored in the cluster (a new leader taking over). A query that cannot
    /// start is logged and left stored, so an operator can see it and fix or stop it.
    pub async fn resume_stored(&self) -> Result<usize> {
        let Some(store) = &self.store else { return Ok(0) };
        let stored = {
            let mut s = store.lock().await;
            let QueryStore { client, config } = &mut *s;
            list_queries(client, config).await?
        };
        let mut started = 0;
        for (id, record) in stored {
            match self.start_one(record, Some(id.clone()), true, 0).await {
                Ok(q) => {
                    started += 1;
                    tracing::info!(query = %q.id(), "resumed stored query");
                }
                Err(e) => tracing::error!(query = %id, error = %e, "a stored query could not be resumed"),
            }
        }
        Ok(started)
    }

    /// Every query this manager remembers — the active ones and the last
    /// [`RETAINED_TERMINATED`] terminated ones — with its restarts, submission order.
    pub async fn queries(&self) -> Vec<(StreamingQuery, u32)> {
        self.queries.lock().await.iter().map(|m| (m.query.clone(), m.restarts)).collect()
    }

    /// The latest run of the query with persistent id `id`, with its restarts.
    pub async fn find(&self, id: uuid::Uuid) -> Option<(StreamingQuery, u32)> {
        self.queries.lock().await.iter().rev().find(|m| m.query.id() == id).map(|m| (m.query.clone(), m.restarts))
    }

    /// Every query's status, submission order.
    pub async fn statuses(&self) -> Vec<QueryStatus> {
        self.queries.lock().await.iter().map(|m| status_of(&m.query, m.restarts)).collect()
    }

    /// Stops the query named or identified by `which` and forgets it.
    pub async fn stop(&self, which: &str) -> Result<QueryStatus> {
        let query = {
            let queries = self.queries.lock().await;
            let found: Vec<&ManagedQuery> =
                queries.iter().filter(|m| m.query.id().to_string() == which || m.query.name() == Some(which)).collect();
            match found.as_slice() {
                [] => return Err(SluiceError::user(format!("no query named or with id '{which}'"))),
                [one] => one.query.clone(),
                more => {
                    // Several runs under one name: the active one, if any.
                    match more.iter().find(|m| m.query.is_active()) {
                        Some(m) => m.query.clone(),
                        None => more[more.len() - 1].query.clone(),
                    }
                }
            }
        };
        if query.is_active() {
            query.request_stop();
            let _ = query.await_termination().await;
        }
        if let Some(store) = &self.store {
            let mut s = store.lock().await;
            let QueryStore { client, config } = &mut *s;
            delete_query(client, config, &query.id().to_string()).await?;
        }
        let restarts = self.queries.lock().await.iter().find(|m| m.query.run_id() == query.run_id()).map_or(0, |m| m.restarts);
        Ok(status_of(&query, restarts))
    }

    /// Stops every query after its current batch (their definitions stay stored).
    pub async fn stop_all(&self) {
        self.retired.store(true, std::sync::atomic::Ordering::SeqCst);
        let queries: Vec<StreamingQuery> = self.queries.lock().await.iter().map(|m| m.query.clone()).collect();
        for q in &queries {
            q.request_stop();
        }
        for q in &queries {
            let _ = q.await_termination().await;
        }
    }

    /// Stops every query without waiting for its batch: this driver stepped down, so each
    /// query's next checkpoint write would be fenced anyway. The runs end on their own at their
    /// next stop check; the stored definitions stay, for the next leader.
    pub async fn abandon_all(&self) {
        self.retired.store(true, std::sync::atomic::Ordering::SeqCst);
        for m in self.queries.lock().await.iter() {
            m.query.request_stop();
        }
    }

    /// The stored record of each query, for tests and diagnostics.
    pub async fn records(&self) -> Vec<(String, QueryRecord)> {
        self.queries.lock().await.iter().map(|m| (m.query.id().to_string(), m.record.clone())).collect()
    }
}

/// Terminated queries a manager keeps showing (Spark UI's `spark.sql.streaming.ui.retainedQueries`).
pub const RETAINED_TERMINATED: usize = 100;

/// Drops the oldest terminated queries beyond [`RETAINED_TERMINATED`].
fn forget_oldest_terminated(queries: &mut Vec<ManagedQuery>) {
    let terminated = queries.iter().filter(|m| !m.query.is_active()).count();
    let mut excess = terminated.saturating_sub(RETAINED_TERMINATED);
    queries.retain(|m| {
        if excess > 0 && !m.query.is_active() {
            excess -= 1;
            return false;
        }
        true
    });
}

/// The admin side of the driver (its gRPC admin calls and HTTP API): the query manager while
/// this driver leads, the leader's address while it stands by, and the listener events of its
/// queries.
#[derive(Default)]
pub struct Admin {
    /// Every query event of this driver, for the HTTP event stream and `sluice queries --watch`.
    pub events: EventHub,
    /// The executors this driver schedules on, once it runs.
    registry: std::sync::RwLock<Option<crate::ExecutorRegistry>>,
    manager: std::sync::RwLock<Option<Arc<QueryManager>>>,
    /// The leader's endpoint, as seen by a standby.
    leader: std::sync::RwLock<String>,
    /// Set once the driver is shutting down.
    stopping: std::sync::atomic::AtomicBool,
    /// This driver's advertised endpoint.
    endpoint: std::sync::RwLock<String>,
}

impl Admin {
    /// Whether this driver can serve (its readiness probe): it leads and runs the queries, or
    /// it stands by with a lease and knows the leader (admin calls are forwarded there) — and
    /// it is not shutting down.
    pub fn ready(&self) -> bool {
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let leads = self.manager.read().map(|m| m.is_some()).unwrap_or(false);
        leads || !self.leader().is_empty()
    }

    /// Records the executors this driver schedules on (for the executors page and metrics).
    pub fn set_registry(&self, registry: crate::ExecutorRegistry) {
        if let Ok(mut r) = self.registry.write() {
            *r = Some(registry);
        }
    }

    /// The executors this driver schedules on, once it runs.
    pub fn registry(&self) -> Option<crate::ExecutorRegistry> {
        self.registry.read().ok().and_then(|r| r.clone())
    }

    /// Records the endpoint this driver advertises (what it reports as leader when it leads).
    pub fn set_endpoint(&self, endpoint: &str) {
        if let Ok(mut e) = self.endpoint.write() {
            *e = endpoint.to_string();
        }
    }

    /// The endpoint this driver advertises ("" if not recorded).
    pub fn endpoint(&self) -> String {
        self.endpoint.read().map(|e| e.clone()).unwrap_or_default()
    }

    /// The driver is shutting down: it reports unready from now on.
    pub fn set_stopping(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes this driver's queries manageable (it is the leader, or there is no election).
    pub fn activate(&self, manager: Arc<QueryManager>) {
        if let Ok(mut m) = self.manager.write() {
            *m = Some(manager);
        }
    }

    /// This driver stopped managing queries (it stepped down): admin calls are refused until it
    /// leads again.
    pub fn deactivate(&self) {
        if let Ok(mut m) = self.manager.write() {
            *m = None;
        }
    }

    /// Records who leads, for standby answers.
    pub fn set_leader(&self, endpoint: &str) {
        if let Ok(mut l) = self.leader.write() {
            *l = endpoint.to_string();
        }
    }

    /// The manager, or an error telling the caller where the leader is.
    pub fn manager(&self) -> Result<Arc<QueryManager>> {
        if let Some(m) = self.manager.read().ok().and_then(|m| m.clone()) {
            return Ok(m);
        }
        let leader = self.leader();
        if leader.is_empty() {
            Err(SluiceError::external("this driver is not managing queries (standby, or still starting)"))
        } else {
            Err(SluiceError::external(format!("this driver is a standby; the leader is at {leader}")))
        }
    }

    /// The leader's endpoint ("" if unknown).
    pub fn leader(&self) -> String {
        self.leader.read().map(|l| l.clone()).unwrap_or_default()
    }
}
