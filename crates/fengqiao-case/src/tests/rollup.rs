//! The incrementally kept measures (`crate::rollup`) against the scan they replace (`crate::measures`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use crate::measures::measures;
use crate::model::{
    CaseSummary, Category, DirectiveStatus, ImportedCases, MeasureSet, Measures, Ratio,
    Satisfaction, Status, WarningThresholds,
};
use crate::rollup::Rollup;
use crate::summary::test_support::{day, directive, summary};

const GROUPS: [&str; 3] = ["", "node-village-a", "node-village-b"];

fn thresholds() -> WarningThresholds {
    WarningThresholds {
        approaching_days: 3,
        serious_overdue_days: 15,
    }
}

fn ratio(numerator: u64, denominator: u64) -> Ratio {
    Ratio {
        numerator,
        denominator,
    }
}

/// The scan over the reference cases of `groups` (all when `None`) and `category`.
#[allow(clippy::too_many_arguments)]
fn scan(
    cases: &BTreeMap<String, (String, CaseSummary)>,
    groups: Option<&[&str]>,
    category: Option<Category>,
    imported: ImportedCases,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    thresholds: &WarningThresholds,
) -> Measures {
    let selected = cases
        .values()
        .filter(|(group, _)| groups.is_none_or(|groups| groups.contains(&group.as_str())))
        .map(|(_, summary)| summary)
        .filter(|summary| category.is_none_or(|category| summary.category == category));
    measures(selected, imported, from, to, now, thresholds)
}

fn scan_by_group(
    cases: &BTreeMap<String, (String, CaseSummary)>,
    category: Option<Category>,
    imported: ImportedCases,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    thresholds: &WarningThresholds,
) -> BTreeMap<String, MeasureSet> {
    let groups: BTreeSet<&str> = cases.values().map(|(group, _)| group.as_str()).collect();
    groups
        .into_iter()
        .map(|group| {
            let only = [group];
            let total = scan(
                cases,
                Some(&only),
                category,
                imported,
                from,
                to,
                now,
                thresholds,
            )
            .total;
            (group.to_owned(), total)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases
// ---------------------------------------------------------------------------------------------

#[test]
fn rollup_a_case_moving_groups_leaves_its_old_group() {
    let mut rollup = Rollup::new(thresholds());
    let mut case = summary(Status::Accepted);
    case.timeline.handling_deadline = Some(day(10));
    rollup.update("case-1", "node-village-a", Some(&case));
    rollup.update(
        "case-2",
        "node-village-a",
        Some(&summary(Status::Registered)),
    );
    rollup.update("case-1", "node-village-b", Some(&case));

    assert_eq!(rollup.case_count(), 2);
    assert_eq!(rollup.group_of("case-1"), Some("node-village-b"));
    let now = day(11);
    let by_group = rollup.by_group(None, ImportedCases::Include, None, None, now);
    assert_eq!(by_group.len(), 2);
    assert_eq!(by_group["node-village-a"].cases, 1);
    assert_eq!(by_group["node-village-a"].overdue, 0);
    assert_eq!(by_group["node-village-b"].cases, 1);
    assert_eq!(by_group["node-village-b"].overdue, 1);
    assert_eq!(by_group["node-village-b"].on_time_completion, ratio(0, 1));

    let only_a = rollup.measures(
        Some(&["node-village-a"]),
        None,
        ImportedCases::Include,
        None,
        None,
        now,
    );
    assert_eq!(only_a.total.cases, 1);
    assert_eq!(only_a.total.by_status.get(&Status::Registered), Some(&1));
    assert_eq!(only_a.total.by_status.get(&Status::Accepted), None);

    // Moving the last case out of a group removes the group.
    rollup.update(
        "case-2",
        "node-village-b",
        Some(&summary(Status::Registered)),
    );
    let by_group = rollup.by_group(None, ImportedCases::Include, None, None, now);
    assert_eq!(by_group.keys().collect::<Vec<_>>(), ["node-village-b"]);
    assert_eq!(by_group["node-village-b"].cases, 2);
}

#[test]
fn rollup_removing_a_case_takes_back_everything_it_added() {
    let mut rollup = Rollup::new(thresholds());
    let mut late = summary(Status::Registered);
    late.timeline.acceptance_deadline = Some(day(5));
    late.directives = vec![
        directive("d-open", day(6), DirectiveStatus::Issued),
        directive("d-done", day(6), DirectiveStatus::CrossedOff),
    ];
    late.escalated = true;
    let mut satisfied = summary(Status::Evaluated);
    satisfied.satisfaction = Some(Satisfaction::Satisfied);
    satisfied.timeline.evaluated_at = Some(day(8));
    rollup.update("late", "", Some(&late));
    rollup.update("satisfied", "", Some(&satisfied));

    let now = day(30);
    let both = rollup
        .measures(None, None, ImportedCases::Include, None, None, now)
        .total;
    assert_eq!(both.cases, 2);
    assert_eq!(both.timely_acceptance, ratio(0, 1));
    assert_eq!(both.seriously_overdue, 1);
    assert_eq!(
        (
            both.directives_open,
            both.directives_overdue,
            both.directives_crossed_off
        ),
        (1, 1, 1)
    );
    assert_eq!(both.satisfaction, ratio(1, 1));
    assert_eq!(both.escalated, 1);

    rollup.update("late", "", None);
    // Removing a case that is not counted changes nothing.
    rollup.update("never-counted", "", None);
    assert_eq!(rollup.case_count(), 1);
    let left = rollup
        .measures(None, None, ImportedCases::Include, None, None, now)
        .total;
    assert_eq!(left.cases, 1);
    assert_eq!(left.timely_acceptance, ratio(0, 0));
    assert_eq!(
        (left.approaching, left.overdue, left.seriously_overdue),
        (0, 0, 0)
    );
    assert_eq!(
        (
            left.directives_open,
            left.directives_overdue,
            left.directives_crossed_off
        ),
        (0, 0, 0)
    );
    assert_eq!(left.escalated, 0);
    assert_eq!(left.evaluation, ratio(1, 1));
    assert_eq!(left.by_status.len(), 1);

    rollup.update("satisfied", "", None);
    assert_eq!(rollup.case_count(), 0);
    assert!(
        rollup
            .by_group(None, ImportedCases::Include, None, None, now)
            .is_empty()
    );
    assert_eq!(
        rollup
            .measures(None, None, ImportedCases::Include, None, None, now)
            .total,
        MeasureSet::default()
    );
}

#[test]
fn rollup_grades_exactly_at_the_warning_and_deadline_boundaries() {
    let mut rollup = Rollup::new(thresholds());
    let due = day(20);
    let mut undecided = summary(Status::Registered);
    undecided.timeline.acceptance_deadline = Some(due);
    rollup.update("undecided", "", Some(&undecided));

    let nanosecond = Duration::nanoseconds(1);
    let grades = |now: DateTime<Utc>| {
        let set = rollup
            .measures(None, None, ImportedCases::Include, None, None, now)
            .total;
        (
            set.approaching,
            set.overdue,
            set.seriously_overdue,
            set.timely_acceptance.denominator,
        )
    };
    assert_eq!(grades(due - Duration::days(3) - nanosecond), (0, 0, 0, 0));
    assert_eq!(grades(due - Duration::days(3)), (1, 0, 0, 0));
    // The due instant itself is still in time.
    assert_eq!(grades(due), (1, 0, 0, 0));
    assert_eq!(grades(due + nanosecond), (0, 1, 0, 1));
    assert_eq!(grades(due + Duration::days(15)), (0, 1, 0, 1));
    assert_eq!(grades(due + Duration::days(15) + nanosecond), (0, 0, 1, 1));
}

#[test]
fn rollup_period_ends_inside_a_day_and_at_midnight() {
    let midnight = Utc
        .with_ymd_and_hms(2026, 3, 10, 0, 0, 0)
        .single()
        .expect("valid instant");
    let millisecond = Duration::milliseconds(1);
    let registered = |at: DateTime<Utc>| {
        let mut case = summary(Status::Registered);
        case.timeline.registered_at = Some(at);
        case
    };
    let mut rollup = Rollup::new(thresholds());
    rollup.update("just-before", "", Some(&registered(midnight - millisecond)));
    rollup.update("at-midnight", "", Some(&registered(midnight)));
    rollup.update(
        "noon",
        "",
        Some(&registered(midnight + Duration::hours(12))),
    );
    rollup.update(
        "next-day",
        "",
        Some(&registered(midnight + Duration::days(1))),
    );
    let mut unregistered = registered(midnight);
    unregistered.timeline.registered_at = None;
    rollup.update("unregistered", "", Some(&unregistered));

    let now = midnight + Duration::days(2);
    let count = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| {
        rollup
            .measures(None, None, ImportedCases::Include, from, to, now)
            .total
            .cases
    };
    assert_eq!(count(None, None), 5);
    assert_eq!(count(Some(midnight), None), 3);
    assert_eq!(count(None, Some(midnight)), 1);
    assert_eq!(count(Some(midnight - millisecond), Some(midnight)), 1);
    assert_eq!(
        count(Some(midnight), Some(midnight + Duration::hours(12))),
        1
    );
    assert_eq!(
        count(
            Some(midnight + millisecond),
            Some(midnight + Duration::hours(12) + millisecond)
        ),
        1
    );
    assert_eq!(count(Some(midnight), Some(midnight + Duration::days(1))), 2);
    assert_eq!(
        count(
            Some(midnight - millisecond),
            Some(midnight + Duration::days(1) + millisecond)
        ),
        4
    );
    // An empty or reversed period holds nothing.
    assert_eq!(count(Some(midnight), Some(midnight)), 0);
    assert_eq!(count(Some(midnight + Duration::days(1)), Some(midnight)), 0);
}

#[test]
fn rollup_filters_by_category_and_lists_only_categories_present() {
    let mut rollup = Rollup::new(thresholds());
    let mut environment = summary(Status::Accepted);
    environment.category = Category::Environment;
    rollup.update("wage", "", Some(&summary(Status::Registered)));
    rollup.update("environment", "node-village-a", Some(&environment));
    let now = day(3);
    let all = rollup.measures(None, None, ImportedCases::Include, None, None, now);
    assert_eq!(all.by_category.len(), 2);
    let only_environment = rollup.measures(
        None,
        Some(Category::Environment),
        ImportedCases::Include,
        None,
        None,
        now,
    );
    assert_eq!(only_environment.total.cases, 1);
    assert_eq!(
        only_environment.by_category.keys().collect::<Vec<_>>(),
        [&Category::Environment]
    );
    let by_group = rollup.by_group(
        Some(Category::Environment),
        ImportedCases::Include,
        None,
        None,
        now,
    );
    assert_eq!(by_group[""].cases, 0);
    assert_eq!(by_group["node-village-a"].cases, 1);
}

// ---------------------------------------------------------------------------------------------
// Property: equal to the scan after any updates, for any query
// ---------------------------------------------------------------------------------------------

fn march_midnight() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .expect("valid instant")
}

/// Offsets into a day that sit on, just after and just before the UTC day boundaries.
fn offset_into_day(index: usize) -> Duration {
    match index {
        0 => Duration::zero(),
        1 => Duration::nanoseconds(1),
        2 => Duration::milliseconds(1),
        3 => Duration::hours(12),
        4 => Duration::days(1) - Duration::milliseconds(1),
        _ => Duration::days(1) - Duration::nanoseconds(1),
    }
}

/// Instants mostly over a fortnight, bunched on day boundaries so that equal instants and boundary
/// instants are common; some over eight years, so that periods cover the coarse day blocks; and
/// now and then the first or last instant chrono holds.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        40 => (-3i64..12, 0usize..6).prop_map(|(days, offset)| {
            march_midnight() + Duration::days(days) + offset_into_day(offset)
        }),
        6 => (-1500i64..1500, 0usize..6).prop_map(|(days, offset)| {
            march_midnight() + Duration::days(days) + offset_into_day(offset)
        }),
        1 => Just(DateTime::<Utc>::MIN_UTC),
        1 => Just(DateTime::<Utc>::MAX_UTC),
    ]
}

use crate::rollup::STATUS_ORDER as STATUSES;

const DIRECTIVE_STATUSES: [DirectiveStatus; 5] = [
    DirectiveStatus::Issued,
    DirectiveStatus::Acknowledged,
    DirectiveStatus::Reported,
    DirectiveStatus::Returned,
    DirectiveStatus::CrossedOff,
];

const CATEGORIES: [Category; 3] = [
    Category::WageArrears,
    Category::Environment,
    Category::Neighbourhood,
];

const SATISFACTIONS: [Satisfaction; 3] = [
    Satisfaction::Satisfied,
    Satisfaction::BasicallySatisfied,
    Satisfaction::Unsatisfied,
];

fn maybe_instant() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    prop::option::of(instant())
}

fn random_summary() -> impl Strategy<Value = CaseSummary> {
    let timeline = (
        prop::option::weighted(0.9, instant()),
        maybe_instant(),
        maybe_instant(),
        maybe_instant(),
        maybe_instant(),
        maybe_instant(),
        maybe_instant(),
        maybe_instant(),
        maybe_instant(),
        maybe_instant(),
        maybe_instant(),
        maybe_instant(),
    );
    let rest = (
        prop::sample::select(STATUSES.to_vec()),
        prop::sample::select(CATEGORIES.to_vec()),
        prop::option::of(prop::sample::select(SATISFACTIONS.to_vec())),
        prop::option::of(any::<bool>()),
        any::<bool>(),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::collection::vec(
            (instant(), prop::sample::select(DIRECTIVE_STATUSES.to_vec())),
            0..4,
        ),
    );
    (timeline, rest).prop_map(|(timeline, rest)| {
        let (
            registered_at,
            acceptance_deadline,
            decided_at,
            decided_deadline,
            objection_deadline,
            handling_deadline,
            replied_at,
            replied_deadline,
            evaluation_deadline,
            evaluated_at,
            closed_at,
            review_deadline,
        ) = timeline;
        let (
            status,
            category,
            satisfaction,
            resolved,
            repeat,
            (escalated, assigned, in_conflict),
            directives,
        ) = rest;
        let mut case = summary(status);
        case.category = category;
        case.timeline.registered_at = registered_at;
        case.timeline.acceptance_deadline = acceptance_deadline;
        case.timeline.decided_at = decided_at;
        case.timeline.decided_deadline = decided_deadline;
        case.timeline.objection_deadline = objection_deadline;
        case.timeline.handling_deadline = handling_deadline;
        case.timeline.replied_at = replied_at;
        case.timeline.replied_deadline = replied_deadline;
        case.timeline.evaluation_deadline = evaluation_deadline;
        case.timeline.evaluated_at = evaluated_at;
        case.timeline.closed_at = closed_at;
        case.timeline.review_deadline = review_deadline;
        case.satisfaction = satisfaction;
        case.resolved = resolved;
        case.repeat_of = repeat.then(|| "430702001001-2025-000001".to_owned());
        case.escalated = escalated;
        case.assigned = assigned;
        case.in_conflict = in_conflict;
        case.directives = directives
            .into_iter()
            .enumerate()
            .map(|(index, (due, status))| directive(&format!("d{index}"), due, status))
            .collect();
        case
    })
}

#[derive(Debug, Clone)]
struct Update {
    case: usize,
    group: usize,
    /// `None` removes the case.
    summary: Option<CaseSummary>,
}

fn update() -> impl Strategy<Value = Update> {
    (
        0usize..10,
        0usize..GROUPS.len(),
        prop::option::weighted(0.8, random_summary()),
        any::<bool>(),
    )
        .prop_map(|(case, group, summary, imported)| Update {
            case,
            group,
            summary: summary.map(|summary| CaseSummary {
                imported,
                ..summary
            }),
        })
}

/// An instant for a query: fixed, or taken from the cases counted at query time and shifted by a
/// step that lands on, or one tick either side of, a grade or period boundary.
#[derive(Debug, Clone)]
enum Pick {
    Fixed(DateTime<Utc>),
    FromCases { which: usize, shift: usize },
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        1 => instant().prop_map(Pick::Fixed),
        3 => (any::<usize>(), 0usize..15).prop_map(|(which, shift)| Pick::FromCases { which, shift }),
    ]
}

fn shift(index: usize, thresholds: &WarningThresholds) -> Duration {
    let window = Duration::days(i64::from(thresholds.approaching_days));
    let serious = Duration::days(i64::from(thresholds.serious_overdue_days));
    let tick = Duration::nanoseconds(1);
    let millisecond = Duration::milliseconds(1);
    match index {
        0 => Duration::zero(),
        1 => tick,
        2 => -tick,
        3 => millisecond,
        4 => -millisecond,
        5 => -window,
        6 => -window - tick,
        7 => -window + millisecond,
        8 => serious,
        9 => serious + tick,
        10 => serious - millisecond,
        11 => serious + millisecond,
        12 => Duration::hours(12),
        13 => -window - millisecond,
        _ => Duration::days(1),
    }
}

/// Every instant a case's counts may switch at, or a period may be cut at.
fn instants_of(summary: &CaseSummary) -> Vec<DateTime<Utc>> {
    let timeline = &summary.timeline;
    [
        timeline.registered_at,
        timeline.acceptance_deadline,
        timeline.decided_deadline,
        timeline.objection_deadline,
        timeline.handling_deadline,
        timeline.replied_deadline,
        timeline.evaluation_deadline,
        timeline.review_deadline,
    ]
    .into_iter()
    .flatten()
    .chain(summary.directives.iter().map(|directive| directive.due))
    .collect()
}

fn resolve(
    pick: &Pick,
    cases: &BTreeMap<String, (String, CaseSummary)>,
    thresholds: &WarningThresholds,
) -> DateTime<Utc> {
    match pick {
        Pick::Fixed(instant) => *instant,
        Pick::FromCases { which, shift: step } => {
            let instants: Vec<DateTime<Utc>> = cases
                .values()
                .flat_map(|(_, summary)| instants_of(summary))
                .collect();
            let Some(base) = instants.get(which % instants.len().max(1)).copied() else {
                return march_midnight();
            };
            base.checked_add_signed(shift(*step, thresholds))
                .unwrap_or(base)
        }
    }
}

#[derive(Debug, Clone)]
struct Query {
    /// Indexes into `GROUPS`, with `GROUPS.len()` standing for a group nobody is in.
    groups: Option<Vec<usize>>,
    category: Option<Category>,
    imported: ImportedCases,
    from: Option<Pick>,
    to: Option<Pick>,
    now: Pick,
}

fn query() -> impl Strategy<Value = Query> {
    (
        prop::option::of(prop::collection::vec(0usize..=GROUPS.len(), 0..4)),
        prop::option::weighted(0.3, prop::sample::select(CATEGORIES.to_vec())),
        prop::sample::select(vec![ImportedCases::Include, ImportedCases::Exclude]),
        prop::option::of(pick()),
        prop::option::of(pick()),
        pick(),
    )
        .prop_map(|(groups, category, imported, from, to, now)| Query {
            groups,
            category,
            imported,
            from,
            to,
            now,
        })
}

fn check_query(
    rollup: &Rollup,
    cases: &BTreeMap<String, (String, CaseSummary)>,
    query: &Query,
    thresholds: &WarningThresholds,
) -> Result<(), TestCaseError> {
    let names: Option<Vec<&str>> = query.groups.as_ref().map(|groups| {
        groups
            .iter()
            .map(|index| GROUPS.get(*index).copied().unwrap_or("node-nobody"))
            .collect()
    });
    let from = query
        .from
        .as_ref()
        .map(|pick| resolve(pick, cases, thresholds));
    let to = query
        .to
        .as_ref()
        .map(|pick| resolve(pick, cases, thresholds));
    let now = resolve(&query.now, cases, thresholds);
    let expected = scan(
        cases,
        names.as_deref(),
        query.category,
        query.imported,
        from,
        to,
        now,
        thresholds,
    );
    let found = rollup.measures(
        names.as_deref(),
        query.category,
        query.imported,
        from,
        to,
        now,
    );
    prop_assert_eq!(found, expected, "from {:?} to {:?} now {}", from, to, now);
    let expected_by_group = scan_by_group(
        cases,
        query.category,
        query.imported,
        from,
        to,
        now,
        thresholds,
    );
    let found_by_group = rollup.by_group(query.category, query.imported, from, to, now);
    prop_assert_eq!(found_by_group, expected_by_group);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn rollup_equals_the_scan_after_any_updates(
        approaching_days in 0u32..4,
        serious_overdue_days in 0u32..6,
        updates in prop::collection::vec(update(), 1..30),
        queries in prop::collection::vec(query(), 1..10),
    ) {
        let thresholds = WarningThresholds { approaching_days, serious_overdue_days };
        let mut rollup = Rollup::new(thresholds.clone());
        let mut cases: BTreeMap<String, (String, CaseSummary)> = BTreeMap::new();
        for (step, update) in updates.iter().enumerate() {
            let case = format!("case-{}", update.case);
            let group = GROUPS[update.group];
            rollup.update(&case, group, update.summary.as_ref());
            match &update.summary {
                Some(summary) => {
                    cases.insert(case, (group.to_owned(), summary.clone()));
                }
                None => {
                    cases.remove(&case);
                }
            }
            prop_assert_eq!(rollup.case_count(), cases.len());
            // One query between updates catches a structure left wrong by a removal or a move.
            check_query(&rollup, &cases, &queries[step % queries.len()], &thresholds)?;
        }
        for query in &queries {
            check_query(&rollup, &cases, query, &thresholds)?;
        }
    }
}

#[test]
fn rollup_leaves_out_imported_cases_when_asked() {
    let mut rollup = Rollup::new(thresholds());
    let mut imported = summary(Status::Closed);
    imported.imported = true;
    imported.resolved = Some(true);
    rollup.update("case-1", "node-village-a", Some(&imported));
    rollup.update(
        "case-2",
        "node-village-a",
        Some(&summary(Status::Registered)),
    );
    let now = day(11);
    let all = rollup.measures(None, None, ImportedCases::Include, None, None, now);
    let live = rollup.measures(None, None, ImportedCases::Exclude, None, None, now);
    assert_eq!((all.total.cases, live.total.cases), (2, 1));
    assert_eq!(all.total.by_status.get(&Status::Closed), Some(&1));
    assert_eq!(live.total.by_status.get(&Status::Closed), None);
    let by_group = rollup.by_group(None, ImportedCases::Exclude, None, None, now);
    assert_eq!(by_group["node-village-a"].cases, 1);
    // Withdrawing the imported case leaves nothing of it behind.
    rollup.update("case-1", "node-village-a", None);
    assert_eq!(
        rollup
            .measures(None, None, ImportedCases::Include, None, None, now)
            .total,
        live.total
    );
}
