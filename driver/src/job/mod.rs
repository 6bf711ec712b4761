//! The job-file language: Spark SQL plus `CREATE STREAM`/`SINK`, `WATERMARK FOR` and `SET`.

pub mod file;
pub mod parser;

pub use file::{JobFile, QueryDef, RelationDef, SinkDef};
