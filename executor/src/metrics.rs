//! The executor's Prometheus metrics (`sluice_executor_*`), and the same numbers for the
//! driver's ping.
//!
//! [`ExecutorMetrics`] is the set of metric families; one is shared by every executor of a
//! process (`sluice run` starts several in one), which are told apart by their `executor_id`
//! label. [`ExecutorMeter`] is one executor's view of it: the calls its service and task runner
//! make as tasks run, shuffle blocks move and state partitions change hands.
//!
//! There is one bookkeeping: [`ExecutorMeter::stats`] reads the values back out of the metric
//! families, so what the executor answers to a ping and what `/metrics` shows cannot disagree.
//!
//! State series (`sluice_executor_state_rows`, `sluice_executor_state_memory_bytes`) exist only
//! while the executor holds the partition: when a partition moves away or its run is released,
//! its series are removed, so a dashboard summing them over executors counts each partition
//! once. They are labelled with the persistent query id (the checkpoint's), which survives
//! restarts, not the run id; the meter remembers which run last reported each series, so
//! releasing an old run cannot remove a series a newer run of the same query now reports.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The label of every executor metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutorLabels {
    executor_id: String,
}

/// How a task ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let name = match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        };
        EncodeLabelValue::encode(&name, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    executor_id: String,
    outcome: Outcome,
}

/// Where a partition task read a shuffle block from.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum FetchedFrom {
    /// This executor's own block store (the block was produced here).
    Local,
    /// Another executor: over Arrow Flight, or from memory when it runs in this process.
    Remote,
}

impl EncodeLabelValue for FetchedFrom {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let name = match self {
            FetchedFrom::Local => "local",
            FetchedFrom::Remote => "remote",
        };
        EncodeLabelValue::encode(&name, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    executor_id: String,
    from: FetchedFrom,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    executor_id: String,
    query_id: String,
    operator: usize,
    partition: u32,
}

/// The executor metric families of one process (see the module docs). Cloning shares them.
#[derive(Clone, Debug, Default)]
pub struct ExecutorMetrics {
    task_slots: Family<ExecutorLabels, Gauge>,
    tasks_running: Family<ExecutorLabels, Gauge>,
    tasks: Family<TaskLabels, Counter>,
    shuffle_written_bytes: Family<ExecutorLabels, Counter>,
    shuffle_fetched_bytes: Family<FetchLabels, Counter>,
    state_partitions: Family<ExecutorLabels, Gauge>,
    state_rows: Family<StateLabels, Gauge>,
    state_memory_bytes: Family<StateLabels, Gauge>,
}

impl ExecutorMetrics {
    /// New families, registered in `registry` (the process's `/metrics`). Counters are
    /// registered without their `_total` suffix: the encoder appends it.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("sluice_executor_task_slots", "Task slots of the executor", m.task_slots.clone());
        registry.register("sluice_executor_tasks_running", "Tasks the executor is running now", m.tasks_running.clone());
        registry.register("sluice_executor_tasks", "Tasks the executor finished, by outcome", m.tasks.clone());
        registry.register(
            "sluice_executor_shuffle_written_bytes",
            "Bytes (in memory) of the shuffle blocks the executor's tasks produced",
            m.shuffle_written_bytes.clone(),
        );
        registry.register(
            "sluice_executor_shuffle_fetched_bytes",
            "Bytes (in memory) of the shuffle blocks the executor's tasks read, from this executor or another",
            m.shuffle_fetched_bytes.clone(),
        );
        registry.register("sluice_executor_state_partitions", "State partitions the executor holds", m.state_partitions.clone());
        registry.register(
            "sluice_executor_state_rows",
            "Rows in a state partition after its last batch on this executor",
            m.state_rows.clone(),
        );
        registry.register(
            "sluice_executor_state_memory_bytes",
            "Approximate memory of a state partition's keys and values after its last batch on this executor",
            m.state_memory_bytes.clone(),
        );
        m
    }
}

/// What an executor reports about itself, read back from its metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutorStats {
    /// Task slots.
    pub task_slots: u32,
    /// Tasks running now.
    pub tasks_running: u32,
    /// Tasks that succeeded since the executor started.
    pub tasks_succeeded: u64,
    /// Tasks that failed (errors, panics, refusals, cancellations) since the executor started.
    pub tasks_failed: u64,
    /// State partitions held now.
    pub state_partitions: u32,
}

/// A state series: one (query, operator, partition) on this executor.
type StateKey = (String, usize, u32);

/// One executor's view of the shared [`ExecutorMetrics`]. Cloning shares it.
#[derive(Clone, Debug)]
pub struct ExecutorMeter {
    metrics: ExecutorMetrics,
    executor_id: String,
    /// The state series this executor exports, each with the run that last reported it.
    state_series: Arc<Mutex<HashMap<StateKey, String>>>,
    /// Set once the executor stopped: a task that ends after that records nothing, so it
    /// cannot bring the stopped executor's series back.
    stopped: Arc<AtomicBool>,
}

/// Saturates: a gauge is an `i64`, and no real count or size comes near its limit.
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

impl ExecutorMeter {
    /// The meter of executor `executor_id` in `metrics`.
    pub fn new(metrics: ExecutorMetrics, executor_id: impl Into<String>) -> Self {
        Self { metrics, executor_id: executor_id.into(), state_series: Arc::default(), stopped: Arc::default() }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The executor this meter counts for.
    pub fn executor_id(&self) -> &str {
        &self.executor_id
    }

    fn labels(&self) -> ExecutorLabels {
        ExecutorLabels { executor_id: self.executor_id.clone() }
    }

    fn task_labels(&self, outcome: Outcome) -> TaskLabels {
        TaskLabels { executor_id: self.executor_id.clone(), outcome }
    }

    fn state_labels(&self, (query_id, operator, partition): &StateKey) -> StateLabels {
        StateLabels {
            executor_id: self.executor_id.clone(),
            query_id: query_id.clone(),
            operator: *operator,
            partition: *partition,
        }
    }

    /// Records the executor's task slots (once, at start).
    pub fn set_task_slots(&self, slots: usize) {
        if self.stopped() {
            return;
        }
        self.metrics.task_slots.get_or_create(&self.labels()).set(gauge_value(slots as u64));
    }

    /// A task took a slot and starts running. It counts as running until the returned guard
    /// is finished or dropped; dropped unfinished (the driver cancelled the call, or a panic
    /// unwound past it), the task counts as failed — it did not succeed.
    pub fn task_started(&self) -> RunningTask<'_> {
        if !self.stopped() {
            self.metrics.tasks_running.get_or_create(&self.labels()).inc();
        }
        RunningTask { meter: self, outcome: Outcome::Failed }
    }

    /// A task was refused without running (the term fence: its driver was deposed): it failed.
    pub fn task_refused(&self) {
        if self.stopped() {
            return;
        }
        self.metrics.tasks.get_or_create(&self.task_labels(Outcome::Failed)).inc();
    }

    /// A map task stored shuffle blocks of `bytes` (Arrow memory size) here.
    pub fn shuffle_written(&self, bytes: u64) {
        if self.stopped() {
            return;
        }
        self.metrics.shuffle_written_bytes.get_or_create(&self.labels()).inc_by(bytes);
    }

    /// A partition task read shuffle blocks of `bytes` (Arrow memory size, as received).
    pub fn shuffle_fetched(&self, from: FetchedFrom, bytes: u64) {
        if self.stopped() {
            return;
        }
        let labels = FetchLabels { executor_id: self.executor_id.clone(), from };
        self.metrics.shuffle_fetched_bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// A task of run `run_id` of query `query_id` committed state partition `partition` of
    /// operator `operator`, which now holds `rows` rows in about `memory_bytes` bytes.
    pub fn state_partition_updated(
        &self,
        run_id: &str,
        query_id: &str,
        operator: usize,
        partition: u32,
        rows: u64,
        memory_bytes: u64,
    ) {
        let key = (query_id.to_string(), operator, partition);
        let labels = self.state_labels(&key);
        let Ok(mut series) = self.state_series.lock() else { return };
        // Checked under the lock `forget` takes, so no series outlives it.
        if self.stopped() {
            return;
        }
        self.metrics.state_rows.get_or_create(&labels).set(gauge_value(rows));
        self.metrics.state_memory_bytes.get_or_create(&labels).set(gauge_value(memory_bytes));
        series.insert(key, run_id.to_string());
    }

    /// The listed (operator, partition)s of run `run_id` moved to another executor: their
    /// series go.
    pub fn state_partitions_released(&self, run_id: &str, partitions: &[(usize, u32)]) {
        self.remove_state_series(|(_, op, p), run| run == run_id && partitions.contains(&(*op, *p)));
    }

    /// Everything of run `run_id` was released here: its state series go.
    pub fn query_run_released(&self, run_id: &str) {
        self.remove_state_series(|_, run| run == run_id);
    }

    fn remove_state_series(&self, doomed: impl Fn(&StateKey, &str) -> bool) {
        let Ok(mut series) = self.state_series.lock() else { return };
        series.retain(|key, run| {
            if !doomed(key, run) {
                return true;
            }
            let labels = self.state_labels(key);
            self.metrics.state_rows.remove(&labels);
            self.metrics.state_memory_bytes.remove(&labels);
            false
        });
    }

    /// Records how many state partitions the executor holds now (its state cache's count).
    pub fn set_state_partitions(&self, held: usize) {
        if self.stopped() {
            return;
        }
        self.metrics.state_partitions.get_or_create(&self.labels()).set(gauge_value(held as u64));
    }

    /// Removes every series of this executor and records nothing more: it stopped, and a
    /// stopped executor's numbers would otherwise stay on the process's `/metrics` (the
    /// embedded cluster) as if it ran.
    pub fn forget(&self) {
        self.stopped.store(true, Ordering::Release);
        let labels = self.labels();
        self.metrics.task_slots.remove(&labels);
        self.metrics.tasks_running.remove(&labels);
        self.metrics.state_partitions.remove(&labels);
        self.metrics.shuffle_written_bytes.remove(&labels);
        for outcome in [Outcome::Succeeded, Outcome::Failed] {
            self.metrics.tasks.remove(&self.task_labels(outcome));
        }
        for from in [FetchedFrom::Local, FetchedFrom::Remote] {
            self.metrics.shuffle_fetched_bytes.remove(&FetchLabels { executor_id: self.executor_id.clone(), from });
        }
        self.remove_state_series(|_, _| true);
    }

    /// The executor's numbers as its metrics hold them (absent series read as 0).
    pub fn stats(&self) -> ExecutorStats {
        let labels = self.labels();
        let gauge = |family: &Family<ExecutorLabels, Gauge>| family.get(&labels).map(|g| g.get()).unwrap_or(0);
        let tasks = |outcome| self.metrics.tasks.get(&self.task_labels(outcome)).map(|c| c.get()).unwrap_or(0);
        ExecutorStats {
            task_slots: count(gauge(&self.metrics.task_slots)),
            tasks_running: count(gauge(&self.metrics.tasks_running)),
            tasks_succeeded: tasks(Outcome::Succeeded),
            tasks_failed: tasks(Outcome::Failed),
            state_partitions: count(gauge(&self.metrics.state_partitions)),
        }
    }
}

/// A task counted as running (see [`ExecutorMeter::task_started`]).
#[must_use = "a task stays counted as running until its guard is finished or dropped"]
pub struct RunningTask<'a> {
    meter: &'a ExecutorMeter,
    outcome: Outcome,
}

impl RunningTask<'_> {
    /// The task ended: it no longer runs, and counts as succeeded or failed.
    pub fn finish(mut self, succeeded: bool) {
        self.outcome = if succeeded { Outcome::Succeeded } else { Outcome::Failed };
    }
}

impl Drop for RunningTask<'_> {
    fn drop(&mut self) {
        let meter = self.meter;
        if meter.stopped() {
            return;
        }
        meter.metrics.tasks_running.get_or_create(&meter.labels()).dec();
        meter.metrics.tasks.get_or_create(&meter.task_labels(self.outcome)).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn stats_read_back_what_the_meter_recorded() {
        let meter = ExecutorMeter::new(ExecutorMetrics::default(), "executor-0");
        assert_eq!(meter.stats(), ExecutorStats::default());
        meter.set_task_slots(4);
        let a = meter.task_started();
        let b = meter.task_started();
        let c = meter.task_started();
        assert_eq!(meter.stats().tasks_running, 3);
        a.finish(true);
        b.finish(false);
        meter.task_refused();
        meter.set_state_partitions(5);
        let stats = meter.stats();
        assert_eq!(
            stats,
            ExecutorStats { task_slots: 4, tasks_running: 1, tasks_succeeded: 1, tasks_failed: 2, state_partitions: 5 }
        );
        drop(c);
        assert_eq!((meter.stats().tasks_running, meter.stats().tasks_failed), (0, 3));
    }

    #[test]
    fn a_task_unwound_by_a_panic_counts_as_failed() {
        let meter = ExecutorMeter::new(ExecutorMetrics::default(), "executor-0");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _task = meter.task_started();
            panic!("bug in an operator");
        }));
        assert!(caught.is_err());
        assert_eq!((meter.stats().tasks_running, meter.stats().tasks_failed), (0, 1));
    }

    #[test]
    fn executors_sharing_metrics_are_told_apart() {
        let metrics = ExecutorMetrics::default();
        let (e0, e1) = (ExecutorMeter::new(metrics.clone(), "e0"), ExecutorMeter::new(metrics, "e1"));
        e0.task_started().finish(true);
        e1.task_started().finish(false);
        assert_eq!((e0.stats().tasks_succeeded, e0.stats().tasks_failed), (1, 0));
        assert_eq!((e1.stats().tasks_succeeded, e1.stats().tasks_failed), (0, 1));
    }

    fn encoded(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    /// The samples of `text` (not comments), each split into its series and its value.
    fn samples(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("sample without a value: {l}"));
                (series.to_string(), value.parse().unwrap_or_else(|_| panic!("value is not a number: {l}")))
            })
            .collect()
    }

    #[test]
    fn registry_shows_every_executors_series_in_openmetrics_text() {
        let mut registry = Registry::default();
        let metrics = ExecutorMetrics::register(&mut registry);
        let (e0, e1) = (ExecutorMeter::new(metrics.clone(), "executor-0"), ExecutorMeter::new(metrics, "executor-1"));
        for (m, slots) in [(&e0, 2), (&e1, 3)] {
            m.set_task_slots(slots);
            m.task_started().finish(true);
        }
        e0.shuffle_written(1000);
        e1.shuffle_fetched(FetchedFrom::Local, 300);
        e1.shuffle_fetched(FetchedFrom::Remote, 700);
        e0.state_partition_updated("run-1", "q-1", 0, 3, 42, 4096);
        e0.set_state_partitions(1);

        let text = encoded(&registry);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE sluice_executor_tasks counter\n"), "{text}");
        let samples = samples(&text);
        let value = |series: &str| samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v);
        assert_eq!(value(r#"sluice_executor_task_slots{executor_id="executor-0"}"#), Some(2.0));
        assert_eq!(value(r#"sluice_executor_task_slots{executor_id="executor-1"}"#), Some(3.0));
        assert_eq!(value(r#"sluice_executor_tasks_running{executor_id="executor-1"}"#), Some(0.0));
        assert_eq!(value(r#"sluice_executor_tasks_total{executor_id="executor-0",outcome="succeeded"}"#), Some(1.0));
        assert_eq!(value(r#"sluice_executor_shuffle_written_bytes_total{executor_id="executor-0"}"#), Some(1000.0));
        assert_eq!(value(r#"sluice_executor_shuffle_fetched_bytes_total{executor_id="executor-1",from="local"}"#), Some(300.0));
        assert_eq!(value(r#"sluice_executor_shuffle_fetched_bytes_total{executor_id="executor-1",from="remote"}"#), Some(700.0));
        assert_eq!(value(r#"sluice_executor_state_partitions{executor_id="executor-0"}"#), Some(1.0));
        let state = r#"{executor_id="executor-0",query_id="q-1",operator="0",partition="3"}"#;
        assert_eq!(value(&format!("sluice_executor_state_rows{state}")), Some(42.0));
        assert_eq!(value(&format!("sluice_executor_state_memory_bytes{state}")), Some(4096.0));
    }

    #[test]
    fn released_state_partitions_leave_metrics() {
        let mut registry = Registry::default();
        let meter = ExecutorMeter::new(ExecutorMetrics::register(&mut registry), "e0");
        meter.state_partition_updated("run-1", "q", 0, 0, 1, 10);
        meter.state_partition_updated("run-1", "q", 0, 1, 2, 20);
        meter.state_partition_updated("run-1", "q", 1, 1, 3, 30);
        meter.state_partitions_released("run-1", &[(0, 1)]);
        let text = encoded(&registry);
        assert!(text.contains(r#"sluice_executor_state_rows{executor_id="e0",query_id="q",operator="0",partition="0"} 1"#));
        assert!(!text.contains(r#"operator="0",partition="1""#), "{text}");
        assert!(text.contains(r#"sluice_executor_state_rows{executor_id="e0",query_id="q",operator="1",partition="1"} 3"#));
        meter.query_run_released("run-1");
        assert!(!encoded(&registry).contains("query_id="), "{}", encoded(&registry));
    }

    #[test]
    fn releasing_an_old_run_keeps_the_series_a_newer_run_reports() {
        let mut registry = Registry::default();
        let meter = ExecutorMeter::new(ExecutorMetrics::register(&mut registry), "e0");
        meter.state_partition_updated("run-1", "q", 0, 0, 1, 10);
        meter.state_partition_updated("run-2", "q", 0, 0, 5, 50);
        meter.query_run_released("run-1");
        assert!(encoded(&registry)
            .contains(r#"sluice_executor_state_rows{executor_id="e0",query_id="q",operator="0",partition="0"} 5"#));
    }

    #[test]
    fn a_stopped_executor_leaves_no_series() {
        let mut registry = Registry::default();
        let metrics = ExecutorMetrics::register(&mut registry);
        let (e0, e1) = (ExecutorMeter::new(metrics.clone(), "e0"), ExecutorMeter::new(metrics, "e1"));
        for m in [&e0, &e1] {
            m.set_task_slots(1);
            m.task_started().finish(true);
            m.shuffle_written(1);
            m.shuffle_fetched(FetchedFrom::Remote, 1);
            m.state_partition_updated("run", "q", 0, 0, 1, 1);
            m.set_state_partitions(1);
        }
        let late = e0.task_started();
        e0.forget();
        late.finish(true);
        e0.state_partition_updated("run", "q", 0, 1, 1, 1);
        let text = encoded(&registry);
        assert!(!text.contains(r#""e0""#), "{text}");
        assert!(text.contains(r#"executor_id="e1""#), "{text}");
    }
}
