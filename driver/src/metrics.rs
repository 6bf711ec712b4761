//! The driver's Prometheus metrics: Spark's streaming gauges and batch histograms per query,
//! computed from the progress reports users see (a [`QueryListener`]), never from a second
//! bookkeeping; and the few facts a progress report does not carry — batch retries, active
//! queries, registered executors — read from the query handles at each scrape.
//!
//! Names follow Prometheus conventions (snake case, unit suffix, `_total` on counters); the
//! README maps each to its Spark name (`inputRate-total` is `sluice_query_input_rows_per_second`).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::progress::StreamingQueryProgress;
use crate::query::{QueryEvent, QueryListener};

/// Histogram buckets of batch and phase durations, in seconds: from a 5 ms phase to a 10-minute
/// recovery (a take-over counts the time the query was down).
pub const DURATION_BUCKETS: [f64; 16] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// The `durationMs` phases that get a histogram (`triggerExecution` is the batch histogram).
pub const PHASES: [&str; 7] = ["latestOffset", "getBatch", "walCommit", "queryPlanning", "addBatch", "commitOffsets", "recovery"];

/// Labels of every per-query series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `queryName`, or "" when unset.
    pub query_name: String,
    /// The persistent query id.
    pub query_id: String,
}

/// Labels of the per-phase histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `queryName`, or "" when unset.
    pub query_name: String,
    /// The persistent query id.
    pub query_id: String,
    /// Spark's `durationMs` key.
    pub phase: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The per-query families, updated from each progress report.
#[derive(Clone, Debug)]
pub struct QueryMetrics {
    input_rate: Family<QueryLabels, FloatGauge>,
    processing_rate: Family<QueryLabels, FloatGauge>,
    latency_ms: Family<QueryLabels, FloatGauge>,
    watermark_ms: Family<QueryLabels, FloatGauge>,
    state_rows: Family<QueryLabels, Gauge>,
    state_memory: Family<QueryLabels, Gauge>,
    last_batch_id: Family<QueryLabels, Gauge>,
    batches: Family<QueryLabels, Counter>,
    input_rows: Family<QueryLabels, Counter>,
    output_rows: Family<QueryLabels, Counter>,
    state_rows_updated: Family<QueryLabels, Counter>,
    state_rows_removed: Family<QueryLabels, Counter>,
    dropped_by_watermark: Family<QueryLabels, Counter>,
    recoveries: Family<QueryLabels, Counter>,
    batch_duration: Histograms<QueryLabels>,
    phase_duration: Histograms<PhaseLabels>,
    /// Query id → name, learnt from `QueryStartedEvent`, to find a terminated query's series.
    names: Arc<Mutex<HashMap<uuid::Uuid, String>>>,
}

impl QueryMetrics {
    /// Registers every per-query family in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            input_rate: Family::default(),
            processing_rate: Family::default(),
            latency_ms: Family::default(),
            watermark_ms: Family::default(),
            state_rows: Family::default(),
            state_memory: Family::default(),
            last_batch_id: Family::default(),
            batches: Family::default(),
            input_rows: Family::default(),
            output_rows: Family::default(),
            state_rows_updated: Family::default(),
            state_rows_removed: Family::default(),
            dropped_by_watermark: Family::default(),
            recoveries: Family::default(),
            batch_duration: Family::new_with_constructor(duration_histogram),
            phase_duration: Family::new_with_constructor(duration_histogram),
            names: Arc::default(),
        };
        let r = registry;
        r.register(
            "sluice_query_input_rows_per_second",
            "Input rows per second of the last batch (Spark's inputRate-total)",
            m.input_rate.clone(),
        );
        r.register(
            "sluice_query_processed_rows_per_second",
            "Rows processed per second of the last batch (Spark's processingRate-total)",
            m.processing_rate.clone(),
        );
        r.register(
            "sluice_query_latency_milliseconds",
            "The last batch's triggerExecution time (Spark's latency)",
            m.latency_ms.clone(),
        );
        r.register(
            "sluice_query_event_time_watermark_milliseconds",
            "The watermark of the last batch, epoch ms (Spark's eventTime-watermark)",
            m.watermark_ms.clone(),
        );
        r.register(
            "sluice_query_state_rows",
            "Rows in state after the last batch (Spark's states-rowsTotal)",
            m.state_rows.clone(),
        );
        r.register(
            "sluice_query_state_memory_bytes",
            "Memory used by state after the last batch (Spark's states-usedBytes)",
            m.state_memory.clone(),
        );
        r.register("sluice_query_last_batch_id", "Id of the last batch reported", m.last_batch_id.clone());
        r.register("sluice_query_batches", "Batches run", m.batches.clone());
        r.register("sluice_query_input_rows", "Input rows read", m.input_rows.clone());
        r.register("sluice_query_output_rows", "Rows the sink committed", m.output_rows.clone());
        r.register("sluice_query_state_rows_updated", "State rows inserted or updated", m.state_rows_updated.clone());
        r.register("sluice_query_state_rows_removed", "State rows evicted by the watermark", m.state_rows_removed.clone());
        r.register(
            "sluice_query_rows_dropped_by_watermark",
            "Late input rows dropped by stateful operators",
            m.dropped_by_watermark.clone(),
        );
        r.register(
            "sluice_query_recoveries",
            "Batches that recovered from a failure or a driver take-over (durationMs.recovery)",
            m.recoveries.clone(),
        );
        r.register("sluice_query_batch_duration_seconds", "Batch duration (batchDuration)", m.batch_duration.clone());
        r.register("sluice_query_batch_phase_duration_seconds", "Batch time per phase (durationMs)", m.phase_duration.clone());
        m
    }

    /// A listener feeding these families.
    pub fn listener(&self) -> QueryListener {
        let m = self.clone();
        Arc::new(move |event: &QueryEvent| m.observe(event))
    }

    fn observe(&self, event: &QueryEvent) {
        match event {
            QueryEvent::Started { id, name, .. } => {
                if let Ok(mut names) = self.names.lock() {
                    names.insert(*id, name.clone().unwrap_or_default());
                }
            }
            QueryEvent::Progress(p) => self.record(p),
            QueryEvent::Idle { .. } => {}
            QueryEvent::Terminated { id, .. } => self.forget(*id),
        }
    }

    /// Updates every series of the report's query from the report.
    pub fn record(&self, p: &StreamingQueryProgress) {
        let labels = QueryLabels { query_name: p.name.clone().unwrap_or_default(), query_id: p.id.to_string() };
        let set_finite = |family: &Family<QueryLabels, FloatGauge>, v: f64| {
            // Spark omits non-finite rates (the first batch's input rate); so does the gauge.
            if v.is_finite() {
                family.get_or_create(&labels).set(v);
            }
        };
        set_finite(&self.input_rate, p.input_rows_per_second);
        set_finite(&self.processing_rate, p.processed_rows_per_second);
        if let Some(ms) = p.duration_ms.get("triggerExecution") {
            self.latency_ms.get_or_create(&labels).set(*ms as f64);
        }
        if let Some(wm) = p.event_time.get("watermark").and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
            self.watermark_ms.get_or_create(&labels).set(wm.timestamp_millis() as f64);
        }
        let ops = &p.state_operators;
        let sum = |f: fn(&crate::progress::StateOperatorProgress) -> u64| ops.iter().map(f).sum::<u64>();
        if !ops.is_empty() {
            self.state_rows.get_or_create(&labels).set(sum(|o| o.num_rows_total) as i64);
            self.state_memory.get_or_create(&labels).set(sum(|o| o.memory_used_bytes) as i64);
        }
        self.last_batch_id.get_or_create(&labels).set(p.batch_id as i64);
        self.batches.get_or_create(&labels).inc();
        self.input_rows.get_or_create(&labels).inc_by(p.num_input_rows);
        self.output_rows.get_or_create(&labels).inc_by(p.sink.num_output_rows.max(0) as u64);
        self.state_rows_updated.get_or_create(&labels).inc_by(sum(|o| o.num_rows_updated));
        self.state_rows_removed.get_or_create(&labels).inc_by(sum(|o| o.num_rows_removed));
        self.dropped_by_watermark.get_or_create(&labels).inc_by(sum(|o| o.num_rows_dropped_by_watermark));
        // Created at 0 so a query that never recovers shows 0 rather than no series.
        let recoveries = self.recoveries.get_or_create(&labels);
        if p.duration_ms.contains_key("recovery") {
            recoveries.inc();
        }
        self.batch_duration.get_or_create(&labels).observe(p.batch_duration as f64 / 1000.0);
        for (phase, ms) in &p.duration_ms {
            if PHASES.contains(&phase.as_str()) {
                let l = PhaseLabels {
                    query_name: labels.query_name.clone(),
                    query_id: labels.query_id.clone(),
                    phase: phase.clone(),
                };
                self.phase_duration.get_or_create(&l).observe(*ms as f64 / 1000.0);
            }
        }
    }

    /// Removes a terminated query's series (Spark removes a stopped query's metrics source).
    fn forget(&self, id: uuid::Uuid) {
        let Some(name) = self.names.lock().ok().and_then(|mut n| n.remove(&id)) else { return };
        let labels = QueryLabels { query_name: name, query_id: id.to_string() };
        for f in [&self.input_rate, &self.processing_rate, &self.latency_ms, &self.watermark_ms] {
            f.remove(&labels);
        }
        for f in [&self.state_rows, &self.state_memory, &self.last_batch_id] {
            f.remove(&labels);
        }
        for f in [
            &self.batches,
            &self.input_rows,
            &self.output_rows,
            &self.state_rows_updated,
            &self.state_rows_removed,
            &self.dropped_by_watermark,
            &self.recoveries,
        ] {
            f.remove(&labels);
        }
        self.batch_duration.remove(&labels);
        for phase in PHASES {
            let l = PhaseLabels {
                query_name: labels.query_name.clone(),
                query_id: labels.query_id.clone(),
                phase: phase.to_string(),
            };
            self.phase_duration.remove(&l);
        }
    }
}

/// What the driver knows only at scrape time: refreshed by [`DriverSnapshot::refresh`] just
/// before each encoding, then written by the collector.
#[derive(Clone)]
pub struct DriverSnapshot {
    admin: Arc<crate::manager::Admin>,
    inner: Arc<Mutex<SnapshotValues>>,
}

impl std::fmt::Debug for DriverSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverSnapshot").field("values", &self.inner).finish()
    }
}

#[derive(Debug, Default)]
struct SnapshotValues {
    active_queries: i64,
    executors: i64,
    retries: Vec<(QueryLabels, u64)>,
}

impl DriverSnapshot {
    /// Registers the collector of what `admin`'s driver runs in `registry`.
    pub fn register(registry: &mut Registry, admin: Arc<crate::manager::Admin>) -> Self {
        let s = Self { admin, inner: Arc::default() };
        registry.register_collector(Box::new(s.clone()));
        s
    }

    /// Reads active queries, their retries and the registered executors.
    pub async fn refresh(&self) {
        let admin = &self.admin;
        let executors = match admin.registry() {
            Some(r) => r.live().await.len() as i64,
            None => 0,
        };
        let queries = match admin.manager() {
            Ok(m) => m.queries().await,
            Err(_) => Vec::new(),
        };
        let active = queries.iter().filter(|(q, _)| q.is_active()).count() as i64;
        let retries = queries
            .iter()
            .filter(|(q, _)| q.is_active())
            .map(|(q, _)| {
                (
                    QueryLabels { query_name: q.name().unwrap_or_default().to_string(), query_id: q.id().to_string() },
                    q.batches_retried(),
                )
            })
            .collect();
        if let Ok(mut v) = self.inner.lock() {
            *v = SnapshotValues { active_queries: active, executors, retries };
        }
    }
}

impl Collector for DriverSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(v) = self.inner.lock() else { return Ok(()) };
        let active = ConstGauge::new(v.active_queries);
        active.encode(encoder.encode_descriptor(
            "sluice_queries_active",
            "Queries running on this driver",
            None,
            active.metric_type(),
        )?)?;
        let executors = ConstGauge::new(v.executors);
        executors.encode(encoder.encode_descriptor(
            "sluice_executors_registered",
            "Executors this driver can schedule on",
            None,
            executors.metric_type(),
        )?)?;
        let mut family = encoder.encode_descriptor(
            "sluice_query_batch_retries",
            "Batch attempts retried after a failure",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (labels, n) in &v.retries {
            ConstCounter::new(*n).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_progress_report_sets_sparks_gauges_and_forgetting_removes_them() {
        let mut registry = Registry::default();
        let m = QueryMetrics::register(&mut registry);
        let id = uuid::Uuid::new_v4();
        m.observe(&QueryEvent::Started { id, run_id: id, name: Some("counts".into()), timestamp: String::new() });
        let mut event_time = BTreeMap::new();
        event_time.insert("watermark".to_string(), "1970-01-01T00:00:05.000Z".to_string());
        let p = StreamingQueryProgress {
            id,
            name: Some("counts".into()),
            batch_id: 7,
            batch_duration: 250,
            num_input_rows: 40,
            input_rows_per_second: f64::INFINITY,
            processed_rows_per_second: 160.0,
            duration_ms: BTreeMap::from([("triggerExecution".to_string(), 250), ("addBatch".to_string(), 200)]),
            event_time,
            ..Default::default()
        };
        m.record(&p);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let series = |name: &str| text.lines().find(|l| l.starts_with(name)).map(|l| l.to_string());
        let labels = format!("{{query_name=\"counts\",query_id=\"{id}\"}}");
        assert_eq!(series("sluice_query_last_batch_id"), Some(format!("sluice_query_last_batch_id{labels} 7")));
        assert_eq!(
            series("sluice_query_event_time_watermark_milliseconds"),
            Some(format!("sluice_query_event_time_watermark_milliseconds{labels} 5000.0"))
        );
        assert_eq!(
            series("sluice_query_processed_rows_per_second"),
            Some(format!("sluice_query_processed_rows_per_second{labels} 160.0"))
        );
        assert_eq!(series("sluice_query_input_rows_total"), Some(format!("sluice_query_input_rows_total{labels} 40")));
        assert!(series("sluice_query_input_rows_per_second{").is_none(), "an infinite rate is omitted, as in Spark's JSON");
        assert!(text.contains("phase=\"addBatch\""), "{text}");
        m.observe(&QueryEvent::Terminated { id, run_id: id, exception: None, error_class_on_exception: None });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains(&id.to_string()), "a terminated query's series are removed:\n{text}");
    }
}
