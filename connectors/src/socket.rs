//! `socket`: lines read from a TCP server into driver memory (Spark's `TextSocketSource`).
//!
//! Not fault tolerant, as in Spark: lines exist only in the driver's memory, so a restart cannot
//! replay them. Useful for `nc -lk 9999` demos; never for production.

use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

use sluice_common::error::{Result, SluiceError};
use sluice_common::ipc;
use sluice_common::options::Options;
use sluice_common::types::{timestamp_type, UTC};
use sluice_common::QueryConf;

use crate::access::Access;
use crate::source::{
    check_source_options, parse_long_offset, InlineRowsReader, PlannedSplit, ReadLimit, Source, SourceCheckpoint,
    SourceConnector, SourceSchema, SourceSpec, SplitReader,
};

/// The `socket` source connector.
#[derive(Debug, Default)]
pub struct SocketConnector;

impl SourceConnector for SocketConnector {
    fn name(&self) -> &'static str {
        "socket"
    }

    fn resolve(&self, options: &mut Options, _declared: &Schema) -> Result<SourceSchema> {
        let o = SocketOptions::parse(options)?;
        Ok(SourceSchema::Fixed(socket_schema(o.include_timestamp)))
    }

    fn access(&self, options: &Options) -> Result<Vec<Access>> {
        let o = SocketOptions::parse(options)?;
        let host = o.host.trim().to_ascii_lowercase();
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
        Ok(vec![Access::Endpoint { option: "host".to_string(), endpoint: format!("socket://{host}:{}", o.port) }])
    }

    fn create_source(&self, spec: &SourceSpec, _conf: &QueryConf) -> Result<Box<dyn Source>> {
        Ok(Box::new(SocketSource::new(SocketOptions::parse(&spec.options)?)))
    }

    fn split_reader(&self, _spec: &SourceSpec) -> Result<Box<dyn SplitReader>> {
        Ok(Box::new(InlineRowsReader))
    }
}

/// Options of the socket connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// `host` (required): the TCP server to connect to.
    pub host: String,
    /// `port` (required): the server's TCP port.
    pub port: u16,
    /// `includeTimestamp`: add a `timestamp` column holding when the driver received each line.
    pub include_timestamp: bool,
}

impl SocketOptions {
    /// Parses and validates.
    pub fn parse(options: &Options) -> Result<Self> {
        check_source_options(options, &["host", "port", "includeTimestamp"], "connector 'socket'")?;
        let host = options.required("host", "socket")?.to_string();
        let port =
            options.parse_opt::<u16>("port", "socket")?.ok_or_else(|| SluiceError::user("socket: option 'port' is required"))?;
        let include_timestamp = options.bool_or("includeTimestamp", false, "socket")?;
        Ok(Self { host, port, include_timestamp })
    }
}

/// `value STRING` plus `timestamp TIMESTAMP` with `includeTimestamp`.
pub fn socket_schema(include_timestamp: bool) -> SchemaRef {
    let mut fields = vec![Field::new("value", DataType::Utf8, true)];
    if include_timestamp {
        fields.push(Field::new("timestamp", timestamp_type(), true));
    }
    Arc::new(Schema::new(fields))
}

#[derive(Default)]
struct Buffer {
    /// Offset of `lines[0]`.
    base: i64,
    lines: Vec<(String, i64)>,
    error: Option<String>,
}

/// Driver side: a background task appends lines as they arrive.
pub struct SocketSource {
    options: SocketOptions,
    buffer: Arc<Mutex<Buffer>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl SocketSource {
    /// A source for `options`; connects in `open`.
    pub fn new(options: SocketOptions) -> Self {
        Self { options, buffer: Arc::default(), reader: None }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Buffer>> {
        self.buffer.lock().map_err(|_| SluiceError::internal("socket buffer lock poisoned"))
    }
}

#[async_trait]
impl Source for SocketSource {
    fn description(&self) -> String {
        format!("TextSocketV2[host: {}, port: {}]", self.options.host, self.options.port)
    }

    fn identity(&self) -> String {
        format!("socket {}:{}", self.options.host, self.options.port)
    }

    async fn open(&mut self, _checkpoint: &SourceCheckpoint, committed: Option<&str>) -> Result<()> {
        tracing::warn!("The socket source should not be used for production applications! It does not support recovery.");
        let addr = format!("{}:{}", self.options.host, self.options.port);
        let stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| SluiceError::external(format!("socket source: cannot connect to {addr}: {e}")).with_retryable(false))?;
        {
            let mut buf = self.lock()?;
            buf.base = committed.map(|c| parse_long_offset(c, "socket")).transpose()?.map_or(0, |c| c + 1);
        }
        let buffer = Arc::clone(&self.buffer);
        self.reader = Some(tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        let now = sluice_common::time::now_ms();
                        if let Ok(mut b) = buffer.lock() {
                            b.lines.push((line, now));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if let Ok(mut b) = buffer.lock() {
                            b.error = Some(e.to_string());
                        }
                        break;
                    }
                }
            }
        }));
        Ok(())
    }

    async fn latest_offset(&mut self, _start: Option<&str>, _limit: ReadLimit) -> Result<Option<String>> {
        let buf = self.lock()?;
        if let Some(e) = &buf.error {
            return Err(SluiceError::external(format!("socket source: read failed: {e}")).with_retryable(false));
        }
        let last = buf.base + buf.lines.len() as i64 - 1;
        Ok((last >= buf.base).then(|| last.to_string()))
    }

    async fn plan_splits(&mut self, start: Option<&str>, end: &str, _parallelism: usize) -> Result<Vec<PlannedSplit>> {
        let start = start.map(|s| parse_long_offset(s, "socket")).transpose()?.unwrap_or(-1);
        let end = parse_long_offset(end, "socket")?;
        let buf = self.lock()?;
        let from = (start + 1 - buf.base).max(0) as usize;
        let to = ((end + 1 - buf.base).max(0) as usize).min(buf.lines.len());
        let slice = buf.lines.get(from..to).unwrap_or_default();
        if slice.is_empty() {
            return Ok(Vec::new());
        }
        let schema = socket_schema(self.options.include_timestamp);
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(slice.iter().map(|(l, _)| l.as_str())))];
        if self.options.include_timestamp {
            cols.push(Arc::new(
                TimestampMicrosecondArray::from_iter_values(slice.iter().map(|(_, t)| t * 1000)).with_timezone(UTC),
            ));
        }
        let batch = RecordBatch::try_new(Arc::clone(&schema), cols)?;
        Ok(vec![PlannedSplit::inline(ipc::encode(&schema, &[batch])?)])
    }

    async fn commit(&mut self, end: &str) -> Result<()> {
        let end = parse_long_offset(end, "socket")?;
        let mut buf = self.lock()?;
        let drop_n = ((end + 1 - buf.base).max(0) as usize).min(buf.lines.len());
        buf.lines.drain(..drop_n);
        buf.base += drop_n as i64;
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
    }
}
