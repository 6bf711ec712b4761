//! The file source's own log (`sources/<i>/<logId>`) and its set of already-seen files.
//!
//! Spark's `FileStreamSource` records every file it admits in a compactible log keyed by its own
//! log id (independent of the query batch id); the query's offset is just `{"logOffset": id}`.
//! On restart the seen set is rebuilt from the log, so a file is read at most once even if its
//! entry was written by a batch that never reached the offset WAL.

use std::collections::HashMap;

use sluice_common::error::{Result, SluiceError};
use sluice_common::log::AddOutcome;
use sluice_common::log::{CompactibleLog, DEFAULT_COMPACT_INTERVAL};
use sluice_common::storage::Location;

/// One admitted file (`FileEntry` in Spark).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// Absolute URL of the file.
    pub path: String,
    /// Modification time in ms.
    pub timestamp: i64,
    /// The source log id that admitted it.
    pub batch_id: u64,
}

/// `sources/<i>/` as a typed log.
#[derive(Debug, Clone)]
pub struct FileSourceLog {
    log: CompactibleLog,
}

impl FileSourceLog {
    /// The log under a source's checkpoint directory.
    pub fn new(dir: &Location) -> Self {
        Self { log: CompactibleLog::new(dir.store.clone(), dir.path.clone(), "sources file log", DEFAULT_COMPACT_INTERVAL) }
    }

    /// Appends the files admitted under `log_id`.
    pub async fn add(&self, log_id: u64, files: &[FileEntry]) -> Result<()> {
        let lines = files.iter().map(serde_json::to_string).collect::<Result<Vec<_>, _>>()?;
        match self.log.add(log_id, &lines).await? {
            AddOutcome::Added => Ok(()),
            AddOutcome::AlreadyExists => Err(SluiceError::user(format!(
                "Concurrent update to the log: the file source log entry {log_id} already exists; another query is using this checkpoint"
            ))),
        }
    }

    /// Newest log id.
    pub async fn latest_id(&self) -> Result<Option<u64>> {
        self.log.latest_id().await
    }

    /// Every entry ever admitted.
    pub async fn all_entries(&self) -> Result<Vec<FileEntry>> {
        parse_entries(self.log.all_entries().await?)
    }

    /// Files admitted by log ids in `(start, end]` — a batch's input.
    pub async fn entries_between(&self, start: Option<u64>, end: u64) -> Result<Vec<FileEntry>> {
        let entries = parse_entries(self.log.entries_through(Some(end)).await?)?;
        Ok(entries.into_iter().filter(|e| start.is_none_or(|s| e.batch_id > s) && e.batch_id <= end).collect())
    }
}

fn parse_entries(lines: Vec<String>) -> Result<Vec<FileEntry>> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str::<FileEntry>(l)
                .map_err(|e| SluiceError::user(format!("file source log entry is corrupt ({e}): {l}")))
        })
        .collect()
}

/// Spark's `SeenFilesMap`: which files were admitted, forgetting those older than `maxFileAge`
/// relative to the newest file seen.
#[derive(Debug, Clone)]
pub struct SeenFiles {
    max_age_ms: i64,
    file_name_only: bool,
    map: HashMap<String, i64>,
    latest_timestamp: i64,
    last_purge_timestamp: i64,
}

impl SeenFiles {
    /// An empty set.
    pub fn new(max_age_ms: i64, file_name_only: bool) -> Self {
        Self { max_age_ms, file_name_only, map: HashMap::new(), latest_timestamp: 0, last_purge_timestamp: 0 }
    }

    fn key<'a>(&self, path: &'a str) -> &'a str {
        if self.file_name_only {
            path.rsplit('/').next().unwrap_or(path)
        } else {
            path
        }
    }

    /// Records an admitted file.
    pub fn add(&mut self, path: &str, timestamp: i64) {
        let key = self.key(path).to_string();
        self.map.insert(key, timestamp);
        self.latest_timestamp = self.latest_timestamp.max(timestamp);
    }

    /// True for a file not admitted before and not older than the purge horizon.
    pub fn is_new(&self, path: &str, timestamp: i64) -> bool {
        timestamp >= self.last_purge_timestamp && !self.map.contains_key(self.key(path))
    }

    /// Forgets files older than `latest − maxAge`; returns how many were dropped.
    pub fn purge(&mut self) -> usize {
        if self.max_age_ms == i64::MAX {
            return 0;
        }
        self.last_purge_timestamp = self.latest_timestamp.saturating_sub(self.max_age_ms);
        let before = self.map.len();
        let horizon = self.last_purge_timestamp;
        self.map.retain(|_, ts| *ts >= horizon);
        before - self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_files_map_like_spark() {
        // FileStreamSourceSuite "SeenFilesMap"
        let mut m = SeenFiles::new(10, false);
        m.add("a", 5);
        assert_eq!(m.map.len(), 1);
        m.purge();
        assert_eq!(m.map.len(), 1);
        // The gap is exactly 10 ms: nothing to purge.
        m.add("b", 15);
        m.purge();
        assert_eq!(m.map.len(), 2);
        // More than 10 ms after "a": "a" goes.
        m.add("c", 16);
        assert_eq!(m.map.len(), 3);
        m.purge();
        assert_eq!(m.map.len(), 2);
        m.add("c", 25);
        assert_eq!(m.map.len(), 2);
        assert!(!m.is_new("c", 20), "seen before");
        assert!(!m.is_new("d", 5), "too old");
        assert!(m.is_new("e", 20));
    }

    #[test]
    fn file_name_only_matches_by_name() {
        let mut m = SeenFiles::new(i64::MAX, true);
        m.add("file:///a/x.json", 1);
        assert!(!m.is_new("s3://b/other/x.json", 2));
    }

    #[tokio::test]
    async fn entries_between_filters_by_log_id_across_compactions() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let log = FileSourceLog::new(&loc);
        for id in 0..12u64 {
            log.add(id, &[FileEntry { path: format!("f{id}"), timestamp: id as i64, batch_id: id }]).await.unwrap();
        }
        let got: Vec<String> = log.entries_between(Some(7), 10).await.unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(got, vec!["f8", "f9", "f10"]);
        assert_eq!(log.all_entries().await.unwrap().len(), 12);
    }
}
