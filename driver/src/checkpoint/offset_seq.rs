//! `offsets/N`: the write-ahead record of what batch N reads (docs/semantics.md §1, `OffsetSeqLog`).
//!
//! Written *before* batch N runs, so a restarted driver re-runs N over exactly the same input,
//! with the same watermark and the same `current_timestamp()`. The text format is Spark's, byte
//! for byte: a version line, the metadata JSON, then one offset JSON (or `-`) per source, joined
//! with `\n` and no trailing newline.

use std::collections::BTreeMap;

use sluice_common::error::{Result, SluiceError};
use sluice_common::log::{check_version, VERSION_LINE};

/// Batch-level metadata recorded with the offsets.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetSeqMetadata {
    /// The watermark batch N evicts with.
    #[serde(default)]
    pub batch_watermark_ms: i64,
    /// The trigger clock when batch N was constructed; `current_timestamp()` in batch N.
    #[serde(default)]
    pub batch_timestamp_ms: i64,
    /// Confs that must stay fixed for the life of the checkpoint (shuffle partitions, …).
    #[serde(default)]
    pub conf: BTreeMap<String, String>,
}

/// One `offsets/N` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetSeq {
    /// Per source, in source-index order: its end offset as JSON text, `None` when it has none yet.
    pub offsets: Vec<Option<String>>,
    /// Watermark, trigger timestamp and pinned confs for batch N: the JSON on the file's second line.
    pub metadata: OffsetSeqMetadata,
}

impl OffsetSeq {
    /// Spark's text form.
    pub fn serialize(&self) -> Result<String> {
        let mut lines = vec![VERSION_LINE.to_string(), serde_json::to_string(&self.metadata)?];
        for o in &self.offsets {
            lines.push(o.clone().unwrap_or_else(|| "-".to_string()));
        }
        Ok(lines.join("\n"))
    }

    /// Parses Spark's text form; `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let corrupt = |why: String| SluiceError::user(format!("{what} is corrupt: {why}"));
        let mut lines = text.split('\n');
        check_version(lines.next(), what)?;
        let meta_line = lines.next().ok_or_else(|| corrupt("the metadata line is missing".into()))?;
        let metadata: OffsetSeqMetadata =
            serde_json::from_str(meta_line).map_err(|e| corrupt(format!("metadata is not valid JSON ({e})")))?;
        let mut offsets = Vec::new();
        for (i, line) in lines.enumerate() {
            if line == "-" {
                offsets.push(None);
                continue;
            }
            serde_json::from_str::<serde_json::Value>(line)
                .map_err(|e| corrupt(format!("offset of source {i} is not valid JSON ({e})")))?;
            offsets.push(Some(line.to_string()));
        }
        Ok(OffsetSeq { offsets, metadata })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_spark_offsets_file() {
        let spark = "v1\n{\"batchWatermarkMs\":0,\"batchTimestampMs\":1645693802625,\"conf\":{\"spark.sql.streaming.stateStore.providerClass\":\"org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider\",\"spark.sql.shuffle.partitions\":\"5\"}}\n1";
        let seq = OffsetSeq::parse(spark, "offsets/1").unwrap();
        assert_eq!(seq.offsets, vec![Some("1".to_string())]);
        assert_eq!(seq.metadata.batch_timestamp_ms, 1645693802625);
        assert_eq!(seq.metadata.conf["spark.sql.shuffle.partitions"], "5");
    }

    #[test]
    fn writes_spark_layout_without_trailing_newline() {
        let seq = OffsetSeq {
            offsets: vec![Some("{\"logOffset\":3}".into()), None],
            metadata: OffsetSeqMetadata { batch_watermark_ms: 5000, batch_timestamp_ms: 7, conf: BTreeMap::new() },
        };
        let text = seq.serialize().unwrap();
        assert_eq!(text, "v1\n{\"batchWatermarkMs\":5000,\"batchTimestampMs\":7,\"conf\":{}}\n{\"logOffset\":3}\n-");
        assert_eq!(OffsetSeq::parse(&text, "x").unwrap(), seq);
    }

    #[test]
    fn corrupt_files_are_user_errors_naming_the_file() {
        for bad in ["", "v1", "v1\n{nope", "v9\n{}", "garbage", "v1\n{}\n{\"a\":"] {
            let e = OffsetSeq::parse(bad, "offsets/3").unwrap_err();
            assert!(e.message.starts_with("offsets/3"), "{bad:?} → {}", e.message);
        }
    }
}
