//! Property: replicas that exchange the same events converge on identical heads and state, and
//! derive does not depend on the order events are listed in.

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use super::support::*;
use crate::appending::append;
use crate::authority::authorize;
use crate::derive::derive;
use crate::lifecycle::{NewEvent, check_with_header};
use crate::model::{
    CaseHeader, CaseState, EventKind, JudicialConfirmation, MediationResult, MediationType,
    ReviewLevel, ReviewOutcome, Satisfaction,
};

const NODES: [&str; 3] = [VILLAGE, TOWNSHIP, COUNTY];
const ACTORS: [[u8; 16]; 3] = [ACTOR_A, ACTOR_B, [0xc3; 16]];

#[derive(Debug, Clone)]
enum Step {
    /// Replica appends one of the events valid for its current view, picked by `choice`.
    Append {
        replica: usize,
        choice: usize,
        hours: i64,
    },
    /// `into` merges everything `from` has.
    Merge { into: usize, from: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, any::<usize>(), 1..60i64).prop_map(|(replica, choice, hours)| Step::Append { replica, choice, hours }),
        1 => (0..3usize, 0..3usize).prop_map(|(into, from)| Step::Merge { into, from }),
    ]
}

/// Every event worth trying from `state`, by whichever node might make it; the caller keeps those
/// the lifecycle accepts.
fn candidates(state: &CaseState, at: DateTime<Utc>, id: &str) -> Vec<NewEvent> {
    let mut kinds: Vec<(String, EventKind)> = Vec::new();
    let holder = state.holder.clone();
    let others: Vec<&str> = NODES
        .iter()
        .copied()
        .filter(|node| *node != holder)
        .collect();
    let mut by_holder = |kind: EventKind| kinds.push((holder.clone(), kind));
    by_holder(EventKind::Accept {});
    by_holder(EventKind::Reject {
        reason: "不予受理".into(),
    });
    by_holder(EventKind::Forward {
        to_unit: "外单位".into(),
        to_node: None,
        reason: "转".into(),
    });
    for other in &others {
        by_holder(EventKind::Forward {
            to_unit: "下级".into(),
            to_node: Some((*other).into()),
            reason: "转".into(),
        });
        by_holder(EventKind::Assign {
            to_node: (*other).into(),
            required_result: "办结".into(),
            deadline: crate::deadlines::local_date(at) + TimeDelta::days(10),
        });
        by_holder(EventKind::Escalate {
            to_node: (*other).into(),
            reason: "上报".into(),
        });
    }
    by_holder(EventKind::Extend {
        days: 15,
        approver: "镇长".into(),
        reason: "延期".into(),
    });
    by_holder(EventKind::Reply {
        outcome: crate::model::ReplyOutcome::Explain,
        text: "答复".into(),
    });
    by_holder(EventKind::Evaluate {
        satisfaction: Satisfaction::Satisfied,
    });
    by_holder(EventKind::Close {
        resolved: true,
        note: String::new(),
    });
    for level in [ReviewLevel::Review, ReviewLevel::ReReview] {
        by_holder(EventKind::RequestReview {
            level,
            reason: "不服".into(),
        });
        by_holder(EventKind::DecideReview {
            level,
            outcome: ReviewOutcome::Upheld,
            text: "维持".into(),
        });
    }
    by_holder(EventKind::Reopen {
        reason: "重新办理".into(),
    });
    by_holder(EventKind::Mediate {
        mediation_type: MediationType::People,
        mediator: "调解员".into(),
        result: MediationResult::Agreement,
        agreement: "协议".into(),
        judicial_confirmation: JudicialConfirmation::NotApplied,
    });
    by_holder(EventKind::Note {
        text: "备注".into(),
    });
    for mediation in &state.mediations {
        by_holder(EventKind::UpdateJudicialConfirmation {
            mediation: mediation.event.clone(),
            status: JudicialConfirmation::Applied,
        });
    }
    // 提级办理 by every other office: the authority filter keeps those above the holder.
    for other in &others {
        kinds.push((
            (*other).into(),
            EventKind::TakeOver {
                reason: "提级办理".into(),
            },
        ));
    }
    if let Some(awaiting) = &state.awaiting {
        kinds.push((awaiting.clone(), EventKind::AcceptAssignment {}));
        kinds.push((
            awaiting.clone(),
            EventKind::Object {
                reason: "非本级职责".into(),
            },
        ));
    }
    if let Some(conflict) = &state.conflict {
        for branch in &conflict.branches {
            kinds.push((
                COUNTY.into(),
                EventKind::Resolve {
                    chosen: branch.first.clone(),
                    note: "决定".into(),
                    overrides: Vec::new(),
                },
            ));
        }
    }
    kinds.push((
        COUNTY.into(),
        EventKind::IssueDirective {
            directive: format!("D-{id}"),
            target_node: holder.clone(),
            requirement: "限期办理".into(),
            due: crate::deadlines::local_date(at) + TimeDelta::days(7),
            listed: false,
        },
    ));
    for directive in &state.directives {
        let id = directive.id.clone();
        let target = directive.target_node.clone();
        let issuer = directive.issuer_node.clone();
        kinds.push((
            target.clone(),
            EventKind::AcknowledgeDirective {
                directive: id.clone(),
            },
        ));
        kinds.push((
            target,
            EventKind::ReportDirective {
                directive: id.clone(),
                text: "已办".into(),
            },
        ));
        kinds.push((
            issuer.clone(),
            EventKind::CrossOffDirective {
                directive: id.clone(),
            },
        ));
        kinds.push((
            issuer,
            EventKind::ReturnDirective {
                directive: id,
                reason: "重办".into(),
            },
        ));
    }
    kinds
        .into_iter()
        .map(|(node, kind)| new_event(id, &node, kind, at))
        .collect()
}

fn merge(replicas: &mut [Case], into: usize, from: usize) {
    if into == from {
        return;
    }
    let (low, high) = replicas.split_at_mut(into.max(from));
    let (target, source) = if into < from {
        (&mut low[into], &mut high[0])
    } else {
        (&mut high[0], &mut low[from])
    };
    target.merge_from(source);
}

fn header_and_events(case: &Case) -> (CaseHeader, Vec<crate::model::Event>) {
    (
        case.document.header().expect("header"),
        case.document.events().expect("events"),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_derive_ignores_event_order(
        steps in proptest::collection::vec(step(), 1..36),
        merge_orders in proptest::collection::vec(Just([0usize, 1, 2]).prop_shuffle(), 3),
        shuffle_seed in any::<u64>(),
    ) {
        let mut first = Case::registered();
        let mut replicas = vec![first.fork(&ACTORS[1], "b"), first.fork(&ACTORS[2], "c")];
        replicas.insert(0, first);
        let mut now = china(3, 2, 9);
        let mut next_id = 0u32;
        for step in steps {
            match step {
                Step::Append { replica, choice, hours } => {
                    now += TimeDelta::hours(hours);
                    next_id += 1;
                    let id = format!("{}-{next_id:03}", ["a", "b", "c"][replica]);
                    let case = &mut replicas[replica];
                    let (header, _) = header_and_events(case);
                    let state = case.derived();
                    let valid: Vec<NewEvent> = candidates(&state, now, &id)
                        .into_iter()
                        .filter(|event| check_with_header(&header, &state, event, &case.limits).is_ok())
                        .filter(|event| authorize(&state, &event.kind, &event.node, &Tree).is_ok())
                        .collect();
                    if valid.is_empty() {
                        continue;
                    }
                    let chosen = valid[choice % valid.len()].clone();
                    let (_, appended_state, _) = append(&mut case.document, chosen, &case.limits, &signer(), &Tree)
                        .expect("an event check accepted is appended");
                    prop_assert_eq!(&appended_state, &case.derived());
                    case.state = appended_state;
                }
                Step::Merge { into, from } => merge(&mut replicas, into, from),
            }
        }

        // Every replica merges every other, each in its own order.
        let snapshot: Vec<Vec<u8>> = replicas.iter_mut().map(|case| case.document.save()).collect();
        for (index, order) in merge_orders.iter().enumerate() {
            for &other in order {
                if other != index {
                    let mut peer = crate::document::CaseDocument::load(&snapshot[other], &[], &ACTORS[other])
                        .expect("snapshot loads");
                    replicas[index].document.merge(&mut peer).expect("replicas merge");
                }
            }
        }
        let heads: Vec<Vec<String>> = replicas.iter_mut().map(|case| case.document.heads()).collect();
        prop_assert_eq!(&heads[0], &heads[1]);
        prop_assert_eq!(&heads[1], &heads[2]);
        let states: Vec<CaseState> = replicas.iter().map(Case::derived).collect();
        prop_assert_eq!(&states[0], &states[1]);
        prop_assert_eq!(&states[1], &states[2]);

        let (header, events) = header_and_events(&replicas[0]);
        let mut shuffled = events.clone();
        shuffled.shuffle(&mut SmallRng::seed_from_u64(shuffle_seed));
        prop_assert_eq!(derive(&header, &shuffled, &replicas[0].limits), states[0].clone());
        prop_assert_eq!(states[0].event_count as usize, events.len());
    }
}
