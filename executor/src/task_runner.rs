//! One task, start to finish: the data path of a micro-batch on an executor.
//!
//! read split → computed columns → event-time stats → DataFusion plan → sink (files written
//! here, or rows handed back for the driver to print/store) → metrics.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use arrow::array::RecordBatch;
use bytes::Bytes;
use sluice_common::connectors::sinks::{write_task_output, SinkTaskContext, SinkTaskOutput};
use sluice_common::error::{Result, SluiceError};
use sluice_common::functions::time::to_micros;
use sluice_common::plan::{execute, EventTimeStats, SourceProjection, TaskInput, TaskKind, TaskMetrics};
use sluice_common::time::micros_to_millis;

use crate::query_cache::PreparedQuery;

/// The immutable facts of one task.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub batch_id: u64,
    pub batch_timestamp_ms: i64,
    pub partition_index: u32,
}

/// What a successful task returns.
#[derive(Debug)]
pub struct TaskOutcome {
    pub metrics: TaskMetrics,
    pub sink_output: SinkTaskOutput,
    pub rows: Option<Bytes>,
}

/// Runs one task of `query`.
pub async fn run_task(query: &PreparedQuery, kind: &TaskKind, inline_rows: &[u8], ctx: &TaskContext) -> Result<TaskOutcome> {
    let started = Instant::now();
    match kind {
        TaskKind::Stateless { source_index, split } => {
            let reader = query
                .readers
                .get(*source_index)
                .ok_or_else(|| SluiceError::internal(format!("task for unknown source {source_index}")))?;
            let projection = &query.compiled.source_projections[*source_index];
            let data = reader.read(split, inline_rows).await?;
            let batches: Vec<RecordBatch> = data.batches.iter().map(|b| projection.apply(b)).collect::<Result<_>>()?;
            let input_rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            let mut event_time = BTreeMap::new();
            if let Some(stats) = event_time_stats(projection, &batches)? {
                event_time.insert(*source_index, stats);
            }
            let input = TaskInput {
                sources: HashMap::from([(*source_index, batches)]),
                static_tables: query.static_tables(ctx.batch_id).await,
            };
            let output = execute(&query.compiled, input, ctx.batch_timestamp_ms).await?;
            let sink_kind = query.compiled.spec.sink.kind()?;
            let sink_ctx = SinkTaskContext { batch_id: ctx.batch_id, partition_index: ctx.partition_index };
            let (sink_output, rows) = write_task_output(&sink_kind, &query.compiled.schema, &output, &sink_ctx).await?;
            let metrics = TaskMetrics {
                source_index: Some(*source_index),
                input_rows,
                malformed_rows: data.malformed_rows,
                output_rows: sink_output.num_rows,
                event_time,
                duration_ms: started.elapsed().as_millis() as u64,
            };
            Ok(TaskOutcome { metrics, sink_output, rows })
        }
    }
}

/// Min/max/avg of the watermark column in ms (Spark's `EventTimeWatermarkExec`); null event
/// times are skipped.
fn event_time_stats(projection: &SourceProjection, batches: &[RecordBatch]) -> Result<Option<EventTimeStats>> {
    let Some(col) = projection.watermark_column else { return Ok(None) };
    let mut stats: Option<EventTimeStats> = None;
    for b in batches {
        let micros = to_micros(b.column(col))?;
        let (mut min, mut max, mut sum, mut count) = (i64::MAX, i64::MIN, 0f64, 0u64);
        for ms in micros.iter().flatten().map(micros_to_millis) {
            min = min.min(ms);
            max = max.max(ms);
            sum += ms as f64;
            count += 1;
        }
        if count > 0 {
            let batch_stats = EventTimeStats { max_ms: max, min_ms: min, avg_ms: sum / count as f64, count };
            match &mut stats {
                Some(s) => s.merge(&batch_stats),
                None => stats = Some(batch_stats),
            }
        }
    }
    Ok(stats)
}
