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
    Stateless {
        /// Which stream to read: index into `QuerySpec::sources`.
        source_index: usize,
        /// The connector's description of the slice to read (e.g. a file byte range, a Kafka offset range).
        split: SplitDescriptor,
    },
    /// First stage of a stateful query: read one split, run the map side of every operator
    /// input fed by streams, keep one shuffle block per state partition for each.
    Map {
        /// Which stream to read: index into `QuerySpec::sources`.
        source_index: usize,
        /// The connector's description of the slice to read (e.g. a file byte range, a Kafka offset range).
        split: SplitDescriptor,
    },
    /// Operator `op` for state `partition`: merge the shuffled input with the partition's state,
    /// then feed its consumer's map side, or the query's output (sink or gather block).
    Reduce {
        /// Id of the stateful operator to run (`StatefulOperator::id`); also the shuffle stage it reads.
        op: usize,
        /// The state partition, `0..spark.sql.shuffle.partitions`; the driver keeps it on its executor while that one lives.
        partition: u32,
        /// Per operator input (a join has two), every task that produced blocks for it; from
        /// each, this task fetches its `partition`'s block.
        inputs: Vec<Vec<BlockSource>>,
    },
    /// The output fragment over every partition's rows at once (e.g. complete mode ORDER BY).
    Gather {
        /// Every task of the last reduce stage, each of which left one block for the gather task.
        inputs: Vec<BlockSource>,
    },
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
    /// Latest event time seen, in ms since the epoch: what the watermark advances from (`max − delay`).
    pub max_ms: i64,
    /// Earliest event time seen, in ms since the epoch.
    pub min_ms: i64,
    /// Mean event time in ms since the epoch, a double as in Spark, kept as a running weighted mean by `merge`.
    pub avg_ms: f64,
    /// Rows with a non-null event time; 0 means the stats carry no information.
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
    /// The shuffle blocks this task left that hold rows: consumer stage → block partitions.
    /// Consumers are told to fetch only these; with 200 state partitions and a few changed keys
    /// a batch, most blocks are empty. `None` (a task that does not say) means "fetch them all".
    #[serde(default)]
    pub filled_blocks: Option<BTreeMap<u32, Vec<u32>>>,
    /// The state deltas this task's call wrote for it: the driver names them in the versions'
    /// manifests before it commits the batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_deltas: Vec<sluice_state::DeltaRef>,
}

impl TaskMetrics {
    /// Records blocks of consumer `stage` that hold rows.
    pub fn add_filled_blocks(&mut self, stage: u32, partitions: impl IntoIterator<Item = u32>) {
        self.filled_blocks.get_or_insert_default().entry(stage).or_default().extend(partitions);
    }

    /// Whether this task's block for (`stage`, `partition`) may hold rows.
    pub fn may_have_block(&self, stage: u32, partition: u32) -> bool {
        self.filled_blocks.as_ref().is_none_or(|f| f.get(&stage).is_some_and(|ps| ps.contains(&partition)))
    }
}

/// One stateful operator's metrics in one task (summed by the driver into Spark's
/// `stateOperators` progress entries).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateOperatorMetrics {
    /// Id of the stateful operator (`StatefulOperator::id`) these metrics belong to.
    pub operator: usize,
    /// `numRowsTotal`: rows (keys) in this partition's state after the batch.
    pub num_rows_total: u64,
    /// `numRowsUpdated`: state rows this task inserted or replaced.
    pub num_rows_updated: u64,
    /// `numRowsRemoved`: state rows evicted because the eviction watermark passed them.
    pub num_rows_removed: u64,
    /// `numRowsDroppedByWatermark`: input rows (aggregation: partial groups) at or below the late watermark, dropped.
    pub num_rows_dropped_by_watermark: u64,
    /// `memoryUsedBytes`: approximate bytes of this partition's state keys and values in memory.
    pub memory_used_bytes: u64,
    /// `allUpdatesTimeMs`: ms spent merging input into state (late-row filtering included).
    pub all_updates_time_ms: u64,
    /// `allRemovalsTimeMs`: ms spent evicting what the watermark closed (aggregations: and emitting the batch's rows).
    pub all_removals_time_ms: u64,
    /// `commitTimeMs`: ms spent committing the partition's next state version (delta, snapshot when due, cleanup).
    pub commit_time_ms: u64,
    /// `customMetrics`: operator-specific counters, e.g. dedup's `numDroppedDuplicateRows`.
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
