//! Stream-static joins (docs/semantics.md §7): the static side is read again every micro-batch,
//! so a changed dimension file shows in the next batch; inner, left outer with the stream on the
//! left, right outer with the stream on the right and left semi, with an extra non-equi
//! condition. Expected rows are worked out by hand from the semantics.

use sluice_tests::rows::{sorted_rows, str_long};
use sluice_tests::Harness;

fn write_dim(dir: &std::path::Path, rows: &[(&str, &str)]) {
    let text: String = rows.iter().map(|(u, c)| format!("{{\"user_id\":\"{u}\",\"country\":\"{c}\"}}\n")).collect();
    std::fs::write(dir.join("dim.json"), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_static_joins_of_each_type_see_the_static_side_of_their_batch() {
    let dir = tempfile::tempdir().unwrap();
    write_dim(dir.path(), &[("u1", "FR"), ("u2", "DE"), ("u9", "US")]);
    let h = Harness::start().await;
    let job = format!(
        "CREATE STREAM s (user_id STRING, amount BIGINT) WITH ('connector'='memory');
         CREATE TABLE dim (user_id STRING, country STRING) WITH ('connector'='files','format'='json','path'='{}');
         CREATE SINK inner_out WITH ('connector'='memory');
         CREATE SINK left_out WITH ('connector'='memory');
         CREATE SINK right_out WITH ('connector'='memory');
         CREATE SINK semi_out WITH ('connector'='memory');
         SET 'spark.sql.shuffle.partitions' = '3';
         INSERT INTO inner_out SELECT s.user_id, s.amount, d.country FROM s JOIN dim d ON s.user_id = d.user_id;
         INSERT INTO left_out SELECT s.user_id, s.amount, d.country FROM s LEFT JOIN dim d
           ON s.user_id = d.user_id AND s.amount >= 10;
         INSERT INTO right_out SELECT s.user_id, d.country FROM dim d RIGHT JOIN s ON d.user_id = s.user_id;
         INSERT INTO semi_out SELECT s.user_id, s.amount FROM s LEFT SEMI JOIN dim d ON s.user_id = d.user_id;",
        sluice_tests::path_lit(dir.path())
    );
    let qs = h.run(&job).await;
    let stream = h.session.memory_stream("s").unwrap();
    let settle = || async {
        for q in &qs {
            sluice_tests::settle(q).await;
        }
    };
    let get = |n: &str| sorted_rows(&h.session.memory_table(n).unwrap().all_rows());

    stream.add_data(str_long("user_id", "amount", &[("u1", 5), ("u2", 20), ("u3", 30)])).unwrap();
    settle().await;
    assert_eq!(get("inner_out"), vec!["(u1, 5, FR)", "(u2, 20, DE)"]);
    assert_eq!(get("left_out"), vec!["(u1, 5, null)", "(u2, 20, DE)", "(u3, 30, null)"]);
    assert_eq!(get("right_out"), vec!["(u1, FR)", "(u2, DE)", "(u3, null)"]);
    assert_eq!(get("semi_out"), vec!["(u1, 5)", "(u2, 20)"]);

    // The dimension changes between batches: the next batch joins with the new rows, and the
    // rows already emitted stay as they were.
    write_dim(dir.path(), &[("u1", "ES"), ("u3", "IT")]);
    stream.add_data(str_long("user_id", "amount", &[("u1", 50), ("u3", 1), ("u2", 7)])).unwrap();
    settle().await;
    assert_eq!(get("inner_out"), vec!["(u1, 5, FR)", "(u1, 50, ES)", "(u2, 20, DE)", "(u3, 1, IT)"]);
    assert_eq!(
        get("left_out"),
        vec!["(u1, 5, null)", "(u1, 50, ES)", "(u2, 20, DE)", "(u2, 7, null)", "(u3, 1, null)", "(u3, 30, null)"]
    );
    assert_eq!(get("right_out"), vec!["(u1, ES)", "(u1, FR)", "(u2, DE)", "(u2, null)", "(u3, IT)", "(u3, null)"]);
    assert_eq!(get("semi_out"), vec!["(u1, 5)", "(u1, 50)", "(u2, 20)", "(u3, 1)"]);
    for q in &qs {
        q.stop().await.unwrap();
    }
    h.shutdown().await;
}
