//! Streaming aggregation on a state partition (Spark's StateStoreRestore → merge →
//! StateStoreSave, docs/semantics.md §6).
//!
//! Map tasks run DataFusion's `Partial` aggregation and ship per-key accumulator state; here the
//! incoming partial rows for one partition are merged with the stored state of their keys by a
//! `PartialReduce` aggregation, the result replaces the stored state, and the output mode
//! decides what is emitted (finalised by a `Final` aggregation): every group (complete), the
//! changed groups (update), or the groups the watermark closed (append).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::GroupsAccumulatorAdapter;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::udaf::AggregateFunctionExpr;
use datafusion::physical_plan::{collect, ExecutionPlan};
use hashbrown::HashSet;

use sluice_common::error::{Result, SluiceError};
use sluice_common::{BatchWatermarks, OutputMode};
use sluice_plan::streaming::EventTimeColumn;
use sluice_plan::tables::in_chunks;
use sluice_plan::StateOperatorMetrics;
use sluice_state::KeyedState;

use super::event_time::{drop_late_rows, event_time_micros};
use super::group_keys::FlatGroupKeys;
use super::panes::{reduce_by_pane, PaneStages};

/// The physical pieces of one streaming aggregation, taken from the `Partial` aggregation
/// DataFusion planned for it, from which the reduce side builds its merge and final steps.
#[derive(Debug, Clone)]
pub struct AggregateStages {
    group_by: PhysicalGroupBy,
    aggr_expr: Vec<Arc<AggregateFunctionExpr>>,
    input_schema: SchemaRef,
    /// Layout of partial rows: group columns, then accumulator state columns.
    pub partial_schema: SchemaRef,
    /// Number of `GROUP BY` columns: the first `group_count` columns of partial rows, i.e. the state key.
    pub group_count: usize,
    /// A sliding-window aggregation's pane form: how the map side makes its partial rows
    /// without expanding every row into its windows.
    pub panes: Option<PaneStages>,
    /// How struct keys are grouped by their fields (on both sides), when there are any.
    pub flat_keys: Option<FlatGroupKeys>,
    /// Layout of final rows (group columns, then each aggregate's result): what a `Final`
    /// aggregation over partial rows emits.
    final_schema: SchemaRef,
}

impl AggregateStages {
    /// Reads the pieces off a `Partial` aggregation.
    pub fn from_partial(partial: &AggregateExec) -> Result<Self> {
        if *partial.mode() != AggregateMode::Partial {
            return Err(SluiceError::internal("expected a partial aggregation"));
        }
        let final_schema = AggregateExec::try_new(
            AggregateMode::Final,
            partial.group_expr().as_final(),
            partial.aggr_expr().to_vec(),
            vec![None; partial.aggr_expr().len()],
            Arc::new(EmptyExec::new(partial.schema())),
            partial.input_schema(),
        )?
        .schema();
        Ok(Self {
            group_by: partial.group_expr().clone(),
            aggr_expr: partial.aggr_expr().to_vec(),
            input_schema: partial.input_schema(),
            partial_schema: partial.schema(),
            group_count: partial.group_expr().expr().len(),
            panes: None,
            flat_keys: None,
            final_schema,
        })
    }

    /// The key columns' schema.
    pub fn key_schema(&self) -> SchemaRef {
        Arc::new(
            self.partial_schema
                .project(&(0..self.group_count).collect::<Vec<_>>())
                .unwrap_or_else(|_| arrow::datatypes::Schema::empty()),
        )
    }

    /// With state per pane (see [`reduce_by_pane`]): the pane form, and the pane aggregation's
    /// stages, which lay out the state.
    pub fn by_pane(&self) -> Option<(&PaneStages, &AggregateStages)> {
        let panes = self.panes.as_ref()?;
        Some((panes, panes.by_pane.as_deref()?))
    }

    /// The accumulator state columns' schema.
    pub fn value_schema(&self) -> SchemaRef {
        let n = self.partial_schema.fields().len();
        Arc::new(
            self.partial_schema
                .project(&(self.group_count..n).collect::<Vec<_>>())
                .unwrap_or_else(|_| arrow::datatypes::Schema::empty()),
        )
    }

    /// Runs a `PartialReduce` or `Final` aggregation over partial rows; struct keys are
    /// grouped by their fields when [`Self::flat_keys`] says how.
    async fn run(&self, mode: AggregateMode, rows: Vec<RecordBatch>, ctx: &Arc<TaskContext>) -> Result<Vec<RecordBatch>> {
        let filters = vec![None; self.aggr_expr.len()];
        let exec = |group_by: PhysicalGroupBy, schema: &SchemaRef, rows: Vec<RecordBatch>| -> Result<Arc<dyn ExecutionPlan>> {
            let rows = in_chunks(rows, ctx.session_config().batch_size());
            let input = MemorySourceConfig::try_new_exec(&[rows], Arc::clone(schema), None)?;
            Ok(Arc::new(AggregateExec::try_new(
                mode,
                group_by,
                self.aggr_expr.clone(),
                filters.clone(),
                input,
                Arc::clone(&self.input_schema),
            )?))
        };
        match &self.flat_keys {
            None => Ok(collect(exec(self.group_by.as_final(), &self.partial_schema, rows)?, Arc::clone(ctx)).await?),
            Some(flat) => {
                let rows = rows.iter().map(|b| flat.flatten(b)).collect::<Result<Vec<_>>>()?;
                let plan = exec(flat.flat_group_by().clone(), flat.flat_partial_schema(), rows)?;
                let target = (mode == AggregateMode::PartialReduce).then_some(&self.partial_schema);
                collect(plan, Arc::clone(ctx)).await?.iter().map(|b| flat.restore(b, target)).collect()
            }
        }
    }

    /// Merges partial rows (several rows may share a key) into one state row per key.
    pub async fn merge(&self, rows: Vec<RecordBatch>, ctx: &Arc<TaskContext>) -> Result<RecordBatch> {
        let out = self.run(AggregateMode::PartialReduce, rows, ctx).await?;
        Ok(concat_batches(&self.partial_schema, &out)?)
    }

    /// Final values (group columns, then each aggregate's result) for state rows.
    pub async fn finish(&self, rows: Vec<RecordBatch>, ctx: &Arc<TaskContext>) -> Result<Vec<RecordBatch>> {
        self.run(AggregateMode::Final, rows, ctx).await
    }

    /// Final values of groups the caller has already formed, as [`Self::finish`] gives them
    /// once it has grouped its rows by key: `keys` are the groups' key columns (a row per
    /// group), `states` the accumulator state columns of partial rows (laid out as after the
    /// keys in [`Self::partial_schema`]), and `group_of_row[i]` the group of partial row `i`.
    /// Each aggregate merges its state columns per group with the group accumulator a `Final`
    /// aggregation uses (DataFusion's adapter over its row accumulator where it has none),
    /// so no key is hashed here. `None` when struct keys are grouped by their fields
    /// ([`Self::flat_keys`]): the final rows are then laid out by that path.
    pub fn finish_groups(&self, keys: Vec<ArrayRef>, states: &[ArrayRef], group_of_row: &[usize]) -> Result<Option<RecordBatch>> {
        if self.flat_keys.is_some() {
            return Ok(None);
        }
        let groups = keys.first().map_or(0, |k| k.len());
        let mut columns = keys;
        let mut at = 0;
        for expr in &self.aggr_expr {
            let width = expr.state_fields()?.len();
            let inputs = states
                .get(at..at + width)
                .ok_or_else(|| SluiceError::internal("partial rows with fewer state columns than their aggregates keep"))?;
            at += width;
            let mut accumulator: Box<dyn GroupsAccumulator> = if expr.groups_accumulator_supported() {
                expr.create_groups_accumulator()?
            } else {
                let expr = Arc::clone(expr);
                Box::new(GroupsAccumulatorAdapter::new(move || expr.create_accumulator()))
            };
            accumulator.merge_batch(inputs, group_of_row, groups)?;
            columns.push(accumulator.evaluate(EmitTo::All)?);
        }
        Ok(Some(batch_of(&self.final_schema, columns, groups)?))
    }
}

/// Inputs of one aggregation task besides the state.
#[derive(Debug, Clone, Copy)]
pub struct AggregateTask {
    /// The query's output mode: decides what is emitted, and whether late rows are dropped and state evicted.
    pub mode: OutputMode,
    /// The group key carrying the watermark, if any: outside complete mode, late rows are dropped and state evicted by it.
    pub event_time: Option<EventTimeColumn>,
    /// Groups at or below the late watermark are dropped, at or below the eviction watermark
    /// evicted.
    pub watermarks: BatchWatermarks,
    /// For an aggregation without keys: whether this partition holds the single group (the
    /// others must not emit an empty-input row).
    pub holds_global_group: bool,
}

/// A batch of `schema` from `columns`, which may be none (a key-less state's rows).
pub(super) fn batch_of(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &RecordBatchOptions::new().with_row_count(Some(rows)))?)
}

/// Restore, merge, save: merges `incoming` partial rows with the stored state of their keys, and
/// each merged row replaces its key's state, evicted at the time `evict_at` reads off the merged
/// rows. Returns the merged rows (one per key).
pub(super) async fn merge_into_state(
    stages: &AggregateStages,
    state: &mut KeyedState,
    incoming: RecordBatch,
    evict_at: impl Fn(&RecordBatch) -> Result<Vec<Option<i64>>>,
    ctx: &Arc<TaskContext>,
) -> Result<RecordBatch> {
    let g = stages.group_count;
    let keys = state.encode_keys(&incoming.columns()[..g], incoming.num_rows())?;
    // The stored rows of the incoming keys, each once, in order of first appearance. Only keys
    // found in the state go into `seen`: in a windowed aggregation most incoming keys are new
    // (the windows of new data), and the set of every incoming key cost as much as the lookups.
    let mut stored: Vec<(&[u8], &[u8])> = Vec::new();
    let mut seen = HashSet::new();
    for i in 0..incoming.num_rows() {
        let k = keys.row(i);
        if let Some((key, e)) = state.get_key_value(k.as_ref()) {
            if seen.insert(k) {
                stored.push((key, &e.value));
            }
        }
    }
    let mut rows = Vec::with_capacity(2);
    if !stored.is_empty() {
        let mut cols = state.decode_keys(stored.iter().map(|(k, _)| *k))?;
        cols.extend(state.decode_values(stored.iter().map(|(_, v)| *v))?);
        rows.push(batch_of(&stages.partial_schema, cols, stored.len())?);
    }
    rows.push(incoming);
    let m = stages.merge(rows, ctx).await?;
    let mkeys = state.encode_keys(&m.columns()[..g], m.num_rows())?;
    let mvals = state.encode_values(&m.columns()[g..], m.num_rows())?;
    state.put_rows(&mkeys, &mvals, &evict_at(&m)?, m.columns())?;
    Ok(m)
}

/// Runs one partition's aggregation for a batch; returns the emitted rows (final values) and
/// the operator's metrics.
pub async fn reduce_aggregate(
    stages: &AggregateStages,
    state: &mut KeyedState,
    input: Vec<RecordBatch>,
    task: AggregateTask,
    ctx: &Arc<TaskContext>,
) -> Result<(Vec<RecordBatch>, StateOperatorMetrics)> {
    if let Some((panes, by_pane)) = stages.by_pane() {
        return reduce_by_pane(panes, by_pane, stages, state, input, &task.watermarks, ctx).await;
    }
    let started = Instant::now();
    let mut metrics = StateOperatorMetrics::default();
    // Most partitions of a small batch get no rows: they skip straight to eviction.
    let mut incoming =
        input.iter().any(|b| b.num_rows() > 0).then(|| concat_batches(&stages.partial_schema, &input)).transpose()?;

    // Late groups: a key whose event time is at or below the previous batch's watermark.
    // Complete mode keeps everything (its result is the whole table; nothing is ever evicted).
    if let (Some(et), Some(rows)) = (task.event_time.filter(|_| task.mode != OutputMode::Complete), incoming.as_mut()) {
        let times = event_time_micros(rows.column(et.index), et.is_window)?;
        let on_time = drop_late_rows(rows, times, &task.watermarks)?;
        metrics.num_rows_dropped_by_watermark = on_time.dropped;
        *rows = on_time.rows;
    }

    let mut merged = None;
    if let Some(incoming) = incoming.filter(|rows| rows.num_rows() > 0) {
        let times = |m: &RecordBatch| match task.event_time {
            Some(et) => event_time_micros(m.column(et.index), et.is_window),
            None => Ok(vec![None; m.num_rows()]),
        };
        let m = merge_into_state(stages, state, incoming, times, ctx).await?;
        metrics.num_rows_updated = m.num_rows() as u64;
        merged = Some(m);
    }
    metrics.all_updates_time_ms = started.elapsed().as_millis() as u64;

    // Emit per output mode, and evict what the watermark closed.
    let removal_started = Instant::now();
    let evict_us = task.watermarks.eviction_micros();
    let emitted: Vec<RecordBatch> = match task.mode {
        OutputMode::Complete => {
            let rows = if state.is_empty() {
                Vec::new()
            } else {
                let mut cols = state.decode_keys(state.iter().map(|(k, _)| &k[..]))?;
                cols.extend(state.decode_values(state.iter().map(|(_, e)| &e.value[..]))?);
                vec![batch_of(&stages.partial_schema, cols, state.len())?]
            };
            if rows.is_empty() && (stages.group_count > 0 || !task.holds_global_group) {
                Vec::new()
            } else {
                stages.finish(rows, ctx).await?
            }
        }
        OutputMode::Update => {
            let out = match merged {
                Some(m) => stages.finish(vec![m], ctx).await?,
                None => Vec::new(),
            };
            if task.event_time.is_some() {
                metrics.num_rows_removed = state.evict_count_through(evict_us);
            }
            out
        }
        OutputMode::Append => {
            let evicted = task.event_time.map(|_| state.evict_decoded(evict_us)).transpose()?;
            match evicted {
                Some(evicted) if !evicted.entries.is_empty() => {
                    let n = evicted.entries.len();
                    metrics.num_rows_removed = n as u64;
                    let mut cols = evicted.keys;
                    cols.extend(evicted.values);
                    stages.finish(vec![batch_of(&stages.partial_schema, cols, n)?], ctx).await?
                }
                _ => Vec::new(),
            }
        }
    };
    metrics.all_removals_time_ms = removal_started.elapsed().as_millis() as u64;
    metrics.num_rows_total = state.len() as u64;
    metrics.memory_used_bytes = state.memory_bytes() as u64;
    Ok((emitted, metrics))
}
