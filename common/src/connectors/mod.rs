//! Sources and sinks, and the one place that maps a connector name to its implementation.
//!
//! Resolution happens on the driver (`resolve_stream`, `resolve_table`): options are validated
//! with Spark's names and messages and paths become absolute URLs. The resulting specs travel to
//! executors, which read splits with [`SplitReader`].

pub mod files;
pub mod kafka;
pub mod memory;
pub mod nexmark;
pub mod rate;
pub mod rate_micro_batch;
pub mod sinks;
pub mod socket;
pub mod source;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::{Result, SluiceError};
use crate::sql::job::RelationDef;

use self::files::options::{parse_format, FileFormat, FileSourceOptions, FILE_TABLE_OPTIONS};
use self::files::splits::SplitSizing;
use self::kafka::options::KafkaSourceOptions;
use self::memory::{MemorySource, MemoryStreams};
use self::nexmark::{NexmarkOptions, NexmarkSource};
use self::rate::{RateOptions, RateSource};
use self::rate_micro_batch::{RateMicroBatchOptions, RateMicroBatchSource};
use self::socket::{SocketOptions, SocketSource};
use self::source::{Source, SourceSpec, SplitSpec};

/// Connectors a stream may use.
pub const SOURCE_CONNECTORS: &[&str] = &["files", "kafka", "nexmark", "rate", "rate-micro-batch", "socket", "memory"];

/// What a source factory needs from the session.
#[derive(Debug, Clone, Default)]
pub struct SourceContext {
    /// The session's memory streams.
    pub memory_streams: MemoryStreams,
    /// File split sizing (`spark.sql.files.*`).
    pub sizing: SplitSizing,
}

/// Validates a `CREATE STREAM` and resolves it to a [`SourceSpec`].
pub fn resolve_stream(def: &RelationDef, index: usize) -> Result<SourceSpec> {
    let connector = def.connector()?;
    let owner = format!("stream '{}'", def.name);
    let mut options = def.options.clone();
    let fixed: Option<SchemaRef> = match connector.as_str() {
        "files" => {
            let parsed = FileSourceOptions::parse(&options).map_err(|e| e.context(owner.clone()))?;
            options.insert("path", parsed.path.clone());
            if let files::options::CleanSource::Archive(dir) = &parsed.clean_source {
                options.insert("sourceArchiveDir", dir.clone());
            }
            if def.columns.is_empty() {
                return Err(SluiceError::user(format!(
                    "{owner}: Schema must be specified when creating a streaming source DataFrame. \
                     Declare the columns: CREATE STREAM {} (col TYPE, ...) WITH (...)",
                    def.name
                )));
            }
            None
        }
        "rate" => {
            RateOptions::parse(&options).map_err(|e| e.context(owner.clone()))?;
            Some(rate::rate_schema())
        }
        "rate-micro-batch" => {
            RateMicroBatchOptions::parse(&options).map_err(|e| e.context(owner.clone()))?;
            Some(rate::rate_schema())
        }
        "socket" => {
            let o = SocketOptions::parse(&options).map_err(|e| e.context(owner.clone()))?;
            Some(socket::socket_schema(o.include_timestamp))
        }
        "memory" => {
            source::check_source_options(&options, memory::MEMORY_OPTIONS, "connector 'memory'")
                .map_err(|e| e.context(owner.clone()))?;
            if def.columns.is_empty() {
                return Err(SluiceError::user(format!("{owner}: a memory stream needs declared columns")));
            }
            None
        }
        "kafka" => {
            let o = KafkaSourceOptions::parse(&options).map_err(|e| e.context(owner.clone()))?;
            Some(kafka::reader::kafka_schema(o.include_headers))
        }
        "nexmark" => {
            let o = NexmarkOptions::parse(&options).map_err(|e| e.context(owner.clone()))?;
            Some(o.table.schema())
        }
        other => {
            return Err(SluiceError::user(format!(
                "{owner}: unknown connector '{other}'; available connectors: {}",
                SOURCE_CONNECTORS.join(", ")
            )))
        }
    };
    let declared_schema = match fixed {
        Some(schema) if def.columns.is_empty() => schema,
        Some(schema) => {
            let declared = def.declared_schema();
            let same = declared.fields().len() == schema.fields().len()
                && declared.fields().iter().zip(schema.fields()).all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
            if !same {
                return Err(SluiceError::user(format!(
                    "{owner}: connector '{connector}' produces {}; leave the column list out or declare exactly those columns",
                    describe_schema(&schema)
                )));
            }
            schema
        }
        None => Arc::new(def.declared_schema()),
    };
    Ok(SourceSpec {
        name: def.name.clone(),
        index,
        connector,
        options,
        declared_schema,
        computed: def.computed.clone(),
        watermark: def.watermark.clone(),
    })
}

fn describe_schema(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), crate::types::spark_type_name(f.data_type()).to_ascii_uppercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the driver side of a source.
pub fn create_source(spec: &SourceSpec, ctx: &SourceContext) -> Result<Box<dyn Source>> {
    Ok(match spec.connector.as_str() {
        "files" => Box::new(files::source::FileSource::new(FileSourceOptions::parse(&spec.options)?, ctx.sizing)?),
        "kafka" => Box::new(kafka::source::KafkaSource::new(KafkaSourceOptions::parse(&spec.options)?)?),
        "nexmark" => Box::new(NexmarkSource::new(NexmarkOptions::parse(&spec.options)?)),
        "rate" => Box::new(RateSource::new(RateOptions::parse(&spec.options)?)),
        "rate-micro-batch" => Box::new(RateMicroBatchSource::new(RateMicroBatchOptions::parse(&spec.options)?)),
        "socket" => Box::new(SocketSource::new(SocketOptions::parse(&spec.options)?)),
        "memory" => {
            let name = spec.options.get("name").unwrap_or(&spec.name).to_string();
            let stream = ctx.memory_streams.get_or_create(&name, &spec.declared_schema)?;
            Box::new(MemorySource::new(stream, &spec.options)?)
        }
        other => return Err(SluiceError::internal(format!("no source for connector '{other}'"))),
    })
}

/// The rows one split produced, and how many input records were malformed.
#[derive(Debug, Clone)]
pub struct SplitData {
    pub batches: Vec<RecordBatch>,
    pub malformed_rows: u64,
    /// Offsets skipped because they no longer existed (Kafka, `failOnDataLoss=false`).
    pub lost_offsets: u64,
}

/// Executor side of a source: options parsed once per query, then any number of splits read.
#[derive(Debug, Clone)]
pub struct SplitReader {
    schema: SchemaRef,
    format: Option<FileFormat>,
    kafka: Option<Arc<KafkaSplitReader>>,
}

/// What reading Kafka splits needs, parsed once per query.
#[derive(Debug)]
struct KafkaSplitReader {
    options: KafkaSourceOptions,
    group_id: String,
}

impl SplitReader {
    /// A reader for `spec`'s splits.
    pub fn new(spec: &SourceSpec) -> Result<Self> {
        let format = match spec.connector.as_str() {
            "files" => Some(FileSourceOptions::parse(&spec.options)?.format),
            _ => None,
        };
        let kafka = match spec.connector.as_str() {
            "kafka" => {
                let options = KafkaSourceOptions::parse(&spec.options)?;
                let group_id = options.group_id();
                Some(Arc::new(KafkaSplitReader { options, group_id }))
            }
            _ => None,
        };
        Ok(Self { schema: Arc::clone(&spec.declared_schema), format, kafka })
    }

    /// Reads one split; `inline` carries the rows of memory and socket splits.
    pub async fn read(&self, split: &SplitSpec, inline: &[u8]) -> Result<SplitData> {
        match split {
            SplitSpec::Files { files } => {
                let format = self.format.as_ref().ok_or_else(|| SluiceError::internal("file split for a non-file source"))?;
                let mut batches = Vec::with_capacity(files.len());
                let mut malformed_rows = 0;
                for range in files {
                    let r = files::reader::read_file_range(range, format, &self.schema).await?;
                    malformed_rows += r.malformed_rows;
                    batches.push(r.batch);
                }
                Ok(SplitData { batches, malformed_rows, lost_offsets: 0 })
            }
            SplitSpec::Rate(s) => Ok(SplitData { batches: vec![rate::read_rate_split(s)?], malformed_rows: 0, lost_offsets: 0 }),
            SplitSpec::RateMicroBatch(s) => {
                Ok(SplitData { batches: vec![rate_micro_batch::read_rate_micro_batch_split(s)?], malformed_rows: 0, lost_offsets: 0 })
            }
            SplitSpec::Nexmark(s) => {
                let s = s.clone();
                let batch = tokio::task::spawn_blocking(move || nexmark::read_nexmark_split(&s))
                    .await
                    .map_err(|e| SluiceError::internal(format!("Nexmark generator panicked: {e}")))??;
                Ok(SplitData { batches: vec![batch], malformed_rows: 0, lost_offsets: 0 })
            }
            SplitSpec::Kafka(range) => {
                let kafka = self.kafka.clone().ok_or_else(|| SluiceError::internal("kafka split for a non-kafka source"))?;
                let range = range.clone();
                let data = tokio::task::spawn_blocking(move || kafka::reader::read_split(&kafka.options, &kafka.group_id, &range))
                    .await
                    .map_err(|e| SluiceError::internal(format!("Kafka reader panicked: {e}")))??;
                Ok(SplitData { batches: vec![data.batch], malformed_rows: 0, lost_offsets: data.lost_offsets })
            }
            SplitSpec::Inline => Ok(SplitData { batches: crate::ipc::decode(inline)?.1, malformed_rows: 0, lost_offsets: 0 }),
        }
    }
}

/// A static table (`CREATE TABLE`), re-read every batch as Spark re-reads the static side.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableSpec {
    pub name: String,
    pub options: crate::options::Options,
    #[serde(with = "crate::schema_serde::schema_ref")]
    pub schema: SchemaRef,
}

/// Validates a `CREATE TABLE`; Parquet tables without columns take the schema of their files.
pub async fn resolve_table(def: &RelationDef) -> Result<TableSpec> {
    let owner = format!("table '{}'", def.name);
    let connector = def.connector()?;
    if connector != "files" {
        return Err(SluiceError::user(format!("{owner}: static tables support only connector 'files', not '{connector}'")));
    }
    let mut options = def.options.clone();
    let format = parse_format(&options, FILE_TABLE_OPTIONS, &owner)?;
    let path = crate::storage::absolute_url(options.required("path", &owner)?)?.to_string();
    options.insert("path", path.clone());
    let schema: SchemaRef = if def.columns.is_empty() {
        match format {
            FileFormat::Parquet => infer_parquet_schema(&path).await.map_err(|e| e.context(owner.clone()))?,
            _ => {
                return Err(SluiceError::user(format!(
                    "{owner}: declare the table's columns; only Parquet tables can take their schema from the files"
                )))
            }
        }
    } else {
        Arc::new(def.declared_schema())
    };
    Ok(TableSpec { name: def.name.clone(), options, schema })
}

#[allow(deprecated)] // ParquetObjectReader: see connectors::files::reader
async fn infer_parquet_schema(path: &str) -> Result<SchemaRef> {
    let dir = crate::storage::resolve(path)?;
    let files = files::listing::list_input_files(&dir).await?;
    let first = files
        .first()
        .ok_or_else(|| SluiceError::user(format!("no files in {path} to take the schema from")))?;
    let url = url::Url::parse(&first.url).map_err(|e| SluiceError::internal(e.to_string()))?;
    let loc = crate::storage::resolve_url(&url)?;
    let reader = parquet::arrow::async_reader::ParquetObjectReader::new(Arc::clone(&loc.store), loc.path.clone())
        .with_file_size(first.size);
    let builder = parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder::new(reader).await?;
    Ok(Arc::clone(builder.schema()))
}

/// Reads every file of a static table.
pub async fn read_table(spec: &TableSpec) -> Result<Vec<RecordBatch>> {
    let format = parse_format(&spec.options, FILE_TABLE_OPTIONS, &format!("table '{}'", spec.name))?;
    let path = spec.options.required("path", "table")?;
    let dir = crate::storage::resolve(path)?;
    let mut out = Vec::new();
    for f in files::listing::list_input_files(&dir).await? {
        let range = source::FileRange { url: f.url.clone(), start: 0, length: f.size, file_size: f.size };
        let r = files::reader::read_file_range(&range, &format, &spec.schema).await?;
        out.push(r.batch);
    }
    Ok(out)
}
