//! Sinks: where a query's rows go, and how a batch becomes visible exactly once.
//!
//! Every sink has two halves. The *task* half runs on executors and either writes part files
//! (`files`) or hands rows back to the driver (`console`, `memory`). The *commit* half runs on
//! the driver once every task of a batch succeeded, and is idempotent per batch id (spec §1
//! "Exactly-once argument"): the file sink commits by writing `_spark_metadata/<batchId>`, the
//! memory sink ignores batch ids it has already stored.

pub mod console;
pub mod file_sink_log;
pub mod files;
pub mod memory;
pub mod noop;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Result, SluiceError};
use crate::options::Options;
use crate::plan::OutputMode;

use self::console::ConsoleOptions;
use self::file_sink_log::SinkFileStatus;
use self::files::FileSinkOptions;
use crate::connectors::kafka::options::KafkaSinkOptions;

/// A sink as declared, shipped to executors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkSpec {
    /// Name in the job file.
    pub name: String,
    /// Lower-cased connector.
    pub connector: String,
    /// Options, paths made absolute.
    pub options: Options,
}

/// A sink with parsed options.
#[derive(Debug, Clone)]
pub enum SinkKind {
    Console(ConsoleOptions),
    Files(FileSinkOptions),
    Kafka(KafkaSinkOptions),
    Memory,
    Noop,
}

/// Connectors a sink may use.
pub const SINK_CONNECTORS: &[&str] = &["console", "files", "kafka", "memory", "noop"];

impl SinkSpec {
    /// Validates the options and normalises paths; run on the driver.
    pub fn resolve(name: &str, options: &Options) -> Result<Self> {
        let connector = options
            .get("connector")
            .ok_or_else(|| SluiceError::user(format!("sink '{name}': option 'connector' is required")))?
            .to_ascii_lowercase();
        let mut options = options.clone();
        if connector == "files" {
            if let Some(p) = options.get("path") {
                let abs = crate::storage::absolute_url(p)?.to_string();
                options.insert("path", abs);
            }
        }
        let spec = SinkSpec { name: name.to_string(), connector, options };
        spec.kind().map_err(|e| e.context(format!("sink '{name}'")))?;
        Ok(spec)
    }

    /// Parses the options into a [`SinkKind`].
    pub fn kind(&self) -> Result<SinkKind> {
        match self.connector.as_str() {
            "console" => Ok(SinkKind::Console(ConsoleOptions::parse(&self.options)?)),
            "files" => Ok(SinkKind::Files(FileSinkOptions::parse(&self.options)?)),
            "memory" => {
                self.options.check_known(&["connector"], "connector 'memory'")?;
                Ok(SinkKind::Memory)
            }
            "kafka" => Ok(SinkKind::Kafka(KafkaSinkOptions::parse(&self.options)?)),
            "noop" => {
                self.options.check_known(&["connector"], "connector 'noop'")?;
                Ok(SinkKind::Noop)
            }
            other => Err(SluiceError::user(format!(
                "unknown sink connector '{other}'; available sinks: {}",
                SINK_CONNECTORS.join(", ")
            ))),
        }
    }

    /// Spark's output-mode rules for sinks (spec §5 "Sinks").
    pub fn check_output_mode(&self, mode: OutputMode) -> Result<()> {
        if let Ok(SinkKind::Files(f)) = self.kind() {
            if mode != OutputMode::Append {
                return Err(SluiceError::user(format!(
                    "Data source {} does not support {} output mode",
                    f.format_name(),
                    mode.spark_name()
                )));
            }
        }
        Ok(())
    }
}

/// What one task reports to its sink's commit half.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkTaskOutput {
    /// Part files written (file sink).
    #[serde(default)]
    pub files: Vec<SinkFileStatus>,
    /// Rows the task produced.
    pub num_rows: u64,
}

/// Identifies a task's output for naming files.
#[derive(Debug, Clone)]
pub struct SinkTaskContext {
    pub batch_id: u64,
    pub partition_index: u32,
}

/// Executor side: writes or collects a task's rows. Returns the task's report and, for sinks
/// that collect on the driver, the rows as Arrow IPC.
pub async fn write_task_output(
    kind: &SinkKind,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    ctx: &SinkTaskContext,
) -> Result<(SinkTaskOutput, Option<Bytes>)> {
    let num_rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    match kind {
        SinkKind::Console(opts) => {
            // The driver prints at most numRows rows; one more tells it to say "only showing…".
            let keep = opts.num_rows + 1;
            let mut taken = Vec::new();
            let mut left = keep;
            for b in batches {
                if left == 0 {
                    break;
                }
                let n = b.num_rows().min(left);
                taken.push(b.slice(0, n));
                left -= n;
            }
            Ok((SinkTaskOutput { files: vec![], num_rows }, Some(crate::ipc::encode(schema, &taken)?)))
        }
        SinkKind::Memory => Ok((SinkTaskOutput { files: vec![], num_rows }, Some(crate::ipc::encode(schema, batches)?))),
        SinkKind::Files(opts) => {
            let files = files::write_part_files(opts, schema, batches, ctx).await?;
            Ok((SinkTaskOutput { files, num_rows }, None))
        }
        SinkKind::Noop => Ok((SinkTaskOutput { files: vec![], num_rows }, None)),
        SinkKind::Kafka(opts) => {
            let sent = crate::connectors::kafka::sink::write_rows(opts, batches).await?;
            Ok((SinkTaskOutput { files: vec![], num_rows: sent }, None))
        }
    }
}

/// One task's sink result as the driver receives it.
#[derive(Debug, Clone)]
pub struct TaskSinkResult {
    pub partition_index: u32,
    pub output: SinkTaskOutput,
    pub rows: Option<Bytes>,
}

/// Driver side of a sink: makes a batch's output visible, at most once per batch id.
#[async_trait]
pub trait SinkCommitter: Send + Sync {
    /// Progress `sink.description`.
    fn description(&self) -> String;

    /// Commits batch `batch_id` from its tasks' results (ordered by partition index).
    /// Returns the number of rows the batch wrote.
    async fn commit(&mut self, batch_id: u64, schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64>;

    /// Best-effort clean-up of a failed attempt's output.
    async fn abort(&mut self, _results: Vec<TaskSinkResult>) {}
}
