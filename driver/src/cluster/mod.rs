//! The driver's side of the cluster: its gRPC endpoint, executor membership, and the embedded
//! cluster (driver + executors in one process over real gRPC on 127.0.0.1).

pub mod registry;
pub mod rpc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::manager::Admin;

use sluice_common::error::{Result, SluiceError};
use sluice_executor::{ExecutorConfig, ExecutorHandle};
use sluice_proto::v1::driver_service_server::DriverServiceServer;
use tokio::sync::watch;

pub use registry::{ExecutorInfo, ExecutorRegistry};

/// The driver's gRPC server.
pub struct DriverServer {
    /// `http://host:port` executors connect to.
    pub endpoint: String,
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
        let svc = DriverServiceServer::new(rpc::DriverRpc { registry: registry.clone(), admin });
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

    /// Stops the server.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
    }
}

/// One driver and N executors in this process, talking gRPC over 127.0.0.1 exactly as separate
/// processes do.
pub struct EmbeddedCluster {
    pub driver: DriverServer,
    executors: Vec<ExecutorHandle>,
}

impl EmbeddedCluster {
    /// Starts the driver and `executors` executors with `slots` task slots each, and waits until
    /// all have registered.
    pub async fn start(executors: usize, slots: usize) -> Result<Self> {
        let registry = ExecutorRegistry::default();
        let driver = DriverServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), registry.clone()).await?;
        let mut handles = Vec::with_capacity(executors);
        for i in 0..executors {
            let mut cfg = ExecutorConfig::local(driver.endpoint.clone());
            cfg.task_slots = slots;
            cfg.executor_id = Some(format!("executor-{i}"));
            handles.push(ExecutorHandle::start(cfg).await?);
        }
        registry.wait_for(executors, Duration::from_secs(30)).await?;
        Ok(Self { driver, executors: handles })
    }

    /// The membership view queries schedule on.
    pub fn registry(&self) -> ExecutorRegistry {
        self.driver.registry.clone()
    }

    /// Ids of the running executors.
    pub fn executor_ids(&self) -> Vec<String> {
        self.executors.iter().map(|e| e.id.clone()).collect()
    }

    /// Stops executor `id` and takes it out of the membership, as the driver would on noticing
    /// its loss; the state partitions it owned move to the others at the next batch.
    pub async fn stop_executor(&mut self, id: &str) {
        if let Some(i) = self.executors.iter().position(|e| e.id == id) {
            let e = self.executors.remove(i);
            e.shutdown().await;
            self.driver.registry.remove(id, "stopped").await;
        }
    }

    /// Stops executors, then the driver.
    pub async fn shutdown(self) {
        for e in self.executors {
            e.shutdown().await;
        }
        self.driver.shutdown().await;
    }
}
