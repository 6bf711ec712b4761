//! `writeStream…start()`, a `StreamingQuery`'s methods, `spark.streams` and the listener bus.
//!
//! `start()` turns the DataFrame and the writer's settings into a job text and submits it
//! through the driver's `QueryManager`, exactly as `sluice submit` does; the other commands
//! read and steer the resulting `StreamingQuery`.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Field, Schema, SchemaRef};
use futures::StreamExt;
use sluice_common::error::SluiceError;
use sluice_driver::batch::MemoryRelation;
use sluice_driver::manager::QueryManager;
use sluice_driver::query::events::Watched;
use sluice_driver::query::{QueryEvent, QueryState};
use sluice_driver::StreamingQuery;
use tokio::sync::Mutex as AsyncMutex;

use crate::env::Env;
use crate::error::{ConnectError, ExceptionClass, Result};
use crate::execute::Reply;
use crate::foreach_batch::{ForeachBatchWorker, WorkerSpec};
use crate::plan::expr::string_literal;
use crate::plan::options_text;
use crate::proto::execute_plan_response::ResponseType;
use crate::proto::streaming_query_command::Command as QueryCommand;
use crate::proto::streaming_query_command_result::{
    AwaitTerminationResult, ExceptionResult, ExplainResult, RecentProgressResult, ResultType as QueryResult, StatusResult,
};
use crate::proto::streaming_query_manager_command::Command as ManagerCommand;
use crate::proto::streaming_query_manager_command_result::{
    ActiveResult, AwaitAnyTerminationResult, ResultType as ManagerResult, StreamingQueryInstance,
};
use crate::proto::write_stream_operation_start::{SinkDestination, Trigger};
use crate::proto::{
    streaming_foreach_function, StreamingQueryCommand, StreamingQueryCommandResult, StreamingQueryInstanceId,
    StreamingQueryListenerEvent, StreamingQueryListenerEventsResult, StreamingQueryManagerCommand,
    StreamingQueryManagerCommandResult, WriteStreamOperationStart, WriteStreamOperationStartResult,
};
use crate::session::{ClientSession, SessionQuery};
use crate::types::quote_ident;

/// What starting a foreachBatch worker needs from the server.
#[derive(Debug, Clone)]
pub struct WorkerLaunch {
    /// The Python executable (with pyspark importable).
    pub python: String,
    /// This server's gRPC port on loopback, which the worker connects back to.
    pub connect_port: u16,
}

/// `writeStream…start()` / `toTable()`.
pub async fn start(
    env: &Env<'_>,
    manager: &Arc<QueryManager>,
    launch: &WorkerLaunch,
    op: &WriteStreamOperationStart,
) -> Result<Vec<Reply>> {
    let input = op.input.as_ref().ok_or_else(|| ConnectError::invalid_plan("writeStream without its DataFrame"))?;
    let frame = env.plan(input).await?;
    if !frame.is_streaming() {
        return Err(ConnectError::analysis("'writeStream' can be called only on streaming Dataset/DataFrame"));
    }
    if op.foreach_writer.is_some() {
        return Err(ConnectError::unsupported("writeStream.foreach(writer) (use foreachBatch)"));
    }
    if !op.clustering_column_names.is_empty() {
        return Err(ConnectError::unsupported("clusterBy"));
    }
    let mut options: Vec<(String, String)> = op.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    options.sort();
    let take = |options: &mut Vec<(String, String)>, key: &str| -> Option<String> {
        let i = options.iter().position(|(k, _)| k.eq_ignore_ascii_case(key))?;
        Some(options.remove(i).1)
    };
    let checkpoint = take(&mut options, "checkpointLocation");
    let query_name = (!op.query_name.is_empty()).then(|| op.query_name.clone());
    let mut sink: Vec<(String, String)> = Vec::new();
    let mut batch_function = None;
    let mut table: Option<String> = None;
    let format = op.format.to_ascii_lowercase();
    if let Some(f) = &op.foreach_batch {
        let Some(streaming_foreach_function::Function::PythonFunction(udf)) = &f.function else {
            return Err(ConnectError::unsupported("foreachBatch with a Scala function"));
        };
        let id = uuid::Uuid::new_v4().to_string();
        let spec = WorkerSpec {
            python: launch.python.clone(),
            python_ver: udf.python_ver.clone(),
            command: udf.command.clone(),
            session_id: env.client.id.clone(),
            user_id: env.client.user_id.clone(),
            connect_port: launch.connect_port,
            query_label: query_name.clone().unwrap_or_else(|| id.clone()),
        };
        let worker = ForeachBatchWorker::start(spec).await?;
        register_batch_function(env, &id, worker);
        sink.push(("connector".into(), "foreach_batch".into()));
        sink.push(("function".into(), id.clone()));
        batch_function = Some(id);
    } else {
        let path = match &op.sink_destination {
            Some(SinkDestination::Path(p)) => Some(p.clone()),
            // A table is Parquet files under the warehouse directory, as Spark's default
            // catalog keeps a managed table; `spark.read.table` and `readStream.table` read it.
            Some(SinkDestination::TableName(t)) => {
                if !matches!(format.as_str(), "" | "parquet") {
                    return Err(ConnectError::unsupported(format!("toTable in format '{format}' (tables are Parquet)")));
                }
                let warehouse = env.client.conf("spark.sql.warehouse.dir").unwrap_or_else(|| "spark-warehouse".into());
                table = Some(t.clone());
                Some(format!("{}/{t}", warehouse.trim_end_matches('/')))
            }
            None => take(&mut options, "path"),
        };
        match format.as_str() {
            "console" | "memory" | "noop" | "kafka" => sink.push(("connector".into(), format.clone())),
            "" | "parquet" | "json" | "csv" | "text" => {
                sink.push(("connector".into(), "files".into()));
                sink.push(("format".into(), if format.is_empty() { "parquet".into() } else { format.clone() }));
                if !op.partitioning_column_names.is_empty() {
                    sink.push(("partitionBy".into(), partition_by_option(&op.partitioning_column_names)?));
                }
            }
            other => return Err(ConnectError::unsupported(format!("the streaming sink format '{other}'"))),
        }
        if format == "memory" && query_name.is_none() {
            return Err(ConnectError::analysis("queryName must be specified for memory sink"));
        }
        if let Some(p) = path {
            sink.push(("path".into(), p));
        }
        sink.extend(options);
    }
    let sink_name = match (&format[..], &query_name) {
        ("memory", Some(n)) => n.clone(),
        _ => "_sink".to_string(),
    };
    let mut settings: Vec<(String, String)> = Vec::new();
    settings.push(("outputMode".into(), if op.output_mode.is_empty() { "append".into() } else { op.output_mode.to_lowercase() }));
    match &op.trigger {
        None => {}
        Some(Trigger::ProcessingTimeInterval(i)) => settings.push(("trigger".into(), format!("processingTime={i}"))),
        Some(Trigger::AvailableNow(_)) => settings.push(("trigger".into(), "availableNow".into())),
        Some(Trigger::Once(_)) => settings.push(("trigger".into(), "once".into())),
        Some(Trigger::ContinuousCheckpointInterval(_)) => return Err(ConnectError::unsupported("the continuous trigger")),
    }
    if let Some(c) = checkpoint {
        settings.push(("checkpointLocation".into(), c));
    }
    if let Some(n) = &query_name {
        settings.push(("queryName".into(), n.clone()));
    }
    for (k, v) in env.client.user_conf() {
        // The session's Spark settings a job file may SET travel with the query.
        if k.starts_with("spark.") && sluice_driver::query::resolve::SETTINGS.iter().any(|s| s.eq_ignore_ascii_case(&k)) {
            settings.push((k, v));
        }
    }
    let mut text = frame.decls.to_job_text();
    text.push_str(&format!("CREATE SINK {} WITH ({});\n", quote_ident(&sink_name), options_text(&sink)));
    for (k, v) in &settings {
        text.push_str(&format!("SET {} = {};\n", string_literal(k), string_literal(v)));
    }
    text.push_str(&format!("INSERT INTO {}\n{};\n", quote_ident(&sink_name), frame.select));
    tracing::info!(session = %env.client.id, "spark connect: starting a query:\n{text}");

    // Memory sinks and tables are read back by name, with the query's output schema.
    let schema = match (&table, format.as_str()) {
        (Some(_), _) | (None, "memory") => Some(crate::plan::PlanEnv::schema(env, &frame).await?),
        _ => None,
    };
    let submitted = manager.submit(&env.origin(), &text).await;
    let queries = match submitted {
        Ok(q) => q,
        Err(e) => {
            if let Some(id) = &batch_function {
                env.driver.batch_functions().remove(id);
            }
            return Err(start_error(e));
        }
    };
    let Some(query) = queries.into_iter().next() else {
        return Err(ConnectError::new(ExceptionClass::Spark, "the query did not start"));
    };
    if let (Some(t), Some((_, path)), Some(schema)) = (&table, sink.iter().find(|(k, _)| k == "path"), &schema) {
        env.client.set_table(t, path, table_schema(schema, &op.partitioning_column_names));
    }
    let memory = match (format.as_str(), schema) {
        ("memory", Some(schema)) => Some(MemoryRelation { name: sink_name.clone(), schema, rows: None }),
        _ => None,
    };
    if let Ok(mut qs) = env.client.queries.lock() {
        qs.push(SessionQuery {
            query: query.clone(),
            memory,
            batch_function: batch_function.clone(),
            reset: false,
            job_text: text,
        });
    }
    if let Some(id) = batch_function {
        let (q, functions) = (query.clone(), env.driver.batch_functions().clone());
        tokio::spawn(async move {
            let _ = q.await_termination().await;
            functions.remove(&id);
        });
    }
    let started = serde_json::json!({
        "id": query.id(), "runId": query.run_id(), "name": query.name(),
        "timestamp": sluice_common::time::format_iso_millis(sluice_common::time::now_ms()),
    });
    Ok(vec![Reply::of(ResponseType::WriteStreamOperationStartResult(WriteStreamOperationStartResult {
        query_id: Some(instance_id(&query)),
        name: query.name().unwrap_or_default().to_string(),
        query_started_event_json: Some(started.to_string()),
    }))])
}

/// The files sink's `partitionBy` option: the columns, comma-separated (so a name cannot hold a comma).
pub(crate) fn partition_by_option(columns: &[String]) -> Result<String> {
    if let Some(c) = columns.iter().find(|c| c.contains(',')) {
        return Err(ConnectError::unsupported(format!("partitionBy on a column whose name holds a comma ({c})")));
    }
    Ok(columns.join(","))
}

/// A table's schema as Spark's catalog keeps it: the partition columns move to the end.
fn table_schema(schema: &SchemaRef, partition_columns: &[String]) -> SchemaRef {
    let is_partition = |f: &Field| partition_columns.iter().any(|c| c.eq_ignore_ascii_case(f.name()));
    let (partitions, data): (Vec<_>, Vec<_>) = schema.fields().iter().cloned().partition(|f| is_partition(f));
    Arc::new(Schema::new(data.into_iter().chain(partitions).collect::<Vec<_>>()))
}

/// A query that cannot start: Spark reports a duplicate name as IllegalArgumentException.
fn start_error(e: SluiceError) -> ConnectError {
    let c = ConnectError::from(e);
    if c.message.contains("as a query with that name is already active") {
        return ConnectError { class: ExceptionClass::IllegalArgument, ..c };
    }
    c
}

/// Runs each batch through the worker: the batch is readable by its id while the client's
/// function runs, and its commit waits for the function.
fn register_batch_function(env: &Env<'_>, id: &str, worker: ForeachBatchWorker) {
    let worker = Arc::new(AsyncMutex::new(Some(worker)));
    let client = Arc::clone(env.client);
    let function: sluice_connectors::foreach_batch::BatchFunction = Arc::new(move |batch, schema, rows| {
        let worker = Arc::clone(&worker);
        let client = client.clone();
        Box::pin(async move {
            let df_id = uuid::Uuid::new_v4().to_string();
            client.cache(MemoryRelation { name: df_id.clone(), schema, rows: Some(Arc::new(rows)) });
            let mut guard = worker.lock().await;
            let result = match guard.as_mut() {
                Some(w) => w.call(&df_id, i64::try_from(batch.0).unwrap_or(i64::MAX)).await,
                None => Err(ConnectError::new(ExceptionClass::Spark, "the foreachBatch worker has stopped")),
            };
            client.uncache(&df_id);
            result.map_err(|e| SluiceError::user(e.message))
        })
    });
    env.driver.batch_functions().register(id, function);
}

fn instance_id(q: &StreamingQuery) -> StreamingQueryInstanceId {
    StreamingQueryInstanceId { id: q.id().to_string(), run_id: q.run_id().to_string() }
}

/// Long waits (`awaitTermination()` without a timeout, `processAllAvailable`) are bounded
/// only by the query.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// The exception a failed query raises on the client.
fn query_failure(q: &StreamingQuery, e: &SluiceError) -> ConnectError {
    ConnectError::new(
        ExceptionClass::StreamingQuery,
        format!("[STREAM_FAILED] Query [id = {}, runId = {}] terminated with exception: {}", q.id(), q.run_id(), e.one_line()),
    )
    .with_error_class("STREAM_FAILED", "XXKST")
}

/// A `StreamingQuery` method.
pub async fn query_command(client: &ClientSession, cmd: &StreamingQueryCommand) -> Result<Vec<Reply>> {
    let id = cmd.query_id.as_ref().ok_or_else(|| ConnectError::invalid_plan("a query command without its query id"))?;
    let q = client
        .query(&id.id)
        .ok_or_else(|| ConnectError::illegal_argument(format!("Streaming query {} is not found in this session", id.id)))?;
    let command = cmd.command.as_ref().ok_or_else(|| ConnectError::invalid_plan("a query command without a command"))?;
    let result = match command {
        QueryCommand::Status(_) => {
            let s = q.status();
            Some(QueryResult::Status(StatusResult {
                status_message: s.message,
                is_data_available: s.is_data_available,
                is_trigger_active: s.is_trigger_active,
                is_active: q.is_active(),
            }))
        }
        QueryCommand::LastProgress(_) => Some(QueryResult::RecentProgress(RecentProgressResult {
            recent_progress_json: q.last_progress().map(|p| client_progress_json(&p.json())).into_iter().collect(),
        })),
        QueryCommand::RecentProgress(_) => Some(QueryResult::RecentProgress(RecentProgressResult {
            recent_progress_json: q.recent_progress().iter().map(|p| client_progress_json(&p.json())).collect(),
        })),
        QueryCommand::Stop(_) => {
            // Spark's stop() returns quietly for a query that already failed.
            let _ = q.stop().await;
            None
        }
        QueryCommand::ProcessAllAvailable(_) => {
            q.process_all_available(FOREVER).await.map_err(|e| query_failure(&q, &e))?;
            None
        }
        QueryCommand::Explain(_) => {
            let text = client
                .queries
                .lock()
                .ok()
                .and_then(|qs| qs.iter().rev().find(|s| s.query.id() == q.id()).map(|s| s.job_text.clone()))
                .unwrap_or_default();
            Some(QueryResult::Explain(ExplainResult { result: format!("== sluice job ==\n{text}") }))
        }
        QueryCommand::Exception(_) => Some(QueryResult::Exception(match q.state() {
            QueryState::Terminated(Some(e)) => ExceptionResult {
                exception_message: Some(format!(
                    "org.apache.spark.sql.streaming.StreamingQueryException: {}",
                    query_failure(&q, &e).message
                )),
                error_class: Some("STREAM_FAILED".into()),
                stack_trace: None,
            },
            _ => ExceptionResult { exception_message: None, error_class: None, stack_trace: None },
        })),
        QueryCommand::AwaitTermination(a) => {
            let timeout = a.timeout_ms.map(|ms| Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0))).unwrap_or(FOREVER);
            let terminated = match tokio::time::timeout(timeout, q.await_termination()).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => return Err(query_failure(&q, &e)),
                Err(_) => false,
            };
            Some(QueryResult::AwaitTermination(AwaitTerminationResult { terminated }))
        }
    };
    Ok(vec![Reply::of(ResponseType::StreamingQueryCommandResult(StreamingQueryCommandResult {
        query_id: Some(instance_id(&q)),
        result_type: result,
    }))])
}

/// A `spark.streams` method (the session's queries, as Spark's manager is per session).
pub async fn manager_command(client: &ClientSession, cmd: &StreamingQueryManagerCommand) -> Result<Vec<Reply>> {
    let command = cmd.command.as_ref().ok_or_else(|| ConnectError::invalid_plan("a manager command without a command"))?;
    let instance = |q: &StreamingQuery| StreamingQueryInstance { id: Some(instance_id(q)), name: q.name().map(str::to_string) };
    let result = match command {
        ManagerCommand::Active(_) => ManagerResult::Active(ActiveResult {
            active_queries: client.all_queries().iter().filter(|q| q.is_active()).map(instance).collect(),
        }),
        ManagerCommand::GetQuery(id) => match client.query(id).filter(StreamingQuery::is_active) {
            Some(q) => ManagerResult::Query(instance(&q)),
            None => {
                return Ok(vec![Reply::of(ResponseType::StreamingQueryManagerCommandResult(
                    StreamingQueryManagerCommandResult { result_type: None },
                ))])
            }
        },
        ManagerCommand::AwaitAnyTermination(a) => {
            let timeout = a.timeout_ms.map(|ms| Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0))).unwrap_or(FOREVER);
            let deadline = tokio::time::Instant::now() + timeout;
            let terminated = loop {
                let ended = client.queries.lock().ok().and_then(|qs| {
                    qs.iter()
                        .find(|s| !s.reset && !s.query.is_active() && s.query.state() != QueryState::Initializing)
                        .map(|s| s.query.clone())
                });
                if let Some(q) = ended {
                    if let QueryState::Terminated(Some(e)) = q.state() {
                        return Err(query_failure(&q, &e));
                    }
                    break true;
                }
                if tokio::time::Instant::now() >= deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            ManagerResult::AwaitAnyTermination(AwaitAnyTerminationResult { terminated })
        }
        ManagerCommand::ResetTerminated(_) => {
            if let Ok(mut qs) = client.queries.lock() {
                for s in qs.iter_mut().filter(|s| !s.query.is_active()) {
                    s.reset = true;
                }
            }
            ManagerResult::ResetTerminated(true)
        }
        ManagerCommand::AddListener(_) | ManagerCommand::RemoveListener(_) | ManagerCommand::ListListeners(_) => {
            return Err(ConnectError::unsupported(
                "server-side streaming query listeners (PySpark 4 adds listeners on the client)",
            ))
        }
    };
    Ok(vec![Reply::of(ResponseType::StreamingQueryManagerCommandResult(StreamingQueryManagerCommandResult {
        result_type: Some(result),
    }))])
}

/// A progress report as PySpark reads it: Spark's JSON leaves a source's rates out when they
/// are not finite (a batch of no duration), but PySpark's `SourceProgress.fromJson` requires
/// them, so they are filled in as 0.
pub fn client_progress_json(json: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else { return json.to_string() };
    if let Some(sources) = v.get_mut("sources").and_then(|s| s.as_array_mut()) {
        for s in sources.iter_mut().filter_map(|s| s.as_object_mut()) {
            for key in ["inputRowsPerSecond", "processedRowsPerSecond"] {
                s.entry(key).or_insert(serde_json::json!(0.0));
            }
        }
    }
    v.to_string()
}

/// An event's JSON as PySpark reads it (see [`client_progress_json`]).
fn client_event_json(event: &QueryEvent) -> String {
    match event {
        QueryEvent::Progress(p) => format!("{{\"progress\":{}}}", client_progress_json(&p.json())),
        other => other.json(),
    }
}

/// The listener bus: after the "added" reply, every progress, idle and termination event of
/// the session's queries, until the client removes its last listener (`closed` turns true).
pub fn listener_bus(
    events: impl futures::Stream<Item = Watched> + Send + 'static,
    client: Arc<ClientSession>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) -> impl futures::Stream<Item = Reply> + Send + 'static {
    let added = futures::stream::once(async {
        Reply::of(ResponseType::StreamingQueryListenerEventsResult(StreamingQueryListenerEventsResult {
            events: Vec::new(),
            listener_bus_listener_added: Some(true),
        }))
    });
    let forwarded = events
        .filter_map(move |w| {
            let client = Arc::clone(&client);
            async move {
                let Watched::Event(event) = w else { return None };
                let ours = client.all_queries().iter().any(|q| q.id() == event.query_id());
                let kind = match &event {
                    QueryEvent::Progress(_) => 1,
                    QueryEvent::Terminated { .. } => 2,
                    QueryEvent::Idle { .. } => 3,
                    QueryEvent::Started { .. } => return None, // travels in start()'s reply
                };
                ours.then(|| {
                    Reply::of(ResponseType::StreamingQueryListenerEventsResult(StreamingQueryListenerEventsResult {
                        events: vec![StreamingQueryListenerEvent { event_json: client_event_json(&event), event_type: kind }],
                        listener_bus_listener_added: None,
                    }))
                })
            }
        })
        .take_until(async move {
            while !*closed.borrow_and_update() {
                if closed.changed().await.is_err() {
                    break;
                }
            }
        });
    added.chain(forwarded)
}
