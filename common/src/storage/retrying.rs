//! Every object store call, retried on transient failures: the store wrapper every location
//! sluice resolves goes through.
//!
//! An S3 503, a dropped connection or a slow local disk must cost a pause, not a failed batch.
//! Retrying here, once, means no caller writes its own loop and none forgets to. Only calls that
//! are safe to repeat are retried, and only on errors the [`crate::retry`] policy calls transient:
//! reads, listings, deletes (already gone counts as deleted) and overwriting writes repeat
//! harmlessly. A create-only write (`PutMode::Create`) that failed ambiguously is retried too, and
//! its retry may then answer "already exists" for the caller's own landed write: the callers that
//! create (the metadata logs) read the entry back before they decide — see
//! [`crate::log::metadata_log::create_entry`].

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

use crate::error::is_transient_store_error;
use crate::retry::{retry_if, RetryPolicy};

/// A store whose calls are retried under one [`RetryPolicy`].
pub struct RetryingStore {
    inner: Arc<dyn ObjectStore>,
    policy: RetryPolicy,
}

impl RetryingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }
}

/// Runs one store call under `policy`, keeping the store's own error for the caller.
async fn retried<T, F, Fut>(policy: RetryPolicy, what: String, call: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = object_store::Result<T>>,
{
    retry_if(policy, &what, call, is_transient_store_error, || {}).await
}

impl fmt::Debug for RetryingStore {
    /// The inner store's `Display` (`AmazonS3(bucket)`), not its `Debug`, which shows the store's
    /// whole configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetryingStore({})", self.inner)
    }
}

impl fmt::Display for RetryingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait]
impl ObjectStore for RetryingStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        retried(self.policy, format!("writing {location}"), || self.inner.put_opts(location, payload.clone(), opts.clone())).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // The upload's parts carry their own state; the caller retries the whole upload.
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        retried(self.policy, format!("reading {location}"), || self.inner.get_opts(location, options.clone())).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        retried(self.policy, format!("reading {location}"), || self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let (inner, policy) = (Arc::clone(&self.inner), self.policy);
        locations
            .and_then(move |path| {
                let inner = Arc::clone(&inner);
                async move {
                    retried(policy, format!("deleting {path}"), || async {
                        match inner.delete(&path).await {
                            Err(object_store::Error::NotFound { .. }) => Ok(()),
                            other => other,
                        }
                    })
                    .await?;
                    Ok(path)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // A listing that fails halfway is started over, so it is collected before it is handed on.
        let (inner, policy, prefix) = (Arc::clone(&self.inner), self.policy, prefix.cloned());
        futures::stream::once(async move {
            let what = format!("listing {}", prefix.as_ref().map(|p| p.as_ref()).unwrap_or("/"));
            retried(policy, what, || inner.list(prefix.as_ref()).try_collect::<Vec<ObjectMeta>>()).await
        })
        .map_ok(|metas| futures::stream::iter(metas.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let what = format!("listing {}", prefix.map(|p| p.as_ref()).unwrap_or("/"));
        retried(self.policy, what, || self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        retried(self.policy, format!("copying {from} to {to}"), || self.inner.copy_opts(from, to, options.clone())).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        // Not retried: after a lost response the source is gone and a retry would fail on it.
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::storage::faults::{FaultKind, FaultyStore};

    fn store(faults: Vec<Option<FaultKind>>) -> (Arc<dyn ObjectStore>, RetryingStore) {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let faulty: Arc<dyn ObjectStore> = Arc::new(FaultyStore::scripted(Arc::clone(&inner), faults));
        (inner, RetryingStore::new(faulty, RetryPolicy::QUICK))
    }

    #[tokio::test]
    async fn transient_failures_of_reads_writes_and_listings_are_ridden_out() {
        let (inner, s) = store(vec![Some(FaultKind::Error), Some(FaultKind::Error), None, Some(FaultKind::Error)]);
        let p = Path::from("d/a");
        s.put(&p, PutPayload::from_static(b"x")).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"x"));
        assert_eq!(inner.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"x"));
        let (_, s) = store(vec![]);
        s.put(&p, PutPayload::from_static(b"x")).await.unwrap();
        let listed: Vec<ObjectMeta> = s.list(Some(&Path::from("d"))).try_collect().await.unwrap();
        assert_eq!(listed.len(), 1);
    }

    #[tokio::test]
    async fn a_delete_whose_response_was_lost_succeeds_on_retry() {
        let (inner, s) = store(vec![Some(FaultKind::LostResponse)]);
        let p = Path::from("d/a");
        inner.put(&p, PutPayload::from_static(b"x")).await.unwrap();
        s.delete(&p).await.unwrap();
        assert!(matches!(inner.head(&p).await, Err(object_store::Error::NotFound { .. })));
    }

    #[tokio::test]
    async fn not_found_is_an_answer_not_a_failure() {
        let (_, s) = store(vec![]);
        assert!(matches!(s.get(&Path::from("nope")).await, Err(object_store::Error::NotFound { .. })));
    }
}
