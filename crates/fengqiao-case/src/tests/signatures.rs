//! Event signatures through the document: what a relay can and cannot do to a signed event.

use automerge::transaction::Transactable;
use ed25519_dalek::SigningKey;

use super::support::*;
use crate::document::CaseDocument;
use crate::lifecycle::{append, register};
use crate::model::{EventKind, HeaderAmendment, Limits};
use crate::signature::{
    NodeSigner, SignatureError, node_id_for_public_key, sign_event, verify_event,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn node_of(signer: &SigningKey) -> String {
    node_id_for_public_key(&signer.public_key())
}

/// A case registered by the node of `village_key` and amended once, saved and loaded again.
fn signed_case(village_key: &SigningKey) -> CaseDocument {
    let village = node_of(village_key);
    let limits = Limits::default();
    let (mut document, _, _) = register(
        header(),
        new_event(
            "register",
            &village,
            EventKind::Register { header: None },
            china(3, 2, 9),
        ),
        &ACTOR_A,
        &limits,
        village_key,
    )
    .expect("registers");
    append(
        &mut document,
        new_event(
            "amend",
            &village,
            EventKind::AmendHeader {
                amendment: HeaderAmendment::Headcount(4),
            },
            china(3, 2, 10),
        ),
        &limits,
        village_key,
        &crate::authority::StandaloneOffice {
            node: village.clone(),
            region_code: "430702001001".to_owned(),
        },
    )
    .expect("amends");
    CaseDocument::load(&document.save(), &[], &ACTOR_B).expect("loads")
}

#[test]
fn events_read_back_from_a_document_verify() {
    let village_key = key(1);
    let document = signed_case(&village_key);
    let (header, events) = document.contents().expect("reads");
    assert_eq!(header.headcount, 4);
    assert_eq!(events.len(), 2);
    for event in &events {
        verify_event(&header.number, event).expect("verifies");
        let signature = event.signature.as_ref().expect("signed");
        assert_eq!(signature.public_key, village_key.public_key().to_vec());
    }
}

#[test]
fn an_altered_event_does_not_verify() {
    let document = signed_case(&key(1));
    let (header, events) = document.contents().expect("reads");
    let mut altered = events[1].clone();
    altered.kind = EventKind::AmendHeader {
        amendment: HeaderAmendment::Headcount(40),
    };
    assert!(matches!(
        verify_event(&header.number, &altered),
        Err(SignatureError::BadSignature { .. })
    ));
    // The header as registered is part of the register event, so it is covered too.
    let mut register_event = events[0].clone();
    if let EventKind::Register {
        header: Some(registered),
    } = &mut register_event.kind
    {
        registered.summary = "另一件事".to_owned();
    }
    assert!(matches!(
        verify_event(&header.number, &register_event),
        Err(SignatureError::BadSignature { .. })
    ));
    let mut later = events[1].clone();
    later.hlc.counter += 1;
    assert!(verify_event(&header.number, &later).is_err());
}

#[test]
fn an_event_copied_into_another_case_does_not_verify() {
    let document = signed_case(&key(1));
    let events = document.events().expect("reads");
    assert!(matches!(
        verify_event(&"430702001001-2026-000999".to_owned(), &events[1]),
        Err(SignatureError::BadSignature { .. })
    ));
}

#[test]
fn a_relay_cannot_re_attribute_or_forge_in_another_nodes_name() {
    let village_key = key(1);
    let relay_key = key(2);
    let document = signed_case(&village_key);
    let (header, events) = document.contents().expect("reads");

    // Claiming the village's event as the relay's own: the key no longer matches the name.
    let mut claimed = events[1].clone();
    claimed.node = node_of(&relay_key);
    assert!(matches!(
        verify_event(&header.number, &claimed),
        Err(SignatureError::WrongSigner { .. })
    ));

    // An event in the village's name signed with the relay's own key.
    let mut forged = events[1].clone();
    sign_event(&header.number, &mut forged, &relay_key).expect("signs");
    match verify_event(&header.number, &forged) {
        Err(SignatureError::WrongSigner {
            claimed, signer, ..
        }) => {
            assert_eq!(claimed, node_of(&village_key));
            assert_eq!(signer, node_of(&relay_key));
        }
        other => panic!("expected WrongSigner, got {other:?}"),
    }

    // Signature bytes flipped.
    let mut flipped = events[1].clone();
    if let Some(signature) = &mut flipped.signature {
        signature.signature[0] ^= 1;
    }
    assert!(matches!(
        verify_event(&header.number, &flipped),
        Err(SignatureError::BadSignature { .. })
    ));

    // No signature at all.
    let mut unsigned = events[1].clone();
    unsigned.signature = None;
    assert!(matches!(
        verify_event(&header.number, &unsigned),
        Err(SignatureError::Unsigned { .. })
    ));
}

#[test]
fn the_header_is_what_the_signed_events_say_whatever_else_is_written() {
    let mut document = signed_case(&key(1));
    let before = document.header().expect("reads");
    // A replica writing a header map of its own, outside any event, changes nothing anyone reads.
    let doc = document.automerge();
    let stray = doc
        .put_object(automerge::ROOT, "header", automerge::ObjType::Map)
        .expect("put");
    doc.put(&stray, "headcount", 99_u64).expect("put");
    doc.commit();
    assert_eq!(document.header().expect("reads"), before);
}

#[test]
fn a_batch_verifies_only_when_every_event_does() {
    use crate::signature::{SignerKeys, verify_all};
    let document = signed_case(&key(1));
    let (header, events) = document.contents().expect("reads");
    let all: Vec<&crate::model::Event> = events.iter().collect();
    assert!(verify_all(&header.number, &all, &mut SignerKeys::default()));
    let mut altered = events[1].clone();
    altered.operator = "别人".to_owned();
    assert!(!verify_all(
        &header.number,
        &[&events[0], &altered],
        &mut SignerKeys::default()
    ));
    let mut claimed = events[1].clone();
    claimed.node = node_of(&key(2));
    assert!(!verify_all(
        &header.number,
        &[&claimed],
        &mut SignerKeys::default()
    ));
}
