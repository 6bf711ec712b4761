//! The offsets write-ahead log (`offsets/N`: version line, batch metadata JSON, one offset per
//! source) as the driver reads it on restart, file names included.
//!
//! Input: a [`crate::corpus::file_set`] of checkpoint files (`offsets/3`, `commits/2`, …).

use std::collections::BTreeMap;

use sluice_common::BatchId;
use sluice_driver::checkpoint::{Checkpoint, CommitMetadata, OffsetSeq, OffsetSeqMetadata, QueryShape};

use crate::corpus::{file_set, parse_file_set};
use crate::Target;

pub const TARGET: Target = Target {
    name: "offsets_log",
    seeds,
    store_seeds: true,
    dictionary: &[
        "v1",
        "v2",
        "v999999999999",
        "-",
        "\"batchWatermarkMs\":",
        "\"batchTimestampMs\":",
        "\"conf\":{",
        "\"logOffset\":",
        "{\"topic\":{\"0\":",
        "@@ offsets/",
        "@@ commits/",
        "18446744073709551615",
        "\n",
    ],
    run,
};

fn run(input: &[u8]) {
    let files = parse_file_set(input);
    for (name, content) in &files {
        if name.starts_with("offsets/") {
            let _ = OffsetSeq::parse(&String::from_utf8_lossy(content), name);
        }
    }
    restart_from(&files);
}

/// What a restarting driver does with the checkpoint: read the logs and decide where to resume.
pub fn restart_from(files: &[(String, Vec<u8>)]) {
    super::block_on(async {
        let location = super::memory_location();
        super::put_files(&location, "", files).await;
        let checkpoint = Checkpoint::at(location);
        let _ = checkpoint.start_decision().await;
        let _ = checkpoint.last_write_time().await;
    });
}

/// A checkpoint as the driver writes it: metadata, shape, three batches, two committed.
pub fn checkpoint_files() -> Vec<(String, Vec<u8>)> {
    super::block_on(async {
        let location = super::memory_location();
        let checkpoint = Checkpoint::at(location.clone());
        checkpoint.query_id().await.expect("writing metadata");
        let shape = QueryShape { sources: vec!["rate".into(), "files memory:///fuzz/in".into()], stateful_operators: vec![] };
        checkpoint.check_shape(&shape).await.expect("writing the shape");
        let conf: BTreeMap<String, String> = [("spark.sql.shuffle.partitions".to_string(), "5".to_string())].into();
        for id in 0..3u64 {
            let seq = OffsetSeq {
                offsets: vec![Some(id.to_string()), if id == 0 { None } else { Some(format!("{{\"logOffset\":{}}}", id - 1)) }],
                metadata: OffsetSeqMetadata {
                    batch_watermark_ms: id as i64 * 5_000,
                    batch_timestamp_ms: 1_706_695_200_000 + id as i64,
                    conf: conf.clone(),
                },
            };
            checkpoint.write_offsets(BatchId(id), &seq).await.expect("writing offsets");
            if id < 2 {
                let commit = CommitMetadata { next_batch_watermark_ms: (id as i64 + 1) * 5_000 };
                checkpoint.write_commit(BatchId(id), &commit).await.expect("writing a commit");
            }
        }
        super::get_files(&location, "").await
    })
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let all = checkpoint_files();
    let logs: Vec<(String, Vec<u8>)> =
        all.iter().filter(|(n, _)| n.starts_with("offsets/") || n.starts_with("commits/")).cloned().collect();
    let offsets_only: Vec<(String, Vec<u8>)> = all.iter().filter(|(n, _)| n.starts_with("offsets/")).cloned().collect();
    let mut out = vec![
        ("checkpoint.fileset".to_string(), file_set(&all)),
        ("logs.fileset".to_string(), file_set(&logs)),
        ("uncommitted.fileset".to_string(), file_set(&offsets_only)),
    ];
    for (name, content) in offsets_only {
        out.push((format!("{}.fileset", name.replace('/', "-")), file_set(&[(name, content)])));
    }
    out
}
