//! Streaming queries on the driver: resolution, the micro-batch loop, triggers, watermarks,
//! task scheduling and progress.

pub mod deadline;
pub mod events;
pub mod fault;
pub mod fence;
pub mod handle;
pub mod map_ahead;
pub mod micro_batch;
pub mod placement;
pub mod progress;
pub mod resolve;
pub mod scheduler;
pub mod stages;
pub mod state_manifests;
pub mod touches;
pub mod trigger;
pub mod watermark;

pub use events::{QueryEvent, QueryListener, QueryStatus};
pub use handle::{QueryState, StreamingQuery};
pub use resolve::{resolve_query, resolve_stream, ResolvedQuery};
pub use trigger::Trigger;
