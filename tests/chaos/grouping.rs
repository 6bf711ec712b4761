//! Which input files each batch of a run read.
//!
//! The chaos job reads one file per batch (`maxFilesPerTrigger` 1) — but not always, in Spark
//! either: a driver that dies after recording the files it picked for its next batch
//! (`sources/0/N`, the file source's log) and before writing that batch's offsets leaves those
//! files seen; the next leader's batch takes them together with the next new file. Output
//! depends on how rows fall into batches (which rows are late, when windows close), so a
//! disturbed run is checked against the recomputation over the batches it really made. The
//! grouping comes from the run's own records — its offsets log and the drivers' progress
//! reports — and must tile the input: every file read once, in order.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde_json::Value;

/// The files each batch read, batch 0 first, up to the batch that read the last of `files`;
/// `None` while no batch has read it yet. A batch that read nothing has an empty range.
pub fn batches(dir: &Path, reports: &[Value], files: usize) -> Result<Option<Vec<Range<usize>>>, String> {
    let ends = end_offsets(dir, reports)?;
    let last_file = files as i64 - 1;
    let Some(last) = ends.iter().find(|(_, end)| **end == last_file).map(|(batch, _)| *batch) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let mut next = 0i64;
    for batch in 0..=last {
        let Some(&end) = ends.get(&batch) else {
            return Err(format!("batch {batch}'s offsets are neither in the offsets log nor in a progress report"));
        };
        if end + 1 < next {
            return Err(format!("batch {batch} ends at file {end}, before where batch {} ended", batch.saturating_sub(1)));
        }
        out.push(next as usize..(end + 1) as usize);
        next = end + 1;
    }
    Ok(Some(out))
}

/// The file source's end offset (`logOffset`: the last file read, one file per log entry) of
/// every batch some record names. Two records of one batch must agree: a batch's offsets are
/// fixed once written, however often it runs.
fn end_offsets(dir: &Path, reports: &[Value]) -> Result<BTreeMap<u64, i64>, String> {
    let mut ends: BTreeMap<u64, i64> = BTreeMap::new();
    let mut record = |batch: u64, end: i64, from: &str| -> Result<(), String> {
        match ends.insert(batch, end) {
            Some(other) if other != end => Err(format!("batch {batch} ends at file {other} and, in {from}, at {end}")),
            _ => Ok(()),
        }
    };
    let log_offset = |v: &Value| v.get("logOffset").and_then(Value::as_i64);
    for report in reports {
        let Some(batch) = report["batchId"].as_u64() else { continue };
        let source = &report["sources"][0];
        if let Some(end) = log_offset(&source["endOffset"]) {
            record(batch, end, "a progress report")?;
        }
        // A batch starts where the one before it ended.
        if let (Some(start), Some(previous)) = (log_offset(&source["startOffset"]), batch.checked_sub(1)) {
            record(previous, start, "a progress report")?;
        }
    }
    // `offsets/N`: `v1`, the batch metadata, then one line per source.
    for entry in std::fs::read_dir(dir.join("chk/offsets")).map_err(|e| format!("reading the offsets log: {e}"))? {
        let Ok(entry) = entry else { continue };
        let Some(batch) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else { continue };
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let source: Option<Value> = text.lines().nth(2).and_then(|l| serde_json::from_str(l).ok());
        if let Some(end) = source.as_ref().and_then(log_offset) {
            record(batch, end, &format!("offsets/{batch}"))?;
        }
    }
    Ok(ends)
}
