//! Fault injection for chaos tests.
//!
//! Killing a process "after batch 2's offsets are written but before its commit" cannot be
//! timed from outside. With `SLUICE_FAULT_PAUSE=after-offsets:<batchId>` (or
//! `after-commit:<batchId>`) the driver stops dead at that protocol point, so a test can wait for
//! the file to appear and SIGKILL the process there. `after-offsets:<batchId>:<ms>` pauses for
//! `ms` milliseconds and then goes on, so a test can break an external service (stop a broker)
//! between planning a batch and running it. Unset in production.

use std::time::Duration;

/// Environment variable naming the pause point.
pub const FAULT_ENV: &str = "SLUICE_FAULT_PAUSE";

/// Blocks (forever, or for the given time) if the fault variable names `point` for `batch_id`.
pub async fn pause_point(point: &str, batch_id: u64) {
    let Ok(spec) = std::env::var(FAULT_ENV) else { return };
    let wanted = format!("{point}:{batch_id}");
    for entry in spec.split(',').map(str::trim) {
        if entry == wanted {
            tracing::warn!(point = %wanted, "fault injection: pausing here until killed");
            std::future::pending::<()>().await;
        }
        let timed = entry.strip_prefix(wanted.as_str()).and_then(|rest| rest.strip_prefix(':')).and_then(|ms| ms.parse::<u64>().ok());
        if let Some(ms) = timed {
            tracing::warn!(point = %wanted, ms, "fault injection: pausing here");
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}
