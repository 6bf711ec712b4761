//! Local files that survive a power cut: every write is flushed to disk (`fsync` of the file and
//! of its directory) before it is reported done.
//!
//! `object_store`'s local store writes a temporary file and renames it into place, which makes a
//! write atomic for readers, but not durable: after a crash the rename can be on disk while the
//! data is not, leaving an empty or partial `offsets/N` or state file behind a checkpoint that
//! says the batch happened. A checkpoint is only worth its name if "written" means "on disk".

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
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
        let ranged = options.range.is_some() && !options.head;
        let got = self.inner.get_opts(location, options).await?;
        match got.payload {
            // A range is read into memory that is not zeroed first (`object_store`'s own read
            // fills its buffer with zeros, then reads over them): input files are read in ranges
            // of tens of megabytes, and profiles of JSON batches spent 3-5% of their CPU zeroing.
            GetResultPayload::File(file, path) if ranged => {
                let range = got.range.clone();
                // On the blocking pool when there is a runtime, as `object_store` reads.
                let read = async move {
                    match tokio::runtime::Handle::try_current() {
                        Ok(runtime) => runtime
                            .spawn_blocking(move || read_range(file, &path, range))
                            .await
                            .map_err(|e| object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) })?,
                        Err(_) => read_range(file, &path, range),
                    }
                };
                Ok(GetResult { payload: GetResultPayload::Stream(futures::stream::once(read).boxed()), ..got })
            }
            payload => Ok(GetResult { payload, ..got }),
        }
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

/// Bytes `range` of `file` (at `path`), read straight into their buffer; a file shorter than
/// the range is an error, as in `object_store`'s own read.
fn read_range(mut file: File, path: &std::path::Path, range: Range<u64>) -> object_store::Result<Bytes> {
    let expected = range.end - range.start;
    let failed = |e: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!("reading bytes {}..{} of {}: {e}", range.start, range.end, path.display()).into(),
    };
    let mut buf = Vec::with_capacity(usize::try_from(expected).map_err(|_| failed(std::io::ErrorKind::OutOfMemory.into()))?);
    file.seek(SeekFrom::Start(range.start)).map_err(failed)?;
    // `File` reads into uninitialised capacity; `read_to_end` never zeroes it first.
    let read = file.take(expected).read_to_end(&mut buf).map_err(failed)? as u64;
    if read != expected {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the file ended after {read} of the range's {expected} bytes"),
        )));
    }
    Ok(Bytes::from(buf))
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

    #[tokio::test]
    async fn ranges_read_exactly_their_bytes_and_a_short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = DurableLocalStore::new();
        let p = Path::from_absolute_path(dir.path().join("in/part-0.json")).unwrap();
        let text: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        store.put(&p, PutPayload::from(text.clone())).await.unwrap();
        for (from, to) in [(0, 1), (0, 100_000), (17, 65_553), (99_999, 100_000)] {
            let got = store.get_range(&p, from..to).await.unwrap();
            assert_eq!(got.as_ref(), &text[from as usize..to as usize], "bytes {from}..{to}");
        }
        // As object_store does: a range past the end is cut at the end, one starting there is
        // an error.
        assert_eq!(store.get_range(&p, 99_000..100_001).await.unwrap().as_ref(), &text[99_000..]);
        assert!(store.get_range(&p, 100_000..100_001).await.is_err());
        // A file cut short between the size check and the read.
        let file = File::open(dir.path().join("in/part-0.json")).unwrap();
        let err = read_range(file, &dir.path().join("x"), 99_000..100_001).unwrap_err().to_string();
        assert!(err.contains("the file ended after 1000 of the range's 1001 bytes"), "{err}");
    }
}
