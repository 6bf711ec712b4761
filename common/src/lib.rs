//! # sluice-common
//!
//! What the sluice driver and executors share. sluice runs Spark Structured Streaming
//! semantics — micro-batches over unbounded tables, offsets WAL and commit log, watermarks,
//! exactly-once sinks — on a Rust driver/executor cluster. This crate holds everything both
//! roles need, with I/O kept at the edges so decision logic is testable on its own:
//!
//! * [`sql`] — the job-file language (`CREATE STREAM`, `SET`, `INSERT INTO … SELECT`).
//! * [`plan`] — a query's resolved spec, its DataFusion compilation and Spark's rules.
//! * [`checkpoint`] — offsets WAL, commit log, restart decision (spec §1).
//! * [`connectors`] — sources and sinks.
//! * [`formats`] — Spark-exact JSON/CSV readers and writers, `show()` rendering.
//! * [`functions`] — Spark's SQL functions where DataFusion's differ.
//! * [`progress`] — `StreamingQueryProgress` JSON.

pub use datafusion;

pub mod checkpoint;
pub mod cluster;
pub mod connectors;
pub mod error;
pub mod formats;
pub mod functions;
pub mod ipc;
pub mod ops;
pub mod options;
pub mod plan;
pub mod progress;
pub mod schema_serde;
pub mod sql;
pub mod state;
pub mod storage;
pub mod time;
pub mod types;

pub use error::{ErrorKind, Result, SluiceError};
