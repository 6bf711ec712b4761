//! Stateful operators at run time: the map side (partial work and hash partitioning by key)
//! and the reduce side (merging with a state partition), compiled once per query.
//!
//! The streaming planner (`sluice_plan::streaming`) decides *where* the plan is cut; this module
//! decides *what runs* at each cut, using DataFusion's own aggregation machinery.

pub mod aggregate;
pub mod dedup;
pub mod event_time;
pub mod group_keys;
pub mod join;
pub mod key_runs;
pub mod panes;
pub mod session;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{ExprSchemable, LogicalPlan};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

use sluice_common::error::{Result, SluiceError};
use sluice_common::OutputMode;
use sluice_plan::join::JoinSide;
use sluice_plan::streaming::{OperatorKind, StatefulOperator};
use sluice_plan::{CompiledQuery, Fragment, QuerySpec, TaskInput};
use sluice_state::hash::partition_ids;

use self::aggregate::AggregateStages;
use self::dedup::DedupSpec;
use self::group_keys::FlatGroupKeys;
use self::join::JoinStages;
use self::panes::PaneStages;
use self::session::SessionStages;

/// An operator ready to run.
#[derive(Debug, Clone)]
pub enum CompiledOperator {
    /// A streaming aggregation (Spark's StateStoreSave): partial → merge with state → final.
    Aggregate(AggregateStages),
    /// A `session_window` aggregation: per key, a list of sessions merged as they overlap.
    Session(SessionStages),
    /// `dropDuplicates` / `dropDuplicatesWithinWatermark`: keys only, no value columns.
    Dedup(DedupSpec),
    /// A stream-stream join: one store per side.
    Join(JoinStages),
}

impl CompiledOperator {
    /// Key and value schemas of the operator's state (a join: of its left store; see
    /// [`JoinStages`] for both).
    pub fn state_schemas(&self) -> (SchemaRef, SchemaRef) {
        match self {
            CompiledOperator::Join(j) => (Arc::clone(&j.key_schema), Arc::clone(&j.left.value_schema)),
            CompiledOperator::Aggregate(a) => {
                let layout = a.by_pane().map_or(a, |(_, by_pane)| by_pane);
                (layout.key_schema(), layout.value_schema())
            }
            CompiledOperator::Session(s) => (s.key_schema(), s.value_schema()),
            CompiledOperator::Dedup(d) => {
                let fields: Vec<Field> = d
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        Field::new(
                            format!("k{i}"),
                            k.data_type(&d.input_schema).unwrap_or(arrow::datatypes::DataType::Null),
                            true,
                        )
                    })
                    .collect();
                (Arc::new(Schema::new(fields)), Arc::new(Schema::empty()))
            }
        }
    }
}

/// Finds the `Partial` aggregation DataFusion planned for an `Aggregate` node.
async fn plan_partial(state: &SessionState, aggregate: &LogicalPlan) -> Result<Arc<dyn ExecutionPlan>> {
    let physical = DefaultPhysicalPlanner::default().create_physical_plan(aggregate, state).await?;
    let mut stack = vec![physical];
    while let Some(node) = stack.pop() {
        if let Some(agg) = node.downcast_ref::<AggregateExec>() {
            if *agg.mode() == AggregateMode::Partial {
                return Ok(node);
            }
        }
        stack.extend(node.children().into_iter().cloned());
    }
    Err(SluiceError::internal("the streaming aggregation did not plan to a partial aggregation"))
}

/// The stages of the aggregation `aggregate` (an `Aggregate` node), its struct keys grouped by
/// their fields.
async fn aggregate_stages(state: &SessionState, aggregate: &LogicalPlan) -> Result<AggregateStages> {
    let partial = plan_partial(state, aggregate).await?;
    let agg = partial.downcast_ref::<AggregateExec>().ok_or_else(|| SluiceError::internal("not an aggregation"))?;
    let mut stages = AggregateStages::from_partial(agg)?;
    stages.flat_keys = FlatGroupKeys::of(aggregate, &stages.partial_schema)?;
    Ok(stages)
}

/// Compiles one operator (the reduce side's fixed pieces) of the query `spec`.
pub async fn compile_operator(state: &SessionState, op: &StatefulOperator, spec: &QuerySpec) -> Result<CompiledOperator> {
    match &op.kind {
        OperatorKind::Aggregate { panes, event_time, group_count } => {
            let mut stages = aggregate_stages(state, &op.plan).await?;
            if let Some(panes) = panes {
                // State per pane needs the window to be what the watermark closes, append mode
                // (which emits a window once, when it closes) and another key to shuffle by.
                let by_pane = spec.conf.sliding_window_state_by_pane
                    && spec.output_mode == OutputMode::Append
                    && *group_count > 1
                    && event_time.is_some_and(|et| et.is_window && et.index == panes.window_index);
                stages.panes = PaneStages::compile(state, panes, &stages.partial_schema, by_pane).await?;
            }
            Ok(CompiledOperator::Aggregate(stages))
        }
        OperatorKind::SessionAggregate { session_index, .. } => {
            Ok(CompiledOperator::Session(SessionStages::new(aggregate_stages(state, &op.plan).await?, *session_index)?))
        }
        OperatorKind::Join(join) => Ok(CompiledOperator::Join(JoinStages::compile(state, join)?)),
        OperatorKind::Dedup { on, select, event_time, key_event_time, within_watermark } => {
            let input_schema: &DFSchema = op.plan.schema();
            let keys = on.iter().map(|e| state.create_physical_expr(e.clone(), input_schema)).collect::<Result<Vec<_>, _>>()?;
            let select_exprs =
                select.iter().map(|e| state.create_physical_expr(e.clone(), input_schema)).collect::<Result<Vec<_>, _>>()?;
            let output_schema = Arc::new(Schema::new(
                select
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let (_, field) = e.to_field(input_schema)?;
                        Ok(field.as_ref().clone().with_name(format!("c{i}")))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ));
            Ok(CompiledOperator::Dedup(DedupSpec {
                input_schema: Arc::new(input_schema.as_arrow().clone()),
                output_schema,
                keys,
                select: select_exprs,
                event_time: *event_time,
                key_event_time: *key_event_time,
                within_watermark: *within_watermark,
            }))
        }
    }
}

/// Map side of one input of an operator for one task: runs the input's plan over the task's
/// rows (a split of a stream, or an operator's output) and cuts the result into one block per
/// state partition. A join's inputs are its left and right sides (0 and 1); every other operator
/// has input 0 only. The plan is made once per batch (see [`CompiledQuery::fragment`]).
pub async fn map_input(
    query: &CompiledQuery,
    op: &StatefulOperator,
    compiled: &CompiledOperator,
    input: usize,
    rows: &Arc<TaskInput>,
    batch_timestamp_ms: i64,
    partitions: u32,
) -> Result<Vec<Vec<RecordBatch>>> {
    type KeysOf = Box<dyn Fn(&RecordBatch) -> Result<Vec<ArrayRef>>>;
    let fragment = Fragment::MapInput { op: op.id, input };
    let (rows, keys_of): (Vec<RecordBatch>, KeysOf) = match compiled {
        CompiledOperator::Aggregate(a) | CompiledOperator::Session(SessionStages { stages: a, .. }) => {
            let rows = match &a.panes {
                Some(panes) => panes.partial_rows(query, fragment, rows, batch_timestamp_ms, a).await?,
                None => {
                    let aggregate = a.flat_keys.as_ref().map_or(&op.plan, |flat| &flat.plan);
                    let plan = query
                        .fragment(fragment, batch_timestamp_ms, |state| async move { plan_partial(&state, aggregate).await })
                        .await?;
                    let rows = query.run(&plan, Arc::clone(rows)).await?;
                    match &a.flat_keys {
                        Some(flat) => rows.iter().map(|b| flat.restore(b, Some(&a.partial_schema))).collect::<Result<_>>()?,
                        None => rows,
                    }
                }
            };
            let g = match (compiled, &a.panes) {
                (CompiledOperator::Session(s), _) => s.partition_key_indices(),
                (_, Some(panes)) => panes.shuffle_keys(a.group_count),
                (_, None) => (0..a.group_count).collect(),
            };
            (rows, Box::new(move |b: &RecordBatch| Ok(g.iter().map(|i| Arc::clone(b.column(*i))).collect())))
        }
        CompiledOperator::Dedup(d) => {
            let plan = query
                .fragment(fragment, batch_timestamp_ms, |state| async move { Ok(state.create_physical_plan(&op.plan).await?) })
                .await?;
            let rows = query.run(&plan, Arc::clone(rows)).await?;
            let spec = d.clone();
            (rows, Box::new(move |b: &RecordBatch| spec.key_columns(b)))
        }
        CompiledOperator::Join(j) => {
            let OperatorKind::Join(join) = &op.kind else {
                return Err(SluiceError::internal("operator kind and compiled form disagree"));
            };
            let side = if input == 0 { JoinSide::Left } else { JoinSide::Right };
            let side_plan = &join.side(side).plan;
            let plan = query
                .fragment(fragment, batch_timestamp_ms, |state| async move { Ok(state.create_physical_plan(side_plan).await?) })
                .await?;
            let rows = query.run(&plan, Arc::clone(rows)).await?;
            let stages = j.clone();
            (rows, Box::new(move |b: &RecordBatch| stages.key_columns(side, b)))
        }
    };
    partition_rows(&rows, partitions, keys_of.as_ref())
}

/// Splits rows into `partitions` blocks by Spark's hash of their keys, keeping row order.
pub fn partition_rows(
    rows: &[RecordBatch],
    partitions: u32,
    keys_of: &dyn Fn(&RecordBatch) -> Result<Vec<ArrayRef>>,
) -> Result<Vec<Vec<RecordBatch>>> {
    let mut blocks: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions as usize];
    for batch in rows {
        if batch.num_rows() == 0 {
            continue;
        }
        let ids = partition_ids(&keys_of(batch)?, batch.num_rows(), partitions)?;
        let mut per: Vec<Vec<u32>> = vec![Vec::new(); partitions as usize];
        for (row, p) in ids.iter().enumerate() {
            per[*p as usize].push(row as u32);
        }
        for (p, idx) in per.into_iter().enumerate() {
            if !idx.is_empty() {
                blocks[p].push(take_record_batch(batch, &UInt32Array::from(idx))?);
            }
        }
    }
    Ok(blocks)
}

/// Re-labels an operator's emitted rows with the schema its output table declares (the
/// positional `c0…` names), checking the types line up.
pub fn as_operator_output(rows: Vec<RecordBatch>, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    rows.into_iter()
        .map(|b| {
            if b.num_columns() != schema.fields().len() {
                return Err(SluiceError::internal(format!(
                    "operator emitted {} columns, its output has {}",
                    b.num_columns(),
                    schema.fields().len()
                )));
            }
            let columns: Vec<ArrayRef> =
                b.columns()
                    .iter()
                    .zip(schema.fields())
                    .map(|(c, f)| {
                        if c.data_type() == f.data_type() {
                            Ok(Arc::clone(c))
                        } else {
                            Ok(arrow::compute::cast(c, f.data_type())?)
                        }
                    })
                    .collect::<Result<_>>()?;
            Ok(RecordBatch::try_new_with_options(
                Arc::clone(schema),
                columns,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
            )?)
        })
        .collect()
}
