//! DataFusion tables behind a streaming query's names.
//!
//! A query's SQL is planned once per executor; what changes per task is *which rows* each stream
//! name stands for. Every table therefore scans with a [`TaskRowsExec`], which reads its rows from
//! the [`TaskInput`] in the session config of the task that executes it, so one physical plan
//! serves every task of a batch. Static tables are read in full, once per batch per executor, as
//! Spark re-reads the static side of a stream-static join.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties, ReplaceChildrenOptions,
    SendableRecordBatchStream,
};
use futures::TryStreamExt;
use tokio::sync::Mutex;

use sluice_connectors::{Connectors, TableSpec};

/// The rows one task feeds into the query, by source index.
#[derive(Debug)]
pub struct TaskInput {
    /// Rows of each source for this task; sources not listed are empty.
    pub sources: HashMap<usize, Vec<RecordBatch>>,
    /// Rows a stateful operator emitted, by operator id, for the plan fragment above it.
    pub operator_outputs: HashMap<usize, Vec<RecordBatch>>,
    /// Static tables read for this batch, shared by the batch's tasks on one executor.
    pub static_tables: Arc<StaticTableCache>,
}

impl TaskInput {
    /// Input with no rows yet, reading static tables through `static_tables`.
    pub fn new(static_tables: Arc<StaticTableCache>) -> Self {
        Self { sources: HashMap::new(), operator_outputs: HashMap::new(), static_tables }
    }

    /// Adds the rows of source `index`.
    pub fn with_source(mut self, index: usize, rows: Vec<RecordBatch>) -> Self {
        self.sources.insert(index, rows);
        self
    }

    /// Adds the rows stateful operator `op` emitted.
    pub fn with_operator_output(mut self, op: usize, rows: Vec<RecordBatch>) -> Self {
        self.operator_outputs.insert(op, rows);
        self
    }
}

/// Static table contents for one batch, read on first use through the tables' connectors.
pub struct StaticTableCache {
    connectors: Connectors,
    tables: Mutex<HashMap<String, Arc<Vec<RecordBatch>>>>,
}

impl fmt::Debug for StaticTableCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticTableCache")
    }
}

impl StaticTableCache {
    /// An empty cache reading tables through `connectors`.
    pub fn new(connectors: Connectors) -> Self {
        Self { connectors, tables: Mutex::default() }
    }

    async fn get_or_read(&self, spec: &TableSpec) -> sluice_common::error::Result<Arc<Vec<RecordBatch>>> {
        let mut map = self.tables.lock().await;
        if let Some(rows) = map.get(&spec.name) {
            return Ok(Arc::clone(rows));
        }
        let rows = Arc::new(self.connectors.table(&spec.connector)?.read(spec).await?);
        map.insert(spec.name.clone(), Arc::clone(&rows));
        Ok(rows)
    }
}

/// Which of a task's rows a [`TaskRowsExec`] reads.
#[derive(Debug, Clone)]
enum TaskRows {
    /// `TaskInput::sources[index]`.
    Source(usize),
    /// `TaskInput::operator_outputs[op]`.
    OperatorOutput(usize),
    /// A static table, through `TaskInput::static_tables`.
    Static(TableSpec),
}

/// The scan behind every table of a query: it takes its rows from the [`TaskInput`] of the
/// context it is *executed* in, not the one it was planned in. A fragment is therefore planned
/// once and run by every task (see `CompiledQuery::fragment`); planning per task was a large
/// part of a state partition's task with 200 partitions.
#[derive(Debug)]
pub struct TaskRowsExec {
    rows: TaskRows,
    /// Columns read, as positions in the table's schema (`None`: all).
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl TaskRowsExec {
    /// The scan of `rows`, reading `projection` of `table_schema`'s columns.
    fn plan(rows: TaskRows, table_schema: &SchemaRef, projection: Option<&Vec<usize>>) -> DFResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(table_schema.project(p)?),
            None => Arc::clone(table_schema),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(Self { rows, projection: projection.cloned(), properties: Arc::new(properties) }))
    }

    fn project(&self, batch: &RecordBatch) -> DFResult<RecordBatch> {
        Ok(match &self.projection {
            Some(p) => batch.project(p)?,
            None => batch.clone(),
        })
    }
}

impl DisplayAs for TaskRowsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.rows {
            TaskRows::Source(i) => write!(f, "TaskRowsExec: source={i}"),
            TaskRows::OperatorOutput(op) => write!(f, "TaskRowsExec: operator={op}"),
            TaskRows::Static(spec) => write!(f, "TaskRowsExec: table={}", spec.name),
        }
    }
}

impl ExecutionPlan for TaskRowsExec {
    fn name(&self) -> &str {
        "TaskRowsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, _partition: usize, context: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        let schema = self.schema();
        let Some(input) = context.session_config().get_extension::<TaskInput>() else {
            return Err(DataFusionError::Internal(format!("{} executed outside a task", self.name())));
        };
        let rows = match &self.rows {
            TaskRows::Source(i) => input.sources.get(i).cloned().unwrap_or_default(),
            TaskRows::OperatorOutput(op) => input.operator_outputs.get(op).cloned().unwrap_or_default(),
            TaskRows::Static(spec) => {
                // Read on first use per batch and executor, shared by the batch's tasks.
                let (spec, projection) = (spec.clone(), self.projection.clone());
                let batch_size = context.session_config().batch_size();
                let read = async move {
                    let rows = input.static_tables.get_or_read(&spec).await?;
                    let projected = rows
                        .iter()
                        .map(|b| {
                            Ok(match &projection {
                                Some(p) => b.project(p)?,
                                None => b.clone(),
                            })
                        })
                        .collect::<DFResult<Vec<_>>>()?;
                    Ok::<_, DataFusionError>(futures::stream::iter(in_chunks(projected, batch_size).into_iter().map(Ok)))
                };
                return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::once(read).try_flatten())));
            }
        };
        let projected = rows.iter().map(|b| self.project(b)).collect::<DFResult<Vec<_>>>()?;
        let chunks = in_chunks(projected, context.session_config().batch_size());
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(chunks.into_iter().map(Ok)))))
    }
}

/// `batches` cut into slices of at most `max_rows` rows (views, no copies), in order.
///
/// Why: a task's input often arrives as one batch per split or file — hundreds of thousands of
/// rows — and DataFusion's operators size their scratch buffers (hashes, group indices,
/// selection vectors) by the batch. Over one huge batch those are megabytes allocated afresh,
/// page-faulted in and evicted from the caches; over batches of DataFusion's own size they are
/// reused and stay in cache (a sixth of Nexmark q5's map-side aggregation was page faults).
pub fn in_chunks(batches: impl IntoIterator<Item = RecordBatch>, max_rows: usize) -> Vec<RecordBatch> {
    let max_rows = max_rows.max(1);
    let mut out = Vec::new();
    for batch in batches {
        let n = batch.num_rows();
        if n <= max_rows {
            out.push(batch);
            continue;
        }
        out.extend((0..n).step_by(max_rows).map(|start| batch.slice(start, max_rows.min(n - start))));
    }
    out
}

/// A stream name in a query: source `index`, rows from the task's [`TaskInput`].
pub struct StreamTable {
    /// The stream's name as the SQL refers to it (its `CREATE STREAM` name).
    pub name: String,
    /// Source index: position in `QuerySpec::sources` and key of its rows in `TaskInput::sources`.
    pub index: usize,
    /// Declared columns then computed columns, as the `SourceProjection` outputs them (watermark metadata included).
    pub schema: SchemaRef,
}

impl fmt::Debug for StreamTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamTable({} #{})", self.name, self.index)
    }
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        TaskRowsExec::plan(TaskRows::Source(self.index), &self.schema, projection)
    }
}

/// A `CREATE TABLE` in a query.
pub struct StaticTable {
    /// The `CREATE TABLE`'s connector, options and schema; rows come through the task's `StaticTableCache`.
    pub spec: TableSpec,
}

impl fmt::Debug for StaticTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticTable({})", self.spec.name)
    }
}

#[async_trait]
impl TableProvider for StaticTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.spec.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        TaskRowsExec::plan(TaskRows::Static(self.spec.clone()), &self.spec.schema, projection)
    }
}

/// The output of stateful operator `op`, as a table for the plan fragment above it.
///
/// Columns are named positionally (`c0`, `c1`, …) because the operator's output may hold
/// equal names under different qualifiers; a projection above the scan restores the original
/// qualified names (see `plan::streaming`).
pub struct OperatorOutputTable {
    /// Id of the stateful operator (`StatefulOperator::id`); its rows are `TaskInput::operator_outputs[op]`.
    pub op: usize,
    /// The operator's output types under positional names (`c0`, `c1`, …).
    pub schema: SchemaRef,
}

impl fmt::Debug for OperatorOutputTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperatorOutput({})", self.op)
    }
}

#[async_trait]
impl TableProvider for OperatorOutputTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        TaskRowsExec::plan(TaskRows::OperatorOutput(self.op), &self.schema, projection)
    }
}

/// Lets callers find the stream behind a scan.
pub fn as_stream_table(provider: &Arc<dyn TableProvider>) -> Option<&StreamTable> {
    (provider.as_ref() as &dyn Any).downcast_ref::<StreamTable>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(values: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(values))]).expect("a batch")
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column(0).as_any().downcast_ref::<Int64Array>().expect("int64");
                (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn chunks_keep_every_row_in_order_and_respect_the_size() {
        let input = vec![batch(0..10), batch(10..13), batch(13..13), batch(13..30)];
        let chunks = in_chunks(input.clone(), 4);
        assert_eq!(values(&chunks), (0..30).collect::<Vec<_>>());
        assert!(chunks.iter().all(|b| b.num_rows() <= 4));
        // 10 rows → 4+4+2, 3 rows and the empty batch as they are, 17 rows → 4+4+4+4+1.
        let sizes: Vec<usize> = chunks.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![4, 4, 2, 3, 0, 4, 4, 4, 4, 1]);
        // A size of 0 is taken as 1 rather than looping forever.
        assert_eq!(in_chunks(vec![batch(0..3)], 0).len(), 3);
    }
}
