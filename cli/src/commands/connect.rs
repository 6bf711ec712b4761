//! `sluice connect`: a Spark Connect server on the embedded cluster, so PySpark scripts run on
//! sluice unchanged but for `SparkSession.builder.remote("sc://localhost:15002")`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use sluice_common::error::Result;
use sluice_connect::listen::ConnectListener;
use sluice_connect::service::SparkConnect;
use sluice_security::Transport;

use super::run::{LocalArgs, LocalDriver};
use super::security_args::check_listen;

/// Arguments of `sluice connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Where to serve Spark Connect (gRPC); port 0 picks a free one. Spark's default port.
    #[arg(long, default_value = "127.0.0.1:15002", env = "SLUICE_CONNECT_LISTEN")]
    listen: SocketAddr,
    /// The Python that runs foreachBatch functions: it must import pyspark (the client's venv).
    #[arg(long, env = "PYSPARK_PYTHON", default_value = "python3")]
    python: String,
    /// Print which Spark Connect relations, expressions, commands and functions this server
    /// supports (Markdown) and exit.
    #[arg(long)]
    supported: bool,
    #[command(flatten)]
    local: LocalArgs,
}

pub async fn connect(args: ConnectArgs) -> Result<()> {
    if args.supported {
        print!("{}", sluice_connect::support::markdown().await);
        return Ok(());
    }
    let began = Instant::now();
    check_listen("sluice connect", args.listen, &Transport::Plain, args.local.insecure, None)?;
    let local = LocalDriver::start(&args.local).await?;
    let server = SparkConnect::new(Arc::clone(&local.admin), args.python.clone());
    let listener = ConnectListener::start(server, args.listen, Transport::Plain, None).await?;
    let addr = listener.addr;
    // On stdout: scripts and tests wait for this line to learn the port.
    local.board.print(&format!(
        "sluice connect: Spark Connect server listening on sc://{addr} (ready in {} ms)\n",
        began.elapsed().as_millis()
    ));
    if let Some(note) = &local.ui_note {
        local.board.note(note);
    }
    wait_for_stop().await;
    eprintln!("\nsluice connect: stopping the running queries");
    local.manager.stop_all().await;
    listener.stop().await;
    local.board.finish();
    local.cluster.shutdown().await;
    Ok(())
}

/// Ctrl-C or SIGTERM (a container's stop).
async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}
