//! # sluice-connectors
//!
//! Where a query's rows come from and go to. Each connector is one module that implements some
//! of three traits — [`SourceConnector`] (a stream's input), [`SinkConnector`] (a query's
//! output), [`TableConnector`] (a static table) — and is registered once in
//! [`Connectors::builtin`]. The driver resolves declarations through the registry and runs the
//! driver halves (offsets and splits, sink commits); executors look the same connectors up to
//! run the other halves (reading splits, writing rows). Nothing outside this crate names a
//! connector.
//!
//! Sources: [`files`], [`kafka`], [`nexmark`], [`rate`], [`rate_micro_batch`], [`socket`],
//! [`memory`]. Sinks: [`console`], [`files`], [`foreach_batch`], [`kafka`], [`memory`], [`noop`]. Static tables:
//! [`files`].

pub mod access;
pub mod registry;
pub mod sink;
pub mod source;
pub mod table;

pub mod console;
pub mod files;
pub mod foreach_batch;
pub mod kafka;
pub mod memory;
pub mod nexmark;
pub mod noop;
pub mod rate;
pub mod rate_micro_batch;
pub mod socket;

pub use access::{Access, LocationUse};
pub use registry::{Connectors, InProcessIo};
pub use sink::{SinkCommitter, SinkConnector, SinkSpec, SinkTaskContext, SinkTaskOutput, SinkWriter, TaskSinkResult};
pub use source::{PlannedSplit, Source, SourceConnector, SourceSpec, SplitData, SplitDescriptor, SplitReader};
pub use table::{TableConnector, TableSpec};
