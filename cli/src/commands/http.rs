//! The one HTTP server of a long-running process (`--http-listen`; `sluice run`'s `--ui-listen`):
//! health probes, Prometheus `/metrics`, and on a driver the REST API, the listener event
//! stream and the web UI.
//!
//! - `GET /healthz` answers 200 while the process serves at all (liveness: restart it if not).
//! - `GET /readyz` answers 200 when the process can do its job and 503 with the reason when it
//!   cannot (readiness: send it no traffic, and count it as unavailable in a rollout).
//! - `GET /metrics`: OpenMetrics text of this process (see the README's metric list).
//!
//! It speaks the process's transport — HTTPS with the member certificate when the cluster runs
//! TLS — and every request passes the same authorization as the gRPC calls
//! ([`sluice_security::Guard`]): probes, metrics and the UI's static files are open, the API
//! needs a user's client certificate or bearer token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use sluice_common::error::{Result, SluiceError};
use sluice_driver::metrics::DriverSnapshot;
use sluice_security::authorize::Refusal;
use sluice_security::tls::ClientAuth;
use sluice_security::token::AcceptedTokens;
use sluice_security::{Guard, PeerIdentity, Transport};
use tonic::transport::server::Connected;
use tower::ServiceExt;

/// Why a process is not ready, or `Ok` when it is.
pub type Readiness = Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

/// Brings scrape-time values up to date just before `/metrics` encodes them.
type Refresh = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// OpenMetrics' content type, which Prometheus negotiates.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A process's metrics: its registry, and what to refresh before each scrape.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    refresh: Option<Refresh>,
}

impl Metrics {
    /// Serves `registry`, with the process's own metrics added.
    pub fn new(registry: Registry) -> Self {
        Self::refreshed(registry, None)
    }

    /// Serves `registry` (with the process's own metrics added), refreshing with `refresh`.
    fn refreshed(mut registry: Registry, refresh: Option<Refresh>) -> Self {
        registry.register_collector(Box::new(ProcessCollector));
        Self { registry: Arc::new(registry), refresh }
    }

    /// A driver's metrics: `registry`, with `snapshot` brought up to date before each scrape.
    pub fn of_driver(registry: Registry, snapshot: DriverSnapshot) -> Self {
        let refresh: Refresh = Arc::new(move || {
            let snapshot = snapshot.clone();
            Box::pin(async move { snapshot.refresh().await })
        });
        Self::refreshed(registry, Some(refresh))
    }

    /// The OpenMetrics text of every registered metric.
    pub async fn encode(&self) -> std::result::Result<String, std::fmt::Error> {
        if let Some(r) = &self.refresh {
            r().await;
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// `process_resident_memory_bytes`, the standard process metric, read at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        if let Some(rss) = sluice_common::process::resident_memory_bytes() {
            let g = ConstGauge::new(rss as i64);
            g.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// What one process's HTTP server serves.
pub struct HttpSetup {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Plain HTTP or HTTPS with the member certificate.
    pub transport: Transport,
    /// Bearer tokens users may present (drivers).
    pub tokens: Option<Arc<AcceptedTokens>>,
    /// The readiness probe.
    pub readiness: Readiness,
    /// `/metrics`.
    pub metrics: Metrics,
    /// The driver's API, event stream and UI, on drivers.
    pub driver: Option<Router>,
}

/// Starts serving in the background; returns the bound address (port 0 picks one).
pub async fn serve(setup: HttpSetup) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(setup.listen)
        .await
        .map_err(|e| SluiceError::user(format!("cannot listen for HTTP on {}: {e}", setup.listen)))?;
    let addr = listener.local_addr()?;
    let guard = Arc::new(Guard::new(setup.transport.tls().cloned(), setup.tokens, sluice_driver::http::audience));
    let readiness = setup.readiness;
    let metrics = setup.metrics;
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
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
        )
        .route("/metrics", get(move || scrape(metrics.clone())));
    if let Some(driver) = setup.driver {
        app = app.merge(driver);
    }
    let app = app.layer(axum::middleware::from_fn_with_state(guard, authorize));
    // Users' browsers and Prometheus present no member certificate: any client may connect, and
    // the guard decides per path.
    let mut incoming = Box::pin(setup.transport.incoming(listener, ClientAuth::Anyone)?);
    tracing::info!(%addr, scheme = setup.transport.scheme(), "serving HTTP (/healthz, /readyz, /metrics)");
    tokio::spawn(async move {
        while let Some(conn) = incoming.next().await {
            let Ok(conn) = conn else { continue };
            let peer = conn.connect_info();
            let app = app.clone();
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                // The same identity the gRPC servers authorize on.
                request.extensions_mut().insert(peer.clone());
                app.clone().oneshot(request)
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(conn), service).await {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
            });
        }
    });
    Ok(addr)
}

async fn scrape(metrics: Metrics) -> Response {
    match metrics.encode().await {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {e}\n")).into_response(),
    }
}

/// Admits a request per [`sluice_driver::http::audience`], or answers 401/403 with the reason.
async fn authorize(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let verdict = guard.check(request.uri().path(), request.extensions().get::<PeerIdentity>(), request.headers());
    let (status, message) = match verdict {
        Ok(()) => return next.run(request).await,
        Err(Refusal::Unauthenticated(m)) => (StatusCode::UNAUTHORIZED, m),
        Err(Refusal::PermissionDenied(m)) => (StatusCode::FORBIDDEN, m),
    };
    let remote = request.extensions().get::<PeerIdentity>().and_then(|p| p.remote).map(|a| a.to_string()).unwrap_or_default();
    tracing::warn!(path = %request.uri().path(), %remote, reason = %message, "refused an HTTP request");
    let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    response
}
