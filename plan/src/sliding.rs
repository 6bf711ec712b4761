//! Sliding windows: one input row belongs to several windows (docs/semantics.md §4), which a scalar
//! `window()` cannot express. Before a streaming aggregation is planned, each sliding
//! `window(ts, dur, slide[, start])` grouping key is replaced by an expansion — `window_list`
//! yields the row's windows (newest first, as Spark's Expand does) and `unnest` makes one row
//! per window — while the key keeps its name, so the plan above is unchanged. The expanded
//! aggregation defines the partial rows (group columns, accumulator states) that the shuffle
//! carries and the state stores.
//!
//! Expansion copies every row `window/slide` times before anything is aggregated. When the
//! window is a whole number of slides, every slide-aligned *pane* `[p, p + slide)` lies inside
//! exactly the same windows, so the map side can instead aggregate rows per pane and attribute
//! each pane's partial result to its windows (see [`PaneAggregate`]) — one row per pane and key
//! where expansion made one per row and window. That is only sound where merging partial states
//! gives exactly what aggregating the rows would ([`merges_exactly`]); elsewhere rows expand.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{lit, Aggregate, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, ScalarUDF};

use crate::functions::window::{WindowListFunc, WindowSpec};
use sluice_common::error::Result;

fn literal_args(args: &[Expr]) -> Vec<Option<ScalarValue>> {
    args.iter()
        .map(|a| match a {
            Expr::Literal(v, _) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// A sliding `window(...)` call with its parameters, or `None` for anything else.
fn sliding_window(e: &Expr) -> Option<(&ScalarFunction, WindowSpec)> {
    let Expr::ScalarFunction(f) = (match e {
        Expr::Alias(a) => a.expr.as_ref(),
        other => other,
    }) else {
        return None;
    };
    if f.func.name() != "window" {
        return None;
    }
    let lits = literal_args(&f.args);
    let refs: Vec<Option<&ScalarValue>> = std::iter::once(None).chain(lits.iter().skip(1).map(Option::as_ref)).collect();
    let spec = WindowSpec::from_args(&refs).ok()?;
    (spec.window != spec.slide).then_some((f, spec))
}

/// A streaming aggregation with sliding window keys, as the map side runs it.
#[derive(Debug, Clone)]
pub struct SlidingAggregate {
    /// The aggregation over rows expanded into their windows: what defines the partial rows
    /// and the state, and what the map side runs when there is no pane form.
    pub expanded: Aggregate,
    /// The pane form, when the windows and aggregates allow one.
    pub panes: Option<PaneAggregate>,
}

/// The map side's pane form of a sliding-window aggregation: the same aggregates over the
/// unexpanded input, grouped by the start of each row's pane in place of the window key. Each
/// of its partial rows stands for every row of one pane and key; attributed to each of the
/// pane's windows ([`WindowSpec::windows_of_pane`]) and merged per window and key, they are the
/// partial rows the expanded aggregation would have produced.
#[derive(Debug, Clone)]
pub struct PaneAggregate {
    /// The `Aggregate` node grouped by pane start (a timestamp) at `window_index`.
    pub plan: LogicalPlan,
    /// Position of the sliding window key among the group keys.
    pub window_index: usize,
    /// The sliding window.
    pub spec: WindowSpec,
}

/// Plans `agg`'s sliding windows; `None` when it has none.
pub fn plan_sliding_windows(agg: &Aggregate) -> Result<Option<SlidingAggregate>> {
    let windows: Vec<(usize, &ScalarFunction, WindowSpec)> =
        agg.group_expr.iter().enumerate().filter_map(|(i, e)| sliding_window(e).map(|(f, spec)| (i, f, spec))).collect();
    if windows.is_empty() {
        return Ok(None);
    }
    let panes = match windows.as_slice() {
        [(index, f, spec)] => pane_aggregate(agg, *index, f, *spec)?,
        // Several sliding keys multiply each other's windows; rows expand.
        _ => None,
    };
    Ok(Some(SlidingAggregate { expanded: expand(agg)?, panes }))
}

/// `agg` with every sliding window key expanded into one row per window.
fn expand(agg: &Aggregate) -> Result<Aggregate> {
    let mut input = LogicalPlanBuilder::from(agg.input.as_ref().clone());
    // Only the columns the aggregation reads go through the expansion: `unnest` copies every
    // column it carries once per window, and wide unused columns (strings) dominated its cost.
    let referenced: HashSet<&Column> = agg.group_expr.iter().chain(&agg.aggr_expr).flat_map(|e| e.column_refs()).collect();
    let mut carried: Vec<Column> = input.schema().columns().into_iter().filter(|c| referenced.contains(c)).collect();
    let mut group_expr = Vec::with_capacity(agg.group_expr.len());
    for (i, e) in agg.group_expr.iter().enumerate() {
        match sliding_window(e) {
            Some((f, _)) => {
                let name = format!("__sliding_window_{i}");
                let list = Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(ScalarUDF::new_from_impl(WindowListFunc::default())),
                    f.args.clone(),
                ));
                let mut exprs: Vec<Expr> = carried.iter().cloned().map(Expr::Column).collect();
                exprs.push(list.alias(name.as_str()));
                input = input.project(exprs)?.unnest_column(Column::from_name(name.as_str()))?;
                carried.push(Column::from_name(name.as_str()));
                // Keep the key's original name so the plan above resolves unchanged.
                let original = agg.schema.field(i).name().clone();
                group_expr.push(Expr::Column(Column::from_name(name)).alias(original));
            }
            None => group_expr.push(e.clone()),
        }
    }
    let input = Arc::new(input.build()?);
    Ok(Aggregate::try_new(input, group_expr, agg.aggr_expr.clone())?)
}

/// The pane form of `agg`, whose only sliding key is `window` at `index`, if it has one.
fn pane_aggregate(agg: &Aggregate, index: usize, window: &ScalarFunction, spec: WindowSpec) -> Result<Option<PaneAggregate>> {
    let Some(pane) = spec.panes() else { return Ok(None) };
    let schema = agg.input.schema();
    if !agg.aggr_expr.iter().all(|e| aggregate_merges_exactly(e, schema)) {
        return Ok(None);
    }
    let Some(time) = window.args.first() else { return Ok(None) };
    // The pane is a tumbling window of one slide (durations as µs literals); grouping by its
    // start, a plain timestamp, keeps the hash aggregation on primitive keys.
    let pane_window = Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::clone(&window.func),
        vec![time.clone(), lit(pane.window), lit(pane.slide), lit(pane.start)],
    ));
    let mut group_expr = agg.group_expr.clone();
    group_expr[index] = get_field(pane_window, "start").alias(format!("__pane_{index}"));
    let plan = LogicalPlan::Aggregate(Aggregate::try_new(Arc::clone(&agg.input), group_expr, agg.aggr_expr.clone())?);
    Ok(Some(PaneAggregate { plan, window_index: index, spec }))
}

/// [`merges_exactly`] for an aggregate expression of the `Aggregate` node over `schema`.
fn aggregate_merges_exactly(e: &Expr, schema: &DFSchema) -> bool {
    let f = match e {
        Expr::AggregateFunction(f) => f,
        Expr::Alias(a) => match a.expr.as_ref() {
            Expr::AggregateFunction(f) => f,
            _ => return false,
        },
        _ => return false,
    };
    let p = &f.params;
    let types: Option<Vec<DataType>> = p.args.iter().map(|a| value_type(a, schema)).collect();
    match types {
        Some(types) => merges_exactly(f.func.name(), p.distinct, !p.order_by.is_empty(), &types),
        None => false,
    }
}

/// The type of the values an aggregate argument carries: an integer cast to a float (how
/// `avg` of integers is coerced) still carries integers.
fn value_type(e: &Expr, schema: &DFSchema) -> Option<DataType> {
    let t = e.get_type(schema).ok()?;
    let inner = match e {
        Expr::Cast(c) => Some(c.expr.as_ref()),
        Expr::TryCast(c) => Some(c.expr.as_ref()),
        _ => None,
    };
    match inner.map(|i| i.get_type(schema)) {
        Some(Ok(from)) if t.is_floating() && from.is_integer() => Some(from),
        _ => Some(t),
    }
}

/// Whether the aggregate `name` gives the same result, to the bit, when its rows are
/// aggregated per pane and the panes' partial states merged, in whatever grouping and order,
/// as when it aggregates the rows one by one; `value_types` are its arguments' value types
/// (see [`value_type`]).
///
/// Counting and boolean and bitwise folds are associative and commutative, and so are extremes
/// of anything but floats: DataFusion keeps the first of equal floats (`-0.0` and `0.0`) and
/// lets a NaN be replaced by whatever follows it, so their extremes depend on the order rows
/// meet. Sums are exact over integers (wrapping) and decimals, and over integers carried as
/// floats while every partial sum stays below 2^53; float sums are not — regrouping the
/// additions changes the rounding — nor is anything DISTINCT (left to the expansion, which
/// keeps its distinct-value states out of the pane step), ordered (`ORDER BY` within the
/// aggregate) or order-sensitive (`array_agg`, `first_value`, `string_agg`: merging panes
/// would reorder their rows), nor an aggregate not named here.
pub fn merges_exactly(name: &str, distinct: bool, ordered: bool, value_types: &[DataType]) -> bool {
    if distinct || ordered {
        return false;
    }
    let exact_sum = |t: &DataType| {
        t.is_integer()
            || matches!(
                t,
                DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..)
            )
    };
    match name {
        "count" | "bool_and" | "bool_or" | "bit_and" | "bit_or" | "bit_xor" => true,
        "min" | "max" => !value_types.iter().any(DataType::is_floating),
        "sum" | "avg" => value_types.iter().all(exact_sum),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::functions_aggregate::expr_fn::{array_agg, avg, count, count_distinct, max, min, sum};
    use datafusion::logical_expr::{cast, col};

    use crate::functions::window::WindowFunc;

    fn input() -> LogicalPlan {
        let schema = Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
        ]);
        let table = datafusion::logical_expr::table_scan(Some("t"), &schema, None).unwrap();
        table.build().unwrap()
    }

    fn window(args: &[&str]) -> Expr {
        let mut exprs = vec![col("ts")];
        exprs.extend(args.iter().map(|a| lit(*a)));
        Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(WindowFunc::default())), exprs))
    }

    fn aggregate(group: Vec<Expr>, aggr: Vec<Expr>) -> Aggregate {
        let plan = LogicalPlanBuilder::from(input()).aggregate(group, aggr).unwrap().build().unwrap();
        match plan {
            LogicalPlan::Aggregate(a) => a,
            other => panic!("not an aggregate: {other}"),
        }
    }

    fn panes_of(group: Vec<Expr>, aggr: Vec<Expr>) -> Option<PaneAggregate> {
        plan_sliding_windows(&aggregate(group, aggr)).unwrap().expect("a sliding window").panes
    }

    #[test]
    fn whole_slides_with_exactly_mergeable_aggregates_take_panes() {
        let aggs = vec![count(lit(1)), sum(col("n")), min(col("n")), max(col("k")), avg(cast(col("n"), DataType::Float64))];
        let panes = panes_of(vec![col("k"), window(&["10 seconds", "2 seconds", "1 second"])], aggs).expect("panes");
        assert_eq!(panes.window_index, 1);
        assert_eq!(panes.spec, WindowSpec::new(10_000_000, 2_000_000, 1_000_000).unwrap());
        let LogicalPlan::Aggregate(a) = &panes.plan else { panic!("not an aggregate") };
        // The pane key is a timestamp; the other key and the aggregates are as written.
        assert!(matches!(a.schema.field(1).data_type(), DataType::Timestamp(TimeUnit::Microsecond, _)));
        assert_eq!(a.schema.field(0).name(), "k");
        assert_eq!(a.aggr_expr.len(), 5);
    }

    #[test]
    fn everything_else_expands() {
        let w = || window(&["10 seconds", "2 seconds"]);
        // The window is not a whole number of slides.
        assert!(panes_of(vec![window(&["10 seconds", "3 seconds"])], vec![count(lit(1))]).is_none());
        // DISTINCT, float sums and extremes, and order-sensitive aggregates.
        assert!(panes_of(vec![w()], vec![count(lit(1)), count_distinct(col("k"))]).is_none());
        assert!(panes_of(vec![w()], vec![sum(col("x"))]).is_none());
        assert!(panes_of(vec![w()], vec![avg(col("x"))]).is_none());
        assert!(panes_of(vec![w()], vec![count(lit(1)), max(col("x"))]).is_none());
        assert!(panes_of(vec![w()], vec![array_agg(col("n"))]).is_none());
        // Two sliding keys.
        assert!(panes_of(vec![w(), window(&["4 seconds", "2 seconds"])], vec![count(lit(1))]).is_none());
        // Tumbling windows need no expansion at all.
        assert!(plan_sliding_windows(&aggregate(vec![window(&["10 seconds"])], vec![count(lit(1))])).unwrap().is_none());
    }

    #[test]
    fn exact_merges() {
        assert!(merges_exactly("count", false, false, &[DataType::Utf8]));
        assert!(merges_exactly("max", false, false, &[DataType::Utf8]));
        assert!(merges_exactly("min", false, false, &[DataType::Int64]));
        assert!(!merges_exactly("max", false, false, &[DataType::Float64]));
        assert!(!merges_exactly("min", false, false, &[DataType::Float32]));
        assert!(merges_exactly("sum", false, false, &[DataType::Int32]));
        assert!(merges_exactly("avg", false, false, &[DataType::Decimal128(10, 2)]));
        assert!(!merges_exactly("sum", false, false, &[DataType::Float32]));
        assert!(!merges_exactly("count", true, false, &[DataType::Int64]));
        assert!(!merges_exactly("max", false, true, &[DataType::Int64]));
        assert!(!merges_exactly("first_value", false, false, &[DataType::Int64]));
        assert!(!merges_exactly("string_agg", false, false, &[DataType::Utf8, DataType::Utf8]));
    }
}
