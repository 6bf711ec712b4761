//! `memory`: rows exchanged with Rust code in the driver process — a source tests append blocks
//! to (Spark's `MemoryStream`) and a sink that keeps every batch (Spark's memory sink), so
//! Spark's `StreamTest` cases transcribe one for one.

pub mod sink;
pub mod source;

pub use sink::{MemorySink, MemoryTable, MemoryTables};
pub use source::{MemorySource, MemoryStream, MemoryStreams};
