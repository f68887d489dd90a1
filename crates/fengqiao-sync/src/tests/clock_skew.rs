//! Offices whose clocks are days off, through real sessions with virtual wall clocks (issue 12
//! item 6): each side says its wall clock after its hello, so a village three days slow learns
//! it from its township (and would stop stamping events), while the township and the county,
//! whose clocks agree, do not; an event such a village stamps anyway, dated before the
//! assignment it takes on, is kept by every receiver (a wrong clock is not a forgery) and
//! flagged for a person (时间存疑) on every replica alike.

use chrono::{NaiveDate, TimeDelta};
use fengqiao_case::model::{ClockReference, EventKind, Status};

use super::harness::Federation;
use super::support::{OFFICES, append_at, new_event, node_id, register_at};

const COUNTY: usize = 0;
const TOWNSHIP_1: usize = 1;
const VILLAGE_11: usize = 3;
const CHAIN: [usize; 3] = [COUNTY, TOWNSHIP_1, VILLAGE_11];

fn case_number() -> String {
    format!("{}-2026-000001", OFFICES[VILLAGE_11].region_code)
}

/// `office` appends `kind` stamped by its own wall clock, as a node does, and tells its
/// sessions.
fn act_by_own_clock(
    federation: &mut Federation,
    office: usize,
    case: &str,
    id: &str,
    kind: EventKind,
) {
    let at = federation.wall_clock(office);
    append_at(
        &mut federation.replicas[office],
        case,
        new_event(id, node_id(office), kind, at),
    );
    federation.local_change(office);
}

#[test]
fn a_village_three_days_slow_is_told_so_and_its_answer_dated_before_the_assignment_is_kept_and_flagged()
 {
    let mut federation = Federation::new(&CHAIN, 7);
    federation.clock_errors[VILLAGE_11] = -TimeDelta::days(3);
    let case = case_number();

    // The township registers a matter located in the village and assigns it there.
    let registered_at = federation.wall_clock(TOWNSHIP_1);
    register_at(
        &mut federation.replicas[TOWNSHIP_1],
        TOWNSHIP_1,
        &case,
        OFFICES[VILLAGE_11].region_code,
        "某建筑公司",
        registered_at,
    );
    federation.local_change(TOWNSHIP_1);
    act_by_own_clock(
        &mut federation,
        TOWNSHIP_1,
        &case,
        "assign",
        EventKind::Assign {
            to_node: node_id(VILLAGE_11).to_owned(),
            required_result: "七日内上报调处结果".to_owned(),
            deadline: NaiveDate::from_ymd_opt(2026, 3, 20).expect("a date"),
        },
    );
    federation.run_until_quiet(1_000);
    assert!(federation.failures.is_empty(), "{:?}", federation.failures);

    // Each side said its wall clock: the village is judged against its township, three days
    // slow; the township against the county, and the county against its township: both fine.
    let village = federation
        .clock_health(VILLAGE_11)
        .expect("the village heard its parent");
    assert_eq!(village.reference, ClockReference::Parent);
    assert!(village.skewed, "{village:?}");
    let three_days_ms = TimeDelta::days(3).num_milliseconds();
    assert!(
        (village.offset_ms + three_days_ms).abs() < 1_000,
        "three days slow: {village:?}"
    );
    assert!(
        village.message.contains("3 d 0 h slow"),
        "{}",
        village.message
    );
    let township = federation
        .clock_health(TOWNSHIP_1)
        .expect("the township heard the county");
    assert!(!township.skewed, "{township:?}");
    let county = federation
        .clock_health(COUNTY)
        .expect("the county heard its township");
    assert_eq!(county.reference, ClockReference::Children);
    assert!(!county.skewed, "{county:?}");

    // A village that stamps anyway (told to proceed, or an older build) takes the assignment on
    // an hour later, by a clock that dates it three days before the assignment.
    federation.now += std::time::Duration::from_secs(3600);
    act_by_own_clock(
        &mut federation,
        VILLAGE_11,
        &case,
        "take-on",
        EventKind::AcceptAssignment {},
    );
    federation.run_until_quiet(1_000);
    assert!(federation.failures.is_empty(), "{:?}", federation.failures);

    for office in CHAIN {
        let replica = &mut federation.replicas[office];
        assert!(
            replica.quarantine().is_empty(),
            "{}: a wrong clock is not a forgery: {:?}",
            OFFICES[office].name,
            replica.quarantine()
        );
        let state = replica.state(&case).expect("every office holds the case");
        assert_eq!(state.status, Status::Accepted, "{}", OFFICES[office].name);
        assert_eq!(state.holder, node_id(VILLAGE_11));
        assert_eq!(
            state.time_flags.len(),
            1,
            "{}: {:#?}",
            OFFICES[office].name,
            state.time_flags
        );
        let flag = &state.time_flags[0];
        assert!(flag.starts_with("时间存疑"), "{flag}");
        assert!(
            flag.contains("accept_assignment take-on") && flag.contains("before the assign assign"),
            "{flag}"
        );
    }
}

#[test]
fn offices_whose_clocks_agree_within_five_minutes_are_not_skewed() {
    let mut federation = Federation::new(&CHAIN, 11);
    federation.clock_errors[VILLAGE_11] = TimeDelta::minutes(4);
    federation.clock_errors[COUNTY] = -TimeDelta::minutes(2);
    federation.run_until_quiet(1_000);
    for office in CHAIN {
        let health = federation.clock_health(office).expect("heard a peer");
        assert!(!health.skewed, "{}: {health:?}", OFFICES[office].name);
    }
    // The village is 4 minutes fast against a township that is right.
    let village = federation
        .clock_health(VILLAGE_11)
        .expect("heard its parent");
    assert!((village.offset_ms - 240_000).abs() < 1_000, "{village:?}");
}
