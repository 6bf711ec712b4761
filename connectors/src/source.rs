//! Sources: the connector that declares a stream, its driver half (offsets, read limits, splits)
//! and its executor half (reading one split into rows).
//!
//! Spark's sources answer three questions per micro-batch — how far is there data
//! (`latestOffset` under a read limit), what exactly lies between two offsets
//! (`planInputPartitions`) and when may consumed input be released (`commit`). [`Source`] is that
//! contract, and it runs on the driver. Reading the rows of a split happens on executors through
//! a [`SplitReader`]; the split itself travels as an opaque [`SplitDescriptor`] that only its own
//! connector reads, so the engine never needs to know what a Kafka range or a file chunk is.

use std::fmt::Debug;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::storage::Location;
use sluice_common::QueryConf;

use crate::access::Access;

/// A stream's input as resolved on the driver and shipped to executors: which connector, its
/// options, and the columns it produces.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceSpec {
    /// The stream's name in the job file.
    pub name: String,
    /// Position in the query's source list (Spark's `sourceIdx`, plan traversal order).
    pub index: usize,
    /// Lower-cased connector name (`files`, `rate`, …).
    pub connector: String,
    /// Connector options, validated and normalised (paths made absolute URLs).
    pub options: Options,
    /// Columns the connector produces.
    #[serde(with = "sluice_common::schema_serde::schema_ref")]
    pub schema: SchemaRef,
}

/// The columns a source connector produces.
#[derive(Debug, Clone)]
pub enum SourceSchema {
    /// Always these columns (`rate`, `kafka`, …): the user may leave the column list out, or
    /// must declare exactly these.
    Fixed(SchemaRef),
    /// The columns the user declared (`files`, `memory`).
    Declared,
}

/// A connector that can be a stream's input (`CREATE STREAM … WITH ('connector' = '…')`),
/// registered once in [`crate::Connectors`].
pub trait SourceConnector: Send + Sync {
    /// The name `'connector' = '…'` selects (lower case).
    fn name(&self) -> &'static str;

    /// Validates `options` with Spark's option names and messages on the driver, normalises them
    /// in place (relative paths become absolute URLs), and says which columns the source
    /// produces. `declared` holds the columns the user declared (possibly none).
    fn resolve(&self, options: &mut Options, declared: &Schema) -> Result<SourceSchema>;

    /// What a stream with these (resolved) `options` touches outside the engine: locations it
    /// reads, endpoints it connects to, client properties it sets. Every connector must say —
    /// the driver's job policy refuses what it does not allow from this list alone.
    fn access(&self, options: &Options) -> Result<Vec<Access>>;

    /// Called on the driver for every stream of a job before any of its queries starts; the
    /// `memory` source creates its stream here so tests can feed it before the query runs.
    fn prepare(&self, _spec: &SourceSpec) -> Result<()> {
        Ok(())
    }

    /// The driver half of a stream of this connector, for one run of a query.
    fn create_source(&self, spec: &SourceSpec, conf: &QueryConf) -> Result<Box<dyn Source>>;

    /// The executor half: reads the splits this connector's [`Source`] planned.
    fn split_reader(&self, spec: &SourceSpec) -> Result<Box<dyn SplitReader>>;
}

/// How much a source may admit into one batch (Spark's `ReadLimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// The source's own limits (`maxFilesPerTrigger`, `rowsPerBatch`, …).
    Default,
    /// Everything available (Trigger.Once ignores read limits).
    AllAvailable,
}

/// Whether a source can run under Trigger.AvailableNow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvailableNowSupport {
    /// The source snapshotted its end and will split it into batches under its limits.
    Supported,
    /// The query must fall back to Trigger.Once semantics for this source.
    Unsupported,
}

/// What one task reads, as its connector described it: JSON that only that connector's
/// [`SplitReader`] interprets.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SplitDescriptor(serde_json::Value);

impl SplitDescriptor {
    /// Describes a split with a connector's own split type.
    pub fn encode<T: Serialize>(split: &T) -> Result<Self> {
        Ok(Self(serde_json::to_value(split)?))
    }

    /// A split whose rows travel inline with the task (driver-buffered sources).
    pub fn inline() -> Self {
        Self(serde_json::Value::Null)
    }

    /// Reads the split back as the connector's split type; `connector` names it in the error.
    pub fn decode<T: DeserializeOwned>(&self, connector: &str) -> Result<T> {
        T::deserialize(&self.0)
            .map_err(|e| SluiceError::internal(format!("{connector} split from the driver is unreadable: {e}")))
    }
}

/// One unit of input for one task: what to read, plus rows that travel inline for
/// driver-buffered sources.
#[derive(Debug, Clone)]
pub struct PlannedSplit {
    /// What to read.
    pub split: SplitDescriptor,
    /// Arrow IPC rows for memory/socket sources.
    pub inline_rows: Option<Bytes>,
}

impl PlannedSplit {
    /// A split an executor reads from the source itself.
    pub fn read<T: Serialize>(split: &T) -> Result<Self> {
        Ok(Self { split: SplitDescriptor::encode(split)?, inline_rows: None })
    }

    /// A split whose rows (Arrow IPC) travel with the task.
    pub fn inline(rows: Bytes) -> Self {
        Self { split: SplitDescriptor::inline(), inline_rows: Some(rows) }
    }
}

/// Where a source keeps its own checkpoint metadata (`<ckpt>/sources/<index>/`).
#[derive(Debug, Clone)]
pub struct SourceCheckpoint {
    /// The `sources/<index>` directory.
    pub dir: Location,
}

/// The driver-side contract every source implements (Spark's `MicroBatchStream`).
#[async_trait]
pub trait Source: Send + Sync {
    /// Progress `sources[].description`, e.g. `FileStreamSource[file:/data/in]`.
    fn description(&self) -> String;

    /// What the checkpoint records to detect a query pointed at a different input.
    fn identity(&self) -> String;

    /// The longest a task reading this source may wait on it before the read fails on its own
    /// (Kafka: `kafkaConsumer.pollTimeoutMs`, plus one broker call). The driver gives input
    /// tasks at least this long, so the source's error — data loss, a timeout naming the
    /// broker — ends a slow read, not a deadline that names neither.
    fn read_wait(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Whether the driver may ask [`Self::latest_offset`] and [`Self::plan_splits`] for the next
    /// batch while the current one runs, and read its splits ahead: true for a source whose
    /// answers depend only on their arguments and which records nothing when asked (Nexmark, the
    /// rate-micro-batch source). A source that logs its answers (files) or whose progress
    /// reports what it saw when last asked (Kafka) keeps the default.
    fn plans_ahead(&self) -> bool {
        false
    }

    /// Prepares the source: restores its metadata from the checkpoint. `committed` is the end
    /// offset of the last committed batch, if any.
    async fn open(&mut self, checkpoint: &SourceCheckpoint, committed: Option<&str>) -> Result<()>;

    /// The furthest offset available from `start` under `limit`; `None` when the source has no
    /// data yet. May record source metadata (the file source appends its log).
    async fn latest_offset(&mut self, start: Option<&str>, limit: ReadLimit) -> Result<Option<String>>;

    /// The splits between `start` (exclusive) and `end` (inclusive); `parallelism` is a hint for
    /// how many tasks the cluster can run at once.
    async fn plan_splits(&mut self, start: Option<&str>, end: &str, parallelism: usize) -> Result<Vec<PlannedSplit>>;

    /// Everything up to `end` is durably processed; the source may release it (cleanSource).
    async fn commit(&mut self, end: &str) -> Result<()>;

    /// Trigger.AvailableNow: snapshot the current end of the input.
    async fn prepare_for_available_now(&mut self) -> Result<AvailableNowSupport> {
        Ok(AvailableNowSupport::Unsupported)
    }

    /// What progress reports as `latestOffset` when it differs from the batch end (Kafka
    /// reports the brokers' latest offsets before rate limiting).
    fn reported_latest_offset(&self) -> Option<String> {
        None
    }

    /// Source-specific progress `metrics` for a batch ending at `end`.
    fn progress_metrics(&self, _end: Option<&str>) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::new()
    }

    /// Stops background readers (socket).
    async fn stop(&mut self) {}
}

/// The rows one split produced, and how many input records were malformed.
#[derive(Debug, Clone, Default)]
pub struct SplitData {
    /// The rows, in input order.
    pub batches: Vec<RecordBatch>,
    /// Input records that did not parse, whatever the parse mode did with them.
    pub malformed_rows: u64,
    /// Offsets skipped because they no longer existed (Kafka, `failOnDataLoss=false`).
    pub lost_offsets: u64,
}

impl SplitData {
    /// A split that produced `batch` and nothing else worth counting.
    pub fn of(batch: RecordBatch) -> Self {
        Self { batches: vec![batch], ..Default::default() }
    }
}

/// The executor half of a source: options parsed once per query, then any number of splits read.
#[async_trait]
pub trait SplitReader: Send + Sync + Debug {
    /// Reads one split; `inline_rows` carries the rows of driver-buffered splits.
    async fn read(&self, split: &SplitDescriptor, inline_rows: &[u8]) -> Result<SplitData>;
}

/// Reads splits whose rows a function computes from the split alone (`rate`, `rate-micro-batch`,
/// `nexmark`). Generating is CPU work without I/O, so it runs on the blocking pool and never
/// stalls the executor's async threads.
pub struct GeneratedSplitReader<T> {
    connector: &'static str,
    generate: fn(&T) -> Result<RecordBatch>,
}

impl<T> GeneratedSplitReader<T> {
    /// A reader decoding `connector`'s splits as `T` and generating their rows with `generate`.
    pub fn new(connector: &'static str, generate: fn(&T) -> Result<RecordBatch>) -> Self {
        Self { connector, generate }
    }
}

impl<T> Debug for GeneratedSplitReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeneratedSplitReader({})", self.connector)
    }
}

#[async_trait]
impl<T: DeserializeOwned + Send + 'static> SplitReader for GeneratedSplitReader<T> {
    async fn read(&self, split: &SplitDescriptor, _inline_rows: &[u8]) -> Result<SplitData> {
        let split: T = split.decode(self.connector)?;
        let (generate, connector) = (self.generate, self.connector);
        let batch = tokio::task::spawn_blocking(move || generate(&split))
            .await
            .map_err(|e| SluiceError::internal(format!("{connector} generator panicked: {e}")))??;
        Ok(SplitData::of(batch))
    }
}

/// Reads splits whose rows travel inline with the task (memory and socket sources).
#[derive(Debug, Default)]
pub struct InlineRowsReader;

#[async_trait]
impl SplitReader for InlineRowsReader {
    async fn read(&self, _split: &SplitDescriptor, inline_rows: &[u8]) -> Result<SplitData> {
        Ok(SplitData { batches: sluice_common::ipc::decode(inline_rows, "the rows sent with the task")?.1, ..Default::default() })
    }
}

/// Connector options shared by every source (never unknown).
pub const COMMON_SOURCE_OPTIONS: &[&str] = &["connector"];

/// Parses a `LongOffset`-style offset (`5`).
pub fn parse_long_offset(text: &str, source: &str) -> Result<i64> {
    text.trim().parse::<i64>().map_err(|_| {
        SluiceError::user(format!(
            "{source}: offset '{text}' in the checkpoint is not a number; the checkpoint was written by a different source"
        ))
    })
}

/// The most tasks a source option may ask one batch to be split into (`numPartitions`,
/// `minPartitions`). The driver builds every task of a batch in memory, so an absurd count
/// (`numPartitions=2147483647`) would take the driver down; no cluster runs this many at once.
pub const MAX_TASKS_PER_BATCH: u64 = 100_000;

/// Refuses a task count above [`MAX_TASKS_PER_BATCH`]; `option` names it in the message.
pub fn check_task_count(value: Option<u64>, option: &str) -> Result<()> {
    match value {
        Some(n) if n > MAX_TASKS_PER_BATCH => {
            Err(SluiceError::user(format!("Invalid value '{n}'. The option '{option}' must be at most {MAX_TASKS_PER_BATCH}")))
        }
        _ => Ok(()),
    }
}

/// Options check helper that always allows the common keys.
pub fn check_source_options(options: &Options, valid: &[&str], owner: &str) -> Result<()> {
    let mut all: Vec<&str> = COMMON_SOURCE_OPTIONS.to_vec();
    all.extend_from_slice(valid);
    options.check_known(&all, owner)
}
