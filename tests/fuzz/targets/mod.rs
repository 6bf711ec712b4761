//! The fuzz targets, one module each, and what they share: a runtime for the async decoders and
//! an in-memory object store to put fuzzed files in.

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sluice_common::storage::Location;

use crate::Target;

mod commits_log;
mod compact_log;
mod csv;
mod datetime;
mod ddl;
mod ipc;
mod job_file;
mod json_lines;
mod offsets_log;
mod source_offsets;
mod state_file;
mod task_request;
mod task_response;

/// Every target, in report order.
pub fn all() -> Vec<Target> {
    vec![
        json_lines::TARGET,
        csv::TARGET,
        datetime::TARGET,
        job_file::TARGET,
        ddl::TARGET,
        offsets_log::TARGET,
        commits_log::TARGET,
        compact_log::TARGET,
        state_file::TARGET,
        source_offsets::TARGET,
        ipc::TARGET,
        task_request::TARGET,
        task_response::TARGET,
    ]
}

thread_local! {
    /// One single-threaded runtime per fuzz thread: decoding runs on the fuzz thread's stack.
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building a tokio runtime");
}

/// Runs an async decoder to completion on this thread.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(f))
}

/// A fresh in-memory location at `memory:///fuzz`, as the engine sees any checkpoint or output.
pub fn memory_location() -> Location {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    Location { url: url::Url::parse("memory:///fuzz").expect("a valid URL"), store, path: Path::from("fuzz") }
}

/// Writes `files` (relative names) under `dir` of `location`; names the store refuses are skipped,
/// as a real directory could not hold them either.
pub async fn put_files(location: &Location, dir: &str, files: &[(String, Vec<u8>)]) {
    for (name, content) in files {
        let full = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
        let Ok(name) = Path::parse(full) else { continue };
        let path = location.child(name.as_ref());
        let _ = location.store.put(&path, PutPayload::from(content.clone())).await;
    }
}

/// Reads back every file under `dir`, with names relative to it (to make seeds from what the
/// engine wrote).
pub async fn get_files(location: &Location, dir: &str) -> Vec<(String, Vec<u8>)> {
    use futures::TryStreamExt;
    let prefix = location.child(dir);
    let metas: Vec<object_store::ObjectMeta> = location.store.list(Some(&prefix)).try_collect().await.expect("listing");
    let mut out = Vec::new();
    for m in metas {
        let bytes = location.store.get(&m.location).await.expect("reading").bytes().await.expect("reading");
        let name =
            m.location.prefix_match(&prefix).map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"));
        out.push((name.unwrap_or_default(), bytes.to_vec()));
    }
    out.sort();
    out
}

/// The input as text, the way a reader that replaces bad UTF-8 would see it.
pub fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}
