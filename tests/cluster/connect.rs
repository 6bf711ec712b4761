//! A PySpark client against a secured cluster's driver: Spark Connect on the driver, over TLS
//! with the cluster's certificate, for users with a bearer token only — PySpark's
//! `sc://host:port/;use_ssl=true;token=…` (PySpark talks plain text to `localhost` otherwise) — running a streaming query on the cluster's executors.

use std::process::Command;

use sluice_tests::cluster::ClusterProcs;
use sluice_tests::services::free_port;

/// Runs `script` with the test venv's PySpark, `SPARK_REMOTE` set to `remote`, trusting the
/// cluster CA; (success, output).
fn pyspark(c: &ClusterProcs, remote: &str, script: &str) -> (bool, String) {
    let python = sluice_tests::venv_python();
    let out = Command::new(&python)
        .args(["-c", script])
        .env("SPARK_REMOTE", remote)
        .env("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", c.cert_file("ca.pem"))
        .output()
        .unwrap_or_else(|e| {
            panic!("the test venv's python ({}) runs pyspark (tests/venv.sh installs it): {e}", python.display())
        });
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

const QUERY: &str = r#"
import os
from pyspark.sql import SparkSession
spark = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
ticks = spark.readStream.format("rate-micro-batch").option("rowsPerBatch", 5).load()
q = (ticks.selectExpr("value", "value % 2 = 0 AS even").writeStream.format("memory")
     .queryName("ticks").trigger(processingTime="100 milliseconds").start())
while len([p for p in q.recentProgress if p["numInputRows"] > 0]) < 3:
    q.awaitTermination(0.2)
q.stop()
rows = spark.sql("select * from ticks").collect()
assert len(rows) >= 15 and len(rows) % 5 == 0, rows
assert sorted(r.value for r in rows) == list(range(len(rows))), rows
assert all(r.even == (r.value % 2 == 0) for r in rows)
print("ROWS", len(rows))
"#;

#[test]
fn pyspark_clients_with_a_token_run_queries_on_the_driver_and_others_are_refused() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let c = ClusterProcs::start_with_driver_args(1, 1, &["--connect-listen", &listen]);
    let token = std::fs::read_to_string(c.cert_file("token")).expect("token file");
    let token = token.lines().next().expect("a token").trim().to_string();

    let (ok, out) = pyspark(&c, &format!("sc://localhost:{port}/;use_ssl=true;token={token}"), QUERY);
    assert!(ok && out.contains("ROWS"), "the token user's query failed:\n{out}\n{}", c.dump_logs());

    let (ok, out) = pyspark(&c, &format!("sc://localhost:{port}/;use_ssl=true;token=not-{token}"), QUERY);
    assert!(!ok && out.contains("bearer token is not one the driver accepts"), "a wrong token was not refused:\n{out}");
}
