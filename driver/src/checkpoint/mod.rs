//! The checkpoint: the single source of truth for recovery (docs/semantics.md §1).
//!
//! Layout mirrors Spark's so that operators can read it with the same habits:
//! `metadata`, `offsets/N`, `commits/N`, `sources/<i>/…`, `state/<op>/…` (state files are
//! written by the executors; the manifests of their delta bundles by the driver, see
//! [`crate::query::state_manifests`]).

pub mod commit_log;
pub mod offset_seq;
pub mod restart;
mod store;

pub use commit_log::CommitMetadata;
pub use offset_seq::{OffsetSeq, OffsetSeqMetadata};
pub use restart::{decide_start, StartDecision};
pub use store::{Checkpoint, QueryShape};
