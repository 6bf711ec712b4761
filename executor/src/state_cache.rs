//! State partitions this executor holds between batches.
//!
//! The driver keeps sending partition p of an operator to the same executor, so its state stays
//! in memory from one batch to the next. An entry is reused only if it is at exactly the version
//! the task needs; anything else — a retried batch, a partition that just moved here, a new run
//! of the query — reloads that version from the checkpoint.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use sluice_common::error::Result;
use sluice_common::state::{StateFiles, StatePartition};
use sluice_common::storage::Location;
use tokio::sync::Mutex;

type Key = (String, usize, u32);

/// The executor's state partitions, by (query run, operator, partition).
#[derive(Debug, Default)]
pub struct StateCache {
    parts: std::sync::Mutex<HashMap<Key, Arc<Mutex<Option<StatePartition>>>>>,
}

/// A checked-out partition: locked for the task's duration.
pub type PartitionGuard = tokio::sync::OwnedMutexGuard<Option<StatePartition>>;

impl StateCache {
    /// The partition at `version`, loading it from `checkpoint` when the cached copy is at
    /// another version (or absent).
    pub async fn checkout(
        &self,
        run_id: &str,
        op: usize,
        partition: u32,
        version: u64,
        checkpoint: &Location,
        schemas: (SchemaRef, SchemaRef),
    ) -> Result<PartitionGuard> {
        let slot = {
            let mut parts = self.parts.lock().map_err(|_| sluice_common::SluiceError::internal("state cache poisoned"))?;
            Arc::clone(parts.entry((run_id.to_string(), op, partition)).or_default())
        };
        let mut guard = slot.lock_owned().await;
        if guard.as_ref().is_none_or(|p| p.version() != version) {
            let files = StateFiles::new(checkpoint, op, partition);
            *guard = Some(StatePartition::load(files, schemas.0, schemas.1, version).await?);
        }
        Ok(guard)
    }

    /// Forgets every partition of a run.
    pub fn release(&self, run_id: &str) {
        if let Ok(mut parts) = self.parts.lock() {
            parts.retain(|(r, _, _), _| r != run_id);
        }
    }
}
