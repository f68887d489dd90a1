//! The petitioners' names of every case, held in memory for the listings that search by name
//! ([`crate::CaseFilter::petitioner_name`] and the 台账's text search).
//!
//! Until index version 5 these were index keys, one per character position of every name: about
//! 5 of the 15 sled keys written per case, and a sixth of an initial sync's time (BENCHMARKS.md,
//! session 19). A name search is a substring test over at most a few hundred thousand short names,
//! about 5 ms in memory at 100,000 cases, so the names are kept here instead: about 150 bytes a
//! case, 15 MiB at 100,000 (BENCHMARKS.md).
//!
//! Built from the summaries on first use (or when the node warms its indexes after a start), then
//! told of every summary the store commits, in commit order (`SummaryObservation`), so it follows
//! the store exactly. Architecture invariant: the build and every change run under the store's
//! commit order, so no commit is missed between the build's scan and the first change. Callers
//! re-check each summary they read against the whole filter, so a case named here is only a
//! candidate; a case whose committed summary matches is never left out.

use std::collections::BTreeMap;
use std::sync::RwLock;

use fengqiao_case::{CaseId, CaseSummary};

/// Between two names of one case: a needle without it cannot match across two names (and one
/// with it finds a superset, which the callers' re-check narrows).
const NAME_SEPARATOR: char = '\0';

/// The names of each case that has any, joined by [`NAME_SEPARATOR`]; `None` until built.
#[derive(Debug, Default)]
pub(crate) struct PetitionerNames {
    by_case: RwLock<Option<BTreeMap<CaseId, Box<str>>>>,
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

impl PetitionerNames {
    pub(crate) fn is_built(&self) -> bool {
        self.by_case
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// Replaces whatever was held by the names of `summaries` (every case's, as stored). The
    /// caller holds the commit order, so nothing is committed meanwhile.
    pub(crate) fn build<E>(
        &self,
        summaries: impl IntoIterator<Item = Result<(CaseId, Vec<String>), E>>,
    ) -> Result<(), E> {
        let mut by_case = BTreeMap::new();
        for summary in summaries {
            let (number, names) = summary?;
            if let Some(names) = joined(&names) {
                by_case.insert(number, names);
            }
        }
        *self
            .by_case
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(by_case);
        Ok(())
    }

    /// A committed summary: its names replace the case's. Nothing to do before the build, which
    /// reads every summary committed before it.
    pub(crate) fn record(&self, summary: &CaseSummary) {
        self.record_names(&summary.number, &summary.petitioner_names);
    }

    pub(crate) fn record_names(&self, number: &str, names: &[String]) {
        let mut guard = self
            .by_case
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(by_case) = guard.as_mut() else {
            return;
        };
        match joined(names) {
            Some(names) => {
                by_case.insert(number.to_owned(), names);
            }
            None => {
                by_case.remove(number);
            }
        }
    }

    /// The cases with a petitioner whose name contains `needle`, by number; `None` before the
    /// build.
    pub(crate) fn matching(&self, needle: &str) -> Option<Vec<CaseId>> {
        let guard = self
            .by_case
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let by_case = guard.as_ref()?;
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
        self.by_case
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(BTreeMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(cases: &[(&str, &[&str])]) -> PetitionerNames {
        let names = PetitionerNames::default();
        names
            .build(cases.iter().map(|(number, names)| {
                Ok::<_, ()>((
                    (*number).to_owned(),
                    names.iter().map(|name| (*name).to_owned()).collect(),
                ))
            }))
            .expect("builds");
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
