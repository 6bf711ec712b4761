//! Tests through the real `sluice` binary: what a user sees (console layout, exit codes,
//! one-line errors) and what survives a SIGKILL.

mod console;
mod errors;
mod restart;
mod s3;
