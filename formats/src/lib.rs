//! # sluice-formats
//!
//! Spark-compatible readers and writers for the JSON-lines and CSV file formats, and
//! `Dataset.show()`'s rendering of values and tables.
//!
//! Users move jobs between Spark and sluice and diff the outputs, so every rule here follows
//! Spark's own code rather than the RFCs: Jackson's JSON dialect and `JacksonParser`'s type
//! conversions, univocity's CSV tokenizing, `FailureSafeParser`'s handling of malformed records,
//! `DateTimeUtils`' lenient timestamp parsing and `DateTimeFormatter` patterns.

mod builder;
pub mod console_banner;
mod csv_convert;
pub mod csv_read;
mod csv_tokenizer;
pub mod csv_write;
pub mod datetime;
pub mod decimal;
mod failure_safe;
pub mod java_fmt;
mod java_num;
mod json_convert;
mod json_lexer;
pub mod json_read;
mod json_text;
pub mod json_write;
mod pattern;
mod pattern_exec;
mod read_options;
mod scalar;
pub mod show;
pub mod spark_string;
mod spark_time;
mod zone;

use arrow::record_batch::RecordBatch;

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;

/// How a reader treats a record it cannot parse: Spark's `mode` option.
///
/// Spark lets the user choose between keeping bad records (with nulls and the raw text in the
/// corrupt-record column), silently dropping them, or failing the query; sluice must honour the
/// same choice or a migrated job changes its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// Keep the record: unparsable fields become null, the raw text goes to the corrupt column.
    #[default]
    Permissive,
    /// Drop the record (it is still counted as malformed).
    DropMalformed,
    /// Fail the query on the first malformed record.
    FailFast,
}

impl ParseMode {
    /// Reads the `mode` option (any case), defaulting to PERMISSIVE as Spark does.
    pub fn from_options(opts: &Options, owner: &str) -> Result<Self> {
        match opts.get("mode") {
            None => Ok(Self::Permissive),
            Some(v) => Self::parse(v).ok_or_else(|| {
                SluiceError::user(format!(
                    "{owner}: invalid value '{v}' for option 'mode'; valid values are \
                     PERMISSIVE, DROPMALFORMED, FAILFAST"
                ))
            }),
        }
    }

    /// Parses a mode name case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PERMISSIVE" => Some(Self::Permissive),
            "DROPMALFORMED" => Some(Self::DropMalformed),
            "FAILFAST" => Some(Self::FailFast),
            _ => None,
        }
    }
}

/// The rows decoded from one chunk of input plus how many records were malformed.
///
/// The malformed count feeds the source's metrics whatever the mode, because users watch it to
/// notice bad input even when PERMISSIVE or DROPMALFORMED hides the failures.
#[derive(Debug, Clone)]
pub struct DecodeResult {
    /// The decoded rows, with exactly the requested schema.
    pub batch: RecordBatch,
    /// Malformed records seen: kept with nulls (PERMISSIVE) or dropped (DROPMALFORMED).
    pub malformed_rows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_case_insensitively_and_defaults_to_permissive() {
        assert_eq!(ParseMode::from_options(&Options::new(), "json").unwrap(), ParseMode::Permissive);
        let o = Options::from_pairs([("MODE", "dropMalformed")]);
        assert_eq!(ParseMode::from_options(&o, "json").unwrap(), ParseMode::DropMalformed);
        assert_eq!(ParseMode::parse("failfast"), Some(ParseMode::FailFast));
    }

    #[test]
    fn unknown_mode_lists_the_valid_ones() {
        let o = Options::from_pairs([("mode", "lenient")]);
        let e = ParseMode::from_options(&o, "json").unwrap_err();
        assert!(e.message.contains("PERMISSIVE, DROPMALFORMED, FAILFAST"), "{}", e.message);
    }
}
