//! `memory` sink: batches kept in the driver for tests and the Rust API (spec §9 "Memory").
//!
//! Complete mode replaces the table with each batch's result; other modes append. A batch id
//! at or below the last stored one is ignored, so a replayed batch is never stored twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::error::{Result, SluiceError};
use crate::plan::OutputMode;

use super::{SinkCommitter, TaskSinkResult};

/// What a memory sink holds: every stored batch with its id, oldest first.
#[derive(Debug, Clone, Default)]
pub struct MemoryTable {
    /// (batch id, rows of that batch).
    pub batches: Vec<(u64, Vec<RecordBatch>)>,
}

impl MemoryTable {
    /// All rows currently in the table.
    pub fn all_rows(&self) -> Vec<RecordBatch> {
        self.batches.iter().flat_map(|(_, b)| b.iter().cloned()).collect()
    }

    /// Rows of the newest stored batch.
    pub fn last_batch(&self) -> Vec<RecordBatch> {
        self.batches.last().map(|(_, b)| b.clone()).unwrap_or_default()
    }

    /// Id of the newest stored batch.
    pub fn last_batch_id(&self) -> Option<u64> {
        self.batches.last().map(|(id, _)| *id)
    }
}

/// The memory tables of one session, by sink name.
#[derive(Debug, Clone, Default)]
pub struct MemoryTables {
    tables: Arc<Mutex<HashMap<String, MemoryTable>>>,
}

impl MemoryTables {
    /// A snapshot of table `name`.
    pub fn get(&self, name: &str) -> Option<MemoryTable> {
        self.tables.lock().ok()?.get(name).cloned()
    }

    /// Empties table `name` (Spark tests' "clear the sink").
    pub fn clear(&self, name: &str) {
        if let Ok(mut t) = self.tables.lock() {
            t.remove(name);
        }
    }

    fn store(&self, name: &str, batch_id: u64, rows: Vec<RecordBatch>, replace: bool) -> Result<bool> {
        let mut tables = self.tables.lock().map_err(|_| SluiceError::internal("memory sink lock poisoned"))?;
        let table = tables.entry(name.to_string()).or_default();
        if table.last_batch_id().is_some_and(|last| batch_id <= last) {
            return Ok(false);
        }
        if replace {
            table.batches.clear();
        }
        table.batches.push((batch_id, rows));
        Ok(true)
    }
}

/// Driver side of the memory sink.
pub struct MemoryCommitter {
    name: String,
    tables: MemoryTables,
    mode: OutputMode,
}

impl MemoryCommitter {
    /// A committer storing into `tables[name]`.
    pub fn new(name: impl Into<String>, tables: MemoryTables, mode: OutputMode) -> Self {
        Self { name: name.into(), tables, mode }
    }
}

#[async_trait]
impl SinkCommitter for MemoryCommitter {
    fn description(&self) -> String {
        format!("MemorySink[{}]", self.name)
    }

    async fn commit(&mut self, batch_id: u64, _schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64> {
        let mut rows = Vec::new();
        for r in &results {
            if let Some(bytes) = &r.rows {
                rows.extend(crate::ipc::decode(bytes)?.1);
            }
        }
        let n: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
        if !self.tables.store(&self.name, batch_id, rows, self.mode == OutputMode::Complete)? {
            tracing::info!(batch_id, "memory sink: skipping already committed batch {batch_id}");
            return Ok(0);
        }
        Ok(n)
    }
}
