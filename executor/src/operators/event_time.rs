//! Event time inside stateful operators: reading an event-time column as microseconds, and the
//! one rule every operator applies before it touches state — late rows are dropped.
//!
//! A window is compared by its end (Spark compares windows and sessions on `end`). A row is
//! *late* when its event time is at or below the previous batch's watermark (Spark's
//! `eventTimeWatermarkForLateEvents`, docs/semantics.md §3); a NULL event time is never late.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
use sluice_common::error::{Result, SluiceError};
use sluice_common::time::to_micros;
use sluice_common::BatchWatermarks;

/// Event time of every row (µs); NULL when the value is NULL.
pub fn event_time_micros(column: &ArrayRef, is_window: bool) -> Result<Vec<Option<i64>>> {
    if is_window {
        let DataType::Struct(_) = column.data_type() else {
            return Err(SluiceError::internal(format!("window column has type {}", column.data_type())));
        };
        let s = column.as_struct();
        let end = to_micros(s.column(1))?;
        return Ok((0..s.len()).map(|i| if s.is_null(i) || end.is_null(i) { None } else { Some(end.value(i)) }).collect());
    }
    Ok(to_micros(column)?.iter().collect())
}

/// The rows of a batch that are not late, with their event times.
#[derive(Debug)]
pub struct OnTimeRows {
    /// The rows kept, in input order.
    pub rows: RecordBatch,
    /// The kept rows' event times (µs), in the same order.
    pub event_times: Vec<Option<i64>>,
    /// How many rows were late (Spark's `numRowsDroppedByWatermark`).
    pub dropped: u64,
}

/// Drops the rows of `rows` whose event time (`event_times`, µs, one per row) is at or below the
/// batch's late-row watermark.
pub fn drop_late_rows(rows: &RecordBatch, event_times: Vec<Option<i64>>, watermarks: &BatchWatermarks) -> Result<OnTimeRows> {
    let late_us = watermarks.late_micros();
    let keep: BooleanArray = event_times.iter().map(|t| Some(!t.is_some_and(|t| t <= late_us))).collect();
    let kept = filter_record_batch(rows, &keep)?;
    let dropped = (rows.num_rows() - kept.num_rows()) as u64;
    let event_times = event_times.into_iter().zip(keep.values().iter()).filter(|(_, k)| *k).map(|(t, _)| t).collect();
    Ok(OnTimeRows { rows: kept, event_times, dropped })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn rows_at_or_below_the_previous_watermark_are_late_and_null_times_never_are() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let rows = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3, 4]))]).unwrap();
        let times = vec![Some(9_999_000), Some(10_000_000), None, Some(10_000_001)];
        let watermarks = BatchWatermarks { late_ms: 10_000, eviction_ms: 20_000 };
        let on_time = drop_late_rows(&rows, times, &watermarks).unwrap();
        let kept = on_time.rows.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        assert_eq!(kept, vec![3, 4]);
        assert_eq!(on_time.event_times, vec![None, Some(10_000_001)]);
        assert_eq!(on_time.dropped, 2);
    }
}
