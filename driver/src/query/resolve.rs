//! From a job file's `INSERT INTO` to a runnable query: settings, sources, sink, plan checks.
//!
//! Everything a user can get wrong is caught here, before the checkpoint is touched: unknown
//! settings or options, bad SQL, unsupported query shapes (with Spark's messages) and sinks that
//! cannot take the output mode.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use sluice_common::error::{Result, SluiceError};
use sluice_common::redact::Redactor;
use sluice_common::{OutputMode, QueryConf};
use sluice_connectors::{Connectors, TableSpec};
use sluice_plan::streaming::check_pipeline;
use sluice_plan::{check_streaming_plan, CompiledQuery, QuerySpec, StreamSpec};

use crate::job::{JobFile, QueryDef, RelationDef};

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
    "spark.sql.streaming.stateStore.maintenanceInterval",
    "spark.sql.streaming.noDataProgressEventInterval",
    "spark.sql.files.maxPartitionBytes",
    "spark.sql.files.openCostInBytes",
    sluice_common::conf::SHARE_IDENTICAL_OPERATORS,
    sluice_common::conf::SLIDING_WINDOW_STATE_BY_PANE,
    sluice_common::conf::MAP_AHEAD,
];

/// What the driver needs to know about a stateful operator.
#[derive(Debug, Clone)]
pub struct OperatorInfo {
    /// Position in the chain, bottom-up.
    pub id: usize,
    /// Spark's progress name (`stateStoreSave`, `dedupe`, …).
    pub name: &'static str,
    /// Whether a moving watermark evicts or emits its state (a reason for a no-data batch).
    pub evicts_by_watermark: bool,
    /// State description for the checkpoint's shape check.
    pub shape: String,
    /// State stores per partition (two for a join, one per side).
    pub stores_per_partition: u32,
    /// Where each input comes from: `None` for the streams (the map stage), or an operator.
    pub inputs: Vec<Option<usize>>,
}

/// A query ready to start.
#[derive(Debug, Clone)]
pub struct ResolvedQuery {
    /// The spec; `query_id`/`run_id` are filled in when the query starts.
    pub spec: QuerySpec,
    /// Where the checkpoint lives; `None` means a temporary one (console and memory sinks only).
    pub checkpoint_location: Option<String>,
    /// When batches run, from the `trigger` setting (Spark's default trigger when unset).
    pub trigger: Trigger,
    /// Arrow schema of the rows the query writes to its sink.
    pub output_schema: SchemaRef,
    /// Stateful operators, bottom-up.
    pub operators: Vec<OperatorInfo>,
    /// The output needs every partition at once (ORDER BY in complete mode).
    pub needs_gather: bool,
}

/// Resolves one query (`INSERT INTO`) of `job`, with its connectors looked up in `connectors`.
///
/// A connector's error may quote option values; the job's secrets are redacted from it.
pub async fn resolve_query(job: &JobFile, def: &QueryDef, connectors: &Connectors) -> Result<ResolvedQuery> {
    resolve_inner(job, def, connectors)
        .await
        .map_err(|e| job.redactor().scrub_error(e.context(format!("line {}: INSERT INTO {}", def.line, def.sink))))
}

/// Resolves the `index`-th `CREATE STREAM` of a job (its secrets redacted from any error).
pub fn resolve_stream(def: &RelationDef, index: usize, connectors: &Connectors) -> Result<StreamSpec> {
    let source = connectors
        .resolve_source(&def.name, index, &def.options, &def.declared_schema())
        .map_err(|e| Redactor::from_options(&def.options).scrub_error(e))?;
    Ok(StreamSpec { source, computed: def.computed.clone(), watermark: def.watermark.clone() })
}

async fn resolve_inner(job: &JobFile, def: &QueryDef, connectors: &Connectors) -> Result<ResolvedQuery> {
    let settings = &def.settings;
    settings.check_known(SETTINGS, "SET")?;
    let output_mode = OutputMode::parse(settings.get("outputMode").unwrap_or("append"))?;
    let trigger = Trigger::parse(settings.get("trigger").unwrap_or("default"))?;
    let conf = QueryConf::from_settings(settings)?;
    let name = settings.get("queryName").map(str::to_string);

    let sink_def = job.sinks.get(&def.sink).ok_or_else(|| SluiceError::user(format!("no sink named '{}'", def.sink)))?;
    let sink = connectors.resolve_sink(&sink_def.name, &sink_def.options)?;
    let sink_connector = connectors.sink(&sink.connector)?;
    sink_connector.check_output_mode(&sink.options, output_mode)?;

    let checkpoint_location = match (settings.get("checkpointLocation"), settings.get("spark.sql.streaming.checkpointLocation")) {
        (Some(loc), _) => Some(loc.to_string()),
        (None, Some(root)) => {
            let leaf = name.clone().unwrap_or_else(|| def.sink.clone());
            Some(format!("{}/{leaf}", root.trim_end_matches('/')))
        }
        (None, None) if !sink_connector.requires_checkpoint() => None,
        (None, None) => {
            return Err(SluiceError::user(
                "checkpointLocation must be specified either through SET 'checkpointLocation' = '…' or SET 'spark.sql.streaming.checkpointLocation' = '…'",
            ))
        }
    };

    // Plan once with every declared stream to learn which ones the query reads and in which
    // order (Spark's source index), then again with exactly those.
    let (mut spec, all_sources) = spec_with_all_streams(job, def, connectors, sink, output_mode, conf, name).await?;
    let probe = CompiledQuery::compile(Arc::new(spec.clone())).await?;
    let order = probe.sources_in_plan_order();
    spec.sources = order
        .iter()
        .enumerate()
        .map(|(new_index, old)| {
            let mut s = all_sources[*old].clone();
            s.source.index = new_index;
            s
        })
        .collect();
    let compiled = CompiledQuery::compile(Arc::new(spec.clone())).await?;
    check_streaming_plan(&compiled.plan, output_mode)?;
    check_pipeline(&compiled.pipeline, output_mode)?;
    sink_connector
        .check_schema(&spec.sink.options, &compiled.schema)
        .map_err(|e| e.context(format!("sink '{}'", spec.sink.name)))?;
    Ok(ResolvedQuery {
        output_schema: Arc::clone(&compiled.schema),
        operators: operator_infos(&compiled, output_mode),
        needs_gather: compiled.pipeline.needs_gather,
        spec,
        checkpoint_location,
        trigger,
    })
}

impl ResolvedQuery {
    /// The query with `conf` (the job's settings overridden by what its checkpoint recorded),
    /// planned again when that changes how its stateful operators are cut.
    pub async fn with_conf(mut self, conf: QueryConf) -> Result<Self> {
        let replan = conf.share_identical_operators != self.spec.conf.share_identical_operators;
        self.spec.conf = conf;
        if replan {
            let compiled = CompiledQuery::compile(Arc::new(self.spec.clone())).await?;
            check_pipeline(&compiled.pipeline, self.spec.output_mode)?;
            self.operators = operator_infos(&compiled, self.spec.output_mode);
            self.needs_gather = compiled.pipeline.needs_gather;
        }
        Ok(self)
    }
}

/// What the driver needs of each stateful operator of `compiled`.
fn operator_infos(compiled: &CompiledQuery, output_mode: OutputMode) -> Vec<OperatorInfo> {
    compiled
        .pipeline
        .operators
        .iter()
        .map(|op| OperatorInfo {
            id: op.id,
            name: op.progress_name(),
            evicts_by_watermark: op.evicts_by_watermark(output_mode),
            shape: op.shape(),
            stores_per_partition: op.stores_per_partition(),
            inputs: op
                .inputs
                .iter()
                .map(|i| match i {
                    sluice_plan::streaming::OperatorInput::Sources => None,
                    sluice_plan::streaming::OperatorInput::Operator(j) => Some(*j),
                })
                .collect(),
        })
        .collect()
}

/// A spec of `def` reading every stream of `job` (before the query's own streams are known),
/// and those streams.
async fn spec_with_all_streams(
    job: &JobFile,
    def: &QueryDef,
    connectors: &Connectors,
    sink: sluice_connectors::SinkSpec,
    output_mode: OutputMode,
    conf: QueryConf,
    name: Option<String>,
) -> Result<(QuerySpec, Vec<StreamSpec>)> {
    let mut all_sources = Vec::new();
    for (i, def) in job.streams.values().enumerate() {
        all_sources.push(resolve_stream(def, i, connectors)?);
    }
    let mut tables: Vec<TableSpec> = Vec::new();
    for t in job.tables.values() {
        tables.push(connectors.resolve_table(&t.name, &t.options, &t.declared_schema()).await?);
    }
    let spec = QuerySpec {
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
    Ok((spec, all_sources))
}

/// The output schema of `def`, planned with no streaming checks and no sink of its own (its
/// rows would go to `noop`): what a client asks of a DataFrame before it is written anywhere.
pub async fn query_schema(job: &JobFile, def: &QueryDef, connectors: &Connectors) -> Result<SchemaRef> {
    let mut options = sluice_common::options::Options::new();
    options.insert("connector".to_string(), "noop".to_string());
    let sink = connectors.resolve_sink("schema", &options)?;
    let conf = QueryConf::from_settings(&def.settings)?;
    let (spec, _) = spec_with_all_streams(job, def, connectors, sink, OutputMode::Append, conf, None)
        .await
        .map_err(|e| job.redactor().scrub_error(e))?;
    let compiled = CompiledQuery::compile(Arc::new(spec)).await.map_err(|e| job.redactor().scrub_error(e))?;
    Ok(compiled.schema)
}
