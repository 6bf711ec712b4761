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
    /// Spark's operator name: `stateStoreSave`, `sessionWindowStateStoreSaveExec`, `dedupe` or `dedupeWithinWatermark`.
    pub operator_name: String,
    /// `numRowsTotal`: rows held in state after the batch, summed over the state partitions.
    pub num_rows_total: u64,
    /// `numRowsUpdated`: state rows this batch inserted or changed.
    pub num_rows_updated: u64,
    /// `allUpdatesTimeMs`: ms spent updating state, summed over partition tasks (so it can exceed wall time).
    pub all_updates_time_ms: u64,
    /// `numRowsRemoved`: state rows evicted this batch because the eviction watermark passed them.
    pub num_rows_removed: u64,
    /// `allRemovalsTimeMs`: ms spent evicting state, summed over partition tasks.
    pub all_removals_time_ms: u64,
    /// `commitTimeMs`: ms spent committing the new state version, summed over partition tasks,
    /// plus the wall time of each executor's bundle writes — which run while the batch's later
    /// stages do, so this can exceed the time the batch waited for them.
    pub commit_time_ms: u64,
    /// `memoryUsedBytes`: approximate bytes of state keys and values in memory, summed over partitions.
    pub memory_used_bytes: u64,
    /// `numRowsDroppedByWatermark`: late input (`eventTime <= lateWm`) dropped; aggregation counts late groups per partition.
    pub num_rows_dropped_by_watermark: u64,
    /// `numShufflePartitions`: state partitions the operator runs on (`spark.sql.shuffle.partitions`).
    pub num_shuffle_partitions: u64,
    /// `numStateStoreInstances`: state stores behind the operator, one per state partition.
    pub num_state_store_instances: u64,
    /// `customMetrics`: operator-specific counters (e.g. dedup's `numDroppedDuplicateRows`); omitted when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub custom_metrics: BTreeMap<String, i64>,
}

/// One source's part of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceProgress {
    /// Spark's source `description`, e.g. `FileStreamSource[s3://bucket/in]` or `KafkaV2[Subscribe[t]]`.
    pub description: String,
    /// Offsets as JSON values (`null` when absent).
    pub start_offset: serde_json::Value,
    /// `endOffset`: where this batch's read stopped, i.e. the offset recorded for this source in `offsets/N`.
    pub end_offset: serde_json::Value,
    /// `latestOffset`: the newest offset the source reported when the batch was planned; ahead of `endOffset` under read limits.
    pub latest_offset: serde_json::Value,
    /// `numInputRows`: rows this source contributed to the batch.
    pub num_input_rows: u64,
    /// `inputRowsPerSecond`: rows over the time since the previous trigger started; infinite, hence omitted, on the first.
    pub input_rows_per_second: f64,
    /// `processedRowsPerSecond`: rows over this trigger's duration (at least 1 ms); omitted when not finite.
    pub processed_rows_per_second: f64,
    /// Source-specific `metrics` as strings (Kafka `*OffsetsBehindLatest`, `numMalformedRecords`, …); omitted when empty.
    pub metrics: BTreeMap<String, String>,
}

/// The sink's part of a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkProgress {
    /// Spark's sink `description`, e.g. `FileSink[s3://bucket/out]` or `ConsoleSink[numRows=20, truncate=true]`.
    pub description: String,
    /// `numOutputRows`: rows the sink committed for this batch; signed because Spark reports -1 for V1 sinks.
    pub num_output_rows: i64,
    /// Sink-specific `metrics`; omitted when empty (no sluice sink fills it yet).
    pub metrics: BTreeMap<String, String>,
}

/// Progress of one executed micro-batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamingQueryProgress {
    /// Persistent query id from the checkpoint's `metadata` file; the same across restarts.
    pub id: uuid::Uuid,
    /// `runId`: id of this run; every start, including a restart on the same checkpoint, gets a new one.
    pub run_id: uuid::Uuid,
    /// The `queryName` setting; serialized as `null` when unset.
    pub name: Option<String>,
    /// Trigger start, ISO-8601 UTC with milliseconds.
    pub timestamp: String,
    /// `batchId`: the `N` of this batch's `offsets/N` and `commits/N`.
    pub batch_id: u64,
    /// `batchDuration`: wall-clock ms of the whole trigger (equals `durationMs.triggerExecution`).
    pub batch_duration: u64,
    /// `numInputRows`: rows read this batch, summed over all sources.
    pub num_input_rows: u64,
    /// `inputRowsPerSecond`: rows over the time since the previous trigger started; infinite, hence omitted, on the first.
    pub input_rows_per_second: f64,
    /// `processedRowsPerSecond`: rows over `batchDuration` (at least 1 ms); omitted when not finite.
    pub processed_rows_per_second: f64,
    /// Phase durations (`addBatch`, `walCommit`, …); keys sorted.
    pub duration_ms: BTreeMap<String, u64>,
    /// `avg`, `max`, `min`, `watermark` as ISO timestamps; keys sorted.
    pub event_time: BTreeMap<String, String>,
    /// `stateOperators`, topmost operator first; `[]` for a stateless query.
    pub state_operators: Vec<StateOperatorProgress>,
    /// `sources`, in source-index order (the order of the offset lines in `offsets/N`).
    pub sources: Vec<SourceProgress>,
    /// `sink`: what the query's one sink committed this batch.
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
