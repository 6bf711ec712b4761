//! Spark's JSON-lines reader (`JacksonParser` behind `FailureSafeParser`) and `from_json`.
//!
//! Each line holds one JSON object (one row) or a top-level array of objects (one row each);
//! blank lines are skipped. A field whose value does not fit its type is null and marks the
//! record malformed while its other fields are kept (Spark 3's partial results, which since
//! Spark 3.4 reach into nested structs too); a line that is not JSON at all yields an all-null
//! row. Trailing text after the first value is ignored, as Jackson never reads it.

use arrow::array::{Array, StringArray, StructArray};
use arrow::datatypes::{Fields, SchemaRef};

use super::failure_safe::RowSink;
use super::json_convert::{decode_object, JsonCx};
use super::json_lexer::{Fail, Kind, Lexer, Step};
use super::read_options::CommonReadOptions;
use super::{DecodeResult, ParseMode};
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;

/// Options of the JSON reader.
#[derive(Debug, Clone)]
pub struct JsonReadOptions {
    common: CommonReadOptions,
    allow_non_numeric: bool,
    nested_partial: bool,
}

impl JsonReadOptions {
    /// Parses the reader options; `extra_valid` are keys the caller consumes itself (e.g.
    /// `maxFilesPerTrigger`). Unknown keys, `multiLine=true`, non-UTF-8 encodings and bad
    /// date-time patterns are user errors.
    pub fn from_options(opts: &Options, extra_valid: &[&str]) -> Result<Self> {
        let common = CommonReadOptions::parse(opts, &["allowNonNumericNumbers"], extra_valid, "JSON source")?;
        let allow_non_numeric = opts.bool_or("allowNonNumericNumbers", true, "JSON source")?;
        Ok(Self { common, allow_non_numeric, nested_partial: true })
    }

    /// Sets Spark's SQL conf `spark.sql.json.enablePartialResults` (true by default since Spark
    /// 3.4, absent before). When on, a nested struct keeps the fields that converted and elements
    /// of a top-level array keep theirs; when off (Spark 3.0-3.3), any failure below a top-level
    /// field nulls that whole field, and any failure in a top-level array loses the record.
    pub fn with_nested_partial_results(mut self, enabled: bool) -> Self {
        self.nested_partial = enabled;
        self
    }

    /// The parse mode, for callers that report it.
    pub fn mode(&self) -> ParseMode {
        self.common.mode
    }

    fn cx(&self) -> JsonCx<'_> {
        JsonCx { formats: &self.common.formats, non_numeric: self.allow_non_numeric, nested_partial: self.nested_partial }
    }
}

/// How one record decoded.
enum Outcome {
    /// Only whitespace: no row, not malformed.
    Blank,
    Good,
    /// Malformed, with the partial rows kept.
    Partial,
    /// Malformed, nothing kept.
    Bad,
}

/// Decodes the record `lx` is at into `sink.root`, leaving it as it was if the record is
/// [`Outcome::Bad`].
fn decode_record(lx: &mut Lexer<'_>, sink: &mut RowSink, cx: JsonCx<'_>, top_level_arrays: bool) -> Outcome {
    if lx.at_end() {
        return Outcome::Blank;
    }
    let base = sink.len();
    let result = match lx.peek_kind() {
        Ok(Kind::Object) => {
            decode_object(lx, &mut sink.root, cx, true).map(|failed| if failed { Outcome::Partial } else { Outcome::Good })
        }
        Ok(Kind::Array) if top_level_arrays => {
            decode_rows(lx, sink, cx).map(|failed| if failed { Outcome::Partial } else { Outcome::Good })
        }
        _ => Err(Fail::Syntax),
    };
    result.unwrap_or_else(|_| {
        sink.root.truncate(base);
        Outcome::Bad
    })
}

/// A top-level array: every element must be an object and becomes a row. Elements are nested
/// values to Spark, so a failing field loses the whole record unless nested partial results are
/// on; an element that is not an object always does.
fn decode_rows(lx: &mut Lexer<'_>, sink: &mut RowSink, cx: JsonCx<'_>) -> Step<bool> {
    lx.begin_array();
    let (mut first, mut failed) = (true, false);
    while lx.next_element(&mut first)? {
        if lx.peek_kind()? != Kind::Object {
            return Err(Fail::Convert);
        }
        failed |= decode_object(lx, &mut sink.root, cx, cx.nested_partial)?;
    }
    Ok(failed)
}

/// Applies an outcome to the rows appended since `base`.
fn settle(sink: &mut RowSink, outcome: Outcome, base: usize, record: &str, location: impl FnOnce() -> String) -> Result<()> {
    match outcome {
        Outcome::Blank => Ok(()),
        Outcome::Good => {
            sink.accept(base);
            Ok(())
        }
        Outcome::Partial => sink.reject(base, true, record, &location()),
        Outcome::Bad => sink.reject(base, false, record, &location()),
    }
}

/// After how many lines the reader sizes its columns for the whole text.
const SIZING_LINES: usize = 1024;

/// Decodes JSON lines (split on `\n`, a trailing `\r` dropped) into a batch of `schema`.
///
/// A nullable STRING field named like the corrupt-record option is not read from the JSON: it is
/// null for good rows and holds the raw line for malformed ones. FAILFAST errors name the
/// 1-based line number within `data`; the caller adds the file.
pub fn decode_json_lines(data: &[u8], schema: &SchemaRef, opts: &JsonReadOptions) -> Result<DecodeResult> {
    let mut sink = RowSink::new(schema.fields(), &opts.common.corrupt_column, opts.common.mode, "JSON")?;
    let cx = opts.cx();
    let location = |index: usize| move || format!("line {}", index + 1);
    // Validating the whole range at once (with SIMD) is much cheaper than line by line; only a
    // range with malformed UTF-8 somewhere is checked per line, to lose just the lines that have it.
    match simdutf8::basic::from_utf8(data) {
        Ok(text) => {
            // One scanner for every line, which stops at line ends itself (`Lexer::lines`).
            let mut lx = Lexer::lines(text, cx.non_numeric);
            let (mut start, mut index) = (0, 0);
            loop {
                lx.seek(start);
                let base = sink.len();
                let outcome = decode_record(&mut lx, &mut sink, cx, true);
                // A record that was read ends before its line's `\n`; one that failed may have
                // stopped anywhere, so its line end is searched from its start. `\n` is ASCII,
                // so every cut is on a character boundary.
                let from = if matches!(outcome, Outcome::Bad) { start } else { lx.pos() };
                let end = memchr::memchr(b'\n', data.get(from..).unwrap_or_default()).map_or(data.len(), |i| from + i);
                let line = text.get(start..end).unwrap_or_default();
                settle(&mut sink, outcome, base, line.strip_suffix('\r').unwrap_or(line), location(index))?;
                if end >= data.len() {
                    break;
                }
                if index == SIZING_LINES {
                    // The rest of the text will likely fill the columns as its start did.
                    sink.root.reserve_scaled((data.len() - end) as f64 / end as f64 * 1.05);
                }
                (start, index) = (end + 1, index + 1);
            }
        }
        Err(_) => {
            for (index, raw) in data.split(|&b| b == b'\n').enumerate() {
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let base = sink.len();
                match std::str::from_utf8(raw) {
                    Ok(line) => {
                        let outcome = decode_record(&mut Lexer::new(line, cx.non_numeric), &mut sink, cx, true);
                        settle(&mut sink, outcome, base, line, location(index))?;
                    }
                    // Jackson fails on malformed UTF-8; the record text is shown with replacements.
                    Err(_) => settle(&mut sink, Outcome::Bad, base, &String::from_utf8_lossy(raw), location(index))?,
                }
            }
        }
    }
    let malformed_rows = sink.malformed();
    Ok(DecodeResult { batch: sink.finish_batch(schema)?, malformed_rows })
}

/// Spark's `from_json(column, schema)`: one struct per input value and the number of malformed
/// inputs. Null or blank input gives a null struct; malformed input gives, in PERMISSIVE mode, a
/// struct of the fields that converted (not a null struct); FAILFAST fails; DROPMALFORMED is
/// rejected as in Spark. Top-level arrays are malformed here, as `from_json` does not split them.
pub fn json_to_struct(values: &StringArray, fields: &Fields, opts: &JsonReadOptions) -> Result<(StructArray, u64)> {
    if opts.common.mode == ParseMode::DropMalformed {
        return Err(SluiceError::user(
            "from_json() doesn't support the DROPMALFORMED mode. Acceptable modes are PERMISSIVE and FAILFAST.",
        ));
    }
    let mut sink = RowSink::new(fields, &opts.common.corrupt_column, opts.common.mode, "JSON")?;
    let cx = opts.cx();
    for index in 0..values.len() {
        if values.is_null(index) {
            sink.push_null();
            continue;
        }
        let text = values.value(index);
        let base = sink.len();
        match decode_record(&mut Lexer::new(text, cx.non_numeric), &mut sink, cx, false) {
            Outcome::Blank => sink.push_null(),
            outcome => settle(&mut sink, outcome, base, text, || format!("row {}", index + 1))?,
        }
    }
    let malformed = sink.malformed();
    Ok((sink.finish_struct(fields)?, malformed))
}

#[cfg(test)]
#[path = "json_read_tests.rs"]
mod tests;
