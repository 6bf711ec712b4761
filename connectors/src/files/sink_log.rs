//! `<output>/_spark_metadata/`: the file sink's commit log, in Spark's own format.
//!
//! A batch's part files are visible to readers only once the batch's entry exists here, which is
//! what makes the file sink exactly-once: files from failed attempts are simply never listed.
//! Spark readers (and sluice's own `files` source) read the directory through this log.

use sluice_common::error::{Result, SluiceError};
use sluice_common::log::AddOutcome;
use sluice_common::log::{CompactibleLog, DEFAULT_COMPACT_INTERVAL};
use sluice_common::storage::Location;

/// Spark's `SinkFileStatus`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkFileStatus {
    /// Absolute URL of the part file.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// Always false for part files; kept for Spark's format.
    pub is_dir: bool,
    /// Modification time in ms since the epoch, as the store reported it after the write.
    pub modification_time: i64,
    /// HDFS replication factor; sluice writes 1, the field exists so Spark can read the log.
    pub block_replication: i32,
    /// HDFS block size in bytes; sluice writes 32 MiB, the field exists so Spark can read the log.
    pub block_size: i64,
    /// Always `add` for files sluice writes.
    pub action: String,
}

impl SinkFileStatus {
    /// An `add` entry for a freshly written file.
    pub fn added(path: String, size: u64, modification_time: i64) -> Self {
        Self { path, size, is_dir: false, modification_time, block_replication: 1, block_size: 32 << 20, action: "add".into() }
    }
}

/// The `_spark_metadata` log of one output directory.
#[derive(Debug, Clone)]
pub struct FileSinkLog {
    log: CompactibleLog,
}

/// Directory name Spark uses for the sink log.
pub const METADATA_DIR: &str = "_spark_metadata";

impl FileSinkLog {
    /// The log of the output directory `dir`.
    pub fn new(dir: &Location) -> Self {
        Self { log: CompactibleLog::new(dir.store.clone(), dir.child(METADATA_DIR), "_spark_metadata", DEFAULT_COMPACT_INTERVAL) }
    }

    /// Newest committed batch id.
    pub async fn latest_batch_id(&self) -> Result<Option<u64>> {
        self.log.latest_id().await
    }

    /// True when at least one batch was committed.
    pub async fn has_entries(&self) -> Result<bool> {
        Ok(self.latest_batch_id().await?.is_some())
    }

    /// Records the files of `batch_id`; returns false when the batch was already committed.
    pub async fn commit(&self, batch_id: u64, files: &[SinkFileStatus]) -> Result<bool> {
        let lines = files.iter().map(serde_json::to_string).collect::<Result<Vec<_>, _>>()?;
        Ok(self.log.add(batch_id, &lines).await? == AddOutcome::Added)
    }

    /// The paths every entry through batch `through` lists (added or deleted).
    pub async fn committed_paths(&self, through: u64) -> Result<std::collections::HashSet<String>> {
        let mut out = std::collections::HashSet::new();
        for line in self.log.entries_through(Some(through)).await? {
            let s: SinkFileStatus = serde_json::from_str(&line)
                .map_err(|e| SluiceError::user(format!("_spark_metadata entry is corrupt ({e}): {line}")))?;
            out.insert(s.path);
        }
        Ok(out)
    }

    /// Every committed file, oldest batch first; deleted entries are dropped.
    pub async fn all_files(&self) -> Result<Vec<SinkFileStatus>> {
        let mut out: Vec<SinkFileStatus> = Vec::new();
        for line in self.log.all_entries().await? {
            let s: SinkFileStatus = serde_json::from_str(&line)
                .map_err(|e| SluiceError::user(format!("_spark_metadata entry is corrupt ({e}): {line}")))?;
            if s.action == "delete" {
                out.retain(|f| f.path != s.path);
            } else {
                out.push(s);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_spark_field_names() {
        let s = SinkFileStatus::added("file:///o/part-0.json".into(), 10, 5);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            "{\"path\":\"file:///o/part-0.json\",\"size\":10,\"isDir\":false,\"modificationTime\":5,\"blockReplication\":1,\"blockSize\":33554432,\"action\":\"add\"}"
        );
    }
}
