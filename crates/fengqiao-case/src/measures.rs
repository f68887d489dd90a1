//! The supervisors' measures (及时受理率, 按期办结率, …) over case summaries, per period and category.
//!
//! A case enters a ratio's denominator once it has either met the event the ratio is about or
//! run out of time for it at `now`; a case still inside its limit is not judged yet. A deadline is
//! met when the event happened at or before the due instant (the same rule the warnings use).

use chrono::{DateTime, Utc};

use crate::model::{
    CaseSummary, DirectiveStatus, ImportedCases, MeasureSet, Measures, SCHEMA_VERSION,
    Satisfaction, WarningGrade, WarningThresholds,
};
use crate::warnings::{warnings, worst_grade};

/// Measures over the cases registered in `[from, to)`, with or without those a ledger import
/// registered, judged at `now`.
pub fn measures<'a>(
    summaries: impl IntoIterator<Item = &'a CaseSummary>,
    imported: ImportedCases,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    thresholds: &WarningThresholds,
) -> Measures {
    let mut result = Measures {
        schema_version: SCHEMA_VERSION,
        from,
        to,
        imported,
        now,
        total: MeasureSet::default(),
        by_category: Default::default(),
    };
    for summary in summaries {
        if !registered_in_period(summary, from, to) || !imported.counts(summary.imported) {
            continue;
        }
        add_case(&mut result.total, summary, now, thresholds);
        add_case(
            result.by_category.entry(summary.category).or_default(),
            summary,
            now,
            thresholds,
        );
    }
    result
}

/// Measures over every case given, with no period filter (for a village or a list already chosen).
pub fn measure_set<'a>(
    summaries: impl IntoIterator<Item = &'a CaseSummary>,
    now: DateTime<Utc>,
    thresholds: &WarningThresholds,
) -> MeasureSet {
    let mut set = MeasureSet::default();
    for summary in summaries {
        add_case(&mut set, summary, now, thresholds);
    }
    set
}

/// Whether the case was registered in `[from, to)`. A case without a registration time cannot be
/// placed in a period, so it only counts when the period is unbounded on both sides.
pub fn registered_in_period(
    summary: &CaseSummary,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> bool {
    match summary.timeline.registered_at {
        Some(registered) => {
            from.is_none_or(|from| registered >= from) && to.is_none_or(|to| registered < to)
        }
        None => from.is_none() && to.is_none(),
    }
}

/// Add one case to a measure set.
pub fn add_case(
    set: &mut MeasureSet,
    summary: &CaseSummary,
    now: DateTime<Utc>,
    thresholds: &WarningThresholds,
) {
    let timeline = &summary.timeline;
    set.cases += 1;

    // 及时受理率. A decision with no recorded deadline had no limit to miss.
    match timeline.decided_at {
        Some(decided) => {
            set.timely_acceptance.denominator += 1;
            if timeline
                .decided_deadline
                .is_none_or(|deadline| decided <= deadline)
            {
                set.timely_acceptance.numerator += 1;
            }
        }
        None => {
            if timeline.acceptance_deadline.is_some_and(|due| now > due) {
                set.timely_acceptance.denominator += 1;
            }
        }
    }

    // 按期办结率.
    match timeline.replied_at {
        Some(replied) => {
            set.on_time_completion.denominator += 1;
            if timeline
                .replied_deadline
                .is_none_or(|deadline| replied <= deadline)
            {
                set.on_time_completion.numerator += 1;
            }
        }
        None => {
            if timeline.handling_deadline.is_some_and(|due| now > due) {
                set.on_time_completion.denominator += 1;
            }
        }
    }

    // 参评率 and 满意率.
    let evaluated = timeline.evaluated_at.is_some() || summary.satisfaction.is_some();
    if evaluated {
        set.evaluation.numerator += 1;
        set.evaluation.denominator += 1;
    } else if timeline.evaluation_deadline.is_some_and(|due| now > due) {
        set.evaluation.denominator += 1;
    }
    if let Some(satisfaction) = summary.satisfaction {
        set.satisfaction.denominator += 1;
        if matches!(
            satisfaction,
            Satisfaction::Satisfied | Satisfaction::BasicallySatisfied
        ) {
            set.satisfaction.numerator += 1;
        }
    }

    // 化解率: only cases handled to the end (closed) are judged.
    if timeline.closed_at.is_some() {
        set.resolution.denominator += 1;
        if summary.resolved == Some(true) {
            set.resolution.numerator += 1;
        }
    }

    // 重复信访率.
    set.repeat.denominator += 1;
    if summary.repeat_of.is_some() {
        set.repeat.numerator += 1;
    }

    match worst_grade(&warnings(summary, now, thresholds)) {
        Some(WarningGrade::Approaching) => set.approaching += 1,
        Some(WarningGrade::Overdue) => set.overdue += 1,
        Some(WarningGrade::SeriouslyOverdue) => set.seriously_overdue += 1,
        None => {}
    }

    for directive in &summary.directives {
        if directive.status == DirectiveStatus::CrossedOff {
            set.directives_crossed_off += 1;
        } else {
            set.directives_open += 1;
            if now > directive.due {
                set.directives_overdue += 1;
            }
        }
    }

    set.escalated += u64::from(summary.escalated);
    set.assigned += u64::from(summary.assigned);
    set.in_conflict += u64::from(summary.in_conflict);
    *set.by_status.entry(summary.status).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Category, Ratio, Status};
    use crate::summary::test_support::{day, directive, summary};
    use chrono::Duration;

    fn thresholds() -> WarningThresholds {
        WarningThresholds::default()
    }

    fn total(cases: &[CaseSummary], now: DateTime<Utc>) -> MeasureSet {
        measures(
            cases,
            ImportedCases::Include,
            None,
            None,
            now,
            &thresholds(),
        )
        .total
    }

    fn ratio(numerator: u64, denominator: u64) -> Ratio {
        Ratio {
            numerator,
            denominator,
        }
    }

    #[test]
    fn timely_acceptance_counts_decisions_and_expired_undecided_cases() {
        let deadline = day(16);
        let decided = |at: DateTime<Utc>| {
            let mut case = summary(Status::Accepted);
            case.timeline.acceptance_deadline = Some(deadline);
            case.timeline.decided_at = Some(at);
            case.timeline.decided_deadline = Some(deadline);
            case
        };
        let undecided = || {
            let mut case = summary(Status::Registered);
            case.timeline.acceptance_deadline = Some(deadline);
            case
        };
        let exactly_at_deadline = decided(deadline);
        let early = decided(day(3));
        let late = decided(deadline + Duration::seconds(1));
        let cases = [exactly_at_deadline, early, late, undecided()];

        // Undecided and exactly at its deadline: not yet judged.
        assert_eq!(total(&cases, deadline).timely_acceptance, ratio(2, 3));
        // Undecided one second past its deadline: late.
        assert_eq!(
            total(&cases, deadline + Duration::seconds(1)).timely_acceptance,
            ratio(2, 4)
        );
        // Undecided and no deadline known: not judged.
        assert_eq!(
            total(&[summary(Status::Registered)], day(90)).timely_acceptance,
            ratio(0, 0)
        );
        assert_eq!(ratio(0, 0).rate(), None);
    }

    #[test]
    fn on_time_completion_counts_replies_and_expired_unreplied_cases() {
        let deadline = day(61);
        let replied = |at: DateTime<Utc>| {
            let mut case = summary(Status::Replied);
            case.timeline.handling_deadline = Some(deadline);
            case.timeline.replied_at = Some(at);
            case.timeline.replied_deadline = Some(deadline);
            case
        };
        let mut unreplied = summary(Status::Accepted);
        unreplied.timeline.handling_deadline = Some(deadline);
        let mut not_yet_accepted = summary(Status::Registered);
        not_yet_accepted.timeline.acceptance_deadline = Some(day(16));
        let cases = [
            replied(deadline),
            replied(day(30)),
            replied(deadline + Duration::days(2)),
            unreplied,
            not_yet_accepted,
        ];
        assert_eq!(total(&cases, deadline).on_time_completion, ratio(2, 3));
        assert_eq!(
            total(&cases, deadline + Duration::minutes(1)).on_time_completion,
            ratio(2, 4)
        );
    }

    #[test]
    fn extended_deadline_in_force_at_the_reply_is_the_one_judged() {
        let mut case = summary(Status::Closed);
        case.timeline.handling_deadline = Some(day(91));
        case.timeline.extended_days = Some(30);
        case.timeline.replied_at = Some(day(80));
        case.timeline.replied_deadline = Some(day(91));
        assert_eq!(total(&[case], day(120)).on_time_completion, ratio(1, 1));
    }

    #[test]
    fn evaluation_rate_counts_evaluated_and_expired_windows() {
        let window_end = day(40);
        let mut evaluated = summary(Status::Evaluated);
        evaluated.timeline.evaluation_deadline = Some(window_end);
        evaluated.timeline.evaluated_at = Some(day(35));
        evaluated.satisfaction = Some(Satisfaction::Satisfied);
        let mut waiting = summary(Status::Replied);
        waiting.timeline.evaluation_deadline = Some(window_end);
        let mut closed_unevaluated = summary(Status::Closed);
        closed_unevaluated.timeline.evaluation_deadline = Some(day(20));
        let cases = [evaluated, waiting, closed_unevaluated];
        assert_eq!(total(&cases, window_end).evaluation, ratio(1, 2));
        assert_eq!(
            total(&cases, window_end + Duration::seconds(1)).evaluation,
            ratio(1, 3)
        );
    }

    #[test]
    fn satisfaction_counts_satisfied_and_basically_satisfied_over_evaluated() {
        let with = |satisfaction: Option<Satisfaction>| {
            let mut case = summary(Status::Evaluated);
            case.satisfaction = satisfaction;
            case.timeline.evaluated_at = satisfaction.map(|_| day(40));
            case
        };
        let cases = [
            with(Some(Satisfaction::Satisfied)),
            with(Some(Satisfaction::BasicallySatisfied)),
            with(Some(Satisfaction::Unsatisfied)),
            with(None),
        ];
        let set = total(&cases, day(41));
        assert_eq!(set.satisfaction, ratio(2, 3));
        assert_eq!(set.evaluation, ratio(3, 3));
    }

    #[test]
    fn resolution_counts_resolved_over_closed() {
        let closed = |resolved: bool| {
            let mut case = summary(Status::Closed);
            case.timeline.closed_at = Some(day(50));
            case.resolved = Some(resolved);
            case
        };
        let mut reopened = summary(Status::Accepted);
        reopened.resolved = Some(true);
        let cases = [closed(true), closed(true), closed(false), reopened];
        assert_eq!(total(&cases, day(60)).resolution, ratio(2, 3));
    }

    #[test]
    fn repeat_rate_counts_linked_cases_over_all() {
        let mut repeat = summary(Status::Registered);
        repeat.repeat_of = Some("430702001001-2025-000010".to_owned());
        let cases = [repeat, summary(Status::Registered), summary(Status::Closed)];
        assert_eq!(total(&cases, day(2)).repeat, ratio(1, 3));
    }

    #[test]
    fn cases_count_once_at_their_worst_warning_grade() {
        let now = day(40);
        let mut approaching = summary(Status::Accepted);
        approaching.timeline.handling_deadline = Some(now + Duration::days(2));
        let mut overdue = summary(Status::Registered);
        overdue.timeline.acceptance_deadline = Some(now - Duration::days(1));
        let mut overdue_and_serious = summary(Status::Accepted);
        overdue_and_serious.timeline.handling_deadline = Some(now - Duration::days(1));
        overdue_and_serious.directives = vec![directive("d1", day(1), DirectiveStatus::Issued)];
        let mut quiet = summary(Status::Accepted);
        quiet.timeline.handling_deadline = Some(now + Duration::days(30));
        let set = total(&[approaching, overdue, overdue_and_serious, quiet], now);
        assert_eq!(
            (set.approaching, set.overdue, set.seriously_overdue),
            (1, 1, 1)
        );
    }

    #[test]
    fn directives_open_overdue_and_crossed_off() {
        let now = day(20);
        let mut case = summary(Status::Accepted);
        case.directives = vec![
            directive("late", day(19), DirectiveStatus::Reported),
            directive("due-now", now, DirectiveStatus::Issued),
            directive("done", day(2), DirectiveStatus::CrossedOff),
        ];
        let set = total(&[case], now);
        assert_eq!(set.directives_open, 2);
        assert_eq!(set.directives_overdue, 1);
        assert_eq!(set.directives_crossed_off, 1);
    }

    #[test]
    fn flags_and_status_counts() {
        let mut escalated = summary(Status::Registered);
        escalated.escalated = true;
        let mut assigned = summary(Status::AwaitingReceiver);
        assigned.assigned = true;
        let mut conflicted = summary(Status::Accepted);
        conflicted.in_conflict = true;
        let set = total(
            &[escalated, assigned, conflicted, summary(Status::Accepted)],
            day(2),
        );
        assert_eq!(set.cases, 4);
        assert_eq!((set.escalated, set.assigned, set.in_conflict), (1, 1, 1));
        assert_eq!(set.by_status.get(&Status::Accepted), Some(&2));
        assert_eq!(set.by_status.get(&Status::Registered), Some(&1));
        assert_eq!(set.by_status.get(&Status::AwaitingReceiver), Some(&1));
        assert_eq!(set.by_status.get(&Status::Closed), None);
    }

    #[test]
    fn period_is_half_open_on_registration_and_split_by_category() {
        let registered = |at: DateTime<Utc>, category: Category| {
            let mut case = summary(Status::Registered);
            case.timeline.registered_at = Some(at);
            case.category = category;
            case
        };
        let mut unregistered = summary(Status::Registered);
        unregistered.timeline.registered_at = None;
        let cases = [
            registered(day(1) - Duration::seconds(1), Category::WageArrears),
            registered(day(1), Category::WageArrears),
            registered(day(5), Category::Environment),
            registered(day(10), Category::WageArrears),
            unregistered,
        ];
        let result = measures(
            &cases,
            ImportedCases::Include,
            Some(day(1)),
            Some(day(10)),
            day(11),
            &thresholds(),
        );
        assert_eq!(result.schema_version, SCHEMA_VERSION);
        assert_eq!(
            (result.from, result.to, result.now),
            (Some(day(1)), Some(day(10)), day(11))
        );
        assert_eq!(result.total.cases, 2);
        assert_eq!(result.by_category.len(), 2);
        assert_eq!(result.by_category[&Category::WageArrears].cases, 1);
        assert_eq!(result.by_category[&Category::Environment].cases, 1);

        let unbounded = measures(
            &cases,
            ImportedCases::Include,
            None,
            None,
            day(11),
            &thresholds(),
        );
        assert_eq!(unbounded.total.cases, 5);
        let sum: u64 = unbounded.by_category.values().map(|set| set.cases).sum();
        assert_eq!(sum, unbounded.total.cases);
    }
}
