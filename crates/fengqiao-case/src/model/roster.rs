//! The federation roster on the wire and on disk: which node ID is which office, at which tier
//! and region, and which office admitted it.
//!
//! Each entry is signed by the office that admitted the node (its parent); the federation's root
//! (the county) signs its own. Every node keeps every entry it can verify and derives the
//! membership from them (`fengqiao_sync::roster`), so a node learns who is who from any link
//! without trusting the link to tell the truth about it. Changing a field here changes both the
//! signed bytes and the wire: bump [`ROSTER_FORMAT_VERSION`] and keep reading the old form.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::policy::SignedPolicy;
use super::{NodeId, Tier};

/// Version of [`RosterEntry`] and [`RosterFrame`]; part of the signed bytes. Version 2 added
/// [`RosterEntry::successor_of`]; a version-1 entry is signed over its version-1 layout
/// ([`RosterEntryV1`]) and still verifies.
pub const ROSTER_FORMAT_VERSION: u32 = 2;

/// The roster format before successors: its entries' signed bytes and stored layout.
pub const ROSTER_FORMAT_VERSION_WITHOUT_SUCCESSORS: u32 = 1;

/// What an admitting office says about a node it admitted (or revoked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub format_version: u32,
    /// The node this entry is about.
    pub node_id: NodeId,
    pub name: String,
    /// Other names the office goes by (a complaint naming any of them is about the office).
    pub aliases: Vec<String>,
    pub tier: Tier,
    pub region_code: String,
    /// The office that admitted this one and signs this entry; `None` only for the federation's
    /// root, which signs its own entry.
    pub parent: Option<NodeId>,
    /// The parent has revoked the node: it and everything below it leave the roster.
    pub revoked: bool,
    /// Chosen by the issuer, strictly increasing over its entries for one node: the highest wins.
    pub serial: u64,
    /// When the issuer wrote the entry, by its clock (shown to people; never used for ordering).
    /// For an entry naming [`RosterEntry::successor_of`], also the cut after which events signed
    /// by the replaced node are refused (`fengqiao_case::receipt`).
    pub issued_at: DateTime<Utc>,
    /// The node this one replaces (a rebuilt office whose old key was lost), admitted by the same
    /// parent: the same office for routing, its earlier events stay valid, its new ones are
    /// refused. Format version 2; always `None` in a version-1 entry.
    pub successor_of: Option<NodeId>,
}

impl RosterEntry {
    /// The entry in its version-1 layout, if it can be written in it (it names no successor).
    pub fn as_version_1(&self) -> Option<RosterEntryV1> {
        if self.successor_of.is_some() {
            return None;
        }
        Some(RosterEntryV1 {
            format_version: self.format_version,
            node_id: self.node_id.clone(),
            name: self.name.clone(),
            aliases: self.aliases.clone(),
            tier: self.tier,
            region_code: self.region_code.clone(),
            parent: self.parent.clone(),
            revoked: self.revoked,
            serial: self.serial,
            issued_at: self.issued_at,
        })
    }
}

/// [`RosterEntry`] as format version 1 laid it out (signed bytes, stored snapshots of format 1
/// and 2): the same fields without `successor_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntryV1 {
    pub format_version: u32,
    pub node_id: NodeId,
    pub name: String,
    pub aliases: Vec<String>,
    pub tier: Tier,
    pub region_code: String,
    pub parent: Option<NodeId>,
    pub revoked: bool,
    pub serial: u64,
    pub issued_at: DateTime<Utc>,
}

impl From<RosterEntryV1> for RosterEntry {
    fn from(old: RosterEntryV1) -> RosterEntry {
        RosterEntry {
            format_version: old.format_version,
            node_id: old.node_id,
            name: old.name,
            aliases: old.aliases,
            tier: old.tier,
            region_code: old.region_code,
            parent: old.parent,
            revoked: old.revoked,
            serial: old.serial,
            issued_at: old.issued_at,
            successor_of: None,
        }
    }
}

/// A version-1 entry with its signature, as stored snapshots of format 1 and 2 hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRosterEntryV1 {
    pub entry: RosterEntryV1,
    pub issuer_public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

impl From<SignedRosterEntryV1> for SignedRosterEntry {
    fn from(old: SignedRosterEntryV1) -> SignedRosterEntry {
        SignedRosterEntry {
            entry: old.entry.into(),
            issuer_public_key: old.issuer_public_key,
            signature: old.signature,
        }
    }
}

/// A node replaced by a successor, as the roster says: who replaced it and from when (the
/// successor's entry's `issued_at`). Its events made before stay valid; later ones are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    pub successor: NodeId,
    pub since: DateTime<Utc>,
}

/// A roster entry with the issuer's Ed25519 public key and signature. The issuer is the node the
/// key hashes to; it must be the entry's `parent` (or the node itself, for the root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRosterEntry {
    pub entry: RosterEntry,
    /// 32 bytes.
    pub issuer_public_key: Vec<u8>,
    /// 64 bytes, over the entry's signing bytes (`fengqiao_sync::roster::signing_bytes`).
    pub signature: Vec<u8>,
}

/// What two linked nodes say about their rosters, on a stream of its own beside the sync stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RosterFrame {
    /// Sent when the link opens and whenever the sender's roster changes.
    Digest {
        format_version: u32,
        /// The federation root the sender trusts: a child takes its parent's word for it.
        root: Option<NodeId>,
        /// SHA-256 over the sender's entries (32 bytes); equal digests mean nothing to send.
        digest: Vec<u8>,
        entries: u32,
    },
    /// Every entry the sender holds, in answer to a digest that differs from its own. `digest` is
    /// the sender's: a receiver that still differs from it after merging answers with its own
    /// entries, so that entries flow whichever side had them.
    Entries {
        entries: Vec<SignedRosterEntry>,
        digest: Vec<u8>,
    },
    /// Every policy version the sender holds (`super::policy`), sent just before its
    /// [`RosterFrame::Entries`]: the digest covers policies too, so policies ride the same
    /// conversation. Added with sync protocol version 5.
    Policies { policies: Vec<SignedPolicy> },
}

/// A node's roster as it keeps it on disk (one value in the store's meta tree): the root it
/// trusts, every entry it verified and every policy version it verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterSnapshot {
    pub format_version: u32,
    pub root: Option<NodeId>,
    pub entries: Vec<SignedRosterEntry>,
    /// Every policy version verified (stored snapshot format 2; format 1 had none).
    pub policies: Vec<SignedPolicy>,
}

/// `GET /api/roster`: one office the node's roster counts as a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RosterMemberView {
    pub node_id: NodeId,
    pub name: String,
    pub tier: Tier,
    pub region_code: String,
    /// Who admitted it (and signed its entry); `None` for the federation's root.
    pub admitted_by: Option<NodeId>,
    pub issued_at: DateTime<Utc>,
    /// The office was revoked: this is its revocation (by `admitted_by`, at `issued_at`), which
    /// still gives the name it had. Its cases stay where they are.
    #[serde(default)]
    pub revoked: bool,
}

/// `GET /api/roster`: the node's view of the federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RosterView {
    pub schema_version: u32,
    /// The root this node trusts; `None` until its parent has told it.
    pub root: Option<NodeId>,
    pub members: Vec<RosterMemberView>,
    /// Offices a member revoked, as their revocations describe them (not members any more).
    #[serde(default)]
    pub revoked: Vec<RosterMemberView>,
    /// Entries held, members or not (revocations, entries awaiting their issuer's).
    pub entries: usize,
}

/// `POST /api/federation/reload`: what re-reading the `[federation]` section changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FederationReload {
    pub schema_version: u32,
    /// Children admitted from now on (node IDs).
    pub admitted: Vec<NodeId>,
    /// Children refused from now on; their connections were closed.
    pub revoked: Vec<NodeId>,
    /// Children whose name, region or aliases changed; their links restart.
    pub updated: Vec<NodeId>,
    /// Roster entries this node signed for the changes.
    pub roster_entries_signed: usize,
    /// Changes that take effect only when the node restarts, each said in words.
    pub needs_restart: Vec<String>,
}

/// Version of [`RebuildReport`] as stored in the node's meta.
pub const REBUILD_FORMAT_VERSION: u32 = 1;

/// Most missing sequence numbers a [`RecoveredSequence`] lists (the count is always whole).
pub const MAX_MISSING_LISTED: usize = 1_000;

/// A node rebuilt from its parent (`fengqiao init --restore-from-parent`): written at init,
/// completed when the parent has sent every case it owes this office, shown by `fengqiao peers`
/// (`GET /api/peers`) on the parent's link. Until it completes the node registers no case, so
/// it never hands out a number one of its returning cases holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RebuildReport {
    pub format_version: u32,
    /// The parent the cases come back from.
    pub parent: NodeId,
    pub parent_name: String,
    /// This office's region: its own case numbers start with it.
    pub region_code: String,
    pub started_at: DateTime<Utc>,
    /// When the parent had sent everything it owes; `None` while the rebuild goes on.
    pub completed_at: Option<DateTime<Utc>>,
    /// Cases held when the rebuild completed.
    pub cases_recovered: u64,
    /// This office's own numbering per registration year, as recovered.
    pub sequences: Vec<RecoveredSequence>,
}

/// One year of an office's own case numbers after a rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RecoveredSequence {
    /// `REGION-YEAR`, the numbers' common start.
    pub prefix: String,
    /// The highest sequence recovered: new cases are numbered after it. Numbers the old node
    /// handed out after its last sync cannot be known here.
    pub highest: u64,
    /// How many sequences below `highest` no case came back for: registered by the old node and
    /// never synced (or refused on the way), so lost with its disk.
    pub missing_count: u64,
    /// Those sequences, the first [`MAX_MISSING_LISTED`] of them.
    pub missing: Vec<u64>,
}
