//! The stages of one batch attempt, and which tasks run where.
//!
//! A stateless query is one stage: a task per input split. A stateful query runs a map stage
//! (a task per split, each keeping one shuffle block per state partition for every operator
//! input fed by streams), then per stateful operator, inputs first, a reduce stage of one task
//! per state partition, pinned to the executor that owns the partition, then — when the output
//! must see every partition at once — a single gather task. Each stage starts when the previous
//! one has finished, and tells its tasks where the blocks of each of their inputs are: the map
//! stage's, or the reduce stage of the operator feeding that input. After the last stage, the
//! attempt waits until the state bundles its tasks wrote in the background are on storage.
//! The map stage of the next batch may run ahead, beside this batch's reduce stages
//! ([`super::map_ahead`]); the batch then starts from its results.

use sluice_common::error::Result;
use sluice_common::BatchContext;
use sluice_connectors::PlannedSplit;
use sluice_plan::BlockSource;
use sluice_plan::TaskKind;

use std::time::{Duration, Instant};

use super::deadline::{TaskDeadlines, STATE_WRITES};
use super::placement::assign_partitions;
use super::resolve::OperatorInfo;
use super::scheduler::{QueryRun, TaskResult, TaskScheduler, TaskSpec};
use crate::registry::Engagement;

/// What a batch attempt produced.
#[derive(Debug, Default)]
pub struct AttemptResults {
    /// Every task's result (metrics).
    pub all: Vec<TaskResult>,
    /// The results carrying sink output, ordered by task index.
    pub sink: Vec<TaskResult>,
}

/// Runs the stages of batch attempts for one query; keeps state-partition placement across
/// batches.
#[derive(Debug)]
pub struct StageRunner {
    /// Stateful operators, bottom-up; each runs as one reduce stage per attempt, in this order.
    pub operators: Vec<OperatorInfo>,
    /// Whether a single-task gather stage follows the last reduce stage (ORDER BY in Complete mode).
    pub needs_gather: bool,
    /// State partitions (`spark.sql.shuffle.partitions`): the task count of every reduce stage.
    pub partitions: u32,
    placement: Vec<Option<String>>,
    /// State partitions that changed owner since [`Self::take_moved`] was last called:
    /// (previous owner, partition).
    moved: Vec<(String, u32)>,
    /// How long each stage's tasks may run.
    deadlines: TaskDeadlines,
}

/// The producers among `results` a consumer of block (`stage`, `partition`) must fetch from:
/// those whose block may hold rows (a producer that did not say which of its blocks hold rows
/// is always fetched).
fn sources_of(results: &[TaskResult], stage: u32, partition: u32) -> Vec<BlockSource> {
    results
        .iter()
        .filter(|r| r.metrics.may_have_block(stage, partition))
        .map(|r| BlockSource { producer: r.partition_index, endpoint: r.endpoint.clone() })
        .collect()
}

impl StageRunner {
    /// A runner for a query with these operators, whose source reads may wait up to
    /// `input_wait` ([`super::deadline::TaskDeadlines::with_input_wait`]).
    pub fn new(operators: Vec<OperatorInfo>, needs_gather: bool, partitions: u32, input_wait: Duration) -> Self {
        Self {
            operators,
            needs_gather,
            partitions,
            placement: Vec::new(),
            moved: Vec::new(),
            deadlines: TaskDeadlines::with_input_wait(input_wait),
        }
    }

    /// The partitions that changed owner since the last call, with their previous owner, which
    /// still holds a copy in memory that it should drop.
    pub fn take_moved(&mut self) -> Vec<(String, u32)> {
        std::mem::take(&mut self.moved)
    }

    /// How many state partitions each executor owns, after the last attempt's placement.
    pub fn partitions_by_executor(&self) -> std::collections::BTreeMap<String, u32> {
        let mut counts = std::collections::BTreeMap::new();
        for owner in self.placement.iter().flatten() {
            *counts.entry(owner.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Runs one stage's tasks under the stage's watch (probes, deadline), and remembers how long
    /// they took.
    async fn run_stage(
        &mut self,
        scheduler: &TaskScheduler,
        run: &QueryRun,
        batch: &BatchContext,
        executors: &Engagement,
        stage: u32,
        tasks: Vec<TaskSpec>,
    ) -> Result<Vec<TaskResult>> {
        let started = Instant::now();
        let results = scheduler.run_stage(run, batch, executors, tasks, self.deadlines.watch(stage)).await?;
        let durations = results.iter().map(|r| r.metrics.duration_ms);
        tracing::debug!(
            batch = batch.id.0,
            stage,
            tasks = results.len(),
            wall_ms = started.elapsed().as_millis() as u64,
            longest_task_ms = durations.clone().max().unwrap_or(0),
            task_ms = durations.sum::<u64>(),
            "stage finished"
        );
        self.deadlines.record(stage, results.iter().map(|r| Duration::from_millis(r.metrics.duration_ms)));
        Ok(results)
    }

    /// The first stage's tasks: one per split (source index, split).
    fn input_tasks(&self, splits: &[(usize, PlannedSplit)]) -> Vec<TaskSpec> {
        let stateful = !self.operators.is_empty();
        splits
            .iter()
            .enumerate()
            .map(|(i, (source_index, split))| TaskSpec {
                partition_index: i as u32,
                kind: if stateful {
                    TaskKind::Map { source_index: *source_index, split: split.split.clone() }
                } else {
                    TaskKind::Stateless { source_index: *source_index, split: split.split.clone() }
                },
                inline_rows: split.inline_rows.clone(),
                executor: None,
            })
            .collect()
    }

    /// The map stage of a batch that has not started yet (`super::map_ahead`), as a future of
    /// its own, engaging the executors for itself. Its tasks may first wait for the running
    /// batch's map tasks, which hold the executors' map slots: their deadline is twice a map
    /// task's.
    pub fn run_ahead(
        &self,
        scheduler: &TaskScheduler,
        run: &QueryRun,
        batch: &BatchContext,
        splits: &[(usize, PlannedSplit)],
    ) -> impl std::future::Future<Output = Result<Vec<TaskResult>>> + Send + 'static {
        let tasks = self.input_tasks(splits);
        let mut watch = self.deadlines.watch(0);
        watch.deadline = watch.deadline.map(|d| d * 2);
        let (scheduler, run, batch) = (scheduler.clone(), run.clone(), *batch);
        async move {
            let executors = scheduler.engage().await?;
            let started = Instant::now();
            let results = scheduler.run_stage(&run, &batch, &executors, tasks, watch).await?;
            tracing::debug!(
                batch = batch.id.0,
                stage = 0,
                tasks = results.len(),
                wall_ms = started.elapsed().as_millis() as u64,
                "stage run ahead finished"
            );
            Ok(results)
        }
    }

    /// Runs one attempt of a batch over `splits` (source index, split), on the executors that
    /// may take new work when it starts; they stay engaged (none is dismissed) until it ends.
    /// `ran_ahead` holds the results of the batch's map stage when it already ran ahead
    /// ([`Self::run_ahead`]) over the same splits.
    pub async fn run(
        &mut self,
        scheduler: &TaskScheduler,
        run: &QueryRun,
        batch: &BatchContext,
        splits: &[(usize, PlannedSplit)],
        ran_ahead: Option<Vec<TaskResult>>,
    ) -> Result<AttemptResults> {
        let executors = scheduler.engage().await?;
        let stateful = !self.operators.is_empty();
        let first_results = match ran_ahead {
            Some(results) => {
                self.deadlines.record(0, results.iter().map(|r| Duration::from_millis(r.metrics.duration_ms)));
                results
            }
            None => {
                let first = self.input_tasks(splits);
                self.run_stage(scheduler, run, batch, &executors, 0, first).await?
            }
        };
        if !stateful {
            return Ok(AttemptResults { sink: first_results.clone(), all: first_results });
        }
        let live = executors.ids();
        let owners = assign_partitions(&self.placement, self.partitions as usize, &live);
        let moved = self
            .placement
            .iter()
            .zip(&owners)
            .enumerate()
            .filter_map(|(p, (old, new))| old.as_ref().filter(|old| *old != new).map(|old| (old.clone(), p as u32)));
        self.moved.extend(moved);
        self.placement = owners.iter().cloned().map(Some).collect();

        // Each operator's reduce tasks' results, by operator: the producers of its consumer's input.
        let map_results = first_results;
        let mut reduced: Vec<Vec<TaskResult>> = Vec::with_capacity(self.operators.len());
        for op in 0..self.operators.len() {
            let partitions = self.partitions;
            let tasks = (0..partitions)
                .map(|p| {
                    // Input i of operator `op` reads block partition `i·P + p` of stage `op`.
                    let inputs: Vec<Vec<BlockSource>> = self.operators[op]
                        .inputs
                        .iter()
                        .enumerate()
                        .map(|(i, input)| {
                            let producers = match input {
                                None => &map_results,
                                Some(j) => &reduced[*j],
                            };
                            sources_of(producers, op as u32, i as u32 * partitions + p)
                        })
                        .collect();
                    TaskSpec {
                        partition_index: p,
                        kind: TaskKind::Reduce { op, partition: p, inputs },
                        inline_rows: None,
                        executor: Some(owners[p as usize].clone()),
                    }
                })
                .collect();
            reduced.push(self.run_stage(scheduler, run, batch, &executors, op as u32 + 1, tasks).await?);
        }
        let gathered = if self.needs_gather {
            // The last operator's tasks leave their rows in block 0 of block stage `operators`
            // (scheduling stage `operators + 1`).
            let stage = self.operators.len() as u32 + 1;
            let producers = sources_of(reduced.last().map(Vec::as_slice).unwrap_or_default(), stage - 1, 0);
            let gather = vec![TaskSpec {
                partition_index: 0,
                kind: TaskKind::Gather { inputs: producers },
                inline_rows: None,
                executor: None,
            }];
            Some(self.run_stage(scheduler, run, batch, &executors, stage, gather).await?)
        } else {
            None
        };
        let sink = gathered.as_ref().or(reduced.last()).cloned().unwrap_or_default();
        let mut all: Vec<TaskResult> =
            map_results.into_iter().chain(reduced.into_iter().flatten()).chain(gathered.into_iter().flatten()).collect();
        let started = Instant::now();
        let longest = scheduler.await_state_writes(run, &executors, &mut all, self.deadlines.watch(STATE_WRITES)).await?;
        tracing::debug!(
            batch = batch.id.0,
            wall_ms = started.elapsed().as_millis() as u64,
            longest_write_ms = longest.map_or(0, |d| d.as_millis() as u64),
            "state writes awaited"
        );
        // The writes' own durations, not the wait: they ran mostly while later stages did.
        self.deadlines.record(STATE_WRITES, longest);
        Ok(AttemptResults { all, sink })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plan::TaskMetrics;

    fn result(producer: u32, filled: Option<&[(u32, &[u32])]>) -> TaskResult {
        let mut metrics = TaskMetrics::default();
        if let Some(filled) = filled {
            metrics.filled_blocks = Some(Default::default());
            for (stage, partitions) in filled {
                metrics.add_filled_blocks(*stage, partitions.iter().copied());
            }
        }
        TaskResult {
            partition_index: producer,
            executor_id: format!("e{producer}"),
            endpoint: format!("http://e{producer}"),
            metrics,
            sink_output: Default::default(),
        }
    }

    #[test]
    fn consumers_fetch_only_blocks_that_hold_rows() {
        let results = vec![
            result(0, Some(&[(0, &[3, 7])])),
            result(1, Some(&[])),
            // An executor that does not report its blocks is always fetched from.
            result(2, None),
        ];
        let producers = |stage, partition| sources_of(&results, stage, partition).iter().map(|s| s.producer).collect::<Vec<_>>();
        assert_eq!(producers(0, 3), [0, 2]);
        assert_eq!(producers(0, 4), [2]);
        assert_eq!(producers(1, 3), [2], "blocks of another stage");
    }
}
