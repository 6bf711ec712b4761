//! `memory` sink: batches kept in the driver for tests and the Rust API (docs/semantics.md §9 "Memory").
//!
//! Complete mode replaces the table with each batch's result; other modes append. A batch id
//! at or below the last stored one is ignored, so a replayed batch is never stored twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::{BatchId, OutputMode};

use crate::access::Access;
use crate::sink::{
    collected_rows, rows_to_collect, SinkCommitter, SinkConnector, SinkSpec, SinkTaskContext, SinkTaskOutput, SinkWriter,
    TaskSinkResult,
};

/// What a memory sink holds: every stored batch with its id, oldest first.
#[derive(Debug, Clone, Default)]
pub struct MemoryTable {
    /// (batch id, rows of that batch).
    pub batches: Vec<(BatchId, Vec<RecordBatch>)>,
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
    pub fn last_batch_id(&self) -> Option<BatchId> {
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

    fn store(&self, name: &str, batch_id: BatchId, rows: Vec<RecordBatch>, replace: bool) -> Result<bool> {
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

/// The `memory` sink connector, storing into a session's [`MemoryTables`].
pub struct MemorySink {
    tables: MemoryTables,
}

impl MemorySink {
    /// The connector, storing into `tables`.
    pub fn connector(tables: MemoryTables) -> Self {
        Self { tables }
    }
}

impl SinkConnector for MemorySink {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn resolve(&self, options: &mut Options) -> Result<()> {
        options.check_known(&["connector"], "connector 'memory'")
    }

    fn access(&self, _options: &Options) -> Result<Vec<Access>> {
        Ok(Vec::new()) // rows stay in the session's memory
    }

    fn requires_checkpoint(&self) -> bool {
        false
    }

    fn writer(&self, _spec: &SinkSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(RowsToDriver))
    }

    fn committer(&self, spec: &SinkSpec, mode: OutputMode) -> Result<Box<dyn SinkCommitter>> {
        Ok(Box::new(MemoryCommitter { name: spec.name.clone(), tables: self.tables.clone(), mode }))
    }
}

/// Executor side of sinks that collect on the driver (memory, foreachBatch): sends every row
/// of the task back to the driver.
#[derive(Debug)]
pub struct RowsToDriver;

#[async_trait]
impl SinkWriter for RowsToDriver {
    async fn write(&self, schema: &SchemaRef, batches: &[RecordBatch], _task: &SinkTaskContext) -> Result<SinkTaskOutput> {
        let num_rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        Ok(SinkTaskOutput { num_rows, rows: rows_to_collect(schema, batches)?, ..Default::default() })
    }
}

/// Driver side of the memory sink.
struct MemoryCommitter {
    name: String,
    tables: MemoryTables,
    mode: OutputMode,
}

#[async_trait]
impl SinkCommitter for MemoryCommitter {
    fn description(&self) -> String {
        format!("MemorySink[{}]", self.name)
    }

    async fn commit(&mut self, batch: BatchId, _schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64> {
        let rows = collected_rows(&results)?;
        let n: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
        if !self.tables.store(&self.name, batch, rows, self.mode == OutputMode::Complete)? {
            tracing::info!(batch_id = batch.0, "memory sink: skipping already committed batch {batch}");
            return Ok(0);
        }
        Ok(n)
    }
}
