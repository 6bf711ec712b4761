//! Executor side of the Kafka source: reads one planned offset range straight from the brokers
//! into an Arrow batch of Spark's Kafka schema.
//!
//! The range was fixed by the driver and recorded in the offset log, so a replay reads exactly
//! the same records. The consumer is assigned the partition at the range's first offset (no
//! consumer-group subscription, nothing committed) and stops at the range's end. Records that
//! vanished — aged out by retention, or a topic deleted and re-created — are data loss: they fail
//! the task under `failOnDataLoss`, or are skipped and counted otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use sluice_common::error::{Result, SluiceError};
use sluice_common::types::{timestamp_type, UTC};

use super::offset_reader::client_config_error;
use super::offsets::{OffsetRange, TopicPartition};
use super::options::KafkaSourceOptions;

/// Spark's Kafka source schema (`headers` only with `includeHeaders`).
pub fn kafka_schema(include_headers: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("topic", DataType::Utf8, true),
        Field::new("partition", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
        Field::new("timestamp", timestamp_type(), true),
        Field::new("timestampType", DataType::Int32, true),
    ];
    if include_headers {
        fields.push(Field::new("headers", headers_type(), true));
    }
    Arc::new(Schema::new(fields))
}

fn header_fields() -> Fields {
    Fields::from(vec![Field::new("key", DataType::Utf8, true), Field::new("value", DataType::Binary, true)])
}

fn header_type() -> DataType {
    DataType::Struct(header_fields())
}

/// Spark's `headers` column type, `ARRAY<STRUCT<key STRING, value BINARY>>`.
pub fn headers_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", header_type(), true)))
}

/// A split: one offset range of one partition.
pub type KafkaSplit = OffsetRange;

/// The rows of a split and how many offsets were lost (skipped under `failOnDataLoss=false`).
pub struct KafkaSplitData {
    /// The records read, in Spark's Kafka schema.
    pub batch: RecordBatch,
    /// Offsets of the range that no longer existed and were skipped (always 0 with `failOnDataLoss`).
    pub lost_offsets: u64,
}

/// What the partition's current bounds say about the rest of a range being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeCheck {
    /// Keep reading.
    Continue,
    /// `[lost_from, resume_at)` vanished from the log's start (retention); go on from `resume_at`.
    Resume {
        /// First offset that vanished.
        lost_from: i64,
        /// The partition's new low watermark, where reading goes on.
        resume_at: i64,
    },
    /// Nothing more of the range exists; `[lost_from, lost_until)` (maybe empty) is lost.
    Finished {
        /// First offset of the range that will never be read.
        lost_from: i64,
        /// End (exclusive) of the lost offsets; equal to `lost_from` when nothing was lost.
        lost_until: i64,
    },
}

/// Decides, from the partition's low and high watermarks, whether the offsets `[next, until)`
/// still to be read can still arrive. `exhausted` is true when the consumer has reached the end
/// of the log; then offsets below `high` that never came were compacted away or were
/// transaction markers, which is not a loss.
pub fn check_range(next: i64, until: i64, low: i64, high: i64, exhausted: bool) -> RangeCheck {
    if low > next {
        if low >= until {
            return RangeCheck::Finished { lost_from: next, lost_until: until };
        }
        return RangeCheck::Resume { lost_from: next, resume_at: low };
    }
    if high < until && (exhausted || high <= next) {
        return RangeCheck::Finished { lost_from: next.max(high), lost_until: until };
    }
    if exhausted {
        return RangeCheck::Finished { lost_from: until, lost_until: until };
    }
    RangeCheck::Continue
}

/// How long a consumer waits without records before it checks whether the records it waits
/// for still exist (brokers differ in how they answer a fetch past the end of a log).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Reads `split` (blocking; run it on the blocking pool).
pub fn read_split(options: &KafkaSourceOptions, group_id: &str, split: &KafkaSplit) -> Result<KafkaSplitData> {
    let tp = &split.topic_partition;
    let consumer: BaseConsumer = options
        .client
        .client_config(&[
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "true"),
            // An offset outside the log is data loss, never a silent jump.
            ("auto.offset.reset", "error"),
        ])
        .create()
        .map_err(|e| client_config_error(&e, &options.client))?;
    let assign = |offset: i64| -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset)).map_err(kafka_err)?;
        consumer.assign(&tpl).map_err(kafka_err)
    };
    let watermarks = || consumer.fetch_watermarks(&tp.topic, tp.partition, options.api_timeout);
    let mut rows = RowBuilder::new(options.include_headers);
    let mut next = split.from;
    let mut lost: u64 = 0;
    assign(next)?;
    let mut last_progress = Instant::now();
    let mut last_check = Instant::now();
    let mut last_error: Option<String> = None;
    let mut last_bounds: Option<(i64, i64)> = None;
    while next < split.until {
        if last_progress.elapsed() >= options.poll_timeout {
            return Err(SluiceError::external(format!(
                "timed out after {} ms reading {tp} offsets [{next}, {}) from Kafka at {}{}{}",
                options.poll_timeout.as_millis(),
                split.until,
                options.client.bootstrap_servers(),
                last_bounds
                    .map(|(low, high)| format!(" (the broker reports the partition holds [{low}, {high}))"))
                    .unwrap_or_default(),
                last_error.map(|e| format!("; last error: {e}")).unwrap_or_default()
            )));
        }
        // Some(exhausted) when the partition's bounds must be checked.
        let mut check: Option<bool> = None;
        match consumer.poll(Duration::from_millis(200)) {
            None => {
                if last_progress.elapsed() >= IDLE_CHECK && last_check.elapsed() >= IDLE_CHECK {
                    check = Some(false);
                }
            }
            Some(Ok(m)) => {
                last_progress = Instant::now();
                if m.offset() < next {
                    continue;
                }
                if m.offset() > next {
                    // A gap: compaction or transaction markers are fine, retention is not.
                    let (low, _) = watermarks().map_err(kafka_err)?;
                    if low > next {
                        let gone_until = low.min(split.until).min(m.offset());
                        lost += report_loss(options, tp, next, gone_until, &format!("the partition now starts at {low}"))?;
                    }
                }
                if m.offset() >= split.until {
                    break;
                }
                rows.append(&m);
                next = m.offset() + 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => check = Some(true),
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange))) => {
                check = Some(false)
            }
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
            ))) => {
                lost += report_loss(options, tp, next, split.until, "the topic or partition was deleted")?;
                break;
            }
            Some(Err(e)) => {
                // Transport errors: librdkafka reconnects by itself; give up at the poll timeout.
                last_error = Some(e.to_string());
            }
        }
        let Some(exhausted) = check else { continue };
        last_check = Instant::now();
        let (low, high) = match watermarks() {
            Ok(bounds) => bounds,
            Err(e) => {
                last_error = Some(e.to_string());
                continue;
            }
        };
        last_bounds = Some((low, high));
        match check_range(next, split.until, low, high, exhausted) {
            RangeCheck::Continue => {}
            RangeCheck::Resume { lost_from, resume_at } => {
                lost += report_loss(options, tp, lost_from, resume_at, &format!("the partition now holds [{low}, {high})"))?;
                next = resume_at;
                assign(next)?;
                last_progress = Instant::now();
            }
            RangeCheck::Finished { lost_from, lost_until } => {
                lost += report_loss(options, tp, lost_from, lost_until, &format!("the partition now holds [{low}, {high})"))?;
                break;
            }
        }
    }
    Ok(KafkaSplitData { batch: rows.finish()?, lost_offsets: lost })
}

/// Reports offsets `[from, until)` that can no longer be read: fails under `failOnDataLoss`,
/// otherwise logs and returns how many were skipped.
fn report_loss(options: &KafkaSourceOptions, tp: &TopicPartition, from: i64, until: i64, why: &str) -> Result<u64> {
    if until <= from {
        return Ok(0);
    }
    let what = format!("{tp}: cannot fetch offsets [{from}, {until}); {why}");
    if options.fail_on_data_loss {
        return Err(SluiceError::external(format!("{what}. {}", super::DATA_LOSS_FAIL_HINT)).with_retryable(false));
    }
    tracing::warn!("{what}. {}", super::DATA_LOSS_CONTINUE_HINT);
    Ok((until - from) as u64)
}

fn kafka_err(e: KafkaError) -> SluiceError {
    SluiceError::external(format!("Kafka client: {e}"))
}

/// Column builders for Spark's Kafka schema.
struct RowBuilder {
    key: BinaryBuilder,
    value: BinaryBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    timestamp_type: Int32Builder,
    headers: Option<ListBuilder<StructBuilder>>,
}

impl RowBuilder {
    fn new(include_headers: bool) -> Self {
        Self {
            key: BinaryBuilder::new(),
            value: BinaryBuilder::new(),
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            timestamp_type: Int32Builder::new(),
            headers: include_headers.then(|| {
                ListBuilder::new(StructBuilder::from_fields(header_fields(), 0)).with_field(Arc::new(Field::new(
                    "item",
                    header_type(),
                    true,
                )))
            }),
        }
    }

    fn append<M: Message>(&mut self, m: &M) {
        self.key.append_option(m.key());
        self.value.append_option(m.payload());
        self.topic.append_value(m.topic());
        self.partition.append_value(m.partition());
        self.offset.append_value(m.offset());
        // Spark's TimestampType ids: -1 none, 0 CreateTime, 1 LogAppendTime.
        let (ts, kind) = match m.timestamp() {
            Timestamp::NotAvailable => (None, -1),
            Timestamp::CreateTime(ms) => (Some(ms), 0),
            Timestamp::LogAppendTime(ms) => (Some(ms), 1),
        };
        self.timestamp.append_option(ts.map(|ms| ms * 1000));
        self.timestamp_type.append_value(kind);
        if let Some(list) = &mut self.headers {
            let entries = list.values();
            if let Some(hs) = m.headers() {
                for h in hs.iter() {
                    if let Some(b) = entries.field_builder::<StringBuilder>(0) {
                        b.append_value(h.key);
                    }
                    if let Some(b) = entries.field_builder::<BinaryBuilder>(1) {
                        b.append_option(h.value);
                    }
                    entries.append(true);
                }
            }
            list.append(true);
        }
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.key.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.timestamp_type.finish()),
        ];
        let include_headers = self.headers.is_some();
        if let Some(mut h) = self.headers.take() {
            columns.push(Arc::new(h.finish()));
        }
        Ok(RecordBatch::try_new(kafka_schema(include_headers), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_check_tells_retention_and_a_shorter_log_from_gaps() {
        // Reading [2, 6) of a log [0, 10): nothing to say.
        assert_eq!(check_range(2, 6, 0, 10, false), RangeCheck::Continue);
        // Retention removed everything below 4: skip [2, 4), go on at 4.
        assert_eq!(check_range(2, 6, 4, 10, false), RangeCheck::Resume { lost_from: 2, resume_at: 4 });
        // ... or the whole range.
        assert_eq!(check_range(2, 6, 8, 10, false), RangeCheck::Finished { lost_from: 2, lost_until: 6 });
        // The topic was re-created with one record: [2, 6) is gone.
        assert_eq!(check_range(2, 6, 0, 1, false), RangeCheck::Finished { lost_from: 2, lost_until: 6 });
        // Idle while the log still ends inside the range but beyond `next`: wait for the records.
        assert_eq!(check_range(2, 6, 0, 4, false), RangeCheck::Continue);
        // At the end of the log: offsets up to the high watermark never came (compaction,
        // transaction markers) — no loss; beyond it they are gone.
        assert_eq!(check_range(3, 6, 0, 6, true), RangeCheck::Finished { lost_from: 6, lost_until: 6 });
        assert_eq!(check_range(3, 6, 0, 4, true), RangeCheck::Finished { lost_from: 4, lost_until: 6 });
    }
}
