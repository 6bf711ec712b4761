//! Delta bundles: the deltas an executor commits in one call, in one object, and the driver's
//! manifest of which bundles make up a version.
//!
//! With one file per changed partition, a batch that touches all of Spark's default 200
//! partitions wrote 200 objects per operator: 200 PUTs on S3, and on a local disk 200 file
//! creations that were the largest single cost of such a batch. An executor runs every
//! partition of a reduce stage it owns in one call, so it writes that call's deltas as one
//! object, `state/<op>/deltas/<version>/<id>.bundle`: the sealed delta files
//! ([`sluice_common::checksum`]) of its partitions back to back. Each stays individually sealed,
//! so a range read of one of them checks itself.
//!
//! Which bundles hold a version is decided by the driver, not by what is on storage: a failed
//! attempt, or a zombie executor cut off from the cluster, may leave a bundle of the same
//! version behind. Once every task of a batch has succeeded, the driver writes
//! `state/<op>/deltas/<version>/manifest` — the index: partition, store, bundle, offset,
//! length — before `commits/N`. Loads read only what a manifest names, so a stray bundle is
//! never read, and a damaged bundle that a manifest names fails the load. The first manifest of
//! a version wins, as the first delta file did: every attempt of a batch computes the same
//! version from the same input.
//!
//! A bundle is shared by many partitions, so no partition's own cleanup may delete it:
//! [`cleanup_bundles`], run by the driver, deletes a version's directory once every partition it
//! holds a delta of has a whole snapshot at or above that version and at or below the oldest
//! version the query retains.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use sluice_common::error::{Result, ResultExt, SluiceError};
use sluice_common::log::{create_entry, delete_entry, read_entry, AddOutcome};
use sluice_common::storage::Location;

use crate::files::StateFiles;

/// File name of a version's manifest, in its directory under `state/<op>/deltas/`.
const MANIFEST: &str = "manifest";

/// A partition's delta, encoded and sealed, waiting to go into its call's bundle.
#[derive(Debug, Clone)]
pub struct StagedDelta {
    /// The state partition.
    pub partition: u32,
    /// Its store (`""` for an operator's only store, the side for a join).
    pub store: String,
    /// The sealed delta file.
    pub bytes: Bytes,
}

/// Where one partition's delta of a version is: an entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaEntry {
    /// The state partition.
    pub partition: u32,
    /// Its store (`""` for an operator's only store).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub store: String,
    /// File name of the bundle, in the version's directory.
    pub bundle: String,
    /// Where the delta starts in the bundle.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

/// A bundle's deltas as a task reports them to the driver: what goes into the manifest of
/// `version` of `operator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaRef {
    /// The stateful operator.
    pub operator: usize,
    /// The version the delta leads to.
    pub version: u64,
    /// Where it is.
    pub entry: DeltaEntry,
}

/// The manifest of one version of one operator: every partition's delta of that version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaManifest {
    /// One entry per (partition, store) that changed.
    pub deltas: Vec<DeltaEntry>,
}

impl DeltaManifest {
    /// The entry of (`partition`, `store`), if it changed in this version.
    pub fn entry(&self, partition: u32, store: &str) -> Option<&DeltaEntry> {
        self.deltas.iter().find(|e| e.partition == partition && e.store == store)
    }
}

/// Manifests already read, shared by the state loads of one query run: an executor that takes
/// over many partitions would otherwise read each version's manifest once per partition.
///
/// A manifest a load reads is of a committed version, and the first whole manifest of a version
/// is never replaced, so a cached one stays right for the run. Retention may delete it; loads
/// then no longer list its version, and never look it up.
#[derive(Debug, Default)]
pub struct ManifestCache {
    manifests: std::sync::Mutex<std::collections::HashMap<(String, u64), Arc<DeltaManifest>>>,
}

/// Manifests a cache holds before it starts over: enough for every retained version of a few
/// operators, and a bound on memory.
const MANIFEST_CACHE_ENTRIES: usize = 4096;

impl ManifestCache {
    fn get(&self, dir: &str, version: u64) -> Option<Arc<DeltaManifest>> {
        self.manifests.lock().ok()?.get(&(dir.to_string(), version)).cloned()
    }

    fn put(&self, dir: &str, version: u64, manifest: Arc<DeltaManifest>) {
        if let Ok(mut m) = self.manifests.lock() {
            if m.len() >= MANIFEST_CACHE_ENTRIES {
                m.clear();
            }
            m.insert((dir.to_string(), version), manifest);
        }
    }
}

/// One call's bundle, laid out and ready to write ([`DeltaBundles::lay_out`]).
#[derive(Debug)]
pub struct BundleWrite {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// What the write is, for its error.
    what: String,
    /// Where each delta of the bundle is.
    pub entries: Vec<DeltaEntry>,
    chunks: Vec<Bytes>,
}

impl BundleWrite {
    /// The bundle's file name (`<id>.bundle`), as its entries name it.
    pub fn name(&self) -> &str {
        self.path.filename().unwrap_or_default()
    }

    /// Writes the bundle: a plain put, since the name is the call's own (a retried put rewrites
    /// the same bytes), and a put that finally fails fails the batch attempt, whose bundle then
    /// no manifest names.
    pub async fn put(self) -> Result<()> {
        let what = self.what;
        self.store.put(&self.path, PutPayload::from_iter(self.chunks)).await.map_err(|e| SluiceError::from(e).context(what))?;
        Ok(())
    }
}

/// The bundles and manifests of one stateful operator: `state/<op>/deltas/`.
#[derive(Debug, Clone)]
pub struct DeltaBundles {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    display: String,
    cache: Option<Arc<ManifestCache>>,
}

impl DeltaBundles {
    /// The bundles of `operator` under the checkpoint's `state/` directory.
    pub fn new(checkpoint: &Location, operator: usize) -> Self {
        let rel = format!("state/{operator}/deltas");
        Self {
            store: Arc::clone(&checkpoint.store),
            dir: checkpoint.child(&rel),
            display: format!("{}/{rel}", checkpoint.url),
            cache: None,
        }
    }

    /// Reads manifests through `cache` (see [`ManifestCache`]).
    pub fn with_cache(mut self, cache: Arc<ManifestCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    fn version_dir(&self, version: u64) -> Path {
        self.dir.clone().join(version.to_string())
    }

    /// Writes `deltas` (all of `version`: one batch's) as bundle `<id>.bundle` and returns their entries;
    /// nothing when there are none. `id` must be unique to the call that writes it.
    pub async fn write(&self, version: u64, id: &str, deltas: Vec<StagedDelta>) -> Result<Vec<DeltaEntry>> {
        let Some(bundle) = self.lay_out(version, id, deltas) else { return Ok(Vec::new()) };
        let entries = bundle.entries.clone();
        bundle.put().await?;
        Ok(entries)
    }

    /// Lays `deltas` (all of `version`: one batch's) out as bundle `<id>.bundle`, without writing
    /// it: where each delta will be is known before its bytes are on storage, so a call can report
    /// its entries while the bundle is still being written ([`BundleWrite::put`]). `None` when
    /// there are no deltas. `id` must be unique to the call that writes it.
    pub fn lay_out(&self, version: u64, id: &str, deltas: Vec<StagedDelta>) -> Option<BundleWrite> {
        if deltas.is_empty() {
            return None;
        }
        let bundle = format!("{id}.bundle");
        let mut entries = Vec::with_capacity(deltas.len());
        let mut offset = 0u64;
        let mut chunks = Vec::with_capacity(deltas.len());
        for d in deltas {
            let len = d.bytes.len() as u64;
            entries.push(DeltaEntry { partition: d.partition, store: d.store, bundle: bundle.clone(), offset, len });
            offset += len;
            chunks.push(d.bytes);
        }
        Some(BundleWrite {
            store: Arc::clone(&self.store),
            path: self.version_dir(version).join(bundle.as_str()),
            what: format!("writing state bundle {}/{version}/{bundle}", self.display),
            entries,
            chunks,
        })
    }

    /// Writes the manifest of `version`: the first one written wins (see the module docs).
    pub async fn write_manifest(&self, version: u64, manifest: &DeltaManifest) -> Result<AddOutcome> {
        let body = serde_json::to_vec(manifest)?;
        let bytes = sluice_common::checksum::seal(&body);
        let what = format!("writing state manifest {}/{version}/{MANIFEST}", self.display);
        create_entry(&self.store, &self.version_dir(version).join(MANIFEST), &bytes, &what, |b| {
            sluice_common::checksum::open(b, "state manifest").is_ok()
        })
        .await
    }

    /// The manifest of `version`, or `None` when the version has none (nothing of the
    /// operator changed, or the checkpoint predates bundles).
    pub async fn read_manifest(&self, version: u64) -> Result<Option<Arc<DeltaManifest>>> {
        if let Some(m) = self.cache.as_ref().and_then(|c| c.get(&self.display, version)) {
            return Ok(Some(m));
        }
        let what = format!("state manifest {}/{version}/{MANIFEST}", self.display);
        let Some(bytes) = read_entry(&self.store, &self.version_dir(version).join(MANIFEST), &format!("reading {what}")).await?
        else {
            return Ok(None);
        };
        let body = sluice_common::checksum::open(&bytes, &what)?;
        let manifest: Arc<DeltaManifest> =
            Arc::new(serde_json::from_slice(body).map_err(|e| SluiceError::user(format!("{what} is corrupt: {e}")))?);
        if let Some(c) = &self.cache {
            c.put(&self.display, version, Arc::clone(&manifest));
        }
        Ok(Some(manifest))
    }

    /// Versions that have a directory (a manifest, or a bundle of an attempt that failed).
    pub async fn versions(&self) -> Result<BTreeSet<u64>> {
        let listed =
            self.store.list_with_delimiter(Some(&self.dir)).await.context_with(|| format!("listing {}", self.display))?;
        Ok(listed.common_prefixes.iter().filter_map(|p| p.filename()?.parse().ok()).collect())
    }

    /// The sealed delta file an entry of `version` points to.
    pub async fn read_delta(&self, version: u64, entry: &DeltaEntry) -> Result<Bytes> {
        let path = self.version_dir(version).join(entry.bundle.as_str());
        self.store.get_range(&path, entry.offset..entry.offset + entry.len).await.map_err(|e| {
            SluiceError::from(e).context(format!(
                "reading the delta of partition {} from {}/{version}/{}",
                entry.partition, self.display, entry.bundle
            ))
        })
    }

    /// Deletes everything in the directory of `version`, the manifest first: a directory
    /// without a manifest holds nothing a load reads.
    async fn delete_version(&self, version: u64) -> Result<()> {
        let dir = self.version_dir(version);
        let what = format!("deleting {}/{version}", self.display);
        delete_entry(&self.store, &dir.clone().join(MANIFEST), &what).await?;
        let objects: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&dir)).try_collect().await.context_with(|| what.clone())?;
        for o in objects {
            delete_entry(&self.store, &o.location, &what).await?;
        }
        Ok(())
    }

    /// Where errors name this directory.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// Deletes the bundle directories of `operator` no load can need any more, and returns how
/// many (the driver's state retention; see the module docs).
///
/// Loads of versions from `earliest` on start at each partition's newest snapshot at or below
/// the version they load. So version `v` below `earliest` is needed only by a partition that
/// has a delta in it and no whole snapshot in `v..=earliest`. A directory without a manifest
/// below `earliest` is an attempt that failed: nothing reads it.
pub async fn cleanup_bundles(checkpoint: &Location, operator: usize, earliest: u64) -> Result<usize> {
    let bundles = DeltaBundles::new(checkpoint, operator);
    let mut snapshots = SnapshotsThrough { checkpoint, operator, earliest, known: BTreeMap::new() };
    let mut deleted = 0;
    'versions: for version in bundles.versions().await?.into_iter().filter(|v| *v < earliest) {
        if let Some(manifest) = bundles.read_manifest(version).await? {
            for e in &manifest.deltas {
                if snapshots.newest(e).await? < version {
                    continue 'versions; // a load still needs this partition's delta
                }
            }
        }
        bundles.delete_version(version).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Each partition's newest whole snapshot at or below `earliest` (0: none), looked up once per
/// retention run.
struct SnapshotsThrough<'a> {
    checkpoint: &'a Location,
    operator: usize,
    earliest: u64,
    known: BTreeMap<(u32, String), u64>,
}

impl SnapshotsThrough<'_> {
    async fn newest(&mut self, e: &DeltaEntry) -> Result<u64> {
        let key = (e.partition, e.store.clone());
        if let Some(v) = self.known.get(&key) {
            return Ok(*v);
        }
        let files = StateFiles::new(self.checkpoint, self.operator, e.partition).in_store(&e.store);
        let v = files.whole_snapshot_at_or_below(self.earliest).await?.unwrap_or(0);
        self.known.insert(key, v);
        Ok(v)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::files::tests::batch;
    use crate::files::{encode_delta, FileKind};
    use arrow::array::Int64Array;

    fn staged(partition: u32, version: u64, previous: u64) -> StagedDelta {
        let (s, b) = batch((partition as i64) * 1000 + version as i64);
        StagedDelta { partition, store: String::new(), bytes: encode_delta(previous, &s, &b).unwrap() }
    }

    fn dir() -> (tempfile::TempDir, Location) {
        let dir = tempfile::tempdir().unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        (dir, loc)
    }

    /// The value each file of a load holds, with its version: which deltas were read.
    async fn loaded(loc: &Location, partition: u32, version: u64) -> Vec<(u64, i64)> {
        let files = StateFiles::new(loc, 0, partition).load(version).await.unwrap();
        files
            .iter()
            .map(|f| {
                let x = f.batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
                (f.version, x)
            })
            .collect()
    }

    /// One call's bundle of `deltas` at `version`, named by the version's manifest: what an
    /// executor and then the driver write.
    pub(crate) async fn commit(loc: &Location, version: u64, id: &str, deltas: Vec<StagedDelta>) -> Vec<DeltaEntry> {
        let bundles = DeltaBundles::new(loc, 0);
        let entries = bundles.write(version, id, deltas).await.unwrap();
        bundles.write_manifest(version, &DeltaManifest { deltas: entries.clone() }).await.unwrap();
        entries
    }

    #[tokio::test]
    async fn a_bundle_holds_each_partitions_delta_at_its_own_range() {
        let (dir, loc) = dir();
        let entries = commit(&loc, 1, "a", vec![staged(0, 1, 0), staged(1, 1, 0), staged(7, 1, 0)]).await;
        assert_eq!(entries.iter().map(|e| e.partition).collect::<Vec<_>>(), [0, 1, 7]);
        assert_eq!(entries[1].offset, entries[0].len);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("state/0/deltas/1")).unwrap().collect();
        assert_eq!(files.len(), 2, "one bundle and its manifest for three partitions");
        for p in [0, 1, 7] {
            assert_eq!(loaded(&loc, p, 1).await, [(1, p as i64 * 1000 + 1)]);
        }
        let e = StateFiles::new(&loc, 0, 2).load(1).await.unwrap_err().message;
        assert!(e.contains("it has no state files"), "{e}");
    }

    #[tokio::test]
    async fn a_checkpoint_from_before_bundles_loads_on_with_bundles_after_it() {
        let (_dir, loc) = dir();
        let f = StateFiles::new(&loc, 0, 3);
        // Versions 1 and 2 in the old layout, a snapshot at 2, then bundles at 3 and 5.
        for (v, previous) in [(1, 0), (2, 1)] {
            let (s, b) = batch(3000 + v as i64);
            f.write_delta(v, previous, &s, &b).await.unwrap();
        }
        commit(&loc, 3, "x", vec![staged(3, 3, 2)]).await;
        commit(&loc, 5, "y", vec![staged(3, 5, 3), staged(4, 5, 0)]).await;
        assert_eq!(loaded(&loc, 3, 2).await, [(1, 3001), (2, 3002)]);
        assert_eq!(loaded(&loc, 3, 4).await, [(1, 3001), (2, 3002), (3, 3003)]);
        assert_eq!(loaded(&loc, 3, 6).await, [(1, 3001), (2, 3002), (3, 3003), (5, 3005)]);
        let (s, b) = batch(-4);
        f.write_snapshot(4, &s, &b).await.unwrap();
        assert_eq!(loaded(&loc, 3, 5).await, [(4, -4), (5, 3005)]);
        assert_eq!(f.plan_load(5).await.unwrap(), [(4, FileKind::Snapshot), (5, FileKind::Delta)]);
    }

    #[tokio::test]
    async fn only_the_bundles_a_manifest_names_are_read() {
        let (dir, loc) = dir();
        let bundles = DeltaBundles::new(&loc, 0);
        commit(&loc, 1, "first", vec![staged(0, 1, 0)]).await;
        // A failed attempt of batch 1 left another bundle, which no manifest names; a late
        // attempt's manifest does not replace the first.
        let mut late = staged(0, 1, 0);
        late.bytes = encode_delta(0, &batch(99).0, &batch(99).1).unwrap();
        let entries = bundles.write(1, "late", vec![late]).await.unwrap();
        let outcome = bundles.write_manifest(1, &DeltaManifest { deltas: entries }).await.unwrap();
        assert_eq!(outcome, AddOutcome::AlreadyExists);
        assert_eq!(loaded(&loc, 0, 1).await, [(1, 1)]);
        // A bundle of version 2 with no manifest at all: version 2 changed nothing.
        bundles.write(2, "orphan", vec![staged(0, 2, 1)]).await.unwrap();
        assert_eq!(loaded(&loc, 0, 2).await, [(1, 1)]);
        // A named bundle that is damaged fails the load, naming it.
        let path = dir.path().join("state/0/deltas/1/first.bundle");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let e = StateFiles::new(&loc, 0, 0).load(1).await.unwrap_err().message;
        assert!(e.contains("deltas/1/first.bundle") && e.contains("checksum"), "{e}");
    }

    #[tokio::test]
    async fn a_hole_in_a_chain_of_bundles_fails_the_load_naming_it() {
        let (dir, loc) = dir();
        commit(&loc, 1, "a", vec![staged(0, 1, 0)]).await;
        commit(&loc, 3, "b", vec![staged(0, 3, 1)]).await;
        commit(&loc, 4, "c", vec![staged(0, 4, 3)]).await;
        std::fs::remove_file(dir.path().join("state/0/deltas/3/manifest")).unwrap();
        let e = StateFiles::new(&loc, 0, 0).load(4).await.unwrap_err().message;
        assert!(e.contains("4.delta follows version 3, whose file is missing"), "{e}");
    }

    #[tokio::test]
    async fn retention_deletes_a_version_once_every_partition_in_it_is_under_a_snapshot() {
        let (dir, loc) = dir();
        // Partition 0 changes at 1, 2, 3 and 6; partition 1 only at 1 and 5.
        commit(&loc, 1, "a", vec![staged(0, 1, 0), staged(1, 1, 0)]).await;
        commit(&loc, 2, "a", vec![staged(0, 2, 1)]).await;
        commit(&loc, 3, "a", vec![staged(0, 3, 2)]).await;
        commit(&loc, 5, "a", vec![staged(1, 5, 1)]).await;
        commit(&loc, 6, "a", vec![staged(0, 6, 3)]).await;
        DeltaBundles::new(&loc, 0).write(4, "failed-attempt", vec![staged(0, 4, 3)]).await.unwrap();
        let (s, b) = batch(0);
        StateFiles::new(&loc, 0, 0).write_snapshot(3, &s, &b).await.unwrap();
        let versions = || async { DeltaBundles::new(&loc, 0).versions().await.unwrap().into_iter().collect::<Vec<_>>() };

        // Keeping versions from 5: partition 0 is under its snapshot at 3, but partition 1 still
        // needs its delta at 1 — so 1 stays; 2 and 3 hold only partition 0; 4 has no manifest.
        assert_eq!(cleanup_bundles(&loc, 0, 5).await.unwrap(), 3);
        assert_eq!(versions().await, [1, 5, 6]);
        for v in 1..=6 {
            StateFiles::new(&loc, 0, 1).load(v).await.unwrap();
        }
        StateFiles::new(&loc, 0, 0).load(6).await.unwrap();
        // Partition 1 snapshotted at 5: version 1 goes too.
        StateFiles::new(&loc, 0, 1).write_snapshot(5, &s, &b).await.unwrap();
        assert_eq!(cleanup_bundles(&loc, 0, 5).await.unwrap(), 1);
        assert_eq!(versions().await, [5, 6]);
        assert_eq!(loaded(&loc, 1, 6).await, [(5, 0)]);
        assert!(!dir.path().join("state/0/deltas/1").join(MANIFEST).exists());
    }

    #[tokio::test]
    async fn a_torn_manifest_is_replaced_by_the_next_write() {
        use sluice_common::storage::faults::{FaultKind, FaultyStore};
        let (_dir, loc) = dir();
        let faulty = Location {
            store: Arc::new(FaultyStore::scripted(Arc::clone(&loc.store), vec![Some(FaultKind::Torn)])),
            ..loc.clone()
        };
        let entries = DeltaBundles::new(&loc, 0).write(1, "a", vec![staged(0, 1, 0)]).await.unwrap();
        let outcome = DeltaBundles::new(&faulty, 0).write_manifest(1, &DeltaManifest { deltas: entries }).await.unwrap();
        assert_eq!(outcome, AddOutcome::Added);
        assert_eq!(loaded(&loc, 0, 1).await, [(1, 1)]);
    }
}
