//! Compiled queries kept per query run, so a task pays for SQL planning once per query, not once
//! per task.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_common::connectors::SplitReader;
use sluice_common::error::{Result, SluiceError};
use sluice_common::plan::{CompiledQuery, QuerySpec, StaticTableCache};
use tokio::sync::Mutex;

/// A query as an executor runs it.
#[derive(Debug)]
pub struct PreparedQuery {
    pub compiled: CompiledQuery,
    /// One reader per source index.
    pub readers: Vec<SplitReader>,
    /// Static tables of the batch currently running: (batch id, cache).
    static_tables: Mutex<(u64, Arc<StaticTableCache>)>,
}

impl PreparedQuery {
    /// The static-table cache for `batch_id`; a new batch starts with an empty one, as Spark
    /// re-reads the static side every batch.
    pub async fn static_tables(&self, batch_id: u64) -> Arc<StaticTableCache> {
        let mut guard = self.static_tables.lock().await;
        if guard.0 != batch_id {
            *guard = (batch_id, Arc::default());
        }
        Arc::clone(&guard.1)
    }
}

/// Cache of prepared queries keyed by (run id, spec fingerprint).
#[derive(Debug, Default)]
pub struct QueryCache {
    entries: Mutex<HashMap<(String, u64), Arc<PreparedQuery>>>,
}

impl QueryCache {
    /// The prepared form of `spec_json`, compiling it on first use.
    pub async fn get_or_prepare(&self, run_id: &str, hash: u64, spec_json: &[u8]) -> Result<Arc<PreparedQuery>> {
        let key = (run_id.to_string(), hash);
        let mut entries = self.entries.lock().await;
        if let Some(q) = entries.get(&key) {
            return Ok(Arc::clone(q));
        }
        let spec: QuerySpec = serde_json::from_slice(spec_json)
            .map_err(|e| SluiceError::internal(format!("query spec from the driver is unreadable: {e}")))?;
        let readers = spec.sources.iter().map(SplitReader::new).collect::<Result<Vec<_>>>()?;
        let compiled = CompiledQuery::compile(Arc::new(spec)).await?;
        let prepared = Arc::new(PreparedQuery { compiled, readers, static_tables: Mutex::new((u64::MAX, Arc::default())) });
        // Specs of the same run replace each other; other runs keep theirs until released.
        entries.retain(|(r, _), _| r != run_id);
        entries.insert(key, Arc::clone(&prepared));
        Ok(prepared)
    }

    /// Forgets everything cached for `run_id`.
    pub async fn release(&self, run_id: &str) {
        self.entries.lock().await.retain(|(r, _), _| r != run_id);
    }
}
