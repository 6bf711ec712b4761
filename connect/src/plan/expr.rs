//! Connect expressions → sluice SQL expressions, with the column name Spark would give each
//! (`count(1)`, `sum(amount)`, `(value % 2)`), since a client sees Spark's names in
//! `df.columns`, in the sink's files and in `collect()`'s rows.
//!
//! Operators arrive as functions named by their symbol (`==`, `and`, `isNull`); every operator
//! is written parenthesised, so SQL precedence never differs from the client's tree.

use crate::error::{ConnectError, Result};
use crate::proto::expression::{self, literal::LiteralType, ExprType};
use crate::proto::Expression;
use crate::types::{proto_to_sql, quote_ident, schema_text_to_ddl};

/// An expression in SQL, with the name Spark gives its column when it is not aliased.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlExpr {
    /// SQL text, parenthesised where it is an operator.
    pub sql: String,
    /// Spark's automatic column name (`toPrettySQL`).
    pub name: String,
}

impl SqlExpr {
    fn new(sql: impl Into<String>, name: impl Into<String>) -> Self {
        Self { sql: sql.into(), name: name.into() }
    }

    /// `sql AS name`, quoted: a select item whose column carries Spark's name.
    pub fn item(&self) -> String {
        format!("{} AS {}", self.sql, quote_ident(&self.name))
    }
}

/// Where attribute references resolve: the qualifier a DataFrame's columns carry in the FROM
/// clause the expression is evaluated over (`df["user_id"]` names its DataFrame by plan id).
pub trait Scope {
    /// The qualifier of the DataFrame with plan id `plan_id`, if it is visible here.
    fn qualifier(&self, plan_id: i64) -> Option<String>;
}

/// A scope where no DataFrame is visible by plan id (references stay unqualified).
pub struct NoScope;

impl Scope for NoScope {
    fn qualifier(&self, _plan_id: i64) -> Option<String> {
        None
    }
}

/// Splits a Spark multi-part identifier (`a.b`, `` `a.b`.c ``) into its parts.
pub fn identifier_parts(text: &str) -> Result<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('`', true) if chars.peek() == Some(&'`') => {
                chars.next();
                current.push('`');
            }
            ('`', true) => quoted = false,
            ('`', false) => {
                quoted = true;
                was_quoted = true;
            }
            ('.', false) => {
                parts.push(std::mem::take(&mut current));
                was_quoted = false;
            }
            (c, _) => current.push(c),
        }
    }
    if quoted {
        return Err(ConnectError::analysis(format!("[PARSE_SYNTAX_ERROR] unclosed backtick in the column name '{text}'")));
    }
    if !current.is_empty() || was_quoted || parts.is_empty() {
        parts.push(current);
    }
    if parts.iter().any(String::is_empty) && !was_quoted {
        return Err(ConnectError::analysis(format!("[INVALID_COLUMN_NAME] '{text}' is not a valid column name")));
    }
    Ok(parts)
}

/// Translates `e`, resolving `df[...]` references through `scope`.
pub fn to_sql(e: &Expression, scope: &dyn Scope) -> Result<SqlExpr> {
    let Some(kind) = &e.expr_type else {
        return Err(ConnectError::invalid_plan("an expression without a type"));
    };
    match kind {
        ExprType::Literal(l) => literal(l),
        ExprType::UnresolvedAttribute(a) => {
            let parts = identifier_parts(&a.unparsed_identifier)?;
            let qualifier = a.plan_id.and_then(|id| scope.qualifier(id));
            let mut quoted: Vec<String> = parts.iter().map(|p| quote_ident(p)).collect();
            if let Some(q) = qualifier {
                quoted.insert(0, quote_ident(&q));
            }
            let name = parts.last().cloned().unwrap_or_default();
            Ok(SqlExpr::new(quoted.join("."), name))
        }
        ExprType::UnresolvedFunction(f) => function(&f.function_name, &f.arguments, f.is_distinct, scope),
        ExprType::CallFunction(f) => function(&f.function_name, &f.arguments, false, scope),
        ExprType::ExpressionString(s) => expression_string(&s.expression),
        ExprType::UnresolvedStar(s) => match &s.unparsed_target {
            None => Ok(SqlExpr::new("*", "*")),
            Some(t) => Ok(SqlExpr::new(t.clone(), t.clone())),
        },
        ExprType::Alias(a) => {
            let inner = to_sql(required(&a.expr, "alias")?, scope)?;
            match a.name.as_slice() {
                [name] => Ok(SqlExpr::new(inner.sql, name.clone())),
                _ => Err(ConnectError::unsupported("an alias with several names (multi-column aliases)")),
            }
        }
        ExprType::Cast(c) => {
            let inner = to_sql(required(&c.expr, "cast")?, scope)?;
            let ty = match &c.cast_to_type {
                Some(expression::cast::CastToType::Type(t)) => proto_to_sql(t)?,
                Some(expression::cast::CastToType::TypeStr(s)) => s.to_uppercase(),
                None => return Err(ConnectError::invalid_plan("a cast without a target type")),
            };
            let op = if c.eval_mode == expression::cast::EvalMode::Try as i32 { "TRY_CAST" } else { "CAST" };
            Ok(SqlExpr::new(format!("{op}({} AS {ty})", inner.sql), format!("{op}({} AS {ty})", inner.name)))
        }
        ExprType::SortOrder(o) => {
            let inner = to_sql(required(&o.child, "sort order")?, scope)?;
            let dir = if o.direction == expression::sort_order::SortDirection::Descending as i32 { "DESC" } else { "ASC" };
            let nulls = match expression::sort_order::NullOrdering::try_from(o.null_ordering) {
                Ok(expression::sort_order::NullOrdering::SortNullsFirst) => " NULLS FIRST",
                Ok(expression::sort_order::NullOrdering::SortNullsLast) => " NULLS LAST",
                _ => "",
            };
            Ok(SqlExpr::new(format!("{} {dir}{nulls}", inner.sql), format!("{} {dir}{nulls}", inner.name)))
        }
        ExprType::UnresolvedExtractValue(x) => {
            let child = to_sql(required(&x.child, "extract value")?, scope)?;
            let key = to_sql(required(&x.extraction, "extract value")?, scope)?;
            match x.extraction.as_deref().and_then(|e| e.expr_type.as_ref()) {
                Some(ExprType::Literal(expression::Literal { literal_type: Some(LiteralType::String(field)) })) => {
                    Ok(SqlExpr::new(format!("get_field({}, {})", child.sql, key.sql), field.clone()))
                }
                _ => Ok(SqlExpr::new(format!("{}[{}]", child.sql, key.sql), format!("{}[{}]", child.name, key.name))),
            }
        }
        ExprType::UnresolvedRegex(_) => Err(ConnectError::unsupported("colRegex (a column selected by a regular expression)")),
        ExprType::LambdaFunction(_) | ExprType::UnresolvedNamedLambdaVariable(_) => {
            Err(ConnectError::unsupported("higher-order functions (lambda expressions)"))
        }
        ExprType::Window(_) => Err(ConnectError::unsupported("window functions over(...)")),
        ExprType::UpdateFields(_) => Err(ConnectError::unsupported("withField/dropFields")),
        ExprType::CommonInlineUserDefinedFunction(f) => {
            Err(ConnectError::unsupported(format!("the Python/Scala user-defined function '{}'", f.function_name)))
        }
        ExprType::NamedArgumentExpression(_) => Err(ConnectError::unsupported("named function arguments")),
        ExprType::MergeAction(_) => Err(ConnectError::unsupported("MERGE INTO")),
        ExprType::TypedAggregateExpression(_) => Err(ConnectError::unsupported("typed aggregate expressions")),
        ExprType::SubqueryExpression(_) => Err(ConnectError::unsupported("subquery expressions")),
        ExprType::Extension(_) => Err(ConnectError::unsupported("expression extensions")),
    }
}

/// `expr("…")`, `selectExpr("…")`, `filter("…")`: SQL text, which may end in an alias
/// (`value % 2 = 0 AS even`).
fn expression_string(text: &str) -> Result<SqlExpr> {
    use datafusion::sql::sqlparser::ast::SelectItem;
    let parse_error = |e: &dyn std::fmt::Display| {
        ConnectError::new(crate::error::ExceptionClass::Parse, format!("[PARSE_SYNTAX_ERROR] Syntax error in '{text}': {e}"))
            .with_error_class("PARSE_SYNTAX_ERROR", "42601")
    };
    let item = sluice_common::dialect::parse(text, |parser| {
        let item = parser.parse_select_item()?;
        if parser.peek_token().token != datafusion::sql::sqlparser::tokenizer::Token::EOF {
            return parser.expected("the end of the expression", parser.peek_token());
        }
        Ok(item)
    })
    .map_err(|e| parse_error(&e))?;
    Ok(match item {
        SelectItem::ExprWithAlias { expr, alias } => SqlExpr::new(format!("({expr})"), alias.value),
        SelectItem::UnnamedExpr(expr) => {
            let name = match &expr {
                datafusion::sql::sqlparser::ast::Expr::Identifier(i) => i.value.clone(),
                datafusion::sql::sqlparser::ast::Expr::CompoundIdentifier(parts) => {
                    parts.last().map(|p| p.value.clone()).unwrap_or_default()
                }
                _ => text.trim().to_string(),
            };
            SqlExpr::new(format!("({expr})"), name)
        }
        SelectItem::Wildcard(_) => SqlExpr::new("*", "*"),
        SelectItem::QualifiedWildcard(kind, _) => SqlExpr::new(format!("{kind}.*"), "*"),
        SelectItem::ExprWithAliases { .. } => return Err(ConnectError::unsupported("an expression with several aliases")),
    })
}

fn required<'a>(e: &'a Option<Box<Expression>>, what: &str) -> Result<&'a Expression> {
    e.as_deref().ok_or_else(|| ConnectError::invalid_plan(format!("{what} without its expression")))
}

/// A literal as SQL, and as Spark names it.
pub fn literal(l: &expression::Literal) -> Result<SqlExpr> {
    let Some(v) = &l.literal_type else {
        return Err(ConnectError::invalid_plan("a literal without a value"));
    };
    Ok(match v {
        LiteralType::Null(t) => SqlExpr::new(format!("CAST(NULL AS {})", proto_to_sql(t)?), "NULL"),
        LiteralType::Binary(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
            SqlExpr::new(format!("X'{hex}'"), format!("X'{hex}'"))
        }
        LiteralType::Boolean(b) => SqlExpr::new(if *b { "TRUE" } else { "FALSE" }, b.to_string()),
        LiteralType::Byte(n) => SqlExpr::new(format!("CAST({n} AS TINYINT)"), n.to_string()),
        LiteralType::Short(n) => SqlExpr::new(format!("CAST({n} AS SMALLINT)"), n.to_string()),
        LiteralType::Integer(n) => SqlExpr::new(format!("CAST({n} AS INT)"), n.to_string()),
        LiteralType::Long(n) => SqlExpr::new(format!("CAST({n} AS BIGINT)"), n.to_string()),
        LiteralType::Float(x) => SqlExpr::new(format!("CAST({} AS FLOAT)", float_sql(f64::from(*x))), x.to_string()),
        LiteralType::Double(x) => SqlExpr::new(format!("CAST({} AS DOUBLE)", float_sql(*x)), x.to_string()),
        LiteralType::Decimal(d) => {
            let text = match (d.precision, d.scale) {
                (Some(p), Some(s)) => format!("CAST('{}' AS DECIMAL({p},{s}))", d.value),
                _ => d.value.clone(),
            };
            SqlExpr::new(text, d.value.clone())
        }
        LiteralType::String(s) => SqlExpr::new(string_literal(s), s.clone()),
        LiteralType::Date(days) => {
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(719_163 + days)
                .ok_or_else(|| ConnectError::illegal_argument(format!("date literal {days} days from 1970 is out of range")))?;
            SqlExpr::new(format!("DATE '{date}'"), format!("DATE '{date}'"))
        }
        LiteralType::Timestamp(us) => SqlExpr::new(format!("timestamp_micros(CAST({us} AS BIGINT))"), format!("TIMESTAMP({us})")),
        LiteralType::TimestampNtz(us) => {
            SqlExpr::new(format!("CAST(timestamp_micros(CAST({us} AS BIGINT)) AS TIMESTAMP_NTZ)"), format!("TIMESTAMP_NTZ({us})"))
        }
        LiteralType::CalendarInterval(i) => {
            let text = format!("{} months {} days {} microseconds", i.months, i.days, i.microseconds);
            SqlExpr::new(format!("INTERVAL '{text}'"), format!("INTERVAL '{text}'"))
        }
        LiteralType::YearMonthInterval(m) => SqlExpr::new(format!("INTERVAL '{m} months'"), format!("INTERVAL '{m}' MONTH")),
        LiteralType::DayTimeInterval(us) => {
            SqlExpr::new(format!("INTERVAL '{us} microseconds'"), format!("INTERVAL '{us}' MICROSECOND"))
        }
        LiteralType::Array(a) => {
            let items = a.elements.iter().map(literal).collect::<Result<Vec<_>>>()?;
            SqlExpr::new(
                format!("make_array({})", items.iter().map(|i| i.sql.as_str()).collect::<Vec<_>>().join(", ")),
                format!("array({})", items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")),
            )
        }
        LiteralType::Map(_) | LiteralType::Struct(_) | LiteralType::SpecializedArray(_) => {
            return Err(ConnectError::unsupported("map, struct and typed-array literals"))
        }
    })
}

/// A SQL string literal: single-quoted, quotes doubled, backslashes kept literal.
pub fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn float_sql(x: f64) -> String {
    if x.is_nan() {
        "'NaN'".into()
    } else if x.is_infinite() {
        if x > 0.0 {
            "'Infinity'".into()
        } else {
            "'-Infinity'".into()
        }
    } else {
        format!("{x:?}")
    }
}

/// The operators and predicates PySpark sends as functions (besides functions by name).
pub const OPERATORS: &[&str] = &[
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "<=>",
    "+",
    "-",
    "*",
    "/",
    "%",
    "and",
    "or",
    "&",
    "|",
    "^",
    "not",
    "negative",
    "isNull",
    "isNotNull",
    "in",
    "like",
    "rlike",
    "ilike",
    "startswith",
    "endswith",
    "contains",
    "when",
];

/// Operators PySpark sends as functions, with their SQL spelling.
fn binary_operator(name: &str) -> Option<&'static str> {
    Some(match name {
        "==" => "=",
        "!=" => "<>",
        "<" => "<",
        "<=" => "<=",
        ">" => ">",
        ">=" => ">=",
        "<=>" => "IS NOT DISTINCT FROM",
        "+" => "+",
        "-" => "-",
        "*" => "*",
        "/" => "/",
        "%" => "%",
        "and" => "AND",
        "or" => "OR",
        "&" => "&",
        "|" => "|",
        "^" => "^",
        _ => return None,
    })
}

/// Spark's name for an operator in a generated column name (`(a = b)` for `==`).
fn operator_name(name: &str) -> &str {
    match name {
        "==" => "=",
        "<=>" => "<=>",
        "and" => "AND",
        "or" => "OR",
        other => other,
    }
}

fn function(name: &str, args: &[Expression], distinct: bool, scope: &dyn Scope) -> Result<SqlExpr> {
    let lower = name.to_ascii_lowercase();
    // count(*): the star argument stays a star; Spark names it count(1).
    let star_arg =
        matches!(args, [Expression { expr_type: Some(ExprType::UnresolvedStar(s)), .. }] if s.unparsed_target.is_none());
    if lower == "count" && star_arg {
        return Ok(SqlExpr::new("count(*)", "count(1)"));
    }
    let a = args.iter().map(|e| to_sql(e, scope)).collect::<Result<Vec<_>>>()?;
    let joined = |f: fn(&SqlExpr) -> &str| a.iter().map(f).collect::<Vec<_>>().join(", ");
    if let (Some(op), [l, r]) = (binary_operator(name), a.as_slice()) {
        return Ok(SqlExpr::new(
            format!("({} {op} {})", l.sql, r.sql),
            format!("({} {} {})", l.name, operator_name(name), r.name),
        ));
    }
    let unary = |sql: String, pretty: String| Ok(SqlExpr::new(sql, pretty));
    match (lower.as_str(), a.as_slice()) {
        ("not", [x]) => return unary(format!("(NOT {})", x.sql), format!("(NOT {})", x.name)),
        ("negative", [x]) => return unary(format!("(- {})", x.sql), format!("(- {})", x.name)),
        ("isnull", [x]) => return unary(format!("({} IS NULL)", x.sql), format!("({} IS NULL)", x.name)),
        ("isnotnull", [x]) => return unary(format!("({} IS NOT NULL)", x.sql), format!("({} IS NOT NULL)", x.name)),
        ("in", [x, rest @ ..]) => {
            let list = rest.iter().map(|r| r.sql.as_str()).collect::<Vec<_>>().join(", ");
            let names = rest.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
            return unary(format!("({} IN ({list}))", x.sql), format!("({} IN ({names}))", x.name));
        }
        ("like" | "rlike" | "ilike", [x, p]) => {
            let op = match lower.as_str() {
                "like" => "LIKE",
                "ilike" => "ILIKE",
                _ => "~",
            };
            return unary(format!("({} {op} {})", x.sql, p.sql), format!("{lower}({}, {})", x.name, p.name));
        }
        ("startswith", [x, p]) => {
            return unary(format!("starts_with({}, {})", x.sql, p.sql), format!("startswith({}, {})", x.name, p.name))
        }
        ("endswith", [x, p]) => {
            return unary(format!("ends_with({}, {})", x.sql, p.sql), format!("endswith({}, {})", x.name, p.name))
        }
        ("contains", [x, p]) => {
            return unary(format!("(strpos({}, {}) > 0)", x.sql, p.sql), format!("contains({}, {})", x.name, p.name))
        }
        ("when", _) => return case_when(&a),
        ("from_json", [x, schema, rest @ ..]) => {
            let schema_sql = match args.get(1).and_then(|e| e.expr_type.as_ref()) {
                Some(ExprType::Literal(expression::Literal { literal_type: Some(LiteralType::String(s)) })) => {
                    string_literal(&schema_text_to_ddl(s)?)
                }
                _ => schema.sql.clone(),
            };
            if !rest.is_empty() {
                return Err(ConnectError::unsupported("from_json with options"));
            }
            return unary(format!("from_json({}, {schema_sql})", x.sql), format!("from_json({})", x.name));
        }
        ("explode" | "posexplode" | "explode_outer" | "inline", _) => {
            return Err(ConnectError::unsupported(format!("the generator function {name}")))
        }
        _ => {}
    }
    let sql_name = match lower.as_str() {
        "mean" => "avg",
        "countdistinct" | "count_distinct" => "count",
        "substr" => "substring",
        "pow" => "power",
        "startswith" => "starts_with",
        "endswith" => "ends_with",
        "char_length" | "character_length" => "char_length",
        _ => lower.as_str(),
    };
    let distinct = distinct || matches!(lower.as_str(), "countdistinct" | "count_distinct");
    let d = if distinct { "DISTINCT " } else { "" };
    let mut sql = format!("{sql_name}({d}{})", joined(|e| e.sql.as_str()));
    if sql_name == "approx_count_distinct" {
        // Spark's result is a LONG; DataFusion's an unsigned one.
        sql = format!("CAST({sql} AS BIGINT)");
    }
    // Spark names a time window's column after the function; other names keep the function's
    // own spelling (lower case) and render DISTINCT too.
    let name = match lower.as_str() {
        "window" | "session_window" => lower.clone(),
        _ => format!("{lower}({d}{})", joined(|e| e.name.as_str())),
    };
    Ok(SqlExpr::new(sql, name))
}

/// `when(c1, v1).when(c2, v2).otherwise(e)` arrives as `when(c1, v1, c2, v2, e)`.
fn case_when(a: &[SqlExpr]) -> Result<SqlExpr> {
    if a.len() < 2 {
        return Err(ConnectError::invalid_plan("when() needs a condition and a value"));
    }
    let mut sql = String::from("CASE");
    let mut name = String::from("CASE");
    for pair in a.chunks(2) {
        match pair {
            [c, v] => {
                sql.push_str(&format!(" WHEN {} THEN {}", c.sql, v.sql));
                name.push_str(&format!(" WHEN {} THEN {}", c.name, v.name));
            }
            [e] => {
                sql.push_str(&format!(" ELSE {}", e.sql));
                name.push_str(&format!(" ELSE {}", e.name));
            }
            _ => {}
        }
    }
    sql.push_str(" END");
    name.push_str(" END");
    Ok(SqlExpr::new(sql, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::expression::{Alias, Literal, UnresolvedAttribute, UnresolvedFunction, UnresolvedStar};

    fn col(name: &str) -> Expression {
        Expression {
            common: None,
            expr_type: Some(ExprType::UnresolvedAttribute(UnresolvedAttribute {
                unparsed_identifier: name.into(),
                plan_id: None,
                is_metadata_column: None,
            })),
        }
    }

    fn lit_str(s: &str) -> Expression {
        Expression {
            common: None,
            expr_type: Some(ExprType::Literal(Literal { literal_type: Some(LiteralType::String(s.into())) })),
        }
    }

    fn lit_long(n: i64) -> Expression {
        Expression { common: None, expr_type: Some(ExprType::Literal(Literal { literal_type: Some(LiteralType::Long(n)) })) }
    }

    fn call(name: &str, args: Vec<Expression>) -> Expression {
        Expression {
            common: None,
            expr_type: Some(ExprType::UnresolvedFunction(UnresolvedFunction {
                function_name: name.into(),
                arguments: args,
                is_distinct: false,
                is_user_defined_function: false,
                is_internal: None,
            })),
        }
    }

    #[test]
    fn identifiers_split_on_dots_outside_backticks() {
        assert_eq!(identifier_parts("a.b").unwrap(), vec!["a", "b"]);
        assert_eq!(identifier_parts("`a.b`.c").unwrap(), vec!["a.b", "c"]);
        assert_eq!(identifier_parts("`a``b`").unwrap(), vec!["a`b"]);
        assert!(identifier_parts("`a").is_err());
    }

    #[test]
    fn columns_get_sparks_automatic_names() {
        let sum = to_sql(&call("sum", vec![col("amount")]), &NoScope).unwrap();
        assert_eq!(sum, SqlExpr::new("sum(`amount`)", "sum(amount)"));
        let star = Expression {
            common: None,
            expr_type: Some(ExprType::UnresolvedStar(UnresolvedStar { unparsed_target: None, plan_id: None })),
        };
        assert_eq!(to_sql(&call("count", vec![star]), &NoScope).unwrap(), SqlExpr::new("count(*)", "count(1)"));
        let eq = to_sql(&call("==", vec![call("%", vec![col("value"), lit_long(2)]), lit_long(0)]), &NoScope).unwrap();
        assert_eq!(eq.name, "((value % 2) = 0)");
        assert_eq!(eq.sql, "((`value` % CAST(2 AS BIGINT)) = CAST(0 AS BIGINT))");
        let nested = to_sql(&col("data.event_time"), &NoScope).unwrap();
        assert_eq!(nested, SqlExpr::new("`data`.`event_time`", "event_time"));
    }

    #[test]
    fn aliases_name_the_column_and_strings_are_escaped() {
        let aliased = Expression {
            common: None,
            expr_type: Some(ExprType::Alias(Box::new(Alias {
                expr: Some(Box::new(lit_str("it's"))),
                name: vec!["n".into()],
                metadata: None,
            }))),
        };
        assert_eq!(to_sql(&aliased, &NoScope).unwrap(), SqlExpr::new("'it''s'", "n"));
    }

    #[test]
    fn from_json_takes_sparks_json_schema_as_ddl() {
        let schema = r#"{"type":"struct","fields":[{"name":"a","type":"long","nullable":true,"metadata":{}}]}"#;
        let e = to_sql(&call("from_json", vec![col("json"), lit_str(schema)]), &NoScope).unwrap();
        assert_eq!(e.sql, "from_json(`json`, '`a` BIGINT')");
    }

    #[test]
    fn references_by_dataframe_take_its_qualifier() {
        struct Two;
        impl Scope for Two {
            fn qualifier(&self, plan_id: i64) -> Option<String> {
                (plan_id == 7).then(|| "u".to_string())
            }
        }
        let e = Expression {
            common: None,
            expr_type: Some(ExprType::UnresolvedAttribute(UnresolvedAttribute {
                unparsed_identifier: "user_id".into(),
                plan_id: Some(7),
                is_metadata_column: None,
            })),
        };
        assert_eq!(to_sql(&e, &Two).unwrap().sql, "`u`.`user_id`");
    }

    #[test]
    fn unsupported_expressions_are_named() {
        let e = call("explode", vec![col("xs")]);
        let err = to_sql(&e, &NoScope).unwrap_err();
        assert!(err.message.contains("explode"), "{}", err.message);
    }
}
