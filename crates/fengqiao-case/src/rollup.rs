//! The supervisors' measures per group, kept up to date case by case instead of scanned.
//!
//! [`Rollup`] answers exactly what [`crate::measures::measures`] answers over the same summaries,
//! for any period, category and `now`. What a case adds to a [`MeasureSet`] splits in two:
//!
//! - counts that do not depend on `now` (cases, decided in time, satisfied, status, …), kept as
//!   sums per bucket;
//! - counts that switch on once `now` passes an instant fixed by the case (an undecided case
//!   whose acceptance deadline passed, an open directive past its due, the worst warning grade).
//!   The worst grade is that of the earliest open deadline: a later deadline is never graded worse
//!   at the same `now`, so the grade only ever rises, at three instants (warning window opens, due
//!   passes, serious lateness begins). Each such instant goes into a counting tree per bucket, and
//!   "how many have switched on at `now`" is a rank query.
//!
//! Buckets are per group and category, for every case, and by UTC registration day at three
//! granularities (a day, 32 days, 1024 days). A period is answered from the coarsest whole blocks
//! that fit inside it, finer blocks at its ends, and the cases of at most two partial days one by
//! one, so a query costs a bounded number of buckets and never a visit to every case.
//!
//! The thresholds are fixed when the rollup is made, because the instants depend on them: a node
//! whose warning configuration changes builds a new rollup.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};

use crate::model::{
    CaseSummary, Category, DirectiveStatus, ImportedCases, MeasureSet, Measures, Ratio,
    SCHEMA_VERSION, Satisfaction, Status, WarningThresholds,
};
use crate::summary::earliest_open_deadline;

/// Measures over many cases, maintained as the cases change. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Rollup {
    thresholds: WarningThresholds,
    /// Case ID to its slot in `slots`; slots are what the registration indexes refer to, so that
    /// they need not hold a copy of every case ID.
    slot_of_case: BTreeMap<String, u32>,
    slots: Vec<Option<CountedCase>>,
    free_slots: Vec<u32>,
    groups: BTreeMap<String, GroupRollup>,
    /// Every bucket's counting trees live in this one arena.
    trees: InstantTrees,
}

impl Rollup {
    pub fn new(thresholds: WarningThresholds) -> Rollup {
        Rollup {
            thresholds,
            ..Rollup::default()
        }
    }

    /// The warning thresholds the rollup judges grades with.
    pub fn thresholds(&self) -> &WarningThresholds {
        &self.thresholds
    }

    /// Number of cases counted, in every group.
    pub fn case_count(&self) -> usize {
        self.slot_of_case.len()
    }

    /// The group a case is counted in, if it is counted.
    pub fn group_of(&self, case: &str) -> Option<&str> {
        let slot = *self.slot_of_case.get(case)?;
        self.slot(slot).map(|counted| counted.group.as_str())
    }

    /// Replace what is counted for `case` with `summary` in `group` (`None` stops counting it,
    /// whatever `group` says).
    ///
    /// `group` is a key chosen by the caller, such as the child office a case lies under. A case
    /// given again under another group leaves its old group. Costs O(k log n) for a case with k
    /// time-dependent instants (at most six plus one per open directive); giving a case again
    /// unchanged costs only the comparison.
    pub fn update(&mut self, case: &str, group: &str, summary: Option<&CaseSummary>) {
        let contribution = summary.map(|summary| Contribution::of(summary, &self.thresholds));
        match self.slot_of_case.get(case).copied() {
            Some(slot) => {
                let unchanged = match (self.slot(slot), &contribution) {
                    (Some(counted), Some(contribution)) => {
                        counted.group == group && counted.contribution == *contribution
                    }
                    _ => false,
                };
                if unchanged {
                    return;
                }
                if let Some(old) = self.slots.get_mut(slot as usize).and_then(Option::take) {
                    self.withdraw(slot, &old);
                }
                match contribution {
                    Some(contribution) => self.count(slot, group, contribution),
                    None => {
                        self.slot_of_case.remove(case);
                        self.free_slots.push(slot);
                    }
                }
            }
            None => {
                let Some(contribution) = contribution else {
                    return;
                };
                let slot = match self.free_slots.pop() {
                    Some(slot) => slot,
                    None => {
                        self.slots.push(None);
                        // A slot index beyond u32 would need more cases than memory can hold.
                        u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
                    }
                };
                self.slot_of_case.insert(case.to_owned(), slot);
                self.count(slot, group, contribution);
            }
        }
    }

    /// What [`crate::measures::measures`] answers over the cases of `groups` (every group when
    /// `None`), of `category` only when given, with or without those a ledger import registered,
    /// registered in `[from, to)`, judged at `now`.
    pub fn measures(
        &self,
        groups: Option<&[&str]>,
        category: Option<Category>,
        imported: ImportedCases,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Measures {
        let period = Period::new(from, to);
        let mut per_category: BTreeMap<Category, Tally> = BTreeMap::new();
        for group in self.selected_groups(groups) {
            for (category, rollup) in group.categories_matching(category, imported) {
                let tally = per_category.entry(category).or_default();
                rollup.tally(tally, &period, now, self);
            }
        }
        let mut total = Tally::default();
        let mut by_category = BTreeMap::new();
        for (category, tally) in per_category {
            // The scan only opens a category's entry when one of its cases is in the period.
            if tally.counts.cases > 0 {
                total.add(&tally);
                by_category.insert(category, tally.measure_set());
            }
        }
        Measures {
            schema_version: SCHEMA_VERSION,
            from,
            to,
            imported,
            now,
            total: total.measure_set(),
            by_category,
        }
    }

    /// The total measure set of each group, with the same filters as [`Rollup::measures`]. Every
    /// group that has a case is listed, even when none of its cases is in the period, so that a
    /// child office with nothing to show appears with zeros rather than not at all.
    pub fn by_group(
        &self,
        category: Option<Category>,
        imported: ImportedCases,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> BTreeMap<String, MeasureSet> {
        let period = Period::new(from, to);
        self.groups
            .iter()
            .map(|(name, group)| {
                let mut tally = Tally::default();
                for (_, rollup) in group.categories_matching(category, imported) {
                    rollup.tally(&mut tally, &period, now, self);
                }
                (name.clone(), tally.measure_set())
            })
            .collect()
    }

    fn slot(&self, slot: u32) -> Option<&CountedCase> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn selected_groups<'a>(&'a self, groups: Option<&[&str]>) -> Vec<&'a GroupRollup> {
        match groups {
            None => self.groups.values().collect(),
            // A group named twice is still one set of cases.
            Some(names) => names
                .iter()
                .copied()
                .collect::<BTreeSet<&str>>()
                .into_iter()
                .filter_map(|name| self.groups.get(name))
                .collect(),
        }
    }

    fn count(&mut self, slot: u32, group: &str, contribution: Contribution) {
        let group_rollup = self.groups.entry(group.to_owned()).or_default();
        group_rollup.cases += 1;
        group_rollup
            .categories
            .entry((contribution.category, contribution.imported))
            .or_default()
            .add(slot, &contribution, &mut self.trees);
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = Some(CountedCase {
                group: group.to_owned(),
                contribution,
            });
        }
    }

    fn withdraw(&mut self, slot: u32, counted: &CountedCase) {
        let Some(group) = self.groups.get_mut(&counted.group) else {
            return;
        };
        let key = (counted.contribution.category, counted.contribution.imported);
        if let Some(rollup) = group.categories.get_mut(&key) {
            rollup.subtract(slot, &counted.contribution, &mut self.trees);
            if rollup.everything.counts.cases == 0 {
                group.categories.remove(&key);
            }
        }
        group.cases = group.cases.saturating_sub(1);
        if group.cases == 0 {
            self.groups.remove(&counted.group);
        }
    }
}

#[derive(Debug, Clone)]
struct CountedCase {
    group: String,
    contribution: Contribution,
}

#[derive(Debug, Clone, Default)]
struct GroupRollup {
    cases: usize,
    /// By category, and apart whether a ledger import registered the cases, so that the
    /// measures can leave those out without a scan.
    categories: BTreeMap<(Category, bool), CategoryRollup>,
}

impl GroupRollup {
    fn categories_matching(
        &self,
        category: Option<Category>,
        imported: ImportedCases,
    ) -> impl Iterator<Item = (Category, &CategoryRollup)> {
        self.categories
            .iter()
            .filter(move |((key, was_imported), _)| {
                category.is_none_or(|wanted| *key == wanted) && imported.counts(*was_imported)
            })
            .map(|((key, _), rollup)| (*key, rollup))
    }
}

/// Log2 of the block sizes, in days, that registration days are bucketed by: a day, 32 days and
/// 1024 days. A month costs at most a few dozen day buckets; years cost a few coarse blocks.
const LEVEL_SHIFTS: [u32; 3] = [0, 5, 10];

/// Day numbers beyond any date chrono can hold, standing for an open end of a period. Small enough
/// that shifting them by the coarsest level cannot overflow.
const BEFORE_EVERY_DAY: i64 = -(1 << 40);
const AFTER_EVERY_DAY: i64 = 1 << 40;

/// One group's cases of one category.
#[derive(Debug, Clone, Default)]
struct CategoryRollup {
    /// Every case, with or without a registration time: what an unbounded period reads.
    everything: Bucket,
    /// Registered cases by `day >> LEVEL_SHIFTS[level]`, where `day` is the UTC registration day.
    levels: [BTreeMap<i64, Bucket>; LEVEL_SHIFTS.len()],
    /// Registered cases by registration instant, to take the partial days at a period's ends one
    /// case at a time.
    registered: BTreeSet<(DateTime<Utc>, u32)>,
}

impl CategoryRollup {
    fn add(&mut self, slot: u32, contribution: &Contribution, trees: &mut InstantTrees) {
        self.everything.add(contribution, trees);
        if let Some(registered_at) = contribution.registered_at {
            let day = day_number(registered_at);
            for (level, shift) in LEVEL_SHIFTS.into_iter().enumerate() {
                self.levels[level]
                    .entry(day >> shift)
                    .or_default()
                    .add(contribution, trees);
            }
            self.registered.insert((registered_at, slot));
        }
    }

    fn subtract(&mut self, slot: u32, contribution: &Contribution, trees: &mut InstantTrees) {
        self.everything.subtract(contribution, trees);
        if let Some(registered_at) = contribution.registered_at {
            let day = day_number(registered_at);
            for (level, shift) in LEVEL_SHIFTS.into_iter().enumerate() {
                let block = day >> shift;
                if let Some(bucket) = self.levels[level].get_mut(&block) {
                    bucket.subtract(contribution, trees);
                    if bucket.counts.cases == 0 {
                        self.levels[level].remove(&block);
                    }
                }
            }
            self.registered.remove(&(registered_at, slot));
        }
    }

    fn tally(&self, tally: &mut Tally, period: &Period, now: DateTime<Utc>, rollup: &Rollup) {
        match period {
            Period::Unbounded => tally.add_bucket(&self.everything, &rollup.trees, now),
            Period::Bounded { whole_days, edges } => {
                if let Some((first, end)) = *whole_days {
                    self.tally_whole_days(
                        tally,
                        LEVEL_SHIFTS.len() - 1,
                        first,
                        end,
                        now,
                        &rollup.trees,
                    );
                }
                for (lower, upper) in edges {
                    for (_, slot) in self.registered.range((*lower, *upper)) {
                        if let Some(counted) = rollup.slot(*slot) {
                            tally.add_case(&counted.contribution, now);
                        }
                    }
                }
            }
        }
    }

    /// Adds the cases registered on days `[first, end)`, from the coarsest blocks that fit and
    /// finer ones at the ends.
    fn tally_whole_days(
        &self,
        tally: &mut Tally,
        level: usize,
        first: i64,
        end: i64,
        now: DateTime<Utc>,
        trees: &InstantTrees,
    ) {
        if first >= end {
            return;
        }
        let Some(shift) = LEVEL_SHIFTS.get(level).copied() else {
            return;
        };
        if level == 0 {
            for bucket in self.levels[0].range(first..end).map(|(_, bucket)| bucket) {
                tally.add_bucket(bucket, trees, now);
            }
            return;
        }
        let first_block = -((-first) >> shift);
        let end_block = end >> shift;
        if first_block < end_block {
            for bucket in self.levels[level]
                .range(first_block..end_block)
                .map(|(_, bucket)| bucket)
            {
                tally.add_bucket(bucket, trees, now);
            }
            self.tally_whole_days(tally, level - 1, first, first_block << shift, now, trees);
            self.tally_whole_days(tally, level - 1, end_block << shift, end, now, trees);
        } else {
            self.tally_whole_days(tally, level - 1, first, end, now, trees);
        }
    }
}

/// A registration period `[from, to)` taken apart into whole UTC days and the partial days at its
/// ends.
#[derive(Debug)]
enum Period {
    /// Both ends open: every case counts, registered or not.
    Unbounded,
    Bounded {
        /// Days `[first, end)` that lie wholly inside the period.
        whole_days: Option<(i64, i64)>,
        /// Ranges of registration instants, outside the whole days, whose cases are taken one by
        /// one. At most two, disjoint.
        edges: Vec<(RegistrationBound, RegistrationBound)>,
    },
}

type RegistrationBound = Bound<(DateTime<Utc>, u32)>;

impl Period {
    fn new(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Period {
        if from.is_none() && to.is_none() {
            return Period::Unbounded;
        }
        // Slot 0 is the smallest, so `(instant, 0)` bounds every case registered at `instant`.
        let at_or_after = |instant: DateTime<Utc>| Bound::Included((instant, 0));
        let before = |instant: Option<DateTime<Utc>>| {
            instant.map_or(Bound::Unbounded, |instant| Bound::Excluded((instant, 0)))
        };
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Period::Bounded {
                whole_days: None,
                edges: Vec::new(),
            };
        }
        let first_whole_day = from.map_or(BEFORE_EVERY_DAY, |from| {
            let day = day_number(from);
            if is_midnight(from) { day } else { day + 1 }
        });
        // The day `to` falls on is never whole: it ends at or after `to`.
        let end_of_whole_days = to.map_or(AFTER_EVERY_DAY, day_number);
        let mut edges = Vec::with_capacity(2);
        if first_whole_day < end_of_whole_days {
            if let Some(from) = from.filter(|from| !is_midnight(*from)) {
                edges.push((at_or_after(from), before(midnight_of(first_whole_day))));
            }
            if let Some(to) = to.filter(|to| !is_midnight(*to)) {
                let start_of_day = midnight_of(end_of_whole_days);
                let lower = start_of_day.map_or(Bound::Unbounded, at_or_after);
                edges.push((lower, before(Some(to))));
            }
            Period::Bounded {
                whole_days: Some((first_whole_day, end_of_whole_days)),
                edges,
            }
        } else {
            // No whole day fits (both ends are given here): every case in it is taken one by one.
            let lower = from.map_or(Bound::Unbounded, at_or_after);
            edges.push((lower, before(to)));
            Period::Bounded {
                whole_days: None,
                edges,
            }
        }
    }
}

fn day_number(instant: DateTime<Utc>) -> i64 {
    i64::from(instant.date_naive().num_days_from_ce())
}

fn is_midnight(instant: DateTime<Utc>) -> bool {
    instant.time() == NaiveTime::MIN
}

/// Start of a UTC day, or `None` past the last day chrono can hold.
fn midnight_of(day: i64) -> Option<DateTime<Utc>> {
    let day = i32::try_from(day).ok()?;
    NaiveDate::from_num_days_from_ce_opt(day).map(|date| date.and_time(NaiveTime::MIN).and_utc())
}

/// The counts of one bucket: sums that do not depend on `now`, and one counting tree per clock.
#[derive(Debug, Clone, Default)]
struct Bucket {
    counts: FixedCounts,
    clocks: [TreeRoot; CLOCKS],
}

impl Bucket {
    fn add(&mut self, contribution: &Contribution, trees: &mut InstantTrees) {
        self.counts.add(contribution);
        for (clock, instant) in &contribution.clocks {
            trees.insert(&mut self.clocks[*clock as usize], *instant);
        }
    }

    fn subtract(&mut self, contribution: &Contribution, trees: &mut InstantTrees) {
        self.counts.subtract(contribution);
        for (clock, instant) in &contribution.clocks {
            trees.remove(&mut self.clocks[*clock as usize], *instant);
        }
    }
}

/// A count that switches on for a case once `now` passes an instant fixed by the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// Undecided and the acceptance deadline passed: in the 及时受理率 denominator.
    AcceptanceExpired,
    /// Unreplied and the handling deadline passed: in the 按期办结率 denominator.
    HandlingExpired,
    /// Not evaluated and the evaluation window passed: in the 参评率 denominator.
    EvaluationExpired,
    /// One open directive past its due.
    DirectiveOverdue,
    /// The earliest open deadline is within the warning window (at this instant and after).
    WarnedFrom,
    /// The earliest open deadline has passed.
    OverdueFrom,
    /// The earliest open deadline has passed by more than the serious threshold.
    SeriouslyOverdueFrom,
}

const CLOCKS: usize = 7;

impl Clock {
    /// Whether the count is on at `now`. Only the warning window includes its first instant
    /// (`due - now <= window`); everything else is late strictly after its instant (`now > due`).
    fn is_on(self, instant: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        if self == Clock::WarnedFrom {
            instant <= now
        } else {
            instant < now
        }
    }
}

/// What one case adds to the measures, reduced to what the counting needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contribution {
    category: Category,
    imported: bool,
    registered_at: Option<DateTime<Utc>>,
    status: Status,
    /// Bit `1 << Flag` set when the case adds one to that count.
    flags: u16,
    directives_open: u32,
    directives_crossed_off: u32,
    clocks: Vec<(Clock, DateTime<Utc>)>,
}

/// Counts a case adds one to or nothing, whatever `now` is.
#[derive(Debug, Clone, Copy)]
enum Flag {
    Decided,
    DecidedInTime,
    Replied,
    RepliedInTime,
    Evaluated,
    Rated,
    Satisfied,
    Closed,
    Resolved,
    Repeat,
    Escalated,
    Assigned,
    InConflict,
}

const FLAGS: usize = 13;

impl Contribution {
    /// Mirrors [`crate::measures::add_case`], with every comparison against `now` turned into an
    /// instant at which the count switches on.
    fn of(summary: &CaseSummary, thresholds: &WarningThresholds) -> Contribution {
        let timeline = &summary.timeline;
        let mut flags = 0u16;
        let mut set = |flag: Flag| flags |= 1 << flag as u16;
        let mut clocks = Vec::new();

        match timeline.decided_at {
            Some(decided) => {
                set(Flag::Decided);
                if timeline
                    .decided_deadline
                    .is_none_or(|deadline| decided <= deadline)
                {
                    set(Flag::DecidedInTime);
                }
            }
            None => {
                if let Some(due) = timeline.acceptance_deadline {
                    clocks.push((Clock::AcceptanceExpired, due));
                }
            }
        }
        match timeline.replied_at {
            Some(replied) => {
                set(Flag::Replied);
                if timeline
                    .replied_deadline
                    .is_none_or(|deadline| replied <= deadline)
                {
                    set(Flag::RepliedInTime);
                }
            }
            None => {
                if let Some(due) = timeline.handling_deadline {
                    clocks.push((Clock::HandlingExpired, due));
                }
            }
        }
        if timeline.evaluated_at.is_some() || summary.satisfaction.is_some() {
            set(Flag::Evaluated);
        } else if let Some(due) = timeline.evaluation_deadline {
            clocks.push((Clock::EvaluationExpired, due));
        }
        if let Some(satisfaction) = summary.satisfaction {
            set(Flag::Rated);
            if matches!(
                satisfaction,
                Satisfaction::Satisfied | Satisfaction::BasicallySatisfied
            ) {
                set(Flag::Satisfied);
            }
        }
        if timeline.closed_at.is_some() {
            set(Flag::Closed);
            if summary.resolved == Some(true) {
                set(Flag::Resolved);
            }
        }
        if summary.repeat_of.is_some() {
            set(Flag::Repeat);
        }
        if summary.escalated {
            set(Flag::Escalated);
        }
        if summary.assigned {
            set(Flag::Assigned);
        }
        if summary.in_conflict {
            set(Flag::InConflict);
        }

        if let Some(earliest) = earliest_open_deadline(summary) {
            // The grading rule's own instants (`warnings::grade_instants`), counted ahead.
            let instants = crate::warnings::grade_instants(earliest, thresholds);
            clocks.push((Clock::WarnedFrom, instants.approaching_from));
            clocks.push((Clock::OverdueFrom, instants.overdue_after));
            // Past the last instant chrono holds, no `now` is ever seriously late.
            if let Some(serious_from) = instants.seriously_overdue_after {
                clocks.push((Clock::SeriouslyOverdueFrom, serious_from));
            }
        }

        let mut directives_open = 0u32;
        let mut directives_crossed_off = 0u32;
        for directive in &summary.directives {
            if directive.status == DirectiveStatus::CrossedOff {
                directives_crossed_off = directives_crossed_off.saturating_add(1);
            } else {
                directives_open = directives_open.saturating_add(1);
                clocks.push((Clock::DirectiveOverdue, directive.due));
            }
        }

        Contribution {
            category: summary.category,
            imported: summary.imported,
            registered_at: timeline.registered_at,
            status: summary.status,
            flags,
            directives_open,
            directives_crossed_off,
            clocks,
        }
    }

    fn has(&self, flag: usize) -> bool {
        self.flags & (1 << flag) != 0
    }
}

/// Sums over cases of everything that does not depend on `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FixedCounts {
    cases: u64,
    flags: [u64; FLAGS],
    directives_open: u64,
    directives_crossed_off: u64,
    by_status: [u64; STATUSES],
}

impl FixedCounts {
    fn add(&mut self, contribution: &Contribution) {
        self.cases += 1;
        for (flag, count) in self.flags.iter_mut().enumerate() {
            *count += u64::from(contribution.has(flag));
        }
        self.directives_open += u64::from(contribution.directives_open);
        self.directives_crossed_off += u64::from(contribution.directives_crossed_off);
        self.by_status[status_index(contribution.status)] += 1;
    }

    /// Only ever given a contribution that was added before, so nothing goes below zero; the
    /// saturation is there so that a broken invariant shows as a wrong count, not a panic.
    fn subtract(&mut self, contribution: &Contribution) {
        self.cases = self.cases.saturating_sub(1);
        for (flag, count) in self.flags.iter_mut().enumerate() {
            *count = count.saturating_sub(u64::from(contribution.has(flag)));
        }
        self.directives_open = self
            .directives_open
            .saturating_sub(u64::from(contribution.directives_open));
        self.directives_crossed_off = self
            .directives_crossed_off
            .saturating_sub(u64::from(contribution.directives_crossed_off));
        let status = &mut self.by_status[status_index(contribution.status)];
        *status = status.saturating_sub(1);
    }

    fn add_counts(&mut self, other: &FixedCounts) {
        self.cases += other.cases;
        for (count, other) in self.flags.iter_mut().zip(other.flags) {
            *count += other;
        }
        self.directives_open += other.directives_open;
        self.directives_crossed_off += other.directives_crossed_off;
        for (count, other) in self.by_status.iter_mut().zip(other.by_status) {
            *count += other;
        }
    }
}

/// A query's running sums, turned into a [`MeasureSet`] at the end.
#[derive(Debug, Clone, Default)]
struct Tally {
    counts: FixedCounts,
    clocks: [u64; CLOCKS],
}

impl Tally {
    fn add_bucket(&mut self, bucket: &Bucket, trees: &InstantTrees, now: DateTime<Utc>) {
        self.counts.add_counts(&bucket.counts);
        for (index, root) in bucket.clocks.iter().enumerate() {
            let inclusive = index == Clock::WarnedFrom as usize;
            self.clocks[index] += trees.count_up_to(*root, now, inclusive);
        }
    }

    fn add_case(&mut self, contribution: &Contribution, now: DateTime<Utc>) {
        self.counts.add(contribution);
        for (clock, instant) in &contribution.clocks {
            self.clocks[*clock as usize] += u64::from(clock.is_on(*instant, now));
        }
    }

    fn add(&mut self, other: &Tally) {
        self.counts.add_counts(&other.counts);
        for (count, other) in self.clocks.iter_mut().zip(other.clocks) {
            *count += other;
        }
    }

    fn measure_set(&self) -> MeasureSet {
        let flag = |flag: Flag| self.counts.flags[flag as usize];
        let clock = |clock: Clock| self.clocks[clock as usize];
        let ratio = |numerator: u64, denominator: u64| Ratio {
            numerator,
            denominator,
        };
        // Each case's clocks nest (seriously late implies late implies warned), so do the sums.
        let warned = clock(Clock::WarnedFrom);
        let late = clock(Clock::OverdueFrom);
        let seriously_late = clock(Clock::SeriouslyOverdueFrom);
        MeasureSet {
            cases: self.counts.cases,
            timely_acceptance: ratio(
                flag(Flag::DecidedInTime),
                flag(Flag::Decided) + clock(Clock::AcceptanceExpired),
            ),
            on_time_completion: ratio(
                flag(Flag::RepliedInTime),
                flag(Flag::Replied) + clock(Clock::HandlingExpired),
            ),
            evaluation: ratio(
                flag(Flag::Evaluated),
                flag(Flag::Evaluated) + clock(Clock::EvaluationExpired),
            ),
            satisfaction: ratio(flag(Flag::Satisfied), flag(Flag::Rated)),
            resolution: ratio(flag(Flag::Resolved), flag(Flag::Closed)),
            repeat: ratio(flag(Flag::Repeat), self.counts.cases),
            approaching: warned.saturating_sub(late),
            overdue: late.saturating_sub(seriously_late),
            seriously_overdue: seriously_late,
            directives_open: self.counts.directives_open,
            directives_overdue: clock(Clock::DirectiveOverdue),
            directives_crossed_off: self.counts.directives_crossed_off,
            escalated: flag(Flag::Escalated),
            assigned: flag(Flag::Assigned),
            in_conflict: flag(Flag::InConflict),
            by_status: STATUS_ORDER
                .into_iter()
                .zip(self.counts.by_status)
                .filter(|(_, count)| *count > 0)
                .collect(),
        }
    }
}

pub(crate) const STATUSES: usize = 11;

/// Every status, at the index [`status_index`] gives it.
pub(crate) const STATUS_ORDER: [Status; STATUSES] = Status::ALL;

/// Exhaustive on purpose: a new status fails to compile here instead of being miscounted.
fn status_index(status: Status) -> usize {
    match status {
        Status::Registered => 0,
        Status::AwaitingReceiver => 1,
        Status::Accepted => 2,
        Status::NotAccepted => 3,
        Status::Diverted => 4,
        Status::ForwardedOut => 5,
        Status::Replied => 6,
        Status::Evaluated => 7,
        Status::Closed => 8,
        Status::UnderReview => 9,
        Status::Final => 10,
    }
}

/// Index of a tree's root node in [`InstantTrees`]; [`NO_NODE`] for an empty tree.
type TreeRoot = u32;

/// Zero, so that a default bucket holds empty trees. The arena never hands out index 0.
const NO_NODE: u32 = 0;

/// Arena of counting trees: multisets of instants answering "how many are at or before `now`" in
/// logarithmic time. Each tree is a treap (a search tree by instant, a heap by a pseudo-random
/// priority), whose expected depth is logarithmic whatever order the instants come in.
#[derive(Debug, Clone, Default)]
struct InstantTrees {
    /// Index 0 is a placeholder once anything is allocated, so that [`NO_NODE`] is never a node.
    nodes: Vec<TreeNode>,
    free: Vec<u32>,
    /// State of the priority sequence; deterministic, so clones and reruns build the same shapes.
    priority_state: u64,
}

#[derive(Debug, Clone)]
struct TreeNode {
    instant: DateTime<Utc>,
    /// How many times `instant` is in the multiset.
    count: u32,
    /// Sum of `count` over the subtree.
    total: u32,
    priority: u32,
    left: u32,
    right: u32,
}

impl InstantTrees {
    fn insert(&mut self, root: &mut TreeRoot, instant: DateTime<Utc>) {
        if self.find(*root, instant) != NO_NODE {
            self.adjust_path(*root, instant, true);
            return;
        }
        let node = self.allocate(instant);
        let (before, after) = self.split(*root, instant);
        let joined = self.merge(before, node);
        *root = self.merge(joined, after);
    }

    fn remove(&mut self, root: &mut TreeRoot, instant: DateTime<Utc>) {
        let found = self.find(*root, instant);
        if found == NO_NODE {
            return;
        }
        if self.nodes[found as usize].count > 1 {
            self.adjust_path(*root, instant, false);
        } else {
            *root = self.remove_node(*root, instant);
        }
    }

    /// How many instants in the tree are before `now`, or at or before it when `inclusive`.
    fn count_up_to(&self, root: TreeRoot, now: DateTime<Utc>, inclusive: bool) -> u64 {
        let mut sum = 0u64;
        let mut node = root;
        while node != NO_NODE {
            let current = &self.nodes[node as usize];
            let counted = if inclusive {
                current.instant <= now
            } else {
                current.instant < now
            };
            if counted {
                sum += u64::from(self.total(current.left)) + u64::from(current.count);
                node = current.right;
            } else {
                node = current.left;
            }
        }
        sum
    }

    fn find(&self, root: TreeRoot, instant: DateTime<Utc>) -> u32 {
        let mut node = root;
        while node != NO_NODE {
            let current = &self.nodes[node as usize];
            node = match instant.cmp(&current.instant) {
                std::cmp::Ordering::Less => current.left,
                std::cmp::Ordering::Greater => current.right,
                std::cmp::Ordering::Equal => return node,
            };
        }
        NO_NODE
    }

    /// One more (or one fewer) of an instant already in the tree: the shape does not change.
    fn adjust_path(&mut self, root: TreeRoot, instant: DateTime<Utc>, increase: bool) {
        let step = |value: u32| {
            if increase {
                value.saturating_add(1)
            } else {
                value.saturating_sub(1)
            }
        };
        let mut node = root;
        while node != NO_NODE {
            let current = &mut self.nodes[node as usize];
            current.total = step(current.total);
            node = match instant.cmp(&current.instant) {
                std::cmp::Ordering::Less => current.left,
                std::cmp::Ordering::Greater => current.right,
                std::cmp::Ordering::Equal => {
                    current.count = step(current.count);
                    return;
                }
            };
        }
    }

    fn remove_node(&mut self, node: u32, instant: DateTime<Utc>) -> u32 {
        if node == NO_NODE {
            return NO_NODE;
        }
        let (left, right) = (
            self.nodes[node as usize].left,
            self.nodes[node as usize].right,
        );
        match instant.cmp(&self.nodes[node as usize].instant) {
            std::cmp::Ordering::Less => {
                let left = self.remove_node(left, instant);
                self.nodes[node as usize].left = left;
                self.recount(node);
                node
            }
            std::cmp::Ordering::Greater => {
                let right = self.remove_node(right, instant);
                self.nodes[node as usize].right = right;
                self.recount(node);
                node
            }
            std::cmp::Ordering::Equal => {
                let joined = self.merge(left, right);
                self.free.push(node);
                joined
            }
        }
    }

    /// Splits a tree into the instants before `instant` and those at or after it.
    fn split(&mut self, node: u32, instant: DateTime<Utc>) -> (u32, u32) {
        if node == NO_NODE {
            return (NO_NODE, NO_NODE);
        }
        if self.nodes[node as usize].instant < instant {
            let (before, after) = self.split(self.nodes[node as usize].right, instant);
            self.nodes[node as usize].right = before;
            self.recount(node);
            (node, after)
        } else {
            let (before, after) = self.split(self.nodes[node as usize].left, instant);
            self.nodes[node as usize].left = after;
            self.recount(node);
            (before, node)
        }
    }

    /// Joins two trees, every instant of `first` being before every instant of `second`.
    fn merge(&mut self, first: u32, second: u32) -> u32 {
        if first == NO_NODE {
            return second;
        }
        if second == NO_NODE {
            return first;
        }
        if self.nodes[first as usize].priority > self.nodes[second as usize].priority {
            let right = self.merge(self.nodes[first as usize].right, second);
            self.nodes[first as usize].right = right;
            self.recount(first);
            first
        } else {
            let left = self.merge(first, self.nodes[second as usize].left);
            self.nodes[second as usize].left = left;
            self.recount(second);
            second
        }
    }

    fn recount(&mut self, node: u32) {
        let current = &self.nodes[node as usize];
        let total = self
            .total(current.left)
            .saturating_add(current.count)
            .saturating_add(self.total(current.right));
        self.nodes[node as usize].total = total;
    }

    fn total(&self, node: u32) -> u32 {
        if node == NO_NODE {
            0
        } else {
            self.nodes[node as usize].total
        }
    }

    fn allocate(&mut self, instant: DateTime<Utc>) -> u32 {
        let priority = self.next_priority();
        let node = TreeNode {
            instant,
            count: 1,
            total: 1,
            priority,
            left: NO_NODE,
            right: NO_NODE,
        };
        if let Some(index) = self.free.pop() {
            self.nodes[index as usize] = node;
            return index;
        }
        if self.nodes.is_empty() {
            // The placeholder behind NO_NODE.
            self.nodes.push(TreeNode {
                total: 0,
                count: 0,
                ..node.clone()
            });
        }
        self.nodes.push(node);
        u32::try_from(self.nodes.len() - 1).unwrap_or(u32::MAX)
    }

    /// SplitMix64: well spread priorities from a counter, with no randomness to seed.
    fn next_priority(&mut self) -> u32 {
        self.priority_state = self.priority_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.priority_state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^= mixed >> 31;
        (mixed >> 32) as u32
    }
}
