//! Sliding-window aggregation by panes (see `sluice_plan::sliding`). Rows are partially
//! aggregated per pane and key on the map side, where a pane is the tumbling window of one slide;
//! each pane's partial row stands for every window holding the pane. Two layouts follow:
//!
//! - **State per pane** ([`reduce_by_pane`], `sluice.streaming.slidingWindowStateByPane`, for
//!   append mode with a key besides the window): pane rows are shuffled by the other keys, so
//!   every pane of a key meets in one partition; the state keeps one row per pane and key, and
//!   when the watermark closes a window the window is assembled from its panes' rows and
//!   emitted. A batch stores, shuffles and evicts each pane once instead of once per window (5
//!   times, in Nexmark q5's 10-second windows sliding by 2).
//! - **State per window**, the expanded aggregation's layout (every other case, and checkpoints
//!   from before panes were kept): each pane row is attributed to every window holding the
//!   pane and the rows that then share a window and key are merged before the shuffle, giving
//!   the expanded aggregation's partial rows — layout, keys, values and first-appearance order
//!   — so the shuffle, the late-row filter, the state and the output do not change. Merging
//!   before the shuffle keeps one partial row per window and key, as expansion gave, so
//!   `numRowsDroppedByWatermark` is unchanged too.

use std::sync::Arc;

use std::time::Instant;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::{concat_batches, filter_record_batch, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::execution::session_state::SessionState;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use hashbrown::HashSet;

use sluice_common::error::{Result, SluiceError};
use sluice_common::time::to_micros;
use sluice_common::BatchWatermarks;
use sluice_plan::functions::window::{window_struct, WindowSpec};
use sluice_plan::sliding::PaneAggregate;
use sluice_plan::{CompiledQuery, Fragment, StateOperatorMetrics, TaskInput};
use sluice_state::KeyedState;

use super::aggregate::{batch_of, merge_into_state, AggregateStages};
use super::{aggregate_stages, plan_partial};

/// A pane form whose partial rows were checked to line up with the expanded aggregation's.
#[derive(Debug, Clone)]
pub struct PaneStages {
    plan: LogicalPlan,
    window_index: usize,
    spec: WindowSpec,
    /// With state per pane: the pane aggregation's own stages, which merge pane rows and lay
    /// out the state (the pane start where the window is). `None`: state per window.
    pub by_pane: Option<Box<AggregateStages>>,
}

impl PaneStages {
    /// The pane form of an aggregation whose partial rows have the layout `partial_schema`, or
    /// `None` when its own partial rows differ in anything but the pane key (a timestamp where
    /// the window is): the map side then expands rows instead. `by_pane` asks for state per
    /// pane (the caller checked the output mode, the keys and the conf).
    pub async fn compile(
        state: &SessionState,
        panes: &PaneAggregate,
        partial_schema: &SchemaRef,
        by_pane: bool,
    ) -> Result<Option<Self>> {
        let pane_schema = plan_partial(state, &panes.plan).await?.schema();
        let lines_up = pane_schema.fields().len() == partial_schema.fields().len()
            && pane_schema.fields().iter().zip(partial_schema.fields()).enumerate().all(|(i, (p, e))| {
                if i == panes.window_index {
                    matches!(p.data_type(), DataType::Timestamp(..)) && matches!(e.data_type(), DataType::Struct(_))
                } else {
                    p.data_type() == e.data_type()
                }
            });
        if !lines_up {
            tracing::warn!("sliding-window aggregation: the pane form's partial rows differ from the expanded ones; rows expand");
            return Ok(None);
        }
        tracing::debug!(
            window_us = panes.spec.window,
            slide_us = panes.spec.slide,
            by_pane,
            "sliding-window aggregation partially aggregates by panes"
        );
        let by_pane = match by_pane {
            true => Some(Box::new(aggregate_stages(state, &panes.plan).await?)),
            false => None,
        };
        Ok(Some(Self { plan: panes.plan.clone(), window_index: panes.window_index, spec: panes.spec, by_pane }))
    }

    /// The positions of the keys rows are shuffled by: every key, or with state per pane every
    /// key but the window, so that all panes of a key meet in one partition.
    pub fn shuffle_keys(&self, group_count: usize) -> Vec<usize> {
        (0..group_count).filter(|i| self.by_pane.is_none() || *i != self.window_index).collect()
    }

    /// The task's partial rows: per pane and key, and with state per window then expanded to
    /// windows and merged per window and key. `fragment` names the pane plan among the query's
    /// plans made once per batch.
    pub async fn partial_rows(
        &self,
        query: &CompiledQuery,
        fragment: Fragment,
        rows: &Arc<TaskInput>,
        batch_timestamp_ms: i64,
        stages: &AggregateStages,
    ) -> Result<Vec<RecordBatch>> {
        let pane_plan = &self.plan;
        let plan =
            query.fragment(fragment, batch_timestamp_ms, |state| async move { plan_partial(&state, pane_plan).await }).await?;
        let pane_rows = query.run(&plan, Arc::clone(rows)).await?;
        if self.by_pane.is_some() {
            return Ok(pane_rows.into_iter().filter(|b| b.num_rows() > 0).collect());
        }
        let windowed = pane_rows
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| expand_panes(b, self.window_index, &self.spec, &stages.partial_schema))
            .collect::<Result<Vec<_>>>()?;
        if windowed.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![stages.merge(windowed, &query.task_ctx()).await?])
    }
}

/// Attributes each partial row of a pane (its start at `window_index`) to every window holding
/// the pane, newest first, with the window struct in that column and the rest copied: rows laid
/// out as `partial_schema`. A NULL pane (a NULL time) has no window.
pub fn expand_panes(
    rows: &RecordBatch,
    window_index: usize,
    spec: &WindowSpec,
    partial_schema: &SchemaRef,
) -> Result<RecordBatch> {
    let (take_rows, starts, ends) = pane_windows(rows, window_index, spec, |_| true)?;
    let windows = window_struct(
        TimestampMicrosecondArray::from(starts),
        TimestampMicrosecondArray::from(ends),
        partial_schema.field(window_index).data_type(),
    )?;
    with_column(rows, window_index, windows, &take_rows, partial_schema)
}

/// [`expand_panes`] keeping the pane rows' layout: each window's start where the pane's start
/// was. Assembling windows from pane rows then groups by a timestamp rather than by a struct,
/// which grouping takes apart into its validity and fields: two key columns instead of four
/// in Nexmark q5.
fn expand_panes_to_starts(
    rows: &RecordBatch,
    window_index: usize,
    spec: &WindowSpec,
    wanted: impl Fn(i64) -> bool,
) -> Result<RecordBatch> {
    let (take_rows, starts, _) = pane_windows(rows, window_index, spec, wanted)?;
    let starts = as_pane_column(starts, rows.column(window_index).data_type())?;
    with_column(rows, window_index, starts, &take_rows, rows.schema_ref())
}

/// Window starts (µs) as a column of the pane column's type. The starts are instants: they
/// take the pane column's time zone as it is (a cast from a zone-less timestamp would read
/// them as local times), and only then its unit.
fn as_pane_column(starts: Vec<i64>, pane_type: &DataType) -> Result<ArrayRef> {
    let DataType::Timestamp(unit, tz) = pane_type else {
        return Err(SluiceError::internal(format!("a pane column of type {pane_type}")));
    };
    let starts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(starts).with_timezone_opt(tz.clone()));
    Ok(if *unit == TimeUnit::Microsecond { starts } else { arrow::compute::cast(&starts, pane_type)? })
}

/// The final rows of the windows `wanted` accepts, assembled from pane rows (the layout of
/// [`expand_panes_to_starts`], with the window's start in the pane column), or `None` where
/// the aggregation's final rows take the `Final` aggregation's path
/// ([`AggregateStages::finish_groups`]).
///
/// Why not a `Final` aggregation over the pane rows expanded into their windows: that hashes
/// every (window, key) it is given, a pane row once per window, and most groups hold a single
/// pane row (in Nexmark q5 an auction seldom has bids in two panes of one window), so the
/// hashing was most of the work of emitting windows. Here the pane rows are grouped by their
/// other keys once, and each key's windows are numbered in start order: the groups are
/// formed without a hash per window, then merged by the aggregates' group accumulators.
fn assemble_windows(
    stages: &AggregateStages,
    rows: &RecordBatch,
    w: usize,
    spec: &WindowSpec,
    wanted: impl Fn(i64) -> bool,
) -> Result<Option<RecordBatch>> {
    let g = stages.group_count;
    // State per pane is kept only for aggregations with a key besides the window.
    if g < 2 || stages.flat_keys.is_some() {
        return Ok(None);
    }
    let panes = to_micros(rows.column(w))?;
    u32::try_from(rows.num_rows()).map_err(|_| SluiceError::internal("a batch of more than 2^32 pane rows"))?;
    // Each pane row's key besides the pane, numbered in order of first appearance.
    let encoded = keys_besides_pane(rows, g, w)?;
    let mut key_numbers = hashbrown::HashMap::with_capacity(rows.num_rows());
    let mut key_of_row: Vec<u32> = Vec::with_capacity(rows.num_rows());
    let mut rows_per_key: Vec<u32> = Vec::new();
    for (row, pane) in panes.iter().enumerate() {
        if pane.is_none() {
            key_of_row.push(u32::MAX);
            continue;
        }
        let next = u32::try_from(rows_per_key.len()).map_err(|_| SluiceError::internal("more than 2^32 pane keys"))?;
        let k = *key_numbers.entry(encoded.row(row)).or_insert(next);
        if k == next {
            rows_per_key.push(0);
        }
        rows_per_key[k as usize] += 1;
        key_of_row.push(k);
    }
    // The rows of each key together (a counting sort, keeping their order).
    let mut offsets: Vec<usize> = Vec::with_capacity(rows_per_key.len() + 1);
    offsets.push(0);
    for n in &rows_per_key {
        offsets.push(offsets[offsets.len() - 1] + *n as usize);
    }
    let mut fill = offsets.clone();
    let mut by_key = vec![0u32; offsets[offsets.len() - 1]];
    for (row, k) in key_of_row.iter().enumerate().filter(|(_, k)| **k != u32::MAX) {
        by_key[fill[*k as usize]] = row as u32;
        fill[*k as usize] += 1;
    }
    // Per key, its wanted windows in start order: a group each, whose partial rows are the
    // key's pane rows inside the window.
    let (mut starts, mut first_rows) = (Vec::new(), Vec::new());
    let (mut merged_rows, mut group_of_row) = (Vec::new(), Vec::new());
    let mut windows: Vec<(i64, u32)> = Vec::new();
    for of_key in offsets.windows(2).map(|o| &by_key[o[0]..o[1]]) {
        windows.clear();
        for &row in of_key {
            // Only rows with a pane were numbered.
            let pane = panes.value(row as usize);
            windows.extend(spec.windows_of_pane(pane).filter(|(_, end)| wanted(*end)).map(|(start, _)| (start, row)));
        }
        if of_key.len() > 1 {
            windows.sort_unstable_by_key(|(start, _)| *start);
        }
        for (i, (start, row)) in windows.iter().enumerate() {
            if i == 0 || windows[i - 1].0 != *start {
                starts.push(*start);
                first_rows.push(*row);
            }
            merged_rows.push(*row);
            group_of_row.push(starts.len() - 1);
        }
    }
    // Window by window: the operators above then see each window's rows together, in runs
    // (see `key_runs`). The merge is unchanged: each group keeps its rows, in their order.
    if let Some(order) = window_order(&starts, spec.slide) {
        let mut rank = vec![0usize; order.len()];
        for (position, group) in order.iter().enumerate() {
            rank[*group as usize] = position;
        }
        starts = order.iter().map(|g| starts[*g as usize]).collect();
        first_rows = order.iter().map(|g| first_rows[*g as usize]).collect();
        group_of_row.iter_mut().for_each(|group| *group = rank[*group]);
    }
    let first_rows = UInt32Array::from(first_rows);
    let keys = (0..g)
        .map(|i| match i == w {
            true => as_pane_column(std::mem::take(&mut starts), rows.column(w).data_type()),
            false => Ok(take(rows.column(i), &first_rows, None)?),
        })
        .collect::<Result<Vec<_>>>()?;
    let merged_rows = UInt32Array::from(merged_rows);
    let states = rows.columns()[g..].iter().map(|c| Ok(take(c, &merged_rows, None)?)).collect::<Result<Vec<_>>>()?;
    stages.finish_groups(keys, &states, &group_of_row)
}

/// The groups ordered by their windows' starts, stably: a counting sort by slide (window starts
/// lie a whole number of slides apart). `None` where the starts span more slides than there are
/// groups, when the order is not worth its buckets.
fn window_order(starts: &[i64], slide: i64) -> Option<Vec<u32>> {
    let (min, max, slide) = (*starts.iter().min()?, *starts.iter().max()?, slide.max(1));
    let buckets = usize::try_from(max.checked_sub(min)? / slide).ok()?.checked_add(1)?;
    if buckets > starts.len() {
        return None;
    }
    let bucket = |start: i64| ((start - min) / slide) as usize;
    let mut next = vec![0u32; buckets + 1];
    for start in starts {
        next[bucket(*start) + 1] += 1;
    }
    for b in 1..=buckets {
        next[b] += next[b - 1];
    }
    let mut order = vec![0u32; starts.len()];
    for (group, start) in starts.iter().enumerate() {
        let at = &mut next[bucket(*start)];
        order[*at as usize] = group as u32;
        *at += 1;
    }
    Some(order)
}

/// Each row's keys other than its pane (`w`, among the first `group_count` columns), row-encoded:
/// what identifies a pane row's group across its windows.
fn keys_besides_pane(rows: &RecordBatch, group_count: usize, w: usize) -> Result<Rows> {
    let others: Vec<ArrayRef> = (0..group_count).filter(|i| *i != w).map(|i| Arc::clone(rows.column(i))).collect();
    let converter = RowConverter::new(others.iter().map(|c| SortField::new(c.data_type().clone())).collect())?;
    Ok(converter.convert_columns(&others)?)
}

/// Rows of a pane layout whose column `window_index` holds window starts, with the window
/// struct (`window_type`) there instead: the window is the slide-aligned span of the window's
/// length from its start.
fn with_window_structs(
    rows: &RecordBatch,
    window_index: usize,
    spec: &WindowSpec,
    window_type: &DataType,
) -> Result<RecordBatch> {
    let starts = to_micros(rows.column(window_index))?;
    let ends: TimestampMicrosecondArray = starts.iter().map(|s| s.map(|s| s.saturating_add(spec.window))).collect();
    let mut columns = rows.columns().to_vec();
    columns[window_index] = window_struct(starts, ends, window_type)?;
    let mut fields: Vec<Field> = rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[window_index] = Field::new(fields[window_index].name(), window_type.clone(), true);
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )?)
}

/// For each window of each pane row whose end `wanted` accepts, newest first: the row, and the
/// window's start and end.
fn pane_windows(
    rows: &RecordBatch,
    window_index: usize,
    spec: &WindowSpec,
    wanted: impl Fn(i64) -> bool,
) -> Result<(UInt32Array, Vec<i64>, Vec<i64>)> {
    let panes = to_micros(rows.column(window_index))?;
    let per_pane = (spec.window / spec.slide) as usize;
    let mut take_rows: Vec<u32> = Vec::with_capacity(rows.num_rows() * per_pane);
    let mut starts: Vec<i64> = Vec::with_capacity(rows.num_rows() * per_pane);
    let mut ends: Vec<i64> = Vec::with_capacity(rows.num_rows() * per_pane);
    for (row, pane) in panes.iter().enumerate() {
        let Some(pane) = pane else { continue };
        let row = u32::try_from(row).map_err(|_| SluiceError::internal("a batch of more than 2^32 partial rows"))?;
        for (start, end) in spec.windows_of_pane(pane).filter(|(_, end)| wanted(*end)) {
            take_rows.push(row);
            starts.push(start);
            ends.push(end);
        }
    }
    Ok((UInt32Array::from(take_rows), starts, ends))
}

/// Rows `take_rows` of `rows`, with `column` (already one value per taken row) at `index`.
fn with_column(
    rows: &RecordBatch,
    index: usize,
    column: ArrayRef,
    take_rows: &UInt32Array,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let columns = rows
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| if i == index { Ok(Arc::clone(&column)) } else { Ok(take(c, take_rows, None)?) })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(take_rows.len())),
    )?)
}

/// Runs one partition's aggregation for a batch with state per pane; returns the emitted rows
/// (final values of the windows the batch's watermark closes) and the operator's metrics.
///
/// Windows are emitted in append mode only: a window closes when the eviction watermark passes
/// its end, in the batch whose eviction watermark first does — the windows ending after the late
/// watermark (the previous batch's eviction watermark, which closed everything before it) and at
/// or before this batch's. A pane's row stays until the last window holding it has closed.
/// The metrics count state rows, which are pane rows here; `numRowsDroppedByWatermark` counts
/// late (window, key) groups, as with state per window.
/// `by_pane` is the pane aggregation's stages ([`PaneStages::by_pane`]), `windows` the windowed
/// aggregation's.
pub async fn reduce_by_pane(
    panes: &PaneStages,
    by_pane: &AggregateStages,
    windows: &AggregateStages,
    state: &mut KeyedState,
    input: Vec<RecordBatch>,
    watermarks: &BatchWatermarks,
    ctx: &Arc<TaskContext>,
) -> Result<(Vec<RecordBatch>, StateOperatorMetrics)> {
    let started = Instant::now();
    let mut metrics = StateOperatorMetrics::default();
    let (late_us, evict_us) = (watermarks.late_micros(), watermarks.eviction_micros());
    let (w, spec) = (panes.window_index, panes.spec);
    // A pane's row is evicted with the newest window holding it, which starts where it does.
    let evict_at = |rows: &RecordBatch| -> Result<Vec<Option<i64>>> {
        Ok(to_micros(rows.column(w))?.iter().map(|p| p.map(|p| p.saturating_add(spec.window))).collect())
    };
    if input.iter().any(|b| b.num_rows() > 0) {
        let rows = concat_batches(&by_pane.partial_schema, &input)?;
        let (on_time, dropped) = drop_late_panes(&rows, by_pane.group_count, w, &spec, late_us)?;
        metrics.num_rows_dropped_by_watermark = dropped;
        if on_time.num_rows() > 0 {
            let merged = merge_into_state(by_pane, state, on_time, evict_at, ctx).await?;
            metrics.num_rows_updated = merged.num_rows() as u64;
        }
    }
    metrics.all_updates_time_ms = started.elapsed().as_millis() as u64;

    let removal_started = Instant::now();
    let mut emitted = Vec::new();
    if evict_us > late_us {
        // The panes of the closing windows: their windows end from slide past their start to a
        // window past it.
        let horizon = evict_us.saturating_add(spec.window - spec.slide);
        let due: Vec<_> = state.iter().filter(|(_, e)| e.evict_at.is_some_and(|t| t > late_us && t <= horizon)).collect();
        if !due.is_empty() {
            let mut columns = state.decode_keys(due.iter().map(|(k, _)| &k[..]))?;
            columns.extend(state.decode_values(due.iter().map(|(_, e)| &e.value[..]))?);
            let pane_rows = batch_of(&by_pane.partial_schema, columns, due.len())?;
            let closing = |end: i64| end > late_us && end <= evict_us;
            let finals = match assemble_windows(by_pane, &pane_rows, w, &spec, closing)? {
                Some(rows) => vec![rows],
                None => {
                    let window_rows = expand_panes_to_starts(&pane_rows, w, &spec, closing)?;
                    match window_rows.num_rows() {
                        0 => Vec::new(),
                        _ => by_pane.finish(vec![window_rows], ctx).await?,
                    }
                }
            };
            let window_type = windows.partial_schema.field(w).data_type();
            emitted = finals
                .iter()
                .filter(|b| b.num_rows() > 0)
                .map(|b| with_window_structs(b, w, &spec, window_type))
                .collect::<Result<_>>()?;
        }
    }
    metrics.num_rows_removed = state.evict_count_through(evict_us);
    metrics.all_removals_time_ms = removal_started.elapsed().as_millis() as u64;
    metrics.num_rows_total = state.len() as u64;
    metrics.memory_used_bytes = state.memory_bytes() as u64;
    Ok((emitted, metrics))
}

/// The pane rows that still hold an open window — the newest window holding the pane ends after
/// the late watermark — and how many (window, key) groups were late: each window of a pane
/// ending at or before the late watermark is a late group, counted once however many panes of
/// the batch it holds, as the expanded aggregation's rows merged per window and key would be.
/// A NULL pane has no window: its row is dropped and not counted.
/// `group_count` is the number of key columns, the pane's among them.
fn drop_late_panes(
    rows: &RecordBatch,
    group_count: usize,
    w: usize,
    spec: &WindowSpec,
    late_us: i64,
) -> Result<(RecordBatch, u64)> {
    let panes = to_micros(rows.column(w))?;
    let mut keep = Vec::with_capacity(rows.num_rows());
    let mut late: Vec<(usize, i64)> = Vec::new();
    for (row, pane) in panes.iter().enumerate() {
        let Some(pane) = pane else {
            keep.push(false);
            continue;
        };
        // The oldest window holding the pane ends a slide after its start.
        if pane.saturating_add(spec.slide) <= late_us {
            late.extend(spec.windows_of_pane(pane).filter(|(_, end)| *end <= late_us).map(|(start, _)| (row, start)));
        }
        keep.push(pane.saturating_add(spec.window) > late_us);
    }
    let dropped = if late.is_empty() {
        0
    } else {
        let keys = keys_besides_pane(rows, group_count, w)?;
        let groups: HashSet<_> = late.iter().map(|(row, start)| (*start, keys.row(*row))).collect();
        groups.len() as u64
    };
    let kept = if keep.iter().all(|k| *k) { rows.clone() } else { filter_record_batch(rows, &BooleanArray::from(keep))? };
    Ok((kept, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::array::{AsArray, Int64Array};
    use sluice_plan::functions::window::window_struct_type;

    /// Groups come out by window start, those of one start in their order; starts spread over
    /// more slides than there are groups are left in their order.
    #[test]
    fn groups_are_ordered_by_window_start_stably() {
        let slide = 2_000_000;
        let starts = [4, 0, 2, 0, 4, 2, 0].map(|s: i64| s * slide / 2 + 500);
        let order = window_order(&starts, slide).unwrap();
        assert_eq!(order, vec![1, 3, 6, 2, 5, 0, 4]);
        assert!(order.windows(2).all(|p| starts[p[0] as usize] <= starts[p[1] as usize]));
        assert_eq!(window_order(&[0, 100 * slide, 0], slide), None);
        assert_eq!(window_order(&[], slide), None);
    }

    #[test]
    fn each_pane_row_becomes_one_row_per_window_newest_first() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let pane_schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("pane", ts.clone(), true),
            Field::new("count", DataType::Int64, true),
        ]));
        let partial_schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("w", window_struct_type(&ts), true),
            Field::new("count", DataType::Int64, true),
        ]));
        let rows = RecordBatch::try_new(
            pane_schema,
            vec![
                Arc::new(Int64Array::from(vec![7, 8, 9])),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(-4), None, Some(6)]).with_timezone("UTC")),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        // Window 6 every 2, starting at 0: a pane belongs to the 3 windows starting at its
        // start, 2 before it and 4 before it.
        let spec = WindowSpec::new(6, 2, 0).unwrap();
        let out = expand_panes(&rows, 1, &spec, &partial_schema).unwrap();
        let keys = out.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        let counts = out.column(2).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        let w = out.column(1).as_struct();
        let starts = w.column(0).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values().to_vec();
        let ends = w.column(1).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values().to_vec();
        assert_eq!(keys, vec![7, 7, 7, 9, 9, 9]);
        assert_eq!(counts, vec![1, 1, 1, 3, 3, 3]);
        assert_eq!(starts, vec![-4, -6, -8, 6, 4, 2]);
        assert_eq!(ends, vec![2, 0, -2, 12, 10, 8]);
        assert_eq!(out.schema(), partial_schema);

        // The same windows with their starts in the pane column, and back to structs.
        let by_start = expand_panes_to_starts(&rows, 1, &spec, |_| true).unwrap();
        assert_eq!(by_start.schema(), rows.schema(), "the pane layout is kept");
        let starts = by_start.column(1).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values().to_vec();
        assert_eq!(starts, vec![-4, -6, -8, 6, 4, 2]);
        let windows = with_window_structs(&by_start, 1, &spec, partial_schema.field(1).data_type()).unwrap();
        assert_eq!(windows.columns(), out.columns());

        // In another time zone, the same instants.
        let zoned = DataType::Timestamp(TimeUnit::Microsecond, Some("+05:00".into()));
        let zoned_rows = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Int64, true),
                Field::new("pane", zoned.clone(), true),
                Field::new("count", DataType::Int64, true),
            ])),
            vec![
                Arc::clone(rows.column(0)),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(-4), None, Some(6)]).with_timezone("+05:00")),
                Arc::clone(rows.column(2)),
            ],
        )
        .unwrap();
        let zoned_starts = expand_panes_to_starts(&zoned_rows, 1, &spec, |_| true).unwrap();
        assert_eq!(zoned_starts.column(1).data_type(), &zoned);
        let starts = zoned_starts.column(1).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values().to_vec();
        assert_eq!(starts, vec![-4, -6, -8, 6, 4, 2]);

        // Only the windows that `wanted` accepts (here those ending at 10 or before).
        let closing = expand_panes_to_starts(&rows, 1, &spec, |end| end <= 10).unwrap();
        let starts = closing.column(1).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values().to_vec();
        assert_eq!(starts, vec![-4, -6, -8, 4, 2]);
    }

    #[test]
    fn late_panes_count_each_late_window_and_key_once_and_keep_the_panes_of_open_windows() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("pane", ts, true),
            Field::new("count", DataType::Int64, true),
        ]));
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 2, 2, 3])),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(0), Some(-2), Some(0), None, Some(4)]).with_timezone("UTC")),
                Arc::new(Int64Array::from(vec![10, 20, 30, 40, 50])),
            ],
        )
        .unwrap();
        // Windows of 6 every 2; the late watermark is 4. Key 1's pane 0 is in [0, 6) (open),
        // [-2, 4) and [-4, 2) (late); its pane -2 only in late windows: [-2, 4) and [-4, 2)
        // again, and [-6, 0). Key 2's pane 0: two late windows. A NULL pane has no window.
        // Pane 4's windows all end after 4.
        let spec = WindowSpec::new(6, 2, 0).unwrap();
        let (kept, dropped) = drop_late_panes(&rows, 2, 1, &spec, 4).unwrap();
        assert_eq!(dropped, 3 + 2);
        let counts = kept.column(2).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        assert_eq!(counts, vec![10, 30, 50]);
    }
}
