//! Spark's `UnsupportedOperationChecker.checkForStreaming` (docs/semantics.md §5), over DataFusion plans.
//!
//! Users coming from Spark recognise its messages, so each rule fails with Spark's own text.
//! The checker is pure: it reads a logical plan and an output mode and says no, or describes
//! the stateful operators it found.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};

use sluice_common::error::{Result, SluiceError};

use super::compile::scanned_sources;
use sluice_common::OutputMode;

fn is_streaming(plan: &LogicalPlan) -> bool {
    !scanned_sources(plan).is_empty()
}

fn analysis_error(msg: impl Into<String>) -> SluiceError {
    SluiceError::user(msg.into())
}

/// Checks a query's plan against Spark's rules for `mode`.
pub fn check_streaming_plan(plan: &LogicalPlan, mode: OutputMode) -> Result<()> {
    if !is_streaming(plan) {
        return Err(analysis_error("Queries without streaming sources cannot be executed with writeStream.start()"));
    }
    // Spark checks the output mode against the aggregations before it walks the plan.
    if mode == OutputMode::Complete && !contains_streaming_aggregate(plan) {
        return Err(analysis_error(
            "Complete output mode not supported when there are no streaming aggregations on streaming DataFrames/Datasets",
        ));
    }
    let mut error: Option<SluiceError> = None;
    plan.apply_with_subqueries(|node| {
        if let Err(e) = check_node(node, mode) {
            error = Some(e);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn check_node(node: &LogicalPlan, mode: OutputMode) -> Result<()> {
    match node {
        LogicalPlan::Aggregate(agg) if is_streaming(&agg.input) => {
            if agg.aggr_expr.iter().any(is_distinct_aggregate) {
                return Err(analysis_error(
                    "Distinct aggregations are not supported on streaming DataFrames/Datasets. Consider using approx_count_distinct() instead.",
                ));
            }
            if agg.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
                return Err(analysis_error("Grouping Sets is not supported on streaming DataFrames/Datasets"));
            }
        }
        LogicalPlan::Sort(sort) if is_streaming(&sort.input) => {
            let over_aggregate = contains_streaming_aggregate(&sort.input);
            if !(over_aggregate && mode == OutputMode::Complete) {
                return Err(analysis_error(
                    "Sorting is not supported on streaming DataFrames/Datasets, unless it is on aggregated DataFrame/Dataset in Complete output mode",
                ));
            }
        }
        LogicalPlan::Limit(limit) if is_streaming(&limit.input) => {
            if limit.skip.is_some() {
                return Err(analysis_error("Offset is not supported on streaming DataFrames/Datasets"));
            }
            if mode == OutputMode::Update {
                return Err(analysis_error("Limits are not supported on streaming DataFrames/Datasets in Update output mode"));
            }
            return Err(analysis_error("LIMIT on a streaming query is not supported by sluice"));
        }
        LogicalPlan::Window(w) if is_streaming(&w.input) => {
            return Err(analysis_error(
                "[NON_TIME_WINDOW_NOT_SUPPORTED_IN_STREAMING] Window function is not supported on streaming DataFrames/Datasets.",
            ));
        }
        LogicalPlan::Union(u) => {
            let streams = u.inputs.iter().filter(|i| is_streaming(i)).count();
            if streams > 0 && streams < u.inputs.len() {
                return Err(analysis_error("Union between streaming and batch DataFrames/Datasets is not supported"));
            }
        }
        LogicalPlan::Join(join) => check_join(join.join_type, is_streaming(&join.left), is_streaming(&join.right))?,
        _ => {}
    }
    Ok(())
}

fn contains_streaming_aggregate(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|n| {
        if matches!(n, LogicalPlan::Aggregate(a) if is_streaming(&a.input)) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn is_distinct_aggregate(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|x| {
        if let Expr::AggregateFunction(f) = x {
            if f.params.distinct {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn check_join(join_type: JoinType, left_streaming: bool, right_streaming: bool) -> Result<()> {
    use JoinType::*;
    match (left_streaming, right_streaming) {
        (false, false) => Ok(()),
        (true, true) => match join_type {
            Inner | Left | Right | Full | LeftSemi => Ok(()),
            LeftAnti => Err(analysis_error("LeftAnti joins with a streaming DataFrame/Dataset on the right are not supported")),
            other => Err(analysis_error(format!("Join type {other} is not supported with streaming DataFrame/Dataset"))),
        },
        (stream_left, _) => match join_type {
            Inner => Ok(()),
            Left | LeftSemi if stream_left => Ok(()),
            Left | LeftSemi => Err(analysis_error(format!(
                "{} join with a streaming DataFrame/Dataset on the right and a static DataFrame/Dataset on the left is not supported",
                if join_type == Left { "LeftOuter" } else { "LeftSemi" }
            ))),
            LeftAnti if stream_left => Ok(()),
            LeftAnti => Err(analysis_error("LeftAnti joins with a streaming DataFrame/Dataset on the right are not supported")),
            Right if !stream_left => Ok(()),
            Right => Err(analysis_error(
                "RightOuter join with a streaming DataFrame/Dataset on the left and a static DataFrame/DataSet on the right not supported",
            )),
            Full => Err(analysis_error(format!(
                "FullOuter joins with streaming DataFrames/Datasets on the {} and a static DataFrame/Dataset on the {} is not supported",
                if stream_left { "left" } else { "right" },
                if stream_left { "right" } else { "left" }
            ))),
            // Spark's analyzed plans have no other join types; DataFusion's (RIGHT SEMI/ANTI,
            // mark joins) get Spark's catch-all refusal.
            other => Err(analysis_error(format!("Join type {other} is not supported with streaming DataFrame/Dataset"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_static_join_rules_follow_spark() {
        assert!(check_join(JoinType::Inner, true, false).is_ok());
        assert!(check_join(JoinType::Left, true, false).is_ok());
        let e = check_join(JoinType::Left, false, true).unwrap_err();
        assert!(e.message.starts_with("LeftOuter join with a streaming DataFrame/Dataset on the right"));
        let e = check_join(JoinType::Full, true, false).unwrap_err();
        assert!(e.message.contains("on the left and a static DataFrame/Dataset on the right"));
        assert!(check_join(JoinType::Right, false, true).is_ok());
        let e = check_join(JoinType::RightSemi, false, true).unwrap_err();
        assert_eq!(e.message, "Join type RightSemi is not supported with streaming DataFrame/Dataset");
    }

    #[test]
    fn stream_stream_join_types_follow_spark() {
        for t in [JoinType::Inner, JoinType::Left, JoinType::Right, JoinType::Full, JoinType::LeftSemi] {
            assert!(check_join(t, true, true).is_ok(), "{t}");
        }
        let e = check_join(JoinType::LeftAnti, true, true).unwrap_err();
        assert_eq!(e.message, "LeftAnti joins with a streaming DataFrame/Dataset on the right are not supported");
        let e = check_join(JoinType::RightAnti, true, true).unwrap_err();
        assert_eq!(e.message, "Join type RightAnti is not supported with streaming DataFrame/Dataset");
    }
}
