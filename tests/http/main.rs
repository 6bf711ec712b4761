//! The operator's view, through the real `sluice` binary: the REST API and its OpenAPI
//! document, the listener event stream, Prometheus `/metrics` and the web UI in headless
//! Chromium — all served by `sluice run` on a local port, as a laptop user gets them.

mod api;
mod events;
mod metrics;
mod schema;
mod ui;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_tests::binary::{sigkill, spawn_sluice};
use sluice_tests::services::free_port;

/// A stateful query with a watermark: a 5-second windowed count over one-second batches of the
/// deterministic micro-batch rate source, a batch every 700 ms.
pub const WINDOWED_COUNTS: &str = "
CREATE STREAM r (timestamp TIMESTAMP, value BIGINT, WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND)
  WITH ('connector' = 'rate-micro-batch', 'rowsPerBatch' = '20', 'advanceMillisPerBatch' = '1000', 'numPartitions' = '2');
CREATE SINK out WITH ('connector' = 'noop');
SET 'queryName' = 'counts';
SET 'trigger' = 'processingTime=700 milliseconds';
SET 'spark.sql.shuffle.partitions' = '4';
INSERT INTO out SELECT window(timestamp, '5 seconds') AS w, count(*) AS cnt FROM r GROUP BY window(timestamp, '5 seconds');
";

/// `sluice run` of a job with its UI on a free port, or a driver and an executor process
/// ([`UiRun::cluster`]); and a client of their HTTP server.
pub struct UiRun {
    children: Vec<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Everything the process wrote to stderr so far.
    stderr: Arc<Mutex<String>>,
    /// The job's directory (the working directory of the run).
    pub dir: tempfile::TempDir,
    /// The client tests talk to the API with.
    pub http: reqwest::Client,
}

impl UiRun {
    /// Starts `sluice run` on `job` and waits for the line announcing the UI.
    pub fn start(job: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("job.sql"), job).expect("job file written");
        let mut child = spawn_sluice(dir.path(), &["run", "job.sql", "--ui-listen", "127.0.0.1:0"], &[]);
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr is piped");
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(|l| l.ok()) {
                if let Some(url) = line.strip_prefix("sluice: UI at ") {
                    let _ = tx.send(url.trim_end_matches("/ui/").to_string());
                }
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => base,
            Err(_) => {
                sigkill(&mut child);
                panic!("sluice run did not announce its UI; stderr:\n{}", stderr.lock().map(|s| s.clone()).unwrap_or_default());
            }
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("HTTP client");
        Self { children: vec![child], base, stderr, dir, http }
    }

    /// A driver process (no etcd; plain text on loopback) with its HTTP server on a free port
    /// and two executors, `job` submitted through the API: unlike `sluice run`, which exits when
    /// its job's queries end, the server outlives the queries a test stops.
    pub async fn cluster(job: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (grpc, http) = (free_port(), free_port());
        let driver = spawn_sluice(
            dir.path(),
            &["driver", "--listen", &format!("127.0.0.1:{grpc}"), "--http-listen", &format!("127.0.0.1:{http}")],
            &[],
        );
        let mut children = vec![driver];
        for id in ["executor-0", "executor-1"] {
            let driver_url = format!("http://127.0.0.1:{grpc}");
            children.push(spawn_sluice(dir.path(), &["executor", "--id", id, "--driver", &driver_url, "--slots", "2"], &[]));
        }
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("HTTP client");
        let run = Self { children, base: format!("http://127.0.0.1:{http}"), stderr: Arc::default(), dir, http: client };
        run.wait_ready().await;
        run.post_json("/api/v1/jobs", &serde_json::json!({ "job": job }), 201).await;
        run
    }

    /// Waits until the server answers `/readyz` with 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{} never became ready", self.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs `path`, expecting `status`; returns the JSON body.
    pub async fn get_json(&self, path: &str, status: u16) -> Value {
        let r = self.http.get(self.url(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.expect(r, "GET", path, status).await
    }

    /// POSTs `body` (JSON) to `path`, expecting `status`; returns the JSON body.
    pub async fn post_json(&self, path: &str, body: &Value, status: u16) -> Value {
        let r = self.http.post(self.url(path)).json(body).send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"));
        self.expect(r, "POST", path, status).await
    }

    async fn expect(&self, r: reqwest::Response, method: &str, path: &str, status: u16) -> Value {
        let got = r.status().as_u16();
        let content_type = r.headers().get("content-type").and_then(|c| c.to_str().ok()).unwrap_or("").to_string();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(got, status, "{method} {path} answered {got}: {text}\nstderr:\n{}", self.stderr());
        assert!(content_type.starts_with("application/json"), "{method} {path}: content type {content_type}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    }

    /// What the run wrote to stderr.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `f` of the query list returns something.
    pub async fn wait_for<T>(&self, what: &str, mut f: impl FnMut(&Value) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let list = self.get_json("/api/v1/queries", 200).await;
            if let Some(t) = f(&list) {
                return t;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; last list: {list:#}\nstderr:\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the query named `name` to have run batch `batch`; returns its info.
    pub async fn wait_for_batch(&self, name: &str, batch: u64) -> Value {
        self.wait_for(&format!("batch {batch} of {name}"), |list| {
            named(list, name).filter(|q| q["lastProgress"]["batchId"].as_u64().is_some_and(|b| b >= batch)).cloned()
        })
        .await
    }
}

impl Drop for UiRun {
    fn drop(&mut self) {
        for child in &mut self.children {
            sigkill(child);
        }
    }
}

/// The latest query named `name` in a query list.
pub fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["queries"].as_array()?.iter().rev().find(|q| q["name"] == name)
}
