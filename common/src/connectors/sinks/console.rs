//! `console`: prints every batch as Spark's console sink does (spec §9 "Console").

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::error::Result;
use crate::formats::console_banner::console_batch_output;
use crate::options::Options;

use super::{SinkCommitter, TaskSinkResult};

/// `numRows` (default 20) and `truncate` (default true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleOptions {
    pub num_rows: usize,
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

/// Driver side of the console sink.
pub struct ConsoleCommitter {
    options: ConsoleOptions,
    out: ConsoleOut,
}

impl ConsoleCommitter {
    /// A committer printing through `out`.
    pub fn new(options: ConsoleOptions, out: ConsoleOut) -> Self {
        Self { options, out }
    }
}

#[async_trait]
impl SinkCommitter for ConsoleCommitter {
    fn description(&self) -> String {
        format!("ConsoleSink[numRows={}, truncate={}]", self.options.num_rows, self.options.truncate)
    }

    async fn commit(&mut self, batch_id: u64, schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64> {
        let total: u64 = results.iter().map(|r| r.output.num_rows).sum();
        let mut batches = Vec::new();
        for r in &results {
            if let Some(rows) = &r.rows {
                batches.extend(crate::ipc::decode(rows)?.1);
            }
        }
        let text = console_batch_output(batch_id, &batches, schema, self.options.num_rows, self.options.truncate);
        (self.out)(&text);
        Ok(total)
    }
}
