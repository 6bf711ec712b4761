//! The job-file language: Spark SQL plus `CREATE STREAM`/`SINK`, `WATERMARK FOR` and `SET` — and
//! the policy of what a job may touch.

pub mod file;
pub mod parser;
pub mod policy;
pub mod secrets;
pub mod statement;

pub use file::{JobFile, QueryDef};
pub use policy::{JobPolicy, Touch};
pub use secrets::SecretsDir;
pub use statement::{RelationDef, SinkDef};
