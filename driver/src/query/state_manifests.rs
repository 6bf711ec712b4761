//! The driver's part of state commits: the manifest of each version's delta bundles, and the
//! deletion of bundles no load needs any more (see [`sluice_state::bundle`]).
//!
//! Executors write the deltas of each call as one bundle and report where each partition's
//! delta is. Only the driver sees every task of a batch succeed, so only it can say which
//! bundles make up the version: it writes the manifest after the batch's tasks and before
//! `commits/N`, and a bundle left by an attempt that failed is never named.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_common::error::Result;
use sluice_common::storage::Location;
use sluice_state::bundle::cleanup_bundles;
use sluice_state::{DeltaBundles, DeltaManifest};

use super::scheduler::TaskResult;

/// Writes the manifest of every (operator, version) the tasks wrote deltas of.
pub async fn write_manifests(checkpoint: &Location, results: &[TaskResult]) -> Result<()> {
    let mut manifests: BTreeMap<(usize, u64), DeltaManifest> = BTreeMap::new();
    for r in results {
        for d in &r.metrics.state_deltas {
            manifests.entry((d.operator, d.version)).or_default().deltas.push(d.entry.clone());
        }
    }
    let writes = manifests.into_iter().map(|((operator, version), mut manifest)| async move {
        manifest.deltas.sort_by(|a, b| (a.partition, &a.store).cmp(&(b.partition, &b.store)));
        DeltaBundles::new(checkpoint, operator).write_manifest(version, &manifest).await
    });
    futures::future::try_join_all(writes).await?;
    Ok(())
}

/// Runs bundle retention in the background, at most once per maintenance interval and one
/// run at a time: it lists and reads storage, and a batch must not wait for it.
#[derive(Debug)]
pub struct BundleRetention {
    interval: Duration,
    last: Option<Instant>,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl BundleRetention {
    /// Retention every `interval` (`spark.sql.streaming.stateStore.maintenanceInterval`).
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: None, running: None }
    }

    /// Starts a run for `operators` if one is due and none is running: it deletes what no
    /// load of `earliest` or a later version needs.
    pub fn maybe_start(&mut self, checkpoint: &Location, operators: usize, earliest: u64) {
        let now = Instant::now();
        if operators == 0 || earliest == 0 || self.last.is_some_and(|t| now.duration_since(t) < self.interval) {
            return;
        }
        if self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.last = Some(now);
        let checkpoint = checkpoint.clone();
        self.running = Some(tokio::spawn(async move {
            for operator in 0..operators {
                match cleanup_bundles(&checkpoint, operator, earliest).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(operator, deleted = n, earliest, "deleted old state bundles"),
                    // The error names the directory.
                    Err(e) => tracing::warn!(error = %e, "state bundle retention failed; it is retried next interval"),
                }
            }
        }));
    }
}

impl Drop for BundleRetention {
    fn drop(&mut self) {
        if let Some(h) = &self.running {
            h.abort();
        }
    }
}
