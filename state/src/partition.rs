//! A state partition: keyed state at a version, and the protocol that moves it to the next.
//!
//! A task for batch N needs version N ([`sluice_common::BatchId::state_to_read`]). The partition
//! keeps its last version in memory (the executor owning it runs that partition batch after
//! batch); any other version — a retried batch, a partition that moved here, a new run — is
//! rebuilt from the checkpoint. Changes made by a task become version N+1 in
//! [`StatePartition::commit`], which hands back the delta for the executor to write with the
//! other deltas of its call, as one bundle ([`crate::bundle`]) — or nothing, when the task
//! changed nothing (see [`super::files`]: deltas are sparse). The executor keeps the partition
//! at N+1 only once that bundle is written.
//!
//! Snapshots and the deletion of old files are *maintenance*, as in Spark's state store: the
//! executor runs it in the background every `spark.sql.streaming.stateStore.maintenanceInterval`
//! ([`StatePartition::maintenance`] → [`Maintenance::run`]), never in a batch. A snapshot holds
//! every entry, so writing one inside a batch made that batch pay for the whole state; done in
//! the background, a batch pays for what it changed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use sluice_common::error::Result;
use sluice_common::StateVersion;

use super::bundle::StagedDelta;
use super::files::{encode_delta, FileKind, StateFiles};
use super::keyed::KeyedState;

/// Snapshot, retention and maintenance settings (Spark's confs).
#[derive(Debug, Clone, Copy)]
pub struct StatePolicy {
    /// Write a snapshot once more than this many deltas follow the last one.
    pub min_deltas_for_snapshot: u64,
    /// Keep enough files to rebuild this many versions back.
    pub min_batches_to_retain: u64,
    /// How often maintenance looks at the partition (`stateStore.maintenanceInterval`).
    pub maintenance_interval: Duration,
}

/// One operator's state for one partition.
#[derive(Debug)]
pub struct StatePartition {
    /// The entries at `version`, plus the changes the current task made that `commit` will persist.
    pub state: KeyedState,
    version: StateVersion,
    files: StateFiles,
    policy: StatePolicy,
    /// Version of the newest file of the chain (0: none yet), which the next delta points back to.
    last_file: u64,
    /// Versions of the deltas written since the newest snapshot (or since the start): a snapshot
    /// is due when replaying them would cost more than `minDeltasForSnapshot` files.
    unsnapshotted: Vec<u64>,
    /// When maintenance last looked at this partition (or when it was loaded).
    maintained_at: Instant,
}

/// What a commit produced.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// The delta to write (none when nothing changed).
    pub delta: Option<StagedDelta>,
    /// Wall time of the commit in ms (encoding the delta), a part of progress's `commitTimeMs`.
    pub commit_ms: u64,
}

/// Maintenance work for one partition, taken from it under its lock and run without it.
#[derive(Debug)]
pub struct Maintenance {
    files: StateFiles,
    /// The snapshot to write: its version, schema and every entry.
    snapshot: Option<(u64, SchemaRef, RecordBatch)>,
    /// Delete files not needed to rebuild this version or a newer one.
    cleanup_from: Option<u64>,
}

impl StatePartition {
    /// Loads `version` from the checkpoint (version 0 is empty).
    pub async fn load(
        files: StateFiles,
        key_schema: SchemaRef,
        value_schema: SchemaRef,
        version: StateVersion,
        policy: StatePolicy,
    ) -> Result<Self> {
        let mut state = KeyedState::new(key_schema, value_schema)?;
        let (mut last_file, mut unsnapshotted) = (0, Vec::new());
        for file in files.load(version.0).await? {
            match file.kind {
                FileKind::Snapshot => unsnapshotted.clear(),
                FileKind::Delta => unsnapshotted.push(file.version),
            }
            last_file = file.version;
            for batch in &file.batches {
                state.apply_file_batch(batch)?;
            }
        }
        Ok(Self { state, version, files, policy, last_file, unsnapshotted, maintained_at: Instant::now() })
    }

    /// The version the in-memory state is consistent with.
    pub fn version(&self) -> StateVersion {
        self.version
    }

    /// Advances the version and returns the delta of the changes, to be written in a bundle
    /// (none when there are none, except for the partition's first file). Until it is written,
    /// the partition holds a version the checkpoint does not: whoever commits must discard the
    /// partition if the write fails.
    pub fn commit(&mut self) -> Result<Commit> {
        let started = Instant::now();
        let next = self.version.next().0;
        let changes = self.state.take_delta_batch()?.filter(|c| c.num_rows() > 0);
        let mut delta = None;
        if changes.is_some() || self.last_file == 0 {
            let schema = self.state.file_schema(true);
            let changes = changes.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&schema)));
            let bytes = encode_delta(self.last_file, &schema, &changes)?;
            let store = self.files.store_name().to_string();
            delta = Some(StagedDelta { partition: self.files.partition(), store, bytes });
            self.last_file = next;
            self.unsnapshotted.push(next);
        }
        self.version = StateVersion(next);
        Ok(Commit { delta, commit_ms: started.elapsed().as_millis() as u64 })
    }

    /// Whether a maintenance interval has passed since maintenance last looked at the partition.
    pub fn maintenance_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.maintained_at) >= self.policy.maintenance_interval
    }

    /// The maintenance the partition needs now, if any: a snapshot of the current version once
    /// more than `minDeltasForSnapshot` deltas follow the last one — or once the oldest of them
    /// is older than the versions the query retains — and the deletion of files no longer
    /// needed to rebuild `version − minBatchesToRetain`. Call it with no task running on the
    /// partition (its changes would be in the snapshot); the files are written by
    /// [`Maintenance::run`], without the partition.
    ///
    /// The second reason is for bundles: a bundle holds many partitions' deltas, and may be
    /// deleted only once every one of them is under a snapshot, so a partition that changes
    /// rarely would otherwise keep its old bundles — everyone's deltas — for good.
    pub fn maintenance(&mut self, now: Instant) -> Result<Option<Maintenance>> {
        self.maintained_at = now;
        let earliest = self.version.0.saturating_sub(self.policy.min_batches_to_retain);
        let outlived = self.unsnapshotted.first().is_some_and(|v| *v < earliest);
        let snapshot = if self.unsnapshotted.len() as u64 > self.policy.min_deltas_for_snapshot || outlived {
            Some((self.version.0, self.state.file_schema(false), self.state.snapshot_batch()?))
        } else {
            None
        };
        let cleanup_from = (earliest > 0).then_some(earliest);
        Ok((snapshot.is_some() || cleanup_from.is_some()).then(|| Maintenance {
            files: self.files.clone(),
            snapshot,
            cleanup_from,
        }))
    }

    /// Maintenance wrote the snapshot of `version`: the deltas up to it no longer count towards
    /// the next one.
    pub fn snapshot_written(&mut self, version: u64) {
        if version <= self.version.0 {
            self.unsnapshotted.retain(|v| *v > version);
        }
    }
}

impl Maintenance {
    /// Writes the snapshot, then deletes old files; returns the version of the snapshot written.
    /// A snapshot that fails leaves the deltas to replay, and old files stay until a later run.
    pub async fn run(self) -> Result<Option<u64>> {
        let mut written = None;
        if let Some((version, schema, batch)) = &self.snapshot {
            self.files.write_snapshot(*version, schema, batch).await?;
            written = Some(*version);
        }
        if let Some(earliest) = self.cleanup_from {
            self.files.cleanup(earliest).await?;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use sluice_common::storage::Location;
    use std::sync::Arc;

    fn schemas() -> (SchemaRef, SchemaRef) {
        (
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])),
            Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)])),
        )
    }

    fn policy(min_deltas_for_snapshot: u64, min_batches_to_retain: u64) -> StatePolicy {
        StatePolicy { min_deltas_for_snapshot, min_batches_to_retain, maintenance_interval: Duration::ZERO }
    }

    async fn load(loc: &Location, version: u64, policy: StatePolicy) -> StatePartition {
        let (k, v) = schemas();
        StatePartition::load(StateFiles::new(loc, 0, 0), k, v, StateVersion(version), policy).await.unwrap()
    }

    async fn bump(loc: &Location, p: &mut StatePartition, key: i64) {
        let k = p.state.encode_keys(&[Arc::new(Int64Array::from(vec![key])) as ArrayRef], 1).unwrap();
        let v = p.state.encode_values(&[Arc::new(Int64Array::from(vec![key * 10])) as ArrayRef], 1).unwrap();
        p.state.put(k.row(0).as_ref(), v.row(0).as_ref(), None);
        commit(loc, p).await;
    }

    /// Commits as the executor and the driver do: the delta in a bundle, then the manifest.
    async fn commit(loc: &Location, p: &mut StatePartition) {
        let version = p.version().next().0;
        if let Some(delta) = p.commit().unwrap().delta {
            crate::bundle::tests::commit(loc, version, "call", vec![delta]).await;
        }
    }

    /// What the executor's maintenance does for one partition.
    async fn maintain(p: &mut StatePartition) {
        if let Some(work) = p.maintenance(Instant::now()).unwrap() {
            if let Some(version) = work.run().await.unwrap() {
                p.snapshot_written(version);
            }
        }
    }

    /// Partition 0's snapshots, and `<v>.delta` for each version whose bundle directory is
    /// still there.
    fn files_in(dir: &std::path::Path) -> Vec<String> {
        let names = |d: &str| -> Vec<String> {
            std::fs::read_dir(dir.join(d))
                .map(|r| r.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
                .unwrap_or_default()
        };
        let mut all = names("state/0/0");
        all.extend(names("state/0/deltas").into_iter().map(|v| format!("{v}.delta")));
        all.sort();
        all
    }

    #[tokio::test]
    async fn commits_write_deltas_and_maintenance_the_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let policy = policy(2, 100);
        let mut p = load(&loc, 0, policy).await;
        for key in 0..5 {
            bump(&loc, &mut p, key).await;
        }
        assert_eq!(p.version(), StateVersion(5));
        assert_eq!(files_in(dir.path()), ["1.delta", "2.delta", "3.delta", "4.delta", "5.delta"], "a batch writes no snapshot");
        maintain(&mut p).await;
        assert_eq!(files_in(dir.path()).last().map(String::as_str), Some("5.snapshot"), "five deltas > two");
        // Two more deltas are not more than two: no snapshot yet; the third is.
        for key in 5..7 {
            bump(&loc, &mut p, key).await;
        }
        maintain(&mut p).await;
        assert!(!dir.path().join("state/0/0/7.snapshot").exists());
        bump(&loc, &mut p, 7).await;
        maintain(&mut p).await;
        assert!(dir.path().join("state/0/0/8.snapshot").exists());
        for version in 0..=8u64 {
            assert_eq!(load(&loc, version, policy).await.state.len(), version as usize, "version {version}");
        }
    }

    #[tokio::test]
    async fn a_snapshot_taken_while_the_partition_moves_on_counts_only_its_own_deltas() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let mut p = load(&loc, 0, policy(1, 100)).await;
        bump(&loc, &mut p, 0).await;
        bump(&loc, &mut p, 1).await;
        // Maintenance copies version 2; two batches commit before its write lands.
        let work = p.maintenance(Instant::now()).unwrap().expect("two deltas > one");
        bump(&loc, &mut p, 2).await;
        bump(&loc, &mut p, 3).await;
        assert_eq!(work.run().await.unwrap(), Some(2));
        p.snapshot_written(2);
        assert_eq!(p.unsnapshotted, [3, 4], "the deltas after the snapshot still count");
        let snap = load(&loc, 2, policy(1, 100)).await;
        assert_eq!(snap.state.len(), 2, "the snapshot holds version 2, not the state it was written beside");
        assert_eq!(load(&loc, 4, policy(1, 100)).await.state.len(), 4);
    }

    #[tokio::test]
    async fn a_snapshot_of_a_version_that_wrote_nothing_reloads_with_the_deltas_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let mut p = load(&loc, 0, policy(1, 100)).await;
        bump(&loc, &mut p, 0).await;
        bump(&loc, &mut p, 1).await;
        commit(&loc, &mut p).await;
        maintain(&mut p).await;
        bump(&loc, &mut p, 3).await;
        assert_eq!(files_in(dir.path()), ["1.delta", "2.delta", "3.snapshot", "4.delta"]);
        for (version, keys) in [(3, 2), (4, 3), (5, 3)] {
            assert_eq!(load(&loc, version, policy(1, 100)).await.state.len(), keys, "version {version}");
        }
    }

    #[tokio::test]
    async fn maintenance_waits_its_interval_and_deletes_what_no_retained_version_needs() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let mut policy = policy(2, 3);
        policy.maintenance_interval = Duration::from_secs(60);
        let mut p = load(&loc, 0, policy).await;
        let now = Instant::now();
        assert!(!p.maintenance_due(now), "a partition just loaded was not due yet");
        assert!(p.maintenance_due(now + Duration::from_secs(60)));
        for key in 0..4 {
            bump(&loc, &mut p, key).await;
        }
        maintain(&mut p).await;
        assert!(!p.maintenance_due(Instant::now()), "maintenance restarts the interval");
        for key in 4..8 {
            bump(&loc, &mut p, key).await;
        }
        maintain(&mut p).await;
        assert_eq!(crate::bundle::cleanup_bundles(&loc, 0, 5).await.unwrap(), 4, "the driver's part: bundles 1 to 4");
        // Snapshots at 4 and 8; rebuilding 8 − 3 = 5 needs the snapshot at 4 and what follows
        // (the snapshot stands for the delta of its own version).
        assert_eq!(files_in(dir.path()), ["4.snapshot", "5.delta", "6.delta", "7.delta", "8.delta", "8.snapshot"]);
        for version in 4..=8u64 {
            assert_eq!(load(&loc, version, policy).await.state.len(), version as usize, "version {version}");
        }
    }

    #[tokio::test]
    async fn a_batch_that_changes_nothing_writes_nothing_and_every_version_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let policy = policy(2, 100);
        let mut p = load(&loc, 0, policy).await;
        // Batches 0..12: a key at batches 3, 7, 8 and 11, nothing otherwise; maintenance after each.
        let changed = [3u64, 7, 8, 11];
        for batch in 0..12u64 {
            if changed.contains(&batch) {
                bump(&loc, &mut p, batch as i64).await;
            } else {
                commit(&loc, &mut p).await;
            }
            maintain(&mut p).await;
        }
        assert_eq!(p.version(), StateVersion(12));
        // The first commit always writes (an empty delta); then one delta per changed batch,
        // and a snapshot once more than two deltas follow the last one (1, 4, 8).
        assert_eq!(files_in(dir.path()), ["1.delta", "12.delta", "4.delta", "8.delta", "8.snapshot", "9.delta"]);
        for version in 0..=14u64 {
            let expected = changed.iter().filter(|b| **b < version).count();
            assert_eq!(load(&loc, version, policy).await.state.len(), expected, "version {version}");
        }
    }
}
