//! The case document: save/load, incremental chunks, exact round trips, malformed input.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use chrono::TimeDelta;

use super::support::*;
use crate::document::{CaseDocument, DocumentError};
use crate::model::{Event, EventKind, HeaderAmendment, Ownership, SCHEMA_VERSION};

fn note(text: &str) -> EventKind {
    EventKind::Note {
        text: text.to_owned(),
    }
}

fn a_case_with_history() -> Case {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    case.ok(
        VILLAGE,
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Ownership(Ownership {
                leader: "镇党委书记 陈七".to_owned(),
                unit: "镇综治中心".to_owned(),
                officer: "刘八".to_owned(),
                plan: "约谈、调解、督促履行".to_owned(),
                target_date: Some(date(4, 30)),
            }),
        },
        china(3, 4, 10),
    );
    case.ok(
        COUNTY,
        EventKind::IssueDirective {
            directive: "D1".to_owned(),
            target_node: VILLAGE.to_owned(),
            requirement: "限期办结".to_owned(),
            due: date(3, 20),
            listed: false,
        },
        china(3, 5, 10),
    );
    case
}

/// `loaded` reads as the same header and events as `original`.
fn assert_same_header_and_events(loaded: &CaseDocument, original: &CaseDocument) {
    assert_eq!(
        loaded.header().expect("header"),
        original.header().expect("header")
    );
    assert_eq!(
        loaded.events().expect("events"),
        original.events().expect("events")
    );
}

#[test]
fn save_and_load_round_trip_everything() {
    let mut case = a_case_with_history();
    let saved = case.document.save();
    let loaded = CaseDocument::load(&saved, &[], &ACTOR_B).expect("loads");
    assert_same_header_and_events(&loaded, &case.document);
    let header = loaded.header().expect("header");
    assert_eq!(header.ownership.leader, "镇党委书记 陈七");
    assert_eq!(header.ownership.target_date, Some(date(4, 30)));
    let events = loaded.events().expect("events");
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].prev, None);
    assert_eq!(events[1].prev.as_deref(), Some("register"));
    assert_eq!(events[2].prev, None);
}

/// Documents are saved uncompressed since session 18; those saved before, with automerge's
/// compressed `save()`, are still in stores and still sent by older peers, and must load alike.
#[test]
fn a_document_saved_compressed_still_loads() {
    let mut case = a_case_with_history();
    let uncompressed = case.document.save();
    let compressed = case.document.automerge().save();
    assert!(
        compressed.len() < uncompressed.len(),
        "compressed {} bytes, uncompressed {}",
        compressed.len(),
        uncompressed.len()
    );
    let mut loaded = CaseDocument::load(&compressed, &[], &ACTOR_B).expect("loads");
    assert_same_header_and_events(&loaded, &case.document);
    assert_eq!(loaded.heads(), case.document.heads());
}

#[test]
fn incremental_chunks_load_on_top_of_the_saved_form() {
    let mut case = Case::registered();
    let saved = case.document.save();
    assert!(case.document.save_incremental().is_empty());
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let first = case.document.save_incremental();
    assert!(!first.is_empty());
    case.ok(VILLAGE, note("第一次约谈"), china(3, 4, 10));
    case.ok(VILLAGE, reply(), china(3, 5, 10));
    let second = case.document.save_incremental();
    assert!(case.document.save_incremental().is_empty());

    let mut loaded = CaseDocument::load(&saved, &[&first, &second], &ACTOR_B).expect("loads");
    assert_eq!(
        loaded.events().expect("events"),
        case.document.events().expect("events")
    );
    assert_eq!(loaded.heads(), case.document.heads());

    // A chunk applied twice, or out of order after the later one, changes nothing.
    let again = CaseDocument::load(&saved, &[&first, &second, &first], &ACTOR_B).expect("loads");
    assert_eq!(again.events().expect("events").len(), 4);
}

/// A load for an update keeps what its shape check read for the first read after it (see
/// `ReadAtLoad`): that read must see the document as it is then, whichever way it was changed
/// since the load.
#[test]
fn the_first_read_after_a_load_sees_every_change_made_since() {
    let mut case = Case::registered();
    let saved = case.document.save();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let chunk = case.document.save_incremental();
    case.ok(VILLAGE, note("约谈"), china(3, 4, 10));
    let later = case.document.events().expect("events");

    // Unchanged since the load: the first read and the next agree.
    let loaded = CaseDocument::load_for_update(&saved, &[], &ACTOR_B).expect("loads");
    assert_eq!(loaded.events().expect("events").len(), 1);
    assert_eq!(loaded.contents().expect("contents").1.len(), 1);

    // Changed through automerge itself.
    let mut loaded = CaseDocument::load_for_update(&saved, &[], &ACTOR_B).expect("loads");
    loaded
        .automerge()
        .load_incremental(&chunk)
        .expect("the chunk applies");
    assert_eq!(loaded.events().expect("events").len(), 2);

    // Changed by an event pushed.
    let mut loaded = CaseDocument::load_for_update(&saved, &[], &ACTOR_B).expect("loads");
    loaded.push_event(&later[1]).expect("pushes");
    let (header, events) = loaded.contents().expect("contents");
    assert_eq!(events.len(), 2);
    assert_eq!(header, case.document.header().expect("header"));

    // Changed by a merge.
    let mut loaded = CaseDocument::load_for_update(&saved, &[], &ACTOR_B).expect("loads");
    loaded.merge(&mut case.document).expect("merges");
    assert_eq!(loaded.events().expect("events"), later);
}

#[test]
fn event_times_round_trip_to_the_millisecond() {
    let mut case = Case::registered();
    let at = china(3, 3, 10) + TimeDelta::milliseconds(457) + TimeDelta::microseconds(999);
    case.ok(VILLAGE, accept(), at);
    let saved = case.document.save();
    let loaded = CaseDocument::load(&saved, &[], &ACTOR_B).expect("loads");
    let events = loaded.events().expect("events");
    assert_eq!(events[1].at, china(3, 3, 10) + TimeDelta::milliseconds(457));
    assert_eq!(
        events[1].at,
        case.state.timeline.accepted_at.expect("accepted")
    );
}

#[test]
fn every_kind_of_event_round_trips() {
    use crate::model::{
        Category, JudicialConfirmation, Location, MediationResult, MediationType, Petitioner,
        ReplyOutcome, ReviewLevel, ReviewOutcome, Satisfaction,
    };
    let kinds = vec![
        EventKind::Register {
            header: None,
            policy_version: 0,
        },
        EventKind::Accept {},
        EventKind::Reject { reason: "r".into() },
        EventKind::Forward {
            to_unit: "u".into(),
            to_node: Some("n".into()),
            reason: "r".into(),
        },
        EventKind::Forward {
            to_unit: "u".into(),
            to_node: None,
            reason: "r".into(),
        },
        EventKind::Assign {
            to_node: "n".into(),
            required_result: "q".into(),
            deadline: date(4, 1),
        },
        EventKind::AcceptAssignment {},
        EventKind::Object { reason: "r".into() },
        EventKind::Divert {
            to_unit: "u".into(),
            reason: "r".into(),
        },
        EventKind::Escalate {
            to_node: "n".into(),
            reason: "r".into(),
        },
        EventKind::Extend {
            days: 30,
            approver: "a".into(),
            reason: "r".into(),
        },
        EventKind::Reply {
            outcome: ReplyOutcome::NotSupport,
            text: "t".into(),
        },
        EventKind::Evaluate {
            satisfaction: Satisfaction::Unsatisfied,
        },
        EventKind::Close {
            resolved: false,
            note: String::new(),
        },
        EventKind::RequestReview {
            level: ReviewLevel::ReReview,
            reason: "r".into(),
        },
        EventKind::DecideReview {
            level: ReviewLevel::Review,
            outcome: ReviewOutcome::Revised,
            text: "t".into(),
        },
        EventKind::Reopen { reason: "r".into() },
        EventKind::Resolve {
            chosen: "e".into(),
            note: "n".into(),
            overrides: vec!["r0".into()],
        },
        EventKind::Mediate {
            mediation_type: MediationType::Judicial,
            mediator: "m".into(),
            result: MediationResult::Agreement,
            agreement: "a".into(),
            judicial_confirmation: JudicialConfirmation::Applied,
        },
        EventKind::UpdateJudicialConfirmation {
            mediation: "e".into(),
            status: JudicialConfirmation::Refused,
        },
        EventKind::LinkRepeat {
            earlier: "c".into(),
        },
        EventKind::IssueDirective {
            directive: "d".into(),
            target_node: "n".into(),
            requirement: "q".into(),
            due: date(4, 1),
            listed: true,
        },
        EventKind::AcknowledgeDirective {
            directive: "d".into(),
        },
        EventKind::ReportDirective {
            directive: "d".into(),
            text: "t".into(),
        },
        EventKind::CrossOffDirective {
            directive: "d".into(),
        },
        EventKind::ReturnDirective {
            directive: "d".into(),
            reason: "r".into(),
        },
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Category(Category::Environment),
        },
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Petitioners(vec![Petitioner {
                name: "王二".into(),
                id_number: String::new(),
                id_type: Default::default(),
                phone: String::new(),
                address: String::new(),
                representative: true,
            }]),
        },
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Location(Location {
                region_code: "430702002".into(),
                village: "河洑村".into(),
                grid: String::new(),
                grid_worker: String::new(),
            }),
        },
        EventKind::Note {
            text: "备注 \"引号\" \n 换行".into(),
        },
    ];
    let mut case = Case::registered();
    // Pushed directly: this is about the document layout, not the lifecycle.
    let pushed: Vec<Event> = kinds
        .into_iter()
        .enumerate()
        .map(|(index, kind)| Event {
            id: format!("e{index}"),
            kind,
            at: china(3, 3, 10) + TimeDelta::milliseconds(index as i64),
            node: TOWNSHIP.to_owned(),
            operator: "操作员".to_owned(),
            prev: (index % 2 == 0).then(|| "register".to_owned()),
            hlc: Default::default(),
            signature: None,
            imported: None,
            backdated_reason: None,
        })
        .collect();
    for event in &pushed {
        case.document.push_event(event).expect("pushes");
    }
    let saved = case.document.save();
    let loaded = CaseDocument::load(&saved, &[], &ACTOR_B).expect("loads");
    let events = loaded.events().expect("events");
    assert_eq!(&events[1..], pushed.as_slice());
    let header = loaded.header().expect("header");
    assert_eq!(header.category, Category::Environment);
    assert_eq!(header.location.region_code, "430702002");
    assert_eq!(header.petitioners[0].name, "王二");
}

fn malformed(bytes: &[u8]) -> String {
    match CaseDocument::load(bytes, &[], &ACTOR_A) {
        Ok(_) => panic!("a malformed document should not load"),
        Err(error @ DocumentError::Malformed(_)) => error.to_string(),
        Err(other) => panic!("expected Malformed, got {other}"),
    }
}

/// A valid case document, then `spoil` applied to it as a raw automerge document.
fn spoiled(spoil: impl FnOnce(&mut AutoCommit)) -> Vec<u8> {
    let mut case = a_case_with_history();
    let mut doc = AutoCommit::load(&case.document.save()).expect("valid");
    spoil(&mut doc);
    doc.commit();
    doc.save()
}

fn event_entry(doc: &AutoCommit, index: usize) -> automerge::ObjId {
    let Some((Value::Object(_), events)) = doc.get(ROOT, "events").expect("events") else {
        panic!("events list");
    };
    let Some((Value::Object(_), entry)) = doc.get(&events, index).expect("entry") else {
        panic!("event entry");
    };
    entry
}

#[test]
fn garbage_and_empty_documents_are_errors() {
    assert!(malformed(b"not an automerge document").contains("cannot decode the saved document"));
    let empty = AutoCommit::new().save();
    assert!(malformed(&empty).contains("schema_version is missing"));
    let mut case = Case::registered();
    let saved = case.document.save();
    // automerge applies an incremental chunk up to the first unreadable change and ignores the
    // rest (a torn write loses only its own tail); the document stays whole and readable.
    let loaded =
        CaseDocument::load(&saved, &[b"junk".as_slice()], &ACTOR_A).expect("junk tail ignored");
    assert_eq!(
        loaded.events().expect("events"),
        case.document.events().expect("events")
    );
}

#[test]
fn a_newer_schema_version_is_refused_by_name() {
    let bytes = spoiled(|doc| {
        doc.put(ROOT, "schema_version", u64::from(SCHEMA_VERSION) + 1)
            .expect("put");
    });
    match CaseDocument::load(&bytes, &[], &ACTOR_A) {
        Err(
            error @ DocumentError::UnsupportedVersion {
                found: 3,
                supported: 2,
            },
        ) => {
            assert_eq!(
                error.to_string(),
                "case document has schema version 3, this build reads up to 2"
            );
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    let bytes = spoiled(|doc| {
        doc.put(ROOT, "schema_version", "one").expect("put");
    });
    assert!(malformed(&bytes).contains("not an unsigned integer"));
}

#[test]
fn wrong_shapes_are_named() {
    let bytes = spoiled(|doc| {
        doc.put_object(ROOT, "events", ObjType::Map).expect("put");
    });
    assert!(malformed(&bytes).contains("root `events` is a map, expected a list"));

    // The header is the register event's payload: a header that does not read is a register
    // event that does not read.
    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 0);
        doc.put(
            &entry,
            "payload",
            r#"{"header": {"channel": "carrier_pigeon"}}"#,
        )
        .expect("put");
    });
    assert!(malformed(&bytes).contains("has kind \"register\" with an unreadable payload"));
    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 0);
        doc.put(&entry, "payload", "{}").expect("put");
    });
    assert!(malformed(&bytes).contains("the first event does not register the case's header"));

    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 1);
        doc.put(&entry, "hlc_ms", "noon").expect("put");
    });
    assert!(malformed(&bytes).contains("unreadable hybrid clock time"));
    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 1);
        doc.delete(&entry, "signature").expect("delete");
    });
    assert!(malformed(&bytes).contains("incomplete or unreadable signature"));

    let bytes = spoiled(|doc| {
        let Some((Value::Object(_), events)) = doc.get(ROOT, "events").expect("events") else {
            panic!("events list");
        };
        doc.insert(&events, 1, 42_i64).expect("insert");
    });
    assert!(malformed(&bytes).contains("event 1 is the scalar"));

    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 1);
        doc.put(&entry, "kind", "teleport").expect("put");
    });
    assert!(malformed(&bytes).contains("has kind \"teleport\" with an unreadable payload"));

    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 3);
        doc.put(&entry, "payload", "{\"directive\": 7}")
            .expect("put");
    });
    assert!(malformed(&bytes).contains("unreadable payload"));

    // Payload text that would add a field of its own if it were pasted into a larger JSON text:
    // it must be refused, never read as another kind.
    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 1);
        doc.put(&entry, "payload", r#"{}, "kind": "close""#)
            .expect("put");
    });
    assert!(malformed(&bytes).contains("field `payload` cannot be read"));
    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 1);
        doc.put_object(&entry, "node", automerge::ObjType::List)
            .expect("put");
    });
    assert!(malformed(&bytes).contains("field `node` is a list object, expected a scalar"));
    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 1);
        doc.delete(&entry, "operator").expect("delete");
    });
    assert!(malformed(&bytes).contains("field `operator` is missing"));

    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 1);
        doc.put(&entry, "at", "yesterday").expect("put");
    });
    assert!(malformed(&bytes).contains("field `at` is"));

    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 1);
        doc.put(&entry, "prev", 3_u64).expect("put");
    });
    assert!(malformed(&bytes).contains("field `prev` is"));

    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 1);
        doc.put(&entry, "at", ScalarValue::Timestamp(i64::MAX))
            .expect("put");
    });
    assert!(malformed(&bytes).contains("out of range"));

    let bytes = spoiled(|doc| {
        let entry = event_entry(doc, 2);
        doc.delete(&entry, "id").expect("delete");
    });
    assert!(malformed(&bytes).contains("event 2 field `id` is missing"));
}

#[test]
fn appending_to_a_malformed_document_is_an_error_not_a_panic() {
    let mut case = Case::registered();
    let doc = case.document.automerge();
    let entry = event_entry(doc, 0);
    doc.put(&entry, "payload", r#"{"header": {"headcount": "many"}}"#)
        .expect("put");
    doc.commit();
    let message = case
        .act(VILLAGE, accept(), china(3, 3, 10))
        .expect_err("malformed")
        .to_string();
    assert!(message.contains("unreadable payload"), "{message}");
}

#[test]
fn concurrent_amendments_settle_on_one_value_everywhere() {
    let mut a = Case::registered();
    let mut b = a.fork(&ACTOR_B, "b");
    a.ok(
        VILLAGE,
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Headcount(3),
        },
        china(3, 3, 10),
    );
    b.ok(
        VILLAGE,
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Headcount(9),
        },
        china(3, 3, 10),
    );
    a.merge_from(&mut b);
    b.merge_from(&mut a);
    let left = a.document.header().expect("header");
    assert_eq!(left, b.document.header().expect("header"));
    assert!(left.headcount == 3 || left.headcount == 9);
    assert_eq!(a.state, b.state);
}
