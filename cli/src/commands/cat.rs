//! `sluice cat <dir>`: the committed rows of a file-sink output directory.
//!
//! Reads exactly the files `_spark_metadata` lists — what Spark would read — so files from
//! failed or in-flight batches never show up. The log records absolute paths as the writer saw
//! them; a directory read from elsewhere (a container volume on its host, a copied directory)
//! has its files found by name in the directory itself.

use std::io::Write;

use arrow::array::RecordBatch;
use bytes::Bytes;
use clap::Args;
use object_store::ObjectStoreExt;
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::storage;
use sluice_connectors::files::sink_log::FileSinkLog;
use sluice_formats::json_write::{write_json_lines, JsonWriteOptions};

/// Arguments of `sluice cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// Output directory of a `files` sink (local path or URL).
    dir: String,
}

pub async fn cat(args: CatArgs) -> Result<()> {
    match print_committed(args).await {
        // `sluice cat dir | head` closes the pipe early: that is not an error.
        Err(e) if e.message.contains("Broken pipe") => Ok(()),
        other => other,
    }
}

async fn print_committed(args: CatArgs) -> Result<()> {
    let dir = storage::resolve(&args.dir)?;
    let log = FileSinkLog::new(&dir);
    if !log.has_entries().await? {
        return Err(SluiceError::user(format!(
            "{} is not a file-sink output directory: it has no committed batches in _spark_metadata",
            dir.url
        )));
    }
    let json_opts = JsonWriteOptions::from_options(&Options::new(), &[])?;
    let mut out = std::io::stdout().lock();
    for file in log.all_files().await? {
        let url = url::Url::parse(&file.path)
            .map_err(|e| SluiceError::user(format!("bad path {} in _spark_metadata: {e}", file.path)))?;
        let loc = storage::resolve_url(&url)?;
        let bytes = match loc.store.get(&loc.path).await {
            Ok(found) => found.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                let name =
                    loc.path.filename().ok_or_else(|| SluiceError::user(format!("bad path {} in _spark_metadata", file.path)))?;
                dir.store.get(&dir.path.clone().join(name)).await?.bytes().await?
            }
            Err(e) => return Err(e.into()),
        };
        if file.path.ends_with(".parquet") {
            for batch in read_parquet(bytes)? {
                let mut buf = Vec::new();
                write_json_lines(&batch, &json_opts, &mut buf)?;
                out.write_all(&buf)?;
            }
        } else {
            out.write_all(&bytes)?;
            if !bytes.ends_with(b"\n") && !bytes.is_empty() {
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn read_parquet(bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}
