//! Fault injection for chaos tests.
//!
//! Killing a process "after batch 2's offsets are written but before its commit" cannot be
//! timed from outside. With `SLUICE_FAULT_PAUSE=after-offsets:<batchId>` (or
//! `after-commit:<batchId>`) the driver stops dead at that protocol point, so a test can wait for
//! the file to appear and SIGKILL the process there. `after-offsets:<batchId>:<ms>` pauses for
//! `ms` milliseconds and then goes on, so a test can break an external service (stop a broker)
//! between planning a batch and running it. `*` for the batch id pauses at every batch: chaos
//! tests pace a query that way, so that it is still running, with batches planned but not
//! committed, when processes are killed at random moments. Unset in production.

use sluice_common::BatchId;
use std::time::Duration;

/// Environment variable naming the pause point.
pub const FAULT_ENV: &str = "SLUICE_FAULT_PAUSE";

/// What a fault specification asks for at one protocol point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    Forever,
    For(Duration),
}

/// The pause `spec` (comma-separated `point:batch[:ms]` entries) asks for at `point` of batch
/// `batch_id`, if any; the first matching entry wins.
fn pause_for(spec: &str, point: &str, batch_id: u64) -> Option<Pause> {
    spec.split(',').map(str::trim).find_map(|entry| {
        let mut parts = entry.split(':');
        if parts.next() != Some(point) {
            return None;
        }
        let batch = parts.next()?;
        if batch != "*" && batch.parse::<u64>().ok() != Some(batch_id) {
            return None;
        }
        match parts.next() {
            None => Some(Pause::Forever),
            Some(ms) => ms.parse().ok().map(|ms| Pause::For(Duration::from_millis(ms))),
        }
    })
}

/// Blocks (forever, or for the given time) if the fault variable names `point` for `batch_id`.
pub async fn pause_point(point: &str, batch: BatchId) {
    let Ok(spec) = std::env::var(FAULT_ENV) else { return };
    let batch_id = batch.0;
    match pause_for(&spec, point, batch_id) {
        None => {}
        Some(Pause::Forever) => {
            tracing::warn!(point, batch = batch_id, "fault injection: pausing here until killed");
            std::future::pending::<()>().await;
        }
        Some(Pause::For(d)) => {
            tracing::debug!(point, batch = batch_id, ms = d.as_millis() as u64, "fault injection: pausing here");
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_their_point_and_batch() {
        let spec = "after-offsets:2, after-commit:3:4000";
        assert_eq!(pause_for(spec, "after-offsets", 2), Some(Pause::Forever));
        assert_eq!(pause_for(spec, "after-offsets", 3), None);
        assert_eq!(pause_for(spec, "after-commit", 3), Some(Pause::For(Duration::from_millis(4000))));
        assert_eq!(pause_for(spec, "after-commit", 2), None);
        assert_eq!(pause_for("after-offsets:12", "after-offsets", 1), None, "batch ids match whole");
    }

    #[test]
    fn a_star_pauses_every_batch() {
        for batch in [0, 1, 99] {
            assert_eq!(pause_for("after-offsets:*:200", "after-offsets", batch), Some(Pause::For(Duration::from_millis(200))));
        }
        assert_eq!(pause_for("after-offsets:*:200", "after-commit", 0), None);
    }

    #[test]
    fn malformed_entries_are_ignored() {
        assert_eq!(pause_for("after-offsets", "after-offsets", 0), None);
        assert_eq!(pause_for("after-offsets:x", "after-offsets", 0), None);
        assert_eq!(pause_for("after-offsets:0:soon", "after-offsets", 0), None);
        assert_eq!(pause_for("", "after-offsets", 0), None);
    }
}
