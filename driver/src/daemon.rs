//! A driver process (`sluice driver`): serves executors and the admin commands, and — with
//! etcd — campaigns for leadership, runs the cluster's stored queries while it leads, and exits
//! the moment it stops leading so it can never write as a deposed leader.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_cluster::etcd::{campaign, watch_executors};
use sluice_cluster::{EtcdConfig, LeaseSession, MembershipEvent};
use sluice_common::error::{Result, SluiceError};

use crate::manager::{Admin, QueryManager, QueryStore};
use crate::query::fence::LeaderFence;
use crate::query::micro_batch::ProgressListener;
use crate::registry::ExecutorRegistry;
use crate::server::DriverServer;
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
}

/// What happened to a running driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverExit {
    /// Asked to stop (Ctrl-C): queries stopped after their current batch.
    Stopped,
}

/// Runs a driver until `shutdown` resolves; returns an error if leadership is lost.
pub async fn run_driver(
    config: DriverConfig,
    listener: Option<ProgressListener>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<DriverExit> {
    let registry = match &config.etcd {
        Some(e) => ExecutorRegistry::external(Duration::from_secs(e.lease_ttl_secs.max(1) as u64)),
        None => ExecutorRegistry::default(),
    };
    let admin = Arc::new(Admin::default());
    let server = DriverServer::start_with_admin(config.listen, registry.clone(), Arc::clone(&admin)).await?;
    let endpoint = config.advertise.clone().unwrap_or_else(|| server.endpoint.clone());
    let mut session = Session::new(registry.clone());
    if let Some(l) = listener {
        session = session.with_progress_listener(l);
    }

    let Some(etcd) = config.etcd.clone() else {
        tracing::info!(%endpoint, "driver ready (executors register here directly)");
        let manager = Arc::new(QueryManager::new(session, None));
        admin.activate(Arc::clone(&manager));
        shutdown.await;
        manager.stop_all().await;
        server.shutdown().await;
        return Ok(DriverExit::Stopped);
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
                    if let Err(e) = membership.register(&r.id, &r.endpoint, r.task_slots).await {
                        tracing::warn!(executor = %r.id, error = %e, "ignoring an unusable executor registration");
                    }
                }
                MembershipEvent::Left(id) => membership.remove(&id, "its etcd lease ended").await,
            }
        }
    });

    let mut lease = LeaseSession::start(&etcd).await?;
    let lost = lease.lost();
    if let Ok(Some(leader)) = sluice_cluster::etcd::leader_endpoint(&etcd).await {
        admin.set_leader(&leader);
        tracing::info!(%leader, "standing by: another driver leads this cluster");
    }
    tokio::pin!(shutdown);
    let leadership = tokio::select! {
        l = campaign(&mut lease, &etcd, &endpoint) => l?,
        _ = &mut shutdown => {
            lease.close().await;
            server.shutdown().await;
            return Ok(DriverExit::Stopped);
        }
    };
    tracing::info!(%endpoint, term = leadership.term, "elected leader");
    // This driver leads now: until its manager is active it answers "still starting", not
    // "standby" with itself (or the dead leader) as the leader.
    admin.set_leader("");
    let fence = Arc::new(LeaderFence::new(lease.client.clone(), leadership));
    let store = QueryStore::new(lease.client.clone(), etcd.clone());
    let manager = Arc::new(QueryManager::new(session.with_fence(fence), Some(store)));
    let resumed = manager.resume_stored().await?;
    tracing::info!(resumed, "resumed stored queries");
    admin.activate(Arc::clone(&manager));

    let mut lost = lost;
    let outcome = tokio::select! {
        _ = &mut shutdown => Ok(DriverExit::Stopped),
        _ = lost.wait_for(|l| *l) => Err(SluiceError::external(
            "lost leadership: the etcd lease could not be renewed; stopping so a standby can take over",
        ).with_retryable(false)),
    };
    // Without the lease every write would be fenced anyway: after a lost lease, do not wait
    // for batches.
    if outcome.is_ok() {
        manager.stop_all().await;
    }
    lease.close().await;
    server.shutdown().await;
    outcome
}
