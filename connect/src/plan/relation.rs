//! Connect relations → one SELECT, built as a [`Frame`] that later operations extend while
//! they can (a projection or filter over a join keeps the join's qualifiers) and wrap as a
//! derived table when they cannot.
//!
//! Projections over a stream read are also kept as *layers*: if `withWatermark` follows them
//! (the Kafka tutorials' `selectExpr` → `from_json` → `select("data.*")` → `withWatermark`),
//! they become the stream's computed columns, since sluice, like Spark's engine, tracks event
//! time on the stream's columns.

use arrow::datatypes::{DataType, SchemaRef};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::expr::{self, identifier_parts, string_literal, Scope, SqlExpr};
use super::{Declarations, PlanEnv, PlannedFrame, StreamDecl, TableDecl};
use crate::error::{ConnectError, Result};
use crate::proto::expression::ExprType;
use crate::proto::relation::RelType;
use crate::proto::{join, read, set_operation, Expression, Relation};
use crate::types::{arrow_to_proto, proto_to_sql, quote_ident, schema_text_to_ddl};

/// A SELECT under construction.
#[derive(Debug, Clone, Default)]
struct Frame {
    /// The FROM clause: one table (`_s0`, `(…) AS e`) or a join of them.
    from: String,
    /// The name the columns are qualified by when `from` is one relation.
    alias: Option<String>,
    /// Select items; `None` is `*`.
    items: Option<Vec<String>>,
    /// WHERE conjuncts.
    filters: Vec<String>,
    group_by: Option<Vec<String>>,
    /// `DISTINCT` or `DISTINCT ON (…)`.
    distinct: Option<String>,
    order_by: Vec<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    /// Plan ids of the DataFrames visible in `from`, with their qualifier.
    scope: Vec<(i64, String)>,
    /// This DataFrame's own plan id.
    plan_id: Option<i64>,
    /// Projections over one stream read, for `withWatermark`.
    chain: Option<Chain>,
    /// Whether it reads a stream.
    streaming: bool,
}

/// Projection layers over stream `stream` (index in [`Declarations::streams`]).
#[derive(Debug, Clone)]
struct Chain {
    stream: usize,
    layers: Vec<Vec<(String, String)>>,
}

impl Scope for Frame {
    fn qualifier(&self, plan_id: i64) -> Option<String> {
        self.scope.iter().find(|(id, _)| *id == plan_id).map(|(_, q)| q.clone())
    }
}

impl Frame {
    fn table(name: &str, plan_id: Option<i64>) -> Self {
        let q = quote_ident(name);
        Self {
            from: q.clone(),
            alias: Some(name.to_string()),
            scope: plan_id.map(|id| vec![(id, name.to_string())]).unwrap_or_default(),
            plan_id,
            ..Default::default()
        }
    }

    /// Nothing but FROM and WHERE: a projection or another filter can be added in place.
    fn is_plain(&self) -> bool {
        self.items.is_none()
            && self.group_by.is_none()
            && self.distinct.is_none()
            && self.order_by.is_empty()
            && self.limit.is_none()
            && self.offset.is_none()
    }

    fn sql(&self) -> String {
        let mut s = String::from("SELECT ");
        if let Some(d) = &self.distinct {
            s.push_str(d);
            s.push(' ');
        }
        match &self.items {
            Some(items) => s.push_str(&items.join(", ")),
            None => s.push('*'),
        }
        s.push_str(" FROM ");
        s.push_str(&self.from);
        if !self.filters.is_empty() {
            s.push_str(" WHERE ");
            s.push_str(&self.filters.join(" AND "));
        }
        if let Some(g) = self.group_by.as_ref().filter(|g| !g.is_empty()) {
            s.push_str(" GROUP BY ");
            s.push_str(&g.join(", "));
        }
        if !self.order_by.is_empty() {
            s.push_str(" ORDER BY ");
            s.push_str(&self.order_by.join(", "));
        }
        if let Some(n) = self.limit {
            s.push_str(&format!(" LIMIT {n}"));
        }
        if let Some(n) = self.offset {
            s.push_str(&format!(" OFFSET {n}"));
        }
        s
    }
}

/// Plans relations against a session.
pub struct Planner<'e> {
    env: &'e dyn PlanEnv,
    decls: Declarations,
    next_alias: usize,
}

impl<'e> Planner<'e> {
    /// A planner reading the session through `env`.
    pub fn new(env: &'e dyn PlanEnv) -> Self {
        Self { env, decls: Declarations::default(), next_alias: 0 }
    }

    /// Plans `rel` as one SELECT and what it reads.
    pub async fn plan(mut self, rel: &Relation) -> Result<PlannedFrame> {
        let frame = self.relation(rel).await?;
        Ok(PlannedFrame { decls: self.decls, select: frame.sql() })
    }

    fn fresh(&mut self, prefix: &str) -> String {
        let n = self.next_alias;
        self.next_alias += 1;
        format!("_{prefix}{n}")
    }

    fn wrap(&mut self, f: Frame, alias: Option<&str>) -> Frame {
        let alias = alias.map(str::to_string).unwrap_or_else(|| self.fresh("q"));
        let mut scope: Vec<(i64, String)> = f.scope.iter().map(|(id, _)| (*id, alias.clone())).collect();
        if let Some(id) = f.plan_id {
            scope.push((id, alias.clone()));
        }
        Frame {
            from: format!("({}) AS {}", f.sql(), quote_ident(&alias)),
            alias: Some(alias),
            scope,
            plan_id: f.plan_id,
            chain: f.chain,
            streaming: f.streaming,
            ..Default::default()
        }
    }

    async fn schema_of(&self, f: &Frame) -> Result<SchemaRef> {
        let probe = PlannedFrame { decls: self.decls.clone(), select: f.sql() };
        self.env.schema(&probe).await
    }

    fn relation<'a>(&'a mut self, rel: &'a Relation) -> BoxFuture<'a, Result<Frame>> {
        async move {
            let plan_id = rel.common.as_ref().and_then(|c| c.plan_id);
            let Some(kind) = &rel.rel_type else {
                return Err(ConnectError::invalid_plan("a relation without a type"));
            };
            let mut frame = self.relation_kind(kind, plan_id).await?;
            frame.plan_id = plan_id.or(frame.plan_id);
            if let (Some(id), Some(alias)) = (plan_id, frame.alias.clone()) {
                if !frame.scope.iter().any(|(i, _)| *i == id) {
                    frame.scope.push((id, alias));
                }
            }
            Ok(frame)
        }
        .boxed()
    }

    async fn input(&mut self, input: &Option<Box<Relation>>, what: &str) -> Result<Frame> {
        let rel = input.as_deref().ok_or_else(|| ConnectError::invalid_plan(format!("{what} without its input")))?;
        self.relation(rel).await
    }

    async fn relation_kind(&mut self, kind: &RelType, plan_id: Option<i64>) -> Result<Frame> {
        match kind {
            RelType::Read(r) => self.read(r, plan_id).await,
            RelType::Project(p) => {
                let f = self.input(&p.input, "select").await?;
                self.project(f, &p.expressions).await
            }
            RelType::Filter(p) => {
                let f = self.input(&p.input, "filter").await?;
                let cond = p.condition.as_ref().ok_or_else(|| ConnectError::invalid_plan("filter without a condition"))?;
                let mut f = if f.is_plain() { f } else { self.wrap(f, None) };
                f.filters.push(expr::to_sql(cond, &f)?.sql);
                // A watermark above a filter sees only the rows it keeps; sluice's stream-level
                // watermark would see them all, so withWatermark is refused above a filter.
                f.chain = None;
                Ok(f)
            }
            RelType::Aggregate(a) => {
                let plain =
                    [crate::proto::aggregate::GroupType::Groupby as i32, crate::proto::aggregate::GroupType::Unspecified as i32];
                if !plain.contains(&a.group_type) {
                    let kind = crate::proto::aggregate::GroupType::try_from(a.group_type)
                        .map(|g| g.as_str_name().trim_start_matches("GROUP_TYPE_").to_lowercase())
                        .unwrap_or_else(|_| "unknown".into());
                    return Err(ConnectError::unsupported(format!("groupBy with {kind}")));
                }
                let f = self.input(&a.input, "groupBy").await?;
                let f = if f.is_plain() { f } else { self.wrap(f, None) };
                let keys = a.grouping_expressions.iter().map(|e| expr::to_sql(e, &f)).collect::<Result<Vec<_>>>()?;
                let aggs = a.aggregate_expressions.iter().map(|e| expr::to_sql(e, &f)).collect::<Result<Vec<_>>>()?;
                let mut items: Vec<String> = keys.iter().map(SqlExpr::item).collect();
                items.extend(aggs.iter().map(SqlExpr::item));
                Ok(Frame { items: Some(items), group_by: Some(keys.iter().map(|k| k.sql.clone()).collect()), chain: None, ..f })
            }
            RelType::Deduplicate(d) => {
                let f = self.input(&d.input, "dropDuplicates").await?;
                let f = if f.is_plain() { f } else { self.wrap(f, None) };
                let within = d.within_watermark.unwrap_or(false);
                let keys: Vec<String> = if d.all_columns_as_keys.unwrap_or(false) || d.column_names.is_empty() {
                    if !within {
                        return Ok(Frame { distinct: Some("DISTINCT".into()), chain: None, ..f });
                    }
                    self.schema_of(&f).await?.fields().iter().map(|c| quote_ident(c.name())).collect()
                } else {
                    d.column_names.iter().map(|c| quote_ident(c)).collect()
                };
                let on = if within { format!("within_watermark({})", keys.join(", ")) } else { keys.join(", ") };
                Ok(Frame { distinct: Some(format!("DISTINCT ON ({on})")), chain: None, ..f })
            }
            RelType::Join(j) => self.join(j).await,
            RelType::SubqueryAlias(a) => {
                if !a.qualifier.is_empty() {
                    return Err(ConnectError::unsupported("a qualified alias"));
                }
                let f = self.input(&a.input, "alias").await?;
                let chain = f.chain.clone();
                let mut w = self.wrap(f, Some(&a.alias));
                w.chain = chain;
                Ok(w)
            }
            RelType::WithWatermark(w) => {
                let f = self.input(&w.input, "withWatermark").await?;
                self.with_watermark(f, &w.event_time, &w.delay_threshold).await
            }
            RelType::WithColumns(w) => {
                let f = self.input(&w.input, "withColumns").await?;
                let f = if f.is_plain() { f } else { self.wrap(f, None) };
                let schema = self.schema_of(&f).await?;
                let mut new: Vec<(String, SqlExpr)> = Vec::new();
                for a in &w.aliases {
                    let [name] = a.name.as_slice() else {
                        return Err(ConnectError::unsupported("withColumns with a multi-part name"));
                    };
                    let e = a.expr.as_deref().ok_or_else(|| ConnectError::invalid_plan("withColumn without its expression"))?;
                    new.push((name.clone(), expr::to_sql(e, &f)?));
                }
                let mut items: Vec<(String, String)> = Vec::new();
                for field in schema.fields() {
                    match new.iter().position(|(n, _)| n == field.name()) {
                        Some(i) => {
                            let (n, e) = new.remove(i);
                            items.push((n, e.sql));
                        }
                        None => items.push((field.name().clone(), quote_ident(field.name()))),
                    }
                }
                items.extend(new.into_iter().map(|(n, e)| (n, e.sql)));
                Ok(self.select_items(f, items))
            }
            RelType::WithColumnsRenamed(w) => {
                let f = self.input(&w.input, "withColumnsRenamed").await?;
                let f = if f.is_plain() { f } else { self.wrap(f, None) };
                let schema = self.schema_of(&f).await?;
                let mut renames: Vec<(String, String)> =
                    w.renames.iter().map(|r| (r.col_name.clone(), r.new_col_name.clone())).collect();
                renames.extend(w.rename_columns_map.iter().map(|(a, b)| (a.clone(), b.clone())));
                let items = schema
                    .fields()
                    .iter()
                    .map(|c| {
                        let to = renames.iter().find(|(from, _)| from == c.name()).map(|(_, to)| to.clone());
                        (to.unwrap_or_else(|| c.name().clone()), quote_ident(c.name()))
                    })
                    .collect();
                Ok(self.select_items(f, items))
            }
            RelType::Drop(d) => {
                let f = self.input(&d.input, "drop").await?;
                let f = if f.is_plain() { f } else { self.wrap(f, None) };
                let schema = self.schema_of(&f).await?;
                let mut gone: Vec<String> = d.column_names.clone();
                for c in &d.columns {
                    match &c.expr_type {
                        Some(ExprType::UnresolvedAttribute(a)) => {
                            gone.extend(identifier_parts(&a.unparsed_identifier)?.last().cloned())
                        }
                        _ => return Err(ConnectError::unsupported("drop by an expression that is not a column")),
                    }
                }
                let items = schema
                    .fields()
                    .iter()
                    .filter(|c| !gone.contains(c.name()))
                    .map(|c| (c.name().clone(), quote_ident(c.name())))
                    .collect();
                Ok(self.select_items(f, items))
            }
            RelType::ToDf(t) => {
                let f = self.input(&t.input, "toDF").await?;
                let f = if f.is_plain() { f } else { self.wrap(f, None) };
                let schema = self.schema_of(&f).await?;
                if schema.fields().len() != t.column_names.len() {
                    return Err(ConnectError::illegal_argument(format!(
                        "The number of columns doesn't match. Old column names ({}): {}. New column names ({}): {}",
                        schema.fields().len(),
                        schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
                        t.column_names.len(),
                        t.column_names.join(", ")
                    )));
                }
                let items =
                    schema.fields().iter().zip(&t.column_names).map(|(c, n)| (n.clone(), quote_ident(c.name()))).collect();
                Ok(self.select_items(f, items))
            }
            RelType::Sort(s) => {
                let f = self.input(&s.input, "orderBy").await?;
                let mut f = if f.order_by.is_empty() && f.limit.is_none() && f.offset.is_none() && f.distinct.is_none() {
                    f
                } else {
                    self.wrap(f, None)
                };
                for o in &s.order {
                    let e = Expression { common: None, expr_type: Some(ExprType::SortOrder(Box::new(o.clone()))) };
                    f.order_by.push(expr::to_sql(&e, &f)?.sql);
                }
                f.chain = None;
                Ok(f)
            }
            RelType::Limit(l) => {
                let f = self.input(&l.input, "limit").await?;
                let mut f = if f.limit.is_none() && f.offset.is_none() { f } else { self.wrap(f, None) };
                f.limit = Some(i64::from(l.limit));
                f.chain = None;
                Ok(f)
            }
            RelType::Offset(o) => {
                let f = self.input(&o.input, "offset").await?;
                let mut f = if f.limit.is_none() && f.offset.is_none() { f } else { self.wrap(f, None) };
                f.offset = Some(i64::from(o.offset));
                f.chain = None;
                Ok(f)
            }
            RelType::SetOp(s) => self.set_op(s).await,
            RelType::Sql(s) => self.sql(s).await,
            RelType::CachedRemoteRelation(c) => {
                let m = self
                    .env
                    .memory_relation(&c.relation_id)
                    .ok_or_else(|| ConnectError::invalid_plan(format!("no cached DataFrame with id {}", c.relation_id)))?;
                self.decls.memory.insert(m.name.clone(), m);
                Ok(Frame::table(&c.relation_id, plan_id))
            }
            RelType::Sample(s) => {
                let streaming = match self.input(&s.input, "sample").await {
                    Ok(f) => f.streaming,
                    Err(_) => false,
                };
                if streaming {
                    return Err(ConnectError::analysis("Sampling is not supported on streaming DataFrames/Datasets"));
                }
                Err(ConnectError::unsupported("the DataFrame operation 'sample'"))
            }
            // Partitioning hints: sluice places rows by its own rules (state partitions).
            RelType::Hint(h) => self.input(&h.input, "hint").await,
            RelType::Repartition(r) => self.input(&r.input, "repartition").await,
            RelType::RepartitionByExpression(r) => self.input(&r.input, "repartition").await,
            other => Err(ConnectError::unsupported(format!("the DataFrame operation '{}'", relation_name(other)))),
        }
    }

    /// `SELECT name AS …` over `f`, also recorded as a projection layer when `f` is a chain.
    fn select_items(&mut self, f: Frame, items: Vec<(String, String)>) -> Frame {
        let mut chain = f.chain.clone();
        if let Some(c) = &mut chain {
            c.layers.push(items.iter().map(|(n, sql)| (n.clone(), strip_qualifiers(sql, &f))).collect());
        }
        Frame { items: Some(items.iter().map(|(n, sql)| format!("{sql} AS {}", quote_ident(n))).collect()), chain, ..f }
    }

    async fn project(&mut self, f: Frame, exprs: &[Expression]) -> Result<Frame> {
        let f = if f.is_plain() { f } else { self.wrap(f, None) };
        let mut items: Vec<(String, String)> = Vec::new();
        let mut schema: Option<SchemaRef> = None;
        for e in exprs {
            // `*`, `data.*`, `e.*`: as a column reference or as selectExpr text.
            let star: Option<Option<String>> = match &e.expr_type {
                Some(ExprType::UnresolvedStar(star)) => Some(star.unparsed_target.clone()),
                Some(ExprType::ExpressionString(s)) if s.expression.trim() == "*" => Some(None),
                Some(ExprType::ExpressionString(s)) if s.expression.trim().ends_with(".*") => {
                    Some(Some(s.expression.trim().to_string()))
                }
                _ => None,
            };
            if let Some(target) = star {
                if schema.is_none() {
                    schema = Some(self.schema_of(&f).await?);
                }
                let Some(schema) = &schema else { continue };
                match target.as_deref().map(|t| t.trim_end_matches(".*").trim_end_matches('*').trim_end_matches('.')) {
                    None => items.extend(schema.fields().iter().map(|c| (c.name().clone(), quote_ident(c.name())))),
                    Some(target) => {
                        let parts = identifier_parts(target)?;
                        let name = parts.last().cloned().unwrap_or_default();
                        match schema.field_with_name(&name).map(|fl| fl.data_type().clone()) {
                            Ok(DataType::Struct(fields)) if parts.len() == 1 => {
                                for sub in fields.iter() {
                                    items.push((
                                        sub.name().clone(),
                                        format!("get_field({}, {})", quote_ident(&name), string_literal(sub.name())),
                                    ));
                                }
                            }
                            _ => {
                                // A DataFrame alias: every column it qualifies.
                                let probe = Frame { items: Some(vec![format!("{}.*", quote_ident(&name))]), ..f.clone() };
                                let cols = self.schema_of(&probe).await?;
                                items.extend(
                                    cols.fields()
                                        .iter()
                                        .map(|c| (c.name().clone(), format!("{}.{}", quote_ident(&name), quote_ident(c.name())))),
                                );
                            }
                        }
                    }
                }
                continue;
            }
            let e = expr::to_sql(e, &f)?;
            items.push((e.name, e.sql));
        }
        Ok(self.select_items(f, items))
    }

    async fn with_watermark(&mut self, f: Frame, event_time: &str, delay: &str) -> Result<Frame> {
        let Some(chain) = f.chain.clone() else {
            return Err(ConnectError::unsupported(
                "withWatermark after a filter, join, aggregation or deduplication (sluice sets a watermark on a stream read and the projections of it: select, withColumn, selectExpr …)",
            ));
        };
        let column = identifier_parts(event_time)?.join(".");
        let stream = self
            .decls
            .streams
            .get_mut(chain.stream)
            .ok_or_else(|| ConnectError::invalid_plan("withWatermark over a stream that is not declared"))?;
        if stream.watermark.is_some() {
            return Err(ConnectError::unsupported("a second withWatermark on the same stream"));
        }
        let Some(last) = chain.layers.last() else {
            stream.watermark = Some((column, delay.to_string()));
            return Ok(Frame { chain: None, ..f });
        };
        // Each layer's expressions see the previous layer's columns: compute them under fresh
        // names first, then give them their names (replacing what the previous layer called so).
        let base = stream.name.clone();
        for (i, layer) in chain.layers.iter().enumerate() {
            let temps: Vec<String> = (0..layer.len()).map(|j| format!("__{base}_l{i}_{j}")).collect();
            for ((_, sql), t) in layer.iter().zip(&temps) {
                stream.computed.push((t.clone(), sql.clone()));
            }
            for ((name, _), t) in layer.iter().zip(&temps) {
                stream.computed.push((name.clone(), quote_ident(t)));
            }
        }
        if !last.iter().any(|(n, _)| *n == column) {
            return Err(ConnectError::analysis(format!(
                "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name `{column}` cannot be resolved. Did you mean one of the following? [{}].",
                last.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            )));
        }
        stream.watermark = Some((column, delay.to_string()));
        let mut out = Frame::table(&base, f.plan_id);
        out.streaming = true;
        out.items = Some(last.iter().map(|(n, _)| quote_ident(n)).collect());
        out.scope = f.scope.iter().map(|(id, _)| (*id, base.clone())).collect();
        Ok(out)
    }

    async fn join(&mut self, j: &crate::proto::Join) -> Result<Frame> {
        let left = self.input(&j.left, "join").await?;
        let right = self.input(&j.right, "join").await?;
        let bare = |f: &Frame| f.is_plain() && f.filters.is_empty() && f.alias.is_some();
        let left = if bare(&left) { left } else { self.wrap(left, None) };
        let mut right = if bare(&right) { right } else { self.wrap(right, None) };
        if left.alias == right.alias {
            right = self.wrap(right, None);
        }
        let (Some(la), Some(ra)) = (left.alias.clone(), right.alias.clone()) else {
            return Err(ConnectError::invalid_plan("a join side without a name"));
        };
        let kind = join::JoinType::try_from(j.join_type).unwrap_or(join::JoinType::Unspecified);
        let keyword = match kind {
            join::JoinType::Unspecified | join::JoinType::Inner => "JOIN",
            join::JoinType::LeftOuter => "LEFT JOIN",
            join::JoinType::RightOuter => "RIGHT JOIN",
            join::JoinType::FullOuter => "FULL JOIN",
            join::JoinType::LeftSemi => "LEFT SEMI JOIN",
            join::JoinType::LeftAnti => "LEFT ANTI JOIN",
            join::JoinType::Cross => "CROSS JOIN",
        };
        let mut scope = left.scope.clone();
        scope.extend(right.scope.iter().cloned());
        let mut frame = Frame {
            from: format!("{} {keyword} {}", left.from, right.from),
            alias: None,
            scope,
            streaming: left.streaming || right.streaming,
            ..Default::default()
        };
        if !j.using_columns.is_empty() {
            let ls = self.schema_of(&left).await?;
            let rs = self.schema_of(&right).await?;
            let keys = &j.using_columns;
            let on: Vec<String> = keys
                .iter()
                .map(|k| format!("{}.{} = {}.{}", quote_ident(&la), quote_ident(k), quote_ident(&ra), quote_ident(k)))
                .collect();
            frame.from.push_str(&format!(" ON {}", on.join(" AND ")));
            let mut items = Vec::new();
            for k in keys {
                let (l, r) =
                    (format!("{}.{}", quote_ident(&la), quote_ident(k)), format!("{}.{}", quote_ident(&ra), quote_ident(k)));
                let sql = match kind {
                    join::JoinType::RightOuter => r,
                    join::JoinType::FullOuter => format!("coalesce({l}, {r})"),
                    _ => l,
                };
                items.push(format!("{sql} AS {}", quote_ident(k)));
            }
            for c in ls.fields().iter().filter(|c| !keys.contains(c.name())) {
                items.push(format!("{}.{} AS {}", quote_ident(&la), quote_ident(c.name()), quote_ident(c.name())));
            }
            if !matches!(kind, join::JoinType::LeftSemi | join::JoinType::LeftAnti) {
                for c in rs.fields().iter().filter(|c| !keys.contains(c.name())) {
                    items.push(format!("{}.{} AS {}", quote_ident(&ra), quote_ident(c.name()), quote_ident(c.name())));
                }
            }
            frame.items = Some(items);
        } else if let Some(cond) = &j.join_condition {
            let on = expr::to_sql(cond, &frame)?;
            frame.from.push_str(&format!(" ON {}", on.sql));
        } else if kind != join::JoinType::Cross {
            frame.from = format!("{} CROSS JOIN {}", left.from, right.from);
        }
        Ok(frame)
    }

    async fn set_op(&mut self, s: &crate::proto::SetOperation) -> Result<Frame> {
        let left = self.input(&s.left_input, "union").await?;
        let right = self.input(&s.right_input, "union").await?;
        let op = match set_operation::SetOpType::try_from(s.set_op_type).unwrap_or(set_operation::SetOpType::Unspecified) {
            set_operation::SetOpType::Union => "UNION",
            set_operation::SetOpType::Intersect => "INTERSECT",
            set_operation::SetOpType::Except => "EXCEPT",
            set_operation::SetOpType::Unspecified => return Err(ConnectError::invalid_plan("a set operation without its type")),
        };
        let all = if s.is_all.unwrap_or(false) { " ALL" } else { " DISTINCT" };
        let right_sql = if s.by_name.unwrap_or(false) {
            let ls = self.schema_of(&left).await?;
            let rs = self.schema_of(&right).await?;
            let mut cols = Vec::new();
            for c in ls.fields() {
                if rs.field_with_name(c.name()).is_ok() {
                    cols.push(quote_ident(c.name()));
                } else if s.allow_missing_columns.unwrap_or(false) {
                    cols.push(format!(
                        "CAST(NULL AS {}) AS {}",
                        sluice_common::types::spark_type_name(c.data_type()),
                        quote_ident(c.name())
                    ));
                } else {
                    return Err(ConnectError::analysis(format!(
                        "[UNRESOLVED_COLUMN] unionByName: column `{}` is missing from the other DataFrame",
                        c.name()
                    )));
                }
            }
            let alias = self.fresh("q");
            format!("SELECT {} FROM ({}) AS {}", cols.join(", "), right.sql(), quote_ident(&alias))
        } else {
            right.sql()
        };
        let alias = self.fresh("q");
        Ok(Frame {
            from: format!("({} {op}{all} {right_sql}) AS {}", left.sql(), quote_ident(&alias)),
            alias: Some(alias),
            streaming: left.streaming || right.streaming,
            ..Default::default()
        })
    }

    #[allow(deprecated)] // `pos_args` is still sent by older clients
    async fn sql(&mut self, s: &crate::proto::Sql) -> Result<Frame> {
        if !s.args.is_empty() || !s.pos_args.is_empty() || !s.named_arguments.is_empty() || !s.pos_arguments.is_empty() {
            return Err(ConnectError::unsupported("spark.sql with query parameters"));
        }
        // Views and memory sinks the text names become views of the job.
        let mut named = Vec::new();
        let mut streaming = false;
        for word in s.query.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()) {
            if named.iter().any(|n: &String| n == word) {
                continue;
            }
            if let Some(view) = self.env.temp_view(word) {
                let f = self.relation(&view).await?;
                streaming |= f.streaming;
                self.decls.views.push((word.to_string(), f.sql()));
                named.push(word.to_string());
            } else if let Some(m) = self.env.memory_relation(word) {
                self.decls.memory.insert(m.name.clone(), m);
                named.push(word.to_string());
            }
        }
        let alias = self.fresh("q");
        Ok(Frame {
            from: format!("({}) AS {}", s.query, quote_ident(&alias)),
            alias: Some(alias),
            streaming,
            ..Default::default()
        })
    }

    async fn read(&mut self, r: &crate::proto::Read, plan_id: Option<i64>) -> Result<Frame> {
        match &r.read_type {
            Some(read::ReadType::NamedTable(t)) => {
                let name = identifier_parts(&t.unparsed_identifier)?.join(".");
                if let Some(view) = self.env.temp_view(&name) {
                    return self.relation(&view).await;
                }
                if let Some(m) = self.env.memory_relation(&name) {
                    if r.is_streaming {
                        return Err(ConnectError::unsupported(format!(
                            "readStream.table('{name}') (a memory sink read as a stream)"
                        )));
                    }
                    self.decls.memory.insert(m.name.clone(), m);
                    return Ok(Frame::table(&name, plan_id));
                }
                if let Some((path, schema)) = self.env.table(&name) {
                    let columns = schema
                        .fields()
                        .iter()
                        .map(|f| Ok(format!("{} {}", quote_ident(f.name()), proto_to_sql(&arrow_to_proto(f.data_type())?)?)))
                        .collect::<Result<Vec<_>>>()?
                        .join(", ");
                    let options = vec![
                        ("connector".to_string(), "files".to_string()),
                        ("format".to_string(), "parquet".to_string()),
                        ("path".to_string(), path),
                    ];
                    return Ok(self.declare(r.is_streaming, Some(columns), options, plan_id));
                }
                Err(ConnectError::analysis(format!(
                    "[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found. sluice knows the session's temporary views and memory sinks."
                ))
                .with_error_class("TABLE_OR_VIEW_NOT_FOUND", "42P01"))
            }
            Some(read::ReadType::DataSource(ds)) => self.data_source(ds, r.is_streaming, plan_id).await,
            None => Err(ConnectError::invalid_plan("a read without a source")),
        }
    }

    async fn data_source(&mut self, ds: &read::DataSource, streaming: bool, plan_id: Option<i64>) -> Result<Frame> {
        let format = ds.format.clone().unwrap_or_else(|| "parquet".into()).to_ascii_lowercase();
        let mut options: Vec<(String, String)> = Vec::new();
        let (connector, file_format) = match format.as_str() {
            "json" | "csv" | "parquet" | "text" => ("files", Some(format.as_str())),
            "rate" | "rate-micro-batch" | "socket" | "kafka" => (format.as_str(), None),
            other => return Err(ConnectError::unsupported(format!("the data source format '{other}'"))),
        };
        options.push(("connector".into(), connector.into()));
        if let Some(f) = file_format {
            options.push(("format".into(), f.into()));
        }
        let mut user: Vec<(&String, &String)> = ds.options.iter().collect();
        user.sort();
        for (k, v) in user {
            // PySpark's `text()` always sends `wholetext`; its default is what sluice does.
            if format == "text" && k.eq_ignore_ascii_case("wholetext") {
                if v.eq_ignore_ascii_case("false") {
                    continue;
                }
                return Err(ConnectError::unsupported("text(wholetext=True)"));
            }
            options.push((k.clone(), v.clone()));
        }
        match ds.paths.as_slice() {
            [] => {}
            [p] => options.push(("path".into(), p.clone())),
            _ => return Err(ConnectError::unsupported("reading several paths in one load()")),
        }
        if !ds.predicates.is_empty() {
            return Err(ConnectError::unsupported("JDBC predicates"));
        }
        let mut columns = match &ds.schema {
            Some(s) if !s.trim().is_empty() => Some(schema_text_to_ddl(s)?),
            _ => None,
        };
        if columns.is_none() && format == "text" {
            columns = Some("`value` STRING".into());
        }
        if let (None, Some(f)) = (&columns, file_format) {
            if streaming || f != "parquet" {
                let what = if streaming { "creating a streaming source DataFrame" } else { "reading a JSON or CSV table" };
                return Err(ConnectError::illegal_argument(format!(
                    "Schema must be specified when {what} from {f} files: sluice does not infer schemas (use .schema(...))"
                )));
            }
        }
        if !streaming && connector != "files" {
            return Err(ConnectError::unsupported(format!("a batch read of '{format}' (only files are read as tables)")));
        }
        Ok(self.declare(streaming, columns, options, plan_id))
    }

    /// Declares a stream or a static table and returns the frame reading it.
    fn declare(
        &mut self,
        streaming: bool,
        columns: Option<String>,
        options: Vec<(String, String)>,
        plan_id: Option<i64>,
    ) -> Frame {
        if streaming {
            let name = self.fresh("s");
            let index = self.decls.streams.len();
            self.decls.streams.push(StreamDecl { name: name.clone(), columns, options, ..Default::default() });
            let mut f = Frame::table(&name, plan_id);
            f.chain = Some(Chain { stream: index, layers: Vec::new() });
            f.streaming = true;
            f
        } else {
            let name = self.fresh("t");
            self.decls.tables.push(TableDecl { name: name.clone(), columns, options });
            Frame::table(&name, plan_id)
        }
    }
}

/// A layer expression for a computed column: computed columns see the stream's columns
/// unqualified, so the stream's own qualifier is dropped.
fn strip_qualifiers(sql: &str, f: &Frame) -> String {
    match &f.alias {
        Some(a) => sql.replace(&format!("{}.", quote_ident(a)), ""),
        None => sql.to_string(),
    }
}

/// The client's name for a relation kind, for "not supported" errors.
fn relation_name(kind: &RelType) -> &'static str {
    match kind {
        RelType::LocalRelation(_) | RelType::CachedLocalRelation(_) => "createDataFrame (local data)",
        RelType::Sample(_) => "sample",
        RelType::Range(_) => "range",
        RelType::ShowString(_) => "show",
        RelType::Tail(_) => "tail",
        RelType::Unpivot(_) => "unpivot",
        RelType::ToSchema(_) => "to(schema)",
        RelType::MapPartitions(_) => "mapInPandas/mapInArrow",
        RelType::CollectMetrics(_) => "observe",
        RelType::Parse(_) => "parsing a DataFrame of strings (from_csv/json on a DataFrame)",
        RelType::GroupMap(_) => "applyInPandas",
        RelType::CoGroupMap(_) => "cogroup().applyInPandas",
        RelType::ApplyInPandasWithState(_) => "applyInPandasWithState",
        RelType::HtmlString(_) => "_repr_html_",
        RelType::CommonInlineUserDefinedTableFunction(_) => "a Python user-defined table function",
        RelType::AsOfJoin(_) => "join_asof",
        RelType::CommonInlineUserDefinedDataSource(_) => "a Python data source",
        RelType::WithRelations(_) => "a plan with shared sub-relations",
        RelType::Transpose(_) => "transpose",
        RelType::UnresolvedTableValuedFunction(_) => "a table-valued function",
        RelType::LateralJoin(_) => "lateralJoin",
        RelType::FillNa(_) => "fillna",
        RelType::DropNa(_) => "dropna",
        RelType::Replace(_) => "replace",
        RelType::Summary(_) => "summary",
        RelType::Crosstab(_) => "crosstab",
        RelType::Describe(_) => "describe",
        RelType::Cov(_) => "cov",
        RelType::Corr(_) => "corr",
        RelType::ApproxQuantile(_) => "approxQuantile",
        RelType::FreqItems(_) => "freqItems",
        RelType::SampleBy(_) => "sampleBy",
        RelType::Catalog(_) => "the catalog API (spark.catalog)",
        RelType::MlRelation(_) => "Spark ML",
        RelType::Extension(_) => "a relation extension",
        RelType::Unknown(_) => "an unknown relation",
        _ => "this operation",
    }
}
