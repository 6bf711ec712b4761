//! State partitions this executor holds between batches.
//!
//! The driver keeps sending partition p of an operator to the same executor, so its state stays
//! in memory from one batch to the next. An entry is reused only if it is at exactly the version
//! the task needs; anything else — a retried batch, a partition that just moved here, a new run
//! of the query — reloads that version from the checkpoint.
//!
//! A task changes its partition in memory before it commits the new version. If it fails or is
//! cancelled (its batch attempt was abandoned) in between, the in-memory copy holds half a
//! batch under the old version number, so a checked-out partition that is not marked committed
//! is discarded when its guard drops.
//!
//! [`StateCache::maintain`] is the executor's state maintenance (Spark's): in the background,
//! it snapshots and cleans up every partition whose maintenance interval has passed, skipping
//! one a task holds until the next round.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use sluice_common::error::Result;
use sluice_common::storage::Location;
use sluice_common::StateVersion;
use sluice_state::{ManifestCache, StateFiles, StatePartition, StatePolicy};
use tokio::sync::Mutex;

type Key = (String, usize, u32, &'static str);

/// The executor's state partitions, by (query run, operator, partition, store); the store is
/// `""` for operators with one store, the side for a join.
#[derive(Debug, Default)]
pub struct StateCache {
    parts: std::sync::Mutex<HashMap<Key, Arc<Mutex<Option<StatePartition>>>>>,
    /// The manifests of delta bundles the loads of each run have read, by run.
    manifests: std::sync::Mutex<HashMap<String, Arc<ManifestCache>>>,
}

/// A checked-out partition, locked for the task's duration; discarded on drop unless the task
/// committed it (see the module docs).
pub struct PartitionGuard {
    slot: tokio::sync::OwnedMutexGuard<Option<StatePartition>>,
    committed: bool,
}

impl PartitionGuard {
    /// The partition, for the task to change and commit.
    pub fn partition(&mut self) -> Result<&mut StatePartition> {
        self.slot.as_mut().ok_or_else(|| sluice_common::SluiceError::internal("state partition missing after checkout"))
    }

    /// The task committed the partition's new version: keep it in memory for the next batch.
    pub fn keep(mut self) {
        self.committed = true;
    }
}

impl Drop for PartitionGuard {
    fn drop(&mut self) {
        if !self.committed {
            *self.slot = None;
        }
    }
}

impl StateCache {
    /// The partition's store at `version` (`store` is `""` for an operator's only store),
    /// loading it from `checkpoint` when the cached copy is at another version (or absent).
    #[allow(clippy::too_many_arguments)]
    pub async fn checkout(
        &self,
        run_id: &str,
        op: usize,
        partition: u32,
        store: &'static str,
        version: StateVersion,
        checkpoint: &Location,
        schemas: (SchemaRef, SchemaRef),
        policy: StatePolicy,
    ) -> Result<PartitionGuard> {
        let slot = {
            let mut parts = self.parts.lock().map_err(|_| sluice_common::SluiceError::internal("state cache poisoned"))?;
            Arc::clone(parts.entry((run_id.to_string(), op, partition, store)).or_default())
        };
        let mut guard = slot.lock_owned().await;
        if guard.as_ref().is_none_or(|p| p.version() != version) {
            let files =
                StateFiles::new(checkpoint, op, partition).in_store(store).with_manifest_cache(self.manifest_cache(run_id)?);
            *guard = Some(StatePartition::load(files, schemas.0, schemas.1, version, policy).await?);
        }
        Ok(PartitionGuard { slot: guard, committed: false })
    }

    /// One round of maintenance: every partition whose interval has passed and that no task
    /// holds writes its due snapshot and deletes the files it no longer needs. A failure is
    /// logged and retried at the partition's next interval: until then, loads replay more deltas.
    pub async fn maintain(&self) {
        let slots: Vec<Arc<Mutex<Option<StatePartition>>>> = match self.parts.lock() {
            Ok(parts) => parts.values().cloned().collect(),
            Err(_) => return,
        };
        for slot in slots {
            let work = {
                let now = Instant::now();
                let Ok(mut guard) = slot.try_lock() else { continue };
                let Some(part) = guard.as_mut().filter(|p| p.maintenance_due(now)) else { continue };
                part.maintenance(now)
            };
            let done = match work {
                Ok(Some(work)) => work.run().await,
                Ok(None) => continue,
                Err(e) => Err(e),
            };
            match done {
                Ok(Some(version)) => {
                    if let Some(part) = slot.lock().await.as_mut() {
                        part.snapshot_written(version);
                    }
                }
                Ok(None) => {}
                // The error names the partition's state directory.
                Err(e) => tracing::warn!(error = %e, "state maintenance failed; it is retried next interval"),
            }
        }
    }

    /// The manifest cache of a run's loads.
    fn manifest_cache(&self, run_id: &str) -> Result<Arc<ManifestCache>> {
        let mut caches = self.manifests.lock().map_err(|_| sluice_common::SluiceError::internal("state cache poisoned"))?;
        Ok(Arc::clone(caches.entry(run_id.to_string()).or_default()))
    }

    /// Forgets every partition of a run.
    pub fn release(&self, run_id: &str) {
        if let Ok(mut parts) = self.parts.lock() {
            parts.retain(|(r, _, _, _), _| r != run_id);
        }
        if let Ok(mut caches) = self.manifests.lock() {
            caches.remove(run_id);
        }
    }

    /// Forgets the listed (operator, partition)s of a run: they moved to another executor.
    pub fn release_partitions(&self, run_id: &str, partitions: &[(usize, u32)]) {
        if let Ok(mut parts) = self.parts.lock() {
            parts.retain(|(r, op, p, _), _| r != run_id || !partitions.contains(&(*op, *p)));
        }
    }

    /// How many partitions this executor holds (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.parts.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// How many state partitions — (run, operator, partition)s — this executor holds; a join's
    /// two stores of one partition count once, as the driver places them together.
    pub fn partitions(&self) -> usize {
        let Ok(parts) = self.parts.lock() else { return 0 };
        parts.keys().map(|(run, op, p, _)| (run, op, p)).collect::<HashSet<_>>().len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use sluice_state::StatePolicy;

    pub(crate) fn schemas() -> (SchemaRef, SchemaRef) {
        (
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])),
            Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)])),
        )
    }

    pub(crate) fn policy() -> StatePolicy {
        StatePolicy { min_deltas_for_snapshot: 1, min_batches_to_retain: 100, maintenance_interval: std::time::Duration::ZERO }
    }

    /// Commits `g` as a call and the driver do: its bundle, then the version's manifest.
    async fn commit(mut g: PartitionGuard, chk: &Location) {
        let version = g.partition().unwrap().version().next().0;
        let commit = g.partition().unwrap().commit().unwrap();
        let (commits, writes) = (crate::call_commits::CallCommits::default(), crate::call_commits::StateWrites::default());
        commits.stage(0, 0, g, commit.delta).unwrap();
        let deltas = commits.start_write(chk, version, "call", &writes, ("run", version)).unwrap();
        writes.wait("run", &["call.bundle".to_string()]).await.unwrap();
        for (_, d) in deltas {
            let manifest = sluice_state::DeltaManifest { deltas: vec![d.entry] };
            sluice_state::DeltaBundles::new(chk, d.operator).write_manifest(d.version, &manifest).await.unwrap();
        }
    }

    /// Puts `key` → `key` into `p`'s state.
    pub(crate) fn put(p: &mut StatePartition, key: i64) {
        let k = p.state.encode_keys(&[Arc::new(Int64Array::from(vec![key])) as ArrayRef], 1).unwrap();
        let v = p.state.encode_values(&[Arc::new(Int64Array::from(vec![key])) as ArrayRef], 1).unwrap();
        p.state.put(k.row(0).as_ref(), v.row(0).as_ref(), None);
    }

    #[tokio::test]
    async fn an_abandoned_task_leaves_no_half_applied_state() {
        let chk = sluice_common::storage::resolve("memory://state-cache-test/chk").unwrap();
        let cache = StateCache::default();

        // Batch 0 commits one key.
        let mut g = cache.checkout("run", 0, 0, "", StateVersion(0), &chk, schemas(), policy()).await.unwrap();
        put(g.partition().unwrap(), 1);
        commit(g, &chk).await;

        // Batch 1's first attempt changes the partition, then fails before committing.
        let mut g = cache.checkout("run", 0, 0, "", StateVersion(1), &chk, schemas(), policy()).await.unwrap();
        put(g.partition().unwrap(), 2);
        drop(g);

        // The retry must see exactly version 1: one key.
        let mut g = cache.checkout("run", 0, 0, "", StateVersion(1), &chk, schemas(), policy()).await.unwrap();
        assert_eq!(g.partition().unwrap().state.len(), 1);
        assert_eq!(g.partition().unwrap().version(), StateVersion(1));
    }

    #[tokio::test]
    async fn a_bundle_that_fails_to_write_discards_its_partitions() {
        use sluice_common::storage::faults::{FaultKind, FaultyStore};
        let chk = sluice_common::storage::resolve("memory://state-cache-bundle/chk").unwrap();
        let failing = Location {
            store: Arc::new(FaultyStore::scripted(Arc::clone(&chk.store), vec![Some(FaultKind::Error)])),
            ..chk.clone()
        };
        let cache = StateCache::default();
        let (commits, writes) = (crate::call_commits::CallCommits::default(), crate::call_commits::StateWrites::default());
        for p in 0..2 {
            let mut g = cache.checkout("run", 0, p, "", StateVersion(0), &chk, schemas(), policy()).await.unwrap();
            put(g.partition().unwrap(), 1);
            let delta = g.partition().unwrap().commit().unwrap().delta;
            commits.stage(p as usize, 0, g, delta).unwrap();
        }
        let deltas = commits.start_write(&failing, 1, "call", &writes, ("run", 0)).unwrap();
        assert_eq!(deltas.len(), 2, "the call reports both deltas before their bundle is written");
        assert!(writes.wait("run", &["call.bundle".to_string()]).await.is_err());
        // Neither partition may pass for version 1 in memory: it was never written.
        for p in 0..2 {
            let e = cache.checkout("run", 0, p, "", StateVersion(1), &chk, schemas(), policy()).await.err().unwrap();
            assert!(e.message.contains("it has no state files"), "{}", e.message);
            let mut g = cache.checkout("run", 0, p, "", StateVersion(0), &chk, schemas(), policy()).await.unwrap();
            assert_eq!(g.partition().unwrap().state.len(), 0);
        }
    }

    #[tokio::test]
    async fn a_joins_two_stores_count_as_one_partition() {
        let chk = sluice_common::storage::resolve("memory://state-cache-count/chk").unwrap();
        let cache = StateCache::default();
        for (op, p, store) in [(0, 0, "left"), (0, 0, "right"), (0, 1, "left"), (0, 1, "right"), (1, 0, "")] {
            cache.checkout("run", op, p, store, StateVersion(0), &chk, schemas(), policy()).await.unwrap().keep();
        }
        cache.checkout("other", 1, 0, "", StateVersion(0), &chk, schemas(), policy()).await.unwrap().keep();
        assert_eq!((cache.len(), cache.partitions()), (6, 4));
        cache.release_partitions("run", &[(0, 1)]);
        assert_eq!(cache.partitions(), 3);
        cache.release("run");
        assert_eq!(cache.partitions(), 1);
    }

    #[tokio::test]
    async fn maintenance_snapshots_the_partitions_no_task_holds() {
        let dir = tempfile::tempdir().unwrap();
        let chk = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let cache = StateCache::default();
        for version in 0..2 {
            for p in 0..2 {
                let mut g = cache.checkout("run", 0, p, "", StateVersion(version), &chk, schemas(), policy()).await.unwrap();
                put(g.partition().unwrap(), version as i64);
                commit(g, &chk).await;
            }
        }
        assert!(!dir.path().join("state/0/0/2.snapshot").exists(), "a commit writes no snapshot");
        // A task holds partition 1 during the round: only partition 0 is maintained.
        let held = cache.checkout("run", 0, 1, "", StateVersion(2), &chk, schemas(), policy()).await.unwrap();
        cache.maintain().await;
        assert!(dir.path().join("state/0/0/2.snapshot").exists(), "two deltas > one: a snapshot");
        assert!(!dir.path().join("state/0/1/2.snapshot").exists(), "a held partition waits for the next round");
        held.keep();
        cache.maintain().await;
        assert!(dir.path().join("state/0/1/2.snapshot").exists());
    }
}
