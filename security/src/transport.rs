//! How a process talks gRPC (and Arrow Flight): in plain text, or over TLS with the cluster's
//! certificates. Both ends of every connection go through here — the listener side
//! ([`Transport::incoming`]) and the dialling side ([`Transport::endpoint`] +
//! [`Transport::connect`]) — so no listener or client can be left out of TLS by accident.
//!
//! Endpoints are written `https://host:port` when TLS is on and `http://host:port` when it is
//! off; the scheme says what a peer speaks, and dialling an `https` endpoint without TLS
//! settings is an error naming the missing flag.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use sluice_common::error::{Result, SluiceError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::tls::{ClientAuth, ClusterTls};

/// How long a connecting peer may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Plain text or TLS, for every connection a process makes or accepts.
#[derive(Debug, Clone)]
pub enum Transport {
    /// No TLS: the embedded cluster (`sluice run`), or a cluster started with `--insecure`.
    Plain,
    /// TLS with the cluster's certificates.
    Tls(Arc<ClusterTls>),
}

impl Transport {
    /// The URL scheme peers dial this transport with.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls(_) => "https",
        }
    }

    /// The TLS identity, when TLS is on.
    pub fn tls(&self) -> Option<&Arc<ClusterTls>> {
        match self {
            Transport::Plain => None,
            Transport::Tls(t) => Some(t),
        }
    }

    /// The URL of a listener at `addr`.
    pub fn url(&self, addr: SocketAddr) -> String {
        format!("{}://{addr}", self.scheme())
    }

    /// A tonic endpoint for `url` (configure timeouts and keep-alives on it, then
    /// [`connect`](Self::connect) or [`connect_lazy`](Self::connect_lazy) through this transport).
    pub fn endpoint(&self, url: &str) -> Result<Endpoint> {
        let parsed: Uri = url.parse().map_err(|e| SluiceError::user(format!("'{url}' is not a URL: {e}")))?;
        let tls = match (parsed.scheme_str(), self) {
            (Some("http"), _) => false,
            (Some("https"), Transport::Tls(_)) => true,
            (Some("https"), Transport::Plain) => {
                return Err(SluiceError::user(format!("{url} speaks TLS: give --tls-ca (the cluster CA) to reach it")))
            }
            _ => return Err(SluiceError::user(format!("'{url}' must start with http:// or https://"))),
        };
        // tonic would insist on its own TLS for an https URI; the TLS here is the connector's.
        let dial = if tls { format!("http{}", &url["https".len()..]) } else { url.to_string() };
        Endpoint::from_shared(dial).map_err(|e| SluiceError::user(format!("'{url}' is not a URL: {e}")))
    }

    /// Connects now (the endpoint's connect timeout applies).
    pub async fn connect(&self, endpoint: Endpoint) -> std::result::Result<Channel, tonic::transport::Error> {
        match self.connector() {
            Some(c) => endpoint.connect_with_connector(c).await,
            None => endpoint.connect().await,
        }
    }

    /// Connects at the first call, and again after a connection is lost.
    pub fn connect_lazy(&self, endpoint: Endpoint) -> Channel {
        match self.connector() {
            Some(c) => endpoint.connect_with_connector_lazy(c),
            None => endpoint.connect_lazy(),
        }
    }

    /// A TLS connector for `endpoint`, or none when it is dialled in plain text.
    fn connector(&self) -> Option<TlsConnector> {
        let tls = self.tls()?;
        Some(TlsConnector { tls: Arc::clone(tls) })
    }

    /// Accepts connections on `listener` for a tonic server: TLS handshakes (each in its own
    /// task, bounded by a timeout) for a TLS transport, with `auth` deciding which client
    /// certificates may connect. Every connection gets TCP_NODELAY: without it Nagle's algorithm
    /// meets delayed ACKs and each small RPC waits ~40 ms.
    pub fn incoming(
        &self,
        listener: TcpListener,
        auth: ClientAuth,
    ) -> Result<impl Stream<Item = io::Result<ServerConn>> + Send + 'static> {
        if let Transport::Tls(tls) = self {
            // Fail at start, not at the first connection, when this process cannot serve TLS.
            tls.server_config(auth)?;
        }
        let (tx, rx) = mpsc::channel::<io::Result<ServerConn>>(64);
        let transport = self.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = tx.closed() => return,
                };
                let (tcp, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                match &transport {
                    Transport::Plain => {
                        let conn =
                            ServerConn { io: ServerIo::Plain(tcp), peer: PeerIdentity { remote: Some(remote), certs: None } };
                        if tx.send(Ok(conn)).await.is_err() {
                            return;
                        }
                    }
                    Transport::Tls(tls) => {
                        let config = match tls.server_config(auth) {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot serve TLS with the current certificate files");
                                continue;
                            }
                        };
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(stream)) => {
                                    let certs = stream.get_ref().1.peer_certificates().map(|c| Arc::new(c.to_vec()));
                                    let peer = PeerIdentity { remote: Some(remote), certs };
                                    let _ = tx.send(Ok(ServerConn { io: ServerIo::Tls(Box::new(stream)), peer })).await;
                                }
                                Ok(Err(e)) => tracing::warn!(%remote, error = %e, "refused a connection: TLS handshake failed"),
                                Err(_) => {
                                    tracing::warn!(%remote, "refused a connection: no TLS handshake within {} s", HANDSHAKE_TIMEOUT.as_secs())
                                }
                            }
                        });
                    }
                }
            }
        });
        Ok(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }))
    }
}

/// Who is at the other end of an accepted connection: what authorization decides on. Every
/// request on the connection carries it in its extensions.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity {
    /// The peer's address.
    pub remote: Option<SocketAddr>,
    /// The certificate chain the peer presented and the TLS handshake verified (leaf first).
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// An accepted connection, plain or TLS, with the peer's identity.
pub struct ServerConn {
    io: ServerIo,
    peer: PeerIdentity,
}

enum ServerIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for ServerConn {
    type ConnectInfo = PeerIdentity;

    fn connect_info(&self) -> PeerIdentity {
        self.peer.clone()
    }
}

impl AsyncRead for ServerConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ServerIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            ServerIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ServerIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ServerIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            ServerIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            ServerIo::Plain(s) => s.is_write_vectored(),
            ServerIo::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// tonic's connector for TLS: dials TCP, then the TLS handshake with the current client
/// configuration (so a renewed certificate is used by the next connection), verifying the
/// server's certificate against the cluster CA for the URI's host.
#[derive(Clone)]
struct TlsConnector {
    tls: Arc<ClusterTls>,
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.tls.client_config();
        Box::pin(async move {
            let authority =
                uri.authority().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri} has no host")))?;
            let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
            let port = authority.port_u16().unwrap_or(443);
            let server_name = ServerName::try_from(host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("'{host}' is not a TLS server name: {e}")))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let stream = tokio_rustls::TlsConnector::from(config).connect(server_name, tcp).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use futures::StreamExt;

    use super::*;
    use crate::dev_ca::generate;
    use crate::tls::TlsSettings;

    fn tls(dir: &Path, identity: Option<(&str, &str)>) -> Arc<ClusterTls> {
        ClusterTls::load(TlsSettings {
            ca: dir.join("ca.pem"),
            cert: identity.map(|(c, _)| dir.join(c)),
            key: identity.map(|(_, k)| dir.join(k)),
            client_ca: None,
        })
        .unwrap()
    }

    /// Completes a TLS handshake with a server of `server` as a member of the cluster of `client_dir`.
    async fn handshake(addr: SocketAddr, client_dir: &Path) -> io::Result<()> {
        let client = tls(client_dir, Some(("member.pem", "member-key.pem")));
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("127.0.0.1").map_err(|e| io::Error::other(e.to_string()))?;
        let mut stream = tokio_rustls::TlsConnector::from(client.client_config()).connect(name, tcp).await?;
        // TLS 1.3 servers check the client's certificate after the client's handshake ends:
        // a refusal shows on the first read.
        use tokio::io::AsyncReadExt;
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await {
            Ok(Ok(0)) => Err(io::Error::other("closed by the server")),
            Ok(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    #[tokio::test]
    async fn servers_pick_up_renewed_certificates_and_refuse_strangers() {
        let cluster_a = tempfile::tempdir().unwrap();
        let cluster_b = tempfile::tempdir().unwrap();
        let hosts = ["127.0.0.1".to_string()];
        generate(cluster_a.path(), &hosts, 1).unwrap();
        generate(cluster_b.path(), &hosts, 1).unwrap();
        // The server's files start as cluster A's.
        let live = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "member.pem", "member-key.pem"] {
            std::fs::copy(cluster_a.path().join(f), live.path().join(f)).unwrap();
        }
        let server = Transport::Tls(tls(live.path(), Some(("member.pem", "member-key.pem"))));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = Box::pin(server.incoming(listener, ClientAuth::MembersOnly).unwrap());
        let accepted = tokio::spawn(async move {
            // Accepted connections stay open (a closed one would look refused to the client).
            let mut open = Vec::new();
            while let Some(Ok(conn)) = incoming.next().await {
                assert!(conn.connect_info().certs.is_some(), "a member connection without the member's certificate");
                open.push(conn);
            }
        });

        handshake(addr, cluster_a.path()).await.expect("a member of cluster A connects");
        assert!(handshake(addr, cluster_b.path()).await.is_err(), "a member of another cluster connected");

        // Rotation: cluster B's files replace A's in place; no restart.
        for f in ["ca.pem", "member.pem", "member-key.pem"] {
            std::fs::copy(cluster_b.path().join(f), live.path().join(f)).unwrap();
        }
        tokio::time::sleep(crate::files::RECHECK_INTERVAL + Duration::from_millis(100)).await;
        handshake(addr, cluster_b.path()).await.expect("a member of cluster B connects after the rotation");
        assert!(handshake(addr, cluster_a.path()).await.is_err(), "cluster A's members still connect after the rotation");
        accepted.abort();
    }

    #[test]
    fn endpoints_follow_the_transport() {
        assert!(Transport::Plain.endpoint("http://127.0.0.1:1").is_ok());
        let e = Transport::Plain.endpoint("https://127.0.0.1:1").unwrap_err();
        assert!(e.one_line().contains("speaks TLS: give --tls-ca"), "{}", e.one_line());
        assert!(Transport::Plain.endpoint("ftp://x:1").is_err());
    }
}
