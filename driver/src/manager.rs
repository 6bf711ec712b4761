//! The queries a driver process runs: submitted jobs, their lifecycle, and — with etcd — the
//! stored definitions that let a new leader resume every query from its checkpoint.

use std::sync::Arc;

use sluice_cluster::etcd::{delete_query, list_queries, put_query};
use sluice_cluster::{EtcdConfig, QueryRecord};
use sluice_common::error::{Result, SluiceError};
use sluice_proto::v1::QueryStatus;
use tokio::sync::Mutex;

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
}

/// Starts, tracks and stops a driver's queries.
pub struct QueryManager {
    session: Session,
    queries: Mutex<Vec<ManagedQuery>>,
    store: Option<Mutex<QueryStore>>,
}

/// A query's status for `sluice queries`.
pub fn status_of(q: &StreamingQuery) -> QueryStatus {
    let (state, error) = match q.state() {
        QueryState::Initializing => ("initializing", String::new()),
        QueryState::Active => ("active", String::new()),
        QueryState::Terminated(None) => ("terminated", String::new()),
        QueryState::Terminated(Some(e)) => ("failed", e.one_line()),
    };
    QueryStatus {
        id: q.id().to_string(),
        name: q.name().unwrap_or_default().to_string(),
        state: state.to_string(),
        error,
        last_progress_json: q.last_progress().map(|p| p.json()).unwrap_or_default(),
        batches_retried: q.batches_retried(),
        state_partitions: q.state_partitions().into_iter().collect(),
    }
}

impl QueryManager {
    /// A manager starting queries on `session`, remembering them in `store` if given.
    pub fn new(session: Session, store: Option<QueryStore>) -> Self {
        Self { session, queries: Mutex::new(Vec::new()), store: store.map(Mutex::new) }
    }

    /// Starts query `record.index` of a job; `replaces` is the stored query it supersedes, and
    /// `took_over` says a new leader is resuming it after its driver died.
    async fn start_one(&self, record: QueryRecord, replaces: Option<String>, took_over: bool) -> Result<StreamingQuery> {
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
        self.queries.lock().await.push(ManagedQuery { query: query.clone(), record });
        Ok(query)
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
            started.push(self.start_one(record, replaces, false).await?);
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
            match self.start_one(record, Some(id.clone()), true).await {
                Ok(q) => {
                    started += 1;
                    tracing::info!(query = %q.id(), "resumed stored query");
                }
                Err(e) => tracing::error!(query = %id, error = %e, "a stored query could not be resumed"),
            }
        }
        Ok(started)
    }

    /// Every query's status, submission order.
    pub async fn statuses(&self) -> Vec<QueryStatus> {
        self.queries.lock().await.iter().map(|m| status_of(&m.query)).collect()
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
        Ok(status_of(&query))
    }

    /// Stops every query after its current batch (their definitions stay stored).
    pub async fn stop_all(&self) {
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
        for m in self.queries.lock().await.iter() {
            m.query.request_stop();
        }
    }

    /// The stored record of each query, for tests and diagnostics.
    pub async fn records(&self) -> Vec<(String, QueryRecord)> {
        self.queries.lock().await.iter().map(|m| (m.query.id().to_string(), m.record.clone())).collect()
    }
}

/// The admin side of the driver's gRPC service: absent in an embedded cluster and on a standby.
#[derive(Default)]
pub struct Admin {
    manager: std::sync::RwLock<Option<Arc<QueryManager>>>,
    /// The leader's endpoint, as seen by a standby.
    leader: std::sync::RwLock<String>,
}

impl Admin {
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
