//! The replicated roster: signed entries in, the federation's membership out, and the small
//! exchange two linked nodes run to keep their rosters equal.
//!
//! Trust runs from one root down. A node pins the root it trusts (a county pins itself; a child
//! takes its parent's word, the parent being the one office its operator configured), and a node
//! is a member when the best entry about it is signed by its parent, the parent is a member, the
//! node's region lies strictly inside the parent's and its tier is lower. So any link may carry any
//! entry, and a relay can neither invent an office nor move one: it can only hold entries back.
//! Revoking a node takes it and everything below it out of the roster.
//!
//! The roster also carries the federation's policies (`fengqiao_case::policy`): every version a
//! node verified is kept (keyed by issuer and version) and travels on the same exchange, the
//! digest covering entries and policies alike; only the versions the trusted root issued count
//! ([`Roster::policy_book`]).
//!
//! No IO: the shell persists [`Roster::snapshot`], passes the time in, and moves
//! [`RosterFrame`]s between [`RosterExchange`] and a stream.

use fengqiao_case::authority::lies_within;
use std::collections::{BTreeMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use fengqiao_case::model::policy::{POLICY_FORMAT_VERSION, Policy, SignedPolicy};
use fengqiao_case::model::roster::{
    ROSTER_FORMAT_VERSION, ROSTER_FORMAT_VERSION_WITHOUT_SUCCESSORS, Retirement, RosterEntry,
    RosterFrame, RosterSnapshot, SignedRosterEntry, SignedRosterEntryV1,
};
use fengqiao_case::model::{Limits, NodeId, Tier, WarningThresholds};
use fengqiao_case::policy::{MAX_POLICIES, PolicyBook, PolicyError, sign_policy, verify_policy};
use sha2::{Digest, Sha256};

use crate::routing::{PeerRelation, SubtreeRoster};

/// Most entries a roster keeps: far above any county's offices, low enough that a hostile peer
/// cannot grow our memory or disk without bound.
pub const MAX_ROSTER_ENTRIES: usize = 20_000;

/// Format version byte before a stored snapshot's bincode: 3 holds entries of roster format 2
/// (with `successor_of`); 2 (version-1 entries and policies) and 1 (version-1 entries only) are
/// still read.
const SNAPSHOT_FORMAT_VERSION: u8 = 3;

/// Stored snapshot format 2: policies, entries in their version-1 layout.
const SNAPSHOT_FORMAT_VERSION_WITHOUT_SUCCESSORS: u8 = 2;

/// Stored snapshot format 1: before policies.
const SNAPSHOT_FORMAT_VERSION_WITHOUT_POLICIES: u8 = 1;

/// The layout of a format-1 snapshot.
#[derive(serde::Deserialize)]
struct SnapshotWithoutPolicies {
    format_version: u32,
    root: Option<NodeId>,
    entries: Vec<SignedRosterEntryV1>,
}

/// The layout of a format-2 snapshot.
#[derive(serde::Deserialize)]
struct SnapshotWithoutSuccessors {
    format_version: u32,
    root: Option<NodeId>,
    entries: Vec<SignedRosterEntryV1>,
    policies: Vec<SignedPolicy>,
}

/// Largest stored snapshot decoded (far above [`MAX_ROSTER_ENTRIES`] entries).
const SNAPSHOT_DECODE_LIMIT: usize = 64 * 1024 * 1024;

/// Deepest parent chain followed (root, township, village and room to spare).
const MAX_DEPTH: usize = 8;

/// Signatures over roster entries are made over this prefix and the entry's bincode, so that no
/// other signed message of a node can ever be taken for a roster entry.
const SIGNING_CONTEXT: &[u8] = b"fengqiao roster entry\0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error(
        "roster entry for {node}: format version {found} is not supported (this build reads {supported})"
    )]
    UnsupportedVersion {
        node: NodeId,
        found: u32,
        supported: u32,
    },
    #[error("roster entry for {node}: the issuer key is {found} bytes, not 32")]
    BadKeyLength { node: NodeId, found: usize },
    #[error("roster entry for {node}: the signature is {found} bytes, not 64")]
    BadSignatureLength { node: NodeId, found: usize },
    #[error("roster entry for {node}: the issuer key is not a valid ed25519 key")]
    BadKey { node: NodeId },
    #[error(
        "roster entry for {node} is signed by {issuer}, which is neither its parent nor, for a \
         root entry, the node itself"
    )]
    WrongIssuer { node: NodeId, issuer: NodeId },
    #[error("roster entry for {node}: the signature does not verify")]
    BadSignature { node: NodeId },
    #[error("roster entry cannot be encoded: {0}")]
    Encode(String),
    #[error("the roster holds {MAX_ROSTER_ENTRIES} entries already")]
    Full,
    #[error("the stored roster cannot be read: {0}")]
    CorruptSnapshot(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("only the federation's root issues policies; this node's root is {root:?}")]
    NotRoot { root: Option<NodeId> },
    #[error("roster entry for {node}: a version-1 entry cannot name a successor")]
    SuccessorInVersion1 { node: NodeId },
    #[error("roster entry for {node}: a node cannot succeed itself")]
    SucceedsItself { node: NodeId },
}

/// The bytes an issuer signs for `entry`: the context and the entry's bincode in the layout of
/// its format version (a version-1 entry as version 1 laid it out, so its signature verifies).
pub fn signing_bytes(entry: &RosterEntry) -> Result<Vec<u8>, RosterError> {
    let mut bytes = SIGNING_CONTEXT.to_vec();
    let encoded = if entry.format_version == ROSTER_FORMAT_VERSION_WITHOUT_SUCCESSORS {
        let old = entry
            .as_version_1()
            .ok_or_else(|| RosterError::SuccessorInVersion1 {
                node: entry.node_id.clone(),
            })?;
        bincode::serde::encode_into_std_write(old, &mut bytes, bincode::config::standard())
    } else {
        bincode::serde::encode_into_std_write(entry, &mut bytes, bincode::config::standard())
    };
    encoded.map_err(|error| RosterError::Encode(error.to_string()))?;
    Ok(bytes)
}

/// A roster snapshot as stored: a format version byte, then bincode.
pub fn encode_snapshot(snapshot: &RosterSnapshot) -> Result<Vec<u8>, RosterError> {
    let mut bytes = vec![SNAPSHOT_FORMAT_VERSION];
    bincode::serde::encode_into_std_write(snapshot, &mut bytes, bincode::config::standard())
        .map_err(|error| RosterError::Encode(error.to_string()))?;
    Ok(bytes)
}

fn decode_whole<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RosterError> {
    let configuration = bincode::config::standard().with_limit::<SNAPSHOT_DECODE_LIMIT>();
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(body, configuration)
        .map_err(|error| RosterError::CorruptSnapshot(error.to_string()))?;
    if used != body.len() {
        return Err(RosterError::CorruptSnapshot(format!(
            "{} bytes after the snapshot",
            body.len() - used
        )));
    }
    Ok(value)
}

pub fn decode_snapshot(value: &[u8]) -> Result<RosterSnapshot, RosterError> {
    match value.split_first() {
        Some((&SNAPSHOT_FORMAT_VERSION, body)) => decode_whole(body),
        Some((&SNAPSHOT_FORMAT_VERSION_WITHOUT_SUCCESSORS, body)) => {
            let old: SnapshotWithoutSuccessors = decode_whole(body)?;
            Ok(RosterSnapshot {
                format_version: old.format_version,
                root: old.root,
                entries: old.entries.into_iter().map(Into::into).collect(),
                policies: old.policies,
            })
        }
        Some((&SNAPSHOT_FORMAT_VERSION_WITHOUT_POLICIES, body)) => {
            let old: SnapshotWithoutPolicies = decode_whole(body)?;
            Ok(RosterSnapshot {
                format_version: old.format_version,
                root: old.root,
                entries: old.entries.into_iter().map(Into::into).collect(),
                policies: Vec::new(),
            })
        }
        Some((version, _)) => Err(RosterError::CorruptSnapshot(format!(
            "unknown format version {version}"
        ))),
        None => Err(RosterError::CorruptSnapshot(
            "the value is empty".to_owned(),
        )),
    }
}

/// Whoever signs roster entries: the node's key, which signs its events too.
pub use fengqiao_case::signature::NodeSigner as RosterSigner;
use fengqiao_case::signature::{Ed25519Refusal, verify_signature};
pub use fengqiao_case::signature::{
    NODE_ID_BYTES, node_actor_for_public_key, node_id_for_public_key,
};

/// Sign `entry` as `signer`.
pub fn sign_entry(
    entry: RosterEntry,
    signer: &dyn RosterSigner,
) -> Result<SignedRosterEntry, RosterError> {
    let signature = signer.sign(&signing_bytes(&entry)?);
    Ok(SignedRosterEntry {
        entry,
        issuer_public_key: signer.public_key().to_vec(),
        signature: signature.to_vec(),
    })
}

/// Check a signed entry on its own: version, key, issuer and signature. Returns the issuer's
/// node ID. Whether the issuer may speak for the node is the roster's question, not this one.
pub fn verify_entry(signed: &SignedRosterEntry) -> Result<NodeId, RosterError> {
    let entry = &signed.entry;
    let node = || entry.node_id.clone();
    let known_version = entry.format_version == ROSTER_FORMAT_VERSION
        || entry.format_version == ROSTER_FORMAT_VERSION_WITHOUT_SUCCESSORS;
    if !known_version {
        return Err(RosterError::UnsupportedVersion {
            node: node(),
            found: entry.format_version,
            supported: ROSTER_FORMAT_VERSION,
        });
    }
    let key_bytes: [u8; 32] = signed
        .issuer_public_key
        .as_slice()
        .try_into()
        .map_err(|_| RosterError::BadKeyLength {
            node: node(),
            found: signed.issuer_public_key.len(),
        })?;
    let signature_bytes: [u8; 64] =
        signed
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| RosterError::BadSignatureLength {
                node: node(),
                found: signed.signature.len(),
            })?;
    let issuer = node_id_for_public_key(&key_bytes);
    let issuer_may_sign = match &entry.parent {
        Some(parent) => *parent == issuer && *parent != entry.node_id,
        None => entry.node_id == issuer,
    };
    if !issuer_may_sign {
        return Err(RosterError::WrongIssuer {
            node: node(),
            issuer,
        });
    }
    if entry.successor_of.as_deref() == Some(entry.node_id.as_str()) {
        return Err(RosterError::SucceedsItself { node: node() });
    }
    // The one rule every verifier of this federation applies (events, batches, audit verify).
    verify_signature(&key_bytes, &signing_bytes(entry)?, &signature_bytes).map_err(|refusal| {
        match refusal {
            Ed25519Refusal::BadKey => RosterError::BadKey { node: node() },
            Ed25519Refusal::BadSignature => RosterError::BadSignature { node: node() },
        }
    })?;
    Ok(issuer)
}

/// What an issuer says about a node it admits or revokes (the roster picks serial and parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub node_id: NodeId,
    pub name: String,
    pub aliases: Vec<String>,
    pub tier: Tier,
    pub region_code: String,
    pub revoked: bool,
    /// The node this one replaces (`RosterEntry::successor_of`).
    pub successor_of: Option<NodeId>,
}

impl Admission {
    /// What `entry` says, as an admission its issuer could write again.
    pub fn from_entry(entry: &RosterEntry) -> Admission {
        Admission {
            node_id: entry.node_id.clone(),
            name: entry.name.clone(),
            aliases: entry.aliases.clone(),
            tier: entry.tier,
            region_code: entry.region_code.clone(),
            revoked: entry.revoked,
            successor_of: entry.successor_of.clone(),
        }
    }
}

/// What merging a peer's entries did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterMerge {
    /// Entries new to this roster (or newer than what it held).
    pub added: usize,
    /// Entries refused, each with the reason.
    pub refused: Vec<String>,
    /// Whether the membership (who is who) changed.
    pub membership_changed: bool,
    /// Policy versions new to this roster.
    pub policies_added: usize,
}

/// A node's roster: verified entries and the membership derived from them.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    root: Option<NodeId>,
    /// The best entry of each issuer about each node, keyed by (node, issuer).
    entries: BTreeMap<(NodeId, NodeId), SignedRosterEntry>,
    members: BTreeMap<NodeId, RosterEntry>,
    /// Offices whose best entry from a member parent is a revocation, by that revocation.
    revoked: BTreeMap<NodeId, RosterEntry>,
    /// Members replaced by a successor their parent admitted, by the replaced node.
    retired: BTreeMap<NodeId, Retirement>,
    /// Every policy version verified, keyed by (issuer, version); only the root's count.
    policies: BTreeMap<(NodeId, u64), SignedPolicy>,
    digest: [u8; 32],
}

impl Roster {
    /// An empty roster trusting `root` (or no root yet: nothing is a member until one is set).
    pub fn new(root: Option<NodeId>) -> Roster {
        let mut roster = Roster {
            root,
            ..Roster::default()
        };
        roster.recompute();
        roster
    }

    /// A roster as [`Roster::snapshot`] saved it; entries that no longer verify are dropped and
    /// reported, never trusted.
    pub fn from_snapshot(snapshot: RosterSnapshot) -> (Roster, RosterMerge) {
        let mut roster = Roster::new(snapshot.root);
        let mut merge = roster.merge(snapshot.entries);
        let policies = roster.merge_policies(snapshot.policies);
        merge.policies_added = policies.policies_added;
        merge.refused.extend(policies.refused);
        (roster, merge)
    }

    pub fn snapshot(&self) -> RosterSnapshot {
        RosterSnapshot {
            format_version: ROSTER_FORMAT_VERSION,
            root: self.root.clone(),
            entries: self.entries.values().cloned().collect(),
            policies: self.policies.values().cloned().collect(),
        }
    }

    /// Verify and keep `policies`. A version once kept is never replaced by a different one
    /// of the same number from the same issuer unless it sorts higher by signature, the same
    /// choice everywhere (a root re-created from scratch that re-issues a number: every node
    /// ends up with the same one).
    pub fn merge_policies(
        &mut self,
        policies: impl IntoIterator<Item = SignedPolicy>,
    ) -> RosterMerge {
        let mut merge = RosterMerge::default();
        for signed in policies {
            match self.keep_policy(signed) {
                Ok(true) => merge.policies_added += 1,
                Ok(false) => {}
                Err(error) => merge.refused.push(error.to_string()),
            }
        }
        if merge.policies_added > 0 {
            self.recompute();
        }
        merge
    }

    fn keep_policy(&mut self, signed: SignedPolicy) -> Result<bool, RosterError> {
        let issuer = verify_policy(&signed)?;
        let key = (issuer, signed.policy.version);
        match self.policies.get(&key) {
            Some(held) if held.signature >= signed.signature => Ok(false),
            Some(_) => {
                self.policies.insert(key, signed);
                Ok(true)
            }
            None if self.policies.len() >= MAX_POLICIES => Err(PolicyError::Full.into()),
            None => {
                self.policies.insert(key, signed);
                Ok(true)
            }
        }
    }

    /// The policy versions this node uses: the built-in one and those its root issued.
    pub fn policy_book(&self) -> PolicyBook {
        PolicyBook::from_signed(self.root.as_deref(), self.policies.values())
    }

    /// Every policy version held, the root's or not.
    pub fn policies(&self) -> impl Iterator<Item = &SignedPolicy> {
        self.policies.values()
    }

    /// Issue the next policy version as the root: numbered one above every version held, signed
    /// with the root's key, kept. Only the node that is its own root may.
    pub fn issue_policy(
        &mut self,
        signer: &dyn RosterSigner,
        limits: Limits,
        warnings: WarningThresholds,
        note: String,
        now: DateTime<Utc>,
    ) -> Result<SignedPolicy, RosterError> {
        let issuer = node_id_for_public_key(&signer.public_key());
        if self.root.as_deref() != Some(issuer.as_str()) {
            return Err(RosterError::NotRoot {
                root: self.root.clone(),
            });
        }
        let version = self
            .policies
            .keys()
            .filter(|(held_issuer, _)| *held_issuer == issuer)
            .map(|(_, version)| *version)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let signed = sign_policy(
            Policy {
                format_version: POLICY_FORMAT_VERSION,
                version,
                limits,
                warnings,
                note,
                issued_at: now,
            },
            signer,
        )?;
        if self.keep_policy(signed.clone())? {
            self.recompute();
        }
        Ok(signed)
    }

    pub fn root(&self) -> Option<&str> {
        self.root.as_deref()
    }

    /// Trust `root` from now on. Entries that do not chain up to it stop counting (they are kept:
    /// they may belong to a root trusted later). Returns whether the root changed.
    pub fn set_root(&mut self, root: &str) -> bool {
        if self.root.as_deref() == Some(root) {
            return false;
        }
        self.root = Some(root.to_owned());
        self.recompute();
        true
    }

    /// Verify and keep `entries`; an issuer's newer entry about a node replaces its older one.
    pub fn merge(&mut self, entries: impl IntoIterator<Item = SignedRosterEntry>) -> RosterMerge {
        let mut merge = RosterMerge::default();
        let members_before = self.members.clone();
        for signed in entries {
            match self.keep(signed) {
                Ok(true) => merge.added += 1,
                Ok(false) => {}
                Err(error) => merge.refused.push(error.to_string()),
            }
        }
        if merge.added > 0 {
            self.recompute();
        }
        merge.membership_changed = self.members != members_before;
        merge
    }

    fn keep(&mut self, signed: SignedRosterEntry) -> Result<bool, RosterError> {
        let issuer = verify_entry(&signed)?;
        let key = (signed.entry.node_id.clone(), issuer);
        match self.entries.get(&key) {
            Some(held) if !supersedes(&signed, held) => Ok(false),
            Some(_) => {
                self.entries.insert(key, signed);
                Ok(true)
            }
            None if self.entries.len() >= MAX_ROSTER_ENTRIES => Err(RosterError::Full),
            None => {
                self.entries.insert(key, signed);
                Ok(true)
            }
        }
    }

    /// Write, sign and keep this node's entry about `admission` (its own root entry when the
    /// admitted node is the signer itself). The serial is above every earlier one of this issuer
    /// for the node, and otherwise the time in milliseconds, so that a re-created issuer database
    /// still writes newer entries.
    pub fn issue(
        &mut self,
        signer: &dyn RosterSigner,
        admission: Admission,
        now: DateTime<Utc>,
    ) -> Result<SignedRosterEntry, RosterError> {
        let issuer = node_id_for_public_key(&signer.public_key());
        let previous_serial = self
            .entries
            .get(&(admission.node_id.clone(), issuer.clone()))
            .map_or(0, |held| held.entry.serial);
        let parent = (admission.node_id != issuer).then_some(issuer);
        let entry = RosterEntry {
            format_version: ROSTER_FORMAT_VERSION,
            node_id: admission.node_id,
            name: admission.name,
            aliases: admission.aliases,
            tier: admission.tier,
            region_code: admission.region_code,
            parent,
            revoked: admission.revoked,
            successor_of: admission.successor_of,
            serial: previous_serial
                .saturating_add(1)
                .max(u64::try_from(now.timestamp_millis()).unwrap_or(0)),
            issued_at: now,
        };
        let signed = sign_entry(entry, signer)?;
        if self.keep(signed.clone())? {
            self.recompute();
        }
        Ok(signed)
    }

    /// The entry that makes `node` a member, if it is one.
    pub fn member(&self, node: &str) -> Option<&RosterEntry> {
        self.members.get(node)
    }

    pub fn members(&self) -> impl Iterator<Item = &RosterEntry> {
        self.members.values()
    }

    /// Offices a member parent revoked, each by its revocation, which still says what the office
    /// was (name, tier, region): their cases remain, and are still named after them.
    pub fn revoked(&self) -> impl Iterator<Item = &RosterEntry> {
        self.revoked.values()
    }

    /// The entry this roster holds from `issuer` about `node`, member or not.
    pub fn issued(&self, node: &str, issuer: &str) -> Option<&SignedRosterEntry> {
        self.entries.get(&(node.to_owned(), issuer.to_owned()))
    }

    pub fn entries(&self) -> impl Iterator<Item = &SignedRosterEntry> {
        self.entries.values()
    }

    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// SHA-256 over every entry held, in key order: equal digests, equal rosters.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Follow `node`'s parents (members only) up to the root.
    pub fn ancestors<'roster>(&'roster self, node: &str) -> impl Iterator<Item = &'roster str> {
        let mut current = self.members.get(node);
        std::iter::from_fn(move || {
            let parent = current?.parent.as_deref()?;
            current = self.members.get(parent);
            current.map(|entry| entry.node_id.as_str())
        })
        .take(MAX_DEPTH)
    }

    fn recompute(&mut self) {
        let mut hasher = Sha256::new();
        for signed in self.entries.values() {
            hasher.update(&signed.signature);
        }
        // Policies after entries, so a roster without policies keeps the digest it had.
        for signed in self.policies.values() {
            hasher.update(&signed.signature);
        }
        self.digest = hasher.finalize().into();
        (self.members, self.revoked) = self.derive_members();
        self.retired = self.derive_retirements();
    }

    /// Members replaced by a member successor: only the replaced node's own parent may name its
    /// successor (the successor's entry is signed by that parent, as the old node's is).
    fn derive_retirements(&self) -> BTreeMap<NodeId, Retirement> {
        self.members
            .values()
            .filter_map(|successor| {
                let old = successor.successor_of.as_ref()?;
                let old_entry = self.members.get(old)?;
                (old_entry.parent.is_some() && old_entry.parent == successor.parent).then(|| {
                    (
                        old.clone(),
                        Retirement {
                            successor: successor.node_id.clone(),
                            since: successor.issued_at,
                        },
                    )
                })
            })
            .collect()
    }

    /// Whether `node` was replaced by a successor, by whom and since when.
    pub fn retirement(&self, node: &str) -> Option<&Retirement> {
        self.retired.get(node)
    }

    /// The office `node` is now: itself, or the last of its successors.
    pub fn current_office<'roster>(&'roster self, node: &'roster str) -> &'roster str {
        let mut current = node;
        for _ in 0..MAX_DEPTH {
            match self.retired.get(current) {
                Some(retirement) => current = retirement.successor.as_str(),
                None => break,
            }
        }
        current
    }

    /// Members, top down: the root's own entry, then at each level the best entry about each
    /// node among those its member parent signed. Iterated to a fixed point so that a node moved
    /// from one parent to another ends up under whichever wrote the newest entry. Also the
    /// offices whose best such entry is a revocation.
    fn derive_members(&self) -> (BTreeMap<NodeId, RosterEntry>, BTreeMap<NodeId, RosterEntry>) {
        let mut members = BTreeMap::new();
        let mut revoked = BTreeMap::new();
        let Some(root) = &self.root else {
            return (members, revoked);
        };
        let Some(root_entry) = self.entries.get(&(root.clone(), root.clone())) else {
            return (members, revoked);
        };
        if root_entry.entry.revoked {
            return (members, revoked);
        }
        members.insert(root.clone(), root_entry.entry.clone());
        for _ in 0..MAX_DEPTH {
            let mut best: BTreeMap<&str, &RosterEntry> = BTreeMap::new();
            for ((node, issuer), signed) in &self.entries {
                if node == root {
                    continue;
                }
                let Some(issuer_entry) = members.get(issuer) else {
                    continue;
                };
                if !lies_below(&signed.entry, issuer_entry) {
                    continue;
                }
                let better = best
                    .get(node.as_str())
                    .is_none_or(|current| ranks_above(&signed.entry, current));
                if better {
                    best.insert(node, &signed.entry);
                }
            }
            let mut next = BTreeMap::new();
            next.insert(root.clone(), root_entry.entry.clone());
            revoked.clear();
            for (node, entry) in best {
                let kept = if entry.revoked {
                    &mut revoked
                } else {
                    &mut next
                };
                kept.insert(node.to_owned(), entry.clone());
            }
            if next == members {
                break;
            }
            members = next;
        }
        (members, revoked)
    }
}

/// Authority asks who lies above a case's holder; the roster knows.
impl fengqiao_case::authority::Hierarchy for Roster {
    fn is_strict_ancestor(&self, ancestor: &str, node: &str) -> bool {
        self.ancestors(node).any(|above| above == ancestor)
    }

    fn region_of(&self, node: &str) -> Option<String> {
        self.member(node).map(|entry| entry.region_code.clone())
    }

    fn retirement(&self, node: &str) -> Option<Retirement> {
        Roster::retirement(self, node).cloned()
    }
}

/// A node replaced by a successor counts as its successor: the cases it registered or held are
/// the successor's office's, so they route to the successor's link.
impl SubtreeRoster for Roster {
    fn is_successor(&self, node: &str) -> bool {
        self.retired
            .values()
            .any(|retirement| retirement.successor == node)
    }

    fn is_in_subtree(&self, subtree_root: &str, node: &str) -> bool {
        let node = self.current_office(node);
        if subtree_root == node {
            return true;
        }
        self.ancestors(node)
            .any(|ancestor| ancestor == subtree_root)
    }
}

/// An office may admit only offices of a lower tier inside its own region.
fn lies_below(entry: &RosterEntry, parent: &RosterEntry) -> bool {
    entry.tier < parent.tier
        && entry.region_code.len() > parent.region_code.len()
        && lies_within(&entry.region_code, &parent.region_code)
        && entry.region_code.bytes().all(|byte| byte.is_ascii_digit())
}

/// Higher serial first; at equal serials a revocation wins, so a doubt resolves to less trust.
fn ranks_above(candidate: &RosterEntry, current: &RosterEntry) -> bool {
    (candidate.serial, candidate.revoked) > (current.serial, current.revoked)
}

fn supersedes(candidate: &SignedRosterEntry, held: &SignedRosterEntry) -> bool {
    if ranks_above(&candidate.entry, &held.entry) {
        return true;
    }
    // Two different entries with the same rank from one issuer: keep one of them, the same one
    // everywhere, so that rosters still converge.
    !ranks_above(&held.entry, &candidate.entry) && candidate.signature > held.signature
}

/// What happened on a roster exchange, for the shell to persist, log and pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterEvent {
    /// The roster took new entries: persist it and tell the other links.
    Changed { added: usize },
    /// The roster took new policy versions: persist it, tell the other links, and derive with
    /// them (cases deferred for an unknown version may pass now).
    PoliciesChanged { added: usize },
    /// Some of the peer's entries were refused (each with its reason); the others were kept.
    Refused { reasons: Vec<String> },
    /// The parent named the root this node now trusts.
    RootPinned { root: NodeId },
    /// The parent trusts a different root than this node pinned; its entries under that root are
    /// not believed.
    RootMismatch { ours: NodeId, parents: NodeId },
    /// The peer speaks another roster format; the exchange stops (sync goes on).
    Failed { message: String },
}

/// One link's roster conversation, sans IO. Each side announces its digest when the link opens
/// and whenever its roster changes; a side that hears a digest unlike its own sends every entry
/// it holds. A nothing-changed reconnect is one small frame each way.
#[derive(Debug)]
pub struct RosterExchange {
    relation: PeerRelation,
    announced: Option<[u8; 32]>,
    /// (peer's digest, our digest) pairs already answered with our entries: answering each pair
    /// once lets entries flow both ways without two peers that keep different entries (one
    /// refuses what the other holds) trading them forever.
    answered: HashSet<(Vec<u8>, [u8; 32])>,
    transmit: VecDeque<RosterFrame>,
    events: VecDeque<RosterEvent>,
    failed: bool,
}

impl RosterExchange {
    /// An exchange with a peer that is our `relation`; queues our digest.
    pub fn new(relation: PeerRelation, roster: &Roster) -> RosterExchange {
        let mut exchange = RosterExchange {
            relation,
            announced: None,
            answered: HashSet::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            failed: false,
        };
        exchange.on_roster_change(roster);
        exchange
    }

    /// Our roster may have changed (a local admission, or entries from another link).
    pub fn on_roster_change(&mut self, roster: &Roster) {
        if self.failed || self.announced == Some(roster.digest()) {
            return;
        }
        self.announced = Some(roster.digest());
        self.transmit.push_back(RosterFrame::Digest {
            format_version: ROSTER_FORMAT_VERSION,
            root: roster.root().map(str::to_owned),
            digest: roster.digest().to_vec(),
            entries: u32::try_from(roster.entry_count()).unwrap_or(u32::MAX),
        });
    }

    pub fn handle_frame(&mut self, roster: &mut Roster, frame: RosterFrame) {
        if self.failed {
            return;
        }
        match frame {
            RosterFrame::Digest {
                format_version,
                root,
                digest,
                entries: _,
            } => {
                if format_version != ROSTER_FORMAT_VERSION {
                    self.failed = true;
                    self.transmit.clear();
                    self.events.push_back(RosterEvent::Failed {
                        message: format!(
                            "the peer's roster format is version {format_version}, this node \
                             reads version {ROSTER_FORMAT_VERSION}"
                        ),
                    });
                    return;
                }
                if self.relation == PeerRelation::Parent
                    && let Some(parents) = root
                {
                    match roster.root() {
                        None => {
                            roster.set_root(&parents);
                            self.events
                                .push_back(RosterEvent::RootPinned { root: parents });
                        }
                        Some(ours) if ours != parents => {
                            self.events.push_back(RosterEvent::RootMismatch {
                                ours: ours.to_owned(),
                                parents,
                            });
                        }
                        Some(_) => {}
                    }
                }
                self.answer_if_different(roster, digest);
            }
            RosterFrame::Policies { policies } => {
                let merge = roster.merge_policies(policies);
                if !merge.refused.is_empty() {
                    self.events.push_back(RosterEvent::Refused {
                        reasons: merge.refused,
                    });
                }
                if merge.policies_added > 0 {
                    self.events.push_back(RosterEvent::PoliciesChanged {
                        added: merge.policies_added,
                    });
                }
            }
            RosterFrame::Entries { entries, digest } => {
                let merge = roster.merge(entries);
                if !merge.refused.is_empty() {
                    self.events.push_back(RosterEvent::Refused {
                        reasons: merge.refused,
                    });
                }
                if merge.added > 0 {
                    self.events
                        .push_back(RosterEvent::Changed { added: merge.added });
                }
                // Still different from the sender after taking all of its entries: we hold
                // some it lacks.
                self.answer_if_different(roster, digest);
            }
        }
        // A pinned root or new entries change what we announce.
        self.on_roster_change(roster);
    }

    fn answer_if_different(&mut self, roster: &Roster, peer_digest: Vec<u8>) {
        let ours = roster.digest();
        if peer_digest.as_slice() == ours || roster.entry_count() == 0 {
            return;
        }
        if self.answered.insert((peer_digest, ours)) {
            // Policies first: the entries' frame ends the answer (its digest check).
            if !roster.policies.is_empty() {
                self.transmit.push_back(RosterFrame::Policies {
                    policies: roster.policies().cloned().collect(),
                });
            }
            self.transmit.push_back(RosterFrame::Entries {
                entries: roster.entries().cloned().collect(),
                digest: ours.to_vec(),
            });
        }
    }

    pub fn poll_transmit(&mut self) -> Option<RosterFrame> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RosterEvent> {
        self.events.pop_front()
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }
}
