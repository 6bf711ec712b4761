//! `console`: prints every batch as Spark's console sink does (docs/semantics.md §9 "Console").
//!
//! Tasks send back at most `numRows + 1` rows each (one more than shown tells the driver to say
//! "only showing top N rows"); the driver prints Spark's `Batch: N` banner and `show()` table.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use sluice_common::error::Result;
use sluice_common::options::Options;
use sluice_common::{BatchId, OutputMode};
use sluice_formats::console_banner::console_batch_output;

use crate::access::Access;
use crate::sink::{
    collected_rows, rows_to_collect, SinkCommitter, SinkConnector, SinkSpec, SinkTaskContext, SinkTaskOutput, SinkWriter,
    TaskSinkResult,
};

/// `numRows` (default 20) and `truncate` (default true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Rows shown per batch.
    pub num_rows: usize,
    /// Whether long values are cut at 20 characters.
    pub truncate: bool,
}

impl ConsoleOptions {
    /// Parses and validates.
    pub fn parse(options: &Options) -> Result<Self> {
        options.check_known(&["connector", "numRows", "truncate"], "connector 'console'")?;
        Ok(Self {
            num_rows: options.parse_or::<usize>("numRows", 20, "console")?,
            truncate: options.bool_or("truncate", true, "console")?,
        })
    }
}

/// Where console output goes; the CLI passes a writer that clears its status line first.
pub type ConsoleOut = Arc<dyn Fn(&str) + Send + Sync>;

/// The `console` sink connector, printing through a session's [`ConsoleOut`].
pub struct ConsoleSink {
    out: ConsoleOut,
}

impl ConsoleSink {
    /// The connector, printing through `out`.
    pub fn connector(out: ConsoleOut) -> Self {
        Self { out }
    }
}

impl SinkConnector for ConsoleSink {
    fn name(&self) -> &'static str {
        "console"
    }

    fn resolve(&self, options: &mut Options) -> Result<()> {
        ConsoleOptions::parse(options).map(|_| ())
    }

    fn access(&self, _options: &Options) -> Result<Vec<Access>> {
        Ok(Vec::new()) // prints to the driver's console
    }

    fn requires_checkpoint(&self) -> bool {
        false
    }

    fn writer(&self, spec: &SinkSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(ConsoleWriter { options: ConsoleOptions::parse(&spec.options)? }))
    }

    fn committer(&self, spec: &SinkSpec, _mode: OutputMode) -> Result<Box<dyn SinkCommitter>> {
        Ok(Box::new(ConsoleCommitter { options: ConsoleOptions::parse(&spec.options)?, out: Arc::clone(&self.out) }))
    }
}

/// Executor side: keeps the first `numRows + 1` rows of the task for the driver.
#[derive(Debug)]
struct ConsoleWriter {
    options: ConsoleOptions,
}

#[async_trait]
impl SinkWriter for ConsoleWriter {
    async fn write(&self, schema: &SchemaRef, batches: &[RecordBatch], _task: &SinkTaskContext) -> Result<SinkTaskOutput> {
        let num_rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let mut taken = Vec::new();
        let mut left = self.options.num_rows + 1;
        for b in batches {
            if left == 0 {
                break;
            }
            let n = b.num_rows().min(left);
            taken.push(b.slice(0, n));
            left -= n;
        }
        Ok(SinkTaskOutput { num_rows, rows: rows_to_collect(schema, &taken)?, ..Default::default() })
    }
}

/// Driver side of the console sink.
struct ConsoleCommitter {
    options: ConsoleOptions,
    out: ConsoleOut,
}

#[async_trait]
impl SinkCommitter for ConsoleCommitter {
    fn description(&self) -> String {
        format!("ConsoleSink[numRows={}, truncate={}]", self.options.num_rows, self.options.truncate)
    }

    async fn commit(&mut self, batch: BatchId, schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64> {
        let total: u64 = results.iter().map(|r| r.output.num_rows).sum();
        let batches = collected_rows(&results)?;
        let text = console_batch_output(batch.0, &batches, schema, self.options.num_rows, self.options.truncate);
        (self.out)(&text);
        Ok(total)
    }
}
