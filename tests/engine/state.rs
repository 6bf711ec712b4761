//! State partitions survive moving between executors, restarts over an uncommitted batch, and
//! stay bounded under a watermark.

use sluice_tests::oracle::StreamTest;
use sluice_tests::{settle, Harness};

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
    t.query.take().unwrap().stop().await.unwrap();
    // The driver died after the state was written for batch 1 but before commits/1.
    let commits = t.checkpoint.path().join("commits");
    let last: u64 =
        std::fs::read_dir(&commits).unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).max().unwrap();
    std::fs::remove_file(commits.join(last.to_string())).unwrap();
    t.query = Some(
        t.harness
            .run(&format!("SET 'checkpointLocation' = '{}';\n{job}", sluice_tests::path_lit(t.checkpoint.path())))
            .await
            .remove(0),
    );
    settle(t.query.as_ref().unwrap()).await;
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
