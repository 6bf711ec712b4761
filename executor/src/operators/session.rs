//! Session-window aggregation on a state partition (Spark's session window operators, docs/semantics.md §4).
//!
//! Map tasks aggregate rows per (key, initial session `[ts, ts + gap)`). Here, per grouping key,
//! the stored sessions and the incoming ones are sorted by start and merged while the next
//! session starts at or before the current end; the merged sessions' accumulator states are
//! combined by a `PartialReduce` aggregation and replace the key's stored sessions. The state
//! holds one entry per grouping key whose value is the list of its sessions (start, end,
//! accumulator state); the entry's eviction time is its earliest session end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, RecordBatch, RecordBatchOptions, StructArray, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::{concat_batches, filter_record_batch, take, take_record_batch};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::row::Row;
use datafusion::execution::TaskContext;

use sluice_common::error::{Result, SluiceError};
use sluice_common::time::to_micros;
use sluice_common::{BatchWatermarks, OutputMode};
use sluice_plan::StateOperatorMetrics;
use sluice_state::{Entry, KeyedState, StateRow};

use super::aggregate::AggregateStages;
use super::event_time::drop_late_rows;

/// The compiled form of one session-window aggregation.
#[derive(Debug, Clone)]
pub struct SessionStages {
    /// The aggregation's partial/merge/final steps; its group columns include the session window.
    pub stages: AggregateStages,
    /// Position of the session window among the group columns.
    pub session_index: usize,
    /// Type of the session column (`struct<start, end>`).
    session_type: DataType,
    /// `struct<start, end, state…>` of one stored session.
    entry_fields: Fields,
}

impl SessionStages {
    /// Wraps the partial aggregation of a `GROUP BY …, session_window(…)`.
    pub fn new(stages: AggregateStages, session_index: usize) -> Result<Self> {
        let session_type = stages.partial_schema.field(session_index).data_type().clone();
        let DataType::Struct(window_fields) = &session_type else {
            return Err(SluiceError::internal("session window column is not a struct"));
        };
        let mut entry: Vec<Field> = window_fields.iter().map(|f| f.as_ref().clone()).collect();
        entry.extend(stages.value_schema().fields().iter().map(|f| f.as_ref().clone().with_nullable(true)));
        Ok(Self { stages, session_index, session_type, entry_fields: Fields::from(entry) })
    }

    /// Group columns other than the session: the state key and the shuffle key.
    pub fn partition_key_indices(&self) -> Vec<usize> {
        (0..self.stages.group_count).filter(|i| *i != self.session_index).collect()
    }

    /// State key columns.
    pub fn key_schema(&self) -> SchemaRef {
        Arc::new(self.stages.partial_schema.project(&self.partition_key_indices()).unwrap_or_else(|_| Schema::empty()))
    }

    /// State value: the key's sessions.
    pub fn value_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "sessions",
            DataType::List(Arc::new(Field::new("item", DataType::Struct(self.entry_fields.clone()), true))),
            true,
        )]))
    }

    /// Partial rows (group columns with the session, then state) of the given keys' stored sessions.
    fn stored_rows(&self, state: &KeyedState, keys: &[StateRow]) -> Result<RecordBatch> {
        let values: Vec<&StateRow> = keys.iter().filter_map(|k| state.get(k).map(|e| &e.value)).collect();
        self.rows_of(state, keys, &values)
    }

    /// Partial rows of sessions given as (key, stored value) pairs.
    fn rows_of(&self, state: &KeyedState, keys: &[StateRow], values: &[&StateRow]) -> Result<RecordBatch> {
        let key_cols = state.decode_keys(keys.iter().map(|k| &k[..]))?;
        let lists = state.decode_values(values.iter().map(|v| &v[..]))?;
        let list = lists[0].as_list::<i32>();
        let mut repeat = Vec::new();
        for i in 0..list.len() {
            let n = list.value_length(i) as u32;
            repeat.extend(std::iter::repeat_n(i as u32, n as usize));
        }
        let entries = list.values().as_struct().clone();
        let expand = UInt32Array::from(repeat);
        let session = Arc::new(StructArray::try_new(
            match &self.session_type {
                DataType::Struct(f) => f.clone(),
                _ => return Err(SluiceError::internal("session type")),
            },
            vec![Arc::clone(entries.column(0)), Arc::clone(entries.column(1))],
            None,
        )?) as ArrayRef;
        let mut columns = Vec::with_capacity(self.stages.partial_schema.fields().len());
        let mut key_iter = key_cols.into_iter();
        for i in 0..self.stages.group_count {
            if i == self.session_index {
                columns.push(Arc::clone(&session));
            } else {
                let k = key_iter.next().ok_or_else(|| SluiceError::internal("key columns"))?;
                columns.push(take(k.as_ref(), &expand, None)?);
            }
        }
        columns.extend(entries.columns()[2..].iter().cloned());
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.stages.partial_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(expand.len())),
        )?)
    }

    /// Session bounds of every row (µs).
    fn bounds(&self, batch: &RecordBatch) -> Result<Vec<Option<(i64, i64)>>> {
        let s = batch.column(self.session_index).as_struct();
        let start = to_micros(s.column(0))?;
        let end = to_micros(s.column(1))?;
        Ok((0..batch.num_rows())
            .map(|i| (!s.is_null(i) && !start.is_null(i) && !end.is_null(i)).then(|| (start.value(i), end.value(i))))
            .collect())
    }

    /// Replaces each row's session by its merged session, merging per key in start order.
    fn merge_sessions(&self, state: &KeyedState, rows: &RecordBatch) -> Result<RecordBatch> {
        let keys = state.encode_keys(&self.key_columns(rows), rows.num_rows())?;
        let bounds = self.bounds(rows)?;
        let mut by_key: HashMap<Row<'_>, Vec<usize>> = HashMap::new();
        for i in 0..rows.num_rows() {
            by_key.entry(keys.row(i)).or_default().push(i);
        }
        let mut merged = vec![(0i64, 0i64); rows.num_rows()];
        for idx in by_key.values_mut() {
            idx.sort_by_key(|i| bounds[*i].map(|b| b.0));
            let mut group: Vec<usize> = Vec::new();
            let mut cur: Option<(i64, i64)> = None;
            for &i in idx.iter() {
                let Some((s, e)) = bounds[i] else { continue };
                match cur {
                    Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
                    _ => {
                        if let Some(c) = cur {
                            group.iter().for_each(|g| merged[*g] = c);
                        }
                        group.clear();
                        cur = Some((s, e));
                    }
                }
                group.push(i);
            }
            if let Some(c) = cur {
                group.iter().for_each(|g| merged[*g] = c);
            }
        }
        let DataType::Struct(fields) = &self.session_type else { return Err(SluiceError::internal("session type")) };
        let tz = match fields[0].data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let start = arrow::array::TimestampMicrosecondArray::from(merged.iter().map(|m| m.0).collect::<Vec<_>>())
            .with_timezone_opt(tz.clone());
        let end =
            arrow::array::TimestampMicrosecondArray::from(merged.iter().map(|m| m.1).collect::<Vec<_>>()).with_timezone_opt(tz);
        let session: ArrayRef = Arc::new(StructArray::try_new(fields.clone(), vec![Arc::new(start), Arc::new(end)], None)?);
        let mut columns = rows.columns().to_vec();
        columns[self.session_index] = session;
        Ok(RecordBatch::try_new(Arc::clone(&self.stages.partial_schema), columns)?)
    }

    fn key_columns(&self, rows: &RecordBatch) -> Vec<ArrayRef> {
        self.partition_key_indices().iter().map(|i| Arc::clone(rows.column(*i))).collect()
    }

    /// Stores merged sessions: one state entry per key holding its sessions in start order.
    fn save(&self, state: &mut KeyedState, merged: &RecordBatch) -> Result<()> {
        if merged.num_rows() == 0 {
            return Ok(());
        }
        let keys = state.encode_keys(&self.key_columns(merged), merged.num_rows())?;
        let bounds = self.bounds(merged)?;
        let mut by_key: HashMap<Row<'_>, Vec<usize>> = HashMap::new();
        for i in 0..merged.num_rows() {
            by_key.entry(keys.row(i)).or_default().push(i);
        }
        for (key, mut idx) in by_key {
            idx.sort_by_key(|i| bounds[*i].map(|b| b.0));
            let one = take_record_batch(merged, &UInt32Array::from(idx.iter().map(|i| *i as u32).collect::<Vec<_>>()))?;
            let evict_at = idx.iter().filter_map(|i| bounds[*i].map(|b| b.1)).min();
            let value = self.list_value(&one)?;
            let encoded = state.encode_values(&[value], 1)?;
            state.put(key.as_ref(), encoded.row(0).as_ref(), evict_at);
        }
        Ok(())
    }

    /// One key's sessions (rows of `one`) as a single-element list column.
    fn list_value(&self, one: &RecordBatch) -> Result<ArrayRef> {
        let s = one.column(self.session_index).as_struct();
        let mut cols: Vec<ArrayRef> = vec![Arc::clone(s.column(0)), Arc::clone(s.column(1))];
        cols.extend(one.columns()[self.stages.group_count..].iter().cloned());
        let entries = StructArray::try_new(self.entry_fields.clone(), cols, None)?;
        let item = Arc::new(Field::new("item", DataType::Struct(self.entry_fields.clone()), true));
        Ok(Arc::new(ListArray::try_new(item, OffsetBuffer::from_lengths([one.num_rows()]), Arc::new(entries), None)?))
    }
}

/// Runs one partition's session aggregation for a batch (append or complete mode).
pub async fn reduce_sessions(
    s: &SessionStages,
    state: &mut KeyedState,
    input: Vec<RecordBatch>,
    mode: OutputMode,
    watermarks: &BatchWatermarks,
    ctx: &Arc<TaskContext>,
) -> Result<(Vec<RecordBatch>, StateOperatorMetrics)> {
    let started = Instant::now();
    let mut metrics = StateOperatorMetrics::default();
    let mut incoming = concat_batches(&s.stages.partial_schema, &input)?;
    // Drop empty or inverted sessions (zero/negative/NULL gaps), then late ones (by their end).
    let bounds = s.bounds(&incoming)?;
    let valid: BooleanArray = bounds.iter().map(|b| Some(b.is_some_and(|(st, e)| e > st))).collect();
    incoming = filter_record_batch(&incoming, &valid)?;
    let ends = s.bounds(&incoming)?.into_iter().map(|b| b.map(|(_, e)| e)).collect();
    let on_time = drop_late_rows(&incoming, ends, watermarks)?;
    metrics.num_rows_dropped_by_watermark = on_time.dropped;
    incoming = on_time.rows;

    if incoming.num_rows() > 0 {
        let keys = state.encode_keys(&s.key_columns(&incoming), incoming.num_rows())?;
        let mut touched: Vec<StateRow> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..incoming.num_rows() {
            let k = keys.row(i);
            if seen.insert(k) {
                if let Some((key, _)) = state.get_key_value(k.as_ref()) {
                    touched.push(StateRow::clone(key));
                }
            }
        }
        let mut parts = Vec::new();
        if !touched.is_empty() {
            parts.push(s.stored_rows(state, &touched)?);
            for k in &touched {
                state.remove(k);
            }
        }
        parts.push(incoming);
        let all = concat_batches(&s.stages.partial_schema, &parts)?;
        let relabeled = s.merge_sessions(state, &all)?;
        let merged = s.stages.merge(vec![relabeled], ctx).await?;
        metrics.num_rows_updated = merged.num_rows() as u64;
        s.save(state, &merged)?;
    }
    metrics.all_updates_time_ms = started.elapsed().as_millis() as u64;

    let removal_started = Instant::now();
    let emitted = match mode {
        OutputMode::Complete => {
            let keys: Vec<StateRow> = state.iter().map(|(k, _)| StateRow::clone(k)).collect();
            if keys.is_empty() {
                Vec::new()
            } else {
                s.stages.finish(vec![s.stored_rows(state, &keys)?], ctx).await?
            }
        }
        _ => {
            // Emit and drop every session ending at or before the watermark; keep the rest.
            let evict_us = watermarks.eviction_micros();
            let due: Vec<(StateRow, Entry)> = state.evict_through(evict_us);
            let mut out_rows = Vec::new();
            for (key, entry) in due {
                let rows = s.rows_of(state, std::slice::from_ref(&key), &[&entry.value])?;
                let b = s.bounds(&rows)?;
                let done: BooleanArray = b.iter().map(|x| Some(x.is_some_and(|(_, e)| e <= evict_us))).collect();
                let keep: BooleanArray = done.iter().map(|d| d.map(|d| !d)).collect();
                let finished = filter_record_batch(&rows, &done)?;
                metrics.num_rows_removed += finished.num_rows() as u64;
                out_rows.push(finished);
                let remaining = filter_record_batch(&rows, &keep)?;
                s.save(state, &remaining)?;
            }
            let out_rows: Vec<RecordBatch> = out_rows.into_iter().filter(|b| b.num_rows() > 0).collect();
            if out_rows.is_empty() {
                Vec::new()
            } else {
                s.stages.finish(out_rows, ctx).await?
            }
        }
    };
    metrics.all_removals_time_ms = removal_started.elapsed().as_millis() as u64;
    // One state entry per grouping key (holding all of its sessions).
    metrics.num_rows_total = state.len() as u64;
    metrics.memory_used_bytes = state.memory_bytes() as u64;
    Ok((emitted, metrics))
}
