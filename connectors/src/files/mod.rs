//! The `files` connector: JSON, CSV, Parquet and text files on any object store — as a stream
//! (Spark's `FileStreamSource`), as an exactly-once sink (`FileStreamSink` with its
//! `_spark_metadata` log) and as a static table.

pub mod listing;
pub mod options;
pub mod partitions;
pub mod reader;
pub mod sink;
pub mod sink_log;
pub mod source;
pub mod source_log;
pub mod splits;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::storage;
use sluice_common::{OutputMode, QueryConf};

use crate::access::{Access, LocationUse};
use crate::sink::{SinkCommitter, SinkConnector, SinkSpec, SinkWriter};
use crate::source::{Source, SourceConnector, SourceSchema, SourceSpec, SplitData, SplitDescriptor, SplitReader};
use crate::table::{TableConnector, TableSpec};

use self::options::{parse_format, CleanSource, FileFormat, FileSourceOptions, FILE_TABLE_OPTIONS};
use self::sink::{FileSinkCommitter, FileSinkOptions, FileSinkWriter};
use self::splits::{FileRange, FileSplit, SplitSizing};

/// The `files` connector, as a source, a sink and a static table.
#[derive(Debug, Default)]
pub struct FilesConnector;

impl SourceConnector for FilesConnector {
    fn name(&self) -> &'static str {
        "files"
    }

    fn resolve(&self, options: &mut Options, declared: &Schema) -> Result<SourceSchema> {
        let parsed = FileSourceOptions::parse(options)?;
        options.insert("path", parsed.path.clone());
        if let CleanSource::Archive(dir) = &parsed.clean_source {
            options.insert("sourceArchiveDir", dir.clone());
        }
        if declared.fields().is_empty() {
            return Err(SluiceError::user(
                "Schema must be specified when creating a streaming source DataFrame. \
                 Declare the columns: CREATE STREAM name (col TYPE, ...) WITH (...)",
            ));
        }
        Ok(SourceSchema::Declared)
    }

    fn access(&self, options: &Options) -> Result<Vec<Access>> {
        let parsed = FileSourceOptions::parse(options)?;
        let mut out = vec![Access::location(LocationUse::Read, "path", parsed.path)];
        match parsed.clean_source {
            CleanSource::Off => {}
            CleanSource::Delete => out.push(Access::DeletesInput { option: "cleanSource".to_string() }),
            CleanSource::Archive(dir) => out.push(Access::location(LocationUse::Archive, "sourceArchiveDir", dir)),
        }
        Ok(out)
    }

    fn create_source(&self, spec: &SourceSpec, conf: &QueryConf) -> Result<Box<dyn Source>> {
        Ok(Box::new(source::FileSource::new(FileSourceOptions::parse(&spec.options)?, SplitSizing::of(conf))?))
    }

    fn split_reader(&self, spec: &SourceSpec) -> Result<Box<dyn SplitReader>> {
        let options = FileSourceOptions::parse(&spec.options)?;
        Ok(Box::new(FileSplitReader { root: options.path, format: options.format, schema: Arc::clone(&spec.schema) }))
    }
}

/// Executor side of the source: options parsed once per query.
#[derive(Debug)]
struct FileSplitReader {
    /// The source directory, below which `col=value` directories hold partition values.
    root: String,
    format: FileFormat,
    schema: SchemaRef,
}

#[async_trait]
impl SplitReader for FileSplitReader {
    async fn read(&self, split: &SplitDescriptor, _inline_rows: &[u8]) -> Result<SplitData> {
        let split: FileSplit = split.decode("files")?;
        let mut data = SplitData { batches: Vec::with_capacity(split.files.len()), ..Default::default() };
        for range in &split.files {
            let r = reader::read_input_range(&self.root, range, &self.format, &self.schema).await?;
            data.malformed_rows += r.malformed_rows;
            data.batches.push(r.batch);
        }
        Ok(data)
    }
}

impl SinkConnector for FilesConnector {
    fn name(&self) -> &'static str {
        "files"
    }

    fn resolve(&self, options: &mut Options) -> Result<()> {
        if let Some(p) = options.get("path") {
            let abs = storage::absolute_url(p)?.to_string();
            options.insert("path", abs);
        }
        FileSinkOptions::parse(options).map(|_| ())
    }

    fn access(&self, options: &Options) -> Result<Vec<Access>> {
        let path = storage::absolute_url(&FileSinkOptions::parse(options)?.path)?;
        Ok(vec![Access::location(LocationUse::Write, "path", path.to_string())])
    }

    fn check_output_mode(&self, options: &Options, mode: OutputMode) -> Result<()> {
        if mode != OutputMode::Append {
            return Err(SluiceError::user(format!(
                "Data source {} does not support {} output mode",
                FileSinkOptions::parse(options)?.format_name(),
                mode.spark_name()
            )));
        }
        Ok(())
    }

    fn check_schema(&self, options: &Options, schema: &SchemaRef) -> Result<()> {
        FileSinkOptions::parse(options)?.check_schema(schema)
    }

    fn writer(&self, spec: &SinkSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(FileSinkWriter::new(FileSinkOptions::parse(&spec.options)?)))
    }

    fn committer(&self, spec: &SinkSpec, _mode: OutputMode) -> Result<Box<dyn SinkCommitter>> {
        Ok(Box::new(FileSinkCommitter::new(&FileSinkOptions::parse(&spec.options)?)?))
    }
}

#[async_trait]
impl TableConnector for FilesConnector {
    fn name(&self) -> &'static str {
        "files"
    }

    async fn resolve(&self, options: &mut Options, declared: &Schema) -> Result<SchemaRef> {
        let owner = "connector 'files'";
        let format = parse_format(options, FILE_TABLE_OPTIONS, owner)?;
        let path = storage::absolute_url(options.required("path", owner)?)?.to_string();
        options.insert("path", path.clone());
        if !declared.fields().is_empty() {
            return Ok(Arc::new(declared.clone()));
        }
        match format {
            FileFormat::Parquet => infer_parquet_schema(&path).await,
            _ => Err(SluiceError::user("declare the table's columns; only Parquet tables can take their schema from the files")),
        }
    }

    fn access(&self, options: &Options) -> Result<Vec<Access>> {
        let path = storage::absolute_url(options.required("path", "connector 'files'")?)?;
        Ok(vec![Access::location(LocationUse::Read, "path", path.to_string())])
    }

    async fn read(&self, spec: &TableSpec) -> Result<Vec<RecordBatch>> {
        let format = parse_format(&spec.options, FILE_TABLE_OPTIONS, "connector 'files'")?;
        let root = spec.options.required("path", "connector 'files'")?;
        let dir = storage::resolve(root)?;
        let mut out = Vec::new();
        for f in listing::list_input_files(&dir).await? {
            let range = FileRange { url: f.url.clone(), start: 0, length: f.size, file_size: f.size };
            out.push(reader::read_input_range(root, &range, &format, &spec.schema).await?.batch);
        }
        Ok(out)
    }
}

/// The schema of a Parquet directory: the first file's columns, then the partition columns its
/// `col=value` directories name (with inferred types), as Spark's `spark.read.parquet` infers it.
#[allow(deprecated)] // ParquetObjectReader: see files::reader
async fn infer_parquet_schema(path: &str) -> Result<SchemaRef> {
    let dir = storage::resolve(path)?;
    let files = listing::list_input_files(&dir).await?;
    let first = files.first().ok_or_else(|| SluiceError::user(format!("no files in {path} to take the schema from")))?;
    let url = url::Url::parse(&first.url).map_err(|e| SluiceError::internal(e.to_string()))?;
    let loc = storage::resolve_url(&url)?;
    let reader = parquet::arrow::async_reader::ParquetObjectReader::new(Arc::clone(&loc.store), loc.path.clone())
        .with_file_size(first.size);
    let builder = parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder::new(reader).await?;
    let mut fields: Vec<arrow::datatypes::FieldRef> = builder.schema().fields().iter().cloned().collect();
    for partition in partitions::infer_partition_fields(path, files.iter().map(|f| f.url.as_str())) {
        if !fields.iter().any(|f| f.name().eq_ignore_ascii_case(partition.name())) {
            fields.push(Arc::new(partition));
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}
