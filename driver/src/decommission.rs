//! Graceful executor shutdown (Spark calls it decommissioning), as pure bookkeeping.
//!
//! An executor that gets SIGTERM (a rolling restart, a scale-down, a node drain) announces that
//! it is decommissioning and keeps serving. From then on no new batch attempt uses it: its state
//! partitions move to the others at the next batch boundary, which restore them from the
//! checkpoint. An attempt that was already planned with it runs to the end — its tasks, the
//! shuffle blocks it serves and the partitions it owns stay where they are — so nothing fails
//! and nothing is retried. Once no attempt in flight uses it, the leading driver dismisses it and
//! it exits.
//!
//! This module decides *when* to dismiss; the registry does the I/O. Only a driver that runs
//! queries may dismiss: a standby has no attempts in flight, so it would dismiss every
//! decommissioning executor at once, under the leader's running batches.

use std::collections::{BTreeMap, BTreeSet};

/// Which executors are decommissioning and which batch attempts still use them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecommissionBook {
    /// Executors that announced they are shutting down.
    decommissioning: BTreeSet<String>,
    /// Batch attempts in flight that use each executor.
    in_flight: BTreeMap<String, usize>,
    /// Executors already told to go (each is dismissed once).
    dismissed: BTreeSet<String>,
    /// Whether this driver runs queries and so may dismiss.
    leading: bool,
}

impl DecommissionBook {
    /// A book for a driver that runs queries from the start (`leading`) or only once elected.
    pub fn new(leading: bool) -> Self {
        Self { leading, ..Self::default() }
    }

    /// Whether new work may go to `id`.
    pub fn schedulable(&self, id: &str) -> bool {
        !self.decommissioning.contains(id)
    }

    /// A batch attempt starts with these executors (all schedulable).
    pub fn engage<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            *self.in_flight.entry(id.to_string()).or_default() += 1;
        }
    }

    /// A batch attempt that used these executors ended; returns those to dismiss now.
    pub fn disengage<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        for id in ids {
            if let Some(n) = self.in_flight.get_mut(id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.in_flight.remove(id);
                }
            }
        }
        self.due()
    }

    /// `id` announced it is decommissioning; returns those to dismiss now.
    pub fn decommission(&mut self, id: &str) -> Vec<String> {
        self.decommissioning.insert(id.to_string());
        self.due()
    }

    /// `id` left the cluster (or registered again as a new process): forget it.
    pub fn forget(&mut self, id: &str) {
        self.decommissioning.remove(id);
        self.dismissed.remove(id);
    }

    /// This driver started or stopped running queries; returns those to dismiss now.
    pub fn set_leading(&mut self, leading: bool) -> Vec<String> {
        self.leading = leading;
        self.due()
    }

    /// Decommissioning executors no attempt uses that were not dismissed yet (marked dismissed).
    fn due(&mut self) -> Vec<String> {
        if !self.leading {
            return Vec::new();
        }
        let due: Vec<String> = self
            .decommissioning
            .iter()
            .filter(|id| !self.in_flight.contains_key(*id) && !self.dismissed.contains(*id))
            .cloned()
            .collect();
        self.dismissed.extend(due.iter().cloned());
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_executor_is_dismissed_as_soon_as_it_decommissions() {
        let mut book = DecommissionBook::new(true);
        assert_eq!(book.decommission("a"), vec!["a".to_string()]);
        assert!(!book.schedulable("a"));
        assert!(book.decommission("a").is_empty(), "dismissed once");
    }

    #[test]
    fn an_attempt_in_flight_keeps_the_executor_until_it_ends() {
        let mut book = DecommissionBook::new(true);
        book.engage(["a", "b"]);
        book.engage(["a"]);
        assert!(book.decommission("a").is_empty(), "two attempts still use a");
        assert!(book.disengage(["a", "b"]).is_empty(), "one attempt still uses a");
        assert_eq!(book.disengage(["a"]), vec!["a".to_string()]);
        assert!(book.schedulable("b"));
    }

    #[test]
    fn a_standby_never_dismisses_and_a_new_leader_dismisses_what_is_idle() {
        let mut book = DecommissionBook::new(false);
        assert!(book.decommission("a").is_empty());
        book.engage(["b"]);
        assert!(book.decommission("b").is_empty());
        assert_eq!(book.set_leading(true), vec!["a".to_string()], "b is still in an attempt");
        assert_eq!(book.disengage(["b"]), vec!["b".to_string()]);
    }

    #[test]
    fn an_executor_that_comes_back_is_schedulable_again() {
        let mut book = DecommissionBook::new(true);
        assert_eq!(book.decommission("a"), vec!["a".to_string()]);
        book.forget("a");
        assert!(book.schedulable("a"));
        assert_eq!(book.decommission("a"), vec!["a".to_string()], "the new process is dismissed in its turn");
    }
}
