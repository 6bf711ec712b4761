//! `StreamingQueryProgress`: Spark's per-batch progress report, field for field (docs/semantics.md §10).
//!
//! Operators feed these JSON documents to the dashboards and alerts they built for Spark, so the
//! field names, order and omission rules (empty maps and non-finite rates are left out) follow
//! Spark's `jsonValue`.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// One state operator's metrics in a batch.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOperatorProgress {
    pub operator_name: String,
    pub num_rows_total: u64,
    pub num_rows_updated: u64,
    pub all_updates_time_ms: u64,
    pub num_rows_removed: u64,
    pub all_removals_time_ms: u64,
    pub commit_time_ms: u64,
    pub memory_used_bytes: u64,
    pub num_rows_dropped_by_watermark: u64,
    pub num_shuffle_partitions: u64,
    pub num_state_store_instances: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub custom_metrics: BTreeMap<String, i64>,
}

/// One source's part of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceProgress {
    pub description: String,
    /// Offsets as JSON values (`null` when absent).
    pub start_offset: serde_json::Value,
    pub end_offset: serde_json::Value,
    pub latest_offset: serde_json::Value,
    pub num_input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    pub metrics: BTreeMap<String, String>,
}

/// The sink's part of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkProgress {
    pub description: String,
    pub num_output_rows: i64,
    pub metrics: BTreeMap<String, String>,
}

/// Progress of one executed micro-batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamingQueryProgress {
    pub id: uuid::Uuid,
    pub run_id: uuid::Uuid,
    pub name: Option<String>,
    /// Trigger start, ISO-8601 UTC with milliseconds.
    pub timestamp: String,
    pub batch_id: u64,
    pub batch_duration: u64,
    pub num_input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    /// Phase durations (`addBatch`, `walCommit`, …); keys sorted.
    pub duration_ms: BTreeMap<String, u64>,
    /// `avg`, `max`, `min`, `watermark` as ISO timestamps; keys sorted.
    pub event_time: BTreeMap<String, String>,
    pub state_operators: Vec<StateOperatorProgress>,
    pub sources: Vec<SourceProgress>,
    pub sink: SinkProgress,
}

impl StreamingQueryProgress {
    /// Spark's compact JSON.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Spark's `prettyJson`.
    pub fn pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl Serialize for StreamingQueryProgress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("runId", &self.run_id)?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("timestamp", &self.timestamp)?;
        m.serialize_entry("batchId", &self.batch_id)?;
        m.serialize_entry("batchDuration", &self.batch_duration)?;
        m.serialize_entry("numInputRows", &self.num_input_rows)?;
        if let Some(v) = finite(self.input_rows_per_second) {
            m.serialize_entry("inputRowsPerSecond", &v)?;
        }
        if let Some(v) = finite(self.processed_rows_per_second) {
            m.serialize_entry("processedRowsPerSecond", &v)?;
        }
        if !self.duration_ms.is_empty() {
            m.serialize_entry("durationMs", &self.duration_ms)?;
        }
        if !self.event_time.is_empty() {
            m.serialize_entry("eventTime", &self.event_time)?;
        }
        m.serialize_entry("stateOperators", &self.state_operators)?;
        m.serialize_entry("sources", &self.sources)?;
        m.serialize_entry("sink", &self.sink)?;
        m.end()
    }
}

impl Serialize for SourceProgress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("description", &self.description)?;
        m.serialize_entry("startOffset", &self.start_offset)?;
        m.serialize_entry("endOffset", &self.end_offset)?;
        m.serialize_entry("latestOffset", &self.latest_offset)?;
        m.serialize_entry("numInputRows", &self.num_input_rows)?;
        if let Some(v) = finite(self.input_rows_per_second) {
            m.serialize_entry("inputRowsPerSecond", &v)?;
        }
        if let Some(v) = finite(self.processed_rows_per_second) {
            m.serialize_entry("processedRowsPerSecond", &v)?;
        }
        if !self.metrics.is_empty() {
            m.serialize_entry("metrics", &self.metrics)?;
        }
        m.end()
    }
}

impl Serialize for SinkProgress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("description", &self.description)?;
        m.serialize_entry("numOutputRows", &self.num_output_rows)?;
        if !self.metrics.is_empty() {
            m.serialize_entry("metrics", &self.metrics)?;
        }
        m.end()
    }
}

/// An offset's JSON text as a JSON value for progress (`null` when absent or unparsable).
pub fn offset_value(offset: Option<&str>) -> serde_json::Value {
    offset.and_then(|o| serde_json::from_str(o).ok()).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_and_omissions_follow_spark() {
        let p = StreamingQueryProgress {
            id: uuid::Uuid::nil(),
            run_id: uuid::Uuid::nil(),
            name: None,
            timestamp: "1970-01-01T00:00:00.000Z".into(),
            batch_id: 0,
            batch_duration: 5,
            num_input_rows: 3,
            input_rows_per_second: f64::INFINITY,
            processed_rows_per_second: 600.0,
            duration_ms: BTreeMap::from([("walCommit".to_string(), 1), ("addBatch".to_string(), 2)]),
            event_time: BTreeMap::new(),
            state_operators: vec![],
            sources: vec![SourceProgress {
                description: "MemoryStream[s]".into(),
                start_offset: serde_json::Value::Null,
                end_offset: offset_value(Some("0")),
                latest_offset: offset_value(Some("0")),
                num_input_rows: 3,
                input_rows_per_second: f64::INFINITY,
                processed_rows_per_second: 600.0,
                metrics: BTreeMap::new(),
            }],
            sink: SinkProgress { description: "MemorySink".into(), num_output_rows: 3, metrics: BTreeMap::new() },
        };
        let z = "00000000-0000-0000-0000-000000000000";
        assert_eq!(
            p.json(),
            format!(
                "{{\"id\":\"{z}\",\"runId\":\"{z}\",\"name\":null,\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"batchId\":0,\"batchDuration\":5,\"numInputRows\":3,\"processedRowsPerSecond\":600.0,\"durationMs\":{{\"addBatch\":2,\"walCommit\":1}},\"stateOperators\":[],\"sources\":[{{\"description\":\"MemoryStream[s]\",\"startOffset\":null,\"endOffset\":0,\"latestOffset\":0,\"numInputRows\":3,\"processedRowsPerSecond\":600.0}}],\"sink\":{{\"description\":\"MemorySink\",\"numOutputRows\":3}}}}"
            )
        );
    }
}
