//! Spark's unsupported-operation checks for query shapes (docs/semantics.md §5), with Spark's messages.

use sluice_tests::Harness;

const CATALOG: &str = "
CREATE STREAM s (value BIGINT, name STRING) WITH ('connector'='memory');
CREATE STREAM s2 (value BIGINT) WITH ('connector'='memory');
CREATE TABLE dim (value BIGINT, label STRING) WITH ('connector'='files','format'='json','path'='/nonexistent-sluice-dim');
CREATE SINK out WITH ('connector'='memory');
";

async fn rejected(sql: &str) -> String {
    let h = Harness::start().await;
    let e = h.run_err(&format!("{CATALOG} {sql}")).await;
    h.shutdown().await;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_shapes_fail_with_sparks_messages() {
    let cases = [
        ("INSERT INTO out SELECT value FROM s ORDER BY value;", "Sorting is not supported on streaming DataFrames/Datasets, unless it is on aggregated DataFrame/Dataset in Complete output mode"),
        ("INSERT INTO out SELECT value FROM s UNION ALL SELECT value FROM dim;", "Union between streaming and batch DataFrames/Datasets is not supported"),
        ("INSERT INTO out SELECT value, row_number() OVER (ORDER BY value) FROM s;", "NON_TIME_WINDOW_NOT_SUPPORTED_IN_STREAMING"),
        ("INSERT INTO out SELECT d.label FROM dim d LEFT JOIN s ON d.value = s.value;", "LeftOuter join with a streaming DataFrame/Dataset on the right and a static DataFrame/Dataset on the left is not supported"),
        ("INSERT INTO out SELECT s.value FROM s FULL JOIN dim ON s.value = dim.value;", "FullOuter joins with streaming DataFrames/Datasets on the left and a static DataFrame/Dataset on the right is not supported"),
        ("INSERT INTO out SELECT 1 AS one;", "Queries without streaming sources cannot be executed with writeStream.start()"),
        ("INSERT INTO out SELECT value FROM s LIMIT 3 OFFSET 1;", "Offset is not supported on streaming DataFrames/Datasets"),
    ];
    for (sql, want) in cases {
        let e = rejected(sql).await;
        assert!(e.contains(want), "{sql}\n  got: {e}\n  want: {want}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn union_of_two_streams_and_stream_static_inner_join_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.json"), "{\"value\":1,\"label\":\"one\"}\n{\"value\":2,\"label\":\"two\"}\n").unwrap();
    let h = Harness::start().await;
    let job = format!(
        "CREATE STREAM s (value BIGINT) WITH ('connector'='memory');
         CREATE STREAM s2 (value BIGINT) WITH ('connector'='memory');
         CREATE TABLE dim (value BIGINT, label STRING) WITH ('connector'='files','format'='json','path'='{}');
         CREATE SINK u WITH ('connector'='memory');
         CREATE SINK j WITH ('connector'='memory');
         INSERT INTO u SELECT value FROM s UNION ALL SELECT value FROM s2;
         INSERT INTO j SELECT s.value, dim.label FROM s JOIN dim ON s.value = dim.value;",
        sluice_tests::path_lit(dir.path())
    );
    let qs = h.run(&job).await;
    h.session.memory_stream("s").unwrap().add_data(sluice_tests::rows::longs("value", &[1, 3])).unwrap();
    h.session.memory_stream("s2").unwrap().add_data(sluice_tests::rows::longs("value", &[2])).unwrap();
    for q in &qs {
        sluice_tests::settle(q).await;
    }
    let get = |n: &str| sluice_tests::rows::sorted_rows(&h.session.memory_table(n).unwrap().all_rows());
    assert_eq!(get("u"), vec!["(1)", "(2)", "(3)"]);
    assert_eq!(get("j"), vec!["(1, one)"]);
    // The union query reads two sources, in plan order.
    assert_eq!(qs[0].last_progress().unwrap().sources.len(), 2);
    for q in &qs {
        q.stop().await.unwrap();
    }
    h.shutdown().await;
}

/// Stream-stream joins: Append only, an equality predicate, and for outer and semi joins a
/// watermark that bounds the preserved side's state (docs/semantics.md §5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_stream_join_rules_follow_spark() {
    let streams = "
        CREATE STREAM a (k BIGINT, t TIMESTAMP, WATERMARK FOR t AS t - INTERVAL '10' SECOND) WITH ('connector'='memory');
        CREATE STREAM b (k BIGINT, t TIMESTAMP, WATERMARK FOR t AS t - INTERVAL '10' SECOND) WITH ('connector'='memory');
        CREATE STREAM c (k BIGINT, t TIMESTAMP) WITH ('connector'='memory');
        CREATE SINK out WITH ('connector'='memory');";
    let range = "a.k = b.k AND a.t BETWEEN b.t - INTERVAL '5' SECOND AND b.t + INTERVAL '5' SECOND";
    let refused = [
        ("SET 'outputMode' = 'update'; INSERT INTO out SELECT a.k FROM a JOIN b ON a.k = b.k;".to_string(),
         "Join between two streaming DataFrames/Datasets is not supported in Update output mode, only in Append output mode".to_string()),
        ("INSERT INTO out SELECT a.k FROM a JOIN b ON a.t < b.t;".to_string(), "Stream-stream join without equality predicate is not supported".to_string()),
        ("INSERT INTO out SELECT a.k FROM a LEFT JOIN c ON a.k = c.k;".to_string(),
         "Stream-stream LeftOuter join between two streaming DataFrame/Datasets is not supported without a watermark in the join keys, or a watermark on the nullable side and an appropriate range condition".to_string()),
        // The nullable side (c) has no watermark: the range cannot bound the left side's state.
        ("INSERT INTO out SELECT a.k FROM a LEFT JOIN c ON a.k = c.k AND a.t BETWEEN c.t - INTERVAL '5' SECOND AND c.t;".to_string(),
         "Stream-stream LeftOuter join between two streaming DataFrame/Datasets is not supported without a watermark".to_string()),
        ("INSERT INTO out SELECT a.k FROM a FULL JOIN b ON a.k = b.k;".to_string(),
         "Stream-stream FullOuter join between two streaming DataFrame/Datasets is not supported without a watermark".to_string()),
        ("INSERT INTO out SELECT a.k FROM a LEFT SEMI JOIN c ON a.k = c.k;".to_string(),
         "Stream-stream LeftSemi join between two streaming DataFrame/Datasets is not supported without a watermark".to_string()),
        ("INSERT INTO out SELECT a.k FROM a LEFT ANTI JOIN b ON a.k = b.k;".to_string(),
         "LeftAnti joins with a streaming DataFrame/Dataset on the right are not supported".to_string()),
        (format!("SET 'outputMode' = 'complete'; INSERT INTO out SELECT a.k FROM a JOIN b ON {range};"),
         "Complete output mode not supported when there are no streaming aggregations on streaming DataFrames/Datasets".to_string()),
    ];
    for (sql, want) in refused {
        let h = Harness::start().await;
        let e = h.run_err(&format!("{streams} {sql}")).await;
        h.shutdown().await;
        assert!(e.contains(&want), "{sql}\n  got: {e}\n  want: {want}");
    }
    // Allowed: inner without any watermark (state grows), and every outer and semi join whose
    // range condition bounds the preserved side(s).
    let allowed = [
        "INSERT INTO out SELECT a.k FROM a JOIN c ON a.k = c.k;".to_string(),
        "INSERT INTO out SELECT k FROM a JOIN c USING (k);".to_string(),
        format!("INSERT INTO out SELECT a.k FROM a LEFT JOIN b ON {range};"),
        format!("INSERT INTO out SELECT b.k FROM a RIGHT JOIN b ON {range};"),
        format!("INSERT INTO out SELECT a.k, b.k FROM a FULL JOIN b ON {range};"),
        // Spark asks a full outer join for one bounded side: `a.t > b.t` bounds a.
        "INSERT INTO out SELECT a.k FROM a FULL JOIN b ON a.k = b.k AND a.t > b.t;".to_string(),
        format!("INSERT INTO out SELECT a.k FROM a LEFT SEMI JOIN b ON {range};"),
    ];
    for sql in allowed {
        let h = Harness::start().await;
        let qs = h.run(&format!("{streams} {sql}")).await;
        for q in qs {
            q.stop().await.unwrap();
        }
        h.shutdown().await;
    }
}
