//! The facts of one micro-batch, carried as one value from the driver's planning through every
//! task to the commit.
//!
//! Spark numbers batches from 0 and versions operator state by them: batch N runs against state
//! version N (what batches 0..N-1 left) and, when its tasks commit, writes version N+1
//! (its deltas, sometimes a snapshot). [`BatchId`] and [`StateVersion`] are distinct types so
//! that rule is written once ([`BatchId::state_to_read`], [`BatchId::state_to_write`]) instead of
//! as `+ 1`s scattered over the driver and the executors.
//!
//! A batch also has two watermarks (Spark 3.4+): rows at or below the *previous* batch's
//! watermark are late and dropped by stateful operators, while state at or below *this* batch's
//! watermark is evicted or emitted (docs/semantics.md §3). [`BatchWatermarks`] keeps both side by
//! side so no operator can pick the wrong one.

use std::fmt;

/// A micro-batch's id: the `N` of `offsets/N` and `commits/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct BatchId(pub u64);

impl BatchId {
    /// The first batch of a new query.
    pub const FIRST: BatchId = BatchId(0);

    /// The batch after this one.
    pub fn next(self) -> BatchId {
        BatchId(self.0 + 1)
    }

    /// The batch before this one, if any.
    pub fn previous(self) -> Option<BatchId> {
        self.0.checked_sub(1).map(BatchId)
    }

    /// The state version this batch's tasks start from.
    pub fn state_to_read(self) -> StateVersion {
        StateVersion(self.0)
    }

    /// The state version this batch's tasks write when they commit.
    pub fn state_to_write(self) -> StateVersion {
        StateVersion(self.0 + 1)
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A version of one operator's state partition: version `v` holds what batches `0..v` left and
/// is stored as the partition's delta of `v`, when it changed (plus `v.snapshot` when one was
/// written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct StateVersion(pub u64);

impl StateVersion {
    /// The state before any batch ran: empty, with no file.
    pub const EMPTY: StateVersion = StateVersion(0);

    /// The version a commit on top of this one writes.
    pub fn next(self) -> StateVersion {
        StateVersion(self.0 + 1)
    }
}

impl fmt::Display for StateVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The two watermarks of a batch, in milliseconds (Spark's `eventTimeWatermarkForLateEvents` and
/// `eventTimeWatermarkForEviction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BatchWatermarks {
    /// The previous batch's watermark: input rows with an event time at or below it are late.
    pub late_ms: i64,
    /// This batch's watermark (recorded in `offsets/N`): state at or below it is evicted, and in
    /// append mode emitted.
    pub eviction_ms: i64,
}

impl BatchWatermarks {
    /// The late-row threshold in microseconds (event times are compared in Spark's unit).
    pub fn late_micros(&self) -> i64 {
        self.late_ms.saturating_mul(1000)
    }

    /// The eviction threshold in microseconds.
    pub fn eviction_micros(&self) -> i64 {
        self.eviction_ms.saturating_mul(1000)
    }
}

/// What every task of one batch attempt knows about its batch. The driver fixes it when it plans
/// the attempt (a retried attempt differs only in `attempt`), so a re-run computes exactly what the
/// first run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BatchContext {
    /// Which batch.
    pub id: BatchId,
    /// Which attempt of it, from 0: names shuffle blocks so a retry never reads a stale one.
    pub attempt: u32,
    /// The batch timestamp recorded in `offsets/N`: `current_timestamp()` inside the batch.
    pub timestamp_ms: i64,
    /// The batch's late-row and eviction watermarks.
    pub watermarks: BatchWatermarks,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_n_reads_version_n_and_writes_n_plus_one() {
        let b = BatchId(7);
        assert_eq!(b.state_to_read(), StateVersion(7));
        assert_eq!(b.state_to_write(), StateVersion(8));
        assert_eq!(b.state_to_read().next(), b.state_to_write());
        assert_eq!(BatchId::FIRST.state_to_read(), StateVersion::EMPTY);
    }

    #[test]
    fn batch_ids_serialize_as_bare_numbers() {
        assert_eq!(serde_json::to_string(&BatchId(3)).unwrap(), "3");
        assert_eq!(BatchId(3).to_string(), "3");
        assert_eq!(BatchId(0).previous(), None);
        assert_eq!(BatchId(4).previous(), Some(BatchId(3)));
    }
}
