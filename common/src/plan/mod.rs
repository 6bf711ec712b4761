//! Streaming query plans: the resolved query spec, its DataFusion compilation, Spark's
//! unsupported-operation rules, and the tables that feed each task its rows.

pub mod checker;
pub mod compile;
pub mod sliding;
pub mod streaming;
pub mod spec;
pub mod tables;

pub use checker::{check_streaming_plan, StreamingShape};
pub use compile::{base_session_state, CompiledQuery, SourceProjection};
pub use spec::{EventTimeStats, OutputMode, QueryConf, QuerySpec, StateOperatorMetrics, TaskKind, TaskMetrics, WatermarkPolicy};
pub use tables::{StaticTableCache, TaskInput};
