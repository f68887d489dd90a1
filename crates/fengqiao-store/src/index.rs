//! Secondary index keys (status, holder, category, region code, earliest open deadline, registration instant, directives), filter matching, and the 台账's pages read from index keys alone. Petitioners' names are not index keys: they are held in memory (`petitioner_names.rs`).
//!
//! All indexes share one tree; a key is `kind byte ++ component ++ 0x00 ++ urgency (8 bytes) ++
//! 0x00 ++ case number` with an empty value. Case numbers never contain 0x00 (checked on create),
//! so the number is whatever follows the last 0x00 and the urgency the 8 bytes before that, even
//! when a component (a timestamp, an odd node id) or the urgency contains one. The urgency is the
//! case's earliest open deadline (order-preserving), [`NO_OPEN_DEADLINE`] without one: within one
//! component the keys come most urgent first, which is the 台账's order, so a page is read from
//! keys without decoding a summary beyond the page's own. Directives, whose few matches are
//! listed whole and then sorted, have no urgency: `kind ++ component ++ 0x00 ++ case number`, so
//! a change of deadline leaves their keys alone.
//!
//! The same tree keeps a count per component of status, holder, category and of every case
//! ([`COUNT_KIND`]), written in the transaction that writes the keys: a page of one component
//! takes its total from the count and walks only as far as the page.

use std::collections::HashSet;

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
/// Registration instants: component the instant, order-preserving; no key while a case has none.
const REGISTERED_KIND: u8 = b'g';
/// Counts: `COUNT_KIND ++ kind ++ component`, the value how many cases have a key of that
/// component (u64, big-endian), for the kinds [`is_counted_kind`] names. No index key starts
/// with this byte, so no walk of an index meets a count.
const COUNT_KIND: u8 = b'#';

/// Version of the index keys [`index_keys`] writes; a store whose indexes were written under an
/// older version has them cleared and rebuilt on open (`storage.rs`). 2: the directive index.
/// 3: the urgency in every key, a deadline key for every case, the registration index.
/// 4: counts per component; name and directive keys without the urgency. 5: no name keys (the
/// names are held in memory, `petitioner_names.rs`); the rebuild drops those of version 4.
pub(crate) const INDEX_VERSION: u32 = 5;

/// A case's place in the 台账's order, as index keys carry it: its earliest open deadline
/// ([`encode_instant`]), or [`NO_OPEN_DEADLINE`].
pub(crate) type Urgency = [u8; 8];

/// The urgency of a case without an open deadline: after every instant chrono can hold (whose
/// microseconds stay below `i64::MAX`), so such cases come last, by number.
const NO_OPEN_DEADLINE: Urgency = [0xFF; 8];

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

/// Where the case stands in the 台账's order: its earliest open deadline, or none.
pub(crate) fn urgency_of(summary: &CaseSummary) -> Urgency {
    earliest_open_deadline(summary).map_or(NO_OPEN_DEADLINE, encode_instant)
}

/// `kind ++ component ++ 0x00`: the prefix of every key of one component.
fn component_prefix(kind: u8, component: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(component.len() + 2);
    prefix.push(kind);
    prefix.extend_from_slice(component);
    prefix.push(KEY_SEPARATOR);
    prefix
}

fn index_key(kind: u8, component: &[u8], urgency: &Urgency, number: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(component.len() + urgency.len() + number.len() + 3);
    key.push(kind);
    key.extend_from_slice(component);
    key.push(KEY_SEPARATOR);
    key.extend_from_slice(urgency);
    key.push(KEY_SEPARATOR);
    key.extend_from_slice(number.as_bytes());
    key
}

/// `kind ++ component ++ 0x00 ++ case number`: a key of an index whose matches are few and
/// sorted after listing (directives), so it needs no urgency.
fn unordered_index_key(kind: u8, component: &[u8], number: &str) -> Vec<u8> {
    let mut key = component_prefix(kind, component);
    key.extend_from_slice(number.as_bytes());
    key
}

/// Every index key of one summary, sorted, so an update can write only the difference.
pub(crate) fn index_keys(summary: &CaseSummary) -> Vec<Vec<u8>> {
    let number = summary.number.as_str();
    let urgency = urgency_of(summary);
    let key = |kind: u8, component: &[u8]| index_key(kind, component, &urgency, number);
    let unordered_key = |kind: u8, component: &[u8]| unordered_index_key(kind, component, number);
    let mut keys = vec![
        key(STATUS_KIND, status_name(summary.status).as_bytes()),
        key(HOLDER_KIND, summary.holder.as_bytes()),
        key(CATEGORY_KIND, category_name(summary.category).as_bytes()),
        key(REGION_KIND, summary.region_code.as_bytes()),
        // Every case, most urgent first: the 台账's order when no other index serves.
        key(DEADLINE_KIND, &[]),
    ];
    if let Some(registered_at) = summary.timeline.registered_at {
        keys.push(key(REGISTERED_KIND, &encode_instant(registered_at)));
    }
    if !summary.directives.is_empty() {
        let component = if has_open_directive(summary) {
            OPEN_DIRECTIVES
        } else {
            CROSSED_OFF_DIRECTIVES
        };
        keys.push(unordered_key(DIRECTIVE_KIND, component));
    }
    keys.sort();
    keys
}

/// The case number any index key ends with (with or without an urgency before it).
pub(crate) fn number_from_index_key(key: &[u8]) -> Result<CaseId, StoreError> {
    split_number(key).map(|(_, number)| number.to_owned())
}

/// Where the last separator of an index key is, and the case number after it.
fn split_number(key: &[u8]) -> Result<(usize, &str), StoreError> {
    let separator = key
        .iter()
        .rposition(|&byte| byte == KEY_SEPARATOR)
        .ok_or_else(|| corrupt("index key", "no separator"))?;
    let number = key.get(separator + 1..).unwrap_or_default();
    let number =
        std::str::from_utf8(number).map_err(|error| corrupt("index key", error.to_string()))?;
    Ok((separator, number))
}

/// The urgency and the case number an index key ends with, borrowed from the key: a page walks
/// every key of its index and copies only the numbers it keeps.
fn entry_from_index_key(key: &[u8]) -> Result<(Urgency, &str), StoreError> {
    let (separator, number) = split_number(key)?;
    let urgency: Urgency = separator
        .checked_sub(URGENCY_BYTES)
        .and_then(|start| key.get(start..separator))
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| corrupt("index key", "no urgency"))?;
    Ok((urgency, number))
}

const URGENCY_BYTES: usize = 8;

/// The kinds with a count per component: those a page walks in order with nothing else to check
/// (`plan_page`). Each case has exactly one key of each.
fn is_counted_kind(kind: u8) -> bool {
    matches!(
        kind,
        STATUS_KIND | HOLDER_KIND | CATEGORY_KIND | DEADLINE_KIND
    )
}

fn count_key(kind: u8, component: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(component.len() + 2);
    key.push(COUNT_KIND);
    key.push(kind);
    key.extend_from_slice(component);
    key
}

/// The count an index key adds one to, `None` for a key of a kind without counts.
pub(crate) fn count_key_of(index_key: &[u8]) -> Option<Vec<u8>> {
    let (&kind, _) = index_key.split_first()?;
    if !is_counted_kind(kind) {
        return None;
    }
    let separator = index_key.iter().rposition(|&byte| byte == KEY_SEPARATOR)?;
    // `kind ++ component ++ 0x00 ++ urgency ++ 0x00 ++ number`.
    let component_end = separator.checked_sub(URGENCY_BYTES + 1)?;
    Some(count_key(kind, index_key.get(1..component_end)?))
}

/// How the counts change as cases' keys are written and removed; the storage applies it in the
/// transaction that writes the keys ([`CountChanges::entries`]).
#[derive(Debug, Default)]
pub(crate) struct CountChanges {
    by_count_key: std::collections::BTreeMap<Vec<u8>, i64>,
}

impl CountChanges {
    /// A case's keys going from `old` to `new`, both sorted as [`index_keys`] gives them (either
    /// empty for a case created or without keys).
    pub(crate) fn replace(&mut self, old: &[Vec<u8>], new: &[Vec<u8>]) {
        for old_key in old {
            if new.binary_search(old_key).is_err() {
                self.add(old_key, -1);
            }
        }
        for new_key in new {
            if old.binary_search(new_key).is_err() {
                self.add(new_key, 1);
            }
        }
    }

    fn add(&mut self, index_key: &[u8], change: i64) {
        if let Some(count_key) = count_key_of(index_key) {
            *self.by_count_key.entry(count_key).or_default() += change;
        }
    }

    /// Each count key whose count changes, with the change.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], i64)> {
        self.by_count_key
            .iter()
            .filter(|(_, change)| **change != 0)
            .map(|(key, change)| (key.as_slice(), *change))
    }
}

/// A count as stored (absent: 0).
fn stored_count(stored: Option<&[u8]>) -> Result<u64, StoreError> {
    match stored {
        None => Ok(0),
        Some(bytes) => {
            Ok(u64::from_be_bytes(bytes.try_into().map_err(|_| {
                corrupt("index count", format!("{} bytes", bytes.len()))
            })?))
        }
    }
}

/// A stored count with `change` added: absent is 0, and a count never goes below 0 (an index
/// entry of a damaged summary left behind can make a removal find none to take off).
pub(crate) fn changed_count(stored: Option<&[u8]>, change: i64) -> Result<u64, StoreError> {
    let count = stored_count(stored)?;
    Ok(if change >= 0 {
        count.saturating_add(change.unsigned_abs())
    } else {
        count.saturating_sub(change.unsigned_abs())
    })
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

/// Picks one index per listing, the one likely to yield the fewest candidates: cases with
/// directives (few), the deadline index (only open cases, most urgent first), a working status
/// (the cases in hand, while 办结 grows), then holder (at a county: every case), region, a
/// resting status, category. A petitioner's name is answered before any index, from the names
/// held in memory (`Store::list`); given one here, the summaries' names are checked instead.
pub(crate) fn plan_scan(filter: &CaseFilter) -> IndexScan {
    let exact = |kind: u8, component: &[u8]| IndexScan::Prefix(component_prefix(kind, component));
    match filter.directives {
        Some(DirectiveScope::Open) => return exact(DIRECTIVE_KIND, OPEN_DIRECTIVES),
        Some(DirectiveScope::Any) => return IndexScan::Prefix(vec![DIRECTIVE_KIND]),
        None => {}
    }
    if let Some(before) = filter.deadline_before {
        let (start, end) = urgency_range(
            component_prefix(DEADLINE_KIND, &[]),
            filter.deadline_from,
            Some(before),
        );
        return IndexScan::Range { start, end };
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
        && filter.deadline_from.is_none_or(|from| {
            earliest_open_deadline(summary).is_some_and(|deadline| deadline >= from)
        })
        && registered_in_range(filter, summary)
        && filter.text.as_deref().is_none_or(|text| {
            summary.number.contains(text)
                || summary
                    .petitioner_names
                    .iter()
                    .any(|name| name.contains(text))
        })
}

fn registered_in_range(filter: &CaseFilter, summary: &CaseSummary) -> bool {
    if filter.registered_from.is_none() && filter.registered_before.is_none() {
        return true;
    }
    summary.timeline.registered_at.is_some_and(|at| {
        filter.registered_from.is_none_or(|from| at >= from)
            && filter.registered_before.is_none_or(|before| at < before)
    })
}

/// The keys of one component (`prefix`, ending in the separator) whose urgency is an open
/// deadline within `[from, before]` (either end open when `None`), as `[start, end)`.
fn urgency_range(
    prefix: Vec<u8>,
    from: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
) -> (Vec<u8>, Vec<u8>) {
    let mut start = prefix.clone();
    if let Some(from) = from {
        start.extend_from_slice(&encode_instant(from));
    }
    let mut end = prefix;
    match before {
        Some(before) => {
            end.extend_from_slice(&encode_micros(before.timestamp_micros().saturating_add(1)))
        }
        None => end.extend_from_slice(&NO_OPEN_DEADLINE),
    }
    (start, end)
}

/// The index a page is read from, and which of the filter's fields it answers by itself.
struct PageScan {
    start: Vec<u8>,
    /// Exclusive; `None`: every key starting with `start`.
    end: Option<Vec<u8>>,
    /// Keys come in the 台账's order (one component, by urgency then number).
    ordered: bool,
    answers_status: bool,
    answers_holder: bool,
    answers_category: bool,
    answers_region: bool,
    answers_registered: bool,
    /// The count of the walked component, when the walk is of one whole component.
    count_key: Option<Vec<u8>>,
}

/// Picks the index a page walks. A registration range or a region are one range of their index
/// but not in urgency order (their entries are sorted after the walk); otherwise one component of
/// an index ordered by urgency (a working status, a category, any status, the holder, or every
/// case), narrowed to the deadline bounds. Status, holder and category are then checked by
/// looking their key up, and only region and registration by reading the summary.
fn plan_page(filter: &CaseFilter) -> PageScan {
    let mut scan = PageScan {
        start: Vec::new(),
        end: None,
        ordered: false,
        answers_status: false,
        answers_holder: false,
        answers_category: false,
        answers_region: false,
        answers_registered: false,
        count_key: None,
    };
    if filter.registered_from.is_some() || filter.registered_before.is_some() {
        scan.start = vec![REGISTERED_KIND];
        if let Some(from) = filter.registered_from {
            scan.start.extend_from_slice(&encode_instant(from));
        }
        let mut end = vec![REGISTERED_KIND];
        match filter.registered_before {
            Some(before) => end.extend_from_slice(&encode_instant(before)),
            None => end = vec![REGISTERED_KIND + 1],
        }
        scan.end = Some(end);
        scan.answers_registered = true;
        return scan;
    }
    if let Some(region_prefix) = &filter.region_prefix {
        // No separator: a township's code is a prefix of its villages' codes.
        scan.start = vec![REGION_KIND];
        scan.start.extend_from_slice(region_prefix.as_bytes());
        scan.answers_region = true;
        return scan;
    }
    let working_status = filter.status.filter(|status| !is_resting_status(*status));
    let (kind, component): (u8, &[u8]) = if let Some(status) = working_status {
        scan.answers_status = true;
        (STATUS_KIND, status_name(status).as_bytes())
    } else if let Some(category) = filter.category {
        scan.answers_category = true;
        (CATEGORY_KIND, category_name(category).as_bytes())
    } else if let Some(status) = filter.status {
        scan.answers_status = true;
        (STATUS_KIND, status_name(status).as_bytes())
    } else if let Some(holder) = &filter.holder {
        scan.answers_holder = true;
        (HOLDER_KIND, holder.as_bytes())
    } else {
        (DEADLINE_KIND, &[])
    };
    let prefix = component_prefix(kind, component);
    let (start, end) = if filter.deadline_from.is_some() || filter.deadline_before.is_some() {
        urgency_range(prefix, filter.deadline_from, filter.deadline_before)
    } else {
        scan.count_key = Some(count_key(kind, component));
        let mut end = prefix.clone();
        // The prefix ends in the separator: every key of the component sorts before this.
        if let Some(last) = end.last_mut() {
            *last = KEY_SEPARATOR + 1;
        }
        (prefix, end)
    };
    scan.start = start;
    scan.end = Some(end);
    scan.ordered = true;
    scan
}

/// The case numbers a walk has counted, without a string per number: the numbers are copied
/// one after another into one buffer and found again by a hash of each (keyed per walk, so a
/// peer cannot choose numbers that collide); two numbers of one hash are told apart by their
/// bytes, so the answer is exact.
#[derive(Default)]
struct SeenNumbers<Hashing = std::hash::RandomState> {
    hasher: Hashing,
    numbers: String,
    by_hash: std::collections::HashMap<
        u64,
        std::ops::Range<usize>,
        std::hash::BuildHasherDefault<HashedAlready>,
    >,
    /// Numbers whose hash an earlier, different number has (next to never).
    colliding: HashSet<CaseId>,
}

impl<Hashing: std::hash::BuildHasher> SeenNumbers<Hashing> {
    /// Where the number is kept when it is new, `None` when it was counted before.
    fn insert(&mut self, number: &str) -> Option<std::ops::Range<usize>> {
        use std::collections::hash_map::Entry;
        match self.by_hash.entry(self.hasher.hash_one(number)) {
            Entry::Vacant(vacant) => {
                let kept_at = self.numbers.len()..self.numbers.len() + number.len();
                self.numbers.push_str(number);
                vacant.insert(kept_at.clone());
                Some(kept_at)
            }
            Entry::Occupied(occupied) => {
                let kept_at = occupied.get().clone();
                if self.numbers.get(kept_at.clone()) == Some(number) {
                    None
                } else if self.colliding.insert(number.to_owned()) {
                    let kept_at = self.numbers.len()..self.numbers.len() + number.len();
                    self.numbers.push_str(number);
                    Some(kept_at)
                } else {
                    None
                }
            }
        }
    }

    fn number(&self, kept_at: &std::ops::Range<usize>) -> &str {
        self.numbers.get(kept_at.clone()).unwrap_or_default()
    }
}

/// The hasher of [`SeenNumbers::by_hash`], whose keys are hashes already: it passes them on.
#[derive(Default)]
struct HashedAlready(u64);

impl std::hash::Hasher for HashedAlready {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the keys are u64); any other input is folded in.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// One page of the cases matching a filter, in the 台账's order, and how many match in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SummaryPage {
    /// At most `take` summaries, after skipping `skip` matches, most urgent first: earliest open
    /// deadline first, cases without one last, ties by case number.
    pub summaries: Vec<CaseSummary>,
    pub total: usize,
}

/// Reads a page as [`SummaryPage`] describes: the matches are found and counted from index keys
/// (one index walked, the other exact fields looked up by key), and only the page's summaries
/// (and, for a region or registration range combined with another field, the candidates') are
/// read. A petitioner's name or a directive scope are small sets: listed whole, then sorted.
pub(crate) fn page(
    indexes: &sled::Tree,
    filter: &CaseFilter,
    skip: usize,
    take: usize,
    read_summary: &dyn Fn(&str) -> Result<Option<CaseSummary>, StoreError>,
    list: &dyn Fn(&CaseFilter) -> Result<Vec<CaseSummary>, StoreError>,
) -> Result<SummaryPage, StoreError> {
    let unlimited = CaseFilter {
        limit: None,
        ..filter.clone()
    };
    if filter
        .petitioner_name
        .as_deref()
        .is_some_and(|name| !name.is_empty())
        || filter.directives.is_some()
    {
        let mut found = list(&unlimited)?;
        found.sort_by_cached_key(|summary| (urgency_of(summary), summary.number.clone()));
        let total = found.len();
        return Ok(SummaryPage {
            summaries: found.into_iter().skip(skip).take(take).collect(),
            total,
        });
    }
    // Numbers of the cases a text finds by a petitioner's name (few); the walk adds the numbers
    // containing it.
    let named: HashSet<CaseId> = match filter.text.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => list(&CaseFilter {
            petitioner_name: Some(text.to_owned()),
            ..CaseFilter::default()
        })?
        .into_iter()
        .map(|summary| summary.number)
        .collect(),
        None => HashSet::new(),
    };
    let scan = plan_page(filter);
    let lookups: Vec<(u8, &[u8])> = [
        filter
            .status
            .filter(|_| !scan.answers_status)
            .map(|status| (STATUS_KIND, status_name(status).as_bytes())),
        filter
            .holder
            .as_ref()
            .filter(|_| !scan.answers_holder)
            .map(|holder| (HOLDER_KIND, holder.as_bytes())),
        filter
            .category
            .filter(|_| !scan.answers_category)
            .map(|category| (CATEGORY_KIND, category_name(category).as_bytes())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let needs_summary = (filter.region_prefix.is_some() && !scan.answers_region)
        || ((filter.registered_from.is_some() || filter.registered_before.is_some())
            && !scan.answers_registered);
    let deadline_from = filter.deadline_from.map(encode_instant);
    let deadline_before = filter.deadline_before.map(encode_instant);
    let bounded_by_deadline = deadline_from.is_some() || deadline_before.is_some();
    // One whole component and nothing else to check: its count is the total, and the walk stops
    // at the end of the page.
    let counted_total = match &scan.count_key {
        Some(count_key)
            if lookups.is_empty()
                && !needs_summary
                && filter.text.as_deref().is_none_or(str::is_empty) =>
        {
            let count = stored_count(indexes.get(count_key)?.as_deref())?;
            Some(usize::try_from(count).unwrap_or(usize::MAX))
        }
        _ => None,
    };
    let keys = match &scan.end {
        Some(end) => indexes.range(scan.start.clone()..end.clone()),
        None => indexes.scan_prefix(&scan.start),
    };
    // sled iterators are not snapshots: a case updated during the walk can show up under its
    // old and its new key, so numbers already counted are skipped.
    let mut seen: SeenNumbers = SeenNumbers::default();
    let mut total = 0usize;
    // Unordered: every match, as its urgency and where `seen` keeps its number.
    let mut unordered: Vec<(Urgency, std::ops::Range<usize>)> = Vec::new();
    let mut entries: Vec<(Urgency, CaseId)> = Vec::new();
    for key in keys.keys() {
        let key = key?;
        let (urgency, number) = entry_from_index_key(&key)?;
        if bounded_by_deadline
            && (urgency == NO_OPEN_DEADLINE
                || deadline_from.is_some_and(|from| urgency < from)
                || deadline_before.is_some_and(|before| urgency > before))
        {
            continue;
        }
        if let Some(text) = filter.text.as_deref()
            && !(number.contains(text) || named.contains(number))
        {
            continue;
        }
        let mut answered = true;
        for (kind, component) in &lookups {
            if !indexes.contains_key(index_key(*kind, component, &urgency, number))? {
                answered = false;
                break;
            }
        }
        if !answered {
            continue;
        }
        if needs_summary
            && !read_summary(number)?.is_some_and(|summary| matches(&unlimited, &summary))
        {
            continue;
        }
        let Some(kept_at) = seen.insert(number) else {
            continue;
        };
        total += 1;
        if !scan.ordered {
            unordered.push((urgency, kept_at));
        } else if total > skip && entries.len() < take {
            entries.push((urgency, number.to_owned()));
        }
        if counted_total.is_some() && total >= skip.saturating_add(take) {
            break;
        }
    }
    let total = counted_total.unwrap_or(total);
    if !scan.ordered {
        // Only the first `skip + take` in order are wanted: partitioned, then those sorted.
        let order = |left: &(Urgency, std::ops::Range<usize>),
                     right: &(Urgency, std::ops::Range<usize>)| {
            (left.0, seen.number(&left.1)).cmp(&(right.0, seen.number(&right.1)))
        };
        let wanted = skip.saturating_add(take).min(unordered.len());
        if wanted < unordered.len() {
            unordered.select_nth_unstable_by(wanted, order);
            unordered.truncate(wanted);
        }
        unordered.sort_unstable_by(order);
        entries = unordered
            .iter()
            .skip(skip)
            .map(|(urgency, kept_at)| (*urgency, seen.number(kept_at).to_owned()))
            .collect();
    }
    let mut summaries = Vec::with_capacity(entries.len());
    for (_, number) in entries {
        // The key said it matches; the summary has the last word (a case changed meanwhile).
        match read_summary(&number)? {
            Some(summary) if matches(&unlimited, &summary) => summaries.push(summary),
            Some(_) => {}
            None => tracing::warn!(case = number, "index entry without a summary"),
        }
    }
    Ok(SummaryPage { summaries, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::summary_for;
    use chrono::TimeZone;

    /// Every number hashes alike: the worst case of [`SeenNumbers`], told apart by the bytes.
    #[derive(Default)]
    struct OneHashForAll;

    impl std::hash::Hasher for OneHashForAll {
        fn finish(&self) -> u64 {
            7
        }

        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn seen_numbers_count_each_number_once_even_when_hashes_collide() {
        let mut colliding: SeenNumbers<std::hash::BuildHasherDefault<OneHashForAll>> =
            SeenNumbers::default();
        let mut keyed: SeenNumbers = SeenNumbers::default();
        let numbers = ["430702-2026-000001", "430702-2026-000002", "4307", ""];
        let mut firsts = Vec::new();
        for number in numbers.into_iter().chain(numbers) {
            let colliding_kept = colliding
                .insert(number)
                .map(|kept_at| colliding.number(&kept_at).to_owned());
            let keyed_kept = keyed
                .insert(number)
                .map(|kept_at| keyed.number(&kept_at).to_owned());
            assert_eq!(colliding_kept, keyed_kept, "{number:?}");
            firsts.extend(colliding_kept);
        }
        assert_eq!(firsts, numbers);
    }

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
        // Status, holder, category, region, deadline order, registration.
        assert_eq!(keys.len(), 6);
        for key in keys {
            assert_eq!(
                number_from_index_key(&key).ok().as_deref(),
                Some("430702001001-2026-000009")
            );
        }
    }
}
