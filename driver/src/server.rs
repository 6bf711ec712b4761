//! The driver's gRPC server: where executors register and heartbeat, and where `sluice submit`,
//! `queries` and `stop` reach the query manager.

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_common::error::{Result, SluiceError};
use sluice_proto::v1::driver_service_server::DriverServiceServer;
use sluice_proto::SHUTDOWN_GRACE;
use tokio::sync::watch;

use crate::manager::Admin;
use crate::registry::ExecutorRegistry;
use crate::rpc::DriverRpc;

/// The driver's gRPC server.
pub struct DriverServer {
    /// `http://host:port` executors connect to.
    pub endpoint: String,
    /// The executors registered here (or, with etcd, seen there).
    pub registry: ExecutorRegistry,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl DriverServer {
    /// Listens on `bind` (port 0 picks a free port).
    pub async fn start(bind: SocketAddr, registry: ExecutorRegistry) -> Result<Self> {
        Self::start_with_admin(bind, registry, Arc::new(Admin::default())).await
    }

    /// Listens on `bind`, also serving the query admin calls of `admin`.
    pub async fn start_with_admin(bind: SocketAddr, registry: ExecutorRegistry, admin: Arc<Admin>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| SluiceError::external(format!("driver cannot listen on {bind}: {e}")).with_retryable(false))?;
        let addr = listener.local_addr()?;
        let endpoint = format!("http://{addr}");
        let (shutdown, mut rx) = watch::channel(false);
        let svc = DriverServiceServer::new(DriverRpc { registry: registry.clone(), admin });
        // TCP_NODELAY on every accepted connection (tonic sets it only on listeners it binds):
        // without it Nagle's algorithm meets delayed ACKs and each small RPC waits ~40 ms.
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tokio::spawn(async move {
            let r = tonic::transport::Server::builder()
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
