//! `nexmark`: the Nexmark benchmark's auction events, generated in-process.
//!
//! Nexmark (the standard streaming benchmark used by Flink, RisingWave and Arroyo) models an
//! online auction: of every 50 events, 1 is a new person, 3 are new auctions and 46 are bids, the
//! type decided by `event number % 50`. Events come from the `nexmark` crate's generator, so a
//! sluice run sees the same events as other systems driven by it. A stream reads one event type
//! (`eventType` = `person`, `auction` or `bid`), so several streams over the same generator see
//! one consistent auction world.
//!
//! Offsets count *all* events (`{"events":n,"baseTime":ms}`), whatever the stream's type, so
//! "events per second" means what it means in Nexmark reports. Event times are synthetic
//! (`baseTime` + event number / `eventRate`), which makes every batch replayable: the base time
//! is fixed in the first offset and travels in every split.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};
use nexmark::EventGenerator;

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::time::now_ms;
use sluice_common::types::{timestamp_type, UTC};
use sluice_common::QueryConf;

use crate::access::Access;
use crate::source::{
    check_source_options, AvailableNowSupport, GeneratedSplitReader, PlannedSplit, ReadLimit, Source, SourceCheckpoint,
    SourceConnector, SourceSchema, SourceSpec, SplitReader,
};

/// The `nexmark` source connector.
#[derive(Debug, Default)]
pub struct NexmarkConnector;

impl SourceConnector for NexmarkConnector {
    fn name(&self) -> &'static str {
        "nexmark"
    }

    fn resolve(&self, options: &mut Options, _declared: &Schema) -> Result<SourceSchema> {
        Ok(SourceSchema::Fixed(NexmarkOptions::parse(options)?.table.schema()))
    }

    fn access(&self, _options: &Options) -> Result<Vec<Access>> {
        Ok(Vec::new()) // generated events: nothing outside the engine
    }

    fn create_source(&self, spec: &SourceSpec, _conf: &QueryConf) -> Result<Box<dyn Source>> {
        Ok(Box::new(NexmarkSource::new(NexmarkOptions::parse(&spec.options)?)))
    }

    fn split_reader(&self, _spec: &SourceSpec) -> Result<Box<dyn SplitReader>> {
        Ok(Box::new(GeneratedSplitReader::new("nexmark", read_nexmark_split)))
    }
}

const VALID: &[&str] = &["eventType", "maxEvents", "maxEventsPerTrigger", "numPartitions", "baseTime", "eventRate"];
const OWNER: &str = "connector 'nexmark'";

/// Events per batch when `maxEventsPerTrigger` is not set.
const DEFAULT_EVENTS_PER_TRIGGER: u64 = 100_000;

/// Nexmark's three event types; a stream reads one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NexmarkTable {
    /// `eventType=person`: new users, 1 event in 50.
    Person,
    /// `eventType=auction`: new auctions, 3 events in 50.
    Auction,
    /// `eventType=bid`: bids on open auctions, 46 events in 50.
    Bid,
}

impl NexmarkTable {
    fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "person" => Ok(Self::Person),
            "auction" => Ok(Self::Auction),
            "bid" => Ok(Self::Bid),
            other => Err(SluiceError::user(format!("{OWNER}: option 'eventType' must be person, auction or bid, got '{other}'"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Auction => "auction",
            Self::Bid => "bid",
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Self::Person => EventType::Person,
            Self::Auction => EventType::Auction,
            Self::Bid => EventType::Bid,
        }
    }

    /// Where this type sits in each group of `denominator` events: (first slot, slots).
    fn slots(self, cfg: &NexmarkConfig) -> (u64, u64) {
        match self {
            Self::Person => (0, cfg.person_proportion as u64),
            Self::Auction => (cfg.person_proportion as u64, cfg.auction_proportion as u64),
            Self::Bid => ((cfg.person_proportion + cfg.auction_proportion) as u64, cfg.bid_proportion as u64),
        }
    }

    /// Events of this type among the first `events` events of the generator: the generator's
    /// per-type offset that corresponds to global event `events`.
    pub fn count_before(self, events: u64, cfg: &NexmarkConfig) -> u64 {
        let denominator = (cfg.person_proportion + cfg.auction_proportion + cfg.bid_proportion) as u64;
        let (first, slots) = self.slots(cfg);
        let in_last_group = (events % denominator).saturating_sub(first).min(slots);
        events / denominator * slots + in_last_group
    }

    /// The columns of this type, named as in the Nexmark queries.
    pub fn schema(self) -> SchemaRef {
        let long = |n: &str| Field::new(n, DataType::Int64, false);
        let text = |n: &str| Field::new(n, DataType::Utf8, false);
        let time = |n: &str| Field::new(n, timestamp_type(), false);
        let fields = match self {
            Self::Person => vec![
                long("id"),
                text("name"),
                text("email_address"),
                text("credit_card"),
                text("city"),
                text("state"),
                time("date_time"),
                text("extra"),
            ],
            Self::Auction => vec![
                long("id"),
                text("item_name"),
                text("description"),
                long("initial_bid"),
                long("reserve"),
                time("date_time"),
                time("expires"),
                long("seller"),
                long("category"),
                text("extra"),
            ],
            Self::Bid => vec![
                long("auction"),
                long("bidder"),
                long("price"),
                text("channel"),
                text("url"),
                time("date_time"),
                text("extra"),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

/// Options of the `nexmark` connector.
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkOptions {
    /// `eventType` (required): which event type the stream reads.
    pub table: NexmarkTable,
    /// Total events (all types) the stream produces; unbounded when unset.
    pub max_events: Option<u64>,
    /// Events (all types) per micro-batch.
    pub max_events_per_trigger: u64,
    /// `numPartitions`: tasks per batch; the cluster's default parallelism when unset.
    pub num_partitions: Option<u32>,
    /// Event time of event 0 in epoch milliseconds; the query's first start when unset.
    pub base_time_ms: Option<u64>,
    /// Events per second of event time (Nexmark's `firstEventRate`).
    pub event_rate: u64,
}

impl NexmarkOptions {
    /// Parses and validates the options.
    pub fn parse(options: &Options) -> Result<Self> {
        check_source_options(options, VALID, OWNER)?;
        let table = NexmarkTable::parse(options.required("eventType", OWNER)?)?;
        let max_events = options.parse_opt::<u64>("maxEvents", OWNER)?;
        let max_events_per_trigger = options.parse_or::<u64>("maxEventsPerTrigger", DEFAULT_EVENTS_PER_TRIGGER, OWNER)?;
        let num_partitions = options.parse_opt::<u32>("numPartitions", OWNER)?;
        let base_time_ms = options.parse_opt::<u64>("baseTime", OWNER)?;
        let event_rate = options.parse_or::<u64>("eventRate", 10_000, OWNER)?;
        for (name, value) in [
            ("maxEventsPerTrigger", Some(max_events_per_trigger)),
            ("numPartitions", num_partitions.map(u64::from)),
            ("eventRate", Some(event_rate)),
        ] {
            if value == Some(0) {
                return Err(SluiceError::user(format!("Invalid value '0'. The option '{name}' must be positive")));
            }
        }
        crate::source::check_task_count(num_partitions.map(u64::from), "numPartitions")?;
        Ok(Self { table, max_events, max_events_per_trigger, num_partitions, base_time_ms, event_rate })
    }
}

/// `{"events":n,"baseTime":ms}`: events (all types) generated so far and the event time of
/// event 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NexmarkOffset {
    /// Events (all types) generated so far: the exclusive end of the batch's global event numbers.
    pub events: u64,
    #[serde(rename = "baseTime")]
    /// Event time of event 0 in epoch ms, fixed by the first offset so replays regenerate the same events.
    pub base_time_ms: u64,
}

impl NexmarkOffset {
    fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| SluiceError::user(format!("nexmark: offset '{text}' in the checkpoint is not a nexmark offset ({e})")))
    }
}

/// One task's share of a batch: every `num_partitions`-th event of the stream's type among
/// global events `[start_event, end_event)`, starting at the `partition`-th.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NexmarkSplit {
    /// The event type to generate.
    pub table: NexmarkTable,
    /// Event time of event 0 in epoch ms, from the batch's end offset.
    pub base_time_ms: u64,
    /// Events per second of event time (`eventRate`).
    pub event_rate: u64,
    /// First global event number of the batch (inclusive, counting all types).
    pub start_event: u64,
    /// Global event number the batch ends before (exclusive).
    pub end_event: u64,
    /// This task's index in `0..num_partitions`.
    pub partition: u32,
    /// Number of tasks the batch's events are dealt across.
    pub num_partitions: u32,
}

impl NexmarkSplit {
    fn config(&self) -> NexmarkConfig {
        NexmarkConfig {
            base_time: self.base_time_ms,
            first_rate: self.event_rate as usize,
            next_rate: self.event_rate as usize,
            ..NexmarkConfig::default()
        }
    }
}

/// The last millisecond of year 9999: Spark's timestamps end there, and the generator's `u64`
/// arithmetic on event times overflows not far beyond.
const MAX_EVENT_TIME_MS: u128 = 253_402_300_799_999;

/// Refuses a batch whose events would be stamped past [`MAX_EVENT_TIME_MS`]: only a corrupt
/// offset (a `baseTime` or event count no run produces) gets there, and the generator would
/// overflow on it.
fn check_event_times(base_time_ms: u64, end_event: u64, event_rate: u64) -> Result<()> {
    let last_ms = u128::from(base_time_ms) + u128::from(end_event) * 1000 / u128::from(event_rate.max(1));
    if last_ms > MAX_EVENT_TIME_MS {
        return Err(SluiceError::user(format!(
            "nexmark: events up to {end_event} from baseTime {base_time_ms} at {event_rate} events/s would be stamped after \
             year 9999; the offset in the checkpoint is corrupt"
        )));
    }
    Ok(())
}

/// Rows a split's builders reserve room for up front.
const MAX_PREALLOCATED_ROWS: usize = 1 << 20;

/// Generates the rows of a split (executor side).
pub fn read_nexmark_split(split: &NexmarkSplit) -> Result<RecordBatch> {
    check_event_times(split.base_time_ms, split.end_event, split.event_rate)?;
    let cfg = split.config();
    let first = split.table.count_before(split.start_event, &cfg);
    let end = split.table.count_before(split.end_event, &cfg);
    let step = u64::from(split.num_partitions.max(1));
    let mut generator = EventGenerator::new(cfg)
        .with_type_filter(split.table.event_type())
        .with_offset(first.saturating_add(u64::from(split.partition)))
        .with_step(step);
    // The split comes over the network: preallocate for what a batch plausibly holds, not for
    // whatever range a damaged split claims (the builders grow past this when they must).
    let capacity = usize::try_from(end.saturating_sub(first) / step + 1).unwrap_or(usize::MAX).min(MAX_PREALLOCATED_ROWS);
    let mut rows = RowBuilder::new(split.table, capacity);
    while generator.offset() < end {
        match generator.next() {
            Some(event) => rows.push(event)?,
            None => break,
        }
    }
    rows.finish()
}

/// Column builders for one event type.
// One builder per split, so the size of the largest variant costs nothing worth boxing.
#[allow(clippy::large_enum_variant)]
enum RowBuilder {
    Person {
        id: Int64Builder,
        name: StringBuilder,
        email: StringBuilder,
        card: StringBuilder,
        city: StringBuilder,
        state: StringBuilder,
        time: TimestampMicrosecondBuilder,
        extra: StringBuilder,
    },
    Auction {
        id: Int64Builder,
        item: StringBuilder,
        description: StringBuilder,
        initial_bid: Int64Builder,
        reserve: Int64Builder,
        time: TimestampMicrosecondBuilder,
        expires: TimestampMicrosecondBuilder,
        seller: Int64Builder,
        category: Int64Builder,
        extra: StringBuilder,
    },
    Bid {
        auction: Int64Builder,
        bidder: Int64Builder,
        price: Int64Builder,
        channel: StringBuilder,
        url: StringBuilder,
        time: TimestampMicrosecondBuilder,
        extra: StringBuilder,
    },
}

fn as_long(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn as_micros(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX / 1000).saturating_mul(1000)
}

impl RowBuilder {
    fn new(table: NexmarkTable, n: usize) -> Self {
        let long = || Int64Builder::with_capacity(n);
        let text = |avg: usize| StringBuilder::with_capacity(n, n * avg);
        let time = || TimestampMicrosecondBuilder::with_capacity(n);
        match table {
            NexmarkTable::Person => Self::Person {
                id: long(),
                name: text(12),
                email: text(14),
                card: text(19),
                city: text(8),
                state: text(2),
                time: time(),
                extra: text(140),
            },
            NexmarkTable::Auction => Self::Auction {
                id: long(),
                item: text(20),
                description: text(100),
                initial_bid: long(),
                reserve: long(),
                time: time(),
                expires: time(),
                seller: long(),
                category: long(),
                extra: text(360),
            },
            NexmarkTable::Bid => Self::Bid {
                auction: long(),
                bidder: long(),
                price: long(),
                channel: text(8),
                url: text(60),
                time: time(),
                extra: text(40),
            },
        }
    }

    fn push(&mut self, event: Event) -> Result<()> {
        match (self, event) {
            (Self::Person { id, name, email, card, city, state, time, extra }, Event::Person(p)) => {
                id.append_value(as_long(p.id));
                name.append_value(&p.name);
                email.append_value(&p.email_address);
                card.append_value(&p.credit_card);
                city.append_value(&p.city);
                state.append_value(&p.state);
                time.append_value(as_micros(p.date_time));
                extra.append_value(&p.extra);
            }
            (
                Self::Auction { id, item, description, initial_bid, reserve, time, expires, seller, category, extra },
                Event::Auction(a),
            ) => {
                id.append_value(as_long(a.id));
                item.append_value(&a.item_name);
                description.append_value(&a.description);
                initial_bid.append_value(as_long(a.initial_bid));
                reserve.append_value(as_long(a.reserve));
                time.append_value(as_micros(a.date_time));
                expires.append_value(as_micros(a.expires));
                seller.append_value(as_long(a.seller));
                category.append_value(as_long(a.category));
                extra.append_value(&a.extra);
            }
            (Self::Bid { auction, bidder, price, channel, url, time, extra }, Event::Bid(b)) => {
                auction.append_value(as_long(b.auction));
                bidder.append_value(as_long(b.bidder));
                price.append_value(as_long(b.price));
                channel.append_value(&b.channel);
                url.append_value(&b.url);
                time.append_value(as_micros(b.date_time));
                extra.append_value(&b.extra);
            }
            (_, other) => {
                return Err(SluiceError::internal(format!(
                    "nexmark generator produced a {:?} event for another type's stream",
                    other.event_type()
                )));
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<RecordBatch> {
        let ts = |mut b: TimestampMicrosecondBuilder| -> ArrayRef { Arc::new(b.finish().with_timezone(UTC)) };
        let (table, columns): (NexmarkTable, Vec<ArrayRef>) = match self {
            Self::Person { mut id, mut name, mut email, mut card, mut city, mut state, time, mut extra } => (
                NexmarkTable::Person,
                vec![
                    Arc::new(id.finish()),
                    Arc::new(name.finish()),
                    Arc::new(email.finish()),
                    Arc::new(card.finish()),
                    Arc::new(city.finish()),
                    Arc::new(state.finish()),
                    ts(time),
                    Arc::new(extra.finish()),
                ],
            ),
            Self::Auction {
                mut id,
                mut item,
                mut description,
                mut initial_bid,
                mut reserve,
                time,
                expires,
                mut seller,
                mut category,
                mut extra,
            } => (
                NexmarkTable::Auction,
                vec![
                    Arc::new(id.finish()),
                    Arc::new(item.finish()),
                    Arc::new(description.finish()),
                    Arc::new(initial_bid.finish()),
                    Arc::new(reserve.finish()),
                    ts(time),
                    ts(expires),
                    Arc::new(seller.finish()),
                    Arc::new(category.finish()),
                    Arc::new(extra.finish()),
                ],
            ),
            Self::Bid { mut auction, mut bidder, mut price, mut channel, mut url, time, mut extra } => (
                NexmarkTable::Bid,
                vec![
                    Arc::new(auction.finish()),
                    Arc::new(bidder.finish()),
                    Arc::new(price.finish()),
                    Arc::new(channel.finish()),
                    Arc::new(url.finish()),
                    ts(time),
                    Arc::new(extra.finish()),
                ],
            ),
        };
        Ok(RecordBatch::try_new(table.schema(), columns)?)
    }
}

/// Driver side.
pub struct NexmarkSource {
    options: NexmarkOptions,
    /// Under AvailableNow: the end fixed when the query started.
    available_now_end: Option<u64>,
}

impl NexmarkSource {
    /// A source with validated options.
    pub fn new(options: NexmarkOptions) -> Self {
        Self { options, available_now_end: None }
    }

    fn start(&self, start: Option<&str>) -> Result<NexmarkOffset> {
        match start {
            Some(s) => NexmarkOffset::parse(s),
            None => Ok(NexmarkOffset {
                events: 0,
                base_time_ms: self.options.base_time_ms.unwrap_or_else(|| u64::try_from(now_ms()).unwrap_or(0)),
            }),
        }
    }
}

#[async_trait]
impl Source for NexmarkSource {
    fn description(&self) -> String {
        format!(
            "NexmarkSource[eventType={}, maxEvents={}, maxEventsPerTrigger={}]",
            self.options.table.name(),
            self.options.max_events.map(|n| n.to_string()).unwrap_or_else(|| "unbounded".into()),
            self.options.max_events_per_trigger
        )
    }

    fn identity(&self) -> String {
        format!("nexmark:{}", self.options.table.name())
    }

    /// Offsets and splits are arithmetic on their arguments.
    fn plans_ahead(&self) -> bool {
        true
    }

    async fn open(&mut self, _checkpoint: &SourceCheckpoint, _committed: Option<&str>) -> Result<()> {
        Ok(())
    }

    async fn latest_offset(&mut self, start: Option<&str>, limit: ReadLimit) -> Result<Option<String>> {
        let start = self.start(start)?;
        let per_trigger = self.options.max_events_per_trigger;
        let bound = self.available_now_end.or(self.options.max_events).unwrap_or(u64::MAX);
        let end = match (limit, self.options.max_events) {
            (ReadLimit::AllAvailable, Some(max)) => max,
            _ => start.events.saturating_add(per_trigger).min(bound),
        };
        Ok(Some(serde_json::to_string(&NexmarkOffset { events: end.max(start.events), ..start })?))
    }

    async fn plan_splits(&mut self, start: Option<&str>, end: &str, parallelism: usize) -> Result<Vec<PlannedSplit>> {
        let start = self.start(start)?;
        let end = NexmarkOffset::parse(end)?;
        if end.events <= start.events {
            return Ok(Vec::new());
        }
        check_event_times(end.base_time_ms, end.events, self.options.event_rate)?;
        let n = self.options.num_partitions.unwrap_or(u32::try_from(parallelism.max(1)).unwrap_or(u32::MAX));
        (0..n)
            .map(|partition| {
                PlannedSplit::read(&NexmarkSplit {
                    table: self.options.table,
                    base_time_ms: end.base_time_ms,
                    event_rate: self.options.event_rate,
                    start_event: start.events,
                    end_event: end.events,
                    partition,
                    num_partitions: n,
                })
            })
            .collect()
    }

    async fn commit(&mut self, _end: &str) -> Result<()> {
        Ok(())
    }

    async fn prepare_for_available_now(&mut self) -> Result<AvailableNowSupport> {
        let Some(max) = self.options.max_events else {
            return Err(SluiceError::user(
                "nexmark: Trigger.AvailableNow needs option 'maxEvents': the generator has no end of its own",
            ));
        };
        self.available_now_end = Some(max);
        Ok(AvailableNowSupport::Supported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, TimestampMicrosecondArray};

    fn opts(pairs: &[(&str, &str)]) -> Result<NexmarkOptions> {
        NexmarkOptions::parse(&Options::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn per_type_counts_follow_the_1_3_46_split() {
        let cfg = NexmarkConfig::default();
        // Event 0 is a person, 1..=3 auctions, 4..=49 bids (id % 50).
        for events in [0u64, 1, 3, 4, 5, 49, 50, 51, 54, 99, 100, 12_345] {
            let by_scan = |t: NexmarkTable| {
                (0..events)
                    .filter(|e| {
                        let r = e % 50;
                        match t {
                            NexmarkTable::Person => r == 0,
                            NexmarkTable::Auction => (1..4).contains(&r),
                            NexmarkTable::Bid => r >= 4,
                        }
                    })
                    .count() as u64
            };
            for t in [NexmarkTable::Person, NexmarkTable::Auction, NexmarkTable::Bid] {
                assert_eq!(t.count_before(events, &cfg), by_scan(t), "{t:?} before {events}");
            }
        }
    }

    /// The splits of a batch, put together, are exactly the crate's own sequential stream of
    /// that type over the same events.
    #[test]
    fn splits_partition_the_sequential_stream() {
        let base = 1_700_000_000_000;
        let (start, end) = (37u64, 1_237u64);
        let cfg = NexmarkConfig { base_time: base, ..NexmarkConfig::default() };
        let expected: Vec<(i64, i64, i64)> = EventGenerator::new(cfg)
            .take(end as usize)
            .skip(start as usize)
            .filter_map(|e| match e {
                Event::Bid(b) => Some((b.auction as i64, b.price as i64, b.date_time as i64 * 1000)),
                _ => None,
            })
            .collect();
        let mut got = Vec::new();
        for partition in 0..3 {
            let split = NexmarkSplit {
                table: NexmarkTable::Bid,
                base_time_ms: base,
                event_rate: 10_000,
                start_event: start,
                end_event: end,
                partition,
                num_partitions: 3,
            };
            let batch = read_nexmark_split(&split).unwrap();
            let col = |i: usize| batch.column(i).as_any().downcast_ref::<Int64Array>().unwrap().clone();
            let (auction, price) = (col(0), col(2));
            let time = batch.column(5).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
            for r in 0..batch.num_rows() {
                got.push((auction.value(r), price.value(r), time.value(r)));
            }
        }
        got.sort_unstable();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort_unstable();
        assert_eq!(got, expected_sorted);
        assert_eq!(
            expected.len() as u64,
            NexmarkTable::Bid.count_before(end, &NexmarkConfig::default())
                - NexmarkTable::Bid.count_before(start, &NexmarkConfig::default())
        );
    }

    #[test]
    fn persons_and_auctions_have_their_columns() {
        for table in [NexmarkTable::Person, NexmarkTable::Auction] {
            let split = NexmarkSplit {
                table,
                base_time_ms: 0,
                event_rate: 10_000,
                start_event: 0,
                end_event: 500,
                partition: 0,
                num_partitions: 1,
            };
            let batch = read_nexmark_split(&split).unwrap();
            let expected = if table == NexmarkTable::Person { 10 } else { 30 };
            assert_eq!(batch.num_rows(), expected);
            assert_eq!(batch.schema(), table.schema());
            assert_eq!(batch.column(0).null_count(), 0);
        }
    }

    #[tokio::test]
    async fn batches_advance_by_max_events_per_trigger_up_to_max_events() {
        let o = opts(&[("eventType", "bid"), ("maxEvents", "250"), ("maxEventsPerTrigger", "100"), ("baseTime", "5")]).unwrap();
        let mut s = NexmarkSource::new(o);
        s.prepare_for_available_now().await.unwrap();
        let mut start: Option<String> = None;
        let mut ends = Vec::new();
        loop {
            let end = s.latest_offset(start.as_deref(), ReadLimit::Default).await.unwrap().unwrap();
            if Some(&end) == start.as_ref() {
                break;
            }
            ends.push(end.clone());
            start = Some(end);
        }
        assert_eq!(
            ends,
            ["{\"events\":100,\"baseTime\":5}", "{\"events\":200,\"baseTime\":5}", "{\"events\":250,\"baseTime\":5}"]
        );
    }

    #[tokio::test]
    async fn available_now_needs_an_end() {
        let mut s = NexmarkSource::new(opts(&[("eventType", "bid")]).unwrap());
        let err = s.prepare_for_available_now().await.unwrap_err().to_string();
        assert!(err.contains("maxEvents"), "{err}");
    }

    #[test]
    fn bad_options_are_refused_by_name() {
        assert!(opts(&[]).unwrap_err().to_string().contains("eventType"));
        assert!(opts(&[("eventType", "bids")]).unwrap_err().to_string().contains("person, auction or bid"));
        assert!(opts(&[("eventType", "bid"), ("maxEventsPerTrigger", "0")])
            .unwrap_err()
            .to_string()
            .contains("must be positive"));
        assert!(opts(&[("eventType", "bid"), ("rowsPerSecond", "1")])
            .unwrap_err()
            .to_string()
            .contains("unknown option 'rowsPerSecond'"));
    }

    #[tokio::test]
    async fn offsets_stamped_past_year_9999_are_errors_not_panics() {
        let mut s = NexmarkSource::new(opts(&[("eventType", "bid"), ("baseTime", "0")]).unwrap());
        let start = "{\"events\":50,\"baseTime\":0}";
        let end = format!("{{\"events\":100,\"baseTime\":{}}}", u64::MAX);
        assert!(s.plan_splits(Some(start), &end, 1).await.unwrap_err().message.contains("year 9999"));
        let split = NexmarkSplit {
            table: NexmarkTable::Auction,
            base_time_ms: 1_706_695_200_000,
            event_rate: 1,
            start_event: 0,
            end_event: u64::MAX,
            partition: 0,
            num_partitions: 1,
        };
        assert!(read_nexmark_split(&split).is_err());
    }
}
