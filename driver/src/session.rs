//! A session: the place queries are started from, owning what they share — the cluster's
//! scheduler, the memory streams and memory tables tests talk to, and where console output and
//! progress reports go.

use std::sync::Arc;

use sluice_common::error::Result;
use sluice_connectors::console::ConsoleOut;
use sluice_connectors::memory::{MemoryStream, MemoryTable};
use sluice_connectors::{Connectors, InProcessIo};

use crate::checkpoint::{Checkpoint, OffsetSeq};
use crate::job::{JobFile, JobPolicy, SecretsDir};
use crate::query::events::{Listeners, QueryEvent, QueryListener};
use crate::query::fence::{Fence, NoFence};
use crate::query::handle::QueryShared;
use crate::query::micro_batch::MicroBatchExecution;
use crate::query::scheduler::TaskScheduler;
use crate::query::touches::{query_touches, table_touches};
use crate::query::{resolve_query, resolve_stream, ResolvedQuery, StreamingQuery};
use crate::registry::ExecutorRegistry;

/// Starts and tracks queries on one cluster.
#[derive(Clone)]
pub struct Session {
    scheduler: TaskScheduler,
    io: InProcessIo,
    connectors: Connectors,
    listeners: Listeners,
    fence: Arc<dyn Fence>,
    policy: JobPolicy,
    secrets: SecretsDir,
}

impl Session {
    /// A session scheduling on `registry`'s executors; console output goes to stdout.
    pub fn new(registry: ExecutorRegistry) -> Self {
        let io = InProcessIo::default();
        Self {
            scheduler: TaskScheduler::new(registry),
            connectors: Connectors::builtin(&io),
            io,
            listeners: Listeners::default(),
            fence: Arc::new(NoFence),
            policy: JobPolicy::unrestricted(),
            secrets: SecretsDir::default(),
        }
    }

    /// Holds every job prepared from now on to `policy` (a driver process); a new session runs
    /// whatever its user asks (the embedded `sluice run`).
    pub fn with_policy(mut self, policy: JobPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Resolves `${secret:NAME}` option values from `secrets` (see [`crate::job::secrets`]).
    pub fn with_secrets(mut self, secrets: SecretsDir) -> Self {
        self.secrets = secrets;
        self
    }

    /// Fences every checkpoint write of queries started from now on (etcd leadership).
    pub fn with_fence(mut self, fence: Arc<dyn Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// Sends console-sink output somewhere else (the CLI clears its status line first).
    pub fn with_console(mut self, out: ConsoleOut) -> Self {
        self.io.console = out;
        self.connectors = Connectors::builtin(&self.io);
        self
    }

    /// Calls `listener` with every event of every query started from now on (Spark's
    /// `spark.streams.addListener`), after the listeners added before it.
    pub fn with_listener(mut self, listener: QueryListener) -> Self {
        self.listeners.add(listener);
        self
    }

    /// Parses and validates every query of a job file without starting anything, so a mistake
    /// in the last statement is reported before the first query writes a checkpoint — and
    /// refuses a job that touches what the session's policy does not allow, before it reads or
    /// writes anything.
    pub async fn prepare_job(&self, origin: &str, text: &str) -> Result<Vec<ResolvedQuery>> {
        let mut job = JobFile::parse(origin, text)?;
        self.secrets.resolve(&mut job)?;
        let enforced = !self.policy.is_unrestricted();
        // Static tables first: resolving one may read it (a Parquet table's schema).
        self.check_tables(&job)?;
        let mut out = Vec::with_capacity(job.queries.len());
        for q in &job.queries {
            let resolved = resolve_query(&job, q, &self.connectors).await?;
            if enforced {
                self.policy.check(&query_touches(q, &resolved, &self.connectors)?)?;
            }
            out.push(resolved);
        }
        for (i, def) in job.streams.values().enumerate() {
            let stream = resolve_stream(def, i, &self.connectors)?;
            self.connectors.source(&stream.source.connector)?.prepare(&stream.source)?;
        }
        Ok(out)
    }

    /// Refuses a job whose static tables read what the session's policy does not allow.
    pub(crate) fn check_tables(&self, job: &JobFile) -> Result<()> {
        if self.policy.is_unrestricted() {
            return Ok(());
        }
        for table in job.tables.values() {
            self.policy.check(&table_touches(table, &self.connectors)?)?;
        }
        Ok(())
    }

    /// Prepares and starts every query of a job file.
    pub async fn run_job(&self, origin: &str, text: &str) -> Result<Vec<StreamingQuery>> {
        let prepared = self.prepare_job(origin, text).await?;
        let mut queries = Vec::with_capacity(prepared.len());
        for q in prepared {
            queries.push(self.start(q).await?);
        }
        Ok(queries)
    }

    /// Starts one resolved query.
    pub async fn start(&self, resolved: ResolvedQuery) -> Result<StreamingQuery> {
        self.start_run(resolved, false).await
    }

    /// Starts a query that a new leader takes over from a driver that died; its first batch
    /// reports how long the query was down as `durationMs.recovery`.
    pub async fn take_over(&self, resolved: ResolvedQuery) -> Result<StreamingQuery> {
        self.start_run(resolved, true).await
    }

    async fn start_run(&self, mut resolved: ResolvedQuery, took_over: bool) -> Result<StreamingQuery> {
        let (location, temporary) = match &resolved.checkpoint_location {
            Some(l) => (l.clone(), false),
            None => {
                let dir = std::env::temp_dir().join(format!("sluice-checkpoint-{}", uuid::Uuid::new_v4()));
                (dir.to_string_lossy().into_owned(), true)
            }
        };
        let checkpoint = Checkpoint::open(&location)?;
        if let Some((_, bytes)) = checkpoint.offsets.latest().await? {
            if let Ok(seq) = OffsetSeq::parse(&String::from_utf8_lossy(&bytes), "offsets") {
                let mut conf = resolved.spec.conf.clone();
                conf.restore_from_offsets(&seq.metadata.conf)?;
                resolved = resolved.with_conf(conf).await?;
            }
        }
        let mut spec = resolved.spec.clone();
        spec.query_id = checkpoint.query_id().await?;
        spec.checkpoint_url = checkpoint.location.url.to_string();
        spec.run_id = uuid::Uuid::new_v4();
        let sources = spec
            .sources
            .iter()
            .map(|s| self.connectors.source(&s.source.connector)?.create_source(&s.source, &spec.conf))
            .collect::<Result<Vec<_>>>()?;
        let sink = self.connectors.sink(&spec.sink.connector)?.committer(&spec.sink, spec.output_mode)?;
        let shared = QueryShared::new(spec.query_id, spec.run_id, spec.name.clone());
        let mut exec = MicroBatchExecution::new(
            Arc::new(spec),
            checkpoint,
            temporary,
            sources,
            sink,
            Arc::clone(&resolved.output_schema),
            resolved.trigger,
            resolved.operators.clone(),
            resolved.needs_gather,
            self.scheduler.clone(),
            Arc::clone(&shared),
            self.listeners.clone(),
            Arc::clone(&self.fence),
        )?;
        exec.took_over = took_over;
        // Listeners hear of the start before `start` returns, as in Spark.
        self.listeners.post(&QueryEvent::Started {
            id: shared.id,
            run_id: shared.run_id,
            name: shared.name.clone(),
            timestamp: sluice_common::time::format_iso_millis(sluice_common::time::now_ms()),
        });
        tokio::spawn(async move {
            let _ = exec.run().await;
        });
        Ok(StreamingQuery { shared })
    }

    /// The connectors queries of this session read and write through.
    pub fn connectors(&self) -> &Connectors {
        &self.connectors
    }

    /// The functions this session's `foreachBatch` sinks call.
    pub fn batch_functions(&self) -> &sluice_connectors::foreach_batch::BatchFunctions {
        &self.io.batch_functions
    }

    /// The policy every job of this session is held to.
    pub fn policy(&self) -> &JobPolicy {
        &self.policy
    }

    /// Where `${secret:NAME}` values come from.
    pub fn secrets(&self) -> &SecretsDir {
        &self.secrets
    }

    /// The output schema of the one query of `text`, planned but not checked against the
    /// streaming rules or its sink: what a Spark Connect client's `df.schema` asks of a
    /// streaming DataFrame before it has an output mode or a sink.
    pub async fn query_schema(&self, origin: &str, text: &str) -> Result<arrow::datatypes::SchemaRef> {
        let mut job = JobFile::parse(origin, text)?;
        self.secrets.resolve(&mut job)?;
        let Some(q) = job.queries.first() else {
            return Err(sluice_common::error::SluiceError::internal("the job has no query to plan"));
        };
        crate::query::resolve::query_schema(&job, q, &self.connectors).await
    }

    /// The memory stream called `name` (declared with `'connector' = 'memory'`).
    pub fn memory_stream(&self, name: &str) -> Option<MemoryStream> {
        self.io.memory_streams.get(name)
    }

    /// The contents of the memory sink called `name`.
    pub fn memory_table(&self, name: &str) -> Option<MemoryTable> {
        self.io.memory_tables.get(name)
    }

    /// Empties the memory sink called `name`.
    pub fn clear_memory_table(&self, name: &str) {
        self.io.memory_tables.clear(name);
    }
}
