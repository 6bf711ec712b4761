//! The file sink's `_spark_metadata` log and the file source's log: `CompactibleFileStreamLog`
//! files (`v1` and one JSON entry per line, every tenth batch a `.compact` file with everything
//! so far), read by readers of the output, by `sluice cat`, and by the next commit's compaction.
//!
//! Input: a [`crate::corpus::file_set`] of log files (`0`, `9.compact`, …).

use sluice_connectors::files::sink_log::{FileSinkLog, SinkFileStatus};
use sluice_connectors::files::source_log::{FileEntry, FileSourceLog};

use crate::corpus::{file_set, parse_file_set};
use crate::Target;

pub const TARGET: Target = Target {
    name: "compact_log",
    seeds,
    store_seeds: true,
    dictionary: &[
        "v1",
        "v2",
        ".compact",
        "@@ 9.compact",
        "@@ 19",
        "\"path\":",
        "\"size\":",
        "\"isDir\":",
        "\"modificationTime\":",
        "\"action\":\"delete\"",
        "\"action\":\"add\"",
        "\"blockReplication\":",
        "\"batchId\":",
        "\"timestamp\":",
        "\n",
    ],
    run,
};

fn run(input: &[u8]) {
    let files = parse_file_set(input);
    super::block_on(async {
        let location = super::memory_location();
        super::put_files(&location, "_spark_metadata", &files).await;
        super::put_files(&location, "sources/0", &files).await;
        let sink = FileSinkLog::new(&location);
        if let Ok(Some(latest)) = sink.latest_batch_id().await {
            let _ = sink.all_files().await;
            let _ = sink.committed_paths(latest).await;
            // The next commit: a compaction batch reads every entry so far.
            if let Some(next) = latest.checked_add(1) {
                let _ = sink.commit(next, &[SinkFileStatus::added("memory:///fuzz/part-1.json".into(), 1, 2)]).await;
            }
        }
        let source = FileSourceLog::new(&location.join("sources/0"));
        if let Ok(Some(latest)) = source.latest_id().await {
            let _ = source.all_entries().await;
            let _ = source.entries_between(latest.checked_sub(3), latest).await;
        }
    });
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    super::block_on(async {
        let location = super::memory_location();
        let sink = FileSinkLog::new(&location);
        for id in 0..12u64 {
            let files: Vec<SinkFileStatus> = (0..(id % 3))
                .map(|p| {
                    SinkFileStatus::added(format!("memory:///fuzz/part-{p:05}-{id}.json"), 100 + p, 1_706_695_200_000 + id as i64)
                })
                .collect();
            sink.commit(id, &files).await.expect("committing a sink batch");
        }
        let sink_files = super::get_files(&location, "_spark_metadata").await;
        let source = FileSourceLog::new(&location.join("sources/0"));
        for id in 0..11u64 {
            let entry = FileEntry { path: format!("memory:///fuzz/in/f{id}.json"), timestamp: 1_706_695_200_000, batch_id: id };
            source.add(id, &[entry]).await.expect("adding a source log entry");
        }
        let source_files = super::get_files(&location, "sources/0").await;
        let mut out = vec![
            ("sink-log.fileset".to_string(), file_set(&sink_files)),
            ("source-log.fileset".to_string(), file_set(&source_files)),
        ];
        let compact: Vec<(String, Vec<u8>)> = sink_files.iter().filter(|(n, _)| n.ends_with(".compact")).cloned().collect();
        out.push(("sink-compact-only.fileset".into(), file_set(&compact)));
        let deltas: Vec<(String, Vec<u8>)> =
            sink_files.iter().filter(|(n, _)| !n.contains(".compact")).take(3).cloned().collect();
        out.push(("sink-deltas.fileset".into(), file_set(&deltas)));
        out
    })
}
