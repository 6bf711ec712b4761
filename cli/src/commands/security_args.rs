//! The security options of every command that talks to (or is part of) a cluster, and the rule
//! that makes cluster mode secure by default: a process listens beyond loopback only with TLS,
//! or with an explicit `--insecure`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use sluice_cluster::{EtcdConfig, EtcdTls, EtcdUser};
use sluice_common::error::{Result, SluiceError};
use sluice_security::token::AcceptedTokens;
use sluice_security::{ClusterTls, TlsSettings, Transport};

/// TLS options of a member (driver, executor) or a user of the cluster.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// The cluster CA's certificate (PEM): members present certificates it issued, and clients
    /// trust servers whose certificates it issued. Turns TLS on (`sluice certs` makes a
    /// development CA).
    #[arg(long, env = "SLUICE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate chain (PEM), from the cluster CA for drivers and executors, or
    /// from the client CA for a user. Re-read when the file changes.
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The transport these options describe; `client_ca` adds the CA of users' certificates (drivers).
    pub fn transport(&self, client_ca: Option<PathBuf>) -> Result<Transport> {
        let Some(ca) = self.tls_ca.clone() else {
            if self.tls_cert.is_some() || client_ca.is_some() {
                return Err(SluiceError::user("--tls-cert and --client-ca need --tls-ca (the cluster CA)"));
            }
            return Ok(Transport::Plain);
        };
        let settings = TlsSettings { ca, cert: self.tls_cert.clone(), key: self.tls_key.clone(), client_ca };
        Ok(Transport::Tls(ClusterTls::load(settings)?))
    }
}

/// etcd's TLS and authentication options.
#[derive(Debug, Clone, Args)]
pub struct EtcdSecurityArgs {
    /// CA of etcd's server certificate (PEM), for `https://` etcd endpoints.
    #[arg(long, env = "SLUICE_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd started with `--client-cert-auth` (PEM).
    #[arg(long, env = "SLUICE_ETCD_CERT", requires = "etcd_ca")]
    pub etcd_cert: Option<PathBuf>,
    /// The private key of --etcd-cert (PEM).
    #[arg(long, env = "SLUICE_ETCD_KEY", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// etcd user, when etcd has authentication enabled.
    #[arg(long, env = "SLUICE_ETCD_USER", requires = "etcd_password_file")]
    pub etcd_user: Option<String>,
    /// File holding the etcd user's password (first line).
    #[arg(long, env = "SLUICE_ETCD_PASSWORD_FILE", requires = "etcd_user")]
    pub etcd_password_file: Option<PathBuf>,
}

impl EtcdSecurityArgs {
    /// `config` with these settings applied.
    pub fn apply(&self, mut config: EtcdConfig) -> EtcdConfig {
        config.tls = self.etcd_ca.clone().map(|ca| EtcdTls { ca, identity: self.etcd_cert.clone().zip(self.etcd_key.clone()) });
        config.user = self
            .etcd_user
            .clone()
            .zip(self.etcd_password_file.clone())
            .map(|(name, password_file)| EtcdUser { name, password_file });
        config
    }
}

/// A user's credentials for the driver's user calls (`submit`, `queries`, `stop`).
#[derive(Debug, Clone, Args)]
pub struct ClientAuthArgs {
    #[command(flatten)]
    pub tls: TlsArgs,
    /// File holding a bearer token the driver accepts (its first token); the token itself may
    /// come from SLUICE_TOKEN instead.
    #[arg(long, env = "SLUICE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl ClientAuthArgs {
    /// The token to send, if any: the file's, else SLUICE_TOKEN's.
    pub fn token(&self) -> Result<Option<String>> {
        if let Some(t) = sluice_security::token::client_token(self.token_file.as_ref())? {
            return Ok(Some(t));
        }
        Ok(std::env::var("SLUICE_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
    }
}

/// The tokens a driver accepts, from `--auth-token-file`.
pub fn accepted_tokens(path: Option<&PathBuf>) -> Result<Option<Arc<AcceptedTokens>>> {
    path.map(|p| AcceptedTokens::load(p)).transpose()
}

/// How a server may listen: the secure-by-default rule. Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenDecision {
    /// TLS is on.
    Tls,
    /// Plain text on a loopback address: only this machine can connect.
    LoopbackOnly,
    /// Plain text beyond loopback because `--insecure` says so: log a warning.
    Insecure,
}

/// Decides whether a `role` process may listen on `addr` given its transport and `--insecure`.
pub fn listen_decision(role: &str, addr: SocketAddr, tls: bool, insecure: bool) -> Result<ListenDecision> {
    match (tls, addr.ip().is_loopback(), insecure) {
        (true, _, _) => Ok(ListenDecision::Tls),
        (false, true, _) => Ok(ListenDecision::LoopbackOnly),
        (false, false, true) => Ok(ListenDecision::Insecure),
        (false, false, false) => Err(SluiceError::user(format!(
            "refusing to listen on {addr} without TLS: anyone who reaches the {role} could run jobs with its credentials; \
             give --tls-ca, --tls-cert and --tls-key (`sluice certs` makes a development CA), or --insecure to accept the risk"
        ))),
    }
}

/// Applies [`listen_decision`], logging the warning `--insecure` asks for; checks that a TLS
/// member has a certificate and that its advertised URL says https.
pub fn check_listen(role: &str, addr: SocketAddr, transport: &Transport, insecure: bool, advertise: Option<&str>) -> Result<()> {
    if let Some(tls) = transport.tls() {
        if !tls.has_identity() {
            return Err(SluiceError::user(format!(
                "a {role} with TLS needs its member certificate: give --tls-cert and --tls-key"
            )));
        }
    }
    if let Some(url) = advertise {
        let scheme = transport.scheme();
        if !url.starts_with(&format!("{scheme}://")) {
            return Err(SluiceError::user(format!(
                "--advertise {url} must start with {scheme}:// (this {role} {} TLS)",
                if transport.tls().is_some() { "speaks" } else { "does not speak" }
            )));
        }
    }
    if listen_decision(role, addr, transport.tls().is_some(), insecure)? == ListenDecision::Insecure {
        tracing::warn!(
            %addr,
            "--insecure: the {role} listens beyond loopback without TLS; anyone who reaches it can submit jobs, run tasks or register executors"
        );
        eprintln!("sluice: warning: --insecure: the {role} listens on {addr} without TLS or authentication of cluster members");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_beyond_loopback_needs_insecure() {
        let any: SocketAddr = "0.0.0.0:7077".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:7077".parse().unwrap();
        assert_eq!(listen_decision("driver", local, false, false).unwrap(), ListenDecision::LoopbackOnly);
        assert_eq!(listen_decision("driver", any, true, false).unwrap(), ListenDecision::Tls);
        assert_eq!(listen_decision("driver", any, false, true).unwrap(), ListenDecision::Insecure);
        let e = listen_decision("driver", any, false, false).unwrap_err().one_line();
        assert!(e.contains("refusing to listen on 0.0.0.0:7077 without TLS") && e.contains("--insecure"), "{e}");
        let v6: SocketAddr = "[::1]:7077".parse().unwrap();
        assert_eq!(listen_decision("executor", v6, false, false).unwrap(), ListenDecision::LoopbackOnly);
    }

    #[test]
    fn an_advertised_url_must_match_the_transport() {
        let local: SocketAddr = "127.0.0.1:7077".parse().unwrap();
        let e = check_listen("driver", local, &Transport::Plain, false, Some("https://driver:7077")).unwrap_err();
        assert!(e.one_line().contains("must start with http://"), "{}", e.one_line());
        assert!(check_listen("driver", local, &Transport::Plain, false, Some("http://driver:7077")).is_ok());
    }
}
