//! Options every Spark file reader understands: parse mode, corrupt-record column, date-time
//! formats, and the `multiLine`/`encoding` settings sluice can only honour at their defaults.

use super::datetime::ReadFormats;
use super::ParseMode;
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;

/// Option keys shared by the JSON and CSV readers.
pub(crate) const COMMON_READ_KEYS: &[&str] = &[
    "mode",
    "columnNameOfCorruptRecord",
    "timestampFormat",
    "timestampNTZFormat",
    "dateFormat",
    "multiLine",
    "encoding",
    "charset",
    "format",
    "path",
    "connector",
];

/// The parsed shared reader options.
#[derive(Debug, Clone)]
pub(crate) struct CommonReadOptions {
    /// `mode`.
    pub(crate) mode: ParseMode,
    /// `columnNameOfCorruptRecord` (default `_corrupt_record`).
    pub(crate) corrupt_column: String,
    /// `timestampFormat`, `timestampNTZFormat` and `dateFormat`, compiled.
    pub(crate) formats: ReadFormats,
}

impl CommonReadOptions {
    /// Checks that every option is known (`own_keys` are the format's own) and parses the shared ones.
    pub(crate) fn parse(opts: &Options, own_keys: &[&str], extra_valid: &[&str], owner: &str) -> Result<Self> {
        let valid: Vec<&str> = COMMON_READ_KEYS.iter().chain(own_keys).chain(extra_valid).copied().collect();
        opts.check_known(&valid, owner)?;
        if opts.bool_or("multiLine", false, owner)? {
            return Err(SluiceError::user("multiLine=true is not supported for streaming file sources"));
        }
        check_utf8(opts, owner)?;
        Ok(Self {
            mode: ParseMode::from_options(opts, owner)?,
            corrupt_column: opts.get("columnNameOfCorruptRecord").unwrap_or("_corrupt_record").to_string(),
            formats: ReadFormats::from_options(opts)?,
        })
    }
}

/// Fails unless `encoding`/`charset` (if set) names UTF-8, the only encoding sluice reads and writes.
pub(crate) fn check_utf8(opts: &Options, owner: &str) -> Result<()> {
    for key in ["encoding", "charset"] {
        if let Some(v) = opts.get(key) {
            if !matches!(v.trim().to_ascii_lowercase().as_str(), "utf-8" | "utf8") {
                return Err(SluiceError::user(format!("{owner}: {key} '{v}' is not supported; only UTF-8 is")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_options_are_validated() {
        let ok = Options::from_pairs([("MODE", "failfast"), ("charset", "utf8"), ("multiLine", "false")]);
        let c = CommonReadOptions::parse(&ok, &[], &[], "json").unwrap();
        assert_eq!(c.mode, ParseMode::FailFast);
        assert_eq!(c.corrupt_column, "_corrupt_record");
        let multi = Options::from_pairs([("multiline", "true")]);
        let e = CommonReadOptions::parse(&multi, &[], &[], "json").unwrap_err();
        assert_eq!(e.message, "multiLine=true is not supported for streaming file sources");
        let latin = Options::from_pairs([("encoding", "ISO-8859-1")]);
        assert!(CommonReadOptions::parse(&latin, &[], &[], "json").is_err());
        let typo = Options::from_pairs([("modee", "x")]);
        assert!(CommonReadOptions::parse(&typo, &[], &[], "json").unwrap_err().message.contains("unknown option 'modee'"));
        let extra = Options::from_pairs([("maxFilesPerTrigger", "1")]);
        assert!(CommonReadOptions::parse(&extra, &[], &["maxFilesPerTrigger"], "json").is_ok());
    }
}
