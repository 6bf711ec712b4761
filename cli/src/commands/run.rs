//! `sluice run job.sql`: the embedded cluster, every query of the job, until they end — with the
//! driver's REST API, event stream, metrics and web UI on a local port, as Spark's driver serves
//! its UI on 4040.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use prometheus_client::registry::Registry;
use sluice_common::error::{Result, SluiceError};
use sluice_driver::job::SecretsDir;
use sluice_driver::manager::{Admin, QueryManager, RestartPolicy};
use sluice_driver::metrics::{DriverSnapshot, QueryMetrics};
use sluice_driver::query::QueryEvent;
use sluice_driver::{Session, StreamingQuery};
use sluice_executor::metrics::ExecutorMetrics;
use sluice_security::Transport;

use super::http::{self, HttpSetup, Metrics};
use super::processes::progress_file_listener;
use super::security_args::check_listen;
use super::status::StatusBoard;
use crate::embedded::EmbeddedCluster;

/// Spark's default UI port, and how many ports after it are tried when it is taken
/// (`spark.port.maxRetries`).
const UI_PORT: u16 = 4040;
const UI_PORT_RETRIES: u16 = 16;

/// Arguments of `sluice run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job file (SQL).
    job: PathBuf,
    #[command(flatten)]
    local: LocalArgs,
}

/// The embedded cluster's arguments, shared by `sluice run` and `sluice connect`.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Executors in the embedded cluster.
    #[arg(long, default_value_t = 2, env = "SLUICE_EXECUTORS")]
    executors: usize,
    /// Task slots per executor (default: CPU cores divided among the executors).
    #[arg(long)]
    slots: Option<usize>,
    /// Append every progress report (one JSON object per line) to this file.
    #[arg(long)]
    progress_json: Option<PathBuf>,
    /// Directory of secrets jobs may refer to as `${secret:NAME}` in option values.
    #[arg(long, env = "SLUICE_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
    /// Where to serve the web UI, REST API and metrics: an address (port 0 picks one), or `off`.
    /// Default 127.0.0.1:4040, or the next free port up to 4056.
    #[arg(long, env = "SLUICE_UI_LISTEN")]
    ui_listen: Option<String>,
    /// Serve the UI (and `sluice connect`'s server) beyond loopback: neither has
    /// authentication here.
    #[arg(long)]
    pub insecure: bool,
}

/// A driver and its executors in this process, with the terminal's status line and the UI.
pub struct LocalDriver {
    /// The executors.
    pub cluster: EmbeddedCluster,
    /// The driver's queries, events and executors.
    pub admin: Arc<Admin>,
    /// Where queries are submitted.
    pub manager: Arc<QueryManager>,
    /// The terminal's status line and console output.
    pub board: StatusBoard,
    /// What to tell the user about the UI once something runs.
    pub ui_note: Option<String>,
}

impl LocalDriver {
    /// Starts the embedded cluster, its driver session and the UI.
    pub async fn start(args: &LocalArgs) -> Result<Self> {
        if args.executors == 0 {
            return Err(SluiceError::user("--executors must be at least 1"));
        }
        let ui = ui_addresses(args.ui_listen.as_deref())?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let slots = args.slots.unwrap_or_else(|| cores.div_ceil(args.executors)).max(1);

        let mut registry = Registry::default();
        let query_metrics = QueryMetrics::register(&mut registry);
        let executor_metrics = ExecutorMetrics::register(&mut registry);
        let progress_file = progress_file_listener(args.progress_json.as_ref())?;

        let cluster = EmbeddedCluster::start_with_metrics(args.executors, slots, executor_metrics).await?;
        let admin = Arc::new(Admin::default());
        admin.set_registry(cluster.registry());
        let snapshot = DriverSnapshot::register(&mut registry, Arc::clone(&admin));
        let board = StatusBoard::new();
        let console_board = board.clone();
        let listener_board = board.clone();
        let mut session = Session::new(cluster.registry())
            .with_secrets(args.secrets_dir.clone().map(SecretsDir::new).unwrap_or_default())
            .with_console(Arc::new(move |text: &str| console_board.print(text)))
            .with_listener(Arc::new(move |event: &QueryEvent| {
                if let QueryEvent::Progress(p) = event {
                    let name = p.name.clone().unwrap_or_else(|| p.id.to_string()[..8].to_string());
                    listener_board.update(&name, p);
                }
            }));
        if !ui.is_empty() {
            // Metrics are kept only where someone can scrape them.
            session = session.with_listener(query_metrics.listener());
        }
        if let Some(l) = progress_file {
            session = session.with_listener(l);
        }
        session = session.with_listener(admin.events.listener());
        // A failed query stays failed here: the user sees it and decides.
        let manager = QueryManager::new(session, None, RestartPolicy { max_restarts: 0, ..RestartPolicy::default() });
        admin.activate(Arc::clone(&manager));

        let mut ui_note = None;
        if !ui.is_empty() {
            let metrics = Metrics::of_driver(registry, snapshot);
            match serve_ui(&ui, args.insecure, &admin, metrics).await {
                Ok(addr) => ui_note = Some(format!("sluice: UI at http://{addr}/ui/")),
                // Every default port taken (many runs on one machine): the job runs all the same.
                Err(e) if args.ui_listen.is_none() => ui_note = Some(format!("sluice: warning: no UI: {}", e.one_line())),
                Err(e) => return Err(e),
            }
        }
        Ok(Self { cluster, admin, manager, board, ui_note })
    }
}

pub async fn run(args: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.job)
        .map_err(|e| SluiceError::user(format!("cannot read job file {}: {e}", args.job.display())))?;
    let origin = args.job.display().to_string();
    let local = LocalDriver::start(&args.local).await?;
    let note_board = local.board.clone();
    let ui_note = local.ui_note.clone();
    let announce = move || {
        if let Some(note) = &ui_note {
            note_board.note(note);
        }
    };
    let result = run_queries(&local.manager, &origin, &text, announce).await;
    local.board.finish();
    local.cluster.shutdown().await;
    result
}

/// The addresses to try for the UI, in order: the one given, or 4040…4056 on loopback; none
/// for `off`.
fn ui_addresses(flag: Option<&str>) -> Result<Vec<SocketAddr>> {
    match flag.map(str::trim) {
        Some("off") => Ok(Vec::new()),
        Some(addr) => addr
            .parse()
            .map(|a| vec![a])
            .map_err(|_| SluiceError::user(format!("--ui-listen {addr}: expected an address like 127.0.0.1:4040, or off"))),
        None => Ok((UI_PORT..=UI_PORT + UI_PORT_RETRIES).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect()),
    }
}

/// Serves the UI on the first address of `candidates` that is free.
async fn serve_ui(candidates: &[SocketAddr], insecure: bool, admin: &Arc<Admin>, metrics: Metrics) -> Result<SocketAddr> {
    let mut last_error = None;
    for addr in candidates {
        check_listen("sluice run UI", *addr, &Transport::Plain, insecure, None)?;
        let setup = HttpSetup {
            listen: *addr,
            transport: Transport::Plain,
            tokens: None,
            readiness: Arc::new(|| Ok(())),
            metrics: metrics.clone(),
            driver: Some(sluice_driver::http::router(Arc::clone(admin))),
        };
        match http::serve(setup).await {
            Ok(bound) => return Ok(bound),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| SluiceError::user("no address to serve the UI on")))
}

async fn run_queries(manager: &QueryManager, origin: &str, text: &str, started: impl FnOnce() + Send + 'static) -> Result<()> {
    let queries: Vec<StreamingQuery> = manager.submit(origin, text).await?;
    let announce = {
        let queries = queries.clone();
        tokio::spawn(async move {
            // Once every query runs: a job that cannot start fails with its one error line.
            for q in &queries {
                if !q.await_started().await {
                    return;
                }
            }
            started();
        })
    };
    let stopper = queries.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nsluice: stopping after the current batch (press Ctrl-C again to abort)");
            for q in &stopper {
                q.request_stop();
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("sluice: aborted");
                std::process::exit(130);
            }
        }
    });
    let mut first_error: Option<SluiceError> = None;
    for q in &queries {
        if let Err(e) = q.await_termination().await {
            let e = e.context(format!("query {}", q.display_name()));
            if first_error.is_none() {
                first_error = Some(e.clone());
            }
            // One failed query stops the job, as a failed `awaitAnyTermination` would.
            for other in &queries {
                other.request_stop();
            }
        }
    }
    ctrl_c.abort();
    announce.abort();
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
