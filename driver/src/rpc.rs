//! The driver's gRPC service: executors register and heartbeat here.

use std::sync::Arc;

use sluice_common::error::{ErrorKind, SluiceError};
use sluice_proto::v1::driver_service_server::DriverService;
use sluice_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, ListQueriesRequest, ListQueriesResponse, RegisterExecutorRequest,
    RegisterExecutorResponse, StopQueryRequest, StopQueryResponse, SubmitJobRequest, SubmitJobResponse,
};
use sluice_proto::PROTOCOL_VERSION;
use tonic::{Request, Response, Status};

use crate::manager::{status_of, Admin};
use crate::registry::ExecutorRegistry;

/// gRPC front of the [`ExecutorRegistry`] and of the driver's queries.
pub struct DriverRpc {
    /// Membership that `RegisterExecutor` and `Heartbeat` update.
    pub registry: ExecutorRegistry,
    /// Serves `SubmitJob`, `ListQueries` and `StopQuery`; on a standby it answers with the leader's address.
    pub admin: Arc<Admin>,
}

/// A user-facing error as a gRPC status (the message is the one line users see).
fn status(e: SluiceError) -> Status {
    match e.kind {
        ErrorKind::User => Status::invalid_argument(e.one_line()),
        ErrorKind::External => Status::unavailable(e.one_line()),
        ErrorKind::Internal => Status::internal(e.one_line()),
    }
}

#[tonic::async_trait]
impl DriverService for DriverRpc {
    async fn register_executor(
        &self,
        request: Request<RegisterExecutorRequest>,
    ) -> Result<Response<RegisterExecutorResponse>, Status> {
        let req = request.into_inner();
        if req.protocol_version != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "executor speaks protocol {} but this driver speaks {PROTOCOL_VERSION}",
                req.protocol_version
            )));
        }
        self.registry
            .register(&req.executor_id, &req.endpoint, req.task_slots as usize)
            .await
            .map_err(|e| Status::invalid_argument(e.one_line()))?;
        Ok(Response::new(RegisterExecutorResponse { protocol_version: PROTOCOL_VERSION }))
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let known = self.registry.heartbeat(&request.into_inner().executor_id).await;
        Ok(Response::new(HeartbeatResponse { reregister: !known }))
    }

    async fn submit_job(&self, request: Request<SubmitJobRequest>) -> Result<Response<SubmitJobResponse>, Status> {
        let req = request.into_inner();
        let manager = self.admin.manager().map_err(status)?;
        let queries = manager.submit(&req.origin, &req.job).await.map_err(status)?;
        Ok(Response::new(SubmitJobResponse { queries: queries.iter().map(|q| status_of(q, 0)).collect() }))
    }

    async fn list_queries(&self, _: Request<ListQueriesRequest>) -> Result<Response<ListQueriesResponse>, Status> {
        // A standby names the leader; a driver that knows of none (still starting, or between
        // leaders) says so rather than answer with an empty list as if it led.
        let response = match self.admin.manager() {
            Ok(m) => ListQueriesResponse { queries: m.statuses().await, leader: String::new() },
            Err(e) => match self.admin.leader() {
                leader if leader.is_empty() => return Err(status(e)),
                leader => ListQueriesResponse { queries: Vec::new(), leader },
            },
        };
        Ok(Response::new(response))
    }

    async fn stop_query(&self, request: Request<StopQueryRequest>) -> Result<Response<StopQueryResponse>, Status> {
        let manager = self.admin.manager().map_err(status)?;
        let stopped = manager.stop(&request.into_inner().query).await.map_err(status)?;
        Ok(Response::new(StopQueryResponse { query: Some(stopped) }))
    }
}
