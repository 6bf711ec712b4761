//! # sluice-executor
//!
//! An executor runs the tasks the driver assigns it: it reads its input split, runs the query's
//! DataFusion plan over it, runs the stateful operators on the state partitions it owns, and
//! hands the result to the sink, reporting metrics back. It registers with the driver (or in
//! etcd) and heartbeats so the driver notices when it goes away.
//!
//! * [`service`] — the gRPC `ExecutorService` and process lifecycle (start, register, heartbeat).
//! * [`task_runner`] — executing one task: the data path of a micro-batch.
//! * [`operators`] — streaming aggregation, deduplication and session windows on state.
//! * [`shuffle`] — blocks between stages, served over Arrow Flight.
//! * [`task_slot`] — the slot pools (map tasks have their own), and a task's claim on a slot,
//!   lent back while it waits on I/O.
//! * [`compute`] — where a task's computation runs: off the async workers that answer pings.
//! * [`state_cache`] — the state partitions this executor holds between batches.
//! * [`call_commits`] — a call's state commits, written as one delta bundle per operator.
//! * [`query_cache`] — compiled query plans kept per query run.
//! * [`metrics`] — the executor's Prometheus metrics, and the numbers it answers pings with.

pub mod call_commits;
pub mod compute;
pub mod metrics;
pub mod operators;
pub mod query_cache;
pub mod service;
pub mod shuffle;
pub mod state_cache;
pub mod task_runner;
pub mod task_slot;
pub mod term_fence;

pub use metrics::{ExecutorMeter, ExecutorMetrics, ExecutorStats};
pub use service::{DrainOutcome, ExecutorConfig, ExecutorHandle, ExecutorStatus};

/// Batches of a query run whose work an executor holds at once — shuffle blocks, static tables:
/// the batch in flight, and the next one, whose map stage the driver may run ahead of it
/// (`sluice_driver::query::map_ahead`), interleaving its tasks with the current batch's.
pub(crate) const BATCHES_IN_FLIGHT: usize = 2;
