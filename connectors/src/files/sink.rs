//! `files` sink: part files written by tasks, committed by the driver in `_spark_metadata`
//! (docs/semantics.md §1 "File sink log"). Append mode only, as in Spark.

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::storage::{self, Location};
use sluice_formats::csv_write::{write_csv, CsvWriteOptions};
use sluice_formats::json_write::{write_json_lines, JsonWriteOptions};
use sluice_formats::spark_string::value_to_spark_string;

use super::partitions::directory_name;
use super::sink_log::{FileSinkLog, SinkFileStatus};
use crate::sink::{SinkCommitter, SinkTaskContext, SinkTaskOutput, SinkWriter, TaskSinkResult};
use sluice_common::log::delete_entry;
use sluice_common::BatchId;

/// Output format with its write options.
#[derive(Debug, Clone)]
pub enum OutputFormat {
    /// JSON lines, in `.json` part files.
    Json(JsonWriteOptions),
    /// Delimited text, in `.csv` part files.
    Csv(CsvWriteOptions),
    /// Apache Parquet.
    Parquet {
        /// Codec from option `compression` (default snappy).
        compression: Compression,
        /// Part-file extension naming the codec as Spark does (`snappy.parquet`, `zstd.parquet`, plain `parquet`, …).
        extension: &'static str,
    },
}

/// Options of the `files` sink.
#[derive(Debug, Clone)]
pub struct FileSinkOptions {
    /// Absolute URL of the output directory.
    pub path: String,
    /// `format` (json, csv or parquet) with its write options.
    pub format: OutputFormat,
    /// Columns that become `col=value/` directories.
    pub partition_by: Vec<String>,
}

const COMMON: &[&str] = &["connector", "path", "format", "partitionBy", "compression"];

impl FileSinkOptions {
    /// Parses and validates.
    pub fn parse(options: &Options) -> Result<Self> {
        let path = options.required("path", "connector 'files'")?.to_string();
        let format_name = options
            .get("format")
            .ok_or_else(|| SluiceError::user("connector 'files': option 'format' is required (json, csv or parquet)"))?
            .to_ascii_lowercase();
        let format = match format_name.as_str() {
            "json" => OutputFormat::Json(JsonWriteOptions::from_options(options, COMMON)?),
            "csv" => OutputFormat::Csv(CsvWriteOptions::from_options(options, COMMON)?),
            "parquet" => {
                options.check_known(COMMON, "sink connector 'files' with format 'parquet'")?;
                let (compression, extension) = match options.get("compression").map(str::to_ascii_lowercase).as_deref() {
                    None | Some("snappy") => (Compression::SNAPPY, "snappy.parquet"),
                    Some("none") | Some("uncompressed") => (Compression::UNCOMPRESSED, "parquet"),
                    Some("zstd") => (Compression::ZSTD(Default::default()), "zstd.parquet"),
                    Some("lz4") => (Compression::LZ4_RAW, "lz4raw.parquet"),
                    Some("gzip") => (Compression::GZIP(Default::default()), "gz.parquet"),
                    Some(other) => {
                        return Err(SluiceError::user(format!(
                            "Codec [{other}] is not available. Available codecs are snappy, none, uncompressed, zstd, lz4, gzip."
                        )));
                    }
                };
                OutputFormat::Parquet { compression, extension }
            }
            other => {
                return Err(SluiceError::user(format!(
                    "connector 'files': unknown format '{other}'; supported output formats are json, csv, parquet"
                )));
            }
        };
        let partition_by = options
            .get("partitionBy")
            .map(|p| p.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect())
            .unwrap_or_default();
        Ok(Self { path, format, partition_by })
    }

    /// `json`, `csv` or `parquet`.
    pub fn format_name(&self) -> &'static str {
        match self.format {
            OutputFormat::Json(_) => "json",
            OutputFormat::Csv(_) => "csv",
            OutputFormat::Parquet { .. } => "parquet",
        }
    }

    fn extension(&self) -> &'static str {
        match &self.format {
            OutputFormat::Json(_) => "json",
            OutputFormat::Csv(_) => "csv",
            OutputFormat::Parquet { extension, .. } => extension,
        }
    }

    /// Checks `partitionBy` against the query's output columns.
    pub fn check_schema(&self, schema: &Schema) -> Result<()> {
        let indices = self.partition_indices(schema)?;
        if !indices.is_empty() && indices.len() == schema.fields().len() {
            return Err(SluiceError::user("Cannot use all columns for partition columns"));
        }
        Ok(())
    }

    /// The output columns `partitionBy` names, matched case-insensitively as Spark's default
    /// `spark.sql.caseSensitive=false` matches them.
    fn partition_indices(&self, schema: &Schema) -> Result<Vec<usize>> {
        self.partition_by
            .iter()
            .map(|c| {
                schema.fields().iter().position(|f| f.name().eq_ignore_ascii_case(c)).ok_or_else(|| {
                    SluiceError::user(format!(
                        "Partition column `{c}` not found in schema {}",
                        sluice_common::types::spark_type_name(&arrow::datatypes::DataType::Struct(schema.fields().clone()))
                    ))
                })
            })
            .collect()
    }
}

/// Executor side of the file sink: writes each task's rows as part files.
#[derive(Debug)]
pub struct FileSinkWriter {
    options: FileSinkOptions,
}

impl FileSinkWriter {
    /// A writer for a sink with these options.
    pub fn new(options: FileSinkOptions) -> Self {
        Self { options }
    }
}

#[async_trait]
impl SinkWriter for FileSinkWriter {
    async fn write(&self, schema: &SchemaRef, batches: &[RecordBatch], task: &SinkTaskContext) -> Result<SinkTaskOutput> {
        let files = write_part_files(&self.options, schema, batches, task.partition_index).await?;
        Ok(SinkTaskOutput {
            num_rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            commit_message: serde_json::to_value(files)?,
            rows: None,
        })
    }
}

/// The part files a task reported.
fn files_of(result: &TaskSinkResult) -> Result<Vec<SinkFileStatus>> {
    if result.output.commit_message.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(result.output.commit_message.clone())
        .map_err(|e| SluiceError::internal(format!("file sink task {} reported unreadable files: {e}", result.partition_index)))
}

/// Writes one task's rows as part files, one per output partition directory.
async fn write_part_files(
    opts: &FileSinkOptions,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    task: u32,
) -> Result<Vec<SinkFileStatus>> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok(Vec::new());
    }
    let batch = arrow::compute::concat_batches(schema, batches)?;
    let part_idx = opts.partition_indices(schema)?;
    let data_idx: Vec<usize> = (0..schema.fields().len()).filter(|i| !part_idx.contains(i)).collect();
    // Group row indices by partition directory, keeping row order within each group.
    let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let dir: Vec<String> = part_idx
            .iter()
            .map(|&i| directory_name(schema.field(i).name(), value_to_spark_string(batch.column(i).as_ref(), row).as_deref()))
            .collect();
        groups.entry(dir.join("/")).or_default().push(row as u32);
    }
    let out = storage::resolve(&opts.path)?;
    let name = part_file_name(opts, task);
    let mut written = Vec::new();
    for (dir, idx) in groups {
        let selected = if part_idx.is_empty() {
            batch.clone()
        } else {
            take_record_batch(&batch, &UInt32Array::from(idx))?.project(&data_idx)?
        };
        let rel = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
        written.push(put_part_file(&out, &rel, encode(&opts.format, &selected)?).await?);
    }
    Ok(written)
}

/// `part-<task>-<uuid>.c000.<ext>`, Spark's part-file name: unique per write, so appends never collide.
fn part_file_name(opts: &FileSinkOptions, task: u32) -> String {
    format!("part-{task:05}-{}.c000.{}", uuid::Uuid::new_v4(), opts.extension())
}

async fn put_part_file(out: &Location, rel: &str, bytes: Bytes) -> Result<SinkFileStatus> {
    let path = out.child(rel);
    let size = bytes.len() as u64;
    out.store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|e| SluiceError::from(e).context(format!("writing {}", out.url_of(&path))))?;
    let mtime = match out.store.head(&path).await {
        Ok(meta) => meta.last_modified.timestamp_millis(),
        Err(_) => sluice_common::time::now_ms(),
    };
    Ok(SinkFileStatus::added(out.url_of(&path), size, mtime))
}

/// A batch `df.write` of `batches`: the part files and `col=value/` directories a streaming
/// batch writes, without a `_spark_metadata` log (a batch write has no commit to record). An
/// empty, unpartitioned result still leaves one file holding the schema, as Spark's batch writer
/// does, so the directory reads back. The caller checks the schema first
/// ([`FileSinkOptions::check_schema`]), before it clears an overwritten directory.
pub async fn write_batch_files(opts: &FileSinkOptions, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    if batches.iter().all(|b| b.num_rows() == 0) && opts.partition_by.is_empty() {
        let out = storage::resolve(&opts.path)?;
        put_part_file(&out, &part_file_name(opts, 0), encode(&opts.format, &RecordBatch::new_empty(Arc::clone(schema)))?).await?;
        return Ok(());
    }
    write_part_files(opts, schema, batches, 0).await.map(|_| ())
}

fn encode(format: &OutputFormat, batch: &RecordBatch) -> Result<Bytes> {
    let mut buf = Vec::new();
    match format {
        OutputFormat::Json(o) => write_json_lines(batch, o, &mut buf)?,
        OutputFormat::Csv(o) => write_csv(batch, o, o.header(), &mut buf)?,
        OutputFormat::Parquet { compression, .. } => {
            let props = WriterProperties::builder().set_compression(*compression).build();
            let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
            w.write(batch)?;
            w.close()?;
        }
    }
    Ok(Bytes::from(buf))
}

/// Driver side of the file sink.
pub struct FileSinkCommitter {
    out: Location,
    log: FileSinkLog,
}

impl FileSinkCommitter {
    /// A committer for the output directory in `opts`.
    pub fn new(opts: &FileSinkOptions) -> Result<Self> {
        let out = storage::resolve(&opts.path)?;
        let log = FileSinkLog::new(&out);
        Ok(Self { out, log })
    }

    /// Deletes the part files of `results` that no committed entry of the log (through `batch`)
    /// lists: the output of an attempt that did not commit. A file a committed entry lists is
    /// never deleted — after a commit whose response was lost, the entry may list exactly these
    /// files — and when the log cannot be read, nothing is deleted (an orphaned part file is
    /// invisible to readers; a deleted committed one is lost data).
    async fn delete_uncommitted(&self, batch: BatchId, results: &[TaskSinkResult]) {
        let committed = match self.log.committed_paths(batch.0).await {
            Ok(paths) => paths,
            Err(e) => {
                tracing::warn!(batch_id = batch.0, error = %e, "cannot read the sink log; leaving the attempt's part files in place");
                return;
            }
        };
        for r in results {
            for f in files_of(r).unwrap_or_default() {
                if committed.contains(&f.path) {
                    continue;
                }
                let Ok(url) = url::Url::parse(&f.path) else { continue };
                let Ok(loc) = storage::resolve_url(&url) else { continue };
                if let Err(e) = delete_entry(&loc.store, &loc.path, &format!("deleting {}", f.path)).await {
                    tracing::warn!(file = %f.path, error = %e, "could not delete an uncommitted part file");
                }
            }
        }
    }
}

#[async_trait]
impl SinkCommitter for FileSinkCommitter {
    fn description(&self) -> String {
        format!("FileSink[{}]", self.out.url)
    }

    async fn commit(&mut self, batch: BatchId, _schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64> {
        let batch_id = batch.0;
        let committed = if self.log.latest_batch_id().await?.is_some_and(|latest| batch_id <= latest) {
            false
        } else {
            let mut files: Vec<SinkFileStatus> = Vec::new();
            for r in &results {
                files.extend(files_of(r)?);
            }
            self.log.commit(batch_id, &files).await?
        };
        if !committed {
            tracing::info!(batch_id, "Skipping already committed batch {batch_id}");
            self.delete_uncommitted(batch, &results).await;
            return Ok(0);
        }
        Ok(results.iter().map(|r| r.output.num_rows).sum())
    }

    async fn abort(&mut self, batch: BatchId, results: Vec<TaskSinkResult>) {
        self.delete_uncommitted(batch, &results).await;
    }
}
