//! State partitions survive moving between executors, restarts over an uncommitted batch, and
//! stay bounded under a watermark.

use sluice_tests::oracle::StreamTest;
use sluice_tests::Harness;

fn windowed_count(mode: &str) -> String {
    format!(
        "CREATE STREAM input (value BIGINT, eventTime AS timestamp_seconds(value), WATERMARK FOR eventTime AS eventTime - INTERVAL '10' SECOND) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = '{mode}';
         SET 'spark.sql.shuffle.partitions' = '6';
         INSERT INTO out SELECT CAST(w.start AS BIGINT) AS start, cnt FROM (
           SELECT window(eventTime, '5 seconds') AS w, count(*) AS cnt FROM input GROUP BY window(eventTime, '5 seconds'));"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_restored_on_another_executor_give_the_same_results() {
    // T2's steps, with the owner of a third of the partitions stopped after the first batch.
    let mut t = StreamTest::start_on(&windowed_count("update"), 3).await;
    t.add_longs(&[10, 11, 12, 13, 14, 15]);
    t.check_new_answer(&["(10, 5)", "(15, 1)"]).await;
    let victim = t.harness.executor_ids()[0].clone();
    t.harness.stop_executor(&victim).await;
    t.add_longs(&[25]);
    t.check_new_answer(&["(25, 1)"]).await;
    t.add_longs(&[10, 25]);
    t.check_new_answer(&["(25, 2)"]).await;
    assert_eq!(t.last_progress().state_operators[0].num_rows_total, 2);
    t.add_longs(&[11, 12, 26]);
    t.check_new_answer(&["(25, 3)"]).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_over_an_uncommitted_batch_reruns_it_from_the_recorded_state_version() {
    let job = "CREATE STREAM input (value BIGINT) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = 'update';
         SET 'spark.sql.shuffle.partitions' = '5';
         INSERT INTO out SELECT value, count(*) AS cnt FROM input GROUP BY value;";
    let mut t = StreamTest::start(job).await;
    t.add_longs(&[3]);
    t.check_last_batch(&["(3, 1)"]).await;
    t.add_longs(&[3, 2]);
    t.check_last_batch(&["(3, 2)", "(2, 1)"]).await;
    t.stop().await;
    // The driver died after the state was written for batch 1 but before commits/1.
    let commits = t.checkpoint.path().join("commits");
    let last: u64 =
        std::fs::read_dir(&commits).unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).max().unwrap();
    std::fs::remove_file(commits.join(last.to_string())).unwrap();
    t.start_again().await;
    assert!(commits.join(last.to_string()).exists(), "the batch re-ran and committed");
    // Counts continue from exactly-once state: the re-run did not apply (3, 2) twice.
    t.add_longs(&[3, 2, 1]);
    t.check_last_batch(&["(3, 3)", "(2, 2)", "(1, 1)"]).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_stays_bounded_over_200_batches() {
    let h = Harness::start().await;
    let q = h
        .run(
            "CREATE STREAM r (timestamp TIMESTAMP, value BIGINT, WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND)
               WITH ('connector'='rate-micro-batch','rowsPerBatch'='20','advanceMillisPerBatch'='1000','numPartitions'='1');
             CREATE SINK out WITH ('connector' = 'memory');
             SET 'outputMode' = 'append';
             SET 'spark.sql.shuffle.partitions' = '2';
             INSERT INTO out SELECT window(timestamp, '5 seconds') AS w, count(*) AS cnt FROM r GROUP BY window(timestamp, '5 seconds');",
        )
        .await
        .remove(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    while q.last_progress().map_or(0, |p| p.batch_id) < 200 {
        assert!(std::time::Instant::now() < deadline, "200 batches took too long");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    q.stop().await.unwrap();
    let totals: Vec<u64> = q.recent_progress().iter().map(|p| p.state_operators[0].num_rows_total).collect();
    // One window of 5 one-second batches is open, plus at most two awaiting the 5 s watermark.
    assert!(totals.iter().all(|t| *t <= 3), "state grew: {totals:?}");
    // Every closed window was emitted exactly once with all its rows.
    let emitted: usize = h.session.memory_table("out").unwrap().all_rows().iter().map(|b| b.num_rows()).sum();
    assert!(emitted >= 35, "windows were emitted: {emitted}");
    let counts: Vec<String> = sluice_tests::rows::rows(&h.session.memory_table("out").unwrap().all_rows())
        .into_iter()
        .map(|r| r.rsplit(", ").next().unwrap().trim_end_matches(')').to_string())
        .collect();
    assert!(counts.iter().all(|c| c == "100"), "each 5 s window holds 5 batches × 20 rows: {counts:?}");
    h.shutdown().await;
}

/// The delta bundles of `chk` for operator 0: version → (bundle files, partitions the manifest
/// names, or `None` without a manifest).
fn bundles(chk: &std::path::Path) -> std::collections::BTreeMap<u64, (usize, Option<Vec<u64>>)> {
    let dir = chk.join("state/0/deltas");
    let Ok(versions) = std::fs::read_dir(&dir) else { return Default::default() };
    versions
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u64 = e.file_name().to_str()?.parse().ok()?;
            let names: Vec<String> =
                std::fs::read_dir(e.path()).ok()?.filter_map(|f| f.ok()?.file_name().into_string().ok()).collect();
            let count = names.iter().filter(|n| n.ends_with(".bundle")).count();
            let manifest = std::fs::read(e.path().join("manifest")).ok().map(|bytes| {
                // The sealed manifest: a 17-byte checksum header, then JSON.
                let json: serde_json::Value = serde_json::from_slice(&bytes[17..]).expect("a manifest");
                json["deltas"].as_array().unwrap().iter().map(|d| d["partition"].as_u64().unwrap()).collect()
            });
            Some((version, (count, manifest)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_go_one_bundle_per_executor_and_retention_keeps_every_retained_version_loadable() {
    let job = "CREATE STREAM input (value BIGINT) WITH ('connector' = 'memory');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'outputMode' = 'update';
         SET 'spark.sql.shuffle.partitions' = '8';
         SET 'spark.sql.streaming.minBatchesToRetain' = '3';
         SET 'spark.sql.streaming.stateStore.minDeltasForSnapshot' = '1';
         SET 'spark.sql.streaming.stateStore.maintenanceInterval' = '50ms';
         INSERT INTO out SELECT value, count(*) AS cnt FROM input GROUP BY value;";
    let mut t = StreamTest::start_on(job, 2).await;
    let chk = t.checkpoint.path().to_path_buf();
    // Batch 0 changes the keys 0..16, which land in most of the 8 partitions.
    let mut counts = std::collections::BTreeMap::<i64, u64>::new();
    let mut add = |t: &StreamTest, values: Vec<i64>| -> Vec<String> {
        t.add_longs(&values);
        let mut touched: Vec<i64> = values.clone();
        touched.sort();
        touched.dedup();
        for v in &values {
            *counts.entry(*v).or_default() += 1;
        }
        touched.iter().map(|v| format!("({v}, {})", counts[v])).collect()
    };
    let expected = add(&t, (0..16).collect());
    t.check_last_batch(&expected.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let first = bundles(&chk);
    let (files, partitions) = first.get(&1).expect("version 1 has a bundle directory");
    let partitions = partitions.as_ref().expect("version 1 has a manifest");
    assert!((1..=2).contains(files), "one bundle per executor, not per partition: {first:?}");
    assert!(partitions.len() > 2 && partitions.iter().all(|p| *p < 8), "{partitions:?}");
    for p in 0..8 {
        let own = chk.join(format!("state/0/{p}"));
        let deltas = std::fs::read_dir(&own)
            .map(|d| d.filter(|f| f.as_ref().unwrap().path().extension() == Some("delta".as_ref())).count());
        assert_eq!(deltas.unwrap_or(0), 0, "no per-partition delta file in {own:?}");
    }

    // More batches, one key each, slowly enough for maintenance (snapshots) and the driver's
    // retention to run, until retention has deleted version 1.
    let mut batch = 0;
    while bundles(&chk).contains_key(&1) {
        batch += 1;
        assert!(batch <= 100, "retention never deleted version 1: {:?}", bundles(&chk));
        let expected = add(&t, vec![batch % 5]);
        t.check_last_batch(&expected.iter().map(String::as_str).collect::<Vec<_>>()).await;
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }

    // A new run restores every partition from what retention left.
    t.stop().await;
    t.start_again().await;
    let expected = add(&t, (0..16).collect());
    t.check_last_batch(&expected.iter().map(String::as_str).collect::<Vec<_>>()).await;
    t.finish().await;
}
