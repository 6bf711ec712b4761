//! # sluice-security
//!
//! One TLS and identity layer for every listener and client of a sluice cluster:
//!
//! * [`tls`] — the cluster's certificates, read from files (Kubernetes Secrets, cert-manager)
//!   and re-read when they change, as rustls configurations;
//! * [`transport`] — gRPC and Arrow Flight over those: the listener side (accepting TLS, telling
//!   each call who connected) and the dialling side (a tonic connector);
//! * [`authorize`] — who may call what: cluster members (a certificate from the cluster CA)
//!   run tasks, register and shuffle; users (a client certificate or a bearer token) submit,
//!   list and stop queries;
//! * [`token`] — bearer tokens, from files;
//! * [`dev_ca`] — the development CA `sluice certs` makes for local clusters and tests.
//!
//! Without TLS (`sluice run`, or a cluster started with `--insecure`) the same code runs with a
//! plain transport, and members are not authenticated.

pub mod authorize;
pub mod dev_ca;
pub mod files;
pub mod tls;
pub mod token;
pub mod transport;

pub use authorize::{Audience, AuthorizeLayer, Guard};
pub use tls::{ClusterTls, TlsSettings};
pub use transport::{PeerIdentity, Transport};
