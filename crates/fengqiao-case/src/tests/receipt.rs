//! The checks a node makes on a peer's copy of a case: forged, altered, re-attributed, replayed,
//! unauthorized and out-of-jurisdiction events are refused by name; honest ones, including
//! transitions made concurrently on two replicas, are kept.

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;

use super::support::{accept, china, close, escalate, header, reply};
use crate::authority::Hierarchy;
use crate::causal_past::CausalPast;
use crate::model::{CaseHeader, Event, EventKind, Limits};
use crate::receipt::{ReceiptError, ReceivedCopy, Rejection, check_received, check_received_many};
use crate::signature::{
    NodeSigner, SignatureError, SignerKeys, node_id_for_public_key, sign_event,
};

/// Offices with real keys: county → township → two villages.
struct Offices {
    county: SigningKey,
    township: SigningKey,
    village: SigningKey,
    sibling: SigningKey,
}

fn id(key: &SigningKey) -> String {
    node_id_for_public_key(&key.public_key())
}

impl Offices {
    fn new() -> Offices {
        Offices {
            county: SigningKey::from_bytes(&[1; 32]),
            township: SigningKey::from_bytes(&[2; 32]),
            village: SigningKey::from_bytes(&[3; 32]),
            sibling: SigningKey::from_bytes(&[4; 32]),
        }
    }

    fn parent(&self, node: &str) -> Option<String> {
        if node == id(&self.village) || node == id(&self.sibling) {
            Some(id(&self.township))
        } else if node == id(&self.township) {
            Some(id(&self.county))
        } else {
            None
        }
    }
}

impl Hierarchy for Offices {
    fn is_strict_ancestor(&self, ancestor: &str, node: &str) -> bool {
        let mut current = self.parent(node);
        while let Some(above) = current {
            if above == ancestor {
                return true;
            }
            current = self.parent(&above);
        }
        false
    }

    fn region_of(&self, node: &str) -> Option<String> {
        [
            (&self.county, "430702"),
            (&self.township, "430702001"),
            (&self.village, "430702001001"),
            (&self.sibling, "430702001002"),
        ]
        .into_iter()
        .find(|(key, _)| id(key) == node)
        .map(|(_, region)| region.to_owned())
    }
}

fn case_header() -> CaseHeader {
    header()
}

fn signed(
    key: &SigningKey,
    event_id: &str,
    kind: EventKind,
    prev: Option<&str>,
    at: DateTime<Utc>,
) -> Event {
    let mut event = Event {
        id: event_id.to_owned(),
        kind,
        at,
        node: id(key),
        operator: "经办人".to_owned(),
        prev: prev.map(str::to_owned),
        hlc: Default::default(),
        signature: None,
        imported: None,
        backdated_reason: None,
    };
    sign_event(&case_header().number, &mut event, key).expect("signs");
    event
}

fn register_by(key: &SigningKey) -> Event {
    signed(
        key,
        "register",
        EventKind::Register {
            header: Some(Box::new(case_header())),
            policy_version: 0,
        },
        None,
        china(3, 2, 9),
    )
}

fn check(before: &[Event], after: &[Event]) -> Vec<Rejection> {
    check_received(
        &case_header().number,
        &case_header(),
        before,
        after,
        &CausalPast::linear(after.len()),
        &Offices::new(),
        &crate::policy::PolicyBook::default(),
    )
}

fn only_rejection(before: &[Event], after: &[Event]) -> Rejection {
    let mut rejections = check(before, after);
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    rejections.remove(0)
}

/// Registered at the village, accepted, escalated to the township, escalated to the county.
fn county_held(offices: &Offices) -> Vec<Event> {
    vec![
        register_by(&offices.village),
        signed(
            &offices.village,
            "accept",
            accept(),
            Some("register"),
            china(3, 2, 10),
        ),
        signed(
            &offices.village,
            "up1",
            escalate(&id(&offices.township)),
            Some("accept"),
            china(3, 3, 10),
        ),
        signed(
            &offices.township,
            "up2",
            escalate(&id(&offices.county)),
            Some("up1"),
            china(3, 4, 10),
        ),
    ]
}

#[test]
fn an_honest_history_is_kept_whole_whether_new_or_extending_what_is_held() {
    let offices = Offices::new();
    let events = county_held(&offices);
    assert_eq!(check(&[], &events), vec![]);
    assert_eq!(check(&events[..2], &events), vec![]);
    assert_eq!(check(&events, &events), vec![]);
}

#[test]
fn a_relay_forging_a_village_event_with_its_own_key_is_refused() {
    let offices = Offices::new();
    let mut events = county_held(&offices);
    let held = events.clone();
    let mut forged = signed(
        &offices.village,
        "forged",
        reply(),
        Some("up2"),
        china(3, 5, 9),
    );
    sign_event(&case_header().number, &mut forged, &offices.township).expect("signs");
    events.push(forged);
    let rejection = only_rejection(&held, &events);
    assert_eq!(rejection.event, "forged");
    assert!(matches!(
        rejection.error,
        ReceiptError::Signature(SignatureError::WrongSigner { .. })
    ));
}

#[test]
fn altered_signature_bytes_are_refused() {
    let offices = Offices::new();
    let mut events = county_held(&offices);
    let held = events[..3].to_vec();
    if let Some(signature) = &mut events[3].signature {
        signature.signature[10] ^= 0x40;
    }
    let rejection = only_rejection(&held, &events);
    assert_eq!(rejection.event, "up2");
    assert!(matches!(
        rejection.error,
        ReceiptError::Signature(SignatureError::BadSignature { .. })
    ));
}

#[test]
fn a_village_closing_a_county_held_case_is_unauthorized() {
    let offices = Offices::new();
    let mut events = county_held(&offices);
    let held = events.clone();
    events.push(signed(
        &offices.village,
        "close",
        close(true),
        Some("up2"),
        china(3, 5, 9),
    ));
    let rejection = only_rejection(&held, &events);
    assert_eq!(rejection.node, id(&offices.village));
    match rejection.error {
        ReceiptError::Unauthorized { event, source } => {
            assert_eq!(event, "close");
            assert!(
                source.to_string().contains("only the holder closes"),
                "{source}"
            );
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[test]
fn a_transition_is_judged_where_it_was_made_not_where_the_list_puts_it() {
    let offices = Offices::new();
    let events = vec![
        register_by(&offices.village),
        signed(
            &offices.village,
            "accept",
            accept(),
            Some("register"),
            china(3, 2, 10),
        ),
        // Made after the village escalated, on the township's copy.
        signed(
            &offices.village,
            "up1",
            escalate(&id(&offices.township)),
            Some("accept"),
            china(3, 3, 10),
        ),
        // Made concurrently on another replica, based on the same acceptance: a conflict for
        // derive to surface, not a forgery.
        signed(
            &offices.village,
            "reply",
            reply(),
            Some("accept"),
            china(3, 3, 11),
        ),
    ];
    // One change per event; up1 and reply were both written on top of the acceptance.
    let changes = [(0, vec![]), (1, vec![0]), (2, vec![1]), (3, vec![1])];
    let written = [(0, 1), (1, 1), (2, 1), (3, 1)];
    let causal = CausalPast::from_graph(&changes, &written).expect("a graph");
    let rejections = check_received(
        &case_header().number,
        &case_header(),
        &events[..2],
        &events,
        &causal,
        &offices,
        &crate::policy::PolicyBook::default(),
    );
    assert_eq!(rejections, vec![]);
    // Judged in list order instead (as if the reply had been made after the escalation), the
    // village would no longer hold the case it replies on.
    assert_eq!(check(&events[..2], &events).len(), 1);
}

#[test]
fn a_replayed_event_is_refused() {
    let offices = Offices::new();
    let mut events = county_held(&offices);
    let held = events.clone();
    events.push(events[2].clone());
    let rejection = only_rejection(&held, &events);
    assert!(matches!(rejection.error, ReceiptError::Duplicated { .. }));
    // Replayed into another case, the signature no longer holds.
    let mut elsewhere = events[2].clone();
    elsewhere.id = "elsewhere".to_owned();
    let mut other = county_held(&offices);
    let held_other = other.clone();
    other.push(elsewhere);
    let rejection = only_rejection(&held_other, &other);
    assert!(matches!(rejection.error, ReceiptError::Signature(_)));
}

#[test]
fn a_case_registered_outside_the_makers_jurisdiction_is_refused() {
    let offices = Offices::new();
    // The sibling village registering a matter located in another village.
    let events = vec![register_by(&offices.sibling)];
    let rejection = only_rejection(&[], &events);
    assert!(matches!(
        rejection.error,
        ReceiptError::OutsideJurisdiction { .. }
    ));
    // The township above both may.
    assert_eq!(check(&[], &[register_by(&offices.township)]), vec![]);
}

#[test]
fn an_event_by_a_node_outside_the_federation_is_refused() {
    let offices = Offices::new();
    let mut events = county_held(&offices);
    let held = events.clone();
    let stranger = SigningKey::from_bytes(&[9; 32]);
    events.push(signed(&stranger, "note", note(), None, china(3, 5, 9)));
    let rejection = only_rejection(&held, &events);
    assert!(matches!(rejection.error, ReceiptError::UnknownMaker { .. }));
}

#[test]
fn a_held_event_changed_or_dropped_in_the_peers_copy_is_refused() {
    let offices = Offices::new();
    let held = county_held(&offices);
    let mut changed = held.clone();
    changed[1].operator = "别人".to_owned();
    let rejection = only_rejection(&held, &changed);
    assert!(matches!(rejection.error, ReceiptError::Altered { .. }));
    assert!(rejection.error.is_about_held_events());
    let dropped = held[..3].to_vec();
    let rejection = only_rejection(&held, &dropped);
    assert!(matches!(rejection.error, ReceiptError::Removed { .. }));
}

#[test]
fn copies_checked_together_are_judged_each_as_if_checked_alone() {
    let offices = Offices::new();
    let honest = county_held(&offices);
    let mut bad_signature = honest.clone();
    if let Some(signature) = &mut bad_signature[3].signature {
        signature.signature[10] ^= 0x40;
    }
    let mut altered_held = honest.clone();
    altered_held[1].operator = "别人".to_owned();
    let header = case_header();
    // (held, received): a new case, an extended one, one with a forged signature among honest
    // copies (the shared batch fails), and one refused whole for a changed held event.
    let pairs: Vec<(&[Event], &[Event])> = vec![
        (&[], &honest),
        (&honest[..2], &honest),
        (&honest[..3], &bad_signature),
        (&honest, &altered_held),
        (&[], &honest),
    ];
    let pasts: Vec<CausalPast> = pairs
        .iter()
        .map(|(_, after)| CausalPast::linear(after.len()))
        .collect();
    let copies: Vec<ReceivedCopy<'_>> = pairs
        .iter()
        .zip(&pasts)
        .map(|((before, after), causal)| ReceivedCopy {
            case: &header.number,
            header: &header,
            before,
            after,
            causal,
        })
        .collect();
    let together = check_received_many(
        &copies,
        &Offices::new(),
        &crate::policy::PolicyBook::default(),
        &mut SignerKeys::default(),
    );
    let alone: Vec<Vec<Rejection>> = pairs
        .iter()
        .map(|(before, after)| check(before, after))
        .collect();
    assert_eq!(together, alone);
    assert!(together[0].is_empty() && together[1].is_empty() && together[4].is_empty());
    assert!(matches!(
        together[2][..],
        [Rejection {
            error: ReceiptError::Signature(SignatureError::BadSignature { .. }),
            ..
        }]
    ));
    assert!(together[3][0].error.is_about_held_events());

    // Without the forged copy the batch passes, with the same verdicts.
    let honest_copies = [copies[0], copies[1], copies[4]];
    let verdicts = check_received_many(
        &honest_copies,
        &Offices::new(),
        &crate::policy::PolicyBook::default(),
        &mut SignerKeys::default(),
    );
    assert_eq!(verdicts, vec![Vec::new(), Vec::new(), Vec::new()]);
}

fn note() -> EventKind {
    EventKind::Note {
        text: "电话回访".to_owned(),
    }
}

mod screening {
    use super::*;
    use crate::appending::{append, register};
    use crate::document::CaseDocument;
    use crate::receipt::{PeerBytes, keep_received, screen};

    use super::super::support::{ACTOR_A, ACTOR_B, new_event};

    const ACTOR_C: [u8; 16] = [0xc3; 16];

    /// The case as registered at the village and accepted there.
    fn village_document(offices: &Offices) -> CaseDocument {
        let village = id(&offices.village);
        let limits = Limits::default();
        let (mut document, _, _) = register(
            case_header(),
            new_event(
                "register",
                &village,
                EventKind::Register {
                    header: None,
                    policy_version: 0,
                },
                china(3, 2, 9),
            ),
            &ACTOR_A,
            &crate::policy::PolicyBook::default(),
            &offices.village,
        )
        .expect("registers");
        append(
            &mut document,
            new_event("accept", &village, accept(), china(3, 2, 10)),
            &limits,
            &offices.village,
            offices,
        )
        .expect("accepts");
        document
    }

    /// The village appends a note to its copy, through the lifecycle.
    fn village_note(
        document: &mut CaseDocument,
        offices: &Offices,
        event_id: &str,
        at: DateTime<Utc>,
    ) {
        append(
            document,
            new_event(event_id, &id(&offices.village), note(), at),
            &Limits::default(),
            &offices.village,
            offices,
        )
        .expect("notes");
    }

    /// Screen a peer's copy of the sample case against `held` (`None`: not held here).
    fn screen_copy(
        held: Option<&mut CaseDocument>,
        incoming: &mut CaseDocument,
        actor: &[u8],
        offices: &Offices,
    ) -> crate::receipt::Screened {
        screen(
            &case_header().number,
            held,
            incoming,
            actor,
            offices,
            &crate::policy::PolicyBook::default(),
        )
        .expect("screens")
    }

    fn ids(document: &CaseDocument) -> Vec<String> {
        document
            .events()
            .expect("reads")
            .into_iter()
            .map(|event| event.id)
            .collect()
    }

    /// Issue 12, item 1: a township takes a case over while its village replies and closes;
    /// after a heal each resolves the conflict for its own branch while cut off again. Each
    /// resolve was made on the conflict alone, so every receiver keeps it, whatever concurrent
    /// resolve it already holds, and every replica shows the disagreement.
    #[test]
    fn a_resolve_is_judged_on_what_its_maker_held_not_on_a_concurrent_resolve() {
        let offices = Offices::new();
        let limits = Limits::default();
        let (village_id, township_id) = (id(&offices.village), id(&offices.township));
        let act = |document: &mut CaseDocument,
                   key: &SigningKey,
                   event_id: &str,
                   kind: EventKind,
                   at: DateTime<Utc>| {
            append(
                document,
                new_event(event_id, &id(key), kind, at),
                &limits,
                key,
                &offices,
            )
            .unwrap_or_else(|error| panic!("{event_id}: {error}"))
            .1
        };
        let resolve = |chosen: &str| EventKind::Resolve {
            chosen: chosen.to_owned(),
            note: "联席会议决定".to_owned(),
            overrides: Vec::new(),
        };
        let mut village = village_document(&offices);
        let mut township = village.fork(&ACTOR_B);
        let take_over = EventKind::TakeOver {
            reason: "群体性苗头".to_owned(),
        };
        act(
            &mut township,
            &offices.township,
            "take",
            take_over,
            china(3, 4, 9),
        );
        act(
            &mut village,
            &offices.village,
            "reply",
            reply(),
            china(3, 4, 10),
        );
        act(
            &mut village,
            &offices.village,
            "close",
            close(true),
            china(3, 4, 11),
        );
        township.merge(&mut village.fork(&ACTOR_B)).expect("heals");
        village.merge(&mut township.fork(&ACTOR_A)).expect("heals");

        let township_state = act(
            &mut township,
            &offices.township,
            "t-resolve",
            resolve("take"),
            china(3, 5, 9),
        );
        assert_eq!(township_state.holder, township_id);
        let village_state = act(
            &mut village,
            &offices.village,
            "v-resolve",
            resolve("reply"),
            china(3, 5, 10),
        );
        assert_eq!(village_state.holder, village_id);

        // The heal: each receives the other's copy, through the checks every node runs.
        let mut at_township = township.fork(&ACTOR_B);
        at_township
            .merge(&mut village.fork(&ACTOR_B))
            .expect("merges");
        let screened = screen_copy(Some(&mut township), &mut at_township, &ACTOR_B, &offices);
        assert_eq!(
            screened.rejections,
            vec![],
            "the township refuses the village's resolve"
        );
        let mut at_village = village.fork(&ACTOR_A);
        at_village
            .merge(&mut township.fork(&ACTOR_A))
            .expect("merges");
        let screened_at_village =
            screen_copy(Some(&mut village), &mut at_village, &ACTOR_A, &offices);
        assert_eq!(
            screened_at_village.rejections,
            vec![],
            "the village refuses the township's resolve"
        );

        let state_of = |document: &CaseDocument| {
            let (header, events) = document.contents().expect("reads");
            crate::derive::derive(&header, &events, &limits)
        };
        let township_view = state_of(&screened.document);
        assert_eq!(township_view, state_of(&screened_at_village.document));
        let conflict = township_view.conflict.expect("the two decisions disagree");
        let decided: Vec<(&str, &str)> = conflict
            .disputed
            .iter()
            .map(|decision| (decision.event.as_str(), decision.chosen.as_str()))
            .collect();
        assert_eq!(decided, vec![("t-resolve", "take"), ("v-resolve", "reply")]);
    }

    #[test]
    fn a_forged_change_is_refused_and_the_honest_ones_beside_it_are_kept() {
        let offices = Offices::new();
        let mut village = village_document(&offices);
        let mut county = village.fork(&ACTOR_C);

        // The township relays: it forges a reply in the village's name, signed with its key.
        let mut township = village.fork(&ACTOR_B);
        let mut forged = signed(
            &offices.village,
            "forged",
            reply(),
            Some("accept"),
            china(3, 3, 9),
        );
        sign_event(&case_header().number, &mut forged, &offices.township).expect("signs");
        township.push_event(&forged).expect("pushes");
        // Meanwhile the village adds an honest note the forgery does not depend on.
        village_note(&mut village, &offices, "note", china(3, 3, 10));
        township.merge(&mut village).expect("merges");

        let mut incoming = county.fork(&ACTOR_C);
        incoming.merge(&mut township).expect("merges");
        let screened = screen_copy(Some(&mut county), &mut incoming, &ACTOR_C, &offices);
        assert_eq!(screened.rejections.len(), 1, "{:?}", screened.rejections);
        assert_eq!(screened.rejections[0].event, "forged");
        assert_eq!(screened.kept.len(), 1);
        assert_eq!(screened.refused.len(), 1);
        assert!(
            screened.refused[0].reason.contains("signed by node"),
            "{}",
            screened.refused[0].reason
        );
        assert!(!screened.refused[0].may_pass_later);
        assert_eq!(ids(&screened.document), ["register", "accept", "note"]);

        // Applied in place to what the county holds, the kept change gives the same document.
        county
            .automerge()
            .apply_changes(screened.kept.clone())
            .expect("applies");
        assert_eq!(ids(&county), ["register", "accept", "note"]);
    }

    /// What a node keeps of a peer's bytes, as changes to a case held here and as a whole
    /// document of a case new here: the honest changes, never the forged one, with why.
    #[test]
    fn keeping_a_peers_bytes_takes_the_honest_changes_and_refuses_the_forged_one() {
        let offices = Offices::new();
        let mut village = village_document(&offices);
        let mut county = village.fork(&ACTOR_C);
        let county_heads = county.head_hashes();
        let mut township = village.fork(&ACTOR_B);
        let mut forged = signed(
            &offices.village,
            "forged",
            reply(),
            Some("accept"),
            china(3, 3, 9),
        );
        sign_event(&case_header().number, &mut forged, &offices.township).expect("signs");
        township.push_event(&forged).expect("pushes");
        village_note(&mut village, &offices, "note", china(3, 3, 10));
        township.merge(&mut village).expect("merges");
        let number = case_header().number;
        let keep = |held: Option<&mut CaseDocument>, bytes: PeerBytes<'_>| {
            keep_received(
                &number,
                held,
                bytes,
                &ACTOR_C,
                &offices,
                &crate::policy::PolicyBook::default(),
            )
            .expect("reads as the case")
        };

        let changes = township.changes_since(&county_heads);
        let mut kept = keep(Some(&mut county), PeerBytes::Changes(&changes));
        assert_eq!(ids(&kept.document), ["register", "accept", "note"]);
        assert_eq!(kept.refused.len(), 1, "{:?}", kept.refused);
        assert!(kept.refused[0].reason.contains("signed by node"));
        assert!(!kept.refused[0].may_pass_later);
        assert_eq!(
            ids(&county),
            ["register", "accept"],
            "the held copy is untouched"
        );

        let whole = township.save();
        let mut new_here = keep(None, PeerBytes::Whole(&whole));
        assert_eq!(ids(&new_here.document), ["register", "accept", "note"]);
        assert_eq!(new_here.refused.len(), 1);
        assert_eq!(new_here.document.head_hashes(), kept.document.head_hashes());

        // An honest copy is kept whole, as it came.
        let mut honest = keep(None, PeerBytes::Whole(&village.save()));
        assert!(honest.refused.is_empty());
        assert_eq!(honest.document.head_hashes(), village.head_hashes());
    }

    #[test]
    fn bytes_that_are_not_the_case_are_an_error_and_change_nothing() {
        let offices = Offices::new();
        let mut county = village_document(&offices).fork(&ACTOR_C);
        let before = county.head_hashes();
        let number = case_header().number;
        let keep = |held: Option<&mut CaseDocument>, bytes: PeerBytes<'_>| {
            keep_received(
                &number,
                held,
                bytes,
                &ACTOR_C,
                &offices,
                &crate::policy::PolicyBook::default(),
            )
        };
        // Registered separately, by another actor: as `number`, and as another case.
        let registered_as = |number: &str| {
            let mut header = case_header();
            header.number = number.to_owned();
            let (mut document, _, _) = register(
                header,
                new_event(
                    "register",
                    &id(&offices.village),
                    EventKind::Register {
                        header: None,
                        policy_version: 0,
                    },
                    china(3, 2, 9),
                ),
                &ACTOR_B,
                &crate::policy::PolicyBook::default(),
                &offices.village,
            )
            .expect("registers");
            document.save()
        };
        let impostor = registered_as(&number);
        let error = keep(Some(&mut county), PeerBytes::Whole(&impostor)).expect_err("impostor");
        assert!(
            error
                .to_string()
                .contains("not created as replicas of one case"),
            "{error}"
        );
        // Undecodable changes add nothing (automerge reads a chunk up to its first bad change).
        let mut garbage =
            keep(Some(&mut county), PeerBytes::Changes(&[0xde, 0xad])).expect("reads");
        assert_eq!(garbage.document.head_hashes(), before);
        assert!(keep(None, PeerBytes::Changes(&impostor)).is_err());
        let other_case = registered_as("430702001001-2026-000999");
        let error = keep(None, PeerBytes::Whole(&other_case)).expect_err("another case");
        assert!(
            error.to_string().contains("the document is case"),
            "{error}"
        );
        assert_eq!(county.head_hashes(), before);
    }

    #[test]
    fn a_change_built_on_a_forged_one_is_refused_with_it() {
        let offices = Offices::new();
        let mut village = village_document(&offices);
        let mut township =
            CaseDocument::load(&village.fork(&ACTOR_B).save(), &[], &ACTOR_B).expect("loads");
        let mut forged = signed(
            &offices.village,
            "forged",
            reply(),
            Some("accept"),
            china(3, 3, 9),
        );
        sign_event(&case_header().number, &mut forged, &offices.township).expect("signs");
        township.push_event(&forged).expect("pushes");
        let mut after = signed(&offices.township, "t-note", note(), None, china(3, 3, 11));
        sign_event(&case_header().number, &mut after, &offices.township).expect("signs");
        township.push_event(&after).expect("pushes");

        // A county that did not hold the case yet receives the township's whole copy.
        let screened = screen_copy(None, &mut township, &ACTOR_C, &offices);
        assert_eq!(ids(&screened.document), ["register", "accept"]);
        assert_eq!(screened.refused.len(), 2);
        assert!(
            screened.refused[1]
                .reason
                .contains("built on the refused change")
        );
    }

    #[test]
    fn a_copy_that_alters_a_held_event_is_refused_whole() {
        let offices = Offices::new();
        let mut village = village_document(&offices);
        let mut county = village.fork(&ACTOR_C);
        let mut relay = village.fork(&ACTOR_B);
        let _ = &mut village;
        let events_object =
            match automerge::ReadDoc::get(relay.automerge(), automerge::ROOT, "events")
                .expect("reads")
            {
                Some((automerge::Value::Object(_), object)) => object,
                other => panic!("events list, got {other:?}"),
            };
        let entry =
            match automerge::ReadDoc::get(relay.automerge(), &events_object, 1).expect("reads") {
                Some((automerge::Value::Object(_), entry)) => entry,
                other => panic!("event map, got {other:?}"),
            };
        automerge::transaction::Transactable::put(relay.automerge(), &entry, "operator", "别人")
            .expect("puts");
        relay.automerge().commit();
        let mut incoming = county.fork(&ACTOR_C);
        incoming.merge(&mut relay).expect("merges");
        let screened = screen_copy(Some(&mut county), &mut incoming, &ACTOR_C, &offices);
        assert!(screened.kept.is_empty());
        assert_eq!(screened.refused.len(), 1);
        assert!(matches!(
            screened.rejections[0].error,
            ReceiptError::Altered { .. }
        ));
        assert_eq!(ids(&screened.document), ["register", "accept"]);
    }

    #[test]
    fn a_replayed_event_is_refused_and_honest_changes_around_it_are_kept() {
        let offices = Offices::new();
        let mut village = village_document(&offices);
        let mut county = village.fork(&ACTOR_C);
        let mut relay = village.fork(&ACTOR_B);
        let replayed = relay.events().expect("reads")[1].clone();
        relay.push_event(&replayed).expect("pushes");
        village_note(&mut village, &offices, "note", china(3, 3, 10));
        relay.merge(&mut village).expect("merges");

        let mut incoming = county.fork(&ACTOR_C);
        incoming.merge(&mut relay).expect("merges");
        let screened = screen_copy(Some(&mut county), &mut incoming, &ACTOR_C, &offices);
        assert_eq!(screened.refused.len(), 1, "{:?}", screened.refused);
        assert_eq!(screened.kept.len(), 1);
        assert_eq!(ids(&screened.document), ["register", "accept", "note"]);

        // A relay that kept the replay itself still passes on later honest changes.
        let mut later = relay.fork(&ACTOR_A);
        village_note(&mut later, &offices, "later", china(3, 3, 11));
        let mut relay_copy = relay.fork(&ACTOR_B);
        let mut incoming = relay_copy.fork(&ACTOR_B);
        incoming.merge(&mut later).expect("merges");
        let screened = screen_copy(Some(&mut relay_copy), &mut incoming, &ACTOR_B, &offices);
        assert!(screened.refused.is_empty(), "{:?}", screened.refused);
        assert_eq!(screened.kept.len(), 1);
    }
}

#[test]
fn a_holder_moving_its_case_into_another_villages_region_is_refused() {
    let offices = Offices::new();
    // Registered and accepted at the village, which holds it.
    let mut events = county_held(&offices)[..2].to_vec();
    let held = events.clone();
    events.push(signed(
        &offices.village,
        "moved",
        EventKind::AmendHeader {
            amendment: crate::model::HeaderAmendment::Location(crate::model::Location {
                region_code: "430702001002".to_owned(),
                village: "太阳山村".to_owned(),
                grid: String::new(),
                grid_worker: String::new(),
            }),
        },
        None,
        china(3, 3, 10),
    ));
    let rejection = only_rejection(&held, &events);
    assert_eq!(rejection.event, "moved");
    assert!(matches!(
        rejection.error,
        ReceiptError::OutsideJurisdiction { .. }
    ));
}

/// A case a village imported from its ledger travels like any other: its marked events (signed
/// with version 2) are kept by the receiver, and a relay that strips a mark is refused.
#[test]
fn imported_events_are_kept_on_receipt_with_their_mark_and_a_stripped_mark_is_refused() {
    let offices = Offices::new();
    let mark = crate::model::ImportMark {
        import_id: "20260305T093000-1f2e3d4c".to_owned(),
        row_key: "sha256:00112233445566778899aabbccddeeff".to_owned(),
    };
    let mut events = county_held(&offices);
    for event in &mut events[..2] {
        event.imported = Some(mark.clone());
        sign_event(&case_header().number, event, &offices.village).expect("signs");
    }
    assert_eq!(check(&[], &events), vec![]);
    let mut stripped = events.clone();
    stripped[1].imported = None;
    // What was built on the refused acceptance is refused after it.
    let rejections = check(&events[..1], &stripped);
    assert_eq!(rejections[0].event, "accept", "{rejections:?}");
    assert!(matches!(
        rejections[0].error,
        ReceiptError::Signature(SignatureError::UnsupportedVersion { .. })
    ));
}
