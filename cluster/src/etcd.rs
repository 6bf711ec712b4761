//! etcd as sluice's cluster brain: executor membership under leases, driver leader election,
//! and the store of submitted queries.
//!
//! Keys live under `/sluice/<cluster>/`:
//!
//! * `executors/<id>` — an executor's [`ExecutorRecord`], attached to its lease: when the
//!   process dies the lease lapses after its TTL and the key disappears, so the driver learns
//!   of the loss even with no RPC in flight.
//! * `election` — etcd's election: the leader's key carries its endpoint; its create revision
//!   is the leader's **term**, the fencing token checked before every checkpoint commit.
//! * `queries/<query id>` — a submitted query's [`QueryRecord`], so a new leader knows what to run.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity, LeaderKey, PutOptions, TlsOptions,
    Txn, WatchOptions,
};
use tokio::sync::watch;

use sluice_common::error::{Result, SluiceError};

/// How to reach etcd and which cluster to join.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// etcd client URLs (e.g. `http://etcd-0:2379`), any of which may serve requests.
    pub endpoints: Vec<String>,
    /// Namespace of this cluster's keys.
    pub cluster: String,
    /// Lease TTL in seconds: how long a dead process stays registered (or leader).
    pub lease_ttl_secs: i64,
    /// TLS to etcd (`https://` endpoints): its CA, and a client certificate when etcd asks for one.
    pub tls: Option<EtcdTls>,
    /// etcd's own authentication (`etcdctl auth enable`): a user and the file holding its password.
    pub user: Option<EtcdUser>,
}

/// TLS settings for etcd. The files are read at every (re)connection, so renewed certificates
/// are used from the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA that signed etcd's server certificate.
    pub ca: std::path::PathBuf,
    /// Client certificate and key, for etcd started with `--client-cert-auth`.
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// An etcd user; the password comes from a file (a Kubernetes Secret), never from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUser {
    /// The user name.
    pub name: String,
    /// The file holding its password (first line).
    pub password_file: std::path::PathBuf,
}

impl EtcdConfig {
    fn prefix(&self) -> String {
        format!("/sluice/{}/", self.cluster)
    }

    /// Key prefix of executor registrations.
    pub fn executors_prefix(&self) -> String {
        format!("{}executors/", self.prefix())
    }

    /// Key prefix of stored queries.
    pub fn queries_prefix(&self) -> String {
        format!("{}queries/", self.prefix())
    }

    /// Name of the driver election.
    pub fn election(&self) -> String {
        format!("{}election", self.prefix())
    }
}

fn etcd_error(what: &str, e: etcd_client::Error) -> SluiceError {
    SluiceError::external(format!("etcd: {what}: {e}"))
}

/// Connects to etcd.
pub async fn connect(config: &EtcdConfig) -> Result<Client> {
    // No per-request timeout: a campaign blocks until this driver is elected. Keep-alives
    // notice a dead connection; callers bound the calls that must not hang (`still_leader`).
    // etcd answers pings more frequent than its `--grpc-keepalive-min-time` (5 s), or pings
    // without an open stream, with GOAWAY "too many pings", which cuts every watch: stay above.
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(false);
    if let Some(tls) = &config.tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| SluiceError::user(format!("etcd TLS: cannot read {}: {e}", p.display())))
        };
        let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
        if let Some((cert, key)) = &tls.identity {
            t = t.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(t);
    }
    if let Some(user) = &config.user {
        let text = std::fs::read_to_string(&user.password_file).map_err(|e| {
            SluiceError::user(format!(
                "etcd user {}: cannot read the password file {}: {e}",
                user.name,
                user.password_file.display()
            ))
        })?;
        let password = text.lines().next().unwrap_or_default().to_string();
        // etcd's simple tokens expire (5 min idle by default): log in again when one does.
        options = options.with_user(user.name.clone(), password).with_auto_token_refresh(true);
    }
    Client::connect(&config.endpoints, Some(options))
        .await
        .map_err(|e| etcd_error(&format!("cannot connect to {}", config.endpoints.join(",")), e))
}

/// A lease kept alive in the background; `lost` turns true when it can no longer be renewed
/// (etcd unreachable for longer than the TTL, or the lease expired).
pub struct LeaseSession {
    /// The connection the lease was granted on; use it for puts and campaigns tied to the lease.
    pub client: Client,
    /// etcd's id of the lease: keys put with it (registrations, the leader key) vanish when it lapses.
    pub lease_id: i64,
    lost: watch::Receiver<bool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl LeaseSession {
    /// Grants a lease of the configured TTL and starts renewing it every TTL/3.
    pub async fn start(config: &EtcdConfig) -> Result<Self> {
        let mut client = connect(config).await?;
        let ttl = config.lease_ttl_secs.max(1);
        let lease = client.lease_grant(ttl, None).await.map_err(|e| etcd_error("granting a lease", e))?;
        let lease_id = lease.id();
        let (tx, lost) = watch::channel(false);
        let mut keeper_client = client.clone();
        let keeper = tokio::spawn(async move {
            let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(200));
            let mut last_ok = tokio::time::Instant::now();
            let mut stream = None;
            loop {
                // Every renewal is bounded in time: behind a network partition nothing answers
                // and nothing fails either (no reset reaches us), and the lease must still count
                // as lost once its TTL has passed without a renewal.
                let renewal = async {
                    if stream.is_none() {
                        stream = keeper_client.lease_keep_alive(lease_id).await.ok();
                    }
                    match stream.as_mut() {
                        Some((keeper, responses)) => match keeper.keep_alive().await {
                            Ok(()) => matches!(responses.message().await, Ok(Some(r)) if r.ttl() > 0),
                            Err(_) => false,
                        },
                        None => false,
                    }
                };
                let renewed = tokio::time::timeout(period, renewal).await.unwrap_or(false);
                if renewed {
                    last_ok = tokio::time::Instant::now();
                } else {
                    stream = None;
                    if last_ok.elapsed() >= Duration::from_secs(ttl as u64) {
                        let _ = tx.send(true);
                        return;
                    }
                }
                tokio::time::sleep(period).await;
            }
        });
        Ok(Self { client, lease_id, lost, keeper })
    }

    /// A receiver that turns true when the lease is lost.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Revokes the lease (keys attached to it vanish at once) and stops renewing.
    pub async fn close(mut self) {
        self.keeper.abort();
        let _ = self.client.lease_revoke(self.lease_id).await;
    }
}

/// What an executor publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecutorRecord {
    /// The executor's stable id; also the last segment of its `executors/<id>` key.
    pub id: String,
    /// Its advertised gRPC URL (e.g. `http://10.0.0.5:7078`): task RPCs and Arrow Flight shuffle fetches.
    pub endpoint: String,
    /// How many tasks it runs at once; the driver schedules at most this many on it.
    pub task_slots: usize,
    /// It is shutting down (SIGTERM): the leader gives it no new batches and dismisses it once
    /// nothing in flight needs it. Absent in records of older executors.
    #[serde(default)]
    pub decommissioning: bool,
}

/// Registers an executor under its session's lease.
pub async fn register_executor(session: &mut LeaseSession, config: &EtcdConfig, record: &ExecutorRecord) -> Result<()> {
    let key = format!("{}{}", config.executors_prefix(), record.id);
    session
        .client
        .put(key, serde_json::to_vec(record)?, Some(PutOptions::new().with_lease(session.lease_id)))
        .await
        .map_err(|e| etcd_error("registering the executor", e))?;
    Ok(())
}

/// A change in executor membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// Everything registered right now (after connecting, and after every reconnect).
    Snapshot(Vec<ExecutorRecord>),
    /// An executor registered, or re-registered (its record was put again).
    Joined(ExecutorRecord),
    /// The executor with this id is gone: its key was deleted or its lease lapsed.
    Left(String),
}

/// Streams membership: a snapshot of every registered executor, then changes as they happen;
/// after a lost connection it reconnects and starts over with a fresh snapshot.
pub fn watch_executors(config: &EtcdConfig) -> tokio::sync::mpsc::Receiver<MembershipEvent> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let config = config.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match watch_once(&config, &tx).await {
                Ok(()) => return, // the receiver is gone
                Err(e) => tracing::warn!(error = %e, "etcd membership watch interrupted; reconnecting"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
    rx
}

/// One watch session; returns Ok when the receiver is dropped, Err when the watch breaks.
async fn watch_once(config: &EtcdConfig, tx: &tokio::sync::mpsc::Sender<MembershipEvent>) -> Result<()> {
    let mut client = connect(config).await?;
    let prefix = config.executors_prefix();
    let current = client
        .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| etcd_error("listing executors", e))?;
    let revision = current.header().map(|h| h.revision()).unwrap_or(0);
    let records = current.kvs().iter().filter_map(|kv| serde_json::from_slice::<ExecutorRecord>(kv.value()).ok()).collect();
    if tx.send(MembershipEvent::Snapshot(records)).await.is_err() {
        return Ok(());
    }
    let mut stream = client
        .watch(prefix.clone(), Some(WatchOptions::new().with_prefix().with_start_revision(revision + 1)))
        .await
        .map_err(|e| etcd_error("watching executors", e))?;
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return Err(SluiceError::external("etcd: the membership watch was closed")),
            Err(e) => return Err(etcd_error("watching executors", e)),
        };
        if resp.canceled() {
            return Err(SluiceError::external(format!("etcd: the membership watch was canceled: {}", resp.cancel_reason())));
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let msg = match event.event_type() {
                EventType::Put => match serde_json::from_slice::<ExecutorRecord>(kv.value()) {
                    Ok(r) => MembershipEvent::Joined(r),
                    Err(_) => continue,
                },
                EventType::Delete => {
                    let key = String::from_utf8_lossy(kv.key()).to_string();
                    MembershipEvent::Left(key.trim_start_matches(&prefix).to_string())
                }
            };
            if tx.send(msg).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// This driver's leadership: the election key it holds and its term.
#[derive(Debug, Clone)]
pub struct Leadership {
    key: LeaderKey,
    /// Create revision of the leader key: increases with every new leader.
    pub term: i64,
}

/// Campaigns until this driver is elected leader (blocks while another leader holds it).
pub async fn campaign(session: &mut LeaseSession, config: &EtcdConfig, endpoint: &str) -> Result<Leadership> {
    let resp = session
        .client
        .campaign(config.election(), endpoint, session.lease_id)
        .await
        .map_err(|e| etcd_error("campaigning for leadership", e))?;
    let key = resp.leader().cloned().ok_or_else(|| SluiceError::external("etcd: campaign returned no leader key"))?;
    Ok(Leadership { term: key.rev(), key })
}

/// True while `leadership` is still the current leader key (same key, same term): the fence
/// checked before writing to the checkpoint.
pub async fn still_leader(client: &mut Client, leadership: &Leadership) -> Result<bool> {
    let txn = Txn::new().when([Compare::create_revision(leadership.key.key(), CompareOp::Equal, leadership.term)]);
    let resp = tokio::time::timeout(Duration::from_secs(5), client.txn(txn))
        .await
        .map_err(|_| SluiceError::external("etcd: checking leadership timed out"))?
        .map_err(|e| etcd_error("checking leadership", e))?;
    Ok(resp.succeeded())
}

/// The current leader's endpoint, if there is a leader.
pub async fn leader_endpoint(config: &EtcdConfig) -> Result<Option<String>> {
    let mut client = connect(config).await?;
    match client.leader(config.election()).await {
        Ok(resp) => Ok(resp.kv().map(|kv| String::from_utf8_lossy(kv.value()).to_string())),
        Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("no leader") => Ok(None),
        Err(e) => Err(etcd_error("finding the leader", e)),
    }
}

/// The current leader's term (its key's create revision, as [`Leadership::term`]), if a driver
/// leads: executors fence tasks by it.
pub async fn leader_term(client: &mut Client, config: &EtcdConfig) -> Result<Option<i64>> {
    match client.leader(config.election()).await {
        Ok(resp) => Ok(resp.kv().map(|kv| kv.create_revision())),
        Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("no leader") => Ok(None),
        Err(e) => Err(etcd_error("finding the leader", e)),
    }
}

/// A submitted query as stored for future leaders. Its job text holds no password when the job
/// refers to its credentials as `${secret:NAME}` (the driver's `--secrets-dir`); it is never
/// printed whole.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueryRecord {
    /// The job file's text.
    pub job: String,
    /// Where it came from (for messages).
    pub origin: String,
    /// Which `INSERT INTO` of the job this query is (0-based).
    pub index: usize,
}

impl std::fmt::Debug for QueryRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRecord")
            .field("origin", &self.origin)
            .field("index", &self.index)
            .field("job", &format_args!("<{} bytes>", self.job.len()))
            .finish()
    }
}

/// Stores a query under its id.
pub async fn put_query(client: &mut Client, config: &EtcdConfig, id: &str, record: &QueryRecord) -> Result<()> {
    client
        .put(format!("{}{id}", config.queries_prefix()), serde_json::to_vec(record)?, None)
        .await
        .map_err(|e| etcd_error("storing a query", e))?;
    Ok(())
}

/// Forgets a query.
pub async fn delete_query(client: &mut Client, config: &EtcdConfig, id: &str) -> Result<()> {
    client.delete(format!("{}{id}", config.queries_prefix()), None).await.map_err(|e| etcd_error("deleting a query", e))?;
    Ok(())
}

/// Every stored query, by id.
pub async fn list_queries(client: &mut Client, config: &EtcdConfig) -> Result<Vec<(String, QueryRecord)>> {
    let prefix = config.queries_prefix();
    let resp =
        client.get(prefix.clone(), Some(GetOptions::new().with_prefix())).await.map_err(|e| etcd_error("listing queries", e))?;
    let mut out = Vec::new();
    for kv in resp.kvs() {
        let id = String::from_utf8_lossy(kv.key()).trim_start_matches(&prefix).to_string();
        let record: QueryRecord = serde_json::from_slice(kv.value())
            .map_err(|e| SluiceError::internal(format!("stored query {id} is unreadable: {e}")))?;
        out.push((id, record));
    }
    Ok(out)
}
