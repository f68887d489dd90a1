//! The federation's policy on the wire and on disk: the time limits, the working-day calendar and
//! the warning thresholds every office derives cases with.
//!
//! The root office (the county) issues each version and signs it with its node key; versions
//! replicate down every link on the roster stream, and every node keeps every version it has
//! seen. A case derives with the version its register event names (`EventKind::Register`'s
//! `policy_version`), so issuing a new version never changes a case registered before it.
//! Version 0 is the built-in policy of this software (`crate::policy::built_in_policy`), never
//! issued. The rules (which version a case uses, signing, verification) are `crate::policy`'s.
//! Changing a field here changes the signed bytes and the wire: bump [`POLICY_FORMAT_VERSION`]
//! and keep reading the old form.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Limits, NodeId, WarningThresholds};

/// Version of [`Policy`]'s layout; part of the signed bytes.
pub const POLICY_FORMAT_VERSION: u32 = 1;

/// One version of the federation's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub format_version: u32,
    /// Strictly increasing per issuer; 0 is the built-in policy and is never issued.
    pub version: u64,
    /// Time limits and the working-day calendar (holidays, 调休 working weekends).
    pub limits: Limits,
    /// When deadlines are graded 预警 / 严重超时.
    pub warnings: WarningThresholds,
    /// What changed and why, for people (e.g. "2027年节假日安排").
    pub note: String,
    /// When the root issued it, by its clock (shown to people; never used for ordering).
    pub issued_at: DateTime<Utc>,
}

/// A policy with the issuer's Ed25519 public key and signature; the issuer is the node the key
/// hashes to, and only the root a node trusts may issue the policies it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPolicy {
    pub policy: Policy,
    /// 32 bytes.
    pub issuer_public_key: Vec<u8>,
    /// 64 bytes, over the policy's signing bytes (`crate::policy::signing_bytes`).
    pub signature: Vec<u8>,
}

/// `POST /api/policy` (root only): the next version's content; the root numbers and signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IssuePolicy {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub warnings: WarningThresholds,
    #[serde(default)]
    pub note: String,
}

/// One policy version as `GET /api/policy` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PolicyVersionView {
    pub version: u64,
    /// `None` for the built-in version 0.
    pub issued_by: Option<NodeId>,
    pub issued_at: Option<DateTime<Utc>>,
    pub note: String,
    pub limits: Limits,
    pub warnings: WarningThresholds,
}

/// `GET /api/policy`: the versions this node holds and the one it registers new cases under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PolicyView {
    pub schema_version: u32,
    /// The version new cases registered here record (the newest held from the root).
    pub current: u64,
    /// Every version held, oldest first (version 0, the built-in one, always).
    pub versions: Vec<PolicyVersionView>,
}
