//! Where a query resumes: Spark's `populateStartOffsets` as a pure function (docs/semantics.md §1 "Restart").
//!
//! Kept free of I/O so every case — fresh start, clean stop, crash between WAL and commit, a
//! commit log that lags by more than one batch — is unit-tested exhaustively.

use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchId;

use super::commit_log::CommitMetadata;
use super::offset_seq::OffsetSeq;

/// What the checkpoint says about the next batch to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartDecision {
    /// No offsets yet: start batch 0 with watermark 0.
    Fresh,
    /// Batch `batch_id - 1` is committed: construct `batch_id` from `start_offsets`.
    Next {
        /// The batch to construct.
        batch_id: BatchId,
        /// End offsets of the last committed batch.
        start_offsets: OffsetSeq,
        /// `max(offsets[L].batchWatermarkMs, commits[L].nextBatchWatermarkMs)`.
        watermark_ms: i64,
    },
    /// Batch `batch_id` was written to the WAL but not committed: run it again with exactly the
    /// recorded offsets, watermark and timestamp.
    Rerun {
        /// The batch to run again.
        batch_id: BatchId,
        /// End offsets of `batch_id - 1` (`None` for batch 0).
        start_offsets: Option<OffsetSeq>,
        /// The recorded `offsets/batch_id`.
        end_offsets: OffsetSeq,
        /// True when the commit log lags by more than one batch (Spark logs a warning).
        commit_log_lagging: bool,
    },
}

/// Decides the restart point from the newest offsets entry `L`, the entry before it, and the
/// newest commit entry `C`.
pub fn decide_start(
    latest_offsets: Option<(u64, OffsetSeq)>,
    previous_offsets: Option<OffsetSeq>,
    latest_commit: Option<(u64, CommitMetadata)>,
) -> Result<StartDecision> {
    let Some((l, end)) = latest_offsets else { return Ok(StartDecision::Fresh) };
    // Batch ids come from file names; the last one a u64 holds has no successor to run.
    let Some(next) = l.checked_add(1) else {
        return Err(SluiceError::user(format!("offsets/{l}: the batch id is out of range; the checkpoint is corrupt")));
    };
    let start = match (l, previous_offsets) {
        (0, _) => None,
        (_, Some(prev)) => Some(prev),
        (_, None) => {
            return Err(SluiceError::user(format!(
                "batch {} doesn't exist: the checkpoint's offsets log has batch {l} but not the one before it",
                l - 1
            )))
        }
    };
    match latest_commit {
        Some((c, commit)) if c == l => Ok(StartDecision::Next {
            batch_id: BatchId(next),
            watermark_ms: end.metadata.batch_watermark_ms.max(commit.next_batch_watermark_ms),
            start_offsets: end,
        }),
        Some((c, _)) => Ok(StartDecision::Rerun {
            batch_id: BatchId(l),
            start_offsets: start,
            end_offsets: end,
            commit_log_lagging: c.saturating_add(1) < l,
        }),
        None => {
            Ok(StartDecision::Rerun { batch_id: BatchId(l), start_offsets: start, end_offsets: end, commit_log_lagging: l > 0 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::offset_seq::OffsetSeqMetadata;

    fn seq(wm: i64, off: &str) -> OffsetSeq {
        OffsetSeq {
            offsets: vec![Some(off.to_string())],
            metadata: OffsetSeqMetadata { batch_watermark_ms: wm, batch_timestamp_ms: 42, conf: Default::default() },
        }
    }

    #[test]
    fn no_offsets_means_fresh() {
        assert_eq!(decide_start(None, None, None).unwrap(), StartDecision::Fresh);
    }

    #[test]
    fn committed_last_batch_moves_on_with_the_larger_watermark() {
        let d = decide_start(
            Some((3, seq(5_000, "3"))),
            Some(seq(0, "2")),
            Some((3, CommitMetadata { next_batch_watermark_ms: 15_000 })),
        )
        .unwrap();
        assert_eq!(d, StartDecision::Next { batch_id: BatchId(4), start_offsets: seq(5_000, "3"), watermark_ms: 15_000 });
        let d =
            decide_start(Some((3, seq(5_000, "3"))), Some(seq(0, "2")), Some((3, CommitMetadata { next_batch_watermark_ms: 0 })))
                .unwrap();
        assert!(matches!(d, StartDecision::Next { watermark_ms: 5_000, .. }));
    }

    #[test]
    fn uncommitted_last_batch_reruns_with_recorded_offsets() {
        let d = decide_start(Some((2, seq(7, "2"))), Some(seq(0, "1")), Some((1, CommitMetadata::default()))).unwrap();
        assert_eq!(
            d,
            StartDecision::Rerun {
                batch_id: BatchId(2),
                start_offsets: Some(seq(0, "1")),
                end_offsets: seq(7, "2"),
                commit_log_lagging: false
            }
        );
        let d = decide_start(Some((0, seq(0, "0"))), None, None).unwrap();
        assert!(matches!(d, StartDecision::Rerun { batch_id: BatchId(0), start_offsets: None, commit_log_lagging: false, .. }));
    }

    #[test]
    fn lagging_commit_log_still_reruns_the_last_batch() {
        let d = decide_start(Some((5, seq(0, "5"))), Some(seq(0, "4")), Some((2, CommitMetadata::default()))).unwrap();
        assert!(matches!(d, StartDecision::Rerun { batch_id: BatchId(5), commit_log_lagging: true, .. }));
    }

    #[test]
    fn batch_ids_at_the_end_of_64_bits_are_errors_not_panics() {
        let last = u64::MAX;
        let e = decide_start(Some((last, seq(0, "1"))), Some(seq(0, "0")), Some((last, CommitMetadata::default()))).unwrap_err();
        assert!(e.message.contains("out of range"), "{}", e.message);
        let d = decide_start(Some((3, seq(0, "3"))), Some(seq(0, "2")), Some((last, CommitMetadata::default()))).unwrap();
        assert!(matches!(d, StartDecision::Rerun { commit_log_lagging: false, .. }));
    }

    #[test]
    fn missing_previous_offsets_is_an_error() {
        let e = decide_start(Some((4, seq(0, "4"))), None, None).unwrap_err();
        assert!(e.message.starts_with("batch 3 doesn't exist"), "{}", e.message);
    }
}
