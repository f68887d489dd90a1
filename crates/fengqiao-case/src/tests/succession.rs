//! A successor taking its predecessor's place in a case (`crate::succession`): the write path
//! puts a signed `succeed` before its first event, the page's question (`judge_case`) answers as
//! the write will, nobody else may claim the place, and derive names the successor wherever the
//! case named the predecessor, whichever replica merges what.

use super::support::*;
use crate::appending::{append, judge, judge_case};
use crate::authority::Hierarchy;
use crate::lifecycle::NewEvent;
use crate::model::roster::Retirement;
use crate::model::{EventKind, Status};
use crate::signature::{SUCCESSION_EVENT_SIGNATURE_VERSION, signature_version};

/// The rebuilt village's new node, which the township admitted as the successor of `VILLAGE`.
const REBUILT: &str = "node-village-rebuilt";

/// [`Tree`] after the village's rebuild.
struct Rebuilt;

impl Hierarchy for Rebuilt {
    fn is_strict_ancestor(&self, ancestor: &str, node: &str) -> bool {
        let node = if node == REBUILT { VILLAGE } else { node };
        Tree.is_strict_ancestor(ancestor, node)
    }

    fn region_of(&self, node: &str) -> Option<String> {
        Tree.region_of(if node == REBUILT { VILLAGE } else { node })
    }

    fn retirement(&self, node: &str) -> Option<Retirement> {
        (node == VILLAGE).then(|| Retirement {
            successor: REBUILT.to_owned(),
            since: china(3, 2, 9),
        })
    }
}

fn act_as(case: &mut Case, node: &str, id: &str, kind: EventKind) -> Result<(), String> {
    let event = new_event(id, node, kind, china(3, 2, 10));
    let (_event, state, _header) =
        append(&mut case.document, event, &case.limits, &signer(), &Rebuilt)
            .map_err(|error| error.to_string())?;
    case.state = state;
    Ok(())
}

fn candidate(node: &str, kind: EventKind) -> NewEvent {
    new_event("candidate", node, kind, china(3, 2, 10))
}

#[test]
fn the_successor_is_offered_and_makes_its_predecessors_events_after_one_succeed() {
    let mut case = Case::registered();
    assert_eq!(case.state.holder, VILLAGE);
    let header = case.document.header().expect("header");
    let events = case.document.events().expect("events");

    // Without taking the place the new node is nobody to the case; the page asks as the
    // write path acts, so it offers the acceptance, and to nobody else.
    let accept_by = |node| candidate(node, accept());
    assert!(
        judge(
            &header,
            &case.state,
            &accept_by(REBUILT),
            &case.limits,
            &Rebuilt
        )
        .is_err()
    );
    judge_case(
        &header,
        &events,
        case.state.clone(),
        &accept_by(REBUILT),
        &case.limits,
        &Rebuilt,
    )
    .expect("the successor may accept");
    assert!(
        judge_case(
            &header,
            &events,
            case.state.clone(),
            &accept_by(SIBLING),
            &case.limits,
            &Rebuilt
        )
        .is_err()
    );

    // A refused action leaves no `succeed` behind.
    let refused = act_as(&mut case, REBUILT, "close", close(true)).expect_err("not accepted yet");
    assert!(refused.contains("close"), "{refused}");
    assert_eq!(case.document.events().expect("events").len(), 1);

    act_as(&mut case, REBUILT, "accept", accept()).expect("the successor accepts");
    let events = case.document.events().expect("events");
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.name()).collect();
    assert_eq!(kinds, ["register", "succeed", "accept"]);
    let succeed = &events[1];
    assert_eq!(succeed.id, "accept.succeed0");
    assert_eq!(succeed.node, REBUILT);
    assert_eq!(
        succeed
            .signature
            .as_ref()
            .map(|signature| signature.version),
        Some(SUCCESSION_EVENT_SIGNATURE_VERSION)
    );
    assert_eq!(
        signature_version(succeed),
        SUCCESSION_EVENT_SIGNATURE_VERSION
    );
    assert_eq!(case.state.status, Status::Accepted);
    assert_eq!(case.state.holder, REBUILT);
    assert_eq!(case.state.registered_by, REBUILT);
    assert_eq!(case.derived(), case.state);

    // Once in place, no second `succeed`.
    act_as(&mut case, REBUILT, "reply", reply()).expect("the successor replies");
    let succeeds = case
        .document
        .events()
        .expect("events")
        .iter()
        .filter(|event| event.kind.name() == "succeed")
        .count();
    assert_eq!(succeeds, 1);
}

#[test]
fn nobody_but_the_named_successor_takes_the_place() {
    let mut case = Case::registered();
    let succeed = || EventKind::Succeed {
        predecessor: VILLAGE.to_owned(),
    };
    let sibling = act_as(&mut case, SIBLING, "s1", succeed()).expect_err("a sibling");
    assert!(sibling.contains("successor"), "{sibling}");
    let township = act_as(&mut case, TOWNSHIP, "s2", succeed()).expect_err("the parent");
    assert!(township.contains("successor"), "{township}");
    let unrelated = act_as(
        &mut case,
        REBUILT,
        "s3",
        EventKind::Succeed {
            predecessor: COUNTY.to_owned(),
        },
    )
    .expect_err("the county takes no part, and is not its predecessor");
    assert!(unrelated.contains("takes no part"), "{unrelated}");
    assert_eq!(case.document.events().expect("events").len(), 1);
}

#[test]
fn replicas_merging_the_succession_and_the_tiers_above_derive_alike() {
    // The township assigns a case down to the old village while, on another replica, the
    // successor has already taken the old node's place on it: in either merge order the
    // assignment awaits the successor.
    let mut at_township = Case::registered();
    at_township.ok(VILLAGE, escalate(TOWNSHIP), china(3, 2, 8));
    let mut at_successor = at_township.fork(&ACTOR_B, "b");
    act_as(
        &mut at_successor,
        REBUILT,
        "note",
        EventKind::Note {
            text: "接替原节点，继续跟进".to_owned(),
        },
    )
    .expect("a registrar's note, once in the old node's place");
    at_township.ok(TOWNSHIP, assign(VILLAGE, date(3, 20)), china(3, 2, 11));
    let mut merged_here = at_township.fork(&ACTOR_A, "c");
    merged_here.merge_from(&mut at_successor);
    at_successor.merge_from(&mut at_township);
    assert_eq!(merged_here.state, at_successor.state);
    assert_eq!(merged_here.state.awaiting.as_deref(), Some(REBUILT));
    assert!(merged_here.state.invalid.is_empty());
    act_as(
        &mut merged_here,
        REBUILT,
        "take",
        EventKind::AcceptAssignment {},
    )
    .expect("the successor takes the assignment on");
    assert_eq!(merged_here.state.holder, REBUILT);
}
