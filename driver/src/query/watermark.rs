//! The watermark tracker (docs/semantics.md §3): per watermark node, `max event time − delay`, combined by
//! the min/max policy, and never moving backwards.
//!
//! Pure state, updated once per batch by the driver from the event-time stats its tasks report.

use sluice_common::WatermarkPolicy;
use sluice_plan::EventTimeStats;

/// Spark's `WatermarkTracker`.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    policy: WatermarkPolicy,
    /// Delay in ms of each watermark node.
    delays_ms: Vec<i64>,
    /// Per node, the watermark so far (`None` until the node sees data).
    nodes: Vec<Option<i64>>,
    global_ms: i64,
}

impl WatermarkTracker {
    /// A tracker for nodes with the given delays, starting at watermark 0.
    pub fn new(policy: WatermarkPolicy, delays_ms: Vec<i64>) -> Self {
        let n = delays_ms.len();
        Self { policy, delays_ms, nodes: vec![None; n], global_ms: 0 }
    }

    /// True when the query has at least one watermark node.
    pub fn has_watermark(&self) -> bool {
        !self.delays_ms.is_empty()
    }

    /// The current global watermark.
    pub fn current_ms(&self) -> i64 {
        self.global_ms
    }

    /// Restores the global watermark from the checkpoint (node values are not persisted).
    pub fn set(&mut self, ms: i64) {
        self.global_ms = ms;
    }

    /// Folds one batch's stats (per node, `None` when the node saw no rows) into the watermark.
    pub fn update(&mut self, stats: &[Option<EventTimeStats>]) {
        if self.delays_ms.is_empty() {
            return;
        }
        for (i, s) in stats.iter().enumerate().take(self.nodes.len()) {
            if let Some(s) = s.filter(|s| s.count > 0) {
                let candidate = s.max_ms - self.delays_ms[i];
                if self.nodes[i].is_none_or(|prev| candidate > prev) {
                    self.nodes[i] = Some(candidate);
                }
            }
        }
        // Nodes that never saw data count as 0.
        let values = self.nodes.iter().map(|n| n.unwrap_or(0));
        let chosen = match self.policy {
            WatermarkPolicy::Min => values.min(),
            WatermarkPolicy::Max => values.max(),
        };
        if let Some(chosen) = chosen {
            if chosen > self.global_ms {
                self.global_ms = chosen;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(max_ms: i64) -> Option<EventTimeStats> {
        Some(EventTimeStats::of(max_ms))
    }

    #[test]
    fn single_node_advances_and_never_regresses() {
        let mut t = WatermarkTracker::new(WatermarkPolicy::Min, vec![10_000]);
        t.update(&[stats(15_000)]);
        assert_eq!(t.current_ms(), 5_000);
        t.update(&[stats(12_000)]);
        assert_eq!(t.current_ms(), 5_000);
        t.update(&[None]);
        assert_eq!(t.current_ms(), 5_000);
        t.update(&[stats(25_000)]);
        assert_eq!(t.current_ms(), 15_000);
    }

    #[test]
    fn min_and_max_policies_across_streams() {
        // EventTimeWatermarkSuite "watermark with 2 streams": a node with no data counts as 0.
        let mut min = WatermarkTracker::new(WatermarkPolicy::Min, vec![10_000, 5_000]);
        min.update(&[stats(20_000), None]);
        assert_eq!(min.current_ms(), 0);
        min.update(&[None, stats(30_000)]);
        assert_eq!(min.current_ms(), 10_000);
        let mut max = WatermarkTracker::new(WatermarkPolicy::Max, vec![10_000, 5_000]);
        max.update(&[stats(20_000), None]);
        assert_eq!(max.current_ms(), 10_000);
        max.update(&[None, stats(30_000)]);
        assert_eq!(max.current_ms(), 25_000);
    }

    #[test]
    fn negative_candidates_never_take_the_watermark_below_zero() {
        let mut t = WatermarkTracker::new(WatermarkPolicy::Min, vec![10_000]);
        t.update(&[stats(3_000)]);
        assert_eq!(t.current_ms(), 0);
    }
}
