//! Batch queries of a session — what a Spark Connect client asks for besides streams: the
//! static side of a join read on its own (`spark.read…show()`), `collect()`/`toPandas()` of a
//! static DataFrame, and `spark.sql("select * from <memory sink>")`.
//!
//! A batch query is a job text whose `CREATE TABLE`s and `CREATE VIEW`s it reads and whose one
//! `INSERT INTO` holds the SELECT (its sink is not used): the same language, secrets and policy
//! as a streaming job, planned with the same DataFusion session and Spark functions. It runs on
//! the driver, over tables read whole — the size of what a user pulls to the client anyway.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::collect;
use sluice_common::error::{Result, SluiceError};
use sluice_plan::compile::plan_sql;
use sluice_plan::tables::StaticTable;
use sluice_plan::{base_session_state, StaticTableCache, TaskInput};

use crate::job::JobFile;
use crate::session::Session;

/// A memory sink's rows under the name queries read it by (its query name), with its schema
/// for when no batch has been stored yet.
#[derive(Debug, Clone)]
pub struct MemoryRelation {
    /// The name the SQL refers to.
    pub name: String,
    /// The sink's output schema.
    pub schema: SchemaRef,
    /// Fixed rows (a foreachBatch batch); `None` reads the session's memory sink of that name.
    pub rows: Option<Arc<Vec<RecordBatch>>>,
}

impl Session {
    /// Plans the batch query of `text` and returns its output schema, reading nothing but what
    /// a table's schema needs (a Parquet footer).
    pub async fn batch_schema(&self, origin: &str, text: &str, memory: &[MemoryRelation]) -> Result<SchemaRef> {
        let (_, plan) = self.plan_batch(origin, text, memory).await?;
        Ok(Arc::new(plan.schema().as_arrow().clone()))
    }

    /// Runs the batch query of `text` and returns its rows.
    pub async fn run_batch(&self, origin: &str, text: &str, memory: &[MemoryRelation]) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let (ctx, plan) = self.plan_batch(origin, text, memory).await?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let mut state = ctx.state();
        let input = TaskInput::new(Arc::new(StaticTableCache::new(self.connectors().clone())));
        state.config_mut().set_extension(Arc::new(input));
        state.execution_props_mut().query_execution_start_time = Some(chrono::Utc::now());
        let optimized = state.optimize(&plan)?;
        let physical = state.create_physical_plan(&optimized).await?;
        let rows = collect(physical, state.task_ctx()).await?;
        Ok((schema, rows))
    }

    async fn plan_batch(&self, origin: &str, text: &str, memory: &[MemoryRelation]) -> Result<(SessionContext, LogicalPlan)> {
        let mut job = JobFile::parse(origin, text)?;
        self.secrets().resolve(&mut job)?;
        if let Some(stream) = job.streams.keys().next() {
            return Err(SluiceError::user(format!("a batch query cannot read the stream '{stream}'")));
        }
        let [query] = job.queries.as_slice() else {
            return Err(SluiceError::internal("a batch query has exactly one SELECT"));
        };
        self.check_tables(&job)?;
        let ctx = SessionContext::new_with_state(base_session_state());
        for def in job.tables.values() {
            let spec = self.connectors().resolve_table(&def.name, &def.options, &def.declared_schema()).await?;
            ctx.register_table(def.name.as_str(), Arc::new(StaticTable { spec }))?;
        }
        for m in memory {
            let rows = match &m.rows {
                Some(rows) => rows.as_ref().clone(),
                None => self.memory_table(&m.name).map(|t| t.all_rows()).unwrap_or_default(),
            };
            let table = MemTable::try_new(Arc::clone(&m.schema), vec![rows])?;
            ctx.register_table(m.name.as_str(), Arc::new(table))?;
        }
        for (name, sql) in &job.views {
            let plan = plan_sql(&ctx.state(), sql).await.map_err(|e| e.context(format!("view '{name}'")))?;
            ctx.register_table(name.as_str(), Arc::new(datafusion::datasource::ViewTable::new(plan, Some(sql.clone()))))?;
        }
        let plan = plan_sql(&ctx.state(), &query.select_sql).await?;
        Ok((ctx, plan))
    }
}
