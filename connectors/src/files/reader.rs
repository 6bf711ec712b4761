//! Executor side of the `files` source: reading one byte range of one file.
//!
//! Line-based formats follow Hadoop's `LineRecordReader` rule so that ranges cut at arbitrary
//! bytes still read every line exactly once: a range owns the lines that *start* inside it; it
//! skips the partial line it starts in and reads past its end to finish its last line. Parquet
//! ranges own the row groups whose midpoint falls inside them, as Spark's reader does.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, SchemaRef};
use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
#[allow(deprecated)]
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

use sluice_common::error::{Result, ResultExt, SluiceError};
use sluice_common::storage::{self, Location};
use sluice_formats::csv_read::decode_csv;
use sluice_formats::json_read::decode_json_lines;
use sluice_formats::DecodeResult;

use super::options::FileFormat;
use super::partitions::{path_values, PathColumns};
use super::splits::FileRange;

/// How far past a range's end to read, at first, to finish its last line.
const LINE_OVERREAD: u64 = 64 * 1024;

/// Reads and decodes one file range into `schema`.
pub async fn read_file_range(range: &FileRange, format: &FileFormat, schema: &SchemaRef) -> Result<DecodeResult> {
    let url = url::Url::parse(&range.url).map_err(|e| SluiceError::internal(format!("bad file url {}: {e}", range.url)))?;
    let loc = storage::resolve_url(&url)?;
    let result = match format {
        FileFormat::Json(opts) => {
            let data = read_owned_lines(&loc, range).await?;
            decode_json_lines(&data, schema, opts)
        }
        FileFormat::Csv(opts) => {
            let data = read_owned_lines(&loc, range).await?;
            decode_csv(&data, range.start == 0 && opts.header(), schema, opts)
        }
        FileFormat::Text => {
            let data = read_owned_lines(&loc, range).await?;
            decode_text(&data, schema)
        }
        FileFormat::Parquet => read_parquet_range(&loc, range, schema).await,
    };
    result.map_err(|e| e.context(format!("reading {}", range.url)))
}

/// Reads one byte range of a file under the source or table directory `root`: declared columns
/// named by a `col=value` directory on the file's path are taken from the path (the layout the
/// file sink's `partitionBy` writes), the rest from the file.
pub async fn read_input_range(root: &str, range: &FileRange, format: &FileFormat, schema: &SchemaRef) -> Result<DecodeResult> {
    let Some(columns) = PathColumns::plan(schema, &path_values(root, &range.url)) else {
        return read_file_range(range, format, schema).await;
    };
    let read = read_file_range(range, format, &columns.data_schema).await?;
    let batch = columns.assemble(schema, &read.batch).map_err(|e| e.context(format!("reading {}", range.url)))?;
    Ok(DecodeResult { batch, malformed_rows: read.malformed_rows })
}

/// Bytes of the lines that start in `[start, start + length)`.
pub async fn read_owned_lines(loc: &Location, range: &FileRange) -> Result<Bytes> {
    let end = range.start + range.length;
    let begin = range.start.saturating_sub(1);
    let mut fetched_to = (end + LINE_OVERREAD).min(range.file_size);
    // Kept as fetched (no copy) unless the last line runs past the over-read.
    let mut buf = fetch(loc, begin, fetched_to).await?;
    // Extend until the line that straddles `end` is complete (or the file ends).
    loop {
        let tail_from = (end.saturating_sub(1).max(begin) - begin) as usize;
        if fetched_to >= range.file_size || buf[tail_from.min(buf.len())..].contains(&b'\n') {
            break;
        }
        let next = (fetched_to + (fetched_to - begin).max(LINE_OVERREAD)).min(range.file_size);
        let mut longer = BytesMut::from(buf.as_ref());
        longer.extend_from_slice(&fetch(loc, fetched_to, next).await?);
        buf = longer.freeze();
        fetched_to = next;
    }
    let first_owned = if range.start == 0 {
        0
    } else {
        match memchr(&buf, 0) {
            Some(i) => i + 1,
            None => return Ok(Bytes::new()),
        }
    };
    let last_line_from = (end.saturating_sub(1).max(begin) - begin) as usize;
    let owned_end = match memchr(&buf, last_line_from) {
        Some(i) => i + 1,
        None => buf.len(),
    };
    if first_owned as u64 + begin >= end || first_owned >= owned_end {
        return Ok(Bytes::new());
    }
    Ok(buf.slice(first_owned..owned_end))
}

fn memchr(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.iter().position(|b| *b == b'\n').map(|i| i + from)
}

async fn fetch(loc: &Location, from: u64, to: u64) -> Result<Bytes> {
    if to <= from {
        return Ok(Bytes::new());
    }
    loc.store.get_range(&loc.path, from..to).await.context_with(|| format!("reading bytes {from}..{to} of {}", loc.url))
}

/// `text` format: one row per line in the single string column.
fn decode_text(data: &[u8], schema: &SchemaRef) -> Result<DecodeResult> {
    if schema.fields().len() != 1 || schema.field(0).data_type() != &DataType::Utf8 {
        return Err(SluiceError::user("format 'text' produces exactly one STRING column (declare it as `value STRING`)"));
    }
    let text = std::str::from_utf8(data).map_err(|_| SluiceError::user("format 'text': input is not UTF-8"))?;
    let lines: Vec<&str> = text.split_terminator('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let batch = RecordBatch::try_new(Arc::clone(schema), vec![Arc::new(StringArray::from(lines))])?;
    Ok(DecodeResult { batch, malformed_rows: 0 })
}

// `ParquetObjectReader` is deprecated in favour of a hand-written `AsyncFileReader`; it is
// still the simplest correct reader over `object_store`, so it stays until that is written.
#[allow(deprecated)]
async fn read_parquet_range(loc: &Location, range: &FileRange, schema: &SchemaRef) -> Result<DecodeResult> {
    let reader = ParquetObjectReader::new(Arc::clone(&loc.store), loc.path.clone()).with_file_size(range.file_size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let end = range.start + range.length;
    let row_groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| {
            let first =
                rg.columns().iter().map(|c| c.dictionary_page_offset().unwrap_or(c.data_page_offset())).min().unwrap_or(0).max(0)
                    as u64;
            let mid = first + rg.compressed_size().max(0) as u64 / 2;
            mid >= range.start && mid < end
        })
        .map(|(i, _)| i)
        .collect();
    let file_schema = Arc::clone(builder.schema());
    if row_groups.is_empty() {
        return Ok(DecodeResult { batch: RecordBatch::new_empty(Arc::clone(schema)), malformed_rows: 0 });
    }
    let batches: Vec<RecordBatch> = builder.with_row_groups(row_groups).build()?.try_collect().await?;
    let batch = concat_batches(&file_schema, &batches)?;
    Ok(DecodeResult { batch: conform(&batch, schema)?, malformed_rows: 0 })
}

/// Matches a file's columns to the declared schema by name: missing columns read as NULL, and
/// types are cast to the declared ones (e.g. a file's `TIMESTAMP_NTZ` to `TIMESTAMP`).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match batch.schema().index_of(f.name()) {
            Ok(i) => {
                let col = batch.column(i);
                if col.data_type() == f.data_type() {
                    Ok(Arc::clone(col))
                } else {
                    cast(col, f.data_type()).map_err(|e| {
                        SluiceError::user(format!(
                            "column '{}' is {} in the file but declared {}: {e}",
                            f.name(),
                            sluice_common::types::spark_type_name(col.data_type()),
                            sluice_common::types::spark_type_name(f.data_type())
                        ))
                    })
                }
            }
            Err(_) => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn owned(text: &str, start: u64, length: u64) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        std::fs::write(&p, text).unwrap();
        let loc = storage::resolve(p.to_str().unwrap()).unwrap();
        let range = FileRange { url: loc.url.to_string(), start, length, file_size: text.len() as u64 };
        String::from_utf8(read_owned_lines(&loc, &range).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn every_line_is_read_by_exactly_one_range() {
        let text = "aaa\nbbb\nccc\nd\n\neeeeeeee\nf";
        for cut in 1..text.len() as u64 {
            let a = owned(text, 0, cut).await;
            let b = owned(text, cut, text.len() as u64 - cut).await;
            assert_eq!(format!("{a}{b}"), text, "cut at {cut}");
        }
        for cuts in [(3u64, 9u64), (4, 8), (5, 12), (1, 2)] {
            let (x, y) = cuts;
            let n = text.len() as u64;
            let s = format!("{}{}{}", owned(text, 0, x).await, owned(text, x, y - x).await, owned(text, y, n - y).await);
            assert_eq!(s, text, "cuts {cuts:?}");
        }
    }
}
