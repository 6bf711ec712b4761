//! Where a task's computation runs: off the runtime's async workers.
//!
//! An operator computes for as long as its rows take — a Nexmark q7 join task holds its thread
//! for 200–400 ms between awaits — and the runtime has one async worker per core, shared by the
//! executor's gRPC server and, in the embedded cluster, by the driver and every other executor.
//! When tasks computed on every worker, nothing was left to answer the driver's liveness pings
//! (200 ms): a busy, healthy executor was suspended and its batch attempt retried, and q7's
//! batches that hit such a retry took two to three times as long.

use std::future::Future;

use sluice_plan::TaskKind;
use tokio::runtime::{Handle, RuntimeFlavor};

/// Whether a task has rows to compute, and so runs off the async workers: every task but a
/// reduce task whose inputs name no producer. Such a task, most of a small batch's 200 state
/// partitions, only evicts what the watermark closed; handing its thread over
/// (`block_in_place`, ~60 µs) costs more than it does: 12 ms of a 20-ms batch at 200 partitions.
pub fn computes_rows(kind: &TaskKind) -> bool {
    match kind {
        TaskKind::Reduce { inputs, .. } => inputs.iter().any(|producers| !producers.is_empty()),
        _ => true,
    }
}

/// Drives `work` to its end on the current thread, after handing the runtime's other work on
/// this thread to another one (`block_in_place`), so the async workers stay free for I/O and
/// pings. A current-thread runtime (some tests) has no other worker to hand work to: there the
/// work runs as it is. `work` is only polled here: cancel it from inside (an `Abortable`), not
/// by aborting the tokio task that calls this.
pub async fn off_async_workers<F: Future>(work: F) -> F::Output {
    let handle = Handle::current();
    match handle.runtime_flavor() {
        RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| handle.block_on(work)),
        _ => work.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, Instant};

    use futures::future::{AbortHandle, Abortable};

    #[test]
    fn only_reduce_tasks_without_input_stay_on_the_async_workers() {
        let reduce = |inputs: Vec<Vec<sluice_plan::BlockSource>>| TaskKind::Reduce { op: 0, partition: 3, inputs };
        let producer = sluice_plan::BlockSource { producer: 1, endpoint: "http://e1".into() };
        assert!(!computes_rows(&reduce(vec![])), "an operator with no input");
        assert!(!computes_rows(&reduce(vec![vec![], vec![]])), "a join partition neither side sent rows to");
        assert!(computes_rows(&reduce(vec![vec![], vec![producer.clone()]])), "one side has rows");
        assert!(computes_rows(&TaskKind::Gather { inputs: vec![] }));
    }

    /// With one async worker, a task computing for a second through `off_async_workers` leaves
    /// the worker to the others: a ping-like task answers long before the computation ends.
    /// (The test waits on no timer: timers are driven by the workers it is about.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn computing_tasks_leave_the_async_worker_free() {
        let (started, computing_started) = std::sync::mpsc::channel();
        let computing = tokio::spawn(off_async_workers(async move {
            let _ = started.send(());
            std::thread::sleep(Duration::from_secs(1));
        }));
        // The test body runs beside the runtime's worker, not on it: it may block.
        computing_started.recv().expect("the computation started");
        let asked = Instant::now();
        let answered = tokio::spawn(async move { asked.elapsed() }).await.unwrap();
        assert!(answered < Duration::from_millis(500), "the ping waited {answered:?} behind the computation");
        computing.await.unwrap();
    }

    /// An abort handle stops the work at its next await even though the thread is blocked in it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abort_reaches_work_off_the_workers() {
        let (cancel, registration) = AbortHandle::new_pair();
        let work = tokio::spawn(off_async_workers(Abortable::new(
            async {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            registration,
        )));
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.abort();
        let outcome = tokio::time::timeout(Duration::from_secs(5), work).await.expect("the work stopped").unwrap();
        assert!(outcome.is_err(), "the work was aborted");
    }

    /// On a current-thread runtime the work simply runs.
    #[tokio::test]
    async fn a_current_thread_runtime_runs_the_work_in_place() {
        assert_eq!(off_async_workers(async { 7 }).await, 7);
    }
}
