//! Arrow IPC stream encoding for rows that travel over gRPC (inline source rows, rows collected
//! by the console and memory sinks).

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use bytes::Bytes;

use crate::error::Result;

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

/// Decodes an IPC stream; empty input decodes to no batches.
pub fn decode(bytes: &[u8]) -> Result<(Option<SchemaRef>, Vec<RecordBatch>)> {
    if bytes.is_empty() {
        return Ok((None, Vec::new()));
    }
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((Some(schema), batches))
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
        let (s, got) = decode(&bytes).unwrap();
        assert_eq!(s.unwrap(), schema);
        assert_eq!(got, vec![b.clone(), b]);
        assert!(decode(&[]).unwrap().1.is_empty());
    }
}
