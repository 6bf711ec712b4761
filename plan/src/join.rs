//! Stream-stream joins at planning time — what Spark's `StreamingSymmetricHashJoinExec` is given
//! by its planner and by `StreamingSymmetricHashJoinHelper` (docs/semantics.md §7).
//!
//! A join of two streams keeps each side's rows in state, keyed by the equi-join keys, so a row
//! arriving later on one side still meets the rows the other side sent earlier. This module
//! reads a DataFusion `Join` node and works out, purely:
//!
//! * the equi-join keys of each side (from `USING`/`on` pairs and from `a = b` conjuncts of the
//!   condition whose sides reference one input each);
//! * the rest of the condition, split as Spark splits it: conjuncts over one side only (a row
//!   failing its side's conjuncts can never match, so it is never stored — and an outer join
//!   emits it NULL-padded at once) and conjuncts over both (checked on each candidate pair);
//! * each side's *state watermark*: when a watermarked column is among the join keys (a window,
//!   or a timestamp), both sides evict by that key; otherwise a side evicts by its own event-time
//!   column, at a bound solved from a time-range condition against the other side's watermark
//!   (`leftTime > rightTime - INTERVAL 5 MINUTES` …), with Spark's −1 ms for `<=`/`>=`.
//!
//! The solver mirrors Spark's `StreamingJoinHelper.getStateValueWatermark`: each comparison
//! conjunct is moved to the form `terms < 0`, its terms collected (columns, intervals, numeric
//! seconds), and solved for this side's time column with the other side's watermark column
//! replaced by the watermark. A conjunct it cannot read gives no bound, never an error.

use datafusion::common::{Column, DFSchema, ExprSchema, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Join, JoinType, LogicalPlan, Operator};

use arrow::datatypes::DataType;
use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchWatermarks;

use crate::streaming::{watermark_delay, EventTimeColumn};

/// Which input of the join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinSide {
    /// The join's left input.
    Left,
    /// The join's right input.
    Right,
}

impl JoinSide {
    /// The name of this side's state store directory (`state/<op>/<partition>/<name>/`).
    pub fn store_name(self) -> &'static str {
        match self {
            JoinSide::Left => "left",
            JoinSide::Right => "right",
        }
    }
}

/// One solved conjunct: `thisTime > coef·watermark + offset` (strict), or `>=` (`inclusive`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolvedBound {
    /// How many times the watermark enters the bound (±1 in every readable condition).
    pub watermark_coef: f64,
    /// Constant part of the bound in µs.
    pub offset_us: f64,
    /// The conjunct was `<=`/`>=`: the state watermark is one ms lower (Spark's −1).
    pub inclusive: bool,
}

impl SolvedBound {
    /// Spark's arithmetic: in doubles, µs, truncated to ms; −1 for an inclusive bound.
    fn state_watermark_ms(&self, watermark_ms: i64) -> i64 {
        let us = self.watermark_coef * (watermark_ms as f64) * 1000.0 + self.offset_us;
        (us / 1000.0) as i64 - i64::from(self.inclusive)
    }
}

/// A side's value-based state watermark: the minimum over the conjuncts that bound its time.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWatermarkBound {
    /// Every conjunct that bounds this side's time column from below.
    pub conjuncts: Vec<SolvedBound>,
}

impl StateWatermarkBound {
    /// The state watermark (ms) for an event-time watermark: rows of this side with an event
    /// time at or below it can no longer match anything that is not late.
    pub fn state_watermark_ms(&self, watermark_ms: i64) -> i64 {
        self.conjuncts.iter().map(|c| c.state_watermark_ms(watermark_ms)).min().unwrap_or(i64::MIN)
    }
}

/// How a side's state is evicted as the watermark moves.
#[derive(Debug, Clone, PartialEq)]
pub enum StateEviction {
    /// No watermark bounds this side: its state grows for as long as the query runs.
    Never,
    /// Join key `index` carries the watermark (a window, compared on its end, or a timestamp):
    /// a key at or below the watermark is evicted with all its rows.
    Key {
        /// Position of the watermarked key among the join keys.
        index: usize,
        /// The key is a `struct<start, end>` window.
        is_window: bool,
    },
    /// This side's event-time column `column` at or below the solved state watermark.
    Value {
        /// This side's watermark column in its input.
        column: EventTimeColumn,
        /// The bound solved from the join condition.
        bound: StateWatermarkBound,
    },
}

impl StateEviction {
    /// The state watermark in ms for this batch's eviction watermark, if the side evicts.
    pub fn state_watermark_ms(&self, watermark_ms: i64) -> Option<i64> {
        match self {
            StateEviction::Never => None,
            StateEviction::Key { .. } => Some(watermark_ms),
            StateEviction::Value { bound, .. } => Some(bound.state_watermark_ms(watermark_ms)),
        }
    }
}

/// One input of a stream-stream join.
#[derive(Debug, Clone)]
pub struct JoinSideSpec {
    /// The input plan (stateless, over streams and static tables).
    pub plan: LogicalPlan,
    /// Equi-join key expressions over the input.
    pub keys: Vec<Expr>,
    /// Conjuncts of the condition over this side only: rows failing them never match.
    pub pre_filter: Option<Expr>,
    /// The input's event-time (watermark) column: rows at or below the late watermark are dropped.
    pub event_time: Option<EventTimeColumn>,
    /// How the side's state is evicted.
    pub eviction: StateEviction,
    /// The bound a range condition puts on this side's time (whether or not this side has a
    /// watermark column to apply it to): what the outer-join check asks for.
    pub range_bound: Option<StateWatermarkBound>,
}

/// A stream-stream join, ready for the executors.
#[derive(Debug, Clone)]
pub struct StreamJoin {
    /// Inner, left/right/full outer or left semi.
    pub join_type: JoinType,
    /// The left input.
    pub left: JoinSideSpec,
    /// The right input.
    pub right: JoinSideSpec,
    /// Conjuncts over both sides, checked on each pair with equal keys; over `left ++ right`.
    pub post_filter: Option<Expr>,
    /// A watermarked column is among the join keys.
    pub watermark_in_keys: bool,
}

impl StreamJoin {
    /// The side.
    pub fn side(&self, side: JoinSide) -> &JoinSideSpec {
        match side {
            JoinSide::Left => &self.left,
            JoinSide::Right => &self.right,
        }
    }

    /// True when some side's state is evicted by the watermark (a moving watermark then
    /// justifies a no-data batch).
    pub fn evicts_by_watermark(&self) -> bool {
        self.left.eviction != StateEviction::Never || self.right.eviction != StateEviction::Never
    }

    /// The watermark of the join's output (Spark's `produceOutputWatermark`): the input
    /// watermark, held back to the sides' state watermarks, since a row still in state can
    /// still be emitted.
    pub fn output_watermark_ms(&self, input_ms: i64) -> i64 {
        let l = self.left.eviction.state_watermark_ms(input_ms);
        let r = self.right.eviction.state_watermark_ms(input_ms);
        [Some(input_ms), l, r].into_iter().flatten().min().unwrap_or(input_ms)
    }

    /// The watermarks a stateful operator above this join sees (Spark 3.5's per-operator
    /// watermark propagation), from the batch's input watermarks.
    pub fn output_watermarks(&self, input: &BatchWatermarks) -> BatchWatermarks {
        BatchWatermarks {
            late_ms: self.output_watermark_ms(input.late_ms),
            eviction_ms: self.output_watermark_ms(input.eviction_ms),
        }
    }

    /// Spark's checker rule for outer and semi joins: a watermarked join key, or a range
    /// condition that bounds the preserved side's state by the other side's watermark (for a
    /// full outer join, either side's).
    pub fn check_watermarks(&self) -> Result<()> {
        let name = match self.join_type {
            JoinType::Left => "LeftOuter",
            JoinType::Right => "RightOuter",
            JoinType::Full => "FullOuter",
            JoinType::LeftSemi => "LeftSemi",
            _ => return Ok(()),
        };
        let bounded = |side: &JoinSideSpec| side.range_bound.is_some();
        let ok = self.watermark_in_keys
            || match self.join_type {
                JoinType::Left | JoinType::LeftSemi => bounded(&self.left),
                JoinType::Right => bounded(&self.right),
                // Spark asks for either side: the other's state then grows with the query.
                _ => bounded(&self.left) || bounded(&self.right),
            };
        if ok {
            return Ok(());
        }
        Err(SluiceError::user(format!(
            "Stream-stream {name} join between two streaming DataFrame/Datasets is not supported without a watermark in the join keys, or a watermark on the nullable side and an appropriate range condition"
        )))
    }
}

/// Which side's columns an expression references: `None` for no column, `Some(None)` for both.
fn sides_of(e: &Expr, left: &DFSchema, right: &DFSchema) -> Option<Option<JoinSide>> {
    let mut seen: Option<Option<JoinSide>> = None;
    for c in e.column_refs() {
        let s = if left.has_column(c) {
            JoinSide::Left
        } else if right.has_column(c) {
            JoinSide::Right
        } else {
            return Some(None);
        };
        seen = match seen {
            None => Some(Some(s)),
            Some(Some(prev)) if prev == s => Some(Some(s)),
            _ => Some(None),
        };
    }
    seen
}

fn conjoin(exprs: Vec<Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(Expr::and)
}

/// The watermark delay of a plain column over `schema`.
fn column_delay(e: &Expr, schema: &DFSchema) -> Option<i64> {
    match e {
        Expr::Column(c) => schema.field_from_column(c).ok().and_then(|f| watermark_delay(f)),
        Expr::Alias(a) => column_delay(&a.expr, schema),
        _ => None,
    }
}

/// The first column carrying a watermark (Spark's `findEventTimeColumn`): a timestamp, or a
/// window over one (compared on its end).
fn event_time_column(schema: &DFSchema) -> Option<EventTimeColumn> {
    schema.fields().iter().enumerate().find_map(|(index, f)| {
        watermark_delay(f).map(|delay_ms| EventTimeColumn {
            index,
            is_window: matches!(f.data_type(), DataType::Struct(_)),
            delay_ms,
        })
    })
}

/// Reads a `Join` of two streams.
pub fn plan_stream_join(join: &Join) -> Result<StreamJoin> {
    let (ls, rs) = (join.left.schema().as_ref(), join.right.schema().as_ref());
    let mut left_keys: Vec<Expr> = Vec::new();
    let mut right_keys: Vec<Expr> = Vec::new();
    for (l, r) in &join.on {
        left_keys.push(l.clone());
        right_keys.push(r.clone());
    }
    let mut pre = (Vec::new(), Vec::new());
    let mut post = Vec::new();
    let conjuncts: Vec<Expr> = join.filter.iter().flat_map(|f| split_conjunction(f).into_iter().cloned()).collect();
    for c in &conjuncts {
        if let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = c {
            match (sides_of(left, ls, rs), sides_of(right, ls, rs)) {
                (Some(Some(JoinSide::Left)), Some(Some(JoinSide::Right))) => {
                    left_keys.push(left.as_ref().clone());
                    right_keys.push(right.as_ref().clone());
                    continue;
                }
                (Some(Some(JoinSide::Right)), Some(Some(JoinSide::Left))) => {
                    left_keys.push(right.as_ref().clone());
                    right_keys.push(left.as_ref().clone());
                    continue;
                }
                _ => {}
            }
        }
        match sides_of(c, ls, rs) {
            Some(Some(JoinSide::Left)) => pre.0.push(c.clone()),
            Some(Some(JoinSide::Right)) => pre.1.push(c.clone()),
            _ => post.push(c.clone()),
        }
    }
    if left_keys.is_empty() {
        return Err(SluiceError::user("Stream-stream join without equality predicate is not supported"));
    }
    for (l, r) in left_keys.iter().zip(&right_keys) {
        let (lt, rt) = (l.get_type(ls)?, r.get_type(rs)?);
        if lt != rt {
            return Err(SluiceError::user(format!(
                "stream-stream join keys {l} and {r} have different types ({lt} and {rt}); cast one to the other's type"
            )));
        }
    }

    // Spark's `joinKeyOrdinalForWatermark`: the first watermarked key on the left, else on the right.
    let key_ordinal = left_keys
        .iter()
        .position(|k| column_delay(k, ls).is_some())
        .or_else(|| right_keys.iter().position(|k| column_delay(k, rs).is_some()));
    // The range conditions are read from everything that is not an equi-join key.
    let range_conjuncts: Vec<&Expr> = conjuncts.iter().filter(|c| !is_equi_key(c, ls, rs)).collect();
    let side = |this: JoinSide, plan: &LogicalPlan, keys: Vec<Expr>, pre_filter: Vec<Expr>| {
        let (own, other) = match this {
            JoinSide::Left => (ls, rs),
            JoinSide::Right => (rs, ls),
        };
        let range_bound = solve_state_watermark(&range_conjuncts, own, other);
        let event_time = event_time_column(own);
        let eviction = match (key_ordinal, event_time, &range_bound) {
            (Some(index), _, _) => {
                let is_window = matches!(keys[index].get_type(own), Ok(DataType::Struct(_)));
                StateEviction::Key { index, is_window }
            }
            (None, Some(column), Some(bound)) => StateEviction::Value { column, bound: bound.clone() },
            _ => StateEviction::Never,
        };
        JoinSideSpec { plan: plan.clone(), keys, pre_filter: conjoin(pre_filter), event_time, eviction, range_bound }
    };
    Ok(StreamJoin {
        join_type: join.join_type,
        left: side(JoinSide::Left, &join.left, left_keys, pre.0),
        right: side(JoinSide::Right, &join.right, right_keys, pre.1),
        post_filter: conjoin(post),
        watermark_in_keys: key_ordinal.is_some(),
    })
}

fn is_equi_key(c: &Expr, ls: &DFSchema, rs: &DFSchema) -> bool {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = c else { return false };
    matches!(
        (sides_of(left, ls, rs), sides_of(right, ls, rs)),
        (Some(Some(JoinSide::Left)), Some(Some(JoinSide::Right))) | (Some(Some(JoinSide::Right)), Some(Some(JoinSide::Left)))
    )
}

/// A term of a linear time expression: a column (±) or a constant in µs.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Column { column: Column, negated: bool },
    Constant(f64),
}

/// Collects the terms of `e` (Spark's `collectTerms`): sums, differences, negations, casts to
/// numbers or timestamps, columns, and literals — intervals in µs (months refused), numbers as
/// seconds. `None` when anything else appears.
fn collect_terms(e: &Expr, negate: bool, out: &mut Vec<Term>) -> Option<()> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Plus, right }) => {
            collect_terms(left, negate, out)?;
            collect_terms(right, negate, out)
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Minus, right }) => {
            collect_terms(left, negate, out)?;
            collect_terms(right, !negate, out)
        }
        Expr::Negative(inner) => collect_terms(inner, !negate, out),
        Expr::Alias(a) => collect_terms(&a.expr, negate, out),
        Expr::Cast(c) if is_time_or_number(c.field.data_type()) => collect_terms(&c.expr, negate, out),
        Expr::TryCast(c) if is_time_or_number(c.field.data_type()) => collect_terms(&c.expr, negate, out),
        Expr::Column(c) => {
            out.push(Term::Column { column: c.clone(), negated: negate });
            Some(())
        }
        Expr::Literal(v, _) => {
            let us = literal_micros(v)?;
            out.push(Term::Constant(if negate { -us } else { us }));
            Some(())
        }
        _ => None,
    }
}

fn is_time_or_number(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Timestamp(..))
}

/// A literal's value in µs, as Spark's solver reads it.
fn literal_micros(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            Some(i.days as f64 * 86_400_000_000.0 + (i.nanoseconds / 1000) as f64)
        }
        ScalarValue::IntervalDayTime(Some(i)) => Some(i.days as f64 * 86_400_000_000.0 + i.milliseconds as f64 * 1000.0),
        ScalarValue::DurationMicrosecond(Some(us)) => Some(*us as f64),
        ScalarValue::DurationMillisecond(Some(ms)) => Some(*ms as f64 * 1000.0),
        ScalarValue::DurationSecond(Some(s)) => Some(*s as f64 * 1_000_000.0),
        ScalarValue::TimestampMicrosecond(Some(us), _) => Some(*us as f64 * 1_000_000.0),
        v if v.data_type().is_numeric() => {
            let d = v.cast_to(&DataType::Float64).ok()?;
            match d {
                ScalarValue::Float64(Some(x)) => Some(x * 1_000_000.0),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The conjuncts as Spark's analyzer leaves them: `BETWEEN` becomes `>=` and `<=`.
fn comparisons(conjuncts: &[&Expr]) -> Vec<(Expr, Operator, Expr)> {
    let mut out = Vec::new();
    for c in conjuncts {
        match c {
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(op, Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq) =>
            {
                out.push((left.as_ref().clone(), *op, right.as_ref().clone()))
            }
            Expr::Between(b) if !b.negated => {
                out.push((b.expr.as_ref().clone(), Operator::GtEq, b.low.as_ref().clone()));
                out.push((b.expr.as_ref().clone(), Operator::LtEq, b.high.as_ref().clone()));
            }
            _ => {}
        }
    }
    out
}

/// Spark's `getStateValueWatermark` for the side whose columns are `own`, against the
/// watermark of the side whose columns are `other`: `None` when no conjunct bounds it.
fn solve_state_watermark(conjuncts: &[&Expr], own: &DFSchema, other: &DFSchema) -> Option<StateWatermarkBound> {
    if !other.fields().iter().any(|f| watermark_delay(f).is_some()) {
        return None;
    }
    let solved: Vec<SolvedBound> = comparisons(conjuncts)
        .into_iter()
        .filter_map(|(l, op, r)| match op {
            Operator::Lt => solve_less_than(&l, &r, own, other, false),
            Operator::LtEq => solve_less_than(&l, &r, own, other, true),
            Operator::Gt => solve_less_than(&r, &l, own, other, false),
            Operator::GtEq => solve_less_than(&r, &l, own, other, true),
            _ => None,
        })
        .collect();
    (!solved.is_empty()).then_some(StateWatermarkBound { conjuncts: solved })
}

/// Solves `l < r` for this side's time: it must appear once, on the greater side, so that the
/// rest (with the other side's watermark column at the watermark) is a lower bound for it.
fn solve_less_than(l: &Expr, r: &Expr, own: &DFSchema, other: &DFSchema, inclusive: bool) -> Option<SolvedBound> {
    let mut terms = Vec::new();
    collect_terms(l, false, &mut terms)?;
    collect_terms(r, true, &mut terms)?;
    let mut own_columns = Vec::new();
    let mut other_columns = Vec::new();
    for t in &terms {
        if let Term::Column { column, .. } = t {
            if own.has_column(column) {
                if !own_columns.contains(column) {
                    own_columns.push(column.clone());
                }
            } else if other.has_column(column) && !other_columns.contains(column) {
                other_columns.push(column.clone());
            }
        }
    }
    if own_columns.len() > 1 || other_columns.len() > 1 {
        return None;
    }
    let is_own_time =
        |c: &Column| own.field_from_column(c).map(|f| matches!(f.data_type(), DataType::Timestamp(..))).unwrap_or(false);
    let constraint: Vec<&Term> =
        terms.iter().filter(|t| matches!(t, Term::Column { column, .. } if is_own_time(column))).collect();
    let [Term::Column { negated: true, .. }] = constraint.as_slice() else { return None };
    let mut bound = SolvedBound { watermark_coef: 0.0, offset_us: 0.0, inclusive };
    for t in &terms {
        match t {
            Term::Constant(us) => bound.offset_us += us,
            Term::Column { column, .. } if is_own_time(column) => {}
            Term::Column { column, negated } => {
                // Only the other side's watermark column can be replaced by a value.
                let f = other.field_from_column(column).ok()?;
                watermark_delay(f)?;
                bound.watermark_coef += if *negated { -1.0 } else { 1.0 };
            }
        }
    }
    Some(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, TimeUnit};
    use datafusion::logical_expr::{lit, Between};
    use datafusion::scalar::ScalarValue;
    use std::collections::HashMap;

    fn schema(q: &str, watermarked: bool) -> DFSchema {
        let mut t = Field::new(format!("{q}Time"), DataType::Timestamp(TimeUnit::Microsecond, None), true);
        if watermarked {
            t = t.with_metadata(HashMap::from([(sluice_common::types::WATERMARK_DELAY_KEY.to_string(), "10000".to_string())]));
        }
        let fields = vec![Field::new(format!("{q}Key"), DataType::Int64, true), t];
        DFSchema::try_from_qualified_schema(q, &arrow::datatypes::Schema::new(fields)).unwrap()
    }

    /// A qualified column, case kept (`col` would lowercase it).
    fn time(q: &str) -> Expr {
        Expr::Column(Column::new(Some(q), format!("{q}Time")))
    }

    fn secs(s: i64) -> Expr {
        lit(ScalarValue::new_interval_mdn(0, 0, s * 1_000_000_000))
    }

    #[test]
    fn between_range_gives_both_sides_the_watermark_minus_the_range_minus_one_ms() {
        // T13: leftTime BETWEEN rightTime - 5 s AND rightTime + 5 s.
        let (l, r) = (schema("l", true), schema("r", true));
        let cond =
            Expr::Between(Between::new(Box::new(time("l")), false, Box::new(time("r") - secs(5)), Box::new(time("r") + secs(5))));
        let left = solve_state_watermark(&[&cond], &l, &r).unwrap();
        let right = solve_state_watermark(&[&cond], &r, &l).unwrap();
        assert_eq!(left.state_watermark_ms(20_000), 14_999);
        assert_eq!(right.state_watermark_ms(20_000), 14_999);
    }

    #[test]
    fn strict_bounds_have_no_minus_one_and_the_tightest_conjunct_wins() {
        let (l, r) = (schema("l", true), schema("r", true));
        // leftTime > rightTime - 8 s: left state wm = wm - 8 s; nothing bounds the right side.
        let c1 = time("l").gt(time("r") - secs(8));
        assert_eq!(solve_state_watermark(&[&c1], &l, &r).unwrap().state_watermark_ms(60_000), 52_000);
        assert_eq!(solve_state_watermark(&[&c1], &r, &l), None);
        // Two lower bounds on the left: the lower state watermark is kept.
        let c2 = time("l").gt_eq(time("r") - secs(20));
        assert_eq!(solve_state_watermark(&[&c1, &c2], &l, &r).unwrap().state_watermark_ms(60_000), 39_999);
    }

    #[test]
    fn no_watermark_on_the_other_side_or_month_intervals_give_no_bound() {
        let (l, r) = (schema("l", true), schema("r", false));
        let c = time("l").gt(time("r") - secs(8));
        assert_eq!(solve_state_watermark(&[&c], &l, &r), None);
        let r = schema("r", true);
        let month = lit(ScalarValue::new_interval_mdn(1, 0, 0));
        let c = time("l").gt(time("r") - month);
        assert_eq!(solve_state_watermark(&[&c], &l, &r), None);
    }

    #[test]
    fn truncation_follows_spark_doubles() {
        let b = SolvedBound { watermark_coef: 1.0, offset_us: -1500.0, inclusive: false };
        // (1000 ms·1000 − 1500 µs) / 1000 = 998.5 → 998.
        assert_eq!(b.state_watermark_ms(1000), 998);
    }
}
