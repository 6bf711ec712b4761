//! Who may call what, checked for every request a sluice server receives.
//!
//! Each RPC has an [`Audience`]: **members** (drivers and executors: registering, heartbeats,
//! tasks, shuffle reads, dismissals) or **users** (submitting, listing and stopping queries).
//! Each request has a [`Caller`], told by its connection and headers: a member (its TLS
//! certificate comes from the cluster CA), a user (a certificate from the client CA, or a bearer
//! token from the driver's token file), or nobody. [`admit`] decides; it is pure. Members may
//! also make user calls (a standby driver forwards them to the leader).
//!
//! Without TLS (`--insecure`, or the embedded `sluice run`) members cannot be told apart from
//! anyone else, so member calls are let through: that is what `--insecure` means. A token file,
//! when given, still guards the user calls.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready};
use http::HeaderMap;

use crate::tls::ClusterTls;
use crate::token::{bearer, AcceptedTokens};
use crate::transport::PeerIdentity;

/// Who an RPC is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Cluster members only.
    Members,
    /// Users (and members).
    Users,
    /// Anyone who can connect: health probes, metrics and the web UI's static files, which hold
    /// no query data and must answer the kubelet and Prometheus.
    Anyone,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A cluster member: its certificate comes from the cluster CA.
    Member,
    /// An authenticated user: a client-CA certificate or an accepted token.
    User,
    /// Nobody we know; `why` says what was missing or wrong.
    Unknown {
        /// What was missing or wrong, for the refusal message.
        why: &'static str,
    },
    /// A plain-text connection to a server started without TLS: nobody can prove anything.
    Unverifiable,
}

/// Why a request is refused: gRPC's `UNAUTHENTICATED` (who are you?) or `PERMISSION_DENIED`
/// (you may not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The caller proved no identity.
    Unauthenticated(String),
    /// The caller is known but may not make this call.
    PermissionDenied(String),
}

/// Whether `caller` may call `method` (for messages), an RPC for `audience`. Pure.
pub fn admit(method: &str, audience: Audience, caller: &Caller, tokens_required: bool) -> Result<(), Refusal> {
    match (audience, caller) {
        (Audience::Anyone, _) => Ok(()),
        (_, Caller::Member) | (Audience::Users, Caller::User) => Ok(()),
        (Audience::Members, Caller::Unverifiable) => Ok(()),
        (Audience::Users, Caller::Unverifiable) if !tokens_required => Ok(()),
        (Audience::Users, Caller::Unverifiable) => {
            Err(Refusal::Unauthenticated(format!("{method} needs a bearer token (sluice --token-file or SLUICE_TOKEN)")))
        }
        (Audience::Members, Caller::User) => Err(Refusal::PermissionDenied(format!(
            "{method} is for cluster members: the caller's credentials are a user's, not a certificate from the cluster CA"
        ))),
        (Audience::Members, Caller::Unknown { why }) => Err(Refusal::Unauthenticated(format!(
            "{method} is for cluster members, which present a certificate from the cluster CA: {why}"
        ))),
        (Audience::Users, Caller::Unknown { why }) => Err(Refusal::Unauthenticated(format!(
            "{method} needs a client certificate or a bearer token (--token-file or SLUICE_TOKEN): {why}"
        ))),
    }
}

/// What a server checks requests against: its TLS trust and its accepted tokens, and which
/// audience each of its methods has.
pub struct Guard {
    tls: Option<Arc<ClusterTls>>,
    tokens: Option<Arc<AcceptedTokens>>,
    audience: fn(&str) -> Audience,
}

impl Guard {
    /// A guard for a server whose method paths (`/package.Service/Method`) map to audiences by `audience`.
    pub fn new(tls: Option<Arc<ClusterTls>>, tokens: Option<Arc<AcceptedTokens>>, audience: fn(&str) -> Audience) -> Self {
        Self { tls, tokens, audience }
    }

    /// Who made a request that came on a connection from `peer` with `headers`.
    pub fn caller(&self, peer: Option<&PeerIdentity>, headers: &HeaderMap) -> Caller {
        if let (Some(tls), Some(chain)) = (&self.tls, peer.and_then(|p| p.certs.as_deref())) {
            // The handshake verified the chain against the CAs this server trusts.
            return if tls.is_member(chain) { Caller::Member } else { Caller::User };
        }
        match (bearer(headers), &self.tokens) {
            (Some(t), Some(accepted)) if accepted.accepts(t) => Caller::User,
            (Some(_), Some(_)) => Caller::Unknown { why: "the bearer token is not one the driver accepts" },
            // Plain text: no certificate can be presented, and without a token nothing is claimed.
            _ if self.tls.is_none() => Caller::Unverifiable,
            (Some(_), None) => Caller::Unknown { why: "this driver accepts no bearer tokens (no --auth-token-file)" },
            (None, _) => Caller::Unknown { why: "the caller presented neither a certificate nor a token" },
        }
    }

    /// Checks one request.
    pub fn check(&self, path: &str, peer: Option<&PeerIdentity>, headers: &HeaderMap) -> Result<(), Refusal> {
        let method = path.rsplit('/').next().unwrap_or(path);
        let caller = self.caller(peer, headers);
        admit(method, (self.audience)(path), &caller, self.tokens.is_some())
    }
}

/// Tower layer that runs [`Guard::check`] before every request reaches a service.
#[derive(Clone)]
pub struct AuthorizeLayer {
    guard: Arc<Guard>,
}

impl AuthorizeLayer {
    /// Guards every service it wraps with `guard`.
    pub fn new(guard: Guard) -> Self {
        Self { guard: Arc::new(guard) }
    }
}

impl<S> tower::Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize { inner, guard: Arc::clone(&self.guard) }
    }
}

/// A service behind [`AuthorizeLayer`].
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Authorize<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let peer = request.extensions().get::<PeerIdentity>();
        match self.guard.check(request.uri().path(), peer, request.headers()) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(refusal) => {
                let remote = peer.and_then(|p| p.remote).map(|a| a.to_string()).unwrap_or_default();
                let status = match refusal {
                    Refusal::Unauthenticated(m) => {
                        tracing::warn!(path = %request.uri().path(), %remote, reason = %m, "refused an unauthenticated call");
                        tonic::Status::unauthenticated(m)
                    }
                    Refusal::PermissionDenied(m) => {
                        tracing::warn!(path = %request.uri().path(), %remote, reason = %m, "refused a call");
                        tonic::Status::permission_denied(m)
                    }
                };
                Either::Right(futures::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_TOKEN: bool = false;
    const TOKENS: bool = true;

    #[test]
    fn anyone_may_reach_open_paths() {
        for caller in [Caller::Member, Caller::User, Caller::Unverifiable, Caller::Unknown { why: "none" }] {
            assert_eq!(admit("/metrics", Audience::Anyone, &caller, TOKENS), Ok(()));
        }
    }

    #[test]
    fn members_may_call_everything() {
        for a in [Audience::Members, Audience::Users] {
            assert_eq!(admit("X", a, &Caller::Member, TOKENS), Ok(()));
        }
    }

    #[test]
    fn users_may_make_user_calls_only() {
        assert_eq!(admit("SubmitJob", Audience::Users, &Caller::User, TOKENS), Ok(()));
        let Err(Refusal::PermissionDenied(m)) = admit("RegisterExecutor", Audience::Members, &Caller::User, TOKENS) else {
            panic!("a user registered an executor")
        };
        assert!(m.contains("RegisterExecutor is for cluster members"), "{m}");
    }

    #[test]
    fn unknown_callers_are_unauthenticated_with_the_reason() {
        let why = "the caller presented neither a certificate nor a token";
        for a in [Audience::Members, Audience::Users] {
            let Err(Refusal::Unauthenticated(m)) = admit("RunTask", a, &Caller::Unknown { why }, TOKENS) else {
                panic!("an unknown caller was admitted to {a:?}")
            };
            assert!(m.contains(why), "{m}");
        }
    }

    #[test]
    fn without_tls_members_are_trusted_and_a_token_file_still_guards_users() {
        assert_eq!(admit("RunTask", Audience::Members, &Caller::Unverifiable, TOKENS), Ok(()));
        assert_eq!(admit("SubmitJob", Audience::Users, &Caller::Unverifiable, NO_TOKEN), Ok(()));
        assert!(matches!(admit("SubmitJob", Audience::Users, &Caller::Unverifiable, TOKENS), Err(Refusal::Unauthenticated(_))));
    }
}
