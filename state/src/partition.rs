//! A state partition: keyed state at a version, and the protocol that moves it to the next.
//!
//! A task for batch N needs version N ([`sluice_common::BatchId::state_to_read`]). The partition
//! keeps its last version in memory (the executor owning it runs that partition batch after
//! batch); any other version — a retried batch, a partition that moved here, a new run — is
//! rebuilt from the checkpoint. Changes made by a task become version N+1 only in
//! [`StatePartition::commit`], which writes the delta (and a snapshot when due) first.

use std::time::Instant;

use arrow::datatypes::SchemaRef;

use sluice_common::error::Result;
use sluice_common::StateVersion;

use super::files::{FileKind, StateFiles};
use super::keyed::KeyedState;

/// Retention and snapshot settings (Spark's confs).
#[derive(Debug, Clone, Copy)]
pub struct StatePolicy {
    /// Write a snapshot once more than this many deltas follow the last one.
    pub min_deltas_for_snapshot: u64,
    /// Keep enough files to rebuild this many versions back.
    pub min_batches_to_retain: u64,
}

/// One operator's state for one partition.
#[derive(Debug)]
pub struct StatePartition {
    /// The entries at `version`, plus the changes the current task made that `commit` will persist.
    pub state: KeyedState,
    version: StateVersion,
    files: StateFiles,
    last_snapshot: u64,
}

/// Timing of a commit, for progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitStats {
    /// Wall time of the commit in ms (delta, snapshot when due, old-file cleanup): progress's `commitTimeMs`.
    pub commit_ms: u64,
}

impl StatePartition {
    /// Loads `version` from the checkpoint (version 0 is empty).
    pub async fn load(files: StateFiles, key_schema: SchemaRef, value_schema: SchemaRef, version: StateVersion) -> Result<Self> {
        let mut state = KeyedState::new(key_schema, value_schema)?;
        let mut last_snapshot = 0;
        for (v, kind) in files.plan_load(version.0).await? {
            if kind == FileKind::Snapshot {
                last_snapshot = v;
            }
            for batch in files.read(v, kind).await? {
                state.apply_file_batch(&batch)?;
            }
        }
        Ok(Self { state, version, files, last_snapshot })
    }

    /// The version the in-memory state is consistent with.
    pub fn version(&self) -> StateVersion {
        self.version
    }

    /// Writes the changes as `<version+1>.delta`, a snapshot when due, cleans up old files, and
    /// advances the version.
    pub async fn commit(&mut self, policy: StatePolicy) -> Result<CommitStats> {
        let started = Instant::now();
        let next = self.version.next().0;
        let delta = self.state.take_delta_batch()?;
        self.files.write(next, FileKind::Delta, &self.state.file_schema(true), &delta).await?;
        if next - self.last_snapshot > policy.min_deltas_for_snapshot {
            let snap = self.state.snapshot_batch()?;
            self.files.write(next, FileKind::Snapshot, &self.state.file_schema(false), &snap).await?;
            self.last_snapshot = next;
        }
        if next > policy.min_batches_to_retain {
            if let Err(e) = self.files.cleanup(next - policy.min_batches_to_retain).await {
                tracing::warn!(error = %e, "could not delete old state files");
            }
        }
        self.version = StateVersion(next);
        Ok(CommitStats { commit_ms: started.elapsed().as_millis() as u64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schemas() -> (SchemaRef, SchemaRef) {
        (
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])),
            Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)])),
        )
    }

    async fn bump(p: &mut StatePartition, key: i64, policy: StatePolicy) {
        let k = p.state.encode_keys(&[Arc::new(Int64Array::from(vec![key])) as ArrayRef], 1).unwrap();
        let v = p.state.encode_values(&[Arc::new(Int64Array::from(vec![key * 10])) as ArrayRef], 1).unwrap();
        p.state.put(k.row(0).as_ref(), v.row(0).as_ref(), None);
        p.commit(policy).await.unwrap();
    }

    #[tokio::test]
    async fn versions_snapshots_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let (k, v) = schemas();
        let policy = StatePolicy { min_deltas_for_snapshot: 2, min_batches_to_retain: 100 };
        let mut p =
            StatePartition::load(StateFiles::new(&loc, 0, 0), Arc::clone(&k), Arc::clone(&v), StateVersion::EMPTY).await.unwrap();
        for key in 0..5 {
            bump(&mut p, key, policy).await;
        }
        assert_eq!(p.version(), StateVersion(5));
        // Three deltas after version 0 trigger a snapshot at 3.
        assert!(dir.path().join("state/0/0/3.snapshot").exists());
        assert!(!dir.path().join("state/0/0/2.snapshot").exists());
        let r = StatePartition::load(StateFiles::new(&loc, 0, 0), Arc::clone(&k), Arc::clone(&v), StateVersion(4)).await.unwrap();
        assert_eq!(r.state.len(), 4, "version 4 holds the keys of batches 0..=3");
        let r = StatePartition::load(StateFiles::new(&loc, 0, 0), k, v, StateVersion(5)).await.unwrap();
        assert_eq!(r.state.len(), 5);
    }
}
