//! The one place that maps a connector name to its implementation.
//!
//! Every connector sluice ships is registered in [`Connectors::builtin`]; the rest of the engine
//! asks the registry and never names a connector. Resolution happens on the driver
//! ([`Connectors::resolve_source`], [`Connectors::resolve_sink`], [`Connectors::resolve_table`]):
//! options are validated with Spark's names and messages and paths become absolute URLs. The
//! resulting specs travel to executors, which look their connector up again to read splits and
//! write rows.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::types::spark_type_name;

use crate::console::ConsoleOut;
use crate::memory::{MemoryStreams, MemoryTables};
use crate::sink::{SinkConnector, SinkSpec};
use crate::source::{SourceConnector, SourceSchema, SourceSpec};
use crate::table::{TableConnector, TableSpec};

/// What in-process connectors exchange rows with: a session's memory streams (`memory` source),
/// memory tables (`memory` sink) and where console output goes (`console` sink).
#[derive(Clone)]
pub struct InProcessIo {
    /// Streams that Rust code appends rows to.
    pub memory_streams: MemoryStreams,
    /// Tables that memory sinks store batches in.
    pub memory_tables: MemoryTables,
    /// Where the console sink prints.
    pub console: ConsoleOut,
    /// The functions `foreachBatch` sinks call.
    pub batch_functions: crate::foreach_batch::BatchFunctions,
}

impl Default for InProcessIo {
    /// Fresh memory streams and tables; console output to stdout.
    fn default() -> Self {
        Self {
            memory_streams: MemoryStreams::default(),
            memory_tables: MemoryTables::default(),
            batch_functions: Default::default(),
            console: Arc::new(|text: &str| {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }),
        }
    }
}

/// Connectors by name, for sources, sinks and static tables.
#[derive(Clone, Default)]
pub struct Connectors {
    sources: Vec<Arc<dyn SourceConnector>>,
    sinks: Vec<Arc<dyn SinkConnector>>,
    tables: Vec<Arc<dyn TableConnector>>,
}

impl Connectors {
    /// Every connector sluice ships; the in-process ones exchange rows through `io`.
    pub fn builtin(io: &InProcessIo) -> Self {
        let mut c = Self::default();
        // One line per connector and role. Sources, in the order messages list them:
        c.add_source(crate::files::FilesConnector);
        c.add_source(crate::kafka::KafkaConnector);
        c.add_source(crate::nexmark::NexmarkConnector);
        c.add_source(crate::rate::RateConnector);
        c.add_source(crate::rate_micro_batch::RateMicroBatchConnector);
        c.add_source(crate::socket::SocketConnector);
        c.add_source(crate::memory::MemorySource::connector(io.memory_streams.clone()));
        // Sinks:
        c.add_sink(crate::console::ConsoleSink::connector(Arc::clone(&io.console)));
        c.add_sink(crate::files::FilesConnector);
        c.add_sink(crate::foreach_batch::ForeachBatchSink::connector(io.batch_functions.clone()));
        c.add_sink(crate::kafka::KafkaConnector);
        c.add_sink(crate::memory::MemorySink::connector(io.memory_tables.clone()));
        c.add_sink(crate::noop::NoopConnector);
        // Static tables:
        c.add_table(crate::files::FilesConnector);
        c
    }

    /// Registers a source connector.
    pub fn add_source(&mut self, connector: impl SourceConnector + 'static) {
        self.sources.push(Arc::new(connector));
    }

    /// Registers a sink connector.
    pub fn add_sink(&mut self, connector: impl SinkConnector + 'static) {
        self.sinks.push(Arc::new(connector));
    }

    /// Registers a static-table connector.
    pub fn add_table(&mut self, connector: impl TableConnector + 'static) {
        self.tables.push(Arc::new(connector));
    }

    /// The source connector called `name`.
    pub fn source(&self, name: &str) -> Result<&dyn SourceConnector> {
        self.sources.iter().find(|c| c.name() == name).map(|c| c.as_ref()).ok_or_else(|| {
            SluiceError::user(format!("unknown connector '{name}'; available connectors: {}", names(&self.sources, |c| c.name())))
        })
    }

    /// The sink connector called `name`.
    pub fn sink(&self, name: &str) -> Result<&dyn SinkConnector> {
        self.sinks.iter().find(|c| c.name() == name).map(|c| c.as_ref()).ok_or_else(|| {
            SluiceError::user(format!("unknown sink connector '{name}'; available sinks: {}", names(&self.sinks, |c| c.name())))
        })
    }

    /// The static-table connector called `name`.
    pub fn table(&self, name: &str) -> Result<&dyn TableConnector> {
        self.tables.iter().find(|c| c.name() == name).map(|c| c.as_ref()).ok_or_else(|| {
            SluiceError::user(format!(
                "static tables support only connector {}, not '{name}'",
                self.tables.iter().map(|c| format!("'{}'", c.name())).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Validates a `CREATE STREAM` named `stream` and resolves it to the `index`-th source of a
    /// query.
    pub fn resolve_source(&self, stream: &str, index: usize, options: &Options, declared: &Schema) -> Result<SourceSpec> {
        let connector = connector_option(stream, options)?;
        let owner = format!("stream '{stream}'");
        let source = self.source(&connector).map_err(|e| e.context(owner.clone()))?;
        let mut options = options.clone();
        let schema = match source.resolve(&mut options, declared).map_err(|e| e.context(owner.clone()))? {
            SourceSchema::Declared => Arc::new(declared.clone()),
            SourceSchema::Fixed(schema) if declared.fields().is_empty() => schema,
            SourceSchema::Fixed(schema) => {
                let same = declared.fields().len() == schema.fields().len()
                    && declared
                        .fields()
                        .iter()
                        .zip(schema.fields())
                        .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
                if !same {
                    return Err(SluiceError::user(format!(
                        "{owner}: connector '{connector}' produces {}; leave the column list out or declare exactly those columns",
                        describe_schema(&schema)
                    )));
                }
                schema
            }
        };
        Ok(SourceSpec { name: stream.to_string(), index, connector, options, schema })
    }

    /// Validates a `CREATE SINK` named `sink`.
    pub fn resolve_sink(&self, sink: &str, options: &Options) -> Result<SinkSpec> {
        let connector = options
            .get("connector")
            .ok_or_else(|| SluiceError::user(format!("sink '{sink}': option 'connector' is required")))?
            .to_ascii_lowercase();
        let mut options = options.clone();
        self.sink(&connector).and_then(|c| c.resolve(&mut options)).map_err(|e| e.context(format!("sink '{sink}'")))?;
        Ok(SinkSpec { name: sink.to_string(), connector, options })
    }

    /// Validates a `CREATE TABLE` named `table`.
    pub async fn resolve_table(&self, table: &str, options: &Options, declared: &Schema) -> Result<TableSpec> {
        let connector = connector_option(table, options)?;
        let owner = format!("table '{table}'");
        let mut options = options.clone();
        let schema = self
            .table(&connector)
            .map_err(|e| e.context(owner.clone()))?
            .resolve(&mut options, declared)
            .await
            .map_err(|e| e.context(owner))?;
        Ok(TableSpec { name: table.to_string(), connector, options, schema })
    }
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors")
            .field("sources", &names(&self.sources, |c| c.name()))
            .field("sinks", &names(&self.sinks, |c| c.name()))
            .field("tables", &names(&self.tables, |c| c.name()))
            .finish()
    }
}

/// The lower-cased `connector` option of a stream or table declaration.
fn connector_option(name: &str, options: &Options) -> Result<String> {
    options
        .get("connector")
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| SluiceError::user(format!("'{name}': option 'connector' is required")))
}

fn names<T: ?Sized>(connectors: &[Arc<T>], name: impl Fn(&T) -> &'static str) -> String {
    connectors.iter().map(|c| name(c)).collect::<Vec<_>>().join(", ")
}

fn describe_schema(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), spark_type_name(f.data_type()).to_ascii_uppercase()))
        .collect::<Vec<_>>()
        .join(", ")
}
