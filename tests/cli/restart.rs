//! Exactly-once across a SIGKILL between the offsets WAL and the commit log (docs/semantics.md §1 "Restart").

use std::path::Path;
use std::time::Duration;

use sluice_tests::binary::{run_sluice, sigkill, spawn_sluice, stderr, stdout, wait_until};

const FILES: usize = 5;

/// Five input files of three events each, with distinct, increasing modification times.
fn write_inputs(dir: &Path) {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for f in 0..FILES {
        let text: String = (0..3).map(|i| format!("{{\"id\":{},\"file\":{f}}}\n", f * 3 + i)).collect();
        let p = input.join(format!("part-{f}.json"));
        std::fs::write(&p, text).unwrap();
        let mtime = std::time::SystemTime::now() - Duration::from_secs(100 - f as u64 * 10);
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(mtime).unwrap();
    }
    std::fs::write(
        dir.join("job.sql"),
        "CREATE STREAM ev (id BIGINT, file BIGINT) WITH ('connector'='files','format'='json','path'='in','maxFilesPerTrigger'='1');
         CREATE SINK o WITH ('connector'='files','format'='json','path'='out');
         SET 'checkpointLocation' = 'chk';
         SET 'trigger' = 'availableNow';
         INSERT INTO o SELECT id, file, CAST(current_timestamp() AS BIGINT) AS batch_seconds,
                              unix_millis(current_timestamp()) AS batch_ms FROM ev;",
    )
    .unwrap();
}

/// Committed output rows (`sluice cat`), sorted.
fn committed_rows(dir: &Path) -> Vec<serde_json::Value> {
    let out = run_sluice(dir, &["cat", "out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut rows: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    rows.sort_by_key(|r| r["id"].as_i64());
    rows
}

fn batch_timestamp(dir: &Path, batch: u64) -> i64 {
    let text = std::fs::read_to_string(dir.join(format!("chk/offsets/{batch}"))).unwrap();
    let meta: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    meta["batchTimestampMs"].as_i64().unwrap()
}

#[test]
fn sigkill_between_wal_and_commit_loses_and_duplicates_nothing() {
    // A clean run for reference.
    let clean = tempfile::tempdir().unwrap();
    write_inputs(clean.path());
    let out = run_sluice(clean.path(), &["run", "job.sql"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The same run, killed after offsets/2 is written and before batch 2 runs.
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let mut child = spawn_sluice(dir.path(), &["run", "job.sql"], &[("SLUICE_FAULT_PAUSE", "after-offsets:2")]);
    let offsets2 = dir.path().join("chk/offsets/2");
    assert!(wait_until(Duration::from_secs(60), || offsets2.exists()), "batch 2 never reached the WAL");
    sigkill(&mut child);
    assert!(!dir.path().join("chk/commits/2").exists(), "batch 2 must not be committed");
    assert!(!dir.path().join("out/_spark_metadata/2").exists());
    let recorded = std::fs::read(&offsets2).unwrap();
    let recorded_ts = batch_timestamp(dir.path(), 2);

    // Restart: batch 2 re-runs with its recorded offsets and timestamp, then the rest.
    std::thread::sleep(Duration::from_millis(1100));
    let out = run_sluice(dir.path(), &["run", "job.sql"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&offsets2).unwrap(), recorded, "offsets/2 is authoritative and unchanged");

    let rows = committed_rows(dir.path());
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (0..(FILES * 3) as i64).collect::<Vec<_>>(), "every row exactly once");
    let clean_rows = committed_rows(clean.path());
    let strip = |rows: &[serde_json::Value]| -> Vec<(i64, i64)> {
        rows.iter().map(|r| (r["id"].as_i64().unwrap(), r["file"].as_i64().unwrap())).collect()
    };
    assert_eq!(strip(&rows), strip(&clean_rows), "same output as an undisturbed run");

    // Batch 2 read exactly the third file, with the recorded batch timestamp.
    for r in rows.iter().filter(|r| r["file"] == 2) {
        assert_eq!(r["batch_ms"].as_i64().unwrap(), recorded_ts, "current_timestamp() replays deterministically");
        assert_eq!(r["batch_seconds"].as_i64().unwrap(), recorded_ts.div_euclid(1000));
    }
    let manifest = std::fs::read_to_string(dir.path().join("out/_spark_metadata/2")).unwrap();
    assert_eq!(manifest.lines().count(), 2, "one part file for the one file of batch 2");
}

/// A run SIGKILLed once batch 2's offsets are written (before it runs), as in the test above.
fn killed_after_offsets_2(dir: &Path) {
    write_inputs(dir);
    let mut child = spawn_sluice(dir, &["run", "job.sql"], &[("SLUICE_FAULT_PAUSE", "after-offsets:2")]);
    let offsets2 = dir.join("chk/offsets/2");
    assert!(wait_until(Duration::from_secs(60), || offsets2.exists()), "batch 2 never reached the WAL");
    sigkill(&mut child);
}

/// Cuts `path` to its first half: the file a write leaves when the writer dies between a torn
/// write and its repair, or the machine before the bytes reached the disk.
fn tear(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn a_log_entry_cut_short_by_a_dying_writer_is_written_again_on_restart() {
    // The WAL entry of batch 2 torn: the batch was never planned durably.
    let wal = tempfile::tempdir().unwrap();
    killed_after_offsets_2(wal.path());
    tear(&wal.path().join("chk/offsets/2"));
    // The file source's entry for batch 2 torn, its WAL entry never written: the driver died
    // while admitting the batch's file.
    let source = tempfile::tempdir().unwrap();
    killed_after_offsets_2(source.path());
    std::fs::remove_file(source.path().join("chk/offsets/2")).unwrap();
    tear(&source.path().join("chk/sources/0/2"));

    for dir in [wal.path(), source.path()] {
        let out = run_sluice(dir, &["run", "job.sql"]);
        assert!(out.status.success(), "the restart must get past the torn entry: {}", stderr(&out));
        let ids: Vec<i64> = committed_rows(dir).iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, (0..(FILES * 3) as i64).collect::<Vec<_>>(), "every row exactly once");
        for entry in ["chk/offsets/2", "chk/sources/0/2"] {
            let text = std::fs::read_to_string(dir.join(entry)).unwrap();
            assert!(text.lines().skip(1).all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{entry}: {text}");
        }
    }
}
