//! # sluice-state
//!
//! Executor-held state: keyed state partitions, their checkpoint files, and the stable hash
//! that decides which partition owns a key.

pub mod bundle;
pub mod files;
pub mod hash;
pub mod keyed;
pub mod partition;

pub use bundle::{BundleWrite, DeltaBundles, DeltaEntry, DeltaManifest, DeltaRef, ManifestCache, StagedDelta};
pub use files::StateFiles;
pub use keyed::{Entry, Evicted, KeyedState, StateRow};
pub use partition::{Commit, StatePartition, StatePolicy};
