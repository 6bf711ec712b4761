//! How a batch's files become tasks: Spark's `FilePartition.getFilePartitions`, as a pure function.
//!
//! Large files are cut into `maxSplitBytes` pieces so one big file is read by several tasks, and
//! small files are packed together (each costing `openCostInBytes`) so a thousand tiny files do
//! not become a thousand tasks. `maxSplitBytes` shrinks when there are few bytes per core, so
//! every core gets work.

use sluice_common::conf::{QueryConf, DEFAULT_MAX_PARTITION_BYTES, DEFAULT_OPEN_COST_BYTES};

/// A byte range of one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRange {
    /// Absolute URL of the file.
    pub url: String,
    /// First byte of the range.
    pub start: u64,
    /// Length of the range in bytes.
    pub length: u64,
    /// Size of the whole file.
    pub file_size: u64,
}

/// What one task of the file source reads: byte ranges of one or more files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileSplit {
    /// The ranges, read in order.
    pub files: Vec<FileRange>,
}

/// Sizing knobs for [`plan_file_partitions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSizing {
    /// Most bytes one task reads (`spark.sql.files.maxPartitionBytes`); larger files are cut.
    pub max_partition_bytes: u64,
    /// Estimated cost of opening a file, in bytes (`spark.sql.files.openCostInBytes`), added per piece.
    pub open_cost_bytes: u64,
    /// Tasks the cluster runs at once (Spark's default parallelism).
    pub parallelism: usize,
}

impl SplitSizing {
    /// The sizing a query's settings ask for (`spark.sql.files.*`), before the cluster's
    /// parallelism is known.
    pub fn of(conf: &QueryConf) -> Self {
        Self { max_partition_bytes: conf.max_partition_bytes, open_cost_bytes: conf.open_cost_bytes, parallelism: 1 }
    }
}

impl Default for SplitSizing {
    fn default() -> Self {
        Self { max_partition_bytes: DEFAULT_MAX_PARTITION_BYTES, open_cost_bytes: DEFAULT_OPEN_COST_BYTES, parallelism: 1 }
    }
}

/// A file to read whole or in pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Absolute URL of the file.
    pub url: String,
    /// Size of the file in bytes.
    pub size: u64,
    /// Whether the file may be cut into byte ranges.
    pub splittable: bool,
}

/// Groups the files into partitions (one task each) of byte ranges.
pub fn plan_file_partitions(files: &[InputFile], sizing: SplitSizing) -> Vec<Vec<FileRange>> {
    if files.is_empty() {
        return Vec::new();
    }
    let open_cost = sizing.open_cost_bytes;
    let total: u64 = files.iter().map(|f| f.size + open_cost).sum();
    let bytes_per_core = total / sizing.parallelism.max(1) as u64;
    let max_split = sizing.max_partition_bytes.min(open_cost.max(bytes_per_core)).max(1);

    let mut pieces: Vec<FileRange> = Vec::new();
    for f in files {
        if f.splittable && f.size > 0 {
            let mut offset = 0;
            while offset < f.size {
                let length = max_split.min(f.size - offset);
                pieces.push(FileRange { url: f.url.clone(), start: offset, length, file_size: f.size });
                offset += length;
            }
        } else {
            pieces.push(FileRange { url: f.url.clone(), start: 0, length: f.size, file_size: f.size });
        }
    }
    // Largest first, then next-fit packing, as Spark does; the sort is stable so equal pieces
    // keep file order and replays plan identical tasks.
    pieces.sort_by_key(|p| std::cmp::Reverse(p.length));
    let mut partitions = Vec::new();
    let mut current: Vec<FileRange> = Vec::new();
    let mut current_size = 0u64;
    for piece in pieces {
        if !current.is_empty() && current_size + piece.length > max_split {
            partitions.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current_size += piece.length + open_cost;
        current.push(piece);
    }
    if !current.is_empty() {
        partitions.push(current);
    }
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> InputFile {
        InputFile { url: name.into(), size, splittable: true }
    }

    #[test]
    fn a_large_file_is_cut_into_max_split_pieces() {
        let sizing = SplitSizing { max_partition_bytes: 100, open_cost_bytes: 10, parallelism: 1 };
        let parts = plan_file_partitions(&[file("a", 250)], sizing);
        let lens: Vec<Vec<u64>> = parts.iter().map(|p| p.iter().map(|r| r.length).collect()).collect();
        assert_eq!(lens, vec![vec![100], vec![100], vec![50]]);
        let starts: Vec<u64> = parts.iter().map(|p| p[0].start).collect();
        assert_eq!(starts, vec![0, 100, 200]);
    }

    #[test]
    fn small_files_are_packed_with_open_cost() {
        let sizing = SplitSizing { max_partition_bytes: 100, open_cost_bytes: 10, parallelism: 1 };
        let files: Vec<InputFile> = (0..6).map(|i| file(&format!("f{i}"), 20)).collect();
        let parts = plan_file_partitions(&files, sizing);
        // A piece fits while size-so-far + its length <= 100; each adds 20 + 10 open cost:
        // after three pieces the size is 90 and a fourth (90 + 20) no longer fits.
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3]);
    }

    #[test]
    fn few_bytes_per_core_shrink_splits_down_to_open_cost() {
        let sizing = SplitSizing { max_partition_bytes: 1000, open_cost_bytes: 10, parallelism: 4 };
        // total = 410 → 102 per core → pieces of 102 bytes
        let parts = plan_file_partitions(&[file("a", 400)], sizing);
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().flatten().all(|r| r.length <= 102));
        assert_eq!(parts.iter().flatten().map(|r| r.length).sum::<u64>(), 400);
    }

    #[test]
    fn unsplittable_files_stay_whole() {
        let sizing = SplitSizing { max_partition_bytes: 10, open_cost_bytes: 1, parallelism: 1 };
        let parts = plan_file_partitions(&[InputFile { url: "p".into(), size: 100, splittable: false }], sizing);
        assert_eq!(parts, vec![vec![FileRange { url: "p".into(), start: 0, length: 100, file_size: 100 }]]);
    }
}
