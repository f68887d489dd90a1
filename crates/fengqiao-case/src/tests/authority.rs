//! The authority table: one row per kind, and who may do what to a village-held case in a
//! county → township → village hierarchy.

use std::collections::BTreeSet;

use super::support::*;
use crate::authority::{AUTHORITY_TABLE, AuthorityError, KindTag, Relation, authorize, relations};
use crate::model::EventKind;

fn note() -> EventKind {
    EventKind::Note {
        text: "已电话联系当事人".to_owned(),
    }
}

fn issue_directive(target: &str) -> EventKind {
    EventKind::IssueDirective {
        directive: "D1".to_owned(),
        target_node: target.to_owned(),
        requirement: "七日内报送处理结果".to_owned(),
        due: date(3, 20),
        listed: false,
    }
}

fn directive_step(kind: KindTag) -> EventKind {
    let directive = "D1".to_owned();
    match kind {
        KindTag::AcknowledgeDirective => EventKind::AcknowledgeDirective { directive },
        KindTag::CrossOffDirective => EventKind::CrossOffDirective { directive },
        _ => EventKind::ReportDirective {
            directive,
            text: "已约谈".to_owned(),
        },
    }
}

#[test]
fn the_table_has_one_row_per_kind_and_register_is_not_among_them() {
    let rows: Vec<KindTag> = AUTHORITY_TABLE.iter().map(|(kind, _, _)| *kind).collect();
    let distinct: BTreeSet<KindTag> = rows.iter().copied().collect();
    assert_eq!(rows.len(), distinct.len(), "a kind has two rows");
    let expected: BTreeSet<KindTag> = KindTag::ALL
        .into_iter()
        .filter(|kind| *kind != KindTag::Register)
        .collect();
    assert_eq!(distinct, expected);
    for (kind, allowed, why) in AUTHORITY_TABLE {
        assert!(!allowed.is_empty(), "{kind:?} is allowed to nobody");
        assert!(!why.is_empty());
    }
}

#[test]
fn the_holder_handles_and_the_tiers_above_supervise() {
    let case = Case::registered();
    let state = &case.state;
    assert_eq!(state.holder, VILLAGE);
    assert!(authorize(state, &close(true), VILLAGE, &Tree).is_ok());
    assert!(authorize(state, &issue_directive(VILLAGE), COUNTY, &Tree).is_ok());
    assert!(authorize(state, &issue_directive(VILLAGE), TOWNSHIP, &Tree).is_ok());
    assert!(authorize(state, &note(), TOWNSHIP, &Tree).is_ok());

    // A tier above may supervise, but not close what it does not hold.
    let refused =
        authorize(state, &close(true), COUNTY, &Tree).expect_err("the county does not hold it");
    let message = refused.to_string();
    assert!(
        message.contains("only the holder closes") && message.contains("above the holder"),
        "{message}"
    );
    // The holder does not supervise itself, and a sibling village takes no part at all.
    assert!(authorize(state, &issue_directive(VILLAGE), VILLAGE, &Tree).is_err());
    let sibling = authorize(state, &note(), SIBLING, &Tree).expect_err("a sibling takes no part");
    assert!(
        matches!(&sibling, AuthorityError::NotAuthorized { relations, .. } if relations.is_empty()),
        "{sibling:?}"
    );
    assert!(sibling.to_string().contains("no party"), "{sibling}");
    assert!(matches!(
        authorize(
            state,
            &EventKind::Register {
                header: None,
                policy_version: 0
            },
            VILLAGE,
            &Tree
        ),
        Err(AuthorityError::RegisterOnExistingCase)
    ));
}

#[test]
fn an_assignment_is_answered_only_by_the_office_it_waits_on() {
    let mut case = Case::registered();
    case.ok(VILLAGE, escalate(TOWNSHIP), china(3, 3, 9));
    let state = case.ok(TOWNSHIP, assign(SIBLING, date(3, 30)), china(3, 4, 9));
    assert_eq!(state.awaiting.as_deref(), Some(SIBLING));
    let take = EventKind::AcceptAssignment {};
    assert!(authorize(&state, &take, SIBLING, &Tree).is_ok());
    assert!(authorize(&state, &take, VILLAGE, &Tree).is_err());
    assert!(authorize(&state, &take, TOWNSHIP, &Tree).is_err());
    // The village that registered the case may still write a note on it.
    assert_eq!(
        relations(&state, &note(), VILLAGE, &Tree),
        vec![Relation::Registrar]
    );
    assert!(authorize(&state, &note(), VILLAGE, &Tree).is_ok());
}

#[test]
fn only_the_target_answers_a_directive_and_only_the_issuer_crosses_it_off() {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let state = case.ok(COUNTY, issue_directive(VILLAGE), china(3, 5, 10));
    for step in [KindTag::AcknowledgeDirective, KindTag::ReportDirective] {
        let kind = directive_step(step);
        assert!(authorize(&state, &kind, VILLAGE, &Tree).is_ok(), "{step:?}");
        assert!(authorize(&state, &kind, COUNTY, &Tree).is_err(), "{step:?}");
        assert!(
            authorize(&state, &kind, TOWNSHIP, &Tree).is_err(),
            "{step:?}"
        );
    }
    let cross_off = directive_step(KindTag::CrossOffDirective);
    assert!(authorize(&state, &cross_off, COUNTY, &Tree).is_ok());
    // The township is above the holder too, but it did not issue this directive.
    assert!(authorize(&state, &cross_off, TOWNSHIP, &Tree).is_err());
    assert!(authorize(&state, &cross_off, VILLAGE, &Tree).is_err());
    // A directive the case does not have gives nobody a directive relation.
    let other = EventKind::CrossOffDirective {
        directive: "D9".to_owned(),
    };
    assert!(!relations(&state, &other, COUNTY, &Tree).contains(&Relation::DirectiveIssuer));
}

#[test]
fn an_office_places_a_case_only_inside_its_jurisdiction() {
    use crate::authority::check_jurisdiction;
    use crate::model::{HeaderAmendment, Location};
    let moved_to = |region_code: &str| EventKind::AmendHeader {
        amendment: HeaderAmendment::Location(Location {
            region_code: region_code.to_owned(),
            village: "别处".to_owned(),
            grid: String::new(),
            grid_worker: String::new(),
        }),
    };
    // Within its own village, and by the township over both villages: allowed.
    assert!(check_jurisdiction(&moved_to("430702001001"), VILLAGE, &Tree).is_ok());
    assert!(check_jurisdiction(&moved_to("430702001002"), TOWNSHIP, &Tree).is_ok());
    // A village moving its case into its sibling's village: refused, by name.
    match check_jurisdiction(&moved_to("430702001002"), VILLAGE, &Tree) {
        Err(error @ AuthorityError::OutsideJurisdiction { .. }) => {
            let message = error.to_string();
            assert!(message.contains("430702001002"), "{message}");
            assert!(message.contains("region 430702001001"), "{message}");
        }
        other => panic!("expected OutsideJurisdiction, got {other:?}"),
    }
    // Through the API's append: refused the same way.
    let mut case = Case::registered();
    let refused = case.refused(VILLAGE, moved_to("430702001002"), china(3, 3, 10));
    assert!(refused.contains("outside its jurisdiction"), "{refused}");
    // Events that place nothing are not the jurisdiction rule's business.
    assert!(check_jurisdiction(&note(), "stranger", &Tree).is_ok());
}
