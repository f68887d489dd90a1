//! Which event may follow which state (appending one is `appending.rs`, over these rules).
//!
//! The rules live here once and serve twice: [`check`] refuses an event before it is appended, and
//! [`crate::derive`] uses the same functions ([`next_state`], [`apply_directive_event`]) to skip
//! events that arrived from a peer but were invalid for the state they were based on. Rules that
//! depend on the header (divert needs 涉法涉诉) are judged only when an event is appended, because
//! the header can be amended afterwards and an accepted event must not turn invalid retroactively.

use chrono::{DateTime, TimeDelta, Utc};

use crate::authority;
use crate::case_error::CaseError;
use crate::deadlines::{calendar_deadline, local_date, working_day_deadline};
use crate::event_time::counted_time;
use crate::model::{
    CaseHeader, CaseState, DirectiveState, DirectiveStatus, Event, EventId, EventKind,
    HeaderAmendment, HybridTimestamp, ImportMark, Limits, Location, MediationResult, NodeId,
    Petitioner, ReviewLevel, Status,
};

/// What a caller asks to append. `prev` is filled in from the derived state.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub node: NodeId,
    pub operator: String,
    /// The node's hybrid clock, ticked for this event by the caller.
    pub hlc: HybridTimestamp,
    /// Set by a ledger import only: `at` is the ledger's time, recorded as such.
    pub imported: Option<ImportMark>,
    /// Why `at` lies in the past beyond the clock skew allowance (补录); checked by the caller
    /// with `crate::event_time::check_claimed_time`.
    pub backdated_reason: Option<String>,
}

/// The parts of an event the rules look at, borrowed from a [`NewEvent`] or a stored [`Event`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proposed<'a> {
    pub id: &'a str,
    pub kind: &'a EventKind,
    pub at: DateTime<Utc>,
    /// When the event counts for the measures (`crate::event_time::counted_time`).
    pub counted_at: DateTime<Utc>,
    pub node: &'a str,
    pub operator: &'a str,
}

impl<'a> From<&'a NewEvent> for Proposed<'a> {
    fn from(event: &'a NewEvent) -> Self {
        Proposed {
            id: &event.id,
            kind: &event.kind,
            at: event.at,
            counted_at: counted_time(event.at, event.hlc, event.imported.is_some()),
            node: &event.node,
            operator: &event.operator,
        }
    }
}

impl<'a> From<&'a Event> for Proposed<'a> {
    fn from(event: &'a Event) -> Self {
        Proposed {
            id: &event.id,
            kind: &event.kind,
            at: event.at,
            counted_at: counted_time(event.at, event.hlc, event.imported.is_some()),
            node: &event.node,
            operator: &event.operator,
        }
    }
}

/// The verb an operator reads in a refusal ("cannot reply to a case that is Registered").
pub fn action(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Register { .. } => "register",
        EventKind::Accept {} => "accept",
        EventKind::Reject { .. } => "reject",
        EventKind::Forward { .. } => "forward",
        EventKind::Assign { .. } => "assign",
        EventKind::AcceptAssignment {} => "take on the assignment of",
        EventKind::Object { .. } => "object to",
        EventKind::Divert { .. } => "divert",
        EventKind::Escalate { .. } => "escalate",
        EventKind::Extend { .. } => "extend",
        EventKind::Reply { .. } => "reply to",
        EventKind::Evaluate { .. } => "evaluate",
        EventKind::Close { .. } => "close",
        EventKind::RequestReview { .. } => "request a review of",
        EventKind::DecideReview { .. } => "decide the review of",
        EventKind::Reopen { .. } => "reopen",
        EventKind::TakeOver { .. } => "take over",
        EventKind::Resolve { .. } => "resolve a conflict on",
        EventKind::Mediate { .. } => "record a mediation on",
        EventKind::UpdateJudicialConfirmation { .. } => "update the judicial confirmation on",
        EventKind::LinkRepeat { .. } => "link a repeat petition to",
        EventKind::IssueDirective { .. } => "issue a directive on",
        EventKind::AcknowledgeDirective { .. } => "acknowledge",
        EventKind::ReportDirective { .. } => "report on",
        EventKind::CrossOffDirective { .. } => "cross off",
        EventKind::ReturnDirective { .. } => "return",
        EventKind::AmendHeader { .. } => "amend the header of",
        EventKind::Note { .. } => "add a note to",
        EventKind::Succeed { .. } => "take its predecessor's place on",
    }
}

/// 复查 and 复核 are both requested within `review_request_days` of the decision they contest.
fn check_review_request_window(
    (kind, status, at, limits): (&EventKind, Status, DateTime<Utc>, &Limits),
    contested_at: DateTime<Utc>,
    request: &str,
    contested: &str,
) -> Result<(), CaseError> {
    let window_end = calendar_deadline(contested_at, limits.review_request_days);
    if at > window_end {
        return Err(refuse(
            kind,
            status,
            format!(
                "the window to request {request} ended at {window_end} ({} days after {contested})",
                limits.review_request_days
            ),
        ));
    }
    Ok(())
}

fn refuse(kind: &EventKind, status: Status, why: impl Into<String>) -> CaseError {
    CaseError::InvalidTransition {
        action: action(kind),
        status,
        why: why.into(),
    }
}

pub(crate) fn required(field: &'static str, value: &str) -> Result<(), CaseError> {
    if value.trim().is_empty() {
        return Err(CaseError::InvalidInput {
            field,
            why: "must not be empty".to_owned(),
        });
    }
    Ok(())
}

fn other_node(field: &'static str, to_node: &str, holder: &str) -> Result<(), CaseError> {
    required(field, to_node)?;
    if to_node == holder {
        return Err(CaseError::InvalidInput {
            field,
            why: format!("{to_node} already holds the case"),
        });
    }
    Ok(())
}

/// Sets the first acceptance-type decision, which the 及时受理率 judges against the acceptance
/// deadline in force at that moment (a later escalation restarting the clock must not rewrite it).
fn record_decision(state: &mut CaseState, at: DateTime<Utc>) {
    if state.timeline.decided_at.is_none() {
        state.timeline.decided_at = Some(at);
        state.timeline.decided_deadline = state.timeline.acceptance_deadline;
    }
}

/// Hands the case to a receiver who must take it on or object within the working-day window.
fn await_receiver(state: &mut CaseState, to_node: &str, at: DateTime<Utc>, limits: &Limits) {
    state.status = Status::AwaitingReceiver;
    state.awaiting = Some(to_node.to_owned());
    state.sent_to.push(to_node.to_owned());
    state.assigned_by = Some(state.holder.clone());
    state.timeline.objection_deadline = Some(working_day_deadline(
        at,
        limits.objection_working_days,
        limits,
    ));
}

/// Starts a handling period: the 60-day limit runs from `at`, with its one extension still unused.
fn start_handling(state: &mut CaseState, at: DateTime<Utc>, limits: &Limits) {
    state.timeline.handling_deadline = Some(calendar_deadline(at, limits.handling_days));
    state.timeline.extended_days = None;
}

/// A state with nothing in it: the base every derived state is built on.
pub(crate) fn empty_state() -> CaseState {
    CaseState {
        status: Status::Registered,
        holder: NodeId::new(),
        registered_by: NodeId::new(),
        tip: String::new(),
        timeline: Default::default(),
        reply: None,
        satisfaction: None,
        resolved: None,
        review_level: None,
        review_outcome: None,
        repeat_of: None,
        escalated_to: Vec::new(),
        sent_to: Vec::new(),
        awaiting: None,
        assigned_by: None,
        assignment_deadline: None,
        directives: Vec::new(),
        mediations: Vec::new(),
        conflict: None,
        superseded: Vec::new(),
        invalid: Vec::new(),
        event_count: 0,
        last_event_at: None,
        imported: false,
        time_flags: Vec::new(),
    }
}

/// The state after the initial `register` event.
pub(crate) fn registered_state(register: Proposed<'_>, limits: &Limits) -> CaseState {
    CaseState {
        status: Status::Registered,
        holder: register.node.to_owned(),
        registered_by: register.node.to_owned(),
        tip: register.id.to_owned(),
        timeline: crate::model::Timeline {
            registered_at: Some(register.at),
            received_at: Some(register.at),
            acceptance_deadline: Some(calendar_deadline(register.at, limits.acceptance_days)),
            ..Default::default()
        },
        ..empty_state()
    }
}

/// The state a transition leads to from `state`, or why it may not follow `state`.
///
/// Judges the lifecycle, who may act, the payload and the time windows (against the event's own
/// `at`), so a replica deriving from stored events reaches the same verdict as the node that
/// appended them. Conflicts are not judged here: [`check`] refuses transitions during a conflict,
/// and derive walks the transition tree itself.
pub(crate) fn next_state(
    state: &CaseState,
    event: Proposed<'_>,
    limits: &Limits,
) -> Result<CaseState, CaseError> {
    let kind = event.kind;
    let at = event.at;
    let status = state.status;
    if !kind.is_transition() {
        return Err(refuse(kind, status, "it does not move the lifecycle"));
    }
    if matches!(kind, EventKind::Register { .. }) {
        return Err(refuse(kind, status, "a case is registered only once"));
    }
    if status == Status::Final {
        return Err(refuse(
            kind,
            status,
            "the matter was decided on re-review (复核) and is not accepted again",
        ));
    }
    match kind {
        EventKind::AcceptAssignment {} | EventKind::Object { .. } => {
            let Some(receiver) = state
                .awaiting
                .as_deref()
                .filter(|_| status == Status::AwaitingReceiver)
            else {
                return Err(refuse(kind, status, "it is not waiting for a receiver"));
            };
            if event.node != receiver {
                return Err(CaseError::NotReceiver {
                    action: action(kind),
                    receiver: receiver.to_owned(),
                    node: event.node.to_owned(),
                });
            }
        }
        // Made by an office above the holder: the authority table judges that against the
        // federation's hierarchy, which derive does not have; the lifecycle only refuses the
        // holder taking over its own case.
        EventKind::TakeOver { .. } if event.node == state.holder => {
            return Err(refuse(kind, status, "the node already holds the case"));
        }
        EventKind::TakeOver { .. } => {}
        // Who else may act (a tier above requesting or deciding a review, reopening) is the
        // authority table's to judge, with the hierarchy; the lifecycle checks the holder-only
        // rows, the part of the table the state alone can answer.
        _ if authority::only_the_holder_appends(kind) && event.node != state.holder => {
            return Err(CaseError::NotHolder {
                action: action(kind),
                holder: state.holder.clone(),
                node: event.node.to_owned(),
            });
        }
        _ => {}
    }

    let mut next = state.clone();
    next.tip = event.id.to_owned();
    match kind {
        EventKind::Accept {} => {
            if status != Status::Registered {
                return Err(refuse(
                    kind,
                    status,
                    "only a registered case awaiting its decision can be accepted",
                ));
            }
            record_decision(&mut next, event.counted_at);
            next.status = Status::Accepted;
            next.timeline.accepted_at = Some(at);
            start_handling(&mut next, at, limits);
        }
        EventKind::Reject { reason } => {
            if status != Status::Registered {
                return Err(refuse(
                    kind,
                    status,
                    "only a registered case awaiting its decision can be rejected",
                ));
            }
            required("reason", reason)?;
            record_decision(&mut next, event.counted_at);
            next.status = Status::NotAccepted;
        }
        EventKind::Divert { to_unit, reason } => {
            if !matches!(status, Status::Registered | Status::Accepted) {
                return Err(refuse(
                    kind,
                    status,
                    "only a registered or accepted case can be diverted",
                ));
            }
            required("to_unit", to_unit)?;
            required("reason", reason)?;
            record_decision(&mut next, event.counted_at);
            next.status = Status::Diverted;
        }
        EventKind::Forward {
            to_unit,
            to_node,
            reason,
        } => {
            if status != Status::Registered {
                return Err(refuse(
                    kind,
                    status,
                    "only a registered case awaiting its decision can be forwarded",
                ));
            }
            required("to_unit", to_unit)?;
            required("reason", reason)?;
            record_decision(&mut next, event.counted_at);
            match to_node {
                Some(to_node) => {
                    other_node("to_node", to_node, &state.holder)?;
                    await_receiver(&mut next, to_node, at, limits);
                    next.assignment_deadline = None;
                }
                None => next.status = Status::ForwardedOut,
            }
        }
        EventKind::Assign {
            to_node,
            required_result,
            deadline,
        } => {
            if !matches!(status, Status::Registered | Status::Accepted) {
                return Err(refuse(
                    kind,
                    status,
                    "only a registered or accepted case can be assigned",
                ));
            }
            other_node("to_node", to_node, &state.holder)?;
            required("required_result", required_result)?;
            if *deadline < local_date(at) {
                return Err(CaseError::InvalidInput {
                    field: "deadline",
                    why: format!(
                        "{deadline} is before the day of the assignment ({})",
                        local_date(at)
                    ),
                });
            }
            record_decision(&mut next, event.counted_at);
            await_receiver(&mut next, to_node, at, limits);
            next.assignment_deadline = Some(*deadline);
        }
        EventKind::AcceptAssignment {} => {
            next.holder = state
                .awaiting
                .clone()
                .unwrap_or_else(|| state.holder.clone());
            next.awaiting = None;
            next.status = Status::Accepted;
            next.timeline.received_at = Some(at);
            // An assignment of an already accepted case keeps its handling clock (the receiver
            // continues the work); a forward or an assignment before acceptance starts it now.
            if state.timeline.accepted_at.is_none() {
                next.timeline.accepted_at = Some(at);
                start_handling(&mut next, at, limits);
            }
        }
        EventKind::Object { reason } => {
            required("reason", reason)?;
            if let Some(deadline) = state.timeline.objection_deadline
                && at > deadline
            {
                return Err(refuse(
                    kind,
                    status,
                    format!(
                        "the objection period ended at {deadline} (条例 Art 23: 5 working days)"
                    ),
                ));
            }
            next.holder = state
                .assigned_by
                .clone()
                .unwrap_or_else(|| state.holder.clone());
            next.awaiting = None;
            next.assigned_by = None;
            next.assignment_deadline = None;
            // Forwards happen only before acceptance, assignments before or after; whether the
            // case had been accepted tells which status it returns to.
            next.status = if state.timeline.accepted_at.is_some() {
                Status::Accepted
            } else {
                Status::Registered
            };
        }
        EventKind::Escalate { to_node, reason } => {
            if !matches!(status, Status::Registered | Status::Accepted) {
                return Err(refuse(
                    kind,
                    status,
                    "only a registered or accepted case can be escalated",
                ));
            }
            other_node("to_node", to_node, &state.holder)?;
            required("reason", reason)?;
            record_decision(&mut next, event.counted_at);
            next.holder = to_node.clone();
            next.escalated_to.push(to_node.clone());
            next.timeline.received_at = Some(at);
            if status == Status::Registered {
                next.timeline.acceptance_deadline =
                    Some(calendar_deadline(at, limits.acceptance_days));
            }
        }
        EventKind::TakeOver { reason } => {
            if !matches!(
                status,
                Status::Registered | Status::Accepted | Status::Replied | Status::Evaluated
            ) {
                return Err(refuse(
                    kind,
                    status,
                    "only an open case that no receiver is awaiting and no review is pending can be taken over",
                ));
            }
            required("reason", reason)?;
            next.holder = event.node.to_owned();
            next.timeline.received_at = Some(at);
            // As for an escalation, the limits keep running: a case still awaiting its decision
            // gives the new holder a fresh acceptance period, one being handled keeps its
            // handling deadline. Unlike an escalation the lower tier decided nothing, so no
            // acceptance decision is recorded: the new holder's own decision will be.
            if status == Status::Registered {
                next.timeline.acceptance_deadline =
                    Some(calendar_deadline(at, limits.acceptance_days));
            }
        }
        EventKind::Extend {
            days,
            approver,
            reason,
        } => {
            if status != Status::Accepted {
                return Err(refuse(
                    kind,
                    status,
                    "only a case being handled can have its limit extended",
                ));
            }
            if let Some(already) = state.timeline.extended_days {
                return Err(refuse(
                    kind,
                    status,
                    format!(
                        "the handling limit was already extended by {already} days; Art 34 allows one extension"
                    ),
                ));
            }
            if *days == 0 || *days > limits.max_extension_days {
                return Err(CaseError::InvalidInput {
                    field: "days",
                    why: format!(
                        "must be 1 to {} days, got {days}",
                        limits.max_extension_days
                    ),
                });
            }
            required("approver", approver)?;
            required("reason", reason)?;
            let Some(deadline) = state.timeline.handling_deadline else {
                return Err(refuse(
                    kind,
                    status,
                    "the case has no handling deadline to extend",
                ));
            };
            next.timeline.handling_deadline = Some(
                deadline
                    .checked_add_signed(TimeDelta::days(i64::from(*days)))
                    .unwrap_or(deadline),
            );
            next.timeline.extended_days = Some(*days);
        }
        EventKind::Reply { outcome, text } => {
            if status != Status::Accepted {
                return Err(refuse(
                    kind,
                    status,
                    "only an accepted case being handled can be replied to",
                ));
            }
            required("text", text)?;
            next.status = Status::Replied;
            next.reply = Some((*outcome, text.clone()));
            next.timeline.replied_at = Some(event.counted_at);
            next.timeline.replied_deadline = state.timeline.handling_deadline;
            next.timeline.evaluation_deadline = Some(calendar_deadline(at, limits.evaluation_days));
        }
        EventKind::Evaluate { satisfaction } => {
            if status != Status::Replied {
                return Err(refuse(
                    kind,
                    status,
                    "only a replied case awaiting evaluation can be evaluated",
                ));
            }
            next.status = Status::Evaluated;
            next.satisfaction = Some(*satisfaction);
            next.timeline.evaluated_at = Some(at);
        }
        EventKind::Close { resolved, .. } => {
            if !matches!(status, Status::Replied | Status::Evaluated) {
                return Err(refuse(
                    kind,
                    status,
                    "a case is closed only after its reply",
                ));
            }
            next.status = Status::Closed;
            next.resolved = Some(*resolved);
            next.timeline.closed_at = Some(at);
        }
        EventKind::RequestReview { level, reason } => {
            required("reason", reason)?;
            match level {
                ReviewLevel::Review => {
                    if !matches!(status, Status::Replied | Status::Evaluated | Status::Closed) {
                        return Err(refuse(
                            kind,
                            status,
                            "a review (复查) is requested only after the reply",
                        ));
                    }
                    if state.review_outcome.is_some() {
                        return Err(refuse(
                            kind,
                            status,
                            "a review (复查) was already decided; ask for a re-review (复核) instead",
                        ));
                    }
                    let Some(replied_at) = state.timeline.replied_at else {
                        return Err(refuse(kind, status, "the case has no reply to review"));
                    };
                    check_review_request_window(
                        (kind, status, at, limits),
                        replied_at,
                        "a review",
                        "the reply",
                    )?;
                }
                ReviewLevel::ReReview => {
                    let reviewed = matches!(state.review_outcome, Some((ReviewLevel::Review, _)));
                    if status != Status::Closed || !reviewed {
                        return Err(refuse(
                            kind,
                            status,
                            "a re-review (复核) is requested only after a review (复查) was decided",
                        ));
                    }
                    // The review decision closes the case, so `closed_at` is when it was decided.
                    let Some(decided_at) = state.timeline.closed_at else {
                        return Err(refuse(kind, status, "the review decision has no date"));
                    };
                    check_review_request_window(
                        (kind, status, at, limits),
                        decided_at,
                        "a re-review",
                        "the review decision",
                    )?;
                }
            }
            next.status = Status::UnderReview;
            next.review_level = Some(*level);
            next.timeline.review_requested_at = Some(at);
            next.timeline.review_deadline =
                Some(calendar_deadline(at, limits.review_decision_days));
        }
        EventKind::DecideReview {
            level,
            outcome,
            text,
        } => {
            if status != Status::UnderReview {
                return Err(refuse(kind, status, "no review is pending"));
            }
            if state.review_level != Some(*level) {
                return Err(CaseError::InvalidInput {
                    field: "level",
                    why: format!(
                        "the pending review is {:?}, not {level:?}",
                        state.review_level
                    ),
                });
            }
            required("text", text)?;
            next.review_outcome = Some((*level, *outcome));
            match level {
                ReviewLevel::Review => {
                    next.status = Status::Closed;
                    next.timeline.closed_at = Some(at);
                }
                ReviewLevel::ReReview => next.status = Status::Final,
            }
        }
        EventKind::Reopen { reason } => {
            if !matches!(status, Status::Closed | Status::NotAccepted) {
                return Err(refuse(
                    kind,
                    status,
                    "only a closed or not-accepted case can be reopened",
                ));
            }
            required("reason", reason)?;
            next.status = Status::Accepted;
            if next.timeline.accepted_at.is_none() {
                next.timeline.accepted_at = Some(at);
            }
            start_handling(&mut next, at, limits);
            // The reopened handling ends in a reply of its own, evaluated, closed and reviewable
            // afresh; the previous round's reply would otherwise count as this round's.
            next.reply = None;
            next.satisfaction = None;
            next.resolved = None;
            next.review_level = None;
            next.review_outcome = None;
            let timeline = &mut next.timeline;
            timeline.replied_at = None;
            timeline.replied_deadline = None;
            timeline.evaluation_deadline = None;
            timeline.evaluated_at = None;
            timeline.closed_at = None;
            timeline.review_requested_at = None;
            timeline.review_deadline = None;
        }
        _ => return Err(refuse(kind, status, "it does not move the lifecycle")),
    }
    Ok(next)
}

/// Applies one directive event (other than its issue) to the directive it names.
///
/// Shared by [`check`] and derive: a directive's steps are judged only against the directive.
pub(crate) fn apply_directive_event(
    directive: &mut DirectiveState,
    event: Proposed<'_>,
) -> Result<(), CaseError> {
    let kind = event.kind;
    let issuer_step = |directive: &DirectiveState, verb: &'static str| -> Result<(), CaseError> {
        if event.node != directive.issuer_node {
            return Err(CaseError::NotDirectiveParty {
                action: verb,
                directive: directive.id.clone(),
                allowed: directive.issuer_node.clone(),
                node: event.node.to_owned(),
            });
        }
        if directive.status != DirectiveStatus::Reported {
            return Err(CaseError::InvalidDirectiveStep {
                action: verb,
                directive: directive.id.clone(),
                status: directive.status,
                why: "the issuer acts only on a report".to_owned(),
            });
        }
        Ok(())
    };
    let target_step = |directive: &DirectiveState, verb: &'static str| -> Result<(), CaseError> {
        if event.node != directive.target_node {
            return Err(CaseError::NotDirectiveParty {
                action: verb,
                directive: directive.id.clone(),
                allowed: directive.target_node.clone(),
                node: event.node.to_owned(),
            });
        }
        Ok(())
    };
    match kind {
        EventKind::AcknowledgeDirective { .. } => {
            target_step(directive, "acknowledge")?;
            if !matches!(
                directive.status,
                DirectiveStatus::Issued | DirectiveStatus::Returned
            ) {
                return Err(CaseError::InvalidDirectiveStep {
                    action: "acknowledge",
                    directive: directive.id.clone(),
                    status: directive.status,
                    why: "only an issued or returned directive is acknowledged".to_owned(),
                });
            }
            directive.status = DirectiveStatus::Acknowledged;
        }
        EventKind::ReportDirective { text, .. } => {
            target_step(directive, "report on")?;
            if !matches!(
                directive.status,
                DirectiveStatus::Acknowledged | DirectiveStatus::Reported
            ) {
                return Err(CaseError::InvalidDirectiveStep {
                    action: "report on",
                    directive: directive.id.clone(),
                    status: directive.status,
                    why: "acknowledge the directive before reporting".to_owned(),
                });
            }
            required("text", text)?;
            directive.status = DirectiveStatus::Reported;
            directive.reports.push(text.clone());
        }
        EventKind::CrossOffDirective { .. } => {
            issuer_step(directive, "cross off")?;
            directive.status = DirectiveStatus::CrossedOff;
            directive.crossed_off_at = Some(event.at);
        }
        EventKind::ReturnDirective { reason, .. } => {
            issuer_step(directive, "return")?;
            required("reason", reason)?;
            directive.status = DirectiveStatus::Returned;
        }
        _ => {
            return Err(CaseError::InvalidInput {
                field: "kind",
                why: format!("{} is not a step of an issued directive", kind.name()),
            });
        }
    }
    Ok(())
}

/// The state of a newly issued directive.
pub(crate) fn issued_directive(event: Proposed<'_>) -> Option<DirectiveState> {
    let EventKind::IssueDirective {
        directive,
        target_node,
        requirement,
        due,
        listed,
    } = event.kind
    else {
        return None;
    };
    Some(DirectiveState {
        id: directive.clone(),
        issuer_node: event.node.to_owned(),
        issued_by: event.operator.to_owned(),
        issued_at: event.at,
        target_node: target_node.clone(),
        requirement: requirement.clone(),
        due: crate::deadlines::end_of_local_day(*due),
        listed: *listed,
        status: DirectiveStatus::Issued,
        reports: Vec::new(),
        crossed_off_at: None,
    })
}

/// Validates a header for registration at `at`: what it must hold, and every bound, the text
/// rule and the personal-data rules ([`crate::input_bounds::check_header`]).
pub fn validate_header(header: &CaseHeader, at: DateTime<Utc>) -> Result<(), CaseError> {
    required("number", &header.number)?;
    required("summary", &header.summary)?;
    validate_petitioners(&header.petitioners)?;
    validate_location(&header.location)?;
    crate::input_bounds::check_header(header, at)
}

fn validate_petitioners(petitioners: &[Petitioner]) -> Result<(), CaseError> {
    if petitioners.is_empty() {
        return Err(CaseError::InvalidInput {
            field: "petitioners",
            why: "at least one petitioner must be recorded".to_owned(),
        });
    }
    if let Some(position) = petitioners
        .iter()
        .position(|petitioner| petitioner.name.trim().is_empty())
    {
        return Err(CaseError::InvalidInput {
            field: "petitioners",
            why: format!("petitioner {} has no name", position + 1),
        });
    }
    let representatives = petitioners
        .iter()
        .filter(|petitioner| petitioner.representative)
        .count();
    if representatives > 5 {
        return Err(CaseError::InvalidInput {
            field: "petitioners",
            why: format!(
                "{representatives} representatives; a group visit sends at most 5 (条例 Art 20)"
            ),
        });
    }
    Ok(())
}

fn validate_location(location: &Location) -> Result<(), CaseError> {
    let code = &location.region_code;
    if !matches!(code.len(), 6 | 9 | 12) || !code.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(CaseError::InvalidInput {
            field: "region_code",
            why: format!("{code:?} is not a 6-, 9- or 12-digit administrative code"),
        });
    }
    Ok(())
}

fn validate_amendment(amendment: &HeaderAmendment) -> Result<(), CaseError> {
    match amendment {
        HeaderAmendment::Petitioners(petitioners) => validate_petitioners(petitioners),
        HeaderAmendment::Headcount(headcount) => crate::input_bounds::check_headcount(*headcount),
        HeaderAmendment::Summary(summary) => required("summary", summary),
        HeaderAmendment::Location(location) => validate_location(location),
        HeaderAmendment::Respondent(_)
        | HeaderAmendment::Category(_)
        | HeaderAmendment::MatterType(_)
        | HeaderAmendment::LitigationRelated(_)
        | HeaderAmendment::Ownership(_) => Ok(()),
    }
}

/// Check `event` against `state` (the lifecycle rules and who may do it).
///
/// This judges everything the state alone decides; [`check_with_header`] (used by [`append`]) adds
/// the rules that read the header (divert needs 涉法涉诉, a repeat link must name another case).
pub fn check(state: &CaseState, event: &NewEvent, limits: &Limits) -> Result<(), CaseError> {
    let proposed = Proposed::from(event);
    let kind = &event.kind;
    required("id", &event.id)?;
    required("node", &event.node)?;
    if kind.is_transition() {
        if let Some(conflict) = &state.conflict {
            return Err(CaseError::Unresolved {
                fork: conflict.fork.clone(),
            });
        }
        next_state(state, proposed, limits)?;
        return Ok(());
    }
    let status = state.status;
    match kind {
        EventKind::Resolve { chosen, .. } => {
            let Some(conflict) = &state.conflict else {
                return Err(refuse(kind, status, "there is no conflict to resolve"));
            };
            if !conflict
                .branches
                .iter()
                .any(|branch| &branch.first == chosen)
            {
                let firsts: Vec<&str> = conflict
                    .branches
                    .iter()
                    .map(|branch| branch.first.as_str())
                    .collect();
                return Err(CaseError::InvalidInput {
                    field: "chosen",
                    why: format!(
                        "{chosen} is not the first event of a branch; choose one of {firsts:?}"
                    ),
                });
            }
        }
        EventKind::Mediate { mediator, .. } => {
            if status != Status::Accepted {
                return Err(refuse(
                    kind,
                    status,
                    "mediation is recorded while the case is being handled",
                ));
            }
            required("mediator", mediator)?;
        }
        EventKind::UpdateJudicialConfirmation { mediation, .. } => {
            let Some(record) = state
                .mediations
                .iter()
                .find(|record| &record.event == mediation)
            else {
                return Err(CaseError::InvalidInput {
                    field: "mediation",
                    why: format!("no mediation {mediation} on this case"),
                });
            };
            if record.result != MediationResult::Agreement {
                return Err(CaseError::InvalidInput {
                    field: "mediation",
                    why: format!("mediation {mediation} reached no agreement to confirm"),
                });
            }
        }
        EventKind::LinkRepeat { earlier } => required("earlier", earlier)?,
        EventKind::IssueDirective {
            directive,
            target_node,
            requirement,
            due,
            ..
        } => {
            if matches!(
                status,
                Status::Closed
                    | Status::Final
                    | Status::NotAccepted
                    | Status::Diverted
                    | Status::ForwardedOut
            ) {
                return Err(refuse(
                    kind,
                    status,
                    "supervision applies to a case still being worked on",
                ));
            }
            required("directive", directive)?;
            required("target_node", target_node)?;
            required("requirement", requirement)?;
            if state
                .directives
                .iter()
                .any(|existing| &existing.id == directive)
            {
                return Err(CaseError::InvalidInput {
                    field: "directive",
                    why: format!("directive {directive} already exists on this case"),
                });
            }
            if *due < local_date(event.at) {
                return Err(CaseError::InvalidInput {
                    field: "due",
                    why: format!(
                        "{due} is before the day the directive is issued ({})",
                        local_date(event.at)
                    ),
                });
            }
        }
        EventKind::AcknowledgeDirective { directive }
        | EventKind::ReportDirective { directive, .. }
        | EventKind::CrossOffDirective { directive }
        | EventKind::ReturnDirective { directive, .. } => {
            let Some(existing) = state
                .directives
                .iter()
                .find(|existing| &existing.id == directive)
            else {
                return Err(CaseError::NoSuchDirective(directive.clone()));
            };
            apply_directive_event(&mut existing.clone(), proposed)?;
        }
        EventKind::AmendHeader { amendment } => validate_amendment(amendment)?,
        EventKind::Note { text } => required("text", text)?,
        // Whether the roster names the maker as the predecessor's successor is the authority
        // table's to judge (`Hierarchy::is_successor_of`); the state judges what is left.
        EventKind::Succeed { predecessor } => {
            required("predecessor", predecessor)?;
            if predecessor == &event.node {
                return Err(refuse(kind, status, "a node does not succeed itself"));
            }
            if !crate::succession::names(state, predecessor) {
                return Err(refuse(
                    kind,
                    status,
                    format!("node {predecessor} takes no part in this case"),
                ));
            }
        }
        _ => return Err(refuse(kind, status, "unknown kind of annotation")),
    }
    Ok(())
}

/// [`check`] plus the rules that read the case header, and the bounds and text rule of what a
/// person typed into the event ([`crate::input_bounds`]).
pub fn check_with_header(
    header: &CaseHeader,
    state: &CaseState,
    event: &NewEvent,
    limits: &Limits,
) -> Result<(), CaseError> {
    match &event.kind {
        EventKind::Register { .. } => {
            return Err(refuse(
                &event.kind,
                state.status,
                "the case is already registered",
            ));
        }
        EventKind::Divert { .. } if !header.litigation_related => {
            return Err(refuse(
                &event.kind,
                state.status,
                "only a litigation-related (涉法涉诉) matter is diverted to the courts; amend the header first if it is one",
            ));
        }
        EventKind::LinkRepeat { earlier } if earlier == &header.number => {
            return Err(CaseError::InvalidInput {
                field: "earlier",
                why: "a case cannot repeat itself".to_owned(),
            });
        }
        _ => {}
    }
    crate::input_bounds::check_event(header, &event.kind, event.at)?;
    check(state, event, limits)
}

#[cfg(test)]
#[path = "tests/mod.rs"]
mod tests;
