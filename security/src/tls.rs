//! The cluster's certificates as rustls configurations.
//!
//! Every member of a cluster (drivers and executors) holds a certificate issued by the
//! **cluster CA** and trusts only that CA: a member proves membership by presenting it, on
//! every connection, in both directions. Users (the CLI, later the HTTP API) may present a
//! certificate from a separate **client CA** — trusted to call the user-facing RPCs, never to
//! act as a member — or a bearer token instead (see [`crate::token`]).
//!
//! Certificates are read from PEM files and re-read when they change ([`crate::files`]).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sluice_common::error::{Result, SluiceError};

use crate::files::Reloading;

/// Where a process's TLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The cluster CA's certificate (PEM): the only issuer members trust.
    pub ca: PathBuf,
    /// This process's certificate chain (PEM); required for members, optional for users.
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// On a driver: the CA of users' client certificates, if users authenticate with certificates.
    pub client_ca: Option<PathBuf>,
}

/// Which clients a server lets finish the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Only members (an executor: nothing but drivers and executors ever call it).
    MembersOnly,
    /// Members, users with a client-CA certificate, and clients with no certificate (who must
    /// then bring a bearer token): a driver.
    Anyone,
}

/// The rustls configurations built from one version of the files.
struct Material {
    /// Server configurations (members only, anyone); none without a certificate of our own.
    server: Option<(Arc<ServerConfig>, Arc<ServerConfig>)>,
    client: Arc<ClientConfig>,
    member_verifier: Arc<dyn ClientCertVerifier>,
}

/// A process's TLS identity and trust, reloaded when its files change.
pub struct ClusterTls {
    settings: TlsSettings,
    material: Reloading<Material>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls").field("settings", &self.settings).finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> SluiceError {
    SluiceError::user(format!("{what}: {e}")).with_retryable(false)
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_error(&format!("{what} is not a PEM certificate"), e))?;
    if certs.is_empty() {
        return Err(tls_error(what, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn roots(pem: &[u8], what: &str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for c in certs(pem, what)? {
        store.add(c).map_err(|e| tls_error(&format!("{what} is not a usable CA certificate"), e))?;
    }
    Ok(store)
}

impl ClusterTls {
    /// Reads the files; every problem is reported naming the file.
    pub fn load(settings: TlsSettings) -> Result<Arc<Self>> {
        if settings.cert.is_some() != settings.key.is_some() {
            return Err(SluiceError::user("--tls-cert and --tls-key go together: give both or neither"));
        }
        let mut paths = vec![settings.ca.clone()];
        paths.extend(settings.cert.clone());
        paths.extend(settings.key.clone());
        paths.extend(settings.client_ca.clone());
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let has_identity = settings.cert.is_some();
        let has_client_ca = settings.client_ca.is_some();
        let material = Reloading::new(paths, move |contents| {
            let mut next = contents.iter().zip(&names);
            let (ca_pem, ca_name) = next.next().ok_or_else(|| SluiceError::internal("no CA file"))?;
            let identity = if has_identity {
                let (cert_pem, cert_name) = next.next().ok_or_else(|| SluiceError::internal("no certificate file"))?;
                let (key_pem, key_name) = next.next().ok_or_else(|| SluiceError::internal("no key file"))?;
                let chain = certs(cert_pem, cert_name)?;
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|e| tls_error(&format!("{key_name} is not a PEM private key"), e))?;
                Some((chain, key))
            } else {
                None
            };
            let client_ca = if has_client_ca { next.next() } else { None };
            build(ca_pem, ca_name, identity, client_ca)
        })?;
        Ok(Arc::new(Self { settings, material }))
    }

    /// Whether this process has a certificate of its own (it must, to serve or be a member).
    pub fn has_identity(&self) -> bool {
        self.settings.cert.is_some()
    }

    /// The server configuration for the current files.
    pub fn server_config(&self, auth: ClientAuth) -> Result<Arc<ServerConfig>> {
        let m = self.material.get();
        let (members_only, anyone) = m.server.as_ref().ok_or_else(|| self.no_identity())?;
        Ok(Arc::clone(match auth {
            ClientAuth::MembersOnly => members_only,
            ClientAuth::Anyone => anyone,
        }))
    }

    /// The client configuration for the current files: trusts the cluster CA, presents this
    /// process's certificate when it has one.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.material.get().client)
    }

    /// Whether a peer's certificate chain (already verified by the handshake against the
    /// server's trusted CAs) comes from the cluster CA: the peer is a member.
    pub fn is_member(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((leaf, intermediates)) = chain.split_first() else { return false };
        self.material.get().member_verifier.verify_client_cert(leaf, intermediates, UnixTime::now()).is_ok()
    }

    fn no_identity(&self) -> SluiceError {
        SluiceError::user(format!(
            "TLS with CA {} has no certificate of its own: a server needs --tls-cert and --tls-key",
            self.settings.ca.display()
        ))
    }
}

fn build(
    ca_pem: &[u8],
    ca_name: &str,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    client_ca: Option<(&Vec<u8>, &String)>,
) -> Result<Material> {
    let members = Arc::new(roots(ca_pem, ca_name)?);
    let member_verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&members), provider())
        .build()
        .map_err(|e| tls_error(&format!("cannot verify members with {ca_name}"), e))?;
    let server_verifier = WebPkiServerVerifier::builder_with_provider(Arc::clone(&members), provider())
        .build()
        .map_err(|e| tls_error(&format!("cannot verify servers with {ca_name}"), e))?;
    let client_builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("TLS", e))?
        .with_webpki_verifier(server_verifier);
    let mut client = match &identity {
        Some((chain, key)) => client_builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| tls_error("the certificate and key do not make a client identity", e))?,
        None => client_builder.with_no_client_auth(),
    };
    client.alpn_protocols = vec![b"h2".to_vec()];

    let Some((chain, key)) = identity else {
        // A user without a certificate: a client only.
        return Ok(Material { server: None, client: Arc::new(client), member_verifier });
    };
    let server = |verifier: Arc<dyn ClientCertVerifier>| -> Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| tls_error("the certificate and key do not make a server identity", e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    };
    let members_only = server(Arc::clone(&member_verifier))?;
    let mut everyone = (*members).clone();
    if let Some((pem, name)) = client_ca {
        everyone.roots.extend(roots(pem, name)?.roots);
    }
    let optional = WebPkiClientVerifier::builder_with_provider(Arc::new(everyone), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_error("cannot verify client certificates", e))?;
    let anyone = server(optional)?;
    Ok(Material { server: Some((members_only, anyone)), client: Arc::new(client), member_verifier })
}
