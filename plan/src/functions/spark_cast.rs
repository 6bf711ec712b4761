//! Spark's `CAST` semantics where they differ from Arrow's, applied as an analyzer rule.
//!
//! `CAST(ts AS BIGINT)` is *seconds* in Spark (micros in Arrow), `CAST(5 AS TIMESTAMP)` is five
//! seconds after the epoch, `CAST('2024-01-01 10:00' AS TIMESTAMP)` uses Spark's lenient parser,
//! and timestamps and doubles print as Spark prints them. Spark's own test oracles depend on
//! these (`window.start.cast("long")`), so every cast in a plan — written by the user or
//! inserted by type coercion — is checked and, where Spark differs, replaced by [`SparkCast`].

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DFResult};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use sluice_common::time::to_micros;
use sluice_common::time::MICROS_PER_SECOND;
use sluice_formats::datetime::{string_to_date, string_to_timestamp};
use sluice_formats::spark_string::value_to_spark_string;

/// Which Spark-specific conversion a cast needs, if any.
fn spark_conversion(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (Timestamp(..), t) if t.is_integer() || t.is_floating() => true,
        (f, Timestamp(..)) if f.is_integer() || f.is_floating() => true,
        (Utf8 | LargeUtf8 | Utf8View, Timestamp(..) | Date32) => true,
        (Timestamp(..) | Float32 | Float64 | Struct(_) | List(_) | LargeList(_) | Map(..), Utf8 | LargeUtf8 | Utf8View) => true,
        _ => false,
    }
}

/// The analyzer rule that swaps Arrow casts for Spark casts.
#[derive(Debug, Default)]
pub struct SparkCasts;

impl AnalyzerRule for SparkCasts {
    fn name(&self) -> &str {
        "spark_casts"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DFResult<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite_node).map(|t| t.data)
    }
}

fn rewrite_node(plan: LogicalPlan) -> DFResult<Transformed<LogicalPlan>> {
    let mut schema: DFSchema = merge_schema(&plan.inputs());
    if let LogicalPlan::TableScan(ts) = &plan {
        schema.merge(&DFSchema::try_from_qualified_schema(ts.table_name.clone(), &ts.source.schema())?);
    }
    let preserver = NamePreserver::new(&plan);
    let rewritten = plan.map_expressions(|expr| {
        let name = preserver.save(&expr);
        expr.transform_up(|e| rewrite_expr(e, &schema)).map(|t| t.update_data(|e| name.restore(e)))
    })?;
    if rewritten.transformed {
        rewritten.map_data(|p| p.recompute_schema())
    } else {
        Ok(rewritten)
    }
}

fn rewrite_expr(e: Expr, schema: &DFSchema) -> DFResult<Transformed<Expr>> {
    let (inner, to) = match &e {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => (expr, field.data_type()),
        _ => return Ok(Transformed::no(e)),
    };
    let Ok(from) = inner.get_type(schema) else { return Ok(Transformed::no(e)) };
    if !spark_conversion(&from, to) {
        return Ok(Transformed::no(e));
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(SparkCast::new(to.clone())));
    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![inner.as_ref().clone()]))))
}

/// A cast with Spark's (non-ANSI) semantics: failures are NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SparkCast {
    to: DataType,
    signature: Signature,
}

impl SparkCast {
    /// A cast to `to`.
    pub fn new(to: DataType) -> Self {
        Self { to, signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for SparkCast {
    fn name(&self) -> &str {
        "spark_cast"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(self.to.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let out = spark_cast(&input, &self.to)?;
        Ok(ColumnarValue::Array(out))
    }
}

/// Casts `input` to `to` with Spark's rules for the pairs in [`spark_conversion`].
pub fn spark_cast(input: &ArrayRef, to: &DataType) -> DFResult<ArrayRef> {
    use DataType::*;
    let micros_to_target = |micros: TimestampMicrosecondArray| -> DFResult<ArrayRef> {
        let arr: ArrayRef = Arc::new(micros.with_timezone(sluice_common::types::UTC));
        Ok(if arr.data_type() == to { arr } else { cast(&arr, to)? })
    };
    match (input.data_type(), to) {
        (Timestamp(..), t) if t.is_integer() => {
            let micros = to_micros(input)?;
            let secs: Int64Array = micros.iter().map(|v| v.map(|v| v.div_euclid(MICROS_PER_SECOND))).collect();
            Ok(cast(&(Arc::new(secs) as ArrayRef), to)?)
        }
        (Timestamp(..), t) if t.is_floating() => {
            let micros = to_micros(input)?;
            let secs: Float64Array = micros.iter().map(|v| v.map(|v| v as f64 / MICROS_PER_SECOND as f64)).collect();
            Ok(cast(&(Arc::new(secs) as ArrayRef), to)?)
        }
        (f, Timestamp(..)) if f.is_integer() => {
            let longs = cast(input, &Int64)?;
            micros_to_target(
                longs.as_primitive::<Int64Type>().iter().map(|v| v.and_then(|s| s.checked_mul(MICROS_PER_SECOND))).collect(),
            )
        }
        (f, Timestamp(..)) if f.is_floating() => {
            let d = cast(input, &Float64)?;
            micros_to_target(
                d.as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.filter(|v| v.is_finite()).map(|v| (v * MICROS_PER_SECOND as f64) as i64))
                    .collect(),
            )
        }
        (Utf8 | LargeUtf8 | Utf8View, Timestamp(..)) => {
            let s = cast(input, &Utf8)?;
            micros_to_target(s.as_string::<i32>().iter().map(|v| v.and_then(string_to_timestamp)).collect())
        }
        (Utf8 | LargeUtf8 | Utf8View, Date32) => {
            let s = cast(input, &Utf8)?;
            Ok(Arc::new(arrow::array::Date32Array::from_iter(s.as_string::<i32>().iter().map(|v| v.and_then(string_to_date)))))
        }
        (Timestamp(u, tz), Utf8 | LargeUtf8 | Utf8View) => {
            // Render in UTC as Spark does for the session time zone.
            let normalized: ArrayRef = if *u == TimeUnit::Microsecond && tz.is_some() {
                Arc::clone(input)
            } else {
                Arc::new(to_micros(input)?.with_timezone(sluice_common::types::UTC))
            };
            let strings: StringArray = (0..normalized.len()).map(|i| value_to_spark_string(normalized.as_ref(), i)).collect();
            Ok(cast(&(Arc::new(strings) as ArrayRef), to)?)
        }
        (_, Utf8 | LargeUtf8 | Utf8View) => {
            let strings: StringArray = (0..input.len()).map(|i| value_to_spark_string(input.as_ref(), i)).collect();
            Ok(cast(&(Arc::new(strings) as ArrayRef), to)?)
        }
        _ => Ok(cast(input, to)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(values: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    }

    #[test]
    fn timestamps_cast_to_seconds_like_spark() {
        let out = spark_cast(&ts(vec![Some(15_000_000), Some(-1), None]), &DataType::Int64).unwrap();
        let out = out.as_primitive::<Int64Type>();
        assert_eq!((out.value(0), out.value(1), out.is_null(2)), (15, -1, true));
        let out =
            spark_cast(&(Arc::new(Int64Array::from(vec![25])) as ArrayRef), &sluice_common::types::timestamp_type()).unwrap();
        assert_eq!(out.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(0), 25_000_000);
    }

    #[test]
    fn strings_and_doubles_follow_spark() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("2016-03-27 19:39:34"), Some("garbage")]));
        let out = spark_cast(&s, &sluice_common::types::timestamp_type()).unwrap();
        let out = out.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(out.value(0), 1_459_107_574_000_000);
        assert!(out.is_null(1));
        let d: ArrayRef = Arc::new(Float64Array::from(vec![1.0e10, 0.5]));
        let out = spark_cast(&d, &DataType::Utf8).unwrap();
        assert_eq!(out.as_string::<i32>().value(0), "1.0E10");
        let out = spark_cast(&ts(vec![Some(1_459_107_574_500_000)]), &DataType::Utf8).unwrap();
        assert_eq!(out.as_string::<i32>().value(0), "2016-03-27 19:39:34.5");
    }
}
