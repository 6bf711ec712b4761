//! The `sluice` command line.

mod admin;
mod cat;
mod certs;
mod config_file;
mod connect;
mod http;
mod policy_args;
mod processes;
mod run;
mod security_args;
mod status;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use sluice_common::error::SluiceError;

/// sluice: Spark Structured Streaming semantics, without a JVM.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr (level from RUST_LOG, default `warn`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "SLUICE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every query of a job file on an embedded cluster (one driver + N executors in this
    /// process, over gRPC on 127.0.0.1) until the queries end; Ctrl-C stops after the current
    /// batch, a second Ctrl-C aborts.
    Run(run::RunArgs),
    /// Serve Spark Connect on an embedded cluster: PySpark 4 scripts run on sluice with
    /// `SparkSession.builder.remote("sc://localhost:15002")`; Ctrl-C stops their queries.
    Connect(connect::ConnectArgs),
    /// Print the committed rows of a file-sink output directory (what `_spark_metadata` lists),
    /// one JSON object per line.
    Cat(cat::CatArgs),
    /// Run a driver process: executors register with it (or in etcd), `sluice submit` sends it
    /// jobs; with --etcd, drivers elect a leader and a standby takes over when it dies.
    Driver(processes::DriverArgs),
    /// Run an executor process that runs a driver's tasks and holds state partitions.
    Executor(processes::ExecutorArgs),
    /// Submit a job file to a running driver; its queries start at once.
    Submit(admin::SubmitArgs),
    /// List a driver's queries with their last progress.
    Queries(admin::QueriesArgs),
    /// Stop a query (by name or id) on a running driver.
    Stop(admin::StopArgs),
    /// Write a development CA, member and user certificates and a bearer token for a local
    /// cluster (production clusters bring their own PKI).
    Certs(certs::CertsArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let argv = match config_file::apply(Cli::command(), std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => return fail(&e),
    };
    let cli = Cli::parse_from(argv);
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("sluice").build() {
        Ok(r) => r,
        Err(e) => return fail(&SluiceError::internal(format!("cannot start the async runtime: {e}"))),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Connect(args) => connect::connect(args).await,
            Command::Cat(args) => cat::cat(args).await,
            Command::Driver(args) => processes::driver(args).await,
            Command::Executor(args) => processes::executor(args).await,
            Command::Submit(args) => admin::submit(args).await,
            Command::Queries(args) => admin::queries(args).await,
            Command::Stop(args) => admin::stop(args).await,
            Command::Certs(args) => certs::certs(args),
        }
    });
    // Tasks may still hold the runtime (aborted queries); do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &SluiceError) -> ExitCode {
    eprintln!("sluice: error: {}", e.one_line());
    ExitCode::FAILURE
}

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
