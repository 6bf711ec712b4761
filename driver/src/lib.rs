//! # sluice-driver
//!
//! The driver owns streaming queries: for every micro-batch it asks sources for offsets, writes
//! the offsets WAL, spreads tasks over executors, commits the sink and writes the commit log —
//! never touching row data itself.
//!
//! * [`job`] — the job-file language (`CREATE STREAM`, `SET`, `INSERT INTO … SELECT`).
//! * [`checkpoint`] — offsets WAL, commit log and the restart decision (docs/semantics.md §1).
//! * [`query`] — one query's micro-batch loop, triggers, watermark, scheduling, progress.
//! * [`session`] — starting queries from job files; memory streams and tables for tests.
//! * [`registry`] — the executors queries can schedule on.
//! * [`manager`], [`server`], [`daemon`] — a driver process: its queries, its gRPC endpoint,
//!   and leader election with etcd.
//! * [`progress`] — Spark's `StreamingQueryProgress` JSON.
//! * [`http`], [`metrics`] — the REST API, event stream and web UI; the Prometheus metrics.
//!
//! Modules depend downwards only: `daemon → server → manager → session → query → registry`.

pub mod batch;
pub mod checkpoint;
pub mod daemon;
pub mod decommission;
pub mod http;
pub mod job;
pub mod manager;
pub mod metrics;
pub mod progress;
pub mod query;
pub mod registry;
pub mod rpc;
pub mod server;
pub mod session;

pub use query::{QueryState, StreamingQuery};
pub use registry::ExecutorRegistry;
pub use server::DriverServer;
pub use session::Session;
