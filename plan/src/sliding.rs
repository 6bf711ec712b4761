//! Sliding windows: one input row belongs to several windows (docs/semantics.md §4), which a scalar
//! `window()` cannot express. Before a streaming aggregation is planned, each sliding
//! `window(ts, dur, slide[, start])` grouping key is replaced by an expansion — `window_list`
//! yields the row's windows (newest first, as Spark's Expand does) and `unnest` makes one row
//! per window — while the key keeps its name, so the plan above is unchanged.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlanBuilder, ScalarUDF};

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

/// The window parameters of a sliding `window(...)` call, or `None` for anything else.
fn sliding_window(e: &Expr) -> Option<&ScalarFunction> {
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
    (spec.window != spec.slide).then_some(f)
}

/// Rewrites `agg` so that sliding windows expand rows; `None` when it has none.
pub fn expand_sliding_windows(agg: &Aggregate) -> Result<Option<Aggregate>> {
    if !agg.group_expr.iter().any(|e| sliding_window(e).is_some()) {
        return Ok(None);
    }
    let mut input = LogicalPlanBuilder::from(agg.input.as_ref().clone());
    // Only the columns the aggregation reads go through the expansion: `unnest` copies every
    // column it carries once per window, and wide unused columns (strings) dominated its cost.
    let referenced: HashSet<&Column> = agg.group_expr.iter().chain(&agg.aggr_expr).flat_map(|e| e.column_refs()).collect();
    let mut carried: Vec<Column> = input.schema().columns().into_iter().filter(|c| referenced.contains(c)).collect();
    let mut group_expr = Vec::with_capacity(agg.group_expr.len());
    for (i, e) in agg.group_expr.iter().enumerate() {
        match sliding_window(e) {
            Some(f) => {
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
    Ok(Some(Aggregate::try_new(input, group_expr, agg.aggr_expr.clone())?))
}
