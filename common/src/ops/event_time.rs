//! Reading an event-time column as microseconds: a timestamp as is, a window by its end
//! (Spark compares windows and sessions on `end`).

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;

use crate::error::{Result, SluiceError};
use crate::functions::time::to_micros;

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
