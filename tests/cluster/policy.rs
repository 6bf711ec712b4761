//! The job capability policy in cluster mode: a driver started with `--allow-location` refuses
//! a job reading outside it and a job setting a code-loading Kafka option — one line naming
//! the setting that would allow it, before anything is created — and runs a job inside it.

use std::path::Path;
use std::time::Duration;

use sluice_tests::binary::{run_sluice, stderr, stdout, wait_until};
use sluice_tests::cluster::ClusterProcs;

/// Submits `job` (written to `<dir>/<file>`) and returns the CLI's exit success and stderr.
fn submit(c: &ClusterProcs, dir: &Path, file: &str, job: &str) -> (bool, String) {
    std::fs::write(dir.join(file), job).unwrap();
    let out = c.sluice(dir, &["submit", file]);
    (out.status.success(), stderr(&out))
}

/// The one line of `stderr` that reports the refusal.
fn refusal(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("job refused")).collect();
    assert_eq!(lines.len(), 1, "one line reports the refusal: {stderr}");
    lines[0].to_string()
}

/// The `value` column of every committed row of the file sink at `<dir>/out`, sorted.
fn committed_values(dir: &Path) -> Vec<String> {
    let cat = run_sluice(dir, &["cat", "out"]);
    let mut values: Vec<String> = stdout(&cat)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["value"].as_str().map(str::to_string))
        .collect();
    values.sort();
    values
}

#[test]
fn a_driver_refuses_what_its_policy_does_not_allow_and_runs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // Two settings: this test's directory, and a Kafka broker address (never contacted: the
    // Kafka job below is refused for its options before anything runs).
    let c = ClusterProcs::start_with_driver_args(1, 1, &["--allow-location", &d, "--allow-location", "kafka://127.0.0.1:9092"]);

    // (a) Reading /etc: refused, naming the source, the location and the setting.
    let (ok, err) = submit(
        &c,
        dir.path(),
        "etc.sql",
        &format!(
            "CREATE STREAM etc (value STRING) WITH ('connector' = 'files', 'format' = 'text', 'path' = '/etc');
             CREATE SINK out WITH ('connector' = 'files', 'format' = 'json', 'path' = '{d}/etc-out');
             SET 'queryName' = 'steal';
             SET 'checkpointLocation' = '{d}/etc-chk';
             INSERT INTO out SELECT value FROM etc;"
        ),
    );
    assert!(!ok, "a job reading /etc was accepted\n{}", c.dump_logs());
    let line = refusal(&err);
    assert!(
        line.contains(&format!(
            "job refused: source 'etc' reads /etc (option 'path'), outside the allowed locations ({d}, kafka://127.0.0.1:9092); \
             allow it with --allow-location /etc"
        )),
        "{line}"
    );
    assert!(!dir.path().join("etc-chk").exists(), "the refused job created its checkpoint");
    assert!(!dir.path().join("etc-out").exists(), "the refused job created its output");

    // (b) A Kafka sink loading a shared library into the executors: refused, naming the option.
    let (ok, err) = submit(
        &c,
        dir.path(),
        "plugin.sql",
        &format!(
            "CREATE STREAM rates WITH ('connector' = 'rate', 'rowsPerSecond' = '1');
             CREATE SINK out WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '127.0.0.1:9092', 'topic' = 't',
                                   'kafka.plugin.library.paths' = '{d}/evil.so');
             SET 'queryName' = 'plugin';
             SET 'checkpointLocation' = '{d}/plugin-chk';
             INSERT INTO out SELECT CAST(value AS STRING) AS value FROM rates;"
        ),
    );
    assert!(!ok, "a job setting kafka.plugin.library.paths was accepted\n{}", c.dump_logs());
    let line = refusal(&err);
    assert!(
        line.contains(
            "job refused: sink 'out' sets kafka.plugin.library.paths, which loads code into the executors; \
             allow it with --allow-kafka-option plugin.library.paths"
        ),
        "{line}"
    );
    assert!(!dir.path().join("plugin-chk").exists(), "the refused job created its checkpoint");

    // (c) Inside the allowed directory: the job runs and copies every line written.
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut expected = Vec::new();
    for f in 0..3 {
        let lines: Vec<String> = (0..4).map(|i| format!("file {f} line {i}")).collect();
        std::fs::write(input.join(format!("part-{f}.txt")), lines.join("\n") + "\n").unwrap();
        expected.extend(lines);
    }
    expected.sort();
    let (ok, err) = submit(
        &c,
        dir.path(),
        "allowed.sql",
        &format!(
            "CREATE STREAM lines (value STRING) WITH ('connector' = 'files', 'format' = 'text', 'path' = '{d}/in');
             CREATE SINK out WITH ('connector' = 'files', 'format' = 'json', 'path' = '{d}/out');
             SET 'queryName' = 'allowed';
             SET 'trigger' = 'availableNow';
             SET 'checkpointLocation' = '{d}/chk';
             INSERT INTO out SELECT value FROM lines;"
        ),
    );
    assert!(ok, "the allowed job was refused: {err}\n{}", c.dump_logs());
    assert!(
        wait_until(Duration::from_secs(60), || committed_values(dir.path()).len() >= expected.len()),
        "the allowed job did not commit its {} rows: {:?}\n{}",
        expected.len(),
        committed_values(dir.path()),
        c.dump_logs()
    );
    assert_eq!(committed_values(dir.path()), expected, "the committed rows are not the lines written");
    let names: Vec<String> = c.queries().iter().filter_map(|q| q["name"].as_str().map(str::to_string)).collect();
    assert_eq!(names, ["allowed"], "only the allowed job became a query");
}
