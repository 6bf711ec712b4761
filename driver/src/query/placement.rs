//! Which executor owns each state partition (pure logic).
//!
//! Ownership is sticky: a partition stays where it is while its executor lives, so its state
//! stays in that executor's memory batch after batch. Orphaned partitions (their executor
//! left) go to the live executor owning the fewest, which restores them from the checkpoint;
//! when an executor joins, partitions move to it from the most loaded ones until no executor
//! owns more than one partition more than another (a fair share), and no further.

use std::collections::BTreeMap;

/// Assigns every one of `partitions` to a live executor, keeping current owners that are still
/// live. `live` must not be empty.
pub fn assign_partitions(current: &[Option<String>], partitions: usize, live: &[String]) -> Vec<String> {
    let mut load: BTreeMap<&str, usize> = live.iter().map(|e| (e.as_str(), 0)).collect();
    let mut out: Vec<Option<String>> =
        (0..partitions).map(|p| current.get(p).cloned().flatten().filter(|e| load.contains_key(e.as_str()))).collect();
    for owner in out.iter().flatten() {
        if let Some(n) = load.get_mut(owner.as_str()) {
            *n += 1;
        }
    }
    for slot in out.iter_mut().filter(|s| s.is_none()) {
        // Least-loaded live executor; ties go to the smallest id, so placement is deterministic.
        let Some((&exec, _)) = load.iter().min_by_key(|(id, n)| (**n, **id)) else { break };
        *slot = Some(exec.to_string());
        if let Some(n) = load.get_mut(exec) {
            *n += 1;
        }
    }
    // Rebalance: move the highest-numbered partition of the most loaded executor to the least
    // loaded one while their loads differ by more than one.
    while let Some((&max_id, &max_n)) = load.iter().max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id))) {
        let Some((&min_id, &min_n)) = load.iter().min_by_key(|(id, n)| (**n, **id)) else { break };
        if max_n <= min_n + 1 {
            break;
        }
        let Some(p) = out.iter().rposition(|o| o.as_deref() == Some(max_id)) else { break };
        out[p] = Some(min_id.to_string());
        *load.entry(max_id).or_default() -= 1;
        *load.entry(min_id).or_default() += 1;
    }
    out.into_iter().map(|o| o.unwrap_or_default()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn first_placement_spreads_evenly() {
        let p = assign_partitions(&[], 5, &ids(&["a", "b"]));
        assert_eq!(p, ids(&["a", "b", "a", "b", "a"]));
    }

    #[test]
    fn owners_are_sticky_and_orphans_go_to_the_least_loaded() {
        let current: Vec<Option<String>> = ["a", "b", "c", "a", "b"].iter().map(|s| Some(s.to_string())).collect();
        let p = assign_partitions(&current, 5, &ids(&["a", "b"]));
        assert_eq!(&p[..2], &ids(&["a", "b"])[..]);
        assert_eq!(p[2], "a", "c's partition moves to the least-loaded survivor (tie → smallest id)");
        assert_eq!(&p[3..], &ids(&["a", "b"])[..]);
        let p2 = assign_partitions(&p.iter().cloned().map(Some).collect::<Vec<_>>(), 5, &ids(&["a", "b"]));
        assert_eq!(p2, p, "nothing moves while owners live");
    }

    #[test]
    fn a_joining_executor_takes_a_fair_share_and_no_more() {
        let current: Vec<Option<String>> = ["a", "b", "a", "b", "a", "b"].iter().map(|s| Some(s.to_string())).collect();
        let p = assign_partitions(&current, 6, &ids(&["a", "b", "c"]));
        let count = |e: &str| p.iter().filter(|o| *o == e).count();
        assert_eq!((count("a"), count("b"), count("c")), (2, 2, 2));
        let moved = p.iter().zip(&current).filter(|(n, o)| o.as_deref() != Some(n.as_str())).count();
        assert_eq!(moved, 2, "only the partitions c takes move");
    }
}
