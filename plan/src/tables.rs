//! DataFusion tables behind a streaming query's names.
//!
//! A query's SQL is planned once per executor; what changes per task is *which rows* each stream
//! name stands for. [`StreamTable`] therefore reads its rows from the [`TaskInput`] placed in the
//! task's session config, so one cached logical plan serves every task. Static tables are read
//! in full, once per batch per executor, as Spark re-reads the static side of a stream-static join.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
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

    /// A cache holding every one of `tables` empty, which reads nothing: for planning an
    /// operator's fixed pieces once per query, when there is no batch to read tables for.
    pub fn empty(connectors: Connectors, tables: &[TableSpec]) -> Self {
        let map = tables.iter().map(|t| (t.name.clone(), Arc::new(Vec::new()))).collect();
        Self { connectors, tables: Mutex::new(map) }
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

/// A scan of rows the task's [`TaskInput`] holds for one table (none: an empty table).
fn scan_task_rows(
    state: &dyn Session,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    pick: impl FnOnce(&TaskInput) -> Option<Vec<RecordBatch>>,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let rows = state.config().get_extension::<TaskInput>().and_then(|input| pick(&input)).unwrap_or_default();
    Ok(MemorySourceConfig::try_new_exec(&[rows], Arc::clone(schema), projection.cloned())?)
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
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        scan_task_rows(state, &self.schema, projection, |input| input.sources.get(&self.index).cloned())
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
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let Some(input) = state.config().get_extension::<TaskInput>() else {
            return Err(datafusion::error::DataFusionError::Internal(format!(
                "static table '{}' scanned outside a task",
                self.spec.name
            )));
        };
        let rows = input.static_tables.get_or_read(&self.spec).await?;
        Ok(MemorySourceConfig::try_new_exec(&[rows.as_ref().clone()], Arc::clone(&self.spec.schema), projection.cloned())?)
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
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        scan_task_rows(state, &self.schema, projection, |input| input.operator_outputs.get(&self.op).cloned())
    }
}

/// Lets callers find the stream behind a scan.
pub fn as_stream_table(provider: &Arc<dyn TableProvider>) -> Option<&StreamTable> {
    (provider.as_ref() as &dyn Any).downcast_ref::<StreamTable>()
}
