//! # sluice-driver
//!
//! The driver owns streaming queries: for every micro-batch it asks sources for offsets, writes
//! the offsets WAL, spreads tasks over executors, commits the sink and writes the commit log —
//! never touching row data itself. This crate also ships the `sluice` binary.
//!
//! * [`cluster`] — the driver's gRPC endpoint, executor membership, the embedded cluster.
//! * [`query`] — one query's micro-batch loop, triggers, watermark, scheduling, progress.
//! * [`session`] — starting queries from job files; memory streams and tables for tests.
//! * [`cli`] — the `sluice` command line.

pub mod cli;
pub mod cluster;
pub mod daemon;
pub mod manager;
pub mod query;
pub mod session;

pub use cluster::EmbeddedCluster;
pub use query::{QueryState, StreamingQuery};
pub use session::Session;
