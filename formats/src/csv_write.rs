//! Spark's CSV writer (`UnivocityGenerator` with `CSVOptions.asWriterSettings`).
//!
//! Values are trimmed (`ignoreLeading/TrailingWhiteSpace` default to true when writing) and
//! quoted only when needed: when they contain the separator, the quote, CR or LF, or keep
//! leading/trailing whitespace because trimming is off. An empty string is written as `""`
//! (`emptyValue`) and null as nothing (`nullValue`), so the two stay distinguishable. Quotes
//! inside quoted values are escaped with the escape character (`\"`).

use arrow::record_batch::RecordBatch;

use super::csv_read::{optional_char, separator};
use super::datetime::WriteFormats;
use super::read_options::check_utf8;
use super::scalar::Scalar;
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::types::spark_type_name as catalog_string;

const KEYS: &[&str] = &[
    "sep",
    "delimiter",
    "quote",
    "escape",
    "header",
    "nullValue",
    "emptyValue",
    "quoteAll",
    "escapeQuotes",
    "ignoreLeadingWhiteSpace",
    "ignoreTrailingWhiteSpace",
    "timestampFormat",
    "timestampNTZFormat",
    "dateFormat",
    "encoding",
    "charset",
    "format",
    "path",
    "connector",
];

/// Options of the CSV writer.
#[derive(Debug, Clone)]
pub struct CsvWriteOptions {
    sep: char,
    quote: Option<char>,
    escape: Option<char>,
    header: bool,
    null_value: String,
    empty_value: String,
    quote_all: bool,
    escape_quotes: bool,
    trim_leading: bool,
    trim_trailing: bool,
    formats: WriteFormats,
}

impl CsvWriteOptions {
    /// Parses the writer options with Spark's write defaults; `extra_valid` are keys the caller
    /// consumes itself (e.g. `compression`).
    pub fn from_options(opts: &Options, extra_valid: &[&str]) -> Result<Self> {
        let owner = "CSV sink";
        let valid: Vec<&str> = KEYS.iter().chain(extra_valid).copied().collect();
        opts.check_known(&valid, owner)?;
        check_utf8(opts, owner)?;
        Ok(Self {
            sep: separator(opts)?,
            quote: optional_char(opts, "quote", '"')?,
            escape: optional_char(opts, "escape", '\\')?,
            header: opts.bool_or("header", false, owner)?,
            null_value: opts.get("nullValue").unwrap_or("").to_string(),
            empty_value: opts.get("emptyValue").unwrap_or("\"\"").to_string(),
            quote_all: opts.bool_or("quoteAll", false, owner)?,
            escape_quotes: opts.bool_or("escapeQuotes", true, owner)?,
            trim_leading: opts.bool_or("ignoreLeadingWhiteSpace", true, owner)?,
            trim_trailing: opts.bool_or("ignoreTrailingWhiteSpace", true, owner)?,
            formats: WriteFormats::from_options(opts)?,
        })
    }

    /// Whether the user asked for a header line (the caller passes `write_header` for the first
    /// batch of each file).
    pub fn header(&self) -> bool {
        self.header
    }

    /// Appends one field; `None` is null.
    fn field(&self, value: Option<&str>, out: &mut Vec<u8>) {
        let Some(mut v) = value else {
            out.extend_from_slice(self.null_value.as_bytes());
            return;
        };
        let space = |c: char| c <= ' ';
        if self.trim_leading {
            v = v.trim_start_matches(space);
        }
        if self.trim_trailing {
            v = v.trim_end_matches(space);
        }
        if v.is_empty() {
            out.extend_from_slice(self.empty_value.as_bytes());
            return;
        }
        let Some(quote) = self.quote else {
            out.extend_from_slice(v.as_bytes());
            return;
        };
        let needs_quotes = self.quote_all
            || v.contains([self.sep, '\r', '\n'])
            || (self.escape_quotes && v.contains(quote))
            || v.starts_with(space)
            || v.ends_with(space);
        if !needs_quotes {
            out.extend_from_slice(v.as_bytes());
            return;
        }
        let mut buf = [0; 4];
        out.extend_from_slice(quote.encode_utf8(&mut buf).as_bytes());
        for c in v.chars() {
            if c == quote {
                if let Some(e) = self.escape {
                    out.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
                }
            }
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        out.extend_from_slice(quote.encode_utf8(&mut buf).as_bytes());
    }

    fn separator(&self, out: &mut Vec<u8>) {
        let mut buf = [0; 4];
        out.extend_from_slice(self.sep.encode_utf8(&mut buf).as_bytes());
    }
}

/// Appends the rows of `batch` as CSV lines ending in `\n`, preceded by a header line of the
/// column names when `write_header` is set. Nested columns are rejected as in Spark.
pub fn write_csv(batch: &RecordBatch, opts: &CsvWriteOptions, write_header: bool, out: &mut Vec<u8>) -> Result<()> {
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            Scalar::new(c.as_ref()).ok_or_else(|| {
                SluiceError::user(format!(
                    "CSV data source does not support {} data type (column '{}').",
                    catalog_string(f.data_type()),
                    f.name()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if write_header {
        for (i, f) in schema.fields().iter().enumerate() {
            if i > 0 {
                opts.separator(out);
            }
            opts.field(Some(f.name()), out);
        }
        out.push(b'\n');
    }
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        for (i, col) in columns.iter().enumerate() {
            if i > 0 {
                opts.separator(out);
            }
            if col.is_null(row) {
                opts.field(None, out);
            } else {
                text.clear();
                col.text(row, Some(&opts.formats), &mut text)?;
                opts.field(Some(&text), out);
            }
        }
        out.push(b'\n');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Date32Array, Float64Array, Int32Array, StringArray, StructArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect()).unwrap()
    }

    fn write(b: &RecordBatch, pairs: &[(&str, &str)], header: bool) -> Result<String> {
        let opts = CsvWriteOptions::from_options(&Options::from_pairs(pairs.iter().copied()), &[])?;
        let mut out = Vec::new();
        write_csv(b, &opts, header, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn strings(values: Vec<Option<&str>>) -> RecordBatch {
        batch(vec![("s", Arc::new(StringArray::from(values)) as ArrayRef), ("i", Arc::new(Int32Array::from(vec![1; 7])))])
    }

    #[test]
    fn quotes_and_escapes_like_spark() {
        let b =
            strings(vec![Some("plain"), Some("a,b"), Some("say \"hi\""), Some("two\nlines"), Some(""), None, Some("  padded  ")]);
        assert_eq!(
            write(&b, &[], true).unwrap(),
            "s,i\nplain,1\n\"a,b\",1\n\"say \\\"hi\\\"\",1\n\"two\nlines\",1\n\"\",1\n,1\npadded,1\n"
        );
        let keep = write(&b, &[("ignoreLeadingWhiteSpace", "false"), ("ignoreTrailingWhiteSpace", "false")], false).unwrap();
        assert_eq!(keep.lines().last(), Some("\"  padded  \",1"));
        let all = write(&b, &[("quoteAll", "true"), ("nullValue", "NULL"), ("sep", ";")], false).unwrap();
        assert_eq!(all.lines().take(2).collect::<Vec<_>>(), ["\"plain\";\"1\"", "\"a,b\";\"1\""]);
        assert_eq!(all.lines().nth(6), Some("NULL;\"1\""), "line 3 holds a newline");
        let noesc = write(&b, &[("escapeQuotes", "false")], false).unwrap();
        assert_eq!(noesc.lines().nth(2), Some("say \"hi\",1"));
        let doubled = write(&b, &[("escape", "\"")], false).unwrap();
        assert_eq!(doubled.lines().nth(2), Some("\"say \"\"hi\"\"\",1"));
    }

    #[test]
    fn renders_values_with_spark_formats() {
        let b = batch(vec![
            ("d", Arc::new(Float64Array::from(vec![1e-4])) as ArrayRef),
            ("t", Arc::new(TimestampMicrosecondArray::from(vec![1_704_103_200_000_000]).with_timezone("UTC"))),
            ("dt", Arc::new(Date32Array::from(vec![19723]))),
        ]);
        assert_eq!(write(&b, &[], false).unwrap(), "1.0E-4,2024-01-01T10:00:00.000Z,2024-01-01\n");
        assert_eq!(write(&b, &[("dateFormat", "MM/dd/yyyy")], false).unwrap(), "1.0E-4,2024-01-01T10:00:00.000Z,01/01/2024\n");
    }

    #[test]
    fn nested_columns_and_bad_options_are_user_errors() {
        let st = StructArray::from(vec![(
            Arc::new(Field::new("a", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![1])) as ArrayRef,
        )]);
        let e = write(&batch(vec![("s", Arc::new(st) as ArrayRef)]), &[], false).unwrap_err();
        assert_eq!(e.message, "CSV data source does not support struct<a:int> data type (column 's').");
        assert!(CsvWriteOptions::from_options(&Options::from_pairs([("quoteMode", "x")]), &[]).is_err());
        assert!(CsvWriteOptions::from_options(&Options::from_pairs([("compression", "gzip")]), &["compression"]).is_ok());
    }
}
