//! The supervision directive (督办单) lifecycle: issue, acknowledge, report, return, cross off.

use super::support::*;
use crate::derive::derive;
use crate::model::{DirectiveStatus, Event, EventKind, Status};

fn issue(directive: &str, due_day: u32) -> EventKind {
    EventKind::IssueDirective {
        directive: directive.to_owned(),
        target_node: VILLAGE.to_owned(),
        requirement: "七日内约谈建筑公司负责人并报送结果".to_owned(),
        due: date(3, due_day),
        listed: true,
    }
}

fn acknowledge(directive: &str) -> EventKind {
    EventKind::AcknowledgeDirective {
        directive: directive.to_owned(),
    }
}

fn report(directive: &str, text: &str) -> EventKind {
    EventKind::ReportDirective {
        directive: directive.to_owned(),
        text: text.to_owned(),
    }
}

fn cross_off(directive: &str) -> EventKind {
    EventKind::CrossOffDirective {
        directive: directive.to_owned(),
    }
}

fn send_back(directive: &str) -> EventKind {
    EventKind::ReturnDirective {
        directive: directive.to_owned(),
        reason: "未附约谈记录".to_owned(),
    }
}

#[test]
fn a_directive_goes_from_issue_to_crossing_off() {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let message = case.refused(COUNTY, issue("D1", 4), china(3, 5, 10));
    assert!(message.contains("invalid due"), "{message}");
    let state = case.ok(COUNTY, issue("D1", 12), china(3, 5, 10));
    let directive = &state.directives[0];
    assert_eq!(directive.id, "D1");
    assert_eq!(directive.issuer_node, COUNTY);
    assert_eq!(directive.issued_by, format!("operator at {COUNTY}"));
    assert_eq!(directive.issued_at, china(3, 5, 10));
    assert_eq!(directive.target_node, VILLAGE);
    assert_eq!(directive.due, end_of(3, 12));
    assert!(directive.listed);
    assert_eq!(directive.status, DirectiveStatus::Issued);
    let message = case.refused(TOWNSHIP, issue("D1", 12), china(3, 5, 11));
    assert!(message.contains("already exists"), "{message}");

    let message = case.refused(VILLAGE, report("D1", "已约谈"), china(3, 6, 10));
    assert!(
        message.contains("acknowledge the directive before reporting"),
        "{message}"
    );
    let message = case.refused(TOWNSHIP, acknowledge("D1"), china(3, 6, 10));
    assert_eq!(
        message,
        "only node node-village may acknowledge directive D1 (asked by node-township)"
    );
    let message = case.refused(COUNTY, cross_off("D1"), china(3, 6, 10));
    assert!(
        message.contains("the issuer acts only on a report"),
        "{message}"
    );
    let message = case.refused(VILLAGE, acknowledge("D9"), china(3, 6, 10));
    assert_eq!(message, "no directive D9 on this case");

    let state = case.ok(VILLAGE, acknowledge("D1"), china(3, 6, 10));
    assert_eq!(state.directives[0].status, DirectiveStatus::Acknowledged);
    case.refused(VILLAGE, acknowledge("D1"), china(3, 6, 11));
    let state = case.ok(
        VILLAGE,
        report("D1", "已约谈，承诺分期支付"),
        china(3, 8, 10),
    );
    assert_eq!(state.directives[0].status, DirectiveStatus::Reported);

    let message = case.refused(VILLAGE, cross_off("D1"), china(3, 9, 10));
    assert!(
        message.starts_with("only node node-county may cross off"),
        "{message}"
    );
    let state = case.ok(COUNTY, send_back("D1"), china(3, 9, 10));
    assert_eq!(state.directives[0].status, DirectiveStatus::Returned);
    case.refused(VILLAGE, report("D1", "补充"), china(3, 9, 11));
    case.ok(VILLAGE, acknowledge("D1"), china(3, 10, 10));
    case.ok(VILLAGE, report("D1", "附约谈记录"), china(3, 10, 11));
    let state = case.ok(COUNTY, cross_off("D1"), china(3, 11, 10));
    let directive = &state.directives[0];
    assert_eq!(directive.status, DirectiveStatus::CrossedOff);
    assert_eq!(directive.crossed_off_at, Some(china(3, 11, 10)));
    assert_eq!(
        directive.reports,
        vec!["已约谈，承诺分期支付".to_owned(), "附约谈记录".to_owned()]
    );
    case.refused(COUNTY, send_back("D1"), china(3, 11, 11));
    assert!(state.invalid.is_empty());
}

#[test]
fn directives_are_not_issued_on_finished_cases() {
    let mut case = Case::registered();
    case.ok(
        VILLAGE,
        EventKind::Reject {
            reason: "不属于受理范围".to_owned(),
        },
        china(3, 3, 10),
    );
    assert_eq!(case.state.status, Status::NotAccepted);
    let message = case.refused(COUNTY, issue("D1", 20), china(3, 4, 10));
    assert!(message.contains("still being worked on"), "{message}");

    let mut open = Case::registered();
    let message = open.refused(
        COUNTY,
        EventKind::IssueDirective {
            directive: "D2".to_owned(),
            target_node: String::new(),
            requirement: "x".to_owned(),
            due: date(3, 20),
            listed: false,
        },
        china(3, 4, 10),
    );
    assert_eq!(message, "invalid target_node: must not be empty");
    let message = open.refused(
        COUNTY,
        EventKind::IssueDirective {
            directive: "D2".to_owned(),
            target_node: VILLAGE.to_owned(),
            requirement: " ".to_owned(),
            due: date(3, 20),
            listed: false,
        },
        china(3, 4, 10),
    );
    assert_eq!(message, "invalid requirement: must not be empty");
}

#[test]
fn directive_steps_are_ordered_causally_despite_clock_skew() {
    let mut case = Case::registered();
    case.ok(COUNTY, issue("D1", 20), china(3, 5, 10));
    case.ok(VILLAGE, acknowledge("D1"), china(3, 6, 10));
    case.ok(VILLAGE, report("D1", "已办"), china(3, 7, 10));
    case.ok(COUNTY, cross_off("D1"), china(3, 8, 10));
    let header = case.document.header().expect("header");
    let mut events: Vec<Event> = case.document.events().expect("events");
    // The village's clock ran two days behind: its acknowledgement and report now appear to
    // precede the issue, and the county's crossing-off seems to precede the report.
    for event in &mut events {
        match event.kind {
            EventKind::AcknowledgeDirective { .. } => event.at = china(3, 4, 10),
            EventKind::ReportDirective { .. } => event.at = china(3, 9, 10),
            _ => {}
        }
    }
    let state = derive(&header, &events, &case.limits);
    assert_eq!(state.directives[0].status, DirectiveStatus::CrossedOff);
    assert!(state.invalid.is_empty(), "{:?}", state.invalid);
    events.reverse();
    assert_eq!(derive(&header, &events, &case.limits), state);
}

#[test]
fn directive_steps_without_their_issue_wait_for_it() {
    let mut case = Case::registered();
    case.ok(COUNTY, issue("D1", 20), china(3, 5, 10));
    case.ok(VILLAGE, acknowledge("D1"), china(3, 6, 10));
    let header = case.document.header().expect("header");
    let events: Vec<Event> = case
        .document
        .events()
        .expect("events")
        .into_iter()
        .filter(|event| !matches!(event.kind, EventKind::IssueDirective { .. }))
        .collect();
    let state = derive(&header, &events, &case.limits);
    assert!(state.directives.is_empty());
    assert!(state.invalid.is_empty());
}

#[test]
fn a_step_by_the_wrong_node_from_a_peer_is_listed_invalid() {
    let mut case = Case::registered();
    case.ok(COUNTY, issue("D1", 20), china(3, 5, 10));
    let header = case.document.header().expect("header");
    let mut events = case.document.events().expect("events");
    events.push(Event {
        id: "forged".to_owned(),
        kind: acknowledge("D1"),
        at: china(3, 6, 10),
        node: TOWNSHIP.to_owned(),
        operator: "冒名".to_owned(),
        prev: None,
        hlc: Default::default(),
        signature: None,
        imported: None,
        backdated_reason: None,
    });
    let state = derive(&header, &events, &case.limits);
    assert_eq!(state.directives[0].status, DirectiveStatus::Issued);
    assert_eq!(state.invalid, vec!["forged".to_owned()]);
}
