//! Opening a checkpoint directory: its logs, its query id, and the check that it belongs to
//! this query.

use bytes::Bytes;
use sluice_common::error::{Result, ResultExt, SluiceError};
use sluice_common::log::{create_entry, read_entry, AddOutcome, MetadataLog};
use sluice_common::storage::{self, Location};
use sluice_common::BatchId;

use super::commit_log::CommitMetadata;
use super::offset_seq::OffsetSeq;
use super::restart::{decide_start, StartDecision};

/// What a checkpoint must keep matching across restarts: the identity of each source, in
/// source-index order, and of each stateful operator. Spark detects such changes only partially
/// (source counts, state schemas); sluice records the shape so the mismatch is named at start,
/// before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueryShape {
    /// One entry per source, e.g. `files file:///data/in`.
    pub sources: Vec<String>,
    /// One entry per stateful operator, e.g. `aggregate(window,action)`.
    #[serde(default)]
    pub stateful_operators: Vec<String>,
}

/// An opened checkpoint location.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Where the checkpoint lives.
    pub location: Location,
    /// `offsets/` — the write-ahead log.
    pub offsets: MetadataLog,
    /// `commits/` — batches that reached the sink.
    pub commits: MetadataLog,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StreamMetadata {
    id: uuid::Uuid,
}

const SHAPE_FILE: &str = "sluice/query-shape.json";

impl Checkpoint {
    /// Opens (without creating anything) the checkpoint at `location` (path or URL).
    pub fn open(location: &str) -> Result<Self> {
        let location = storage::resolve(location).context("checkpointLocation")?;
        Ok(Self::at(location))
    }

    /// A checkpoint rooted at an already-resolved location.
    pub fn at(location: Location) -> Self {
        let offsets = MetadataLog::new(location.store.clone(), location.child("offsets"), "offsets")
            .with_entry_check(|b| std::str::from_utf8(b).is_ok_and(|t| OffsetSeq::parse(t, "offsets").is_ok()));
        let commits = MetadataLog::new(location.store.clone(), location.child("commits"), "commits")
            .with_entry_check(|b| std::str::from_utf8(b).is_ok_and(|t| CommitMetadata::parse(t, "commits").is_ok()));
        Self { location, offsets, commits }
    }

    /// When the previous run last wrote to the offsets or commit log: a query resumed after its
    /// driver died has been down since at most then.
    pub async fn last_write_time(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let offsets = self.offsets.latest_write_time().await?;
        let commits = self.commits.latest_write_time().await?;
        Ok(offsets.max(commits))
    }

    /// Human-readable name for messages.
    pub fn describe(&self) -> String {
        self.location.url.to_string()
    }

    /// The persistent query id from `metadata` (`{"id":…}`), created on first use.
    pub async fn query_id(&self) -> Result<uuid::Uuid> {
        let path = self.location.child("metadata");
        let what = format!("{}/metadata", self.describe());
        if let Some(bytes) = read_entry(&self.location.store, &path, &format!("reading {what}")).await? {
            let meta: StreamMetadata =
                serde_json::from_slice(&bytes).map_err(|e| SluiceError::user(format!("{what} is corrupt: {e}")))?;
            return Ok(meta.id);
        }
        let meta = StreamMetadata { id: uuid::Uuid::new_v4() };
        let body = Bytes::from(serde_json::to_vec(&meta)?);
        let parses = |b: &[u8]| serde_json::from_slice::<StreamMetadata>(b).is_ok();
        match create_entry(&self.location.store, &path, &body, &format!("creating {what}"), parses).await? {
            AddOutcome::Added => Ok(meta.id),
            // Another run created it concurrently: theirs is the id.
            AddOutcome::AlreadyExists => Box::pin(self.query_id()).await,
        }
    }

    /// Records `shape` on first use; afterwards fails when the running query has a different one.
    pub async fn check_shape(&self, shape: &QueryShape) -> Result<()> {
        let path = self.location.child(SHAPE_FILE);
        if let Some(bytes) = read_entry(&self.location.store, &path, "reading the checkpoint's query shape").await? {
            let stored: QueryShape = serde_json::from_slice(&bytes)
                .map_err(|e| SluiceError::user(format!("{}/{SHAPE_FILE} is corrupt: {e}", self.describe())))?;
            return shape_mismatch(&stored, shape, &self.describe());
        }
        let body = Bytes::from(serde_json::to_vec_pretty(shape)?);
        let parses = |b: &[u8]| serde_json::from_slice::<QueryShape>(b).is_ok();
        match create_entry(&self.location.store, &path, &body, "recording the query shape", parses).await? {
            AddOutcome::Added => Ok(()),
            // Another run recorded its shape concurrently: it must match ours.
            AddOutcome::AlreadyExists => Box::pin(self.check_shape(shape)).await,
        }
    }

    /// Reads the logs and decides where to resume (docs/semantics.md §1 "Restart").
    pub async fn start_decision(&self) -> Result<StartDecision> {
        let latest = match self.offsets.latest().await? {
            Some((id, bytes)) => Some((id, self.parse_offsets(id, &bytes)?)),
            None => None,
        };
        let previous = match &latest {
            Some((id, _)) if *id > 0 => match self.offsets.get(id - 1).await? {
                Some(bytes) => Some(self.parse_offsets(id - 1, &bytes)?),
                None => None,
            },
            _ => None,
        };
        let commit = match self.commits.latest().await? {
            Some((id, bytes)) => {
                let text = utf8(&bytes, &format!("{}/commits/{id}", self.describe()))?;
                Some((id, CommitMetadata::parse(text, &format!("{}/commits/{id}", self.describe()))?))
            }
            None => None,
        };
        decide_start(latest, previous, commit).map_err(|e| e.context(format!("checkpoint {}", self.describe())))
    }

    fn parse_offsets(&self, id: u64, bytes: &Bytes) -> Result<OffsetSeq> {
        let what = format!("{}/offsets/{id}", self.describe());
        OffsetSeq::parse(utf8(bytes, &what)?, &what)
    }

    /// Writes `offsets/id`; fails if another driver got there first (the fencing rule).
    pub async fn write_offsets(&self, batch: BatchId, seq: &OffsetSeq) -> Result<()> {
        let id = batch.0;
        match self.offsets.add(id, Bytes::from(seq.serialize()?)).await? {
            AddOutcome::Added => Ok(()),
            AddOutcome::AlreadyExists => Err(concurrent_update(id, &self.describe(), "offsets")),
        }
    }

    /// Writes `commits/id`; fails if it exists (another driver committed the batch).
    pub async fn write_commit(&self, batch: BatchId, commit: &CommitMetadata) -> Result<()> {
        let id = batch.0;
        match self.commits.add(id, Bytes::from(commit.serialize()?)).await? {
            AddOutcome::Added => Ok(()),
            AddOutcome::AlreadyExists => Err(concurrent_update(id, &self.describe(), "commits")),
        }
    }

    /// Deletes log entries older than `threshold` in both logs.
    pub async fn purge(&self, threshold: u64) -> Result<()> {
        self.offsets.purge(threshold).await?;
        self.commits.purge(threshold).await
    }
}

fn utf8<'a>(bytes: &'a Bytes, what: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| SluiceError::user(format!("{what} is corrupt: not UTF-8 text")))
}

fn concurrent_update(id: u64, ckpt: &str, log: &str) -> SluiceError {
    SluiceError::user(format!(
        "Concurrent update to the log. Multiple streaming jobs detected for {id}: {log}/{id} in {ckpt} \
         was written by another run of this query; make sure only one query uses this checkpointLocation"
    ))
    .with_retryable(false)
}

/// Compares a stored shape with the running query's; the message names the first difference.
fn shape_mismatch(stored: &QueryShape, now: &QueryShape, ckpt: &str) -> Result<()> {
    if stored.sources.len() != now.sources.len() {
        return Err(SluiceError::user(format!(
            "There are [{}] sources in the checkpoint offsets and now there are [{}] sources requested by the query. Cannot continue. (checkpoint {ckpt})",
            stored.sources.len(),
            now.sources.len()
        )));
    }
    for (i, (a, b)) in stored.sources.iter().zip(&now.sources).enumerate() {
        if a != b {
            return Err(SluiceError::user(format!(
                "the checkpoint {ckpt} was written by a different query: source {i} was `{a}`, now it is `{b}`; use a new checkpointLocation"
            )));
        }
    }
    if stored.stateful_operators != now.stateful_operators {
        return Err(SluiceError::user(format!(
            "the checkpoint {ckpt} was written by a query with different stateful operators ({}), this query has ({}); use a new checkpointLocation",
            stored.stateful_operators.join(", "),
            now.stateful_operators.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::offset_seq::OffsetSeqMetadata;

    #[tokio::test]
    async fn query_id_persists_and_offsets_are_fenced() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoint::open(dir.path().to_str().unwrap()).unwrap();
        let id = ck.query_id().await.unwrap();
        assert_eq!(ck.query_id().await.unwrap(), id);
        let seq = OffsetSeq { offsets: vec![Some("0".into())], metadata: Default::default() };
        ck.write_offsets(BatchId(0), &seq).await.unwrap();
        // The same bytes again are this writer's own entry (a retry after a lost response)...
        ck.write_offsets(BatchId(0), &seq).await.unwrap();
        // ...other bytes are another driver's: fenced.
        let theirs = OffsetSeq { metadata: OffsetSeqMetadata { batch_timestamp_ms: 7, ..Default::default() }, ..seq.clone() };
        let e = ck.write_offsets(BatchId(0), &theirs).await.unwrap_err();
        assert!(e.message.contains("Concurrent update"), "{}", e.message);
        assert!(matches!(ck.start_decision().await.unwrap(), StartDecision::Rerun { batch_id: BatchId(0), .. }));
    }

    #[tokio::test]
    async fn a_different_query_shape_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoint::open(dir.path().to_str().unwrap()).unwrap();
        let a = QueryShape { sources: vec!["files file:///a".into()], stateful_operators: vec![] };
        ck.check_shape(&a).await.unwrap();
        ck.check_shape(&a).await.unwrap();
        let b = QueryShape { sources: vec!["rate".into()], stateful_operators: vec![] };
        assert!(ck.check_shape(&b).await.unwrap_err().message.contains("source 0 was `files file:///a`"));
        let c = QueryShape { sources: vec![], stateful_operators: vec![] };
        assert!(ck.check_shape(&c).await.unwrap_err().message.contains("There are [1] sources"));
    }
}
