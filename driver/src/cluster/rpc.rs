//! The driver's gRPC service: executors register and heartbeat here.

use sluice_proto::v1::driver_service_server::DriverService;
use sluice_proto::v1::{HeartbeatRequest, HeartbeatResponse, RegisterExecutorRequest, RegisterExecutorResponse};
use sluice_proto::PROTOCOL_VERSION;
use tonic::{Request, Response, Status};

use super::registry::ExecutorRegistry;

/// gRPC front of the [`ExecutorRegistry`].
pub struct DriverRpc {
    pub registry: ExecutorRegistry,
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
}
