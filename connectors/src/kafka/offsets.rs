//! Kafka offsets as Spark writes them, and the pure decisions made on them each batch: how far a
//! rate-limited batch may read, whether to wait for more records, which ranges a batch covers
//! (and what data was lost on the way), and how ranges split into tasks.
//!
//! Nothing here talks to a broker, so every rule is unit-tested against Spark's own test cases
//! (`KafkaMicroBatchSourceSuite`, `KafkaOffsetRangeCalculatorSuite`).
//!
//! Offsets come from brokers, options and checkpoint files, so any `i64` can show up, and
//! differences and sums of them saturate instead of overflowing: a count past `i64::MAX` is
//! as good as infinite for every decision made here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sluice_common::error::{Result, SluiceError};

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number within the topic, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`'s partition `partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    /// Kafka's own `topic-partition` spelling, which users know from broker logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Offsets per topic-partition: a batch's start or end, or the latest offsets of the topics.
pub type PartitionOffsets = BTreeMap<TopicPartition, i64>;

/// In offset options, −2 means "the earliest offset" …
pub const EARLIEST: i64 = -2;
/// … and −1 "the latest offset".
pub const LATEST: i64 = -1;

/// Renders offsets as Spark's `{"topic":{"0":23,"1":45}}` (topics, then partitions, ascending).
pub fn offsets_to_json(offsets: &PartitionOffsets) -> String {
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for (tp, off) in offsets {
        by_topic.entry(&tp.topic).or_default().push((tp.partition, *off));
    }
    let topics: Vec<String> = by_topic
        .into_iter()
        .map(|(topic, parts)| {
            let inner: Vec<String> = parts.iter().map(|(p, o)| format!("\"{p}\":{o}")).collect();
            format!("{}:{{{}}}", serde_json::Value::String(topic.to_string()), inner.join(","))
        })
        .collect();
    format!("{{{}}}", topics.join(","))
}

/// Parses Spark's per-partition offset JSON (also the shape of `startingOffsetsByTimestamp`).
pub fn offsets_from_json(text: &str) -> Result<PartitionOffsets> {
    let bad =
        || SluiceError::user(format!("Expected e.g. {{\"topicA\":{{\"0\":23,\"1\":-1}},\"topicB\":{{\"0\":-2}}}}, got {text}"));
    let parsed: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_str(text.trim()).map_err(|_| bad())?;
    let mut out = PartitionOffsets::new();
    for (topic, parts) in parsed {
        for (p, off) in parts {
            let partition: i32 = p.trim().parse().map_err(|_| bad())?;
            out.insert(TopicPartition::new(topic.clone(), partition), off);
        }
    }
    Ok(out)
}

/// Parses the `assign` option, `{"topicA":[0,1],"topicB":[2,4]}`.
pub fn assignment_from_json(text: &str) -> Result<BTreeSet<TopicPartition>> {
    let parsed: BTreeMap<String, Vec<i32>> = serde_json::from_str(text.trim())
        .map_err(|_| SluiceError::user(format!("Expected e.g. {{\"topicA\":[0,1],\"topicB\":[0,1]}}, got {text}")))?;
    Ok(parsed
        .into_iter()
        .flat_map(|(topic, parts)| parts.into_iter().map(move |p| TopicPartition::new(topic.clone(), p)))
        .collect())
}

/// The read limits a Kafka source applies by default (Spark's `getDefaultReadLimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KafkaReadLimits {
    /// `maxOffsetsPerTrigger`.
    pub max_offsets: Option<i64>,
    /// `minOffsetsPerTrigger`.
    pub min_offsets: Option<i64>,
    /// `maxTriggerDelay` in milliseconds (default 15 minutes).
    pub max_trigger_delay_ms: i64,
}

/// Caps a batch at `limit` records in all, shared across partitions in proportion to what each
/// has available — Spark's `rateLimit`: `limit * size / total`, rounded up when below one record
/// (so a small partition is never starved) and down otherwise, never past the available end.
/// Partitions unknown to `from` start at `earliest_of_new`.
pub fn rate_limit(
    limit: i64,
    from: &PartitionOffsets,
    until: &PartitionOffsets,
    earliest_of_new: &PartitionOffsets,
) -> PartitionOffsets {
    let begin_of = |tp: &TopicPartition| from.get(tp).or_else(|| earliest_of_new.get(tp)).copied();
    let sizes: BTreeMap<&TopicPartition, i64> = until
        .iter()
        .filter_map(|(tp, end)| begin_of(tp).map(|b| (tp, end.saturating_sub(b))).filter(|(_, size)| *size > 0))
        .collect();
    let total = sizes.values().fold(0i64, |sum, size| sum.saturating_add(*size)) as f64;
    if total < 1.0 {
        return until.clone();
    }
    until
        .iter()
        .map(|(tp, end)| {
            let capped = match (sizes.get(tp), begin_of(tp)) {
                (Some(size), Some(begin)) => {
                    let prorate = limit as f64 * (*size as f64 / total);
                    let records = if prorate < 1.0 { prorate.ceil() } else { prorate.floor() } as i64;
                    (*end).min(begin.saturating_add(records))
                }
                _ => *end,
            };
            (tp.clone(), capped)
        })
        .collect()
}

/// Records available beyond `current` (partitions unknown to `current` count from offset 0, as
/// Spark counts them when deciding whether to delay a batch).
pub fn records_available(latest: &PartitionOffsets, current: &PartitionOffsets) -> i64 {
    latest.iter().map(|(tp, end)| end.saturating_sub(current.get(tp).copied().unwrap_or(0))).fold(0, i64::saturating_add)
}

/// Spark's `delayBatch`: with `minOffsetsPerTrigger`, wait while fewer records than the minimum
/// are available, unless `maxTriggerDelay` has passed since the last batch started.
pub fn should_delay_batch(min_offsets: i64, available: i64, ms_since_last_trigger: i64, max_trigger_delay_ms: i64) -> bool {
    ms_since_last_trigger < max_trigger_delay_ms && available < min_offsets
}

/// Records `[from, until)` of one topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OffsetRange {
    /// The partition the range reads.
    pub topic_partition: TopicPartition,
    /// First offset to read (inclusive).
    pub from: i64,
    /// Offset after the last one to read (exclusive).
    pub until: i64,
}

impl OffsetRange {
    /// Number of offsets in the range.
    pub fn size(&self) -> i64 {
        self.until.saturating_sub(self.from)
    }
}

/// The ranges of one batch, and the data loss noticed while computing them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchRanges {
    /// One non-empty range per partition with new records, before `minPartitions` splits them.
    pub ranges: Vec<OffsetRange>,
    /// One message per loss: deleted partitions, new partitions not starting at 0, offsets that
    /// went backwards.
    pub data_loss: Vec<String>,
}

/// Spark's `getOffsetRangesFromResolvedOffsets`: the ranges between a batch's start and end.
/// `earliest_of_new` holds the earliest offsets of partitions that are in `until` but not in
/// `from` (newly discovered partitions start there); a new partition missing from it was deleted
/// before it could be read. Only ranges with records are returned.
pub fn batch_ranges(from: &PartitionOffsets, until: &PartitionOffsets, earliest_of_new: &PartitionOffsets) -> BatchRanges {
    let mut data_loss = Vec::new();
    let new_partitions: BTreeSet<&TopicPartition> = until.keys().filter(|tp| !from.contains_key(*tp)).collect();
    let unknown: Vec<String> =
        new_partitions.iter().filter(|tp| !earliest_of_new.contains_key(**tp)).map(|tp| tp.to_string()).collect();
    if !unknown.is_empty() {
        data_loss.push(format!("Cannot find earliest offsets of [{}]. Some data may have been missed", unknown.join(", ")));
    }
    for tp in &new_partitions {
        if let Some(o) = earliest_of_new.get(*tp).filter(|o| **o != 0) {
            data_loss.push(format!("Added partition {tp} starts from {o} instead of 0. Some data may have been missed"));
        }
    }
    let deleted: Vec<String> = from.keys().filter(|tp| !until.contains_key(*tp)).map(|tp| tp.to_string()).collect();
    if !deleted.is_empty() {
        data_loss.push(format!("[{}] are gone. Some data may have been missed.", deleted.join(", ")));
    }
    let mut ranges = Vec::new();
    for (tp, &until_offset) in until {
        let Some(&from_offset) = from.get(tp).or_else(|| earliest_of_new.get(tp)) else { continue };
        if until_offset < from_offset {
            data_loss.push(format!(
                "Partition {tp}'s offset was changed from {from_offset} to {until_offset}, some data may have been missed"
            ));
        }
        if until_offset > from_offset {
            ranges.push(OffsetRange { topic_partition: tp.clone(), from: from_offset, until: until_offset });
        }
    }
    BatchRanges { ranges, data_loss }
}

/// Spark's `KafkaOffsetRangeCalculator`: with `minPartitions` above the number of ranges, large
/// ranges are cut into pieces in proportion to their share of the batch, so that there are
/// roughly `minPartitions` tasks; small ranges stay whole.
pub fn split_ranges(ranges: Vec<OffsetRange>, min_partitions: Option<usize>) -> Vec<OffsetRange> {
    let ranges: Vec<OffsetRange> = ranges.into_iter().filter(|r| r.size() > 0).collect();
    let Some(min_partitions) = min_partitions.filter(|m| ranges.len() < *m) else { return ranges };
    let part_count = |size: i64, total: i64, min_parts: usize| -> i64 {
        ((size as f64 / total as f64 * min_parts as f64).round() as i64).max(1)
    };
    let total: i64 = ranges.iter().map(OffsetRange::size).fold(0, i64::saturating_add);
    let unsplit: BTreeSet<&TopicPartition> =
        ranges.iter().filter(|r| part_count(r.size(), total, min_partitions) == 1).map(|r| &r.topic_partition).collect();
    let unsplit_total: i64 =
        ranges.iter().filter(|r| unsplit.contains(&r.topic_partition)).map(OffsetRange::size).fold(0, i64::saturating_add);
    let split_total = total - unsplit_total;
    let split_min_partitions = min_partitions.saturating_sub(unsplit.len()).max(1);
    let mut out = Vec::new();
    for range in &ranges {
        // A range cannot yield more non-empty pieces than it has offsets (a huge
        // `minPartitions` must not make this loop run for ever).
        let parts = if unsplit.contains(&range.topic_partition) {
            1
        } else {
            part_count(range.size(), split_total, split_min_partitions).min(range.size())
        };
        let mut remaining = range.size();
        let mut start = range.from;
        for part in 0..parts {
            let this = remaining / (parts - part);
            remaining -= this;
            let end = start.saturating_add(this).min(range.until);
            out.push(OffsetRange { topic_partition: range.topic_partition.clone(), from: start, until: end });
            start = end;
        }
    }
    out.retain(|r| r.size() > 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offs(pairs: &[(&str, i32, i64)]) -> PartitionOffsets {
        pairs.iter().map(|(t, p, o)| (TopicPartition::new(*t, *p), *o)).collect()
    }

    fn range(t: &str, p: i32, from: i64, until: i64) -> OffsetRange {
        OffsetRange { topic_partition: TopicPartition::new(t, p), from, until }
    }

    #[test]
    fn offsets_round_trip_in_spark_json() {
        let o = offs(&[("t", 10, 5), ("t", 2, 7), ("a\"b", 0, -2)]);
        let json = offsets_to_json(&o);
        assert_eq!(json, r#"{"a\"b":{"0":-2},"t":{"2":7,"10":5}}"#);
        assert_eq!(offsets_from_json(&json).unwrap(), o);
        // Spark serialises through a HashMap: any key order must parse.
        assert_eq!(offsets_from_json(r#"{"t":{"10":5,"2":7},"a\"b":{"0":-2}}"#).unwrap(), o);
    }

    #[test]
    fn malformed_offset_json_names_the_expected_shape() {
        let e = offsets_from_json("{\"t\":[0]}").unwrap_err();
        assert!(e.message.starts_with("Expected e.g. {\"topicA\""), "{}", e.message);
        let e = assignment_from_json("t").unwrap_err();
        assert!(e.message.contains("got t"), "{}", e.message);
        let a = assignment_from_json(r#"{"t":[1,0]}"#).unwrap();
        assert_eq!(a.into_iter().collect::<Vec<_>>(), vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)]);
    }

    #[test]
    fn rate_limit_prorates_by_partition_size() {
        // Spark's "maxOffsetsPerTrigger" test: 3 partitions holding 100, 10 and 1 new records,
        // limit 10 → floor(10*100/111)=9, ceil(10*10/111)=1, ceil(10*1/111)=1.
        let from = offs(&[("t", 0, 0), ("t", 1, 0), ("t", 2, 0)]);
        let until = offs(&[("t", 0, 100), ("t", 1, 10), ("t", 2, 1)]);
        let end = rate_limit(10, &from, &until, &PartitionOffsets::new());
        assert_eq!(end, offs(&[("t", 0, 9), ("t", 1, 1), ("t", 2, 1)]));
    }

    #[test]
    fn rate_limit_never_passes_the_available_end_and_starts_new_partitions_at_earliest() {
        let from = offs(&[("t", 0, 5)]);
        let until = offs(&[("t", 0, 6), ("t", 1, 50)]);
        let earliest = offs(&[("t", 1, 40)]);
        // sizes 1 and 10, limit 100 → prorates 9.09 and 90.9, capped at the ends.
        assert_eq!(rate_limit(100, &from, &until, &earliest), until);
        // limit 4 → ceil(0.36)=1 and floor(3.6)=3.
        assert_eq!(rate_limit(4, &from, &until, &earliest), offs(&[("t", 0, 6), ("t", 1, 43)]));
        // Nothing new: the latest offsets as they are.
        assert_eq!(rate_limit(4, &until, &until, &earliest), until);
    }

    #[test]
    fn delay_waits_for_min_offsets_until_the_max_delay() {
        assert!(should_delay_batch(15, 10, 1_000, 5_000));
        assert!(!should_delay_batch(15, 15, 1_000, 5_000));
        assert!(!should_delay_batch(15, 10, 5_000, 5_000));
        let latest = offs(&[("t", 0, 20), ("t", 1, 5)]);
        assert_eq!(records_available(&latest, &offs(&[("t", 0, 12)])), 8 + 5);
    }

    #[test]
    fn batch_ranges_report_deleted_added_and_rewound_partitions() {
        let from = offs(&[("t", 0, 10), ("gone", 0, 3)]);
        let until = offs(&[("t", 0, 15), ("t", 1, 8), ("t", 2, 4)]);
        let earliest = offs(&[("t", 1, 0), ("t", 2, 2)]);
        let r = batch_ranges(&from, &until, &earliest);
        assert_eq!(r.ranges, vec![range("t", 0, 10, 15), range("t", 1, 0, 8), range("t", 2, 2, 4)]);
        assert_eq!(
            r.data_loss,
            vec![
                "Added partition t-2 starts from 2 instead of 0. Some data may have been missed".to_string(),
                "[gone-0] are gone. Some data may have been missed.".to_string(),
            ]
        );
        let rewound = batch_ranges(&offs(&[("t", 0, 10)]), &offs(&[("t", 0, 4)]), &PartitionOffsets::new());
        assert!(rewound.ranges.is_empty());
        assert_eq!(
            rewound.data_loss,
            vec!["Partition t-0's offset was changed from 10 to 4, some data may have been missed".to_string()]
        );
        let vanished = batch_ranges(&PartitionOffsets::new(), &offs(&[("t", 0, 4)]), &PartitionOffsets::new());
        assert!(vanished.ranges.is_empty());
        assert_eq!(vanished.data_loss.len(), 1);
    }

    #[test]
    fn offsets_at_the_ends_of_64_bits_saturate_instead_of_overflowing() {
        let from = offs(&[("t", 0, i64::MIN), ("t", 1, -5)]);
        let until = offs(&[("t", 0, i64::MAX), ("t", 1, i64::MAX)]);
        assert_eq!(records_available(&until, &from), i64::MAX);
        let limited = rate_limit(10, &from, &until, &PartitionOffsets::new());
        assert!(limited.iter().all(|(tp, o)| from[tp] <= *o && *o <= until[tp]), "{limited:?}");
        let huge = range("t", 0, i64::MIN, i64::MAX);
        assert_eq!(huge.size(), i64::MAX);
        let pieces = split_ranges(vec![huge, range("t", 1, 0, 3)], Some(500));
        assert!(pieces.len() <= 501 && pieces.iter().all(|r| r.size() > 0), "{pieces:?}");
        // More partitions asked for than a range has offsets: one piece per offset, no empty ones.
        assert_eq!(split_ranges(vec![range("t", 0, 0, 3)], Some(1 << 40)).len(), 3);
    }

    // KafkaOffsetRangeCalculatorSuite, case by case.
    #[test]
    fn split_ranges_follows_spark_range_calculator() {
        let t1 = |from, until| range("t1", 1, from, until);
        let t2 = |from, until| range("t2", 1, from, until);
        let t3 = |from, until| range("t3", 1, from, until);
        // minPartitions unset or satisfied: one task per non-empty range.
        assert_eq!(split_ranges(vec![t1(1, 2)], None), vec![t1(1, 2)]);
        assert_eq!(split_ranges(vec![t1(1, 2), t2(1, 2)], Some(1)), vec![t1(1, 2), t2(1, 2)]);
        assert_eq!(split_ranges(vec![t1(1, 1), t2(1, 2)], Some(1)), vec![t2(1, 2)]);
        // N TopicPartitions to N offset ranges.
        assert_eq!(split_ranges(vec![t1(1, 2), t2(1, 2), t3(1, 2)], Some(3)), vec![t1(1, 2), t2(1, 2), t3(1, 2)]);
        // 1 TopicPartition to N offset ranges.
        assert_eq!(split_ranges(vec![t1(1, 5)], Some(4)), vec![t1(1, 2), t1(2, 3), t1(3, 4), t1(4, 5)]);
        assert_eq!(split_ranges(vec![t1(1, 5)], Some(2)), vec![t1(1, 3), t1(3, 5)]);
        // N skewed TopicPartitions to M offset ranges.
        assert_eq!(split_ranges(vec![t1(1, 5), t2(1, 21)], Some(3)), vec![t1(1, 5), t2(1, 11), t2(11, 21)]);
        // SPARK-30656: unsplit ranges are excluded from the proportional math.
        assert_eq!(split_ranges(vec![t1(1, 5), t2(1, 301)], Some(3)), vec![t1(1, 5), t2(1, 151), t2(151, 301)]);
        // Range inexact multiple of minPartitions: the last piece takes the remainder.
        assert_eq!(split_ranges(vec![t1(1, 11)], Some(3)), vec![t1(1, 4), t1(4, 7), t1(7, 11)]);
        // Empty ranges are ignored.
        assert_eq!(split_ranges(vec![t1(1, 5), t2(1, 21), t3(1, 1)], Some(3)), vec![t1(1, 5), t2(1, 11), t2(11, 21)]);
    }
}
