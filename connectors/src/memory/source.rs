//! The `memory` source: a stream fed from Rust code — sluice's `MemoryStream`, so Spark's `AddData` test
//! steps transcribe one for one.
//!
//! The rows live in the driver process (in the session's [`MemoryStreams`]) and travel to
//! executors inline with each task, exactly as Spark's MemoryStream ships its blocks. Offsets are
//! Spark's `LongOffset`: the index of the last added block, absent until the first block.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use arrow::datatypes::Schema;
use sluice_common::error::{Result, SluiceError};
use sluice_common::ipc;
use sluice_common::options::Options;
use sluice_common::QueryConf;

use crate::access::Access;
use crate::source::{
    check_source_options, parse_long_offset, AvailableNowSupport, InlineRowsReader, PlannedSplit, ReadLimit, Source,
    SourceCheckpoint, SourceConnector, SourceSchema, SourceSpec, SplitReader,
};

/// An in-memory stream that tests append blocks to.
#[derive(Debug, Clone)]
pub struct MemoryStream {
    name: String,
    schema: SchemaRef,
    blocks: Arc<Mutex<Vec<RecordBatch>>>,
}

impl MemoryStream {
    /// An empty stream of `schema`.
    pub fn new(name: impl Into<String>, schema: SchemaRef) -> Self {
        Self { name: name.into(), schema, blocks: Arc::default() }
    }

    /// The declared schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends one block (Spark's `AddData`); all its rows land in the same micro-batch.
    /// Returns the block's offset.
    pub fn add_data(&self, batch: RecordBatch) -> Result<i64> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(SluiceError::user(format!(
                "memory stream '{}': rows have schema {:?}, the stream is declared as {:?}",
                self.name,
                batch.schema(),
                self.schema
            )));
        }
        let mut blocks = self.lock()?;
        blocks.push(batch);
        Ok(blocks.len() as i64 - 1)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Vec<RecordBatch>>> {
        self.blocks.lock().map_err(|_| SluiceError::internal("memory stream lock poisoned"))
    }

    fn latest(&self) -> Result<Option<i64>> {
        let n = self.lock()?.len();
        Ok((n > 0).then(|| n as i64 - 1))
    }

    fn blocks_between(&self, start: i64, end: i64) -> Result<Vec<RecordBatch>> {
        let blocks = self.lock()?;
        let from = (start + 1).max(0) as usize;
        let to = ((end + 1).max(0) as usize).min(blocks.len());
        Ok(blocks.get(from..to).map(<[RecordBatch]>::to_vec).unwrap_or_default())
    }
}

/// The memory streams of one session, by name.
#[derive(Debug, Clone, Default)]
pub struct MemoryStreams {
    streams: Arc<Mutex<HashMap<String, MemoryStream>>>,
}

impl MemoryStreams {
    /// The stream called `name`, created with `schema` on first use.
    pub fn get_or_create(&self, name: &str, schema: &SchemaRef) -> Result<MemoryStream> {
        let mut map = self.streams.lock().map_err(|_| SluiceError::internal("memory streams lock poisoned"))?;
        let s = map.entry(name.to_string()).or_insert_with(|| MemoryStream::new(name, Arc::clone(schema)));
        if s.schema.fields() != schema.fields() {
            return Err(SluiceError::user(format!("memory stream '{name}' already exists with a different schema")));
        }
        Ok(s.clone())
    }

    /// The stream called `name`, if declared.
    pub fn get(&self, name: &str) -> Option<MemoryStream> {
        self.streams.lock().ok()?.get(name).cloned()
    }
}

/// Options of the memory connector.
pub const MEMORY_OPTIONS: &[&str] = &["name", "numPartitions"];

/// The `memory` source connector, reading a session's [`MemoryStreams`].
pub struct MemorySourceConnector {
    streams: MemoryStreams,
}

impl SourceConnector for MemorySourceConnector {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn resolve(&self, options: &mut Options, declared: &Schema) -> Result<SourceSchema> {
        check_source_options(options, MEMORY_OPTIONS, "connector 'memory'")?;
        if declared.fields().is_empty() {
            return Err(SluiceError::user("a memory stream needs declared columns"));
        }
        Ok(SourceSchema::Declared)
    }

    fn access(&self, _options: &Options) -> Result<Vec<Access>> {
        Ok(Vec::new()) // rows come from the session's memory
    }

    fn prepare(&self, spec: &SourceSpec) -> Result<()> {
        self.streams.get_or_create(memory_stream_name(spec), &spec.schema).map(|_| ())
    }

    fn create_source(&self, spec: &SourceSpec, _conf: &QueryConf) -> Result<Box<dyn Source>> {
        let stream = self.streams.get_or_create(memory_stream_name(spec), &spec.schema)?;
        Ok(Box::new(MemorySource::new(stream, &spec.options)?))
    }

    fn split_reader(&self, _spec: &SourceSpec) -> Result<Box<dyn SplitReader>> {
        Ok(Box::new(InlineRowsReader))
    }
}

/// The memory stream a spec reads: its `name` option, or the stream's own name.
pub fn memory_stream_name(spec: &SourceSpec) -> &str {
    spec.options.get("name").unwrap_or(&spec.name)
}

/// Driver side of the memory source.
pub struct MemorySource {
    stream: MemoryStream,
    num_partitions: usize,
    /// Under AvailableNow: the last block present when the query started.
    available_now_end: Option<Option<i64>>,
}

impl MemorySource {
    /// The `memory` source connector over `streams`.
    pub fn connector(streams: MemoryStreams) -> MemorySourceConnector {
        MemorySourceConnector { streams }
    }

    /// A source reading `stream`; each block is cut into `numPartitions` contiguous slices.
    pub fn new(stream: MemoryStream, options: &Options) -> Result<Self> {
        check_source_options(options, MEMORY_OPTIONS, "connector 'memory'")?;
        let num_partitions = options.parse_or::<usize>("numPartitions", 1, "memory")?.max(1);
        Ok(Self { stream, num_partitions, available_now_end: None })
    }
}

#[async_trait]
impl Source for MemorySource {
    fn description(&self) -> String {
        format!("MemoryStream[{}]", self.stream.name)
    }

    fn identity(&self) -> String {
        format!("memory {}", self.stream.name)
    }

    async fn open(&mut self, _checkpoint: &SourceCheckpoint, _committed: Option<&str>) -> Result<()> {
        Ok(())
    }

    async fn latest_offset(&mut self, _start: Option<&str>, _limit: ReadLimit) -> Result<Option<String>> {
        let latest = match self.available_now_end {
            Some(end) => end,
            None => self.stream.latest()?,
        };
        Ok(latest.map(|o| o.to_string()))
    }

    async fn plan_splits(&mut self, start: Option<&str>, end: &str, _parallelism: usize) -> Result<Vec<PlannedSplit>> {
        let start = start.map(|s| parse_long_offset(s, "memory")).transpose()?.unwrap_or(-1);
        let end = parse_long_offset(end, "memory")?;
        let mut splits = Vec::new();
        for block in self.stream.blocks_between(start, end)? {
            let rows = block.num_rows();
            let per = rows.div_ceil(self.num_partitions).max(1);
            let mut offset = 0;
            loop {
                let len = per.min(rows - offset);
                let slice = block.slice(offset, len);
                splits.push(PlannedSplit::inline(ipc::encode(self.stream.schema(), &[slice])?));
                offset += len;
                if offset >= rows {
                    break;
                }
            }
        }
        Ok(splits)
    }

    async fn commit(&mut self, _end: &str) -> Result<()> {
        Ok(())
    }

    async fn prepare_for_available_now(&mut self) -> Result<AvailableNowSupport> {
        self.available_now_end = Some(self.stream.latest()?);
        Ok(AvailableNowSupport::Supported)
    }
}
