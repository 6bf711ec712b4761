//! The settings a query runs with and the output mode it emits in: what the driver, the
//! executors and the connectors all read.
//!
//! Settings come from a job file's `SET` statements with Spark's names; the ones that change
//! what a checkpoint means (the shuffle partition count, the watermark policy) are recorded in
//! `offsets/N` and win over the job file when a query restarts, as in Spark.

use std::collections::BTreeMap;

use crate::error::{Result, SluiceError};
use crate::options::{parse_bytes, Options};

/// Spark's default `spark.sql.files.maxPartitionBytes` (128 MiB).
pub const DEFAULT_MAX_PARTITION_BYTES: u64 = 128 * 1024 * 1024;
/// Spark's default `spark.sql.files.openCostInBytes` (4 MiB).
pub const DEFAULT_OPEN_COST_BYTES: u64 = 4 * 1024 * 1024;

/// Spark's output modes (docs/semantics.md §5).
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
    /// `min` (Spark's default): the global watermark follows the slowest node, so a lagging stream's rows aren't dropped as late.
    Min,
    /// `max`: the global watermark follows the fastest node; results come sooner, but a lagging stream's rows may count as late.
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
    /// How the watermarks of several `withWatermark` nodes combine (`spark.sql.streaming.multipleWatermarkPolicy`).
    pub watermark_policy: WatermarkPolicy,
    /// `spark.sql.files.maxPartitionBytes`.
    pub max_partition_bytes: u64,
    /// `spark.sql.files.openCostInBytes`.
    pub open_cost_bytes: u64,
    /// `spark.sql.streaming.stateStore.minDeltasForSnapshot`.
    pub min_deltas_for_snapshot: u64,
    /// `spark.sql.streaming.stateStore.maintenanceInterval` in ms: how often executors snapshot
    /// and clean up each state partition, in the background.
    #[serde(default = "default_maintenance_interval_ms")]
    pub maintenance_interval_ms: u64,
    /// `spark.sql.streaming.noDataProgressEventInterval` in ms: how often an idle query posts a
    /// `QueryIdleEvent`.
    #[serde(default = "default_no_data_progress_event_interval_ms")]
    pub no_data_progress_event_interval_ms: u64,
    /// `sluice.streaming.shareIdenticalOperators`: a stateful subquery the query holds more than
    /// once runs as one operator (`sluice_plan::streaming::build_pipeline`). Recorded in the
    /// checkpoint, since it numbers the operators' state; a checkpoint that does not record it
    /// was made before operators were shared and keeps one operator per occurrence.
    #[serde(default = "default_share_identical_operators")]
    pub share_identical_operators: bool,
    /// `sluice.streaming.slidingWindowStateByPane`: an append-mode sliding-window aggregation
    /// with a pane form and a key besides the window keeps one state row per pane and key, and
    /// assembles each window from its panes when the watermark closes it
    /// (`executor::operators::panes`). Recorded in the checkpoint, since it decides the state's
    /// layout and how rows are shuffled; a checkpoint that does not record it keeps one state
    /// row per window and key.
    #[serde(default = "default_sliding_window_state_by_pane")]
    pub sliding_window_state_by_pane: bool,
    /// `sluice.streaming.mapAhead`: under a trigger that starts each batch as soon as the last
    /// one ends, and with sources that can plan ahead, the next batch's map stage runs while the
    /// current batch's reduce stages do (`sluice_driver::query::map_ahead`). Not recorded in
    /// the checkpoint: it changes when work runs, not what it computes.
    #[serde(default = "default_map_ahead")]
    pub map_ahead: bool,
}

/// The conf key of [`QueryConf::map_ahead`].
pub const MAP_AHEAD: &str = "sluice.streaming.mapAhead";

fn default_map_ahead() -> bool {
    true
}

/// The conf key of [`QueryConf::share_identical_operators`].
pub const SHARE_IDENTICAL_OPERATORS: &str = "sluice.streaming.shareIdenticalOperators";

fn default_share_identical_operators() -> bool {
    true
}

/// The conf key of [`QueryConf::sliding_window_state_by_pane`].
pub const SLIDING_WINDOW_STATE_BY_PANE: &str = "sluice.streaming.slidingWindowStateByPane";

fn default_sliding_window_state_by_pane() -> bool {
    true
}

fn default_no_data_progress_event_interval_ms() -> u64 {
    10_000
}

fn default_maintenance_interval_ms() -> u64 {
    60_000
}

impl Default for QueryConf {
    fn default() -> Self {
        Self {
            shuffle_partitions: 200,
            min_batches_to_retain: 100,
            no_data_micro_batches: true,
            watermark_policy: WatermarkPolicy::Min,
            max_partition_bytes: DEFAULT_MAX_PARTITION_BYTES,
            open_cost_bytes: DEFAULT_OPEN_COST_BYTES,
            min_deltas_for_snapshot: 10,
            maintenance_interval_ms: default_maintenance_interval_ms(),
            no_data_progress_event_interval_ms: default_no_data_progress_event_interval_ms(),
            share_identical_operators: default_share_identical_operators(),
            sliding_window_state_by_pane: default_sliding_window_state_by_pane(),
            map_ahead: default_map_ahead(),
        }
    }
}

impl QueryConf {
    /// The settings a job file's `SET`s ask for, with Spark's names, validated.
    pub fn from_settings(settings: &Options) -> Result<QueryConf> {
        let mut c = QueryConf::default();
        let pick = |a: &str, b: &str| settings.get(a).or_else(|| settings.get(b));
        if let Some(p) = pick("spark.sql.shuffle.partitions", "shufflePartitions") {
            c.shuffle_partitions = p.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                SluiceError::user(format!("spark.sql.shuffle.partitions must be a positive integer, got '{p}'"))
            })?;
        }
        if let Some(v) = pick("spark.sql.streaming.minBatchesToRetain", "minBatchesToRetain") {
            c.min_batches_to_retain = v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| SluiceError::user(format!("minBatchesToRetain must be a positive integer, got '{v}'")))?;
        }
        c.no_data_micro_batches = settings.bool_or("spark.sql.streaming.noDataMicroBatches.enabled", true, "SET")?;
        if let Some(p) = settings.get("spark.sql.streaming.multipleWatermarkPolicy") {
            c.watermark_policy = match p.trim().to_ascii_lowercase().as_str() {
                "min" => WatermarkPolicy::Min,
                "max" => WatermarkPolicy::Max,
                other => {
                    return Err(SluiceError::user(format!(
                    "Invalid value '{other}' for spark.sql.streaming.multipleWatermarkPolicy: valid values are 'min' and 'max'"
                )))
                }
            };
        }
        if let Some(v) = settings.get("spark.sql.files.maxPartitionBytes") {
            c.max_partition_bytes = parse_bytes(v)?.max(1);
        }
        if let Some(v) = settings.get("spark.sql.files.openCostInBytes") {
            c.open_cost_bytes = parse_bytes(v)?;
        }
        if let Some(v) = settings.get("spark.sql.streaming.stateStore.minDeltasForSnapshot") {
            c.min_deltas_for_snapshot =
                v.trim().parse().map_err(|_| SluiceError::user(format!("minDeltasForSnapshot must be an integer, got '{v}'")))?;
        }
        if let Some(v) = settings.get("spark.sql.streaming.stateStore.maintenanceInterval") {
            c.maintenance_interval_ms = parse_time_conf_ms(v)?;
        }
        if let Some(v) = settings.get("spark.sql.streaming.noDataProgressEventInterval") {
            c.no_data_progress_event_interval_ms = parse_time_conf_ms(v)?;
        }
        c.share_identical_operators = settings.bool_or(SHARE_IDENTICAL_OPERATORS, true, "SET")?;
        c.sliding_window_state_by_pane = settings.bool_or(SLIDING_WINDOW_STATE_BY_PANE, true, "SET")?;
        c.map_ahead = settings.bool_or(MAP_AHEAD, true, "SET")?;
        Ok(c)
    }

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
        m.insert(SHARE_IDENTICAL_OPERATORS.into(), self.share_identical_operators.to_string());
        m.insert(SLIDING_WINDOW_STATE_BY_PANE.into(), self.sliding_window_state_by_pane.to_string());
        m
    }

    /// Applies confs recorded in a checkpoint (docs/semantics.md §1: they win over the session's), with
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
        // Missing: the checkpoint predates the setting, and its state has the layout from before
        // it (one operator per occurrence; one row per window).
        self.share_identical_operators = recorded_flag(conf, SHARE_IDENTICAL_OPERATORS)?;
        self.sliding_window_state_by_pane = recorded_flag(conf, SLIDING_WINDOW_STATE_BY_PANE)?;
        Ok(())
    }
}

/// A sluice flag recorded in a checkpoint's `offsets/N`: `false` when the checkpoint predates it.
fn recorded_flag(conf: &BTreeMap<String, String>, key: &str) -> Result<bool> {
    match conf.get(key) {
        None => Ok(false),
        Some(v) => v
            .parse()
            .map_err(|_| SluiceError::user(format!("checkpoint records an invalid {key} '{v}' (expected true or false)"))),
    }
}

/// A Spark time conf in milliseconds: a number of ms, or a number with a unit (`10s`, `500ms`,
/// `2min`, `1h`) as Spark's `timeConf` accepts.
fn parse_time_conf_ms(v: &str) -> Result<u64> {
    let t = v.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    match n.parse::<u64>() {
        Ok(n) if factor > 0 => Ok(n.saturating_mul(factor)),
        _ => Err(SluiceError::user(format!(
            "invalid time '{v}': use a number of milliseconds or a number with a unit (ms, s, min, h, d)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn checkpoints_keep_the_sliding_window_state_layout_they_started_with() {
        let new = QueryConf::default().to_offset_conf();
        assert_eq!(new.get(SLIDING_WINDOW_STATE_BY_PANE).map(String::as_str), Some("true"));
        let mut c = QueryConf { sliding_window_state_by_pane: false, ..Default::default() };
        c.restore_from_offsets(&new).unwrap();
        assert!(c.sliding_window_state_by_pane);
        let mut legacy = new;
        legacy.remove(SLIDING_WINDOW_STATE_BY_PANE);
        let mut c = QueryConf::default();
        c.restore_from_offsets(&legacy).unwrap();
        assert!(!c.sliding_window_state_by_pane, "a checkpoint from before panes keeps a row per window");
    }

    #[test]
    fn checkpoints_keep_the_operator_sharing_they_started_with() {
        let new = QueryConf::default().to_offset_conf();
        assert_eq!(new.get(SHARE_IDENTICAL_OPERATORS).map(String::as_str), Some("true"));
        // A session that turned sharing off meets a checkpoint that shares: the checkpoint wins.
        let mut c = QueryConf { share_identical_operators: false, ..Default::default() };
        c.restore_from_offsets(&new).unwrap();
        assert!(c.share_identical_operators);
        // A checkpoint from before sharing records no key: one operator per occurrence.
        let mut legacy = new.clone();
        legacy.remove(SHARE_IDENTICAL_OPERATORS);
        let mut c = QueryConf::default();
        c.restore_from_offsets(&legacy).unwrap();
        assert!(!c.share_identical_operators);
        let mut bad = new;
        bad.insert(SHARE_IDENTICAL_OPERATORS.into(), "sometimes".into());
        let err = QueryConf::default().restore_from_offsets(&bad).unwrap_err();
        assert!(err.message.contains(SHARE_IDENTICAL_OPERATORS), "{}", err.message);
    }

    #[test]
    fn time_confs_take_sparks_units() {
        assert_eq!(parse_time_conf_ms("10s").unwrap(), 10_000);
        assert_eq!(parse_time_conf_ms("250").unwrap(), 250);
        assert_eq!(parse_time_conf_ms("2min").unwrap(), 120_000);
        assert!(parse_time_conf_ms("soon").is_err());
        assert!(parse_time_conf_ms("5 fortnights").is_err());
    }
}
