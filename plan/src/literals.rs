//! Spark's numeric literal typing: `1.5` is a `DECIMAL`, `1.5e10` is a `DOUBLE`.
//!
//! DataFusion can read every fractional literal as a decimal or every one as a double; Spark
//! decides by the presence of an exponent. With decimals enabled in the planner, this rewrite
//! turns exponent literals into explicit doubles before planning.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{visit_expressions_mut, CastKind, DataType, Expr, Value, ValueWithSpan, VisitMut};

/// Rewrites every exponent literal in `node` to `CAST('<literal>' AS DOUBLE)`.
pub fn type_numeric_literals<V: VisitMut>(node: &mut V) {
    let _ = visit_expressions_mut(node, |e| {
        if let Expr::Value(ValueWithSpan { value: Value::Number(n, _), .. }) = e {
            if n.contains(['e', 'E']) {
                let text = n.clone();
                *e = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(Expr::Value(Value::SingleQuotedString(text).into())),
                    data_type: DataType::Double(datafusion::sql::sqlparser::ast::ExactNumberInfo::None),
                    array: false,
                    format: None,
                };
            }
        }
        ControlFlow::<()>::Continue(())
    });
}
