//! The job-file parser: Spark SQL plus `CREATE STREAM`, `CREATE SINK`, `WATERMARK FOR` and `SET`.
//!
//! Like DataFusion's own `DFParser`, it drives sqlparser's [`Parser`] and takes over only the
//! statements sqlparser does not know; everything else (`INSERT INTO … SELECT`, `CREATE VIEW`) is
//! handed to sqlparser, so the SELECT language is exactly DataFusion's. Each statement keeps its
//! original text span so the driver can ship the user's own SQL to executors and quote it in errors.

use datafusion::sql::sqlparser::ast::{Expr, Statement, Value, ValueWithSpan};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::redact::{self, Redactor};
use sluice_common::time::{parse_interval, Interval};
use sluice_common::types::arrow_type;

use sluice_plan::{ComputedColumn, WatermarkDef};

use super::statement::{ColumnDef, ParsedStatement, RelationDef, SinkDef};

/// Parses a whole job file into statements, in order.
///
/// `origin` names the file in error messages (`job.sql:3:14: …`).
///
/// A syntax error may quote the token it stopped at, which can be an option's value; the values
/// of sensitive options ([`sluice_common::redact`]) are redacted from it.
pub fn parse_job(origin: &str, text: &str) -> Result<Vec<ParsedStatement>> {
    let tokens = sluice_common::dialect::tokenize(text).map_err(|e| located_error(origin, &e.to_string()))?;
    let redactor = secrets_in_tokens(&tokens);
    parse_tokens(origin, text, tokens).map_err(|e| redactor.scrub_error(e))
}

/// The values of sensitive options in a job's tokens, found without parsing (the text may not
/// parse): a key — quoted, or dotted words — that [`redact::is_sensitive`] or is
/// `sasl.jaas.config`, then a quoted value, or any value after `=` or `TO`.
fn secrets_in_tokens(tokens: &[TokenWithSpan]) -> Redactor {
    let toks: Vec<&Token> = tokens.iter().map(|t| &t.token).filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    let mut redactor = Redactor::new();
    for i in 0..toks.len() {
        let (key, mut next) = match toks[i] {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => (s.clone(), i + 1),
            Token::Word(w) => {
                let mut key = w.value.clone();
                let mut j = i + 1;
                while let (Some(Token::Period), Some(Token::Word(part))) = (toks.get(j), toks.get(j + 1)) {
                    key.push('.');
                    key.push_str(&part.value);
                    j += 2;
                }
                (key, j)
            }
            _ => continue,
        };
        if !redact::is_sensitive(&key) && !redact::is_jaas_key(&key) {
            continue;
        }
        let assigned = match toks.get(next) {
            Some(Token::Eq) => true,
            Some(Token::Word(w)) => w.keyword == Keyword::TO,
            _ => false,
        };
        if assigned {
            next += 1;
        }
        let value = match toks.get(next) {
            Some(Token::SingleQuotedString(v) | Token::DoubleQuotedString(v)) => Some(v.as_str()),
            Some(Token::Word(w)) if assigned => Some(w.value.as_str()),
            Some(Token::Number(n, _)) if assigned => Some(n.as_str()),
            _ => None,
        };
        if let Some(v) = value {
            redactor.add_pairs([(key.as_str(), v)]);
        }
    }
    redactor
}

fn parse_tokens(origin: &str, text: &str, tokens: Vec<TokenWithSpan>) -> Result<Vec<ParsedStatement>> {
    let offsets = LineOffsets::new(text);
    sluice_common::dialect::parse_tokens(tokens, |parser| {
        let mut out = Vec::new();
        loop {
            while parser.consume_token(&Token::SemiColon) {}
            let start = parser.peek_token();
            if start.token == Token::EOF {
                break;
            }
            let stmt = parse_one(parser)?;
            let end = parser.peek_token();
            if end.token != Token::SemiColon && end.token != Token::EOF {
                return Err(ParserError::ParserError(format!(
                    "Expected: end of statement, found: {} at Line: {}, Column: {}",
                    end.token, end.span.start.line, end.span.start.column
                )));
            }
            let sql = offsets.slice(text, start.span.start, end.span.start).trim().to_string();
            out.push(ParsedStatement { line: start.span.start.line, sql, kind: stmt });
        }
        Ok(out)
    })
    .map_err(|e| located_error(origin, &e.to_string()))
}

/// One statement, without its text span.
fn parse_one(parser: &mut Parser) -> Result<super::statement::StatementKind, ParserError> {
    use super::statement::StatementKind as K;
    if parser.peek_keyword(Keyword::SET) {
        parser.next_token();
        return parse_set(parser);
    }
    if parser.peek_keyword(Keyword::CREATE) {
        let next = parser.peek_nth_token(1);
        let word = match &next.token {
            Token::Word(w) => w.value.to_ascii_uppercase(),
            _ => String::new(),
        };
        match word.as_str() {
            "STREAM" => {
                parser.next_token();
                parser.next_token();
                return Ok(K::CreateStream(parse_relation(parser, true)?));
            }
            "TABLE" => {
                parser.next_token();
                parser.next_token();
                return Ok(K::CreateTable(parse_relation(parser, false)?));
            }
            "SINK" => {
                parser.next_token();
                parser.next_token();
                let name = parser.parse_identifier()?.value;
                let options = parse_with_options(parser)?;
                return Ok(K::CreateSink(SinkDef { name, options }));
            }
            _ => {}
        }
    }
    match parser.parse_statement()? {
        Statement::Insert(insert) => {
            let target = insert.table.to_string();
            let Some(source) = insert.source else {
                return parser_error("INSERT INTO needs a SELECT", parser);
            };
            if !insert.columns.is_empty() {
                return parser_error("INSERT INTO <sink> (columns) is not supported; name the columns in the SELECT", parser);
            }
            Ok(K::Insert { sink: target.trim_matches('`').to_string(), query: source })
        }
        Statement::CreateView(view) => {
            Ok(K::CreateView { name: view.name.to_string().trim_matches('`').to_string(), query: view.query })
        }
        other => {
            let first = other.to_string();
            let first = first.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            parser_error(
                &format!(
                    "'{first}' is not a job-file statement; expected CREATE STREAM, CREATE TABLE, CREATE SINK, CREATE VIEW, SET or INSERT INTO"
                ),
                parser,
            )
        }
    }
}

fn parser_error<T>(msg: &str, parser: &Parser) -> Result<T, ParserError> {
    let loc = parser.get_current_token().span.start;
    Err(ParserError::ParserError(format!("{msg} at Line: {}, Column: {}", loc.line, loc.column)))
}

/// `SET 'key' = 'value'`, `SET key.with.dots = value` or `SET key TO value`.
fn parse_set(parser: &mut Parser) -> Result<super::statement::StatementKind, ParserError> {
    let key = parse_option_key(parser)?;
    if !parser.consume_token(&Token::Eq) && !parser.parse_keyword(Keyword::TO) {
        return parser.expected("'=' after the SET key", parser.peek_token());
    }
    let value = parse_option_value(parser)?;
    Ok(super::statement::StatementKind::Set { key, value })
}

/// `name ( columns…, [WATERMARK FOR col AS expr] ) WITH ( options )`.
fn parse_relation(parser: &mut Parser, is_stream: bool) -> Result<RelationDef, ParserError> {
    let name = parser.parse_identifier()?.value;
    let mut columns = Vec::new();
    let mut computed = Vec::new();
    let mut watermark = None;
    if parser.consume_token(&Token::LParen) {
        loop {
            if is_word(&parser.peek_token().token, "WATERMARK") {
                parser.next_token();
                if !is_stream {
                    return parser_error("WATERMARK FOR is only allowed in CREATE STREAM", parser);
                }
                parser.expect_keyword_is(Keyword::FOR)?;
                let column = parser.parse_identifier()?.value;
                parser.expect_keyword_is(Keyword::AS)?;
                let expr_start = parser.get_current_token().span.start;
                let expr = parser.parse_expr()?;
                let delay = watermark_delay(&column, &expr).map_err(|m| {
                    ParserError::ParserError(format!("{m} at Line: {}, Column: {}", expr_start.line, expr_start.column))
                })?;
                watermark = Some(WatermarkDef { column, delay_ms: delay.delay_ms(), delay });
            } else {
                let col_name = parser.parse_identifier()?.value;
                if parser.parse_keyword(Keyword::AS) {
                    let expr = parser.parse_expr()?;
                    computed.push(ComputedColumn { name: col_name, expr: expr.to_string() });
                } else {
                    let type_at = parser.peek_token();
                    let sql_type = parser.parse_data_type()?;
                    let data_type = arrow_type(&sql_type).map_err(|e| {
                        ParserError::ParserError(format!(
                            "{} at Line: {}, Column: {}",
                            e.message, type_at.span.start.line, type_at.span.start.column
                        ))
                    })?;
                    let mut nullable = true;
                    if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                        nullable = false;
                    }
                    if parser.parse_keyword(Keyword::COMMENT) {
                        parser.parse_literal_string()?;
                    }
                    columns.push(ColumnDef { name: col_name, data_type, nullable });
                }
            }
            if parser.consume_token(&Token::Comma) {
                continue;
            }
            parser.expect_token(&Token::RParen)?;
            break;
        }
    }
    let options = parse_with_options(parser)?;
    Ok(RelationDef { name, columns, computed, watermark, options })
}

/// A watermark must read `col - INTERVAL …` (or just `col` for no delay), as Spark's
/// `withWatermark(col, delay)` allows nothing else.
fn watermark_delay(column: &str, expr: &Expr) -> std::result::Result<Interval, String> {
    let shape = || format!("WATERMARK FOR {column} must be written as `{column} - INTERVAL '<n>' <unit>`");
    match expr {
        Expr::Identifier(id) if id.value == column => Ok(Interval::default()),
        Expr::BinaryOp { left, op, right } => {
            let left_ok = matches!(left.as_ref(), Expr::Identifier(id) if id.value == column);
            if !left_ok || op.to_string() != "-" {
                return Err(shape());
            }
            let Expr::Interval(iv) = right.as_ref() else { return Err(shape()) };
            let value = match iv.value.as_ref() {
                Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(s), .. }) => s.clone(),
                Expr::Value(ValueWithSpan { value: Value::Number(n, _), .. }) => n.to_string(),
                _ => return Err(shape()),
            };
            let text = match &iv.leading_field {
                Some(unit) => format!("{value} {unit}"),
                None => value,
            };
            let delay = parse_interval(&text).map_err(|e| e.message)?;
            if delay.is_negative() {
                return Err(format!("delay threshold ({text}) should not be negative."));
            }
            Ok(delay)
        }
        _ => Err(shape()),
    }
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.value.eq_ignore_ascii_case(word))
}

/// `WITH ('k' = 'v', k2 = 3, …)`; absent clause = no options.
fn parse_with_options(parser: &mut Parser) -> Result<Options, ParserError> {
    let mut options = Options::new();
    if !parser.parse_keyword(Keyword::WITH) {
        return Ok(options);
    }
    parser.expect_token(&Token::LParen)?;
    if parser.consume_token(&Token::RParen) {
        return Ok(options);
    }
    loop {
        let key = parse_option_key(parser)?;
        parser.expect_token(&Token::Eq)?;
        let value = parse_option_value(parser)?;
        if options.contains(&key) {
            return parser_error(&format!("option '{key}' is given twice"), parser);
        }
        options.insert(key, value);
        if parser.consume_token(&Token::Comma) {
            continue;
        }
        parser.expect_token(&Token::RParen)?;
        return Ok(options);
    }
}

fn parse_option_key(parser: &mut Parser) -> Result<String, ParserError> {
    let tok = parser.next_token();
    match tok.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Ok(s),
        Token::Word(w) => {
            let mut key = w.value;
            while parser.consume_token(&Token::Period) {
                match parser.next_token().token {
                    Token::Word(w) => {
                        key.push('.');
                        key.push_str(&w.value);
                    }
                    _ => return parser.expected("an option name", parser.get_current_token().clone()),
                }
            }
            Ok(key)
        }
        _ => parser.expected("an option name", tok),
    }
}

fn parse_option_value(parser: &mut Parser) -> Result<String, ParserError> {
    let tok = parser.next_token();
    match tok.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Ok(s),
        Token::Number(n, _) => Ok(n),
        Token::Word(w) => Ok(w.value),
        Token::Minus => match parser.next_token().token {
            Token::Number(n, _) => Ok(format!("-{n}")),
            _ => parser.expected("a number after '-'", parser.get_current_token().clone()),
        },
        _ => parser.expected("an option value", tok),
    }
}

/// Re-renders sqlparser's "… at Line: L, Column: C" as `origin:L:C: …`, the form editors jump to.
fn located_error(origin: &str, message: &str) -> SluiceError {
    let message = message.strip_prefix("sql parser error: ").unwrap_or(message);
    if let Some(at) = message.rfind(" at Line: ") {
        let (msg, loc) = message.split_at(at);
        let loc = loc.trim_start_matches(" at Line: ");
        if let Some((line, col)) = loc.split_once(", Column: ") {
            return SluiceError::user(format!("{origin}:{}:{}: {msg}", line.trim(), col.trim()));
        }
    }
    SluiceError::user(format!("{origin}: {message}"))
}

/// Maps sqlparser's (line, column) locations back to byte offsets in the job text.
struct LineOffsets {
    starts: Vec<usize>,
}

impl LineOffsets {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn offset(&self, text: &str, loc: Location) -> usize {
        if loc.line == 0 {
            return text.len();
        }
        let Some(&line_start) = self.starts.get(loc.line as usize - 1) else { return text.len() };
        text[line_start..]
            .char_indices()
            .nth(loc.column.saturating_sub(1) as usize)
            .map(|(i, _)| line_start + i)
            .unwrap_or(text.len())
    }

    fn slice<'a>(&self, text: &'a str, from: Location, to: Location) -> &'a str {
        let a = self.offset(text, from);
        let b = self.offset(text, to).max(a);
        &text[a..b]
    }
}

#[cfg(test)]
mod tests {
    use super::super::statement::StatementKind as K;
    use super::*;

    const JOB: &str = "
CREATE STREAM events (
  event_time TIMESTAMP, user_id STRING, amount BIGINT,
  WATERMARK FOR event_time AS event_time - INTERVAL '10' MINUTE
) WITH ('connector' = 'files', 'format' = 'json', 'path' = 'data/in', 'maxFilesPerTrigger' = '1');
CREATE SINK out WITH ('connector' = 'console');
SET 'outputMode' = 'append';
SET spark.sql.shuffle.partitions = 5;
INSERT INTO out SELECT event_time, user_id FROM events WHERE amount > 10;
";

    #[test]
    fn parses_the_readme_job() {
        let st = parse_job("job.sql", JOB).unwrap();
        assert_eq!(st.len(), 5);
        let K::CreateStream(ev) = &st[0].kind else { panic!() };
        assert_eq!(ev.columns.len(), 3);
        let wm = ev.watermark.as_ref().unwrap();
        assert_eq!((wm.column.as_str(), wm.delay_ms), ("event_time", 600_000));
        assert_eq!(ev.options.get("maxfilespertrigger"), Some("1"));
        assert!(matches!(&st[3].kind, K::Set { key, value } if key == "spark.sql.shuffle.partitions" && value == "5"));
        let K::Insert { sink, .. } = &st[4].kind else { panic!() };
        assert_eq!(sink, "out");
        assert_eq!(st[4].sql, "INSERT INTO out SELECT event_time, user_id FROM events WHERE amount > 10");
        assert_eq!(st[4].line, 9);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = parse_job("job.sql", "SET 'a' = 'b';\nINSERT INTO out SELEC x FROM y").unwrap_err();
        assert!(e.message.starts_with("job.sql:2:"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_do_not_quote_secret_values() {
        // The `=` is missing: sqlparser stops at the value and quotes it.
        let job = "CREATE SINK k WITH ('connector' = 'kafka', 'kafka.sasl.password' 'hunter22');";
        let e = parse_job("job.sql", job).unwrap_err();
        assert!(!e.message.contains("hunter22") && e.message.contains("*********(redacted)"), "{}", e.message);
        let job = "CREATE SINK k WITH (kafka.sasl.jaas.config = 'M required username=\"u\" password=\"hunter22\";' x);";
        let e = parse_job("job.sql", job).unwrap_err();
        assert!(!e.message.contains("hunter22"), "{}", e.message);
        let toks =
            sluice_common::dialect::tokenize("SELECT password FROM t WHERE password = 'abcd1234' AND token 'efgh'").unwrap();
        let r = secrets_in_tokens(&toks);
        assert_eq!(r.scrub("FROM abcd1234 efgh"), "FROM *********(redacted) *********(redacted)");
    }

    #[test]
    fn computed_columns_and_bad_watermarks() {
        let st = parse_job(
            "j",
            "CREATE STREAM s (value INT, eventTime AS timestamp_seconds(value), WATERMARK FOR eventTime AS eventTime - INTERVAL '10 seconds') WITH ('connector'='memory')",
        )
        .unwrap();
        let K::CreateStream(s) = &st[0].kind else { panic!() };
        assert_eq!(s.computed[0].name, "eventTime");
        assert_eq!(s.watermark.as_ref().unwrap().delay_ms, 10_000);
        let e = parse_job("j", "CREATE STREAM s (t TIMESTAMP, WATERMARK FOR t AS t + INTERVAL '1' SECOND)").unwrap_err();
        assert!(e.message.contains("must be written as"), "{}", e.message);
        let e = parse_job("j", "CREATE STREAM s (t FOO)").unwrap_err();
        assert!(e.message.contains("j:1:"), "{}", e.message);
    }
}
