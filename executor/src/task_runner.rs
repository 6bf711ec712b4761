//! One task, start to finish: the data path of a micro-batch on an executor.
//!
//! * stateless: read split → computed columns → event-time stats → query → sink.
//! * map: read split → … → first operator's map side → shuffle blocks.
//! * reduce: fetch blocks → merge with the state partition → commit state → next operator's map
//!   side (blocks), or the query's output → sink (or a block for the gather task).
//! * gather: fetch every partition's output → output fragment → sink.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, RecordBatch};
use sluice_common::error::{Result, SluiceError};
use sluice_common::time::{micros_to_millis, to_micros};
use sluice_common::BatchContext;
use sluice_connectors::{SinkTaskContext, SinkTaskOutput, SplitDescriptor};
use sluice_plan::streaming::{OperatorInput, OperatorKind};
use sluice_plan::{BlockSource, EventTimeStats, SourceProjection, StateOperatorMetrics, TaskInput, TaskKind, TaskMetrics};
use sluice_state::hash::SPARK_SEED;
use sluice_state::StatePolicy;

use crate::call_commits::CallCommits;
use crate::metrics::ExecutorMeter;
use crate::operators::aggregate::{reduce_aggregate, AggregateTask};
use crate::operators::dedup::reduce_dedup;
use crate::operators::join::reduce_join;
use crate::operators::session::reduce_sessions;
use crate::operators::{as_operator_output, map_input, CompiledOperator};
use crate::query_cache::PreparedQuery;
use crate::shuffle::{batches_bytes, fetch_blocks, BlockId, BlockStore, Fetch, Peers};
use crate::state_cache::StateCache;
use crate::task_slot::TaskSlot;

/// The facts of one task.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The query run the task belongs to.
    pub run_id: String,
    /// The batch attempt the task belongs to.
    pub batch: BatchContext,
    /// The task's index in its stage.
    pub partition_index: u32,
}

/// What a successful task returns.
#[derive(Debug, Default)]
pub struct TaskOutcome {
    /// Rows read and written, event-time statistics, state metrics.
    pub metrics: TaskMetrics,
    /// The sink writer's report (with collected rows, for console and memory sinks).
    pub sink_output: SinkTaskOutput,
}

/// Executor resources a task may use.
pub struct TaskEnv<'a> {
    /// Shuffle blocks held by this executor.
    pub blocks: &'a BlockStore,
    /// State partitions held by this executor.
    pub states: &'a StateCache,
    /// This executor's own endpoint (blocks produced here are read locally).
    pub endpoint: &'a str,
    /// Connections to the other executors, for their shuffle blocks.
    pub peers: &'a Peers,
    /// The run's shuffle key (shuffle tickets carry it).
    pub shuffle_key: &'a str,
    /// This executor's metrics: shuffle bytes and state partition sizes.
    pub meter: &'a ExecutorMeter,
    /// The task's slot, lent back while it waits on storage or peers.
    pub slot: &'a TaskSlot,
    /// The state commits of the task's call, written together when every part has succeeded.
    pub commits: &'a CallCommits,
    /// The task's position in its call.
    pub part: usize,
}

/// Runs one task of `query`. A failure's message has the query's secrets redacted: connector
/// errors (librdkafka, `object_store`) may quote option values, and it is logged here and sent to
/// the driver.
pub async fn run_task(
    query: &PreparedQuery,
    kind: &TaskKind,
    inline_rows: &[u8],
    ctx: &TaskContext,
    env: &TaskEnv<'_>,
) -> Result<TaskOutcome> {
    run_task_unredacted(query, kind, inline_rows, ctx, env).await.map_err(|e| query.compiled.spec.redactor().scrub_error(e))
}

async fn run_task_unredacted(
    query: &PreparedQuery,
    kind: &TaskKind,
    inline_rows: &[u8],
    ctx: &TaskContext,
    env: &TaskEnv<'_>,
) -> Result<TaskOutcome> {
    let started = Instant::now();
    env.blocks.begin(&ctx.run_id, ctx.batch.id, ctx.batch.attempt);
    let mut outcome = match kind {
        TaskKind::Stateless { source_index, split } => {
            let (input, mut metrics) = read_input(query, *source_index, split, inline_rows, ctx).await?;
            let rows = query.compiled.execute_output(Arc::new(input), ctx.batch.timestamp_ms).await?;
            let sink_output = write_sink(query, &rows, ctx).await?;
            metrics.output_rows = sink_output.num_rows;
            TaskOutcome { metrics, sink_output }
        }
        TaskKind::Map { source_index, split } => {
            let (input, mut metrics) = read_input(query, *source_index, split, inline_rows, ctx).await?;
            let input = Arc::new(input);
            // Every operator input fed by streams gets its blocks, empty when it does not read
            // this task's stream, so its consumers always find one per producer.
            for op in &query.compiled.pipeline.operators {
                for (i, _) in op.inputs.iter().enumerate().filter(|(_, from)| **from == OperatorInput::Sources) {
                    let partitions = query.compiled.spec.conf.shuffle_partitions;
                    let operator = &query.operators[op.id];
                    let blocks = map_input(&query.compiled, op, operator, i, &input, ctx.batch.timestamp_ms, partitions).await?;
                    store_blocks(env, ctx, op.id as u32, i as u32 * partitions, blocks, &mut metrics);
                }
            }
            TaskOutcome { metrics, ..Default::default() }
        }
        TaskKind::Reduce { op, partition, inputs } => run_reduce(query, *op, *partition, inputs, ctx, env).await?,
        TaskKind::Gather { inputs } => {
            let last = query.compiled.pipeline.operators.len() - 1;
            let rows = fetch(env, ctx, (last + 1) as u32, 0, inputs).await?;
            let input = query.task_input(ctx.batch.id).await.with_operator_output(last, rows);
            let out = query.compiled.execute_output(Arc::new(input), ctx.batch.timestamp_ms).await?;
            let sink_output = write_sink(query, &out, ctx).await?;
            TaskOutcome { metrics: TaskMetrics { output_rows: sink_output.num_rows, ..Default::default() }, sink_output }
        }
    };
    outcome.metrics.duration_ms = started.elapsed().as_millis() as u64;
    Ok(outcome)
}

/// Keeps a task's blocks for consumer `stage`: block `i` is for partition `first + i` (a join's
/// right input takes partitions `P..2P` of its stage). Records in `metrics` which of them hold
/// rows — even none — so consumers fetch only those.
fn store_blocks(
    env: &TaskEnv<'_>,
    ctx: &TaskContext,
    stage: u32,
    first: u32,
    blocks: Vec<Vec<RecordBatch>>,
    metrics: &mut TaskMetrics,
) {
    let mut filled = Vec::new();
    for (i, rows) in blocks.into_iter().enumerate() {
        if rows.iter().any(|b| b.num_rows() > 0) {
            filled.push(first + i as u32);
        }
        let id = BlockId {
            run_id: ctx.run_id.clone(),
            batch: ctx.batch.id,
            attempt: ctx.batch.attempt,
            stage,
            producer: ctx.partition_index,
            partition: first + i as u32,
        };
        env.meter.shuffle_written(batches_bytes(&rows));
        env.blocks.put(id, rows);
    }
    metrics.add_filled_blocks(stage, filled);
}

async fn fetch(
    env: &TaskEnv<'_>,
    ctx: &TaskContext,
    stage: u32,
    partition: u32,
    inputs: &[BlockSource],
) -> Result<Vec<RecordBatch>> {
    let sources: Vec<(BlockId, String)> = inputs
        .iter()
        .map(|s| {
            (
                BlockId {
                    run_id: ctx.run_id.clone(),
                    batch: ctx.batch.id,
                    attempt: ctx.batch.attempt,
                    stage,
                    producer: s.producer,
                    partition,
                },
                s.endpoint.clone(),
            )
        })
        .collect();
    let fetch =
        Fetch { local: env.blocks, self_endpoint: env.endpoint, peers: env.peers, key: env.shuffle_key, meter: env.meter };
    env.slot.waiting(fetch_blocks(&fetch, &sources)).await?
}

async fn write_sink(query: &PreparedQuery, rows: &[RecordBatch], ctx: &TaskContext) -> Result<SinkTaskOutput> {
    let task = SinkTaskContext { partition_index: ctx.partition_index };
    query.sink.write(&query.compiled.schema, rows, &task).await
}

/// Reads a split into a task input, with the source's metrics and event-time stats.
async fn read_input(
    query: &PreparedQuery,
    source_index: usize,
    split: &SplitDescriptor,
    inline_rows: &[u8],
    ctx: &TaskContext,
) -> Result<(TaskInput, TaskMetrics)> {
    let reader = query
        .readers
        .get(source_index)
        .ok_or_else(|| SluiceError::internal(format!("task for unknown source {source_index}")))?;
    let projection = &query.compiled.source_projections[source_index];
    let data = reader.read(split, inline_rows).await?;
    let batches: Vec<RecordBatch> = data.batches.iter().map(|b| projection.apply(b)).collect::<Result<_>>()?;
    let input_rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let mut event_time = BTreeMap::new();
    if let Some(stats) = event_time_stats(projection, &batches)? {
        event_time.insert(source_index, stats);
    }
    let input = query.task_input(ctx.batch.id).await.with_source(source_index, batches);
    let metrics = TaskMetrics {
        source_index: Some(source_index),
        input_rows,
        malformed_rows: data.malformed_rows,
        lost_offsets: data.lost_offsets,
        event_time,
        ..Default::default()
    };
    Ok((input, metrics))
}

async fn run_reduce(
    query: &PreparedQuery,
    op_id: usize,
    partition: u32,
    inputs: &[Vec<BlockSource>],
    ctx: &TaskContext,
    env: &TaskEnv<'_>,
) -> Result<TaskOutcome> {
    let compiled = &query.compiled;
    let spec = &compiled.spec;
    let op = &compiled.pipeline.operators[op_id];
    let operator = &query.operators[op_id];
    let producers = |i: usize| inputs.get(i).map(Vec::as_slice).unwrap_or_default();
    let started = Instant::now();
    let input = fetch(env, ctx, op_id as u32, partition, producers(0)).await?;
    let checkpoint = sluice_common::storage::resolve(&spec.checkpoint_url)?;
    let version = ctx.batch.id.state_to_read();
    let policy = StatePolicy {
        min_deltas_for_snapshot: spec.conf.min_deltas_for_snapshot,
        min_batches_to_retain: spec.conf.min_batches_to_retain,
        maintenance_interval: std::time::Duration::from_millis(spec.conf.maintenance_interval_ms),
    };
    // Operators above a join see the join's output watermark (Spark 3.5's propagation).
    let watermarks = compiled.pipeline.watermarks_for(op_id, &ctx.batch.watermarks);
    let mut fetched = started.elapsed();
    let (emitted, mut metrics): (Vec<RecordBatch>, StateOperatorMetrics) = if let CompiledOperator::Join(stages) = operator {
        // The right input's blocks follow the left's (see `map_side`).
        let right_input = fetch(env, ctx, op_id as u32, spec.conf.shuffle_partitions + partition, producers(1)).await?;
        fetched = started.elapsed();
        let schemas =
            |side: &crate::operators::join::CompiledSide| (Arc::clone(&stages.key_schema), Arc::clone(&side.value_schema));
        let (mut left, mut right) = env
            .slot
            .waiting(futures::future::try_join(
                env.states.checkout(&ctx.run_id, op_id, partition, "left", version, &checkpoint, schemas(&stages.left), policy),
                env.states.checkout(&ctx.run_id, op_id, partition, "right", version, &checkpoint, schemas(&stages.right), policy),
            ))
            .await??;
        let (l, r) = (left.partition()?, right.partition()?);
        let (rows, mut metrics) = reduce_join(stages, &mut l.state, &mut r.state, &input, &right_input, &watermarks)?;
        let (l, r) = (l.commit()?, r.commit()?);
        metrics.commit_time_ms = l.commit_ms + r.commit_ms;
        env.commits.stage(env.part, op_id, left, l.delta)?;
        env.commits.stage(env.part, op_id, right, r.delta)?;
        (rows, metrics)
    } else {
        let mut guard = env
            .slot
            .waiting(env.states.checkout(
                &ctx.run_id,
                op_id,
                partition,
                "",
                version,
                &checkpoint,
                operator.state_schemas(),
                policy,
            ))
            .await??;
        let part = guard.partition()?;
        let task_ctx = compiled.task_ctx();
        let (rows, mut metrics) = match (operator, &op.kind) {
            (CompiledOperator::Aggregate(stages), OperatorKind::Aggregate { event_time, .. }) => {
                let holds_global_group = stages.group_count == 0
                    && (SPARK_SEED as i32).rem_euclid(spec.conf.shuffle_partitions as i32) as u32 == partition;
                let task = AggregateTask { mode: spec.output_mode, event_time: *event_time, watermarks, holds_global_group };
                reduce_aggregate(stages, &mut part.state, input, task, &task_ctx).await?
            }
            (CompiledOperator::Session(stages), OperatorKind::SessionAggregate { .. }) => {
                reduce_sessions(stages, &mut part.state, input, spec.output_mode, &watermarks, &task_ctx).await?
            }
            (CompiledOperator::Dedup(d), OperatorKind::Dedup { .. }) => reduce_dedup(d, &mut part.state, &input, &watermarks)?,
            _ => return Err(SluiceError::internal("operator kind and compiled form disagree")),
        };
        let commit = part.commit()?;
        metrics.commit_time_ms = commit.commit_ms;
        env.commits.stage(env.part, op_id, guard, commit.delta)?;
        (rows, metrics)
    };
    metrics.operator = op_id;
    let operated = started.elapsed();
    // The partition's new version is committed (written with the call's bundle): this is its
    // size until its next batch here.
    env.meter.state_partition_updated(
        &ctx.run_id,
        &spec.query_id.to_string(),
        op_id,
        partition,
        metrics.num_rows_total,
        metrics.memory_used_bytes,
    );

    let output_schema = op.output_table_schema();
    let emitted = as_operator_output(emitted, &output_schema)?;
    let mut outcome = TaskOutcome::default();
    let consumers = compiled.pipeline.consumers_of(op_id);
    if !consumers.is_empty() {
        // A shared operator (`build_pipeline`) feeds several inputs: each gets its own blocks.
        let input = Arc::new(query.task_input(ctx.batch.id).await.with_operator_output(op_id, emitted));
        let (partitions, ts) = (spec.conf.shuffle_partitions, ctx.batch.timestamp_ms);
        for (consumer, i) in consumers {
            let (consumer_op, operator) = (&compiled.pipeline.operators[consumer], &query.operators[consumer]);
            let blocks = map_input(compiled, consumer_op, operator, i, &input, ts, partitions).await?;
            store_blocks(env, ctx, consumer as u32, i as u32 * partitions, blocks, &mut outcome.metrics);
        }
    } else if compiled.pipeline.needs_gather {
        store_blocks(env, ctx, (op_id + 1) as u32, 0, vec![emitted], &mut outcome.metrics);
    } else {
        // The output fragment (projections, filters, stream-static joins with the stream on the
        // outer side) makes nothing of nothing: most partitions emit no rows in most batches,
        // and planning the fragment for them was most of their task's time.
        let rows = if emitted.iter().all(|b| b.num_rows() == 0) {
            Vec::new()
        } else {
            let input = query.task_input(ctx.batch.id).await.with_operator_output(op_id, emitted);
            compiled.execute_output(Arc::new(input), ctx.batch.timestamp_ms).await?
        };
        let sink_output = write_sink(query, &rows, ctx).await?;
        outcome.metrics.output_rows = sink_output.num_rows;
        outcome.sink_output = sink_output;
    }
    // Where a reduce task's time goes, for finding a stage's longest task (with the driver's
    // `stage finished` event): fetching its input, running its operator (state included), and
    // the rest (the consumers' map side or the output fragment and sink).
    tracing::debug!(
        batch = ctx.batch.id.0,
        op = op_id,
        partition,
        fetch_ms = fetched.as_secs_f64() * 1e3,
        operator_ms = (operated - fetched).as_secs_f64() * 1e3,
        after_ms = (started.elapsed() - operated).as_secs_f64() * 1e3,
        commit_ms = metrics.commit_time_ms,
        "reduce task finished"
    );
    outcome.metrics.state = vec![metrics];
    Ok(outcome)
}

/// Min/max/avg of the watermark column in ms (Spark's `EventTimeWatermarkExec`); null event
/// times are skipped.
fn event_time_stats(projection: &SourceProjection, batches: &[RecordBatch]) -> Result<Option<EventTimeStats>> {
    let Some(col) = projection.watermark_column else { return Ok(None) };
    let mut stats: Option<EventTimeStats> = None;
    for b in batches {
        let micros = to_micros(b.column(col))?;
        let (mut min, mut max, mut sum, mut count) = (i64::MAX, i64::MIN, 0i128, 0u64);
        let mut add = |us: i64| {
            let ms = micros_to_millis(us);
            min = min.min(ms);
            max = max.max(ms);
            sum += i128::from(ms);
            count += 1;
        };
        // A source's event times rarely hold NULLs: then a loop over the values, which the
        // compiler unrolls (an exact integer sum has no chain of float additions to wait on).
        if micros.null_count() == 0 {
            micros.values().iter().for_each(|us| add(*us));
        } else {
            micros.iter().flatten().for_each(add);
        }
        if count > 0 {
            let batch_stats = EventTimeStats { max_ms: max, min_ms: min, avg_ms: sum as f64 / count as f64, count };
            match &mut stats {
                Some(s) => s.merge(&batch_stats),
                None => stats = Some(batch_stats),
            }
        }
    }
    Ok(stats)
}
