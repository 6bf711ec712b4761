//! The state commits of one call: every partition's delta in one bundle per operator.
//!
//! The driver sends an executor every partition of a reduce stage it owns in one call. Each
//! part commits its partition in memory ([`sluice_state::StatePartition::commit`]) and hands
//! the delta and the partition's guard here; once every part has succeeded, [`CallCommits::write`]
//! writes the deltas as one bundle per operator ([`sluice_state::bundle`]), and only then keeps
//! the partitions at their new versions. A call that fails — a part, or the bundle's write —
//! drops the guards, which discards the partitions' in-memory copies: they hold a version the
//! checkpoint does not (see [`crate::state_cache`]). Until then the guards also keep
//! maintenance from snapshotting a version that is not yet written.

use std::collections::BTreeMap;
use std::time::Instant;

use sluice_common::error::{Result, SluiceError};
use sluice_common::storage::Location;
use sluice_state::{DeltaBundles, DeltaRef, StagedDelta};

use crate::state_cache::PartitionGuard;

/// One part's commit, waiting for the call's bundle.
struct Staged {
    /// The part's position in its call.
    part: usize,
    operator: usize,
    guard: PartitionGuard,
    delta: Option<StagedDelta>,
}

/// What writing a call's bundles produced.
#[derive(Debug, Default)]
pub struct WrittenCommits {
    /// Every delta written, with the position of the part it belongs to.
    pub deltas: Vec<(usize, DeltaRef)>,
    /// Wall time of the writes, ms, per operator (a part of its `commitTimeMs`).
    pub write_ms: BTreeMap<usize, u64>,
}

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

    /// Writes one bundle per operator of `version` (the one the call's batch writes), named `id`
    /// (unique to the call), then keeps the partitions; on failure they are discarded.
    pub async fn write(&self, checkpoint: &Location, version: u64, id: &str) -> Result<WrittenCommits> {
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
        let mut written = WrittenCommits::default();
        for (operator, (parts, deltas)) in by_operator {
            let started = Instant::now();
            let entries = DeltaBundles::new(checkpoint, operator).write(version, id, deltas).await?;
            written.write_ms.insert(operator, started.elapsed().as_millis() as u64);
            for (part, entry) in parts.into_iter().zip(entries) {
                written.deltas.push((part, DeltaRef { operator, version, entry }));
            }
        }
        for guard in guards {
            guard.keep();
        }
        Ok(written)
    }
}
