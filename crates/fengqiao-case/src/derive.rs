//! The one deterministic function from a case's header and events to its state.
//!
//! Replicas merge events, never state, so this function must give the same answer for the same set
//! of events whatever order they arrived in. Events are first put in a canonical order (by hybrid
//! clock time, then `at`, then `id`), and order-sensitive decisions never depend on anything else.
//! Deadlines are computed from `at`, the wall time, which the regulation's limits count in.
//!
//! Transitions form a tree through `prev` (the transition each was based on), rooted at `register`.
//! The walk from the root merges identical concurrent transitions (two replicas both accepting) and
//! stops at a fork of different ones unless a `resolve` event chose a branch. Annotations
//! (mediation, directives, links, notes, amendments) do not move the lifecycle and are applied
//! after the walk.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::lifecycle::{
    Proposed, apply_directive_event, empty_state, issued_directive, next_state, registered_state,
};
use crate::model::{
    CaseHeader, CaseState, Conflict, ConflictBranch, DirectiveState, Event, EventKind,
    HybridTimestamp, Limits, MediationRecord, MediationResult, ResolveDecision,
};

/// Derive the case's state. Replicas holding the same set of events derive the same state,
/// whatever order the events arrived in.
///
/// A document always holds its `register` event; should it be missing (a corrupt peer), the state
/// has an empty `holder` and `tip` and lists every transition as invalid, so nothing can follow it.
pub fn derive(header: &CaseHeader, events: &[Event], limits: &Limits) -> CaseState {
    let events: Vec<&Event> = events.iter().collect();
    derive_refs(header, &events, limits, true)
}

/// [`derive`] for events the caller holds as references: the receipt checks derive the state
/// before each new event from the events kept before it, and copying those would cost the
/// square of the case's length. Without `time_flags`, which those checks do not read.
pub(crate) fn derive_from_refs(
    header: &CaseHeader,
    events: &[&Event],
    limits: &Limits,
) -> CaseState {
    derive_refs(header, events, limits, false)
}

fn derive_refs(
    header: &CaseHeader,
    events: &[&Event],
    limits: &Limits,
    with_time_flags: bool,
) -> CaseState {
    // A case a successor took over (`succeed` events) derives with each predecessor read as its
    // successor, so the successor is the same office to the lifecycle (`crate::succession`).
    match crate::succession::renamed_events(events) {
        Some(renamed) => {
            let renamed: Vec<&Event> = renamed.iter().collect();
            derive_named(header, &renamed, limits, with_time_flags)
        }
        None => derive_named(header, events, limits, with_time_flags),
    }
}

fn derive_named(
    header: &CaseHeader,
    events: &[&Event],
    limits: &Limits,
    with_time_flags: bool,
) -> CaseState {
    let canonical = canonical_events(events);
    let tree = TransitionTree::new(&canonical);

    let mut invalid: BTreeSet<&str> = BTreeSet::new();
    let mut superseded: BTreeSet<&str> = BTreeSet::new();

    let root = canonical
        .iter()
        .copied()
        .find(|event| matches!(event.kind, EventKind::Register { .. }) && event.prev.is_none());
    let mut state = match root {
        Some(root) => registered_state(Proposed::from(root), limits),
        None => empty_state(),
    };
    state.imported = root.is_some_and(|root| root.imported.is_some());

    // A transition that names no transition it was based on can never be reached from the root.
    for event in &canonical {
        if event.kind.is_transition()
            && event.prev.is_none()
            && Some(event.id.as_str()) != root.map(|r| r.id.as_str())
        {
            invalid.extend(tree.subtree(event));
        }
    }

    if let Some(root) = root {
        let mut walk = Walk {
            tree: &tree,
            limits,
            invalid: &mut invalid,
            superseded: &mut superseded,
            kinds: Vec::new(),
        };
        state.conflict = walk.follow(&mut state, vec![root]);
    }

    apply_annotations(header, &canonical, &mut state, &mut invalid);

    let position: HashMap<&str, usize> = canonical
        .iter()
        .enumerate()
        .map(|(index, event)| (event.id.as_str(), index))
        .collect();
    state.invalid = in_canonical_order(&invalid, &position);
    state.superseded = in_canonical_order(&superseded, &position);
    state.event_count = u32::try_from(canonical.len()).unwrap_or(u32::MAX);
    state.last_event_at = canonical.iter().map(|event| event.at).max();
    if with_time_flags {
        // In canonical order, so that every replica lists them alike.
        state.time_flags = crate::event_time::time_flags(&canonical);
    }
    state
}

/// Events sorted by (`at`, `id`), with repeated ids kept once: the first in canonical order wins,
/// so a peer that (wrongly) reused an id cannot make replicas disagree.
fn canonical_events<'a>(events: &[&'a Event]) -> Vec<&'a Event> {
    let mut sorted: Vec<&Event> = events.to_vec();
    sorted.sort_by(|left, right| canonical_cmp(left, right));
    let mut seen = HashSet::new();
    sorted.retain(|event| seen.insert(event.id.as_str()));
    sorted
}

fn canonical_cmp(left: &Event, right: &Event) -> std::cmp::Ordering {
    order_key(left)
        .cmp(&order_key(right))
        .then_with(|| left.at.cmp(&right.at))
        .then_with(|| left.id.cmp(&right.id))
        // Same id and time but different content: still a total order, so the dedup above keeps
        // the same one everywhere.
        .then_with(|| left.kind.name().cmp(right.kind.name()))
        .then_with(|| left.node.cmp(&right.node))
        .then_with(|| left.operator.cmp(&right.operator))
        .then_with(|| left.prev.cmp(&right.prev))
        .then_with(|| {
            let left_json = serde_json::to_string(&left.kind).unwrap_or_default();
            let right_json = serde_json::to_string(&right.kind).unwrap_or_default();
            left_json.cmp(&right_json)
        })
}

/// Where an event stands in time: its hybrid clock time, which orders an event after everything
/// its maker had seen even when the maker's wall clock is days off; the wall time for events
/// from schema-1 documents, which have none.
fn order_key(event: &Event) -> (i64, u32) {
    if event.hlc == HybridTimestamp::ZERO {
        (event.at.timestamp_millis(), 0)
    } else {
        (event.hlc.wall_ms, event.hlc.counter)
    }
}

fn in_canonical_order(ids: &BTreeSet<&str>, position: &HashMap<&str, usize>) -> Vec<String> {
    let mut ordered: Vec<&str> = ids.iter().copied().collect();
    ordered.sort_by_key(|id| position.get(id).copied().unwrap_or(usize::MAX));
    ordered.into_iter().map(str::to_owned).collect()
}

/// Transitions indexed by the transition they were based on, plus the resolve events.
struct TransitionTree<'a> {
    children: HashMap<&'a str, Vec<&'a Event>>,
    /// In canonical order, so the last one naming a branch is the latest.
    resolves: Vec<&'a Event>,
}

impl<'a> TransitionTree<'a> {
    fn new(canonical: &[&'a Event]) -> Self {
        let mut children: HashMap<&'a str, Vec<&'a Event>> = HashMap::new();
        let mut resolves = Vec::new();
        for event in canonical {
            if event.kind.is_transition() {
                if let Some(prev) = &event.prev {
                    children.entry(prev.as_str()).or_default().push(event);
                }
            } else if matches!(event.kind, EventKind::Resolve { .. }) {
                resolves.push(*event);
            }
        }
        TransitionTree { children, resolves }
    }

    fn children_of(&self, id: &str) -> &[&'a Event] {
        self.children.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The event and every transition based on it, directly or not.
    fn subtree(&self, event: &'a Event) -> Vec<&'a str> {
        let mut found = vec![event.id.as_str()];
        let mut seen: HashSet<&str> = HashSet::from([event.id.as_str()]);
        let mut index = 0;
        while index < found.len() {
            for child in self.children_of(found[index]) {
                if seen.insert(child.id.as_str()) {
                    found.push(child.id.as_str());
                }
            }
            index += 1;
        }
        found
    }
}

/// What the resolves of a fork decide.
enum Settlement<'a> {
    /// They agree on this group.
    Chosen(usize),
    /// Nobody resolved it, or the standing resolves disagree (listed, in canonical order).
    Open { disputed: Vec<&'a Event> },
}

/// Concurrent transitions with one effect: same kind, leading to the same status and holder.
struct Group<'a> {
    next: CaseState,
    /// In canonical order: the first is the one whose details the state keeps.
    members: Vec<&'a Event>,
}

struct Walk<'t, 'a> {
    tree: &'t TransitionTree<'a>,
    limits: &'t Limits,
    invalid: &'t mut BTreeSet<&'a str>,
    superseded: &'t mut BTreeSet<&'a str>,
    /// Kinds of the transitions applied on this walk, in order (what a conflict branch shows).
    kinds: Vec<String>,
}

impl<'a> Walk<'_, 'a> {
    /// Applies the agreed chain below `frontier` (a set of equivalent transitions) to `state`.
    /// Returns the conflict it stopped at, if any.
    fn follow(&mut self, state: &mut CaseState, mut frontier: Vec<&'a Event>) -> Option<Conflict> {
        let mut visited: HashSet<&str> = frontier.iter().map(|event| event.id.as_str()).collect();
        loop {
            let mut children: Vec<&'a Event> = frontier
                .iter()
                .flat_map(|event| self.tree.children_of(&event.id).iter().copied())
                .filter(|child| visited.insert(child.id.as_str()))
                .collect();
            children.sort_by(|left, right| canonical_cmp(left, right));

            let mut groups: Vec<Group<'a>> = Vec::new();
            for child in children {
                match next_state(state, Proposed::from(child), self.limits) {
                    Ok(next) => {
                        let same_effect = |group: &&mut Group<'a>| {
                            group.members[0].kind.name() == child.kind.name()
                                && group.next.status == next.status
                                && group.next.holder == next.holder
                        };
                        match groups.iter_mut().find(same_effect) {
                            Some(group) => group.members.push(child),
                            None => groups.push(Group {
                                next,
                                members: vec![child],
                            }),
                        }
                    }
                    Err(_) => self.invalid.extend(self.tree.subtree(child)),
                }
            }

            let chosen = match groups.len() {
                0 => return None,
                1 => 0,
                _ => match self.resolution(&groups) {
                    Settlement::Chosen(chosen) => {
                        for (index, group) in groups.iter().enumerate() {
                            if index != chosen {
                                for member in &group.members {
                                    self.superseded.extend(self.tree.subtree(member));
                                }
                            }
                        }
                        chosen
                    }
                    Settlement::Open { disputed } => {
                        return Some(self.conflict(state, groups, disputed));
                    }
                },
            };
            let group = groups.swap_remove(chosen);
            *state = group.next;
            self.kinds.push(group.members[0].kind.name().to_owned());
            frontier = group.members;
        }
    }

    /// How the resolves naming one of these groups settle the fork. A resolve that another one
    /// overrides (its maker saw it and settled the disagreement) no longer counts; the rest must
    /// all choose the same group, or the fork stays open with their decisions disputed. So two
    /// offices that resolve one fork differently while cut off are a conflict for a person, and
    /// identical decisions collapse into one.
    fn resolution(&self, groups: &[Group<'a>]) -> Settlement<'a> {
        let group_of = |resolve: &Event| -> Option<usize> {
            let EventKind::Resolve { chosen, .. } = &resolve.kind else {
                return None;
            };
            groups
                .iter()
                .position(|group| group.members.iter().any(|member| &member.id == chosen))
        };
        let naming: Vec<(&'a Event, usize)> = self
            .tree
            .resolves
            .iter()
            .filter_map(|resolve| group_of(resolve).map(|group| (*resolve, group)))
            .collect();
        let overridden: HashSet<&str> = naming
            .iter()
            .flat_map(|(resolve, _)| match &resolve.kind {
                EventKind::Resolve { overrides, .. } => overrides.as_slice(),
                _ => &[],
            })
            .map(String::as_str)
            .collect();
        let standing: Vec<(&'a Event, usize)> = naming
            .into_iter()
            .filter(|(resolve, _)| !overridden.contains(resolve.id.as_str()))
            .collect();
        match standing.split_first() {
            Some(((_, first), rest)) if rest.iter().all(|(_, group)| group == first) => {
                Settlement::Chosen(*first)
            }
            _ => Settlement::Open {
                disputed: standing.into_iter().map(|(resolve, _)| resolve).collect(),
            },
        }
    }

    /// Describes an unresolved fork: each branch followed on its own to see where it leads.
    fn conflict(
        &mut self,
        state: &CaseState,
        groups: Vec<Group<'a>>,
        disputed: Vec<&'a Event>,
    ) -> Conflict {
        let mut branches = Vec::with_capacity(groups.len());
        for group in groups {
            let first = group.members[0];
            let mut branch_state = group.next;
            // Events inside a branch are neither invalid nor superseded for the case until the fork
            // is settled, so the branch walk records into throwaway sets.
            let mut branch_invalid = BTreeSet::new();
            let mut branch_superseded = BTreeSet::new();
            let mut branch_walk = Walk {
                tree: self.tree,
                limits: self.limits,
                invalid: &mut branch_invalid,
                superseded: &mut branch_superseded,
                kinds: vec![first.kind.name().to_owned()],
            };
            let _nested_conflict = branch_walk.follow(&mut branch_state, group.members);
            branches.push(ConflictBranch {
                first: first.id.clone(),
                kinds: branch_walk.kinds,
                node: first.node.clone(),
                operator: first.operator.clone(),
                status: branch_state.status,
                holder: branch_state.holder,
            });
        }
        Conflict {
            fork: state.tip.clone(),
            branches,
            disputed: disputed
                .into_iter()
                .filter_map(|resolve| match &resolve.kind {
                    EventKind::Resolve { chosen, .. } => Some(ResolveDecision {
                        event: resolve.id.clone(),
                        chosen: chosen.clone(),
                        node: resolve.node.clone(),
                        operator: resolve.operator.clone(),
                    }),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// Applies mediation, repeat links and directives, in canonical order.
fn apply_annotations<'a>(
    header: &CaseHeader,
    canonical: &[&'a Event],
    state: &mut CaseState,
    invalid: &mut BTreeSet<&'a str>,
) {
    let mut judicial_updates = Vec::new();
    let mut directive_issues: Vec<&'a Event> = Vec::new();
    let mut directive_steps: BTreeMap<&'a str, Vec<&'a Event>> = BTreeMap::new();
    for event in canonical {
        match &event.kind {
            EventKind::Mediate {
                mediation_type,
                mediator,
                result,
                agreement,
                judicial_confirmation,
            } => state.mediations.push(MediationRecord {
                event: event.id.clone(),
                at: event.at,
                mediation_type: *mediation_type,
                mediator: mediator.clone(),
                result: *result,
                agreement: agreement.clone(),
                judicial_confirmation: *judicial_confirmation,
            }),
            EventKind::UpdateJudicialConfirmation { .. } => judicial_updates.push(*event),
            EventKind::LinkRepeat { earlier } => {
                if earlier == &header.number || earlier.trim().is_empty() {
                    invalid.insert(event.id.as_str());
                } else {
                    state.repeat_of = Some(earlier.clone());
                }
            }
            EventKind::IssueDirective { .. } => directive_issues.push(*event),
            kind => {
                if let Some(directive) = kind.directive_stepped() {
                    directive_steps
                        .entry(directive.as_str())
                        .or_default()
                        .push(*event);
                }
            }
        }
    }

    // Updates are applied after every mediation record, so an update stamped (by a skewed clock)
    // before its mediation still finds it.
    for update in judicial_updates {
        let EventKind::UpdateJudicialConfirmation { mediation, status } = &update.kind else {
            continue;
        };
        match state
            .mediations
            .iter_mut()
            .find(|record| &record.event == mediation)
        {
            Some(record) if record.result == MediationResult::Agreement => {
                record.judicial_confirmation = *status
            }
            Some(_) => {
                invalid.insert(update.id.as_str());
            }
            // The mediation has not arrived yet: not applicable, not wrong.
            None => {}
        }
    }

    for issue in directive_issues {
        let Some(mut directive) = issued_directive(Proposed::from(issue)) else {
            continue;
        };
        if state
            .directives
            .iter()
            .any(|existing| existing.id == directive.id)
        {
            // Two issues of one directive id: the canonically first stands.
            invalid.insert(issue.id.as_str());
            continue;
        }
        let steps = directive_steps
            .remove(directive.id.as_str())
            .unwrap_or_default();
        apply_directive_steps(&mut directive, steps, invalid);
        state.directives.push(directive);
    }
    // Steps of directives whose issue has not arrived are left until it does.
}

/// Applies a directive's steps in causal rather than clock order: repeatedly the canonically first
/// step that is valid now. Clocks of issuer and target may be skewed (a report stamped before its
/// acknowledgement), but each step is only ever possible after the one that enables it, so this
/// recovers the order they happened in. Steps never applicable are invalid.
fn apply_directive_steps<'a>(
    directive: &mut DirectiveState,
    mut pending: Vec<&'a Event>,
    invalid: &mut BTreeSet<&'a str>,
) {
    loop {
        let applicable = pending.iter().position(|step| {
            let mut trial = directive.clone();
            apply_directive_event(&mut trial, Proposed::from(*step)).is_ok()
        });
        let Some(index) = applicable else {
            break;
        };
        let step = pending.remove(index);
        // The trial above succeeded on an identical copy.
        let _applied = apply_directive_event(directive, Proposed::from(step));
    }
    invalid.extend(pending.iter().map(|step| step.id.as_str()));
}
