//! `foreachBatch` sink: each batch's rows handed to a function on the driver — Spark's
//! `writeStream.foreachBatch(fn)`, which a Spark Connect client runs in a Python worker.
//!
//! Executors send the rows back as the memory sink does; the driver's commit calls the
//! function registered under the sink's `function` option and waits for it, so a batch is
//! committed only once the function has returned, and a function that fails fails the batch.
//! A batch re-run after a failure calls the function again with the same batch id (Spark's
//! at-least-once contract for foreachBatch: the function dedups by batch id if it must).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::future::BoxFuture;

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::{BatchId, OutputMode};

use crate::access::Access;
use crate::memory::sink::RowsToDriver;
use crate::sink::{collected_rows, SinkCommitter, SinkConnector, SinkSpec, SinkWriter, TaskSinkResult};

/// A batch function: batch id, the batch's schema and rows.
pub type BatchFunction = Arc<dyn Fn(BatchId, SchemaRef, Vec<RecordBatch>) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// The batch functions of a driver's queries, by the id their sink's `function` option names.
#[derive(Clone, Default)]
pub struct BatchFunctions {
    functions: Arc<Mutex<HashMap<String, BatchFunction>>>,
}

impl std::fmt::Debug for BatchFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchFunctions")
    }
}

impl BatchFunctions {
    /// Registers `function` under `id` (replacing an earlier one).
    pub fn register(&self, id: &str, function: BatchFunction) {
        if let Ok(mut m) = self.functions.lock() {
            m.insert(id.to_string(), function);
        }
    }

    /// Forgets the function `id` (its query ended).
    pub fn remove(&self, id: &str) {
        if let Ok(mut m) = self.functions.lock() {
            m.remove(id);
        }
    }

    fn get(&self, id: &str) -> Option<BatchFunction> {
        self.functions.lock().ok()?.get(id).cloned()
    }
}

/// The `foreachBatch` sink connector.
pub struct ForeachBatchSink {
    functions: BatchFunctions,
}

impl ForeachBatchSink {
    /// The connector, calling functions from `functions`.
    pub fn connector(functions: BatchFunctions) -> Self {
        Self { functions }
    }
}

impl SinkConnector for ForeachBatchSink {
    fn name(&self) -> &'static str {
        "foreach_batch"
    }

    fn resolve(&self, options: &mut Options) -> Result<()> {
        options.check_known(&["connector", "function"], "connector 'foreach_batch'")?;
        if options.get("function").is_none() {
            return Err(SluiceError::user("connector 'foreach_batch' needs option 'function' (set by the Spark Connect server)"));
        }
        Ok(())
    }

    fn access(&self, _options: &Options) -> Result<Vec<Access>> {
        Ok(Vec::new()) // the rows go to the function; what it does is the client's business
    }

    fn requires_checkpoint(&self) -> bool {
        false
    }

    fn writer(&self, _spec: &SinkSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(RowsToDriver))
    }

    fn committer(&self, spec: &SinkSpec, _mode: OutputMode) -> Result<Box<dyn SinkCommitter>> {
        let id = spec.options.get("function").unwrap_or_default().to_string();
        Ok(Box::new(ForeachBatchCommitter { id, functions: self.functions.clone() }))
    }
}

struct ForeachBatchCommitter {
    id: String,
    functions: BatchFunctions,
}

#[async_trait]
impl SinkCommitter for ForeachBatchCommitter {
    fn description(&self) -> String {
        "ForeachBatchSink".to_string()
    }

    async fn commit(&mut self, batch: BatchId, schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64> {
        let rows = collected_rows(&results)?;
        let n: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
        let function = self.functions.get(&self.id).ok_or_else(|| {
            SluiceError::user(format!("the foreachBatch function {} is gone (its client session ended)", self.id))
        })?;
        function(batch, SchemaRef::clone(schema), rows).await?;
        Ok(n)
    }
}
