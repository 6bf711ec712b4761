//! The `SparkConnectService` gRPC service: sessions, config, analysis and execution.
//!
//! Every reply echoes the client's `session_id` and this server's `server_side_session_id`
//! (the client aborts otherwise). Execution replies carry the operation id and a fresh
//! response id each and end with `ResultComplete`, because PySpark always asks for
//! reattachable execution and re-attaches to a stream that ends without it.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use sluice_driver::manager::{Admin, QueryManager};
use tonic::{Request, Response, Status};

use crate::env::Env;
use crate::error::{ConnectError, Result};
use crate::execute::{self, Reply};
use crate::proto::analyze_plan_request::Analyze;
use crate::proto::analyze_plan_response::{self as analyzed, Result as Analyzed};
use crate::proto::command::CommandType;
use crate::proto::config_request::operation::OpType;
use crate::proto::execute_plan_response::{ResponseType, ResultComplete};
use crate::proto::plan::OpType as PlanOp;
use crate::proto::spark_connect_service_server::{SparkConnectService, SparkConnectServiceServer};
use crate::proto::streaming_query_listener_bus_command::Command as BusCommand;
use crate::proto::*;
use crate::session::{ClientSession, Sessions};
use crate::streaming::{self, WorkerLaunch};
use crate::types::schema_to_proto;

/// The largest message either side sends (Arrow batches, plans with local data).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// The Spark Connect server of one driver.
pub struct SparkConnect {
    admin: Arc<Admin>,
    sessions: Sessions,
    server_session_id: String,
    launch: std::sync::RwLock<WorkerLaunch>,
}

impl SparkConnect {
    /// A server running its clients' queries on `admin`'s query manager; foreachBatch
    /// functions run in `python`.
    pub fn new(admin: Arc<Admin>, python: String) -> Arc<Self> {
        Arc::new(Self {
            admin,
            sessions: Sessions::default(),
            server_session_id: uuid::Uuid::new_v4().to_string(),
            launch: std::sync::RwLock::new(WorkerLaunch { python, connect_port: 0 }),
        })
    }

    /// Records the loopback port this server listens on (foreachBatch workers connect to it).
    pub fn set_port(&self, port: u16) {
        if let Ok(mut l) = self.launch.write() {
            l.connect_port = port;
        }
    }

    /// The tonic service, with Spark's message size limits.
    pub fn into_service(self: Arc<Self>) -> SparkConnectServiceServer<Handle> {
        SparkConnectServiceServer::new(Handle(self))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn manager(&self) -> Result<Arc<QueryManager>> {
        self.admin.manager().map_err(ConnectError::from)
    }

    fn session(&self, id: &str, user: &Option<UserContext>) -> Result<Arc<ClientSession>> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ConnectError::invalid_plan(format!("[INVALID_HANDLE.FORMAT] The handle {id} is invalid: not a UUID"))
                .with_error_class("INVALID_HANDLE.FORMAT", "HY000"));
        }
        let user = user.as_ref().map(|u| u.user_id.clone()).unwrap_or_default();
        Ok(self.sessions.get_or_create(id, &user))
    }

    async fn execute(&self, req: ExecutePlanRequest) -> Result<BoxStream<'static, Reply>> {
        let client = self.session(&req.session_id, &req.user_context)?;
        let manager = self.manager()?;
        let env = Env { client: &client, driver: manager.session() };
        let plan = req.plan.and_then(|p| p.op_type).ok_or_else(|| ConnectError::invalid_plan("ExecutePlan without a plan"))?;
        let replies = match plan {
            PlanOp::Root(rel) => execute::root(&env, &rel).await?,
            PlanOp::Command(cmd) => {
                let Some(cmd) = cmd.command_type else {
                    return Err(ConnectError::invalid_plan("a command without a type"));
                };
                match cmd {
                    CommandType::StreamingQueryListenerBusCommand(bus) => return self.listener_bus(&client, bus),
                    other => self.command(&env, &manager, other).await?,
                }
            }
        };
        Ok(futures::stream::iter(replies).boxed())
    }

    async fn command(&self, env: &Env<'_>, manager: &Arc<QueryManager>, cmd: CommandType) -> Result<Vec<Reply>> {
        if let Some(refusal) = refused_command(&cmd) {
            return Err(refusal);
        }
        match cmd {
            CommandType::WriteStreamOperationStart(op) => {
                let launch =
                    self.launch.read().map(|l| l.clone()).map_err(|_| ConnectError::invalid_plan("server state poisoned"))?;
                streaming::start(env, manager, &launch, &op).await
            }
            CommandType::StreamingQueryCommand(c) => streaming::query_command(env.client, &c).await,
            CommandType::StreamingQueryManagerCommand(c) => streaming::manager_command(env.client, &c).await,
            CommandType::SqlCommand(c) => execute::sql_command(env, &c).await,
            CommandType::CreateDataframeView(c) => execute::create_view(env, &c).await,
            CommandType::WriteOperation(w) => execute::write(env, &w).await,
            CommandType::RemoveCachedRemoteRelationCommand(c) => {
                if let Some(r) = c.relation {
                    env.client.uncache(&r.relation_id);
                }
                Ok(Vec::new())
            }
            _ => Err(ConnectError::invalid_plan("a command out of place")),
        }
    }

    fn listener_bus(
        &self,
        client: &Arc<ClientSession>,
        bus: StreamingQueryListenerBusCommand,
    ) -> Result<BoxStream<'static, Reply>> {
        match bus.command {
            Some(BusCommand::AddListenerBusListener(_)) => {
                let (tx, rx) = tokio::sync::watch::channel(false);
                if let Ok(mut slot) = client.listener_bus.lock() {
                    if let Some(old) = slot.replace(tx) {
                        let _ = old.send(true);
                    }
                }
                Ok(streaming::listener_bus(self.admin.events.watch(), Arc::clone(client), rx).boxed())
            }
            Some(BusCommand::RemoveListenerBusListener(_)) => {
                if let Ok(mut slot) = client.listener_bus.lock() {
                    if let Some(tx) = slot.take() {
                        let _ = tx.send(true);
                    }
                }
                Ok(futures::stream::empty().boxed())
            }
            None => Err(ConnectError::invalid_plan("a listener bus command without a command")),
        }
    }

    async fn analyze(&self, req: AnalyzePlanRequest) -> Result<Analyzed> {
        let client = self.session(&req.session_id, &req.user_context)?;
        let analyze = req.analyze.ok_or_else(|| ConnectError::invalid_plan("AnalyzePlan without a request"))?;
        if let Analyze::SparkVersion(_) = analyze {
            return Ok(Analyzed::SparkVersion(analyzed::SparkVersion { version: crate::SPARK_VERSION.to_string() }));
        }
        let manager = self.manager()?;
        let env = Env { client: &client, driver: manager.session() };
        let root = |plan: Option<Plan>| -> Result<Relation> {
            match plan.and_then(|p| p.op_type) {
                Some(PlanOp::Root(r)) => Ok(r),
                _ => Err(ConnectError::invalid_plan("AnalyzePlan needs a DataFrame")),
            }
        };
        Ok(match analyze {
            Analyze::Schema(s) => {
                let frame = env.plan(&root(s.plan)?).await?;
                let schema = crate::plan::PlanEnv::schema(&env, &frame).await?;
                Analyzed::Schema(analyzed::Schema { schema: Some(schema_to_proto(&schema)?) })
            }
            Analyze::IsStreaming(s) => {
                let frame = env.plan(&root(s.plan)?).await?;
                Analyzed::IsStreaming(analyzed::IsStreaming { is_streaming: frame.is_streaming() })
            }
            Analyze::IsLocal(_) => Analyzed::IsLocal(analyzed::IsLocal { is_local: false }),
            Analyze::Explain(e) => {
                let frame = env.plan(&root(e.plan)?).await?;
                Analyzed::Explain(analyzed::Explain { explain_string: format!("== sluice job ==\n{}", frame.probe_job_text()) })
            }
            Analyze::TreeString(t) => {
                let frame = env.plan(&root(t.plan)?).await?;
                let schema = crate::plan::PlanEnv::schema(&env, &frame).await?;
                Analyzed::TreeString(analyzed::TreeString { tree_string: crate::types::tree_string(&schema) })
            }
            Analyze::DdlParse(d) => {
                let schema = crate::types::ddl_to_schema(&d.ddl_string)?;
                Analyzed::DdlParse(analyzed::DdlParse { parsed: Some(schema_to_proto(&schema)?) })
            }
            Analyze::Persist(_) => Analyzed::Persist(analyzed::Persist {}),
            Analyze::Unpersist(_) => Analyzed::Unpersist(analyzed::Unpersist {}),
            Analyze::GetStorageLevel(_) => Analyzed::GetStorageLevel(analyzed::GetStorageLevel {
                storage_level: Some(StorageLevel {
                    use_disk: false,
                    use_memory: false,
                    use_off_heap: false,
                    deserialized: false,
                    replication: 1,
                }),
            }),
            Analyze::SemanticHash(s) => {
                let frame = env.plan(&root(s.plan)?).await?;
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&frame.probe_job_text(), &mut h);
                Analyzed::SemanticHash(analyzed::SemanticHash { result: std::hash::Hasher::finish(&h) as i32 })
            }
            Analyze::SameSemantics(s) => {
                let a = env.plan(&root(s.target_plan)?).await?;
                let b = env.plan(&root(s.other_plan)?).await?;
                Analyzed::SameSemantics(analyzed::SameSemantics { result: a.probe_job_text() == b.probe_job_text() })
            }
            Analyze::InputFiles(_) => return Err(ConnectError::unsupported("inputFiles")),
            Analyze::JsonToDdl(_) => return Err(ConnectError::unsupported("DataType.fromJson to DDL")),
            Analyze::SparkVersion(_) => {
                Analyzed::SparkVersion(analyzed::SparkVersion { version: crate::SPARK_VERSION.to_string() })
            }
        })
    }

    fn config(&self, req: ConfigRequest) -> Result<Vec<KeyValue>> {
        let client = self.session(&req.session_id, &req.user_context)?;
        let op =
            req.operation.and_then(|o| o.op_type).ok_or_else(|| ConnectError::invalid_plan("Config without an operation"))?;
        let kv = |key: &str, value: Option<String>| KeyValue { key: key.to_string(), value };
        Ok(match op {
            OpType::Set(s) => {
                for p in &s.pairs {
                    match &p.value {
                        Some(v) => client.set_conf(&p.key, v),
                        None => client.unset_conf(&p.key),
                    }
                }
                Vec::new()
            }
            OpType::Get(g) => {
                let mut out = Vec::new();
                for k in &g.keys {
                    let v = client.conf(k).ok_or_else(|| {
                        ConnectError::new(
                            crate::error::ExceptionClass::Spark,
                            format!("[SQL_CONF_NOT_FOUND] The SQL config \"{k}\" cannot be found."),
                        )
                        .with_error_class("SQL_CONF_NOT_FOUND", "42K0I")
                    })?;
                    out.push(kv(k, Some(v)));
                }
                out
            }
            OpType::GetWithDefault(g) => {
                g.pairs.iter().map(|p| kv(&p.key, client.conf(&p.key).or_else(|| p.value.clone()))).collect()
            }
            OpType::GetOption(g) => g.keys.iter().map(|k| kv(k, client.conf(k))).collect(),
            OpType::GetAll(g) => {
                client.conf_all(g.prefix.as_deref().unwrap_or("")).into_iter().map(|(k, v)| kv(&k, Some(v))).collect()
            }
            OpType::Unset(u) => {
                for k in &u.keys {
                    client.unset_conf(k);
                }
                Vec::new()
            }
            OpType::IsModifiable(m) => m.keys.iter().map(|k| kv(k, Some("true".into()))).collect(),
        })
    }
}

/// The refusal of a command sluice does not implement, naming it as the client knows it.
pub fn refused_command(cmd: &CommandType) -> Option<ConnectError> {
    let what = match cmd {
        CommandType::RegisterFunction(f) => format!("registering the function '{}' (udf)", f.function_name),
        CommandType::WriteOperationV2(_) => "writeTo (DataFrameWriterV2)".into(),
        CommandType::GetResourcesCommand(_) => "getting cluster resources".into(),
        CommandType::RegisterTableFunction(_) => "registering a table function (udtf)".into(),
        CommandType::RegisterDataSource(_) => "registering a Python data source".into(),
        CommandType::CreateResourceProfileCommand(_) => "resource profiles".into(),
        CommandType::CheckpointCommand(_) => "DataFrame.checkpoint/localCheckpoint".into(),
        CommandType::MergeIntoTableCommand(_) => "MERGE INTO".into(),
        CommandType::MlCommand(_) => "Spark ML".into(),
        CommandType::ExecuteExternalCommand(_) => "executing an external command".into(),
        CommandType::Extension(_) => "a command extension".into(),
        _ => return None,
    };
    Some(ConnectError::unsupported(what))
}

/// The gRPC face of [`SparkConnect`].
#[derive(Clone)]
pub struct Handle(Arc<SparkConnect>);

fn status(e: ConnectError) -> Status {
    e.to_status()
}

#[tonic::async_trait]
impl SparkConnectService for Handle {
    async fn execute_plan(
        &self,
        request: Request<ExecutePlanRequest>,
    ) -> std::result::Result<Response<tonic::codegen::BoxStream<ExecutePlanResponse>>, Status> {
        let req = request.into_inner();
        let session_id = req.session_id.clone();
        let server_session = self.0.server_session_id.clone();
        let operation_id = req.operation_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let replies = self.0.execute(req).await.map_err(status)?;
        let stamp = move |response: ResponseType, schema: Option<DataType>| ExecutePlanResponse {
            session_id: session_id.clone(),
            server_side_session_id: server_session.clone(),
            operation_id: operation_id.clone(),
            response_id: uuid::Uuid::new_v4().to_string(),
            metrics: None,
            observed_metrics: Vec::new(),
            schema,
            response_type: Some(response),
        };
        let stamp2 = stamp.clone();
        let stream = replies
            .map(move |r| Ok(stamp(r.response, r.schema)))
            .chain(futures::stream::once(async move { Ok(stamp2(ResponseType::ResultComplete(ResultComplete {}), None)) }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn analyze_plan(
        &self,
        request: Request<AnalyzePlanRequest>,
    ) -> std::result::Result<Response<AnalyzePlanResponse>, Status> {
        let req = request.into_inner();
        let session_id = req.session_id.clone();
        let result = self.0.analyze(req).await.map_err(status)?;
        Ok(Response::new(AnalyzePlanResponse {
            session_id,
            server_side_session_id: self.0.server_session_id.clone(),
            result: Some(result),
        }))
    }

    async fn config(&self, request: Request<ConfigRequest>) -> std::result::Result<Response<ConfigResponse>, Status> {
        let req = request.into_inner();
        let session_id = req.session_id.clone();
        let pairs = self.0.config(req).map_err(status)?;
        Ok(Response::new(ConfigResponse {
            session_id,
            server_side_session_id: self.0.server_session_id.clone(),
            pairs,
            warnings: Vec::new(),
        }))
    }

    async fn interrupt(&self, request: Request<InterruptRequest>) -> std::result::Result<Response<InterruptResponse>, Status> {
        let req = request.into_inner();
        Ok(Response::new(InterruptResponse {
            session_id: req.session_id,
            server_side_session_id: self.0.server_session_id.clone(),
            interrupted_ids: Vec::new(),
        }))
    }

    async fn reattach_execute(
        &self,
        request: Request<ReattachExecuteRequest>,
    ) -> std::result::Result<Response<tonic::codegen::BoxStream<ExecutePlanResponse>>, Status> {
        // Every stream here ends with ResultComplete; an operation to re-attach to is one
        // that has already finished (or never existed): the client then re-executes.
        let op = request.into_inner().operation_id;
        Err(ConnectError::new(
            crate::error::ExceptionClass::Spark,
            format!("[INVALID_HANDLE.OPERATION_NOT_FOUND] The handle {op} is invalid. Operation not found."),
        )
        .with_error_class("INVALID_HANDLE.OPERATION_NOT_FOUND", "HY000")
        .to_status())
    }

    async fn release_execute(
        &self,
        request: Request<ReleaseExecuteRequest>,
    ) -> std::result::Result<Response<ReleaseExecuteResponse>, Status> {
        let req = request.into_inner();
        Ok(Response::new(ReleaseExecuteResponse {
            session_id: req.session_id,
            server_side_session_id: self.0.server_session_id.clone(),
            operation_id: Some(req.operation_id),
        }))
    }

    async fn release_session(
        &self,
        request: Request<ReleaseSessionRequest>,
    ) -> std::result::Result<Response<ReleaseSessionResponse>, Status> {
        let req = request.into_inner();
        // Spark stops a session's queries with it.
        if let Some(client) = self.0.sessions.remove(&req.session_id) {
            for q in client.all_queries().iter().filter(|q| q.is_active()) {
                let _ = q.stop().await;
            }
        }
        Ok(Response::new(ReleaseSessionResponse {
            session_id: req.session_id,
            server_side_session_id: self.0.server_session_id.clone(),
        }))
    }

    async fn fetch_error_details(
        &self,
        request: Request<FetchErrorDetailsRequest>,
    ) -> std::result::Result<Response<FetchErrorDetailsResponse>, Status> {
        let req = request.into_inner();
        Ok(Response::new(FetchErrorDetailsResponse {
            server_side_session_id: self.0.server_session_id.clone(),
            session_id: req.session_id,
            root_error_idx: None,
            errors: Vec::new(),
        }))
    }
}
