//! `sluice submit`, `sluice queries`, `sluice stop`: talking to a running driver.

use std::path::PathBuf;

use clap::Args;
use sluice_common::error::{Result, SluiceError};
use sluice_proto::v1::driver_service_client::DriverServiceClient;
use sluice_proto::v1::{
    ListQueriesRequest, QueryEventMessage, QueryStatus, StopQueryRequest, SubmitJobRequest, WatchEventsRequest,
};
use sluice_security::token::AttachToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::processes::EtcdArgs;
use super::security_args::ClientAuthArgs;

/// How to reach the driver.
#[derive(Debug, Args)]
pub struct DriverAddress {
    /// The driver's URL, `https://` when it speaks TLS (with --etcd: found as the elected
    /// leader instead).
    #[arg(long, default_value = "http://127.0.0.1:7077", env = "SLUICE_DRIVER")]
    driver: String,
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    auth: ClientAuthArgs,
}

/// A driver client that authenticates every call.
type Client = DriverServiceClient<InterceptedService<Channel, AttachToken>>;

impl DriverAddress {
    async fn connect(&self) -> Result<Client> {
        let endpoint = match self.etcd.config() {
            Some(cfg) => sluice_cluster::etcd::leader_endpoint(&cfg)
                .await?
                .ok_or_else(|| SluiceError::external(format!("no driver leads cluster '{}' in etcd", cfg.cluster)))?,
            None => self.driver.clone(),
        };
        let transport = self.auth.tls.transport(None)?;
        let token = AttachToken::new(self.auth.token()?.as_deref())?;
        let channel = transport
            .connect(transport.endpoint(&endpoint)?)
            .await
            .map_err(|e| SluiceError::external(format!("cannot reach the driver at {endpoint}: {}", error_chain(&e))))?;
        Ok(DriverServiceClient::with_interceptor(channel, token))
    }
}

fn rpc_error(status: tonic::Status) -> SluiceError {
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            SluiceError::user(format!("the driver refused the call: {}", status.message()))
        }
        _ => SluiceError::external(status.message().to_string()),
    }
}

/// An error with its causes (a TLS failure hides under "transport error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Arguments of `sluice submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The job file (SQL). Relative paths inside it are resolved by the driver, against its
    /// working directory: prefer absolute paths or URLs.
    job: PathBuf,
    #[command(flatten)]
    address: DriverAddress,
}

/// Arguments of `sluice queries`.
#[derive(Debug, Args)]
pub struct QueriesArgs {
    /// Print the raw statuses as JSON lines.
    #[arg(long)]
    json: bool,
    /// Then follow the queries' listener events (started, progress, idle, terminated) until
    /// interrupted: one line each, or Spark's event JSON with --json.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    address: DriverAddress,
}

/// Arguments of `sluice stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Query name or id.
    query: String,
    #[command(flatten)]
    address: DriverAddress,
}

fn describe(q: &QueryStatus) -> String {
    let p: serde_json::Value = serde_json::from_str(&q.last_progress_json).unwrap_or(serde_json::Value::Null);
    let batch = p.get("batchId").map(|b| b.to_string()).unwrap_or_else(|| "-".into());
    let rate = p.get("processedRowsPerSecond").and_then(|r| r.as_f64()).map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into());
    let wm = p.pointer("/eventTime/watermark").and_then(|w| w.as_str()).unwrap_or("-").to_string();
    let name = if q.name.is_empty() { "-" } else { &q.name };
    let mut placed: Vec<String> = q.state_partitions.iter().map(|(e, n)| format!("{e}:{n}")).collect();
    placed.sort();
    let placed = if placed.is_empty() { "-".to_string() } else { placed.join(",") };
    let mut line = format!(
        "{name:<20} {:<36} {:<12} {batch:>6} {rate:>12} {wm:<24} {:>7} {:>8} {placed}",
        q.id, q.state, q.batches_retried, q.restarts
    );
    if !q.error.is_empty() {
        line.push_str(&format!("  {}", q.error));
    }
    line
}

const HEADER: &str = "NAME                 ID                                   STATE         BATCH  PROCESSED/S WATERMARK                RETRIED RESTARTS STATE PARTITIONS";

pub async fn submit(args: SubmitArgs) -> Result<()> {
    let job = std::fs::read_to_string(&args.job)
        .map_err(|e| SluiceError::user(format!("cannot read job file {}: {e}", args.job.display())))?;
    let mut client = args.address.connect().await?;
    let resp = client
        .submit_job(SubmitJobRequest { job, origin: args.job.display().to_string() })
        .await
        .map_err(rpc_error)?
        .into_inner();
    print_table(&resp.queries);
    Ok(())
}

fn print_table(queries: &[QueryStatus]) {
    println!("{HEADER}");
    for q in queries {
        println!("{}", describe(q));
    }
}

pub async fn queries(args: QueriesArgs) -> Result<()> {
    let mut client = args.address.connect().await?;
    // Subscribed before listing, so no event between the two is missed.
    let events =
        if args.watch { Some(client.watch_events(WatchEventsRequest {}).await.map_err(rpc_error)?.into_inner()) } else { None };
    let resp = client.list_queries(ListQueriesRequest {}).await.map_err(rpc_error)?.into_inner();
    if args.json {
        for q in &resp.queries {
            println!(
                "{}",
                serde_json::json!({
                    "id": q.id, "runId": q.run_id, "name": q.name, "state": q.state, "error": q.error,
                    "status": {"message": q.status_message, "isDataAvailable": q.is_data_available, "isTriggerActive": q.is_trigger_active},
                    "leader": resp.leader,
                    "batchesRetried": q.batches_retried,
                    "restarts": q.restarts,
                    "statePartitions": q.state_partitions,
                    "lastProgress": serde_json::from_str::<serde_json::Value>(&q.last_progress_json).unwrap_or(serde_json::Value::Null),
                })
            );
        }
    } else {
        print_table(&resp.queries);
    }
    let Some(mut events) = events else { return Ok(()) };
    loop {
        match events.message().await {
            Ok(Some(event)) => println!("{}", if args.json { event_json(&event) } else { event_line(&event) }),
            Ok(None) => return Err(SluiceError::external("the driver closed the event stream (it stopped or stepped down)")),
            Err(status) => return Err(rpc_error(status)),
        }
    }
}

/// An event as one JSON line: Spark's event JSON under the event's class name.
fn event_json(e: &QueryEventMessage) -> String {
    let json: serde_json::Value = serde_json::from_str(&e.json).unwrap_or(serde_json::Value::Null);
    serde_json::json!({ "event": e.kind, "data": json }).to_string()
}

/// An event as one line for people.
fn event_line(e: &QueryEventMessage) -> String {
    let v: serde_json::Value = serde_json::from_str(&e.json).unwrap_or(serde_json::Value::Null);
    let text = |v: &serde_json::Value, key: &str| v.get(key).and_then(|x| x.as_str()).unwrap_or("-").to_string();
    match e.kind.as_str() {
        "QueryProgressEvent" => {
            let p = v.get("progress").cloned().unwrap_or_default();
            let name = p.get("name").and_then(|n| n.as_str()).map(str::to_string).unwrap_or_else(|| text(&p, "id"));
            let num = |key: &str| p.get(key).and_then(|x| x.as_f64());
            let mut line = format!(
                "{} progress   {name} batch {} input {} rows ({} rows/s processed) in {} ms",
                text(&p, "timestamp"),
                p.get("batchId").map(|b| b.to_string()).unwrap_or_default(),
                p.get("numInputRows").map(|b| b.to_string()).unwrap_or_default(),
                num("processedRowsPerSecond").map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into()),
                p.get("batchDuration").map(|b| b.to_string()).unwrap_or_default(),
            );
            if let Some(wm) = p.pointer("/eventTime/watermark").and_then(|w| w.as_str()) {
                line.push_str(&format!(", watermark {wm}"));
            }
            line
        }
        "QueryStartedEvent" => {
            let name = v.get("name").and_then(|n| n.as_str()).unwrap_or("-");
            format!("{} started    {name} id {} run {}", text(&v, "timestamp"), text(&v, "id"), text(&v, "runId"))
        }
        "QueryIdleEvent" => format!("{} idle       {} run {}", text(&v, "timestamp"), text(&v, "id"), text(&v, "runId")),
        "QueryTerminatedEvent" => {
            let mut line = format!("terminated {} run {}", text(&v, "id"), text(&v, "runId"));
            if let Some(ex) = v.get("exception").and_then(|x| x.as_str()) {
                line.push_str(&format!(": {ex}"));
            }
            line
        }
        other => format!("{other} {}", e.json),
    }
}

pub async fn stop(args: StopArgs) -> Result<()> {
    let mut client = args.address.connect().await?;
    let resp = client.stop_query(StopQueryRequest { query: args.query }).await.map_err(rpc_error)?.into_inner();
    if let Some(q) = resp.query {
        println!("{HEADER}");
        println!("{}", describe(&q));
    }
    Ok(())
}
