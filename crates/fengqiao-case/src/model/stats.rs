//! `GET /api/stats/children`: the supervisors' measures for a whole subtree and office by office.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MeasureSet, NodeId};

/// The measures of every case a node holds, then broken down by the child office each case lies
/// under (by region code), and under each child by its own children (township, then village).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StatsBreakdown {
    pub schema_version: u32,
    /// Cases registered in `[from, to)`; open bounds when absent.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Whether the cases a ledger import registered were counted (as in [`super::Measures`]).
    #[serde(default)]
    pub imported: super::ImportedCases,
    /// The instant warnings and expired windows were judged at.
    pub now: DateTime<Utc>,
    /// The whole subtree: every case the node holds.
    pub total: MeasureSet,
    /// Cases lying under none of the children: located in the node's own region outside every
    /// child's, or under an office the node does not know of.
    pub own: MeasureSet,
    /// Each child office, in region code order.
    pub children: Vec<OfficeStats>,
}

/// One office's share of a [`StatsBreakdown`]: every case located in its region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OfficeStats {
    /// `None` for a region that holds cases but no office the node knows of (a village not yet
    /// in the replicated roster).
    pub node_id: Option<NodeId>,
    /// The office's name; for a revoked office, the last name its roster entry gave.
    pub name: Option<String>,
    /// The office was revoked (its cases remain and are counted here, under its last name).
    #[serde(default)]
    pub revoked: bool,
    pub region_code: String,
    pub measures: MeasureSet,
    /// The link to this office, for the node's direct children when its federation runs.
    pub sync: Option<SyncHealth>,
    /// This office's own children (a township's villages), in region code order.
    pub children: Vec<OfficeStats>,
}

/// How a child's link stands, as `GET /api/peers` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SyncHealth {
    pub connected: bool,
    /// When the link came up (connected) or went down (not); `None` if it never came up.
    pub since: Option<DateTime<Utc>>,
    /// The latest moment the two were in touch: now while connected, otherwise when the link
    /// went down; `None` if it never came up.
    pub last_contact: Option<DateTime<Utc>>,
    /// Last time both sides were known to hold everything the other's feed owed them.
    pub last_successful_sync: Option<DateTime<Utc>>,
    /// Cases changed here, routed to the child, that it has not acknowledged yet (counted up to
    /// a cap).
    pub pending_out: u64,
    /// Documents the child announced it holds for this node and has not sent yet.
    pub pending_in: u64,
    /// Changes from the child refused on receipt (all time).
    pub quarantined: u64,
    /// Our cases whose changes the child refused on receipt: they did not travel on.
    #[serde(default)]
    pub refused_by_peer: u64,
}
