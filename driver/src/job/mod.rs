//! The job-file language: Spark SQL plus `CREATE STREAM`/`SINK`, `WATERMARK FOR` and `SET`.

pub mod file;
pub mod parser;
pub mod statement;

pub use file::{JobFile, QueryDef};
pub use statement::{RelationDef, SinkDef};
