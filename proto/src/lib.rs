//! gRPC contract between the sluice driver and its executors (generated from `proto/sluice.proto`).

#![allow(missing_docs, clippy::all)]

/// Version of the driver ⇄ executor protocol; both sides refuse a peer with another version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Generated messages and services.
pub mod v1 {
    tonic::include_proto!("sluice.v1");
}
