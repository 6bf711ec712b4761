//! Compiled queries kept per query run, so a task pays for SQL planning once per query, not once
//! per task.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchId;
use sluice_connectors::{Connectors, SinkWriter, SplitReader};
use sluice_plan::{CompiledQuery, QuerySpec, StaticTableCache, TaskInput};
use tokio::sync::Mutex;

use crate::operators::{compile_operator, CompiledOperator};
use crate::BATCHES_IN_FLIGHT;

/// A query as an executor runs it.
#[derive(Debug)]
pub struct PreparedQuery {
    /// The query's plan.
    pub compiled: CompiledQuery,
    /// Run-time form of each stateful operator, by operator id.
    pub operators: Vec<CompiledOperator>,
    /// One reader per source index.
    pub readers: Vec<Box<dyn SplitReader>>,
    /// Writes task output to the query's sink.
    pub sink: Box<dyn SinkWriter>,
    connectors: Connectors,
    /// Static tables of the batches whose tasks run here: the current one, and the next one,
    /// whose map stage may run ahead of it, interleaving their tasks with the current one's
    /// (at most [`BATCHES_IN_FLIGHT`], oldest first).
    static_tables: Mutex<Vec<(BatchId, Arc<StaticTableCache>)>>,
}

impl PreparedQuery {
    async fn prepare(spec: QuerySpec, connectors: &Connectors) -> Result<Self> {
        let readers = spec
            .sources
            .iter()
            .map(|s| connectors.source(&s.source.connector)?.split_reader(&s.source))
            .collect::<Result<Vec<_>>>()?;
        let sink = connectors.sink(&spec.sink.connector)?.writer(&spec.sink)?;
        let compiled = CompiledQuery::compile(Arc::new(spec)).await?;
        // Operators are planned once, outside any batch; scans read nothing while planning.
        let planning = compiled.planning_state(0);
        let mut operators = Vec::with_capacity(compiled.pipeline.operators.len());
        for op in &compiled.pipeline.operators {
            operators.push(compile_operator(&planning, op, &compiled.spec).await?);
        }
        Ok(Self { compiled, operators, readers, sink, connectors: connectors.clone(), static_tables: Mutex::new(Vec::new()) })
    }

    /// An empty task input for `batch`. Its static tables are shared by the batch's tasks on
    /// this executor; a new batch starts with an empty cache, as Spark re-reads the static side
    /// every batch.
    pub async fn task_input(&self, batch: BatchId) -> TaskInput {
        let mut cached = self.static_tables.lock().await;
        let tables = match cached.iter().find(|(b, _)| *b == batch) {
            Some((_, tables)) => Arc::clone(tables),
            None => {
                let tables = Arc::new(StaticTableCache::new(self.connectors.clone()));
                cached.push((batch, Arc::clone(&tables)));
                cached.sort_by_key(|(b, _)| *b);
                let excess = cached.len().saturating_sub(BATCHES_IN_FLIGHT);
                cached.drain(..excess);
                tables
            }
        };
        TaskInput::new(tables)
    }
}

/// Cache of prepared queries keyed by (run id, spec fingerprint).
pub struct QueryCache {
    connectors: Connectors,
    entries: Mutex<HashMap<(String, u64), Arc<PreparedQuery>>>,
}

/// A prepared query, and the runs of the same query it superseded.
pub struct Prepared {
    /// The query as this executor runs it.
    pub query: Arc<PreparedQuery>,
    /// Earlier runs of the same query this executor still held. Only one run of a query runs
    /// at a time (a new leader fences the old one), so whatever they left — shuffle blocks,
    /// state partitions — is garbage, even when no driver lived to release it.
    pub superseded: Vec<String>,
}

impl QueryCache {
    /// An empty cache preparing queries with `connectors`.
    pub fn new(connectors: Connectors) -> Self {
        Self { connectors, entries: Mutex::default() }
    }

    /// The prepared form of `spec_json`, compiling it on first use.
    pub async fn get_or_prepare(&self, run_id: &str, hash: u64, spec_json: &[u8]) -> Result<Prepared> {
        let key = (run_id.to_string(), hash);
        let mut entries = self.entries.lock().await;
        if let Some(q) = entries.get(&key) {
            return Ok(Prepared { query: Arc::clone(q), superseded: Vec::new() });
        }
        let spec: QuerySpec = serde_json::from_slice(spec_json)
            .map_err(|e| SluiceError::internal(format!("query spec from the driver is unreadable: {e}")))?;
        let query_id = spec.query_id;
        let redactor = spec.redactor();
        let prepared = Arc::new(PreparedQuery::prepare(spec, &self.connectors).await.map_err(|e| redactor.scrub_error(e))?);
        // Specs of the same run replace each other; other runs of the same query are over.
        let mut superseded: Vec<String> = entries
            .iter()
            .filter(|((r, _), q)| r != run_id && q.compiled.spec.query_id == query_id)
            .map(|((r, _), _)| r.clone())
            .collect();
        superseded.dedup();
        entries.retain(|(r, _), _| r != run_id && !superseded.contains(r));
        entries.insert(key, Arc::clone(&prepared));
        Ok(Prepared { query: prepared, superseded })
    }

    /// How many query runs are cached (for tests and diagnostics).
    pub async fn runs(&self) -> usize {
        self.entries.lock().await.len()
    }

    /// Forgets everything cached for `run_id`.
    pub async fn release(&self, run_id: &str) {
        self.entries.lock().await.retain(|(r, _), _| r != run_id);
    }
}
