//! `noop`: Spark's `format("noop")` — runs the whole query and discards its rows.
//!
//! Benchmarks use it to measure an engine without the cost of a particular sink, as Spark users
//! do; it also checks that a query plans and runs before a real sink is wired up. Like Spark's,
//! it accepts every output mode and needs no checkpoint location.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::error::Result;

use super::{SinkCommitter, TaskSinkResult};

/// Driver side of the noop sink: counts the rows the tasks produced.
#[derive(Debug, Default)]
pub struct NoopCommitter;

#[async_trait]
impl SinkCommitter for NoopCommitter {
    fn description(&self) -> String {
        "NoopTable".into()
    }

    async fn commit(&mut self, _batch_id: u64, _schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64> {
        Ok(results.iter().map(|r| r.output.num_rows).sum())
    }
}
