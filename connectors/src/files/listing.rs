//! Finding input files: a recursive listing that skips hidden and temporary files as Spark does,
//! or — when the directory is another streaming query's file-sink output — exactly the files that
//! query committed in `_spark_metadata` (docs/semantics.md §9 step 1), so half-written part files are never read.

use futures::TryStreamExt;
use object_store::path::Path;

use sluice_common::error::{Result, ResultExt};
use sluice_common::storage::Location;

use super::sink_log::FileSinkLog;

/// A listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Absolute URL of the file (for another query's output, the path its `_spark_metadata` recorded).
    pub url: String,
    /// Size in bytes; counted against `maxBytesPerTrigger` and used to cut the batch into tasks.
    pub size: u64,
    /// Modification time in ms.
    pub modified_ms: i64,
}

/// Spark's `shouldFilterOutPathName` for one path segment.
fn is_hidden(segment: &str) -> bool {
    (segment.starts_with('_') && !segment.contains('=')) || segment.starts_with('.') || segment.ends_with("._COPYING_")
}

/// True when `dir` holds a file-sink log, i.e. it is another query's output.
pub async fn is_sink_output(dir: &Location) -> Result<bool> {
    FileSinkLog::new(dir).has_entries().await
}

/// Lists the input files under `dir`, sorted by (modification time, path).
pub async fn list_input_files(dir: &Location) -> Result<Vec<ListedFile>> {
    let sink_log = FileSinkLog::new(dir);
    let mut files: Vec<ListedFile> = if sink_log.has_entries().await? {
        sink_log
            .all_files()
            .await?
            .into_iter()
            .map(|s| ListedFile { url: s.path, size: s.size, modified_ms: s.modification_time })
            .collect()
    } else {
        let prefix: Path = dir.path.clone();
        let metas: Vec<object_store::ObjectMeta> =
            dir.store.list(Some(&prefix)).try_collect().await.context_with(|| format!("listing {}", dir.url))?;
        metas
            .into_iter()
            .filter(|m| m.location.prefix_match(&prefix).is_some_and(|mut parts| parts.all(|p| !is_hidden(p.as_ref()))))
            .map(|m| ListedFile { url: dir.url_of(&m.location), size: m.size, modified_ms: m.last_modified.timestamp_millis() })
            .collect()
    };
    files.sort_by(|a, b| a.modified_ms.cmp(&b.modified_ms).then_with(|| a.url.cmp(&b.url)));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_follow_spark() {
        assert!(is_hidden("_SUCCESS"));
        assert!(is_hidden(".part-0.crc"));
        assert!(is_hidden("x.json._COPYING_"));
        assert!(!is_hidden("_a=1"));
        assert!(!is_hidden("part-0.json"));
    }

    #[tokio::test]
    async fn lists_recursively_without_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("k=1")).unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        std::fs::write(dir.path().join("k=1/b.json"), "{}").unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
        std::fs::write(dir.path().join(".a.json.crc"), "").unwrap();
        let loc = sluice_common::storage::resolve(dir.path().to_str().unwrap()).unwrap();
        let files = list_input_files(&loc).await.unwrap();
        let mut names: Vec<String> =
            files.iter().map(|f| f.url.rsplit_once(dir.path().to_str().unwrap()).unwrap().1.to_string()).collect();
        names.sort();
        assert_eq!(names, vec!["/a.json", "/k=1/b.json"]);
    }
}
