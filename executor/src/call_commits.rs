//! The state commits of one call: every partition's delta in one bundle per operator, written
//! while the batch goes on.
//!
//! The driver sends an executor every partition of a reduce stage it owns in one call. Each
//! part commits its partition in memory ([`sluice_state::StatePartition::commit`]) and hands
//! the delta and the partition's guard here. Once every part has succeeded,
//! [`CallCommits::start_write`] lays the deltas out as one bundle per operator
//! ([`sluice_state::bundle`]) and the call answers with where each delta will be, while the
//! bundles are written in the background: a bundle's put (and on a local disk its `fsync`) no
//! longer holds up the batch's next stage. The driver waits for them ([`StateWrites::wait`],
//! its `AwaitStateWrites` call) after the batch's last stage and before it writes the manifests
//! that name them, so nothing names a bundle that is not on storage.
//!
//! The partitions are kept at their new versions only once their bundles are written; if a
//! part or a write fails, the guards drop, which discards the partitions' in-memory copies:
//! they hold a version the checkpoint does not (see [`crate::state_cache`]). Until then the
//! guards also keep maintenance from snapshotting a version that is not yet written, and a
//! retried attempt's task from using the partition before its fate is known.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use sluice_common::error::{Result, SluiceError};
use sluice_common::storage::Location;
use sluice_state::{DeltaBundles, DeltaRef, StagedDelta};
use tokio::task::JoinHandle;

use crate::state_cache::PartitionGuard;

/// One part's commit, waiting for the call's bundle.
struct Staged {
    /// The part's position in its call.
    part: usize,
    operator: usize,
    guard: PartitionGuard,
    delta: Option<StagedDelta>,
}

/// Wall time of a call's bundle writes, ms, per operator (a part of its `commitTimeMs`).
pub type WriteTimes = BTreeMap<usize, u64>;

/// The commits of one call's parts.
#[derive(Default)]
pub struct CallCommits {
    staged: std::sync::Mutex<Vec<Staged>>,
}

impl CallCommits {
    /// Takes the commit of one part: its partition (committed in memory) and its delta.
    pub fn stage(&self, part: usize, operator: usize, guard: PartitionGuard, delta: Option<StagedDelta>) -> Result<()> {
        let mut staged = self.staged.lock().map_err(|_| SluiceError::internal("call commits poisoned"))?;
        staged.push(Staged { part, operator, guard, delta });
        Ok(())
    }

    /// Whether any part staged a commit.
    pub fn any_staged(&self) -> bool {
        self.staged.lock().map(|s| !s.is_empty()).unwrap_or(true)
    }

    /// Lays out one bundle per operator of `version` (the one the call's batch writes), named
    /// `id` (unique to the call), and starts writing them in the background, registered in
    /// `writes` under `run` and `batch`. Returns every delta's entry with the position of the
    /// part it belongs to. The partitions are kept once every bundle is written, and discarded
    /// if one fails; when no part changed anything they are kept at once.
    pub fn start_write(
        &self,
        checkpoint: &Location,
        version: u64,
        id: &str,
        writes: &StateWrites,
        (run, batch): (&str, u64),
    ) -> Result<Vec<(usize, DeltaRef)>> {
        let staged = std::mem::take(&mut *self.staged.lock().map_err(|_| SluiceError::internal("call commits poisoned"))?);
        let mut by_operator: BTreeMap<usize, (Vec<usize>, Vec<StagedDelta>)> = BTreeMap::new();
        let mut guards = Vec::with_capacity(staged.len());
        for s in staged {
            if let Some(delta) = s.delta {
                let (parts, deltas) = by_operator.entry(s.operator).or_default();
                parts.push(s.part);
                deltas.push(delta);
            }
            guards.push(s.guard);
        }
        let mut deltas = Vec::new();
        let mut bundles = Vec::with_capacity(by_operator.len());
        for (operator, (parts, staged)) in by_operator {
            let Some(bundle) = DeltaBundles::new(checkpoint, operator).lay_out(version, id, staged) else { continue };
            for (part, entry) in parts.into_iter().zip(&bundle.entries) {
                deltas.push((part, DeltaRef { operator, version, entry: entry.clone() }));
            }
            bundles.push((operator, bundle));
        }
        let Some(name) = bundles.first().map(|(_, b)| b.name().to_string()) else {
            for guard in guards {
                guard.keep();
            }
            return Ok(deltas);
        };
        let written = tokio::spawn(async move {
            let puts = bundles.into_iter().map(|(operator, bundle)| async move {
                let started = Instant::now();
                bundle.put().await?;
                Ok::<_, SluiceError>((operator, started.elapsed().as_millis() as u64))
            });
            let times: WriteTimes = futures::future::try_join_all(puts).await?.into_iter().collect();
            for guard in guards {
                guard.keep();
            }
            Ok(times)
        });
        writes.add(run, batch, name, written);
        Ok(deltas)
    }
}

/// A bundle write under way.
struct PendingWrite {
    batch: u64,
    written: JoinHandle<Result<WriteTimes>>,
}

/// The executor's bundle writes under way, by query run and bundle name, until the driver waits
/// for them.
#[derive(Default)]
pub struct StateWrites {
    pending: std::sync::Mutex<HashMap<(String, String), PendingWrite>>,
}

impl StateWrites {
    /// Registers the write of bundle `name` for `batch` of `run`. Writes of the run's earlier
    /// batches still registered belong to attempts the driver gave up on (it waits for every
    /// batch's writes before the next batch starts): they are forgotten, and finish on their own.
    fn add(&self, run: &str, batch: u64, name: String, written: JoinHandle<Result<WriteTimes>>) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|(r, _), w| r != run || w.batch >= batch);
            pending.insert((run.to_string(), name), PendingWrite { batch, written });
        }
    }

    /// Waits until every bundle of `names` that `run`'s calls here started writing is on
    /// storage, and returns their write times. A bundle this executor does not know of fails
    /// the wait: it restarted since the call that named it, and the bundle is lost.
    pub async fn wait(&self, run: &str, names: &[String]) -> Result<WriteTimes> {
        let taken: Vec<(&String, Option<PendingWrite>)> = {
            let mut pending = self.pending.lock().map_err(|_| SluiceError::internal("state writes poisoned"))?;
            names.iter().map(|n| (n, pending.remove(&(run.to_string(), n.clone())))).collect()
        };
        let mut times = WriteTimes::new();
        for (name, write) in taken {
            let Some(write) = write else {
                return Err(SluiceError::external(format!(
                    "state bundle {name} of run {run} is not being written by this executor (it restarted since the call that wrote it)"
                )));
            };
            let written = write.written.await.map_err(|e| {
                SluiceError::internal(format!(
                    "writing state bundle {name} {}",
                    if e.is_panic() { "panicked" } else { "was cancelled" }
                ))
            })??;
            for (operator, ms) in written {
                *times.entry(operator).or_default() += ms;
            }
        }
        Ok(times)
    }

    /// Forgets the writes of a run that ended (they finish on their own).
    pub fn release(&self, run: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|(r, _), _| r != run);
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_common::StateVersion;

    use super::*;
    use crate::state_cache::tests::{policy, put, schemas};
    use crate::state_cache::StateCache;

    /// Partitions 0..n of operator 0, each with one key written at version 0 → 1, staged in `commits`.
    async fn stage_partitions(cache: &StateCache, chk: &Location, commits: &CallCommits, n: u32) {
        for p in 0..n {
            let mut g = cache.checkout("run", 0, p, "", StateVersion(0), chk, schemas(), policy()).await.unwrap();
            put(g.partition().unwrap(), i64::from(p));
            let delta = g.partition().unwrap().commit().unwrap().delta;
            commits.stage(p as usize, 0, g, delta).unwrap();
        }
    }

    #[tokio::test]
    async fn a_calls_deltas_are_on_storage_where_it_said_once_the_wait_returns() {
        let chk = sluice_common::storage::resolve("memory://call-commits/written").unwrap();
        let (cache, commits, writes) = (StateCache::default(), CallCommits::default(), StateWrites::default());
        stage_partitions(&cache, &chk, &commits, 3).await;
        let deltas = commits.start_write(&chk, 1, "call", &writes, ("run", 0)).unwrap();
        assert_eq!(deltas.iter().map(|(part, _)| *part).collect::<Vec<_>>(), [0, 1, 2]);
        let times = writes.wait("run", &["call.bundle".to_string()]).await.unwrap();
        assert_eq!(times.keys().copied().collect::<Vec<_>>(), [0], "one write time, of operator 0");
        let bundles = DeltaBundles::new(&chk, 0);
        for (_, d) in &deltas {
            assert_eq!((d.operator, d.version, d.entry.bundle.as_str()), (0, 1, "call.bundle"));
            let bytes = bundles.read_delta(1, &d.entry).await.unwrap();
            assert_eq!(bytes.len() as u64, d.entry.len);
        }
        // Kept at version 1: storage has no manifest of it, so only the copy in memory serves it.
        for p in 0..3 {
            cache.checkout("run", 0, p, "", StateVersion(1), &chk, schemas(), policy()).await.unwrap().keep();
        }
        // A wait is answered once: the driver waits for each bundle once per batch attempt.
        assert!(writes.wait("run", &["call.bundle".to_string()]).await.is_err());
    }

    #[tokio::test]
    async fn a_bundle_the_executor_does_not_know_fails_the_wait_retryably() {
        let chk = sluice_common::storage::resolve("memory://call-commits/unknown").unwrap();
        let (cache, writes) = (StateCache::default(), StateWrites::default());
        let e = writes.wait("run", &["lost.bundle".to_string()]).await.unwrap_err();
        assert!(e.retryable && e.message.contains("lost.bundle") && e.message.contains("restarted"), "{e:?}");

        // A write of batch 3 that no one waited for (its attempt was given up) is forgotten once
        // a call of batch 4 writes.
        let abandoned = CallCommits::default();
        stage_partitions(&cache, &chk, &abandoned, 1).await;
        abandoned.start_write(&chk, 4, "abandoned", &writes, ("run", 3)).unwrap();
        // Another run's writes are its own.
        let other = CallCommits::default();
        stage_partitions(&StateCache::default(), &chk, &other, 1).await;
        other.start_write(&chk, 4, "other", &writes, ("other-run", 3)).unwrap();
        let next = CallCommits::default();
        stage_partitions(&StateCache::default(), &chk, &next, 1).await;
        next.start_write(&chk, 5, "next", &writes, ("run", 4)).unwrap();
        assert!(writes.wait("run", &["abandoned.bundle".to_string()]).await.is_err());
        writes.wait("run", &["next.bundle".to_string()]).await.unwrap();
        // A released run's writes are forgotten.
        writes.release("other-run");
        assert!(writes.wait("other-run", &["other.bundle".to_string()]).await.is_err());
    }

    #[tokio::test]
    async fn a_call_that_changed_nothing_keeps_its_partitions_at_once() {
        let chk = sluice_common::storage::resolve("memory://call-commits/unchanged").unwrap();
        let (cache, commits, writes) = (StateCache::default(), CallCommits::default(), StateWrites::default());
        stage_partitions(&cache, &chk, &commits, 1).await;
        commits.start_write(&chk, 1, "first", &writes, ("run", 0)).unwrap();
        writes.wait("run", &["first.bundle".to_string()]).await.unwrap();
        // The next batch changes nothing in the partition.
        let mut g = cache.checkout("run", 0, 0, "", StateVersion(1), &chk, schemas(), policy()).await.unwrap();
        let commit = g.partition().unwrap().commit().unwrap();
        assert!(commit.delta.is_none());
        commits.stage(0, 0, g, commit.delta).unwrap();
        assert!(commits.start_write(&chk, 2, "call", &writes, ("run", 1)).unwrap().is_empty());
        // Kept at version 2, which only the copy in memory serves (no manifest names version 1).
        cache.checkout("run", 0, 0, "", StateVersion(2), &chk, schemas(), policy()).await.unwrap();
        assert!(writes.wait("run", &["call.bundle".to_string()]).await.is_err(), "nothing to wait for");
    }
}
