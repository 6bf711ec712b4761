//! Planning against a client session and the driver's session: what [`PlanEnv`] asks for.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
use futures::FutureExt;
use sluice_driver::batch::MemoryRelation;

use crate::error::{ConnectError, Result};
use crate::plan::relation::Planner;
use crate::plan::{PlanEnv, PlannedFrame};
use crate::proto::Relation;
use crate::session::ClientSession;

/// A client session over the driver session its queries run in.
pub struct Env<'a> {
    /// The client's session.
    pub client: &'a Arc<ClientSession>,
    /// The driver's session.
    pub driver: &'a sluice_driver::Session,
}

impl Env<'_> {
    /// Where errors of this session's jobs say they come from.
    pub fn origin(&self) -> String {
        format!("spark-connect:{}", self.client.id)
    }

    /// Plans `rel`.
    pub async fn plan(&self, rel: &Relation) -> Result<PlannedFrame> {
        Planner::new(self).plan(rel).await
    }

    /// Plans and runs a batch DataFrame, refusing a streaming one as Spark does.
    pub async fn run_batch(&self, frame: &PlannedFrame) -> Result<(SchemaRef, Vec<arrow::array::RecordBatch>)> {
        if frame.is_streaming() {
            return Err(ConnectError::analysis("Queries with streaming sources must be executed with writeStream.start();")
                .with_error_class("_LEGACY_ERROR_TEMP_1105", "42000"));
        }
        let memory: Vec<MemoryRelation> = frame.decls.memory.values().cloned().collect();
        Ok(self.driver.run_batch(&self.origin(), &frame.probe_job_text(), &memory).await?)
    }
}

impl PlanEnv for Env<'_> {
    fn temp_view(&self, name: &str) -> Option<Relation> {
        self.client.view(name)
    }

    fn memory_relation(&self, name: &str) -> Option<MemoryRelation> {
        self.client.memory_relation(name)
    }

    fn table(&self, name: &str) -> Option<(String, SchemaRef)> {
        self.client.table(name)
    }

    fn schema<'a>(&'a self, frame: &'a PlannedFrame) -> BoxFuture<'a, Result<SchemaRef>> {
        async move {
            let text = frame.probe_job_text();
            let schema = if frame.is_streaming() {
                self.driver.query_schema(&self.origin(), &text).await?
            } else {
                let memory: Vec<MemoryRelation> = frame.decls.memory.values().cloned().collect();
                self.driver.batch_schema(&self.origin(), &text, &memory).await?
            };
            Ok(Arc::clone(&schema))
        }
        .boxed()
    }
}
