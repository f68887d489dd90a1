//! The one rule for the time an event claims (`Event::at`), and the time it counts at.
//!
//! A person may give the time something happened (补录 of a paper record), but a claimed time may
//! not lie in the future, nor before the event it follows or the case's registration, and may lie
//! in the past only within a bound and only with a reason (`backdated_reason`, signed with the
//! event). A ledger import is the one path that records past times as the ledger holds them
//! ([`Backdating::Historical`]). Received events are not refused by this rule, because a peer's
//! clock can break it without anyone cheating: [`time_flags`] names them for a person instead,
//! from the events alone, so every replica flags alike.
//!
//! The measures judge timeliness by [`counted_time`]: the time the node recorded an event (its
//! hybrid clock) when the claimed time is earlier than that beyond the skew allowance, so
//! back-dating never makes a late decision timely; an imported event counts at its ledger time.
//!
//! No IO: `now` is passed in.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, TimeDelta, Utc};

use crate::case_error::CaseError;
use crate::deadlines::local_date;
use crate::input_bounds::{FIRST_YEAR, TextKind, check_text};
use crate::model::{Event, EventKind, HybridTimestamp};

pub use crate::bounds::{CLOCK_SKEW_ALLOWANCE, DEFAULT_MAX_BACKDATE_DAYS};

/// The request and event field that says why an event is dated in the past (a line of text).
pub const BACKDATED_REASON_FIELD: &str = "backdated_reason";

/// How far into the past an event may be dated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backdating {
    /// A person's request: up to this many days in the past, and more than
    /// [`CLOCK_SKEW_ALLOWANCE`] only with a reason.
    Within { max_days: u32 },
    /// A ledger import: the ledger's times as they stand (from [`FIRST_YEAR`]), each not before
    /// the event it follows, with no reason and no tolerance.
    Historical,
}

/// A time a person claims for an event, with the reason for back-dating it if any.
#[derive(Debug, Clone, Copy)]
pub struct ClaimedTime<'a> {
    /// The request field that carried it (`at`, `registered_at`), for the message.
    pub field: &'static str,
    pub at: DateTime<Utc>,
    pub reason: Option<&'a str>,
}

/// An event the claimed one follows (its `prev`, the registration, a directive's issue).
#[derive(Debug, Clone, Copy)]
pub struct Predecessor<'a> {
    pub id: &'a str,
    pub kind: &'static str,
    pub at: DateTime<Utc>,
}

impl<'a> From<&'a Event> for Predecessor<'a> {
    fn from(event: &'a Event) -> Self {
        Predecessor {
            id: &event.id,
            kind: event.kind.name(),
            at: event.at,
        }
    }
}

fn invalid(field: &'static str, why: impl Into<String>) -> CaseError {
    CaseError::InvalidInput {
        field,
        why: why.into(),
    }
}

/// A given instant is plausible: not before [`FIRST_YEAR`] in China, and not in the future
/// beyond [`CLOCK_SKEW_ALLOWANCE`].
pub fn check_time(
    field: &'static str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), CaseError> {
    if local_date(at).year() < FIRST_YEAR {
        return Err(invalid(
            field,
            format!("{at} is before {FIRST_YEAR}: give the real date"),
        ));
    }
    if at > now + CLOCK_SKEW_ALLOWANCE {
        return Err(invalid(
            field,
            format!("{at} is in the future (the node's clock says {now})"),
        ));
    }
    Ok(())
}

/// The whole rule for a claimed time at `now`: plausible ([`check_time`]), not before any of
/// `predecessors` (beyond [`CLOCK_SKEW_ALLOWANCE`], which two offices' clocks may disagree by;
/// exactly, for an import), and back-dated only as `backdating` allows.
pub fn check_claimed_time<'a>(
    claim: ClaimedTime<'_>,
    now: DateTime<Utc>,
    predecessors: impl IntoIterator<Item = Predecessor<'a>>,
    backdating: Backdating,
) -> Result<(), CaseError> {
    let ClaimedTime { field, at, reason } = claim;
    check_time(field, at, now)?;
    let tolerance = match backdating {
        Backdating::Within { .. } => CLOCK_SKEW_ALLOWANCE,
        Backdating::Historical => TimeDelta::zero(),
    };
    for predecessor in predecessors {
        if at < predecessor.at - tolerance {
            return Err(invalid(
                field,
                format!(
                    "{at} is before the {} it follows ({}, {}): an event cannot precede what it \
                     was made on",
                    predecessor.kind, predecessor.id, predecessor.at
                ),
            ));
        }
    }
    let reason = reason.map(str::trim).filter(|reason| !reason.is_empty());
    if let Some(reason) = reason {
        check_text(BACKDATED_REASON_FIELD, reason, TextKind::Line)?;
    }
    let Backdating::Within { max_days } = backdating else {
        return Ok(());
    };
    let backdated = at < now - CLOCK_SKEW_ALLOWANCE;
    match (backdated, reason) {
        (false, None) | (true, Some(_)) => {}
        (false, Some(_)) => {
            return Err(invalid(
                BACKDATED_REASON_FIELD,
                format!(
                    "is given but {field} ({at}) is not in the past: a reason is for a record made \
                     later than it happened (补录)"
                ),
            ));
        }
        (true, None) => {
            return Err(invalid(
                field,
                format!(
                    "{at} lies before now ({now}): a time more than {} minutes in the past needs \
                     {BACKDATED_REASON_FIELD} (补录原因, why it is recorded late)",
                    CLOCK_SKEW_ALLOWANCE.num_minutes()
                ),
            ));
        }
    }
    let oldest = now - TimeDelta::days(i64::from(max_days));
    if at < oldest {
        return Err(invalid(
            field,
            format!(
                "{at} lies more than {max_days} days before now ({now}), the most this node \
                 accepts ([clock] max_backdate_days); older records come in by a ledger import"
            ),
        ));
    }
    Ok(())
}

/// When the node recorded `event`: the wall part of its hybrid clock time. `None` for events of
/// schema-1 documents, which carry none.
pub fn recorded_time(event: &Event) -> Option<DateTime<Utc>> {
    if event.hlc == HybridTimestamp::ZERO {
        return None;
    }
    event.hlc.wall_time()
}

/// Whether an event's claimed time `at` and the time its node recorded it (`hlc`) differ by more
/// than the clocks may: the audit log shows both then.
pub fn times_differ(at: DateTime<Utc>, hlc: HybridTimestamp) -> bool {
    hlc != HybridTimestamp::ZERO
        && hlc
            .wall_time()
            .is_some_and(|recorded| (recorded - at).abs() > CLOCK_SKEW_ALLOWANCE)
}

/// The time `event` counts at for the measures (及时受理率, 按期办结率): the claimed time, unless
/// the node recorded the event later than that beyond [`CLOCK_SKEW_ALLOWANCE`] (it was
/// back-dated), then the recorded time; an imported event counts at its ledger time.
pub fn counted_time(at: DateTime<Utc>, hlc: HybridTimestamp, imported: bool) -> DateTime<Utc> {
    if imported || hlc == HybridTimestamp::ZERO {
        return at;
    }
    match hlc.wall_time() {
        Some(recorded) if recorded - at > CLOCK_SKEW_ALLOWANCE => recorded,
        _ => at,
    }
}

/// The events an event of `kind` based on the transition `prev` follows, among `events`: that
/// transition, the case's registration, and for a directive's step the directive's issue. The
/// time rule judges a new event's claimed time against them, and [`time_flags`] a held one's.
pub fn predecessors_of<'a>(
    events: &'a [Event],
    kind: &EventKind,
    prev: Option<&str>,
) -> Vec<Predecessor<'a>> {
    let held: Vec<&Event> = events.iter().collect();
    HeldEvents::new(&held)
        .followed_by(kind, prev)
        .into_iter()
        .flatten()
        .map(Predecessor::from)
        .collect()
}

/// A case's events indexed for [`predecessors_of`] and [`time_flags`], read once.
struct HeldEvents<'a> {
    /// Transitions by id: what a `prev` names (annotations are never based on).
    transitions: HashMap<&'a str, &'a Event>,
    registration: Option<&'a Event>,
    directive_issues: HashMap<&'a str, &'a Event>,
}

impl<'a> HeldEvents<'a> {
    fn new(events: &[&'a Event]) -> HeldEvents<'a> {
        let mut held = HeldEvents {
            transitions: HashMap::new(),
            registration: None,
            directive_issues: HashMap::new(),
        };
        for event in events {
            if event.kind.is_transition() {
                held.transitions.entry(event.id.as_str()).or_insert(event);
            }
            match &event.kind {
                EventKind::Register { .. } if event.prev.is_none() => {
                    held.registration.get_or_insert(event);
                }
                EventKind::IssueDirective { directive, .. } => {
                    held.directive_issues
                        .entry(directive.as_str())
                        .or_insert(event);
                }
                _ => {}
            }
        }
        held
    }

    /// The transition `prev`, the registration (unless it is `prev`), the directive's issue:
    /// whichever of them exist, in that order.
    fn followed_by(&self, kind: &EventKind, prev: Option<&str>) -> [Option<&'a Event>; 3] {
        let prev = prev.and_then(|prev| self.transitions.get(prev).copied());
        let registration = self
            .registration
            .filter(|register| prev.is_none_or(|prev| prev.id != register.id));
        let issue = kind
            .directive_stepped()
            .and_then(|directive| self.directive_issues.get(directive.as_str()).copied());
        [prev, registration, issue]
    }
}

/// What a person must look at about the times of a case's events (时间存疑), judged from the
/// events alone so that every replica names the same: an event dated before the transition it
/// follows (`prev`), the registration, or the directive it answers, beyond the skew allowance
/// (one of the two offices' clocks is wrong, or a time was typed wrong); an event dated more than
/// the allowance before its maker recorded it with no reason given; an event dated after its
/// maker recorded it. Imported events keep their ledger times and are judged only for order.
pub fn time_flags(events: &[&Event]) -> Vec<String> {
    // Compared in milliseconds: this runs over every event each time a case is derived.
    const ALLOWANCE_MS: i64 = CLOCK_SKEW_ALLOWANCE.num_milliseconds();
    let held = HeldEvents::new(events);
    let mut flags = Vec::new();
    for event in events {
        let at_ms = event.at.timestamp_millis();
        // One flag per event, naming the latest of what it follows that it is dated before.
        let latest_preceded = held
            .followed_by(&event.kind, event.prev.as_deref())
            .into_iter()
            .flatten()
            .filter(|predecessor| predecessor.id != event.id)
            .filter(|predecessor| {
                at_ms
                    < predecessor
                        .at
                        .timestamp_millis()
                        .saturating_sub(ALLOWANCE_MS)
            })
            // On a tie, the one it follows most directly (its `prev`, listed first).
            .reduce(|latest, next| if next.at > latest.at { next } else { latest });
        if let Some(predecessor) = latest_preceded {
            flags.push(format!(
                "时间存疑: {} {} (by {}) is dated {}, before the {} {} it follows ({}, by {}): \
                 one of the two offices' clocks is wrong, or the time was given wrong",
                event.kind.name(),
                event.id,
                event.node,
                event.at,
                predecessor.kind.name(),
                predecessor.id,
                predecessor.at,
                predecessor.node
            ));
        }
        if event.imported.is_some() || event.hlc == HybridTimestamp::ZERO {
            continue;
        }
        let recorded_ms = event.hlc.wall_ms;
        let backdated = recorded_ms.saturating_sub(at_ms) > ALLOWANCE_MS;
        let postdated = at_ms.saturating_sub(recorded_ms) > ALLOWANCE_MS;
        if !(backdated && event.backdated_reason.is_none() || postdated) {
            continue;
        }
        let Some(recorded) = recorded_time(event) else {
            continue;
        };
        if backdated && event.backdated_reason.is_none() {
            flags.push(format!(
                "时间存疑: {} {} (by {}) is dated {} but was recorded at {}, with no reason for \
                 back-dating",
                event.kind.name(),
                event.id,
                event.node,
                event.at,
                recorded
            ));
        }
        if postdated {
            flags.push(format!(
                "时间存疑: {} {} (by {}) is dated {}, after it was recorded ({})",
                event.kind.name(),
                event.id,
                event.node,
                event.at,
                recorded
            ));
        }
    }
    flags
}

#[cfg(test)]
#[path = "tests/event_time.rs"]
mod tests;
