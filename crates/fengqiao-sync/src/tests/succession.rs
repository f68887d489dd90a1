//! A rebuilt office's successor (issue 17, part 4): the parent admits a new node ID as the
//! successor of one whose key was lost. The roster records the replacement; the old node's
//! cases route to the successor; events the old key signed before the succession stay valid on
//! receipt, while events it signs after it (by hybrid time, or built on the successor's work)
//! are refused. Roster entries of format version 1 and stored snapshots of format 2 still read.

use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use fengqiao_case::appending::{append, register};
use fengqiao_case::authority::Hierarchy;
use fengqiao_case::document::CaseDocument;
use fengqiao_case::lifecycle::NewEvent;
use fengqiao_case::model::roster::{
    ROSTER_FORMAT_VERSION_WITHOUT_SUCCESSORS, RosterEntry, SignedRosterEntry, SignedRosterEntryV1,
};
use fengqiao_case::model::{EventKind, HybridTimestamp, ReplyOutcome, Tier};
use fengqiao_case::policy::PolicyBook;
use fengqiao_case::receipt::{ReceiptError, Rejection, check_received};

use super::support::{header, new_event};
use crate::roster::{
    Admission, Roster, RosterError, RosterSigner, decode_snapshot, encode_snapshot,
    node_actor_for_public_key, node_id_for_public_key, sign_entry, signing_bytes, verify_entry,
};
use crate::routing::{
    CaseRouting, PeerDescription, PeerRelation, RoutingDecision, SubtreeRoster, route,
};

struct Office {
    key: SigningKey,
    id: String,
    tier: Tier,
    region: &'static str,
}

fn office(seed: u8, tier: Tier, region: &'static str) -> Office {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let id = node_id_for_public_key(&key.public_key());
    Office {
        key,
        id,
        tier,
        region,
    }
}

fn admission(office: &Office, successor_of: Option<&Office>) -> Admission {
    Admission {
        node_id: office.id.clone(),
        name: format!("office {}", office.region),
        aliases: Vec::new(),
        tier: office.tier,
        region_code: office.region.to_owned(),
        revoked: false,
        successor_of: successor_of.map(|old| old.id.clone()),
    }
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, hour, 0, 0)
        .single()
        .expect("valid time")
}

/// County, township, the village's old node (its disk and key lost), its successor, and a
/// sibling village.
struct Offices {
    county: Office,
    township: Office,
    old_village: Office,
    new_village: Office,
    sibling: Office,
}

fn offices() -> Offices {
    Offices {
        county: office(1, Tier::County, "430702"),
        township: office(2, Tier::Township, "430702001"),
        old_village: office(3, Tier::Village, "430702001001"),
        new_village: office(4, Tier::Village, "430702001001"),
        sibling: office(5, Tier::Village, "430702001002"),
    }
}

/// The roster before the village's disk died.
fn roster_before(offices: &Offices) -> Roster {
    let mut roster = Roster::new(Some(offices.county.id.clone()));
    roster
        .issue(&offices.county.key, admission(&offices.county, None), at(1))
        .expect("root entry");
    roster
        .issue(
            &offices.county.key,
            admission(&offices.township, None),
            at(1),
        )
        .expect("township entry");
    for village in [&offices.old_village, &offices.sibling] {
        roster
            .issue(&offices.township.key, admission(village, None), at(2))
            .expect("village entry");
    }
    roster
}

/// The time the township admits the successor: the cut.
fn succession_time() -> DateTime<Utc> {
    at(12)
}

fn roster_after_succession(offices: &Offices) -> Roster {
    let mut roster = roster_before(offices);
    roster
        .issue(
            &offices.township.key,
            admission(&offices.new_village, Some(&offices.old_village)),
            succession_time(),
        )
        .expect("successor entry");
    roster
}

fn village_case(number: &str, by: &Office) -> CaseDocument {
    let (document, _, _) = register(
        header(number, by.region, "某建筑公司"),
        new_event(
            &format!("{number}-register"),
            &by.id,
            EventKind::Register {
                header: None,
                policy_version: 0,
            },
            at(3),
        ),
        &node_actor_for_public_key(&by.key.public_key()),
        &PolicyBook::default(),
        &by.key,
    )
    .expect("the case registers");
    document
}

fn note_by(office: &Office, id: &str, hlc_wall: DateTime<Utc>) -> NewEvent {
    NewEvent {
        hlc: HybridTimestamp {
            wall_ms: hlc_wall.timestamp_millis(),
            counter: 0,
        },
        ..new_event(
            id,
            &office.id,
            EventKind::Note {
                text: "电话回访当事人，继续跟进协调".to_owned(),
            },
            at(4),
        )
    }
}

/// Append `event` signed by `maker` without the authority table (the point is what a receiver
/// says of an event whoever made it).
fn append_unjudged(document: &mut CaseDocument, maker: &Office, event: NewEvent) {
    struct Anyone;
    impl Hierarchy for Anyone {
        fn is_strict_ancestor(&self, _ancestor: &str, _node: &str) -> bool {
            true
        }
        fn region_of(&self, _node: &str) -> Option<String> {
            Some(String::new())
        }
    }
    let limits = PolicyBook::default().current().limits.clone();
    append(document, event, &limits, &maker.key, &Anyone).expect("the event appends");
}

/// A case `registrar` registered, with a note `noter` signed, recorded at `hlc_wall`.
fn noted_case(
    number: &str,
    registrar: &Office,
    noter: &Office,
    note: &str,
    hlc_wall: DateTime<Utc>,
) -> CaseDocument {
    let mut document = village_case(number, registrar);
    append_unjudged(&mut document, noter, note_by(noter, note, hlc_wall));
    document
}

/// What a receiver holding nothing of the case says of `document` under `roster`.
fn receive(case: &str, document: &mut CaseDocument, roster: &Roster) -> Vec<Rejection> {
    let (case_header, events) = document.contents().expect("contents read");
    let causal = document.causal_past().expect("causal past reads");
    check_received(
        case,
        &case_header,
        &[],
        &events,
        &causal,
        roster,
        &PolicyBook::default(),
    )
}

#[test]
fn the_successor_retires_its_predecessor_and_receives_its_cases() {
    let offices = offices();
    let before = roster_before(&offices);
    assert!(before.retirement(&offices.old_village.id).is_none());
    let roster = roster_after_succession(&offices);

    let retirement = roster
        .retirement(&offices.old_village.id)
        .expect("the old node is retired");
    assert_eq!(retirement.successor, offices.new_village.id);
    assert_eq!(retirement.since, succession_time());
    // Still an office of the federation (its events were made as one), now the successor's.
    assert!(roster.member(&offices.old_village.id).is_some());
    assert_eq!(
        roster.current_office(&offices.old_village.id),
        offices.new_village.id
    );
    assert!(roster.is_in_subtree(&offices.new_village.id, &offices.old_village.id));
    assert!(roster.is_successor(&offices.new_village.id));
    assert!(!roster.is_successor(&offices.old_village.id));
    assert!(!before.is_successor(&offices.new_village.id));
    assert!(!roster.is_in_subtree(&offices.sibling.id, &offices.old_village.id));
    assert!(!before.is_in_subtree(&offices.new_village.id, &offices.old_village.id));

    // A case the old node registered goes down the successor's link; the sibling's does not.
    let routing = |registered_by: &Office, region: &str| CaseRouting {
        case: format!("{region}-2026-000001"),
        region_code: region.to_owned(),
        respondent: "某建筑公司".to_owned(),
        registered_by: registered_by.id.clone(),
        holder: registered_by.id.clone(),
        awaiting: None,
        escalated_to: Vec::new(),
        sent_to: Vec::new(),
        directive_targets: Vec::new(),
    };
    let successor_link = PeerDescription {
        node_id: offices.new_village.id.clone(),
        name: "芦荻山村".to_owned(),
        aliases: Vec::new(),
        region_code: offices.new_village.region.to_owned(),
        relation: PeerRelation::Child,
    };
    let own = routing(&offices.old_village, offices.old_village.region);
    assert_eq!(route(&own, &successor_link, &roster), RoutingDecision::Send);
    assert_eq!(
        route(&own, &successor_link, &before),
        RoutingDecision::WithheldChildNotParticipating
    );
    let siblings = routing(&offices.sibling, offices.sibling.region);
    assert_ne!(
        route(&siblings, &successor_link, &roster),
        RoutingDecision::Send
    );
}

#[test]
fn only_the_predecessors_own_parent_names_its_successor() {
    let offices = offices();
    let mut roster = roster_before(&offices);
    // The county may admit a village directly, but naming it the successor of the township's
    // village does not retire that village: only the township speaks for its children.
    roster
        .issue(
            &offices.county.key,
            admission(&offices.new_village, Some(&offices.old_village)),
            succession_time(),
        )
        .expect("entry");
    assert!(roster.member(&offices.new_village.id).is_some());
    assert!(roster.retirement(&offices.old_village.id).is_none());
    assert!(!roster.is_successor(&offices.new_village.id));
    // A node cannot succeed itself.
    let entry = RosterEntry {
        successor_of: Some(offices.old_village.id.clone()),
        ..roster
            .member(&offices.old_village.id)
            .expect("member")
            .clone()
    };
    let signed = sign_entry(entry, &offices.township.key).expect("signs");
    assert!(matches!(
        verify_entry(&signed),
        Err(RosterError::SucceedsItself { .. })
    ));
}

#[test]
fn the_old_keys_events_before_the_succession_stay_valid_and_later_ones_are_refused() {
    let offices = offices();
    let roster = roster_after_succession(&offices);
    let case = format!("{}-2026-000001", offices.old_village.region);

    // Registered and noted by the old node before its disk died: kept everywhere.
    let mut document = noted_case(
        &case,
        &offices.old_village,
        &offices.old_village,
        "before",
        at(5),
    );
    let mut earlier = document.fork(&[9; 16]);
    assert_eq!(receive(&case, &mut earlier, &roster), Vec::new());

    // The same key after the succession, by hybrid time: refused, named as such.
    append_unjudged(
        &mut document,
        &offices.old_village,
        note_by(&offices.old_village, "after", at(13)),
    );
    let rejections = receive(&case, &mut document, &roster);
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert_eq!(rejections[0].event, "after");
    assert!(
        matches!(
            &rejections[0].error,
            ReceiptError::MadeAfterSuccession { successor, .. } if *successor == offices.new_village.id
        ),
        "{rejections:?}"
    );
    assert!(
        rejections[0].error.to_string().contains("successor"),
        "{}",
        rejections[0].error
    );
    assert!(!rejections[0].error.may_pass_later());

    // Unlike a revocation, which leaves the old node's earlier events unknown.
    let mut revoked = roster_before(&offices);
    revoked
        .issue(
            &offices.township.key,
            Admission {
                revoked: true,
                ..admission(&offices.old_village, None)
            },
            succession_time(),
        )
        .expect("revocation");
    let mut earlier = village_case(&case, &offices.old_village);
    let rejections = receive(&case, &mut earlier, &revoked);
    assert!(
        matches!(
            rejections.first().map(|rejection| &rejection.error),
            Some(ReceiptError::UnknownMaker { .. })
        ),
        "{rejections:?}"
    );
}

#[test]
fn the_old_key_cannot_build_on_the_successors_work_whatever_time_it_claims() {
    let offices = offices();
    let roster = roster_after_succession(&offices);
    let case = format!("{}-2026-000002", offices.new_village.region);
    // The successor registers a case; the old key adds to it, claiming a time long before.
    let mut document = noted_case(
        &case,
        &offices.new_village,
        &offices.old_village,
        "backdated",
        at(0),
    );
    let rejections = receive(&case, &mut document, &roster);
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert!(
        matches!(
            rejections[0].error,
            ReceiptError::MadeAfterSuccession { .. }
        ),
        "{rejections:?}"
    );
}

/// [`RosterEntry`] exactly as roster format 1 declared it, before `successor_of`: the layout its
/// issuers signed.
#[derive(serde::Serialize)]
struct EntryAsFormat1Declared {
    format_version: u32,
    node_id: String,
    name: String,
    aliases: Vec<String>,
    tier: Tier,
    region_code: String,
    parent: Option<String>,
    revoked: bool,
    serial: u64,
    issued_at: DateTime<Utc>,
}

#[test]
fn version_1_entries_and_stored_snapshots_of_format_2_still_read_and_verify() {
    let offices = offices();
    let version_1 = |office: &Office, parent: Option<&Office>, serial: u64| RosterEntry {
        format_version: ROSTER_FORMAT_VERSION_WITHOUT_SUCCESSORS,
        node_id: office.id.clone(),
        name: format!("office {}", office.region),
        aliases: vec!["别名".to_owned()],
        tier: office.tier,
        region_code: office.region.to_owned(),
        parent: parent.map(|parent| parent.id.clone()),
        revoked: false,
        serial,
        issued_at: at(1),
        successor_of: None,
    };
    let entries = [
        (version_1(&offices.county, None, 1), &offices.county),
        (
            version_1(&offices.township, Some(&offices.county), 2),
            &offices.county,
        ),
        (
            version_1(&offices.old_village, Some(&offices.township), 3),
            &offices.township,
        ),
    ];

    // A version-1 entry is signed over the layout format 1 had.
    let (village_entry, _) = &entries[2];
    let old_layout = EntryAsFormat1Declared {
        format_version: 1,
        node_id: village_entry.node_id.clone(),
        name: village_entry.name.clone(),
        aliases: village_entry.aliases.clone(),
        tier: village_entry.tier,
        region_code: village_entry.region_code.clone(),
        parent: village_entry.parent.clone(),
        revoked: false,
        serial: 3,
        issued_at: at(1),
    };
    let mut expected = b"fengqiao roster entry\0".to_vec();
    bincode::serde::encode_into_std_write(&old_layout, &mut expected, bincode::config::standard())
        .expect("encodes");
    assert_eq!(
        signing_bytes(village_entry).expect("signing bytes"),
        expected
    );
    // Version 1 cannot carry a successor.
    let mut with_successor = village_entry.clone();
    with_successor.successor_of = Some(offices.new_village.id.clone());
    assert!(matches!(
        signing_bytes(&with_successor),
        Err(RosterError::SuccessorInVersion1 { .. })
    ));

    let signed: Vec<SignedRosterEntry> = entries
        .iter()
        .map(|(entry, issuer)| sign_entry(entry.clone(), &issuer.key).expect("signs"))
        .collect();
    // Stored snapshot format 2: version byte 2, then the format-1 entry layout and policies.
    let old_entries: Vec<SignedRosterEntryV1> = signed
        .iter()
        .map(|signed| SignedRosterEntryV1 {
            entry: signed.entry.as_version_1().expect("no successor"),
            issuer_public_key: signed.issuer_public_key.clone(),
            signature: signed.signature.clone(),
        })
        .collect();
    let mut stored = vec![2u8];
    bincode::serde::encode_into_std_write(
        (
            1u32,
            Some(offices.county.id.clone()),
            old_entries,
            Vec::<fengqiao_case::model::policy::SignedPolicy>::new(),
        ),
        &mut stored,
        bincode::config::standard(),
    )
    .expect("encodes");
    let snapshot = decode_snapshot(&stored).expect("a format-2 snapshot reads");
    assert_eq!(snapshot.entries, signed);
    let (mut roster, merge) = Roster::from_snapshot(snapshot);
    assert!(merge.refused.is_empty(), "{:?}", merge.refused);
    assert!(roster.member(&offices.old_village.id).is_some());

    // The township then names a successor (a version-2 entry) beside the version-1 ones, and
    // the snapshot, stored in format 3, reads back the same.
    roster
        .issue(
            &offices.township.key,
            admission(&offices.new_village, Some(&offices.old_village)),
            succession_time(),
        )
        .expect("successor entry");
    let stored = encode_snapshot(&roster.snapshot()).expect("encodes");
    assert_eq!(stored[0], 3);
    let (reread, merge) = Roster::from_snapshot(decode_snapshot(&stored).expect("reads"));
    assert!(merge.refused.is_empty(), "{:?}", merge.refused);
    assert_eq!(reread.digest(), roster.digest());
    assert_eq!(
        reread
            .retirement(&offices.old_village.id)
            .map(|retirement| retirement.successor.clone()),
        Some(offices.new_village.id.clone())
    );
}

/// `event` by `maker`, recorded (`hlc`) at `hlc_wall`, appended through the write path with the
/// authority table over `roster`: what the API does.
fn act(
    document: &mut CaseDocument,
    maker: &Office,
    roster: &Roster,
    (id, kind): (&str, EventKind),
    hlc_wall: DateTime<Utc>,
) -> fengqiao_case::model::CaseState {
    let event = NewEvent {
        hlc: HybridTimestamp {
            wall_ms: hlc_wall.timestamp_millis(),
            counter: 0,
        },
        ..new_event(id, &maker.id, kind, hlc_wall)
    };
    let limits = PolicyBook::default().current().limits.clone();
    let (_event, state, _header) = append(document, event, &limits, &maker.key, roster)
        .unwrap_or_else(|error| panic!("{id} appends: {error}"));
    state
}

/// `receiver` takes in `sender`'s copy of `case` through `keep_received` under `roster`, as
/// every replica does; returns what it refused.
fn sync_case(
    case: &str,
    sender: &mut CaseDocument,
    receiver: &mut Option<CaseDocument>,
    receiver_office: &Office,
    roster: &Roster,
) -> Vec<fengqiao_case::receipt::RefusedChange> {
    let saved = sender.save();
    let kept = fengqiao_case::receipt::keep_received(
        case,
        receiver.as_mut(),
        fengqiao_case::receipt::PeerBytes::Whole(&saved),
        &node_actor_for_public_key(&receiver_office.key.public_key()),
        roster,
        &PolicyBook::default(),
    )
    .expect("the copy reads");
    *receiver = Some(kept.document);
    kept.refused
}

fn derived(document: &CaseDocument) -> fengqiao_case::model::CaseState {
    let (case_header, events) = document.contents().expect("contents read");
    fengqiao_case::derive::derive(
        &case_header,
        &events,
        &PolicyBook::default().current().limits,
    )
}

/// The four cases of the village before its disk died, as the township and county hold them:
/// one registered, one accepted, one escalated to the township and assigned back down to the
/// village, one accepted with a directive from the township to the village.
fn cases_before_the_loss(
    offices: &Offices,
    roster: &Roster,
) -> Vec<(String, CaseDocument, CaseDocument)> {
    let numbers = [
        "430702001001-2026-000001",
        "430702001001-2026-000002",
        "430702001001-2026-000003",
        "430702001001-2026-000004",
    ];
    let (village, township) = (&offices.old_village, &offices.township);
    let mut held = Vec::new();
    for (index, number) in numbers.iter().enumerate() {
        let mut at_village = village_case(number, village);
        match index {
            1 => {
                act(
                    &mut at_village,
                    village,
                    roster,
                    ("a1", EventKind::Accept {}),
                    at(4),
                );
            }
            2 => {
                act(
                    &mut at_village,
                    village,
                    roster,
                    (
                        "e2",
                        EventKind::Escalate {
                            to_node: township.id.clone(),
                            reason: "涉及多个村组，需乡镇协调".to_owned(),
                        },
                    ),
                    at(4),
                );
            }
            3 => {
                act(
                    &mut at_village,
                    village,
                    roster,
                    ("a3", EventKind::Accept {}),
                    at(4),
                );
            }
            _ => {}
        }
        let mut at_township = None;
        let refused = sync_case(number, &mut at_village, &mut at_township, township, roster);
        assert!(refused.is_empty(), "{number}: {refused:?}");
        let mut at_township = at_township.expect("the township holds the case");
        match index {
            2 => {
                act(
                    &mut at_township,
                    township,
                    roster,
                    (
                        "assign2",
                        EventKind::Assign {
                            to_node: village.id.clone(),
                            required_result: "查明情况后答复信访人".to_owned(),
                            deadline: chrono::NaiveDate::from_ymd_opt(2026, 12, 20)
                                .expect("valid date"),
                        },
                    ),
                    at(5),
                );
            }
            3 => {
                act(
                    &mut at_township,
                    township,
                    roster,
                    (
                        "issue3",
                        EventKind::IssueDirective {
                            directive: "d3".to_owned(),
                            target_node: village.id.clone(),
                            requirement: "五个工作日内报告办理进展".to_owned(),
                            due: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("valid date"),
                            listed: false,
                        },
                    ),
                    at(5),
                );
            }
            _ => {}
        }
        let mut at_county = None;
        let refused = sync_case(
            number,
            &mut at_township,
            &mut at_county,
            &offices.county,
            roster,
        );
        assert!(refused.is_empty(), "{number}: {refused:?}");
        held.push((
            (*number).to_owned(),
            at_township,
            at_county.expect("the county holds the case"),
        ));
    }
    held
}

#[test]
fn the_successor_works_its_predecessors_cases_as_the_same_office_at_every_replica() {
    let offices = offices();
    let cases = cases_before_the_loss(&offices, &roster_before(&offices));
    let roster = roster_after_succession(&offices);
    let (successor, township) = (&offices.new_village, &offices.township);
    let actions: [(&str, EventKind); 4] = [
        ("accept1", EventKind::Accept {}),
        (
            "reply2",
            EventKind::Reply {
                outcome: ReplyOutcome::Support,
                text: "已协调施工方支付拖欠工资".to_owned(),
            },
        ),
        ("take3", EventKind::AcceptAssignment {}),
        (
            "ack4",
            EventKind::AcknowledgeDirective {
                directive: "d3".to_owned(),
            },
        ),
    ];
    for ((number, mut at_township, at_county), (id, kind)) in cases.into_iter().zip(actions) {
        // The rebuilt node pulls the case back from its township, then acts on it.
        let mut at_successor = None;
        let refused = sync_case(
            &number,
            &mut at_township,
            &mut at_successor,
            successor,
            &roster,
        );
        assert!(refused.is_empty(), "{number}: {refused:?}");
        let mut at_successor = at_successor.expect("the successor holds the case");
        let before = derived(&at_successor);
        assert_eq!(before.registered_by, offices.old_village.id);
        let state = act(&mut at_successor, successor, &roster, (id, kind), at(13));

        // It took the old node's place first, once, with a signed `succeed`.
        let events = at_successor.events().expect("events read");
        let successions: Vec<_> = events
            .iter()
            .filter(|event| matches!(&event.kind, EventKind::Succeed { predecessor } if *predecessor == offices.old_village.id))
            .collect();
        assert_eq!(successions.len(), 1, "{number}");
        assert_eq!(successions[0].node, successor.id);
        assert!(state.invalid.is_empty(), "{number}: {:?}", state.invalid);
        assert_eq!(state.registered_by, successor.id, "{number}");
        match id {
            "accept1" => {
                assert_eq!(state.status, fengqiao_case::model::Status::Accepted);
                assert_eq!(state.holder, successor.id);
            }
            "reply2" => {
                assert_eq!(state.status, fengqiao_case::model::Status::Replied);
                assert_eq!(state.holder, successor.id);
            }
            "take3" => {
                assert_eq!(
                    before.awaiting.as_deref(),
                    Some(offices.old_village.id.as_str())
                );
                assert_eq!(state.holder, successor.id);
                assert_eq!(state.awaiting, None);
                assert_eq!(state.assigned_by.as_deref(), Some(township.id.as_str()));
            }
            _ => {
                let directive = &state.directives[0];
                assert_eq!(directive.target_node, successor.id);
                assert_eq!(
                    directive.status,
                    fengqiao_case::model::DirectiveStatus::Acknowledged
                );
                assert_eq!(state.holder, successor.id);
            }
        }

        // The township and the county keep every event, and all three derive the same state.
        let mut at_township = Some(at_township);
        let refused = sync_case(
            &number,
            &mut at_successor,
            &mut at_township,
            township,
            &roster,
        );
        assert!(refused.is_empty(), "{number} at the township: {refused:?}");
        let mut at_township = at_township.expect("held");
        let mut at_county = Some(at_county);
        let refused = sync_case(
            &number,
            &mut at_township,
            &mut at_county,
            &offices.county,
            &roster,
        );
        assert!(refused.is_empty(), "{number} at the county: {refused:?}");
        let at_county = at_county.expect("held");
        assert_eq!(at_township.events().expect("read").len(), events.len());
        assert_eq!(at_county.events().expect("read").len(), events.len());
        assert_eq!(derived(&at_township), state, "{number} at the township");
        assert_eq!(derived(&at_county), state, "{number} at the county");
        assert_eq!(derived(&at_successor), state, "{number} at the successor");
    }
}

#[test]
fn a_succession_the_roster_does_not_name_waits_and_the_old_key_stays_refused() {
    let offices = offices();
    let mut cases = cases_before_the_loss(&offices, &roster_before(&offices));
    let roster = roster_after_succession(&offices);
    let (number, at_township, _) = &mut cases[0];
    let mut at_successor = None;
    assert!(
        sync_case(
            number,
            at_township,
            &mut at_successor,
            &offices.new_village,
            &roster
        )
        .is_empty()
    );
    let mut at_successor = at_successor.expect("held");
    act(
        &mut at_successor,
        &offices.new_village,
        &roster,
        ("accept1", EventKind::Accept {}),
        at(13),
    );

    // A township whose roster has the new node only as a new office (its successor entry not
    // yet arrived) keeps the `succeed` and what follows it pending: they may pass later.
    let mut as_new_office = roster_before(&offices);
    as_new_office
        .issue(
            &offices.township.key,
            admission(&offices.new_village, None),
            at(11),
        )
        .expect("plain entry");
    let mut pending = Some(at_township.fork(b"pending-copy"));
    let refused = sync_case(
        number,
        &mut at_successor,
        &mut pending,
        &offices.township,
        &as_new_office,
    );
    assert!(!refused.is_empty());
    assert!(
        refused.iter().all(|change| change.may_pass_later),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(|change| change
            .reason
            .contains("the roster held here does not name it that node's successor")),
        "{refused:?}"
    );
    // Once it names the successor, the same copy passes.
    assert!(
        sync_case(
            number,
            &mut at_successor,
            &mut pending,
            &offices.township,
            &roster
        )
        .is_empty()
    );

    // The old key, found again, signs a new event on the successor's case: still refused, for
    // good, and the successor's events stay.
    let mut with_old_key = at_successor.fork(b"old-key-copy");
    append_unjudged(
        &mut with_old_key,
        &offices.old_village,
        note_by(&offices.old_village, "old-note", at(14)),
    );
    let refused = sync_case(
        number,
        &mut with_old_key,
        &mut pending,
        &offices.township,
        &roster,
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(!refused[0].may_pass_later);
    assert!(
        refused[0].reason.contains(&format!(
            "which its successor {} replaced",
            offices.new_village.id
        )),
        "{refused:?}"
    );
    let state = derived(pending.as_ref().expect("held"));
    assert_eq!(state.holder, offices.new_village.id);
    assert_eq!(state.status, fengqiao_case::model::Status::Accepted);
}
