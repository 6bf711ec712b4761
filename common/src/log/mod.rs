//! Spark's metadata logs: directories of files named by batch id, shared by the checkpoint's
//! offset and commit logs, source logs and the file sink's `_spark_metadata`.

pub mod compactible_log;
pub mod metadata_log;

pub use compactible_log::{CompactibleLog, DEFAULT_COMPACT_INTERVAL};
pub use metadata_log::{
    check_version, create_entry, delete_entry, read_entry, AddOutcome, EntryCheck, MetadataLog, VERSION_LINE,
};
