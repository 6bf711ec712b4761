//! Streaming deduplication on a state partition: Spark's `dropDuplicates` and
//! `dropDuplicatesWithinWatermark` (docs/semantics.md §6).
//!
//! Rows arrive in map-task order, then row order; the first row of a key wins (within a batch
//! too) and its key is remembered. Late rows (event time at or below the previous batch's
//! watermark) are dropped first, whether or not the event time is a key. Keys leave the state
//! when the watermark passes their event time — possible only if the event time is part of the
//! key — or, within-watermark, when it passes `event time + delay`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use datafusion::physical_plan::PhysicalExpr;
use sluice_common::BatchWatermarks;

use sluice_common::error::Result;
use sluice_plan::streaming::EventTimeColumn;
use sluice_plan::StateOperatorMetrics;
use sluice_state::KeyedState;

use super::event_time::{drop_late_rows, event_time_micros};

/// The compiled form of one dedup operator.
#[derive(Debug, Clone)]
pub struct DedupSpec {
    /// Schema of the rows shuffled in (the operator's input plan output), which keys and `select` evaluate over.
    pub input_schema: SchemaRef,
    /// Schema of the emitted rows: the `select` expressions' types, with positional names (`c0`, `c1`, …).
    pub output_schema: SchemaRef,
    /// Key expressions over the input.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Output expressions over the input.
    pub select: Vec<Arc<dyn PhysicalExpr>>,
    /// The input's event-time column, if any: rows at or below the late watermark are dropped by it.
    pub event_time: Option<EventTimeColumn>,
    /// Position among `keys` of the event-time column, when it is a key: only then does the watermark evict keys.
    pub key_event_time: Option<usize>,
    /// `dropDuplicatesWithinWatermark`: a key is forgotten once the watermark passes its event time + delay.
    pub within_watermark: bool,
}

impl DedupSpec {
    /// Evaluates the key expressions over `batch`.
    pub fn key_columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.keys.iter().map(|k| Ok(k.evaluate(batch)?.into_array(batch.num_rows())?)).collect()
    }

    /// Whether the watermark can ever remove keys.
    pub fn evicts(&self) -> bool {
        self.key_event_time.is_some() || self.within_watermark
    }
}

/// Runs one partition's deduplication for a batch; returns the surviving rows projected to the
/// operator's output and the metrics (with `numDroppedDuplicateRows`).
pub fn reduce_dedup(
    spec: &DedupSpec,
    state: &mut KeyedState,
    input: &[RecordBatch],
    watermarks: &BatchWatermarks,
) -> Result<(Vec<RecordBatch>, StateOperatorMetrics)> {
    let started = Instant::now();
    let mut metrics = StateOperatorMetrics::default();
    let mut rows = concat_batches(&spec.input_schema, input)?;
    let mut times = match spec.event_time {
        Some(et) => event_time_micros(rows.column(et.index), et.is_window)?,
        None => Vec::new(),
    };
    if spec.event_time.is_some() {
        let on_time = drop_late_rows(&rows, times, watermarks)?;
        metrics.num_rows_dropped_by_watermark = on_time.dropped;
        (rows, times) = (on_time.rows, on_time.event_times);
    }

    let keys = state.encode_keys(&spec.key_columns(&rows)?, rows.num_rows())?;
    let delay_us = spec.event_time.map_or(0, |et| et.delay_ms.saturating_mul(1000));
    let mut keep = Vec::with_capacity(rows.num_rows());
    let mut duplicates = 0i64;
    for i in 0..rows.num_rows() {
        let evict_at = if spec.within_watermark {
            times.get(i).copied().flatten().map(|t| t.saturating_add(delay_us))
        } else if spec.key_event_time.is_some() {
            times.get(i).copied().flatten()
        } else {
            None
        };
        // Dedup state has no value columns: the value bytes are ignored. A key seen earlier
        // in this batch is already in the state.
        let first = state.insert_new(keys.row(i).as_ref(), &[], evict_at);
        if !first {
            duplicates += 1;
        }
        keep.push(first);
    }
    let kept = filter_record_batch(&rows, &BooleanArray::from(keep))?;
    metrics.num_rows_updated = kept.num_rows() as u64;
    metrics.all_updates_time_ms = started.elapsed().as_millis() as u64;
    let output_columns: Vec<ArrayRef> =
        spec.select.iter().map(|e| Ok(e.evaluate(&kept)?.into_array(kept.num_rows())?)).collect::<Result<_>>()?;
    let output = RecordBatch::try_new_with_options(
        Arc::clone(&spec.output_schema),
        output_columns,
        &RecordBatchOptions::new().with_row_count(Some(kept.num_rows())),
    )?;

    let removal_started = Instant::now();
    if spec.evicts() {
        metrics.num_rows_removed = state.evict_count_through(watermarks.eviction_micros());
    }
    metrics.all_removals_time_ms = removal_started.elapsed().as_millis() as u64;
    metrics.num_rows_total = state.len() as u64;
    metrics.memory_used_bytes = state.memory_bytes() as u64;
    metrics.custom = BTreeMap::from([("numDroppedDuplicateRows".to_string(), duplicates)]);
    Ok((vec![output], metrics))
}
