//! `StoreReplica`: the sync core's [`Replica`] trait over the node's sled store.
//!
//! Per-peer state lives in the store's meta tree: `sync/<peer>/cursor` (the feed position up to
//! which the peer holds everything routing gives it) and `sync/<peer>/heads/<case>` (heads the
//! peer is known to hold).
//!
//! Applying a peer's bytes commits without a disk sync; the session calls `make_durable` (one
//! store flush) after each batch of frames and before it releases their acknowledgements, so
//! what it acknowledges survives a crash and a batch of received cases costs one disk sync. The
//! per-peer state is advisory and written unflushed: it becomes durable with the next flush, and
//! a crash that loses the latest of it only makes a peer re-send what the receiver already holds
//! and ignores. It never outlives the documents it describes: peer heads are recorded after the
//! apply they follow, and sled's log is written in order, so a crash keeps the apply whenever it
//! keeps the record; a cursor moves only on the peer's acknowledgements, which the peer sends
//! once its own write is durable.
//!
//! Walking the feed loads no document where it can help it: routing is read from the stored
//! summary where that determines it (see [`CaseRouting::from_summary`]), heads from the case's
//! bookkeeping record, and a case sent whole goes as the bytes the store holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fengqiao_case::model::sync::{ChangeHead, FeedSequence};
use fengqiao_case::{CaseDocument, CaseId, CaseSummary, Limits, summary};
use fengqiao_store::{Store, StoreError};
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
    /// Whole documents received and not applied yet, loaded and summarized ahead by
    /// [`StoreReplica::prepare`]; shared by clones, so that another thread can do it.
    prepared: Arc<Mutex<HashMap<CaseId, PreparedWhole>>>,
}

/// At most this many documents are kept prepared (about a window's worth); beyond it, `apply`
/// does the work itself. Bounds what frames that are never applied (a session ending) leave.
const PREPARED_LIMIT: usize = 64;

/// A whole document as `apply` would load and summarize it, and the bytes it came from.
struct PreparedWhole {
    bytes: Vec<u8>,
    loaded: Result<LoadedWhole, String>,
}

/// A peer's whole document, loaded, with the summary and routing derived from it.
struct LoadedWhole {
    document: CaseDocument,
    summary: CaseSummary,
    routing: CaseRouting,
}

impl Clone for StoreReplica {
    fn clone(&self) -> StoreReplica {
        StoreReplica {
            handle: Arc::clone(&self.handle),
            actor: self.actor.clone(),
            limits: self.limits.clone(),
            roster: Arc::clone(&self.roster),
            prepared: Arc::clone(&self.prepared),
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
            prepared: Arc::default(),
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

    /// Do ahead, possibly on another thread, the part of applying a peer's whole document of a
    /// case not held here that needs no lock and writes nothing: load it and derive its summary.
    /// The result waits for `apply`, which uses it only for the very same bytes. The driver
    /// calls this for the frames of a batch behind the one the session is applying, so the two
    /// cores share the receiving work. Skipping it changes nothing but the time `apply` takes.
    ///
    /// Changes to a held case are left alone: loading the document ahead measured slower than
    /// leaving it to `apply` (most such documents are cached already).
    pub fn prepare(&self, case: &str, bytes: &[u8]) {
        if self.store().contains(case).unwrap_or(true) {
            return;
        }
        {
            let mut prepared = lock_ignoring_poison(&self.prepared);
            if prepared.len() >= PREPARED_LIMIT {
                // Left by an apply that came first and did the work itself.
                prepared.retain(|case, _| self.store().contains(case).is_ok_and(|held| !held));
            }
            if prepared.len() >= PREPARED_LIMIT || prepared.contains_key(case) {
                return;
            }
        }
        let loaded = self.load_whole(case, bytes);
        let mut prepared = lock_ignoring_poison(&self.prepared);
        // The session may have reached the frame first; then the result is of no use.
        if self.store().contains(case).is_ok_and(|held| !held) {
            prepared.insert(
                case.to_owned(),
                PreparedWhole {
                    bytes: bytes.to_vec(),
                    loaded,
                },
            );
        }
    }

    /// Load a peer's whole document of `case` and derive what the store keeps beside it.
    fn load_whole(&self, case: &str, bytes: &[u8]) -> Result<LoadedWhole, String> {
        // The load's shape check reads header and events anyway; they are used as read.
        let (document, header, events) = CaseDocument::load_and_read(bytes, &[], &self.actor)
            .map_err(|error| error.to_string())?;
        if header.number != case {
            return Err(format!("the document is case {}", header.number));
        }
        let state = fengqiao_case::derive(&header, &events, &self.limits);
        Ok(LoadedWhole {
            summary: summary::summarize(&header, &state),
            routing: CaseRouting::from_case(&header, &state),
            document,
        })
    }

    fn create(
        &mut self,
        case: &str,
        bytes: &[u8],
        prepared: Option<PreparedWhole>,
        admit_new_case: &dyn Fn(&CaseRouting) -> Result<(), String>,
    ) -> Result<Option<Applied>, ReplicaError> {
        let rejected = |message: String| ReplicaError::Rejected {
            case: case.to_owned(),
            message,
        };
        let loaded = match prepared {
            Some(prepared) if prepared.bytes == bytes => prepared.loaded,
            _ => self.load_whole(case, bytes),
        };
        let LoadedWhole {
            mut document,
            summary: case_summary,
            routing,
        } = loaded.map_err(rejected)?;
        admit_new_case(&routing).map_err(rejected)?;
        let heads = document.head_hashes();
        // The peer's bytes are a saved form of the document just loaded from them.
        match self
            .store()
            .create_case_unflushed(document, bytes.to_vec(), &case_summary)
        {
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
            .update_case_unflushed(case, |document: &mut CaseDocument| {
                let before = document.head_hashes();
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
                let after = document.head_hashes();
                if after == before {
                    return Err(ApplyRefusal::Unchanged(after));
                }
                let (header, events) = document
                    .contents()
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

/// The prepared documents are whole or absent at every moment a lock is released, so a panic
/// elsewhere leaves nothing half-done behind.
fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
        self.store().heads(case).map_err(storage)
    }

    fn changes_since(&mut self, case: &str, heads: &[ChangeHead]) -> Result<Vec<u8>, ReplicaError> {
        self.store()
            .with_case(case, |document| document.changes_since(heads))
            .map_err(storage)?
            .ok_or_else(|| ReplicaError::Storage(format!("case {case} is not held here")))
    }

    fn save(&mut self, case: &str) -> Result<Vec<u8>, ReplicaError> {
        // The stored bytes as they are: loading and encoding the document again would cost more
        // than everything else a whole send does.
        self.store()
            .saved_form(case)
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
        let prepared = lock_ignoring_poison(&self.prepared).remove(case);
        let held = self.store().contains(case).map_err(storage)?;
        if !held {
            if !whole {
                return Err(ReplicaError::Rejected {
                    case: case.to_owned(),
                    message: "changes for a case not held here".to_owned(),
                });
            }
            if let Some(applied) = self.create(case, bytes, prepared, admit_new_case)? {
                return Ok(applied);
            }
        }
        self.merge_into_held(case, bytes, whole)
    }

    fn make_durable(&mut self) -> Result<(), ReplicaError> {
        self.store().flush().map_err(storage)
    }

    fn has_heads(&mut self, case: &str, heads: &[ChangeHead]) -> Result<bool, ReplicaError> {
        let Some(current) = self.store().heads(case).map_err(storage)? else {
            return Ok(false);
        };
        // Heads of the document are in its history; only older ones need the document.
        if heads.iter().all(|head| current.binary_search(head).is_ok()) {
            return Ok(true);
        }
        Ok(self
            .store()
            .with_case(case, |document| document.has_heads(heads))
            .map_err(storage)?
            .unwrap_or(false))
    }

    fn routing(&mut self, case: &str) -> Result<Option<CaseRouting>, ReplicaError> {
        // The summary is written in the same transaction as the document, so it describes the
        // stored document exactly.
        let Some(stored_summary) = self.store().summary(case).map_err(storage)? else {
            return Ok(None);
        };
        if let Some(routing) = CaseRouting::from_summary(&stored_summary) {
            return Ok(Some(routing));
        }
        let derived = self
            .store()
            .with_case(case, |document| document.contents())
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

    const OWN_ACTOR: [u8; 16] = [1; 16];
    const PEER_ACTOR: [u8; 16] = [2; 16];
    const CASE: &str = "430702001001-2026-000001";

    fn replica_at(path: &std::path::Path) -> StoreReplica {
        let store = Store::open(path, StoreOptions::new(8, OWN_ACTOR.to_vec())).unwrap();
        let roster: SharedRoster = Arc::new(fengqiao_sync::Roster::default());
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
    fn a_prepared_document_is_used_only_for_the_same_bytes() {
        let directory = tempfile::tempdir().unwrap();
        let mut replica = replica_at(directory.path());
        let admit = |_: &CaseRouting| Ok(());
        let saved = peer_document().save();
        let mut damaged = saved.clone();
        damaged.truncate(saved.len() / 2);

        // Prepared from other bytes (here unreadable ones): the apply does its own work.
        replica.prepare(CASE, &damaged);
        let created = replica.apply(CASE, &saved, true, &admit).unwrap();
        assert!(created.created && created.changed);
        assert!(lock_ignoring_poison(&replica.prepared).is_empty());

        // Prepared from the very bytes applied: the same outcome as without.
        let other_directory = tempfile::tempdir().unwrap();
        let mut other = replica_at(other_directory.path());
        other.prepare(CASE, &saved);
        assert_eq!(lock_ignoring_poison(&other.prepared).len(), 1);
        let prepared = other.apply(CASE, &saved, true, &admit).unwrap();
        assert_eq!(prepared, created);
        assert!(lock_ignoring_poison(&other.prepared).is_empty());
        assert_eq!(
            other.store().summary(CASE).unwrap(),
            replica.store().summary(CASE).unwrap()
        );
        // A case held already is not prepared again.
        other.prepare(CASE, &saved);
        assert!(lock_ignoring_poison(&other.prepared).is_empty());

        // A refusal still comes from the apply, whoever loaded the document.
        let third_directory = tempfile::tempdir().unwrap();
        let mut third = replica_at(third_directory.path());
        third.prepare(CASE, &saved);
        let refuse = |_: &CaseRouting| Err("not from this peer".to_owned());
        assert!(matches!(
            third.apply(CASE, &saved, true, &refuse),
            Err(ReplicaError::Rejected { .. })
        ));
        assert_eq!(third.heads(CASE).unwrap(), None);
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
