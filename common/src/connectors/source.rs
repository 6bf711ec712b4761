//! The driver-side half of a streaming source: offsets, read limits and input splits.
//!
//! Spark's sources answer three questions per micro-batch — how far is there data
//! (`latestOffset` under a read limit), what exactly lies between two offsets (`planInputPartitions`)
//! and when may consumed input be released (`commit`). [`Source`] is that contract. Reading the
//! rows of a split happens on executors (`connectors::read_split`), so nothing here touches row
//! data except the driver-buffered memory and socket sources, which ship their rows inline.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::options::Options;
use crate::sql::job::{ComputedColumn, WatermarkDef};
use crate::storage::Location;

/// A source as resolved on the driver and shipped to executors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceSpec {
    /// The stream's name in the job file.
    pub name: String,
    /// Position in the query's source list (Spark's `sourceIdx`, plan traversal order).
    pub index: usize,
    /// Lower-cased connector name (`files`, `rate`, …).
    pub connector: String,
    /// Connector options, with paths already made absolute URLs.
    pub options: Options,
    /// Columns the connector produces.
    #[serde(with = "crate::schema_serde::schema_ref")]
    pub declared_schema: SchemaRef,
    /// Columns computed from each input row before the watermark.
    pub computed: Vec<ComputedColumn>,
    /// `WATERMARK FOR`, if declared.
    pub watermark: Option<WatermarkDef>,
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

/// One unit of input for one task: a descriptor (JSON, read by the executor) plus rows that
/// travel inline for driver-buffered sources.
#[derive(Debug, Clone)]
pub struct PlannedSplit {
    /// What to read (`SplitSpec` serialised by the connector).
    pub spec: SplitSpec,
    /// Arrow IPC rows for memory/socket sources.
    pub inline_rows: Option<Bytes>,
}

/// Per-connector input split descriptors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SplitSpec {
    /// Byte ranges of files.
    Files { files: Vec<FileRange> },
    /// A slice of the rate source's value range.
    Rate(crate::connectors::rate::RateSplit),
    /// One partition of a rate-micro-batch batch.
    RateMicroBatch(crate::connectors::rate_micro_batch::RateMicroBatchSplit),
    /// Every n-th Nexmark event of one type in an event range.
    Nexmark(crate::connectors::nexmark::NexmarkSplit),
    /// An offset range of one Kafka topic-partition.
    Kafka(crate::connectors::kafka::offsets::OffsetRange),
    /// Rows shipped with the task.
    Inline,
}

/// A byte range of one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRange {
    /// Absolute URL of the file.
    pub url: String,
    /// First byte of the range.
    pub start: u64,
    /// Length of the range in bytes.
    pub length: u64,
    /// Size of the whole file.
    pub file_size: u64,
}

/// Where a source keeps its own checkpoint metadata (`<ckpt>/sources/<index>/`).
#[derive(Debug, Clone)]
pub struct SourceCheckpoint {
    /// The `sources/<index>` directory.
    pub dir: Location,
}

/// The driver-side contract every source implements.
#[async_trait]
pub trait Source: Send + Sync {
    /// Progress `sources[].description`, e.g. `FileStreamSource[file:/data/in]`.
    fn description(&self) -> String;

    /// What the checkpoint records to detect a query pointed at a different input.
    fn identity(&self) -> String;

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

/// Connector options shared by every source (never unknown).
pub const COMMON_SOURCE_OPTIONS: &[&str] = &["connector"];

/// Parses a `LongOffset`-style offset (`5`).
pub fn parse_long_offset(text: &str, source: &str) -> Result<i64> {
    text.trim().parse::<i64>().map_err(|_| {
        crate::error::SluiceError::user(format!(
            "{source}: offset '{text}' in the checkpoint is not a number; the checkpoint was written by a different source"
        ))
    })
}

/// Options check helper that always allows the common keys.
pub fn check_source_options(options: &Options, valid: &[&str], owner: &str) -> Result<()> {
    let mut all: Vec<&str> = COMMON_SOURCE_OPTIONS.to_vec();
    all.extend_from_slice(valid);
    options.check_known(&all, owner)
}
