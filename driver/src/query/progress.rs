//! Building one batch's `StreamingQueryProgress` from what the batch did (Spark's
//! `ProgressReporter.finishTrigger`), and the phase timer behind `durationMs`.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::progress::{offset_value, SinkProgress, SourceProgress, StateOperatorProgress, StreamingQueryProgress};
use sluice_common::time::format_iso_millis;
use sluice_common::BatchId;
use sluice_plan::EventTimeStats;

/// Accumulates `durationMs` phases of one trigger.
#[derive(Debug)]
pub struct PhaseTimer {
    /// Wall-clock epoch ms when the trigger began: progress `timestamp`, and a new batch's `batchTimestampMs`.
    pub trigger_start_ms: i64,
    started: Instant,
    phases: BTreeMap<String, u64>,
}

impl PhaseTimer {
    /// Starts timing a trigger now.
    pub fn start() -> Self {
        Self { trigger_start_ms: sluice_common::time::now_ms(), started: Instant::now(), phases: BTreeMap::new() }
    }

    /// Adds the time since `since` to `phase`.
    pub fn record(&mut self, phase: &str, since: Instant) {
        *self.phases.entry(phase.to_string()).or_default() += since.elapsed().as_millis() as u64;
    }

    /// Milliseconds since the trigger started.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Sets a phase to a measured value (e.g. `recovery`).
    pub fn set(&mut self, phase: &str, ms: u64) {
        self.phases.insert(phase.to_string(), ms);
    }

    /// All phases plus `triggerExecution`.
    pub fn finish(mut self) -> (BTreeMap<String, u64>, u64) {
        let total = self.elapsed_ms();
        self.phases.insert("triggerExecution".into(), total);
        (self.phases, total)
    }
}

/// Per-source facts of one batch.
#[derive(Debug, Clone)]
pub struct SourceBatchFacts {
    /// The source's `description()`, copied to progress `sources[].description`.
    pub description: String,
    /// Offset JSON the batch starts after (the previous batch's end); `None` before the source's first data.
    pub start: Option<String>,
    /// Offset JSON the batch reads up to, as recorded in `offsets/N`; `None` while the source has no data.
    pub end: Option<String>,
    /// What `latestOffset` answered at planning; equals `end` for a batch recovered from `offsets/N`.
    pub latest: Option<String>,
    /// Rows the source's tasks produced this batch (`numInputRows`).
    pub input_rows: u64,
    /// Input records that failed to parse; reported as the `numMalformedRecords` metric when > 0.
    pub malformed_rows: u64,
    /// Source-specific metrics (Kafka's offsets behind latest, lost offsets).
    pub metrics: BTreeMap<String, String>,
}

/// Everything a progress report is made of.
#[derive(Debug, Clone)]
pub struct BatchFacts {
    /// Persistent query id (progress `id`).
    pub id: uuid::Uuid,
    /// This run's id (progress `runId`).
    pub run_id: uuid::Uuid,
    /// The `queryName` setting, if any (progress `name`).
    pub name: Option<String>,
    /// The batch being reported (progress `batchId`).
    pub batch_id: BatchId,
    /// Wall-clock epoch ms when this trigger started; becomes progress `timestamp`.
    pub trigger_start_ms: i64,
    /// Start of the previous executed trigger, for `inputRowsPerSecond`.
    pub previous_trigger_start_ms: Option<i64>,
    /// Phase times in ms under Spark's phase names, `triggerExecution` included (progress `durationMs`).
    pub durations: BTreeMap<String, u64>,
    /// Whole-trigger time in ms: `batchDuration`, and the `processedRowsPerSecond` denominator.
    pub trigger_ms: u64,
    /// Per-source facts, in source-index order.
    pub sources: Vec<SourceBatchFacts>,
    /// Watermark the batch ran with, when the query has a watermark.
    pub batch_watermark_ms: Option<i64>,
    /// Stats of the first watermark node that saw rows.
    pub event_time: Option<EventTimeStats>,
    /// Stateful operators' metrics, already summed over partitions, topmost operator first.
    pub state_operators: Vec<StateOperatorProgress>,
    /// The sink's `description()` (progress `sink.description`).
    pub sink_description: String,
    /// Rows the sink committed for the batch (progress `sink.numOutputRows`).
    pub sink_rows: u64,
}

/// Spark's rate rule: rows over seconds; non-finite results are omitted from the JSON.
fn rate(rows: u64, ms: f64) -> f64 {
    rows as f64 / (ms / 1000.0)
}

/// Builds the progress report.
pub fn build_progress(f: &BatchFacts) -> StreamingQueryProgress {
    let input_interval_ms = f.previous_trigger_start_ms.map(|p| (f.trigger_start_ms - p) as f64).unwrap_or(0.0);
    let processing_ms = (f.trigger_ms.max(1)) as f64;
    let num_input_rows: u64 = f.sources.iter().map(|s| s.input_rows).sum();
    let sources = f
        .sources
        .iter()
        .map(|s| {
            let mut metrics = s.metrics.clone();
            if s.malformed_rows > 0 {
                metrics.insert("numMalformedRecords".to_string(), s.malformed_rows.to_string());
            }
            SourceProgress {
                description: s.description.clone(),
                start_offset: offset_value(s.start.as_deref()),
                end_offset: offset_value(s.end.as_deref()),
                latest_offset: offset_value(s.latest.as_deref()),
                num_input_rows: s.input_rows,
                input_rows_per_second: rate(s.input_rows, input_interval_ms),
                processed_rows_per_second: rate(s.input_rows, processing_ms),
                metrics,
            }
        })
        .collect();
    let mut event_time = BTreeMap::new();
    if let Some(wm) = f.batch_watermark_ms {
        event_time.insert("watermark".to_string(), format_iso_millis(wm));
        if let Some(s) = f.event_time {
            event_time.insert("avg".to_string(), format_iso_millis(s.avg_ms as i64));
            event_time.insert("max".to_string(), format_iso_millis(s.max_ms));
            event_time.insert("min".to_string(), format_iso_millis(s.min_ms));
        }
    }
    StreamingQueryProgress {
        id: f.id,
        run_id: f.run_id,
        name: f.name.clone(),
        timestamp: format_iso_millis(f.trigger_start_ms),
        batch_id: f.batch_id.0,
        batch_duration: f.trigger_ms,
        num_input_rows,
        input_rows_per_second: rate(num_input_rows, input_interval_ms),
        processed_rows_per_second: rate(num_input_rows, processing_ms),
        duration_ms: f.durations.clone(),
        event_time,
        state_operators: f.state_operators.clone(),
        sources,
        sink: SinkProgress {
            description: f.sink_description.clone(),
            num_output_rows: f.sink_rows as i64,
            metrics: BTreeMap::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> BatchFacts {
        BatchFacts {
            id: uuid::Uuid::nil(),
            run_id: uuid::Uuid::nil(),
            name: Some("q".into()),
            batch_id: BatchId(1),
            trigger_start_ms: 10_000,
            previous_trigger_start_ms: Some(8_000),
            durations: BTreeMap::new(),
            trigger_ms: 500,
            sources: vec![SourceBatchFacts {
                description: "s".into(),
                start: Some("0".into()),
                end: Some("1".into()),
                latest: Some("1".into()),
                input_rows: 100,
                malformed_rows: 2,
                metrics: BTreeMap::new(),
            }],
            batch_watermark_ms: Some(5_000),
            event_time: Some(EventTimeStats { max_ms: 15_000, min_ms: 10_000, avg_ms: 12_000.0, count: 3 }),
            state_operators: vec![],
            sink_description: "sink".into(),
            sink_rows: 7,
        }
    }

    #[test]
    fn rates_and_event_time_follow_spark() {
        let p = build_progress(&facts());
        assert_eq!(p.input_rows_per_second, 50.0);
        assert_eq!(p.processed_rows_per_second, 200.0);
        assert_eq!(p.event_time["watermark"], "1970-01-01T00:00:05.000Z");
        assert_eq!(p.event_time["avg"], "1970-01-01T00:00:12.000Z");
        assert_eq!(p.sources[0].metrics["numMalformedRecords"], "2");
        let mut first = facts();
        first.previous_trigger_start_ms = None;
        assert!(build_progress(&first).input_rows_per_second.is_infinite());
        assert!(!build_progress(&first).json().contains("inputRowsPerSecond"));
    }
}
