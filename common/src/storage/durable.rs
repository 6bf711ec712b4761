//! Local files that survive a power cut: every write is flushed to disk (`fsync` of the file and
//! of its directory) before it is reported done.
//!
//! `object_store`'s local store writes a temporary file and renames it into place, which makes a
//! write atomic for readers, but not durable: after a crash the rename can be on disk while the
//! data is not, leaving an empty or partial `offsets/N` or state file behind a checkpoint that
//! says the batch happened. A checkpoint is only worth its name if "written" means "on disk".

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, PutResult, RenameOptions,
};

/// The local file system, with every write and rename flushed to disk.
#[derive(Debug)]
pub struct DurableLocalStore {
    inner: Arc<LocalFileSystem>,
}

impl DurableLocalStore {
    /// The whole local file system (paths are absolute). A delete that empties a directory
    /// removes it (and so on upwards): a directory is only a prefix of object names, which a
    /// store with no directories (S3) lists as nothing once its last object is gone — state
    /// bundles live in one directory per version, and deleting them must not leave thousands of
    /// empty ones that listings then report.
    pub fn new() -> Self {
        Self { inner: Arc::new(LocalFileSystem::new().with_automatic_cleanup(true)) }
    }

    /// Flushes `location`'s file and the directory entry that names it.
    async fn sync(&self, location: &Path) -> object_store::Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| object_store::Error::Generic { store: "local", source: Box::new(e) })?
        .map_err(|e| object_store::Error::Generic { store: "local", source: Box::new(e) })
    }
}

impl Default for DurableLocalStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DurableLocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Durable{}", self.inner)
    }
}

#[async_trait]
impl ObjectStore for DurableLocalStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        let done = self.inner.put_opts(location, payload, opts).await?;
        self.sync(location).await?;
        Ok(done)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.sync(to).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.sync(to).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;

    #[tokio::test]
    async fn writes_land_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = DurableLocalStore::new();
        let p = Path::from_absolute_path(dir.path().join("chk/offsets/0")).unwrap();
        store.put(&p, PutPayload::from_static(b"v1\n{}")).await.unwrap();
        assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"v1\n{}"));
    }
}
