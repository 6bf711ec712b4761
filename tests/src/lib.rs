//! Test harness for sluice's integration tests: an embedded cluster with a session, row
//! rendering for multiset comparisons, the real `sluice` binary, and helpers for files.
//!
//! Expected values in tests are written out from Spark's tests and docs/semantics.md, or derived
//! by an independent computation in the test itself — never produced by calling the engine code
//! under test.

pub mod binary;
pub mod cluster;
pub mod kafka;
pub mod netns;
pub mod oracle;
pub mod proxy;
pub mod rows;
pub mod services;

use std::time::Duration;

use sluice::EmbeddedCluster;
use sluice_driver::{Session, StreamingQuery};

/// How long a test waits for a query to catch up before failing.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A real embedded cluster (driver + executors over gRPC on 127.0.0.1) and a session on it.
pub struct Harness {
    cluster: Option<EmbeddedCluster>,
    /// A session scheduling on the cluster's executors.
    pub session: Session,
}

impl Harness {
    /// Two executors with two task slots each, as the issues ask tests to use.
    pub async fn start() -> Self {
        Self::with_executors(2, 2).await
    }

    /// `executors` executors with `slots` task slots each.
    pub async fn with_executors(executors: usize, slots: usize) -> Self {
        let cluster = EmbeddedCluster::start(executors, slots).await.expect("embedded cluster starts");
        let session = Session::new(cluster.registry());
        Self { cluster: Some(cluster), session }
    }

    /// Starts every query of a job; panics with the error otherwise.
    pub async fn run(&self, job: &str) -> Vec<StreamingQuery> {
        match self.session.run_job("test.sql", job).await {
            Ok(q) => q,
            Err(e) => panic!("job failed to start: {}", e.one_line()),
        }
    }

    /// Starts a job expected to be rejected; returns the one-line error.
    pub async fn run_err(&self, job: &str) -> String {
        match self.session.run_job("test.sql", job).await {
            Ok(_) => panic!("job unexpectedly started"),
            Err(e) => e.one_line(),
        }
    }

    /// Stops one executor (its state partitions move to the others).
    pub async fn stop_executor(&mut self, id: &str) {
        if let Some(c) = self.cluster.as_mut() {
            c.stop_executor(id).await;
        }
    }

    /// Ids of the running executors.
    pub fn executor_ids(&self) -> Vec<String> {
        self.cluster.as_ref().map(|c| c.executor_ids()).unwrap_or_default()
    }

    /// Stops the cluster.
    pub async fn shutdown(mut self) {
        if let Some(c) = self.cluster.take() {
            c.shutdown().await;
        }
    }
}

/// Waits until the query has processed everything available (Spark's `processAllAvailable`).
pub async fn settle(q: &StreamingQuery) {
    if let Err(e) = q.process_all_available(PATIENCE).await {
        panic!("query {} failed: {}", q.display_name(), e.one_line());
    }
}

/// The repository's root directory.
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The test venv's Python (created by `tests/venv.sh`, which `tests/run.sh` runs): schemathesis,
/// Prometheus' parser, the deployment checks.
pub fn venv_python() -> std::path::PathBuf {
    let venv = std::env::var("SLUICE_VENV").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/sluice/venv")
    });
    venv.join("bin/python")
}

/// A SQL string literal for a local path.
pub fn path_lit(p: &std::path::Path) -> String {
    p.to_string_lossy().replace('\'', "''")
}
