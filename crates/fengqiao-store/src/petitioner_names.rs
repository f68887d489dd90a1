//! The petitioners' names of every case, held in memory for the listings that search by name
//! ([`crate::CaseFilter::petitioner_name`] and the 台账's text search).
//!
//! Until index version 5 these were index keys, one per character position of every name: about
//! 5 of the 15 sled keys written per case, and a sixth of an initial sync's time (BENCHMARKS.md,
//! session 19). A name search is a substring test over at most a few hundred thousand short names,
//! about 5 ms in memory at 100,000 cases, so the names are kept here instead: about 150 bytes a
//! case, 15 MiB at 100,000 (a one-off measurement, BENCHMARKS.md; the console bench gives a
//! surname search's whole page at 100,000 cases, 21–23 ms).
//!
//! Read from the summaries on first use (or when the node warms its indexes after a start), then
//! told of every summary the store commits, in commit order (`SummaryObservation`), so it follows
//! the store exactly. Architecture invariant: every commit is told after it is committed, and
//! the read begins only after commits start being told (kept aside while it reads, winning over
//! what it read), so no commit is missed and commits never wait for the read. Callers re-check
//! each summary they read against the whole filter, so a case named here is only a candidate; a
//! case whose committed summary matches is never left out.

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};

use fengqiao_case::{CaseId, CaseSummary};

use crate::cache::lock_ignoring_poison;

/// Between two names of one case: a needle without it cannot match across two names (and one
/// with it finds a superset, which the callers' re-check narrows).
const NAME_SEPARATOR: char = '\0';

/// The names of each case that has any, joined by [`NAME_SEPARATOR`].
type NamesByCase = BTreeMap<CaseId, Box<str>>;

#[derive(Debug, Default)]
enum Held {
    /// Not read yet: commits need not be followed, the read will find them.
    #[default]
    Unread,
    /// Being read from the summaries: the names committed meanwhile (`None`: none), which win
    /// over what the read finds, as they are at least as new.
    Reading(BTreeMap<CaseId, Option<Box<str>>>),
    Read(NamesByCase),
}

#[derive(Debug, Default)]
pub(crate) struct PetitionerNames {
    held: RwLock<Held>,
    /// Held by the one thread reading the summaries in.
    reading: Mutex<()>,
}

fn joined(names: &[String]) -> Option<Box<str>> {
    if names.is_empty() {
        return None;
    }
    let mut text = String::with_capacity(names.iter().map(|name| name.len() + 1).sum());
    for (position, name) in names.iter().enumerate() {
        if position > 0 {
            text.push(NAME_SEPARATOR);
        }
        text.push_str(name);
    }
    Some(text.into_boxed_str())
}

/// A case's names (`None`: it has none) in place of those held.
fn set(by_case: &mut NamesByCase, number: CaseId, names: Option<Box<str>>) {
    match names {
        Some(names) => by_case.insert(number, names),
        None => by_case.remove(&number),
    };
}

/// One committed case's names, to what is held: nothing before the read, kept aside during it.
fn tell(held: &mut Held, number: &str, names: &[String]) {
    match held {
        Held::Unread => {}
        Held::Reading(told) => {
            told.insert(number.to_owned(), joined(names));
        }
        Held::Read(by_case) => set(by_case, number.to_owned(), joined(names)),
    }
}

impl PetitionerNames {
    fn held(&self) -> std::sync::RwLockWriteGuard<'_, Held> {
        self.held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads every case's names from `summaries` (the store's summaries, as stored), unless they
    /// are read already. Commits go on meanwhile: what they tell ([`PetitionerNames::record`])
    /// is kept aside and wins over what the read found, so a summary the read met before or
    /// after its commit ends up as committed last. A failed read leaves the names unread.
    /// Answers whether it read them (false: they were read already).
    pub(crate) fn read_from<E, I>(&self, summaries: impl FnOnce() -> I) -> Result<bool, E>
    where
        I: IntoIterator<Item = Result<(CaseId, Vec<String>), E>>,
    {
        let _one_reader = lock_ignoring_poison(&self.reading);
        {
            let mut held = self.held();
            if matches!(*held, Held::Read(_)) {
                return Ok(false);
            }
            *held = Held::Reading(BTreeMap::new());
        }
        let mut by_case = NamesByCase::new();
        let mut outcome = Ok(());
        for summary in summaries() {
            match summary {
                Ok((number, names)) => {
                    if let Some(names) = joined(&names) {
                        by_case.insert(number, names);
                    }
                }
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
        }
        let mut held = self.held();
        let told = match std::mem::take(&mut *held) {
            Held::Reading(told) => told,
            // Only the holder of `reading` leaves `Reading`.
            Held::Unread | Held::Read(_) => BTreeMap::new(),
        };
        outcome?;
        for (number, names) in told {
            set(&mut by_case, number, names);
        }
        *held = Held::Read(by_case);
        Ok(true)
    }

    /// Committed summaries: their names replace their cases'. Called in commit order, once per
    /// commit (one lock for a batch of received cases).
    pub(crate) fn record(&self, summaries: &[&CaseSummary]) {
        let mut held = self.held();
        for summary in summaries {
            tell(&mut held, &summary.number, &summary.petitioner_names);
        }
    }

    pub(crate) fn record_names(&self, number: &str, names: &[String]) {
        tell(&mut self.held(), number, names);
    }

    /// The cases with a petitioner whose name contains `needle`, by number; `None` before the
    /// build.
    pub(crate) fn matching(&self, needle: &str) -> Option<Vec<CaseId>> {
        let guard = self
            .held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Held::Read(by_case) = &*guard else {
            return None;
        };
        Some(
            by_case
                .iter()
                .filter(|(_, names)| names.contains(needle))
                .map(|(number, _)| number.clone())
                .collect(),
        )
    }

    /// How many cases have names held (tests).
    #[cfg(test)]
    pub(crate) fn cases_held(&self) -> Option<usize> {
        match &*self.held() {
            Held::Read(by_case) => Some(by_case.len()),
            Held::Unread | Held::Reading(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(number: &str, names: &[&str]) -> Result<(CaseId, Vec<String>), ()> {
        Ok((
            number.to_owned(),
            names.iter().map(|name| (*name).to_owned()).collect(),
        ))
    }

    fn built(cases: &[(&str, &[&str])]) -> PetitionerNames {
        let names = PetitionerNames::default();
        let read = names.read_from(|| cases.iter().map(|(number, names)| summary(number, names)));
        assert_eq!(read, Ok(true));
        names
    }

    #[test]
    fn a_needle_matches_inside_one_name_never_across_two() {
        let names = built(&[("A-1", &["张三", "李四"]), ("A-2", &["王五"]), ("A-3", &[])]);
        assert_eq!(names.matching("三"), Some(vec!["A-1".to_owned()]));
        assert_eq!(names.matching("李四"), Some(vec!["A-1".to_owned()]));
        assert_eq!(names.matching("三李"), Some(vec![]));
        assert_eq!(
            names.cases_held(),
            Some(2),
            "a case without names is not held"
        );
    }

    /// Commits go on while the summaries are read: each one told meanwhile wins over what the
    /// read met, whether the read met the case before or after its commit.
    #[test]
    fn names_committed_during_the_read_win_over_what_it_read() {
        let names = PetitionerNames::default();
        let read = names.read_from(|| {
            let names = &names;
            [("A-1", &["张三"][..]), ("A-2", &["李四"][..])]
                .into_iter()
                .map(move |(number, held)| {
                    if number == "A-2" {
                        // A-1, already read, is renamed; A-2, about to be read as 李四, and
                        // A-3, which the read will not meet, are committed.
                        names.record_names("A-1", &["王五".to_owned()]);
                        names.record_names("A-2", &[]);
                        names.record_names("A-3", &["赵六".to_owned()]);
                    }
                    summary(number, held)
                })
        });
        assert_eq!(read, Ok(true));
        assert_eq!(names.matching("张"), Some(vec![]));
        assert_eq!(names.matching("王"), Some(vec!["A-1".to_owned()]));
        assert_eq!(names.matching("李"), Some(vec![]));
        assert_eq!(names.matching("赵"), Some(vec!["A-3".to_owned()]));
        assert_eq!(names.read_from(|| [summary("A-9", &["钱"])]), Ok(false));
        assert_eq!(names.matching("钱"), Some(vec![]));
    }

    #[test]
    fn a_failed_read_leaves_the_names_unread() {
        let names = PetitionerNames::default();
        let read = names.read_from(|| [summary("A-1", &["张三"]), Err(())]);
        assert_eq!(read, Err(()));
        assert_eq!(names.matching("张"), None);
        names.record_names("A-2", &["张伟".to_owned()]);
        assert_eq!(names.matching("张"), None);
    }

    #[test]
    fn nothing_is_recorded_before_the_build_and_everything_after_it() {
        let names = PetitionerNames::default();
        names.record_names("A-1", &["张三".to_owned()]);
        assert_eq!(names.matching("张"), None);
        let names = built(&[("A-1", &["张三"])]);
        names.record_names("A-2", &["张伟".to_owned()]);
        names.record_names("A-1", &[]);
        assert_eq!(names.matching("张"), Some(vec!["A-2".to_owned()]));
    }
}
