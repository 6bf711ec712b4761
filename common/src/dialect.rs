//! The SQL dialect of job files: Spark SQL as sqlparser knows it, but accepting Spark's
//! unqualified interval strings (`INTERVAL '10 seconds'`), which Spark itself accepts and
//! sqlparser's `SparkSqlDialect` rejects — and the one way sluice turns SQL text into a parser
//! ([`parser`]), which refuses text nested too deeply to parse safely.
//!
//! sqlparser, the type mapping and DataFusion's planner all recurse once per nesting level
//! (`((((…))))`, `ARRAY<ARRAY<…>>`, `NOT NOT …`), and a few thousand levels overflow the 2 MiB
//! stack of a tokio worker: the whole driver or executor process aborts, not just the query.
//! sqlparser bounds only part of that recursion (not data types), so every SQL text sluice
//! parses — job files, `from_json` schemas, the queries and computed columns executors compile —
//! goes through [`parser`], which counts brackets before parsing and caps sqlparser's recursion.

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr};
use datafusion::sql::sqlparser::dialect::{Dialect, SparkSqlDialect};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// The deepest nesting of brackets (`(`, `[`, `{`, and the `<` of `ARRAY<`, `MAP<`, `STRUCT<`)
/// and of sqlparser's own recursion that SQL text may have. Far beyond what people write; far
/// below what overflows a worker thread's stack.
pub const MAX_NESTING: usize = 32;

/// Tokenizes `sql` with [`SluiceDialect`] and checks its nesting ([`MAX_NESTING`]); errors carry
/// sqlparser's "at Line: L, Column: C" suffix, so callers render them like parse errors.
pub fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, ParserError> {
    let tokens = Tokenizer::new(&SluiceDialect, sql).tokenize_with_location()?;
    check_nesting(&tokens)?;
    Ok(tokens)
}

/// A parser over `sql` in [`SluiceDialect`], refusing text nested deeper than [`MAX_NESTING`]
/// and capping sqlparser's recursion at the same depth.
pub fn parser(sql: &str) -> Result<Parser<'static>, ParserError> {
    Ok(parser_for_tokens(tokenize(sql)?))
}

/// A parser over tokens that [`tokenize`] produced.
pub fn parser_for_tokens(tokens: Vec<TokenWithSpan>) -> Parser<'static> {
    Parser::new(&SluiceDialect).with_recursion_limit(MAX_NESTING).with_tokens_with_locations(tokens)
}

/// Fails on the first bracket that opens level `MAX_NESTING + 1`. Type brackets (`ARRAY<`) are
/// told from comparisons by the word before them; a `>` that closes nothing is a comparison and
/// only saturates the count, so a mis-guess can lower the depth but never hide real nesting.
fn check_nesting(tokens: &[TokenWithSpan]) -> Result<(), ParserError> {
    let (mut brackets, mut angles) = (0usize, 0usize);
    let mut previous: Option<&Token> = None;
    for t in tokens {
        match &t.token {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket | Token::LBrace => brackets += 1,
            Token::RParen | Token::RBracket | Token::RBrace => brackets = brackets.saturating_sub(1),
            Token::Lt if matches!(previous, Some(Token::Word(w)) if is_type_constructor(&w.value)) => angles += 1,
            Token::Gt => angles = angles.saturating_sub(1),
            Token::ShiftRight => angles = angles.saturating_sub(2),
            _ => {}
        }
        if brackets + angles > MAX_NESTING {
            let at = t.span.start;
            return Err(ParserError::ParserError(format!(
                "SQL nested more than {MAX_NESTING} levels deep is not supported at Line: {}, Column: {}",
                at.line, at.column
            )));
        }
        previous = Some(&t.token);
    }
    Ok(())
}

fn is_type_constructor(word: &str) -> bool {
    ["ARRAY", "MAP", "STRUCT"].iter().any(|k| word.eq_ignore_ascii_case(k))
}

/// Spark SQL with unqualified interval literals.
#[derive(Debug, Default, Clone, Copy)]
pub struct SluiceDialect;

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
        assert!(parser(&nested(10)).and_then(|mut p| p.parse_expr()).is_ok());
        let e = parser(&nested(10_000)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("nested more than 32 levels"), "{e}");
        let types = |n: usize| format!("{}INT{}", "ARRAY<".repeat(n), ">".repeat(n));
        assert!(parser(&types(5)).and_then(|mut p| p.parse_data_type()).is_ok());
        assert!(parser(&types(5_000)).is_err());
    }

    #[test]
    fn comparisons_are_not_nesting() {
        let many = vec!["a < b"; 100].join(" AND ");
        assert!(parser(&many).and_then(|mut p| p.parse_expr()).is_ok());
    }

    #[test]
    fn deep_unary_chains_hit_the_recursion_cap() {
        let text = format!("{}x", "NOT ".repeat(10_000));
        assert!(parser(&text).and_then(|mut p| p.parse_expr()).is_err());
    }
}
