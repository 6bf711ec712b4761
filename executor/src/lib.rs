//! # sluice-executor
//!
//! An executor runs the tasks the driver assigns it: it reads its input split, runs the query's
//! DataFusion plan over it and hands the result to the sink, reporting metrics back. It registers
//! with the driver over gRPC and heartbeats so the driver notices when it goes away.
//!
//! * [`service`] — the gRPC `ExecutorService` and process lifecycle (start, register, heartbeat).
//! * [`task_runner`] — executing one task: the data path of a micro-batch.
//! * [`query_cache`] — compiled query plans kept per query run.

pub mod query_cache;
pub mod service;
pub mod shuffle;
pub mod state_cache;
pub mod task_runner;
pub mod wire;

pub use service::{ExecutorConfig, ExecutorHandle};
