//! Secrets never leak (issue 16): S3 credentials and Kafka passwords appear in no log line (at
//! `RUST_LOG=debug`, JSON logs), no progress report, no console output, no error, no checkpoint
//! or output file; where options are shown, their secrets read `*********(redacted)` (Spark's
//! `Utils.REDACTION_REPLACEMENT_TEXT`).
//!
//! Each secret is a fresh random marker, so a match anywhere can only be a leak. The jobs run
//! through the real `sluice` binary and the real S3 server, so every layer that prints — the
//! binary's logging, the driver, the executors, librdkafka, `object_store` — is exercised.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sluice_tests::binary::{sluice_bin, stderr, stdout};
use sluice_tests::services::{free_port, S3Server};
use sluice_tests::Harness;

const REDACTED: &str = "*********(redacted)";

/// A secret no text contains by chance.
fn marker(prefix: &str) -> String {
    format!("{prefix}{:016x}", fastrand::u64(..))
}

/// `sluice --log-format json run job.sql --progress-json progress.jsonl` in `dir`, logging at debug
/// level; returns the output and the progress file.
fn run_logged(dir: &Path, env: &[(&str, String)]) -> (Output, String) {
    let mut cmd = Command::new(sluice_bin());
    cmd.args(["--log-format", "json", "run", "job.sql", "--progress-json", "progress.jsonl"])
        .current_dir(dir)
        .env("RUST_LOG", "debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("sluice runs");
    let progress = std::fs::read_to_string(dir.join("progress.jsonl")).unwrap_or_default();
    (out, progress)
}

/// Fails naming where `secret` shows up in `text`.
fn assert_absent(secret: &str, what: &str, text: &str) {
    let hits: Vec<&str> = text.lines().filter(|l| l.contains(secret)).take(3).collect();
    assert!(hits.is_empty(), "{what} leaks a secret:\n{}", hits.join("\n"));
}

/// Every file under `root` whose bytes contain `secret`.
fn files_containing(root: &Path, secret: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read(&path).unwrap().windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(path);
            }
        }
    }
    found
}

/// The progress reports of a `--progress-json` file.
fn progress_reports(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>().map(|v| v.unwrap()).collect()
}

/// A Kafka source on a port nothing listens on (the query fails fast) with SASL `credentials`
/// (more `'kafka.…' = '…'` options), into the console.
fn kafka_job(credentials: &str) -> String {
    format!(
        "CREATE STREAM k WITH (
           'connector' = 'kafka',
           'kafka.bootstrap.servers' = '127.0.0.1:{port}',
           'subscribe' = 'events',
           'startingOffsets' = 'earliest',
           'kafka.security.protocol' = 'SASL_PLAINTEXT',
           'kafka.sasl.mechanism' = 'PLAIN',
           {credentials},
           'kafka.default.api.timeout.ms' = '1000',
           'fetchOffset.numRetries' = '0');
         CREATE SINK c WITH ('connector' = 'console');
         SET 'trigger' = 'availableNow';
         INSERT INTO c SELECT CAST(value AS STRING) AS v FROM k;",
        port = free_port()
    )
}

#[test]
fn an_s3_job_with_secret_credentials_leaks_them_nowhere_and_writes_the_right_rows() {
    let access_key = marker("AKIA");
    let secret_key = marker("s3key-");
    let s3 = S3Server::start_with_keys("lake", &access_key, &secret_key);
    let input = s3.root.path().join("lake/in");
    std::fs::create_dir_all(&input).unwrap();
    let mut expected = Vec::new();
    for (file, ids) in [("a.json", 1..=6), ("b.json", 7..=12)] {
        let mut text = String::new();
        for id in ids {
            text.push_str(&format!("{{\"id\":{id},\"name\":\"n{id}\"}}\n"));
            if id % 3 != 0 {
                expected.push(format!("{{\"id\":{id},\"name\":\"N{id}\"}}"));
            }
        }
        std::fs::write(input.join(file), text).unwrap();
    }
    expected.sort();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.sql"),
        "CREATE STREAM ev (id BIGINT, name STRING)
           WITH ('connector'='files', 'format'='json', 'path'='s3://lake/in', 'maxFilesPerTrigger'='1');
         CREATE SINK o WITH ('connector'='files', 'format'='json', 'path'='s3://lake/out');
         SET 'checkpointLocation' = 's3://lake/chk';
         SET 'trigger' = 'availableNow';
         INSERT INTO o SELECT id, upper(name) AS name FROM ev WHERE id % 3 <> 0;",
    )
    .unwrap();

    let (out, progress) = run_logged(dir.path(), &s3.env());
    let (out_text, err_text) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "the job failed: {}", err_text.lines().last().unwrap_or_default());
    assert!(err_text.contains("\"level\":\"DEBUG\"") && err_text.contains("query options"), "debug logs were not on");

    // The rows: the input, filtered and projected as the SELECT says.
    let mut cat = Command::new(sluice_bin());
    cat.args(["cat", "s3://lake/out"]).current_dir(dir.path()).env("RUST_LOG", "debug");
    for (k, v) in s3.env() {
        cat.env(k, v);
    }
    let cat = cat.output().expect("sluice cat runs");
    assert!(cat.status.success(), "{}", stderr(&cat));
    let mut rows: Vec<String> = stdout(&cat).lines().map(str::to_string).collect();
    rows.sort();
    assert_eq!(rows, expected);

    // Progress: one report per file, Spark's descriptions, every input row counted.
    let reports = progress_reports(&progress);
    assert_eq!(reports.len(), 2, "{progress}");
    assert_eq!(reports[0]["sources"][0]["description"], "FileStreamSource[s3://lake/in]");
    assert_eq!(reports[0]["sink"]["description"], "FileSink[s3://lake/out]");
    let input_rows: u64 = reports.iter().map(|r| r["numInputRows"].as_u64().unwrap()).sum();
    assert_eq!(input_rows, 12);

    for secret in [&access_key, &secret_key] {
        assert_absent(secret, "stdout of sluice run", &out_text);
        assert_absent(secret, "stderr of sluice run (debug, JSON)", &err_text);
        assert_absent(secret, "the progress file", &progress);
        assert_absent(secret, "sluice cat", &format!("{}{}", stdout(&cat), stderr(&cat)));
        // At rest: the checkpoint (metadata, offsets, commits, source log) and the sink's output
        // and log, as the S3 server stored them.
        let leaked = files_containing(s3.root.path(), secret);
        assert!(leaked.is_empty(), "files at rest hold a secret: {leaked:?}");
    }
    assert!(s3.root.path().join("lake/chk/offsets/1").is_file() && s3.root.path().join("lake/out/_spark_metadata/1").is_file());
}

#[test]
fn kafka_passwords_are_redacted_where_options_are_shown_and_absent_everywhere() {
    let (jaas_password, password, key_password) = (marker("jaas-"), marker("pw-"), marker("keypw-"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), kafka_job(&format!(
        "'kafka.sasl.jaas.config' = 'org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"{jaas_password}\";',
         'kafka.sasl.password' = '{password}',
         'kafka.ssl.key.password' = '{key_password}'"
    ))).unwrap();
    let (out, progress) = run_logged(dir.path(), &[]);
    let (out_text, err_text) = (stdout(&out), stderr(&out));
    // The brokers are unreachable: the query fails, and says so.
    assert!(!out.status.success(), "the job should fail: nothing listens on its brokers");
    let last = err_text.lines().last().unwrap_or_default();
    assert!(last.starts_with("sluice: error: ") && last.contains("Kafka"), "{last}");
    // The debug log of the query's options shows them with the credentials redacted and the
    // rest readable (the JAAS entry keeps its login module and username, as Spark's does).
    let options_line = err_text.lines().find(|l| l.contains("query options")).expect("the query options are logged at debug");
    assert!(options_line.contains(REDACTED), "{options_line}");
    assert!(options_line.contains("PlainLoginModule required username") && options_line.contains("alice"), "{options_line}");
    assert!(options_line.contains("SASL_PLAINTEXT"), "{options_line}");
    for secret in [&jaas_password, &password, &key_password] {
        assert_absent(secret, "stdout of sluice run", &out_text);
        assert_absent(secret, "stderr of sluice run (debug, JSON)", &err_text);
        assert_absent(secret, "the progress file", &progress);
    }
}

#[test]
fn a_syntax_error_next_to_a_password_does_not_quote_it() {
    let password = marker("pw-");
    let dir = tempfile::tempdir().unwrap();
    // The `=` is missing, so the parser stops at the value — and would quote it.
    std::fs::write(
        dir.path().join("job.sql"),
        format!(
            "CREATE STREAM k WITH ('connector' = 'kafka', 'kafka.bootstrap.servers' = 'b:9092', 'kafka.sasl.password' '{password}');
             CREATE SINK c WITH ('connector' = 'console');
             INSERT INTO c SELECT * FROM k;"
        ),
    )
    .unwrap();
    let (out, progress) = run_logged(dir.path(), &[]);
    let err_text = stderr(&out);
    assert!(!out.status.success());
    let last = err_text.lines().last().unwrap_or_default();
    assert!(last.contains("job.sql:1:") && last.contains("Expected: =") && last.contains(REDACTED), "{last}");
    assert_absent(&password, "stderr of sluice run", &err_text);
    assert_absent(&password, "stdout of sluice run", &stdout(&out));
    assert_absent(&password, "the progress file", &progress);
}

/// What `sluice queries` shows of a query (its status: state, error, last progress) and what a
/// `Debug` of the resolved spec prints — the form a log line or a panic would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_status_and_specs_show_secrets_redacted() {
    let (jaas_password, password, key_password) = (marker("jaas-"), marker("pw-"), marker("keypw-"));
    let job = kafka_job(&format!(
        "'kafka.sasl.jaas.config' = 'org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"{jaas_password}\";',
         'kafka.sasl.password' = '{password}',
         'kafka.ssl.key.password' = '{key_password}'"
    ));
    let h = Harness::start().await;
    let resolved = h.session.prepare_job("test.sql", &job).await.unwrap();
    let debug = format!("{resolved:?}");
    assert!(debug.contains(REDACTED) && debug.contains("alice"), "{debug}");
    let q = h.run(&job).await.remove(0);
    let error = q.await_termination().await.unwrap_err();
    let status = sluice_driver::manager::status_of(&q, 0);
    assert_eq!(status.state, "failed");
    assert!(status.error.contains("Kafka"), "{}", status.error);
    for secret in [&jaas_password, &password, &key_password] {
        assert_absent(secret, "the Debug form of the resolved query", &debug);
        assert_absent(secret, "the query's error", &error.one_line());
        assert_absent(secret, "the query's status", &format!("{status:?}"));
    }
    h.shutdown().await;
}

#[test]
fn secret_references_are_read_from_the_secrets_dir_so_the_job_file_holds_no_password() {
    let (user, password) = (marker("user-"), marker("pw-"));
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("kafka-user"), format!("{user}\n")).unwrap();
    std::fs::write(secrets.path().join("kafka-password"), format!("{password}\n")).unwrap();
    let job = kafka_job(
        "'kafka.sasl.username' = '${secret:kafka-user}',
         'kafka.sasl.password' = '${secret:kafka-password}'",
    );
    std::fs::write(dir.path().join("job.sql"), &job).unwrap();

    // Without a secrets directory the references are refused, naming the option and the setting.
    let (out, _) = run_logged(dir.path(), &[]);
    assert!(!out.status.success());
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains("stream 'k': option 'kafka.sasl.")
            && last.contains("refers to secret 'kafka-")
            && last.contains("no --secrets-dir"),
        "{last}"
    );

    let (out, progress) = run_logged(dir.path(), &[("SLUICE_SECRETS_DIR", secrets.path().display().to_string())]);
    let err_text = stderr(&out);
    // The options the query runs with hold the files' contents (the username is no secret, so it
    // shows), the password redacted.
    let options_line = err_text.lines().find(|l| l.contains("query options")).expect("the query options are logged at debug");
    assert!(options_line.contains(&user) && options_line.contains(REDACTED), "{options_line}");
    assert!(!options_line.contains("${secret:"), "the references were not resolved: {options_line}");
    assert_absent(&password, "stderr of sluice run (debug, JSON)", &err_text);
    assert_absent(&password, "stdout of sluice run", &stdout(&out));
    assert_absent(&password, "the progress file", &progress);
    assert!(!job.contains(&password), "the job file holds only the reference");
}
