//! State files of one partition: its snapshots `state/<op>/<partition>/<version>.snapshot`, and
//! its deltas, in the bundles of `state/<op>/deltas/<version>/` ([`crate::bundle`]) — or, in
//! checkpoints written before bundles, `state/<op>/<partition>/<version>.delta`.
//!
//! Spark's versioning (docs/semantics.md §1): batch N reads version N and writes version N+1, so
//! batch 0 writes the deltas of version 1. Each file (a delta in a bundle, too) is an Arrow IPC stream (key columns, value columns,
//! `__evict_at`, and `__deleted` in deltas) rather than Spark's Java serialisation, framed with a
//! CRC32C header ([`sluice_common::checksum`]): an empty, truncated or damaged file fails the
//! load naming itself, never loads as empty state — except a snapshot cut short, which a
//! maintenance run that died leaves and a load passes over for the older files it stands for.
//! Loading version v takes the newest snapshot at or below v and replays the deltas after it; a
//! snapshot is written once more than `minDeltasForSnapshot` deltas have accumulated, and files
//! no longer needed to rebuild `latest − minBatchesToRetain` are deleted.
//!
//! Deltas are sparse: a batch that changed nothing in a partition writes no delta (with 200
//! shuffle partitions and a few changed keys per batch, writing 200 files was most of a batch's
//! cost). Each delta names the version of the file before it (`sluice.previous_version` in its
//! Arrow schema's metadata), so a load still notices a missing file in the chain: versions
//! between two files are unchanged, and a file that points past a gap that has no file fails
//! the load. A partition's first commit always writes a file, so a partition whose files are all
//! gone fails its load too. Files written before deltas were sparse carry no pointer and mean
//! "the previous version", as they always did.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use sluice_common::error::{Result, ResultExt, SluiceError};
use sluice_common::log::create_entry;
use sluice_common::storage::Location;

use crate::bundle::{DeltaBundles, DeltaEntry};

/// Schema metadata key of a delta: the version of the file before it in the partition's chain.
const PREVIOUS_VERSION_KEY: &str = "sluice.previous_version";

/// What kind of state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// `<version>.delta`: the upserts and removals (`__deleted`) of the batch that produced this version.
    Delta,
    /// `<version>.snapshot`: every entry at this version; a load starts from the newest one at or below its version.
    Snapshot,
}

impl FileKind {
    fn suffix(self) -> &'static str {
        match self {
            FileKind::Delta => "delta",
            FileKind::Snapshot => "snapshot",
        }
    }
}

/// One state file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct StateFile {
    /// The version it holds (a snapshot) or leads to (a delta).
    pub version: u64,
    /// Snapshot or delta.
    pub kind: FileKind,
    /// For a delta, the version of the partition's file before it (0: none).
    pub previous: Option<u64>,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
}

/// One file a load reads: a partition's own file, or its delta in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    version: u64,
    kind: FileKind,
    /// Where the delta is, for one in a bundle.
    in_bundle: Option<DeltaEntry>,
}

/// The files of one (operator, partition).
#[derive(Debug, Clone)]
pub struct StateFiles {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    display: String,
    partition: u32,
    /// The partition's store (`""`: the operator's only one).
    store_name: String,
    bundles: DeltaBundles,
}

impl StateFiles {
    /// Files of `operator`/`partition` under the checkpoint's `state/` directory.
    pub fn new(checkpoint: &Location, operator: usize, partition: u32) -> Self {
        let rel = format!("state/{operator}/{partition}");
        Self {
            store: Arc::clone(&checkpoint.store),
            dir: checkpoint.child(&rel),
            display: format!("{}/{rel}", checkpoint.url),
            partition,
            store_name: String::new(),
            bundles: DeltaBundles::new(checkpoint, operator),
        }
    }

    /// The files of one named store of the partition, in its own directory
    /// (`state/<op>/<partition>/<store>/`): a join keeps one store per side, as Spark does.
    /// `""` is the operator's only store.
    pub fn in_store(mut self, store: &str) -> Self {
        if !store.is_empty() {
            self.dir = self.dir.clone().join(store);
            self.display = format!("{}/{store}", self.display);
            self.store_name = store.to_string();
        }
        self
    }

    /// Reads the manifests of delta bundles through `cache`, shared with other partitions' loads.
    pub fn with_manifest_cache(mut self, cache: Arc<crate::bundle::ManifestCache>) -> Self {
        self.bundles = self.bundles.with_cache(cache);
        self
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The partition's store (`""`: the operator's only one).
    pub fn store_name(&self) -> &str {
        &self.store_name
    }

    fn path(&self, version: u64, kind: FileKind) -> Path {
        self.dir.clone().join(format!("{version}.{}", kind.suffix()))
    }

    /// Writes `<version>.delta` in the partition's directory, the layout before bundles, which
    /// loads still read: tests build such checkpoints with it.
    #[cfg(test)]
    pub(crate) async fn write_delta(&self, version: u64, previous: u64, schema: &SchemaRef, batch: &RecordBatch) -> Result<()> {
        let bytes = encode_delta(previous, schema, batch)?;
        let what = format!("writing state file {}/{version}.delta", self.display);
        create_entry(&self.store, &self.path(version, FileKind::Delta), &bytes, &what, is_whole_file).await?;
        Ok(())
    }

    /// Writes `<version>.snapshot`: every entry at that version.
    pub async fn write_snapshot(&self, version: u64, schema: &SchemaRef, batch: &RecordBatch) -> Result<()> {
        self.write(version, FileKind::Snapshot, schema, batch).await
    }

    /// Writes a state file; the first whole copy of a version wins, as in Spark's state store.
    ///
    /// Every attempt of a batch computes the same version from the same input and state, so a
    /// whole file already there (a retried or zombie attempt of the same batch wrote it) is
    /// kept, never overwritten: a late attempt — an executor that was paused, cut off and
    /// replaced — must not be able to tear a version the query has committed. A file that is not
    /// whole (a write cut short) is replaced.
    async fn write(&self, version: u64, kind: FileKind, schema: &SchemaRef, batch: &RecordBatch) -> Result<()> {
        let bytes = seal_file(schema, batch)?;
        let what = format!("writing state file {}/{version}.{}", self.display, kind.suffix());
        create_entry(&self.store, &self.path(version, kind), &bytes, &what, is_whole_file).await?;
        Ok(())
    }

    /// Every (version, kind) present.
    pub async fn list(&self) -> Result<BTreeSet<(u64, FileKind)>> {
        let prefix = self.dir.clone();
        let metas: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await.context_with(|| format!("listing {}", self.display))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                let (v, ext) = name.split_once('.')?;
                let kind = match ext {
                    "delta" => FileKind::Delta,
                    "snapshot" => FileKind::Snapshot,
                    _ => return None,
                };
                Some((v.parse().ok()?, kind))
            })
            .collect())
    }

    /// Reads one of the partition's own files.
    pub async fn read(&self, version: u64, kind: FileKind) -> Result<StateFile> {
        let bytes = self.read_bytes(version, kind).await?;
        self.decode(version, kind, &bytes)
    }

    /// Reads one file of a load, or `None` for a snapshot cut short (see [`StateFiles::load`]).
    async fn read_whole(&self, file: &Planned) -> Result<Option<StateFile>> {
        let (version, kind) = (file.version, file.kind);
        let Some(entry) = &file.in_bundle else {
            let bytes = self.read_bytes(version, kind).await?;
            if kind == FileKind::Snapshot && sluice_common::checksum::is_cut_short(&bytes) {
                return Ok(None);
            }
            return self.decode(version, kind, &bytes).map(Some);
        };
        let bytes = self.bundles.read_delta(version, entry).await?;
        let what = format!(
            "the delta of {} at version {version} in {}/{version}/{}",
            self.display,
            self.bundles.display(),
            entry.bundle
        );
        decode_file(version, kind, &bytes, &what).map(Some)
    }

    async fn read_bytes(&self, version: u64, kind: FileKind) -> Result<bytes::Bytes> {
        let path = self.path(version, kind);
        Ok(self
            .store
            .get(&path)
            .await
            .map_err(|e| {
                SluiceError::from(e).context(format!("reading state file {}/{version}.{}", self.display, kind.suffix()))
            })?
            .bytes()
            .await?)
    }

    fn decode(&self, version: u64, kind: FileKind, bytes: &[u8]) -> Result<StateFile> {
        decode_file(version, kind, bytes, &format!("state file {}/{version}.{}", self.display, kind.suffix()))
    }

    /// Reads the files that rebuild `version`, checking that the chain of deltas has no hole.
    ///
    /// Each delta must follow the file read before it. The first delta after a snapshot may
    /// point to any version up to the snapshot's: maintenance snapshots a partition at its
    /// current version, which need not be one that wrote a delta, and everything up to that
    /// version is in the snapshot.
    ///
    /// A snapshot cut short — the maintenance that wrote it died before repairing a torn
    /// write — is passed over for the older snapshot and the deltas after it, which cleanup
    /// keeps until a whole snapshot covers them ([`StateFiles::cleanup`]).
    pub async fn load(&self, version: u64) -> Result<Vec<StateFile>> {
        let mut passed_over = BTreeSet::new();
        'plan: loop {
            let mut files = Vec::new();
            for planned in self.plan_load_without(version, &passed_over).await? {
                let Some(file) = self.read_whole(&planned).await? else {
                    tracing::warn!(file = %format!("{}/{}.snapshot", self.display, planned.version), "passing over a snapshot cut short by a writer that died; loading from older files");
                    passed_over.insert(planned.version);
                    continue 'plan;
                };
                self.check_follows(version, planned.version, &files, &file)?;
                files.push(file);
            }
            return Ok(files);
        }
    }

    /// Fails, naming the hole, unless `file` (version `v`) follows the files read before it.
    fn check_follows(&self, version: u64, v: u64, files: &[StateFile], file: &StateFile) -> Result<()> {
        let (expected, after_snapshot) =
            files.last().map_or((0, false), |f: &StateFile| (f.version, f.kind == FileKind::Snapshot));
        match file.previous {
            Some(previous) if previous != expected && !(after_snapshot && previous < expected) => Err(SluiceError::user(format!(
                "cannot load state version {version} of {}: {v}.delta follows version {previous}, whose file is missing (the checkpoint is incomplete or was purged)",
                self.display
            ))),
            _ => Ok(()),
        }
    }

    /// The files to read, in order, to rebuild `version`: the newest snapshot at or below it,
    /// then every later delta up to it. A version above 0 with no file at all fails: every
    /// partition's first commit writes one.
    pub async fn plan_load(&self, version: u64) -> Result<Vec<(u64, FileKind)>> {
        Ok(self.plan_load_without(version, &BTreeSet::new()).await?.into_iter().map(|p| (p.version, p.kind)).collect())
    }

    /// [`StateFiles::plan_load`] without the snapshots in `passed_over`. A delta is looked up in
    /// the manifests of the versions after the snapshot, and in the partition's own directory
    /// (checkpoints from before bundles); the manifest's entry is the one read if both exist.
    async fn plan_load_without(&self, version: u64, passed_over: &BTreeSet<u64>) -> Result<Vec<Planned>> {
        if version == 0 {
            return Ok(Vec::new());
        }
        let files = self.list().await?;
        let base = files
            .iter()
            .filter(|(v, k)| *k == FileKind::Snapshot && *v <= version && !passed_over.contains(v))
            .map(|(v, _)| *v)
            .max();
        let after_base = |v: u64| v <= version && base.is_none_or(|s| v > s);
        let mut deltas: std::collections::BTreeMap<u64, Option<DeltaEntry>> =
            files.iter().filter(|(v, k)| *k == FileKind::Delta && after_base(*v)).map(|(v, _)| (*v, None)).collect();
        for v in self.bundles.versions().await?.into_iter().filter(|v| after_base(*v)) {
            if let Some(manifest) = self.bundles.read_manifest(v).await? {
                if let Some(entry) = manifest.entry(self.partition, &self.store_name) {
                    deltas.insert(v, Some(entry.clone()));
                }
            }
        }
        let mut plan: Vec<Planned> =
            base.map(|s| Planned { version: s, kind: FileKind::Snapshot, in_bundle: None }).into_iter().collect();
        plan.extend(deltas.into_iter().map(|(version, in_bundle)| Planned { version, kind: FileKind::Delta, in_bundle }));
        if plan.is_empty() {
            return Err(SluiceError::user(format!(
                "cannot load state version {version} of {}: it has no state files (the checkpoint is incomplete or was purged)",
                self.display
            )));
        }
        Ok(plan)
    }

    /// Deletes the partition's own files not needed to rebuild `earliest` or anything newer
    /// (Spark's cleanup; bundles are the driver's, see [`crate::bundle::cleanup_bundles`]).
    ///
    /// Only a snapshot whose length is whole may stand in for the files before it: one cut short
    /// by a writer that died is passed over by loads, which then need those files.
    pub async fn cleanup(&self, earliest: u64) -> Result<()> {
        let files = self.list().await?;
        let Some(keep_from) = self.whole_snapshot_in(&files, earliest, true).await? else { return Ok(()) };
        for (v, kind) in files.into_iter().filter(|(v, _)| *v < keep_from) {
            match self.store.delete(&self.path(v, kind)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(SluiceError::from(e).context(format!("deleting old state file in {}", self.display))),
            }
        }
        Ok(())
    }

    /// The newest snapshot at or below `earliest` whose length is whole: loads of `earliest` and
    /// later versions start there or later, so nothing of the partition before it is needed.
    pub async fn whole_snapshot_at_or_below(&self, earliest: u64) -> Result<Option<u64>> {
        let files = self.list().await?;
        self.whole_snapshot_in(&files, earliest, false).await
    }

    /// [`StateFiles::whole_snapshot_at_or_below`] among `files`; with `only_if_older`, `None`
    /// when no file is older than the snapshot (nothing to delete, so no need to check it).
    async fn whole_snapshot_in(
        &self,
        files: &BTreeSet<(u64, FileKind)>,
        earliest: u64,
        only_if_older: bool,
    ) -> Result<Option<u64>> {
        let mut candidates: Vec<u64> =
            files.iter().filter(|(v, k)| *k == FileKind::Snapshot && *v <= earliest).map(|(v, _)| *v).collect();
        while let Some(v) = candidates.pop() {
            if only_if_older && !files.iter().any(|(f, _)| *f < v) {
                return Ok(None);
            }
            if self.snapshot_length_is_whole(v).await? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Whether snapshot `v` is as long as its header says (two small reads, not the file).
    async fn snapshot_length_is_whole(&self, v: u64) -> Result<bool> {
        let path = self.path(v, FileKind::Snapshot);
        let what = || format!("checking state file {}/{v}.snapshot", self.display);
        let meta = self.store.head(&path).await.context_with(what)?;
        if meta.size == 0 {
            return Ok(false); // its writer died before it wrote a byte
        }
        let header_len = (sluice_common::checksum::HEADER_LEN as u64).min(meta.size);
        let header = self.store.get_range(&path, 0..header_len).await.context_with(what)?;
        // A file from before checksums carries no length: whole unless a load says otherwise.
        // One cut inside its header (even empty) is not whole: it is no file from before
        // checksums, which are whole Arrow streams.
        let sealed = sluice_common::checksum::is_sealed(&header);
        Ok(!sluice_common::checksum::is_cut_short_at(&header, meta.size)
            && (!sealed || sluice_common::checksum::sealed_file_len(&header) == Some(meta.size)))
    }
}

/// A delta file's bytes: the changes of a version, pointing back to `previous`, the version of
/// the partition's file before it (0 when none).
pub fn encode_delta(previous: u64, schema: &SchemaRef, batch: &RecordBatch) -> Result<bytes::Bytes> {
    let metadata = [(PREVIOUS_VERSION_KEY.to_string(), previous.to_string())].into_iter().collect();
    let schema = Arc::new(schema.as_ref().clone().with_metadata(metadata));
    seal_file(&schema, batch)
}

/// A state file's bytes: `batch` as an Arrow IPC stream, sealed with its checksum.
fn seal_file(schema: &SchemaRef, batch: &RecordBatch) -> Result<bytes::Bytes> {
    let batch = batch.clone().with_schema(Arc::clone(schema))?;
    Ok(sluice_common::checksum::seal(&sluice_common::ipc::encode(schema, std::slice::from_ref(&batch))?))
}

/// Reads a state file's bytes; `what` names it in errors.
fn decode_file(version: u64, kind: FileKind, bytes: &[u8], what: &str) -> Result<StateFile> {
    let body = if sluice_common::checksum::is_sealed(bytes) {
        sluice_common::checksum::open(bytes, what)?
    } else {
        legacy_body(bytes, what)?
    };
    let (schema, batches) = sluice_common::ipc::decode(body, what)?;
    let previous = match (kind, schema.as_ref().and_then(|s| s.metadata().get(PREVIOUS_VERSION_KEY))) {
        (FileKind::Snapshot, _) => None,
        (FileKind::Delta, None) => Some(version.saturating_sub(1)),
        (FileKind::Delta, Some(p)) => Some(
            p.parse::<u64>()
                .ok()
                .filter(|p| *p < version)
                .ok_or_else(|| SluiceError::user(format!("{what} is corrupt: it names '{p}' as its previous version")))?,
        ),
    };
    Ok(StateFile { version, kind, previous, batches })
}

/// Whether `bytes` are a whole sealed state file (its length and checksum agree).
fn is_whole_file(bytes: &[u8]) -> bool {
    sluice_common::checksum::open(bytes, "state file").is_ok()
}

/// A state file written before files carried checksums: a bare Arrow IPC stream, accepted only
/// whole — it must end with the stream's end marker, so an empty or cut file is refused.
fn legacy_body<'a>(bytes: &'a [u8], what: &str) -> Result<&'a [u8]> {
    const END_OF_STREAM: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    if bytes.ends_with(&END_OF_STREAM) {
        Ok(bytes)
    } else {
        Err(SluiceError::user(format!("{what} is corrupt: {} bytes, not a complete Arrow stream", bytes.len())))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use sluice_common::storage::faults::FaultKind;

    /// A one-row, one-column batch holding `v`.
    pub(crate) fn batch(v: i64) -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let b = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(vec![v]))]).unwrap();
        (schema, b)
    }

    /// Partition 3 of operator 0 in a fresh directory, with deltas 1 to `deltas` in a chain.
    async fn chain_of_deltas(deltas: u64) -> (tempfile::TempDir, Location, StateFiles) {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let f = StateFiles::new(&loc, 0, 3);
        for v in 1..=deltas {
            let (s, b) = batch(v as i64);
            f.write_delta(v, v - 1, &s, &b).await.unwrap();
        }
        (dir, loc, f)
    }

    #[tokio::test]
    async fn load_plan_uses_newest_snapshot_and_later_deltas() {
        let (dir, _, f) = chain_of_deltas(6).await;
        let (s, b) = batch(0);
        f.write_snapshot(4, &s, &b).await.unwrap();
        assert_eq!(f.plan_load(6).await.unwrap(), vec![(4, FileKind::Snapshot), (5, FileKind::Delta), (6, FileKind::Delta)]);
        assert_eq!(f.plan_load(3).await.unwrap().len(), 3);
        // Version 7 changed nothing: it is version 6's files.
        assert_eq!(f.plan_load(7).await.unwrap(), f.plan_load(6).await.unwrap());
        f.cleanup(5).await.unwrap();
        let left: Vec<u64> = f.list().await.unwrap().into_iter().map(|(v, _)| v).collect();
        assert_eq!(left, vec![4, 4, 5, 6]);
        assert!(dir.path().join("state/0/3/4.snapshot").exists());
    }

    #[tokio::test]
    async fn a_snapshot_its_writer_died_in_the_middle_of_is_passed_over_and_keeps_its_deltas() {
        let (_dir, loc, f) = chain_of_deltas(5).await;
        let (s, b) = batch(2);
        f.write_snapshot(2, &s, &b).await.unwrap();
        // Maintenance wrote half of 4.snapshot, then its executor was killed.
        let (s, b) = batch(4);
        let whole = sluice_common::checksum::seal(&sluice_common::ipc::encode(&s, &[b]).unwrap());
        let torn = object_store::PutPayload::from(whole.slice(..whole.len() / 2));
        loc.store.put(&f.path(4, FileKind::Snapshot), torn).await.unwrap();

        let versions = |files: Vec<StateFile>| files.iter().map(|f| (f.version, f.kind)).collect::<Vec<_>>();
        let loaded = versions(f.load(5).await.unwrap());
        assert_eq!(loaded, vec![(2, FileKind::Snapshot), (3, FileKind::Delta), (4, FileKind::Delta), (5, FileKind::Delta)]);
        // Cleanup may not lean on it: the files of versions 2 to 4 stay, 1.delta (under the
        // whole snapshot of 2) goes.
        f.cleanup(5).await.unwrap();
        let left: Vec<(u64, FileKind)> = f.list().await.unwrap().into_iter().collect();
        assert!(left.contains(&(3, FileKind::Delta)) && left.contains(&(4, FileKind::Delta)), "{left:?}");
        assert!(!left.contains(&(1, FileKind::Delta)), "{left:?}");
        assert_eq!(versions(f.load(5).await.unwrap()), loaded);
        // A snapshot with a flipped bit is damage, not a crashed write: the load fails on it.
        let mut flipped = whole.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        loc.store.put(&f.path(4, FileKind::Snapshot), flipped.into()).await.unwrap();
        assert!(f.load(5).await.unwrap_err().message.contains("checksum"));
    }

    #[tokio::test]
    async fn a_snapshot_cut_inside_its_header_is_cut_short_too() {
        let (s, b) = batch(4);
        let whole = sluice_common::checksum::seal(&sluice_common::ipc::encode(&s, &[b]).unwrap());
        // The writer died before it wrote a byte, or inside the 17-byte header.
        for cut in [0, 3, 9, sluice_common::checksum::HEADER_LEN - 1] {
            let (_dir, loc, f) = chain_of_deltas(5).await;
            let (s, b) = batch(2);
            f.write_snapshot(2, &s, &b).await.unwrap();
            loc.store.put(&f.path(4, FileKind::Snapshot), whole.slice(..cut).into()).await.unwrap();
            let loaded: Vec<u64> = f.load(5).await.unwrap().iter().map(|f| f.version).collect();
            assert_eq!(loaded, [2, 3, 4, 5], "cut at {cut}");
            assert_eq!(f.whole_snapshot_at_or_below(5).await.unwrap(), Some(2), "cut at {cut}");
            f.cleanup(5).await.unwrap();
            let left: Vec<(u64, FileKind)> = f.list().await.unwrap().into_iter().collect();
            assert!(left.contains(&(3, FileKind::Delta)) && !left.contains(&(1, FileKind::Delta)), "cut at {cut}: {left:?}");
        }
    }

    fn faulty(faults: Vec<Option<FaultKind>>) -> (tempfile::TempDir, Location, Location) {
        use sluice_common::storage::faults::FaultyStore;
        let dir = tempfile::tempdir().unwrap();
        let plain = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore::scripted(Arc::clone(&plain.store), faults));
        let faulty = Location { store, ..plain.clone() };
        (dir, plain, faulty)
    }

    #[tokio::test]
    async fn a_torn_write_is_replaced_and_never_loads() {
        // The first put lands half its bytes and fails; the writer must leave a whole file.
        let (_dir, plain, faulty) = faulty(vec![Some(FaultKind::Torn)]);
        let (s, b) = batch(7);
        StateFiles::new(&faulty, 0, 0).write_snapshot(1, &s, &b).await.unwrap();
        let read = StateFiles::new(&plain, 0, 0).read(1, FileKind::Snapshot).await.unwrap();
        assert_eq!(read.batches.len(), 1);
        assert_eq!(read.batches[0].columns(), b.columns());
    }

    #[tokio::test]
    async fn a_late_writer_does_not_overwrite_a_whole_version() {
        // A paused maintenance run resumes after another executor wrote the snapshot; its own
        // write, torn on the way, must leave the first whole copy standing.
        let (_dir, plain, faulty) = faulty(vec![Some(FaultKind::Torn)]);
        let (s, first) = batch(1);
        StateFiles::new(&plain, 0, 0).write_snapshot(2, &s, &first).await.unwrap();
        let (s, late) = batch(2);
        StateFiles::new(&faulty, 0, 0).write_snapshot(2, &s, &late).await.unwrap();
        assert_eq!(
            StateFiles::new(&plain, 0, 0).read(2, FileKind::Snapshot).await.unwrap().batches[0].columns(),
            first.columns()
        );
    }

    #[tokio::test]
    async fn sparse_deltas_load_across_gaps_and_a_missing_link_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let f = StateFiles::new(&loc, 1, 2);
        // Versions 2–4 and 6 changed nothing: files at 1, 5 and 7, each naming the one before.
        for (v, previous) in [(1, 0), (5, 1), (7, 5)] {
            let (s, b) = batch(v as i64);
            f.write_delta(v, previous, &s, &b).await.unwrap();
        }
        let versions = |files: Vec<StateFile>| files.iter().map(|f| f.version).collect::<Vec<_>>();
        assert_eq!(versions(f.load(4).await.unwrap()), [1]);
        assert_eq!(versions(f.load(6).await.unwrap()), [1, 5]);
        assert_eq!(versions(f.load(9).await.unwrap()), [1, 5, 7]);
        std::fs::remove_file(dir.path().join("state/1/2/5.delta")).unwrap();
        assert_eq!(versions(f.load(4).await.unwrap()), [1], "versions before the hole still load");
        let e = f.load(7).await.unwrap_err().message;
        assert!(e.contains("7.delta follows version 5, whose file is missing"), "{e}");
        std::fs::remove_file(dir.path().join("state/1/2/1.delta")).unwrap();
        std::fs::remove_file(dir.path().join("state/1/2/7.delta")).unwrap();
        let e = f.load(3).await.unwrap_err().message;
        assert!(e.contains("it has no state files"), "{e}");
        assert!(f.load(0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_snapshot_between_a_delta_and_the_file_it_follows_starts_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let f = StateFiles::new(&loc, 0, 0);
        // Deltas at 1 and 4; maintenance snapshotted version 5, which changed nothing, and
        // deleted what the snapshot covers; the next change is 6.delta, pointing to 4.
        for (v, previous) in [(1, 0), (4, 1), (6, 4)] {
            let (s, b) = batch(v as i64);
            f.write_delta(v, previous, &s, &b).await.unwrap();
        }
        let (s, b) = batch(0);
        f.write_snapshot(5, &s, &b).await.unwrap();
        std::fs::remove_file(dir.path().join("state/0/0/1.delta")).unwrap();
        std::fs::remove_file(dir.path().join("state/0/0/4.delta")).unwrap();
        let loaded: Vec<(u64, FileKind)> = f.load(6).await.unwrap().iter().map(|f| (f.version, f.kind)).collect();
        assert_eq!(loaded, [(5, FileKind::Snapshot), (6, FileKind::Delta)]);
        // A delta pointing past the snapshot to a file that is gone still fails.
        let (s, b) = batch(8);
        f.write_delta(8, 7, &s, &b).await.unwrap();
        let e = f.load(8).await.unwrap_err().message;
        assert!(e.contains("8.delta follows version 7, whose file is missing"), "{e}");
    }

    #[tokio::test]
    async fn a_delta_without_a_pointer_follows_the_version_before_it() {
        // Deltas written before they became sparse have no pointer: the dense rule holds.
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let f = StateFiles::new(&loc, 0, 0);
        let (s, b) = batch(1);
        for v in [1u64, 3] {
            let bytes = sluice_common::checksum::seal(&sluice_common::ipc::encode(&s, std::slice::from_ref(&b)).unwrap());
            std::fs::create_dir_all(dir.path().join("state/0/0")).unwrap();
            std::fs::write(dir.path().join(format!("state/0/0/{v}.delta")), bytes).unwrap();
        }
        assert_eq!(f.read(3, FileKind::Delta).await.unwrap().previous, Some(2));
        assert_eq!(f.load(2).await.unwrap().len(), 1);
        let e = f.load(3).await.unwrap_err().message;
        assert!(e.contains("3.delta follows version 2, whose file is missing"), "{e}");
    }

    #[tokio::test]
    async fn a_cut_file_fails_its_load_naming_it() {
        let (dir, plain, _) = faulty(vec![]);
        let (s, b) = batch(3);
        let files = StateFiles::new(&plain, 0, 0);
        files.write_delta(1, 0, &s, &b).await.unwrap();
        let path = dir.path().join("state/0/0/1.delta");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = files.read(1, FileKind::Delta).await.unwrap_err();
        assert!(err.message.contains("1.delta is corrupt"), "{}", err.message);
    }
}
