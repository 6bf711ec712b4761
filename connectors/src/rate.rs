//! `rate`: Spark's test source, `rowsPerSecond` rows per second with an optional ramp-up
//! (docs/semantics.md §9 "Rate"), with Spark's exact value and timestamp formula so outputs match Spark's.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use sluice_common::QueryConf;

use sluice_common::error::{Result, SluiceError};
use sluice_common::log::MetadataLog;
use sluice_common::options::Options;
use sluice_common::time::now_ms;
use sluice_common::types::{timestamp_type, UTC};

use crate::access::Access;
use crate::source::{
    check_source_options, check_task_count, parse_long_offset, GeneratedSplitReader, PlannedSplit, ReadLimit, Source,
    SourceCheckpoint, SourceConnector, SourceSchema, SourceSpec, SplitReader,
};

/// The `rate` source connector.
#[derive(Debug, Default)]
pub struct RateConnector;

impl SourceConnector for RateConnector {
    fn name(&self) -> &'static str {
        "rate"
    }

    fn resolve(&self, options: &mut Options, _declared: &Schema) -> Result<SourceSchema> {
        RateOptions::parse(options)?;
        Ok(SourceSchema::Fixed(rate_schema()))
    }

    fn access(&self, _options: &Options) -> Result<Vec<Access>> {
        Ok(Vec::new()) // generated rows: nothing outside the engine
    }

    fn create_source(&self, spec: &SourceSpec, _conf: &QueryConf) -> Result<Box<dyn Source>> {
        Ok(Box::new(RateSource::new(RateOptions::parse(&spec.options)?)))
    }

    fn split_reader(&self, _spec: &SourceSpec) -> Result<Box<dyn SplitReader>> {
        Ok(Box::new(GeneratedSplitReader::new("rate", read_rate_split)))
    }
}

/// Options of the `rate` connector.
#[derive(Debug, Clone, PartialEq)]
pub struct RateOptions {
    /// `rowsPerSecond` (default 1): rows per second once the ramp-up is over.
    pub rows_per_second: i64,
    /// `rampUpTime` in seconds (default 0): how long the speed takes to grow linearly to `rowsPerSecond`.
    pub ramp_up_seconds: i64,
    /// `numPartitions`: tasks per batch; the cluster's default parallelism when unset.
    pub num_partitions: Option<u32>,
}

const VALID: &[&str] = &["rowsPerSecond", "rampUpTime", "numPartitions"];

impl RateOptions {
    /// Parses and validates the options with Spark's messages.
    pub fn parse(options: &Options) -> Result<Self> {
        check_source_options(options, VALID, "connector 'rate'")?;
        let rows_per_second = options.parse_or::<i64>("rowsPerSecond", 1, "rate")?;
        if rows_per_second <= 0 {
            return Err(SluiceError::user(format!(
                "Invalid value '{rows_per_second}'. The option 'rowsPerSecond' must be positive"
            )));
        }
        let ramp_up_seconds = match options.get("rampUpTime") {
            None => 0,
            Some(t) => parse_seconds(t)?,
        };
        if ramp_up_seconds < 0 {
            return Err(SluiceError::user(format!(
                "Invalid value '{ramp_up_seconds}'. The option 'rampUpTime' must not be negative"
            )));
        }
        let num_partitions = options.parse_opt::<u32>("numPartitions", "rate")?;
        if num_partitions == Some(0) {
            return Err(SluiceError::user("Invalid value '0'. The option 'numPartitions' must be positive"));
        }
        check_task_count(num_partitions.map(u64::from), "numPartitions")?;
        Ok(Self { rows_per_second, ramp_up_seconds, num_partitions })
    }
}

/// Spark's `JavaUtils.timeStringAsSec`: `5s`, `2m`, `1h`, bare numbers are seconds.
fn parse_seconds(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit() && c != '-').unwrap_or(t.len()));
    let n: i64 = num.parse().map_err(|_| SluiceError::user(format!("invalid time '{text}' for option 'rampUpTime'")))?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "ms" => return Ok(n / 1000),
        other => return Err(SluiceError::user(format!("invalid time unit '{other}' in rampUpTime '{text}'"))),
    };
    n.checked_mul(mult).ok_or_else(|| SluiceError::user(format!("rampUpTime '{text}' is too large")))
}

/// Schema of the rate source: `timestamp TIMESTAMP, value BIGINT`.
pub fn rate_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("timestamp", timestamp_type(), true), Field::new("value", DataType::Int64, true)]))
}

/// A batch of the rate schema from timestamps (µs) and values.
pub fn rate_batch(timestamps_micros: Vec<i64>, values: Vec<i64>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        rate_schema(),
        vec![Arc::new(TimestampMicrosecondArray::from(timestamps_micros).with_timezone(UTC)), Arc::new(Int64Array::from(values))],
    )?)
}

/// `RateStreamProvider.valueAtSecond`; `None` when the value does not fit in 64 bits (Spark's
/// "Integer overflow"), which only a corrupt offset or an extreme `rampUpTime` reaches.
pub fn value_at_second(seconds: i64, rows_per_second: i64, ramp_up_seconds: i64) -> Option<i64> {
    let speed_delta_per_second = rows_per_second / ramp_up_seconds.checked_add(1)?;
    if seconds <= ramp_up_seconds {
        // Sum of 1..seconds times the per-second speed increase, exactly as Spark computes it.
        let next = seconds.checked_add(1)?;
        let rampup_part = if seconds % 2 == 0 { (seconds / 2).checked_mul(next)? } else { seconds.checked_mul(next / 2)? };
        rampup_part.checked_mul(speed_delta_per_second)
    } else {
        let rampup_part = value_at_second(ramp_up_seconds, rows_per_second, ramp_up_seconds)?;
        rampup_part.checked_add(seconds.checked_sub(ramp_up_seconds)?.checked_mul(rows_per_second)?)
    }
}

/// One partition's share of a rate batch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateSplit {
    /// This task's index; it generates `range_start + partition`, then every `num_partitions`-th value.
    pub partition: u32,
    /// Number of tasks the batch's values are dealt across.
    pub num_partitions: u32,
    /// First value of the batch (inclusive): `valueAtSecond` of the start offset.
    pub range_start: i64,
    /// End value of the batch (exclusive): `valueAtSecond` of the end offset.
    pub range_end: i64,
    /// Timestamp of `range_start` in epoch ms: the source's creation time plus the start offset's seconds.
    pub local_start_time_ms: i64,
    /// Milliseconds between consecutive values, spreading the batch's rows evenly over its seconds.
    pub relative_ms_per_value: f64,
}

/// Generates the rows of a rate split (executor side). The split comes over the network, so
/// its arithmetic is checked: a split no driver would plan fails instead of panicking.
pub fn read_rate_split(split: &RateSplit) -> Result<RecordBatch> {
    let corrupt = || SluiceError::internal(format!("rate split from the driver is out of range: {split:?}"));
    if split.num_partitions == 0 || split.partition >= split.num_partitions {
        return Err(corrupt());
    }
    let mut values = Vec::new();
    let mut ts = Vec::new();
    let mut next = split.range_start.checked_add(i64::from(split.partition));
    while let Some(v) = next.filter(|v| *v < split.range_end) {
        let relative = (v.abs_diff(split.range_start) as f64 * split.relative_ms_per_value).round() as i64;
        let micros = relative.checked_add(split.local_start_time_ms).and_then(|ms| ms.checked_mul(1000)).ok_or_else(corrupt)?;
        values.push(v);
        ts.push(micros);
        next = v.checked_add(i64::from(split.num_partitions));
    }
    rate_batch(ts, values)
}

/// Driver side of the rate source.
pub struct RateSource {
    options: RateOptions,
    creation_time_ms: i64,
    last_time_ms: i64,
}

impl RateSource {
    /// A rate source; its creation time is restored or recorded in `open`.
    pub fn new(options: RateOptions) -> Self {
        Self { options, creation_time_ms: 0, last_time_ms: 0 }
    }

    fn max_seconds(&self) -> i64 {
        let r = self.options.rows_per_second;
        (i64::MAX - r) / r
    }
}

#[async_trait]
impl Source for RateSource {
    fn description(&self) -> String {
        format!(
            "RateStreamV2[rowsPerSecond={}, rampUpTimeSeconds={}, numPartitions={}",
            self.options.rows_per_second,
            self.options.ramp_up_seconds,
            self.options.num_partitions.map(|n| n.to_string()).unwrap_or_else(|| "default".into())
        )
    }

    fn identity(&self) -> String {
        "rate".into()
    }

    async fn open(&mut self, checkpoint: &SourceCheckpoint, _committed: Option<&str>) -> Result<()> {
        let log = MetadataLog::new(checkpoint.dir.store.clone(), checkpoint.dir.path.clone(), "sources/rate");
        let creation = match log.get(0).await? {
            Some(bytes) => parse_creation_time(&bytes)?,
            None => {
                let now = now_ms();
                log.add(0, Bytes::from(format!("v1\n{now}"))).await?;
                match log.get(0).await? {
                    Some(bytes) => parse_creation_time(&bytes)?,
                    None => now,
                }
            }
        };
        self.creation_time_ms = creation;
        self.last_time_ms = creation;
        Ok(())
    }

    async fn latest_offset(&mut self, _start: Option<&str>, _limit: ReadLimit) -> Result<Option<String>> {
        let now = now_ms();
        if self.last_time_ms < now {
            self.last_time_ms = now;
        }
        Ok(Some(((self.last_time_ms - self.creation_time_ms) / 1000).to_string()))
    }

    async fn plan_splits(&mut self, start: Option<&str>, end: &str, parallelism: usize) -> Result<Vec<PlannedSplit>> {
        let start_s = match start {
            Some(s) => parse_long_offset(s, "rate")?,
            None => 0,
        };
        let end_s = parse_long_offset(end, "rate")?;
        if start_s < 0 {
            return Err(SluiceError::user(format!(
                "rate: offset {start_s} in the checkpoint is negative; the checkpoint is corrupt"
            )));
        }
        if start_s > end_s {
            return Err(SluiceError::internal(format!("rate: start {start_s} is after end {end_s}")));
        }
        if end_s > self.max_seconds() {
            return Err(SluiceError::user(format!(
                "Integer overflow. Max offset with {} rowsPerSecond is {}, but it's {end_s} now.",
                self.options.rows_per_second,
                self.max_seconds()
            )));
        }
        if start_s == end_s {
            return Ok(Vec::new());
        }
        let (r, ramp) = (self.options.rows_per_second, self.options.ramp_up_seconds);
        let overflow = || {
            SluiceError::user(format!(
                "Integer overflow: the rate source's values for seconds {start_s}..{end_s} with {r} rowsPerSecond and rampUpTime {ramp}s do not fit in 64 bits"
            ))
        };
        let range_start = value_at_second(start_s, r, ramp).ok_or_else(overflow)?;
        let range_end = value_at_second(end_s, r, ramp).ok_or_else(overflow)?;
        let local_start_time_ms =
            start_s.checked_mul(1000).and_then(|ms| ms.checked_add(self.creation_time_ms)).ok_or_else(overflow)?;
        let relative_ms_per_value = (end_s - start_s) as f64 * 1000.0 / range_end.abs_diff(range_start) as f64;
        let n = self.options.num_partitions.unwrap_or(parallelism.max(1) as u32);
        (0..n)
            .map(|p| {
                PlannedSplit::read(&RateSplit {
                    partition: p,
                    num_partitions: n,
                    range_start,
                    range_end,
                    local_start_time_ms,
                    relative_ms_per_value,
                })
            })
            .collect()
    }

    async fn commit(&mut self, _end: &str) -> Result<()> {
        Ok(())
    }
}

fn parse_creation_time(bytes: &[u8]) -> Result<i64> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let (Some("v1"), Some(ms)) = (lines.next(), lines.next()) else {
        return Err(SluiceError::user(format!("rate source metadata is corrupt: '{text}'")));
    };
    ms.trim().parse().map_err(|_| SluiceError::user(format!("rate source metadata is corrupt: '{text}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_at_second_matches_spark() {
        // RateStreamProviderSuite "valueAtSecond"
        assert_eq!(value_at_second(0, 5, 0), Some(0));
        assert_eq!(value_at_second(1, 5, 0), Some(5));
        assert_eq!(value_at_second(0, 5, 2), Some(0));
        assert_eq!(value_at_second(1, 5, 2), Some(1));
        assert_eq!(value_at_second(2, 5, 2), Some(3));
        assert_eq!(value_at_second(3, 5, 2), Some(8));
        assert_eq!(value_at_second(0, 10, 4), Some(0));
        assert_eq!(value_at_second(1, 10, 4), Some(2));
        assert_eq!(value_at_second(2, 10, 4), Some(6));
        assert_eq!(value_at_second(3, 10, 4), Some(12));
        assert_eq!(value_at_second(4, 10, 4), Some(20));
        assert_eq!(value_at_second(5, 10, 4), Some(30));
    }

    #[test]
    fn split_rows_interleave_partitions_and_spread_timestamps() {
        let s = RateSplit {
            partition: 1,
            num_partitions: 2,
            range_start: 10,
            range_end: 20,
            local_start_time_ms: 1_000,
            relative_ms_per_value: 100.0,
        };
        let b = read_rate_split(&s).unwrap();
        let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(v.values(), &[11, 13, 15, 17, 19]);
        let t = b.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(t.value(0), 1_100_000);
        assert_eq!(t.value(4), 1_900_000);
    }

    #[test]
    fn options_are_validated_like_spark() {
        let e = RateOptions::parse(&Options::from_pairs([("rowsPerSecond", "0")])).unwrap_err();
        assert!(e.message.contains("must be positive"));
        let o = RateOptions::parse(&Options::from_pairs([("rampUpTime", "5s"), ("ROWSPERSECOND", "10")])).unwrap();
        assert_eq!((o.rows_per_second, o.ramp_up_seconds), (10, 5));
        assert!(RateOptions::parse(&Options::from_pairs([("rowPerSecond", "1")])).is_err());
        assert!(RateOptions::parse(&Options::from_pairs([("rampUpTime", "9223372036854775807d")])).is_err());
        let e = RateOptions::parse(&Options::from_pairs([("numPartitions", "2147483647")])).unwrap_err();
        assert!(e.message.contains("must be at most 100000"), "{}", e.message);
    }

    #[tokio::test]
    async fn offsets_beyond_64_bit_values_are_errors_not_panics() {
        assert_eq!(value_at_second(i64::MAX - 1, 1, i64::MAX - 1), None);
        assert_eq!(value_at_second(5, 1, i64::MAX), None);
        let mut s = RateSource::new(RateOptions { rows_per_second: 1, ramp_up_seconds: 5_000_000_000, num_partitions: Some(1) });
        let e = s.plan_splits(Some("0"), "4500000000", 1).await.unwrap_err();
        assert!(e.message.contains("Integer overflow"), "{}", e.message);
        assert!(s.plan_splits(Some("-5"), "1", 1).await.is_err());
        let split = RateSplit {
            partition: 0,
            num_partitions: 1,
            range_start: i64::MAX - 1,
            range_end: i64::MAX,
            local_start_time_ms: i64::MAX / 10,
            relative_ms_per_value: 1.0,
        };
        assert!(read_rate_split(&split).is_err());
        assert!(read_rate_split(&RateSplit { num_partitions: 0, ..split }).is_err());
    }
}
