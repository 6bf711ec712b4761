//! The SQL dialect of job files: Spark SQL as sqlparser knows it, but accepting Spark's
//! unqualified interval strings (`INTERVAL '10 seconds'`), which Spark itself accepts and
//! sqlparser's `SparkSqlDialect` rejects — and the one way sluice parses SQL text ([`parse`],
//! [`parse_tokens`]), which refuses text too deep or too costly to parse safely.
//!
//! sqlparser, the type mapping and DataFusion's planner all recurse once per nesting level
//! (`((((…))))`, `ARRAY<ARRAY<…>>`, `NOT NOT …`), and a few thousand levels overflow the 2 MiB
//! stack of a tokio worker: the whole driver or executor process aborts, not just the query.
//! sqlparser bounds only part of that recursion (not data types), so every SQL text sluice
//! parses — job files, `from_json` schemas, the queries and computed columns executors compile —
//! goes through [`parse`], which counts brackets before parsing and caps sqlparser's recursion.
//!
//! Operator chains nest too: `a OR b OR c …` parses into a tree as deep as the chain is long, and
//! printing, dropping and planning that tree recurse down it (4,000 `OR`s overflow a worker's
//! stack). So a chain of more than [`MAX_CHAIN`] operators is refused as well; Spark's own
//! optimizer overflows its stack on such chains too.
//!
//! Depth alone does not bound the time: sqlparser tries alternatives and backtracks, and some
//! shapes make it parse each level twice (`CAST(CAST(… AS INT) AS INT)`, an unclosed
//! `NOT (NOT (…`), so 30 levels would take hours and hang the thread that parses. Every
//! expression sqlparser starts passes through the dialect ([`Dialect::parse_prefix`]), so the
//! dialect counts them against a budget proportional to the text ([`expression_budget`]) and
//! refuses the text once it runs out.

use std::cell::Cell;

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr};
use datafusion::sql::sqlparser::dialect::{Dialect, SparkSqlDialect};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// The deepest nesting of brackets (`(`, `[`, `{`, and the `<` of `ARRAY<`, `MAP<`, `STRUCT<`)
/// and of sqlparser's own recursion that SQL text may have. Far beyond what people write; far
/// below what overflows a worker thread's stack.
pub const MAX_NESTING: usize = 32;

/// The most binary operators one expression may chain, summed over the brackets it sits in.
pub const MAX_CHAIN: usize = 1024;

/// Expressions any text may start, however short: a 15-level `CAST(CAST(…))` (~49,000 of them)
/// still parses; it takes ~50 ms in a release build.
const BASE_EXPRESSIONS: u64 = 50_000;
/// Expressions allowed per token on top of [`BASE_EXPRESSIONS`]. Real queries start fewer than
/// two per token; a long text of exponential shapes is cut off after ~1 µs per allowance.
const EXPRESSIONS_PER_TOKEN: u64 = 8;

/// How many expressions sqlparser may start while parsing `tokens`.
pub fn expression_budget(tokens: &[TokenWithSpan]) -> u64 {
    let words = tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).count() as u64;
    BASE_EXPRESSIONS + EXPRESSIONS_PER_TOKEN * words
}

/// Tokenizes `sql` with [`SluiceDialect`] and checks its nesting ([`MAX_NESTING`]); errors carry
/// sqlparser's "at Line: L, Column: C" suffix, so callers render them like parse errors.
pub fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, ParserError> {
    let tokens = Tokenizer::new(&SluiceDialect::default(), sql).tokenize_with_location()?;
    check_nesting(&tokens)?;
    Ok(tokens)
}

/// Parses `sql` with `parse` (say `Parser::parse_query`) in [`SluiceDialect`], refusing text
/// nested deeper than [`MAX_NESTING`], capping sqlparser's recursion at the same depth, and
/// refusing text whose parse runs over its [`expression_budget`].
pub fn parse<T>(sql: &str, parse: impl FnOnce(&mut Parser) -> Result<T, ParserError>) -> Result<T, ParserError> {
    parse_tokens(tokenize(sql)?, parse)
}

/// [`parse`] over tokens that [`tokenize`] produced.
pub fn parse_tokens<T>(
    tokens: Vec<TokenWithSpan>,
    parse: impl FnOnce(&mut Parser) -> Result<T, ParserError>,
) -> Result<T, ParserError> {
    let dialect = SluiceDialect::with_budget(expression_budget(&tokens));
    let mut parser = Parser::new(&dialect).with_recursion_limit(MAX_NESTING).with_tokens_with_locations(tokens);
    let parsed = parse(&mut parser);
    // Once the budget ran out every later expression failed, so whatever the parse returned
    // (sqlparser may have settled for another alternative) is not the text's meaning.
    match dialect.ran_out_at.get() {
        Some(at) => Err(ParserError::ParserError(format!(
            "SQL too costly to parse: nested CASTs or NOTs (or other nesting) make the parser try more than {} expressions; \
             nest less deeply at Line: {}, Column: {}",
            dialect.budget, at.line, at.column
        ))),
        None => parsed,
    }
}

/// Fails on the first bracket that opens level `MAX_NESTING + 1`. Type brackets (`ARRAY<`) are
/// told from comparisons by the word before them; a `>` that closes nothing is a comparison and
/// only saturates the count, so a mis-guess can lower the depth but never hide real nesting.
///
/// Operators are counted per bracket level, from the last comma or semicolon at that level
/// (`a + b, c + d` is two chains of one), and summed over the open levels, since a chain inside
/// brackets at the end of another chain lies below it in the tree.
fn check_nesting(tokens: &[TokenWithSpan]) -> Result<(), ParserError> {
    let (mut brackets, mut angles) = (0usize, 0usize);
    // Operators chained so far at each open bracket level (the statement itself at the bottom).
    let mut chains: Vec<usize> = vec![0];
    let mut previous: Option<&Token> = None;
    for t in tokens {
        let type_bracket = matches!(previous, Some(Token::Word(w)) if is_type_constructor(&w.value));
        match &t.token {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket | Token::LBrace => {
                brackets += 1;
                chains.push(0);
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                brackets = brackets.saturating_sub(1);
                if chains.len() > 1 {
                    chains.pop();
                }
            }
            Token::Lt if type_bracket => angles += 1,
            Token::Gt => {
                angles = angles.saturating_sub(1);
                bump(&mut chains);
            }
            Token::ShiftRight => {
                angles = angles.saturating_sub(2);
                bump(&mut chains);
            }
            Token::Comma | Token::SemiColon => {
                if let Some(top) = chains.last_mut() {
                    *top = 0;
                }
            }
            token if is_binary_operator(token) => bump(&mut chains),
            _ => {}
        }
        let at = t.span.start;
        if brackets + angles > MAX_NESTING {
            return Err(ParserError::ParserError(format!(
                "SQL nested more than {MAX_NESTING} levels deep is not supported at Line: {}, Column: {}",
                at.line, at.column
            )));
        }
        if chains.iter().sum::<usize>() > MAX_CHAIN {
            return Err(ParserError::ParserError(format!(
                "an expression chaining more than {MAX_CHAIN} operators is not supported; split it or use IN (…) at Line: {}, Column: {}",
                at.line, at.column
            )));
        }
        previous = Some(&t.token);
    }
    Ok(())
}

fn bump(chains: &mut [usize]) {
    if let Some(top) = chains.last_mut() {
        *top += 1;
    }
}

/// Tokens that join two expressions into a deeper one.
fn is_binary_operator(token: &Token) -> bool {
    match token {
        Token::Word(w) => matches!(w.keyword, Keyword::AND | Keyword::OR | Keyword::XOR | Keyword::DIV),
        _ => matches!(
            token,
            Token::Plus
                | Token::Minus
                | Token::Mul
                | Token::Div
                | Token::Mod
                | Token::StringConcat
                | Token::Eq
                | Token::DoubleEq
                | Token::Neq
                | Token::Lt
                | Token::LtEq
                | Token::GtEq
                | Token::Spaceship
                | Token::Caret
                | Token::Ampersand
                | Token::Pipe
                | Token::ShiftLeft
        ),
    }
}

fn is_type_constructor(word: &str) -> bool {
    ["ARRAY", "MAP", "STRUCT"].iter().any(|k| word.eq_ignore_ascii_case(k))
}

/// Spark SQL with unqualified interval literals, counting the expressions a parse starts.
#[derive(Debug, Default)]
pub struct SluiceDialect {
    /// Expressions this parse may start; 0 (the default) for a dialect that only tokenizes.
    budget: u64,
    started: Cell<u64>,
    /// Where the parse was when the budget ran out.
    ran_out_at: Cell<Option<Location>>,
}

impl SluiceDialect {
    fn with_budget(budget: u64) -> Self {
        SluiceDialect { budget, ..SluiceDialect::default() }
    }
}

const SPARK: SparkSqlDialect = SparkSqlDialect;

impl Dialect for SluiceDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        SPARK.is_delimited_identifier_start(ch)
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        SPARK.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        SPARK.is_identifier_part(ch)
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }
    fn supports_group_by_expr(&self) -> bool {
        true
    }
    fn supports_group_by_with_modifier(&self) -> bool {
        true
    }
    fn supports_lambda_functions(&self) -> bool {
        true
    }
    fn supports_select_wildcard_except(&self) -> bool {
        true
    }
    fn supports_struct_literal(&self) -> bool {
        true
    }
    fn supports_nested_comments(&self) -> bool {
        true
    }
    fn supports_long_type_as_bigint(&self) -> bool {
        true
    }
    fn supports_values_as_table_factor(&self) -> bool {
        true
    }
    fn supports_bang_not_operator(&self) -> bool {
        true
    }
    fn supports_select_item_multi_column_alias(&self) -> bool {
        true
    }
    fn supports_cte_without_as(&self) -> bool {
        true
    }
    fn supports_map_literal_with_angle_brackets(&self) -> bool {
        true
    }
    fn require_interval_qualifier(&self) -> bool {
        false
    }
    /// Counts every expression started against the budget; past it, each fails at once. The
    /// error sqlparser propagates through its backtracking is the recursion limit's, so the
    /// alternatives above fail at once too; [`parse_tokens`] then reports the budget.
    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let started = self.started.get() + 1;
        self.started.set(started);
        if started <= self.budget {
            return None;
        }
        if self.ran_out_at.get().is_none() {
            self.ran_out_at.set(Some(parser.peek_token_ref().span.start));
        }
        Some(Err(ParserError::RecursionLimitExceeded))
    }
    /// `a DIV b` is integer division in Spark.
    fn parse_infix(&self, parser: &mut Parser, expr: &Expr, _precedence: u8) -> Option<Result<Expr, ParserError>> {
        if parser.parse_keyword(Keyword::DIV) {
            let right = match parser.parse_expr() {
                Ok(e) => e,
                Err(e) => return Some(Err(e)),
            };
            Some(Ok(Expr::BinaryOp { left: Box::new(expr.clone()), op: BinaryOperator::MyIntegerDivide, right: Box::new(right) }))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_up_to_the_limit_parses_and_deeper_is_refused() {
        let nested = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&nested(10), |p| p.parse_expr()).is_ok());
        let e = tokenize(&nested(10_000)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("nested more than 32 levels"), "{e}");
        let types = |n: usize| format!("{}INT{}", "ARRAY<".repeat(n), ">".repeat(n));
        assert!(parse(&types(5), |p| p.parse_data_type()).is_ok());
        assert!(tokenize(&types(5_000)).is_err());
    }

    #[test]
    fn comparisons_are_not_nesting() {
        let many = vec!["a < b"; 100].join(" AND ");
        assert!(parse(&many, |p| p.parse_expr()).is_ok());
    }

    #[test]
    fn long_operator_chains_are_refused_but_long_lists_are_not() {
        let chain = |n: usize| (0..n).map(|i| format!("x = {i}")).collect::<Vec<_>>().join(" OR ");
        assert!(parse(&chain(100), |p| p.parse_expr()).is_ok());
        let e = tokenize(&chain(10_000)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("more than 1024 operators"), "{e}");
        let list = format!("x IN ({})", (0..10_000).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
        assert!(parse(&list, |p| p.parse_expr()).is_ok());
        let columns = format!("SELECT {}", vec!["a + b"; 5_000].join(", "));
        assert!(parse(&columns, |p| p.parse_query()).is_ok());
        let stacked = format!("{}1{}", "a + a + (".repeat(30), ")".repeat(30));
        assert!(tokenize(&stacked).is_ok());
        let deep = format!("{}1{}", format!("{} + (", vec!["a"; 100].join(" + ")).repeat(30), ")".repeat(30));
        assert!(tokenize(&deep).is_err());
    }

    #[test]
    fn deep_unary_chains_do_not_overflow_the_stack() {
        // Parsed or refused, but on the test thread's stack either way, drop included.
        for text in [format!("{}x", "NOT ".repeat(10_000)), format!("{}x", "- ".repeat(10_000))] {
            let _ = parse(&text, |p| p.parse_expr());
        }
    }

    #[test]
    fn shapes_sqlparser_parses_in_exponential_time_are_refused_by_the_budget() {
        let casts = |n: usize| format!("SELECT {}x AS INT{}", "CAST(".repeat(n), ")".repeat(n));
        // Each level of CAST doubles sqlparser's work: 10 levels start ~1,500 expressions, 30
        // would start ~1.6 billion (hours). Within the nesting limit either way.
        assert!(parse(&casts(10), |p| p.parse_query()).is_ok());
        let e = parse(&casts(30), |p| p.parse_query()).unwrap_err().to_string();
        assert!(e.contains("SQL too costly to parse") && e.contains("at Line: 1, Column: "), "{e}");
        for unclosed in ["NOT (", "(NOT "] {
            let e = parse(&format!("SELECT {}", unclosed.repeat(30)), |p| p.parse_query()).unwrap_err().to_string();
            assert!(e.contains("SQL too costly to parse"), "{unclosed}: {e}");
        }
    }

    #[test]
    fn the_budget_grows_with_the_text() {
        // 20,000 columns start ~80,000 expressions, more than the base allowance; their 180,000
        // tokens allow far more.
        let columns = format!("SELECT {}", vec!["CAST(a AS INT) + b"; 20_000].join(", "));
        assert!(parse(&columns, |p| p.parse_query()).is_ok());
    }
}
