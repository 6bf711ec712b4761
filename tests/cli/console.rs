//! The console sink's layout, `sluice cat`, and Ctrl-C.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use sluice_tests::binary::{run_sluice, spawn_sluice, stderr, stdout, wait_until};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root")
}

#[test]
fn quickstart_prints_sparks_console_layout() {
    let out = run_sluice(repo_root(), &["run", "examples/quickstart.sql"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    // The purchases of the three sample files, one file per batch; truncate=false left-aligns.
    let expected = "\
-------------------------------------------
Batch: 0
-------------------------------------------
+-------------------+-------+------+---------------+
|event_time         |user_id|amount|amount_with_tax|
+-------------------+-------+------+---------------+
|2024-05-01 10:03:21|u1     |140   |154.0          |
|2024-05-01 10:06:42|u1     |280   |308.0          |
|2024-05-01 10:07:49|u1     |80    |88.0           |
+-------------------+-------+------+---------------+

-------------------------------------------
Batch: 1
-------------------------------------------
+-------------------+-------+------+---------------+
|event_time         |user_id|amount|amount_with_tax|
+-------------------+-------+------+---------------+
|2024-05-01 10:10:00|u2     |410   |451.0          |
|2024-05-01 10:11:07|u1     |380   |418.0          |
|2024-05-01 10:13:21|u1     |90    |99.0           |
|2024-05-01 10:15:35|u1     |200   |220.0          |
+-------------------+-------+------+---------------+

-------------------------------------------
Batch: 2
-------------------------------------------
+-------------------+-------+------+---------------+
|event_time         |user_id|amount|amount_with_tax|
+-------------------+-------+------+---------------+
|2024-05-01 10:20:00|u1     |40    |44.0           |
|2024-05-01 10:26:42|u3     |320   |352.0          |
|2024-05-01 10:27:49|u3     |290   |319.0          |
+-------------------+-------+------+---------------+

";
    assert_eq!(text, expected);
}

#[test]
fn truncated_cells_are_right_aligned_and_extra_rows_are_announced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.sql"),
        "CREATE STREAM r WITH ('connector'='rate-micro-batch','rowsPerBatch'='3','numPartitions'='1');
         CREATE SINK c WITH ('connector'='console','numRows'='2');
         SET 'trigger' = 'availableNow';
         INSERT INTO c SELECT value, concat('a-very-long-label-', CAST(value AS STRING), '-end') AS label FROM r;",
    )
    .unwrap();
    let out = run_sluice(dir.path(), &["run", "job.sql"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "\
-------------------------------------------
Batch: 0
-------------------------------------------
+-----+--------------------+
|value|               label|
+-----+--------------------+
|    0|a-very-long-label...|
|    1|a-very-long-label...|
+-----+--------------------+
only showing top 2 rows

"
    );
}

#[test]
fn cat_prints_only_committed_rows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.sql"),
        "CREATE STREAM r WITH ('connector'='rate-micro-batch','rowsPerBatch'='4','numPartitions'='2');
         CREATE SINK o WITH ('connector'='files','format'='parquet','path'='out');
         SET 'checkpointLocation' = 'chk';
         SET 'trigger' = 'availableNow';
         INSERT INTO o SELECT value FROM r;",
    )
    .unwrap();
    let out = run_sluice(dir.path(), &["run", "job.sql"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    // A part file no batch committed must not be printed.
    std::fs::write(dir.path().join("out/part-00042-stray.c000.json"), "{\"value\":99}\n").unwrap();
    let cat = run_sluice(dir.path(), &["cat", "out"]);
    assert!(cat.status.success(), "stderr: {}", stderr(&cat));
    let mut lines: Vec<String> = stdout(&cat).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, vec!["{\"value\":0}", "{\"value\":1}", "{\"value\":2}", "{\"value\":3}"]);
    let bad = run_sluice(dir.path(), &["cat", "chk"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("is not a file-sink output directory"), "{}", stderr(&bad));
}

#[test]
fn ctrl_c_stops_after_the_current_batch() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.sql"),
        "CREATE STREAM r WITH ('connector'='rate-micro-batch','rowsPerBatch'='2');
         CREATE SINK o WITH ('connector'='files','format'='json','path'='out');
         SET 'checkpointLocation' = 'chk';
         SET 'trigger' = 'processingTime=200 milliseconds';
         INSERT INTO o SELECT value FROM r;",
    )
    .unwrap();
    let mut child = spawn_sluice(dir.path(), &["run", "job.sql"], &[]);
    assert!(wait_until(Duration::from_secs(60), || dir.path().join("chk/commits/2").exists()));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "exit {status:?}, stderr: {err}");
    assert!(err.contains("stopping after the current batch"), "{err}");
    // Every batch in the WAL was committed: the stop waited for the batch in flight.
    let ids = |d: &str| {
        let mut v: Vec<u64> =
            std::fs::read_dir(dir.path().join(d)).unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        v.sort();
        v
    };
    assert_eq!(ids("chk/offsets"), ids("chk/commits"));
}

/// The rows of each batch a console sink printed (cells trimmed, header dropped), sorted.
fn console_batches(text: &str) -> Vec<Vec<Vec<String>>> {
    let mut batches: Vec<Vec<Vec<String>>> = Vec::new();
    let mut header_seen = false;
    for line in text.lines() {
        if line.starts_with("Batch: ") {
            batches.push(Vec::new());
            header_seen = false;
        } else if let (Some(rows), Some(inner)) = (batches.last_mut(), line.strip_prefix('|')) {
            if header_seen {
                rows.push(inner.trim_end_matches('|').split('|').map(|c| c.trim().to_string()).collect());
            }
            header_seen = true;
        }
    }
    for rows in &mut batches {
        rows.sort();
    }
    batches
}

#[test]
fn enrich_join_example_keeps_every_event_and_adds_its_user() {
    let out = run_sluice(repo_root(), &["run", "examples/enrich_join.sql"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    // The left outer join worked out from the example's files: one events file per batch, each
    // event with its user's country and tier, or NULLs for a user the table lacks.
    let data = repo_root().join("examples/data");
    let read_json = |path: std::path::PathBuf| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
    };
    let users = read_json(data.join("users/users.json"));
    let mut files: Vec<_> = std::fs::read_dir(data.join("events")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let expected: Vec<Vec<Vec<String>>> = files
        .into_iter()
        .map(|file| {
            let mut rows: Vec<Vec<String>> = read_json(file)
                .iter()
                .map(|e| {
                    let user = users.iter().find(|u| u["user_id"] == e["user_id"]);
                    let of_user = |field: &str| user.map_or("NULL".to_string(), |u| u[field].as_str().unwrap().to_string());
                    vec![
                        e["event_time"].as_str().unwrap().replace('T', " ").trim_end_matches('Z').to_string(),
                        e["user_id"].as_str().unwrap().to_string(),
                        e["action"].as_str().unwrap().to_string(),
                        e["amount"].to_string(),
                        of_user("country"),
                        of_user("tier"),
                    ]
                })
                .collect();
            rows.sort();
            rows
        })
        .collect();
    assert_eq!(console_batches(&stdout(&out)), expected);
}

#[test]
fn impressions_clicks_example_joins_each_click_and_closes_unclicked_impressions() {
    let out = run_sluice(repo_root(), &["run", "examples/impressions_clicks.sql"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    // Worked out from the example's files: every (impression, click) of the same ad with the
    // click within the impression's hour; and, NULL-padded, every impression without such a
    // click whose hour the final watermark has closed (clicks' state watermark: the query's
    // watermark, min over both streams of max − delay, minus the hour, minus 1 ms).
    let data = repo_root().join("examples/data");
    let read_dir = |dir: &str| -> Vec<serde_json::Value> {
        let mut files: Vec<_> = std::fs::read_dir(data.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<_>>()
            })
            .collect()
    };
    let time = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().timestamp();
    let shown = |v: &serde_json::Value| v.as_str().unwrap().replace('T', " ").trim_end_matches('Z').to_string();
    let impressions = read_dir("impressions");
    let clicks = read_dir("ad_clicks");
    let max = |rows: &[serde_json::Value], field: &str| rows.iter().map(|r| time(&r[field])).max().unwrap();
    let watermark = (max(&impressions, "impression_time") - 600).min(max(&clicks, "click_time") - 1200);
    let mut expected: Vec<Vec<String>> = Vec::new();
    for i in &impressions {
        let t = time(&i["impression_time"]);
        let matched: Vec<&serde_json::Value> = clicks
            .iter()
            .filter(|c| c["ad_id"] == i["ad_id"] && time(&c["click_time"]) >= t && time(&c["click_time"]) <= t + 3600)
            .collect();
        let row = |click: String| {
            vec![
                i["impression_id"].as_str().unwrap().to_string(),
                i["ad_id"].as_str().unwrap().to_string(),
                shown(&i["impression_time"]),
                click,
            ]
        };
        for c in &matched {
            expected.push(row(shown(&c["click_time"])));
        }
        // State watermark in ms: watermark − 1 h − 1 ms; the impression time must be at or
        // below it, i.e. strictly before watermark − 1 h.
        if matched.is_empty() && t < watermark - 3600 {
            expected.push(row("NULL".to_string()));
        }
    }
    expected.sort();
    let mut got: Vec<Vec<String>> = console_batches(&stdout(&out)).into_iter().flatten().collect();
    got.sort();
    assert_eq!(got, expected);
    assert!(expected.iter().any(|r| r[3] == "NULL"), "the example's data closes some impression unclicked");
}
