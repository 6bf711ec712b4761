//! Spark's `HDFSMetadataLog`: one file per batch id in a directory of the checkpoint.
//!
//! The offset WAL, the commit log and source logs all share these rules (docs/semantics.md §1):
//! the file name is the decimal batch id (other names are ignored), writes are atomic, adding an
//! id that exists fails instead of overwriting — with `PutMode::Create` this is what stops two
//! drivers from both owning batch N — and purging is exclusive of the threshold.
//!
//! The store retries transient failures (`storage::retrying`), and a write whose outcome is unknown
//! is settled by reading the entry back ([`create_entry`]), so a store that answers "timeout"
//! after the write landed can neither lose an entry nor make a driver think another driver wrote
//! it.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::sync::Arc;

use crate::error::{Result, SluiceError};

/// Says whether an entry's bytes are a whole entry: `false` for a write that was cut short.
pub type EntryCheck = fn(&[u8]) -> bool;

/// A directory of `<batchId>` files on an object store.
#[derive(Debug, Clone)]
pub struct MetadataLog {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    /// Name used in error messages (`offsets`, `commits`, …).
    name: String,
    /// Tells a complete entry from a torn one, to settle ambiguous writes.
    complete: EntryCheck,
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
        Self { store, dir, name: name.into(), complete: |bytes| !bytes.is_empty() }
    }

    /// Uses `complete` (usually "the entry parses") to recognise an entry a failed write left
    /// half-written; such an entry is replaced by the next write instead of being taken for
    /// another writer's.
    pub fn with_entry_check(mut self, complete: EntryCheck) -> Self {
        self.complete = complete;
        self
    }

    /// Path of the entry for `batch_id`.
    pub fn path_of(&self, batch_id: u64) -> Path {
        self.dir.clone().join(batch_id.to_string())
    }

    /// Display name of the log (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Atomically creates the entry for `batch_id`; never overwrites another writer's entry.
    pub async fn add(&self, batch_id: u64, content: Bytes) -> Result<AddOutcome> {
        create_entry(&self.store, &self.path_of(batch_id), &content, &format!("writing {}/{batch_id}", self.name), self.complete)
            .await
    }

    /// The content of `batch_id`, or `None` when absent.
    pub async fn get(&self, batch_id: u64) -> Result<Option<Bytes>> {
        read_entry(&self.store, &self.path_of(batch_id), &format!("reading {}/{batch_id}", self.name)).await
    }

    /// All batch ids present, ascending. Names that are not decimal numbers are skipped, as
    /// Spark skips Hadoop's `.N.crc` files.
    pub async fn list_ids(&self) -> Result<Vec<u64>> {
        list_numbered(&self.store, &self.dir, &self.name, |name| name.parse().ok()).await
    }

    /// The newest id and its content (`getLatest`).
    ///
    /// A newest entry that is not whole is a write whose writer died before it could repair
    /// it — a driver SIGKILLed between a torn write and its retry, a machine that crashed
    /// before the bytes reached the disk — and counts as never written: the entry before it is
    /// the latest, and the next write of that id replaces it ([`create_entry`]). Nothing can
    /// have depended on it, since a writer moves on only once its entry is whole. Spark
    /// fails on such an entry and leaves the query down until someone deletes the file.
    pub async fn latest(&self) -> Result<Option<(u64, Bytes)>> {
        let mut newest = true;
        for id in self.list_ids().await?.into_iter().rev() {
            let Some(content) = self.get(id).await? else { continue };
            if std::mem::take(&mut newest) && !(self.complete)(&content) && cut_short(&content) {
                warn_cut_short(&self.name, id);
                continue;
            }
            return Ok(Some((id, content)));
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
            delete_entry(&self.store, &self.path_of(id), &format!("purging {}/{id}", self.name)).await?;
        }
        Ok(())
    }
}

/// Creates the entry at `path` with `content` unless one exists — the first writer wins — and
/// settles what a failed write did.
///
/// A put whose response was lost (a timeout, a 5xx after the write landed) may or may not have
/// created the entry, and its retry then finds *an* entry: its own, or another writer's. So a
/// failure is never taken at its word, and neither is "already exists": the entry is read back.
/// This writer's bytes mean its write landed ([`AddOutcome::Added`]); other bytes that form a
/// whole entry (`complete`) mean another writer won ([`AddOutcome::AlreadyExists`]); a torn
/// entry — a prefix of this writer's bytes, or bytes that are not a whole entry — is replaced. Transient failures are retried by the store
/// itself; `what` names the write in errors.
pub async fn create_entry(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    content: &Bytes,
    what: &str,
    complete: EntryCheck,
) -> Result<AddOutcome> {
    // One round writes; a torn entry costs one more round to replace it.
    for _ in 0..3 {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        let failure = match store.put_opts(path, PutPayload::from(content.clone()), opts).await {
            Ok(_) => return Ok(AddOutcome::Added),
            Err(object_store::Error::AlreadyExists { .. }) => None,
            Err(e) => Some(SluiceError::from(e)),
        };
        let existing = match store.get(path).await {
            Ok(r) => r.bytes().await.map_err(|e| SluiceError::from(e).context(what.to_string()))?,
            // Nothing landed: the write failed cleanly, and the store already retried it.
            Err(object_store::Error::NotFound { .. }) => {
                let e = failure.unwrap_or_else(|| SluiceError::external("the entry vanished after 'already exists'"));
                return Err(e.context(what.to_string()));
            }
            Err(e) => return Err(SluiceError::from(e).context(what.to_string())),
        };
        if existing == *content {
            return Ok(AddOutcome::Added);
        }
        // A strict prefix of our own bytes is our write, cut short — even one cut exactly at a
        // line boundary, which would otherwise pass for a whole, shorter entry.
        if !content.starts_with(&existing) && complete(&existing) {
            return Ok(AddOutcome::AlreadyExists);
        }
        tracing::warn!(%path, bytes = existing.len(), "replacing a torn log entry left by a failed write");
        if let Err(e) = store.delete(path).await {
            return Err(SluiceError::from(e).context(format!("{what}: removing a torn entry")));
        }
    }
    Err(SluiceError::external(format!("{what}: the entry keeps being torn")))
}

/// The bytes at `path`, or `None` when absent.
pub async fn read_entry(store: &Arc<dyn ObjectStore>, path: &Path, what: &str) -> Result<Option<Bytes>> {
    match store.get(path).await {
        Ok(r) => Ok(Some(r.bytes().await.map_err(|e| SluiceError::from(e).context(what.to_string()))?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(SluiceError::from(e).context(what.to_string())),
    }
}

/// Deletes `path`; already absent counts as deleted (a retried delete finds nothing to do).
pub async fn delete_entry(store: &Arc<dyn ObjectStore>, path: &Path, what: &str) -> Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(SluiceError::from(e).context(what.to_string())),
    }
}

/// Ids of the files directly in `dir` whose names `parse` accepts, ascending and distinct.
pub(crate) async fn list_numbered(
    store: &Arc<dyn ObjectStore>,
    dir: &Path,
    what: &str,
    parse: impl Fn(&str) -> Option<u64>,
) -> Result<Vec<u64>> {
    let listed: Vec<Path> = store
        .list(Some(dir))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| SluiceError::from(e).context(format!("listing {what}")))?;
    let mut ids: Vec<u64> = listed
        .iter()
        .filter_map(|location| {
            let mut parts = location.prefix_match(dir)?;
            let first = parts.next()?;
            parts.next().is_none().then(|| parse(first.as_ref())).flatten()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Whether an entry that is not whole is a `v1` entry cut short, as a write leaves it when its
/// writer dies in the middle: a prefix of `v1` (an empty file included), or `v1` and JSON lines
/// of which only the last is unfinished, ending where its text ends (a cut may split a UTF-8
/// character too). An entry of a newer version, or one whose JSON is wrong rather than
/// unfinished, is damage, not a crashed write: its reader must fail on it and name it.
pub(crate) fn cut_short(bytes: &[u8]) -> bool {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // Invalid only in its last, incomplete character: the cut fell inside it.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
        Err(_) => return false,
    };
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    if first != VERSION_LINE {
        return VERSION_LINE.starts_with(first) && lines.next().is_none();
    }
    let rest: Vec<&str> = lines.collect();
    let Some((last, before)) = rest.split_last() else { return true };
    let parses = |l: &str| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok();
    before.iter().all(|l| l.trim().is_empty() || parses(l))
        && (last.trim().is_empty() || serde_json::from_str::<serde::de::IgnoredAny>(last).err().is_some_and(|e| e.is_eof()))
}

/// Says that the newest entry of log `name`, `id`, is skipped as a write cut short.
pub(crate) fn warn_cut_short(name: &str, id: u64) {
    tracing::warn!(
        log = name,
        id,
        "ignoring the newest entry {name}/{id}: a write cut short by a writer that died; the next write of {id} replaces it"
    );
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
    use crate::retry::RetryPolicy;
    use crate::storage::faults::{FaultKind, FaultyStore};
    use crate::storage::retrying::RetryingStore;
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

    fn faulty(faults: Vec<Option<FaultKind>>) -> (Arc<dyn ObjectStore>, MetadataLog) {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let faulty: Arc<dyn ObjectStore> = Arc::new(FaultyStore::scripted(Arc::clone(&inner), faults));
        let store: Arc<dyn ObjectStore> = Arc::new(RetryingStore::new(faulty, RetryPolicy::QUICK));
        let log = MetadataLog::new(store, Path::from("chk/commits"), "commits").with_entry_check(|b| b.ends_with(b"}"));
        (inner, log)
    }

    #[tokio::test]
    async fn a_write_whose_response_was_lost_counts_as_added() {
        let (inner, l) = faulty(vec![Some(FaultKind::LostResponse)]);
        assert_eq!(l.add(3, Bytes::from("v1\n{}")).await.unwrap(), AddOutcome::Added);
        assert_eq!(inner.get(&Path::from("chk/commits/3")).await.unwrap().bytes().await.unwrap(), Bytes::from("v1\n{}"));
    }

    #[tokio::test]
    async fn a_failed_write_is_retried_and_a_torn_entry_replaced() {
        let (inner, l) = faulty(vec![Some(FaultKind::Error), None, Some(FaultKind::Torn)]);
        assert_eq!(l.add(3, Bytes::from("v1\n{\"a\":1}")).await.unwrap(), AddOutcome::Added);
        assert_eq!(inner.get(&Path::from("chk/commits/3")).await.unwrap().bytes().await.unwrap(), Bytes::from("v1\n{\"a\":1}"));
    }

    #[tokio::test]
    async fn another_writers_whole_entry_wins_even_after_an_ambiguous_failure() {
        let (inner, l) = faulty(vec![None, Some(FaultKind::Error)]);
        inner.put(&Path::from("chk/commits/3"), PutPayload::from("v1\n{\"other\":1}")).await.unwrap();
        assert_eq!(l.add(3, Bytes::from("v1\n{\"mine\":1}")).await.unwrap(), AddOutcome::AlreadyExists);
    }

    #[tokio::test]
    async fn a_newest_entry_its_writer_died_in_the_middle_of_counts_as_never_written() {
        let (inner, l) = faulty(vec![]);
        let whole = "v1\n{\"batch\":4}";
        l.add(4, Bytes::from(whole)).await.unwrap();
        // The torn write of entry 5 (its first half), and no repair: the writer was killed.
        inner.put(&Path::from("chk/commits/5"), PutPayload::from(&whole[..whole.len() / 2])).await.unwrap();
        assert_eq!(l.latest().await.unwrap(), Some((4, Bytes::from(whole))));
        // The next writer of 5 replaces the torn entry, with bytes of its own.
        let next = "v1\n{\"batch\":5,\"again\":true}";
        assert_eq!(l.add(5, Bytes::from(next)).await.unwrap(), AddOutcome::Added);
        assert_eq!(l.latest().await.unwrap(), Some((5, Bytes::from(next))));
        // An empty newest file (a crash before the bytes reached the disk) is cut short too.
        inner.put(&Path::from("chk/commits/6"), PutPayload::from("")).await.unwrap();
        assert_eq!(l.latest().await.unwrap().unwrap().0, 5);
    }

    #[tokio::test]
    async fn a_newest_entry_of_a_newer_version_is_not_taken_for_a_torn_one() {
        let (inner, l) = faulty(vec![]);
        l.add(4, Bytes::from("v1\n{}")).await.unwrap();
        inner.put(&Path::from("chk/commits/5"), PutPayload::from("v2\n{\"new")).await.unwrap();
        // Handed to the reader, whose version check refuses it (`check_version`).
        assert_eq!(l.latest().await.unwrap(), Some((5, Bytes::from("v2\n{\"new"))));
        assert!(!cut_short(b"v2\n{") && !cut_short(b"garbage") && cut_short(b"v") && cut_short(b"v1\n{\"a"));
        // Wrong rather than unfinished JSON is damage, even as the newest entry.
        assert!(!cut_short(b"v1\n{\"a\":x}") && !cut_short(b"v1\n{\"a\n{\"b\":1}"));
        // A cut inside a multi-byte character of the last line.
        assert!(cut_short("v1\n{\"name\":\"é".as_bytes().split_last().map(|(_, b)| b).unwrap_or_default()));
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
