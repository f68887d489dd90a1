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

/// Version of [`RosterEntry`] and [`RosterFrame`]; part of the signed bytes.
pub const ROSTER_FORMAT_VERSION: u32 = 1;

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
    pub issued_at: DateTime<Utc>,
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
