//! The commit log (`commits/N`: version line and `{"nextBatchWatermarkMs":…}`) as the driver
//! reads it on restart, next to the offsets it settles.
//!
//! Input: a [`crate::corpus::file_set`] of checkpoint files.

use sluice_driver::checkpoint::CommitMetadata;

use crate::corpus::{file_set, parse_file_set};
use crate::Target;

pub const TARGET: Target = Target {
    name: "commits_log",
    seeds,
    store_seeds: true,
    dictionary: &[
        "v1",
        "v2",
        "{}",
        "{\"nextBatchWatermarkMs\":",
        "}",
        "@@ commits/",
        "@@ offsets/",
        "18446744073709551615",
        "\n",
        " ",
    ],
    run,
};

fn run(input: &[u8]) {
    let files = parse_file_set(input);
    for (name, content) in &files {
        if name.starts_with("commits/") {
            let _ = CommitMetadata::parse(&String::from_utf8_lossy(content), name);
        }
    }
    super::offsets_log::restart_from(&files);
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let all = super::offsets_log::checkpoint_files();
    let logs: Vec<(String, Vec<u8>)> =
        all.iter().filter(|(n, _)| n.starts_with("offsets/") || n.starts_with("commits/")).cloned().collect();
    let mut out = vec![("logs.fileset".to_string(), file_set(&logs))];
    for (name, content) in all.iter().filter(|(n, _)| n.starts_with("commits/")) {
        out.push((format!("{}.fileset", name.replace('/', "-")), file_set(&[(name.clone(), content.clone())])));
    }
    out.push(("legacy-empty-object.fileset".into(), file_set(&[("commits/0".into(), b"v1\n{}".to_vec())])));
    out
}
