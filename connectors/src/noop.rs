//! `noop`: Spark's `format("noop")` — runs the whole query and discards its rows.
//!
//! Benchmarks use it to measure an engine without the cost of a particular sink, as Spark users
//! do; it also checks that a query plans and runs before a real sink is wired up. Like Spark's,
//! it accepts every output mode and needs no checkpoint location.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use sluice_common::error::Result;
use sluice_common::options::Options;
use sluice_common::{BatchId, OutputMode};

use crate::access::Access;
use crate::sink::{SinkCommitter, SinkConnector, SinkSpec, SinkTaskContext, SinkTaskOutput, SinkWriter, TaskSinkResult};

/// The `noop` sink connector.
#[derive(Debug, Default)]
pub struct NoopConnector;

impl SinkConnector for NoopConnector {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn resolve(&self, options: &mut Options) -> Result<()> {
        options.check_known(&["connector"], "connector 'noop'")
    }

    fn access(&self, _options: &Options) -> Result<Vec<Access>> {
        Ok(Vec::new()) // writes nowhere
    }

    fn requires_checkpoint(&self) -> bool {
        false
    }

    fn writer(&self, _spec: &SinkSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(NoopWriter))
    }

    fn committer(&self, _spec: &SinkSpec, _mode: OutputMode) -> Result<Box<dyn SinkCommitter>> {
        Ok(Box::new(NoopCommitter))
    }
}

/// Executor side: counts a task's rows and drops them.
#[derive(Debug)]
struct NoopWriter;

#[async_trait]
impl SinkWriter for NoopWriter {
    async fn write(&self, _schema: &SchemaRef, batches: &[RecordBatch], _task: &SinkTaskContext) -> Result<SinkTaskOutput> {
        Ok(SinkTaskOutput { num_rows: batches.iter().map(|b| b.num_rows() as u64).sum(), ..Default::default() })
    }
}

/// Driver side: sums the rows the tasks produced.
#[derive(Debug)]
struct NoopCommitter;

#[async_trait]
impl SinkCommitter for NoopCommitter {
    fn description(&self) -> String {
        "NoopTable".into()
    }

    async fn commit(&mut self, _batch: BatchId, _schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64> {
        Ok(results.iter().map(|r| r.output.num_rows).sum())
    }
}
