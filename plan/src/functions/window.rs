//! `window()`, `session_window()` and `window_time()` with Spark's formulas (docs/semantics.md §4).
//!
//! As scalar functions these assign each row its (first) window; the streaming planner turns a
//! `GROUP BY window(...)` into a stateful windowed aggregation and attributes each row to all its
//! sliding windows, by expanding it into one row per window or by aggregating it with the rest
//! of its pane (`crate::sliding`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StructArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, IntervalMonthDayNanoType, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result as DFResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use sluice_common::time::parse_interval;
use sluice_common::time::to_micros;

/// `struct<start: T, end: T>` for an event-time column of type `T` (unit normalised to µs).
pub fn window_struct_type(time_type: &DataType) -> DataType {
    let tz = match time_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => Some(sluice_common::types::UTC.into()),
    };
    let t = DataType::Timestamp(TimeUnit::Microsecond, tz);
    DataType::Struct(Fields::from(vec![Field::new("start", t.clone(), true), Field::new("end", t, true)]))
}

/// A window over an event-time column is itself an event-time column (Spark copies the
/// watermark metadata onto the window), so grouping by it lets the watermark evict groups.
fn with_event_time_metadata(field: Field, time_field: &FieldRef) -> FieldRef {
    let key = sluice_common::types::WATERMARK_DELAY_KEY;
    match time_field.metadata().get(key) {
        Some(delay) => Arc::new(field.with_metadata([(key.to_string(), delay.clone())].into_iter().collect())),
        None => Arc::new(field),
    }
}

/// A duration argument as microseconds: interval text (`'10 seconds'`), an interval literal, or
/// a number of microseconds (Spark treats numeric durations as µs).
pub fn duration_micros(value: &ScalarValue, what: &str) -> DFResult<i64> {
    match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            let iv = parse_interval(s).map_err(|e| datafusion::error::DataFusionError::Plan(e.message))?;
            iv.fixed_micros(what).map_err(|e| datafusion::error::DataFusionError::Plan(e.message))
        }
        ScalarValue::IntervalMonthDayNano(Some(v)) => {
            if v.months != 0 {
                return plan_err!("Intervals greater than or equal to a month is not supported ({what}).");
            }
            Ok(v.days as i64 * sluice_common::time::MICROS_PER_DAY + v.nanoseconds / 1000)
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Ok(v.days as i64 * sluice_common::time::MICROS_PER_DAY + v.milliseconds as i64 * 1000)
        }
        ScalarValue::Int64(Some(v)) => Ok(*v),
        ScalarValue::Int32(Some(v)) => Ok(*v as i64),
        other => plan_err!("{what} must be a literal duration such as '10 minutes', got {other}"),
    }
}

/// Validated window parameters in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Window length in µs (`windowDuration`), > 0.
    pub window: i64,
    /// Distance between consecutive window starts in µs (`slideDuration`); equals `window` for tumbling windows.
    pub slide: i64,
    /// Offset of window starts from the epoch in µs (`startTime`), with `|start| < slide`.
    pub start: i64,
}

impl WindowSpec {
    /// Validates with Spark's messages.
    pub fn new(window: i64, slide: i64, start: i64) -> DFResult<Self> {
        if window <= 0 {
            return plan_err!("The window duration ({window}) must be greater than 0.");
        }
        if slide <= 0 {
            return plan_err!("The slide duration ({slide}) must be greater than 0.");
        }
        if slide > window {
            return plan_err!("The slide duration ({slide}) must be less than or equal to the windowDuration ({window}).");
        }
        if start.abs() >= slide {
            return plan_err!("The absolute value of start time ({start}) must be less than the slideDuration ({slide}).");
        }
        Ok(Self { window, slide, start })
    }

    /// Parses `window(ts, dur[, slide[, start]])`'s literal arguments.
    pub fn from_args(args: &[Option<&ScalarValue>]) -> DFResult<Self> {
        let lit = |i: usize, what: &str| -> DFResult<Option<i64>> {
            match args.get(i) {
                None => Ok(None),
                Some(Some(v)) => duration_micros(v, what).map(Some),
                Some(None) => plan_err!("the {what} of window() must be a constant"),
            }
        };
        let window = lit(1, "window duration")?
            .ok_or_else(|| datafusion::error::DataFusionError::Plan("window() needs a duration".into()))?;
        let slide = lit(2, "slide duration")?.unwrap_or(window);
        let start = lit(3, "start time")?.unwrap_or(0);
        Self::new(window, slide, start)
    }

    /// Parses the window arguments of an invocation (constants after the time column).
    pub fn from_columnar(args: &[ColumnarValue]) -> DFResult<Self> {
        let scalars: Vec<Option<&ScalarValue>> = args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        Self::from_args(&scalars)
    }

    /// Number of windows each timestamp falls into.
    pub fn windows_per_row(&self) -> i64 {
        (self.window + self.slide - 1) / self.slide
    }

    /// The start of the newest window containing `ts` (Spark's `lastStart`).
    pub fn last_start(&self, ts: i64) -> i64 {
        let remainder = (ts - self.start) % self.slide;
        ts - if remainder < 0 { remainder + self.slide } else { remainder }
    }

    /// The panes of a sliding window whose length is a whole number of slides: the tumbling
    /// windows `[p, p + slide)` aligned like the window starts. Every timestamp of one pane
    /// falls into exactly the same windows, so rows can be aggregated per pane first and the
    /// pane's partial result attributed to each of its windows; when `window % slide != 0` the
    /// windows of a pane's timestamps differ and there are no panes. `None` for tumbling windows
    /// too, which need no expansion.
    pub fn panes(&self) -> Option<WindowSpec> {
        (self.window != self.slide && self.window % self.slide == 0).then_some(WindowSpec {
            window: self.slide,
            slide: self.slide,
            start: self.start,
        })
    }

    /// Every window `[start, end)` containing the pane that starts at `pane_start` (a start of
    /// [`Self::panes`]), newest first: the same windows, in the same order, that
    /// [`Self::windows_of`] gives each timestamp of the pane.
    pub fn windows_of_pane(&self, pane_start: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        (0..self.window / self.slide).map(move |i| {
            let s = pane_start - i * self.slide;
            (s, s + self.window)
        })
    }

    /// Every window `[start, end)` containing `ts`, newest first, as Spark emits them.
    pub fn windows_of(&self, ts: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        let last = self.last_start(ts);
        (0..self.windows_per_row())
            .map(move |i| {
                let s = last - i * self.slide;
                (s, s + self.window)
            })
            .filter(move |(s, e)| self.window % self.slide == 0 || (*s <= ts && ts < *e))
    }
}

/// Builds a `struct<start, end>` column.
pub fn window_struct(starts: TimestampMicrosecondArray, ends: TimestampMicrosecondArray, ty: &DataType) -> DFResult<ArrayRef> {
    let DataType::Struct(fields) = ty else { return exec_err!("window type must be a struct") };
    let tz = match fields[0].data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let nulls = starts.nulls().cloned();
    let starts = starts.with_timezone_opt(tz.clone());
    let ends = ends.with_timezone_opt(tz);
    Ok(Arc::new(StructArray::try_new(fields.clone(), vec![Arc::new(starts), Arc::new(ends)], nulls)?))
}

/// `window(timeColumn, windowDuration[, slideDuration[, startTime]])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WindowFunc {
    signature: Signature,
}

impl Default for WindowFunc {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for WindowFunc {
    fn name(&self) -> &str {
        "window"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        if !(2..=4).contains(&arg_types.len()) {
            return plan_err!(
                "window() takes 2 to 4 arguments: window(timeColumn, windowDuration[, slideDuration[, startTime]])"
            );
        }
        if !matches!(arg_types[0], DataType::Timestamp(..)) {
            return plan_err!("window() needs a TIMESTAMP column as its first argument, got {}", arg_types[0]);
        }
        Ok(arg_types.to_vec())
    }
    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(window_struct_type(&arg_types[0]))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        WindowSpec::from_args(args.scalar_arguments)?;
        Ok(with_event_time_metadata(
            Field::new(self.name(), window_struct_type(args.arg_fields[0].data_type()), true),
            &args.arg_fields[0],
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let spec = WindowSpec::from_columnar(&args.args)?;
        if spec.window != spec.slide {
            return exec_err!(
                "a sliding window() can only be used as a GROUP BY key, where each row is assigned to all its windows"
            );
        }
        let ts = to_micros(&args.args[0].to_array(args.number_rows)?)?;
        // Without NULLs, a kernel over the values (a NULL's slot holds any value, which the
        // arithmetic could overflow on).
        let (starts, ends): (TimestampMicrosecondArray, TimestampMicrosecondArray) = if ts.null_count() == 0 {
            let starts = ts.unary(|t| spec.last_start(t));
            let ends = starts.unary(|s| s + spec.window);
            (starts, ends)
        } else {
            let starts: TimestampMicrosecondArray = ts.iter().map(|t| t.map(|t| spec.last_start(t))).collect();
            let ends = starts.iter().map(|s| s.map(|s| s + spec.window)).collect();
            (starts, ends)
        };
        Ok(ColumnarValue::Array(window_struct(starts, ends, args.return_type())?))
    }
}

/// `session_window(timeColumn, gapDuration)`: each row's initial session `[ts, ts + gap)`; the
/// streaming aggregation merges overlapping sessions per key.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SessionWindowFunc {
    signature: Signature,
}

impl Default for SessionWindowFunc {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for SessionWindowFunc {
    fn name(&self) -> &str {
        "session_window"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        match arg_types {
            [DataType::Timestamp(..), gap] => {
                let gap = match gap {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
                    DataType::Interval(_) | DataType::Duration(_) => {
                        DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano)
                    }
                    DataType::Null => DataType::Utf8,
                    other => return plan_err!("session_window() gap must be a duration, got {other}"),
                };
                Ok(vec![arg_types[0].clone(), gap])
            }
            _ => plan_err!("session_window() takes (timeColumn, gapDuration)"),
        }
    }
    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(window_struct_type(&arg_types[0]))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        Ok(with_event_time_metadata(
            Field::new(self.name(), window_struct_type(args.arg_fields[0].data_type()), true),
            &args.arg_fields[0],
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let ts = to_micros(&args.args[0].to_array(args.number_rows)?)?;
        let gaps = gap_micros(&args.args[1].to_array(args.number_rows)?)?;
        let bounds: Vec<Option<(i64, i64)>> = ts.iter().zip(&gaps).map(|(t, g)| Some((t?, t? + (*g)?))).collect();
        let starts: TimestampMicrosecondArray = bounds.iter().map(|b| b.map(|b| b.0)).collect();
        let ends: TimestampMicrosecondArray = bounds.iter().map(|b| b.map(|b| b.1)).collect();
        Ok(ColumnarValue::Array(window_struct(starts, ends, args.return_type())?))
    }
}

/// Per-row gap in µs; NULL (and unparsable text) yields no session.
fn gap_micros(arr: &ArrayRef) -> DFResult<Vec<Option<i64>>> {
    Ok(match arr.data_type() {
        DataType::Utf8 => arr
            .as_string::<i32>()
            .iter()
            .map(|s| s.and_then(|s| parse_interval(s).ok()).and_then(|iv| iv.fixed_micros("gap").ok()))
            .collect(),
        DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano) => arr
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .map(|v| {
                v.filter(|v| v.months == 0).map(|v| v.days as i64 * sluice_common::time::MICROS_PER_DAY + v.nanoseconds / 1000)
            })
            .collect(),
        other => return exec_err!("session_window() gap has unsupported type {other}"),
    })
}

/// `window_list(ts, dur, slide[, start])`: every window containing each row, newest first — the
/// expansion behind sliding windows (see `plan::sliding`); NULL times give no window.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WindowListFunc {
    signature: Signature,
}

impl Default for WindowListFunc {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for WindowListFunc {
    fn name(&self) -> &str {
        "window_list"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        WindowFunc::default().coerce_types(arg_types)
    }
    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::List(Arc::new(Field::new("item", window_struct_type(&arg_types[0]), true))))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        let item = with_event_time_metadata(
            Field::new("item", window_struct_type(args.arg_fields[0].data_type()), true),
            &args.arg_fields[0],
        );
        Ok(with_event_time_metadata(Field::new(self.name(), DataType::List(item), true), &args.arg_fields[0]))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let spec = WindowSpec::from_columnar(&args.args)?;
        let ts = to_micros(&args.args[0].to_array(args.number_rows)?)?;
        let mut offsets = vec![0i32];
        let (mut starts, mut ends) = (Vec::new(), Vec::new());
        for t in ts.iter() {
            if let Some(t) = t {
                for (s, e) in spec.windows_of(t) {
                    starts.push(s);
                    ends.push(e);
                }
            }
            offsets.push(starts.len() as i32);
        }
        let DataType::List(item) = args.return_type().clone() else { return exec_err!("window_list returns a list") };
        let structs =
            window_struct(TimestampMicrosecondArray::from(starts), TimestampMicrosecondArray::from(ends), item.data_type())?;
        let list = arrow::array::ListArray::try_new(item, arrow::buffer::OffsetBuffer::new(offsets.into()), structs, None)?;
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

/// `within_watermark(k1, k2, …)`: marks the keys of `SELECT DISTINCT ON (…)` as Spark's
/// `dropDuplicatesWithinWatermark(k1, k2, …)`. It has no meaning elsewhere.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WithinWatermarkFunc {
    signature: Signature,
}

impl Default for WithinWatermarkFunc {
    fn default() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for WithinWatermarkFunc {
    fn name(&self) -> &str {
        "within_watermark"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        exec_err!(
            "within_watermark(...) can only be used as the key list of SELECT DISTINCT ON (within_watermark(...)) on a stream"
        )
    }
}

/// `window_time(window)`: the window's end minus one microsecond.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WindowTimeFunc {
    signature: Signature,
}

impl Default for WindowTimeFunc {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for WindowTimeFunc {
    fn name(&self) -> &str {
        "window_time"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        match arg_types {
            [DataType::Struct(f)] if f.len() == 2 && f[1].name() == "end" => Ok(arg_types.to_vec()),
            _ => plan_err!("window_time() takes a window column (struct<start, end>)"),
        }
    }
    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        match &arg_types[0] {
            DataType::Struct(f) => Ok(f[1].data_type().clone()),
            _ => plan_err!("window_time() takes a window column"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let arr = args.args[0].to_array(args.number_rows)?;
        let s = arr.as_struct();
        let end = to_micros(s.column(1))?;
        let out: TimestampMicrosecondArray =
            end.iter().zip(0..).map(|(e, i)| if s.is_null(i) { None } else { e.map(|e| e - 1) }).collect();
        let tz = match args.return_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        Ok(ColumnarValue::Array(Arc::new(out.with_timezone_opt(tz))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    #[test]
    fn tumbling_and_sliding_assignment_like_spark() {
        // T14: 10-second tumbling windows.
        let w = WindowSpec::new(10 * SEC, 10 * SEC, 0).unwrap();
        assert_eq!(w.windows_of(34 * SEC).collect::<Vec<_>>(), vec![(30 * SEC, 40 * SEC)]);
        // T14: window 10s, slide 3s: 27s falls into 4 windows, newest first.
        let w = WindowSpec::new(10 * SEC, 3 * SEC, 0).unwrap();
        let starts: Vec<i64> = w.windows_of(27 * SEC).map(|(s, _)| s / SEC).collect();
        assert_eq!(starts, vec![27, 24, 21, 18]);
        assert_eq!(w.windows_of(34 * SEC).count(), 3);
        // T14: negative timestamps with a 5-second start offset.
        let w = WindowSpec::new(10 * SEC, 10 * SEC, 5 * SEC).unwrap();
        assert_eq!(w.windows_of(2 * SEC).collect::<Vec<_>>(), vec![(-5 * SEC, 5 * SEC)]);
        assert_eq!(w.windows_of(12 * SEC).collect::<Vec<_>>(), vec![(5 * SEC, 15 * SEC)]);
    }

    /// Brute force: the windows containing `ts`, from the definition (starts are `start` plus a
    /// multiple of `slide`, a window holds `[s, s + window)`), newest first.
    fn windows_by_definition(w: &WindowSpec, ts: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut s = w.start + (ts - w.start).div_euclid(w.slide) * w.slide;
        while s > ts - w.window {
            out.push((s, s + w.window));
            s -= w.slide;
        }
        out
    }

    #[test]
    fn a_panes_windows_are_the_windows_of_each_of_its_timestamps() {
        // The arithmetic is the same in any unit; small ones let every timestamp be tried.
        let specs = [(10, 2, 0), (10, 2, 1), (10, 2, -1), (12, 4, 3), (9, 3, 2), (9, 3, -2), (4, 2, 0), (6, 1, 0)];
        for (window, slide, start) in specs {
            let w = WindowSpec::new(window, slide, start).unwrap();
            let pane = w.panes().unwrap();
            assert_eq!((pane.window, pane.slide, pane.start), (slide, slide, start));
            // Negative and positive times, and every position inside a pane (its first and last
            // microsecond included).
            for ts in (-3 * window)..(3 * window) {
                let pane_start = pane.last_start(ts);
                assert!(pane_start <= ts && ts < pane_start + slide, "{ts} in its pane {pane_start}");
                let expected = windows_by_definition(&w, ts);
                assert_eq!(expected.len() as i64, window / slide);
                assert_eq!(w.windows_of_pane(pane_start).collect::<Vec<_>>(), expected, "{w:?} at {ts}");
                assert_eq!(w.windows_of(ts).collect::<Vec<_>>(), expected, "{w:?} at {ts}");
            }
        }
        // Seconds, by hand: window 10 s every 2 s starting at 1 s; -3 s is in the pane [-3, -1).
        let w = WindowSpec::new(10 * SEC, 2 * SEC, SEC).unwrap();
        assert_eq!(w.panes().unwrap().last_start(-3 * SEC), -3 * SEC);
        assert_eq!(w.panes().unwrap().last_start(-SEC - 1), -3 * SEC);
        let starts: Vec<i64> = w.windows_of_pane(-3 * SEC).map(|(s, _)| s / SEC).collect();
        assert_eq!(starts, vec![-3, -5, -7, -9, -11]);
    }

    #[test]
    fn only_sliding_windows_of_whole_slides_have_panes() {
        assert_eq!(WindowSpec::new(10, 10, 0).unwrap().panes(), None, "tumbling");
        assert_eq!(WindowSpec::new(10, 3, 0).unwrap().panes(), None, "10 % 3 != 0");
        assert_eq!(WindowSpec::new(10, 4, 1).unwrap().panes(), None, "10 % 4 != 0");
        assert_eq!(WindowSpec::new(10, 5, -4).unwrap().panes(), Some(WindowSpec { window: 5, slide: 5, start: -4 }));
        assert_eq!(WindowSpec::new(10, 1, 0).unwrap().windows_of_pane(7).count(), 10);
    }

    #[test]
    fn validation_messages_are_sparks() {
        assert!(WindowSpec::new(0, 1, 0).unwrap_err().to_string().contains("The window duration (0) must be greater than 0."));
        assert!(WindowSpec::new(5, 10, 0).unwrap_err().to_string().contains("must be less than or equal to the windowDuration"));
        assert!(WindowSpec::new(10, 5, 5).unwrap_err().to_string().contains("The absolute value of start time"));
    }
}
