//! Sinks: where a query's rows go, and how a batch becomes visible exactly once.
//!
//! Every sink has two halves, as Spark's `DataWriter` and `BatchWrite`. The *writer* runs on
//! executors and either writes the task's rows somewhere (part files, a Kafka topic) or hands
//! them back to the driver (`console`, `memory`); it reports a [`SinkTaskOutput`]. The
//! *committer* runs on the driver once every task of a batch succeeded, and is idempotent per
//! batch id (docs/semantics.md §1 "Exactly-once argument"): the file sink commits by writing
//! `_spark_metadata/<batchId>`, the memory sink ignores batch ids it has already stored.

use std::fmt::Debug;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use sluice_common::error::Result;
use sluice_common::options::Options;
use sluice_common::{BatchId, OutputMode};

use crate::access::Access;

/// A sink as declared and validated on the driver, shipped to executors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkSpec {
    /// Name in the job file.
    pub name: String,
    /// Lower-cased connector.
    pub connector: String,
    /// Options, validated and normalised (paths made absolute URLs).
    pub options: Options,
}

/// A connector that can be a query's output (`CREATE SINK … WITH ('connector' = '…')`),
/// registered once in [`crate::Connectors`].
pub trait SinkConnector: Send + Sync {
    /// The name `'connector' = '…'` selects (lower case).
    fn name(&self) -> &'static str;

    /// Validates `options` with Spark's names and messages on the driver and normalises them in
    /// place (relative paths become absolute URLs).
    fn resolve(&self, options: &mut Options) -> Result<()>;

    /// What a sink with these (resolved) `options` touches outside the engine (see
    /// [`crate::SourceConnector::access`]).
    fn access(&self, options: &Options) -> Result<Vec<Access>>;

    /// Whether a query writing here must name a checkpoint location. Sinks without durable
    /// output (console, memory, noop) run on a temporary checkpoint when none is given, as in
    /// Spark.
    fn requires_checkpoint(&self) -> bool {
        true
    }

    /// Refuses an output mode the sink cannot take (Spark's rules, docs/semantics.md §5
    /// "Sinks").
    fn check_output_mode(&self, _options: &Options, _mode: OutputMode) -> Result<()> {
        Ok(())
    }

    /// Refuses a query whose output columns the sink cannot write.
    fn check_schema(&self, _options: &Options, _schema: &SchemaRef) -> Result<()> {
        Ok(())
    }

    /// The executor half: writes or collects one task's rows.
    fn writer(&self, spec: &SinkSpec) -> Result<Box<dyn SinkWriter>>;

    /// The driver half: commits a batch's task outputs, at most once per batch id.
    fn committer(&self, spec: &SinkSpec, mode: OutputMode) -> Result<Box<dyn SinkCommitter>>;
}

/// Identifies a task's output, for naming what it writes (the file sink's `part-<index>-…`).
#[derive(Debug, Clone, Copy)]
pub struct SinkTaskContext {
    /// The task's index in its stage.
    pub partition_index: u32,
}

/// What one task's writer reports to its sink's committer (Spark's `WriterCommitMessage`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkTaskOutput {
    /// Rows the task produced for the sink.
    pub num_rows: u64,
    /// Facts the connector's committer needs, as JSON only that connector reads (the file
    /// sink: the part files the task wrote).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub commit_message: serde_json::Value,
    /// Rows for sinks that collect on the driver (console, memory), as Arrow IPC. They travel
    /// beside this report, not inside its JSON.
    #[serde(skip)]
    pub rows: Option<Bytes>,
}

/// The executor half of a sink, created once per query run.
#[async_trait]
pub trait SinkWriter: Send + Sync + Debug {
    /// Writes (or collects) one task's rows.
    async fn write(&self, schema: &SchemaRef, batches: &[RecordBatch], task: &SinkTaskContext) -> Result<SinkTaskOutput>;
}

/// One task's sink report as the driver's committer receives it.
#[derive(Debug, Clone)]
pub struct TaskSinkResult {
    /// The task's index in its stage.
    pub partition_index: u32,
    /// What its writer reported.
    pub output: SinkTaskOutput,
}

/// The driver half of a sink: makes a batch's output visible, at most once per batch id.
#[async_trait]
pub trait SinkCommitter: Send + Sync {
    /// Progress `sink.description`.
    fn description(&self) -> String;

    /// Commits `batch` from its tasks' results (ordered by partition index). Returns the number
    /// of rows the batch wrote.
    async fn commit(&mut self, batch: BatchId, schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64>;

    /// Best-effort clean-up of the output of an attempt of `batch` whose commit failed. The
    /// commit may have landed anyway (its response lost), so nothing a committed batch lists
    /// may be removed.
    async fn abort(&mut self, _batch: BatchId, _results: Vec<TaskSinkResult>) {}
}

/// A task's rows for a sink that collects on the driver, as its report carries them: nothing
/// when there are none (most state partitions emit nothing in most batches, and each empty
/// message would cost an encode here and a decode on the driver).
pub fn rows_to_collect(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Option<Bytes>> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(None);
    }
    Ok(Some(sluice_common::ipc::encode(schema, batches)?))
}

/// Rows of every task's report, for sinks that collect on the driver.
pub fn collected_rows(results: &[TaskSinkResult]) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for r in results {
        if let Some(rows) = &r.output.rows {
            batches.extend(sluice_common::ipc::decode(rows, &format!("the rows collected by task {}", r.partition_index))?.1);
        }
    }
    Ok(batches)
}
