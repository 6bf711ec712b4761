//! # sluice-proto
//!
//! The contract between the sluice driver and its executors: the gRPC messages and services
//! generated from `proto/sluice.proto`, the protocol version both sides check at registration,
//! the largest message either side accepts, and the typed values that cross the wire in a
//! structured form — errors ([`wire::error_to_proto`]) and batch contexts.

pub mod wire;

/// Version of the driver ⇄ executor protocol; both sides refuse a peer with another version.
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest gRPC message either side accepts or sends: task results may carry collected rows
/// (console and memory sinks), and tasks carry the query's spec.
pub const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// How long a stopping gRPC server (driver or executor) lets its connections close before it
/// drops them: a peer that keeps one open without answering (a paused process) must not hold a
/// stopping process past its grace period.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Generated messages and services.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("sluice.v1");
}
