//! `sluice run job.sql`: the embedded cluster, every query of the job, until they end.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Args;
use sluice_common::error::{Result, SluiceError};

use super::status::StatusBoard;
use crate::embedded::EmbeddedCluster;
use sluice_driver::job::SecretsDir;
use sluice_driver::Session;

/// Arguments of `sluice run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job file (SQL).
    job: PathBuf,
    /// Executors in the embedded cluster.
    #[arg(long, default_value_t = 2, env = "SLUICE_EXECUTORS")]
    executors: usize,
    /// Task slots per executor (default: CPU cores divided among the executors).
    #[arg(long)]
    slots: Option<usize>,
    /// Append every progress report (one JSON object per line) to this file.
    #[arg(long)]
    progress_json: Option<PathBuf>,
    /// Directory of secrets the job may refer to as `${secret:NAME}` in option values.
    #[arg(long, env = "SLUICE_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
}

pub async fn run(args: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.job)
        .map_err(|e| SluiceError::user(format!("cannot read job file {}: {e}", args.job.display())))?;
    let origin = args.job.display().to_string();
    if args.executors == 0 {
        return Err(SluiceError::user("--executors must be at least 1"));
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let slots = args.slots.unwrap_or_else(|| cores.div_ceil(args.executors)).max(1);

    let board = StatusBoard::new();
    let progress_file = match &args.progress_json {
        Some(p) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| SluiceError::user(format!("cannot open --progress-json file {}: {e}", p.display())))?,
        ))),
        None => None,
    };

    let cluster = EmbeddedCluster::start(args.executors, slots).await?;
    let console_board = board.clone();
    let listener_board = board.clone();
    let session = Session::new(cluster.registry())
        .with_secrets(args.secrets_dir.clone().map(SecretsDir::new).unwrap_or_default())
        .with_console(Arc::new(move |text: &str| console_board.print(text)))
        .with_progress_listener(Arc::new(move |p| {
            let name = p.name.clone().unwrap_or_else(|| p.id.to_string()[..8].to_string());
            listener_board.update(&name, p);
            if let Some(f) = &progress_file {
                if let Ok(mut f) = f.lock() {
                    let _ = writeln!(f, "{}", p.json());
                }
            }
        }));

    let result = run_queries(&session, &origin, &text).await;
    board.finish();
    cluster.shutdown().await;
    result
}

async fn run_queries(session: &Session, origin: &str, text: &str) -> Result<()> {
    let queries = session.run_job(origin, text).await?;
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
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
