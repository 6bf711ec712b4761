//! The resolved definition of one streaming query, as the driver ships it to executors, and the
//! task and metric types that travel with each micro-batch.

use std::collections::BTreeMap;

use crate::connectors::sinks::SinkSpec;
use crate::connectors::source::{SourceSpec, SplitSpec};
use crate::connectors::TableSpec;
use crate::error::{Result, SluiceError};

/// Spark's output modes (spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OutputMode {
    /// Only rows that will never change.
    Append,
    /// Rows changed in this batch.
    Update,
    /// The whole result, every batch.
    Complete,
}

impl OutputMode {
    /// Parses Spark's names, case-insensitively.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "append" => Ok(Self::Append),
            "update" => Ok(Self::Update),
            "complete" => Ok(Self::Complete),
            other => Err(SluiceError::user(format!(
                "Unknown output mode {other}. Accepted output modes are 'append', 'complete', 'update'"
            ))),
        }
    }

    /// Spark's capitalised name (`Append`), as in its error messages.
    pub fn spark_name(self) -> &'static str {
        match self {
            Self::Append => "Append",
            Self::Update => "Update",
            Self::Complete => "Complete",
        }
    }
}

/// Spark's `multipleWatermarkPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WatermarkPolicy {
    Min,
    Max,
}

/// Settings that shape execution, from `SET` statements and the checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueryConf {
    /// State partitions per stateful operator (`spark.sql.shuffle.partitions`).
    pub shuffle_partitions: u32,
    /// Log entries kept (`spark.sql.streaming.minBatchesToRetain`).
    pub min_batches_to_retain: u64,
    /// Run no-data batches when the watermark would evict (`noDataMicroBatches.enabled`).
    pub no_data_micro_batches: bool,
    pub watermark_policy: WatermarkPolicy,
    /// `spark.sql.files.maxPartitionBytes`.
    pub max_partition_bytes: u64,
    /// `spark.sql.files.openCostInBytes`.
    pub open_cost_bytes: u64,
    /// `spark.sql.streaming.stateStore.minDeltasForSnapshot`.
    pub min_deltas_for_snapshot: u64,
}

impl Default for QueryConf {
    fn default() -> Self {
        Self {
            shuffle_partitions: 200,
            min_batches_to_retain: 100,
            no_data_micro_batches: true,
            watermark_policy: WatermarkPolicy::Min,
            max_partition_bytes: crate::connectors::files::splits::DEFAULT_MAX_PARTITION_BYTES,
            open_cost_bytes: crate::connectors::files::splits::DEFAULT_OPEN_COST_BYTES,
            min_deltas_for_snapshot: 10,
        }
    }
}

impl QueryConf {
    /// The confs recorded in `offsets/N` (Spark's keys), which override the session's on restart.
    pub fn to_offset_conf(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("spark.sql.shuffle.partitions".into(), self.shuffle_partitions.to_string());
        m.insert(
            "spark.sql.streaming.multipleWatermarkPolicy".into(),
            match self.watermark_policy {
                WatermarkPolicy::Min => "min".into(),
                WatermarkPolicy::Max => "max".into(),
            },
        );
        m.insert("spark.sql.streaming.aggregation.stateFormatVersion".into(), "2".into());
        m.insert("spark.sql.streaming.join.stateFormatVersion".into(), "2".into());
        m.insert("spark.sql.streaming.stateStore.providerClass".into(), "sluice.ArrowStateStoreProvider".into());
        m
    }

    /// Applies confs recorded in a checkpoint (spec §1: they win over the session's), with
    /// Spark's legacy defaults for missing keys.
    pub fn restore_from_offsets(&mut self, conf: &BTreeMap<String, String>) -> Result<()> {
        if let Some(p) = conf.get("spark.sql.shuffle.partitions") {
            self.shuffle_partitions = p
                .parse()
                .map_err(|_| SluiceError::user(format!("checkpoint records an invalid shuffle partition count '{p}'")))?;
        }
        self.watermark_policy = match conf.get("spark.sql.streaming.multipleWatermarkPolicy").map(String::as_str) {
            Some("max") => WatermarkPolicy::Max,
            _ => WatermarkPolicy::Min,
        };
        Ok(())
    }
}

/// A query as the driver resolved it: everything an executor needs to run its tasks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuerySpec {
    /// Persistent id from the checkpoint's `metadata`.
    pub query_id: uuid::Uuid,
    /// Id of this run (changes on every start).
    pub run_id: uuid::Uuid,
    /// `queryName`, if set.
    pub name: Option<String>,
    /// The SELECT, as written.
    pub select_sql: String,
    /// The streams the query reads, in source-index order.
    pub sources: Vec<SourceSpec>,
    /// Static tables the query may read.
    pub tables: Vec<TableSpec>,
    /// Views, in declaration order: (name, SELECT).
    pub views: Vec<(String, String)>,
    pub sink: SinkSpec,
    pub output_mode: OutputMode,
    pub conf: QueryConf,
    /// Absolute URL of the checkpoint (state files live under `state/`).
    pub checkpoint_url: String,
}

impl QuerySpec {
    /// A stable hash of the spec, so executors can cache its compiled form.
    pub fn fingerprint(&self) -> Result<u64> {
        use std::hash::{Hash, Hasher};
        let json = serde_json::to_string(self)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        json.hash(&mut h);
        Ok(h.finish())
    }
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    /// A stateless query: read one split, run the whole query over it, write to the sink.
    Stateless { source_index: usize, split: SplitSpec },
    /// First stage of a stateful query: read one split, run the first operator's map side,
    /// keep one shuffle block per state partition.
    Map { source_index: usize, split: SplitSpec },
    /// Operator `op` for state `partition`: merge the shuffled input with the partition's state,
    /// then feed the next operator's map side, or the query's output (sink or gather block).
    Reduce { op: usize, partition: u32, inputs: Vec<BlockSource> },
    /// The output fragment over every partition's rows at once (e.g. complete mode ORDER BY).
    Gather { inputs: Vec<BlockSource> },
}

/// Where a consumer task finds one producer's block.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockSource {
    /// Task index of the producer in its stage.
    pub producer: u32,
    /// Flight endpoint of the executor that ran it.
    pub endpoint: String,
}

/// Event-time statistics of one watermark node in one task (Spark's `EventTimeStats`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventTimeStats {
    pub max_ms: i64,
    pub min_ms: i64,
    pub avg_ms: f64,
    pub count: u64,
}

impl EventTimeStats {
    /// Stats of a single value.
    pub fn of(ms: i64) -> Self {
        Self { max_ms: ms, min_ms: ms, avg_ms: ms as f64, count: 1 }
    }

    /// Spark's `EventTimeStats.merge` (weighted running average).
    pub fn merge(&mut self, other: &EventTimeStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        self.max_ms = self.max_ms.max(other.max_ms);
        self.min_ms = self.min_ms.min(other.min_ms);
        let total = self.count + other.count;
        self.avg_ms += (other.avg_ms - self.avg_ms) * other.count as f64 / total as f64;
        self.count = total;
    }
}

/// What a task reports besides its sink output.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskMetrics {
    /// Source the task read, if any.
    pub source_index: Option<usize>,
    /// Rows read from the source (after dropping malformed records in DROPMALFORMED mode).
    pub input_rows: u64,
    /// Malformed input records, whatever the parse mode did with them.
    pub malformed_rows: u64,
    /// Source offsets that no longer existed and were skipped (Kafka, `failOnDataLoss=false`).
    #[serde(default)]
    pub lost_offsets: u64,
    /// Rows the task produced for the sink.
    pub output_rows: u64,
    /// Event-time stats of the source's watermark column, per source index.
    #[serde(default)]
    pub event_time: BTreeMap<usize, EventTimeStats>,
    /// Wall time of the task in ms.
    pub duration_ms: u64,
    /// State metrics of the stateful operators this task ran.
    #[serde(default)]
    pub state: Vec<StateOperatorMetrics>,
}

/// One stateful operator's metrics in one task (summed by the driver into Spark's
/// `stateOperators` progress entries).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateOperatorMetrics {
    pub operator: usize,
    pub num_rows_total: u64,
    pub num_rows_updated: u64,
    pub num_rows_removed: u64,
    pub num_rows_dropped_by_watermark: u64,
    pub memory_used_bytes: u64,
    pub all_updates_time_ms: u64,
    pub all_removals_time_ms: u64,
    pub commit_time_ms: u64,
    #[serde(default)]
    pub custom: BTreeMap<String, i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_stats_merge_like_spark() {
        let mut s = EventTimeStats::of(10_000);
        s.merge(&EventTimeStats::of(12_000));
        s.merge(&EventTimeStats::of(14_000));
        assert_eq!((s.min_ms, s.max_ms, s.avg_ms as i64, s.count), (10_000, 14_000, 12_000, 3));
    }

    #[test]
    fn output_modes_parse_with_spark_message() {
        assert_eq!(OutputMode::parse("Complete").unwrap(), OutputMode::Complete);
        assert!(OutputMode::parse("upsert").unwrap_err().message.contains("Accepted output modes"));
    }

    #[test]
    fn offset_conf_restores_shuffle_partitions() {
        let mut c = QueryConf { shuffle_partitions: 7, ..Default::default() };
        let recorded = QueryConf { shuffle_partitions: 5, ..Default::default() }.to_offset_conf();
        c.restore_from_offsets(&recorded).unwrap();
        assert_eq!(c.shuffle_partitions, 5);
    }
}
