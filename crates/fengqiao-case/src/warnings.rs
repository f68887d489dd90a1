//! Graded warnings (预警 / 超时 / 严重超时) for open deadlines, judged at a given `now`.

use chrono::{DateTime, Duration, Utc};

use crate::model::{CaseSummary, Warning, WarningGrade, WarningThresholds};
use crate::summary::open_deadlines;

/// Warnings for every deadline that is open in the case's current status, and for every
/// directive not yet crossed off.
pub fn warnings(
    summary: &CaseSummary,
    now: DateTime<Utc>,
    thresholds: &WarningThresholds,
) -> Vec<Warning> {
    open_deadlines(summary)
        .into_iter()
        .filter_map(|deadline| {
            grade(deadline.due, now, thresholds).map(|grade| Warning {
                deadline: deadline.kind,
                grade,
                due: deadline.due,
                directive: deadline.directive,
            })
        })
        .collect()
}

/// The grade of one deadline at `now`, or `None` while it is further away than the warning window.
///
/// The due instant itself still counts as in time: a decision made exactly at the deadline is
/// timely for the measures, so the warning must not call it overdue either.
pub fn grade(
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    thresholds: &WarningThresholds,
) -> Option<WarningGrade> {
    let instants = grade_instants(due, thresholds);
    if instants
        .seriously_overdue_after
        .is_some_and(|serious| now > serious)
    {
        Some(WarningGrade::SeriouslyOverdue)
    } else if now > instants.overdue_after {
        Some(WarningGrade::Overdue)
    } else if now >= instants.approaching_from {
        Some(WarningGrade::Approaching)
    } else {
        None
    }
}

/// When one deadline's grade changes. The one rule for grading: [`grade`] reads it at a `now`,
/// and the measures' rollup (`rollup.rs`) counts these instants ahead of any `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradeInstants {
    /// 预警 from this instant on (the start of time when the window reaches back that far).
    pub approaching_from: DateTime<Utc>,
    /// 超时 strictly after this instant: the due instant itself is still in time.
    pub overdue_after: DateTime<Utc>,
    /// 严重超时 strictly after this instant; `None` past the last instant chrono holds.
    pub seriously_overdue_after: Option<DateTime<Utc>>,
}

pub fn grade_instants(due: DateTime<Utc>, thresholds: &WarningThresholds) -> GradeInstants {
    let window = Duration::days(i64::from(thresholds.approaching_days));
    let serious_after = Duration::days(i64::from(thresholds.serious_overdue_days));
    GradeInstants {
        approaching_from: due
            .checked_sub_signed(window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
        overdue_after: due,
        seriously_overdue_after: due.checked_add_signed(serious_after),
    }
}

/// The latest earliest open deadline ([`crate::summary::earliest_open_deadline`]) at which a
/// case warns at `now`: [`warnings`] is non-empty exactly when that deadline is at or before this
/// instant, since every grade begins at the 预警 window's start and the earliest deadline is
/// the first to reach it. The store's deadline index answers "which cases warn" with this bound.
pub fn warning_horizon(now: DateTime<Utc>, thresholds: &WarningThresholds) -> DateTime<Utc> {
    let window = Duration::days(i64::from(thresholds.approaching_days));
    now.checked_add_signed(window)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The earliest open deadlines ([`crate::summary::earliest_open_deadline`]) at which a case's
/// worst grade at `now` is `grade`, as an inclusive range `(from, to)` (`None`: unbounded), or
/// `None` when no deadline has that grade. [`grade`] only worsens as a deadline passes, so the
/// worst grade of a case is the grade of its earliest deadline, and one grade is one range of the
/// store's deadline order: the 台账 reads a grade filter from index keys with it.
#[allow(clippy::type_complexity)]
pub fn grade_deadline_range(
    wanted: WarningGrade,
    now: DateTime<Utc>,
    thresholds: &WarningThresholds,
) -> Option<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let window = Duration::days(i64::from(thresholds.approaching_days));
    let serious_after = Duration::days(i64::from(thresholds.serious_overdue_days));
    // `now > due` is `due <= now - 1ns`, the finest step an instant has.
    let before = |instant: DateTime<Utc>| instant.checked_sub_signed(Duration::nanoseconds(1));
    match wanted {
        WarningGrade::Approaching => Some((Some(now), now.checked_add_signed(window))),
        WarningGrade::Overdue => Some((now.checked_sub_signed(serious_after), Some(before(now)?))),
        WarningGrade::SeriouslyOverdue => {
            let serious_from = now.checked_sub_signed(serious_after)?;
            Some((None, Some(before(serious_from)?)))
        }
    }
}

/// Whether the case has any warning at `now`: the same answer as `!warnings(..).is_empty()`,
/// read from the earliest open deadline alone.
pub fn warns(summary: &CaseSummary, now: DateTime<Utc>, thresholds: &WarningThresholds) -> bool {
    crate::summary::earliest_open_deadline(summary)
        .is_some_and(|deadline| deadline <= warning_horizon(now, thresholds))
}

/// The most severe grade among `warnings`, for listing a case once at its worst.
pub fn worst_grade(warnings: &[Warning]) -> Option<WarningGrade> {
    warnings.iter().map(|warning| warning.grade).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeadlineKind, DirectiveStatus, Status};
    use crate::summary::test_support::{day, directive, summary};

    fn thresholds() -> WarningThresholds {
        WarningThresholds {
            approaching_days: 3,
            serious_overdue_days: 15,
        }
    }

    #[test]
    fn a_grade_is_the_range_of_earliest_deadlines_grade_deadline_range_names() {
        let now = day(20);
        let offsets = [
            -Duration::days(40),
            -Duration::days(15) - Duration::nanoseconds(1),
            -Duration::days(15),
            -Duration::days(15) + Duration::microseconds(1),
            -Duration::days(2),
            -Duration::nanoseconds(1),
            Duration::zero(),
            Duration::nanoseconds(1),
            Duration::days(3),
            Duration::days(3) + Duration::nanoseconds(1),
            Duration::days(30),
        ];
        let grades = [
            WarningGrade::Approaching,
            WarningGrade::Overdue,
            WarningGrade::SeriouslyOverdue,
        ];
        let mut previous = None;
        for offset in offsets {
            let due = now + offset;
            let graded = grade(due, now, &thresholds());
            // A later deadline is never graded worse: the worst grade is the earliest's.
            if let Some(previous) = previous {
                assert!(graded <= previous, "{offset:?}");
            }
            previous = Some(graded);
            for wanted in grades {
                let in_range =
                    grade_deadline_range(wanted, now, &thresholds()).is_some_and(|(from, to)| {
                        from.is_none_or(|from| due >= from) && to.is_none_or(|to| due <= to)
                    });
                assert_eq!(in_range, graded == Some(wanted), "{wanted:?} at {offset:?}");
            }
        }
    }

    #[test]
    fn grades_around_the_due_instant() {
        let due = day(20);
        let thresholds = thresholds();
        let second = Duration::seconds(1);
        let cases = [
            (due - Duration::days(3) - second, None),
            (due - Duration::days(3), Some(WarningGrade::Approaching)),
            (due, Some(WarningGrade::Approaching)),
            (due + second, Some(WarningGrade::Overdue)),
            (due + Duration::days(15), Some(WarningGrade::Overdue)),
            (
                due + Duration::days(15) + second,
                Some(WarningGrade::SeriouslyOverdue),
            ),
        ];
        for (now, expected) in cases {
            assert_eq!(grade(due, now, &thresholds), expected, "at {now}");
        }
    }

    #[test]
    fn zero_thresholds_warn_only_at_the_instant_and_any_lateness_is_serious() {
        let zero = WarningThresholds {
            approaching_days: 0,
            serious_overdue_days: 0,
        };
        let due = day(10);
        assert_eq!(grade(due, due - Duration::seconds(1), &zero), None);
        assert_eq!(grade(due, due, &zero), Some(WarningGrade::Approaching));
        assert_eq!(
            grade(due, due + Duration::seconds(1), &zero),
            Some(WarningGrade::SeriouslyOverdue)
        );
    }

    #[test]
    fn each_status_warns_on_its_own_deadline() {
        let now = day(30);
        let thresholds = thresholds();
        let mut case = summary(Status::Registered);
        case.timeline.acceptance_deadline = Some(day(16));
        case.timeline.objection_deadline = Some(day(29));
        case.timeline.handling_deadline = Some(day(31));
        case.timeline.review_deadline = Some(day(1));
        case.timeline.evaluation_deadline = Some(day(2));
        let expected = [
            (
                Status::Registered,
                DeadlineKind::Acceptance,
                WarningGrade::Overdue,
            ),
            (
                Status::AwaitingReceiver,
                DeadlineKind::Objection,
                WarningGrade::Overdue,
            ),
            (
                Status::Accepted,
                DeadlineKind::Handling,
                WarningGrade::Approaching,
            ),
            (
                Status::UnderReview,
                DeadlineKind::ReviewDecision,
                WarningGrade::SeriouslyOverdue,
            ),
        ];
        for (status, kind, grade) in expected {
            case.status = status;
            let found = warnings(&case, now, &thresholds);
            assert_eq!(found.len(), 1, "{status:?}");
            assert_eq!(found[0].deadline, kind);
            assert_eq!(found[0].grade, grade);
            assert_eq!(found[0].directive, None);
        }
    }

    #[test]
    fn expired_evaluation_window_is_not_a_staff_warning() {
        let mut case = summary(Status::Replied);
        case.timeline.handling_deadline = Some(day(2));
        case.timeline.evaluation_deadline = Some(day(3));
        assert!(warnings(&case, day(60), &thresholds()).is_empty());
    }

    #[test]
    fn open_directives_warn_even_on_a_closed_case_and_crossed_off_ones_do_not() {
        let mut case = summary(Status::Closed);
        case.directives = vec![
            directive("d-crossed", day(5), DirectiveStatus::CrossedOff),
            directive("d-late", day(10), DirectiveStatus::Acknowledged),
            directive("d-far", day(40), DirectiveStatus::Issued),
            directive("d-near", day(21), DirectiveStatus::Returned),
        ];
        let found = warnings(&case, day(20), &thresholds());
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].deadline, DeadlineKind::Directive);
        assert_eq!(found[0].directive.as_deref(), Some("d-late"));
        assert_eq!(found[0].grade, WarningGrade::Overdue);
        assert_eq!(found[1].directive.as_deref(), Some("d-near"));
        assert_eq!(found[1].grade, WarningGrade::Approaching);
        assert_eq!(found[1].due, day(21));
    }

    proptest::proptest! {
        /// The deadline-index answer ([`warns`]) agrees with the grading for any summary: any
        /// status, deadlines and directives around `now`, any thresholds.
        #[test]
        fn warns_agrees_with_the_grading(
            status_index in 0usize..11,
            deadline_offsets in proptest::collection::vec(proptest::option::of(-40i64..40), 5),
            directives in proptest::collection::vec((-40i64..40, 0usize..5), 0..4),
            approaching_days in 0u32..10,
            serious_overdue_days in 0u32..30,
            now_offset_minutes in -1i64..2,
        ) {
            let statuses = [
                Status::Registered, Status::AwaitingReceiver, Status::Accepted,
                Status::NotAccepted, Status::Diverted, Status::ForwardedOut, Status::Replied,
                Status::Evaluated, Status::Closed, Status::UnderReview, Status::Final,
            ];
            let directive_statuses = [
                DirectiveStatus::Issued, DirectiveStatus::Acknowledged, DirectiveStatus::Reported,
                DirectiveStatus::Returned, DirectiveStatus::CrossedOff,
            ];
            let now = day(20) + Duration::minutes(now_offset_minutes);
            // Whole days from `now`'s day, so deadlines land exactly on window edges too.
            let at = |offset: i64| day(20) + Duration::days(offset);
            let mut case = summary(statuses[status_index]);
            let offset = |index: usize| deadline_offsets[index].map(at);
            case.timeline.acceptance_deadline = offset(0);
            case.timeline.objection_deadline = offset(1);
            case.timeline.handling_deadline = offset(2);
            case.timeline.review_deadline = offset(3);
            case.timeline.evaluation_deadline = offset(4);
            case.directives = directives
                .iter()
                .enumerate()
                .map(|(index, (due, status))| {
                    directive(&format!("d{index}"), at(*due), directive_statuses[*status])
                })
                .collect();
            let thresholds = WarningThresholds { approaching_days, serious_overdue_days };
            proptest::prop_assert_eq!(
                warns(&case, now, &thresholds),
                !warnings(&case, now, &thresholds).is_empty()
            );
        }
    }

    #[test]
    fn warning_horizon_saturates_at_the_end_of_time() {
        let thresholds = thresholds();
        assert_eq!(
            warning_horizon(DateTime::<Utc>::MAX_UTC, &thresholds),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(warning_horizon(day(1), &thresholds), day(4));
    }

    #[test]
    fn worst_grade_picks_the_most_severe() {
        let mut case = summary(Status::Accepted);
        case.timeline.handling_deadline = Some(day(21));
        case.directives = vec![directive("d1", day(1), DirectiveStatus::Issued)];
        let found = warnings(&case, day(20), &thresholds());
        assert_eq!(worst_grade(&found), Some(WarningGrade::SeriouslyOverdue));
        assert_eq!(worst_grade(&found[..1]), Some(WarningGrade::Approaching));
        assert_eq!(worst_grade(&[]), None);
    }
}
