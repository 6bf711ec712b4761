//! Tasks fenced by leadership term: an executor runs tasks only from the newest leader it knows.
//!
//! Every task carries the term its driver leads under (the etcd leader key's create revision,
//! which grows with every election; 0 without etcd). A driver that was paused past its lease and
//! replaced may wake up and send tasks of its old batches; once this executor has seen a newer
//! term those tasks are refused, so the deposed leader's attempt fails instead of racing the new
//! leader's for the same state versions and sink files. (Its checkpoint writes are fenced in
//! etcd as well; this keeps it from doing the work at all.) An executor registered in etcd also
//! reads the current leader's term there every second, so it knows a new leader before the new
//! leader's first task reaches it.

use std::sync::atomic::{AtomicU64, Ordering};

use sluice_common::error::SluiceError;

/// Whether a task of `term` may run when the newest term seen is `newest`. Pure.
pub fn admits(newest: u64, term: u64) -> bool {
    term >= newest
}

/// The newest leadership term this executor has seen.
#[derive(Debug, Default)]
pub struct TermFence {
    newest: AtomicU64,
}

impl TermFence {
    /// Admits a task of `term` (remembering it when it is newer), or refuses it with the reason.
    pub fn admit(&self, term: u64) -> Result<(), SluiceError> {
        let newest = self.newest.fetch_max(term, Ordering::SeqCst).max(term);
        if admits(newest, term) {
            Ok(())
        } else {
            Err(SluiceError::external(format!(
                "task refused: it comes from a deposed leader (term {term}); this executor already runs tasks of term {newest}"
            ))
            .with_retryable(false))
        }
    }

    /// Learns that `term` leads now (from etcd), before any of its tasks arrives: from then on a
    /// deposed leader's tasks are refused even here.
    pub fn observe(&self, term: u64) {
        let before = self.newest.fetch_max(term, Ordering::SeqCst);
        if term > before {
            tracing::debug!(term, "a new leader term");
        }
    }

    /// The newest term seen.
    pub fn newest(&self) -> u64 {
        self.newest.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_terms_are_refused_and_newer_ones_move_the_fence() {
        let f = TermFence::default();
        assert!(f.admit(0).is_ok(), "a driver without etcd (term 0) on a fresh executor");
        assert!(f.admit(7).is_ok());
        assert!(f.admit(7).is_ok(), "the same leader again");
        let e = f.admit(5).unwrap_err();
        assert!(e.one_line().contains("deposed leader (term 5)") && e.one_line().contains("term 7"), "{}", e.one_line());
        assert!(!e.retryable);
        assert!(f.admit(9).is_ok());
        assert_eq!(f.newest(), 9);
        assert!(f.admit(7).is_err(), "the leader before the last one");
        f.observe(12);
        assert!(f.admit(9).is_err(), "a term older than one etcd named, before any of the new leader's tasks");
        f.observe(3);
        assert_eq!(f.newest(), 12, "observing an older term changes nothing");
    }

    #[test]
    fn admits_is_monotone() {
        for newest in 0..5 {
            for term in 0..5 {
                assert_eq!(admits(newest, term), term >= newest);
            }
        }
    }
}
