//! The routing rules, one by one.

use fengqiao_case::model::NodeId;

use super::support::{OFFICES, describe, node_id, tree_roster};
use crate::routing::{
    CaseRouting, PeerRelation, RoutingDecision, admit_new_case_from, normalise_office_name,
    respondent_is_office, route,
};

const COUNTY: usize = 0;
const TOWNSHIP_1: usize = 1;
const TOWNSHIP_2: usize = 2;
const VILLAGE_11: usize = 3;
const VILLAGE_12: usize = 4;

fn node(office: usize) -> NodeId {
    node_id(office).to_owned()
}

/// A case located in village 11, registered and held there, about a company.
fn village_case() -> CaseRouting {
    CaseRouting {
        case: "430702001001-2026-000001".to_owned(),
        region_code: OFFICES[VILLAGE_11].region_code.to_owned(),
        respondent: "某建筑公司".to_owned(),
        registered_by: node(VILLAGE_11),
        holder: node(VILLAGE_11),
        awaiting: None,
        escalated_to: Vec::new(),
        sent_to: Vec::new(),
        directive_targets: Vec::new(),
    }
}

/// The same case as the township sees it after the village escalated it.
fn escalated_to_township() -> CaseRouting {
    CaseRouting {
        holder: node(TOWNSHIP_1),
        escalated_to: vec![node(TOWNSHIP_1)],
        ..village_case()
    }
}

fn decision(case: &CaseRouting, peer: usize, relation: PeerRelation) -> RoutingDecision {
    route(case, &describe(peer, relation), &tree_roster())
}

#[test]
fn up_every_case_goes_to_the_parent() {
    assert_eq!(
        decision(&village_case(), TOWNSHIP_1, PeerRelation::Parent),
        RoutingDecision::Send
    );
    assert_eq!(
        decision(&escalated_to_township(), COUNTY, PeerRelation::Parent),
        RoutingDecision::Send
    );
    // A case the township registered itself, located anywhere in its jurisdiction.
    let township_case = CaseRouting {
        registered_by: node(TOWNSHIP_1),
        holder: node(TOWNSHIP_1),
        region_code: OFFICES[TOWNSHIP_1].region_code.to_owned(),
        ..village_case()
    };
    assert_eq!(
        decision(&township_case, COUNTY, PeerRelation::Parent),
        RoutingDecision::Send
    );
}

#[test]
fn down_a_case_registered_in_the_subtree_goes_to_that_child() {
    // The county sends the village's case to township 1: village 11 is in its subtree.
    assert_eq!(
        decision(&village_case(), TOWNSHIP_1, PeerRelation::Child),
        RoutingDecision::Send
    );
    // The township sends it back down to the village that registered it (its later edits).
    assert_eq!(
        decision(&escalated_to_township(), VILLAGE_11, PeerRelation::Child),
        RoutingDecision::Send
    );
}

#[test]
fn down_a_sibling_village_never_receives_the_case() {
    assert_eq!(
        decision(&village_case(), VILLAGE_12, PeerRelation::Child),
        RoutingDecision::WithheldOutsideChildRegion
    );
    // Not even when an event names the sibling: the location decides first.
    let misassigned = CaseRouting {
        awaiting: Some(node(VILLAGE_12)),
        directive_targets: vec![node(VILLAGE_12)],
        ..escalated_to_township()
    };
    assert_eq!(
        decision(&misassigned, VILLAGE_12, PeerRelation::Child),
        RoutingDecision::WithheldOutsideChildRegion
    );
    // Nor the other township's subtree.
    assert_eq!(
        decision(&village_case(), TOWNSHIP_2, PeerRelation::Child),
        RoutingDecision::WithheldOutsideChildRegion
    );
}

#[test]
fn down_a_case_located_in_the_child_region_goes_only_while_the_subtree_takes_part() {
    // Registered at the township, located in village 11, the village not involved.
    let township_case = CaseRouting {
        registered_by: node(TOWNSHIP_1),
        holder: node(TOWNSHIP_1),
        ..village_case()
    };
    assert_eq!(
        decision(&township_case, VILLAGE_11, PeerRelation::Child),
        RoutingDecision::WithheldChildNotParticipating
    );
    for involved in [
        CaseRouting {
            awaiting: Some(node(VILLAGE_11)),
            ..township_case.clone()
        },
        CaseRouting {
            holder: node(VILLAGE_11),
            ..township_case.clone()
        },
        CaseRouting {
            directive_targets: vec![node(VILLAGE_11)],
            ..township_case.clone()
        },
        CaseRouting {
            escalated_to: vec![node(VILLAGE_11)],
            ..township_case.clone()
        },
        // Assigned to the village once, and handed back (an objection, or the village
        // escalated it up again): the village's copy is kept current (N2).
        CaseRouting {
            sent_to: vec![node(VILLAGE_11)],
            ..township_case.clone()
        },
    ] {
        assert_eq!(
            decision(&involved, VILLAGE_11, PeerRelation::Child),
            RoutingDecision::Send,
            "{involved:?}"
        );
    }
    // From the county: a case assigned to village 11 reaches township 1 (its subtree holds it).
    let county_case = CaseRouting {
        registered_by: node(COUNTY),
        holder: node(COUNTY),
        awaiting: Some(node(VILLAGE_11)),
        ..village_case()
    };
    assert_eq!(
        decision(&county_case, TOWNSHIP_1, PeerRelation::Child),
        RoutingDecision::Send
    );
    let county_only = CaseRouting {
        awaiting: None,
        ..county_case
    };
    assert_eq!(
        decision(&county_only, TOWNSHIP_1, PeerRelation::Child),
        RoutingDecision::WithheldChildNotParticipating
    );
}

#[test]
fn a_case_about_the_receiving_office_is_never_sent_to_it() {
    let about_township = CaseRouting {
        respondent: "芦荻山乡人民政府".to_owned(),
        ..village_case()
    };
    assert_eq!(
        decision(&about_township, TOWNSHIP_1, PeerRelation::Parent),
        RoutingDecision::WithheldRespondentIsPeer
    );
    // Its cadres, an alias, spacing and full-width forms: all the same office.
    for respondent in [
        "芦荻山乡工作人员王某",
        " 芦荻山乡 政府 ",
        "芦荻山乡人民政府（党政办）",
    ] {
        let case = CaseRouting {
            respondent: respondent.to_owned(),
            ..village_case()
        };
        assert_eq!(
            decision(&case, TOWNSHIP_1, PeerRelation::Parent),
            RoutingDecision::WithheldRespondentIsPeer,
            "{respondent}"
        );
    }
    // Down as well: a complaint about the village is not sent to the village.
    let about_village = CaseRouting {
        respondent: "芦荻山村村委会".to_owned(),
        ..escalated_to_township()
    };
    assert_eq!(
        decision(&about_village, VILLAGE_11, PeerRelation::Child),
        RoutingDecision::WithheldRespondentIsPeer
    );
    // Another office's name does not withhold.
    let about_other = CaseRouting {
        respondent: "丹洲乡人民政府".to_owned(),
        ..village_case()
    };
    assert_eq!(
        decision(&about_other, TOWNSHIP_1, PeerRelation::Parent),
        RoutingDecision::Send
    );
}

#[test]
fn an_empty_respondent_or_a_one_character_name_withholds_nothing() {
    let mut peer = describe(TOWNSHIP_1, PeerRelation::Parent);
    assert!(!respondent_is_office("", &peer));
    peer.aliases = vec!["乡".to_owned()];
    peer.name = "乡".to_owned();
    assert!(!respondent_is_office("某乡企业", &peer));
}

#[test]
fn normalising_folds_width_space_and_case() {
    assert_eq!(
        normalise_office_name(" ＡＢＣ 镇\u{3000}政府 "),
        "abc镇政府"
    );
    assert_eq!(
        normalise_office_name("芦荻山乡·人民政府（办）"),
        "芦荻山乡人民政府办"
    );
}

#[test]
fn routing_is_built_from_header_and_state() {
    use super::support::{header, instant, new_event};
    use fengqiao_case::model::EventKind;
    let (document, _, state) = fengqiao_case::appending::register(
        header("430702001001-2026-000009", "430702001001", "某公司"),
        new_event(
            "r",
            &node(VILLAGE_11),
            EventKind::Register {
                header: None,
                policy_version: 0,
            },
            instant(2, 9),
        ),
        &super::support::actor_of(VILLAGE_11),
        &fengqiao_case::policy::PolicyBook::default(),
        &super::support::signer_of(VILLAGE_11),
    )
    .expect("registers");
    let routing = CaseRouting::from_case(&document.header().expect("header"), &state);
    assert_eq!(routing.region_code, "430702001001");
    assert_eq!(routing.registered_by, node(VILLAGE_11));
    assert_eq!(routing.holder, node(VILLAGE_11));
    assert_eq!(routing.respondent, "某公司");
}

#[test]
fn routing_from_a_summary_is_the_derived_routing_or_nothing() {
    use super::support::{header, instant, new_event};
    use fengqiao_case::model::{DirectiveState, DirectiveStatus, EventKind};
    use fengqiao_case::summary::summarize;
    let header = header("430702001001-2026-000010", "430702001001", "某公司");
    let (_, _, registered) = fengqiao_case::appending::register(
        header.clone(),
        new_event(
            "r",
            &node(VILLAGE_11),
            EventKind::Register {
                header: None,
                policy_version: 0,
            },
            instant(2, 9),
        ),
        &super::support::actor_of(VILLAGE_11),
        &fengqiao_case::policy::PolicyBook::default(),
        &super::support::signer_of(VILLAGE_11),
    )
    .expect("registers");
    let mut with_directive = registered.clone();
    with_directive.directives.push(DirectiveState {
        id: "d1".to_owned(),
        issuer_node: node(COUNTY),
        issued_by: "督办员".to_owned(),
        issued_at: instant(3, 9),
        target_node: node(VILLAGE_12),
        requirement: "限期化解".to_owned(),
        due: instant(20, 9),
        listed: false,
        status: DirectiveStatus::Issued,
        reports: Vec::new(),
        crossed_off_at: None,
    });
    for state in [&registered, &with_directive] {
        assert_eq!(
            CaseRouting::from_summary(&summarize(&header, state)),
            Some(CaseRouting::from_case(&header, state))
        );
    }
    assert_eq!(
        CaseRouting::from_summary(&summarize(&header, &with_directive))
            .map(|routing| routing.directive_targets),
        Some(vec![node(VILLAGE_12)])
    );

    // The summary keeps escalations and assignments as flags only: the caller must derive.
    let mut escalated = registered.clone();
    escalated.escalated_to = vec![node(TOWNSHIP_1)];
    let mut awaiting = registered.clone();
    awaiting.awaiting = Some(node(VILLAGE_12));
    let mut assigned_earlier = registered.clone();
    assigned_earlier.assigned_by = Some(node(TOWNSHIP_1));
    // Sent down once, the receiver objected: `assigned_by` and `awaiting` are clear again.
    let mut objected = registered;
    objected.sent_to = vec![node(VILLAGE_12)];
    for state in [&escalated, &awaiting, &assigned_earlier, &objected] {
        assert_eq!(CaseRouting::from_summary(&summarize(&header, state)), None);
    }
}

#[test]
fn a_new_case_is_admitted_from_the_parent_and_from_a_child_only_inside_its_region() {
    let case = village_case();
    assert!(admit_new_case_from(&case, &describe(TOWNSHIP_1, PeerRelation::Parent)).is_ok());
    assert!(admit_new_case_from(&case, &describe(VILLAGE_11, PeerRelation::Child)).is_ok());
    let planted = admit_new_case_from(&case, &describe(VILLAGE_12, PeerRelation::Child))
        .expect_err("a sibling village cannot plant a case located in village 11");
    assert!(planted.contains("cannot introduce"), "{planted}");
}
