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
        // Spark 2.1 wrote the version line alone; sluice always writes the JSON line, so a file
        // without it was cut short and must not pass for watermark 0.
        let json = lines.next().filter(|l| !l.trim().is_empty()).ok_or_else(|| {
            SluiceError::user(format!("{what} is corrupt: the commit metadata line is missing (the file was cut short)"))
        })?;
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
        let cut = CommitMetadata::parse("v1", "commits/3").unwrap_err();
        assert!(cut.message.contains("commits/3 is corrupt"), "{}", cut.message);
    }
}
