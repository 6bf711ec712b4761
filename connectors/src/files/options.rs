//! Options of the `files` connector: Spark's `FileStreamOptions` plus the format's own options.

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::{parse_bytes, parse_duration_ms, Options};
use sluice_common::storage::absolute_url;
use sluice_formats::csv_read::CsvReadOptions;
use sluice_formats::json_read::JsonReadOptions;

/// A file format with its read options.
#[derive(Debug, Clone)]
pub enum FileFormat {
    /// JSON lines.
    Json(JsonReadOptions),
    /// Delimited text.
    Csv(CsvReadOptions),
    /// Apache Parquet.
    Parquet,
    /// One row per line, column `value`.
    Text,
}

impl FileFormat {
    /// The format's name as users write it.
    pub fn name(&self) -> &'static str {
        match self {
            FileFormat::Json(_) => "json",
            FileFormat::Csv(_) => "csv",
            FileFormat::Parquet => "parquet",
            FileFormat::Text => "text",
        }
    }
}

/// What happens to a source file once the batch that read it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanSource {
    /// `cleanSource=off` (default): leave the file where it is.
    Off,
    /// `cleanSource=delete`: delete the file (best effort; a failure only logs a warning).
    Delete,
    /// Move under this directory URL, keeping the file's full path.
    Archive(String),
}

/// Options of the `files` source.
#[derive(Debug, Clone)]
pub struct FileSourceOptions {
    /// Absolute URL of the input directory.
    pub path: String,
    /// `format` (json, csv, parquet or text) with that format's read options.
    pub format: FileFormat,
    /// `maxFilesPerTrigger`: at most this many new files per batch; exclusive with `maxBytesPerTrigger`.
    pub max_files_per_trigger: Option<usize>,
    /// `maxBytesPerTrigger` in bytes: a batch stops before exceeding it, but always admits at least one file.
    pub max_bytes_per_trigger: Option<u64>,
    /// `latestFirst`: admit the newest files first, to catch up on recent data when there is a backlog.
    pub latest_first: bool,
    /// `maxFileAge` in ms (default 7 days): files this much older than the newest file seen are ignored.
    pub max_file_age_ms: i64,
    /// `fileNameOnly`: tell files apart by name alone, so `s3://a/x.json` and `s3n://a/x.json` are one file.
    pub file_name_only: bool,
    /// `cleanSource` (with `sourceArchiveDir`): what happens to a file once its batch commits.
    pub clean_source: CleanSource,
}

/// Options every file source accepts regardless of format.
pub const FILE_SOURCE_OPTIONS: &[&str] = &[
    "connector",
    "path",
    "format",
    "maxFilesPerTrigger",
    "maxBytesPerTrigger",
    "latestFirst",
    "maxFileAge",
    "fileNameOnly",
    "cleanSource",
    "sourceArchiveDir",
];

/// Options a static (batch) file table accepts.
pub const FILE_TABLE_OPTIONS: &[&str] = &["connector", "path", "format"];

/// Parses the format and its options; `extra` lists the connector-level options also allowed.
pub fn parse_format(options: &Options, extra: &[&str], owner: &str) -> Result<FileFormat> {
    let format = options
        .get("format")
        .ok_or_else(|| SluiceError::user(format!("{owner}: option 'format' is required (json, csv, parquet or text)")))?
        .to_ascii_lowercase();
    Ok(match format.as_str() {
        "json" => FileFormat::Json(JsonReadOptions::from_options(options, extra)?),
        "csv" => FileFormat::Csv(CsvReadOptions::from_options(options, extra)?),
        "parquet" => {
            options.check_known(extra, &format!("{owner} with format 'parquet'"))?;
            FileFormat::Parquet
        }
        "text" => {
            options.check_known(extra, &format!("{owner} with format 'text'"))?;
            FileFormat::Text
        }
        other => {
            return Err(SluiceError::user(format!(
                "{owner}: unknown format '{other}'; supported formats are json, csv, parquet, text"
            )));
        }
    })
}

impl FileSourceOptions {
    /// Parses and validates with Spark's rules.
    pub fn parse(options: &Options) -> Result<Self> {
        let owner = "connector 'files'";
        let format = parse_format(options, FILE_SOURCE_OPTIONS, owner)?;
        let path = absolute_url(options.required("path", owner)?)?.to_string();
        let max_files_per_trigger = options.parse_opt::<usize>("maxFilesPerTrigger", owner)?;
        if max_files_per_trigger == Some(0) {
            return Err(SluiceError::user("Invalid value '0' for option 'maxFilesPerTrigger', must be a positive integer"));
        }
        let max_bytes_per_trigger = match options.get("maxBytesPerTrigger") {
            Some(v) => Some(parse_bytes(v)?),
            None => None,
        };
        if max_files_per_trigger.is_some() && max_bytes_per_trigger.is_some() {
            return Err(SluiceError::user(
                "Options 'maxFilesPerTrigger' and 'maxBytesPerTrigger' can't be both set at the same time",
            ));
        }
        let latest_first = options.bool_or("latestFirst", false, owner)?;
        let max_file_age_ms = match options.get("maxFileAge") {
            Some(v) => parse_duration_ms(v)?,
            None => 7 * 86_400_000,
        };
        let file_name_only = options.bool_or("fileNameOnly", false, owner)?;
        let clean_source = match options.get("cleanSource").map(str::to_ascii_lowercase).as_deref() {
            None | Some("off") => CleanSource::Off,
            Some("delete") => CleanSource::Delete,
            Some("archive") => {
                let dir = options.get("sourceArchiveDir").ok_or_else(|| {
                    SluiceError::user("Archive directory to store source files is not set: set 'sourceArchiveDir' when 'cleanSource' is 'archive'")
                })?;
                CleanSource::Archive(absolute_url(dir)?.to_string())
            }
            Some(other) => {
                return Err(SluiceError::user(format!(
                    "Invalid mode for clean source option {other}. Must be one of ARCHIVE, DELETE, OFF"
                )));
            }
        };
        if let CleanSource::Archive(dir) = &clean_source {
            let src = path.trim_end_matches('/');
            if dir.trim_end_matches('/') == src || dir.starts_with(&format!("{src}/")) {
                return Err(SluiceError::user(format!(
                    "sourceArchiveDir '{dir}' must not be inside the source path '{path}', or archived files would be read again"
                )));
            }
        }
        Ok(Self {
            path,
            format,
            max_files_per_trigger,
            max_bytes_per_trigger,
            latest_first,
            max_file_age_ms,
            file_name_only,
            clean_source,
        })
    }

    /// Spark ignores `maxFileAge` when both `latestFirst` and `maxFilesPerTrigger` are set.
    pub fn effective_max_file_age_ms(&self) -> i64 {
        if self.latest_first && self.max_files_per_trigger.is_some() {
            i64::MAX
        } else {
            self.max_file_age_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        Options::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn spark_rules_for_limits_and_clean_source() {
        let base = [("path", "/tmp/in"), ("format", "json")];
        let o = FileSourceOptions::parse(&opts(&[base[0], base[1], ("maxFilesPerTrigger", "1")])).unwrap();
        assert_eq!(o.max_files_per_trigger, Some(1));
        assert_eq!(o.max_file_age_ms, 7 * 86_400_000);
        let e = FileSourceOptions::parse(&opts(&[base[0], base[1], ("maxFilesPerTrigger", "1"), ("maxBytesPerTrigger", "1k")]))
            .unwrap_err();
        assert!(e.message.contains("can't be both set"));
        let e = FileSourceOptions::parse(&opts(&[base[0], base[1], ("cleanSource", "archive")])).unwrap_err();
        assert!(e.message.contains("sourceArchiveDir"));
        let e =
            FileSourceOptions::parse(&opts(&[base[0], base[1], ("cleanSource", "archive"), ("sourceArchiveDir", "/tmp/in/old")]))
                .unwrap_err();
        assert!(e.message.contains("must not be inside"));
        let e = FileSourceOptions::parse(&opts(&[base[0], base[1], ("maxFilesPerTrgger", "1")])).unwrap_err();
        assert!(e.message.contains("unknown option 'maxFilesPerTrgger'"), "{}", e.message);
        let e = FileSourceOptions::parse(&opts(&[base[0], ("format", "avro")])).unwrap_err();
        assert!(e.message.contains("unknown format 'avro'"));
    }
}
