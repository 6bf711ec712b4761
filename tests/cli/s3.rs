//! Checkpoint, input and output on a real S3 server: every location is an `object_store` URL.

use std::process::Command;

use sluice_tests::binary::{sluice_bin, stderr, stdout};
use sluice_tests::services::S3Server;

fn sluice(dir: &std::path::Path, s3: &S3Server, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(sluice_bin());
    cmd.args(args).current_dir(dir).env("RUST_LOG", "warn");
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    cmd.output().expect("sluice runs")
}

#[test]
fn a_query_runs_entirely_on_s3_and_resumes_from_its_s3_checkpoint() {
    let s3 = S3Server::start("lake");
    let input = s3.root.path().join("lake/in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.json"), "{\"id\":1}\n{\"id\":2}\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.sql"),
        "CREATE STREAM ev (id BIGINT) WITH ('connector'='files','format'='json','path'='s3://lake/in');
         CREATE SINK o WITH ('connector'='files','format'='json','path'='s3://lake/out');
         SET 'checkpointLocation' = 's3://lake/chk';
         SET 'trigger' = 'availableNow';
         INSERT INTO o SELECT id, id * 2 AS twice FROM ev;",
    )
    .unwrap();
    let out = sluice(dir.path(), &s3, &["run", "job.sql"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The server stores objects as files: the checkpoint and the sink log are Spark's layout.
    let root = s3.root.path().join("lake");
    assert!(root.join("chk/metadata").is_file() && root.join("chk/offsets/0").is_file() && root.join("chk/commits/0").is_file());
    assert!(root.join("chk/sources/0/0").is_file(), "file source log in the checkpoint");
    assert!(root.join("out/_spark_metadata/0").is_file());

    // New input, second run: resumes at batch 1 from the S3 checkpoint.
    std::fs::write(input.join("b.json"), "{\"id\":3}\n").unwrap();
    let out = sluice(dir.path(), &s3, &["run", "job.sql"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(root.join("chk/commits/1").is_file());
    assert!(!root.join("chk/offsets/2").exists(), "nothing re-read");

    let cat = sluice(dir.path(), &s3, &["cat", "s3://lake/out"]);
    assert!(cat.status.success(), "{}", stderr(&cat));
    let mut lines: Vec<String> = stdout(&cat).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, vec!["{\"id\":1,\"twice\":2}", "{\"id\":2,\"twice\":4}", "{\"id\":3,\"twice\":6}"]);
}

/// The offsets WAL relies on create-if-absent writes to fence out a second driver; the S3
/// server used in tests must honour them, or the fencing tests would prove nothing.
#[test]
fn conditional_create_is_enforced_by_the_s3_server() {
    let s3 = S3Server::start("fence");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{}", s3.port))
        .with_allow_http(true)
        .with_bucket_name("fence")
        .with_region("us-east-1")
        .with_access_key_id(sluice_tests::services::S3_ACCESS_KEY)
        .with_secret_access_key(sluice_tests::services::S3_SECRET_KEY)
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use object_store::{ObjectStore, PutMode, PutOptions};
        let path = object_store::path::Path::from("chk/offsets/0");
        let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
        store.put_opts(&path, "first".into(), create()).await.unwrap();
        let second = store.put_opts(&path, "second".into(), create()).await;
        assert!(matches!(second, Err(object_store::Error::AlreadyExists { .. })), "{second:?}");
    });
}

/// The network between sluice and S3 drops connections — before a request arrives, after the
/// server acted on it but before its answer got back, halfway through an answer — while a
/// stateful query checkpoints, keeps state and commits file output on S3 over several batches.
/// Every batch commits exactly once: each distinct id once in the output, none lost.
#[test]
fn a_query_on_s3_behind_a_connection_dropping_network_commits_every_row_exactly_once() {
    let s3 = S3Server::start("lake");
    let input = s3.root.path().join("lake/in");
    std::fs::create_dir_all(&input).unwrap();
    // 8 files (one batch each) with ids repeated within and across files.
    let mut distinct = std::collections::BTreeSet::new();
    for f in 0..8u64 {
        let ids: Vec<u64> = (0..40).map(|i| (f * 29 + i * 7) % 150).collect();
        distinct.extend(ids.iter().copied());
        let text: String = ids.iter().map(|id| format!("{{\"id\":{id}}}\n")).collect();
        let path = input.join(format!("part-{f}.json"));
        std::fs::write(&path, text).unwrap();
        let mtime = std::time::SystemTime::now() - std::time::Duration::from_secs(600 - f * 10);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    }
    let proxy = sluice_tests::proxy::FlakyProxy::start(s3.port, 0.03, 7);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.sql"),
        "CREATE STREAM ev (id BIGINT) WITH ('connector'='files','format'='json','path'='s3://lake/in','maxFilesPerTrigger'='1');
         CREATE SINK o WITH ('connector'='files','format'='json','path'='s3://lake/out');
         SET 'checkpointLocation' = 's3://lake/chk';
         SET 'trigger' = 'availableNow';
         SET 'spark.sql.shuffle.partitions' = '3';
         INSERT INTO o SELECT DISTINCT ON (id) id FROM ev;",
    )
    .unwrap();
    let mut cmd = Command::new(sluice_bin());
    cmd.args(["run", "job.sql"]).current_dir(dir.path()).env("RUST_LOG", "warn");
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    cmd.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", proxy.port));
    let out = cmd.output().expect("sluice runs");
    let cuts = &proxy.cuts;
    let figures = format!(
        "connections cut: {} requests, {} responses after the server acted, {} mid-response",
        cuts.requests.load(std::sync::atomic::Ordering::Relaxed),
        cuts.responses.load(std::sync::atomic::Ordering::Relaxed),
        cuts.mid_response.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!("{figures}");
    assert!(out.status.success(), "the query failed ({figures}): {}", stderr(&out));
    assert!(proxy.total_cuts() > 0, "the proxy cut nothing; the test proves nothing");
    assert!(s3.root.path().join("lake/chk/commits/7").is_file(), "all 8 batches committed");
    drop(proxy);
    let cat = sluice(dir.path(), &s3, &["cat", "s3://lake/out"]);
    assert!(cat.status.success(), "{}", stderr(&cat));
    let mut got: Vec<u64> =
        stdout(&cat).lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_u64().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, distinct.into_iter().collect::<Vec<_>>(), "each distinct id exactly once ({figures})");
}
