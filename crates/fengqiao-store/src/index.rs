//! Secondary index keys (status, holder, category, region code, earliest open deadline, directives, petitioner names) and filter matching.
//!
//! All indexes share one tree; a key is `kind byte ++ component ++ 0x00 ++ case number` with an
//! empty value. Case numbers never contain 0x00 (checked on create), so the number is whatever
//! follows the last 0x00, even when a component (a timestamp, an odd node id) contains one.

use chrono::{DateTime, Utc};
use fengqiao_case::{CaseId, CaseSummary, Category, DirectiveStatus, Status};

use crate::StoreError;
use crate::codec::corrupt;
use crate::{CaseFilter, DirectiveScope};

const STATUS_KIND: u8 = b's';
const HOLDER_KIND: u8 = b'h';
const CATEGORY_KIND: u8 = b'c';
const REGION_KIND: u8 = b'r';
const DEADLINE_KIND: u8 = b'd';
/// Cases with directives: component [`OPEN_DIRECTIVES`] while any is not crossed off, else
/// [`CROSSED_OFF_DIRECTIVES`]; no key for a case without directives (most cases).
const DIRECTIVE_KIND: u8 = b'v';
const OPEN_DIRECTIVES: &[u8] = b"open";
const CROSSED_OFF_DIRECTIVES: &[u8] = b"crossed_off";
/// Petitioner names: one key per character position of each name, holding the name from there
/// on, at most [`NAME_KEY_CHARS`] characters. "Name contains X" is then a prefix scan for X (its
/// first [`NAME_KEY_CHARS`] characters when longer, the summary's full names checked after).
const NAME_KEY_KIND: u8 = b'n';
const NAME_KEY_CHARS: usize = 16;

/// Version of the index keys [`index_keys`] writes; a store whose indexes were written under an
/// older version has them rebuilt on open (`storage.rs`). 2: the directive index.
pub(crate) const INDEX_VERSION: u32 = 2;

pub(crate) const KEY_SEPARATOR: u8 = 0;

/// The serialized spelling, not the enum's position: reordering the enum must not move index keys.
fn status_name(status: Status) -> &'static str {
    match status {
        Status::Registered => "registered",
        Status::AwaitingReceiver => "awaiting_receiver",
        Status::Accepted => "accepted",
        Status::NotAccepted => "not_accepted",
        Status::Diverted => "diverted",
        Status::ForwardedOut => "forwarded_out",
        Status::Replied => "replied",
        Status::Evaluated => "evaluated",
        Status::Closed => "closed",
        Status::UnderReview => "under_review",
        Status::Final => "final",
    }
}

fn category_name(category: Category) -> &'static str {
    match category {
        Category::LandRequisition => "land_requisition",
        Category::WageArrears => "wage_arrears",
        Category::DemolitionRelocation => "demolition_relocation",
        Category::SchoolConsolidation => "school_consolidation",
        Category::Labour => "labour",
        Category::Environment => "environment",
        Category::Neighbourhood => "neighbourhood",
        Category::Family => "family",
        Category::PropertyManagement => "property_management",
        Category::SocialSecurity => "social_security",
        Category::Other => "other",
    }
}

/// The deadline the deadline index orders by: the case crate's definition, so listings by
/// deadline agree with the warnings shown beside them. Changing that definition leaves index
/// entries written under the old one in place, so it needs a reindex (a store format bump).
pub(crate) fn earliest_open_deadline(summary: &CaseSummary) -> Option<DateTime<Utc>> {
    fengqiao_case::summary::earliest_open_deadline(summary)
}

/// Order-preserving encoding: flipping the sign bit makes negative instants sort first.
fn encode_instant(instant: DateTime<Utc>) -> [u8; 8] {
    encode_micros(instant.timestamp_micros())
}

fn encode_micros(micros: i64) -> [u8; 8] {
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

fn key_with_component(kind: u8, component: &[u8], number: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + component.len() + number.len());
    key.push(kind);
    key.extend_from_slice(component);
    key.push(KEY_SEPARATOR);
    key.extend_from_slice(number.as_bytes());
    key
}

/// Every index key of one summary, sorted, so an update can write only the difference.
pub(crate) fn index_keys(summary: &CaseSummary) -> Vec<Vec<u8>> {
    let number = summary.number.as_str();
    let mut keys = vec![
        key_with_component(STATUS_KIND, status_name(summary.status).as_bytes(), number),
        key_with_component(HOLDER_KIND, summary.holder.as_bytes(), number),
        key_with_component(
            CATEGORY_KIND,
            category_name(summary.category).as_bytes(),
            number,
        ),
        key_with_component(REGION_KIND, summary.region_code.as_bytes(), number),
    ];
    if let Some(deadline) = earliest_open_deadline(summary) {
        keys.push(key_with_component(
            DEADLINE_KIND,
            &encode_instant(deadline),
            number,
        ));
    }
    if !summary.directives.is_empty() {
        let component = if has_open_directive(summary) {
            OPEN_DIRECTIVES
        } else {
            CROSSED_OFF_DIRECTIVES
        };
        keys.push(key_with_component(DIRECTIVE_KIND, component, number));
    }
    for name in &summary.petitioner_names {
        for (start, _) in name.char_indices() {
            keys.push(key_with_component(
                NAME_KEY_KIND,
                bounded_name(&name[start..]).as_bytes(),
                number,
            ));
        }
    }
    keys.sort();
    // Two petitioners of one name, or a name repeating itself, give one key.
    keys.dedup();
    keys
}

pub(crate) fn number_from_index_key(key: &[u8]) -> Result<CaseId, StoreError> {
    let separator = key
        .iter()
        .rposition(|&byte| byte == KEY_SEPARATOR)
        .ok_or_else(|| corrupt("index key", "no separator"))?;
    let number = key.get(separator + 1..).unwrap_or_default();
    String::from_utf8(number.to_vec()).map_err(|error| corrupt("index key", error.to_string()))
}

/// Which part of the index tree a listing walks; the summary is always checked against the whole
/// filter afterwards, so a scan only has to return a superset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexScan {
    Prefix(Vec<u8>),
    /// Keys from `start` (inclusive) to `end` (exclusive).
    Range {
        start: Vec<u8>,
        end: Vec<u8>,
    },
    /// No indexed field in the filter: walk the summaries tree.
    AllSummaries,
}

/// The first [`NAME_KEY_CHARS`] characters of `text`.
fn bounded_name(text: &str) -> &str {
    match text.char_indices().nth(NAME_KEY_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

fn has_open_directive(summary: &CaseSummary) -> bool {
    summary
        .directives
        .iter()
        .any(|directive| directive.status != DirectiveStatus::CrossedOff)
}

/// Whether cases in `status` may stay there for good (decided, passed on or closed), so that
/// their number grows with the years; the working statuses hold only the cases in hand.
fn is_resting_status(status: Status) -> bool {
    matches!(
        status,
        Status::NotAccepted
            | Status::Diverted
            | Status::ForwardedOut
            | Status::Closed
            | Status::Final
    )
}

/// Picks one index per listing, the one likely to yield the fewest candidates: a petitioner's
/// name, cases with directives (few), the deadline index (only open cases, most urgent first), a working status
/// (the cases in hand, while 办结 grows), then holder (at a county: every case), region, a
/// resting status, category.
pub(crate) fn plan_scan(filter: &CaseFilter) -> IndexScan {
    let exact = |kind: u8, component: &[u8]| {
        let mut prefix = Vec::with_capacity(component.len() + 2);
        prefix.push(kind);
        prefix.extend_from_slice(component);
        prefix.push(KEY_SEPARATOR);
        IndexScan::Prefix(prefix)
    };
    if let Some(name) = filter
        .petitioner_name
        .as_deref()
        .filter(|name| !name.is_empty())
    {
        // No separator: the searched text may end anywhere inside a key's name part.
        let mut prefix = vec![NAME_KEY_KIND];
        prefix.extend_from_slice(bounded_name(name).as_bytes());
        return IndexScan::Prefix(prefix);
    }
    match filter.directives {
        Some(DirectiveScope::Open) => return exact(DIRECTIVE_KIND, OPEN_DIRECTIVES),
        Some(DirectiveScope::Any) => return IndexScan::Prefix(vec![DIRECTIVE_KIND]),
        None => {}
    }
    if let Some(before) = filter.deadline_before {
        return IndexScan::Range {
            start: vec![DEADLINE_KIND],
            end: {
                let mut end = vec![DEADLINE_KIND];
                end.extend_from_slice(&encode_micros(before.timestamp_micros().saturating_add(1)));
                end
            },
        };
    }
    if let Some(status) = filter.status.filter(|status| !is_resting_status(*status)) {
        return exact(STATUS_KIND, status_name(status).as_bytes());
    }
    if let Some(holder) = &filter.holder {
        return exact(HOLDER_KIND, holder.as_bytes());
    }
    if let Some(region_prefix) = &filter.region_prefix {
        // No separator: a township's code is a prefix of its villages' codes.
        let mut prefix = vec![REGION_KIND];
        prefix.extend_from_slice(region_prefix.as_bytes());
        return IndexScan::Prefix(prefix);
    }
    if let Some(status) = filter.status {
        return exact(STATUS_KIND, status_name(status).as_bytes());
    }
    if let Some(category) = filter.category {
        return exact(CATEGORY_KIND, category_name(category).as_bytes());
    }
    IndexScan::AllSummaries
}

pub(crate) fn matches(filter: &CaseFilter, summary: &CaseSummary) -> bool {
    filter.status.is_none_or(|status| summary.status == status)
        && filter
            .holder
            .as_ref()
            .is_none_or(|holder| &summary.holder == holder)
        && filter
            .category
            .is_none_or(|category| summary.category == category)
        && filter
            .region_prefix
            .as_ref()
            .is_none_or(|prefix| summary.region_code.starts_with(prefix.as_str()))
        && filter.deadline_before.is_none_or(|before| {
            earliest_open_deadline(summary).is_some_and(|deadline| deadline <= before)
        })
        && filter.petitioner_name.as_deref().is_none_or(|needle| {
            summary
                .petitioner_names
                .iter()
                .any(|name| name.contains(needle))
        })
        && filter.directives.is_none_or(|scope| match scope {
            DirectiveScope::Open => has_open_directive(summary),
            DirectiveScope::Any => !summary.directives.is_empty(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::summary_for;
    use chrono::TimeZone;

    #[test]
    fn earliest_open_deadline_follows_status() {
        let at = |day: u32| Utc.with_ymd_and_hms(2026, 3, day, 0, 0, 0).single();
        let mut summary = summary_for("430702001001-2026-000001", Status::Registered, "node-a");
        summary.timeline.acceptance_deadline = at(1);
        summary.timeline.objection_deadline = at(2);
        summary.timeline.handling_deadline = at(3);
        summary.timeline.review_deadline = at(4);
        summary.timeline.evaluation_deadline = at(5);
        let expected = [
            (Status::Registered, at(1)),
            (Status::AwaitingReceiver, at(2)),
            (Status::Accepted, at(3)),
            (Status::UnderReview, at(4)),
            (Status::Replied, None),
            (Status::Closed, None),
            (Status::Final, None),
        ];
        for (status, deadline) in expected {
            summary.status = status;
            assert_eq!(earliest_open_deadline(&summary), deadline, "{status:?}");
        }
    }

    #[test]
    fn instant_encoding_preserves_order_across_the_epoch() {
        let samples = [i64::MIN, -1_000, -1, 0, 1, 1_000, i64::MAX];
        for pair in samples.windows(2) {
            assert!(encode_micros(pair[0]) < encode_micros(pair[1]));
        }
    }

    #[test]
    fn number_is_read_back_from_every_index_key() {
        let mut summary = summary_for("430702001001-2026-000009", Status::Registered, "node-a");
        // A timestamp whose encoding contains zero bytes must not confuse the parser.
        summary.timeline.acceptance_deadline = Utc.timestamp_opt(0, 0).single();
        let keys = index_keys(&summary);
        assert_eq!(keys.len(), 5);
        for key in keys {
            assert_eq!(
                number_from_index_key(&key).ok().as_deref(),
                Some("430702001001-2026-000009")
            );
        }
    }
}
