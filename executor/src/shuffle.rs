//! Shuffle: blocks a task produced for each downstream partition, kept in the producing
//! executor's memory and served to consumers over Arrow Flight (`do_get`).
//!
//! A block is named by (query run, batch, attempt, stage, producer, partition). Blocks of older
//! batches or attempts of a run are dropped as soon as a newer one starts on this executor, so
//! memory holds at most the blocks of the batch in flight. A consumer on the same executor reads
//! blocks directly from memory; others fetch them with a Flight ticket.

use std::collections::HashMap;
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
use tonic::{Request, Response, Status, Streaming};

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

/// Blocks held by this executor.
#[derive(Debug, Default)]
pub struct BlockStore {
    blocks: Mutex<HashMap<BlockId, Arc<Vec<RecordBatch>>>>,
    /// Per run: the (batch, attempt) whose blocks are current.
    current: Mutex<HashMap<String, (BatchId, u32)>>,
}

impl BlockStore {
    /// Marks (batch, attempt) current for its run, dropping that run's older blocks.
    pub fn begin(&self, run_id: &str, batch: BatchId, attempt: u32) {
        let (Ok(mut cur), Ok(mut blocks)) = (self.current.lock(), self.blocks.lock()) else { return };
        let newest = cur.get(run_id).copied();
        if newest.is_none_or(|n| (batch, attempt) > n) {
            cur.insert(run_id.to_string(), (batch, attempt));
            blocks.retain(|k, _| k.run_id != run_id || (k.batch, k.attempt) >= (batch, attempt));
        }
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
        let id: BlockId = serde_json::from_slice(&request.into_inner().ticket)
            .map_err(|e| Status::invalid_argument(format!("bad shuffle ticket: {e}")))?;
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

/// How long connecting to a peer for shuffle data may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long fetching one block from a peer may take.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Fetches blocks from their producers, reading local ones from memory. Results keep the
/// order of `sources`, which is the producers' task order.
pub async fn fetch_blocks(local: &BlockStore, self_endpoint: &str, sources: &[(BlockId, String)]) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut clients: HashMap<String, FlightServiceClient<tonic::transport::Channel>> = HashMap::new();
    for (id, endpoint) in sources {
        if endpoint == self_endpoint {
            let rows = local.get(id).ok_or_else(|| {
                SluiceError::external(format!(
                    "shuffle block of task {} (stage {}) is missing on this executor",
                    id.producer, id.stage
                ))
            })?;
            out.extend(rows.iter().cloned());
            continue;
        }
        if !clients.contains_key(endpoint) {
            let channel = tonic::transport::Channel::from_shared(endpoint.clone())
                .map_err(|e| SluiceError::internal(format!("bad executor endpoint {endpoint}: {e}")))?
                .connect_timeout(CONNECT_TIMEOUT)
                .connect()
                .await
                .map_err(|e| SluiceError::external(format!("cannot reach executor {endpoint} for shuffle data: {e}")))?;
            let client = FlightServiceClient::new(channel);
            clients.insert(endpoint.clone(), client.max_decoding_message_size(sluice_proto::MAX_MESSAGE_BYTES));
        }
        let client = clients.get_mut(endpoint).ok_or_else(|| SluiceError::internal("flight client vanished"))?;
        let ticket = Ticket { ticket: serde_json::to_vec(id)?.into() };
        let fetch = async {
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
        let batches = tokio::time::timeout(FETCH_TIMEOUT, fetch).await.map_err(|_| {
            SluiceError::external(format!("fetching shuffle block of task {} from {endpoint} timed out", id.producer))
        })??;
        out.extend(batches);
    }
    Ok(out)
}
