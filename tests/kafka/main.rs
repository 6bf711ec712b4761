//! The Kafka source and sink against a real Kafka-protocol broker (tansu) on 127.0.0.1.
//!
//! Expected rows come from the test's own record generator and Spark's rules written out here
//! (dedup by `(event_id, event_time)`, 1-minute windows emitted once the watermark — the
//! maximum event time minus 30 s — passes their end, late rows dropped), never from sluice.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use sluice_tests::binary::{run_sluice, spawn_sluice, stderr, stdout, wait_until};
use sluice_tests::kafka::KafkaBroker;
use sluice_tests::{settle, Harness, PATIENCE};

/// 2024-01-01T00:00:00Z in seconds: windows start on whole minutes from here.
const T0: i64 = 1_704_067_200;
const PARTITIONS: i32 = 3;

/// One generated event.
#[derive(Clone)]
struct Event {
    id: String,
    second: i64,
    partition: i32,
}

impl Event {
    fn json(&self) -> String {
        let t = chrono::DateTime::from_timestamp(self.second, 0).expect("valid time");
        format!(
            r#"{{"event_time":"{}","user_id":"u{}","event_id":"{}"}}"#,
            t.format("%Y-%m-%dT%H:%M:%SZ"),
            self.second % 5,
            self.id
        )
    }
}

/// The records to produce, in order: one event a second for `seconds` seconds (every 7th
/// second skipped, so window counts differ), each 10th event re-delivered to another partition,
/// and finally one event per partition from the first seconds, which arrives long after the
/// watermark passed it. Returns the records and the events that count (first deliveries, on time).
fn generate(seconds: i64) -> (Vec<Event>, Vec<Event>) {
    let mut records = Vec::new();
    let mut counted = Vec::new();
    for i in 0..seconds {
        if i % 7 == 3 {
            continue;
        }
        let e = Event { id: format!("e{i}"), second: T0 + i, partition: (i % PARTITIONS as i64) as i32 };
        records.push(e.clone());
        counted.push(e.clone());
        if i % 10 == 0 {
            records.push(Event { partition: (e.partition + 1) % PARTITIONS, ..e });
        }
    }
    for p in 0..PARTITIONS {
        records.push(Event { id: format!("late{p}"), second: T0 + 5 + p as i64, partition: p });
    }
    (records, counted)
}

/// Windows emitted in append mode: `(start second, count)` for every window whose end is at or
/// below the final watermark.
fn expected_windows(counted: &[Event], all: &[Event]) -> Vec<(i64, i64)> {
    let watermark = all.iter().map(|e| e.second).max().expect("events") - 30;
    let mut windows: BTreeMap<i64, i64> = BTreeMap::new();
    for e in counted {
        *windows.entry(e.second - e.second.rem_euclid(60)).or_default() += 1;
    }
    windows.into_iter().filter(|(start, _)| start + 60 <= watermark).collect()
}

async fn produce(broker: &KafkaBroker, topic: &str, records: &[Event]) {
    let rows: Vec<(i32, String, String)> = records.iter().map(|e| (e.partition, e.id.clone(), e.json())).collect();
    let refs: Vec<(i32, Option<&str>, &str)> = rows.iter().map(|(p, k, v)| (*p, Some(k.as_str()), v.as_str())).collect();
    broker.produce(topic, &refs).await;
}

/// The seeds' pipeline: Kafka JSON → from_json → watermark → dedup → 1-minute counts, into a
/// Parquet file sink and a Kafka topic.
fn pipeline_job(dir: &Path, servers: &str, max_offsets: u32, trigger: &str) -> String {
    let schema = "event_time TIMESTAMP, user_id STRING, event_id STRING";
    let counts = "SELECT window(event_time, '1 minute') AS w, count(*) AS n
                  FROM (SELECT DISTINCT ON (event_id, event_time) event_id, event_time FROM raw)
                  GROUP BY window(event_time, '1 minute')";
    format!(
        "CREATE STREAM raw (
           event_id AS get_field(from_json(CAST(value AS STRING), '{schema}'), 'event_id'),
           event_time AS get_field(from_json(CAST(value AS STRING), '{schema}'), 'event_time'),
           WATERMARK FOR event_time AS event_time - INTERVAL '30' SECOND
         ) WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '{servers}', 'subscribe' = 'events',
                 'startingOffsets' = 'earliest', 'maxOffsetsPerTrigger' = '{max_offsets}');
         CREATE SINK files_out WITH ('connector' = 'files', 'format' = 'parquet', 'path' = '{out}');
         CREATE SINK kafka_out WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '{servers}', 'topic' = 'counts',
                                     'kafka.batch.num.messages' = '1');
         SET 'trigger' = '{trigger}';
         SET 'spark.sql.shuffle.partitions' = '4';
         SET 'queryName' = 'to_files';
         SET 'checkpointLocation' = '{chk_files}';
         INSERT INTO files_out SELECT CAST(w.start AS BIGINT) AS start, n FROM ({counts});
         SET 'queryName' = 'to_kafka';
         SET 'checkpointLocation' = '{chk_kafka}';
         INSERT INTO kafka_out SELECT CAST(CAST(w.start AS BIGINT) AS STRING) AS key, CAST(n AS STRING) AS value FROM ({counts});",
        out = dir.join("out").display(),
        chk_files = dir.join("chk-files").display(),
        chk_kafka = dir.join("chk-kafka").display(),
    )
}

fn file_rows(dir: &Path) -> Vec<(i64, i64)> {
    let out = run_sluice(dir, &["cat", "out"]);
    assert!(out.status.success(), "sluice cat: {}", stderr(&out));
    let mut rows: Vec<(i64, i64)> = stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            (v["start"].as_i64().expect("start"), v["n"].as_i64().expect("n"))
        })
        .collect();
    rows.sort();
    rows
}

fn kafka_rows(broker: &KafkaBroker, topic: &str) -> Vec<(i64, i64)> {
    let mut rows: Vec<(i64, i64)> = broker
        .read_topic(topic)
        .into_iter()
        .map(|r| {
            let key = r.key.expect("key").parse().expect("numeric key");
            let value = r.value.expect("value").parse().expect("numeric value");
            (key, value)
        })
        .collect();
    rows.sort();
    rows
}

fn commits(chk: &Path) -> usize {
    std::fs::read_dir(chk.join("commits")).map(|d| d.count()).unwrap_or(0)
}

/// A broker holding the generated events (`seconds` of them) in topic `events`, an empty topic
/// `counts`, and a directory with the pipeline job. Returns the records produced and the
/// windows the job must emit.
async fn pipeline_setup(seconds: i64, max_offsets: u32) -> (KafkaBroker, tempfile::TempDir, Vec<Event>, Vec<(i64, i64)>) {
    let broker = KafkaBroker::start();
    broker.create_topic("events", PARTITIONS).await;
    broker.create_topic("counts", 2).await;
    let (records, counted) = generate(seconds);
    produce(&broker, "events", &records).await;
    let expected = expected_windows(&counted, &records);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), pipeline_job(dir.path(), &broker.bootstrap(), max_offsets, "availableNow"))
        .unwrap();
    (broker, dir, records, expected)
}

/// The progress reports a `sluice run --progress-json progress.jsonl` wrote.
fn read_progress(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("progress.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Writes `dir/job.sql`: an availableNow query copying the values of a Kafka stream with
/// `options` into a JSON file sink `out`, checkpointed in `chk`.
fn write_values_job(dir: &Path, servers: &str, options: &str) {
    let job = format!(
        "CREATE STREAM s WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '{servers}', {options});
         CREATE SINK out WITH ('connector' = 'files', 'format' = 'json', 'path' = 'out');
         SET 'checkpointLocation' = 'chk';
         SET 'trigger' = 'availableNow';
         INSERT INTO out SELECT CAST(value AS STRING) AS v FROM s;"
    );
    std::fs::write(dir.join("job.sql"), job).unwrap();
}

fn assert_success(out: &Output) {
    assert!(out.status.success(), "sluice run failed:\n{}\n{}", stdout(out), stderr(out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_events_to_windowed_counts_in_files_and_kafka() {
    let (broker, dir, records, expected) = pipeline_setup(300, 40).await;
    assert!(expected.len() >= 3 && expected.iter().all(|(_, n)| *n > 0), "the generator yields several windows");
    let out = run_sluice(dir.path(), &["run", "job.sql", "--progress-json", "progress.jsonl"]);
    assert_success(&out);

    assert_eq!(file_rows(dir.path()), expected, "file sink rows");
    assert_eq!(kafka_rows(&broker, "counts"), expected, "Kafka sink rows");

    // The offset log holds Spark's per-partition JSON; the initial offsets file Spark's format.
    let offsets0 = std::fs::read_to_string(dir.path().join("chk-files/offsets/0")).unwrap();
    let source_offsets: serde_json::Value = serde_json::from_str(offsets0.lines().nth(2).expect("source offset line")).unwrap();
    let first_batch: i64 = source_offsets["events"].as_object().expect("topic").values().map(|v| v.as_i64().unwrap()).sum();
    assert!(first_batch > 0 && first_batch <= 40, "batch 0 read {first_batch} offsets under maxOffsetsPerTrigger 40");
    let initial = std::fs::read(dir.path().join("chk-files/sources/0/0")).unwrap();
    assert_eq!(initial, [b"\0v1\n".as_slice(), br#"{"events":{"0":0,"1":0,"2":0}}"#].concat());

    // Progress: every record was read once per query, Kafka's source description and metrics.
    let progress = read_progress(dir.path());
    for name in ["to_files", "to_kafka"] {
        let mine: Vec<&serde_json::Value> = progress.iter().filter(|p| p["name"] == name).collect();
        let read: u64 = mine.iter().map(|p| p["numInputRows"].as_u64().unwrap()).sum();
        assert_eq!(read, records.len() as u64, "{name} read every record exactly once");
        let first = mine.first().expect("progress");
        assert_eq!(first["sources"][0]["description"], "KafkaV2[Subscribe[events]]");
        assert!(first["sources"][0]["metrics"]["maxOffsetsBehindLatest"].is_string(), "{}", first["sources"][0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_and_duplicates_nothing_in_files() {
    let (broker, dir, _, expected) = pipeline_setup(240, 12).await;
    let mut first = spawn_sluice(dir.path(), &["run", "job.sql"], &[]);
    let (chk_files, chk_kafka) = (dir.path().join("chk-files"), dir.path().join("chk-kafka"));
    let mid = wait_until(PATIENCE, || commits(&chk_files) >= 4 && commits(&chk_kafka) >= 4);
    sluice_tests::binary::sigkill(&mut first);
    assert!(mid, "both queries committed a few batches before the kill");
    let committed_before = commits(&chk_kafka);

    let out = run_sluice(dir.path(), &["run", "job.sql", "--progress-json", "progress.jsonl"]);
    assert_success(&out);
    assert_eq!(file_rows(dir.path()), expected, "file sink: exactly once across the kill");

    // Kafka sink: at-least-once. Every expected row is there; extra copies can only come from
    // the batch the restart re-ran (planned in offsets/ but not in commits/ at the kill).
    let got = kafka_rows(&broker, "counts");
    let mut extra = got.clone();
    for row in &expected {
        let i = extra.iter().position(|r| r == row).unwrap_or_else(|| panic!("row {row:?} missing from the Kafka sink"));
        extra.remove(i);
    }
    let progress: Vec<serde_json::Value> = read_progress(dir.path()).into_iter().filter(|p| p["name"] == "to_kafka").collect();
    let rerun_rows = progress
        .iter()
        .find(|p| p["batchId"].as_u64() == Some(committed_before as u64))
        .map_or(0, |p| p["sink"]["numOutputRows"].as_u64().unwrap());
    for row in &extra {
        assert!(expected.contains(row), "unexpected row {row:?} in the Kafka sink");
    }
    assert!(
        extra.len() as u64 <= rerun_rows,
        "{} duplicate rows, but the re-run batch {committed_before} wrote only {rerun_rows}",
        extra.len()
    );
    println!("Kafka sink duplicates after the kill: {} (re-run batch wrote {rerun_rows})", extra.len());
}

/// Rows per partition of each batch a memory sink received.
fn partition_counts(batches: &[(sluice_common::BatchId, Vec<RecordBatch>)]) -> Vec<Vec<i64>> {
    batches
        .iter()
        .map(|(_, bs)| {
            let mut per = vec![0i64; PARTITIONS as usize];
            for b in bs {
                for p in b.column(0).as_primitive::<Int32Type>().iter().flatten() {
                    per[p as usize] += 1;
                }
            }
            per
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_offsets_per_trigger_prorates_batches_across_partitions() {
    let broker = KafkaBroker::start();
    broker.create_topic("sized", PARTITIONS).await;
    let mut records = Vec::new();
    for (p, n) in [(0, 10), (1, 5), (2, 1)] {
        for i in 0..n {
            records.push((p, None, format!("p{p}-{i}")));
        }
    }
    let refs: Vec<(i32, Option<&str>, &str)> = records.iter().map(|(p, k, v)| (*p, *k, v.as_str())).collect();
    broker.produce("sized", &refs).await;

    let h = Harness::start().await;
    let q = h
        .run(&format!(
            "CREATE STREAM s WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '{}', 'subscribe' = 'sized',
                                   'startingOffsets' = 'earliest', 'maxOffsetsPerTrigger' = '6');
             CREATE SINK out WITH ('connector' = 'memory');
             SET 'trigger' = 'availableNow';
             INSERT INTO out SELECT partition, `offset`, CAST(value AS STRING) AS v FROM s;",
            broker.bootstrap()
        ))
        .await
        .remove(0);
    q.await_termination().await.unwrap();
    let table = h.session.memory_table("out").unwrap();
    // Spark's rateLimit, by hand: available (10, 5, 1), limit 6 → 6·10/16 = 3.75 → 3,
    // 6·5/16 = 1.9 → 1, 6·1/16 = 0.4 → ceil 1. Then (7, 4, 0) left: 6·7/11 = 3.8 → 3,
    // 6·4/11 = 2.2 → 2. Then (4, 2, 0): 4 and 2.
    assert_eq!(partition_counts(&table.batches), vec![vec![3, 1, 1], vec![3, 2, 0], vec![4, 2, 0]]);
    let progress = q.recent_progress();
    assert_eq!(progress[0].sources[0].end_offset, serde_json::json!({"sized": {"0": 3, "1": 1, "2": 1}}));
    assert_eq!(progress[0].sources[0].latest_offset, serde_json::json!({"sized": {"0": 10, "1": 5, "2": 1}}));
    // Offsets are read in order, exactly once.
    let mut offsets: Vec<(i32, i64)> = Vec::new();
    for (_, bs) in &table.batches {
        for b in bs {
            let ps = b.column(0).as_primitive::<Int32Type>();
            let os = b.column(1).as_primitive::<Int64Type>();
            offsets.extend(ps.iter().zip(os.iter()).map(|(p, o)| (p.unwrap(), o.unwrap())));
        }
    }
    offsets.sort();
    let want: Vec<(i32, i64)> = [(0, 10), (1, 5), (2, 1)].iter().flat_map(|(p, n)| (0..*n).map(move |o| (*p, o))).collect();
    assert_eq!(offsets, want);
    h.shutdown().await;
}

fn memory_values(h: &Harness) -> Vec<String> {
    let mut v: Vec<String> = h
        .session
        .memory_table("out")
        .map(|t| {
            t.batches
                .iter()
                .flat_map(|(_, bs)| {
                    bs.iter()
                        .flat_map(|b| b.column(0).as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect::<Vec<_>>())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_pattern_discovers_new_topics() {
    let broker = KafkaBroker::start();
    broker.create_topic("pat-a", 2).await;
    broker.create_topic("other", 1).await;
    broker.produce("pat-a", &[(0, None, "a0"), (1, None, "a1")]).await;
    broker.produce("other", &[(0, None, "not-matched")]).await;

    let h = Harness::start().await;
    let q = values_query(&h, &broker, "'subscribePattern' = 'pat-.*', 'startingOffsets' = 'earliest'").await;
    settle(&q).await;
    assert_eq!(memory_values(&h), vec!["a0", "a1"]);

    broker.create_topic("pat-b", 1).await;
    broker.produce("pat-b", &[(0, None, "b0")]).await;
    let found = wait_until_async(|| memory_values(&h).contains(&"b0".to_string())).await;
    assert!(found, "a new topic matching the pattern is read from its start: {:?}", memory_values(&h));

    assert_eq!(memory_values(&h), vec!["a0", "a1", "b0"]);
    q.stop().await.unwrap();
    h.shutdown().await;
}

/// Starts a query that copies the values of a Kafka stream with `options` into memory sink `out`.
async fn values_query(h: &Harness, broker: &KafkaBroker, options: &str) -> sluice_driver::StreamingQuery {
    h.run(&format!(
        "CREATE STREAM s WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '{}', {options});
         CREATE SINK out WITH ('connector' = 'memory');
         INSERT INTO out SELECT CAST(value AS STRING) AS v FROM s;",
        broker.bootstrap()
    ))
    .await
    .remove(0)
}

/// The largest value a source metric reached in the query's progress reports.
fn max_source_metric(q: &sluice_driver::StreamingQuery, name: &str) -> u64 {
    q.recent_progress()
        .iter()
        .filter_map(|p| p.sources[0].metrics.get(name).and_then(|v| v.parse::<u64>().ok()))
        .max()
        .unwrap_or(0)
}

async fn wait_until_async(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// tansu has no CreatePartitions, so a topic grows here by being deleted and re-created with
/// more partitions: the new partition is read from its earliest offset, and the rewound one is
/// data loss, counted and skipped under `failOnDataLoss=false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_recreated_with_more_partitions_is_read_from_the_new_partitions_start() {
    let broker = KafkaBroker::start();
    broker.create_topic("grow", 1).await;
    broker.produce("grow", &[(0, None, "g0"), (0, None, "g1")]).await;
    let h = Harness::start().await;
    let q = values_query(&h, &broker, "'subscribe' = 'grow', 'startingOffsets' = 'earliest', 'failOnDataLoss' = 'false'").await;
    settle(&q).await;
    assert_eq!(memory_values(&h), vec!["g0", "g1"]);
    broker.delete_topic("grow").await;
    broker.create_topic("grow", 2).await;
    broker.produce("grow", &[(1, None, "n1"), (0, None, "n0")]).await;
    let found = wait_until_async(|| memory_values(&h).contains(&"n1".to_string())).await;
    assert!(found, "the new partition is read from its start: {:?}", memory_values(&h));
    settle(&q).await;
    // Partition 0 went back from offset 2: whether its new record is read depends on whether the
    // query saw the topic missing (then it restarts at the earliest offset) or already re-created
    // with the record (then offsets 0..1 are behind its position and lost) — as in Spark.
    let values = memory_values(&h);
    assert!(values == ["g0", "g1", "n0", "n1"] || values == ["g0", "g1", "n1"], "{values:?}");
    let losses = max_source_metric(&q, "numDataLossEvents");
    assert!(losses >= 1, "the rewound partition is counted as data loss");
    q.stop().await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_delivery_is_refused_before_anything_is_sent() {
    let broker = KafkaBroker::start();
    broker.create_topic("in", 1).await;
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let err = h
        .run_err(&format!(
            "CREATE STREAM s WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '{b}', 'subscribe' = 'in');
             CREATE SINK k WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '{b}', 'topic' = 'out',
                                 'deliveryGuarantee' = 'exactly-once');
             SET 'checkpointLocation' = '{chk}';
             INSERT INTO k SELECT value FROM s;",
            b = broker.bootstrap(),
            chk = dir.path().join("chk").display()
        ))
        .await;
    assert!(err.contains("sink 'k': deliveryGuarantee 'exactly-once' is not supported"), "{err}");
    assert!(!dir.path().join("chk/offsets").exists(), "nothing ran");
    assert_eq!(broker.partition_count("out"), 0, "nothing was sent");
    h.shutdown().await;
}

/// Runs a job over topic `aged` (offsets 0..6, two per batch) whose batch 1 — planned as
/// [2, 4) — finds the topic re-created with a single record when it runs: the offsets it
/// should read no longer exist. Returns the run's output and the job's directory.
async fn read_vanished_offsets(fail_on_data_loss: bool) -> (Output, tempfile::TempDir) {
    let broker = KafkaBroker::start();
    broker.create_topic("aged", 1).await;
    let records: Vec<String> = (0..6).map(|i| format!("r{i}")).collect();
    let refs: Vec<(i32, Option<&str>, &str)> = records.iter().map(|v| (0, None, v.as_str())).collect();
    broker.produce("aged", &refs).await;
    let dir = tempfile::tempdir().unwrap();
    let options = format!(
        "'subscribe' = 'aged', 'startingOffsets' = 'earliest', 'maxOffsetsPerTrigger' = '2', \
         'kafkaConsumer.pollTimeoutMs' = '10000', 'failOnDataLoss' = '{fail_on_data_loss}'"
    );
    write_values_job(dir.path(), &broker.bootstrap(), &options);
    let child = spawn_sluice(
        dir.path(),
        &["run", "job.sql", "--progress-json", "progress.jsonl"],
        &[("SLUICE_FAULT_PAUSE", "after-offsets:1:4000")],
    );
    assert!(wait_until(PATIENCE, || dir.path().join("chk/offsets/1").exists()), "batch 1 planned");
    broker.delete_topic("aged").await;
    broker.create_topic("aged", 1).await;
    broker.produce("aged", &[(0, None, "x0")]).await;
    (child.wait_with_output().unwrap(), dir)
}

fn committed_values(dir: &Path) -> Vec<String> {
    let out = run_sluice(dir, &["cat", "out"]);
    assert!(out.status.success(), "sluice cat: {}", stderr(&out));
    let mut v: Vec<String> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["v"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_offsets_fail_the_query_under_fail_on_data_loss() {
    let (out, dir) = read_vanished_offsets(true).await;
    assert!(!out.status.success(), "sluice run must fail");
    let err = stderr(&out);
    assert!(err.contains("aged-0: cannot fetch offsets [2, 4); the partition now holds [0, 1)"), "{err}");
    assert!(err.contains("\"failOnDataLoss\" to \"false\""), "{err}");
    assert!(!dir.path().join("chk/commits/1").exists(), "batch 1 is not committed");
    assert_eq!(committed_values(dir.path()), vec!["r0", "r1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_offsets_are_counted_and_skipped_without_fail_on_data_loss() {
    let (out, dir) = read_vanished_offsets(false).await;
    assert_success(&out);
    assert_eq!(committed_values(dir.path()), vec!["r0", "r1"], "batches 1 and 2 found nothing to read");
    let lost: u64 = read_progress(dir.path())
        .iter()
        .filter_map(|p| p["sources"][0]["metrics"]["numLostOffsets"].as_str().and_then(|v| v.parse::<u64>().ok()))
        .sum();
    assert_eq!(lost, 4, "offsets 2..6 of the old topic are counted as lost");
}

/// A query over topics `doomed` (one record, read) and `kept`, and then `doomed` is deleted.
async fn delete_a_subscribed_topic(fail_on_data_loss: bool) -> (KafkaBroker, Harness, sluice_driver::StreamingQuery) {
    let broker = KafkaBroker::start();
    broker.create_topic("doomed", 1).await;
    broker.create_topic("kept", 1).await;
    broker.produce("doomed", &[(0, None, "d0")]).await;
    let h = Harness::start().await;
    let options =
        format!("'subscribe' = 'doomed,kept', 'startingOffsets' = 'earliest', 'failOnDataLoss' = '{fail_on_data_loss}'");
    let q = values_query(&h, &broker, &options).await;
    settle(&q).await;
    assert_eq!(memory_values(&h), vec!["d0"]);
    broker.delete_topic("doomed").await;
    (broker, h, q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_fails_the_query_under_fail_on_data_loss() {
    let (broker, h, q) = delete_a_subscribed_topic(true).await;
    broker.produce("kept", &[(0, None, "k0")]).await;
    let err = tokio::time::timeout(PATIENCE, q.await_termination()).await.expect("the query stops").expect_err("the query fails");
    let line = err.one_line();
    assert!(line.contains("[doomed-0] are gone"), "{line}");
    assert!(line.contains("set the source option \"failOnDataLoss\" to \"false\""), "{line}");
    assert_eq!(memory_values(&h), vec!["d0"], "nothing of the failed batch reached the sink");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_is_counted_and_skipped_without_fail_on_data_loss() {
    let (broker, h, q) = delete_a_subscribed_topic(false).await;
    broker.produce("kept", &[(0, None, "k0"), (0, None, "k1")]).await;
    let found = wait_until_async(|| memory_values(&h).len() == 3).await;
    assert!(found, "the query goes on with the remaining topic: {:?}", memory_values(&h));
    assert_eq!(memory_values(&h), vec!["d0", "k0", "k1"]);
    let losses = max_source_metric(&q, "numDataLossEvents");
    assert_eq!(losses, 1, "the deleted partition is counted once in progress");
    assert!(q.is_active(), "the query is still running");
    q.stop().await.unwrap();
    h.shutdown().await;
}

#[test]
fn a_broker_down_at_start_fails_with_a_clear_error_and_an_untouched_checkpoint() {
    let dead = sluice_tests::services::free_port();
    let dir = tempfile::tempdir().unwrap();
    write_values_job(
        dir.path(),
        &format!("127.0.0.1:{dead}"),
        "'subscribe' = 'events', 'kafka.default.api.timeout.ms' = '1000', 'fetchOffset.numRetries' = '1'",
    );
    let out = run_sluice(dir.path(), &["run", "job.sql"]);
    assert!(!out.status.success(), "sluice run must fail");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("from Kafka at 127.0.0.1:{dead} failed after 2 attempts")),
        "the error names the brokers and the attempts: {err}"
    );
    assert!(!dir.path().join("chk/offsets/0").exists(), "no batch was planned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_lost_mid_stream_fails_the_batch_after_retries_and_commits_nothing() {
    let mut broker = KafkaBroker::start();
    broker.create_topic("events", 2).await;
    broker.produce("events", &[(0, None, "a"), (1, None, "b"), (0, None, "c")]).await;
    let dir = tempfile::tempdir().unwrap();
    write_values_job(
        dir.path(),
        &broker.bootstrap(),
        "'subscribe' = 'events', 'startingOffsets' = 'earliest', 'kafkaConsumer.pollTimeoutMs' = '1500', \
         'kafka.default.api.timeout.ms' = '1500'",
    );
    // The driver plans batch 0 while the broker is up, then waits 4 s before running it.
    let child = spawn_sluice(dir.path(), &["run", "job.sql"], &[("SLUICE_FAULT_PAUSE", "after-offsets:0:4000")]);
    assert!(wait_until(PATIENCE, || dir.path().join("chk/offsets/0").exists()), "batch 0 planned");
    broker.kill();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "sluice run must fail");
    let err = stderr(&out);
    assert!(err.contains("batch 0 failed after 6 attempts"), "{err}");
    assert!(err.contains("reading events-") && err.contains(&format!("from Kafka at {}", broker.bootstrap())), "{err}");
    assert!(!dir.path().join("chk/commits/0").exists(), "the failed batch is not committed");
    assert!(!dir.path().join("out/_spark_metadata/0").exists(), "the file sink committed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_columns_round_trip_through_a_topic_with_headers() {
    let broker = KafkaBroker::start();
    broker.create_topic("rt", 2).await;
    let b = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start().await;
    let queries = h
        .run(&format!(
            "CREATE STREAM nums (n BIGINT) WITH ('connector' = 'memory');
             CREATE STREAM back WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '{b}', 'subscribe' = 'rt',
                                      'startingOffsets' = 'earliest', 'includeHeaders' = 'true');
             CREATE SINK k WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = '{b}', 'kafka.batch.num.messages' = '1');
             CREATE SINK out WITH ('connector' = 'memory');
             SET 'checkpointLocation' = '{chk}';
             INSERT INTO k
             SELECT 'rt' AS topic, CAST(n AS STRING) AS value, concat('k', CAST(n AS STRING)) AS key,
                    CAST(n % 2 AS INT) AS partition,
                    make_array(named_struct('key', 'h', 'value', CAST(concat('hv', CAST(n AS STRING)) AS BINARY))) AS headers
             FROM nums;
             SET 'checkpointLocation' = '{chk}-back';
             INSERT INTO out SELECT CAST(key AS STRING) AS k, CAST(value AS STRING) AS v, partition, timestampType, headers FROM back;",
            chk = dir.path().join("chk").display()
        ))
        .await;
    h.session.memory_stream("nums").unwrap().add_data(sluice_tests::rows::longs("n", &[1, 2, 3])).unwrap();
    settle(&queries[0]).await;
    // (key, value, partition, timestampType, headers)
    type Row = (String, String, i32, i32, Vec<(String, String)>);
    let rows = || -> Vec<Row> {
        let mut out = Vec::new();
        for (_, bs) in h.session.memory_table("out").map(|t| t.batches).unwrap_or_default() {
            for b in bs {
                let headers = b.column(4).as_list::<i32>();
                for i in 0..b.num_rows() {
                    let hs = headers.value(i);
                    let hs = hs.as_struct();
                    let pairs = (0..hs.len())
                        .map(|j| {
                            let key = hs.column(0).as_string::<i32>().value(j).to_string();
                            let value = String::from_utf8_lossy(hs.column(1).as_binary::<i32>().value(j)).into_owned();
                            (key, value)
                        })
                        .collect();
                    out.push((
                        b.column(0).as_string::<i32>().value(i).to_string(),
                        b.column(1).as_string::<i32>().value(i).to_string(),
                        b.column(2).as_primitive::<Int32Type>().value(i),
                        b.column(3).as_primitive::<Int32Type>().value(i),
                        pairs,
                    ));
                }
            }
        }
        out.sort();
        out
    };
    assert!(wait_until_async(|| rows().len() == 3).await, "the records come back: {:?}", rows());
    let header = |n: i32| vec![("h".to_string(), format!("hv{n}"))];
    // key, value, partition from the columns; timestampType 0 = CreateTime; the headers.
    assert_eq!(
        rows(),
        vec![
            ("k1".into(), "1".into(), 1, 0, header(1)),
            ("k2".into(), "2".into(), 0, 0, header(2)),
            ("k3".into(), "3".into(), 1, 0, header(3)),
        ]
    );
    for q in &queries {
        q.stop().await.unwrap();
    }
    h.shutdown().await;
}
