//! The driver's HTTP surface: the versioned REST API (with its OpenAPI document), the listener
//! event stream, and the web UI. The process's HTTP server (probes, `/metrics`, TLS and
//! authorization) mounts [`router`] beside its own routes.
//!
//! Who may call what is decided by [`audience`]: the UI's static files and the OpenAPI document
//! are open (they hold no query data), everything else under `/api/` is for users.

mod api;
mod openapi;
mod ui;

use std::sync::Arc;

use axum::Router;
use sluice_security::Audience;

use crate::manager::Admin;

pub use api::{ApiError, ExecutorInfo, QueriesList, QueryInfo, SubmitJob};
pub use openapi::ApiDoc;

/// Where the API lives; the UI reaches it relative to `/ui/`.
pub const API_PREFIX: &str = "/api/v1";

/// The API, event stream and UI of the driver whose queries `admin` manages.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new().merge(api::routes(admin)).merge(ui::routes())
}

/// Who each HTTP path is for (see the module doc). Unknown paths are for users, so that a
/// 404 never tells an anonymous caller more than a 401 would.
pub fn audience(path: &str) -> Audience {
    const OPEN: [&str; 5] = ["/healthz", "/readyz", "/metrics", "/", "/api/v1/openapi.json"];
    if OPEN.contains(&path) || path == "/ui" || path.starts_with("/ui/") {
        Audience::Anyone
    } else {
        Audience::Users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_metrics_ui_and_the_schema_are_open_and_the_api_is_for_users() {
        for open in ["/healthz", "/readyz", "/metrics", "/", "/ui/", "/ui/app.js", "/api/v1/openapi.json"] {
            assert_eq!(audience(open), Audience::Anyone, "{open}");
        }
        for guarded in ["/api/v1/queries", "/api/v1/events", "/api/v1/jobs", "/api/v1/executors", "/uix", "/nothing"] {
            assert_eq!(audience(guarded), Audience::Users, "{guarded}");
        }
    }
}
