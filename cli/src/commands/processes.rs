//! `sluice driver` and `sluice executor`: the two long-running processes of a cluster.
//!
//! Both stop gracefully on SIGTERM (what Kubernetes sends) or Ctrl-C: a driver finishes its
//! queries' current batches and hands leadership over; an executor decommissions (see
//! `sluice_executor::service`). A second signal stops at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use sluice_cluster::{etcd_config, EtcdConfig};
use sluice_common::error::{Result, SluiceError};
use sluice_executor::{DrainOutcome, ExecutorConfig, ExecutorHandle};

use sluice_connect::listen::ConnectListener;
use sluice_connect::service::SparkConnect;
use sluice_driver::daemon::{run_driver, DriverConfig};
use sluice_driver::job::SecretsDir;
use sluice_driver::manager::{Admin, RestartPolicy};
use sluice_driver::metrics::{DriverSnapshot, QueryMetrics};
use sluice_driver::query::{QueryEvent, QueryListener};
use sluice_driver::server::DriverSecurity;
use sluice_security::Guard;

use super::http::{self, HttpSetup, Metrics};
use super::policy_args::JobPolicyArgs;
use super::security_args::{accepted_tokens, check_listen, EtcdSecurityArgs, TlsArgs};

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
    #[command(flatten)]
    pub security: EtcdSecurityArgs,
}

impl EtcdArgs {
    /// The etcd config, if `--etcd` was given.
    pub fn config(&self) -> Option<EtcdConfig> {
        self.etcd
            .as_deref()
            .filter(|e| !e.trim().is_empty())
            .map(|e| self.security.apply(etcd_config(e, &self.cluster, self.lease_ttl)))
    }
}

/// Arguments of `sluice driver`.
#[derive(Debug, Args)]
pub struct DriverArgs {
    /// Settings file (TOML; keys are these options' long names). Precedence: command line,
    /// then environment, then this file, then defaults.
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the HTTP server: probes (`/healthz`; `/readyz`: leads, or stands by with a
    /// known leader), Prometheus `/metrics`, the REST API (`/api/v1/`) and the web UI (`/ui/`);
    /// HTTPS with --tls-cert. Off unless set.
    #[arg(long, env = "SLUICE_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Address to listen on for executors and admin commands (127.0.0.1 unless you expose it).
    #[arg(long, default_value = "127.0.0.1:7077", env = "SLUICE_DRIVER_LISTEN")]
    listen: SocketAddr,
    /// Address of the Spark Connect server for PySpark clients (`sc://host:15002/;token=…`),
    /// with the driver's TLS and user authentication; `off` for none. When the default port is
    /// taken the driver runs without it (and says so).
    #[arg(long, default_value = "127.0.0.1:15002", env = "SLUICE_CONNECT_LISTEN")]
    connect_listen: String,
    /// The Python that runs Spark Connect clients' foreachBatch functions (must import pyspark).
    #[arg(long, env = "PYSPARK_PYTHON", default_value = "python3")]
    python: String,
    /// URL others reach this driver at (default `http://<listen>`, `https://` with TLS).
    #[arg(long, env = "SLUICE_DRIVER_ADVERTISE")]
    advertise: Option<String>,
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// CA of users' client certificates (PEM): users presenting one may submit, list and stop
    /// queries (never act as cluster members).
    #[arg(long, env = "SLUICE_CLIENT_CA", requires = "tls_ca")]
    client_ca: Option<PathBuf>,
    /// File of bearer tokens users may authenticate with, one per line (re-read on change).
    #[arg(long, env = "SLUICE_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// Listen beyond loopback without TLS: nothing authenticates cluster members then.
    #[arg(long, env = "SLUICE_INSECURE")]
    insecure: bool,
    #[command(flatten)]
    policy: JobPolicyArgs,
    /// Directory of secrets jobs may refer to as `${secret:NAME}` in option values (the file
    /// NAME; a mounted Kubernetes Secret), so job files — and their copies in etcd — hold no
    /// passwords.
    #[arg(long, env = "SLUICE_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
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
    /// Settings file (TOML; keys are these options' long names). Precedence: command line,
    /// then environment, then this file, then defaults.
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the HTTP server: probes (`/healthz`; `/readyz`: registered, and not
    /// decommissioning) and Prometheus `/metrics`; HTTPS with --tls-cert. Off unless set.
    #[arg(long, env = "SLUICE_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Seconds a stopping executor (SIGTERM) waits for the driver to dismiss it — the batch in
    /// flight to finish — before it exits anyway; keep it below Kubernetes'
    /// terminationGracePeriodSeconds.
    #[arg(long, default_value_t = 25, env = "SLUICE_DRAIN_TIMEOUT")]
    drain_timeout: u64,
    /// The driver to register with (not needed with --etcd: executors register in etcd).
    #[arg(long, default_value = "http://127.0.0.1:7077", env = "SLUICE_DRIVER")]
    driver: String,
    /// Address to listen on for tasks and shuffle reads (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "SLUICE_EXECUTOR_LISTEN")]
    listen: SocketAddr,
    /// URL the driver and other executors reach this executor at (default `http://<listen>`,
    /// `https://` with TLS).
    #[arg(long, env = "SLUICE_EXECUTOR_ADVERTISE")]
    advertise: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Listen beyond loopback without TLS: nothing authenticates cluster members then.
    #[arg(long, env = "SLUICE_INSECURE")]
    insecure: bool,
    /// Tasks run at once (default: CPU cores).
    #[arg(long, env = "SLUICE_SLOTS")]
    slots: Option<usize>,
    /// Stable executor id (default: random).
    #[arg(long, env = "SLUICE_EXECUTOR_ID")]
    id: Option<String>,
    #[command(flatten)]
    etcd: EtcdArgs,
}

/// A listener appending every progress report to `path` (`--progress-json`), one JSON per line.
pub fn progress_file_listener(path: Option<&PathBuf>) -> Result<Option<QueryListener>> {
    let Some(p) = path else { return Ok(None) };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| SluiceError::user(format!("cannot open --progress-json file {}: {e}", p.display())))?;
    let file = Arc::new(Mutex::new(file));
    Ok(Some(Arc::new(move |event: &QueryEvent| {
        use std::io::Write;
        if let QueryEvent::Progress(progress) = event {
            if let Ok(mut f) = file.lock() {
                let _ = writeln!(f, "{}", progress.json());
            }
        }
    })))
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for SIGTERM; only Ctrl-C stops gracefully");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

pub async fn driver(args: DriverArgs) -> Result<()> {
    let restarts = RestartPolicy { max_restarts: args.max_query_restarts, ..RestartPolicy::default() };
    let transport = args.tls.transport(args.client_ca.clone())?;
    check_listen("driver", args.listen, &transport, args.insecure, args.advertise.as_deref())?;
    let security = DriverSecurity { transport, tokens: accepted_tokens(args.auth_token_file.as_ref())? };
    let http_security = security.clone();
    let config = DriverConfig {
        listen: args.listen,
        advertise: args.advertise,
        etcd: args.etcd.config(),
        restarts,
        security,
        policy: args.policy.policy(),
        secrets: args.secrets_dir.map(SecretsDir::new).unwrap_or_default(),
    };
    let admin = Arc::new(Admin::default());
    let mut registry = prometheus_client::registry::Registry::default();
    let query_metrics = QueryMetrics::register(&mut registry);
    let snapshot = DriverSnapshot::register(&mut registry, Arc::clone(&admin));
    let mut listeners: Vec<QueryListener> = progress_file_listener(args.progress_json.as_ref())?.into_iter().collect();
    if let Some(addr) = args.http_listen {
        // Metrics are kept only where someone can scrape them.
        listeners.push(query_metrics.listener());
        check_listen("driver's HTTP server", addr, &http_security.transport, args.insecure, None)?;
        let ready = Arc::clone(&admin);
        http::serve(HttpSetup {
            listen: addr,
            transport: http_security.transport.clone(),
            tokens: http_security.tokens.clone(),
            readiness: Arc::new(move || {
                if ready.ready() {
                    Ok(())
                } else {
                    Err("neither leading nor standing by with a known leader".into())
                }
            }),
            metrics: Metrics::of_driver(registry, snapshot),
            driver: Some(sluice_driver::http::router(Arc::clone(&admin))),
        })
        .await?;
    }
    // Served until the process exits.
    let _connect = serve_spark_connect(&args.connect_listen, &args.python, &http_security, args.insecure, &admin).await?;
    let stopping = async {
        stop_signal().await;
        tracing::info!("stop requested: finishing the current batches (a second signal stops at once)");
    };
    tokio::select! {
        r = run_driver(config, listeners, admin, stopping) => r.map(|_| ()),
        _ = async { stop_signal().await; stop_signal().await } => {
            Err(SluiceError::user("stopped at once by a second signal; the interrupted batches re-run from the checkpoint"))
        }
    }
}

/// The driver's Spark Connect server, guarded as its admin calls are.
async fn serve_spark_connect(
    flag: &str,
    python: &str,
    security: &DriverSecurity,
    insecure: bool,
    admin: &Arc<Admin>,
) -> Result<Option<ConnectListener>> {
    if flag.trim() == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = flag
        .parse()
        .map_err(|_| SluiceError::user(format!("--connect-listen {flag}: expected an address like 0.0.0.0:15002, or off")))?;
    check_listen("driver's Spark Connect server", addr, &security.transport, insecure, None)?;
    let guard = Guard::new(security.transport.tls().cloned(), security.tokens.clone(), sluice_connect::listen::audience);
    let server = SparkConnect::new(Arc::clone(admin), python.to_string());
    match ConnectListener::start(server, addr, security.transport.clone(), Some(guard)).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if flag == DEFAULT_CONNECT_LISTEN => {
            tracing::warn!("no Spark Connect server: {}", e.one_line());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `--connect-listen`'s default.
const DEFAULT_CONNECT_LISTEN: &str = "127.0.0.1:15002";

pub async fn executor(args: ExecutorArgs) -> Result<()> {
    let mut config = ExecutorConfig::local(args.driver);
    config.transport = args.tls.transport(None)?;
    let mut registry = prometheus_client::registry::Registry::default();
    config.metrics = sluice_executor::metrics::ExecutorMetrics::register(&mut registry);
    check_listen("executor", args.listen, &config.transport, args.insecure, args.advertise.as_deref())?;
    config.bind = args.listen;
    config.advertise = args.advertise;
    config.executor_id = args.id;
    config.etcd = args.etcd.config();
    if let Some(s) = args.slots {
        config.task_slots = s.max(1);
    }
    let transport = config.transport.clone();
    let handle = ExecutorHandle::start(config).await?;
    if let Some(addr) = args.http_listen {
        check_listen("executor's HTTP server", addr, &transport, args.insecure, None)?;
        let status = handle.status();
        http::serve(HttpSetup {
            listen: addr,
            transport,
            tokens: None,
            readiness: Arc::new(move || status.borrow().readiness().map_err(String::from)),
            metrics: Metrics::new(registry),
            driver: None,
        })
        .await?;
    }
    eprintln!("sluice executor {} listening at {}", handle.id, handle.endpoint);
    stop_signal().await;
    let id = handle.id.clone();
    tokio::select! {
        outcome = handle.decommission(Duration::from_secs(args.drain_timeout)) => match outcome {
            DrainOutcome::Dismissed => {
                tracing::info!(executor = %id, "decommissioned: the driver dismissed this executor; exiting");
                Ok(())
            }
            DrainOutcome::NoDriver => Ok(()),
            DrainOutcome::TimedOut => Err(SluiceError::external(format!(
                "executor {id} stopped after its drain timeout ({} s, --drain-timeout) without being dismissed: batches still using it are retried elsewhere",
                args.drain_timeout
            ))),
        },
        _ = stop_signal() => Err(SluiceError::user(format!(
            "executor {id} stopped at once by a second signal: batches still using it are retried elsewhere"
        ))),
    }
}
