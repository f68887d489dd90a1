//! The facts a case's 台账 row is made of, as the store keeps them beside the document
//! (`fengqiao-store`'s ledger rows), so that an export of the whole ledger reads one small record
//! per case instead of loading every automerge document.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CaseHeader, ReplyOutcome, Satisfaction};

/// Version of [`LedgerFacts`]'s stored layout (JSON, self-describing: a field added later reads
/// from an older record with its default). A record of another version is not used: the export
/// reads that case's document instead, and the store's keeper writes the record again.
pub const LEDGER_FACTS_VERSION: u8 = 1;

/// A case as one ledger row needs it: the header as amended, and the times and outcomes of the
/// first acceptance, the last reply, evaluation and closure (what a ledger has one column for).
/// Derived from the header and the events by `summary::ledger_facts`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerFacts {
    pub header: CaseHeader,
    /// The register event's time.
    pub registered_at: Option<DateTime<Utc>>,
    /// The first acceptance's time.
    #[serde(default)]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reply: Option<LedgerReply>,
    #[serde(default)]
    pub evaluation: Option<LedgerEvaluation>,
    #[serde(default)]
    pub closure: Option<LedgerClosure>,
}

/// The last reply (答复).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerReply {
    pub at: DateTime<Utc>,
    pub outcome: ReplyOutcome,
    pub text: String,
}

/// The last evaluation (评价).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEvaluation {
    pub at: DateTime<Utc>,
    pub satisfaction: Satisfaction,
}

/// The last closure (办结).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerClosure {
    pub at: DateTime<Utc>,
    pub resolved: bool,
    pub note: String,
}
