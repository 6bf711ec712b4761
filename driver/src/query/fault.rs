//! Fault injection for chaos tests.
//!
//! Killing a process "after batch 2's offsets are written but before its commit" cannot be
//! timed from outside. With `SLUICE_FAULT_PAUSE=after-offsets:<batchId>` (or
//! `after-commit:<batchId>`) the driver stops dead at that protocol point, so a test can wait for
//! the file to appear and SIGKILL the process there. Unset in production.

/// Environment variable naming the pause point.
pub const FAULT_ENV: &str = "SLUICE_FAULT_PAUSE";

/// Blocks forever if the fault variable names `point` for `batch_id`.
pub async fn pause_point(point: &str, batch_id: u64) {
    let Ok(spec) = std::env::var(FAULT_ENV) else { return };
    let wanted = format!("{point}:{batch_id}");
    if spec.split(',').any(|s| s.trim() == wanted) {
        tracing::warn!(point = %wanted, "fault injection: pausing here until killed");
        std::future::pending::<()>().await;
    }
}
