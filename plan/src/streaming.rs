//! Cutting a streaming query at its stateful operators — Spark's `IncrementalExecution`.
//!
//! A query plan is split into a chain: the stateless part below the first stateful operator
//! (run by map tasks over input splits), each stateful operator (run by one task per state
//! partition, on the executor owning that partition, after a shuffle by key), the stateless
//! parts between them, and the part above the last one (run where that operator's output is,
//! then written to the sink). Each stateful node is replaced in the plan by a scan of its
//! output, so every fragment is an ordinary DataFusion plan.
//!
//! Event time travels as Spark's field metadata `spark.watermarkDelayMs`: the stream's watermark
//! column carries it, `window()` and `session_window()` copy it to their result, and operators
//! look for it among their keys to know what the watermark evicts.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan, LogicalPlanBuilder};

use sluice_common::error::{Result, SluiceError};

use super::join::{plan_stream_join, StreamJoin};
use super::sliding::{plan_sliding_windows, PaneAggregate};
use super::tables::{as_stream_table, OperatorOutputTable};
use sluice_common::types::WATERMARK_DELAY_KEY;
use sluice_common::{BatchWatermarks, OutputMode};

/// An event-time column of an operator: where it is and how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimeColumn {
    /// Index among the operator's keys (aggregation) or input columns (dedup).
    pub index: usize,
    /// A `struct<start, end>` window, compared on `end`.
    pub is_window: bool,
    /// The watermark delay in ms (the column's `spark.watermarkDelayMs`); dedup within watermark keeps a key this long
    /// past its event time.
    pub delay_ms: i64,
}

/// What a stateful operator does.
#[derive(Debug, Clone)]
pub enum OperatorKind {
    /// `GROUP BY` with aggregates (Spark's StateStoreSave). `plan` is the `Aggregate` node.
    Aggregate {
        /// Number of `GROUP BY` keys: the first columns of the `Aggregate`'s output.
        group_count: usize,
        /// The first group key carrying `spark.watermarkDelayMs` (the event-time column or a window over it), if any:
        /// late rows are dropped and groups evicted by it.
        event_time: Option<EventTimeColumn>,
        /// For a sliding window key: the map side's pane form, when it has one (`plan` is then
        /// the expanded aggregation, which defines the partial rows and the state).
        panes: Option<Box<PaneAggregate>>,
    },
    /// `GROUP BY session_window(…)`: sessions merged per key. `session_index` is the session
    /// window's position among the group keys.
    SessionAggregate {
        /// Number of `GROUP BY` keys, the session window included.
        group_count: usize,
        /// Position of the `session_window(…)` key among the group keys.
        session_index: usize,
    },
    /// `DISTINCT` / `DISTINCT ON (…)` (Spark's dropDuplicates). `plan` is the operator's input.
    Dedup {
        /// Key expressions over the input.
        on: Vec<Expr>,
        /// Output expressions over the input (the surviving rows' projection).
        select: Vec<Expr>,
        /// The input's event-time column, if any: late rows are dropped by it.
        event_time: Option<EventTimeColumn>,
        /// Index of the key that is the event-time column: only then can state be evicted.
        key_event_time: Option<usize>,
        /// `dropDuplicatesWithinWatermark`: entries expire `delay` after their event time.
        within_watermark: bool,
    },
    /// A join of two streams (Spark's StreamingSymmetricHashJoinExec). `plan` is the `Join` node;
    /// its inputs are the two sides' map-side plans.
    Join(Box<StreamJoin>),
}

/// Where an operator's input rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorInput {
    /// The query's streams: map tasks over source splits run the input's plan.
    Sources,
    /// Another operator's output: that operator's reduce tasks run the input's plan.
    Operator(usize),
}

/// One stateful operator of a query.
#[derive(Debug, Clone)]
pub struct StatefulOperator {
    /// Position among the operators, inputs first; names the state directory `state/<id>/`.
    pub id: usize,
    /// Its inputs: one, or a join's left and right.
    pub inputs: Vec<OperatorInput>,
    /// Which operator it is, with the keys and event-time column its run-time form needs.
    pub kind: OperatorKind,
    /// Aggregate: the `Aggregate` node. Dedup: the operator's input.
    pub plan: LogicalPlan,
    /// What the operator emits (the replaced node's schema).
    pub output_schema: DFSchemaRef,
}

impl StatefulOperator {
    /// Spark's operator name in progress reports.
    pub fn progress_name(&self) -> &'static str {
        match &self.kind {
            OperatorKind::Aggregate { .. } => "stateStoreSave",
            OperatorKind::SessionAggregate { .. } => "sessionWindowStateStoreSaveExec",
            OperatorKind::Dedup { within_watermark: false, .. } => "dedupe",
            OperatorKind::Dedup { within_watermark: true, .. } => "dedupeWithinWatermark",
            OperatorKind::Join(_) => "symmetricHashJoin",
        }
    }

    /// Schema of the table the plan above reads this operator's output from: the output's
    /// types with positional names (`c0`, `c1`, …).
    pub fn output_table_schema(&self) -> arrow::datatypes::SchemaRef {
        positional_schema(&self.output_schema)
    }

    /// A description of the operator's state for the checkpoint's shape check.
    pub fn shape(&self) -> String {
        let fields: Vec<String> = self
            .output_schema
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), sluice_common::types::spark_type_name(f.data_type())))
            .collect();
        format!("{}({})", self.progress_name(), fields.join(","))
    }

    /// True when the watermark can evict (or emit) this operator's state, so a moving watermark
    /// justifies a no-data batch.
    pub fn evicts_by_watermark(&self, mode: OutputMode) -> bool {
        match &self.kind {
            OperatorKind::Aggregate { event_time, .. } => event_time.is_some() && mode != OutputMode::Complete,
            OperatorKind::SessionAggregate { .. } => mode != OutputMode::Complete,
            OperatorKind::Dedup { key_event_time, within_watermark, .. } => key_event_time.is_some() || *within_watermark,
            OperatorKind::Join(join) => join.evicts_by_watermark(),
        }
    }

    /// State stores per partition: one per join side, one for every other operator.
    pub fn stores_per_partition(&self) -> u32 {
        match &self.kind {
            OperatorKind::Join(_) => 2,
            _ => 1,
        }
    }
}

/// A query cut at its stateful operators.
#[derive(Debug, Clone)]
pub struct StreamingPipeline {
    /// Stateful operators, every operator after its inputs; the last one feeds the output. Each
    /// operator but the last feeds at least one input of later ones — more than one when the
    /// query holds the same stateful subquery twice and it was planned once (see
    /// [`build_pipeline`]).
    pub operators: Vec<StatefulOperator>,
    /// The plan above the last operator (or the whole plan when there is none).
    pub output: LogicalPlan,
    /// The output fragment sorts or limits, so it must see every partition's rows at once.
    pub needs_gather: bool,
}

impl StreamingPipeline {
    /// The watermarks operator `op` works with in a batch (Spark 3.5's per-operator watermark
    /// propagation): the minimum over its inputs of what they pass on — the batch's own
    /// watermarks for streams, an operator's output watermark for its output (a join holds it
    /// back to its state watermarks, since its output can still carry rows that old).
    pub fn watermarks_for(&self, op: usize, batch: &BatchWatermarks) -> BatchWatermarks {
        let Some(operator) = self.operators.get(op) else { return *batch };
        let mut wm: Option<BatchWatermarks> = None;
        for input in &operator.inputs {
            let from = match input {
                OperatorInput::Sources => *batch,
                OperatorInput::Operator(j) => {
                    let below = self.watermarks_for(*j, batch);
                    match &self.operators[*j].kind {
                        OperatorKind::Join(join) => join.output_watermarks(&below),
                        _ => below,
                    }
                }
            };
            wm = Some(match wm {
                None => from,
                Some(w) => {
                    BatchWatermarks { late_ms: w.late_ms.min(from.late_ms), eviction_ms: w.eviction_ms.min(from.eviction_ms) }
                }
            });
        }
        wm.unwrap_or(*batch)
    }

    /// The operator inputs fed by `op`'s output, as (operator, input index); none for the last
    /// operator, whose output goes to the query's output.
    pub fn consumers_of(&self, op: usize) -> Vec<(usize, usize)> {
        self.operators
            .iter()
            .flat_map(|c| {
                c.inputs.iter().enumerate().filter(|(_, from)| **from == OperatorInput::Operator(op)).map(|(i, _)| (c.id, i))
            })
            .collect()
    }
}

/// True when `plan` reads a stream (directly or through an operator's output).
pub fn is_streaming(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source) {
                if as_stream_table(&provider).is_some() || (provider.as_ref() as &dyn std::any::Any).is::<OperatorOutputTable>() {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The watermark delay a field carries, if it is an event-time column.
pub fn watermark_delay(field: &Field) -> Option<i64> {
    field.metadata().get(WATERMARK_DELAY_KEY).and_then(|v| v.parse().ok())
}

fn event_time_of(fields: impl Iterator<Item = (usize, Field)>) -> Option<EventTimeColumn> {
    for (i, f) in fields {
        if let Some(delay_ms) = watermark_delay(&f) {
            return Some(EventTimeColumn { index: i, is_window: matches!(f.data_type(), DataType::Struct(_)), delay_ms });
        }
    }
    None
}

fn function_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::ScalarFunction(f) => Some(f.func.name()),
        Expr::Alias(a) => function_name(&a.expr),
        _ => None,
    }
}

/// True when evaluating `plan` twice gives the same rows both times: no volatile function
/// (`rand()`, `uuid()`, …) anywhere in it.
fn is_deterministic(plan: &LogicalPlan) -> bool {
    let mut volatile = false;
    let _ = plan.apply(|node| {
        volatile = node.expressions().iter().any(Expr::is_volatile);
        Ok(if volatile { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    !volatile
}

/// Cuts `plan` into a pipeline.
///
/// With `share_identical`, a stateful subquery that occurs more than once — a view used twice,
/// as Nexmark q5 uses its per-auction counts once to report and once to find each window's
/// maximum — is planned as one operator feeding every place it occurs: its rows are aggregated,
/// shuffled and kept in state once instead of once per use. Spark plans each occurrence as an
/// operator of its own; the rows are the same either way (both read the same input with the same
/// watermarks), but progress reports list fewer `stateOperators` and the checkpoint's state
/// directories are numbered differently, so a checkpoint keeps the choice it was started with
/// (`QueryConf::share_identical_operators`). Subqueries with volatile functions are never shared.
pub fn build_pipeline(plan: &LogicalPlan, share_identical: bool) -> Result<StreamingPipeline> {
    let mut operators: Vec<StatefulOperator> = Vec::new();
    // Each operator's node as the query wrote it (inputs already cut), to find a repeat.
    let mut planned: Vec<(LogicalPlan, usize)> = Vec::new();
    let output = plan
        .clone()
        .transform_up(|node| {
            let repeat = share_identical
                .then(|| planned.iter().find(|(earlier, _)| *earlier == node))
                .flatten()
                .filter(|_| is_deterministic(&node));
            if let Some((earlier, id)) = repeat {
                return Ok(Transformed::yes(operator_output_scan(*id, earlier.schema())?));
            }
            let replaced = match &node {
                LogicalPlan::Aggregate(agg) if is_streaming(&agg.input) => {
                    let id = operators.len();
                    let group_count = agg.group_expr.len();
                    let session = agg.group_expr.iter().position(|e| function_name(e) == Some("session_window"));
                    let (plan, panes) = match plan_sliding_windows(agg)? {
                        Some(sliding) => (LogicalPlan::Aggregate(sliding.expanded), sliding.panes.map(Box::new)),
                        None => (node.clone(), None),
                    };
                    let kind = match session {
                        Some(session_index) => OperatorKind::SessionAggregate { group_count, session_index },
                        None => OperatorKind::Aggregate {
                            group_count,
                            event_time: event_time_of(
                                (0..group_count).map(|i| (i, agg.schema.field(i).as_ref().clone())),
                            ),
                            panes,
                        },
                    };
                    let inputs = vec![input_of(&agg.input)?];
                    operators.push(StatefulOperator { id, inputs, kind, plan, output_schema: Arc::clone(&agg.schema) });
                    Some((id, Arc::clone(&agg.schema)))
                }
                LogicalPlan::Distinct(Distinct::All(input)) if is_streaming(input) => {
                    let id = operators.len();
                    let cols: Vec<Expr> = input.schema().columns().into_iter().map(Expr::Column).collect();
                    let schema = node.schema();
                    operators.push(dedup_operator(id, input, cols.clone(), cols, false, Arc::clone(schema))?);
                    Some((id, Arc::clone(schema)))
                }
                LogicalPlan::Distinct(Distinct::On(on)) if is_streaming(&on.input) => {
                    if on.sort_expr.is_some() {
                        return Err(SluiceError::user(
                            "DISTINCT ON ... ORDER BY is not supported on streams: the first row of each key in arrival order is kept",
                        )
                        .into());
                    }
                    let id = operators.len();
                    let (keys, within) = match on.on_expr.as_slice() {
                        [e] if function_name(e) == Some("within_watermark") => match e {
                            Expr::ScalarFunction(f) => (f.args.clone(), true),
                            _ => (on.on_expr.clone(), false),
                        },
                        _ => (on.on_expr.clone(), false),
                    };
                    operators.push(dedup_operator(id, &on.input, keys, on.select_expr.clone(), within, Arc::clone(&on.schema))?);
                    Some((id, Arc::clone(&on.schema)))
                }
                LogicalPlan::Join(join) if is_streaming(&join.left) && is_streaming(&join.right) => {
                let id = operators.len();
                let inputs = vec![input_of(&join.left)?, input_of(&join.right)?];
                let kind = OperatorKind::Join(Box::new(plan_stream_join(join)?));
                operators.push(StatefulOperator { id, inputs, kind, plan: node.clone(), output_schema: Arc::clone(&join.schema) });
                Some((id, Arc::clone(&join.schema)))
            }
                _ => None,
            };
            match replaced {
                Some((id, schema)) => {
                    let scan = operator_output_scan(id, &schema)?;
                    planned.push((node, id));
                    Ok(Transformed::yes(scan))
                }
                None => Ok(Transformed::no(node)),
            }
        })?
        .data;
    // The output reads the last operator; every other operator feeds a later one.
    let last = operators.len().checked_sub(1);
    if operator_inputs(&output).iter().any(|op| Some(*op) != last) {
        return Err(SluiceError::user(
            "the query's result combines the outputs of several stateful operators (e.g. a UNION of two aggregations), which sluice cannot run yet",
        ));
    }
    let needs_gather = !operators.is_empty() && {
        let mut found = false;
        let _ = output.apply(|n| {
            if matches!(n, LogicalPlan::Sort(_) | LogicalPlan::Limit(_)) {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        found
    };
    Ok(StreamingPipeline { operators, output, needs_gather })
}

/// Where an operator input's rows come from: streams, or one operator's output. An input that
/// mixes them (a union of a stream and an aggregation) is refused.
fn input_of(plan: &LogicalPlan) -> Result<OperatorInput> {
    match operator_inputs(plan).as_slice() {
        [] => Ok(OperatorInput::Sources),
        [op] if !reads_sources_directly(plan) => Ok(OperatorInput::Operator(*op)),
        _ => Err(SluiceError::user(
            "a stateful operator whose input combines streams with another stateful operator's output (or two operators' outputs) is not supported by sluice yet",
        )),
    }
}

/// True when `plan` scans a stream itself (not only through an operator's output).
fn reads_sources_directly(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source) {
                if as_stream_table(&provider).is_some() {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn dedup_operator(
    id: usize,
    input: &Arc<LogicalPlan>,
    on: Vec<Expr>,
    select: Vec<Expr>,
    within_watermark: bool,
    output_schema: DFSchemaRef,
) -> Result<StatefulOperator> {
    let input_schema = input.schema();
    let event_time = event_time_of(input_schema.fields().iter().enumerate().map(|(i, f)| (i, f.as_ref().clone())));
    if within_watermark && event_time.is_none() {
        return Err(SluiceError::user(
            "dropDuplicatesWithinWatermark is not supported on streaming DataFrames/DataSets without watermark",
        ));
    }
    // Evictable only when the event-time column itself is one of the keys.
    let key_event_time = event_time.and_then(|et| {
        let (q, f) = input_schema.qualified_field(et.index);
        let et_col = Column::new(q.cloned(), f.name());
        on.iter().position(|k| matches!(k, Expr::Column(c) if c == &et_col || (c.relation.is_none() && c.name == et_col.name)))
    });
    Ok(StatefulOperator {
        id,
        inputs: vec![input_of(input)?],
        kind: OperatorKind::Dedup { on, select, event_time, key_event_time, within_watermark },
        plan: input.as_ref().clone(),
        output_schema,
    })
}

/// A scan of operator `id`'s output that yields exactly `schema` (qualifiers included), so the
/// plan above the operator resolves unchanged.
fn positional_schema(schema: &DFSchemaRef) -> arrow::datatypes::SchemaRef {
    let fields: Vec<Field> =
        schema.fields().iter().enumerate().map(|(i, f)| f.as_ref().clone().with_name(format!("c{i}"))).collect();
    Arc::new(Schema::new(fields))
}

fn operator_output_scan(id: usize, schema: &DFSchemaRef) -> Result<LogicalPlan> {
    let table = format!("__op{id}");
    let provider = Arc::new(OperatorOutputTable { op: id, schema: positional_schema(schema) });
    let scan = LogicalPlanBuilder::scan(table.as_str(), provider_as_source(provider), None)?.build()?;
    let exprs: Vec<Expr> = schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            Expr::Column(Column::new(Some(table.clone()), format!("c{i}"))).alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(LogicalPlanBuilder::from(scan).project(exprs)?.build()?)
}

/// Operator ids whose outputs feed `plan` (the scans [`build_pipeline`] inserted).
pub fn operator_inputs(plan: &LogicalPlan) -> Vec<usize> {
    let mut out = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source) {
                if let Some(t) = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<OperatorOutputTable>() {
                    out.push(t.op);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// Checks Spark's rules that depend on the stateful operators (docs/semantics.md §5).
pub fn check_pipeline(pipeline: &StreamingPipeline, mode: OutputMode) -> Result<()> {
    let ops = &pipeline.operators;
    for (i, op) in ops.iter().enumerate() {
        let below_another = i + 1 < ops.len();
        match &op.kind {
            OperatorKind::Aggregate { event_time, .. } => {
                if mode == OutputMode::Append && event_time.is_none() {
                    return Err(SluiceError::user(
                        "Append output mode not supported when there are streaming aggregations on streaming DataFrames/DataSets without watermark",
                    ));
                }
                if below_another && mode != OutputMode::Append {
                    return Err(SluiceError::user(format!(
                        "Detected pattern of possible 'correctness' issue due to global watermark. The query contains stateful operation which can emit rows older than the current watermark plus allowed late record delay, which are \"late rows\" in downstream stateful operations and these rows can be discarded. Please refer the programming guide doc for more details. If you understand the possible risk of correctness issue and still need to run the query, you can disable this check by setting the config `spark.sql.streaming.statefulOperator.checkCorrectness.enabled` to false. (aggregation in {} output mode below another stateful operator)",
                        mode.spark_name()
                    )));
                }
            }
            OperatorKind::SessionAggregate { group_count, .. } => {
                if mode == OutputMode::Update {
                    return Err(SluiceError::user(
                        "Update output mode not supported for session window on streaming DataFrames/DataSets",
                    ));
                }
                if *group_count < 2 {
                    return Err(SluiceError::user("Global aggregation with session window in streaming query is not supported."));
                }
            }
            OperatorKind::Dedup { .. } => {}
            OperatorKind::Join(join) => {
                if mode != OutputMode::Append {
                    return Err(SluiceError::user(format!(
                        "Join between two streaming DataFrames/Datasets is not supported in {} output mode, only in Append output mode",
                        mode.spark_name()
                    )));
                }
                join.check_watermarks()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join::{JoinSideSpec, SolvedBound, StateEviction, StateWatermarkBound};
    use datafusion::logical_expr::JoinType;

    fn operator(id: usize, inputs: Vec<OperatorInput>, kind: OperatorKind) -> StatefulOperator {
        let plan = LogicalPlanBuilder::empty(false).build().unwrap();
        let output_schema = Arc::clone(plan.schema());
        StatefulOperator { id, inputs, kind, plan, output_schema }
    }

    fn aggregate() -> OperatorKind {
        OperatorKind::Aggregate { group_count: 1, event_time: None, panes: None }
    }

    /// A join whose left state watermark is the watermark − 5001 ms; the right side never evicts.
    fn join() -> OperatorKind {
        let side = |eviction| JoinSideSpec {
            plan: LogicalPlanBuilder::empty(false).build().unwrap(),
            keys: Vec::new(),
            pre_filter: None,
            event_time: None,
            eviction,
            range_bound: None,
        };
        let bound = StateWatermarkBound {
            conjuncts: vec![SolvedBound { watermark_coef: 1.0, offset_us: -5_000_000.0, inclusive: true }],
        };
        let column = EventTimeColumn { index: 0, is_window: false, delay_ms: 10_000 };
        OperatorKind::Join(Box::new(StreamJoin {
            join_type: JoinType::Inner,
            left: side(StateEviction::Value { column, bound }),
            right: side(StateEviction::Never),
            post_filter: None,
            watermark_in_keys: false,
        }))
    }

    #[test]
    fn operators_see_their_inputs_watermarks_held_back_by_joins() {
        // aggregation (streams) → right side of a join (left: streams) → aggregation.
        let pipeline = StreamingPipeline {
            operators: vec![
                operator(0, vec![OperatorInput::Sources], aggregate()),
                operator(1, vec![OperatorInput::Sources, OperatorInput::Operator(0)], join()),
                operator(2, vec![OperatorInput::Operator(1)], aggregate()),
            ],
            output: LogicalPlanBuilder::empty(false).build().unwrap(),
            needs_gather: false,
        };
        let batch = BatchWatermarks { late_ms: 10_000, eviction_ms: 20_000 };
        assert_eq!(pipeline.watermarks_for(0, &batch), batch);
        assert_eq!(pipeline.watermarks_for(1, &batch), batch);
        assert_eq!(pipeline.watermarks_for(2, &batch), BatchWatermarks { late_ms: 4_999, eviction_ms: 14_999 });
        assert_eq!(pipeline.consumers_of(0), [(1, 1)]);
        assert_eq!(pipeline.consumers_of(1), [(2, 0)]);
        assert_eq!(pipeline.consumers_of(2), []);
    }
}
