//! A client's session: its settings, temporary views, the queries it started and the batches
//! its foreachBatch workers read — keyed by the `session_id` every request carries.
//!
//! Requests of one session arrive concurrently (a foreachBatch worker's reads arrive while the
//! session's own `start()` or `awaitTermination` waits), so each piece of state has its own
//! short lock and none is held across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use sluice_driver::batch::MemoryRelation;
use sluice_driver::StreamingQuery;

use crate::proto::Relation;

/// Settings a fresh session answers with (what PySpark asks for before its first plan).
pub const DEFAULT_CONF: &[(&str, &str)] = &[
    ("spark.sql.session.timeZone", "UTC"),
    ("spark.sql.timestampType", "TIMESTAMP_LTZ"),
    ("spark.sql.session.localRelationCacheThreshold", "67108864"),
    ("spark.sql.repl.eagerEval.enabled", "false"),
    ("spark.sql.repl.eagerEval.maxNumRows", "20"),
    ("spark.sql.repl.eagerEval.truncate", "20"),
    ("spark.sql.execution.arrow.useLargeVarTypes", "false"),
    ("spark.sql.execution.pandas.inferPandasDictAsMap", "false"),
    ("spark.sql.execution.pandas.structHandlingMode", "legacy"),
    ("spark.sql.execution.pandas.convertToArrowArraySafely", "false"),
    ("spark.sql.pyspark.inferNestedDictAsStruct.enabled", "false"),
    ("spark.sql.pyspark.legacy.inferArrayTypeFromFirstElement.enabled", "false"),
    ("spark.sql.pyspark.legacy.inferMapTypeFromFirstPair.enabled", "false"),
    ("spark.python.sql.dataFrameDebugging.enabled", "false"),
    ("spark.sql.shuffle.partitions", "200"),
    ("spark.sql.ansi.enabled", "false"),
    ("spark.sql.warehouse.dir", "spark-warehouse"),
];

/// One query a session started, with what ends with it.
pub struct SessionQuery {
    /// The query.
    pub query: StreamingQuery,
    /// Its sink's output schema (a memory sink's table before its first batch).
    pub memory: Option<MemoryRelation>,
    /// The id of its foreachBatch function, if it has one.
    pub batch_function: Option<String>,
    /// Whether `resetTerminated` cleared it from `awaitAnyTermination`.
    pub reset: bool,
    /// The job text it runs (what `explain()` shows).
    pub job_text: String,
}

/// The state of one client session.
pub struct ClientSession {
    /// The client's session id (a UUID it chose).
    pub id: String,
    /// The client's user id.
    pub user_id: String,
    conf: Mutex<BTreeMap<String, String>>,
    views: Mutex<HashMap<String, Relation>>,
    cached: Mutex<HashMap<String, MemoryRelation>>,
    tables: Mutex<HashMap<String, (String, arrow::datatypes::SchemaRef)>>,
    /// The queries it started, oldest first.
    pub queries: Mutex<Vec<SessionQuery>>,
    /// Whether a listener bus stream is open for it.
    pub listener_bus: Mutex<Option<tokio::sync::watch::Sender<bool>>>,
}

impl ClientSession {
    fn new(id: &str, user_id: &str) -> Self {
        Self {
            id: id.to_string(),
            user_id: user_id.to_string(),
            conf: Mutex::default(),
            views: Mutex::default(),
            cached: Mutex::default(),
            tables: Mutex::default(),
            queries: Mutex::default(),
            listener_bus: Mutex::default(),
        }
    }

    /// Setting `key`: the client's, else the server's default.
    pub fn conf(&self, key: &str) -> Option<String> {
        if let Some(v) = self.conf.lock().ok()?.get(key) {
            return Some(v.clone());
        }
        DEFAULT_CONF.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string())
    }

    /// Every setting starting with `prefix`, defaults included.
    pub fn conf_all(&self, prefix: &str) -> Vec<(String, String)> {
        let mut all: BTreeMap<String, String> = DEFAULT_CONF.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.extend(self.user_conf());
        all.into_iter().filter(|(k, _)| k.starts_with(prefix)).collect()
    }

    /// The settings the client set (passed on to its queries).
    pub fn user_conf(&self) -> Vec<(String, String)> {
        match self.conf.lock() {
            Ok(c) => c.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Sets `key`.
    pub fn set_conf(&self, key: &str, value: &str) {
        if let Ok(mut c) = self.conf.lock() {
            c.insert(key.to_string(), value.to_string());
        }
    }

    /// Unsets `key`.
    pub fn unset_conf(&self, key: &str) {
        if let Ok(mut c) = self.conf.lock() {
            c.remove(key);
        }
    }

    /// The temporary view `name`.
    pub fn view(&self, name: &str) -> Option<Relation> {
        self.views.lock().ok()?.get(name).cloned()
    }

    /// Creates or replaces the temporary view `name`.
    pub fn set_view(&self, name: &str, plan: Relation) {
        if let Ok(mut v) = self.views.lock() {
            v.insert(name.to_string(), plan);
        }
    }

    /// A batch a foreachBatch worker reads, or a memory sink of one of this session's queries.
    pub fn memory_relation(&self, name: &str) -> Option<MemoryRelation> {
        if let Some(m) = self.cached.lock().ok()?.get(name) {
            return Some(m.clone());
        }
        let queries = self.queries.lock().ok()?;
        queries.iter().rev().filter_map(|q| q.memory.clone()).find(|m| m.name == name)
    }

    /// The table `name` a query of this session writes (`toTable`): its path and schema.
    pub fn table(&self, name: &str) -> Option<(String, arrow::datatypes::SchemaRef)> {
        self.tables.lock().ok()?.get(name).cloned()
    }

    /// Records the table `name` written at `path`.
    pub fn set_table(&self, name: &str, path: &str, schema: arrow::datatypes::SchemaRef) {
        if let Ok(mut t) = self.tables.lock() {
            t.insert(name.to_string(), (path.to_string(), schema));
        }
    }

    /// Keeps a foreachBatch batch readable under its id.
    pub fn cache(&self, relation: MemoryRelation) {
        if let Ok(mut c) = self.cached.lock() {
            c.insert(relation.name.clone(), relation);
        }
    }

    /// Drops a cached batch.
    pub fn uncache(&self, id: &str) {
        if let Ok(mut c) = self.cached.lock() {
            c.remove(id);
        }
    }

    /// The query with id `id` started by this session, newest run first.
    pub fn query(&self, id: &str) -> Option<StreamingQuery> {
        let queries = self.queries.lock().ok()?;
        queries.iter().rev().find(|q| q.query.id().to_string() == id).map(|q| q.query.clone())
    }

    /// Every query of this session, newest last.
    pub fn all_queries(&self) -> Vec<StreamingQuery> {
        match self.queries.lock() {
            Ok(q) => q.iter().map(|q| q.query.clone()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Every session of a server.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Arc<ClientSession>>>,
}

impl Sessions {
    /// The session `id`, created on first use (PySpark's `getOrCreate()` sends nothing).
    pub fn get_or_create(&self, id: &str, user_id: &str) -> Arc<ClientSession> {
        match self.sessions.lock() {
            Ok(mut s) => Arc::clone(s.entry(id.to_string()).or_insert_with(|| Arc::new(ClientSession::new(id, user_id)))),
            Err(_) => Arc::new(ClientSession::new(id, user_id)),
        }
    }

    /// Removes the session `id`.
    pub fn remove(&self, id: &str) -> Option<Arc<ClientSession>> {
        self.sessions.lock().ok()?.remove(id)
    }
}
