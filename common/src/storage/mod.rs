//! From a location the user typed (`data/chk`, `file:///x`, `s3://bucket/p`, `memory://t/p`) to an
//! [`ObjectStore`] and a path inside it.
//!
//! Everything sluice persists or reads — checkpoints, input files, sink output — goes through
//! `object_store`, so a local directory and an S3 bucket behave the same. Locations are turned
//! into absolute URLs once, on the driver, because executors may run in another working directory
//! or on another machine. S3 credentials and endpoint come from the standard `AWS_*` environment
//! variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, …), as every AWS tool reads them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::memory::InMemory;
use object_store::path::{Path, PathPart};
use object_store::ObjectStore;
use url::Url;

use crate::error::{Result, SluiceError};

pub mod durable;
pub mod faults;
pub mod retrying;

/// A resolved location: the store that holds it and the path of the location inside the store.
#[derive(Debug, Clone)]
pub struct Location {
    /// The absolute URL the location was resolved from; stable across processes.
    pub url: Url,
    /// The store serving `url`.
    pub store: Arc<dyn ObjectStore>,
    /// `url`'s path inside `store` (no leading slash, as `object_store` paths are).
    pub path: Path,
}

impl Location {
    /// The location of `child` (a relative `a/b/c` path) under this one.
    ///
    /// Each name is used as written, so a `%` in it stays a `%` in the file or key name (Spark's
    /// escaped partition directories, `k=a%3Ab`, must land on disk exactly so); only names
    /// `object_store` cannot hold as they are (`.`, `..`) are encoded.
    pub fn child(&self, child: &str) -> Path {
        let mut p = self.path.clone();
        for part in child.split('/').filter(|s| !s.is_empty()) {
            p = match PathPart::parse(part) {
                Ok(raw) => p.join(raw),
                Err(_) => p.join(part),
            };
        }
        p
    }

    /// The location `child` (a relative path) below this one.
    pub fn join(&self, child: &str) -> Location {
        let path = self.child(child);
        let url = match url::Url::parse(&self.url_of(&path)) {
            Ok(u) => u,
            Err(_) => self.url.clone(),
        };
        Location { url, store: Arc::clone(&self.store), path }
    }

    /// The URL of an object path in this location's store, as Spark records paths in its logs
    /// (`file:///abs/path/part-0.json`).
    ///
    /// Names are percent-encoded into the URL (a `%` becomes `%25`), so that [`resolve_url`],
    /// which decodes the URL's path, finds the very same object again.
    pub fn url_of(&self, path: &Path) -> String {
        let mut u = self.url.clone();
        let encoded = match u.path_segments_mut() {
            Ok(mut segments) => {
                segments.clear().extend(path.parts().map(|p| p.as_ref().to_string()));
                true
            }
            Err(()) => false,
        };
        if !encoded {
            u.set_path(&format!("/{}", path.as_ref()));
        }
        u.to_string()
    }
}

/// Turns what the user wrote into an absolute URL: URLs are kept, plain paths are made absolute
/// against the current directory.
///
/// A URL with credentials in it (`s3://KEY:SECRET@bucket/…`) is refused: stores take their
/// credentials from the environment, and a location is recorded in checkpoints (file-source and
/// file-sink logs, the query shape), progress and messages, where a secret must never be.
pub fn absolute_url(location: &str) -> Result<Url> {
    let location = location.trim();
    if location.is_empty() {
        return Err(SluiceError::user("empty path"));
    }
    if let Ok(url) = Url::parse(location) {
        if url.scheme().len() > 1 {
            if !url.username().is_empty() || url.password().is_some() {
                return Err(SluiceError::user(format!(
                    "'{}': credentials in a location URL are not supported (locations are written to checkpoints, \
                     progress and logs); give S3 credentials in the AWS_* environment variables \
                     (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, …)",
                    display_url(&url)
                )));
            }
            return Ok(url);
        }
    }
    let path = std::path::Path::new(location);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| SluiceError::external(format!("cannot read the current directory: {e}")))?.join(path)
    };
    let normalized = normalize(&abs);
    Url::from_directory_path(&normalized)
        .or_else(|_| Url::from_file_path(&normalized))
        .map_err(|_| SluiceError::user(format!("invalid path '{location}'")))
        .map(|mut u| {
            // Directory URLs end with '/', which object_store paths do not want.
            let p = u.path().trim_end_matches('/').to_string();
            u.set_path(if p.is_empty() { "/" } else { &p });
            u
        })
}

/// `url` as it may be shown: without user-info (credentials).
pub fn display_url(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    crate::redact::redact_url_credentials(url.as_str()).into_owned()
}

fn normalize(p: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Resolves a location (path or URL) to its store and in-store path.
pub fn resolve(location: &str) -> Result<Location> {
    let url = absolute_url(location)?;
    resolve_url(&url)
}

/// Resolves an absolute URL to its store and in-store path.
pub fn resolve_url(url: &Url) -> Result<Location> {
    let store = store_for(url)?;
    let path =
        Path::from_url_path(url.path()).map_err(|e| SluiceError::user(format!("invalid path in '{}': {e}", display_url(url))))?;
    Ok(Location { url: url.clone(), store, path })
}

/// One store per scheme and authority for the whole process: connection pools are reused and
/// `memory://` stores survive a query restart inside one process, like a real bucket would.
fn store_for(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let key = format!("{}://{}", url.scheme(), url.authority());
    let stores = STORES.get_or_init(Default::default);
    let mut stores = stores.lock().map_err(|_| SluiceError::internal("object store registry poisoned"))?;
    if let Some(s) = stores.get(&key) {
        return Ok(Arc::clone(s));
    }
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "file" => Arc::new(durable::DurableLocalStore::new()),
        "memory" => Arc::new(InMemory::new()),
        "s3" | "s3a" => {
            let bucket = url.host_str().ok_or_else(|| SluiceError::user(format!("'{}' names no bucket", display_url(url))))?;
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"));
            if let Ok(endpoint) = endpoint {
                builder = builder
                    .with_endpoint(&endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
                builder = builder.with_region("us-east-1");
            }
            Arc::new(builder.build().map_err(|e| SluiceError::user(format!("cannot use '{}': {e}", display_url(url))))?)
        }
        other => {
            return Err(SluiceError::user(format!(
                "unsupported storage scheme '{other}' in '{}'; use a local path, file://, s3:// or memory://",
                display_url(url)
            )))
        }
    };
    // Tests turn on fault injection for every store of every process of a cluster; whatever the
    // store, every call is retried on transient failures.
    let store = match faults::FaultPlan::from_env()? {
        Some(plan) => Arc::new(faults::FaultyStore::new(store, plan, &key)) as Arc<dyn ObjectStore>,
        None => store,
    };
    let store: Arc<dyn ObjectStore> = Arc::new(retrying::RetryingStore::new(store, crate::retry::RetryPolicy::STORE));
    stores.insert(key, Arc::clone(&store));
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_with_percent_signs_are_kept_as_written_and_round_trip_through_urls() {
        let dir = tempfile::tempdir().unwrap();
        let loc = resolve(dir.path().to_str().unwrap()).unwrap();
        let path = loc.child("k=a%3Ab/part 0.json");
        let url = loc.url_of(&path);
        assert!(url.ends_with("/k=a%253Ab/part%200.json"), "{url}");
        let back = resolve_url(&Url::parse(&url).unwrap()).unwrap();
        assert_eq!(back.path, path);
        // On disk the name is exactly what was asked for.
        object_store::ObjectStoreExt::put(loc.store.as_ref(), &path, bytes::Bytes::from_static(b"{}").into()).await.unwrap();
        assert!(dir.path().join("k=a%3Ab").join("part 0.json").is_file());
    }

    #[test]
    fn relative_paths_become_absolute_file_urls() {
        let u = absolute_url("data/./chk/../chk2").unwrap();
        assert_eq!(u.scheme(), "file");
        assert!(u.path().ends_with("/data/chk2"), "{u}");
        assert_eq!(absolute_url("s3://b/x").unwrap().as_str(), "s3://b/x");
    }

    #[test]
    fn credentials_in_location_urls_are_refused_without_echoing_them() {
        let e = absolute_url("s3://AKIAEXAMPLE:wJalrXUtnFEMI@lake/in").unwrap_err();
        assert!(!e.message.contains("AKIAEXAMPLE") && !e.message.contains("wJalrXUtnFEMI"), "{}", e.message);
        assert!(e.message.starts_with("'s3://*********(redacted)@lake/in': credentials in a location URL"), "{}", e.message);
        assert!(absolute_url("https://user@host/x").is_err());
        let odd = Url::parse("s3://k:s@lake/in").unwrap();
        assert_eq!(display_url(&odd), "s3://*********(redacted)@lake/in");
        assert_eq!(display_url(&Url::parse("s3://lake/in").unwrap()), "s3://lake/in");
    }

    #[test]
    fn url_of_round_trips_object_paths() {
        let loc = resolve("/tmp/out").unwrap();
        let p = loc.child("a=1/part-0.json");
        assert_eq!(loc.url_of(&p), "file:///tmp/out/a=1/part-0.json");
    }
}
