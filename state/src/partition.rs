//! A state partition: keyed state at a version, and the protocol that moves it to the next.
//!
//! A task for batch N needs version N ([`sluice_common::BatchId::state_to_read`]). The partition
//! keeps its last version in memory (the executor owning it runs that partition batch after
//! batch); any other version — a retried batch, a partition that moved here, a new run — is
//! rebuilt from the checkpoint. Changes made by a task become version N+1 only in
//! [`StatePartition::commit`], which writes the delta (and a snapshot when due) first — or
//! nothing, when the task changed nothing (see [`super::files`]: deltas are sparse).

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
    /// Version of the newest file of the chain (0: none yet), which the next delta points back to.
    last_file: u64,
    /// Deltas written since the newest snapshot (or since the start): a snapshot is due when
    /// replaying them would cost more than `minDeltasForSnapshot` files.
    deltas_since_snapshot: u64,
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
        let (mut last_file, mut deltas_since_snapshot) = (0, 0);
        for file in files.load(version.0).await? {
            match file.kind {
                FileKind::Snapshot => deltas_since_snapshot = 0,
                FileKind::Delta => deltas_since_snapshot += 1,
            }
            last_file = file.version;
            for batch in &file.batches {
                state.apply_file_batch(batch)?;
            }
        }
        Ok(Self { state, version, files, last_file, deltas_since_snapshot })
    }

    /// The version the in-memory state is consistent with.
    pub fn version(&self) -> StateVersion {
        self.version
    }

    /// Writes the changes as `<version+1>.delta` (nothing when there are none, except for the
    /// partition's first file), a snapshot when due, cleans up old files, and advances the version.
    pub async fn commit(&mut self, policy: StatePolicy) -> Result<CommitStats> {
        let started = Instant::now();
        let next = self.version.next().0;
        let delta = self.state.take_delta_batch()?;
        if delta.num_rows() > 0 || self.last_file == 0 {
            self.files.write_delta(next, self.last_file, &self.state.file_schema(true), &delta).await?;
            self.last_file = next;
            self.deltas_since_snapshot += 1;
            if self.deltas_since_snapshot > policy.min_deltas_for_snapshot {
                let snap = self.state.snapshot_batch()?;
                self.files.write_snapshot(next, &self.state.file_schema(false), &snap).await?;
                self.deltas_since_snapshot = 0;
            }
            if next > policy.min_batches_to_retain {
                if let Err(e) = self.files.cleanup(next - policy.min_batches_to_retain).await {
                    tracing::warn!(error = %e, "could not delete old state files");
                }
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

    #[tokio::test]
    async fn a_batch_that_changes_nothing_writes_nothing_and_every_version_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let (k, v) = schemas();
        let policy = StatePolicy { min_deltas_for_snapshot: 2, min_batches_to_retain: 100 };
        let load = |version: u64| {
            StatePartition::load(StateFiles::new(&loc, 0, 0), Arc::clone(&k), Arc::clone(&v), StateVersion(version))
        };
        let mut p = load(0).await.unwrap();
        // Batches 0..12: a key at batches 3, 7, 8 and 11, nothing otherwise.
        let changed = [3u64, 7, 8, 11];
        for batch in 0..12u64 {
            if changed.contains(&batch) {
                bump(&mut p, batch as i64, policy).await;
            } else {
                p.commit(policy).await.unwrap();
            }
        }
        assert_eq!(p.version(), StateVersion(12));
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("state/0/0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        // The first commit always writes (an empty delta); then one delta per changed batch,
        // and a snapshot once more than two deltas follow the last one (1, 4, 8).
        assert_eq!(names, ["1.delta", "12.delta", "4.delta", "8.delta", "8.snapshot", "9.delta"]);
        for version in 0..=14u64 {
            let expected = changed.iter().filter(|b| **b < version).count();
            assert_eq!(load(version).await.unwrap().state.len(), expected, "version {version}");
        }
    }
}
