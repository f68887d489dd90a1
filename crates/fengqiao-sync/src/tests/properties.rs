//! Properties of the whole federation, every replica checking what it receives.
//!
//! Random edits at random offices, with links cut and healed, frames duplicated and reordered
//! and connections dropped, converge once links heal: every office that routing says should hold
//! a case holds it with identical heads and derived state, no village holds a sibling's case, and
//! no office receives a complaint about itself.
//!
//! Random lifecycle work on cases every holder keeps whole, with partitions and heals, concurrent
//! take-overs and resolves included, ends in agreement: every replica of a case holds the same
//! events and derives the same state, every disagreement is a visible conflict or settled by a
//! standing resolve, and nothing an honest office made is quarantined anywhere.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use fengqiao_case::appending::append;
use fengqiao_case::authority::authorize;
use fengqiao_case::lifecycle::{NewEvent, check_with_header};
use fengqiao_case::model::{
    CaseHeader, CaseState, Event, EventKind, ReplyOutcome, Satisfaction, Tier,
};
use proptest::prelude::*;

use super::harness::{Faults, Federation};
use super::support::{
    OFFICES, TreeHierarchy, describe, instant, new_event, node_id, office_index, register_at,
};
use crate::replica::Replica;
use crate::routing::{PeerRelation, respondent_is_office, route};

#[derive(Debug, Clone)]
enum Step {
    Register {
        office: usize,
        place: usize,
        respondent: usize,
    },
    /// A case located in the office's own region, about an outsider: every office that ever
    /// holds it (the office and those above) keeps receiving all of it.
    RegisterOwn {
        office: usize,
    },
    Append {
        office: usize,
        case: usize,
        choice: usize,
        hours: i64,
    },
    /// An append that chooses among the transitions the office may make, if any.
    Transition {
        office: usize,
        case: usize,
        choice: usize,
        hours: i64,
    },
    /// An append that chooses among the resolves the office may make, if any.
    Resolve {
        office: usize,
        case: usize,
        choice: usize,
        hours: i64,
    },
    Cut {
        link: usize,
    },
    Heal {
        link: usize,
    },
    DropConnection {
        link: usize,
    },
    Run {
        rounds: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..7usize, any::<usize>(), 0..8usize).prop_map(|(office, place, respondent)| Step::Register { office, place, respondent }),
        6 => (0..7usize, any::<usize>(), any::<usize>(), 1..48i64).prop_map(|(office, case, choice, hours)| Step::Append { office, case, choice, hours }),
        1 => (0..6usize).prop_map(|link| Step::Cut { link }),
        1 => (0..6usize).prop_map(|link| Step::Heal { link }),
        1 => (0..6usize).prop_map(|link| Step::DropConnection { link }),
        3 => (1..6usize).prop_map(|rounds| Step::Run { rounds }),
    ]
}

/// Respondents: outsiders mostly, and sometimes one of the offices by one of its names.
fn respondent(choice: usize) -> String {
    match choice {
        0 => "芦荻山乡人民政府".to_owned(),
        1 => "丹洲乡政府工作人员".to_owned(),
        2 => "新河村村委会".to_owned(),
        3 => "武陵区住建局".to_owned(),
        _ => "某建筑公司".to_owned(),
    }
}

/// Villages in `office`'s jurisdiction (itself, for a village) plus a township's own code.
fn places(office: usize) -> Vec<&'static str> {
    let code = OFFICES[office].region_code;
    let mut places: Vec<&'static str> = OFFICES
        .iter()
        .filter(|candidate| {
            candidate.tier == Tier::Village && candidate.region_code.starts_with(code)
        })
        .map(|candidate| candidate.region_code)
        .collect();
    if OFFICES[office].tier == Tier::Township {
        places.push(code);
    }
    places
}

/// Events `office` might append now; the lifecycle decides which are allowed.
fn candidates(office: usize, state: &CaseState, at: DateTime<Utc>, id: &str) -> Vec<NewEvent> {
    let me = node_id(office);
    let children: Vec<&str> = (0..OFFICES.len())
        .filter(|candidate| OFFICES[*candidate].parent == Some(office))
        .map(node_id)
        .collect();
    let mut kinds = vec![
        EventKind::Accept {},
        EventKind::Reply {
            outcome: ReplyOutcome::Explain,
            text: "答复".into(),
        },
        EventKind::Evaluate {
            satisfaction: Satisfaction::Satisfied,
        },
        EventKind::Close {
            resolved: true,
            note: String::new(),
        },
        EventKind::Reopen {
            reason: "重新办理".into(),
        },
        EventKind::TakeOver {
            reason: "提级办理".into(),
        },
        EventKind::AcceptAssignment {},
        EventKind::Object {
            reason: "非本级职责".into(),
        },
        EventKind::Note {
            text: format!("{me} 跟进"),
        },
    ];
    if let Some(parent) = OFFICES[office].parent {
        kinds.push(EventKind::Escalate {
            to_node: node_id(parent).into(),
            reason: "上报".into(),
        });
    }
    for child in &children {
        kinds.push(EventKind::Assign {
            to_node: (*child).into(),
            required_result: "办结".into(),
            deadline: fengqiao_case::deadlines::local_date(at) + TimeDelta::days(10),
        });
    }
    kinds.push(EventKind::IssueDirective {
        directive: format!("D-{id}"),
        target_node: state.holder.clone(),
        requirement: "限期办理".into(),
        due: fengqiao_case::deadlines::local_date(at) + TimeDelta::days(7),
        listed: false,
    });
    for directive in &state.directives {
        kinds.push(EventKind::AcknowledgeDirective {
            directive: directive.id.clone(),
        });
        kinds.push(EventKind::ReportDirective {
            directive: directive.id.clone(),
            text: "已办".into(),
        });
        kinds.push(EventKind::CrossOffDirective {
            directive: directive.id.clone(),
        });
    }
    if let Some(conflict) = &state.conflict {
        for branch in &conflict.branches {
            kinds.push(EventKind::Resolve {
                chosen: branch.first.clone(),
                note: "决定".into(),
                overrides: Vec::new(),
            });
        }
    }
    kinds
        .into_iter()
        .map(|kind| new_event(id, me, kind, at))
        .collect()
}

fn apply_step(
    federation: &mut Federation,
    step: Step,
    next_case: &mut u32,
    next_event: &mut u32,
    hours_passed: &mut i64,
) {
    match step {
        Step::Register {
            office,
            place,
            respondent: choice,
        } => {
            let places = places(office);
            let region = places[place % places.len()];
            *next_case += 1;
            let number = format!("{region}-2026-{next_case:06}");
            register_at(
                &mut federation.replicas[office],
                office,
                &number,
                region,
                &respondent(choice),
                instant(2, 9),
            );
            federation.local_change(office);
        }
        Step::RegisterOwn { office } => {
            let region = OFFICES[office].region_code;
            *next_case += 1;
            let number = format!("{region}-2026-{next_case:06}");
            register_at(
                &mut federation.replicas[office],
                office,
                &number,
                region,
                "某建筑公司",
                instant(2, 9),
            );
            federation.local_change(office);
        }
        Step::Append {
            office,
            case,
            choice,
            hours,
        }
        | Step::Transition {
            office,
            case,
            choice,
            hours,
        }
        | Step::Resolve {
            office,
            case,
            choice,
            hours,
        } => {
            let wanted = |kind: &EventKind| match step {
                Step::Transition { .. } => kind.is_transition(),
                Step::Resolve { .. } => matches!(kind, EventKind::Resolve { .. }),
                _ => true,
            };
            let replica = &mut federation.replicas[office];
            let mut held: Vec<String> = replica.case_ids().cloned().collect();
            if held.is_empty() {
                return;
            }
            held.sort();
            let number = held[case % held.len()].clone();
            *hours_passed += hours;
            let at = instant(2, 9) + TimeDelta::hours(*hours_passed);
            *next_event += 1;
            let id = format!("e{next_event}");
            let Some(state) = replica.state(&number) else {
                return;
            };
            let Some(header) = replica
                .document(&number)
                .and_then(|document| document.header().ok())
            else {
                return;
            };
            let Some(limits) = replica
                .document(&number)
                .and_then(|document| document.events().ok())
                .and_then(|events| replica.policies().limits_for_case(&events).ok().cloned())
            else {
                return;
            };
            let valid: Vec<NewEvent> = candidates(office, &state, at, &id)
                .into_iter()
                .filter(|event| check_with_header(&header, &state, event, &limits).is_ok())
                .filter(|event| authorize(&state, &event.kind, &event.node, &TreeHierarchy).is_ok())
                .filter(|event| wanted(&event.kind))
                .collect();
            if valid.is_empty() {
                return;
            }
            let chosen = valid[choice % valid.len()].clone();
            let signer = super::support::signer_of(office);
            let appended = replica.update(&number, |document| {
                append(document, chosen, &limits, &signer, &TreeHierarchy)
            });
            assert!(
                matches!(appended, Some(Ok(_))),
                "a checked event appends: {appended:?}"
            );
            federation.local_change(office);
        }
        Step::Cut { link } => federation.cut(link % federation.link_count()),
        Step::Heal { link } => federation.heal(link % federation.link_count()),
        Step::DropConnection { link } => federation.drop_connection(link % federation.link_count()),
        Step::Run { rounds } => {
            for _ in 0..rounds {
                federation.round();
            }
        }
    }
}

/// Whenever routing lets a case cross a link, the receiving end holds everything the sending end
/// has of it; when it may cross both ways, both ends have identical heads and derived state.
fn check_converged(federation: &mut Federation) -> Result<(), TestCaseError> {
    for (parent, child) in federation.link_ends() {
        for (from, to, relation) in [
            (child, parent, PeerRelation::Parent),
            (parent, child, PeerRelation::Child),
        ] {
            let mut cases: Vec<String> = federation.replicas[from].case_ids().cloned().collect();
            cases.sort();
            for case in cases {
                if !allowed(federation, from, to, relation, &case) {
                    continue;
                }
                let ours = federation.replicas[from]
                    .heads(&case)
                    .expect("memory")
                    .expect("held");
                let received = federation.replicas[to]
                    .has_heads(&case, &ours)
                    .expect("memory")
                    && federation.replicas[to]
                        .heads(&case)
                        .expect("memory")
                        .is_some();
                prop_assert!(
                    received,
                    "{} should have everything {} has of {}",
                    node_id(to),
                    node_id(from),
                    case
                );
                let reverse = match relation {
                    PeerRelation::Parent => PeerRelation::Child,
                    PeerRelation::Child => PeerRelation::Parent,
                };
                if allowed(federation, to, from, reverse, &case) {
                    let theirs = federation.replicas[to]
                        .heads(&case)
                        .expect("memory")
                        .expect("held");
                    prop_assert_eq!(
                        &ours,
                        &theirs,
                        "{} and {} differ on {}",
                        node_id(from),
                        node_id(to),
                        case
                    );
                    prop_assert_eq!(
                        federation.replicas[from].state(&case),
                        federation.replicas[to].state(&case)
                    );
                }
            }
        }
    }
    Ok(())
}

fn allowed(
    federation: &mut Federation,
    from: usize,
    to: usize,
    relation: PeerRelation,
    case: &str,
) -> bool {
    let routing = federation.replicas[from]
        .routing(case)
        .expect("memory")
        .expect("held");
    route(
        &routing,
        &describe(to, relation),
        federation.replicas[from].roster(),
    )
    .allows()
}

fn check_confidentiality(federation: &mut Federation) -> Result<(), TestCaseError> {
    for (office, description) in OFFICES.iter().enumerate() {
        let me = node_id(office);
        let cases: Vec<String> = federation.replicas[office].case_ids().cloned().collect();
        for case in cases {
            let routing = federation.replicas[office]
                .routing(&case)
                .expect("memory")
                .expect("held");
            if description.tier == Tier::Village {
                prop_assert!(
                    routing.region_code.starts_with(description.region_code),
                    "{} holds {} located in {}",
                    me,
                    case,
                    routing.region_code
                );
            }
            if routing.registered_by != me {
                prop_assert!(
                    !respondent_is_office(
                        &routing.respondent,
                        &describe(office, PeerRelation::Parent)
                    ),
                    "{} received {} about itself ({})",
                    me,
                    case,
                    routing.respondent
                );
            }
            prop_assert!(office_index(&routing.registered_by).is_some());
        }
    }
    Ok(())
}

/// Every case climbs from the office that registered it to the county, stopping below the first
/// office it is about: the property is not satisfied by cases that never moved.
fn check_cases_reach_every_office_above(federation: &mut Federation) -> Result<(), TestCaseError> {
    for (office, description) in OFFICES.iter().enumerate() {
        let cases: Vec<String> = federation.replicas[office].case_ids().cloned().collect();
        for case in cases {
            let routing = federation.replicas[office]
                .routing(&case)
                .expect("memory")
                .expect("held");
            if routing.registered_by != node_id(office) {
                continue;
            }
            let mut withheld = false;
            let mut above = description.parent;
            while let Some(receiver) = above {
                withheld |= respondent_is_office(
                    &routing.respondent,
                    &describe(receiver, PeerRelation::Parent),
                );
                let holds = federation.replicas[receiver]
                    .heads(&case)
                    .expect("memory")
                    .is_some();
                prop_assert_eq!(
                    holds,
                    !withheld,
                    "{} registered at {} about {:?}: held at {}",
                    case,
                    node_id(office),
                    routing.respondent,
                    node_id(receiver)
                );
                above = OFFICES[receiver].parent;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_edits_and_cuts_converge_once_links_heal(
        steps in proptest::collection::vec(step(), 1..60),
        duplicate in prop_oneof![Just(0.0), Just(0.2)],
        reorder in prop_oneof![Just(0.0), Just(0.3)],
        loss in prop_oneof![3 => Just(0.0), 1 => Just(0.02)],
        seed in any::<u64>(),
    ) {
        let mut federation = Federation::new(&[0, 1, 2, 3, 4, 5, 6], seed);
        federation.faults = Faults { loss, duplicate, reorder };
        let (mut next_case, mut next_event, mut hours) = (0, 0, 0);
        for step in steps {
            apply_step(&mut federation, step, &mut next_case, &mut next_event, &mut hours);
        }
        federation.faults.loss = 0.0;
        federation.heal_all();
        federation.run_until_quiet(20_000);
        prop_assert!(federation.failures.is_empty(), "{:?}", federation.failures);
        for replica in &federation.replicas {
            prop_assert!(replica.quarantine().is_empty(), "{:?}", replica.quarantine());
        }
        check_converged(&mut federation)?;
        check_confidentiality(&mut federation)?;
        check_cases_reach_every_office_above(&mut federation)?;
    }
}

/// Offices of the agreement property: the county, township 1 and its two villages, so that
/// most offices take part in most cases.
const AGREEING: [usize; 4] = [0, 1, 3, 4];

/// Lifecycle work and partitions, without frame faults: few cases, mostly villages' (held by a
/// village, its township and the county), many events and resolves, so offices act on the same
/// case from both sides of a cut.
fn agreement_step() -> impl Strategy<Value = Step> {
    let office = || proptest::sample::select(AGREEING.to_vec());
    prop_oneof![
        1 => prop_oneof![3 => 3..5usize, 1 => 0..2usize].prop_map(|office| Step::RegisterOwn { office }),
        4 => (office(), any::<usize>(), any::<usize>(), 1..48i64).prop_map(|(office, case, choice, hours)| Step::Append { office, case, choice, hours }),
        6 => (office(), any::<usize>(), any::<usize>(), 1..48i64).prop_map(|(office, case, choice, hours)| Step::Transition { office, case, choice, hours }),
        8 => (office(), any::<usize>(), any::<usize>(), 1..48i64).prop_map(|(office, case, choice, hours)| Step::Resolve { office, case, choice, hours }),
        2 => (0..3usize).prop_map(|link| Step::Cut { link }),
        2 => (0..3usize).prop_map(|link| Step::Heal { link }),
        1 => (0..3usize).prop_map(|link| Step::DropConnection { link }),
        3 => (1..6usize).prop_map(|rounds| Step::Run { rounds }),
    ]
}

/// Every replica holding a case holds the same events and derives the same state.
fn check_every_replica_agrees(federation: &mut Federation) -> Result<(), TestCaseError> {
    let mut cases: Vec<String> = federation
        .replicas
        .iter()
        .flat_map(|replica| replica.case_ids().cloned())
        .collect();
    cases.sort();
    cases.dedup();
    for case in cases {
        let holders: Vec<usize> = (0..OFFICES.len())
            .filter(|office| {
                federation.replicas[*office]
                    .case_ids()
                    .any(|held| *held == case)
            })
            .collect();
        let first = holders[0];
        let heads = federation.replicas[first].heads(&case).expect("memory");
        let state = federation.replicas[first].state(&case);
        for &office in &holders[1..] {
            prop_assert_eq!(
                &federation.replicas[office].heads(&case).expect("memory"),
                &heads,
                "{} and {} hold different events of {}",
                OFFICES[first].name,
                OFFICES[office].name,
                &case
            );
            prop_assert_eq!(&federation.replicas[office].state(&case), &state);
        }
    }
    Ok(())
}

/// Every fork on the path the state follows is a visible conflict or settled by the standing
/// resolves: of two transitions made on the same one that lead to different outcomes (as derive
/// judges them alone), either the state stops at the fork as a conflict, or one of them is
/// superseded; and resolves of a fork that none of the others overrides and that choose
/// branches leading to different outcomes are all named in the conflict's `disputed`, never
/// one of them silently preferred. Nothing disagrees unseen.
fn check_forks_are_visible(
    header: &CaseHeader,
    events: &[Event],
    state: &CaseState,
    limits: &fengqiao_case::model::Limits,
) -> Result<(), TestCaseError> {
    let by_id: HashMap<&str, &Event> = events
        .iter()
        .map(|event| (event.id.as_str(), event))
        .collect();
    let mut children: HashMap<&str, Vec<&Event>> = HashMap::new();
    for event in events {
        if let (true, Some(prev)) = (event.kind.is_transition(), &event.prev) {
            children.entry(prev.as_str()).or_default().push(event);
        }
    }
    // The transitions from the tip back to the registration.
    let mut path: Vec<&Event> = Vec::new();
    let mut current = by_id.get(state.tip.as_str()).copied();
    while let Some(event) = current {
        path.push(event);
        current = event
            .prev
            .as_deref()
            .and_then(|prev| by_id.get(prev).copied());
    }
    path.reverse();
    let superseded: HashSet<&str> = state.superseded.iter().map(String::as_str).collect();
    let disputed: HashSet<&str> = state
        .conflict
        .iter()
        .flat_map(|conflict| conflict.disputed.iter())
        .map(|decision| decision.event.as_str())
        .collect();
    for (depth, fork) in path.iter().enumerate() {
        let Some(next) = children.get(fork.id.as_str()) else {
            continue;
        };
        // Whether two transitions made on `fork` lead to different outcomes, judged on the
        // path up to the fork and the two alone.
        let disagree = |first: &Event, second: &Event| {
            let mut alone: Vec<Event> = path[..=depth]
                .iter()
                .map(|event| (*event).clone())
                .collect();
            alone.push(first.clone());
            alone.push(second.clone());
            fengqiao_case::derive(header, &alone, limits)
                .conflict
                .is_some()
        };
        let open_here = state
            .conflict
            .as_ref()
            .is_some_and(|conflict| conflict.fork == fork.id);
        for (index, first) in next.iter().enumerate() {
            for second in &next[index + 1..] {
                if !disagree(first, second) {
                    continue;
                }
                let settled = superseded.contains(first.id.as_str())
                    || superseded.contains(second.id.as_str());
                prop_assert!(
                    open_here || settled,
                    "{} and {}, both made on {}, disagree silently: {:?}",
                    &first.id,
                    &second.id,
                    &fork.id,
                    state
                );
            }
        }
        let resolves: Vec<(&Event, &Event)> = events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::Resolve { chosen, .. } => by_id
                    .get(chosen.as_str())
                    .filter(|chosen| chosen.prev.as_deref() == Some(fork.id.as_str()))
                    .map(|chosen| (event, *chosen)),
                _ => None,
            })
            .collect();
        let overridden: HashSet<&str> = resolves
            .iter()
            .flat_map(|(resolve, _)| match &resolve.kind {
                EventKind::Resolve { overrides, .. } => overrides.as_slice(),
                _ => &[],
            })
            .map(String::as_str)
            .collect();
        let standing: Vec<&(&Event, &Event)> = resolves
            .iter()
            .filter(|(resolve, _)| !overridden.contains(resolve.id.as_str()))
            .collect();
        for (index, (first, first_choice)) in standing.iter().enumerate() {
            for (second, second_choice) in &standing[index + 1..] {
                if first_choice.id == second_choice.id || !disagree(first_choice, second_choice) {
                    continue;
                }
                prop_assert!(
                    open_here
                        && disputed.contains(first.id.as_str())
                        && disputed.contains(second.id.as_str()),
                    "resolves {} and {} of {} disagree silently: {:?}",
                    &first.id,
                    &second.id,
                    &fork.id,
                    state
                );
            }
        }
    }
    Ok(())
}

fn check_no_silent_disagreement(federation: &mut Federation) -> Result<(), TestCaseError> {
    for replica in &mut federation.replicas {
        let policies = replica.policies().clone();
        let mut cases: Vec<String> = replica.case_ids().cloned().collect();
        cases.sort();
        for case in cases {
            let (header, events) = replica
                .document(&case)
                .expect("held")
                .contents()
                .expect("reads");
            let limits = policies
                .limits_for_case(&events)
                .expect("the case's policy version is held");
            let state = fengqiao_case::derive(&header, &events, limits);
            check_forks_are_visible(&header, &events, &state, limits)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn replicas_that_check_what_they_receive_agree_once_partitions_heal(
        villages in proptest::collection::vec(3..5usize, 1..3),
        steps in proptest::collection::vec(agreement_step(), 1..80),
        seed in any::<u64>(),
    ) {
        let mut federation = Federation::new(&AGREEING, seed);
        let (mut next_case, mut next_event, mut hours) = (0, 0, 0);
        let registrations = villages.into_iter().map(|office| Step::RegisterOwn { office });
        for step in registrations.chain(steps) {
            apply_step(&mut federation, step, &mut next_case, &mut next_event, &mut hours);
        }
        federation.heal_all();
        federation.run_until_quiet(20_000);
        prop_assert!(federation.failures.is_empty(), "{:?}", federation.failures);
        for (office, replica) in federation.replicas.iter().enumerate() {
            prop_assert!(
                replica.quarantine().is_empty(),
                "{} quarantined honest changes: {:?}",
                OFFICES[office].name,
                replica.quarantine()
            );
        }
        check_every_replica_agrees(&mut federation)?;
        check_no_silent_disagreement(&mut federation)?;
    }
}
