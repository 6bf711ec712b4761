//! `commits/N`: the marker that batch N reached the sink, with the watermark for batch N+1.

use sluice_common::error::{Result, SluiceError};

use sluice_common::log::check_version;

/// One `commits/N` entry (`v1\n{"nextBatchWatermarkMs":…}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitMetadata {
    /// Global watermark computed after batch N; old checkpoints' `{}` reads as 0.
    #[serde(default)]
    pub next_batch_watermark_ms: i64,
}

impl CommitMetadata {
    /// Spark's text form.
    pub fn serialize(&self) -> Result<String> {
        Ok(format!("v1\n{}", serde_json::to_string(self)?))
    }

    /// Parses Spark's text form; `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let mut lines = text.split('\n');
        check_version(lines.next(), what)?;
        let json = lines.next().unwrap_or("{}");
        serde_json::from_str(json).map_err(|e| SluiceError::user(format!("{what} is corrupt: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_legacy_empty_object() {
        let c = CommitMetadata { next_batch_watermark_ms: 15_000 };
        assert_eq!(c.serialize().unwrap(), "v1\n{\"nextBatchWatermarkMs\":15000}");
        assert_eq!(CommitMetadata::parse("v1\n{}", "c").unwrap().next_batch_watermark_ms, 0);
        assert!(CommitMetadata::parse("v1\n[", "commits/2").unwrap_err().message.contains("commits/2"));
    }
}
