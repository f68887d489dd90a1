//! Why an event was refused: the one error every check of an event answers with (the lifecycle,
//! the input bounds, the time rule, the authority table, the document and the signature).

use crate::authority::AuthorityError;
use crate::document::DocumentError;
use crate::model::{DirectiveId, DirectiveStatus, EventId, NodeId, Status};
use crate::signature::SignatureError;

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
    #[error("only the receiving node {receiver} may {action} this case (asked by {node})")]
    NotReceiver {
        action: &'static str,
        receiver: NodeId,
        node: NodeId,
    },
    #[error("case has an unresolved conflict at {fork}: resolve it before further transitions")]
    Unresolved { fork: EventId },
    #[error("no directive {0} on this case")]
    NoSuchDirective(DirectiveId),
    #[error("only node {allowed} may {action} directive {directive} (asked by {node})")]
    NotDirectiveParty {
        action: &'static str,
        directive: DirectiveId,
        allowed: NodeId,
        node: NodeId,
    },
    #[error("cannot {action} directive {directive} while it is {status:?}: {why}")]
    InvalidDirectiveStep {
        action: &'static str,
        directive: DirectiveId,
        status: DirectiveStatus,
        why: String,
    },
    #[error("invalid {field}: {why}")]
    InvalidInput { field: &'static str, why: String },
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The authority table does not let this node make the event.
    #[error(transparent)]
    Unauthorized(#[from] AuthorityError),
}
