//! Joins feeding the rest of a query (docs/semantics.md §7). Stream-static joins: the static side
//! is read again every micro-batch, so a changed dimension file shows in the next batch; inner,
//! left outer with the stream on the left, right outer with the stream on the right and left
//! semi, with an extra non-equi condition; enrichment feeding an aggregation and a dedup. A
//! stream-stream join feeding a windowed aggregation, which sees the join's output watermark.
//! Expected rows are worked out by hand from the semantics.

use sluice_tests::oracle::StreamTest;
use sluice_tests::rows::{batch, long_col, sorted_rows, str_col, str_long};
use sluice_tests::Harness;

fn write_dim(dir: &std::path::Path, rows: &[(&str, &str)]) {
    let text: String = rows.iter().map(|(u, c)| format!("{{\"user_id\":\"{u}\",\"country\":\"{c}\"}}\n")).collect();
    std::fs::write(dir.join("dim.json"), text).unwrap();
}

/// Queries over a memory stream `s (user_id, amount)` and a JSON dimension table `dim (user_id,
/// country)` whose file the test rewrites between batches.
struct DimJob {
    dir: tempfile::TempDir,
    h: Harness,
    qs: Vec<sluice_driver::StreamingQuery>,
}

impl DimJob {
    /// Starts `queries` (their sinks and settings included) with `dim` holding `rows`.
    async fn start(rows: &[(&str, &str)], queries: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_dim(dir.path(), rows);
        let h = Harness::start().await;
        let job = format!(
            "CREATE STREAM s (user_id STRING, amount BIGINT) WITH ('connector'='memory');
             CREATE TABLE dim (user_id STRING, country STRING) WITH ('connector'='files','format'='json','path'='{}');
             SET 'spark.sql.shuffle.partitions' = '3';
             {queries}",
            sluice_tests::path_lit(dir.path())
        );
        let qs = h.run(&job).await;
        Self { dir, h, qs }
    }

    /// Rewrites the dimension table.
    fn write_dim(&self, rows: &[(&str, &str)]) {
        write_dim(self.dir.path(), rows);
    }

    /// Adds one block to `s` and waits for every query to process it.
    async fn add(&self, rows: &[(&str, i64)]) {
        self.h.session.memory_stream("s").unwrap().add_data(str_long("user_id", "amount", rows)).unwrap();
        for q in &self.qs {
            sluice_tests::settle(q).await;
        }
    }

    /// Every row sink `n` received, sorted.
    fn all(&self, n: &str) -> Vec<String> {
        sorted_rows(&self.h.session.memory_table(n).unwrap().all_rows())
    }

    /// The rows of sink `n`'s last batch, sorted.
    fn last(&self, n: &str) -> Vec<String> {
        sorted_rows(&self.h.session.memory_table(n).unwrap().last_batch())
    }

    async fn finish(self) {
        for q in &self.qs {
            q.stop().await.unwrap();
        }
        self.h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_static_joins_of_each_type_see_the_static_side_of_their_batch() {
    let j = DimJob::start(
        &[("u1", "FR"), ("u2", "DE"), ("u9", "US")],
        "CREATE SINK inner_out WITH ('connector'='memory');
         CREATE SINK left_out WITH ('connector'='memory');
         CREATE SINK right_out WITH ('connector'='memory');
         CREATE SINK semi_out WITH ('connector'='memory');
         INSERT INTO inner_out SELECT s.user_id, s.amount, d.country FROM s JOIN dim d ON s.user_id = d.user_id;
         INSERT INTO left_out SELECT s.user_id, s.amount, d.country FROM s LEFT JOIN dim d
           ON s.user_id = d.user_id AND s.amount >= 10;
         INSERT INTO right_out SELECT s.user_id, d.country FROM dim d RIGHT JOIN s ON d.user_id = s.user_id;
         INSERT INTO semi_out SELECT s.user_id, s.amount FROM s LEFT SEMI JOIN dim d ON s.user_id = d.user_id;",
    )
    .await;
    j.add(&[("u1", 5), ("u2", 20), ("u3", 30)]).await;
    assert_eq!(j.all("inner_out"), vec!["(u1, 5, FR)", "(u2, 20, DE)"]);
    assert_eq!(j.all("left_out"), vec!["(u1, 5, null)", "(u2, 20, DE)", "(u3, 30, null)"]);
    assert_eq!(j.all("right_out"), vec!["(u1, FR)", "(u2, DE)", "(u3, null)"]);
    assert_eq!(j.all("semi_out"), vec!["(u1, 5)", "(u2, 20)"]);

    // The dimension changes between batches: the next batch joins with the new rows, and the
    // rows already emitted stay as they were.
    j.write_dim(&[("u1", "ES"), ("u3", "IT")]);
    j.add(&[("u1", 50), ("u3", 1), ("u2", 7)]).await;
    assert_eq!(j.all("inner_out"), vec!["(u1, 5, FR)", "(u1, 50, ES)", "(u2, 20, DE)", "(u3, 1, IT)"]);
    assert_eq!(
        j.all("left_out"),
        vec!["(u1, 5, null)", "(u1, 50, ES)", "(u2, 20, DE)", "(u2, 7, null)", "(u3, 1, null)", "(u3, 30, null)"]
    );
    assert_eq!(j.all("right_out"), vec!["(u1, ES)", "(u1, FR)", "(u2, DE)", "(u2, null)", "(u3, IT)", "(u3, null)"]);
    assert_eq!(j.all("semi_out"), vec!["(u1, 5)", "(u1, 50)", "(u2, 20)", "(u3, 1)"]);
    j.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrichment_feeds_an_aggregation_and_a_dedup() {
    let j = DimJob::start(
        &[("u1", "FR"), ("u2", "DE"), ("u3", "FR")],
        "CREATE SINK per_country WITH ('connector'='memory');
         CREATE SINK first_per_country WITH ('connector'='memory');
         SET 'outputMode' = 'update';
         INSERT INTO per_country SELECT d.country, count(*) AS n, sum(s.amount) AS total
           FROM s JOIN dim d ON s.user_id = d.user_id GROUP BY d.country;
         INSERT INTO first_per_country SELECT country, user_id FROM (
           SELECT DISTINCT ON (country) d.country, s.user_id FROM s LEFT JOIN dim d ON s.user_id = d.user_id);",
    )
    .await;
    j.add(&[("u1", 5), ("u2", 20), ("u3", 30), ("u9", 1)]).await;
    assert_eq!(j.last("per_country"), vec!["(DE, 1, 20)", "(FR, 2, 35)"]);
    // u9 has no user row: its country is NULL, a key of its own.
    assert_eq!(j.all("first_per_country"), vec!["(DE, u2)", "(FR, u1)", "(null, u9)"]);

    // u2 moves to FR and u3 leaves the table: the next batch counts u2 in FR and drops u3.
    j.write_dim(&[("u1", "FR"), ("u2", "FR"), ("u4", "ES")]);
    j.add(&[("u2", 7), ("u4", 2), ("u3", 100)]).await;
    assert_eq!(j.last("per_country"), vec!["(ES, 1, 2)", "(FR, 3, 42)"]);
    assert_eq!(j.all("first_per_country"), vec!["(DE, u2)", "(ES, u4)", "(FR, u1)", "(null, u9)"]);
    j.finish().await;
}

/// Window of 10 s over the click time of clicks within 5 s of their impression.
const JOIN_THEN_COUNT: &str = "
    CREATE STREAM imps (ad STRING, t BIGINT, it AS timestamp_seconds(t),
      WATERMARK FOR it AS it - INTERVAL '10' SECOND) WITH ('connector' = 'memory');
    CREATE STREAM clicks (ad STRING, t BIGINT, ct AS timestamp_seconds(t),
      WATERMARK FOR ct AS ct - INTERVAL '10' SECOND) WITH ('connector' = 'memory');
    CREATE SINK out WITH ('connector' = 'memory');
    SET 'spark.sql.shuffle.partitions' = '3';
    INSERT INTO out SELECT CAST(w.start AS BIGINT) AS start, n FROM (
      SELECT window(c.ct, '10 seconds') AS w, count(*) AS n
      FROM imps i JOIN clicks c ON i.ad = c.ad AND c.ct BETWEEN i.it AND i.it + INTERVAL '5' SECOND
      GROUP BY window(c.ct, '10 seconds'));";

fn ad_times(rows: &[(&str, i64)]) -> arrow::array::RecordBatch {
    batch(vec![("ad", str_col(rows.iter().map(|r| r.0))), ("t", long_col(rows.iter().map(|r| r.1)))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stream_join_feeds_an_append_aggregation_with_its_output_watermark() {
    let mut t = StreamTest::start(JOIN_THEN_COUNT).await;
    // Pairs: (a: 1 → 3) in window [0, 10); b's click is too late for its impression.
    t.multi_add(vec![("imps", ad_times(&[("a", 1), ("b", 2)])), ("clicks", ad_times(&[("a", 3), ("b", 20)]))]).await;
    t.check_new_answer(&[]).await;
    // Pairs (c: 30 → 31) and (f: 12 → 15). The watermark becomes 20; the join's output
    // watermark — its state watermarks' minimum, 20 s − 5 s − 1 ms — closes [0, 10) only.
    // With the global watermark, [10, 20) would close too.
    t.multi_add(vec![("imps", ad_times(&[("c", 30), ("f", 12)])), ("clicks", ad_times(&[("c", 31), ("f", 15)]))]).await;
    t.check_new_answer(&["(0, 1)"]).await;
    // Watermark 30: output watermark 24.999 s closes [10, 20).
    t.multi_add(vec![("imps", ad_times(&[("g", 40)])), ("clicks", ad_times(&[("g", 41)]))]).await;
    t.check_new_answer(&["(10, 1)"]).await;
    let ops: Vec<String> = t.last_progress().state_operators.iter().map(|s| s.operator_name.clone()).collect();
    assert_eq!(ops, vec!["stateStoreSave", "symmetricHashJoin"]);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stream_left_semi_join_emits_each_left_row_once() {
    let job = "
        CREATE STREAM lefts (key STRING, t BIGINT, lt AS timestamp_seconds(t),
          WATERMARK FOR lt AS lt - INTERVAL '10' SECOND) WITH ('connector' = 'memory');
        CREATE STREAM rights (key STRING, t BIGINT, rt AS timestamp_seconds(t),
          WATERMARK FOR rt AS rt - INTERVAL '10' SECOND) WITH ('connector' = 'memory');
        CREATE SINK out WITH ('connector' = 'memory');
        SET 'spark.sql.shuffle.partitions' = '3';
        INSERT INTO out SELECT l.key, l.t FROM lefts l LEFT SEMI JOIN rights r
          ON l.key = r.key AND l.lt BETWEEN r.rt - INTERVAL '5' SECOND AND r.rt + INTERVAL '5' SECOND;";
    let rows = |r: &[(&str, i64)]| batch(vec![("key", str_col(r.iter().map(|x| x.0))), ("t", long_col(r.iter().map(|x| x.1)))]);
    let mut t = StreamTest::start(job).await;
    // Left rows are stored unmatched; the right row then matches (a, 10): emitted, marked.
    t.multi_add(vec![("lefts", rows(&[("a", 10), ("b", 10)])), ("rights", rows(&[("a", 12)]))]).await;
    t.check_new_answer(&["(a, 10)"]).await;
    t.assert_state_rows(&[3], &[3]);
    // A second match for (a, 10): already emitted, not again.
    t.add_batch_to("rights", rows(&[("a", 13)]));
    t.check_new_answer(&[]).await;
    t.assert_state_rows(&[4], &[1]);
    // A left row that matches stored right rows: emitted once, never stored.
    t.add_batch_to("lefts", rows(&[("a", 11)]));
    t.check_new_answer(&["(a, 11)"]).await;
    t.assert_state_rows(&[4], &[0]);
    // (b, 10) is out of (b, 16)'s range; (b, 14), stored first, is in it.
    t.multi_add(vec![("lefts", rows(&[("b", 14)])), ("rights", rows(&[("b", 16)]))]).await;
    t.check_new_answer(&["(b, 14)"]).await;
    t.assert_state_rows(&[6], &[2]);
    t.finish().await;
}

/// Counts per 10-second window of two streams, joined on the window (`{join}`, selecting
/// `{select}`): as in Nexmark q5, each window's rows reach the join in the batch whose
/// watermark closes them, so the join evicts them in the batch they arrive in.
fn closed_window_counts_job(join: &str, select: &str) -> String {
    format!(
        "CREATE STREAM a (k STRING, t BIGINT, ts AS timestamp_seconds(t),
           WATERMARK FOR ts AS ts - INTERVAL '0' SECOND) WITH ('connector' = 'memory');
         CREATE STREAM b (k STRING, t BIGINT, ts AS timestamp_seconds(t),
           WATERMARK FOR ts AS ts - INTERVAL '0' SECOND) WITH ('connector' = 'memory');
         CREATE VIEW ca AS SELECT window(ts, '10 seconds') AS w, count(*) AS n FROM a GROUP BY window(ts, '10 seconds');
         CREATE VIEW cb AS SELECT window(ts, '10 seconds') AS w, count(*) AS n FROM b GROUP BY window(ts, '10 seconds');
         CREATE SINK out WITH ('connector' = 'memory');
         SET 'spark.sql.shuffle.partitions' = '3';
         INSERT INTO out SELECT {select} FROM ca {join} cb ON ca.w = cb.w;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_join_evicts_in_the_batch_they_arrive_in_still_match_and_pad() {
    let rows = |r: &[i64]| batch(vec![("k", str_col(r.iter().map(|_| "k"))), ("t", long_col(r.iter().copied()))]);
    let a_start = "CAST(ca.w.start AS BIGINT)";
    let b_start = "CAST(cb.w.start AS BIGINT)";
    // (join, selected columns, new rows after step 1, after step 2).
    let cases: [(&str, String, &[&str], &[&str]); 4] = [
        ("JOIN", format!("{a_start}, ca.n, cb.n"), &["(0, 2, 1)"], &[]),
        ("LEFT JOIN", format!("{a_start}, ca.n, cb.n"), &["(0, 2, 1)"], &["(10, 1, null)"]),
        (
            "FULL OUTER JOIN",
            format!("{a_start}, ca.n, {b_start}, cb.n"),
            &["(0, 2, 0, 1)"],
            &["(10, 1, null, null)", "(null, null, 20, 1)"],
        ),
        ("LEFT SEMI JOIN", format!("{a_start}, ca.n"), &["(0, 2)"], &[]),
    ];
    for (join, select, first, second) in cases {
        let mut t = StreamTest::start(&closed_window_counts_job(join, &select)).await;
        // Watermark min(15, 21) = 15 closes [0, 10) on both sides: a counts 2 rows, b 1. Their
        // rows meet in the no-data batch that closes the window, which evicts them again.
        t.multi_add(vec![("a", rows(&[1, 2, 15])), ("b", rows(&[3, 21]))]).await;
        t.check_new_answer(first).await;
        // Watermark 31 closes [10, 20), where only a has a row, and [20, 30), where only b has.
        t.multi_add(vec![("a", rows(&[31])), ("b", rows(&[32]))]).await;
        t.check_new_answer(second).await;
        let join_state = &t.last_progress().state_operators[0];
        assert_eq!((join_state.operator_name.as_str(), join_state.num_rows_total), ("symmetricHashJoin", 0), "{join}");
        t.finish().await;
    }
}
