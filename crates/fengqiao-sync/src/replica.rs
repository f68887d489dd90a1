//! What the sync core needs from the node's storage, as a synchronous trait, and an in-memory
//! implementation for tests and the harness, which checks what peers send as every replica does.
//!
//! The shell implements [`Replica`] over `fengqiao-store` (documents, change feed, sled meta for
//! the per-peer state). Calls are synchronous because the core has no runtime; the shell runs a
//! session's calls on a blocking thread as it does for the HTTP API.

use std::collections::{BTreeMap, HashMap};

use fengqiao_case::authority::Hierarchy;
use fengqiao_case::document::CaseDocument;
use fengqiao_case::model::sync::{ChangeHead, FeedSequence, PEER_REFUSAL_VERSION, PeerRefusal};
use fengqiao_case::model::{CaseId, CaseState, Limits, NodeId};
use fengqiao_case::policy::{PolicyBook, PolicyError};
use fengqiao_case::receipt::{self, PeerBytes, RefusedChange};

use crate::routing::{CaseRouting, PeerDescription, SubtreeRoster};

/// A storage failure, or a peer's bytes the storage refused. The message names the case, never its
/// contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    #[error("case {case} cannot be applied: {message}")]
    Rejected { case: CaseId, message: String },
    /// Nothing of the peer's bytes could be kept yet, but may be once this replica knows more
    /// (an event's maker missing from the roster, whose entry may still be on its way).
    #[error("case {case} is deferred: {message}")]
    Deferred { case: CaseId, message: String },
    #[error("storage failed: {0}")]
    Storage(String),
}

/// One entry of the local change feed: `case` last changed at `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub seq: FeedSequence,
    pub case: CaseId,
}

/// What applying a peer's bytes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Heads after applying (sorted).
    pub heads: Vec<ChangeHead>,
    /// The case did not exist here before.
    pub created: bool,
    /// The heads moved (so the feed advanced and other peers may need it).
    pub changed: bool,
    /// Changes of the peer's bytes that were not kept (a forged, altered or unauthorized event,
    /// or a change built on one), each with why; the rest was applied. The replica records them.
    pub quarantined: Vec<String>,
    /// Some changes were left out for now but may be kept once the replica knows more (see
    /// [`ReplicaError::Deferred`]): the session asks the peer for them again later.
    pub deferred: bool,
}

/// The node's storage as the sync core sees it. `peer` arguments are peer node ids.
///
/// Per-peer state (cursor and per-case peer heads) must survive a restart: it is what lets a
/// reconnect cost in proportion to what changed. The shell keeps it in sled meta.
pub trait Replica {
    /// Feed entries with `seq > after`, ascending, at most `limit`.
    fn feed_since(
        &mut self,
        after: FeedSequence,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, ReplicaError>;
    fn feed_head(&mut self) -> Result<FeedSequence, ReplicaError>;
    /// Current heads (sorted), or `None` if the case is not held here.
    fn heads(&mut self, case: &str) -> Result<Option<Vec<ChangeHead>>, ReplicaError>;
    /// The changes this replica has beyond `heads`, concatenated. Heads this replica does not know
    /// are ignored (the peer may be ahead on another branch).
    fn changes_since(&mut self, case: &str, heads: &[ChangeHead]) -> Result<Vec<u8>, ReplicaError>;
    /// The whole document in one piece that loads into it: a `save()`, possibly followed by
    /// incremental changes (what a store keeps, sent as it is).
    fn save(&mut self, case: &str) -> Result<Vec<u8>, ReplicaError>;
    /// Apply `peer`'s bytes: a whole saved document (creating the case, or merging into it) or
    /// changes. A replica that checks what peers send may keep only part of them; it says so in
    /// [`Applied::quarantined`]. Must refuse bytes that leave the document malformed, keeping the old document.
    /// A case new to this replica is first shown to `admit_new_case`, whose refusal (the reason)
    /// becomes [`ReplicaError::Rejected`] and stores nothing.
    ///
    /// The result must be visible to every later call of this replica at once, but need not be
    /// durable, nor visible to anyone else, before [`Replica::make_durable`]: the session
    /// applies a batch of frames, then calls it once, before it releases any acknowledgement of
    /// them (the peer never sends an acknowledged change again).
    fn apply(
        &mut self,
        peer: &str,
        case: &str,
        bytes: &[u8],
        whole: bool,
        admit_new_case: &dyn Fn(&CaseRouting) -> Result<(), String>,
    ) -> Result<Applied, ReplicaError>;
    /// Make everything applied so far durable (one disk sync for a whole batch of applies).
    /// Per-peer state written before or after needs no sync of its own: losing the latest of it
    /// only causes re-sends, as long as it never outlives the applies it describes.
    fn make_durable(&mut self) -> Result<(), ReplicaError>;
    /// Whether every one of `heads` is in the case's history here.
    fn has_heads(&mut self, case: &str, heads: &[ChangeHead]) -> Result<bool, ReplicaError>;
    /// Whether every one of `heads` is in the history of `tips` (one of them or an ancestor);
    /// false when any of either is not held here. How a sender tells whether a peer that reports
    /// `tips` holds what was sent to it.
    fn history_of_contains(
        &mut self,
        case: &str,
        tips: &[ChangeHead],
        heads: &[ChangeHead],
    ) -> Result<bool, ReplicaError>;
    /// What the routing rules read of the case, or `None` if it is not held here.
    fn routing(&mut self, case: &str) -> Result<Option<CaseRouting>, ReplicaError>;
    /// The roster, for "does this node belong to that child's subtree".
    fn roster(&self) -> &dyn SubtreeRoster;

    /// Highest own feed sequence at or below which every case the peer should have is acknowledged.
    fn peer_cursor(&mut self, peer: &str) -> Result<FeedSequence, ReplicaError>;
    fn set_peer_cursor(&mut self, peer: &str, cursor: FeedSequence) -> Result<(), ReplicaError>;
    /// Heads the peer is known to hold for a case (all of them in our history too).
    fn peer_heads(
        &mut self,
        peer: &str,
        case: &str,
    ) -> Result<Option<Vec<ChangeHead>>, ReplicaError>;
    fn set_peer_heads(
        &mut self,
        peer: &str,
        case: &str,
        heads: &[ChangeHead],
    ) -> Result<(), ReplicaError>;
    /// Record that `peer` refused (quarantined) changes we sent it for `case`, with its reasons:
    /// the latest refusal per peer and case is kept, for the case and the link to show. Advisory
    /// like the per-peer state: it need not be durable before the next flush.
    fn record_refusal_by_peer(
        &mut self,
        peer: &PeerDescription,
        case: &str,
        reasons: &[String],
    ) -> Result<(), ReplicaError>;
}

/// A node's cases in memory with a change feed: what `fengqiao-store` provides, minus sled.
/// It takes in a peer's bytes as every replica does ([`receipt::keep_received`]): checked event
/// by event, refused changes kept in a quarantine log instead of the case.
pub struct InMemoryReplica {
    actor: Vec<u8>,
    /// The policy versions this node holds: every case derives with the one it was registered
    /// under (`fengqiao_case::policy`), never with anything of the node's own.
    policies: PolicyBook,
    documents: HashMap<CaseId, CaseDocument>,
    feed: BTreeMap<FeedSequence, CaseId>,
    feed_position: HashMap<CaseId, FeedSequence>,
    feed_head: FeedSequence,
    peer_cursors: HashMap<NodeId, FeedSequence>,
    peer_heads: HashMap<(NodeId, CaseId), Vec<ChangeHead>>,
    roster: Box<dyn SubtreeRoster>,
    /// Who lies above whom and which region each office has: what received events are judged
    /// against.
    hierarchy: Box<dyn Hierarchy>,
    /// Peers' changes refused on receipt, in the order they came.
    quarantine: Vec<QuarantinedChange>,
    /// Applies since the last `make_durable`: nothing is on disk here, but tests check that the
    /// session asks for durability before it acknowledges.
    applies_not_durable: usize,
    /// What peers refused of ours, per (peer, case): the latest refusal.
    refusals_by_peers: BTreeMap<(NodeId, CaseId), PeerRefusal>,
}

impl std::fmt::Debug for InMemoryReplica {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("InMemoryReplica")
            .field("cases", &self.documents.len())
            .field("feed_head", &self.feed_head)
            .finish_non_exhaustive()
    }
}

impl InMemoryReplica {
    pub fn new(
        actor: &[u8],
        roster: Box<dyn SubtreeRoster>,
        hierarchy: Box<dyn Hierarchy>,
    ) -> InMemoryReplica {
        InMemoryReplica {
            actor: actor.to_vec(),
            policies: PolicyBook::default(),
            documents: HashMap::new(),
            feed: BTreeMap::new(),
            feed_position: HashMap::new(),
            feed_head: 0,
            peer_cursors: HashMap::new(),
            peer_heads: HashMap::new(),
            roster,
            hierarchy,
            quarantine: Vec::new(),
            applies_not_durable: 0,
            refusals_by_peers: BTreeMap::new(),
        }
    }

    /// What peers refused of the changes this replica sent them, by (peer, case).
    pub fn refusals_by_peers(&self) -> impl Iterator<Item = &PeerRefusal> {
        self.refusals_by_peers.values()
    }

    /// Every peer's change refused on receipt so far (deferred ones are not: they are asked for
    /// again).
    pub fn quarantine(&self) -> &[QuarantinedChange] {
        &self.quarantine
    }

    /// Applies since [`Replica::make_durable`] was last called.
    pub fn applies_not_durable(&self) -> usize {
        self.applies_not_durable
    }

    pub fn actor(&self) -> &[u8] {
        &self.actor
    }

    pub fn policies(&self) -> &PolicyBook {
        &self.policies
    }

    /// The node's policies changed (versions arrived on the roster stream): what the shell
    /// does when its roster takes new versions.
    pub fn set_policies(&mut self, policies: PolicyBook) {
        self.policies = policies;
    }

    /// The limits `case` derives with: its registered policy version's.
    fn limits_of(&self, events: &[fengqiao_case::model::Event]) -> Result<&Limits, PolicyError> {
        self.policies.limits_for_case(events)
    }

    pub fn case_count(&self) -> usize {
        self.documents.len()
    }

    pub fn case_ids(&self) -> impl Iterator<Item = &CaseId> {
        self.documents.keys()
    }

    pub fn document(&mut self, case: &str) -> Option<&mut CaseDocument> {
        self.documents.get_mut(case)
    }

    /// Add a case made locally (registration), advancing the feed.
    pub fn insert(&mut self, case: &str, document: CaseDocument) {
        self.documents.insert(case.to_owned(), document);
        self.advance_feed(case);
    }

    /// Change a case locally (an appended event), advancing the feed when the heads moved.
    pub fn update<T>(
        &mut self,
        case: &str,
        change: impl FnOnce(&mut CaseDocument) -> T,
    ) -> Option<T> {
        let document = self.documents.get_mut(case)?;
        let before = document.head_hashes();
        let result = change(document);
        let after = document.head_hashes();
        if before != after {
            self.advance_feed(case);
        }
        Some(result)
    }

    /// Derived state of a case, as every replica derives it.
    pub fn state(&mut self, case: &str) -> Option<CaseState> {
        let document = self.documents.get(case)?;
        let header = document.header().ok()?;
        let events = document.events().ok()?;
        let limits = self.limits_of(&events).ok()?;
        Some(fengqiao_case::derive(&header, &events, limits))
    }

    fn advance_feed(&mut self, case: &str) {
        self.feed_head += 1;
        if let Some(old) = self.feed_position.insert(case.to_owned(), self.feed_head) {
            self.feed.remove(&old);
        }
        self.feed.insert(self.feed_head, case.to_owned());
    }

    fn document_or_missing(&mut self, case: &str) -> Result<&mut CaseDocument, ReplicaError> {
        self.documents
            .get_mut(case)
            .ok_or_else(|| ReplicaError::Storage(format!("case {case} is not held here")))
    }
}

impl Replica for InMemoryReplica {
    fn feed_since(
        &mut self,
        after: FeedSequence,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, ReplicaError> {
        Ok(self
            .feed
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(seq, case)| FeedEntry {
                seq: *seq,
                case: case.clone(),
            })
            .collect())
    }

    fn feed_head(&mut self) -> Result<FeedSequence, ReplicaError> {
        Ok(self.feed_head)
    }

    fn heads(&mut self, case: &str) -> Result<Option<Vec<ChangeHead>>, ReplicaError> {
        Ok(self
            .documents
            .get_mut(case)
            .map(|document| document.head_hashes()))
    }

    fn changes_since(&mut self, case: &str, heads: &[ChangeHead]) -> Result<Vec<u8>, ReplicaError> {
        Ok(self.document_or_missing(case)?.changes_since(heads))
    }

    fn save(&mut self, case: &str) -> Result<Vec<u8>, ReplicaError> {
        Ok(self.document_or_missing(case)?.save())
    }

    fn apply(
        &mut self,
        peer: &str,
        case: &str,
        bytes: &[u8],
        whole: bool,
        admit_new_case: &dyn Fn(&CaseRouting) -> Result<(), String>,
    ) -> Result<Applied, ReplicaError> {
        let rejected = |message: String| ReplicaError::Rejected {
            case: case.to_owned(),
            message,
        };
        let bytes = match whole {
            true => PeerBytes::Whole(bytes),
            false => PeerBytes::Changes(bytes),
        };
        let mut held = self.documents.get_mut(case);
        let created = held.is_none();
        let before = held.as_mut().map(|document| document.head_hashes());
        let kept = receipt::keep_received(
            case,
            held,
            bytes,
            &self.actor,
            self.hierarchy.as_ref(),
            &self.policies,
        )
        .map_err(|error| rejected(error.to_string()))?;
        let mut document = kept.document;
        let heads = document.head_hashes();
        if created {
            if heads.is_empty() {
                // Nothing of the case passed: it is not created here.
                let message = describe(&kept.refused);
                if kept.refused.iter().all(|change| change.may_pass_later) {
                    return Err(ReplicaError::Deferred {
                        case: case.to_owned(),
                        message,
                    });
                }
                self.record_refused(peer, case, kept.refused);
                return Err(rejected(format!(
                    "every change failed the checks on receipt: {message}"
                )));
            }
            let (header, events) = document
                .contents()
                .map_err(|error| rejected(error.to_string()))?;
            // Receipt kept the register event only if its policy version is held here.
            let limits = self
                .limits_of(&events)
                .map_err(|error| rejected(error.to_string()))?;
            let state = fengqiao_case::derive(&header, &events, limits);
            admit_new_case(&CaseRouting::from_case(&header, &state)).map_err(rejected)?;
        }
        let (quarantined, deferred) = self.record_refused(peer, case, kept.refused);
        let changed = before.as_ref() != Some(&heads);
        if changed {
            self.documents.insert(case.to_owned(), document);
            self.advance_feed(case);
            self.applies_not_durable += 1;
        }
        Ok(Applied {
            heads,
            created,
            changed,
            quarantined,
            deferred,
        })
    }

    fn make_durable(&mut self) -> Result<(), ReplicaError> {
        self.applies_not_durable = 0;
        Ok(())
    }

    fn has_heads(&mut self, case: &str, heads: &[ChangeHead]) -> Result<bool, ReplicaError> {
        let Some(document) = self.documents.get_mut(case) else {
            return Ok(heads.is_empty());
        };
        Ok(document.has_heads(heads))
    }

    fn history_of_contains(
        &mut self,
        case: &str,
        tips: &[ChangeHead],
        heads: &[ChangeHead],
    ) -> Result<bool, ReplicaError> {
        Ok(self
            .documents
            .get_mut(case)
            .is_some_and(|document| document.history_of_contains(tips, heads)))
    }

    fn routing(&mut self, case: &str) -> Result<Option<CaseRouting>, ReplicaError> {
        let Some(document) = self.documents.get(case) else {
            return Ok(None);
        };
        let header = document
            .header()
            .map_err(|error| ReplicaError::Storage(error.to_string()))?;
        let events = document
            .events()
            .map_err(|error| ReplicaError::Storage(error.to_string()))?;
        let limits = self
            .limits_of(&events)
            .map_err(|error| ReplicaError::Storage(error.to_string()))?;
        let state = fengqiao_case::derive(&header, &events, limits);
        Ok(Some(CaseRouting::from_case(&header, &state)))
    }

    fn roster(&self) -> &dyn SubtreeRoster {
        self.roster.as_ref()
    }

    fn peer_cursor(&mut self, peer: &str) -> Result<FeedSequence, ReplicaError> {
        Ok(self.peer_cursors.get(peer).copied().unwrap_or(0))
    }

    fn set_peer_cursor(&mut self, peer: &str, cursor: FeedSequence) -> Result<(), ReplicaError> {
        self.peer_cursors.insert(peer.to_owned(), cursor);
        Ok(())
    }

    fn peer_heads(
        &mut self,
        peer: &str,
        case: &str,
    ) -> Result<Option<Vec<ChangeHead>>, ReplicaError> {
        Ok(self
            .peer_heads
            .get(&(peer.to_owned(), case.to_owned()))
            .cloned())
    }

    fn set_peer_heads(
        &mut self,
        peer: &str,
        case: &str,
        heads: &[ChangeHead],
    ) -> Result<(), ReplicaError> {
        self.peer_heads
            .insert((peer.to_owned(), case.to_owned()), heads.to_vec());
        Ok(())
    }

    fn record_refusal_by_peer(
        &mut self,
        peer: &PeerDescription,
        case: &str,
        reasons: &[String],
    ) -> Result<(), ReplicaError> {
        self.refusals_by_peers.insert(
            (peer.node_id.clone(), case.to_owned()),
            peer_refusal(peer, case, reasons),
        );
        Ok(())
    }
}

/// A peer's change this replica refused on receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedChange {
    pub peer: NodeId,
    pub case: CaseId,
    pub reason: String,
}

impl InMemoryReplica {
    /// Log the refused changes that will not pass later; returns their reasons and whether any
    /// other was deferred (to be asked for again), as [`Applied`] reports them.
    fn record_refused(
        &mut self,
        peer: &str,
        case: &str,
        refused: Vec<RefusedChange>,
    ) -> (Vec<String>, bool) {
        let mut deferred = false;
        let mut reasons = Vec::new();
        for change in refused {
            if change.may_pass_later {
                deferred = true;
                continue;
            }
            self.quarantine.push(QuarantinedChange {
                peer: peer.to_owned(),
                case: case.to_owned(),
                reason: change.reason.clone(),
            });
            reasons.push(change.reason);
        }
        (reasons, deferred)
    }
}

/// The record of a refusal by `peer`, as every replica stores it.
pub fn peer_refusal(peer: &PeerDescription, case: &str, reasons: &[String]) -> PeerRefusal {
    PeerRefusal {
        format_version: PEER_REFUSAL_VERSION,
        peer: peer.node_id.clone(),
        peer_name: peer.name.clone(),
        case: case.to_owned(),
        reasons: reasons.to_vec(),
    }
}

fn describe(refused: &[RefusedChange]) -> String {
    refused
        .iter()
        .map(|change| change.reason.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}
