//! Two replicas of one case making concurrent transitions: forks, merges both ways, resolution.

use super::support::*;
use crate::case_error::CaseError;
use crate::derive::derive;
use crate::model::{Event, EventKind, Status};

const ACTOR_C: [u8; 16] = [0xc3; 16];

fn resolve(chosen: &str) -> EventKind {
    EventKind::Resolve {
        chosen: chosen.to_owned(),
        note: "联席会议决定".to_owned(),
        overrides: Vec::new(),
    }
}

/// Replica A replies and closes while replica B, concurrently, escalates; then both merge.
fn close_versus_escalate() -> (Case, Case) {
    let mut a = Case::registered();
    a.ok(VILLAGE, accept(), china(3, 3, 10));
    let mut b = a.fork(&ACTOR_B, "b");
    a.ok(VILLAGE, reply(), china(3, 10, 10));
    a.ok(VILLAGE, close(true), china(3, 12, 10));
    b.ok(VILLAGE, escalate(TOWNSHIP), china(3, 11, 10));
    a.merge_from(&mut b);
    b.merge_from(&mut a);
    (a, b)
}

#[test]
fn concurrent_different_transitions_are_a_named_conflict() {
    let (mut a, mut b) = close_versus_escalate();
    assert_eq!(a.document.heads(), b.document.heads());
    assert_eq!(a.state, b.state);
    let state = &a.state;
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.holder, VILLAGE);
    assert_eq!(state.tip, "a001");
    let conflict = state.conflict.as_ref().expect("a conflict");
    assert_eq!(conflict.fork, "a001");
    assert_eq!(conflict.branches.len(), 2);
    let closing = &conflict.branches[0];
    assert_eq!(closing.first, "a002");
    assert_eq!(closing.kinds, vec!["reply".to_owned(), "close".to_owned()]);
    assert_eq!(closing.node, VILLAGE);
    assert_eq!(closing.operator, format!("operator at {VILLAGE}"));
    assert_eq!(closing.status, Status::Closed);
    assert_eq!(closing.holder, VILLAGE);
    let escalating = &conflict.branches[1];
    assert_eq!(escalating.first, "b001");
    assert_eq!(escalating.kinds, vec!["escalate".to_owned()]);
    assert_eq!(escalating.status, Status::Accepted);
    assert_eq!(escalating.holder, TOWNSHIP);
    assert!(state.superseded.is_empty());
    assert!(state.invalid.is_empty());
    assert_eq!(state.event_count, 5);

    // Nothing moves until a person chooses.
    let message = a.refused(VILLAGE, reply(), china(3, 13, 10));
    assert_eq!(
        message,
        "case has an unresolved conflict at a001: resolve it before further transitions"
    );
    assert!(matches!(
        a.act(
            VILLAGE,
            EventKind::Evaluate {
                satisfaction: crate::model::Satisfaction::Satisfied
            },
            china(3, 13, 10)
        ),
        Err(CaseError::Unresolved { .. })
    ));
    a.ok(
        VILLAGE,
        EventKind::Note {
            text: "待联席会议研究".to_owned(),
        },
        china(3, 13, 11),
    );
    let message = a.refused(VILLAGE, resolve("a003"), china(3, 13, 12));
    assert!(
        message.contains("not the first event of a branch"),
        "{message}"
    );

    let state = b.ok(COUNTY, resolve("b001"), china(3, 14, 10));
    assert_eq!(state.conflict, None);
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.holder, TOWNSHIP);
    assert_eq!(state.tip, "b001");
    assert_eq!(state.escalated_to, vec![TOWNSHIP.to_owned()]);
    assert_eq!(state.superseded, vec!["a002".to_owned(), "a003".to_owned()]);
    assert_eq!(state.timeline.replied_at, None);
    assert_eq!(state.timeline.closed_at, None);

    // Later transitions follow the chosen branch, on either replica once merged.
    a.merge_from(&mut b);
    b.merge_from(&mut a);
    assert_eq!(a.state, b.state);
    let state = a.ok(TOWNSHIP, reply(), china(3, 20, 10));
    assert_eq!(state.status, Status::Replied);
    let events = a.document.events().expect("events");
    let last = events
        .iter()
        .find(|event| event.id == a.last_id())
        .expect("appended");
    assert_eq!(last.prev.as_deref(), Some("b001"));
    b.merge_from(&mut a);
    assert_eq!(a.state, b.state);
    assert_eq!(a.document.heads(), b.document.heads());
}

#[test]
fn choosing_the_other_branch_keeps_the_closure() {
    let (mut a, mut b) = close_versus_escalate();
    let state = a.ok(VILLAGE, resolve("a002"), china(3, 14, 10));
    assert_eq!(state.status, Status::Closed);
    assert_eq!(state.tip, "a003");
    assert_eq!(state.superseded, vec!["b001".to_owned()]);
    assert!(state.escalated_to.is_empty());
    b.merge_from(&mut a);
    assert_eq!(b.state, a.state);
}

#[test]
fn concurrent_resolves_that_disagree_are_a_conflict_naming_both_decisions() {
    let (mut a, mut b) = close_versus_escalate();
    a.ok(VILLAGE, resolve("a002"), china(3, 14, 10));
    let village_resolve = a.last_id();
    b.ok(COUNTY, resolve("b001"), china(3, 14, 11));
    let county_resolve = b.last_id();
    a.merge_from(&mut b);
    b.merge_from(&mut a);
    assert_eq!(a.state, b.state);
    // Neither decision is dropped for the other: the fork stands, with both named.
    let conflict = a.state.conflict.clone().expect("the resolves disagree");
    assert_eq!(conflict.fork, "a001");
    let decisions: Vec<(&str, &str, &str)> = conflict
        .disputed
        .iter()
        .map(|decision| {
            (
                decision.event.as_str(),
                decision.chosen.as_str(),
                decision.node.as_str(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        vec![
            (village_resolve.as_str(), "a002", VILLAGE),
            (county_resolve.as_str(), "b001", COUNTY)
        ]
    );
    assert_eq!(a.state.status, Status::Accepted);
    assert_eq!(a.state.holder, VILLAGE);
    assert!(a.state.superseded.is_empty());

    // A person settles it: the new resolve overrides both, on every replica.
    let state = b.ok(COUNTY, resolve("b001"), china(3, 15, 10));
    assert_eq!(state.conflict, None);
    assert_eq!(state.holder, TOWNSHIP);
    let events = b.document.events().expect("events");
    let settling = events
        .iter()
        .find(|event| event.id == b.last_id())
        .expect("appended");
    assert!(matches!(
        &settling.kind,
        EventKind::Resolve { overrides, .. }
            if *overrides == vec![village_resolve.clone(), county_resolve.clone()]
    ));
    a.merge_from(&mut b);
    assert_eq!(a.state, b.state);
}

#[test]
fn concurrent_resolves_that_agree_collapse() {
    let (mut a, mut b) = close_versus_escalate();
    a.ok(VILLAGE, resolve("b001"), china(3, 14, 10));
    b.ok(COUNTY, resolve("b001"), china(3, 14, 11));
    a.merge_from(&mut b);
    b.merge_from(&mut a);
    assert_eq!(a.state, b.state);
    assert_eq!(a.state.conflict, None);
    assert_eq!(a.state.holder, TOWNSHIP);
}

#[test]
fn concurrent_identical_accepts_do_not_conflict() {
    let mut a = Case::registered();
    let mut b = a.fork(&ACTOR_B, "b");
    a.ok(VILLAGE, accept(), china(3, 3, 10));
    b.ok(VILLAGE, accept(), china(3, 3, 11));
    a.merge_from(&mut b);
    b.merge_from(&mut a);
    assert_eq!(a.state, b.state);
    assert_eq!(a.state.conflict, None);
    assert_eq!(a.state.status, Status::Accepted);
    assert_eq!(a.state.tip, "a001");
    assert_eq!(a.state.timeline.accepted_at, Some(china(3, 3, 10)));
    assert!(a.state.superseded.is_empty());
    assert!(a.state.invalid.is_empty());
    assert_eq!(a.state.event_count, 3);
    let state = b.ok(VILLAGE, reply(), china(3, 10, 10));
    assert_eq!(state.status, Status::Replied);
    a.merge_from(&mut b);
    assert_eq!(a.state, b.state);
}

#[test]
fn work_continued_on_a_duplicate_branch_joins_the_agreed_chain() {
    let mut a = Case::registered();
    let mut b = a.fork(&ACTOR_B, "b");
    a.ok(VILLAGE, accept(), china(3, 3, 10));
    b.ok(VILLAGE, accept(), china(3, 3, 11));
    // B continues from its own accept before hearing of A's.
    b.ok(VILLAGE, reply(), china(3, 10, 10));
    a.merge_from(&mut b);
    b.merge_from(&mut a);
    assert_eq!(a.state, b.state);
    assert_eq!(a.state.conflict, None);
    assert_eq!(a.state.status, Status::Replied);
    assert_eq!(a.state.tip, "b002");
}

#[test]
fn merging_is_order_independent_with_three_replicas() {
    let mut a = Case::registered();
    let mut b = a.fork(&ACTOR_B, "b");
    let mut c = a.fork(&ACTOR_C, "c");
    a.ok(VILLAGE, accept(), china(3, 3, 10));
    b.ok(VILLAGE, escalate(TOWNSHIP), china(3, 3, 11));
    c.ok(
        VILLAGE,
        EventKind::Reject {
            reason: "不予受理".to_owned(),
        },
        china(3, 3, 12),
    );
    a.merge_from(&mut b);
    a.merge_from(&mut c);
    c.merge_from(&mut b);
    c.merge_from(&mut a);
    b.merge_from(&mut c);
    assert_eq!(a.state, b.state);
    assert_eq!(b.state, c.state);
    assert_eq!(a.document.heads(), c.document.heads());
    let conflict = a.state.conflict.as_ref().expect("a three-way conflict");
    assert_eq!(conflict.fork, "register");
    assert_eq!(conflict.branches.len(), 3);
    assert_eq!(a.state.status, Status::Registered);
}

#[test]
fn a_transition_from_a_non_holder_peer_is_listed_invalid_with_what_follows_it() {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let header = case.document.header().expect("header");
    let mut events = case.document.events().expect("events");
    let forged = |id: &str, kind: EventKind, prev: &str| Event {
        id: id.to_owned(),
        kind,
        at: china(3, 4, 10),
        node: COUNTY.to_owned(),
        operator: "越权".to_owned(),
        prev: Some(prev.to_owned()),
        hlc: Default::default(),
        signature: None,
        imported: None,
        backdated_reason: None,
    };
    events.push(forged("x1", reply(), "a001"));
    events.push(forged("x2", close(true), "x1"));
    // Based on an event that has not arrived: simply not reachable yet.
    events.push(forged("x3", reply(), "missing"));
    let state = derive(&header, &events, &case.limits);
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.invalid, vec!["x1".to_owned(), "x2".to_owned()]);
    assert_eq!(state.tip, "a001");
    assert_eq!(state.conflict, None);
}

#[test]
fn a_transition_without_prev_or_a_second_register_is_invalid() {
    let case = Case::registered();
    let header = case.document.header().expect("header");
    let mut events = case.document.events().expect("events");
    events.push(Event {
        id: "orphan".to_owned(),
        kind: accept(),
        at: china(3, 3, 10),
        node: VILLAGE.to_owned(),
        operator: "x".to_owned(),
        prev: None,
        hlc: Default::default(),
        signature: None,
        imported: None,
        backdated_reason: None,
    });
    events.push(Event {
        id: "second-register".to_owned(),
        kind: EventKind::Register {
            header: None,
            policy_version: 0,
        },
        at: china(3, 3, 11),
        node: TOWNSHIP.to_owned(),
        operator: "x".to_owned(),
        prev: None,
        hlc: Default::default(),
        signature: None,
        imported: None,
        backdated_reason: None,
    });
    let state = derive(&header, &events, &case.limits);
    assert_eq!(state.status, Status::Registered);
    assert_eq!(state.holder, VILLAGE);
    assert_eq!(
        state.invalid,
        vec!["orphan".to_owned(), "second-register".to_owned()]
    );
}

#[test]
fn derive_without_a_register_event_gives_an_inert_state() {
    let case = Case::registered();
    let header = case.document.header().expect("header");
    let state = derive(&header, &[], &case.limits);
    assert!(state.tip.is_empty());
    assert!(state.holder.is_empty());
    assert_eq!(state.event_count, 0);
}

#[test]
fn derive_does_not_depend_on_event_order() {
    let (a, _b) = close_versus_escalate();
    let header = a.document.header().expect("header");
    let events = a.document.events().expect("events");
    let state = derive(&header, &events, &a.limits);
    let mut reversed = events.clone();
    reversed.reverse();
    assert_eq!(derive(&header, &reversed, &a.limits), state);
    let mut rotated = events;
    rotated.rotate_left(2);
    assert_eq!(derive(&header, &rotated, &a.limits), state);
}

#[test]
fn merging_another_case_is_refused() {
    let mut a = Case::registered();
    let mut other_header = header();
    other_header.number = "430702001001-2026-000999".to_owned();
    let (mut other, _, _) = crate::appending::register(
        other_header,
        new_event(
            "register",
            VILLAGE,
            EventKind::Register {
                header: None,
                policy_version: 0,
            },
            china(3, 2, 9),
        ),
        &ACTOR_B,
        &crate::policy::PolicyBook::fixed(a.limits.clone()),
        &signer(),
    )
    .expect("registers");
    let error = a
        .document
        .merge(&mut other)
        .expect_err("different documents");
    assert!(
        error
            .to_string()
            .contains("not created as replicas of one case"),
        "{error}"
    );
}
