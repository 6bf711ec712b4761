//! Serving the Spark Connect service: on the address clients use — TLS and user
//! authentication (a bearer token, PySpark's `sc://host:15002/;token=…`, or a client
//! certificate) exactly as the driver's admin calls — and on a loopback port of its own for
//! the foreachBatch workers this server starts, which connect back without credentials.

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_common::error::{Result, SluiceError};
use sluice_security::tls::ClientAuth;
use sluice_security::{Audience, AuthorizeLayer, Guard, Transport};
use tokio::sync::watch;

use crate::service::SparkConnect;

/// Every Spark Connect call is a user's.
pub fn audience(_path: &str) -> Audience {
    Audience::Users
}

/// One tonic server of `server` on `incoming`, guarded by `guard`, until `stop` turns true.
fn serve<S>(
    server: Arc<SparkConnect>,
    incoming: S,
    guard: Option<Guard>,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
) -> tokio::task::JoinHandle<()>
where
    S: futures::Stream<Item = std::io::Result<sluice_security::transport::ServerConn>> + Send + 'static,
{
    tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .layer(tower::util::option_layer(guard.map(AuthorizeLayer::new)))
            .add_service(server.into_service())
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "{what} stopped");
        }
    })
}

/// A running Spark Connect server.
pub struct ConnectListener {
    /// Where clients connect.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ConnectListener {
    /// Serves `server` on `bind` over `transport`, guarding calls with `guard` (none: anyone
    /// who can connect, for a loopback-only `sluice connect`).
    pub async fn start(server: Arc<SparkConnect>, bind: SocketAddr, transport: Transport, guard: Option<Guard>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| SluiceError::external(format!("Spark Connect cannot listen on {bind}: {e}")).with_retryable(false))?;
        let addr = listener.local_addr()?;
        let workers = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            SluiceError::external(format!("Spark Connect cannot listen on a loopback port for foreachBatch workers: {e}"))
        })?;
        server.set_port(workers.local_addr()?.port());
        let (shutdown, rx) = watch::channel(false);
        let clients = transport.incoming(listener, ClientAuth::Anyone)?;
        let local = Transport::Plain.incoming(workers, ClientAuth::Anyone)?;
        let tasks = vec![
            serve(Arc::clone(&server), clients, guard, rx.clone(), "Spark Connect server"),
            serve(server, local, None, rx, "Spark Connect worker endpoint"),
        ];
        tracing::info!(%addr, "Spark Connect server listening");
        Ok(Self { addr, shutdown, tasks })
    }

    /// Stops serving (open streams end).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            if tokio::time::timeout(std::time::Duration::from_secs(5), t).await.is_err() {
                tracing::warn!("Spark Connect connections still open 5 s after stopping; closing them");
            }
        }
    }
}
