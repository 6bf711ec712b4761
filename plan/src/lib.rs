//! # sluice-plan
//!
//! Streaming query plans, identical on the driver and on executors: the resolved query spec the
//! driver ships ([`QuerySpec`]), its compilation into a DataFusion plan with Spark's SQL
//! functions and types ([`CompiledQuery`]), the cut of that plan at its stateful operators
//! ([`streaming`], Spark's `IncrementalExecution`), Spark's unsupported-operation checks
//! ([`checker`]), the tables that feed each task its rows ([`tables`]), and the task documents
//! that travel with every micro-batch ([`task`]).
//!
//! The driver compiles a query to validate it and learn its output schema; executors compile the
//! same spec once per query run and reuse the plan for every task.

pub mod checker;
pub mod compile;
pub mod functions;
pub mod join;
pub mod literals;
pub mod sliding;
pub mod spec;
pub mod streaming;
pub mod tables;
pub mod task;

pub use checker::check_streaming_plan;
pub use compile::{base_session_state, CompiledQuery, Fragment, SourceProjection};
pub use spec::{ComputedColumn, QuerySpec, StreamSpec, WatermarkDef};
pub use tables::{StaticTableCache, TaskInput};
pub use task::{BlockSource, EventTimeStats, StateOperatorMetrics, TaskKind, TaskMetrics};
