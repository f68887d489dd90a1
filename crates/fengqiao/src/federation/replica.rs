//! `StoreReplica`: the sync core's [`Replica`] trait over the node's sled store.
//!
//! Per-peer state lives in the store's meta tree: `sync/<peer>/cursor` (the feed position up to
//! which the peer holds everything routing gives it) and `sync/<peer>/heads/<case>` (heads the
//! peer is known to hold).
//!
//! Applying a peer's bytes is flushed by the store before `apply` returns, so what the session
//! acknowledges survives a crash: receiving a case costs one disk sync. The per-peer state is
//! advisory and written unflushed: it becomes durable with the next flushed write (the next case
//! received, or sled's background flush), and a crash that loses the latest of it only makes a
//! peer re-send what the receiver already holds and ignores. It only ever describes documents
//! that are already durable: peer heads are recorded after the apply they follow, and a cursor
//! moves only on the peer's acknowledgements, which the peer sends once its own write is durable.

use std::sync::Arc;

use automerge::ChangeHash;
use fengqiao_case::model::sync::{ChangeHead, FeedSequence};
use fengqiao_case::{CaseDocument, CaseSummary, Limits, summary};
use fengqiao_store::{NewCase, Store, StoreError};
use fengqiao_sync::{Applied, CaseRouting, FeedEntry, Replica, ReplicaError, SubtreeRoster};

use crate::service::Node;

/// Format version byte at the start of every meta value this module writes.
const META_FORMAT_VERSION: u8 = 1;

/// Anything that owns the node's store; lets the replica be built over a bare store in tests and
/// over the shared [`Node`] in a running node.
pub trait StoreHandle: Send + Sync + 'static {
    fn store(&self) -> &Store;
}

impl StoreHandle for Node {
    fn store(&self) -> &Store {
        Node::store(self)
    }
}

impl StoreHandle for Store {
    fn store(&self) -> &Store {
        self
    }
}

/// The roster shared by every session of a node.
pub type SharedRoster = Arc<dyn SubtreeRoster + Send + Sync>;

pub fn peer_cursor_key(peer: &str) -> String {
    format!("sync/{peer}/cursor")
}

pub fn peer_heads_key(peer: &str, case: &str) -> String {
    format!("sync/{peer}/heads/{case}")
}

/// The node's store as the sync core sees it. Cheap to clone: sessions of one node share it.
pub struct StoreReplica {
    handle: Arc<dyn StoreHandle>,
    /// The actor peer documents are loaded with: this node's, so that a merge never writes as
    /// another node.
    actor: Vec<u8>,
    limits: Limits,
    roster: SharedRoster,
}

impl Clone for StoreReplica {
    fn clone(&self) -> StoreReplica {
        StoreReplica {
            handle: Arc::clone(&self.handle),
            actor: self.actor.clone(),
            limits: self.limits.clone(),
            roster: Arc::clone(&self.roster),
        }
    }
}

impl std::fmt::Debug for StoreReplica {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StoreReplica")
            .field("actor", &hex::encode(&self.actor))
            .finish_non_exhaustive()
    }
}

/// Why applying a peer's bytes to a held case stopped; turned into [`ReplicaError`] outside the
/// store's closure.
enum ApplyRefusal {
    Rejected(String),
    /// The bytes added nothing: nothing is written and the feed does not move.
    Unchanged(Vec<ChangeHead>),
}

impl StoreReplica {
    pub fn new(
        handle: Arc<dyn StoreHandle>,
        actor: &[u8],
        limits: Limits,
        roster: SharedRoster,
    ) -> StoreReplica {
        StoreReplica {
            handle,
            actor: actor.to_vec(),
            limits,
            roster,
        }
    }

    /// A replica over a running node: its store, actor and limits.
    pub fn for_node(node: Arc<Node>, roster: SharedRoster) -> StoreReplica {
        let actor = node.identity().actor().to_vec();
        let limits = node.config().limits.clone();
        StoreReplica::new(node, &actor, limits, roster)
    }

    pub fn store(&self) -> &Store {
        self.handle.store()
    }

    /// How many own feed entries lie after the peer's cursor, counted up to `cap`.
    pub fn pending_for_peer(&mut self, peer: &str, cap: usize) -> Result<u64, ReplicaError> {
        let cursor = self.peer_cursor(peer)?;
        let entries = self.store().feed_since(cursor, cap).map_err(storage)?;
        Ok(entries.len() as u64)
    }

    fn derive_summary(
        &self,
        document: &CaseDocument,
    ) -> Result<(CaseSummary, CaseRouting), String> {
        let header = document.header().map_err(|error| error.to_string())?;
        let events = document.events().map_err(|error| error.to_string())?;
        let state = fengqiao_case::derive(&header, &events, &self.limits);
        Ok((
            summary::summarize(&header, &state),
            CaseRouting::from_case(&header, &state),
        ))
    }

    fn create(
        &mut self,
        case: &str,
        bytes: &[u8],
        admit_new_case: &dyn Fn(&CaseRouting) -> Result<(), String>,
    ) -> Result<Option<Applied>, ReplicaError> {
        let rejected = |message: String| ReplicaError::Rejected {
            case: case.to_owned(),
            message,
        };
        let mut document = CaseDocument::load(bytes, &[], &self.actor)
            .map_err(|error| rejected(error.to_string()))?;
        let (case_summary, routing) = self.derive_summary(&document).map_err(rejected)?;
        if case_summary.number != case {
            return Err(rejected(format!(
                "the document is case {}",
                case_summary.number
            )));
        }
        admit_new_case(&routing).map_err(rejected)?;
        let heads = sorted_heads(document.automerge().get_heads());
        match self.store().create_cases(&mut [NewCase {
            document: &mut document,
            summary: &case_summary,
        }]) {
            Ok(_) => Ok(Some(Applied {
                heads,
                created: true,
                changed: true,
            })),
            // Registered or received on another session meanwhile: merge into it instead.
            Err(StoreError::AlreadyExists(_)) => Ok(None),
            Err(error) => Err(rejected_or_storage(case, error)),
        }
    }

    fn merge_into_held(
        &mut self,
        case: &str,
        bytes: &[u8],
        whole: bool,
    ) -> Result<Applied, ReplicaError> {
        let actor = self.actor.clone();
        let limits = self.limits.clone();
        // The store drops its cached document when the closure fails, so applying in place is
        // applying to a copy: refused bytes never reach disk nor linger in memory.
        let outcome = self
            .store()
            .update_case(case, |document: &mut CaseDocument| {
                let before = sorted_heads(document.automerge().get_heads());
                if whole {
                    let mut incoming = CaseDocument::load(bytes, &[], &actor)
                        .map_err(|error| ApplyRefusal::Rejected(error.to_string()))?;
                    document
                        .merge(&mut incoming)
                        .map_err(|error| ApplyRefusal::Rejected(error.to_string()))?;
                } else {
                    document
                        .automerge()
                        .load_incremental(bytes)
                        .map_err(|error| {
                            ApplyRefusal::Rejected(format!("changes cannot be decoded: {error}"))
                        })?;
                }
                let after = sorted_heads(document.automerge().get_heads());
                if after == before {
                    return Err(ApplyRefusal::Unchanged(after));
                }
                let header = document
                    .header()
                    .map_err(|error| ApplyRefusal::Rejected(error.to_string()))?;
                let events = document
                    .events()
                    .map_err(|error| ApplyRefusal::Rejected(error.to_string()))?;
                if header.number != case {
                    return Err(ApplyRefusal::Rejected(format!(
                        "the document is case {}",
                        header.number
                    )));
                }
                let state = fengqiao_case::derive(&header, &events, &limits);
                Ok((summary::summarize(&header, &state), after))
            })
            .map_err(|error| rejected_or_storage(case, error))?;
        match outcome {
            Ok((heads, _feed_seq)) => Ok(Applied {
                heads,
                created: false,
                changed: true,
            }),
            Err(ApplyRefusal::Unchanged(heads)) => Ok(Applied {
                heads,
                created: false,
                changed: false,
            }),
            Err(ApplyRefusal::Rejected(message)) => Err(ReplicaError::Rejected {
                case: case.to_owned(),
                message,
            }),
        }
    }
}

fn sorted_heads(hashes: Vec<ChangeHash>) -> Vec<ChangeHead> {
    let mut heads: Vec<ChangeHead> = hashes.into_iter().map(|hash| hash.0).collect();
    heads.sort_unstable();
    heads
}

fn storage(error: StoreError) -> ReplicaError {
    ReplicaError::Storage(error.to_string())
}

/// A document error from the store is about the peer's bytes; anything else is our disk.
fn rejected_or_storage(case: &str, error: StoreError) -> ReplicaError {
    match error {
        StoreError::Document(document) => ReplicaError::Rejected {
            case: case.to_owned(),
            message: document.to_string(),
        },
        other => storage(other),
    }
}

fn corrupt(key: &str, why: &str) -> ReplicaError {
    ReplicaError::Storage(format!("stored sync record {key} is corrupt: {why}"))
}

impl Replica for StoreReplica {
    fn feed_since(
        &mut self,
        after: FeedSequence,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, ReplicaError> {
        Ok(self
            .store()
            .feed_since(after, limit)
            .map_err(storage)?
            .into_iter()
            .map(|entry| FeedEntry {
                seq: entry.seq,
                case: entry.case,
            })
            .collect())
    }

    fn feed_head(&mut self) -> Result<FeedSequence, ReplicaError> {
        self.store().feed_head().map_err(storage)
    }

    fn heads(&mut self, case: &str) -> Result<Option<Vec<ChangeHead>>, ReplicaError> {
        self.store()
            .with_case(case, |document| {
                sorted_heads(document.automerge().get_heads())
            })
            .map_err(storage)
    }

    fn changes_since(&mut self, case: &str, heads: &[ChangeHead]) -> Result<Vec<u8>, ReplicaError> {
        self.store()
            .with_case(case, |document| {
                let automerge = document.automerge();
                let known: Vec<ChangeHash> = heads
                    .iter()
                    .map(|head| ChangeHash(*head))
                    .filter(|hash| automerge.get_change_by_hash(hash).is_some())
                    .collect();
                let mut bytes = Vec::new();
                for change in automerge.get_changes(&known) {
                    bytes.extend_from_slice(change.raw_bytes());
                }
                bytes
            })
            .map_err(storage)?
            .ok_or_else(|| ReplicaError::Storage(format!("case {case} is not held here")))
    }

    fn save(&mut self, case: &str) -> Result<Vec<u8>, ReplicaError> {
        // `with_case` documents must not change; saving leaves the content alone, and the cached
        // document has nothing unsaved outside `update_case`, so its incremental mark stays put.
        self.store()
            .with_case(case, CaseDocument::save)
            .map_err(storage)?
            .ok_or_else(|| ReplicaError::Storage(format!("case {case} is not held here")))
    }

    fn apply(
        &mut self,
        case: &str,
        bytes: &[u8],
        whole: bool,
        admit_new_case: &dyn Fn(&CaseRouting) -> Result<(), String>,
    ) -> Result<Applied, ReplicaError> {
        let held = self.store().contains(case).map_err(storage)?;
        if !held {
            if !whole {
                return Err(ReplicaError::Rejected {
                    case: case.to_owned(),
                    message: "changes for a case not held here".to_owned(),
                });
            }
            if let Some(applied) = self.create(case, bytes, admit_new_case)? {
                return Ok(applied);
            }
        }
        self.merge_into_held(case, bytes, whole)
    }

    fn has_heads(&mut self, case: &str, heads: &[ChangeHead]) -> Result<bool, ReplicaError> {
        Ok(self
            .store()
            .with_case(case, |document| {
                let automerge = document.automerge();
                heads
                    .iter()
                    .all(|head| automerge.get_change_by_hash(&ChangeHash(*head)).is_some())
            })
            .map_err(storage)?
            .unwrap_or(false))
    }

    fn routing(&mut self, case: &str) -> Result<Option<CaseRouting>, ReplicaError> {
        let derived = self
            .store()
            .with_case(case, |document| {
                let header = document.header()?;
                let events = document.events()?;
                Ok::<_, fengqiao_case::DocumentError>((header, events))
            })
            .map_err(storage)?;
        match derived {
            None => Ok(None),
            Some(Ok((header, events))) => {
                let state = fengqiao_case::derive(&header, &events, &self.limits);
                Ok(Some(CaseRouting::from_case(&header, &state)))
            }
            Some(Err(error)) => Err(ReplicaError::Storage(format!(
                "stored case {case} cannot be read: {error}"
            ))),
        }
    }

    fn roster(&self) -> &dyn SubtreeRoster {
        &*self.roster
    }

    fn peer_cursor(&mut self, peer: &str) -> Result<FeedSequence, ReplicaError> {
        let key = peer_cursor_key(peer);
        match self.store().meta_get(&key).map_err(storage)? {
            None => Ok(0),
            Some(value) => match value.split_first() {
                Some((&META_FORMAT_VERSION, rest)) => {
                    let bytes: [u8; 8] = rest
                        .try_into()
                        .map_err(|_| corrupt(&key, "a cursor is 8 bytes"))?;
                    Ok(u64::from_be_bytes(bytes))
                }
                _ => Err(corrupt(&key, "unknown format version")),
            },
        }
    }

    fn set_peer_cursor(&mut self, peer: &str, cursor: FeedSequence) -> Result<(), ReplicaError> {
        let mut value = Vec::with_capacity(9);
        value.push(META_FORMAT_VERSION);
        value.extend_from_slice(&cursor.to_be_bytes());
        self.store()
            .meta_put_unflushed(&peer_cursor_key(peer), &value)
            .map_err(storage)
    }

    fn peer_heads(
        &mut self,
        peer: &str,
        case: &str,
    ) -> Result<Option<Vec<ChangeHead>>, ReplicaError> {
        let key = peer_heads_key(peer, case);
        let Some(value) = self.store().meta_get(&key).map_err(storage)? else {
            return Ok(None);
        };
        match value.split_first() {
            Some((&META_FORMAT_VERSION, rest)) if rest.len() % 32 == 0 => Ok(Some(
                rest.chunks_exact(32)
                    .map(|chunk| {
                        let mut head = [0u8; 32];
                        head.copy_from_slice(chunk);
                        head
                    })
                    .collect(),
            )),
            Some((&META_FORMAT_VERSION, _)) => {
                Err(corrupt(&key, "heads are a whole number of 32-byte hashes"))
            }
            _ => Err(corrupt(&key, "unknown format version")),
        }
    }

    fn set_peer_heads(
        &mut self,
        peer: &str,
        case: &str,
        heads: &[ChangeHead],
    ) -> Result<(), ReplicaError> {
        let mut value = Vec::with_capacity(1 + heads.len() * 32);
        value.push(META_FORMAT_VERSION);
        for head in heads {
            value.extend_from_slice(head);
        }
        self.store()
            .meta_put_unflushed(&peer_heads_key(peer, case), &value)
            .map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{TimeZone, Utc};
    use fengqiao_case::{
        CaseHeader, Category, Channel, Event, EventKind, Location, MatterType, Ownership,
        Petitioner,
    };
    use fengqiao_store::StoreOptions;

    use super::*;
    use crate::federation::RegionRoster;

    const OWN_ACTOR: [u8; 16] = [1; 16];
    const PEER_ACTOR: [u8; 16] = [2; 16];
    const CASE: &str = "430702001001-2026-000001";

    fn replica_at(path: &std::path::Path) -> StoreReplica {
        let store = Store::open(path, StoreOptions::new(8, OWN_ACTOR.to_vec())).unwrap();
        let roster: SharedRoster = Arc::new(RegionRoster::default());
        StoreReplica::new(Arc::new(store), &OWN_ACTOR, Limits::default(), roster)
    }

    fn event(id: &str, kind: EventKind) -> Event {
        Event {
            id: id.to_owned(),
            kind,
            at: Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap(),
            node: "peer".to_owned(),
            operator: "王五".to_owned(),
            prev: None,
        }
    }

    /// The case as the peer holds it, written with the peer's actor.
    fn peer_document() -> CaseDocument {
        let header = CaseHeader {
            number: CASE.to_owned(),
            channel: Channel::Visit,
            petitioners: vec![Petitioner {
                name: "张三".to_owned(),
                id_number: "430702199001010000".to_owned(),
                phone: "13800000000".to_owned(),
                address: "芦荻山村三组".to_owned(),
                representative: false,
            }],
            headcount: 1,
            respondent: "某建筑公司".to_owned(),
            category: Category::WageArrears,
            matter_type: MatterType::Appeal,
            litigation_related: false,
            summary: "要求支付拖欠的工资三万元".to_owned(),
            location: Location {
                region_code: "430702001001".to_owned(),
                village: "芦荻山村".to_owned(),
                grid: "第三网格".to_owned(),
                grid_worker: "李四".to_owned(),
            },
            ownership: Ownership::default(),
        };
        CaseDocument::create(
            &header,
            &event("register", EventKind::Register {}),
            &PEER_ACTOR,
        )
        .unwrap()
    }

    #[test]
    fn an_applied_case_and_its_peer_heads_persist_across_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let admit = |_: &CaseRouting| Ok(());
        let mut source = peer_document();
        let saved = source.save();
        let expected_heads;
        {
            let mut replica = replica_at(directory.path());
            let created = replica.apply(CASE, &saved, true, &admit).unwrap();
            assert!(created.created && created.changed);
            replica
                .set_peer_heads("peer", CASE, &created.heads)
                .unwrap();

            source
                .push_event(&event(
                    "note-1",
                    EventKind::Note {
                        text: "第一次调解".to_owned(),
                    },
                ))
                .unwrap();
            let changes = source.save_incremental();
            let merged = replica.apply(CASE, &changes, false, &admit).unwrap();
            assert!(!merged.created && merged.changed);
            assert_ne!(merged.heads, created.heads);
            replica.set_peer_heads("peer", CASE, &merged.heads).unwrap();
            replica.set_peer_cursor("peer", 7).unwrap();
            // Unflushed bookkeeping is visible at once.
            assert_eq!(
                replica.peer_heads("peer", CASE).unwrap().as_ref(),
                Some(&merged.heads)
            );
            expected_heads = merged.heads;
        }
        let mut replica = replica_at(directory.path());
        assert_eq!(replica.heads(CASE).unwrap().as_ref(), Some(&expected_heads));
        assert_eq!(
            replica.peer_heads("peer", CASE).unwrap().as_ref(),
            Some(&expected_heads)
        );
        assert_eq!(replica.peer_cursor("peer").unwrap(), 7);
        assert_eq!(replica.peer_heads("other", CASE).unwrap(), None);
        let notes = replica
            .store()
            .with_case(CASE, |document| document.events().unwrap().len())
            .unwrap();
        assert_eq!(notes, Some(2));
    }
}
