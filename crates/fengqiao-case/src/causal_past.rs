//! Which events of a case each event was made on: its causal past, from the document's change graph.
//!
//! A receipt verdict must be a function of the event and of what its maker held when it made it,
//! never of whatever else the receiver happens to hold: otherwise the maker's node accepts an
//! event that a receiver holding a concurrent one refuses, and the replicas part for good. The
//! events a maker held are exactly those written by the ancestors of the change that wrote the
//! event (automerge records a change's dependencies as the heads its writer had), plus those an
//! earlier operation of the same change wrote. Nothing here reads automerge:
//! `CaseDocument::causal_past` extracts the graph, this module answers questions about it.

use std::collections::HashMap;

/// For each event of a case's list (by position), the events in its causal past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CausalPast {
    /// Per event position: the index of the change that wrote it and the operation counter it
    /// was written at (orders events written by one change).
    written_by: Vec<(usize, u64)>,
    /// Per change index: a bit set of the changes it descends from, itself included.
    ancestors: Vec<Vec<u64>>,
    /// Event positions in an order where every event comes after its whole causal past.
    order: Vec<usize>,
}

/// Why a change graph cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CausalPastError {
    #[error("event {0} was written by a change the document does not hold")]
    UnknownChange(usize),
    #[error(
        "the document's changes depend on changes it does not hold, or on each other in a loop"
    )]
    BrokenGraph,
}

impl CausalPast {
    /// A history without concurrency: every event was made on all the events before it in the
    /// list (a case written at one office, or events built by hand in tests).
    pub fn linear(count: usize) -> CausalPast {
        let words = count.div_ceil(64);
        let ancestors = (0..count)
            .map(|change| {
                let mut bits = vec![0u64; words];
                for earlier in 0..=change {
                    bits[earlier / 64] |= 1 << (earlier % 64);
                }
                bits
            })
            .collect();
        CausalPast {
            written_by: (0..count).map(|position| (position, 0)).collect(),
            ancestors,
            order: (0..count).collect(),
        }
    }

    /// Build from a change graph. `changes` are (change key, keys of its dependencies), in any
    /// order; `events` give, per list position, the key of the change that wrote the event and
    /// the operation counter it was written at.
    pub fn from_graph<K: Eq + std::hash::Hash + Copy>(
        changes: &[(K, Vec<K>)],
        events: &[(K, u64)],
    ) -> Result<CausalPast, CausalPastError> {
        let index: HashMap<K, usize> = changes
            .iter()
            .enumerate()
            .map(|(position, (key, _))| (*key, position))
            .collect();
        let mut dependencies: Vec<Vec<usize>> = Vec::with_capacity(changes.len());
        for (_, deps) in changes {
            let found: Option<Vec<usize>> =
                deps.iter().map(|dep| index.get(dep).copied()).collect();
            dependencies.push(found.ok_or(CausalPastError::BrokenGraph)?);
        }
        // Kahn's algorithm: a change after all it depends on.
        let mut waiting: Vec<usize> = dependencies.iter().map(Vec::len).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); changes.len()];
        for (change, deps) in dependencies.iter().enumerate() {
            for dep in deps {
                dependents[*dep].push(change);
            }
        }
        let mut ready: Vec<usize> = (0..changes.len())
            .filter(|change| waiting[*change] == 0)
            .collect();
        let mut topological: Vec<usize> = Vec::with_capacity(changes.len());
        while let Some(change) = ready.pop() {
            topological.push(change);
            for dependent in &dependents[change] {
                waiting[*dependent] -= 1;
                if waiting[*dependent] == 0 {
                    ready.push(*dependent);
                }
            }
        }
        if topological.len() != changes.len() {
            return Err(CausalPastError::BrokenGraph);
        }
        let words = changes.len().div_ceil(64);
        let mut ancestors = vec![vec![0u64; words]; changes.len()];
        let mut rank = vec![0usize; changes.len()];
        for (position, change) in topological.iter().enumerate() {
            rank[*change] = position;
            let mut bits = vec![0u64; words];
            bits[change / 64] |= 1 << (change % 64);
            for dep in &dependencies[*change] {
                for (word, dep_word) in bits.iter_mut().zip(&ancestors[*dep]) {
                    *word |= dep_word;
                }
            }
            ancestors[*change] = bits;
        }
        let mut written_by = Vec::with_capacity(events.len());
        for (position, (key, counter)) in events.iter().enumerate() {
            let change = index
                .get(key)
                .ok_or(CausalPastError::UnknownChange(position))?;
            written_by.push((*change, *counter));
        }
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|position| {
            let (change, counter) = written_by[*position];
            (rank[change], counter, *position)
        });
        Ok(CausalPast {
            written_by,
            ancestors,
            order,
        })
    }

    /// How many events this describes.
    pub fn len(&self) -> usize {
        self.written_by.len()
    }

    pub fn is_empty(&self) -> bool {
        self.written_by.is_empty()
    }

    /// Whether the event at `earlier` is in the causal past of the event at `later` (was held by
    /// its maker when it was made). An event is not in its own past.
    pub fn precedes(&self, earlier: usize, later: usize) -> bool {
        let (Some(&(earlier_change, earlier_op)), Some(&(later_change, later_op))) =
            (self.written_by.get(earlier), self.written_by.get(later))
        else {
            return false;
        };
        if earlier_change == later_change {
            return earlier_op < later_op;
        }
        self.ancestors[later_change]
            .get(earlier_change / 64)
            .is_some_and(|word| word & (1 << (earlier_change % 64)) != 0)
    }

    /// Event positions in an order where each comes after its whole causal past.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}
