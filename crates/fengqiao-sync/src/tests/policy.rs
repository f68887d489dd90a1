//! The federation's policy across offices (issue 12, item 5): every office derives a case with
//! the policy version it was registered under, whatever its own settings, so offices agree; the
//! county's versions travel down on the roster exchange; a new version never rewrites a case
//! registered before it; a case under a version not yet held is deferred, not guessed.

use chrono::{DateTime, NaiveDate, Utc};
use fengqiao_case::model::{CaseState, EventKind, Limits};
use fengqiao_case::policy::policy_version_of;

use super::harness::Federation;
use super::support::{OFFICES, append_at, instant, new_event, node_id, register_at, replica_for};
use crate::replica::{Replica, ReplicaError};

const COUNTY: usize = 0;
const TOWNSHIP_1: usize = 1;
const VILLAGE_11: usize = 3;
const CHAIN: [usize; 3] = [COUNTY, TOWNSHIP_1, VILLAGE_11];

fn date(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, month, day).expect("a date")
}

/// Offices closed 3–6 March 2026 (a county decision for the test): the 5 working days of an
/// objection window opened on Monday 2 March end on Friday 13 March instead of Monday 9 March.
fn limits_with_closure() -> Limits {
    Limits {
        holidays: (3..=6).map(|day| date(3, day)).collect(),
        ..Limits::default()
    }
}

/// The county registers a case in village 11's region and assigns it to the village, which
/// opens the village's 5-working-day objection window.
fn register_and_assign(federation: &mut Federation, sequence: u32, at: DateTime<Utc>) -> String {
    let case = format!("{}-2026-{sequence:06}", OFFICES[VILLAGE_11].region_code);
    register_at(
        &mut federation.replicas[COUNTY],
        COUNTY,
        &case,
        OFFICES[VILLAGE_11].region_code,
        "某建筑公司",
        at,
    );
    append_at(
        &mut federation.replicas[COUNTY],
        &case,
        new_event(
            &format!("{case}-assign"),
            node_id(COUNTY),
            EventKind::Assign {
                to_node: node_id(VILLAGE_11).to_owned(),
                required_result: "查清欠薪并答复".to_owned(),
                deadline: date(3, 30),
            },
            at + chrono::Duration::hours(1),
        ),
    );
    federation.local_change(COUNTY);
    federation.run_until_quiet(1_000);
    assert!(federation.failures.is_empty(), "{:?}", federation.failures);
    case
}

fn states(federation: &mut Federation, case: &str) -> Vec<CaseState> {
    CHAIN
        .iter()
        .map(|&office| {
            federation.replicas[office]
                .state(case)
                .unwrap_or_else(|| panic!("office {office} holds and derives {case}"))
        })
        .collect()
}

fn objection_end_date(state: &CaseState) -> NaiveDate {
    let deadline = state
        .timeline
        .objection_deadline
        .expect("an assignment opens the objection window");
    fengqiao_case::deadlines::local_date(deadline)
}

/// The regression of issue 12 item 5. Before policies, each office derived with its own
/// `[limits]`: with the village configured with the closure and the county without, the same
/// two events gave the county an objection deadline of 9 March and the village 13 March (this
/// test's scenario, run on the code before the fix with a per-replica `Limits`, failed so). Now
/// the county's policy decides, and every office derives the same state.
#[test]
fn offices_derive_a_case_alike_under_the_policy_it_was_registered_under() {
    let mut federation = Federation::new(&CHAIN, 7);
    federation.run_until_quiet(1_000);
    let version = federation.issue_policy(limits_with_closure(), instant(1, 8));
    assert_eq!(version, 1);
    federation.run_until_quiet(1_000);
    for office in CHAIN {
        assert_eq!(
            federation.replicas[office].policies().current().version,
            1,
            "the county's policy reached office {office}"
        );
    }

    let case = register_and_assign(&mut federation, 1, instant(2, 1));
    let held = states(&mut federation, &case);
    assert_eq!(held[0], held[1], "county and township agree");
    assert_eq!(held[0], held[2], "county and village agree");
    assert_eq!(objection_end_date(&held[0]), date(3, 13));
    let events = federation.replicas[VILLAGE_11]
        .document(&case)
        .expect("held")
        .events()
        .expect("reads");
    assert_eq!(
        policy_version_of(&events),
        1,
        "the register event records v1"
    );

    // A new version without the closure: the case registered under v1 keeps v1's deadline on
    // every office; a case registered now derives with v2.
    assert_eq!(federation.issue_policy(Limits::default(), instant(2, 2)), 2);
    federation.run_until_quiet(1_000);
    assert_eq!(
        states(&mut federation, &case),
        held,
        "history is not rewritten"
    );
    let later = register_and_assign(&mut federation, 2, instant(2, 3));
    let later_states = states(&mut federation, &later);
    assert!(later_states.iter().all(|state| *state == later_states[0]));
    assert_eq!(objection_end_date(&later_states[0]), date(3, 9));
}

/// A case registered under a version the receiver does not hold yet is deferred (asked for
/// again later), never derived with a guess; once the version arrives it is taken in.
#[test]
fn a_case_under_a_policy_not_held_yet_waits_for_it() {
    let mut federation = Federation::new(&CHAIN, 11);
    federation.run_until_quiet(1_000);
    federation.issue_policy(limits_with_closure(), instant(1, 8));
    let case = format!("{}-2026-000001", OFFICES[VILLAGE_11].region_code);
    register_at(
        &mut federation.replicas[COUNTY],
        COUNTY,
        &case,
        OFFICES[VILLAGE_11].region_code,
        "某建筑公司",
        instant(2, 1),
    );
    let bytes = federation.replicas[COUNTY].save(&case).expect("saved");

    let mut township = replica_for(TOWNSHIP_1);
    let admit = |_: &crate::routing::CaseRouting| Ok(());
    match township.apply(node_id(COUNTY), &case, &bytes, true, &admit) {
        Err(ReplicaError::Deferred { message, .. }) => {
            assert!(message.contains("policy version 1"), "{message}");
        }
        other => panic!("a case under an unknown policy version is deferred, not {other:?}"),
    }
    assert_eq!(township.case_count(), 0);
    assert!(
        township.quarantine().is_empty(),
        "deferred, not quarantined"
    );

    township.set_policies(federation.rosters[COUNTY].policy_book());
    let applied = township
        .apply(node_id(COUNTY), &case, &bytes, true, &admit)
        .expect("taken in once the version is held");
    assert!(applied.created);
    assert_eq!(
        township.state(&case),
        federation.replicas[COUNTY].state(&case)
    );
}
