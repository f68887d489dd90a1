//! Every lifecycle path: the happy paths with their deadlines, and each refusal with its reason.

use super::support::*;
use crate::appending::register;
use crate::case_error::CaseError;
use crate::lifecycle::{NewEvent, check};
use crate::model::{
    EventKind, HeaderAmendment, JudicialConfirmation, Limits, MediationResult, MediationType,
    Petitioner, ReviewLevel, ReviewOutcome, Satisfaction, Status,
};

fn register_error(header: crate::model::CaseHeader, kind: EventKind) -> String {
    match register(
        header,
        new_event("register", VILLAGE, kind, china(3, 2, 9)),
        &ACTOR_A,
        &crate::policy::PolicyBook::default(),
        &signer(),
    ) {
        Ok(_) => panic!("registration should be refused"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn registration_starts_the_acceptance_limit() {
    let case = Case::registered();
    let state = &case.state;
    assert_eq!(state.status, Status::Registered);
    assert_eq!(state.holder, VILLAGE);
    assert_eq!(state.registered_by, VILLAGE);
    assert_eq!(state.tip, "register");
    assert_eq!(state.timeline.registered_at, Some(china(3, 2, 9)));
    assert_eq!(state.timeline.received_at, Some(china(3, 2, 9)));
    assert_eq!(state.timeline.acceptance_deadline, Some(end_of(3, 17)));
    assert_eq!(state.event_count, 1);
    assert_eq!(state.last_event_at, Some(china(3, 2, 9)));
    assert_eq!(case.document.header().expect("header"), header());
}

#[test]
fn registration_refuses_an_incomplete_header() {
    let mut no_summary = header();
    no_summary.summary = "  ".to_owned();
    assert!(
        register_error(
            no_summary,
            EventKind::Register {
                header: None,
                policy_version: 0
            }
        )
        .contains("invalid summary")
    );

    let mut nobody = header();
    nobody.petitioners.clear();
    assert!(
        register_error(
            nobody,
            EventKind::Register {
                header: None,
                policy_version: 0
            }
        )
        .contains("at least one petitioner")
    );

    let mut nameless = header();
    nameless.petitioners[0].name = String::new();
    assert!(
        register_error(
            nameless,
            EventKind::Register {
                header: None,
                policy_version: 0
            }
        )
        .contains("petitioner 1 has no name")
    );

    let mut no_people = header();
    no_people.headcount = 0;
    assert!(
        register_error(
            no_people,
            EventKind::Register {
                header: None,
                policy_version: 0
            }
        )
        .contains("invalid headcount")
    );

    let mut crowd = header();
    crowd.headcount = 40;
    crowd.petitioners = (0..6)
        .map(|index| Petitioner {
            name: format!("代表{index}"),
            id_number: String::new(),
            id_type: Default::default(),
            phone: String::new(),
            address: String::new(),
            representative: true,
        })
        .collect();
    assert!(
        register_error(
            crowd,
            EventKind::Register {
                header: None,
                policy_version: 0
            }
        )
        .contains("at most 5")
    );

    for code in ["43070", "4307020010", "43070200100a", ""] {
        let mut bad_region = header();
        bad_region.location.region_code = code.to_owned();
        assert!(
            register_error(
                bad_region,
                EventKind::Register {
                    header: None,
                    policy_version: 0
                }
            )
            .contains("administrative code")
        );
    }

    let mut no_number = header();
    no_number.number = String::new();
    assert!(
        register_error(
            no_number,
            EventKind::Register {
                header: None,
                policy_version: 0
            }
        )
        .contains("invalid number")
    );

    assert!(
        register_error(header(), EventKind::Accept {}).contains("starts with a register event")
    );
}

#[test]
fn registration_accepts_a_group_visit_with_five_representatives() {
    let mut group = header();
    group.headcount = 30;
    group.location.region_code = "430702001".to_owned();
    group.petitioners = (0..5)
        .map(|index| Petitioner {
            name: format!("代表{index}"),
            id_number: String::new(),
            id_type: Default::default(),
            phone: String::new(),
            address: String::new(),
            representative: true,
        })
        .collect();
    let case = Case::registered_with(group, Limits::default());
    assert_eq!(case.state.status, Status::Registered);
}

#[test]
fn acceptance_starts_the_handling_limit() {
    let mut case = Case::registered();
    let state = case.ok(VILLAGE, accept(), china(3, 3, 10));
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.tip, case.last_id());
    assert_eq!(state.timeline.accepted_at, Some(china(3, 3, 10)));
    assert_eq!(state.timeline.handling_deadline, Some(end_of(5, 2)));
    assert_eq!(state.timeline.decided_at, Some(china(3, 3, 10)));
    assert_eq!(state.timeline.decided_deadline, Some(end_of(3, 17)));

    let message = case.refused(VILLAGE, accept(), china(3, 4, 10));
    assert!(
        message.contains("cannot accept a case that is Accepted"),
        "{message}"
    );
}

#[test]
fn only_the_holder_moves_the_case() {
    let mut case = Case::registered();
    let message = case.refused(TOWNSHIP, accept(), china(3, 3, 10));
    assert_eq!(
        message,
        "only the holding node node-village may accept this case (asked by node-township)"
    );
}

#[test]
fn rejection_needs_a_reason_and_reopening_starts_a_new_handling_period() {
    let mut case = Case::registered();
    let message = case.refused(
        VILLAGE,
        EventKind::Reject {
            reason: " ".to_owned(),
        },
        china(3, 3, 10),
    );
    assert_eq!(message, "invalid reason: must not be empty");

    let state = case.ok(
        VILLAGE,
        EventKind::Reject {
            reason: "不属于信访事项".to_owned(),
        },
        china(3, 3, 10),
    );
    assert_eq!(state.status, Status::NotAccepted);
    assert_eq!(state.timeline.decided_at, Some(china(3, 3, 10)));
    assert_eq!(state.timeline.accepted_at, None);

    let message = case.refused(VILLAGE, reply(), china(3, 4, 10));
    assert!(
        message.contains("cannot reply to a case that is NotAccepted"),
        "{message}"
    );
    case.refused(
        VILLAGE,
        EventKind::Reopen {
            reason: String::new(),
        },
        china(3, 4, 10),
    );

    let state = case.ok(
        VILLAGE,
        EventKind::Reopen {
            reason: "上级督查认为应予受理".to_owned(),
        },
        china(4, 10, 10),
    );
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.timeline.accepted_at, Some(china(4, 10, 10)));
    // 10 April + 60 days.
    assert_eq!(state.timeline.handling_deadline, Some(end_of(6, 9)));
    // The acceptance decision stays the first one.
    assert_eq!(state.timeline.decided_at, Some(china(3, 3, 10)));
}

#[test]
fn diverting_needs_a_litigation_related_matter() {
    let mut case = Case::registered();
    let divert = || EventKind::Divert {
        to_unit: "区人民法院".to_owned(),
        reason: "已进入诉讼程序".to_owned(),
    };
    let message = case.refused(VILLAGE, divert(), china(3, 3, 10));
    assert!(message.contains("涉法涉诉"), "{message}");

    case.ok(
        VILLAGE,
        EventKind::AmendHeader {
            amendment: HeaderAmendment::LitigationRelated(true),
        },
        china(3, 3, 11),
    );
    assert!(case.document.header().expect("header").litigation_related);
    let state = case.ok(VILLAGE, divert(), china(3, 3, 12));
    assert_eq!(state.status, Status::Diverted);
    assert_eq!(state.timeline.decided_at, Some(china(3, 3, 12)));
    let message = case.refused(VILLAGE, accept(), china(3, 4, 10));
    assert!(message.contains("Diverted"), "{message}");
}

#[test]
fn an_accepted_litigation_matter_can_still_be_diverted() {
    let mut litigation = header();
    litigation.litigation_related = true;
    let mut case = Case::registered_with(litigation, Limits::default());
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let state = case.ok(
        VILLAGE,
        EventKind::Divert {
            to_unit: "区委政法委".to_owned(),
            reason: "涉诉".to_owned(),
        },
        china(3, 5, 10),
    );
    assert_eq!(state.status, Status::Diverted);
    assert_eq!(state.timeline.decided_at, Some(china(3, 3, 10)));
}

#[test]
fn forwarding_outside_the_federation_ends_it_here() {
    let mut case = Case::registered();
    let state = case.ok(
        VILLAGE,
        EventKind::Forward {
            to_unit: "市人社局".to_owned(),
            to_node: None,
            reason: "劳动监察职责".to_owned(),
        },
        china(3, 4, 10),
    );
    assert_eq!(state.status, Status::ForwardedOut);
    assert_eq!(state.holder, VILLAGE);
    assert_eq!(state.awaiting, None);
    assert_eq!(state.timeline.decided_at, Some(china(3, 4, 10)));
}

#[test]
fn forwarding_to_a_node_waits_for_the_receiver() {
    let mut case = Case::registered();
    // Wednesday 4 March: five working days end Wednesday 11 March.
    let state = case.ok(
        VILLAGE,
        EventKind::Forward {
            to_unit: "镇劳动保障所".to_owned(),
            to_node: Some(TOWNSHIP.to_owned()),
            reason: "属镇级职责".to_owned(),
        },
        china(3, 4, 10),
    );
    assert_eq!(state.status, Status::AwaitingReceiver);
    assert_eq!(state.awaiting.as_deref(), Some(TOWNSHIP));
    assert_eq!(state.assigned_by.as_deref(), Some(VILLAGE));
    assert_eq!(state.holder, VILLAGE);
    assert_eq!(state.timeline.objection_deadline, Some(end_of(3, 11)));

    let message = case.refused(COUNTY, EventKind::AcceptAssignment {}, china(3, 5, 10));
    assert_eq!(
        message,
        "only the receiving node node-township may take on the assignment of this case (asked by node-county)"
    );
    let message = case.refused(VILLAGE, accept(), china(3, 5, 10));
    assert!(message.contains("AwaitingReceiver"), "{message}");

    let state = case.ok(TOWNSHIP, EventKind::AcceptAssignment {}, china(3, 5, 10));
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.holder, TOWNSHIP);
    assert_eq!(state.awaiting, None);
    assert_eq!(state.assigned_by.as_deref(), Some(VILLAGE));
    assert_eq!(state.timeline.accepted_at, Some(china(3, 5, 10)));
    assert_eq!(state.timeline.received_at, Some(china(3, 5, 10)));
    assert_eq!(state.timeline.handling_deadline, Some(end_of(5, 4)));
}

#[test]
fn assigning_an_accepted_case_keeps_its_handling_clock() {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let message = case.refused(VILLAGE, assign(VILLAGE, date(3, 20)), china(3, 4, 10));
    assert!(message.contains("already holds the case"), "{message}");
    let message = case.refused(VILLAGE, assign(TOWNSHIP, date(3, 3)), china(3, 4, 10));
    assert!(message.contains("invalid deadline"), "{message}");
    let message = case.refused(
        VILLAGE,
        EventKind::Assign {
            to_node: TOWNSHIP.to_owned(),
            required_result: String::new(),
            deadline: date(3, 20),
        },
        china(3, 4, 10),
    );
    assert_eq!(message, "invalid required_result: must not be empty");

    // Same-day deadline is allowed.
    let state = case.ok(VILLAGE, assign(TOWNSHIP, date(3, 4)), china(3, 4, 10));
    assert_eq!(state.status, Status::AwaitingReceiver);
    assert_eq!(state.assignment_deadline, Some(date(3, 4)));
    let state = case.ok(TOWNSHIP, EventKind::AcceptAssignment {}, china(3, 6, 10));
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.holder, TOWNSHIP);
    assert_eq!(state.timeline.accepted_at, Some(china(3, 3, 10)));
    assert_eq!(state.timeline.handling_deadline, Some(end_of(5, 2)));
    assert_eq!(state.timeline.decided_at, Some(china(3, 3, 10)));
}

#[test]
fn a_receiver_objects_within_five_working_days() {
    let mut case = Case::registered();
    // Friday 6 March: Mon 9 … Fri 13 March.
    let state = case.ok(VILLAGE, assign(TOWNSHIP, date(3, 31)), china(3, 6, 10));
    assert_eq!(state.timeline.objection_deadline, Some(end_of(3, 13)));
    assert_eq!(state.timeline.decided_at, Some(china(3, 6, 10)));
    let message = case.refused(
        TOWNSHIP,
        EventKind::Object {
            reason: String::new(),
        },
        china(3, 9, 10),
    );
    assert_eq!(message, "invalid reason: must not be empty");
    let message = case.refused(
        VILLAGE,
        EventKind::Object {
            reason: "非本级职责".to_owned(),
        },
        china(3, 9, 10),
    );
    assert!(
        message.starts_with("only the receiving node node-township"),
        "{message}"
    );

    let state = case.ok(
        TOWNSHIP,
        EventKind::Object {
            reason: "非本镇职责".to_owned(),
        },
        china(3, 13, 17),
    );
    assert_eq!(state.status, Status::Registered);
    assert_eq!(state.holder, VILLAGE);
    assert_eq!(state.awaiting, None);
    assert_eq!(state.assigned_by, None);
    assert_eq!(state.assignment_deadline, None);
    // The acceptance limit kept running while the receiver considered it.
    assert_eq!(state.timeline.acceptance_deadline, Some(end_of(3, 17)));
    case.ok(VILLAGE, accept(), china(3, 14, 9));
}

#[test]
fn an_objection_after_the_working_day_window_is_refused() {
    let limits = Limits {
        // 调休: Saturday 7 March is a working day, so the window ends a day earlier.
        working_weekends: vec![date(3, 7)],
        ..Limits::default()
    };
    let mut case = Case::registered_with(header(), limits);
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let state = case.ok(VILLAGE, assign(TOWNSHIP, date(3, 31)), china(3, 6, 10));
    assert_eq!(state.timeline.objection_deadline, Some(end_of(3, 12)));
    let message = case.refused(
        TOWNSHIP,
        EventKind::Object {
            reason: "非本镇职责".to_owned(),
        },
        china(3, 13, 9),
    );
    assert!(message.contains("the objection period ended"), "{message}");
    // Taking it on late is still possible.
    let state = case.ok(TOWNSHIP, EventKind::AcceptAssignment {}, china(3, 13, 9));
    assert_eq!(state.holder, TOWNSHIP);
}

#[test]
fn an_objection_returns_an_accepted_case_accepted() {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    case.ok(VILLAGE, assign(TOWNSHIP, date(3, 31)), china(3, 4, 10));
    let state = case.ok(
        TOWNSHIP,
        EventKind::Object {
            reason: "非本镇职责".to_owned(),
        },
        china(3, 5, 10),
    );
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.holder, VILLAGE);
    assert_eq!(state.timeline.handling_deadline, Some(end_of(5, 2)));
}

#[test]
fn escalating_a_registered_case_restarts_the_acceptance_limit_above() {
    let mut case = Case::registered();
    let message = case.refused(VILLAGE, escalate(VILLAGE), china(3, 4, 10));
    assert!(message.contains("already holds"), "{message}");
    let state = case.ok(VILLAGE, escalate(TOWNSHIP), china(3, 4, 10));
    assert_eq!(state.status, Status::Registered);
    assert_eq!(state.holder, TOWNSHIP);
    assert_eq!(state.escalated_to, vec![TOWNSHIP.to_owned()]);
    assert_eq!(state.timeline.received_at, Some(china(3, 4, 10)));
    assert_eq!(state.timeline.acceptance_deadline, Some(end_of(3, 19)));
    assert_eq!(state.timeline.decided_at, Some(china(3, 4, 10)));
    assert_eq!(state.timeline.decided_deadline, Some(end_of(3, 17)));

    let message = case.refused(VILLAGE, accept(), china(3, 5, 10));
    assert!(
        message.contains("only the holding node node-township"),
        "{message}"
    );
    case.ok(TOWNSHIP, escalate(COUNTY), china(3, 6, 10));
    let state = case.ok(COUNTY, accept(), china(3, 7, 10));
    assert_eq!(
        state.escalated_to,
        vec![TOWNSHIP.to_owned(), COUNTY.to_owned()]
    );
    assert_eq!(state.timeline.decided_at, Some(china(3, 4, 10)));
}

#[test]
fn escalating_an_accepted_case_does_not_re_accept_it() {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let state = case.ok(VILLAGE, escalate(TOWNSHIP), china(3, 10, 10));
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.holder, TOWNSHIP);
    assert_eq!(state.timeline.accepted_at, Some(china(3, 3, 10)));
    assert_eq!(state.timeline.handling_deadline, Some(end_of(5, 2)));
    assert_eq!(state.timeline.received_at, Some(china(3, 10, 10)));
    let message = case.refused(TOWNSHIP, accept(), china(3, 11, 10));
    assert!(
        message.contains("cannot accept a case that is Accepted"),
        "{message}"
    );
    case.ok(TOWNSHIP, reply(), china(3, 20, 10));
}

fn extend(days: u32) -> EventKind {
    EventKind::Extend {
        days,
        approver: "镇长 王五".to_owned(),
        reason: "需待司法鉴定结果".to_owned(),
    }
}

#[test]
fn the_handling_limit_is_extended_once_by_at_most_thirty_days() {
    let mut case = Case::registered();
    let message = case.refused(VILLAGE, extend(10), china(3, 3, 9));
    assert!(
        message.contains("cannot extend a case that is Registered"),
        "{message}"
    );
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let message = case.refused(VILLAGE, extend(0), china(4, 20, 10));
    assert_eq!(message, "invalid days: must be 1 to 30 days, got 0");
    let message = case.refused(VILLAGE, extend(31), china(4, 20, 10));
    assert_eq!(message, "invalid days: must be 1 to 30 days, got 31");
    let message = case.refused(
        VILLAGE,
        EventKind::Extend {
            days: 30,
            approver: String::new(),
            reason: "x".to_owned(),
        },
        china(4, 20, 10),
    );
    assert_eq!(message, "invalid approver: must not be empty");

    let state = case.ok(VILLAGE, extend(30), china(4, 20, 10));
    assert_eq!(state.timeline.handling_deadline, Some(end_of(6, 1)));
    assert_eq!(state.timeline.extended_days, Some(30));
    let message = case.refused(VILLAGE, extend(5), china(4, 21, 10));
    assert!(message.contains("already extended by 30 days"), "{message}");

    let state = case.ok(VILLAGE, reply(), china(5, 20, 10));
    assert_eq!(state.timeline.replied_deadline, Some(end_of(6, 1)));
}

#[test]
fn reply_evaluation_and_closure() {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let message = case.refused(VILLAGE, close(true), china(3, 4, 10));
    assert!(
        message.contains("cannot close a case that is Accepted"),
        "{message}"
    );
    let message = case.refused(
        VILLAGE,
        EventKind::Reply {
            outcome: crate::model::ReplyOutcome::Explain,
            text: String::new(),
        },
        china(3, 4, 10),
    );
    assert_eq!(message, "invalid text: must not be empty");

    let state = case.ok(VILLAGE, reply(), china(4, 10, 10));
    assert_eq!(state.status, Status::Replied);
    assert_eq!(state.timeline.replied_at, Some(china(4, 10, 10)));
    assert_eq!(state.timeline.replied_deadline, Some(end_of(5, 2)));
    assert_eq!(state.timeline.evaluation_deadline, Some(end_of(5, 10)));
    assert!(state.reply.is_some());
    case.refused(VILLAGE, reply(), china(4, 11, 10));

    let state = case.ok(
        VILLAGE,
        EventKind::Evaluate {
            satisfaction: Satisfaction::BasicallySatisfied,
        },
        china(4, 12, 10),
    );
    assert_eq!(state.status, Status::Evaluated);
    assert_eq!(state.satisfaction, Some(Satisfaction::BasicallySatisfied));
    assert_eq!(state.timeline.evaluated_at, Some(china(4, 12, 10)));
    case.refused(
        VILLAGE,
        EventKind::Evaluate {
            satisfaction: Satisfaction::Satisfied,
        },
        china(4, 12, 11),
    );

    let state = case.ok(VILLAGE, close(true), china(4, 13, 10));
    assert_eq!(state.status, Status::Closed);
    assert_eq!(state.resolved, Some(true));
    assert_eq!(state.timeline.closed_at, Some(china(4, 13, 10)));
}

#[test]
fn a_replied_case_closes_without_evaluation() {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    case.ok(VILLAGE, reply(), china(3, 10, 10));
    let state = case.ok(VILLAGE, close(false), china(4, 15, 10));
    assert_eq!(state.status, Status::Closed);
    assert_eq!(state.resolved, Some(false));
    assert_eq!(state.satisfaction, None);
}

fn request(level: ReviewLevel) -> EventKind {
    EventKind::RequestReview {
        level,
        reason: "对处理意见不服".to_owned(),
    }
}

fn decide(level: ReviewLevel) -> EventKind {
    EventKind::DecideReview {
        level,
        outcome: ReviewOutcome::Upheld,
        text: "维持原处理意见".to_owned(),
    }
}

/// Accepted 3 March, replied 10 March, closed 12 March.
fn closed_case() -> Case {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    case.ok(VILLAGE, reply(), china(3, 10, 10));
    case.ok(VILLAGE, close(true), china(3, 12, 10));
    case
}

#[test]
fn review_then_re_review_then_final() {
    let mut case = closed_case();
    let message = case.refused(VILLAGE, request(ReviewLevel::ReReview), china(3, 13, 10));
    assert!(
        message.contains("only after a review (复查) was decided"),
        "{message}"
    );
    case.refused(
        VILLAGE,
        EventKind::RequestReview {
            level: ReviewLevel::Review,
            reason: String::new(),
        },
        china(3, 13, 10),
    );

    // The last day of the window: 10 March + 30 days = 9 April.
    let state = case.ok(VILLAGE, request(ReviewLevel::Review), china(4, 9, 22));
    assert_eq!(state.status, Status::UnderReview);
    assert_eq!(state.review_level, Some(ReviewLevel::Review));
    assert_eq!(state.timeline.review_requested_at, Some(china(4, 9, 22)));
    assert_eq!(state.timeline.review_deadline, Some(end_of(5, 9)));

    let message = case.refused(VILLAGE, decide(ReviewLevel::ReReview), china(4, 20, 10));
    assert!(
        message.contains("the pending review is Some(Review)"),
        "{message}"
    );
    let state = case.ok(VILLAGE, decide(ReviewLevel::Review), china(4, 20, 10));
    assert_eq!(state.status, Status::Closed);
    assert_eq!(
        state.review_outcome,
        Some((ReviewLevel::Review, ReviewOutcome::Upheld))
    );
    assert_eq!(state.timeline.closed_at, Some(china(4, 20, 10)));

    let message = case.refused(VILLAGE, request(ReviewLevel::Review), china(4, 21, 10));
    assert!(message.contains("ask for a re-review"), "{message}");

    // 20 April + 30 days = 20 May.
    let state = case.ok(VILLAGE, request(ReviewLevel::ReReview), china(5, 20, 10));
    assert_eq!(state.status, Status::UnderReview);
    assert_eq!(state.review_level, Some(ReviewLevel::ReReview));
    let state = case.ok(VILLAGE, decide(ReviewLevel::ReReview), china(6, 1, 10));
    assert_eq!(state.status, Status::Final);
    assert_eq!(
        state.review_outcome,
        Some((ReviewLevel::ReReview, ReviewOutcome::Upheld))
    );

    let message = case.refused(
        VILLAGE,
        EventKind::Reopen {
            reason: "当事人再次来访".to_owned(),
        },
        china(6, 2, 10),
    );
    assert!(
        message.contains("复核") && message.contains("not accepted again"),
        "{message}"
    );
    let message = case.refused(VILLAGE, request(ReviewLevel::Review), china(6, 2, 10));
    assert!(message.contains("Final"), "{message}");
    // Annotations still work on a final case.
    case.ok(
        VILLAGE,
        EventKind::Note {
            text: "当事人已息诉".to_owned(),
        },
        china(6, 3, 10),
    );
}

#[test]
fn a_review_request_after_thirty_days_is_refused() {
    let mut case = closed_case();
    let message = case.refused(VILLAGE, request(ReviewLevel::Review), china(4, 10, 0));
    assert!(
        message.contains("the window to request a review ended"),
        "{message}"
    );
}

#[test]
fn a_re_review_request_after_thirty_days_is_refused() {
    let mut case = closed_case();
    case.ok(VILLAGE, request(ReviewLevel::Review), china(3, 20, 10));
    case.ok(VILLAGE, decide(ReviewLevel::Review), china(3, 25, 10));
    let message = case.refused(VILLAGE, request(ReviewLevel::ReReview), china(4, 25, 10));
    assert!(
        message.contains("the window to request a re-review ended"),
        "{message}"
    );
}

#[test]
fn a_review_may_be_requested_before_closure() {
    let mut case = Case::registered();
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    case.ok(VILLAGE, reply(), china(3, 10, 10));
    let state = case.ok(VILLAGE, request(ReviewLevel::Review), china(3, 11, 10));
    assert_eq!(state.status, Status::UnderReview);
    let state = case.ok(VILLAGE, decide(ReviewLevel::Review), china(3, 30, 10));
    assert_eq!(state.status, Status::Closed);
    assert_eq!(state.timeline.closed_at, Some(china(3, 30, 10)));
}

#[test]
fn a_closed_case_reopens_for_a_new_round() {
    let mut case = closed_case();
    let state = case.ok(
        VILLAGE,
        EventKind::Reopen {
            reason: "协议未履行".to_owned(),
        },
        china(4, 1, 10),
    );
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.timeline.accepted_at, Some(china(3, 3, 10)));
    assert_eq!(state.timeline.handling_deadline, Some(end_of(5, 31)));
    assert_eq!(state.timeline.replied_at, None);
    assert_eq!(state.timeline.closed_at, None);
    assert_eq!(state.resolved, None);
    let state = case.ok(VILLAGE, reply(), china(4, 15, 10));
    assert_eq!(state.timeline.replied_deadline, Some(end_of(5, 31)));
}

fn mediate(result: MediationResult) -> EventKind {
    EventKind::Mediate {
        mediation_type: MediationType::People,
        mediator: "村调委会 赵六".to_owned(),
        result,
        agreement: "分两期支付".to_owned(),
        judicial_confirmation: JudicialConfirmation::NotApplied,
    }
}

#[test]
fn mediation_happens_inside_handling() {
    let mut case = Case::registered();
    let message = case.refused(
        VILLAGE,
        mediate(MediationResult::Agreement),
        china(3, 2, 10),
    );
    assert!(
        message.contains("while the case is being handled"),
        "{message}"
    );
    case.ok(VILLAGE, accept(), china(3, 3, 10));
    let state = case.ok(
        VILLAGE,
        mediate(MediationResult::Agreement),
        china(3, 5, 10),
    );
    let agreement = case.last_id();
    assert_eq!(state.mediations.len(), 1);
    assert_eq!(state.mediations[0].event, agreement);
    case.ok(
        VILLAGE,
        mediate(MediationResult::NoAgreement),
        china(3, 6, 10),
    );
    let failed = case.last_id();

    let message = case.refused(
        VILLAGE,
        EventKind::UpdateJudicialConfirmation {
            mediation: failed,
            status: JudicialConfirmation::Applied,
        },
        china(3, 7, 10),
    );
    assert!(message.contains("reached no agreement"), "{message}");
    let message = case.refused(
        VILLAGE,
        EventKind::UpdateJudicialConfirmation {
            mediation: "nonexistent".to_owned(),
            status: JudicialConfirmation::Applied,
        },
        china(3, 7, 10),
    );
    assert!(message.contains("no mediation nonexistent"), "{message}");
    // The court's confirmation is recorded by the holder, not by a tier above it.
    let message = case.refused(
        COUNTY,
        EventKind::UpdateJudicialConfirmation {
            mediation: agreement.clone(),
            status: JudicialConfirmation::Confirmed,
        },
        china(3, 20, 10),
    );
    assert!(
        message.contains("the holder records judicial confirmation"),
        "{message}"
    );
    let state = case.ok(
        VILLAGE,
        EventKind::UpdateJudicialConfirmation {
            mediation: agreement,
            status: JudicialConfirmation::Confirmed,
        },
        china(3, 20, 10),
    );
    assert_eq!(
        state.mediations[0].judicial_confirmation,
        JudicialConfirmation::Confirmed
    );
    assert_eq!(
        state.mediations[1].judicial_confirmation,
        JudicialConfirmation::NotApplied
    );
}

#[test]
fn annotations_are_checked() {
    let mut case = Case::registered();
    let message = case.refused(
        VILLAGE,
        EventKind::LinkRepeat {
            earlier: header().number,
        },
        china(3, 3, 10),
    );
    assert_eq!(message, "invalid earlier: a case cannot repeat itself");
    let state = case.ok(
        VILLAGE,
        EventKind::LinkRepeat {
            earlier: "430702001001-2025-000077".to_owned(),
        },
        china(3, 3, 10),
    );
    assert_eq!(state.repeat_of.as_deref(), Some("430702001001-2025-000077"));

    assert_eq!(
        case.refused(
            VILLAGE,
            EventKind::Note {
                text: String::new()
            },
            china(3, 3, 11)
        ),
        "invalid text: must not be empty"
    );
    let message = case.refused(
        VILLAGE,
        EventKind::Resolve {
            chosen: "register".to_owned(),
            note: String::new(),
            overrides: Vec::new(),
        },
        china(3, 3, 11),
    );
    assert!(
        message.contains("there is no conflict to resolve"),
        "{message}"
    );
    let message = case.refused(
        VILLAGE,
        EventKind::Register {
            header: None,
            policy_version: 0,
        },
        china(3, 3, 11),
    );
    assert!(message.contains("already registered"), "{message}");

    for (amendment, expected) in [
        (HeaderAmendment::Headcount(0), "invalid headcount"),
        (HeaderAmendment::Summary(String::new()), "invalid summary"),
        (
            HeaderAmendment::Petitioners(Vec::new()),
            "at least one petitioner",
        ),
    ] {
        let message = case.refused(
            VILLAGE,
            EventKind::AmendHeader { amendment },
            china(3, 3, 11),
        );
        assert!(message.contains(expected), "{message}");
    }
    let mut location = header().location;
    location.region_code = "12345".to_owned();
    let message = case.refused(
        VILLAGE,
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Location(location),
        },
        china(3, 3, 11),
    );
    assert!(message.contains("administrative code"), "{message}");

    // The table lets only the holder correct the record, not the tier above it.
    let message = case.refused(
        TOWNSHIP,
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Headcount(7),
        },
        china(3, 3, 12),
    );
    assert!(
        message.contains("the holder corrects the record"),
        "{message}"
    );
    let state = case.ok(
        VILLAGE,
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Headcount(7),
        },
        china(3, 3, 12),
    );
    assert_eq!(case.document.header().expect("header").headcount, 7);
    assert_eq!(state.status, Status::Registered);
}

#[test]
fn an_event_id_is_used_once() {
    let mut case = Case::registered();
    let duplicate = NewEvent {
        id: "register".to_owned(),
        kind: EventKind::Note {
            text: "重复".to_owned(),
        },
        at: china(3, 3, 10),
        node: VILLAGE.to_owned(),
        operator: "王五".to_owned(),
        hlc: Default::default(),
        imported: None,
        backdated_reason: None,
    };
    let message = match crate::appending::append(
        &mut case.document,
        duplicate,
        &case.limits,
        &signer(),
        &Tree,
    ) {
        Ok(_) => panic!("a duplicate id should be refused"),
        Err(error) => error.to_string(),
    };
    assert!(message.contains("already in this case"), "{message}");
}

#[test]
fn check_alone_judges_state_rules() {
    let case = Case::registered();
    let event = new_event("x", VILLAGE, accept(), china(3, 3, 10));
    assert!(check(&case.state, &event, &case.limits).is_ok());
    let stranger = new_event("y", COUNTY, accept(), china(3, 3, 10));
    assert!(matches!(
        check(&case.state, &stranger, &case.limits),
        Err(CaseError::NotHolder { .. })
    ));
}

#[test]
fn the_state_returned_by_append_is_the_derived_state() {
    let mut case = Case::registered();
    case.ok(
        VILLAGE,
        accept(),
        china(3, 3, 10) + chrono::TimeDelta::nanoseconds(123_456_789),
    );
    case.ok(VILLAGE, mediate(MediationResult::Ongoing), china(3, 4, 10));
    case.ok(VILLAGE, reply(), china(3, 10, 10));
    assert_eq!(case.state, case.derived());
    assert_eq!(case.state.event_count, 4);
    assert!(case.state.invalid.is_empty());
    // Sub-millisecond precision was dropped before the event was checked and stored.
    let accepted_at = case.state.timeline.accepted_at.expect("accepted");
    assert_eq!(accepted_at.timestamp_subsec_nanos(), 123_000_000);
}

fn take_over() -> EventKind {
    EventKind::TakeOver {
        reason: "群体性欠薪，县级提级办理".to_owned(),
    }
}

#[test]
fn the_county_takes_over_a_village_case_and_the_village_no_longer_replies() {
    let mut case = Case::registered();
    let accepted = case.ok(VILLAGE, accept(), china(3, 3, 10));
    let handling_deadline = accepted.timeline.handling_deadline;

    let state = case.ok(COUNTY, take_over(), china(3, 10, 10));
    assert_eq!(state.holder, COUNTY);
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.timeline.received_at, Some(china(3, 10, 10)));
    // Handling continues above: the 60-day limit keeps running from the village's acceptance.
    assert_eq!(state.timeline.handling_deadline, handling_deadline);
    assert!(state.escalated_to.is_empty());
    assert!(state.invalid.is_empty() && state.conflict.is_none());
    assert_eq!(case.derived(), state);

    let message = case.refused(VILLAGE, reply(), china(3, 11, 10));
    assert!(
        message.contains("only the holding node node-county may reply to"),
        "{message}"
    );
    let state = case.ok(COUNTY, reply(), china(3, 11, 10));
    assert_eq!(state.status, Status::Replied);
}

#[test]
fn only_a_tier_above_the_holder_takes_over() {
    let mut case = Case::registered();
    let message = case.refused(SIBLING, take_over(), china(3, 3, 10));
    assert!(
        message.contains("node node-sibling-village may not take_over"),
        "{message}"
    );
    assert!(message.contains("提级办理"), "{message}");
    let message = case.refused(VILLAGE, take_over(), china(3, 3, 10));
    assert!(message.contains("already holds the case"), "{message}");

    // Once the township holds it, the village below is no longer above the holder.
    case.ok(TOWNSHIP, take_over(), china(3, 3, 11));
    let message = case.refused(VILLAGE, take_over(), china(3, 3, 12));
    assert!(message.contains("may not take_over"), "{message}");
    let state = case.ok(COUNTY, take_over(), china(3, 3, 12));
    assert_eq!(state.holder, COUNTY);
}

#[test]
fn a_registered_case_taken_over_gives_the_new_holder_its_own_acceptance_period() {
    let mut case = Case::registered();
    let state = case.ok(TOWNSHIP, take_over(), china(3, 4, 10));
    assert_eq!(state.status, Status::Registered);
    assert_eq!(state.holder, TOWNSHIP);
    assert_eq!(state.timeline.acceptance_deadline, Some(end_of(3, 19)));
    // The village decided nothing: the decision is the township's own, judged against the
    // period it was given.
    assert_eq!(state.timeline.decided_at, None);
    let state = case.ok(TOWNSHIP, accept(), china(3, 5, 10));
    assert_eq!(state.timeline.decided_at, Some(china(3, 5, 10)));
    assert_eq!(state.timeline.decided_deadline, Some(end_of(3, 19)));
}

#[test]
fn a_take_over_needs_a_reason_and_an_open_case() {
    let mut case = Case::registered();
    let message = case.refused(
        COUNTY,
        EventKind::TakeOver {
            reason: " ".to_owned(),
        },
        china(3, 3, 10),
    );
    assert_eq!(message, "invalid reason: must not be empty");

    case.ok(VILLAGE, assign(SIBLING, date(3, 31)), china(3, 3, 10));
    let message = case.refused(COUNTY, take_over(), china(3, 3, 11));
    assert!(message.contains("AwaitingReceiver"), "{message}");
    case.ok(SIBLING, EventKind::AcceptAssignment {}, china(3, 3, 12));
    case.ok(SIBLING, reply(), china(3, 4, 10));
    case.ok(SIBLING, close(true), china(3, 4, 11));
    let message = case.refused(COUNTY, take_over(), china(3, 5, 10));
    assert!(
        message.contains("cannot take over a case that is Closed"),
        "{message}"
    );
}

#[test]
fn a_take_over_concurrent_with_a_close_below_is_a_conflict() {
    let mut village = Case::registered();
    village.ok(VILLAGE, accept(), china(3, 3, 10));
    village.ok(VILLAGE, reply(), china(3, 4, 10));
    let mut township = village.fork(&ACTOR_B, "b");
    village.ok(VILLAGE, close(true), china(3, 5, 10));
    township.ok(TOWNSHIP, take_over(), china(3, 5, 11));
    village.merge_from(&mut township);
    township.merge_from(&mut village);
    assert_eq!(village.state, township.state);
    let conflict = village.state.conflict.as_ref().expect("a fork is reported");
    assert_eq!(conflict.branches.len(), 2);
}

/// The authority table lets a tier above the holder request and decide a review and reopen; the
/// lifecycle used to refuse anyone but the holder, so the API accepted (with the hierarchy) what
/// derive then skipped, and the replicas' states disagreed with the events they held.
#[test]
fn a_tier_above_the_holder_decides_the_review_and_reopens_and_derive_agrees() {
    let mut case = closed_case();
    case.ok(TOWNSHIP, request(ReviewLevel::Review), china(3, 13, 10));
    let state = case.ok(TOWNSHIP, decide(ReviewLevel::Review), china(3, 20, 10));
    assert_eq!(state.status, Status::Closed);
    assert_eq!(state.holder, VILLAGE, "a review decision leaves the holder");
    assert_eq!(case.derived(), state, "derive keeps what append accepted");
    let state = case.ok(
        COUNTY,
        EventKind::Reopen {
            reason: "复查认定事实不清".to_owned(),
        },
        china(3, 21, 10),
    );
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(case.derived(), state, "derive keeps what append accepted");
    // A sibling village is not above the holder: the table refuses it.
    let message = case.refused(SIBLING, reply(), china(3, 22, 10));
    assert!(message.contains("holding node"), "{message}");
}
