//! Cluster mode through real processes: etcd, `sluice driver` and `sluice executor` processes on
//! 127.0.0.1, driven with the CLI a user runs (`submit`, `queries`, `stop`, `cat`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sluice_tests::binary::{run_sluice, stderr, stdout, wait_until};
use sluice_tests::cluster::ClusterProcs;
use sluice_tests::services::free_port;

mod connect;
mod http;
mod policy;
mod security;

/// The status of the query named `name`, as `sluice queries --json` reports it.
fn status(c: &ClusterProcs, name: &str) -> Option<serde_json::Value> {
    c.queries().into_iter().rev().find(|q| q["name"] == name)
}

fn placement(q: &serde_json::Value) -> BTreeMap<String, u64> {
    q["statePartitions"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
        .unwrap_or_default()
}

fn state_rows(q: &serde_json::Value) -> Option<u64> {
    q.pointer("/lastProgress/stateOperators/0/numRowsTotal").and_then(|v| v.as_u64())
}

#[test]
fn queries_are_listed_rebalanced_stopped_and_forgotten() {
    let mut c = ClusterProcs::start(1, 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), counts_job(dir.path(), 4)).unwrap();

    let out = c.sluice(dir.path(), &["submit", "job.sql"]);
    assert!(out.status.success(), "submit: {}", stderr(&out));
    assert!(stdout(&out).contains("counts"), "submit lists the started query: {}", stdout(&out));

    // One executor owns all 4 state partitions, holding the 5 groups.
    let one = BTreeMap::from([("executor-0".to_string(), 4)]);
    assert!(
        wait_until(Duration::from_secs(30), || status(&c, "counts")
            .is_some_and(|q| placement(&q) == one && state_rows(&q) == Some(5))),
        "the query did not run on executor-0: {:?}\n{}",
        status(&c, "counts"),
        c.dump_logs()
    );

    // Two executors join: at a batch boundary they take a fair share (4 partitions over 3
    // executors: 2, 1, 1), restoring the moved partitions from the checkpoint — still 5 groups.
    c.start_executor(1);
    c.start_executor(2);
    let spread = |q: &serde_json::Value| {
        let mut counts: Vec<u64> = placement(q).into_values().collect();
        counts.sort_unstable();
        counts == [1, 1, 2] && state_rows(q) == Some(5)
    };
    assert!(
        wait_until(Duration::from_secs(30), || status(&c, "counts").is_some_and(|q| spread(&q))),
        "partitions were not spread over the new executors: {:?}\n{}",
        status(&c, "counts"),
        c.dump_logs()
    );
    let table = stdout(&c.sluice(dir.path(), &["queries"]));
    assert!(table.lines().any(|l| l.starts_with("counts") && l.contains("active")), "queries table: {table}");

    // Stop: the query ends and is forgotten by the cluster — a new leader does not resume it.
    let out = c.sluice(dir.path(), &["stop", "counts"]);
    assert!(out.status.success(), "stop: {}", stderr(&out));
    assert_eq!(status(&c, "counts").map(|q| q["state"].clone()), Some("terminated".into()));
    c.kill_driver(0);
    c.start_driver(0);
    assert!(wait_until(Duration::from_secs(20), || c.has_leader()), "the restarted driver did not lead");
    assert_eq!(c.queries(), Vec::<serde_json::Value>::new(), "a stopped query came back");
}

/// The rate → grouped counts query of the rebalancing tests: 5 groups over `partitions` state
/// partitions.
fn counts_job(dir: &Path, partitions: u32) -> String {
    format!(
        "CREATE STREAM rates WITH ('connector' = 'rate', 'rowsPerSecond' = '100');
         CREATE SINK out WITH ('connector' = 'noop');
         SET 'queryName' = 'counts';
         SET 'outputMode' = 'update';
         SET 'trigger' = 'processingTime=200 milliseconds';
         SET 'checkpointLocation' = '{}';
         SET 'spark.sql.shuffle.partitions' = '{partitions}';
         INSERT INTO out SELECT value % 5 AS k, count(*) AS n FROM rates GROUP BY value % 5;",
        dir.join("chk").display()
    )
}

fn batch_id(q: &serde_json::Value) -> i64 {
    q.pointer("/lastProgress/batchId").and_then(|b| b.as_i64()).unwrap_or(-1)
}

#[test]
fn an_executor_stopped_with_sigterm_is_drained_without_a_retried_batch() {
    let mut c = ClusterProcs::start(1, 3);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), counts_job(dir.path(), 6)).unwrap();
    let out = c.sluice(dir.path(), &["submit", "job.sql"]);
    assert!(out.status.success(), "submit: {}", stderr(&out));
    let on_all = |q: &serde_json::Value| placement(q).len() == 3 && state_rows(q) == Some(5);
    assert!(
        wait_until(Duration::from_secs(30), || status(&c, "counts").is_some_and(|q| on_all(&q))),
        "the query did not spread over 3 executors: {:?}\n{}",
        status(&c, "counts"),
        c.dump_logs()
    );

    // SIGTERM (a rolling restart or scale-down): the executor finishes the batch in flight,
    // the driver dismisses it, and it exits cleanly, long before its 25 s drain timeout.
    let started = std::time::Instant::now();
    let exit = c.terminate_executor(2, Duration::from_secs(20));
    assert!(exit.is_some_and(|s| s.success()), "executor-2 did not exit cleanly on SIGTERM: {exit:?}\n{}", c.dump_logs());
    let drained = started.elapsed();
    assert!(drained < Duration::from_secs(10), "draining took {drained:?}: it waited for its timeout\n{}", c.dump_logs());

    // Its partitions moved to the others at the next batch boundary, restored from the
    // checkpoint (still 5 groups), and no batch failed on the way.
    let moved =
        |q: &serde_json::Value| !placement(q).contains_key("executor-2") && placement(q).len() == 2 && state_rows(q) == Some(5);
    let before = status(&c, "counts").map(|q| batch_id(&q)).unwrap_or(-1);
    assert!(
        wait_until(Duration::from_secs(30), || status(&c, "counts").is_some_and(|q| moved(&q) && batch_id(&q) >= before + 3)),
        "partitions did not leave the stopped executor: {:?}\n{}",
        status(&c, "counts"),
        c.dump_logs()
    );
    let q = status(&c, "counts").unwrap();
    assert_eq!(q["batchesRetried"], 0, "a batch was retried: {q}\n{}", c.dump_logs());
    assert_eq!(q["state"], "active");
}

#[test]
fn a_leader_stopped_with_sigterm_commits_its_batch_and_hands_over() {
    let mut c = ClusterProcs::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), counts_job(dir.path(), 6)).unwrap();
    let out = c.sluice(dir.path(), &["submit", "job.sql"]);
    assert!(out.status.success(), "submit: {}", stderr(&out));
    assert!(
        wait_until(Duration::from_secs(30), || status(&c, "counts").is_some_and(|q| batch_id(&q) >= 3)),
        "the query did not run: {:?}\n{}",
        status(&c, "counts"),
        c.dump_logs()
    );
    let leader = status(&c, "counts").unwrap()["leader"].as_str().unwrap().to_string();
    let (l, s) = if leader == c.driver_url(0) { (0, 1) } else { (1, 0) };

    // The standby is paused while the leader stops, so the checkpoint the leader leaves can be
    // read before the standby writes to it: every batch the leader planned is committed.
    c.signal_driver(s, nix::sys::signal::Signal::SIGSTOP);
    let exit = c.terminate_driver(l, Duration::from_secs(20));
    let logs = |d: &str| {
        std::fs::read_dir(dir.path().join("chk").join(d))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.parse::<u64>().ok())
            .max()
    };
    let (offsets, commits) = (logs("offsets"), logs("commits"));
    c.signal_driver(s, nix::sys::signal::Signal::SIGCONT);
    assert!(exit.is_some_and(|e| e.success()), "the leader did not exit cleanly on SIGTERM: {exit:?}\n{}", c.dump_logs());
    assert_eq!(offsets, commits, "the leader stopped with a batch planned but not committed\n{}", c.dump_logs());

    // The standby takes over at once (the leader revoked its lease) and resumes with the next
    // batch: nothing fails, nothing re-runs.
    let resumed = |q: &serde_json::Value| q["leader"] == c.driver_url(s) && batch_id(q) > commits.unwrap() as i64 + 2;
    assert!(
        wait_until(Duration::from_secs(30), || status(&c, "counts").is_some_and(|q| resumed(&q))),
        "the standby did not take over: {:?}\n{}",
        status(&c, "counts"),
        c.dump_logs()
    );
    let q = status(&c, "counts").unwrap();
    assert_eq!(q["batchesRetried"], 0, "{q}");
    assert_eq!(state_rows(&q), Some(5), "{q}");
}

/// A copy query from two small JSON files into a file sink, in `dir`.
fn copy_job(dir: &Path) -> String {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.json"), "{\"id\": 1}\n{\"id\": 2}\n").unwrap();
    std::fs::write(input.join("b.json"), "{\"id\": 3}\n").unwrap();
    format!(
        "CREATE STREAM nums (id BIGINT) WITH ('connector' = 'files', 'format' = 'json', 'path' = '{}');
         CREATE SINK out WITH ('connector' = 'files', 'format' = 'json', 'path' = '{}');
         SET 'queryName' = 'copy';
         SET 'trigger' = 'availableNow';
         SET 'checkpointLocation' = '{}';
         INSERT INTO out SELECT id, id * 2 AS twice FROM nums;",
        input.display(),
        dir.join("out").display(),
        dir.join("chk").display()
    )
}

/// The copy query's committed rows, sorted.
fn copied_rows(dir: &Path) -> Vec<String> {
    let cat = run_sluice(dir, &["cat", "out"]);
    let mut rows: Vec<String> = stdout(&cat).lines().map(str::to_string).collect();
    rows.sort();
    rows
}

const COPIED: [&str; 3] = ["{\"id\":1,\"twice\":2}", "{\"id\":2,\"twice\":4}", "{\"id\":3,\"twice\":6}"];

#[test]
fn a_failed_query_is_restarted_from_its_checkpoint_once_the_network_heals() {
    let mut c = ClusterProcs::start(1, 0);
    let dead = format!("https://127.0.0.1:{}", free_port());
    c.start_executor_with(0, &["--advertise", &dead]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), copy_job(dir.path())).unwrap();
    let out = c.sluice(dir.path(), &["submit", "job.sql"]);
    assert!(out.status.success(), "submit: {}", stderr(&out));
    // Batch 0 fails its attempts against the unreachable executor and the query manager
    // restarts the query; then the network heals, and the restarted query finishes with no
    // resubmission.
    let restarted = |c: &ClusterProcs| status(c, "copy").is_some_and(|q| q["restarts"].as_u64().unwrap_or(0) >= 1);
    assert!(wait_until(Duration::from_secs(120), || restarted(&c)), "the failed query was not restarted\n{}", c.dump_logs());
    c.kill_executor(0);
    c.start_executor(1);
    assert!(
        wait_until(Duration::from_secs(120), || status(&c, "copy").is_some_and(|q| q["state"] == "terminated")),
        "the query was not restarted to completion: {:?}\n{}",
        status(&c, "copy"),
        c.dump_logs()
    );
    let q = status(&c, "copy").unwrap();
    assert!(q["restarts"].as_u64().unwrap_or(0) >= 1, "the query finished without a restart: {q}");
    assert_eq!(copied_rows(dir.path()), COPIED);
    assert!(!dir.path().join("chk/offsets/1").exists(), "batch 0 re-ran with its recorded offsets");
}

#[test]
fn an_unreachable_executor_fails_the_query_after_bounded_retries_and_nothing_is_lost() {
    // No automatic restarts: the failure itself is under test.
    let mut c = ClusterProcs::start_with_driver_env(1, 0, &[("SLUICE_MAX_QUERY_RESTARTS", "0")]);
    // The executor registers in etcd but advertises an address nothing listens on: a network
    // cut between the driver and its only executor.
    let dead = format!("https://127.0.0.1:{}", free_port());
    c.start_executor_with(0, &["--advertise", &dead]);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), copy_job(dir.path())).unwrap();
    let out = c.sluice(dir.path(), &["submit", "job.sql"]);
    assert!(out.status.success(), "submit: {}", stderr(&out));

    assert!(
        wait_until(Duration::from_secs(90), || status(&c, "copy").is_some_and(|q| q["state"] == "failed")),
        "the query did not fail: {:?}\n{}",
        status(&c, "copy"),
        c.dump_logs()
    );
    let q = status(&c, "copy").unwrap();
    let error = q["error"].as_str().unwrap_or_default();
    assert!(error.contains("batch 0 failed after 6 attempts"), "{error}");
    assert!(error.contains(&dead), "the cause names the unreachable executor: {error}");
    assert_eq!(q["batchesRetried"], 5);
    // Batch 0 was planned (its offsets are in the WAL) but never committed.
    assert!(dir.path().join("chk/offsets/0").exists());
    assert!(!dir.path().join("chk/commits/0").exists());

    // The network heals (a reachable executor); submitting again resumes the checkpoint.
    c.kill_executor(0);
    c.start_executor(1);
    let out = c.sluice(dir.path(), &["submit", "job.sql"]);
    assert!(out.status.success(), "resubmit: {}", stderr(&out));
    assert!(
        wait_until(Duration::from_secs(60), || status(&c, "copy").is_some_and(|q| q["state"] == "terminated")),
        "the resubmitted query did not finish: {:?}\n{}",
        status(&c, "copy"),
        c.dump_logs()
    );
    assert_eq!(copied_rows(dir.path()), COPIED);
    assert!(!dir.path().join("chk/offsets/1").exists(), "batch 0 re-ran with its recorded offsets");
}

#[test]
fn a_standby_forwards_admin_calls_to_the_leader() {
    // Behind a Kubernetes Service a client reaches any ready driver: a standby must pass
    // submit, queries and stop on to the leader.
    let c = ClusterProcs::start(2, 1);
    let (leader, standby) = (c.driver_url(0), c.driver_url(1));
    let here = Path::new(".");
    assert!(wait_until(Duration::from_secs(20), || c.sluice_at(here, &["queries", "--driver", &standby]).status.success()));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.sql"),
        "CREATE STREAM r WITH ('connector' = 'rate'); CREATE SINK s WITH ('connector' = 'noop'); SET 'queryName' = 'via_standby'; INSERT INTO s SELECT * FROM r;",
    )
    .unwrap();
    let out = c.sluice_at(dir.path(), &["submit", "job.sql", "--driver", &standby]);
    assert!(out.status.success(), "submit through the standby: {}", stderr(&out));
    let listed = |url: &str| {
        let out = c.sluice_at(here, &["queries", "--json", "--driver", url]);
        assert!(out.status.success(), "queries at {url}: {}", stderr(&out));
        stdout(&out).lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect::<Vec<_>>()
    };
    let at_leader = listed(&leader);
    assert_eq!(at_leader.len(), 1, "the leader runs the query submitted to the standby: {at_leader:?}");
    assert_eq!(at_leader[0]["name"], "via_standby");
    let ids = |qs: &[serde_json::Value]| qs.iter().map(|q| q["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&listed(&standby)), ids(&at_leader), "the standby answers with the leader's queries");

    let out = c.sluice_at(here, &["stop", "via_standby", "--driver", &standby]);
    assert!(out.status.success(), "stop through the standby: {}", stderr(&out));
    let stopped = listed(&leader);
    assert_eq!(stopped[0]["state"], "terminated", "{stopped:?}");
}

/// Rows of one side of the join test: (key, time in seconds, id).
type JoinRow = (String, u64, u64);

fn json_lines(rows: &[JoinRow]) -> String {
    rows.iter().map(|(k, t, id)| format!("{{\"key\":\"{k}\",\"t\":{t},\"id\":{id}}}\n")).collect()
}

#[test]
fn an_executor_killed_while_holding_join_state_loses_and_duplicates_nothing() {
    let mut c = ClusterProcs::start(1, 2);
    let dir = tempfile::tempdir().unwrap();
    let (left_in, right_in, staging) = (dir.path().join("left"), dir.path().join("right"), dir.path().join("staging"));
    for d in [&left_in, &right_in, &staging] {
        std::fs::create_dir_all(d).unwrap();
    }
    let stream = |name: &str, p: &str, path: &Path| {
        format!(
            "CREATE STREAM {name} (key STRING, t BIGINT, id BIGINT, {p}t AS timestamp_seconds(t),
               WATERMARK FOR {p}t AS {p}t - INTERVAL '10' SECOND)
             WITH ('connector' = 'files', 'format' = 'json', 'path' = '{}', 'maxFilesPerTrigger' = '1');",
            path.display()
        )
    };
    let job = format!(
        "{} {}
         CREATE SINK out WITH ('connector' = 'files', 'format' = 'json', 'path' = '{}');
         SET 'queryName' = 'joined';
         SET 'trigger' = 'processingTime=100 milliseconds';
         SET 'checkpointLocation' = '{}';
         SET 'spark.sql.shuffle.partitions' = '4';
         INSERT INTO out SELECT l.key AS lkey, l.t AS lts, l.id AS lid, r.key AS rkey, r.t AS rts, r.id AS rid
         FROM lefts l LEFT JOIN rights r
           ON l.key = r.key AND l.lt BETWEEN r.rt - INTERVAL '5' SECOND AND r.rt + INTERVAL '5' SECOND;",
        stream("lefts", "l", &left_in),
        stream("rights", "r", &right_in),
        dir.path().join("out").display(),
        dir.path().join("chk").display()
    );
    std::fs::write(dir.path().join("job.sql"), job).unwrap();

    // File k holds times in [100k, 100k + 55): no row is ever late, each matches only rows of
    // the other side's file k, and file k + 1 moves the watermark past file k's rows.
    let mut rng = fastrand::Rng::with_seed(14);
    let mut files: Vec<(Vec<JoinRow>, Vec<JoinRow>)> = Vec::new();
    for k in 0..6u64 {
        let mut side = |n: u64, offset: u64| -> Vec<JoinRow> {
            (0..n).map(|i| (format!("k{}", rng.u32(0..4)), 100 * k + rng.u64(0..55), offset + 100 * k + i)).collect()
        };
        let left = side(10, 0);
        let right = side(8, 10_000);
        files.push((left, right));
    }
    // A last pair that closes every earlier row's hour: the watermark passes them all.
    files.push((vec![("z".into(), 600, 600)], vec![("z".into(), 601, 10_600)]));
    let write = |k: usize| {
        for (rows, dest) in [(&files[k].0, &left_in), (&files[k].1, &right_in)] {
            let staged = staging.join(format!("{k}.json"));
            std::fs::write(&staged, json_lines(rows)).unwrap();
            std::fs::rename(&staged, dest.join(format!("{k:02}.json"))).unwrap();
        }
    };

    let out = c.sluice(dir.path(), &["submit", "job.sql"]);
    assert!(out.status.success(), "submit: {}", stderr(&out));
    write(0);
    write(1);
    // Executor 0 holds join state partitions once the first files are in state.
    let holds_state =
        |q: &serde_json::Value| placement(q).get("executor-0").copied().unwrap_or(0) > 0 && state_rows(q).unwrap_or(0) > 0;
    assert!(
        wait_until(Duration::from_secs(60), || status(&c, "joined").is_some_and(|q| holds_state(&q))),
        "executor-0 never held join state: {:?}\n{}",
        status(&c, "joined"),
        c.dump_logs()
    );
    c.kill_executor(0);
    write(2);
    write(3);
    // The survivor takes every partition, restoring executor-0's from the checkpoint.
    let survivor = BTreeMap::from([("executor-1".to_string(), 4)]);
    assert!(
        wait_until(Duration::from_secs(60), || status(&c, "joined").is_some_and(|q| placement(&q) == survivor)),
        "executor-1 did not take over the join state: {:?}\n{}",
        status(&c, "joined"),
        c.dump_logs()
    );
    c.start_executor(0);
    for k in 4..files.len() {
        write(k);
    }

    // Expected: the join recomputed over all rows at once — every pair of equal keys within
    // 5 s, and every left row without one, NULL-padded (the last files' watermark closed them
    // all; the closing pair itself matches).
    let lefts: Vec<&JoinRow> = files.iter().flat_map(|f| f.0.iter()).collect();
    let rights: Vec<&JoinRow> = files.iter().flat_map(|f| f.1.iter()).collect();
    let mut expected: Vec<String> = Vec::new();
    for l in &lefts {
        let pairs: Vec<String> = rights
            .iter()
            .filter(|r| r.0 == l.0 && l.1 + 5 >= r.1 && l.1 <= r.1 + 5)
            .map(|r| format!("{}|{}|{}|{}|{}|{}", l.0, l.1, l.2, r.0, r.1, r.2))
            .collect();
        if pairs.is_empty() {
            expected.push(format!("{}|{}|{}|null|null|null", l.0, l.1, l.2));
        }
        expected.extend(pairs);
    }
    expected.sort();
    let committed = || -> Vec<String> {
        let cat = run_sluice(dir.path(), &["cat", "out"]);
        let mut rows: Vec<String> = stdout(&cat)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let f = |n: &str| match v.get(n) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(x)) => x.to_string(),
                    _ => "null".to_string(),
                };
                format!("{}|{}|{}|{}|{}|{}", f("lkey"), f("lts"), f("lid"), f("rkey"), f("rts"), f("rid"))
            })
            .collect();
        rows.sort();
        rows
    };
    assert!(
        wait_until(Duration::from_secs(120), || committed().len() >= expected.len()),
        "the output did not complete: {} of {} rows\n{:?}\n{}",
        committed().len(),
        expected.len(),
        status(&c, "joined"),
        c.dump_logs()
    );
    // A little longer: a duplicate would arrive with a retried batch.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(committed(), expected);
    assert!(expected.iter().any(|r| r.ends_with("null|null|null")), "the data has unmatched left rows");
    let out = c.sluice(dir.path(), &["stop", "joined"]);
    assert!(out.status.success(), "stop: {}", stderr(&out));
}
