//! Which event may follow which state, and appending a checked event to a case document.

use chrono::{DateTime, Utc};

use crate::document::{CaseDocument, DocumentError};
use crate::model::{
    CaseHeader, CaseState, DirectiveId, Event, EventId, EventKind, Limits, NodeId, Status,
};

/// What a caller asks to append. `prev` is filled in from the derived state.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub node: NodeId,
    pub operator: String,
}

/// Why an event was refused. Messages are for the operator who asked for it.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("cannot {action} a case that is {status:?}: {why}")]
    InvalidTransition {
        action: &'static str,
        status: Status,
        why: String,
    },
    #[error("only the holding node {holder} may {action} this case (asked by {node})")]
    NotHolder {
        action: &'static str,
        holder: NodeId,
        node: NodeId,
    },
    #[error("case has an unresolved conflict at {fork}: resolve it before further transitions")]
    Unresolved { fork: EventId },
    #[error("no directive {0} on this case")]
    NoSuchDirective(DirectiveId),
    #[error("invalid {field}: {why}")]
    InvalidInput { field: &'static str, why: String },
    #[error(transparent)]
    Document(#[from] DocumentError),
}

/// Check `event` against `state` (the lifecycle rules and who may do it).
pub fn check(state: &CaseState, event: &NewEvent, limits: &Limits) -> Result<(), CaseError> {
    let _ = (state, event, limits);
    todo!()
}

/// Check, fill in `prev`, push into the document; returns the appended event and the new state.
pub fn append(
    document: &mut CaseDocument,
    event: NewEvent,
    limits: &Limits,
) -> Result<(Event, CaseState, CaseHeader), CaseError> {
    let _ = (document, event, limits);
    todo!()
}

/// Validate a header and create the case document with its `register` event.
/// `actor` is the node's automerge actor id.
pub fn register(
    header: CaseHeader,
    register: NewEvent,
    actor: &[u8],
    limits: &Limits,
) -> Result<(CaseDocument, Event, CaseState), CaseError> {
    let _ = (header, register, actor, limits);
    todo!()
}
