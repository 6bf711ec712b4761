//! The driver's gRPC server: where executors register and heartbeat, and where `sluice submit`,
//! `queries` and `stop` reach the query manager.

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_common::error::{Result, SluiceError};
use sluice_proto::v1::driver_service_server::DriverServiceServer;
use sluice_proto::SHUTDOWN_GRACE;
use sluice_security::tls::ClientAuth;
use sluice_security::token::AcceptedTokens;
use sluice_security::{Audience, AuthorizeLayer, Guard, Transport};
use tokio::sync::watch;

use crate::manager::Admin;
use crate::registry::ExecutorRegistry;
use crate::rpc::DriverRpc;

/// How the driver's server and clients authenticate.
#[derive(Debug, Clone)]
pub struct DriverSecurity {
    /// TLS (or plain text) for the server, the executor clients and forwarding to the leader.
    pub transport: Transport,
    /// The bearer tokens users may authenticate with.
    pub tokens: Option<Arc<AcceptedTokens>>,
}

impl DriverSecurity {
    /// No TLS, no tokens: the embedded cluster of `sluice run`.
    pub fn plain() -> Self {
        Self { transport: Transport::Plain, tokens: None }
    }
}

/// Who each driver RPC is for: users submit, list and stop queries; everything else (executors
/// registering and heartbeating) is for cluster members.
pub fn audience(path: &str) -> Audience {
    const USER_CALLS: [&str; 4] = ["SubmitJob", "ListQueries", "StopQuery", "WatchEvents"];
    let service = <DriverServiceServer<DriverRpc> as tonic::server::NamedService>::NAME;
    let method = path.strip_prefix('/').and_then(|p| p.strip_prefix(service)).and_then(|p| p.strip_prefix('/'));
    match method {
        Some(method) if USER_CALLS.contains(&method) => Audience::Users,
        _ => Audience::Members,
    }
}

/// The driver's gRPC server.
pub struct DriverServer {
    /// `http(s)://host:port` executors connect to.
    pub endpoint: String,
    /// The executors registered here (or, with etcd, seen there).
    pub registry: ExecutorRegistry,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl DriverServer {
    /// Listens on `bind` (port 0 picks a free port), in plain text.
    pub async fn start(bind: SocketAddr, registry: ExecutorRegistry) -> Result<Self> {
        Self::start_with_admin(bind, registry, Arc::new(Admin::default()), DriverSecurity::plain()).await
    }

    /// Listens on `bind`, also serving the query admin calls of `admin`; every call is
    /// authorized (see [`audience`]).
    pub async fn start_with_admin(
        bind: SocketAddr,
        registry: ExecutorRegistry,
        admin: Arc<Admin>,
        security: DriverSecurity,
    ) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| SluiceError::external(format!("driver cannot listen on {bind}: {e}")).with_retryable(false))?;
        let addr = listener.local_addr()?;
        let transport = security.transport.clone();
        let endpoint = transport.url(addr);
        let (shutdown, mut rx) = watch::channel(false);
        let svc = DriverServiceServer::new(DriverRpc { registry: registry.clone(), admin, transport: transport.clone() });
        let guard = Guard::new(transport.tls().cloned(), security.tokens.clone(), audience);
        let incoming = transport.incoming(listener, ClientAuth::Anyone)?;
        let server = tokio::spawn(async move {
            let r = tonic::transport::Server::builder()
                .layer(AuthorizeLayer::new(guard))
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "driver gRPC server stopped");
            }
        });
        tracing::info!(%endpoint, "driver listening");
        Ok(Self { endpoint, registry, shutdown, server })
    }

    /// Waits until the server stops (for a driver process).
    pub async fn wait(self) {
        let _ = self.server.await;
    }

    /// Stops the server: lets in-flight calls finish, but no longer than [`SHUTDOWN_GRACE`].
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let mut server = self.server;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
            tracing::warn!("connections still open {} s after stopping; closing them", SHUTDOWN_GRACE.as_secs());
            server.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_may_only_submit_list_and_stop() {
        for user_call in ["SubmitJob", "ListQueries", "StopQuery", "WatchEvents"] {
            assert_eq!(audience(&format!("/sluice.v1.DriverService/{user_call}")), Audience::Users, "{user_call}");
        }
        for member_call in ["RegisterExecutor", "Heartbeat", "Unknown"] {
            assert_eq!(audience(&format!("/sluice.v1.DriverService/{member_call}")), Audience::Members, "{member_call}");
        }
        // Another service's method of the same name is not a user call.
        assert_eq!(audience("/other.Service/SubmitJob"), Audience::Members);
        assert_eq!(audience("/sluice.v1.DriverService/SubmitJob/x"), Audience::Members);
    }
}
