//! Engine tests on a real embedded cluster (driver + 2 executors over gRPC on 127.0.0.1),
//! driven through the Rust API as Spark's StreamTest drives MemoryStream and MemorySink.

mod aggregates;
mod files;
mod join_property;
mod joins;
mod malformed;
mod memory;
mod modes;
mod nexmark;
mod oracles;
mod property;
mod rate;
mod secrets;
mod sinks;
mod sliding;
mod socket;
mod state;
mod triggers;
