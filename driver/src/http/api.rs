//! The REST API v1: Spark's `StreamingQueryManager` and `StreamingQuery` over HTTP — list,
//! inspect and stop queries, read their progress, submit jobs (with the same checks as
//! `sluice submit`), see the executors — and the listener events as server-sent events.
//!
//! Errors are JSON `{"error": "<one line>"}`: 400 for bad input (a malformed id, a job that
//! does not parse or that the policy refuses), 404 for an unknown query, 503 while this driver
//! does not manage queries (a standby names the leader), 500 for sluice's own faults.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sluice_common::error::{ErrorKind, SluiceError};
use sluice_proto::v1::PingRequest;
use utoipa::{OpenApi, ToSchema};

use super::openapi::ApiDoc;
use crate::manager::{Admin, QueryManager};
use crate::query::events::Watched;
use crate::query::{QueryState, QueryStatus, StreamingQuery};

/// How long the executors page waits for an executor's answer before showing it unreachable.
const EXECUTOR_STATS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle event stream sends a comment, so proxies keep the connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/queries", get(list_queries))
        .route("/api/v1/queries/{id}", get(get_query))
        .route("/api/v1/queries/{id}/lastProgress", get(last_progress))
        .route("/api/v1/queries/{id}/recentProgress", get(recent_progress))
        .route("/api/v1/queries/{id}/stop", post(stop_query))
        .route("/api/v1/jobs", post(submit_job))
        .route("/api/v1/executors", get(list_executors))
        .route("/api/v1/events", get(events))
        .with_state(admin)
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// What went wrong, in one line.
    pub error: String,
}

/// An error with its HTTP status.
pub(super) struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<SluiceError> for Failure {
    fn from(e: SluiceError) -> Self {
        let status = match e.kind {
            ErrorKind::User => StatusCode::BAD_REQUEST,
            ErrorKind::External => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(status, e.one_line())
    }
}

type ApiResult<T> = Result<T, Failure>;

/// A query, as `spark.streams.active` and `StreamingQuery` show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryInfo {
    /// Persistent query id (the same across restarts).
    pub id: uuid::Uuid,
    /// Id of this run.
    pub run_id: uuid::Uuid,
    /// `queryName`, if set.
    pub name: Option<String>,
    /// Spark's `status`.
    pub status: QueryStatus,
    /// Until the query terminates.
    pub is_active: bool,
    /// The error that terminated the query, if any.
    pub exception: Option<String>,
    /// Restarts after failures that may pass.
    pub restarts: u32,
    /// Batch attempts retried after failures.
    pub batches_retried: u64,
    /// State partitions per executor id, as placed for the last batch.
    pub state_partitions: BTreeMap<String, u32>,
    /// Spark's `lastProgress` (`StreamingQueryProgress` JSON), `null` before the first batch.
    #[schema(value_type = Option<Object>)]
    pub last_progress: Option<serde_json::Value>,
}

/// Several queries.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueriesList {
    /// Active and recently terminated queries, in submission order.
    pub queries: Vec<QueryInfo>,
}

/// A job to submit: the text of a job file.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubmitJob {
    /// The job file's text (`CREATE STREAM …; INSERT INTO … SELECT …`).
    pub job: String,
    /// Where the job came from, for messages (default `api`).
    #[serde(default)]
    pub origin: Option<String>,
}

/// An executor the driver schedules on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorInfo {
    /// The executor's id.
    pub id: String,
    /// Its gRPC endpoint.
    pub address: String,
    /// `active`, `decommissioning` (no new work), or `unreachable` (did not answer now).
    pub state: String,
    /// Tasks it runs at once.
    pub slots: u32,
    /// State partitions it holds.
    pub state_partitions: u32,
    /// Tasks running now; `null` when unreachable.
    pub tasks_running: Option<u32>,
    /// Tasks finished successfully since it started; `null` when unreachable.
    pub tasks_succeeded: Option<u64>,
    /// Tasks failed since it started; `null` when unreachable.
    pub tasks_failed: Option<u64>,
    /// Resident memory of the executor's process in bytes; `null` when unknown.
    pub memory_bytes: Option<u64>,
}

/// The executors.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutorsList {
    /// Live executors, by id.
    pub executors: Vec<ExecutorInfo>,
}

fn manager(admin: &Admin) -> ApiResult<Arc<QueryManager>> {
    admin.manager().map_err(Failure::from)
}

/// The `{id}` of a path: a UUID, or a 400 saying it is not one.
type QueryIdPath = Result<Path<String>, PathRejection>;

fn query_id(path: QueryIdPath) -> ApiResult<uuid::Uuid> {
    let Path(raw) =
        path.map_err(|r| Failure(StatusCode::BAD_REQUEST, format!("malformed query id in the path: {}", r.body_text())))?;
    uuid::Uuid::parse_str(&raw)
        .map_err(|_| Failure(StatusCode::BAD_REQUEST, format!("'{raw}' is not a query id: a query id is a UUID")))
}

async fn find(admin: &Admin, path: QueryIdPath) -> ApiResult<(StreamingQuery, u32)> {
    let id = query_id(path)?;
    manager(admin)?.find(id).await.ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no query with id {id}")))
}

/// The API's view of a query.
pub fn query_info(q: &StreamingQuery, restarts: u32) -> QueryInfo {
    let exception = match q.state() {
        QueryState::Terminated(Some(e)) => Some(e.one_line()),
        _ => None,
    };
    QueryInfo {
        id: q.id(),
        run_id: q.run_id(),
        name: q.name().map(str::to_string),
        status: q.status(),
        is_active: q.is_active(),
        exception,
        restarts,
        batches_retried: q.batches_retried(),
        state_partitions: q.state_partitions(),
        last_progress: q.last_progress().and_then(|p| serde_json::to_value(&p).ok()),
    }
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This API's OpenAPI document", content_type = "application/json", body = Object)))]
pub(super) async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

#[utoipa::path(get, path = "/api/v1/queries", tag = "queries",
    responses((status = 200, body = QueriesList), (status = 503, body = ApiError)))]
pub(super) async fn list_queries(State(admin): State<Arc<Admin>>) -> ApiResult<Json<QueriesList>> {
    let queries = manager(&admin)?.queries().await;
    Ok(Json(QueriesList { queries: queries.iter().map(|(q, r)| query_info(q, *r)).collect() }))
}

#[utoipa::path(get, path = "/api/v1/queries/{id}", tag = "queries",
    params(("id" = uuid::Uuid, Path, description = "The query id")),
    responses((status = 200, body = QueryInfo), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn get_query(State(admin): State<Arc<Admin>>, id: QueryIdPath) -> ApiResult<Json<QueryInfo>> {
    let (q, restarts) = find(&admin, id).await?;
    Ok(Json(query_info(&q, restarts)))
}

#[utoipa::path(get, path = "/api/v1/queries/{id}/lastProgress", tag = "queries",
    params(("id" = uuid::Uuid, Path, description = "The query id")),
    responses((status = 200, description = "Spark's StreamingQueryProgress JSON, or null before the first batch", body = Option<Object>),
        (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn last_progress(State(admin): State<Arc<Admin>>, id: QueryIdPath) -> ApiResult<Json<serde_json::Value>> {
    let (q, _) = find(&admin, id).await?;
    Ok(Json(q.last_progress().and_then(|p| serde_json::to_value(&p).ok()).unwrap_or(serde_json::Value::Null)))
}

#[utoipa::path(get, path = "/api/v1/queries/{id}/recentProgress", tag = "queries",
    params(("id" = uuid::Uuid, Path, description = "The query id")),
    responses((status = 200, description = "The last 100 progress reports, oldest first", body = Vec<Object>),
        (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn recent_progress(State(admin): State<Arc<Admin>>, id: QueryIdPath) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let (q, _) = find(&admin, id).await?;
    Ok(Json(q.recent_progress().iter().filter_map(|p| serde_json::to_value(p).ok()).collect()))
}

#[utoipa::path(post, path = "/api/v1/queries/{id}/stop", tag = "queries",
    params(("id" = uuid::Uuid, Path, description = "The query id")),
    responses((status = 200, description = "The query, stopped after its batch in flight", body = QueryInfo),
        (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 503, body = ApiError)))]
pub(super) async fn stop_query(State(admin): State<Arc<Admin>>, id: QueryIdPath) -> ApiResult<Json<QueryInfo>> {
    let (q, _) = find(&admin, id).await?;
    let manager = manager(&admin)?;
    manager.stop(&q.id().to_string()).await?;
    let (q, restarts) = manager.find(q.id()).await.unwrap_or((q, 0));
    Ok(Json(query_info(&q, restarts)))
}

#[utoipa::path(post, path = "/api/v1/jobs", tag = "queries", request_body = SubmitJob,
    responses((status = 201, description = "The job's queries, started", body = QueriesList),
        (status = 400, description = "The job is malformed, invalid or not allowed", body = ApiError),
        (status = 415, description = "The body is not JSON", body = ApiError),
        (status = 503, body = ApiError)))]
pub(super) async fn submit_job(
    State(admin): State<Arc<Admin>>,
    body: Result<Json<SubmitJob>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<QueriesList>)> {
    let Json(job) = body.map_err(|r| {
        let status = if r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE { r.status() } else { StatusCode::BAD_REQUEST };
        Failure(status, format!("the body must be JSON {{\"job\": \"<job file text>\"}}: {}", r.body_text()))
    })?;
    let origin = job.origin.filter(|o| !o.trim().is_empty()).unwrap_or_else(|| "api".to_string());
    let started = manager(&admin)?.submit(&origin, &job.job).await?;
    Ok((StatusCode::CREATED, Json(QueriesList { queries: started.iter().map(|q| query_info(q, 0)).collect() })))
}

#[utoipa::path(get, path = "/api/v1/executors", tag = "executors",
    responses((status = 200, body = ExecutorsList), (status = 503, body = ApiError)))]
pub(super) async fn list_executors(State(admin): State<Arc<Admin>>) -> ApiResult<Json<ExecutorsList>> {
    manager(&admin)?;
    let Some(registry) = admin.registry() else { return Ok(Json(ExecutorsList { executors: Vec::new() })) };
    let live = registry.live().await;
    let answers =
        futures::future::join_all(
            live.iter().map(|e| {
                let mut client = e.client.clone();
                async move {
                    tokio::time::timeout(EXECUTOR_STATS_TIMEOUT, client.ping(PingRequest {})).await.ok().and_then(|r| r.ok())
                }
            }),
        )
        .await;
    let executors = live
        .iter()
        .zip(answers)
        .map(|(e, answer)| {
            let stats = answer.map(|r| r.into_inner());
            let state = match (&stats, registry.schedulable(&e.id)) {
                (None, _) => "unreachable",
                (Some(_), false) => "decommissioning",
                (Some(_), true) => "active",
            };
            ExecutorInfo {
                id: e.id.clone(),
                address: e.endpoint.clone(),
                state: state.to_string(),
                slots: e.task_slots as u32,
                state_partitions: stats.as_ref().map_or(0, |s| s.state_partitions),
                tasks_running: stats.as_ref().map(|s| s.tasks_running),
                tasks_succeeded: stats.as_ref().map(|s| s.tasks_succeeded),
                tasks_failed: stats.as_ref().map(|s| s.tasks_failed),
                memory_bytes: stats.as_ref().map(|s| s.rss_bytes).filter(|b| *b > 0),
            }
        })
        .collect();
    Ok(Json(ExecutorsList { executors }))
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    responses((status = 200, description = "Server-sent events: `event:` is QueryStartedEvent, QueryProgressEvent, QueryIdleEvent or QueryTerminatedEvent; `data:` Spark's event JSON",
        content_type = "text/event-stream", body = String),
        (status = 503, body = ApiError)))]
pub(super) async fn events(State(admin): State<Arc<Admin>>) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    manager(&admin)?;
    let stream = admin.events.watch().map(|w| {
        Ok(match w {
            Watched::Event(e) => Event::default().event(e.kind()).data(e.json()),
            Watched::Missed(n) => Event::default().comment(format!("this stream fell behind and missed {n} events")),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}
