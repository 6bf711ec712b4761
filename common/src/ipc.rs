//! Arrow IPC stream encoding for rows that travel over gRPC (inline source rows, rows collected
//! by the console and memory sinks) and for state files.
//!
//! Decoding takes bytes that crossed a network or sat on a disk, so it must fail, never panic
//! or abort: Arrow's stream reader allocates whatever a message header claims (a corrupt length
//! becomes a multi-gigabyte allocation that aborts the process) and panics on some inconsistent
//! headers. [`decode`] therefore first walks the stream's framing and refuses lengths that
//! point past the bytes present and compressed bodies (sluice never writes them), then decodes
//! with panics caught, so every failure is a typed "… is corrupt" error naming the input.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use bytes::Bytes;

use crate::error::{Result, SluiceError};

/// Encodes batches (all of `schema`) as one IPC stream.
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, schema)?;
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(Bytes::from(buf))
}

/// Decodes an IPC stream; empty input decodes to no batches. `what` names the input in errors
/// (`state file …/3.delta`, `inline source rows`).
pub fn decode(bytes: &[u8], what: &str) -> Result<(Option<SchemaRef>, Vec<RecordBatch>)> {
    if bytes.is_empty() {
        return Ok((None, Vec::new()));
    }
    check_framing(bytes).map_err(|why| corrupt(what, &why))?;
    let decoded = catch_unwind(AssertUnwindSafe(|| -> std::result::Result<_, arrow::error::ArrowError> {
        let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((Some(schema), batches))
    }));
    match decoded {
        Ok(Ok(decoded)) => Ok(decoded),
        Ok(Err(e)) => Err(corrupt(what, &e.to_string())),
        Err(panic) => Err(corrupt(what, &format!("the Arrow reader failed on it ({})", panic_message(&panic)))),
    }
}

/// Decodes only the schema at the start of an IPC stream (schemas inside sluice's JSON
/// documents), with the same guards as [`decode`].
pub fn decode_schema(bytes: &[u8], what: &str) -> Result<SchemaRef> {
    check_framing(bytes).map_err(|why| corrupt(what, &why))?;
    match catch_unwind(AssertUnwindSafe(|| StreamReader::try_new(Cursor::new(bytes), None).map(|r| r.schema()))) {
        Ok(Ok(schema)) => Ok(schema),
        Ok(Err(e)) => Err(corrupt(what, &e.to_string())),
        Err(panic) => Err(corrupt(what, &format!("the Arrow reader failed on it ({})", panic_message(&panic)))),
    }
}

fn corrupt(what: &str, why: &str) -> SluiceError {
    SluiceError::user(format!("{what} is corrupt: {why}"))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Walks the messages of a stream — `[0xFFFFFFFF] <i32 metadata length> <metadata> <body>`,
/// ended by a zero length or the end of the bytes — checking that every length stays inside
/// `bytes`, that every buffer stays inside its body, and that no body is compressed.
fn check_framing(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut pos = 0usize;
    loop {
        let Some(mut len) = read_i32(bytes, pos) else {
            // End of the bytes without an end-of-stream marker: the reader accepts that.
            return if pos == bytes.len() { Ok(()) } else { Err(format!("{} stray bytes at offset {pos}", bytes.len() - pos)) };
        };
        pos += 4;
        if len == -1 {
            len = read_i32(bytes, pos).ok_or_else(|| format!("the stream ends inside a message length at offset {pos}"))?;
            pos += 4;
        }
        if len == 0 {
            return Ok(());
        }
        let meta_len = usize::try_from(len).map_err(|_| format!("negative metadata length {len} at offset {pos}"))?;
        let meta = bytes.get(pos..pos.saturating_add(meta_len)).ok_or_else(|| {
            format!("a {meta_len}-byte message header at offset {pos} runs past the {} bytes present", bytes.len())
        })?;
        pos += meta_len;
        let message = arrow::ipc::root_as_message(meta).map_err(|e| format!("unreadable message header at offset {pos}: {e}"))?;
        let body_len = usize::try_from(message.bodyLength())
            .map_err(|_| format!("negative message body length {}", message.bodyLength()))?;
        if body_len > bytes.len() - pos {
            return Err(format!("a {body_len}-byte message body at offset {pos} runs past the {} bytes present", bytes.len()));
        }
        let batch = message.header_as_record_batch().or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
        if let Some(batch) = batch {
            if batch.compression().is_some() {
                return Err("the body is compressed, which sluice never writes".into());
            }
            for b in batch.buffers().into_iter().flat_map(|v| v.iter()) {
                let end = u64::try_from(b.offset()).ok().and_then(|o| o.checked_add(u64::try_from(b.length()).ok()?));
                if end.is_none_or(|end| end > body_len as u64) {
                    return Err(format!("a buffer at {}+{} lies outside its {body_len}-byte body", b.offset(), b.length()));
                }
            }
        }
        pos += body_len;
    }
}

fn read_i32(bytes: &[u8], pos: usize) -> Option<i32> {
    let raw: [u8; 4] = bytes.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
    Some(i32::from_le_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn round_trip() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let b = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let bytes = encode(&schema, &[b.clone(), b.clone()]).unwrap();
        let (s, got) = decode(&bytes, "rows").unwrap();
        assert_eq!(s.unwrap(), schema);
        assert_eq!(got, vec![b.clone(), b]);
        assert!(decode(&[], "rows").unwrap().1.is_empty());
        assert_eq!(decode_schema(&bytes, "schema").unwrap(), schema);
    }

    #[test]
    fn lengths_past_the_bytes_present_are_refused_before_allocating() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let b = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let bytes = encode(&schema, &[b]).unwrap();
        // A header claiming 2 GiB of metadata.
        let e = decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], "inline rows").unwrap_err();
        assert!(e.message.starts_with("inline rows is corrupt: "), "{}", e.message);
        // Every truncation and every single-byte change fails or decodes; none panics or aborts.
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut], "cut");
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.to_vec();
            flipped[i] ^= 0xff;
            let _ = decode(&flipped, "flipped");
        }
    }
}
