//! The driver's gRPC service: executors register and heartbeat here, and admin commands
//! (`sluice submit`, `queries`, `stop`) arrive.
//!
//! A standby forwards admin calls to the leader it knows, once: behind a Kubernetes Service
//! that spreads connections over every ready driver, a client need not know which one leads.

use std::sync::Arc;

use sluice_common::error::{ErrorKind, SluiceError};
use sluice_proto::v1::driver_service_client::DriverServiceClient;
use sluice_proto::v1::driver_service_server::DriverService;
use sluice_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, ListQueriesRequest, ListQueriesResponse, QueryEventMessage, RegisterExecutorRequest,
    RegisterExecutorResponse, StopQueryRequest, StopQueryResponse, SubmitJobRequest, SubmitJobResponse, WatchEventsRequest,
};
use sluice_proto::PROTOCOL_VERSION;
use sluice_security::Transport;
use tonic::{Request, Response, Status};

use crate::manager::{status_of, Admin, QueryManager};
use crate::query::events::Watched;
use crate::registry::ExecutorRegistry;
use futures::StreamExt;

/// gRPC front of the [`ExecutorRegistry`] and of the driver's queries.
pub struct DriverRpc {
    /// Membership that `RegisterExecutor` and `Heartbeat` update.
    pub registry: ExecutorRegistry,
    /// Serves `SubmitJob`, `ListQueries` and `StopQuery`; on a standby it answers with the leader's address.
    pub admin: Arc<Admin>,
    /// How a standby reaches the leader (as a member: its certificate authorizes the forwarded call).
    pub transport: Transport,
}

/// Marks a request a standby forwarded, so that two drivers that each believe the other leads
/// do not pass it back and forth.
const FORWARDED: &str = "x-sluice-forwarded";

/// Where an admin call is served: here (this driver leads) or at the leader.
enum Route {
    Here(Arc<QueryManager>),
    Leader(DriverServiceClient<tonic::transport::Channel>),
}

impl DriverRpc {
    /// Serves admin calls here when this driver leads; otherwise connects to the leader, unless
    /// the call was already forwarded once or no leader is known.
    async fn route<T>(&self, request: &Request<T>) -> Result<Route, Status> {
        let not_leading = match self.admin.manager() {
            Ok(m) => return Ok(Route::Here(m)),
            Err(e) => e,
        };
        let leader = self.admin.leader();
        if leader.is_empty() || request.metadata().contains_key(FORWARDED) {
            return Err(status(not_leading));
        }
        let unreachable =
            |e: String| Status::unavailable(format!("this driver is a standby and the leader at {leader} is unreachable: {e}"));
        let endpoint = self.transport.endpoint(&leader).map_err(|e| unreachable(e.one_line()))?;
        let channel = self.transport.connect(endpoint).await.map_err(|e| unreachable(e.to_string()))?;
        Ok(Route::Leader(DriverServiceClient::new(channel)))
    }
}

/// `message` as a request marked forwarded.
fn forwarded<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request
}

/// A user-facing error as a gRPC status (the message is the one line users see).
fn status(e: SluiceError) -> Status {
    match e.kind {
        ErrorKind::User => Status::invalid_argument(e.one_line()),
        ErrorKind::External => Status::unavailable(e.one_line()),
        ErrorKind::Internal => Status::internal(e.one_line()),
    }
}

/// The stream of `WatchEvents`: this driver's events, or the leader's passed through.
type EventStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<QueryEventMessage, Status>> + Send>>;

#[tonic::async_trait]
impl DriverService for DriverRpc {
    type WatchEventsStream = EventStream;

    async fn watch_events(&self, request: Request<WatchEventsRequest>) -> Result<Response<EventStream>, Status> {
        match self.route(&request).await? {
            Route::Leader(mut leader) => {
                let stream = leader.watch_events(forwarded(request.into_inner())).await?.into_inner();
                Ok(Response::new(Box::pin(stream)))
            }
            Route::Here(_) => {
                // A watcher that fell behind goes on with the newest events.
                let stream = self.admin.events.watch().filter_map(|w| async move {
                    match w {
                        Watched::Event(e) => Some(Ok(QueryEventMessage { kind: e.kind().to_string(), json: e.json() })),
                        Watched::Missed(_) => None,
                    }
                });
                Ok(Response::new(Box::pin(stream)))
            }
        }
    }

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
        let req = request.into_inner();
        let known = self.registry.heartbeat(&req.executor_id, req.decommissioning).await;
        Ok(Response::new(HeartbeatResponse { reregister: !known }))
    }

    async fn submit_job(&self, request: Request<SubmitJobRequest>) -> Result<Response<SubmitJobResponse>, Status> {
        match self.route(&request).await? {
            Route::Leader(mut leader) => leader.submit_job(forwarded(request.into_inner())).await,
            Route::Here(manager) => {
                let req = request.into_inner();
                let queries = manager.submit(&req.origin, &req.job).await.map_err(status)?;
                Ok(Response::new(SubmitJobResponse { queries: queries.iter().map(|q| status_of(q, 0)).collect() }))
            }
        }
    }

    async fn list_queries(&self, request: Request<ListQueriesRequest>) -> Result<Response<ListQueriesResponse>, Status> {
        // A driver that knows no leader (still starting, or between leaders) says so rather
        // than answer with an empty list as if it led.
        match self.route(&request).await? {
            Route::Leader(mut leader) => leader.list_queries(forwarded(request.into_inner())).await,
            Route::Here(manager) => {
                Ok(Response::new(ListQueriesResponse { queries: manager.statuses().await, leader: self.admin.endpoint() }))
            }
        }
    }

    async fn stop_query(&self, request: Request<StopQueryRequest>) -> Result<Response<StopQueryResponse>, Status> {
        match self.route(&request).await? {
            Route::Leader(mut leader) => leader.stop_query(forwarded(request.into_inner())).await,
            Route::Here(manager) => {
                let stopped = manager.stop(&request.into_inner().query).await.map_err(status)?;
                Ok(Response::new(StopQueryResponse { query: Some(stopped) }))
            }
        }
    }
}
