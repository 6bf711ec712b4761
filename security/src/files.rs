//! Values built from files and rebuilt when the files change: certificates and tokens rotate
//! (cert-manager renews, a Kubernetes Secret is updated in place) without a restart.
//!
//! A change is noticed when the value is next used — at the next TLS handshake or token check —
//! at most once per [`RECHECK_INTERVAL`]. New contents that do not build (a half-written key, a
//! certificate without its key yet) are logged and the last good value stays in use, so a
//! rotation caught in the middle never takes a process down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_common::error::{Result, SluiceError};

/// How often files are read again to look for a change.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

type Builder<T> = Box<dyn Fn(&[Vec<u8>]) -> Result<T> + Send + Sync>;

/// A `T` built from the contents of some files, rebuilt when those contents change.
pub struct Reloading<T> {
    paths: Vec<PathBuf>,
    build: Builder<T>,
    current: Mutex<Loaded<T>>,
}

struct Loaded<T> {
    contents: Vec<Vec<u8>>,
    value: Arc<T>,
    checked: Instant,
}

impl<T> Reloading<T> {
    /// Reads `paths` and builds the first value; failing here is a configuration error.
    pub fn new(paths: Vec<PathBuf>, build: impl Fn(&[Vec<u8>]) -> Result<T> + Send + Sync + 'static) -> Result<Self> {
        let contents = read_all(&paths)?;
        let value = Arc::new(build(&contents)?);
        Ok(Self { paths, build: Box::new(build), current: Mutex::new(Loaded { contents, value, checked: Instant::now() }) })
    }

    /// The value for the files' current contents (the last good one if they do not build).
    pub fn get(&self) -> Arc<T> {
        // `Loaded` is replaced whole under the lock, so a poisoned one is still consistent.
        let mut loaded = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() < RECHECK_INTERVAL {
            return Arc::clone(&loaded.value);
        }
        loaded.checked = Instant::now();
        match read_all(&self.paths) {
            Ok(contents) if contents != loaded.contents => match (self.build)(&contents) {
                Ok(value) => {
                    tracing::info!(files = %self.describe(), "reloaded changed files");
                    loaded.value = Arc::new(value);
                    loaded.contents = contents;
                }
                Err(e) => {
                    tracing::warn!(files = %self.describe(), error = %e, "changed files are not usable; keeping the previous ones");
                }
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot re-read files; keeping the previous contents"),
        }
        Arc::clone(&loaded.value)
    }

    fn describe(&self) -> String {
        self.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
    paths.iter().map(|p| read(p)).collect()
}

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| SluiceError::user(format!("cannot read {}: {e}", path.display())).with_retryable(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_picked_up_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        std::fs::write(&path, "1").unwrap();
        let parse = |c: &[Vec<u8>]| {
            String::from_utf8_lossy(&c[0]).trim().parse::<u32>().map_err(|e| SluiceError::user(format!("not a number: {e}")))
        };
        let r = Reloading::new(vec![path.clone()], parse).unwrap();
        assert_eq!(*r.get(), 1);
        std::fs::write(&path, "2").unwrap();
        assert_eq!(*r.get(), 1, "not re-read before the recheck interval");
        std::thread::sleep(RECHECK_INTERVAL + Duration::from_millis(50));
        assert_eq!(*r.get(), 2, "re-read after it");
        std::fs::write(&path, "two").unwrap();
        std::thread::sleep(RECHECK_INTERVAL + Duration::from_millis(50));
        assert_eq!(*r.get(), 2, "contents that do not build keep the last good value");
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(RECHECK_INTERVAL + Duration::from_millis(50));
        assert_eq!(*r.get(), 2, "a vanished file keeps the last good value");
    }

    #[test]
    fn a_missing_file_at_start_is_a_user_error_naming_it() {
        let e = Reloading::new(vec![PathBuf::from("/nonexistent/ca.pem")], |_| Ok(())).err().unwrap();
        assert!(e.one_line().contains("cannot read /nonexistent/ca.pem"), "{}", e.one_line());
    }
}
