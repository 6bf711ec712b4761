//! `sluice driver` and `sluice executor`: the two long-running processes of a cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Args;
use sluice_cluster::{etcd_config, EtcdConfig};
use sluice_common::error::{Result, SluiceError};
use sluice_executor::{ExecutorConfig, ExecutorHandle};

use sluice_driver::daemon::{run_driver, DriverConfig};
use sluice_driver::manager::RestartPolicy;

/// etcd options shared by every command that can use a cluster.
#[derive(Debug, Clone, Args)]
pub struct EtcdArgs {
    /// etcd endpoints (comma-separated), for membership, leader election and the query store.
    #[arg(long, env = "SLUICE_ETCD")]
    pub etcd: Option<String>,
    /// Cluster name: the etcd key prefix `/sluice/<cluster>/`.
    #[arg(long, default_value = "default", env = "SLUICE_CLUSTER")]
    pub cluster: String,
    /// Lease TTL in seconds: how long a dead executor stays registered, or a dead leader leads.
    #[arg(long, default_value_t = 5, env = "SLUICE_LEASE_TTL")]
    pub lease_ttl: i64,
}

impl EtcdArgs {
    /// The etcd config, if `--etcd` was given.
    pub fn config(&self) -> Option<EtcdConfig> {
        self.etcd.as_deref().filter(|e| !e.trim().is_empty()).map(|e| etcd_config(e, &self.cluster, self.lease_ttl))
    }
}

/// Arguments of `sluice driver`.
#[derive(Debug, Args)]
pub struct DriverArgs {
    /// Address to listen on for executors and admin commands (127.0.0.1 unless you expose it).
    #[arg(long, default_value = "127.0.0.1:7077", env = "SLUICE_DRIVER_LISTEN")]
    listen: SocketAddr,
    /// URL others reach this driver at (default `http://<listen>`).
    #[arg(long, env = "SLUICE_DRIVER_ADVERTISE")]
    advertise: Option<String>,
    #[command(flatten)]
    etcd: EtcdArgs,
    /// Append every progress report (one JSON object per line) to this file.
    #[arg(long)]
    progress_json: Option<PathBuf>,
    /// Times a query that failed on something that may pass (a store or broker down for longer
    /// than a batch's attempts) is restarted from its checkpoint, with backoff, before it stays
    /// failed.
    #[arg(long, default_value_t = 10, env = "SLUICE_MAX_QUERY_RESTARTS")]
    max_query_restarts: u32,
}

/// Arguments of `sluice executor`.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The driver to register with (not needed with --etcd: executors register in etcd).
    #[arg(long, default_value = "http://127.0.0.1:7077", env = "SLUICE_DRIVER")]
    driver: String,
    /// Address to listen on for tasks and shuffle reads (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "SLUICE_EXECUTOR_LISTEN")]
    listen: SocketAddr,
    /// URL the driver and other executors reach this executor at (default `http://<listen>`).
    #[arg(long, env = "SLUICE_EXECUTOR_ADVERTISE")]
    advertise: Option<String>,
    /// Tasks run at once (default: CPU cores).
    #[arg(long, env = "SLUICE_SLOTS")]
    slots: Option<usize>,
    /// Stable executor id (default: random).
    #[arg(long, env = "SLUICE_EXECUTOR_ID")]
    id: Option<String>,
    #[command(flatten)]
    etcd: EtcdArgs,
}

fn progress_file_listener(path: &Option<PathBuf>) -> Result<Option<sluice_driver::query::micro_batch::ProgressListener>> {
    let Some(p) = path else { return Ok(None) };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| SluiceError::user(format!("cannot open --progress-json file {}: {e}", p.display())))?;
    let file = Arc::new(Mutex::new(file));
    Ok(Some(Arc::new(move |progress: &sluice_driver::progress::StreamingQueryProgress| {
        use std::io::Write;
        if let Ok(mut f) = file.lock() {
            let _ = writeln!(f, "{}", progress.json());
        }
    })))
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn driver(args: DriverArgs) -> Result<()> {
    let restarts = RestartPolicy { max_restarts: args.max_query_restarts, ..RestartPolicy::default() };
    let config = DriverConfig { listen: args.listen, advertise: args.advertise, etcd: args.etcd.config(), restarts };
    let listener = progress_file_listener(&args.progress_json)?;
    run_driver(config, listener, ctrl_c()).await.map(|_| ())
}

pub async fn executor(args: ExecutorArgs) -> Result<()> {
    let mut config = ExecutorConfig::local(args.driver);
    config.bind = args.listen;
    config.advertise = args.advertise;
    config.executor_id = args.id;
    config.etcd = args.etcd.config();
    if let Some(s) = args.slots {
        config.task_slots = s.max(1);
    }
    let handle = ExecutorHandle::start(config).await?;
    eprintln!("sluice executor {} listening at {}", handle.id, handle.endpoint);
    tokio::select! {
        _ = ctrl_c() => handle.shutdown().await,
        _ = futures::future::pending::<()>() => {}
    }
    Ok(())
}
