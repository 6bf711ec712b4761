//! Driver side of the Kafka source (Spark's `KafkaMicroBatchStream`): initial offsets, the end
//! of each batch under the read limits, the batch's offset ranges, and data-loss checks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use sluice_common::error::{Result, SluiceError};
use sluice_common::log::MetadataLog;

use super::offset_reader::{OffsetQuery, OffsetReader};
use super::offsets::{
    batch_ranges, offsets_from_json, offsets_to_json, rate_limit, records_available, should_delay_batch, split_ranges,
    PartitionOffsets, TopicPartition, EARLIEST, LATEST,
};
use super::options::{KafkaSourceOptions, StartingOffsets, TimestampStrategy};
use crate::source::{AvailableNowSupport, PlannedSplit, ReadLimit, Source, SourceCheckpoint};

/// Driver side of one Kafka stream.
pub struct KafkaSource {
    options: KafkaSourceOptions,
    reader: OffsetReader,
    /// `sources/<i>/0`: the offsets a new query starts from, fixed once written.
    initial_log: Option<MetadataLog>,
    initial: Option<PartitionOffsets>,
    /// Trigger.AvailableNow: the latest offsets when the query started.
    available_now_end: Option<PartitionOffsets>,
    /// When the last batch was allowed to start (for `maxTriggerDelay`).
    last_trigger: Option<Instant>,
    /// The latest offsets seen by the last `latest_offset` call, for progress.
    latest_seen: Option<PartitionOffsets>,
    /// Data-loss events skipped under `failOnDataLoss=false`.
    data_loss_events: u64,
}

impl KafkaSource {
    /// A source with validated options; nothing is contacted yet.
    pub fn new(options: KafkaSourceOptions) -> Result<Self> {
        let reader =
            OffsetReader::new(&options.client, &options.group_id(), options.fetch_retries, options.fetch_retry_interval)?;
        Ok(Self {
            options,
            reader,
            initial_log: None,
            initial: None,
            available_now_end: None,
            last_trigger: None,
            latest_seen: None,
            data_loss_events: 0,
        })
    }

    /// The initial offsets: read from `sources/<i>/0`, or resolved from the starting options
    /// and recorded there before the first batch, so a restarted query starts from the same
    /// place even if `latest` has moved.
    async fn initial_offsets(&mut self) -> Result<PartitionOffsets> {
        if let Some(initial) = &self.initial {
            return Ok(initial.clone());
        }
        let resolved = self.resolve_starting_offsets().await?;
        let log = self.initial_log.as_ref().ok_or_else(|| SluiceError::internal("kafka source used before open"))?;
        let mut content = vec![0u8];
        content.extend_from_slice(format!("v1\n{}", offsets_to_json(&resolved)).as_bytes());
        log.add(0, Bytes::from(content)).await?;
        // Another driver may have written it first: what is stored wins.
        let stored = match log.get(0).await? {
            Some(bytes) => parse_initial_offsets(&bytes)?,
            None => resolved,
        };
        self.initial = Some(stored.clone());
        Ok(stored)
    }

    async fn resolve_starting_offsets(&self) -> Result<PartitionOffsets> {
        let partitions = self.reader.partitions(&self.options.subscription).await?;
        match &self.options.starting {
            StartingOffsets::Earliest => self.reader.offsets(&partitions, OffsetQuery::Earliest).await,
            StartingOffsets::Latest => self.reader.offsets(&partitions, OffsetQuery::Latest).await,
            StartingOffsets::Specific(wanted) => {
                check_all_partitions_given(wanted, &partitions, "startingOffsets")?;
                let earliest = self.reader.offsets(&partitions, OffsetQuery::Earliest).await?;
                let latest = self.reader.offsets(&partitions, OffsetQuery::Latest).await?;
                Ok(wanted
                    .iter()
                    .map(|(tp, o)| {
                        let resolved = match *o {
                            EARLIEST => earliest.get(tp).copied().unwrap_or(0),
                            LATEST => latest.get(tp).copied().unwrap_or(0),
                            o => o,
                        };
                        (tp.clone(), resolved)
                    })
                    .collect())
            }
            StartingOffsets::Timestamp(ts) => {
                let wanted = partitions.iter().map(|tp| (tp.clone(), *ts)).collect();
                self.offsets_by_timestamp(&wanted, &partitions).await
            }
            StartingOffsets::ByTimestamp(wanted) => {
                check_all_partitions_given(wanted, &partitions, "startingOffsetsByTimestamp")?;
                self.offsets_by_timestamp(wanted, &partitions).await
            }
        }
    }

    async fn offsets_by_timestamp(
        &self,
        wanted: &PartitionOffsets,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<PartitionOffsets> {
        let found = self.reader.offsets_for_times(wanted).await?;
        let latest = match self.options.timestamp_strategy {
            TimestampStrategy::Latest => self.reader.offsets(partitions, OffsetQuery::Latest).await?,
            TimestampStrategy::Error => PartitionOffsets::new(),
        };
        let mut out = PartitionOffsets::new();
        for (tp, offset) in found {
            let offset = match (offset, self.options.timestamp_strategy) {
                (Some(o), _) => o,
                (None, TimestampStrategy::Latest) => latest.get(&tp).copied().unwrap_or(0),
                (None, TimestampStrategy::Error) => {
                    return Err(SluiceError::user(format!(
                        "No offset matched from request of topic-partition {tp} and timestamp {}. \
                         Set 'startingOffsetsByTimestampStrategy' to 'latest' to start such partitions at their latest offset.",
                        wanted.get(&tp).copied().unwrap_or_default()
                    )))
                }
            };
            out.insert(tp, offset);
        }
        Ok(out)
    }

    async fn fetch_latest(&self) -> Result<PartitionOffsets> {
        let partitions = self.reader.partitions(&self.options.subscription).await?;
        self.reader.offsets(&partitions, OffsetQuery::Latest).await
    }

    async fn earliest_of_new(&self, from: &PartitionOffsets, until: &PartitionOffsets) -> Result<PartitionOffsets> {
        let new: BTreeSet<TopicPartition> = until.keys().filter(|tp| !from.contains_key(*tp)).cloned().collect();
        if new.is_empty() {
            return Ok(PartitionOffsets::new());
        }
        self.reader.offsets(&new, OffsetQuery::Earliest).await
    }

    async fn start_offsets(&mut self, start: Option<&str>) -> Result<PartitionOffsets> {
        match start {
            Some(s) => offsets_from_json(s),
            None => self.initial_offsets().await,
        }
    }

    fn report_data_loss(&mut self, message: &str) -> Result<()> {
        if self.options.fail_on_data_loss {
            return Err(SluiceError::user(format!("{message}. {}", super::DATA_LOSS_FAIL_HINT)));
        }
        self.data_loss_events += 1;
        tracing::warn!(source = %self.description(), "{message}. {}", super::DATA_LOSS_CONTINUE_HINT);
        Ok(())
    }
}

/// Parses `sources/<i>/0`: a 0x00 byte (SPARK-19517), `v1\n`, then the offsets.
fn parse_initial_offsets(bytes: &[u8]) -> Result<PartitionOffsets> {
    let body = bytes.strip_prefix(&[0u8]).unwrap_or(bytes);
    let text = String::from_utf8_lossy(body);
    let json = text.strip_prefix("v1\n").ok_or_else(|| {
        SluiceError::user(format!("the Kafka source's initial offsets in the checkpoint are not in the v1 format: '{text}'"))
    })?;
    offsets_from_json(json)
}

/// Spark requires explicit starting offsets to name every partition of the subscription.
fn check_all_partitions_given(wanted: &PartitionOffsets, partitions: &BTreeSet<TopicPartition>, option: &str) -> Result<()> {
    let given: BTreeSet<&TopicPartition> = wanted.keys().collect();
    if given != partitions.iter().collect::<BTreeSet<_>>() {
        let list = |s: &mut dyn Iterator<Item = &TopicPartition>| s.map(|tp| tp.to_string()).collect::<Vec<_>>().join(", ");
        return Err(SluiceError::user(format!(
            "If {option} contains specific offsets, you must specify all TopicPartitions. Use -1 for latest, -2 for earliest. \
             Specified: [{}] Assigned: [{}]",
            list(&mut given.into_iter()),
            list(&mut partitions.iter())
        )));
    }
    Ok(())
}

#[async_trait]
impl Source for KafkaSource {
    fn description(&self) -> String {
        format!("KafkaV2[{}]", self.options.subscription.describe())
    }

    fn identity(&self) -> String {
        format!("kafka:{}", self.options.subscription.describe())
    }

    fn read_wait(&self) -> std::time::Duration {
        self.options.poll_timeout + self.options.api_timeout
    }

    async fn open(&mut self, checkpoint: &SourceCheckpoint, _committed: Option<&str>) -> Result<()> {
        let log = MetadataLog::new(checkpoint.dir.store.clone(), checkpoint.dir.path.clone(), "sources (kafka initial offsets)");
        if let Some(bytes) = log.get(0).await? {
            self.initial = Some(parse_initial_offsets(&bytes)?);
        }
        self.initial_log = Some(log);
        Ok(())
    }

    async fn latest_offset(&mut self, start: Option<&str>, limit: ReadLimit) -> Result<Option<String>> {
        let from = self.start_offsets(start).await?;
        let latest = match &self.available_now_end {
            Some(end) => end.clone(),
            None => self.fetch_latest().await?,
        };
        self.latest_seen = Some(latest.clone());
        let limits = self.options.limits;
        let end = match limit {
            ReadLimit::AllAvailable => latest,
            ReadLimit::Default => {
                let delay = limits.min_offsets.is_some_and(|min| {
                    let since_ms = self.last_trigger.map_or(i64::MAX, |t| t.elapsed().as_millis() as i64);
                    should_delay_batch(min, records_available(&latest, &from), since_ms, limits.max_trigger_delay_ms)
                });
                if delay {
                    from.clone()
                } else {
                    self.last_trigger = Some(Instant::now());
                    match limits.max_offsets {
                        Some(max) => {
                            let earliest = self.earliest_of_new(&from, &latest).await?;
                            rate_limit(max, &from, &latest, &earliest)
                        }
                        None => latest,
                    }
                }
            }
        };
        if end == from {
            // Nothing new: answer with the start itself so the engine sees no new data.
            return Ok(start.map(str::to_string));
        }
        Ok(Some(offsets_to_json(&end)))
    }

    async fn plan_splits(&mut self, start: Option<&str>, end: &str, _parallelism: usize) -> Result<Vec<PlannedSplit>> {
        let from = self.start_offsets(start).await?;
        let until = offsets_from_json(end)?;
        let earliest = self.earliest_of_new(&from, &until).await?;
        let planned = batch_ranges(&from, &until, &earliest);
        for loss in &planned.data_loss {
            self.report_data_loss(loss)?;
        }
        split_ranges(planned.ranges, self.options.min_partitions).iter().map(PlannedSplit::read).collect()
    }

    async fn commit(&mut self, _end: &str) -> Result<()> {
        Ok(())
    }

    async fn prepare_for_available_now(&mut self) -> Result<AvailableNowSupport> {
        self.available_now_end = Some(self.fetch_latest().await?);
        Ok(AvailableNowSupport::Supported)
    }

    fn reported_latest_offset(&self) -> Option<String> {
        self.latest_seen.as_ref().map(offsets_to_json)
    }

    fn progress_metrics(&self, end: Option<&str>) -> BTreeMap<String, String> {
        let mut metrics = BTreeMap::new();
        let (Some(latest), Some(end)) = (&self.latest_seen, end.and_then(|e| offsets_from_json(e).ok())) else {
            return metrics;
        };
        // Spark's offsetsBehindLatest metrics, over the partitions the batch ended in.
        let behind: Vec<i64> = end.iter().map(|(tp, o)| latest.get(tp).map_or(0, |l| (l - o).max(0))).collect();
        if !behind.is_empty() {
            let sum: i64 = behind.iter().sum();
            metrics.insert("minOffsetsBehindLatest".into(), behind.iter().min().copied().unwrap_or(0).to_string());
            metrics.insert("maxOffsetsBehindLatest".into(), behind.iter().max().copied().unwrap_or(0).to_string());
            metrics.insert("avgOffsetsBehindLatest".into(), format!("{:.1}", sum as f64 / behind.len() as f64));
        }
        if self.data_loss_events > 0 {
            metrics.insert("numDataLossEvents".into(), self.data_loss_events.to_string());
        }
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_offsets_file_is_spark_format() {
        let mut content = vec![0u8];
        content.extend_from_slice(b"v1\n{\"t\":{\"0\":5,\"1\":0}}");
        let o = parse_initial_offsets(&content).unwrap();
        assert_eq!(o.get(&TopicPartition::new("t", 0)), Some(&5));
        assert!(parse_initial_offsets(b"{\"t\":{\"0\":5}}").is_err());
    }

    #[test]
    fn specific_offsets_must_cover_every_partition() {
        let parts: BTreeSet<TopicPartition> = [TopicPartition::new("t", 0), TopicPartition::new("t", 1)].into();
        let wanted: PartitionOffsets = [(TopicPartition::new("t", 0), -2)].into();
        let e = check_all_partitions_given(&wanted, &parts, "startingOffsets").unwrap_err();
        assert!(e.message.contains("Specified: [t-0] Assigned: [t-0, t-1]"), "{}", e.message);
    }
}
