//! Rebuilding a lost node from its parent (issue 17, part 4): the state `fengqiao init
//! --restore-from-parent` leaves in the new node's store, the rule that such a node registers
//! no case until its parent has sent back everything it owes this office, and the completion
//! that continues the office's numbering after the highest number that came back and reports
//! the numbers that did not.
//!
//! The parent holds every case of its subtree (everything replicates up), so once it admits the
//! new node (as the successor of the old node ID, `admit --successor-of`, when the old key was
//! lost) routing sends it every case the office took part in. The numbering cannot be known
//! from the node's own store, which is new: a number handed out before the cases came back
//! could be one of theirs, hence the wait.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use fengqiao_case::model::roster::{
    MAX_MISSING_LISTED, REBUILD_FORMAT_VERSION, RebuildReport, RecoveredSequence,
};
use fengqiao_store::{Store, StoreError};

/// Store meta key of the node's [`RebuildReport`] (JSON), from init on.
pub const REBUILD_META_KEY: &str = "rebuild";

/// Feed entries read at a time when the rebuild completes.
const FEED_BATCH: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error("the stored rebuild state cannot be read: {0}")]
    Corrupt(String),
    #[error(
        "the stored rebuild state is format version {found}; this build reads version \
         {REBUILD_FORMAT_VERSION}"
    )]
    UnknownVersion { found: u32 },
}

/// Mark the node in `store` as being rebuilt from `parent` (called by init, before it runs).
pub fn begin(
    store: &Store,
    parent: &str,
    parent_name: &str,
    region_code: &str,
    now: DateTime<Utc>,
) -> Result<RebuildReport, RebuildError> {
    let report = RebuildReport {
        format_version: REBUILD_FORMAT_VERSION,
        parent: parent.to_owned(),
        parent_name: parent_name.to_owned(),
        region_code: region_code.to_owned(),
        started_at: now,
        completed_at: None,
        cases_recovered: 0,
        sequences: Vec::new(),
    };
    save(store, &report)?;
    Ok(report)
}

/// The node's rebuild, if it was made by one.
pub fn report(store: &Store) -> Result<Option<RebuildReport>, RebuildError> {
    let Some(bytes) = store.meta_get(REBUILD_META_KEY)? else {
        return Ok(None);
    };
    let report: RebuildReport =
        serde_json::from_slice(&bytes).map_err(|error| RebuildError::Corrupt(error.to_string()))?;
    if report.format_version != REBUILD_FORMAT_VERSION {
        return Err(RebuildError::UnknownVersion {
            found: report.format_version,
        });
    }
    Ok(Some(report))
}

/// Why the node may not hand out a case number now, if it may not: it is being rebuilt and
/// its parent has not sent everything back yet.
pub fn numbering_blocked(store: &Store) -> Result<Option<String>, RebuildError> {
    Ok(report(store)?
        .filter(|report| report.completed_at.is_none())
        .map(|report| {
            format!(
                "this node is being rebuilt from its parent {} ({}) and registers no case until \
                 every case of this office has come back, so that no number is issued twice; \
                 `fengqiao peers` shows the progress",
                report.parent_name, report.parent
            )
        }))
}

/// The parent has sent everything it owes: if this node is being rebuilt, finish it. Raises the
/// office's number counters past the highest own number of each year that came back, records
/// the numbers below it that did not, and returns the completed report. A node not being
/// rebuilt, or whose rebuild completed before, is left alone (`None`).
pub fn complete_if_rebuilding(
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Option<RebuildReport>, RebuildError> {
    let Some(mut report) = report(store)? else {
        return Ok(None);
    };
    if report.completed_at.is_some() {
        return Ok(None);
    }
    let own_start = format!("{}-", report.region_code);
    let mut sequences: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut after = 0;
    loop {
        let entries = store.feed_since(after, FEED_BATCH)?;
        let Some(last) = entries.last() else {
            break;
        };
        after = last.seq;
        for entry in &entries {
            if let Some((prefix, sequence)) = own_number(&entry.case, &own_start) {
                sequences.entry(prefix).or_default().insert(sequence);
            }
        }
    }
    report.sequences = Vec::with_capacity(sequences.len());
    for (prefix, held) in sequences {
        let highest = held.last().copied().unwrap_or(0);
        store.raise_case_sequence(&prefix, highest)?;
        // Sequences start at 1; a malformed 0 counts for nothing.
        let held_from_one = held.range(1..).count() as u64;
        let missing_count = highest.saturating_sub(held_from_one);
        let missing: Vec<u64> = (1..highest)
            .filter(|sequence| !held.contains(sequence))
            .take(MAX_MISSING_LISTED)
            .collect();
        report.sequences.push(RecoveredSequence {
            prefix,
            highest,
            missing_count,
            missing,
        });
    }
    report.cases_recovered = store.case_count();
    report.completed_at = Some(now);
    // Written after the counters: a crash in between completes again, raising nothing twice.
    save(store, &report)?;
    Ok(Some(report))
}

/// `REGION-YEAR` and the sequence of an own case number (`own_start` is `REGION-`).
fn own_number(number: &str, own_start: &str) -> Option<(String, u64)> {
    let rest = number.strip_prefix(own_start)?;
    let (year, sequence) = rest.split_once('-')?;
    if year.len() != 4 || !year.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    if sequence.is_empty() || !sequence.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let sequence = sequence.parse().ok()?;
    Some((format!("{own_start}{year}"), sequence))
}

fn save(store: &Store, report: &RebuildReport) -> Result<(), RebuildError> {
    let bytes =
        serde_json::to_vec(report).map_err(|error| RebuildError::Corrupt(error.to_string()))?;
    store.meta_put(REBUILD_META_KEY, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_rebuilding_node_numbers_nothing_until_complete_and_counters_only_grow() {
        let temp = tempfile::tempdir().unwrap();
        let store = Store::open(
            temp.path(),
            fengqiao_store::StoreOptions::new(8, vec![1; 16]),
        )
        .unwrap();
        assert!(report(&store).unwrap().is_none());
        assert!(numbering_blocked(&store).unwrap().is_none());
        let started = chrono::Utc::now();
        begin(&store, "township", "芦荻山乡", "430702001001", started).unwrap();
        let why = numbering_blocked(&store)
            .unwrap()
            .expect("blocked while rebuilding");
        assert!(why.contains("being rebuilt"), "{why}");
        let completed = complete_if_rebuilding(&store, started)
            .unwrap()
            .expect("completes");
        assert_eq!(completed.completed_at, Some(started));
        assert_eq!(completed.cases_recovered, 0);
        assert!(numbering_blocked(&store).unwrap().is_none());
        // Completed once: a later catch-up leaves it alone.
        assert!(complete_if_rebuilding(&store, started).unwrap().is_none());

        assert_eq!(
            store.raise_case_sequence("430702001001-2026", 300).unwrap(),
            300
        );
        assert_eq!(
            store.raise_case_sequence("430702001001-2026", 5).unwrap(),
            300
        );
        assert_eq!(store.next_case_sequence("430702001001-2026").unwrap(), 301);
        assert_eq!(store.next_case_sequence("430702001001-2025").unwrap(), 1);
    }

    #[test]
    fn own_numbers_are_told_from_others() {
        let own = "430702001001-";
        assert_eq!(
            own_number("430702001001-2026-000042", own),
            Some(("430702001001-2026".to_owned(), 42))
        );
        assert_eq!(own_number("430702001-2026-000042", own), None);
        assert_eq!(own_number("430702001001-26-000042", own), None);
        assert_eq!(own_number("430702001001-2026-", own), None);
        assert_eq!(own_number("430702001001-2026-00x1", own), None);
    }
}
