//! Spark's timestamp functions where DataFusion's differ: `timestamp_seconds/millis/micros`,
//! and `current_timestamp()`/`now()` pinned to the batch timestamp recorded in `offsets/N`, so a
//! replayed batch computes exactly what its first attempt did (docs/semantics.md §1, §2).

use std::sync::Arc;

use arrow::array::{Array, AsArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{exec_err, plan_err, Result as DFResult, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use sluice_common::types::{timestamp_type, UTC};

/// `timestamp_seconds`, `timestamp_millis`, `timestamp_micros`: a number of units since the epoch
/// as a `TIMESTAMP`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampFromUnits {
    name: &'static str,
    micros_per_unit: i64,
    signature: Signature,
}

impl TimestampFromUnits {
    /// `timestamp_seconds`.
    pub fn seconds() -> Self {
        Self::new("timestamp_seconds", 1_000_000)
    }
    /// `timestamp_millis`.
    pub fn millis() -> Self {
        Self::new("timestamp_millis", 1_000)
    }
    /// `timestamp_micros`.
    pub fn micros() -> Self {
        Self::new("timestamp_micros", 1)
    }
    fn new(name: &'static str, micros_per_unit: i64) -> Self {
        Self { name, micros_per_unit, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for TimestampFromUnits {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        match arg_types {
            [t] if t.is_integer() || t.is_null() => Ok(vec![DataType::Int64]),
            [t] if t.is_floating() || matches!(t, DataType::Decimal128(..)) && self.micros_per_unit == 1_000_000 => {
                Ok(vec![DataType::Float64])
            }
            _ => plan_err!("{}() takes one numeric argument, got {arg_types:?}", self.name),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(timestamp_type())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let arr = args.args[0].to_array(args.number_rows)?;
        let mult = self.micros_per_unit;
        let out: TimestampMicrosecondArray = match arr.data_type() {
            DataType::Float64 => arr.as_primitive::<Float64Type>().iter().map(|v| v.map(|v| (v * mult as f64) as i64)).collect(),
            _ => {
                let ints = cast(&arr, &DataType::Int64)?;
                ints.as_primitive::<Int64Type>().iter().map(|v| v.and_then(|v| v.checked_mul(mult))).collect()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out.with_timezone(UTC))))
    }
}

/// `current_timestamp()` / `now()`: the batch timestamp, as a `TIMESTAMP`.
///
/// Replaced by a literal during planning from the session's query start time, which the executor
/// sets to the batch's `batchTimestampMs` for every task.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CurrentTimestamp {
    signature: Signature,
    aliases: Vec<String>,
}

impl Default for CurrentTimestamp {
    fn default() -> Self {
        Self { signature: Signature::nullary(Volatility::Stable), aliases: vec!["now".to_string()] }
    }
}

impl ScalarUDFImpl for CurrentTimestamp {
    fn name(&self) -> &str {
        "current_timestamp"
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DFResult<FieldRef> {
        Ok(Arc::new(Field::new(self.name(), timestamp_type(), false)))
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(timestamp_type())
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        exec_err!("current_timestamp() was not replaced by the batch timestamp")
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DFResult<ExprSimplifyResult> {
        let Some(now) = info.query_execution_start_time() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        Ok(ExprSimplifyResult::Simplified(Expr::Literal(
            ScalarValue::TimestampMicrosecond(Some(now.timestamp_micros()), Some(UTC.into())),
            None,
        )))
    }
}
