//! Appending a checked, signed event to a case document, and registering a case: the write
//! path every office runs (the API, the import, the demo, the tests), over the rules in
//! [`crate::lifecycle`] (which event may follow which state) and [`crate::derive`] (the state
//! every replica derives after it).

use chrono::{DateTime, Utc};

use crate::authority::{Hierarchy, authorize};
use crate::case_error::CaseError;
use crate::deadlines::truncate_to_millis;
use crate::document::{CaseDocument, DocumentError};
use crate::event_time::{Backdating, ClaimedTime, check_claimed_time, predecessors_of};
use crate::lifecycle::{NewEvent, check_with_header, required, validate_header};
use crate::model::{CaseHeader, CaseState, Event, EventId, EventKind, Limits};
use crate::policy::PolicyBook;
use crate::signature::{self, NodeSigner};

/// Check against the lifecycle and the authority table, fill in `prev`, sign as `signer`, push
/// into the document; returns the appended event and the new state.
///
/// `hierarchy` is the federation as far as authority needs it (who lies above whom): the same
/// table every peer applies on receipt, so an event refused there is refused here first.
///
/// `at` is truncated to whole milliseconds first, the precision the document keeps, so the state
/// returned here is the state every replica derives from the stored event.
pub fn append(
    document: &mut CaseDocument,
    event: NewEvent,
    limits: &Limits,
    signer: &dyn NodeSigner,
    hierarchy: &dyn Hierarchy,
) -> Result<(Event, CaseState, CaseHeader), CaseError> {
    append_checked(document, event, None, limits, signer, hierarchy)
}

/// The time rule a person's event is held to on append: judged at `now` against the events the
/// new one follows (`crate::event_time`).
#[derive(Debug, Clone, Copy)]
pub struct TimeRule {
    pub now: DateTime<Utc>,
    pub backdating: Backdating,
}

/// [`append`], first holding the event's claimed time (`at`, with its `backdated_reason`) to
/// the time rule: not before the transition it follows, the registration or the directive it
/// answers, and back-dated only as `time_rule.backdating` allows.
pub fn append_with_time_rule(
    document: &mut CaseDocument,
    event: NewEvent,
    time_rule: TimeRule,
    limits: &Limits,
    signer: &dyn NodeSigner,
    hierarchy: &dyn Hierarchy,
) -> Result<(Event, CaseState, CaseHeader), CaseError> {
    append_checked(document, event, Some(time_rule), limits, signer, hierarchy)
}

/// Whether `event` may follow the case as it stands (`header`, `state`): the lifecycle with the
/// bounds of what was typed, then the authority table and the jurisdiction rule. [`append`] runs
/// exactly this before it writes; a page that offers only what may be done now asks it too,
/// without writing (the time rule aside: an event made now follows everything).
pub fn judge(
    header: &CaseHeader,
    state: &CaseState,
    event: &NewEvent,
    limits: &Limits,
    hierarchy: &dyn Hierarchy,
) -> Result<(), CaseError> {
    check_with_header(header, state, event, limits)?;
    // After the lifecycle, whose refusals of a transition by the wrong office name the office
    // that may make it; the table then refuses what the lifecycle does not judge by itself
    // (annotations, directives issued, take-overs, by offices with no such authority).
    authorize(state, &event.kind, &event.node, hierarchy)?;
    crate::authority::check_jurisdiction(&event.kind, &event.node, hierarchy)?;
    Ok(())
}

/// The state `event`'s maker acts on, and the `succeed` events (unsigned, in predecessor order)
/// that take it there: when the roster names the maker as the successor of a node the case still
/// names (`crate::succession::predecessors_named`), the maker first takes that node's place, so a
/// rebuilt office works its old cases as the same office. Each `succeed` is judged like any
/// event (the lifecycle, the authority table with the roster), takes its id from the event's
/// (`{id}.succeed{n}`) and its time from the event's hybrid clock time. Nothing else changes
/// for a node that succeeds nobody the case names.
pub fn as_successor(
    header: &CaseHeader,
    events: &[Event],
    state: CaseState,
    event: &NewEvent,
    limits: &Limits,
    hierarchy: &dyn Hierarchy,
) -> Result<(CaseState, Vec<Event>), CaseError> {
    if matches!(event.kind, EventKind::Succeed { .. }) {
        return Ok((state, Vec::new()));
    }
    let predecessors = crate::succession::predecessors_named(&state, &event.node, hierarchy);
    if predecessors.is_empty() {
        return Ok((state, Vec::new()));
    }
    // The node's clock when it acts: an event dated in the past (with its reason) does not date
    // the succession, which happens now.
    let at = if event.hlc == crate::model::HybridTimestamp::ZERO {
        event.at
    } else {
        DateTime::from_timestamp_millis(event.hlc.wall_ms).unwrap_or(event.at)
    };
    let mut successions = Vec::with_capacity(predecessors.len());
    for (index, predecessor) in predecessors.into_iter().enumerate() {
        let succession = NewEvent {
            id: format!("{}.succeed{index}", event.id),
            kind: EventKind::Succeed { predecessor },
            at: truncate_to_millis(at),
            node: event.node.clone(),
            operator: event.operator.clone(),
            hlc: event.hlc,
            imported: None,
            backdated_reason: None,
        };
        judge(header, &state, &succession, limits, hierarchy)?;
        successions.push(unsigned_event(succession, None));
    }
    let with_successions: Vec<Event> = events.iter().chain(&successions).cloned().collect();
    let state = crate::derive::derive(header, &with_successions, limits);
    Ok((state, successions))
}

/// [`judge`] on the state the maker acts on ([`as_successor`]): what a page that offers only
/// what may be done now asks, so it offers a successor its predecessor's cases as `append`
/// will take them.
pub fn judge_case(
    header: &CaseHeader,
    events: &[Event],
    state: CaseState,
    event: &NewEvent,
    limits: &Limits,
    hierarchy: &dyn Hierarchy,
) -> Result<(), CaseError> {
    let (state, _successions) = as_successor(header, events, state, event, limits, hierarchy)?;
    judge(header, &state, event, limits, hierarchy)
}

/// The event a caller asked for as it is stored, before its signature: `prev` as the node
/// names it.
fn unsigned_event(event: NewEvent, prev: Option<EventId>) -> Event {
    Event {
        id: event.id,
        kind: event.kind,
        at: event.at,
        node: event.node,
        operator: event.operator,
        prev,
        hlc: event.hlc,
        signature: None,
        imported: event.imported,
        backdated_reason: event.backdated_reason,
    }
}

fn append_checked(
    document: &mut CaseDocument,
    event: NewEvent,
    time_rule: Option<TimeRule>,
    limits: &Limits,
    signer: &dyn NodeSigner,
    hierarchy: &dyn Hierarchy,
) -> Result<(Event, CaseState, CaseHeader), CaseError> {
    let header = document.header()?;
    let mut events = document.events()?;
    let state = crate::derive::derive(&header, &events, limits);
    if state.tip.is_empty() {
        return Err(CaseError::Document(DocumentError::Malformed(
            "the case has no register event".to_owned(),
        )));
    }
    let event = NewEvent {
        at: truncate_to_millis(event.at),
        ..event
    };
    if let Some(TimeRule { now, backdating }) = time_rule {
        let prev = event.kind.is_transition().then_some(state.tip.as_str());
        check_claimed_time(
            ClaimedTime {
                field: "at",
                at: event.at,
                reason: event.backdated_reason.as_deref(),
            },
            now,
            predecessors_of(&events, &event.kind, prev),
            backdating,
        )?;
    }
    let (state, successions) = as_successor(&header, &events, state, &event, limits, hierarchy)?;
    judge(&header, &state, &event, limits, hierarchy)?;
    let new_ids =
        std::iter::once(&event.id).chain(successions.iter().map(|succession| &succession.id));
    for id in new_ids {
        if events.iter().any(|existing| &existing.id == id) {
            return Err(CaseError::InvalidInput {
                field: "id",
                why: format!("event {id} is already in this case"),
            });
        }
    }
    for mut succession in successions {
        signature::sign_event(&header.number, &mut succession, signer)?;
        document.push_event(&succession)?;
        events.push(succession);
    }
    let prev = event.kind.is_transition().then(|| state.tip.clone());
    let kind = match event.kind {
        // A resolve settles the disagreeing resolves of the fork it resolves, if any: the node
        // names them, as it names `prev`, from the state the person saw (never from the caller).
        EventKind::Resolve { chosen, note, .. } => EventKind::Resolve {
            chosen,
            note,
            overrides: state
                .conflict
                .iter()
                .flat_map(|conflict| conflict.disputed.iter())
                .map(|decision| decision.event.clone())
                .collect(),
        },
        kind => kind,
    };
    let mut stored = unsigned_event(NewEvent { kind, ..event }, prev);
    signature::sign_event(&header.number, &mut stored, signer)?;
    document.push_event(&stored)?;
    let header = match &stored.kind {
        EventKind::AmendHeader { .. } => document.header()?,
        _ => header,
    };
    events.push(stored.clone());
    let state = crate::derive::derive(&header, &events, limits);
    Ok((stored, state, header))
}

/// Validate a header and create the case document with its `register` event, which carries the
/// header and is signed by `signer`. `actor` is the node's automerge actor id. The case is
/// registered under the newest policy version `policies` holds, which the event records (any
/// version the caller put in it is replaced, as `prev` is filled by the node) and which the
/// case derives with for ever (`crate::policy`).
pub fn register(
    header: CaseHeader,
    register: NewEvent,
    actor: &[u8],
    policies: &PolicyBook,
    signer: &dyn NodeSigner,
) -> Result<(CaseDocument, Event, CaseState), CaseError> {
    let policy = policies.current();
    let (policy_version, limits) = (policy.version, &policy.limits);
    let EventKind::Register { .. } = register.kind else {
        return Err(CaseError::InvalidInput {
            field: "kind",
            why: format!(
                "a case starts with a register event, not {}",
                register.kind.name()
            ),
        });
    };
    required("id", &register.id)?;
    required("node", &register.node)?;
    validate_header(&header, register.at)?;
    let mut event = unsigned_event(
        NewEvent {
            kind: EventKind::Register {
                header: Some(Box::new(header.clone())),
                policy_version,
            },
            at: truncate_to_millis(register.at),
            ..register
        },
        None,
    );
    signature::sign_event(&header.number, &mut event, signer)?;
    let document = CaseDocument::create(&header, &event, actor)?;
    let state = crate::derive::derive(&header, std::slice::from_ref(&event), limits);
    Ok((document, event, state))
}
