//! A driver process (`sluice driver`): serves executors and the admin commands, and — with
//! etcd — campaigns for leadership and runs the cluster's stored queries while it leads.
//!
//! Leadership comes and goes with etcd: a driver starts (and stands by) while etcd is down, and
//! one that loses its lease — etcd unreachable for longer than the lease TTL, or the process
//! paused that long — steps down at once (its checkpoint writes are fenced by its term from then
//! on), abandons its queries and campaigns again, instead of exiting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_cluster::etcd::{campaign, watch_executors};
use sluice_cluster::{EtcdConfig, LeaseSession, MembershipEvent};
use sluice_common::error::Result;
use sluice_common::retry::RetryPolicy;

use crate::job::{JobPolicy, SecretsDir};
use crate::manager::{Admin, QueryManager, QueryStore, RestartPolicy};
use crate::query::fence::LeaderFence;
use crate::query::QueryListener;
use crate::registry::ExecutorRegistry;
use crate::server::{DriverSecurity, DriverServer};
use crate::session::Session;

/// How a driver process runs.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Address to serve executors and admin commands on.
    pub listen: SocketAddr,
    /// Address others use to reach this driver (defaults to `http://<listen>`).
    pub advertise: Option<String>,
    /// Cluster coordination; `None` for a single driver with directly registered executors.
    pub etcd: Option<EtcdConfig>,
    /// When failed queries are restarted.
    pub restarts: RestartPolicy,
    /// What submitted jobs may touch; held to every job submitted or resumed.
    pub policy: JobPolicy,
    /// TLS and user tokens for the server and every client this driver opens.
    pub security: DriverSecurity,
    /// Where jobs' `${secret:NAME}` option values are read from.
    pub secrets: SecretsDir,
}

/// What happened to a running driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverExit {
    /// Asked to stop (Ctrl-C): queries stopped after their current batch.
    Stopped,
}

/// Runs a driver until `shutdown` resolves; `admin` tells the caller (its readiness probe)
/// whether it leads or stands by, and carries every query event to its watchers after
/// `listeners` (metrics, `--progress-json`) heard it.
pub async fn run_driver(
    config: DriverConfig,
    listeners: Vec<QueryListener>,
    admin: Arc<Admin>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<DriverExit> {
    let registry = match &config.etcd {
        Some(e) => ExecutorRegistry::external(Duration::from_secs(e.lease_ttl_secs.max(1) as u64)),
        None => ExecutorRegistry::default(),
    }
    .with_transport(config.security.transport.clone());
    let server =
        DriverServer::start_with_admin(config.listen, registry.clone(), Arc::clone(&admin), config.security.clone()).await?;
    admin.set_registry(registry.clone());
    let endpoint = config.advertise.clone().unwrap_or_else(|| server.endpoint.clone());
    admin.set_endpoint(&endpoint);
    tracing::info!(policy = %config.policy.describe(), "jobs may touch what this policy allows");
    let mut session = Session::new(registry.clone()).with_policy(config.policy.clone()).with_secrets(config.secrets.clone());
    for l in listeners {
        session = session.with_listener(l);
    }
    session = session.with_listener(admin.events.listener());

    let Some(etcd) = config.etcd.clone() else {
        tracing::info!(%endpoint, "driver ready (executors register here directly)");
        let manager = QueryManager::logging_failures(session, None, config.restarts);
        admin.activate(Arc::clone(&manager));
        shutdown.await;
        return Ok(stop(&admin, server, None, Some(manager)).await);
    };

    // Membership comes from executors' leases in etcd.
    let mut events = watch_executors(&etcd);
    let membership = registry.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                MembershipEvent::Snapshot(records) => {
                    if let Err(e) = membership.sync(&records).await {
                        tracing::warn!(error = %e, "could not apply the executor membership snapshot");
                    }
                }
                MembershipEvent::Joined(r) => {
                    if let Err(e) = membership.register_record(&r).await {
                        tracing::warn!(executor = %r.id, error = %e, "ignoring an unusable executor registration");
                    }
                }
                MembershipEvent::Left(id) => membership.remove(&id, "its etcd lease ended").await,
            }
        }
    });

    tokio::pin!(shutdown);
    let mut waits = RetryPolicy::RECONNECT.waits();
    loop {
        // A lease first. etcd may be down: a driver starts, and stands by, through the outage.
        let lease = tokio::select! {
            l = LeaseSession::start(&etcd) => l,
            _ = &mut shutdown => return Ok(stop(&admin, server, None, None).await),
        };
        let mut lease = match lease {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "etcd unreachable; standing by until it is back");
                tokio::select! {
                    _ = tokio::time::sleep(waits.next().unwrap_or(RetryPolicy::RECONNECT.max_delay)) => continue,
                    _ = &mut shutdown => return Ok(stop(&admin, server, None, None).await),
                }
            }
        };
        waits = RetryPolicy::RECONNECT.waits();
        let mut lost = lease.lost();
        if let Ok(Some(leader)) = sluice_cluster::etcd::leader_endpoint(&etcd).await {
            admin.set_leader(&leader);
            tracing::info!(%leader, "standing by: another driver leads this cluster");
        }
        let elected = tokio::select! {
            l = campaign(&mut lease, &etcd, &endpoint) => l,
            never = follow_leader(&etcd, &endpoint, &admin) => match never {},
            _ = lost.wait_for(|l| *l) => {
                tracing::warn!("the etcd lease lapsed while standing by; campaigning again");
                continue;
            }
            _ = &mut shutdown => return Ok(stop(&admin, server, Some(lease), None).await),
        };
        let leadership = match elected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "campaign interrupted; campaigning again");
                lease.close().await;
                continue;
            }
        };
        tracing::info!(%endpoint, term = leadership.term, "elected leader");
        // This driver leads now: until its manager is active it answers "still starting", not
        // "standby" with itself (or the dead leader) as the leader.
        admin.set_leader("");
        let fence = Arc::new(LeaderFence::new(lease.client.clone(), leadership));
        let store = QueryStore::new(lease.client.clone(), etcd.clone());
        let manager = QueryManager::logging_failures(session.clone().with_fence(fence), Some(store), config.restarts);
        match manager.resume_stored().await {
            Ok(resumed) => tracing::info!(resumed, "resumed stored queries"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the stored queries; stepping down");
                manager.abandon_all().await;
                lease.close().await;
                continue;
            }
        }
        admin.activate(Arc::clone(&manager));
        registry.set_leading(true);
        tokio::select! {
            _ = &mut shutdown => return Ok(stop(&admin, server, Some(lease), Some(manager)).await),
            _ = lost.wait_for(|l| *l) => {
                // Without the lease every checkpoint write is fenced anyway; stop the queries
                // without waiting for their batches and stand by until etcd elects again.
                tracing::warn!("lost leadership: the etcd lease could not be renewed; stepping down");
                admin.deactivate();
                registry.set_leading(false);
                manager.abandon_all().await;
                lease.close().await;
            }
        }
    }
}

/// Keeps `admin` told who leads while this driver campaigns: a standby is ready (and forwards
/// admin calls) only when it knows the leader, which may be elected after it first looked.
async fn follow_leader(etcd: &EtcdConfig, endpoint: &str, admin: &Admin) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(Some(leader)) = sluice_cluster::etcd::leader_endpoint(etcd).await {
            if leader != endpoint && leader != admin.leader() {
                tracing::info!(%leader, "standing by: another driver leads this cluster");
                admin.set_leader(&leader);
            }
        }
    }
}

/// Stops a driver that was asked to (Ctrl-C, SIGTERM): it turns unready, stops its queries
/// after their current batch (their definitions stay stored in etcd), then revokes its lease —
/// which hands leadership to a standby at once, instead of after the lease TTL — and stops its
/// server. The standby resumes every query from the checkpoint the batches just committed, so
/// a rolling restart of drivers fails no batch.
async fn stop(
    admin: &Admin,
    server: DriverServer,
    lease: Option<LeaseSession>,
    manager: Option<Arc<QueryManager>>,
) -> DriverExit {
    admin.set_stopping();
    if let Some(m) = manager {
        tracing::info!("stopping: finishing the current batch of every query, then handing over");
        m.stop_all().await;
        tracing::info!("every query stopped after its batch");
    }
    if let Some(l) = lease {
        l.close().await;
        tracing::info!("etcd lease revoked: a standby can lead now");
    }
    server.shutdown().await;
    DriverExit::Stopped
}
