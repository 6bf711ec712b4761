//! Driver side of the `files` source: Spark's `FileStreamSource` (docs/semantics.md §9).

use async_trait::async_trait;
use object_store::path::Path;
use object_store::ObjectStoreExt;

use sluice_common::error::{Result, SluiceError};
use sluice_common::storage::{self, Location};

use super::listing::{is_sink_output, list_input_files, ListedFile};
use super::options::{CleanSource, FileSourceOptions};
use super::source_log::{FileEntry, FileSourceLog, SeenFiles};
use super::splits::{plan_file_partitions, FileSplit, InputFile, SplitSizing};
use crate::source::{AvailableNowSupport, PlannedSplit, ReadLimit, Source, SourceCheckpoint};

/// `{"logOffset":N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSourceOffset {
    /// Id of the newest file-source log batch this offset covers; the log, not the offset, lists the files.
    pub log_offset: u64,
}

impl FileSourceOffset {
    /// Parses Spark's JSON form, or the legacy bare number.
    pub fn parse(text: &str) -> Result<Self> {
        if let Ok(n) = text.trim().parse::<u64>() {
            return Ok(Self { log_offset: n });
        }
        serde_json::from_str(text).map_err(|_| {
            SluiceError::user(format!(
                "file source: offset '{text}' in the checkpoint is not a file source offset; the checkpoint was written by a different source"
            ))
        })
    }
}

/// Driver side of the `files` source.
pub struct FileSource {
    options: FileSourceOptions,
    input: Location,
    sizing: SplitSizing,
    log: Option<FileSourceLog>,
    seen: SeenFiles,
    /// Newest log id written so far.
    log_id: Option<u64>,
    /// Under AvailableNow: the files that existed at the start.
    available_now: Option<std::collections::HashSet<String>>,
    /// Log id up to which cleanSource already ran.
    cleaned_through: Option<u64>,
    sizes: std::collections::HashMap<String, u64>,
}

impl FileSource {
    /// A source over `options.path`; `sizing` controls how batches are cut into tasks.
    pub fn new(options: FileSourceOptions, sizing: SplitSizing) -> Result<Self> {
        let input = storage::resolve(&options.path)?;
        let seen = SeenFiles::new(options.effective_max_file_age_ms(), options.file_name_only);
        Ok(Self {
            options,
            input,
            sizing,
            log: None,
            seen,
            log_id: None,
            available_now: None,
            cleaned_through: None,
            sizes: Default::default(),
        })
    }

    fn log(&self) -> Result<&FileSourceLog> {
        self.log.as_ref().ok_or_else(|| SluiceError::internal("file source used before open"))
    }

    /// Picks the files of the next batch from a listing (pure: the selection rule of docs/semantics.md §9).
    fn select(&self, listed: Vec<ListedFile>, limit: ReadLimit) -> Vec<ListedFile> {
        let mut new_files: Vec<ListedFile> = listed
            .into_iter()
            .filter(|f| self.seen.is_new(&f.url, f.modified_ms))
            .filter(|f| self.available_now.as_ref().is_none_or(|snap| snap.contains(&f.url)))
            .collect();
        if self.options.latest_first {
            new_files.reverse();
        }
        if limit == ReadLimit::AllAvailable {
            return new_files;
        }
        if let Some(max) = self.options.max_files_per_trigger {
            new_files.truncate(max);
        } else if let Some(max_bytes) = self.options.max_bytes_per_trigger {
            // Always admit at least one file, then stop before exceeding the byte budget.
            let mut total = 0u64;
            let mut keep = 0;
            for f in &new_files {
                if keep > 0 && total + f.size > max_bytes {
                    break;
                }
                total += f.size;
                keep += 1;
            }
            new_files.truncate(keep);
        }
        new_files
    }

    async fn clean(&self, entry: &FileEntry) -> Result<()> {
        let url = url::Url::parse(&entry.path).map_err(|e| SluiceError::internal(format!("bad file url {}: {e}", entry.path)))?;
        let loc = storage::resolve_url(&url)?;
        match &self.options.clean_source {
            CleanSource::Off => Ok(()),
            CleanSource::Delete => Ok(loc.store.delete(&loc.path).await?),
            CleanSource::Archive(dir) => {
                let archive = storage::resolve(dir)?;
                let target: Path = archive.child(loc.path.as_ref());
                Ok(loc.store.rename(&loc.path, &target).await?)
            }
        }
    }
}

#[async_trait]
impl Source for FileSource {
    fn description(&self) -> String {
        format!("FileStreamSource[{}]", self.options.path)
    }

    fn identity(&self) -> String {
        format!("files {} {}", self.options.format.name(), self.options.path)
    }

    async fn open(&mut self, checkpoint: &SourceCheckpoint, committed: Option<&str>) -> Result<()> {
        if self.options.clean_source != CleanSource::Off && is_sink_output(&self.input).await? {
            return Err(SluiceError::user(format!(
                "Cleaning up source files is not supported when reading from the output directory of FileStreamSink ({})",
                self.options.path
            )));
        }
        let log = FileSourceLog::new(&checkpoint.dir);
        for entry in log.all_entries().await? {
            self.seen.add(&entry.path, entry.timestamp);
        }
        self.seen.purge();
        self.log_id = log.latest_id().await?;
        self.cleaned_through = committed.map(FileSourceOffset::parse).transpose()?.map(|o| o.log_offset);
        self.log = Some(log);
        Ok(())
    }

    async fn latest_offset(&mut self, _start: Option<&str>, limit: ReadLimit) -> Result<Option<String>> {
        let listed = list_input_files(&self.input).await?;
        for f in &listed {
            self.sizes.insert(f.url.clone(), f.size);
        }
        let chosen = self.select(listed, limit);
        if !chosen.is_empty() {
            let id = self.log_id.map_or(0, |i| i + 1);
            let entries: Vec<FileEntry> =
                chosen.iter().map(|f| FileEntry { path: f.url.clone(), timestamp: f.modified_ms, batch_id: id }).collect();
            self.log()?.add(id, &entries).await?;
            for f in &chosen {
                self.seen.add(&f.url, f.modified_ms);
            }
            self.seen.purge();
            self.log_id = Some(id);
        }
        Ok(self.log_id.map(|id| serde_json::to_string(&FileSourceOffset { log_offset: id })).transpose()?)
    }

    async fn plan_splits(&mut self, start: Option<&str>, end: &str, parallelism: usize) -> Result<Vec<PlannedSplit>> {
        let start = start.map(FileSourceOffset::parse).transpose()?.map(|o| o.log_offset);
        let end = FileSourceOffset::parse(end)?.log_offset;
        let entries = self.log()?.entries_between(start, end).await?;
        let mut files = Vec::with_capacity(entries.len());
        for e in entries {
            let size = match self.sizes.get(&e.path) {
                Some(s) => *s,
                None => {
                    let url = url::Url::parse(&e.path)
                        .map_err(|err| SluiceError::internal(format!("bad file url {}: {err}", e.path)))?;
                    let loc = storage::resolve_url(&url)?;
                    match loc.store.head(&loc.path).await {
                        Ok(meta) => meta.size,
                        Err(object_store::Error::NotFound { .. }) => {
                            return Err(SluiceError::user(format!(
                                "input file {} recorded in the checkpoint no longer exists; it was deleted or moved before the batch that reads it committed",
                                e.path
                            )));
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
            };
            files.push(InputFile { url: e.path, size, splittable: true });
        }
        let sizing = SplitSizing { parallelism, ..self.sizing };
        plan_file_partitions(&files, sizing).into_iter().map(|files| PlannedSplit::read(&FileSplit { files })).collect()
    }

    async fn commit(&mut self, end: &str) -> Result<()> {
        let end = FileSourceOffset::parse(end)?.log_offset;
        if self.options.clean_source == CleanSource::Off || self.cleaned_through.is_some_and(|c| c >= end) {
            return Ok(());
        }
        let entries = self.log()?.entries_between(self.cleaned_through, end).await?;
        for entry in &entries {
            // Best effort, as in Spark: a failed clean-up never fails the query.
            if let Err(e) = self.clean(entry).await {
                tracing::warn!(file = %entry.path, error = %e, "cleanSource could not process a source file");
            }
        }
        self.cleaned_through = Some(end);
        Ok(())
    }

    async fn prepare_for_available_now(&mut self) -> Result<AvailableNowSupport> {
        let listed = list_input_files(&self.input).await?;
        self.available_now = Some(listed.into_iter().map(|f| f.url).collect());
        Ok(AvailableNowSupport::Supported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::options::Options;

    fn listed(name: &str, ts: i64, size: u64) -> ListedFile {
        ListedFile { url: name.into(), size, modified_ms: ts }
    }

    fn source(pairs: &[(&str, &str)]) -> FileSource {
        let mut o = Options::from_pairs([("path", "/tmp/x"), ("format", "text")]);
        for (k, v) in pairs {
            o.insert(*k, *v);
        }
        FileSource::new(FileSourceOptions::parse(&o).unwrap(), SplitSizing::default()).unwrap()
    }

    #[test]
    fn selection_honours_limits_and_order() {
        let files = vec![listed("a", 1, 10), listed("b", 2, 10), listed("c", 3, 10)];
        let s = source(&[("maxFilesPerTrigger", "2")]);
        assert_eq!(s.select(files.clone(), ReadLimit::Default).iter().map(|f| f.url.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.select(files.clone(), ReadLimit::AllAvailable).len(), 3);
        let s = source(&[("maxFilesPerTrigger", "1"), ("latestFirst", "true")]);
        assert_eq!(s.select(files.clone(), ReadLimit::Default)[0].url, "c");
        let s = source(&[("maxBytesPerTrigger", "15")]);
        assert_eq!(s.select(files.clone(), ReadLimit::Default).len(), 1);
        let s = source(&[("maxBytesPerTrigger", "5")]);
        assert_eq!(s.select(files, ReadLimit::Default).len(), 1, "always at least one file");
    }

    #[test]
    fn offsets_parse_spark_and_legacy_forms() {
        assert_eq!(FileSourceOffset::parse("{\"logOffset\":4}").unwrap().log_offset, 4);
        assert_eq!(FileSourceOffset::parse("4").unwrap().log_offset, 4);
        assert!(FileSourceOffset::parse("{\"offset\":4,\"timestamp\":0}").is_err());
    }
}
