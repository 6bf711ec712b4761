//! The map side of a sliding-window aggregation by panes (see `sluice_plan::sliding`): rows
//! are partially aggregated per pane and key, each pane's partial row is attributed to every
//! window holding the pane, and the rows that then share a window and key are merged. The
//! result has the layout, the keys and — for the aggregates the planner admits — the values of
//! the expanded aggregation's partial rows, in the same first-appearance order, so the shuffle,
//! the late-row filter (by window end, per partial row), the state and the output do not change.
//! Merging before the shuffle keeps one partial row per window and key, as expansion gave — so
//! `numRowsDroppedByWatermark`, which counts late partial rows, is unchanged too; shipping the
//! unmerged rows for the reduce side to merge measured no faster on Nexmark q5.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;

use sluice_common::error::{Result, SluiceError};
use sluice_common::time::to_micros;
use sluice_plan::functions::window::{window_struct, WindowSpec};
use sluice_plan::sliding::PaneAggregate;
use sluice_plan::{CompiledQuery, Fragment, TaskInput};

use super::aggregate::AggregateStages;
use super::plan_partial;

/// A pane form whose partial rows were checked to line up with the expanded aggregation's.
#[derive(Debug, Clone)]
pub struct PaneStages {
    plan: LogicalPlan,
    window_index: usize,
    spec: WindowSpec,
}

impl PaneStages {
    /// The pane form of an aggregation whose partial rows have the layout `partial_schema`, or
    /// `None` when its own partial rows differ in anything but the pane key (a timestamp where
    /// the window is): the map side then expands rows instead.
    pub async fn compile(state: &SessionState, panes: &PaneAggregate, partial_schema: &SchemaRef) -> Result<Option<Self>> {
        let pane_schema = plan_partial(state, &panes.plan).await?.schema();
        let lines_up = pane_schema.fields().len() == partial_schema.fields().len()
            && pane_schema.fields().iter().zip(partial_schema.fields()).enumerate().all(|(i, (p, e))| {
                if i == panes.window_index {
                    matches!(p.data_type(), DataType::Timestamp(..)) && matches!(e.data_type(), DataType::Struct(_))
                } else {
                    p.data_type() == e.data_type()
                }
            });
        if !lines_up {
            tracing::warn!("sliding-window aggregation: the pane form's partial rows differ from the expanded ones; rows expand");
            return Ok(None);
        }
        tracing::debug!(
            window_us = panes.spec.window,
            slide_us = panes.spec.slide,
            "sliding-window aggregation partially aggregates by panes"
        );
        Ok(Some(Self { plan: panes.plan.clone(), window_index: panes.window_index, spec: panes.spec }))
    }

    /// The task's partial rows: per pane, expanded to windows, merged per window and key.
    /// `fragment` names the pane plan among the query's plans made once per batch.
    pub async fn partial_rows(
        &self,
        query: &CompiledQuery,
        fragment: Fragment,
        rows: &Arc<TaskInput>,
        batch_timestamp_ms: i64,
        stages: &AggregateStages,
    ) -> Result<Vec<RecordBatch>> {
        let pane_plan = &self.plan;
        let plan =
            query.fragment(fragment, batch_timestamp_ms, |state| async move { plan_partial(&state, pane_plan).await }).await?;
        let pane_rows = query.run(&plan, Arc::clone(rows)).await?;
        let windowed = pane_rows
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| expand_panes(b, self.window_index, &self.spec, &stages.partial_schema))
            .collect::<Result<Vec<_>>>()?;
        if windowed.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![stages.merge(windowed, &query.task_ctx()).await?])
    }
}

/// Attributes each partial row of a pane (its start at `window_index`) to the pane's windows,
/// newest first, with the window struct in that column and the rest copied: rows laid out as
/// `partial_schema`. A NULL pane (a NULL time) has no window.
pub fn expand_panes(
    rows: &RecordBatch,
    window_index: usize,
    spec: &WindowSpec,
    partial_schema: &SchemaRef,
) -> Result<RecordBatch> {
    let panes = to_micros(rows.column(window_index))?;
    let per_pane = (spec.window / spec.slide) as usize;
    let mut take_rows: Vec<u32> = Vec::with_capacity(rows.num_rows() * per_pane);
    let mut starts: Vec<i64> = Vec::with_capacity(rows.num_rows() * per_pane);
    let mut ends: Vec<i64> = Vec::with_capacity(rows.num_rows() * per_pane);
    for (row, pane) in panes.iter().enumerate() {
        let Some(pane) = pane else { continue };
        let row = u32::try_from(row).map_err(|_| SluiceError::internal("a batch of more than 2^32 partial rows"))?;
        for (start, end) in spec.windows_of_pane(pane) {
            take_rows.push(row);
            starts.push(start);
            ends.push(end);
        }
    }
    let take_rows = UInt32Array::from(take_rows);
    let windows = window_struct(
        TimestampMicrosecondArray::from(starts),
        TimestampMicrosecondArray::from(ends),
        partial_schema.field(window_index).data_type(),
    )?;
    let columns = rows
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| if i == window_index { Ok(Arc::clone(&windows)) } else { Ok(take(column, &take_rows, None)?) })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(partial_schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(take_rows.len())),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use sluice_plan::functions::window::window_struct_type;

    #[test]
    fn each_pane_row_becomes_one_row_per_window_newest_first() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let pane_schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("pane", ts.clone(), true),
            Field::new("count", DataType::Int64, true),
        ]));
        let partial_schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("w", window_struct_type(&ts), true),
            Field::new("count", DataType::Int64, true),
        ]));
        let rows = RecordBatch::try_new(
            pane_schema,
            vec![
                Arc::new(Int64Array::from(vec![7, 8, 9])),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(-4), None, Some(6)]).with_timezone("UTC")),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        // Window 6 every 2, starting at 0: a pane belongs to the 3 windows starting at its
        // start, 2 before it and 4 before it.
        let spec = WindowSpec::new(6, 2, 0).unwrap();
        let out = expand_panes(&rows, 1, &spec, &partial_schema).unwrap();
        let keys = out.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        let counts = out.column(2).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        let w = out.column(1).as_struct();
        let starts = w.column(0).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values().to_vec();
        let ends = w.column(1).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().values().to_vec();
        assert_eq!(keys, vec![7, 7, 7, 9, 9, 9]);
        assert_eq!(counts, vec![1, 1, 1, 3, 3, 3]);
        assert_eq!(starts, vec![-4, -6, -8, 6, 4, 2]);
        assert_eq!(ends, vec![2, 0, -2, 12, 10, 8]);
        assert_eq!(out.schema(), partial_schema);
    }
}
