//! Spark's `HDFSMetadataLog`: one file per batch id in a directory of the checkpoint.
//!
//! The offset WAL, the commit log and source logs all share these rules (docs/semantics.md §1): the file name
//! is the decimal batch id (other names are ignored), writes are atomic, adding an id that exists
//! fails instead of overwriting — with `PutMode::Create` this is what stops two drivers from both
//! owning batch N — and purging is exclusive of the threshold.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::sync::Arc;

use crate::error::{Result, ResultExt, SluiceError};

/// A directory of `<batchId>` files on an object store.
#[derive(Debug, Clone)]
pub struct MetadataLog {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    /// Name used in error messages (`offsets`, `commits`, …).
    name: String,
}

/// What [`MetadataLog::add`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// This call created the entry.
    Added,
    /// The entry was already there (another writer, or an earlier attempt).
    AlreadyExists,
}

impl MetadataLog {
    /// A log in `dir` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, dir: Path, name: impl Into<String>) -> Self {
        Self { store, dir, name: name.into() }
    }

    /// Path of the entry for `batch_id`.
    pub fn path_of(&self, batch_id: u64) -> Path {
        self.dir.clone().join(batch_id.to_string())
    }

    /// Display name of the log (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Atomically creates the entry for `batch_id`; never overwrites.
    pub async fn add(&self, batch_id: u64, content: Bytes) -> Result<AddOutcome> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&self.path_of(batch_id), PutPayload::from(content), opts).await {
            Ok(_) => Ok(AddOutcome::Added),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(AddOutcome::AlreadyExists),
            Err(e) => Err(SluiceError::from(e).context(format!("writing {}/{batch_id}", self.name))),
        }
    }

    /// The content of `batch_id`, or `None` when absent.
    pub async fn get(&self, batch_id: u64) -> Result<Option<Bytes>> {
        match self.store.get(&self.path_of(batch_id)).await {
            Ok(r) => Ok(Some(r.bytes().await.context_with(|| format!("reading {}/{batch_id}", self.name))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(SluiceError::from(e).context(format!("reading {}/{batch_id}", self.name))),
        }
    }

    /// All batch ids present, ascending. Names that are not decimal numbers are skipped, as
    /// Spark skips Hadoop's `.N.crc` files.
    pub async fn list_ids(&self) -> Result<Vec<u64>> {
        list_numbered(&self.store, &self.dir, &self.name, |name| name.parse().ok()).await
    }

    /// The newest id and its content (`getLatest`).
    pub async fn latest(&self) -> Result<Option<(u64, Bytes)>> {
        for id in self.list_ids().await?.into_iter().rev() {
            if let Some(content) = self.get(id).await? {
                return Ok(Some((id, content)));
            }
        }
        Ok(None)
    }

    /// When the newest entry was written (`None` for an empty log).
    pub async fn latest_write_time(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let Some(&id) = self.list_ids().await?.last() else { return Ok(None) };
        match self.store.head(&self.path_of(id)).await {
            Ok(meta) => Ok(Some(meta.last_modified)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(SluiceError::from(e).context(format!("reading {}/{id}", self.name))),
        }
    }

    /// Deletes every entry with id `< threshold` (exclusive, as Spark's `purge`).
    pub async fn purge(&self, threshold: u64) -> Result<()> {
        for id in self.list_ids().await? {
            if id >= threshold {
                break;
            }
            match self.store.delete(&self.path_of(id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(SluiceError::from(e).context(format!("purging {}/{id}", self.name))),
            }
        }
        Ok(())
    }

    /// Removes one entry; used only to repair a batch whose write must be redone.
    pub async fn delete(&self, batch_id: u64) -> Result<()> {
        match self.store.delete(&self.path_of(batch_id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(SluiceError::from(e).context(format!("deleting {}/{batch_id}", self.name))),
        }
    }
}

/// Ids of the files directly in `dir` whose names `parse` accepts, ascending and distinct.
pub(crate) async fn list_numbered(
    store: &Arc<dyn ObjectStore>,
    dir: &Path,
    what: &str,
    parse: impl Fn(&str) -> Option<u64>,
) -> Result<Vec<u64>> {
    let mut ids: Vec<u64> = store
        .list(Some(dir))
        .try_filter_map(|meta| {
            let id = meta
                .location
                .prefix_match(dir)
                .and_then(|mut parts| {
                    let first = parts.next()?;
                    parts.next().is_none().then_some(first)
                })
                .and_then(|name| parse(name.as_ref()));
            futures::future::ready(Ok(id))
        })
        .try_collect()
        .await
        .context_with(|| format!("listing {what}"))?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// First line of every log file Spark and sluice write (`v1`).
pub const VERSION_LINE: &str = "v1";

/// Accepts `v1`; a newer version is refused with Spark's wording rather than misread.
pub fn check_version(line: Option<&str>, what: &str) -> Result<()> {
    match line {
        Some(VERSION_LINE) => Ok(()),
        Some(v) if v.starts_with('v') && v[1..].parse::<u32>().is_ok() => Err(SluiceError::user(format!(
            "{what}: UnsupportedLogVersion: maximum supported log version is v1, but encountered {v}. \
             The log file was produced by a newer version of Spark/sluice and cannot be read by this version."
        ))),
        Some(v) => Err(SluiceError::user(format!(
            "{what} is corrupt: log file was malformed: failed to read correct log version from '{}'",
            v.chars().take(20).collect::<String>()
        ))),
        None => Err(SluiceError::user(format!("{what} is corrupt: the file is empty"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn log() -> MetadataLog {
        MetadataLog::new(Arc::new(InMemory::new()), Path::from("chk/offsets"), "offsets")
    }

    #[tokio::test]
    async fn add_never_overwrites() {
        let l = log();
        assert_eq!(l.add(0, Bytes::from("a")).await.unwrap(), AddOutcome::Added);
        assert_eq!(l.add(0, Bytes::from("b")).await.unwrap(), AddOutcome::AlreadyExists);
        assert_eq!(l.get(0).await.unwrap().unwrap(), Bytes::from("a"));
    }

    #[tokio::test]
    async fn latest_ignores_non_numeric_names_and_purge_is_exclusive() {
        let l = log();
        for i in 0..5 {
            l.add(i, Bytes::from(i.to_string())).await.unwrap();
        }
        l.store.put(&Path::from("chk/offsets/.4.crc"), PutPayload::from("x")).await.unwrap();
        assert_eq!(l.latest().await.unwrap().unwrap().0, 4);
        l.purge(3).await.unwrap();
        assert_eq!(l.list_ids().await.unwrap(), vec![3, 4]);
    }
}
