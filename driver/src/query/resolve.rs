//! From a job file's `INSERT INTO` to a runnable query: settings, sources, sink, plan checks.
//!
//! Everything a user can get wrong is caught here, before the checkpoint is touched: unknown
//! settings or options, bad SQL, unsupported query shapes (with Spark's messages) and sinks that
//! cannot take the output mode.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use sluice_common::connectors::kafka::sink as kafka_sink;
use sluice_common::connectors::sinks::{SinkKind, SinkSpec};
use sluice_common::connectors::{resolve_stream, resolve_table, TableSpec};
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::plan::streaming::check_pipeline;
use sluice_common::plan::{check_streaming_plan, CompiledQuery, OutputMode, QueryConf, QuerySpec, StreamingShape, WatermarkPolicy};
use sluice_common::sql::{JobFile, QueryDef};

use super::trigger::Trigger;

/// Settings a job file may `SET`, with Spark's names (matched case-insensitively).
pub const SETTINGS: &[&str] = &[
    "outputMode",
    "trigger",
    "checkpointLocation",
    "queryName",
    "shufflePartitions",
    "minBatchesToRetain",
    "spark.sql.shuffle.partitions",
    "spark.sql.streaming.checkpointLocation",
    "spark.sql.streaming.minBatchesToRetain",
    "spark.sql.streaming.noDataMicroBatches.enabled",
    "spark.sql.streaming.multipleWatermarkPolicy",
    "spark.sql.streaming.stateStore.minDeltasForSnapshot",
    "spark.sql.files.maxPartitionBytes",
    "spark.sql.files.openCostInBytes",
];

/// What the driver needs to know about a stateful operator.
#[derive(Debug, Clone)]
pub struct OperatorInfo {
    pub id: usize,
    /// Spark's progress name (`stateStoreSave`, `dedupe`, …).
    pub name: &'static str,
    /// Whether a moving watermark evicts or emits its state (a reason for a no-data batch).
    pub evicts_by_watermark: bool,
    /// State description for the checkpoint's shape check.
    pub shape: String,
}

/// A query ready to start.
#[derive(Debug, Clone)]
pub struct ResolvedQuery {
    /// The spec; `query_id`/`run_id` are filled in when the query starts.
    pub spec: QuerySpec,
    /// Where the checkpoint lives; `None` means a temporary one (console and memory sinks only).
    pub checkpoint_location: Option<String>,
    pub trigger: Trigger,
    pub shape: StreamingShape,
    pub output_schema: SchemaRef,
    /// Stateful operators, bottom-up.
    pub operators: Vec<OperatorInfo>,
    /// The output needs every partition at once (ORDER BY in complete mode).
    pub needs_gather: bool,
}

/// Resolves the `index`-th query of `job`.
pub async fn resolve_query(job: &JobFile, def: &QueryDef) -> Result<ResolvedQuery> {
    resolve_inner(job, def).await.map_err(|e| e.context(format!("line {}: INSERT INTO {}", def.line, def.sink)))
}

async fn resolve_inner(job: &JobFile, def: &QueryDef) -> Result<ResolvedQuery> {
    let settings = &def.settings;
    settings.check_known(SETTINGS, "SET")?;
    let output_mode = OutputMode::parse(settings.get("outputMode").unwrap_or("append"))?;
    let trigger = Trigger::parse(settings.get("trigger").unwrap_or("default"))?;
    let conf = query_conf(settings)?;
    let name = settings.get("queryName").map(str::to_string);

    let sink_def = job
        .sinks
        .get(&def.sink)
        .ok_or_else(|| SluiceError::user(format!("no sink named '{}'", def.sink)))?;
    let sink = SinkSpec::resolve(&sink_def.name, &sink_def.options)?;
    sink.check_output_mode(output_mode)?;

    let checkpoint_location = match (settings.get("checkpointLocation"), settings.get("spark.sql.streaming.checkpointLocation")) {
        (Some(loc), _) => Some(loc.to_string()),
        (None, Some(root)) => {
            let leaf = name.clone().unwrap_or_else(|| def.sink.clone());
            Some(format!("{}/{leaf}", root.trim_end_matches('/')))
        }
        (None, None) => match sink.kind()? {
            SinkKind::Console(_) | SinkKind::Memory | SinkKind::Noop => None,
            SinkKind::Files(_) | SinkKind::Kafka(_) => {
                return Err(SluiceError::user(
                    "checkpointLocation must be specified either through SET 'checkpointLocation' = '…' or SET 'spark.sql.streaming.checkpointLocation' = '…'",
                ))
            }
        },
    };

    // Plan once with every declared stream to learn which ones the query reads and in which
    // order (Spark's source index), then again with exactly those.
    let mut all_sources = Vec::new();
    for (i, def) in job.streams.values().enumerate() {
        all_sources.push(resolve_stream(def, i)?);
    }
    let mut tables: Vec<TableSpec> = Vec::new();
    for t in job.tables.values() {
        tables.push(resolve_table(t).await?);
    }
    let mut spec = QuerySpec {
        query_id: uuid::Uuid::nil(),
        run_id: uuid::Uuid::nil(),
        name,
        select_sql: def.select_sql.clone(),
        sources: all_sources.clone(),
        tables,
        views: job.views.clone(),
        sink,
        output_mode,
        conf,
        checkpoint_url: String::new(),
    };
    let probe = CompiledQuery::compile(Arc::new(spec.clone())).await?;
    let order = probe.sources_in_plan_order();
    spec.sources = order
        .iter()
        .enumerate()
        .map(|(new_index, old)| {
            let mut s = all_sources[*old].clone();
            s.index = new_index;
            s
        })
        .collect();
    let compiled = CompiledQuery::compile(Arc::new(spec.clone())).await?;
    let shape = check_streaming_plan(&compiled.plan, output_mode)?;
    check_pipeline(&compiled.pipeline, output_mode)?;
    match spec.sink.kind()? {
        SinkKind::Files(f) => f.check_schema(&compiled.schema)?,
        SinkKind::Kafka(k) => {
            let owner = format!("sink '{}'", spec.sink.name);
            kafka_sink::check_schema(&k, &compiled.schema).map_err(|e| e.context(owner.clone()))?;
            kafka_sink::check_delivery_guarantee(&k).map_err(|e| e.context(owner))?;
        }
        SinkKind::Console(_) | SinkKind::Memory | SinkKind::Noop => {}
    }
    let operators = compiled
        .pipeline
        .operators
        .iter()
        .map(|op| OperatorInfo {
            id: op.id,
            name: op.progress_name(),
            evicts_by_watermark: op.evicts_by_watermark(output_mode),
            shape: op.shape(),
        })
        .collect();
    Ok(ResolvedQuery {
        output_schema: Arc::clone(&compiled.schema),
        spec,
        checkpoint_location,
        trigger,
        shape,
        operators,
        needs_gather: compiled.pipeline.needs_gather,
    })
}

fn query_conf(settings: &Options) -> Result<QueryConf> {
    let mut c = QueryConf::default();
    let pick = |a: &str, b: &str| settings.get(a).or_else(|| settings.get(b));
    if let Some(p) = pick("spark.sql.shuffle.partitions", "shufflePartitions") {
        c.shuffle_partitions = p
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| SluiceError::user(format!("spark.sql.shuffle.partitions must be a positive integer, got '{p}'")))?;
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
        c.max_partition_bytes = sluice_common::connectors::files::options::parse_bytes(v)?.max(1);
    }
    if let Some(v) = settings.get("spark.sql.files.openCostInBytes") {
        c.open_cost_bytes = sluice_common::connectors::files::options::parse_bytes(v)?;
    }
    if let Some(v) = settings.get("spark.sql.streaming.stateStore.minDeltasForSnapshot") {
        c.min_deltas_for_snapshot = v
            .trim()
            .parse()
            .map_err(|_| SluiceError::user(format!("minDeltasForSnapshot must be an integer, got '{v}'")))?;
    }
    Ok(c)
}
