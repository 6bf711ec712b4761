//! The `files` connector: JSON, CSV, Parquet and text files on any object store.

pub mod file_log;
pub mod listing;
pub mod options;
pub mod reader;
pub mod source;
pub mod splits;
