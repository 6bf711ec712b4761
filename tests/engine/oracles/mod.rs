//! Spark's own test cases (docs/semantics.md §12), transcribed one for one and named after their oracle.

mod aggregation;
mod dedup;
mod joins;
mod session;
mod watermark;
mod windows;
