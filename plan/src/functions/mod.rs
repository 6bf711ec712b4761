//! Spark's SQL functions and conversions where DataFusion's differ or are missing.
//!
//! Users paste expressions from Spark jobs; `timestamp_seconds(v)`, `window(ts, '5 minutes')` or
//! `CAST(ts AS BIGINT)` must mean in sluice what they mean in Spark.

pub mod conversions;
pub mod spark_cast;
pub mod time;
pub mod window;
pub mod window_nulls;

use std::sync::Arc;

use datafusion::execution::session_state::SessionState;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::ScalarUDF;

/// Registers sluice's Spark functions, replacing DataFusion's where names collide.
pub fn register_spark_functions(state: &mut SessionState) {
    let udfs: Vec<ScalarUDF> = vec![
        ScalarUDF::new_from_impl(time::TimestampFromUnits::seconds()),
        ScalarUDF::new_from_impl(time::TimestampFromUnits::millis()),
        ScalarUDF::new_from_impl(time::TimestampFromUnits::micros()),
        ScalarUDF::new_from_impl(time::CurrentTimestamp::default()),
        ScalarUDF::new_from_impl(window::WindowFunc::default()),
        ScalarUDF::new_from_impl(window::SessionWindowFunc::default()),
        ScalarUDF::new_from_impl(window::WindowTimeFunc::default()),
        ScalarUDF::new_from_impl(window::WindowListFunc::default()),
        ScalarUDF::new_from_impl(window::WithinWatermarkFunc::default()),
        ScalarUDF::new_from_impl(conversions::ToTemporal::timestamp()),
        ScalarUDF::new_from_impl(conversions::ToTemporal::date()),
        ScalarUDF::new_from_impl(conversions::DateFormat::default()),
        ScalarUDF::new_from_impl(conversions::UnixTime::new("unix_seconds", 1_000_000)),
        ScalarUDF::new_from_impl(conversions::UnixTime::new("unix_millis", 1_000)),
        ScalarUDF::new_from_impl(conversions::UnixTime::new("unix_micros", 1)),
        ScalarUDF::new_from_impl(conversions::UnixTime::new("unix_timestamp", 1_000_000)),
        ScalarUDF::new_from_impl(conversions::FromJson::default()),
    ];
    for udf in udfs {
        // Registration only fails for invalid names, which these are not.
        let _ = state.register_udf(Arc::new(udf));
    }
    // Spark's names for aggregates DataFusion calls differently.
    let aliases = [
        (datafusion::functions_aggregate::approx_distinct::approx_distinct_udaf(), "approx_count_distinct"),
        (datafusion::functions_aggregate::first_last::first_value_udaf(), "first"),
        (datafusion::functions_aggregate::first_last::last_value_udaf(), "last"),
    ];
    for (udaf, alias) in aliases {
        let _ = state.register_udaf(Arc::new(udaf.as_ref().clone().with_aliases([alias])));
    }
    state.add_analyzer_rule(Arc::new(spark_cast::SparkCasts));
    state.add_analyzer_rule(Arc::new(window_nulls::DropNullWindowTimes));
}
