//! Scripted runs of the whole test federation (county – 2 townships – 4 villages): where cases
//! end up, through cuts, faults and edits on both sides of a cut.

use fengqiao_case::model::EventKind;

use super::harness::{Faults, Federation};
use super::support::{OFFICES, append_at, instant, new_event, node_id, note, register_at};
use crate::replica::Replica;

const COUNTY: usize = 0;
const TOWNSHIP_1: usize = 1;
const TOWNSHIP_2: usize = 2;
const VILLAGE_11: usize = 3;
const VILLAGE_12: usize = 4;
const VILLAGE_21: usize = 5;
const VILLAGE_22: usize = 6;
const ALL: [usize; 7] = [0, 1, 2, 3, 4, 5, 6];

fn case_number(village: usize, sequence: usize) -> String {
    format!("{}-2026-{sequence:06}", OFFICES[village].region_code)
}

fn register_in_every_village(federation: &mut Federation, per_village: usize) {
    for village in [VILLAGE_11, VILLAGE_12, VILLAGE_21, VILLAGE_22] {
        for sequence in 1..=per_village {
            let number = case_number(village, sequence);
            let region = OFFICES[village].region_code;
            register_at(
                &mut federation.replicas[village],
                village,
                &number,
                region,
                "某公司",
                instant(2, 9),
            );
        }
        federation.local_change(village);
    }
}

fn same_heads(federation: &mut Federation, first: usize, second: usize, case: &str) -> bool {
    let first = federation.replicas[first].heads(case).expect("memory");
    first.is_some() && first == federation.replicas[second].heads(case).expect("memory")
}

#[test]
fn cases_flow_up_to_the_county_and_never_to_a_sibling() {
    let mut federation = Federation::new(&ALL, 11);
    register_in_every_village(&mut federation, 3);
    federation.run_until_quiet(1_000);
    assert!(federation.failures.is_empty(), "{:?}", federation.failures);
    assert_eq!(federation.replicas[COUNTY].case_count(), 12);
    assert_eq!(federation.replicas[TOWNSHIP_1].case_count(), 6);
    assert_eq!(federation.replicas[TOWNSHIP_2].case_count(), 6);
    for village in [VILLAGE_11, VILLAGE_12, VILLAGE_21, VILLAGE_22] {
        assert_eq!(
            federation.replicas[village].case_count(),
            3,
            "{}",
            node_id(village)
        );
    }
}

#[test]
fn a_county_directive_reaches_the_village_holding_the_case() {
    let mut federation = Federation::new(&ALL, 12);
    register_in_every_village(&mut federation, 1);
    federation.run_until_quiet(1_000);
    let case = case_number(VILLAGE_12, 1);
    append_at(
        &mut federation.replicas[COUNTY],
        &case,
        new_event(
            "directive-1",
            node_id(COUNTY),
            EventKind::IssueDirective {
                directive: "D-1".to_owned(),
                target_node: node_id(VILLAGE_12).to_owned(),
                requirement: "十日内结清欠薪".to_owned(),
                due: chrono::NaiveDate::from_ymd_opt(2026, 3, 20).expect("date"),
                listed: true,
            },
            instant(3, 9),
        ),
    );
    federation.local_change(COUNTY);
    federation.run_until_quiet(1_000);
    assert!(federation.failures.is_empty(), "{:?}", federation.failures);
    for office in [TOWNSHIP_1, VILLAGE_12] {
        assert!(
            same_heads(&mut federation, COUNTY, office, &case),
            "{}",
            node_id(office)
        );
    }
    let state = federation.replicas[VILLAGE_12].state(&case).expect("held");
    assert_eq!(state.directives.len(), 1);
    assert_eq!(
        federation.replicas[VILLAGE_11]
            .heads(&case)
            .expect("memory"),
        None
    );
}

#[test]
fn edits_on_both_sides_of_a_cut_converge_when_it_heals() {
    let mut federation = Federation::new(&ALL, 13);
    register_in_every_village(&mut federation, 4);
    federation.run_until_quiet(1_000);
    // Cut township 1 from the county.
    let county_link = federation
        .link_ends()
        .iter()
        .position(|ends| *ends == (COUNTY, TOWNSHIP_1))
        .expect("link");
    federation.cut(county_link);
    let case = case_number(VILLAGE_11, 1);
    append_at(
        &mut federation.replicas[VILLAGE_11],
        &case,
        note("village-note", node_id(VILLAGE_11), instant(4, 9)),
    );
    federation.local_change(VILLAGE_11);
    append_at(
        &mut federation.replicas[COUNTY],
        &case,
        note("county-note", node_id(COUNTY), instant(4, 10)),
    );
    federation.local_change(COUNTY);
    let new_case = case_number(VILLAGE_12, 9);
    register_at(
        &mut federation.replicas[VILLAGE_12],
        VILLAGE_12,
        &new_case,
        OFFICES[VILLAGE_12].region_code,
        "某公司",
        instant(4, 11),
    );
    federation.local_change(VILLAGE_12);
    federation.run_until_quiet(1_000);
    assert!(!same_heads(&mut federation, COUNTY, VILLAGE_11, &case));
    assert_eq!(
        federation.replicas[COUNTY]
            .heads(&new_case)
            .expect("memory"),
        None
    );

    federation.heal(county_link);
    federation.run_until_quiet(1_000);
    assert!(federation.failures.is_empty(), "{:?}", federation.failures);
    for office in [TOWNSHIP_1, VILLAGE_11] {
        assert!(
            same_heads(&mut federation, COUNTY, office, &case),
            "{}",
            node_id(office)
        );
    }
    assert_eq!(
        federation.replicas[VILLAGE_11]
            .document(&case)
            .expect("held")
            .events()
            .expect("events")
            .len(),
        3
    );
    assert!(same_heads(&mut federation, COUNTY, VILLAGE_12, &new_case));
}

#[test]
fn duplicated_and_reordered_frames_and_dropped_connections_still_converge() {
    let mut federation = Federation::new(&ALL, 14);
    federation.faults = Faults {
        loss: 0.01,
        duplicate: 0.3,
        reorder: 0.3,
    };
    register_in_every_village(&mut federation, 10);
    for round in 0..40 {
        federation.round();
        if round % 5 == 0 {
            let village = [VILLAGE_11, VILLAGE_12, VILLAGE_21, VILLAGE_22][round % 4];
            let case = case_number(village, 1 + round % 10);
            append_at(
                &mut federation.replicas[village],
                &case,
                note(&format!("n{round}"), node_id(village), instant(5, 9)),
            );
            federation.local_change(village);
        }
    }
    federation.faults.loss = 0.0;
    federation.run_until_quiet(5_000);
    assert!(federation.failures.is_empty(), "{:?}", federation.failures);
    assert_eq!(federation.replicas[COUNTY].case_count(), 40);
    for village in [VILLAGE_11, VILLAGE_12, VILLAGE_21, VILLAGE_22] {
        let township = OFFICES[village].parent.expect("a parent");
        for sequence in 1..=10 {
            let case = case_number(village, sequence);
            assert!(
                same_heads(&mut federation, village, COUNTY, &case),
                "{case}"
            );
            assert!(
                same_heads(&mut federation, village, township, &case),
                "{case}"
            );
        }
    }
}

#[test]
fn a_complaint_about_the_township_stays_below_it() {
    let mut federation = Federation::new(&ALL, 15);
    let case = case_number(VILLAGE_11, 1);
    register_at(
        &mut federation.replicas[VILLAGE_11],
        VILLAGE_11,
        &case,
        OFFICES[VILLAGE_11].region_code,
        "芦荻山乡政府工作人员",
        instant(2, 9),
    );
    federation.local_change(VILLAGE_11);
    federation.run_until_quiet(1_000);
    assert!(federation.failures.is_empty(), "{:?}", federation.failures);
    assert_eq!(federation.replicas[TOWNSHIP_1].case_count(), 0);
    // Known gap: the county cannot get it either until a link that bypasses the township exists.
    assert_eq!(federation.replicas[COUNTY].case_count(), 0);
}

/// N2 of RELIABILITY.md: an office a case was assigned to keeps a current copy after it hands
/// the case back. The township assigns a case to village 11, which objects (the case returns to
/// the township); the township then notes and replies. Before `sent_to`, routing sent the
/// village nothing more (it no longer took part), and its copy stayed at its objection, a stale
/// state its staff still read; now every copy of the case ends at the same heads.
#[test]
fn a_village_that_hands_an_assigned_case_back_keeps_a_current_copy() {
    let mut federation = Federation::new(&ALL, 12);
    let case = format!("{}-2026-{:06}", OFFICES[VILLAGE_11].region_code, 900);
    register_at(
        &mut federation.replicas[TOWNSHIP_1],
        TOWNSHIP_1,
        &case,
        OFFICES[VILLAGE_11].region_code,
        "某建筑公司",
        instant(2, 9),
    );
    append_at(
        &mut federation.replicas[TOWNSHIP_1],
        &case,
        new_event(
            "assign",
            node_id(TOWNSHIP_1),
            EventKind::Assign {
                to_node: node_id(VILLAGE_11).to_owned(),
                required_result: "查清欠薪并答复".to_owned(),
                deadline: chrono::NaiveDate::from_ymd_opt(2026, 3, 30).expect("a date"),
            },
            instant(2, 10),
        ),
    );
    federation.local_change(TOWNSHIP_1);
    federation.run_until_quiet(2_000);
    assert!(same_heads(&mut federation, TOWNSHIP_1, VILLAGE_11, &case));

    append_at(
        &mut federation.replicas[VILLAGE_11],
        &case,
        new_event(
            "object",
            node_id(VILLAGE_11),
            EventKind::Object {
                reason: "涉及乡镇企业，超出村级职权".to_owned(),
            },
            instant(3, 9),
        ),
    );
    federation.local_change(VILLAGE_11);
    federation.run_until_quiet(2_000);
    let state = federation.replicas[TOWNSHIP_1]
        .state(&case)
        .expect("the township derives the case");
    assert_eq!(
        state.holder,
        node_id(TOWNSHIP_1),
        "the objection returned it"
    );
    assert_eq!(state.awaiting, None);

    append_at(
        &mut federation.replicas[TOWNSHIP_1],
        &case,
        note("after-objection", node_id(TOWNSHIP_1), instant(4, 9)),
    );
    federation.local_change(TOWNSHIP_1);
    federation.run_until_quiet(2_000);
    assert!(federation.failures.is_empty(), "{:?}", federation.failures);
    for office in [COUNTY, VILLAGE_11] {
        assert!(
            same_heads(&mut federation, TOWNSHIP_1, office, &case),
            "office {office} is behind the township on {case}"
        );
    }
    // Still never at a sibling village.
    assert_eq!(
        federation.replicas[VILLAGE_12]
            .heads(&case)
            .expect("memory"),
        None
    );
}
