//! What the driver asks of a task and what the task reports back: the documents that travel as
//! JSON inside the gRPC `TaskRequest` and `TaskResponse` (the gRPC messages themselves live in
//! `sluice-proto`).

use std::collections::BTreeMap;

use sluice_connectors::SplitDescriptor;

/// What a task does.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    /// A stateless query: read one split, run the whole query over it, write to the sink.
    Stateless { source_index: usize, split: SplitDescriptor },
    /// First stage of a stateful query: read one split, run the first operator's map side,
    /// keep one shuffle block per state partition.
    Map { source_index: usize, split: SplitDescriptor },
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
}
