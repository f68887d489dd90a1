//! The time rule: plausible, not before what an event follows, back-dated only with a reason and
//! within the bound (or as the ledger says, for an import); the time an event counts at; the
//! flags a person must look at.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::model::ImportMark;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 2, 0, 0)
        .single()
        .unwrap_or_default()
}

fn refusal(result: Result<(), CaseError>) -> (&'static str, String) {
    match result {
        Err(CaseError::InvalidInput { field, why }) => (field, why),
        other => panic!("expected an invalid-input refusal, got {other:?}"),
    }
}

const PERSON: Backdating = Backdating::Within {
    max_days: DEFAULT_MAX_BACKDATE_DAYS,
};

fn claim(at: DateTime<Utc>, reason: Option<&str>) -> ClaimedTime<'_> {
    ClaimedTime {
        field: "at",
        at,
        reason,
    }
}

fn registration_at(at: DateTime<Utc>) -> Predecessor<'static> {
    Predecessor {
        id: "register",
        kind: "register",
        at,
    }
}

#[test]
fn given_times_lie_between_two_thousand_and_now() {
    let first = Utc
        .with_ymd_and_hms(1999, 12, 31, 16, 0, 0)
        .single()
        .unwrap_or_default();
    assert!(
        check_time("registered_at", first, now()).is_ok(),
        "2000-01-01 in China"
    );
    let (field, why) = refusal(check_time(
        "registered_at",
        first - chrono::TimeDelta::seconds(1),
        now(),
    ));
    assert_eq!(field, "registered_at");
    assert!(why.contains("before 2000"), "{why}");
    let year_1900 = Utc
        .with_ymd_and_hms(1900, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    assert!(check_time("at", year_1900, now()).is_err());
    assert!(check_time("at", now() + CLOCK_SKEW_ALLOWANCE, now()).is_ok());
    let (_, why) = refusal(check_time(
        "at",
        now() + CLOCK_SKEW_ALLOWANCE + chrono::TimeDelta::seconds(1),
        now(),
    ));
    assert!(why.contains("in the future"), "{why}");
}

#[test]
fn a_time_more_than_five_minutes_past_needs_a_reason_and_lies_within_the_bound() {
    let past = |minutes: i64| now() - TimeDelta::minutes(minutes);
    assert!(check_claimed_time(claim(now(), None), now(), [], PERSON).is_ok());
    assert!(check_claimed_time(claim(past(5), None), now(), [], PERSON).is_ok());
    let (field, why) = refusal(check_claimed_time(claim(past(6), None), now(), [], PERSON));
    assert_eq!(field, "at");
    assert!(why.contains("backdated_reason"), "{why}");
    assert!(why.contains("补录"), "{why}");
    assert!(check_claimed_time(claim(past(6), Some("纸质登记补录")), now(), [], PERSON).is_ok());
    // A blank reason is no reason.
    assert!(check_claimed_time(claim(past(6), Some("  ")), now(), [], PERSON).is_err());
    // Thirty days back is the default bound; beyond it only a ledger import records the time.
    let thirty_days = now() - TimeDelta::days(30);
    assert!(
        check_claimed_time(claim(thirty_days, Some("纸质登记补录")), now(), [], PERSON).is_ok()
    );
    let (field, why) = refusal(check_claimed_time(
        claim(thirty_days - TimeDelta::minutes(1), Some("纸质登记补录")),
        now(),
        [],
        PERSON,
    ));
    assert_eq!(field, "at");
    assert!(why.contains("max_backdate_days"), "{why}");
    // A reason on a time that is not in the past says something untrue.
    let (field, _) = refusal(check_claimed_time(
        claim(now(), Some("纸质登记补录")),
        now(),
        [],
        PERSON,
    ));
    assert_eq!(field, BACKDATED_REASON_FIELD);
    // The reason is one line of plain text.
    let (field, _) = refusal(check_claimed_time(
        claim(past(60), Some("补录\u{202e}")),
        now(),
        [],
        PERSON,
    ));
    assert_eq!(field, BACKDATED_REASON_FIELD);
}

#[test]
fn an_event_may_not_precede_what_it_follows_beyond_the_clock_allowance() {
    let registered = now() - TimeDelta::days(2);
    let before = registered - TimeDelta::minutes(6);
    let (field, why) = refusal(check_claimed_time(
        claim(before, Some("纸质登记补录")),
        now(),
        [registration_at(registered)],
        PERSON,
    ));
    assert_eq!(field, "at");
    assert!(why.contains("before the register it follows"), "{why}");
    // Two offices' clocks may disagree by the allowance.
    assert!(
        check_claimed_time(
            claim(registered - TimeDelta::minutes(5), Some("纸质登记补录")),
            now(),
            [registration_at(registered)],
            PERSON
        )
        .is_ok()
    );
    // The issue's case: accepts dated 2020 on a case registered in 2026.
    let year_2020 = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    assert!(
        check_claimed_time(
            claim(year_2020, Some("补录")),
            now(),
            [registration_at(registered)],
            PERSON
        )
        .is_err()
    );
}

#[test]
fn an_import_records_the_ledgers_times_in_order_without_a_reason() {
    let years_ago = now() - TimeDelta::days(3 * 365);
    assert!(check_claimed_time(claim(years_ago, None), now(), [], Backdating::Historical).is_ok());
    // In order, exactly: a ledger has no clock skew.
    let (_, why) = refusal(check_claimed_time(
        claim(years_ago - TimeDelta::seconds(1), None),
        now(),
        [registration_at(years_ago)],
        Backdating::Historical,
    ));
    assert!(why.contains("before the register it follows"), "{why}");
    // Still not in the future, nor before 2000.
    assert!(
        check_claimed_time(
            claim(now() + TimeDelta::hours(1), None),
            now(),
            [],
            Backdating::Historical
        )
        .is_err()
    );
}

fn event(id: &str, kind: EventKind, at: DateTime<Utc>, recorded: DateTime<Utc>) -> Event {
    Event {
        id: id.to_owned(),
        kind,
        at,
        node: "node-village".to_owned(),
        operator: "经办人".to_owned(),
        prev: None,
        hlc: HybridTimestamp {
            wall_ms: recorded.timestamp_millis(),
            counter: 0,
        },
        signature: None,
        imported: None,
        backdated_reason: None,
    }
}

#[test]
fn a_back_dated_event_counts_when_it_was_recorded_and_an_imported_one_at_its_ledger_time() {
    let recorded = now();
    let claimed = now() - TimeDelta::days(10);
    let recorded_hlc = HybridTimestamp {
        wall_ms: recorded.timestamp_millis(),
        counter: 3,
    };
    assert_eq!(counted_time(claimed, recorded_hlc, false), recorded);
    assert_eq!(counted_time(claimed, recorded_hlc, true), claimed);
    // Within the allowance the claimed time stands (clocks drift; nobody back-dated).
    let a_minute_ago = now() - TimeDelta::minutes(1);
    assert_eq!(
        counted_time(a_minute_ago, recorded_hlc, false),
        a_minute_ago
    );
    // Events of schema-1 documents have no recorded time.
    assert_eq!(counted_time(claimed, HybridTimestamp::ZERO, false), claimed);
}

#[test]
fn times_a_person_must_look_at_are_flagged_from_the_events_alone() {
    let registered = now() - TimeDelta::days(3);
    let register = event(
        "r",
        EventKind::Register {
            header: None,
            policy_version: 0,
        },
        registered,
        registered,
    );
    // Accepted "before" the registration: a clock three days slow, or a typo.
    let mut accept = event(
        "a",
        EventKind::Accept {},
        registered - TimeDelta::days(3),
        now(),
    );
    accept.prev = Some("r".to_owned());
    accept.backdated_reason = Some("补录".to_owned());
    // Back-dated by a build that did not ask for a reason.
    let note = event(
        "n",
        EventKind::Note {
            text: "走访".to_owned(),
        },
        now() - TimeDelta::days(1),
        now(),
    );
    let flags = time_flags(&[&register, &accept, &note]);
    assert_eq!(flags.len(), 2, "{flags:#?}");
    assert!(flags.iter().all(|flag| flag.starts_with("时间存疑")));
    assert!(
        flags
            .iter()
            .any(|flag| flag.contains("accept a") && flag.contains("before the register r")),
        "{flags:#?}"
    );
    assert!(
        flags
            .iter()
            .any(|flag| flag.contains("note n") && flag.contains("no reason")),
        "{flags:#?}"
    );
    // An imported event keeps its ledger time: no reason needed, only the order is judged.
    let mut imported_note = note.clone();
    imported_note.imported = Some(ImportMark {
        import_id: "20260305T0930-1f2e3d4c".to_owned(),
        row_key: "number:430702001001-2026-000123".to_owned(),
    });
    let mut in_order = accept.clone();
    in_order.at = registered;
    assert!(time_flags(&[&register, &in_order, &imported_note]).is_empty());
}
