//! A successor acting on its predecessor's cases as the same office: the one place that decides
//! it. No IO.
//!
//! When an office's disk and key are lost, its parent admits a new node as the **successor** of
//! the old one (the roster entry's `successor_of`; `Hierarchy::retirement`). The cases that come
//! back to the new node still name the old node as holder, awaited receiver, directive target or
//! registering office. The successor takes the old node's place in a case with a signed
//! `succeed { predecessor }` event ([`EventKind::Succeed`]), which the write path
//! (`appending.rs`) puts before the successor's first event on every case naming a predecessor
//! ([`predecessors_named`]).
//!
//! Two halves, deliberately apart:
//! - **Derive** (no hierarchy): a case holding `succeed` events reads every node those events
//!   name as a predecessor as its successor, in every event ([`renamed_events`]), before the
//!   lifecycle runs. So the state names the successor wherever it named the predecessor, the
//!   predecessor's earlier events act as the successor's office's, and the result does not
//!   depend on the order the events arrived in (the renaming is a function of the set of events).
//! - **Authority** (with the hierarchy): a `succeed` is allowed only if the roster names its
//!   maker as the predecessor's successor, directly or through a chain of successions
//!   (`Hierarchy::is_successor_of` in `authority.rs`, beside the roster's other questions; the
//!   authority table's `Successor` relation), and receipt keeps a refused one
//!   pending, because the roster entry may still be on its way.

use std::collections::BTreeMap;

use crate::authority::{Hierarchy, MAX_SUCCESSION_CHAIN};
use crate::model::{CaseState, Event, EventKind, NodeId};

/// Every node the case's state names in a relation the authority table reads (holder, awaited
/// receiver, registering office, a directive's target or issuer), and whom a returned
/// assignment goes back to.
fn named_nodes(state: &CaseState) -> Vec<&str> {
    let mut named: Vec<&str> = vec![state.holder.as_str(), state.registered_by.as_str()];
    named.extend(state.awaiting.as_deref());
    named.extend(state.assigned_by.as_deref());
    for directive in &state.directives {
        named.push(directive.target_node.as_str());
        named.push(directive.issuer_node.as_str());
    }
    named.retain(|node| !node.is_empty());
    named.sort_unstable();
    named.dedup();
    named
}

/// Whether the case's state names `node` in any relation (what a `succeed` must find).
pub fn names(state: &CaseState, node: &str) -> bool {
    named_nodes(state).contains(&node)
}

/// The predecessors of `node` the case still names (in node-id order): the places `node` takes
/// with a `succeed` event before it acts on the case. Empty for every node the roster names as
/// nobody's successor, so offices that were never rebuilt append nothing new.
pub fn predecessors_named(state: &CaseState, node: &str, hierarchy: &dyn Hierarchy) -> Vec<NodeId> {
    named_nodes(state)
        .into_iter()
        .filter(|named| *named != node && hierarchy.is_successor_of(node, named))
        .map(str::to_owned)
        .collect()
}

/// Which node each predecessor named by the case's `succeed` events is now, as those events say.
struct Successions {
    successor_of: BTreeMap<String, String>,
}

impl Successions {
    /// Of a case's events, in any order. Two events giving one predecessor different
    /// successors (a chain whose later successor took the place directly) are settled alike
    /// everywhere: the latest by hybrid time, then id.
    fn of(events: &[&Event]) -> Option<Successions> {
        let mut declared: Vec<&Event> = events
            .iter()
            .copied()
            .filter(|event| {
                matches!(&event.kind, EventKind::Succeed { predecessor }
                    if !predecessor.is_empty() && *predecessor != event.node)
            })
            .collect();
        if declared.is_empty() {
            return None;
        }
        declared.sort_by(|left, right| {
            (left.hlc.wall_ms, left.hlc.counter, &left.id, &left.node).cmp(&(
                right.hlc.wall_ms,
                right.hlc.counter,
                &right.id,
                &right.node,
            ))
        });
        let mut successor_of = BTreeMap::new();
        for event in declared {
            if let EventKind::Succeed { predecessor } = &event.kind {
                successor_of.insert(predecessor.clone(), event.node.clone());
            }
        }
        Some(Successions { successor_of })
    }

    /// The node `node` is now: itself, or the last successor along its chain.
    fn current<'a>(&'a self, node: &'a str) -> &'a str {
        let mut current = node;
        for _ in 0..MAX_SUCCESSION_CHAIN {
            match self.successor_of.get(current) {
                Some(successor) if successor != node => current = successor,
                _ => break,
            }
        }
        current
    }

    fn rename(&self, node: &mut NodeId) {
        let current = self.current(node);
        if current != node {
            *node = current.to_owned();
        }
    }

    fn renamed(&self, event: &Event) -> Event {
        let mut renamed = event.clone();
        self.rename(&mut renamed.node);
        match &mut renamed.kind {
            EventKind::Forward {
                to_node: Some(to_node),
                ..
            }
            | EventKind::Assign { to_node, .. }
            | EventKind::Escalate { to_node, .. }
            | EventKind::IssueDirective {
                target_node: to_node,
                ..
            } => self.rename(to_node),
            // The succession itself keeps naming whom it replaced.
            _ => {}
        }
        renamed
    }
}

/// The case's events with every predecessor its `succeed` events name read as its successor
/// (the maker, and the office a forward, assignment, escalation or directive names), or `None`
/// when the case holds no `succeed` event (nearly always: then nothing is copied). Derive runs
/// on these, so the state names the successor wherever it would have named the predecessor.
pub(crate) fn renamed_events(events: &[&Event]) -> Option<Vec<Event>> {
    let successions = Successions::of(events)?;
    Some(
        events
            .iter()
            .map(|event| successions.renamed(event))
            .collect(),
    )
}
