//! Turning a [`QuerySpec`] into a DataFusion plan, identically on the driver and on executors.
//!
//! The driver compiles to validate the query (names, types, Spark's unsupported operations) and
//! to learn its output schema; executors compile the same spec once per query run and reuse the
//! logical plan for every task (see [`super::tables`]). SQL is parsed with sqlparser's Spark
//! dialect and handed to DataFusion as an AST, so `STRUCT<…>`, backticks and `LONG` mean what
//! Spark users expect.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::DFSchema;
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::{provider_as_source, source_as_provider, ViewTable};
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{SessionStateDefaults, TaskContext};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{collect, ExecutionPlan, PhysicalExpr};
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, ExprWithAlias, Statement};

use sluice_common::error::{Result, SluiceError};
use sluice_common::types::SparkTypePlanner;

use super::tables::{as_stream_table, StaticTable, StreamTable, TaskInput};
use crate::functions::register_spark_functions;
use crate::spec::{QuerySpec, StreamSpec};

/// A DataFusion session configured the way every sluice plan needs: one partition per task
/// (parallelism comes from tasks, and row order within a split is preserved), case-preserving
/// identifiers, plain `Utf8` strings, Spark types and functions.
pub fn base_session_state() -> SessionState {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false)
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
        .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
        .set_bool("datafusion.execution.parquet.schema_force_view_types", false)
        .set_str("datafusion.execution.time_zone", "UTC");
    config.options_mut().optimizer.repartition_joins = false;
    config.options_mut().optimizer.repartition_aggregations = false;
    // A physical plan is shared by a batch's tasks (`CompiledQuery::fragment`): a filter a join or
    // a top-k derives from one task's rows must not reach another task's scan. The scans hold
    // rows in memory and could not use one anyway.
    config.options_mut().optimizer.enable_dynamic_filter_pushdown = false;
    config.options_mut().optimizer.enable_join_dynamic_filter_pushdown = false;
    config.options_mut().optimizer.enable_topk_dynamic_filter_pushdown = false;
    config.options_mut().optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    // Streaming aggregation splits DataFusion's partial and final aggregation across a shuffle,
    // so the physical optimizer must not fuse them, nor answer COUNT(*) from statistics.
    let physical_rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|r| !matches!(r.name(), "CombinePartialFinalAggregate" | "aggregate_statistics"))
        .collect();
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_scalar_functions(SessionStateDefaults::default_scalar_functions())
        .with_type_planner(Arc::new(SparkTypePlanner))
        .with_physical_optimizer_rules(physical_rules)
        .build();
    register_spark_functions(&mut state);
    state
}

/// Parses one SELECT (or any query expression) with the Spark dialect.
pub fn parse_query(sql: &str) -> Result<Statement> {
    let query =
        sluice_common::dialect::parse(sql, |p| p.parse_query()).map_err(|e| SluiceError::user(format!("invalid SQL: {e}")))?;
    let mut stmt = Statement::Query(query);
    crate::literals::type_numeric_literals(&mut stmt);
    Ok(stmt)
}

/// Plans `sql` against the tables registered in `state`.
pub async fn plan_sql(state: &SessionState, sql: &str) -> Result<LogicalPlan> {
    let stmt = parse_query(sql)?;
    let plan = state.statement_to_plan(DFStatement::Statement(Box::new(stmt))).await?;
    // Run the analyzer now (view inlining, type coercion, Spark casts) so every consumer of the
    // plan sees the final shape.
    let analyzed = state.analyzer().execute_and_check(plan, state.config_options(), |_, _| {})?;
    Ok(analyzed)
}

/// A compiled query: the session with its tables and the analyzed plan of the SELECT.
#[derive(Debug, Clone)]
pub struct CompiledQuery {
    /// The spec it was compiled from (sources, sink, output mode, conf): what tasks consult at run time.
    pub spec: Arc<QuerySpec>,
    /// Session with the query's streams, tables and views registered.
    pub state: SessionState,
    /// The analyzed (not yet optimized) plan of the SELECT.
    pub plan: LogicalPlan,
    /// Output columns.
    pub schema: SchemaRef,
    /// Per source index: computed columns and watermark applied to each split's rows.
    pub source_projections: Vec<SourceProjection>,
    /// The plan cut at its stateful operators.
    pub pipeline: crate::streaming::StreamingPipeline,
    /// The session's execution context, made once: making one copies every function registry
    /// (hundreds of entries), which was most of an empty state partition's task.
    task_ctx: Arc<TaskContext>,
    /// Physical plans of the fragments tasks run, each for one batch timestamp (see
    /// [`CompiledQuery::fragment`]).
    fragments: Arc<std::sync::Mutex<FragmentPlans>>,
}

/// Each fragment's physical plan, with the batch timestamp it was planned for.
type FragmentPlans = HashMap<Fragment, (i64, Arc<dyn ExecutionPlan>)>;

/// A piece of a query's plan that every task of a stage runs over its own rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// The plan above the last stateful operator: the whole query when it is stateless.
    Output,
    /// The map side of input `input` of stateful operator `op`.
    MapInput {
        /// The operator's id.
        op: usize,
        /// The input: 0, or 1 for a join's right side.
        input: usize,
    },
}

impl CompiledQuery {
    /// Compiles `spec`.
    pub async fn compile(spec: Arc<QuerySpec>) -> Result<Self> {
        let ctx = SessionContext::new_with_state(base_session_state());
        let mut source_projections = Vec::with_capacity(spec.sources.len());
        for source in &spec.sources {
            let projection = SourceProjection::compile(&ctx.state(), source)
                .await
                .map_err(|e| e.context(format!("stream '{}'", source.source.name)))?;
            let table = StreamTable {
                name: source.source.name.clone(),
                index: source.source.index,
                schema: Arc::clone(&projection.schema),
            };
            ctx.register_table(source.source.name.as_str(), Arc::new(table))?;
            source_projections.push(projection);
        }
        for table in &spec.tables {
            ctx.register_table(table.name.as_str(), Arc::new(StaticTable { spec: table.clone() }))?;
        }
        for (name, sql) in &spec.views {
            let plan = plan_sql(&ctx.state(), sql).await.map_err(|e| e.context(format!("view '{name}'")))?;
            ctx.register_table(name.as_str(), Arc::new(ViewTable::new(plan, Some(sql.clone()))))?;
        }
        let state = ctx.state();
        let plan = plan_sql(&state, &spec.select_sql).await?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let pipeline = crate::streaming::build_pipeline(&plan, spec.conf.share_identical_operators)?;
        let task_ctx = state.task_ctx();
        Ok(Self { spec, state, plan, schema, source_projections, pipeline, task_ctx, fragments: Default::default() })
    }

    /// The context stateful operators run their merge and finish steps in (the session's
    /// configuration, functions and memory pool; nothing batch-specific).
    pub fn task_ctx(&self) -> Arc<TaskContext> {
        Arc::clone(&self.task_ctx)
    }

    /// Source indices in the order their scans appear in the plan (Spark's source order).
    pub fn sources_in_plan_order(&self) -> Vec<usize> {
        scanned_sources(&self.plan)
    }
}

/// Stream source indices scanned by `plan`, in pre-order, each once.
pub fn scanned_sources(plan: &LogicalPlan) -> Vec<usize> {
    let mut out = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source) {
                if let Some(stream) = as_stream_table(&provider) {
                    if !out.contains(&stream.index) {
                        out.push(stream.index);
                    }
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// A stream's per-row preparation on executors: evaluate computed columns, then locate the
/// watermark column whose event-time statistics drive the watermark.
///
/// Computed columns are evaluated in order, each over the declared columns and the computed
/// ones before it; one named like an earlier column replaces it in place. That is how a chain
/// of projections before `withWatermark` (a Spark Connect client's `selectExpr` → `from_json`
/// → `select("data.*")` → `withWatermark`) becomes a stream's columns.
#[derive(Debug, Clone)]
pub struct SourceProjection {
    /// Declared columns, then computed columns not replacing one of them.
    pub schema: SchemaRef,
    /// Each computed column: its expression over the columns before it, and the position it
    /// replaces (`None`: appended).
    computed: Vec<(Arc<dyn PhysicalExpr>, Option<usize>)>,
    /// Index of the watermark column in `schema`, if any.
    pub watermark_column: Option<usize>,
}

impl SourceProjection {
    async fn compile(state: &SessionState, source: &StreamSpec) -> Result<Self> {
        let declared = Arc::clone(source.declared_schema());
        let mut fields: Vec<arrow::datatypes::FieldRef> = declared.fields().iter().cloned().collect();
        let mut computed = Vec::with_capacity(source.computed.len());
        for c in &source.computed {
            let current = Arc::new(arrow::datatypes::Schema::new(fields.clone()));
            let df_schema = DFSchema::try_from(current.as_ref().clone())?;
            let sql_expr = parse_expr(&c.expr)?;
            let expr = state
                .create_logical_expr_from_sql_expr(ExprWithAlias { expr: sql_expr, alias: None }, &df_schema)
                .map_err(|e| SluiceError::from(e).context(format!("computed column '{}'", c.name)))?
                .alias(c.name.as_str());
            // Plan the expression as a projection so the analyzer (type coercion, Spark's cast
            // rules) treats it exactly as it treats the query's own expressions.
            let scan = LogicalPlanBuilder::scan("__source", provider_as_source(Arc::new(EmptyTable::new(current))), None)?
                .project(vec![expr])?
                .build()?;
            let analyzed = state.analyzer().execute_and_check(scan, state.config_options(), |_, _| {})?;
            let LogicalPlan::Projection(projection) = analyzed else {
                return Err(SluiceError::internal("computed columns did not plan to a projection"));
            };
            let (Some(expr), Some(field)) = (projection.expr.first(), projection.schema.fields().first()) else {
                return Err(SluiceError::internal("a computed column planned to no expression"));
            };
            let physical = state.create_physical_expr(expr.clone(), projection.input.schema())?;
            let field = Arc::new(arrow::datatypes::Field::new(field.name(), field.data_type().clone(), true));
            let replaces = fields.iter().position(|f| f.name() == &c.name);
            match replaces {
                Some(i) => fields[i] = field,
                None => fields.push(field),
            }
            computed.push((physical, replaces));
        }
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        let watermark_column = match &source.watermark {
            None => None,
            Some(wm) => {
                let idx = schema
                    .index_of(&wm.column)
                    .map_err(|_| SluiceError::user(format!("WATERMARK FOR {}: no such column", wm.column)))?;
                if !matches!(schema.field(idx).data_type(), arrow::datatypes::DataType::Timestamp(..)) {
                    return Err(SluiceError::user(format!(
                        "WATERMARK FOR {}: Event time must be defined on a window or a timestamp, but {} is of type {}",
                        wm.column,
                        wm.column,
                        sluice_common::types::spark_type_name(schema.field(idx).data_type())
                    )));
                }
                Some(idx)
            }
        };
        // Mark the watermark column as event time (Spark's `spark.watermarkDelayMs` metadata), so
        // windows over it and operators keyed by it know what the watermark evicts.
        let schema = match (&source.watermark, watermark_column) {
            (Some(wm), Some(idx)) => {
                let mut fields: Vec<arrow::datatypes::Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
                let key = sluice_common::types::WATERMARK_DELAY_KEY.to_string();
                fields[idx] = fields[idx].clone().with_metadata([(key, wm.delay_ms.to_string())].into_iter().collect());
                Arc::new(arrow::datatypes::Schema::new(fields))
            }
            _ => schema,
        };
        Ok(Self { schema, computed, watermark_column })
    }

    /// Adds the computed columns to a batch of declared columns.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if self.computed.is_empty() {
            return Ok(batch.clone());
        }
        let rows = batch.num_rows();
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        let mut current = batch.clone();
        for (expr, replaces) in &self.computed {
            let value = expr.evaluate(&current)?.into_array(rows)?;
            let mut fields: Vec<arrow::datatypes::FieldRef> = current.schema().fields().iter().cloned().collect();
            let mut columns = current.columns().to_vec();
            let field = Arc::new(arrow::datatypes::Field::new(
                self.schema.field(replaces.unwrap_or(fields.len())).name(),
                value.data_type().clone(),
                true,
            ));
            match replaces {
                Some(i) => {
                    fields[*i] = field;
                    columns[*i] = value;
                }
                None => {
                    fields.push(field);
                    columns.push(value);
                }
            }
            current = RecordBatch::try_new_with_options(Arc::new(arrow::datatypes::Schema::new(fields)), columns, &options)?;
        }
        Ok(RecordBatch::try_new_with_options(Arc::clone(&self.schema), current.columns().to_vec(), &options)?)
    }
}

fn parse_expr(sql: &str) -> Result<SqlExpr> {
    let mut expr = sluice_common::dialect::parse(sql, |p| p.parse_expr())
        .map_err(|e| SluiceError::user(format!("invalid expression '{sql}': {e}")))?;
    crate::literals::type_numeric_literals(&mut expr);
    Ok(expr)
}

impl CompiledQuery {
    /// The session plans are made in for a batch whose timestamp is `batch_timestamp_ms`
    /// (`current_timestamp()`, folded into a literal when optimising).
    pub fn planning_state(&self, batch_timestamp_ms: i64) -> SessionState {
        let mut state = self.state.clone();
        state.execution_props_mut().query_execution_start_time = chrono::DateTime::from_timestamp_millis(batch_timestamp_ms);
        state
    }

    /// The physical plan of `fragment` for a batch whose timestamp is `batch_timestamp_ms`:
    /// made by `plan` from [`Self::planning_state`] on first use, then shared by every task of
    /// the batch on this executor.
    ///
    /// Planning — optimising, then physical planning — cost far more than running a state
    /// partition's few rows, and every task paid it: with 200 state partitions it was a large
    /// part of a batch's CPU. A plan depends on the batch only through its timestamp; the scans
    /// take a task's rows when they execute (`TaskRowsExec`).
    pub async fn fragment<F, Fut>(&self, fragment: Fragment, batch_timestamp_ms: i64, plan: F) -> Result<Arc<dyn ExecutionPlan>>
    where
        F: FnOnce(SessionState) -> Fut,
        Fut: Future<Output = Result<Arc<dyn ExecutionPlan>>>,
    {
        let poisoned = || SluiceError::internal("fragment plan cache poisoned");
        let cached = self
            .fragments
            .lock()
            .map_err(|_| poisoned())?
            .get(&fragment)
            .and_then(|(at, p)| (*at == batch_timestamp_ms).then(|| Arc::clone(p)));
        if let Some(physical) = cached {
            return Ok(physical);
        }
        let physical = plan(self.planning_state(batch_timestamp_ms)).await?;
        self.fragments.lock().map_err(|_| poisoned())?.insert(fragment, (batch_timestamp_ms, Arc::clone(&physical)));
        Ok(physical)
    }

    /// Runs a fragment's plan over a task's rows.
    pub async fn run(&self, plan: &Arc<dyn ExecutionPlan>, input: Arc<TaskInput>) -> Result<Vec<RecordBatch>> {
        // Nodes that keep what they computed between executions (a hash join's build side) start
        // afresh; the others are shared.
        let plan = reset_plan_states(Arc::clone(plan))?;
        let config = self.task_ctx.session_config().clone().with_extension(input);
        // No function registries: a physical plan's functions are resolved already, and copying
        // the registries (hundreds of entries) costs more than a small task's work.
        let ctx = TaskContext::new(
            None,
            self.task_ctx.session_id(),
            config,
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            self.task_ctx.runtime_env(),
        );
        Ok(collect(plan, Arc::new(ctx)).await?)
    }

    /// Runs the query's output fragment (the whole query when it is stateless) over a task's
    /// input and returns its rows.
    pub async fn execute_output(&self, input: Arc<TaskInput>, batch_timestamp_ms: i64) -> Result<Vec<RecordBatch>> {
        let output = &self.pipeline.output;
        let plan = self
            .fragment(Fragment::Output, batch_timestamp_ms, |state| async move {
                let logical = state.optimize(output)?;
                Ok(state.query_planner().create_physical_plan(&logical, &state).await?)
            })
            .await?;
        self.run(&plan, input).await
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use sluice_common::conf::{OutputMode, QueryConf};
    use sluice_common::options::Options;
    use sluice_connectors::{Connectors, SinkSpec, SourceSpec};

    use super::*;
    use crate::tables::StaticTableCache;

    fn query(select_sql: &str) -> QuerySpec {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new("v", DataType::Int64, true)]));
        let source = SourceSpec { name: "s".into(), index: 0, connector: "memory".into(), options: Options::default(), schema };
        QuerySpec {
            query_id: uuid::Uuid::nil(),
            run_id: uuid::Uuid::nil(),
            name: None,
            select_sql: select_sql.into(),
            sources: vec![StreamSpec { source, computed: Vec::new(), watermark: None }],
            tables: Vec::new(),
            views: Vec::new(),
            sink: SinkSpec { name: "out".into(), connector: "memory".into(), options: Options::default() },
            output_mode: OutputMode::Append,
            conf: QueryConf::default(),
            checkpoint_url: "file:///unused".into(),
        }
    }

    fn rows(compiled: &CompiledQuery, k: Vec<i64>, v: Vec<i64>) -> Arc<TaskInput> {
        let batch = RecordBatch::try_new(
            Arc::clone(&compiled.source_projections[0].schema),
            vec![Arc::new(Int64Array::from(k)), Arc::new(Int64Array::from(v))],
        )
        .unwrap();
        Arc::new(TaskInput::new(Arc::new(StaticTableCache::new(Connectors::default()))).with_source(0, vec![batch]))
    }

    fn column(out: &[RecordBatch], i: usize) -> Vec<i64> {
        let mut values: Vec<i64> = out
            .iter()
            .flat_map(|b| {
                let c = b.column(i).as_any().downcast_ref::<Int64Array>().unwrap().clone();
                (0..c.len()).map(move |r| c.value(r))
            })
            .collect();
        values.sort();
        values
    }

    /// One physical plan per batch, shared by the batch's tasks: each task must still see only
    /// its own rows — through a hash join too, whose build side is kept between executions
    /// unless reset.
    #[tokio::test]
    async fn one_plan_serves_every_task_of_a_batch_with_its_own_rows() {
        let sql = "SELECT s.k, s.v * t.f AS w FROM s JOIN (VALUES (1, 2), (2, 2), (3, 2)) AS t(k, f) ON s.k = t.k WHERE s.v > 0";
        let compiled = CompiledQuery::compile(Arc::new(query(sql))).await.unwrap();
        let first = compiled.execute_output(rows(&compiled, vec![1, 2], vec![10, 20]), 1_000).await.unwrap();
        let second = compiled.execute_output(rows(&compiled, vec![2, 3], vec![5, -1]), 1_000).await.unwrap();
        assert_eq!(column(&first, 0), vec![1, 2]);
        assert_eq!(column(&first, 1), vec![20, 40]);
        assert_eq!(column(&second, 0), vec![2], "k=3 has v <= 0");
        assert_eq!(column(&second, 1), vec![10]);
        assert_eq!(compiled.fragments.lock().unwrap().len(), 1, "planned once");
    }

    /// (inputs, progress name) of every stateful operator `sql` is cut into, with the view
    /// `counts` defined as `view_sql`.
    async fn operators(view_sql: &str, sql: &str, share: bool) -> Vec<(Vec<crate::streaming::OperatorInput>, &'static str)> {
        let mut spec = query(sql);
        spec.views = vec![("counts".into(), view_sql.into())];
        spec.conf.share_identical_operators = share;
        let compiled = CompiledQuery::compile(Arc::new(spec)).await.unwrap();
        compiled.pipeline.operators.iter().map(|op| (op.inputs.clone(), op.progress_name())).collect()
    }

    /// A view used twice is one operator feeding both uses — unless sharing is off, or the view
    /// is volatile (two evaluations of `rand()` are two different results).
    #[tokio::test]
    async fn a_stateful_subquery_used_twice_is_planned_once() {
        use crate::streaming::OperatorInput::{Operator, Sources};
        let counts = "SELECT k, count(*) AS n FROM s GROUP BY k";
        let sql = "SELECT c.k, c.n FROM counts c JOIN (SELECT k, max(n) AS top FROM counts GROUP BY k) t ON c.k = t.k";
        let agg = "stateStoreSave";
        assert_eq!(
            operators(counts, sql, true).await,
            [(vec![Sources], agg), (vec![Operator(0)], agg), (vec![Operator(0), Operator(1)], "symmetricHashJoin")]
        );
        let unshared = [
            (vec![Sources], agg),
            (vec![Sources], agg),
            (vec![Operator(1)], agg),
            (vec![Operator(0), Operator(2)], "symmetricHashJoin"),
        ];
        assert_eq!(operators(counts, sql, false).await, unshared);
        let volatile = "SELECT k, count(*) AS n FROM s WHERE rand() < 0.5 GROUP BY k";
        assert_eq!(operators(volatile, sql, true).await, unshared);
    }
}
