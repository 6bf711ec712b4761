//! sluice's Spark Connect front end: PySpark 4.0 clients (`SparkSession.builder.remote(...)`)
//! build their DataFrames on the client and send the plans here; this crate turns them into the
//! same job specs a job file produces and runs them on the same engine.
//!
//! - [`proto`]: Spark Connect's messages and service, generated at build time from the
//!   descriptors PySpark 4.0.1 ships (`proto/spark-connect-4.0.1.fds.bin`).
//! - [`plan`]: relations and expressions → sluice SQL (a job's streams, tables and SELECT).
//! - [`types`]: Spark's data types ↔ Arrow and SQL type names.
//! - [`service`]: the gRPC service — sessions, config, analysis, execution, commands.
//! - [`streaming`]: `writeStream.start()`, `StreamingQuery` and `spark.streams` commands.
//! - [`foreach_batch`]: the Python worker that runs a query's `foreachBatch` function.
//! - [`error`]: sluice errors as the exceptions PySpark raises.

pub mod env;
pub mod error;
pub mod execute;
pub mod foreach_batch;
pub mod listen;
pub mod plan;
pub mod service;
pub mod session;
pub mod streaming;
pub mod support;
pub mod types;

/// Spark Connect's protocol (`spark.connect`), as PySpark 4.0.1 speaks it.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/spark.connect.rs"));
}

/// The Spark version whose Connect protocol this server speaks (and reports as its own).
pub const SPARK_VERSION: &str = "4.0.1";
