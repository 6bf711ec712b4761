//! # sluice-common
//!
//! What every sluice crate shares: the vocabulary of the engine, with no engine in it. sluice runs
//! Spark Structured Streaming semantics — micro-batches over unbounded tables, an offsets WAL and
//! commit log, watermarks, exactly-once sinks — on a Rust driver/executor cluster; the crates
//! that do that (`sluice-driver`, `sluice-executor`, `sluice-connectors`, …) all speak in these
//! terms:
//!
//! * [`error`] — [`SluiceError`]: whose fault a failure is and whether a retry helps.
//! * [`batch`] — [`BatchContext`]: a batch's id, attempt, timestamp and watermarks.
//! * [`conf`] — the settings a query runs with ([`QueryConf`]) and its [`OutputMode`].
//! * [`options`] — connector and setting options with Spark's case-insensitive names.
//! * [`redact`] — Spark's redaction of secrets in what reaches logs, progress and errors.
//! * [`storage`] — locations on any `object_store` (local paths, `file://`, `s3://`, `memory://`),
//!   and the fault-injecting store tests run the engine on.
//! * [`log`] — Spark's metadata logs (`HDFSMetadataLog`, `CompactibleFileStreamLog`).
//! * [`types`], [`dialect`], [`schema_serde`] — Spark's SQL types in Arrow, its SQL dialect, and
//!   schemas as JSON.
//! * [`time`] — Spark's time arithmetic (intervals, µs ↔ ms, progress timestamps).
//! * [`ipc`] — rows as Arrow IPC bytes, for rows that travel with tasks and results.
//! * [`checksum`] — checksummed files, so corruption fails loudly.
//! * [`retry`] — the one retry policy for calls to services sluice depends on.
//! * [`process`] — facts about this process (its resident memory) for metrics.

pub use datafusion;

pub mod batch;
pub mod checksum;
pub mod conf;
pub mod dialect;
pub mod error;
pub mod ipc;
pub mod log;
pub mod options;
pub mod process;
pub mod redact;
pub mod retry;
pub mod schema_serde;
pub mod storage;
pub mod time;
pub mod types;

pub use batch::{BatchContext, BatchId, BatchWatermarks, StateVersion};
pub use conf::{OutputMode, QueryConf, WatermarkPolicy};
pub use error::{ErrorKind, Result, SluiceError};
