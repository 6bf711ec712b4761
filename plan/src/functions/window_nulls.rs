//! `window()` and `session_window()` drop rows whose time is NULL, as Spark's TimeWindowing and
//! SessionWindowing rules do: a projection or aggregation using them gets a
//! `time IS NOT NULL` filter on its input.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{Aggregate, Expr, Filter, LogicalPlan, Projection};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule.
#[derive(Debug, Default)]
pub struct DropNullWindowTimes;

/// Time arguments of every `window`/`session_window` call in `exprs`.
fn window_times(exprs: &[Expr]) -> Vec<Expr> {
    let mut out: Vec<Expr> = Vec::new();
    for e in exprs {
        let _ = e.apply(|x| {
            if let Expr::ScalarFunction(f) = x {
                if matches!(f.func.name(), "window" | "session_window") {
                    if let Some(t) = f.args.first() {
                        if !out.contains(t) {
                            out.push(t.clone());
                        }
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    out
}

fn not_null_filter(times: Vec<Expr>, input: &Arc<LogicalPlan>) -> DFResult<Option<Arc<LogicalPlan>>> {
    let Some(predicate) = times.into_iter().map(|t| t.is_not_null()).reduce(Expr::and) else { return Ok(None) };
    // Idempotent: the analyzer runs again when a plan is optimized.
    if let LogicalPlan::Filter(f) = input.as_ref() {
        if f.predicate == predicate {
            return Ok(None);
        }
    }
    Ok(Some(Arc::new(LogicalPlan::Filter(Filter::try_new(predicate, Arc::clone(input))?))))
}

impl AnalyzerRule for DropNullWindowTimes {
    fn name(&self) -> &str {
        "drop_null_window_times"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DFResult<LogicalPlan> {
        plan.transform_up(|node| match &node {
            LogicalPlan::Projection(p) => match not_null_filter(window_times(&p.expr), &p.input)? {
                Some(input) => Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(p.expr.clone(), input)?))),
                None => Ok(Transformed::no(node)),
            },
            LogicalPlan::Aggregate(a) => match not_null_filter(window_times(&a.group_expr), &a.input)? {
                Some(input) => Ok(Transformed::yes(LogicalPlan::Aggregate(Aggregate::try_new(
                    input,
                    a.group_expr.clone(),
                    a.aggr_expr.clone(),
                )?))),
                None => Ok(Transformed::no(node)),
            },
            _ => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }
}
