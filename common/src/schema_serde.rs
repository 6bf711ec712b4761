//! Serde for Arrow schemas and types inside sluice's JSON documents (query specs, job
//! definitions), encoded as an Arrow IPC schema message in base64.
//!
//! IPC is Arrow's own lossless schema format (nested types, time zones, metadata), so no type
//! is approximated on its way from the driver to an executor.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use base64::Engine;
use serde::{Deserialize, Deserializer, Serializer};

fn encode(schema: &SchemaRef) -> Result<String, String> {
    let bytes = crate::ipc::encode(schema, &[]).map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn decode(text: &str) -> Result<SchemaRef, String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| e.to_string())?;
    crate::ipc::decode_schema(&bytes, "the schema").map_err(|e| e.message)
}

/// `#[serde(with = "schema_serde::schema_ref")]` for `SchemaRef` fields.
pub mod schema_ref {
    use super::*;

    /// Writes the schema as a base64 Arrow IPC schema message string.
    pub fn serialize<S: Serializer>(schema: &SchemaRef, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(schema).map_err(serde::ser::Error::custom)?)
    }

    /// Reads a schema written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SchemaRef, D::Error> {
        decode(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "schema_serde::data_type")]` for `DataType` fields.
pub mod data_type {
    use super::*;

    /// Writes the type as a one-field (`t`, nullable) schema, base64 Arrow IPC encoded.
    pub fn serialize<S: Serializer>(dt: &DataType, s: S) -> Result<S::Ok, S::Error> {
        let schema = Arc::new(Schema::new(vec![Field::new("t", dt.clone(), true)]));
        s.serialize_str(&encode(&schema).map_err(serde::ser::Error::custom)?)
    }

    /// Reads a type written by [`serialize`]: the data type of the schema's only field.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DataType, D::Error> {
        let schema = decode(&String::deserialize(d)?).map_err(serde::de::Error::custom)?;
        schema.fields().first().map(|f| f.data_type().clone()).ok_or_else(|| serde::de::Error::custom("empty type schema"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "schema_ref")]
        schema: SchemaRef,
        #[serde(with = "data_type")]
        dt: DataType,
    }

    #[test]
    fn nested_types_and_time_zones_round_trip() {
        let dt = crate::types::parse_type("STRUCT<a: TIMESTAMP, b: ARRAY<MAP<STRING, DECIMAL(12,2)>>>").unwrap();
        let h = Holder { schema: Arc::new(Schema::new(vec![Field::new("x", dt.clone(), false)])), dt };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h);
    }
}
