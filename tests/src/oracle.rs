//! Spark's StreamTest vocabulary — AddData, CheckAnswer, CheckNewAnswer, CheckLastBatch,
//! StopStream/StartStream, assertNumStateRows — over a real embedded cluster, so test cases
//! from Spark's suites transcribe one for one (docs/semantics.md §11).

use arrow::array::RecordBatch;
use sluice_driver::progress::StreamingQueryProgress;
use sluice_driver::StreamingQuery;

use crate::rows::{multiset, sorted_rows};
use crate::{settle, Harness};

/// `job` run with its checkpoint in `checkpoint`.
fn with_checkpoint(checkpoint: &tempfile::TempDir, job: &str) -> String {
    format!("SET 'checkpointLocation' = '{}';\n{job}", crate::path_lit(checkpoint.path()))
}

/// A query under test with a memory source `input` and a memory sink `out`.
pub struct StreamTest {
    /// The cluster and session the query runs on.
    pub harness: Harness,
    /// The checkpoint directory, kept across restarts.
    pub checkpoint: tempfile::TempDir,
    job: String,
    /// The running query, if started.
    pub query: Option<StreamingQuery>,
    /// Sink batches already compared by `check_new_answer`.
    checked_batches: usize,
    /// Progress reports of earlier runs of the query (before restarts).
    history: Vec<StreamingQueryProgress>,
    /// Index into all progress where the last state-metrics assertion ended.
    asserted_progress: usize,
}

impl StreamTest {
    /// Starts `job` (which must declare `input` as a memory stream and `out` as a memory sink).
    pub async fn start(job: &str) -> Self {
        Self::start_on(job, 2).await
    }

    /// Like [`Self::start`], on `executors` executors.
    pub async fn start_on(job: &str, executors: usize) -> Self {
        let checkpoint = tempfile::tempdir().expect("temp dir");
        let job = with_checkpoint(&checkpoint, job);
        let harness = Harness::with_executors(executors, 2).await;
        let query = harness.run(&job).await.remove(0);
        Self { harness, checkpoint, job, query: Some(query), checked_batches: 0, history: Vec::new(), asserted_progress: 0 }
    }

    /// `StopStream`: stops the query; its checkpoint stays.
    pub async fn stop(&mut self) {
        if let Some(q) = self.query.take() {
            q.stop().await.expect("stopping the query");
        }
    }

    /// `StartStream` after [`Self::stop`]: a new run of the same job over the same checkpoint,
    /// once it has caught up with the input.
    pub async fn start_again(&mut self) {
        self.query = Some(self.harness.run(&self.job).await.remove(0));
        crate::settle(self.q()).await;
    }

    fn q(&self) -> &StreamingQuery {
        self.query.as_ref().expect("query running")
    }

    /// `AddData(input, values…)` for a one-column stream.
    pub fn add_longs(&self, values: &[i64]) {
        let input = self.harness.session.memory_stream("input").expect("memory stream 'input'");
        let field = input.schema().field(0).name().clone();
        input.add_data(crate::rows::longs(&field, values)).expect("add data");
    }

    /// `AddData(input, batch)` for any schema.
    pub fn add_batch(&self, batch: RecordBatch) {
        self.add_batch_to("input", batch);
    }

    /// `AddData(stream, batch)` for a query with several memory streams.
    pub fn add_batch_to(&self, stream: &str, batch: RecordBatch) {
        let s = self.harness.session.memory_stream(stream).unwrap_or_else(|| panic!("memory stream '{stream}'"));
        s.add_data(batch).expect("add data");
    }

    /// `MultiAddData`: adds to several streams so that everything lands in one batch (the
    /// query cannot choose its next offsets meanwhile).
    pub async fn multi_add(&self, data: Vec<(&str, RecordBatch)>) {
        self.q().with_progress_locked(|| data.into_iter().for_each(|(stream, batch)| self.add_batch_to(stream, batch))).await;
    }

    /// Waits for the query to process everything (Spark's `processAllAvailable`).
    pub async fn settle(&self) {
        settle(self.q()).await;
    }

    fn table(&self) -> Vec<(sluice_common::BatchId, Vec<RecordBatch>)> {
        self.harness.session.memory_table("out").map(|t| t.batches).unwrap_or_default()
    }

    /// `CheckAnswer`: the whole sink (in complete mode: the last result).
    pub async fn check_answer(&mut self, expected: &[&str]) {
        self.settle().await;
        let t = self.harness.session.memory_table("out").unwrap_or_default();
        assert_eq!(sorted_rows(&t.all_rows()), multiset(expected), "CheckAnswer");
        self.checked_batches = t.batches.len();
    }

    /// `CheckNewAnswer`: rows added since the previous check.
    pub async fn check_new_answer(&mut self, expected: &[&str]) {
        self.settle().await;
        let batches = self.table();
        let new: Vec<RecordBatch> = batches.iter().skip(self.checked_batches).flat_map(|(_, b)| b.iter().cloned()).collect();
        self.checked_batches = batches.len();
        assert_eq!(sorted_rows(&new), multiset(expected), "CheckNewAnswer");
    }

    /// `CheckLastBatch`: the last batch written.
    pub async fn check_last_batch(&mut self, expected: &[&str]) {
        self.settle().await;
        let batches = self.table();
        self.checked_batches = batches.len();
        let last = batches.last().map(|(_, b)| b.clone()).unwrap_or_default();
        assert_eq!(sorted_rows(&last), multiset(expected), "CheckLastBatch");
    }

    /// `CheckLastBatch(isSorted = true)`.
    pub async fn check_last_batch_sorted(&mut self, expected: &[&str]) {
        self.settle().await;
        let batches = self.table();
        self.checked_batches = batches.len();
        let last = batches.last().map(|(_, b)| b.clone()).unwrap_or_default();
        let got = crate::rows::rows(&last);
        assert_eq!(got, expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "CheckLastBatch(sorted)");
    }

    /// Every progress report of every run, oldest first.
    pub fn all_progress(&self) -> Vec<StreamingQueryProgress> {
        let mut all = self.history.clone();
        if let Some(q) = &self.query {
            all.extend(q.recent_progress());
        }
        all
    }

    /// The newest progress report.
    pub fn last_progress(&self) -> StreamingQueryProgress {
        self.all_progress().last().cloned().expect("a progress report")
    }

    /// `assertNumStateRows(total, updated)` for the topmost operators (Seq form: topmost first):
    /// total from the last progress, updated summed since the previous assertion.
    pub fn assert_state_rows(&mut self, total: &[u64], updated: &[u64]) {
        let all = self.all_progress();
        let last = all.last().expect("progress");
        let totals: Vec<u64> = last.state_operators.iter().map(|s| s.num_rows_total).collect();
        assert_eq!(totals, total, "numRowsTotal");
        let since = &all[self.asserted_progress.min(all.len())..];
        let mut sums = vec![0u64; last.state_operators.len()];
        for p in since {
            for (i, s) in p.state_operators.iter().enumerate() {
                if i < sums.len() {
                    sums[i] += s.num_rows_updated;
                }
            }
        }
        assert_eq!(sums, updated, "numRowsUpdated since the previous assertion");
        self.asserted_progress = all.len();
    }

    /// Dropped-by-watermark counts summed since the previous `assert_state_rows`, per operator.
    pub fn dropped_since_last_assert(&self) -> Vec<u64> {
        let all = self.all_progress();
        let n = all.last().map(|p| p.state_operators.len()).unwrap_or(0);
        let mut sums = vec![0u64; n];
        for p in &all[self.asserted_progress.min(all.len())..] {
            for (i, s) in p.state_operators.iter().enumerate() {
                if i < n {
                    sums[i] += s.num_rows_dropped_by_watermark;
                }
            }
        }
        sums
    }

    /// `StopStream` then `StartStream`: a new run of the query on the same checkpoint.
    pub async fn restart(&mut self) {
        let q = self.query.take().expect("query running");
        q.stop().await.expect("query stops cleanly");
        self.history.extend(q.recent_progress());
        self.query = Some(self.harness.run(&self.job).await.remove(0));
    }

    /// [`Self::restart`] with `job` in place of the job started with (as [`Self::start`] takes
    /// it): a session whose settings changed meets the checkpoint.
    pub async fn restart_with(&mut self, job: &str) {
        self.job = with_checkpoint(&self.checkpoint, job);
        self.restart().await;
    }

    /// Stops the query and the cluster.
    pub async fn finish(mut self) {
        if let Some(q) = self.query.take() {
            q.stop().await.expect("query stops cleanly");
        }
        self.harness.shutdown().await;
    }
}
