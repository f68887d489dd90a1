//! The audit trail's API bodies: a case's who-did-what log, a store-wide verification report, and
//! the quarantine listing (`GET /api/audit/cases/{number}`, `/api/audit/verify`, `/api/quarantine`).
//!
//! None of these carries a petitioner's personal data: an audit event names its kind and a short
//! summary of non-personal payload fields (target node, deadline, directive id), never names,
//! ID numbers or free text. Every body carries `schema_version` like the other API bodies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CaseId, EventId, HybridTimestamp, NodeId};

/// What an event's signature check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// Signed by the node it names, unaltered since.
    Valid,
    /// No signature: made before events were signed (schema-1 documents).
    Unsigned,
    /// Signed, but the signature does not hold; `reason` says which check failed.
    Invalid { reason: String },
}

impl SignatureStatus {
    pub fn is_valid(&self) -> bool {
        matches!(self, SignatureStatus::Valid)
    }
}

impl std::fmt::Display for SignatureStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureStatus::Valid => formatter.write_str("valid"),
            SignatureStatus::Unsigned => formatter.write_str("unsigned"),
            SignatureStatus::Invalid { reason } => write!(formatter, "invalid: {reason}"),
        }
    }
}

/// One event of a case as the audit trail shows it: who, from which node, when, and whether its
/// signature holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditEvent {
    pub id: EventId,
    /// The event kind as serialized (`register`, `accept`, `issue_directive`, …).
    pub kind: String,
    /// Non-personal payload fields, e.g. `to node 3f2a…, deadline 2026-03-01`; empty when the
    /// kind has none worth showing.
    pub summary: String,
    /// Wall-clock time at the node that made the event.
    pub at: DateTime<Utc>,
    /// Hybrid logical time at the node that made the event (zero in schema-1 documents).
    pub hlc: HybridTimestamp,
    /// The node that made (and signed) the event.
    pub node: NodeId,
    /// The office's name when this node's config or roster knows the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office: Option<String>,
    pub operator: String,
    pub signature: SignatureStatus,
    /// Made by a ledger import: which run (its `operator` is who ran it) and which row; its
    /// `at` is the time the ledger records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<super::ImportMark>,
    /// Why `at` lies before the time the node recorded the event (`hlc`): 补录.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backdated_reason: Option<String>,
}

/// `GET /api/audit/cases/{number}`: every event of a case in hybrid-clock order (ties by node ID,
/// then event id; events without a hybrid time, from schema-1 documents, by wall time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditLog {
    pub schema_version: u32,
    pub case: CaseId,
    pub events: Vec<AuditEvent>,
}

/// One thing `audit verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditFailure {
    pub case: CaseId,
    /// The event at fault; `None` when the fault is the case's (an unreadable document).
    #[serde(default)]
    pub event: Option<EventId>,
    /// The node the event names as its maker.
    #[serde(default)]
    pub node: Option<NodeId>,
    pub reason: String,
}

/// `GET /api/audit/verify`: every signature and event of every case in the node's store checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditReport {
    pub schema_version: u32,
    pub cases_checked: u64,
    pub events_checked: u64,
    /// Events without a signature (schema-1 documents). Each is also listed in `failures`: an
    /// unsigned event proves nothing about who made it.
    pub unsigned: u64,
    pub failures: Vec<AuditFailure>,
    /// Changes received from peers that failed the receipt checks and were not applied
    /// (`GET /api/quarantine` lists them).
    pub quarantined: u64,
}

impl AuditReport {
    /// No failure of any kind (unsigned events included).
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One quarantined change, without its bytes (they stay in the node's store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct QuarantineEntry {
    /// Position in the quarantine log: pass the last one seen as `after` for the next page.
    pub id: u64,
    /// When this node refused it, by its clock.
    pub received_at: DateTime<Utc>,
    /// The peer that sent it (a relay passes on others' changes: not necessarily their maker).
    pub peer: NodeId,
    pub case: CaseId,
    /// The automerge change hash (SHA-256 of the change), hex.
    pub change_hash: String,
    /// Length of the stored change in bytes.
    pub change_bytes: u64,
    /// The refused events and the check each failed.
    pub reason: String,
}

/// `GET /api/quarantine`: one page of the node's quarantine log, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct QuarantineListing {
    pub schema_version: u32,
    pub entries: Vec<QuarantineEntry>,
    /// Records in this page that could not be read (logged by the node, not listed).
    pub unreadable: u64,
    /// Pass as `after` for the next page; `None` when this page reached the end of the log.
    #[serde(default)]
    pub next_after: Option<u64>,
}
