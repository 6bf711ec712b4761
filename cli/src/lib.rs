//! # sluice
//!
//! The `sluice` binary's library: the command line ([`commands`]) and the embedded cluster
//! ([`EmbeddedCluster`]) — the two places where the driver and the executor crates meet. Every
//! process role runs from the same binary: `sluice run` (a driver and executors in one process),
//! `sluice driver`, `sluice executor`, and the admin commands.

pub mod commands;
pub mod embedded;

pub use embedded::EmbeddedCluster;
