//! HTTP health probes of the long-running processes (`--health-listen`), for Kubernetes'
//! kubelet or any load balancer.
//!
//! - `GET /healthz` answers 200 while the process serves at all (liveness: restart it if not).
//! - `GET /readyz` answers 200 when the process can do its job and 503 with the reason when it
//!   cannot (readiness: send it no traffic, and count it as unavailable in a rollout).
//!
//! The probes run on their own port so a NetworkPolicy can open them to the kubelet while the
//! gRPC ports stay closed to everyone but the cluster's own processes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use sluice_common::error::{Result, SluiceError};

/// Why a process is not ready, or `Ok` when it is.
pub type Readiness = Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

/// Serves the probes on `addr` in the background until the process exits.
pub async fn serve(addr: SocketAddr, readiness: Readiness) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| SluiceError::user(format!("cannot listen for health probes on {addr} (--health-listen): {e}")))?;
    let app = Router::new().route("/healthz", get(|| async { "ok\n" })).route(
        "/readyz",
        get(move || {
            let verdict = readiness();
            async move {
                match verdict {
                    Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                }
            }
        }),
    );
    tracing::info!(%addr, "serving health probes (/healthz, /readyz)");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health probe server stopped");
        }
    });
    Ok(())
}
