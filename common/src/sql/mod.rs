//! The job-file language: Spark SQL plus `CREATE STREAM`/`SINK`, `WATERMARK FOR` and `SET`.

pub mod dialect;
pub mod job;
pub mod literals;
pub mod parser;

pub use job::{JobFile, QueryDef, RelationDef, SinkDef};
