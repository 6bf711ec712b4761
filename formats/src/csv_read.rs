//! Spark's CSV reader (`UnivocityParser` behind `FailureSafeParser`), one line per record.
//!
//! Blank lines (whitespace only) and comment lines are skipped; the header is the first line
//! left when the caller says the chunk starts a file. Fields map to data columns by position; a
//! token count that differs from the column count makes the record malformed but keeps what
//! converted (missing fields are null, extra ones dropped); a field that fails to convert is
//! null and marks the record malformed.

use arrow::datatypes::{DataType, SchemaRef};

use super::csv_convert::{convert_text, TextCx};
use super::csv_tokenizer::{Dialect, Special, Tokenizer};
use super::failure_safe::RowSink;
use super::read_options::CommonReadOptions;
use super::{DecodeResult, ParseMode};
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::types::spark_type_name as catalog_string;

const OWN_KEYS: &[&str] = &[
    "sep",
    "delimiter",
    "quote",
    "escape",
    "comment",
    "header",
    "nullValue",
    "emptyValue",
    "nanValue",
    "positiveInf",
    "negativeInf",
    "ignoreLeadingWhiteSpace",
    "ignoreTrailingWhiteSpace",
    "enforceSchema",
];

/// Spark's `CSVExprUtils.toChar` for the separator: one character or an escape such as `\t`.
pub(crate) fn separator(opts: &Options) -> Result<char> {
    let s = opts.get("sep").or_else(|| opts.get("delimiter")).unwrap_or(",");
    let mut chars = s.chars();
    match (chars.next(), chars.next(), chars.next()) {
        (None, ..) => Err(SluiceError::user("Delimiter cannot be empty string")),
        (Some('\\'), None, _) => Err(SluiceError::user(
            "Single backslash is prohibited. It has special meaning as beginning of an escape sequence. \
             To get the backslash character, pass a string with two backslashes as the delimiter.",
        )),
        (Some(c), None, _) => Ok(c),
        (Some('\\'), Some(e), None) => match e {
            't' => Ok('\t'),
            'r' => Ok('\r'),
            'b' => Ok('\u{8}'),
            'f' => Ok('\u{c}'),
            '"' => Ok('"'),
            '\'' => Ok('\''),
            '\\' => Ok('\\'),
            _ => Err(SluiceError::user(format!("Unsupported special character for delimiter: {s}"))),
        },
        _ => Err(SluiceError::user(format!("Delimiter cannot be more than one character: {s}"))),
    }
}

/// Spark's `CSVOptions.getChar`: `None` for the empty string or `\u0000` (the feature is off).
pub(crate) fn optional_char(opts: &Options, key: &str, default: char) -> Result<Option<char>> {
    let c = match opts.get(key) {
        None => default,
        Some(v) => {
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (None, _) => '\0',
                (Some(c), None) => c,
                _ => return Err(SluiceError::user(format!("{key} cannot be more than one character"))),
            }
        }
    };
    Ok((c != '\0').then_some(c))
}

/// Options of the CSV reader.
#[derive(Debug, Clone)]
pub struct CsvReadOptions {
    common: CommonReadOptions,
    dialect: Dialect,
    comment: Option<char>,
    header: bool,
    null_value: String,
    empty_value: String,
    nan_value: String,
    positive_inf: String,
    negative_inf: String,
}

impl CsvReadOptions {
    /// Parses the reader options; `extra_valid` are keys the caller consumes itself. Unknown
    /// keys, `multiLine=true`, `enforceSchema=false` and non-UTF-8 encodings are user errors.
    pub fn from_options(opts: &Options, extra_valid: &[&str]) -> Result<Self> {
        let owner = "CSV source";
        let common = CommonReadOptions::parse(opts, OWN_KEYS, extra_valid, owner)?;
        if !opts.bool_or("enforceSchema", true, owner)? {
            return Err(SluiceError::user("enforceSchema=false is not supported; the given schema is always applied"));
        }
        let text = |key: &str, default: &str| opts.get(key).unwrap_or(default).to_string();
        Ok(Self {
            common,
            dialect: Dialect {
                sep: Special::new(separator(opts)?),
                quote: optional_char(opts, "quote", '"')?.map(Special::new),
                escape: optional_char(opts, "escape", '\\')?.map(Special::new),
                trim_leading: opts.bool_or("ignoreLeadingWhiteSpace", false, owner)?,
                trim_trailing: opts.bool_or("ignoreTrailingWhiteSpace", false, owner)?,
            },
            comment: optional_char(opts, "comment", '\0')?,
            header: opts.bool_or("header", false, owner)?,
            null_value: text("nullValue", ""),
            empty_value: text("emptyValue", ""),
            nan_value: text("nanValue", "NaN"),
            positive_inf: text("positiveInf", "Inf"),
            negative_inf: text("negativeInf", "-Inf"),
        })
    }

    /// Whether files start with a header line (the caller then sets `skip_first_line` for the
    /// chunk that starts a file).
    pub fn header(&self) -> bool {
        self.header
    }

    /// The parse mode, for callers that report it.
    pub fn mode(&self) -> ParseMode {
        self.common.mode
    }
}

/// Decodes CSV lines (split on `\n`, a trailing `\r` dropped) into a batch of `schema`.
///
/// `skip_first_line` drops the first non-blank, non-comment line (the header). A nullable
/// STRING field named like the corrupt-record option is not a data column: it holds the raw
/// line of malformed records. FAILFAST errors name the 1-based line number within `data`.
pub fn decode_csv(data: &[u8], skip_first_line: bool, schema: &SchemaRef, opts: &CsvReadOptions) -> Result<DecodeResult> {
    for f in schema.fields() {
        if matches!(f.data_type(), DataType::List(_) | DataType::Map(..) | DataType::Struct(_)) {
            return Err(SluiceError::user(format!(
                "CSV data source does not support {} data type (column '{}').",
                catalog_string(f.data_type()),
                f.name()
            )));
        }
    }
    let mut sink = RowSink::new(schema.fields(), &opts.common.corrupt_column, opts.common.mode, "CSV")?;
    let cx = TextCx {
        formats: &opts.common.formats,
        nan_value: &opts.nan_value,
        positive_inf: &opts.positive_inf,
        negative_inf: &opts.negative_inf,
    };
    let mut tokenizer = Tokenizer::new(opts.dialect.clone());
    let mut header_pending = skip_first_line;
    for (index, raw) in data.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Spark decodes lines with replacement characters rather than failing.
        let line = String::from_utf8_lossy(raw);
        let is_comment = opts.comment.is_some_and(|c| line.starts_with(c));
        if is_comment || line.bytes().all(|c| c <= b' ') {
            continue;
        }
        if std::mem::replace(&mut header_pending, false) {
            continue;
        }
        tokenizer.tokenize(&line);
        let base = sink.len();
        let mut malformed = tokenizer.len() != sink.root.children.len();
        for (i, col) in sink.root.children.iter_mut().enumerate() {
            let datum = match tokenizer.field(i) {
                // Univocity turns an empty unquoted field into nullValue and `""` into emptyValue.
                Some(("", false)) | None => None,
                Some(("", true)) => Some(opts.empty_value.as_str()),
                Some((text, _)) => Some(text),
            };
            match datum {
                Some(d) if d != opts.null_value => {
                    if convert_text(col, d, &cx).is_none() {
                        col.push_null();
                        malformed = true;
                    }
                }
                _ => col.push_null(),
            }
        }
        sink.root.commit();
        if malformed {
            sink.reject(base, true, &line, &format!("line {}", index + 1))?;
        } else {
            sink.accept(base);
        }
    }
    let malformed_rows = sink.malformed();
    Ok(DecodeResult { batch: sink.finish_batch(schema)?, malformed_rows })
}

#[cfg(test)]
#[path = "csv_read_tests.rs"]
mod tests;
