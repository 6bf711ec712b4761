//! The OpenAPI document of the REST API, derived from the handlers' annotations and the types
//! they return, so it cannot drift from what the server answers (the test suite checks the
//! server against it with schemathesis).

use utoipa::OpenApi;

use super::api;

/// The REST API v1's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "sluice REST API", version = "v1", description = "Queries, progress, executors and listener events of a sluice driver."),
    paths(
        api::openapi_json,
        api::list_queries,
        api::get_query,
        api::last_progress,
        api::recent_progress,
        api::stop_query,
        api::submit_job,
        api::list_executors,
        api::events,
    ),
    components(schemas(api::QueryInfo, api::QueriesList, api::SubmitJob, api::ExecutorInfo, api::ExecutorsList, api::ApiError, crate::query::QueryStatus)),
    tags((name = "queries"), (name = "executors"), (name = "events"), (name = "meta"))
)]
pub struct ApiDoc;
