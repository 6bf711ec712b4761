//! `rate-micro-batch`: exactly `rowsPerBatch` rows per batch with a fixed timestamp per batch,
//! deterministic across replays (docs/semantics.md §9 "Rate per micro-batch").

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use async_trait::async_trait;

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::QueryConf;

use crate::access::Access;
use crate::rate::{rate_batch, rate_schema};
use crate::source::{
    check_source_options, AvailableNowSupport, GeneratedSplitReader, PlannedSplit, ReadLimit, Source, SourceCheckpoint,
    SourceConnector, SourceSchema, SourceSpec, SplitReader,
};

/// The `rate-micro-batch` source connector.
#[derive(Debug, Default)]
pub struct RateMicroBatchConnector;

impl SourceConnector for RateMicroBatchConnector {
    fn name(&self) -> &'static str {
        "rate-micro-batch"
    }

    fn resolve(&self, options: &mut Options, _declared: &Schema) -> Result<SourceSchema> {
        RateMicroBatchOptions::parse(options)?;
        Ok(SourceSchema::Fixed(rate_schema()))
    }

    fn access(&self, _options: &Options) -> Result<Vec<Access>> {
        Ok(Vec::new()) // generated rows: nothing outside the engine
    }

    fn create_source(&self, spec: &SourceSpec, _conf: &QueryConf) -> Result<Box<dyn Source>> {
        Ok(Box::new(RateMicroBatchSource::new(RateMicroBatchOptions::parse(&spec.options)?)))
    }

    fn split_reader(&self, _spec: &SourceSpec) -> Result<Box<dyn SplitReader>> {
        Ok(Box::new(GeneratedSplitReader::new("rate-micro-batch", read_rate_micro_batch_split)))
    }
}

/// Options of `rate-micro-batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateMicroBatchOptions {
    /// `rowsPerBatch` (required): rows in every batch, independent of wall-clock time.
    pub rows_per_batch: i64,
    /// `numPartitions`: tasks per batch; the cluster's default parallelism when unset.
    pub num_partitions: Option<u32>,
    /// `startTimestamp` in epoch ms (default 0): the timestamp of the first batch's rows.
    pub start_timestamp_ms: i64,
    /// `advanceMillisPerBatch` in ms (default 1000): how far the timestamp moves from one batch to the next.
    pub advance_millis_per_batch: i64,
}

const VALID: &[&str] = &["rowsPerBatch", "numPartitions", "startTimestamp", "advanceMillisPerBatch"];

impl RateMicroBatchOptions {
    /// Parses and validates with Spark's messages.
    pub fn parse(options: &Options) -> Result<Self> {
        check_source_options(options, VALID, "connector 'rate-micro-batch'")?;
        let rows_per_batch = options
            .parse_opt::<i64>("rowsPerBatch", "rate-micro-batch")?
            .ok_or_else(|| SluiceError::user("rate-micro-batch: option 'rowsPerBatch' is required"))?;
        if rows_per_batch <= 0 {
            return Err(SluiceError::user(format!(
                "Invalid value '{rows_per_batch}'. The option 'rowsPerBatch' must be positive"
            )));
        }
        let num_partitions = options.parse_opt::<u32>("numPartitions", "rate-micro-batch")?;
        if num_partitions == Some(0) {
            return Err(SluiceError::user("Invalid value '0'. The option 'numPartitions' must be positive"));
        }
        crate::source::check_task_count(num_partitions.map(u64::from), "numPartitions")?;
        let start_timestamp_ms = options.parse_or::<i64>("startTimestamp", 0, "rate-micro-batch")?;
        if start_timestamp_ms < 0 {
            return Err(SluiceError::user(format!(
                "Invalid value '{start_timestamp_ms}'. The option 'startTimestamp' must be non-negative"
            )));
        }
        let advance_millis_per_batch = options.parse_or::<i64>("advanceMillisPerBatch", 1000, "rate-micro-batch")?;
        if advance_millis_per_batch < 0 {
            return Err(SluiceError::user(format!(
                "Invalid value '{advance_millis_per_batch}'. The option 'advanceMillisPerBatch' must be non-negative"
            )));
        }
        Ok(Self { rows_per_batch, num_partitions, start_timestamp_ms, advance_millis_per_batch })
    }
}

/// `{"offset":n,"timestamp":t}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateMicroBatchOffset {
    /// Values generated so far: the exclusive end of the value range.
    pub offset: i64,
    /// Timestamp in epoch ms of the rows of the batch that starts at this offset.
    pub timestamp: i64,
}

impl RateMicroBatchOffset {
    fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            SluiceError::user(format!(
                "rate-micro-batch: offset '{text}' in the checkpoint is not a rate-micro-batch offset ({e})"
            ))
        })
    }
}

/// One partition of a batch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateMicroBatchSplit {
    /// This task's index; it generates `start_offset + partition`, then every `num_partitions`-th value.
    pub partition: u32,
    /// Number of tasks the batch's values are dealt across.
    pub num_partitions: u32,
    /// First value of the batch (inclusive).
    pub start_offset: i64,
    /// End value of the batch (exclusive).
    pub end_offset: i64,
    /// Timestamp of every row of the batch, in epoch ms.
    pub timestamp_ms: i64,
}

/// Generates the rows of a split (executor side): values `start + p, start + p + n, …`, all with
/// the batch's start timestamp.
///
/// The split comes over the network, so its arithmetic is checked: a split no driver would plan
/// fails instead of panicking.
pub fn read_rate_micro_batch_split(split: &RateMicroBatchSplit) -> Result<RecordBatch> {
    let corrupt = || SluiceError::internal(format!("rate-micro-batch split from the driver is out of range: {split:?}"));
    if split.num_partitions == 0 || split.partition >= split.num_partitions {
        return Err(corrupt());
    }
    let first = split.start_offset.checked_add(i64::from(split.partition)).ok_or_else(corrupt)?;
    let micros = split.timestamp_ms.checked_mul(1000).ok_or_else(corrupt)?;
    let values: Vec<i64> = (first..split.end_offset).step_by(split.num_partitions as usize).collect();
    rate_batch(vec![micros; values.len()], values)
}

/// Driver side.
pub struct RateMicroBatchSource {
    options: RateMicroBatchOptions,
    /// Under AvailableNow: the single end offset, fixed at the first call.
    available_now: Option<Option<RateMicroBatchOffset>>,
}

impl RateMicroBatchSource {
    /// A source with validated options.
    pub fn new(options: RateMicroBatchOptions) -> Self {
        Self { options, available_now: None }
    }

    fn start(&self, start: Option<&str>) -> Result<RateMicroBatchOffset> {
        match start {
            Some(s) => RateMicroBatchOffset::parse(s),
            None => Ok(RateMicroBatchOffset { offset: 0, timestamp: self.options.start_timestamp_ms }),
        }
    }

    /// The offset one batch after `start`; a checkpoint offset so large that the next one does
    /// not fit in 64 bits is an error (Spark's "Integer overflow"), not a panic.
    fn next(&self, start: RateMicroBatchOffset) -> Result<RateMicroBatchOffset> {
        let offset = start.offset.checked_add(self.options.rows_per_batch);
        let timestamp = start.timestamp.checked_add(self.options.advance_millis_per_batch);
        match (offset, timestamp) {
            (Some(offset), Some(timestamp)) => Ok(RateMicroBatchOffset { offset, timestamp }),
            _ => Err(SluiceError::user(format!(
                "Integer overflow: the rate-micro-batch offset after {} (timestamp {}) does not fit in 64 bits",
                start.offset, start.timestamp
            ))),
        }
    }
}

#[async_trait]
impl Source for RateMicroBatchSource {
    fn description(&self) -> String {
        format!(
            "RatePerMicroBatchStream[rowsPerBatch={}, numPartitions={}, startTimestamp={}, advanceMillisPerBatch={}]",
            self.options.rows_per_batch,
            self.options.num_partitions.map(|n| n.to_string()).unwrap_or_else(|| "default".into()),
            self.options.start_timestamp_ms,
            self.options.advance_millis_per_batch
        )
    }

    fn identity(&self) -> String {
        "rate-micro-batch".into()
    }

    /// Offsets and splits are arithmetic on their arguments.
    fn plans_ahead(&self) -> bool {
        true
    }

    async fn open(&mut self, _checkpoint: &SourceCheckpoint, _committed: Option<&str>) -> Result<()> {
        Ok(())
    }

    async fn latest_offset(&mut self, start: Option<&str>, _limit: ReadLimit) -> Result<Option<String>> {
        let start = self.start(start)?;
        let end = match self.available_now {
            Some(Some(fixed)) => fixed,
            Some(None) => {
                let end = self.next(start)?;
                self.available_now = Some(Some(end));
                end
            }
            None => self.next(start)?,
        };
        Ok(Some(serde_json::to_string(&end)?))
    }

    async fn plan_splits(&mut self, start: Option<&str>, end: &str, parallelism: usize) -> Result<Vec<PlannedSplit>> {
        let start = self.start(start)?;
        let end = RateMicroBatchOffset::parse(end)?;
        if end.offset <= start.offset {
            return Ok(Vec::new());
        }
        let n = self.options.num_partitions.unwrap_or(parallelism.max(1) as u32);
        (0..n)
            .map(|p| {
                PlannedSplit::read(&RateMicroBatchSplit {
                    partition: p,
                    num_partitions: n,
                    start_offset: start.offset,
                    end_offset: end.offset,
                    timestamp_ms: start.timestamp,
                })
            })
            .collect()
    }

    async fn commit(&mut self, _end: &str) -> Result<()> {
        Ok(())
    }

    async fn prepare_for_available_now(&mut self) -> Result<AvailableNowSupport> {
        self.available_now = Some(None);
        Ok(AvailableNowSupport::Supported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};

    #[tokio::test]
    async fn each_batch_advances_by_rows_and_millis() {
        let opts =
            RateMicroBatchOptions::parse(&Options::from_pairs([("rowsPerBatch", "10"), ("startTimestamp", "1000")])).unwrap();
        let mut s = RateMicroBatchSource::new(opts);
        let end = s.latest_offset(None, ReadLimit::Default).await.unwrap().unwrap();
        assert_eq!(end, "{\"offset\":10,\"timestamp\":2000}");
        let splits = s.plan_splits(None, &end, 3).await.unwrap();
        assert_eq!(splits.len(), 3);
        let sp: RateMicroBatchSplit = splits[2].split.decode("rate-micro-batch").unwrap();
        let b = read_rate_micro_batch_split(&sp).unwrap();
        let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(v.values(), &[2, 5, 8]);
        let t = b.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(t.value(0), 1_000_000);
    }

    #[tokio::test]
    async fn available_now_gives_exactly_one_batch() {
        let opts = RateMicroBatchOptions::parse(&Options::from_pairs([("rowsPerBatch", "5")])).unwrap();
        let mut s = RateMicroBatchSource::new(opts);
        s.prepare_for_available_now().await.unwrap();
        let first = s.latest_offset(None, ReadLimit::Default).await.unwrap();
        let again = s.latest_offset(first.as_deref(), ReadLimit::Default).await.unwrap();
        assert_eq!(first, again);
    }

    #[tokio::test]
    async fn offsets_at_the_end_of_64_bits_are_errors_not_panics() {
        let opts = RateMicroBatchOptions::parse(&Options::from_pairs([("rowsPerBatch", "5")])).unwrap();
        let mut s = RateMicroBatchSource::new(opts);
        let near_end = format!("{{\"offset\":{},\"timestamp\":0}}", i64::MAX - 1);
        let e = s.latest_offset(Some(&near_end), ReadLimit::Default).await.unwrap_err();
        assert!(e.message.contains("Integer overflow"), "{}", e.message);
        let split = RateMicroBatchSplit {
            partition: 3,
            num_partitions: 4,
            start_offset: i64::MAX - 1,
            end_offset: i64::MAX,
            timestamp_ms: 0,
        };
        assert!(read_rate_micro_batch_split(&split).is_err());
        let split =
            RateMicroBatchSplit { partition: 0, num_partitions: 1, start_offset: 0, end_offset: 1, timestamp_ms: i64::MAX };
        assert!(read_rate_micro_batch_split(&split).is_err());
    }
}
