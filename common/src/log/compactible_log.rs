//! Spark's `CompactibleFileStreamLog`, shared by the file source log (`sources/i/`) and the file
//! sink log (`<out>/_spark_metadata/`).
//!
//! Each batch appends one file holding `v1` and one JSON entry per line. Every
//! `compactInterval`-th batch — ids with `(id + 1) % interval == 0` — is instead written as
//! `<id>.compact` holding every entry so far, so a reader needs the newest compact file plus the
//! deltas after it. Spark readers *expect* the `.compact` names at those ids, so a log that Spark
//! must read (a sluice file-sink output) has to follow the rule exactly.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Result, SluiceError};

use super::metadata_log::{check_version, create_entry, cut_short, list_numbered, read_entry, warn_cut_short, AddOutcome};

/// Spark's default `compactInterval` for both logs.
pub const DEFAULT_COMPACT_INTERVAL: u64 = 10;

/// A compactible log of JSON-line entries.
#[derive(Debug, Clone)]
pub struct CompactibleLog {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    name: String,
    interval: u64,
}

impl CompactibleLog {
    /// A log in `dir`; `name` is used in messages.
    pub fn new(store: Arc<dyn ObjectStore>, dir: Path, name: impl Into<String>, interval: u64) -> Self {
        Self { store, dir, name: name.into(), interval: interval.max(1) }
    }

    /// True when `id` is written as a `.compact` file.
    pub fn is_compaction(&self, id: u64) -> bool {
        // `(id + 1) % interval == 0` without the `+ 1`: ids come from file names, and a name
        // such as `18446744073709551615` must not overflow.
        id % self.interval == self.interval - 1
    }

    fn path_of(&self, id: u64) -> Path {
        if self.is_compaction(id) {
            self.dir.clone().join(format!("{id}.compact"))
        } else {
            self.dir.clone().join(id.to_string())
        }
    }

    /// Appends batch `id`; a compaction batch folds in every earlier entry. Never overwrites.
    pub async fn add(&self, id: u64, entries: &[String]) -> Result<AddOutcome> {
        let mut lines: Vec<String> = Vec::new();
        if self.is_compaction(id) {
            lines = self.entries_through(id.checked_sub(1)).await?;
        }
        lines.extend(entries.iter().cloned());
        let mut text = String::from("v1");
        for l in &lines {
            text.push('\n');
            text.push_str(l);
        }
        create_entry(&self.store, &self.path_of(id), &Bytes::from(text), &format!("writing {}/{id}", self.name), is_whole_entry)
            .await
    }

    /// The entries stored in batch `id`'s own file (for a compaction batch: all entries so far).
    pub async fn get(&self, id: u64) -> Result<Option<Vec<String>>> {
        let Some(bytes) = read_entry(&self.store, &self.path_of(id), &format!("reading {}/{id}", self.name)).await? else {
            return Ok(None);
        };
        let text =
            std::str::from_utf8(&bytes).map_err(|_| SluiceError::user(format!("{}/{id} is corrupt: not UTF-8", self.name)))?;
        let mut lines = text.split('\n');
        check_version(lines.next(), &format!("{}/{id}", self.name))?;
        Ok(Some(lines.filter(|l| !l.trim().is_empty()).map(str::to_string).collect()))
    }

    /// Batch ids present (plain or `.compact`), ascending, without a newest entry that its
    /// writer died in the middle of (see [`super::MetadataLog::latest`]): that id counts as
    /// never written, and the next write of it replaces the torn file.
    pub async fn list_ids(&self) -> Result<Vec<u64>> {
        let mut ids =
            list_numbered(&self.store, &self.dir, &self.name, |name| name.strip_suffix(".compact").unwrap_or(name).parse().ok())
                .await?;
        if let Some(&newest) = ids.last() {
            let path = self.path_of(newest);
            if let Some(bytes) = read_entry(&self.store, &path, &format!("reading {}/{newest}", self.name)).await? {
                if !is_whole_entry(&bytes) && cut_short(&bytes) {
                    warn_cut_short(&self.name, newest);
                    ids.pop();
                }
            }
        }
        Ok(ids)
    }

    /// Newest batch id.
    pub async fn latest_id(&self) -> Result<Option<u64>> {
        Ok(self.list_ids().await?.last().copied())
    }

    /// Every entry of batches `0..=through` (`None` = none): newest compact file at or below
    /// `through`, then the deltas after it.
    pub async fn entries_through(&self, through: Option<u64>) -> Result<Vec<String>> {
        let Some(through) = through else { return Ok(Vec::new()) };
        self.entries_of(self.list_ids().await?.into_iter().filter(|i| *i <= through).collect()).await
    }

    /// Every entry of the batches `ids` (ascending, as listed): the newest compact file among
    /// them, then the deltas after it.
    async fn entries_of(&self, ids: Vec<u64>) -> Result<Vec<String>> {
        let base = ids.iter().rev().find(|i| self.is_compaction(**i)).copied();
        let mut out = Vec::new();
        if let Some(b) = base {
            out.extend(self.get(b).await?.unwrap_or_default());
        }
        for id in ids.into_iter().filter(|i| base.is_none_or(|b| *i > b)) {
            match self.get(id).await? {
                Some(entries) => out.extend(entries),
                None => return Err(SluiceError::user(format!("{}/{id} vanished while reading the log", self.name))),
            }
        }
        Ok(out)
    }

    /// All entries of the log.
    pub async fn all_entries(&self) -> Result<Vec<String>> {
        self.entries_of(self.list_ids().await?).await
    }
}

/// A whole entry: the version line, then only complete JSON lines. A write cut short inside a
/// line fails this; one cut exactly at a line boundary cannot be told apart from a shorter entry
/// by its structure alone.
fn is_whole_entry(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    let mut lines = text.split('\n');
    lines.next() == Some(super::metadata_log::VERSION_LINE)
        && lines.filter(|l| !l.trim().is_empty()).all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn every_tenth_batch_is_a_compact_file_with_everything() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let log = CompactibleLog::new(Arc::clone(&store), Path::from("out/_spark_metadata"), "sink log", 10);
        for id in 0..12u64 {
            log.add(id, &[format!("{{\"b\":{id}}}")]).await.unwrap();
        }
        assert!(store.head(&Path::from("out/_spark_metadata/9.compact")).await.is_ok());
        assert!(store.head(&Path::from("out/_spark_metadata/9")).await.is_err());
        assert_eq!(log.get(9).await.unwrap().unwrap().len(), 10);
        let all = log.all_entries().await.unwrap();
        assert_eq!(all.len(), 12);
        assert_eq!(all[11], "{\"b\":11}");
        assert_eq!(log.latest_id().await.unwrap(), Some(11));
        assert_eq!(log.add(11, &[]).await.unwrap(), AddOutcome::AlreadyExists);
    }

    #[tokio::test]
    async fn a_torn_newest_entry_is_not_read_and_the_next_write_replaces_it() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let log = CompactibleLog::new(Arc::clone(&store), Path::from("chk/sources/0"), "sources file log", 10);
        for id in 0..11u64 {
            log.add(id, &[format!("{{\"path\":\"part-{id:05}\"}}")]).await.unwrap();
        }
        // Entry 11 cut inside its line (its writer was killed before repairing it), then the
        // compaction batch 19 cut the same way in another log.
        let torn = "v1\n{\"path\":\"part-0001";
        store.put(&Path::from("chk/sources/0/11"), torn.into()).await.unwrap();
        assert_eq!(log.latest_id().await.unwrap(), Some(10));
        assert_eq!(log.all_entries().await.unwrap().len(), 11);
        assert_eq!(log.add(11, &["{\"path\":\"part-00011\"}".to_string()]).await.unwrap(), AddOutcome::Added);
        assert_eq!(log.all_entries().await.unwrap().last().map(String::as_str), Some("{\"path\":\"part-00011\"}"));

        let sink = CompactibleLog::new(Arc::clone(&store), Path::from("out/_spark_metadata"), "sink log", 10);
        for id in 0..9u64 {
            sink.add(id, &[format!("{{\"b\":{id}}}")]).await.unwrap();
        }
        store.put(&Path::from("out/_spark_metadata/9.compact"), "v1\n{\"b\":0}\n{\"b".into()).await.unwrap();
        assert_eq!(sink.latest_id().await.unwrap(), Some(8));
        assert_eq!(sink.add(9, &["{\"b\":9}".to_string()]).await.unwrap(), AddOutcome::Added);
        assert_eq!(sink.get(9).await.unwrap().unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_torn_entry_before_the_newest_is_not_skipped() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let log = CompactibleLog::new(Arc::clone(&store), Path::from("chk/sources/0"), "sources file log", 10);
        store.put(&Path::from("chk/sources/0/0"), "v1\n{\"path\":\"a".into()).await.unwrap();
        log.add(1, &["{\"path\":\"b\"}".to_string()]).await.unwrap();
        assert_eq!(log.latest_id().await.unwrap(), Some(1));
        let entries = log.all_entries().await.unwrap();
        assert!(entries.iter().any(|l| serde_json::from_str::<serde_json::Value>(l).is_err()), "{entries:?}");
    }

    #[tokio::test]
    async fn the_largest_batch_id_a_file_name_can_hold_does_not_overflow() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let log = CompactibleLog::new(Arc::clone(&store), Path::from("out/_spark_metadata"), "sink log", 10);
        store.put(&Path::from("out/_spark_metadata/18446744073709551615"), "v1\n{\"a\":1}".into()).await.unwrap();
        assert!(log.is_compaction(9) && !log.is_compaction(u64::MAX));
        assert_eq!(log.all_entries().await.unwrap(), vec!["{\"a\":1}".to_string()]);
    }
}
