//! Shuffle: blocks a task produced for each downstream partition, kept in the producing
//! executor's memory and served to consumers over Arrow Flight (`do_get`).
//!
//! A block is named by (query run, batch, attempt, stage, producer, partition). A run's blocks
//! of older attempts of a batch, and of batches older than the [`BATCHES_IN_FLIGHT`] newest, are
//! dropped as soon as a newer one starts on this executor: memory holds the blocks of the batch
//! in flight and of the next one, whose map stage the driver runs ahead. A consumer on the same
//! executor reads blocks directly from memory, and so does one on another executor of the same process (an
//! embedded cluster's, see [`Neighbours`]); the others fetch them with a Flight ticket.
//!
//! A ticket names the block and carries its run's **shuffle key**, the random secret the driver
//! made for the run and sends only with the run's tasks (over TLS in a secure cluster): a run id
//! read from progress JSON is not enough to fetch another run's rows. Connections to peers go
//! through the process's [`Transport`], so in a secure cluster only members can fetch at all.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, PollInfo,
    PutResult, SchemaResult, Ticket,
};
use futures::{Stream, TryStreamExt};
use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchId;
use sluice_security::Transport;
use subtle::ConstantTimeEq;
use tonic::{Request, Response, Status, Streaming};

use crate::metrics::{ExecutorMeter, FetchedFrom};
use crate::BATCHES_IN_FLIGHT;

/// Identity of one shuffle block.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BlockId {
    /// The query run.
    pub run_id: String,
    /// The batch.
    pub batch: BatchId,
    /// The batch attempt: a retry never reads an abandoned attempt's blocks.
    pub attempt: u32,
    /// Consumer stage: 0 feeds the first operator, k feeds operator k (or the gather task).
    pub stage: u32,
    /// Index of the task that produced the block in its stage.
    pub producer: u32,
    /// The downstream (state) partition the block is for.
    pub partition: u32,
}

/// What a consumer sends to fetch a block: the block, and the shuffle key of its run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShuffleTicket {
    /// The block.
    pub block: BlockId,
    /// The run's shuffle key.
    pub key: String,
}

/// Blocks held by this executor.
#[derive(Debug, Default)]
pub struct BlockStore {
    blocks: Mutex<HashMap<BlockId, Arc<Vec<RecordBatch>>>>,
    /// Per run: the newest attempt of each of its [`BATCHES_IN_FLIGHT`] newest batches; only their
    /// blocks are current.
    current: Mutex<HashMap<String, BTreeMap<BatchId, u32>>>,
    /// Per run: its shuffle key, learnt from the run's first task here.
    keys: Mutex<HashMap<String, String>>,
}

impl BlockStore {
    /// Learns a run's shuffle key from one of its tasks (the first one seen stays).
    pub fn learn_key(&self, run_id: &str, key: &str) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.entry(run_id.to_string()).or_insert_with(|| key.to_string());
        }
    }

    /// Whether `ticket` carries its run's key (compared in constant time). A run this executor
    /// ran no task of has no blocks here either.
    pub fn authorizes(&self, ticket: &ShuffleTicket) -> bool {
        self.knows_key(&ticket.block.run_id, &ticket.key)
    }

    /// Whether `key` is run `run_id`'s shuffle key (compared in constant time).
    fn knows_key(&self, run_id: &str, key: &str) -> bool {
        let Ok(keys) = self.keys.lock() else { return false };
        keys.get(run_id).is_some_and(|k| bool::from(k.as_bytes().ct_eq(key.as_bytes())))
    }

    /// Marks (batch, attempt) current for its run, dropping that run's blocks of older attempts
    /// of the batch and of batches older than the [`BATCHES_IN_FLIGHT`] newest.
    pub fn begin(&self, run_id: &str, batch: BatchId, attempt: u32) {
        let (Ok(mut cur), Ok(mut blocks)) = (self.current.lock(), self.blocks.lock()) else { return };
        if cur.get(run_id).and_then(|newest| newest.get(&batch)).is_some_and(|a| *a >= attempt) {
            return;
        }
        let newest = cur.entry(run_id.to_string()).or_default();
        newest.insert(batch, attempt);
        while newest.len() > BATCHES_IN_FLIGHT {
            newest.pop_first();
        }
        blocks.retain(|k, _| k.run_id != run_id || newest.get(&k.batch).is_some_and(|a| k.attempt >= *a));
    }

    /// Stores a task's blocks, one per downstream partition.
    pub fn put(&self, id: BlockId, rows: Vec<RecordBatch>) {
        if let Ok(mut b) = self.blocks.lock() {
            b.insert(id, Arc::new(rows));
        }
    }

    /// A block, if this executor holds it.
    pub fn get(&self, id: &BlockId) -> Option<Arc<Vec<RecordBatch>>> {
        self.blocks.lock().ok()?.get(id).cloned()
    }

    /// Drops everything of a run.
    pub fn release(&self, run_id: &str) {
        if let Ok(mut b) = self.blocks.lock() {
            b.retain(|k, _| k.run_id != run_id);
        }
        if let Ok(mut c) = self.current.lock() {
            c.remove(run_id);
        }
        if let Ok(mut k) = self.keys.lock() {
            k.remove(run_id);
        }
    }
}

/// The Flight side of the block store.
pub struct ShuffleService {
    /// The executor's block store, shared with its task runner, which fills it.
    pub blocks: Arc<BlockStore>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

fn unsupported<T>() -> std::result::Result<T, Status> {
    Err(Status::unimplemented("sluice executors only serve shuffle blocks (do_get)"))
}

#[tonic::async_trait]
impl FlightService for ShuffleService {
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = BoxStream<FlightData>;
    type DoPutStream = BoxStream<PutResult>;
    type DoExchangeStream = BoxStream<FlightData>;
    type DoActionStream = BoxStream<arrow_flight::Result>;
    type ListActionsStream = BoxStream<ActionType>;

    async fn do_get(&self, request: Request<Ticket>) -> std::result::Result<Response<Self::DoGetStream>, Status> {
        let ticket: ShuffleTicket = serde_json::from_slice(&request.into_inner().ticket)
            .map_err(|e| Status::invalid_argument(format!("bad shuffle ticket: {e}")))?;
        if !self.blocks.authorizes(&ticket) {
            tracing::warn!(run = %ticket.block.run_id, "refused a shuffle ticket without its run's key");
            return Err(Status::permission_denied(format!(
                "shuffle ticket refused: it does not carry the shuffle key of run {}",
                ticket.block.run_id
            )));
        }
        let id = ticket.block;
        let rows =
            self.blocks.get(&id).ok_or_else(|| Status::not_found(format!("shuffle block {id:?} is not on this executor")))?;
        let batches: Vec<std::result::Result<RecordBatch, FlightError>> = rows.iter().cloned().map(Ok).collect();
        let stream =
            FlightDataEncoderBuilder::new().build(futures::stream::iter(batches)).map_err(|e| Status::internal(e.to_string()));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> std::result::Result<Response<Self::HandshakeStream>, Status> {
        unsupported()
    }
    async fn list_flights(&self, _: Request<Criteria>) -> std::result::Result<Response<Self::ListFlightsStream>, Status> {
        unsupported()
    }
    async fn get_flight_info(&self, _: Request<FlightDescriptor>) -> std::result::Result<Response<FlightInfo>, Status> {
        unsupported()
    }
    async fn poll_flight_info(&self, _: Request<FlightDescriptor>) -> std::result::Result<Response<PollInfo>, Status> {
        unsupported()
    }
    async fn get_schema(&self, _: Request<FlightDescriptor>) -> std::result::Result<Response<SchemaResult>, Status> {
        unsupported()
    }
    async fn do_put(&self, _: Request<Streaming<FlightData>>) -> std::result::Result<Response<Self::DoPutStream>, Status> {
        unsupported()
    }
    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> std::result::Result<Response<Self::DoExchangeStream>, Status> {
        unsupported()
    }
    async fn do_action(&self, _: Request<Action>) -> std::result::Result<Response<Self::DoActionStream>, Status> {
        unsupported()
    }
    async fn list_actions(&self, _: Request<Empty>) -> std::result::Result<Response<Self::ListActionsStream>, Status> {
        unsupported()
    }
}

/// The block stores of the executors that share this process — an embedded cluster's (`sluice
/// run`) — by endpoint. A task reads a neighbour's blocks from its memory, as it reads its own:
/// through Flight over loopback, a block's IPC encoding and decoding, HTTP/2 framing and copies
/// cost more CPU than most operators that read it (in Nexmark q5, about an eighth of the query's
/// own work besides generating events). The shuffle key is checked as the Flight service checks
/// it; an executor that stops leaves, and its blocks are then fetched (and missed) as a remote
/// peer's would be.
#[derive(Debug, Default)]
pub struct Neighbours {
    stores: Mutex<HashMap<String, Arc<BlockStore>>>,
}

impl Neighbours {
    /// The executor at `endpoint`, with its block store, now runs in this process.
    pub fn join(&self, endpoint: &str, blocks: Arc<BlockStore>) {
        if let Ok(mut stores) = self.stores.lock() {
            stores.insert(endpoint.to_string(), blocks);
        }
    }

    /// The executor at `endpoint` stopped.
    pub fn leave(&self, endpoint: &str) {
        if let Ok(mut stores) = self.stores.lock() {
            stores.remove(endpoint);
        }
    }

    /// The block store of the executor at `endpoint`, if it runs in this process.
    fn store(&self, endpoint: &str) -> Option<Arc<BlockStore>> {
        self.stores.lock().ok()?.get(endpoint).cloned()
    }
}

/// How long connecting to a peer for shuffle data may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long fetching one block from a peer may take.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Connections to the other executors, kept from task to task: dialling (and, in a secure
/// cluster, a TLS handshake) for every task and peer would cost more than most blocks' transfer.
/// Executors of this process are not dialled: their blocks are read from memory.
pub struct Peers {
    transport: Transport,
    channels: Mutex<HashMap<String, tonic::transport::Channel>>,
    neighbours: Option<Arc<Neighbours>>,
}

impl Peers {
    /// No connections yet; peers are dialled through `transport`, but for the `neighbours` in
    /// this process.
    pub fn new(transport: Transport, neighbours: Option<Arc<Neighbours>>) -> Self {
        Self { transport, channels: Mutex::default(), neighbours }
    }

    /// The block store of the peer at `endpoint`, if it runs in this process.
    fn neighbour(&self, endpoint: &str) -> Option<Arc<BlockStore>> {
        self.neighbours.as_ref()?.store(endpoint)
    }

    /// A Flight client of the executor at `endpoint`, connecting at its first call.
    fn client(&self, endpoint: &str) -> Result<FlightServiceClient<tonic::transport::Channel>> {
        let mut channels = self.channels.lock().map_err(|_| SluiceError::internal("peer connections poisoned"))?;
        let channel = match channels.get(endpoint) {
            Some(c) => c.clone(),
            None => {
                let target = self
                    .transport
                    .endpoint(endpoint)?
                    .connect_timeout(CONNECT_TIMEOUT)
                    // Notice a dead or partitioned peer within seconds, even mid-transfer.
                    .http2_keep_alive_interval(std::time::Duration::from_secs(2))
                    .keep_alive_timeout(std::time::Duration::from_secs(5));
                let c = self.transport.connect_lazy(target);
                channels.insert(endpoint.to_string(), c.clone());
                c
            }
        };
        Ok(FlightServiceClient::new(channel).max_decoding_message_size(sluice_proto::MAX_MESSAGE_BYTES))
    }

    /// Drops the connection to a peer a fetch failed on: the next task dials it afresh (it may
    /// have restarted, or another executor may have its address now).
    fn forget(&self, endpoint: &str) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.remove(endpoint);
        }
    }
}

/// Where a task fetches its blocks from, and with what.
pub struct Fetch<'a> {
    /// This executor's blocks (read directly when this executor produced them).
    pub local: &'a BlockStore,
    /// This executor's endpoint.
    pub self_endpoint: &'a str,
    /// Connections to the other executors.
    pub peers: &'a Peers,
    /// The run's shuffle key, put in every ticket.
    pub key: &'a str,
    /// Counts the bytes fetched, local and remote.
    pub meter: &'a ExecutorMeter,
}

/// The bytes of `batches` in memory: the one measure of shuffle volume, written or read.
pub fn batches_bytes(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.get_array_memory_size() as u64).sum()
}

/// Fetches blocks from their producers, reading local ones from memory and fetching the
/// others all at once, so a task waits for its slowest peer rather than for the sum of them.
/// Results keep the order of `sources`, which is the producers' task order.
pub async fn fetch_blocks(fetch: &Fetch<'_>, sources: &[(BlockId, String)]) -> Result<Vec<RecordBatch>> {
    let blocks = futures::future::try_join_all(sources.iter().map(|(id, endpoint)| fetch_block(fetch, id, endpoint))).await?;
    Ok(blocks.into_iter().flatten().collect())
}

/// One block: from memory when this executor or another of this process produced it, else from
/// its producer over Flight.
async fn fetch_block(fetch: &Fetch<'_>, id: &BlockId, endpoint: &str) -> Result<Vec<RecordBatch>> {
    let neighbour;
    let in_memory = if endpoint == fetch.self_endpoint {
        Some((fetch.local, FetchedFrom::Local))
    } else {
        neighbour = fetch.peers.neighbour(endpoint);
        match &neighbour {
            Some(store) if !store.knows_key(&id.run_id, fetch.key) => {
                return Err(SluiceError::external(format!(
                    "shuffle block of task {} refused by {endpoint}: the ticket does not carry the shuffle key of run {}",
                    id.producer, id.run_id
                )));
            }
            Some(store) => Some((store.as_ref(), FetchedFrom::Remote)),
            None => None,
        }
    };
    if let Some((store, from)) = in_memory {
        let rows = store.get(id).ok_or_else(|| {
            SluiceError::external(format!(
                "shuffle block of task {} (stage {}) is missing on executor {endpoint}",
                id.producer, id.stage
            ))
        })?;
        fetch.meter.shuffle_fetched(from, batches_bytes(&rows));
        return Ok(rows.iter().cloned().collect());
    }
    let mut client = fetch.peers.client(endpoint)?;
    let ticket = ShuffleTicket { block: id.clone(), key: fetch.key.to_string() };
    let ticket = Ticket { ticket: serde_json::to_vec(&ticket)?.into() };
    let one = async {
        let response = client.do_get(ticket).await.map_err(|s| {
            SluiceError::external(format!("fetching shuffle block of task {} from {endpoint}: {}", id.producer, s.message()))
        })?;
        let stream =
            FlightRecordBatchStream::new_from_flight_data(response.into_inner().map_err(|s| FlightError::Tonic(Box::new(s))));
        stream
            .try_collect::<Vec<RecordBatch>>()
            .await
            .map_err(|e| SluiceError::external(format!("reading shuffle block from {endpoint}: {e}")))
    };
    // A paused or cut-off peer answers nothing: give up rather than hold a task slot for ever.
    let fetched = tokio::time::timeout(FETCH_TIMEOUT, one)
        .await
        .map_err(|_| SluiceError::external(format!("fetching shuffle block of task {} from {endpoint} timed out", id.producer)));
    match fetched {
        Ok(Ok(batches)) => {
            fetch.meter.shuffle_fetched(FetchedFrom::Remote, batches_bytes(&batches));
            Ok(batches)
        }
        Ok(Err(e)) | Err(e) => {
            fetch.peers.forget(endpoint);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn block(producer: u32) -> BlockId {
        BlockId { run_id: "run".into(), batch: BatchId(3), attempt: 0, stage: 1, producer, partition: 2 }
    }

    fn rows(values: Vec<i64>) -> Vec<RecordBatch> {
        vec![RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(values)) as _)]).unwrap()]
    }

    #[test]
    fn the_next_batch_keeps_the_current_batchs_blocks_and_a_retry_drops_its_abandoned_attempt() {
        let store = BlockStore::default();
        let id = |run: &str, batch: u64, attempt: u32| BlockId {
            run_id: run.into(),
            batch: BatchId(batch),
            attempt,
            stage: 0,
            producer: 0,
            partition: 0,
        };
        let held = |id: &BlockId| store.get(id).is_some();
        let put = |id: &BlockId| {
            store.begin(&id.run_id, id.batch, id.attempt);
            store.put(id.clone(), rows(vec![1]));
        };
        put(&id("run", 3, 0));
        put(&id("other", 1, 0));
        // Batch 4's map stage runs ahead of batch 3's reduce stages: 3's blocks stay.
        put(&id("run", 4, 0));
        assert!(held(&id("run", 3, 0)) && held(&id("run", 4, 0)));
        // Batch 3 retries: its abandoned attempt goes, the next batch's blocks stay.
        put(&id("run", 3, 1));
        assert!(!held(&id("run", 3, 0)), "an abandoned attempt's blocks are dropped");
        assert!(held(&id("run", 3, 1)) && held(&id("run", 4, 0)));
        // A task of an attempt older than the newest begins nothing and drops nothing.
        store.begin("run", BatchId(3), 0);
        assert!(held(&id("run", 3, 1)));
        // Batch 5 runs ahead of batch 4: batch 3 is older than the two newest.
        put(&id("run", 5, 0));
        assert!(!held(&id("run", 3, 1)), "batches older than the two newest are dropped");
        assert!(held(&id("run", 4, 0)) && held(&id("run", 5, 0)));
        assert!(held(&id("other", 1, 0)), "another run's blocks are its own business");
    }

    #[tokio::test]
    async fn a_neighbours_blocks_are_read_from_its_memory_with_the_run_key_until_it_leaves() {
        let neighbour = Arc::new(BlockStore::default());
        neighbour.learn_key("run", "secret");
        neighbour.put(block(0), rows(vec![1, 2, 3]));
        // Port 9 (discard) on loopback: nothing there answers Flight.
        let gone = "http://127.0.0.1:9";
        let neighbours = Arc::new(Neighbours::default());
        neighbours.join(gone, Arc::clone(&neighbour));
        let peers = Peers::new(Transport::Plain, Some(Arc::clone(&neighbours)));
        let own = BlockStore::default();
        let meter = ExecutorMeter::new(crate::metrics::ExecutorMetrics::default(), "executor-0");
        let fetch =
            |key: &'static str| Fetch { local: &own, self_endpoint: "http://127.0.0.1:1", peers: &peers, key, meter: &meter };

        let got = fetch_blocks(&fetch("secret"), &[(block(0), gone.to_string())]).await.unwrap();
        assert_eq!(got, rows(vec![1, 2, 3]));

        let refused = fetch_blocks(&fetch("guess"), &[(block(0), gone.to_string())]).await.unwrap_err();
        assert!(refused.to_string().contains("does not carry the shuffle key of run run"), "{refused}");

        let missing = fetch_blocks(&fetch("secret"), &[(block(1), gone.to_string())]).await.unwrap_err();
        assert!(missing.to_string().contains("shuffle block of task 1 (stage 1) is missing on executor"), "{missing}");

        // Once it has left, its blocks are a remote peer's: fetched over Flight, which fails here.
        neighbours.leave(gone);
        let unreachable = fetch_blocks(&fetch("secret"), &[(block(0), gone.to_string())]).await.unwrap_err();
        assert!(unreachable.to_string().contains("fetching shuffle block of task 0 from http://127.0.0.1:9"), "{unreachable}");
    }
}
