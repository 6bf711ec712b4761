//! Per-source offset JSON as the driver reads it back from `offsets/N` (and hands it to the
//! source to plan a batch), and the splits it plans as executors read them: `rate` (seconds),
//! `rate-micro-batch` (`{"offset","timestamp"}`), `kafka` (`{"topic":{"0":23}}` and the range
//! math on it), `files` (`{"logOffset":N}`), `nexmark` (`{"events","baseTime"}`).
//!
//! Input: four lines — connector, options (`k=v;k=v`), start offset (`-` for none), end offset.

use sluice_common::options::Options;
use sluice_connectors::files::source::FileSourceOffset;
use sluice_connectors::kafka::offsets::{
    assignment_from_json, batch_ranges, offsets_from_json, offsets_to_json, rate_limit, records_available, split_ranges,
    PartitionOffsets,
};
use sluice_connectors::nexmark::{read_nexmark_split, NexmarkOptions, NexmarkSource, NexmarkSplit};
use sluice_connectors::rate::{read_rate_split, RateOptions, RateSource, RateSplit};
use sluice_connectors::rate_micro_batch::{
    read_rate_micro_batch_split, RateMicroBatchOptions, RateMicroBatchSource, RateMicroBatchSplit,
};
use sluice_connectors::source::{check_task_count, ReadLimit, Source};

use crate::Target;

pub const TARGET: Target = Target {
    name: "source_offsets",
    seeds,
    store_seeds: true,
    dictionary: &[
        "rate",
        "rate-micro-batch",
        "kafka",
        "files",
        "nexmark",
        "rowsPerSecond=",
        "rampUpTime=",
        "numPartitions=",
        "rowsPerBatch=",
        "startTimestamp=",
        "advanceMillisPerBatch=",
        "eventType=bid",
        "maxEventsPerTrigger=",
        "minPartitions=",
        "{\"offset\":",
        "\"timestamp\":",
        "{\"logOffset\":",
        "{\"events\":",
        "\"baseTime\":",
        "{\"t\":{\"0\":",
        "\"-1\":",
        "}}",
        "-",
    ],
    run,
};

/// Splits that generate at most this many rows are read: reading is part of what a split
/// means, but a split (or a corrupt offset) may legitimately describe billions of rows.
const MAX_ROWS_READ: i64 = 2_000;

fn run(input: &[u8]) {
    let text = super::text(input);
    let mut lines = text.split('\n');
    let connector = lines.next().unwrap_or_default().trim().to_string();
    let options = Options::from_pairs(
        lines.next().unwrap_or_default().split(';').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.trim(), v.trim())),
    );
    let start = lines.next().map(str::trim).filter(|s| *s != "-");
    let end = lines.next().unwrap_or_default().trim();
    super::block_on(async {
        match connector.as_str() {
            "rate" => {
                let Ok(opts) = RateOptions::parse(&options) else { return };
                let mut source = RateSource::new(opts);
                let _ = source.latest_offset(start, ReadLimit::Default).await;
                for split in source.plan_splits(start, end, 4).await.into_iter().flatten() {
                    if let Ok(s) = split.split.decode::<RateSplit>("rate") {
                        if s.range_end.saturating_sub(s.range_start) <= MAX_ROWS_READ {
                            let _ = read_rate_split(&s);
                        }
                    }
                }
            }
            "rate-micro-batch" => {
                let Ok(opts) = RateMicroBatchOptions::parse(&options) else { return };
                let mut source = RateMicroBatchSource::new(opts);
                let _ = source.latest_offset(start, ReadLimit::Default).await;
                for split in source.plan_splits(start, end, 4).await.into_iter().flatten() {
                    if let Ok(s) = split.split.decode::<RateMicroBatchSplit>("rate-micro-batch") {
                        if s.end_offset.saturating_sub(s.start_offset) <= MAX_ROWS_READ {
                            let _ = read_rate_micro_batch_split(&s);
                        }
                    }
                }
            }
            "nexmark" => {
                let Ok(opts) = NexmarkOptions::parse(&options) else { return };
                let mut source = NexmarkSource::new(opts);
                let _ = source.latest_offset(start, ReadLimit::Default).await;
                let _ = source.latest_offset(start, ReadLimit::AllAvailable).await;
                for split in source.plan_splits(start, end, 4).await.into_iter().flatten() {
                    if let Ok(s) = split.split.decode::<NexmarkSplit>("nexmark") {
                        if s.end_event.saturating_sub(s.start_event) <= MAX_ROWS_READ as u64 {
                            let _ = read_nexmark_split(&s);
                        }
                    }
                }
            }
            "files" => {
                for o in start.into_iter().chain(std::iter::once(end)) {
                    let _ = FileSourceOffset::parse(o);
                }
            }
            _ => kafka(&options, start, end),
        }
    });
}

/// The Kafka source's decisions on offsets read back from the checkpoint and from brokers.
fn kafka(options: &Options, start: Option<&str>, end: &str) {
    let _ = assignment_from_json(end);
    let Ok(until) = offsets_from_json(end) else { return };
    let from = start.and_then(|s| offsets_from_json(s).ok()).unwrap_or_default();
    let _ = offsets_to_json(&until);
    let earliest: PartitionOffsets = from.iter().map(|(tp, o)| (tp.clone(), o.saturating_sub(7))).collect();
    let limit = options.get("maxOffsetsPerTrigger").and_then(|v| v.parse::<i64>().ok()).unwrap_or(1_000);
    let capped = rate_limit(limit, &from, &until, &earliest);
    let _ = records_available(&until, &from);
    let ranges = batch_ranges(&from, &capped, &earliest);
    // `minPartitions` as the option parser lets it through (at most `MAX_TASKS_PER_BATCH`).
    let min_partitions = options
        .get("minPartitions")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|m| check_task_count(Some(*m), "minPartitions").is_ok())
        .map(|m| m as usize);
    let _ = split_ranges(ranges.ranges, min_partitions);
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    // Each source's own offsets, as its `latest_offset` writes them into `offsets/N`.
    super::block_on(async {
        let mut out = Vec::new();
        // The rate source's offset is whole seconds since the query started.
        out.push(("rate.txt".to_string(), b"rate\nrowsPerSecond=10;rampUpTime=5s;numPartitions=3\n3\n12\n".to_vec()));
        let opts = [("rowsPerBatch", "7"), ("startTimestamp", "1000"), ("advanceMillisPerBatch", "250")];
        let mut rmb = RateMicroBatchSource::new(RateMicroBatchOptions::parse(&Options::from_pairs(opts)).expect("options"));
        let first = rmb.latest_offset(None, ReadLimit::Default).await.expect("an offset").unwrap_or_default();
        let second = rmb.latest_offset(Some(&first), ReadLimit::Default).await.expect("an offset").unwrap_or_default();
        out.push((
            "rate-micro-batch.txt".into(),
            format!("rate-micro-batch\nrowsPerBatch=7;startTimestamp=1000;advanceMillisPerBatch=250\n{first}\n{second}\n")
                .into_bytes(),
        ));
        let nx_opts = [("eventType", "bid"), ("maxEventsPerTrigger", "50"), ("baseTime", "1706695200000")];
        let mut nexmark = NexmarkSource::new(NexmarkOptions::parse(&Options::from_pairs(nx_opts)).expect("options"));
        let first = nexmark.latest_offset(None, ReadLimit::Default).await.expect("an offset").unwrap_or_default();
        let second = nexmark.latest_offset(Some(&first), ReadLimit::Default).await.expect("an offset").unwrap_or_default();
        out.push((
            "nexmark.txt".into(),
            format!("nexmark\neventType=bid;maxEventsPerTrigger=50;baseTime=1706695200000;numPartitions=2\n{first}\n{second}\n")
                .into_bytes(),
        ));
        let from = offsets_from_json("{\"events\":{\"0\":23,\"1\":45},\"clicks\":{\"0\":0}}").expect("offsets");
        let until = offsets_from_json("{\"events\":{\"0\":123,\"1\":45,\"2\":9},\"clicks\":{\"0\":7}}").expect("offsets");
        out.push((
            "kafka.txt".into(),
            format!("kafka\nmaxOffsetsPerTrigger=50;minPartitions=6\n{}\n{}\n", offsets_to_json(&from), offsets_to_json(&until))
                .into_bytes(),
        ));
        let file_offset = serde_json::to_string(&FileSourceOffset { log_offset: 4 }).expect("an offset");
        out.push(("files.txt".into(), format!("files\n\n3\n{file_offset}\n").into_bytes()));
        out
    })
}
