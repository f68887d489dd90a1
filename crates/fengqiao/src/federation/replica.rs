//! `StoreReplica`: the sync core's [`Replica`] trait over the node's sled store.
//!
//! Per-peer state lives in the store's meta tree: `sync/<peer>/cursor` (the feed position up to
//! which the peer holds everything routing gives it) and `sync/<peer>/heads/<case>` (heads the
//! peer is known to hold).
//!
//! Applying a peer's bytes commits without a disk sync; the session calls `make_durable` (one
//! store flush) after each batch of frames and before it releases their acknowledgements, so
//! what it acknowledges survives a crash and a batch of received cases costs one disk sync. A
//! case new here, or a merge into a held one, is only staged by `apply`: the batch's writes go
//! to the store by `make_durable` (one transaction with the peer heads when only new cases are
//! staged, else two), or before anything this replica is asked touches their cases (see
//! [`Staged`]). The
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

use fengqiao_case::authority::Hierarchy;
use fengqiao_case::causal_past::CausalPast;
use fengqiao_case::model::sync::{
    ChangeHead, FeedSequence, PeerRefusal, QUARANTINE_RECORD_VERSION, QuarantineRecord,
};
use fengqiao_case::policy::derive_registered;
use fengqiao_case::receipt;
use fengqiao_case::signature::SignerKeys;
use fengqiao_case::{
    CaseDocument, CaseHeader, CaseId, CaseSummary, Event, HybridTimestamp, summary,
};
use fengqiao_store::{QuarantineKey, ReceivedCase, StagedUpdate, Store, StoreError};
use fengqiao_sync::{
    Applied, CaseRouting, FeedEntry, PeerDescription, Replica, ReplicaError, SubtreeRoster, route,
};

use super::prepared::PreparedCases;
use crate::service::Node;
use crate::service::policy::SharedPolicies;

/// Format version byte at the start of every meta value this module writes.
const META_FORMAT_VERSION: u8 = 1;

/// Anything that owns the node's store; lets the replica be built over a bare store in tests and
/// over the shared [`Node`] in a running node.
pub trait StoreHandle: Send + Sync + 'static {
    fn store(&self) -> &Store;

    /// Move the node's hybrid clock past an event received from a peer; a bare store keeps no
    /// clock. Answers how far ahead of the node's clock the time lay when it was too far ahead
    /// to be taken in.
    fn observe_clock(&self, _received: HybridTimestamp) -> Option<i64> {
        None
    }
}

impl StoreHandle for Node {
    fn store(&self) -> &Store {
        Node::store(self)
    }

    fn observe_clock(&self, received: HybridTimestamp) -> Option<i64> {
        match Node::observe_clock(self, received, crate::wall_clock::now()) {
            Ok(_) => None,
            Err(error) => {
                // The event is kept (its signature and authority hold); only our clock ignores
                // it, and the case notes it for a person. Debug, not warn: the link already
                // warned once that the peer's clock is off.
                tracing::debug!(%error, "a received event's hybrid time is not taken into the clock");
                let fengqiao_case::clock::ClockError::TooFarAhead { ahead_ms, .. } = error;
                Some(ahead_ms)
            }
        }
    }
}

impl StoreHandle for Store {
    fn store(&self) -> &Store {
        self
    }
}

/// The roster as a replica reads it: for routing, and for judging who made the events it receives.
pub trait ReplicaRoster: SubtreeRoster + Hierarchy + Send + Sync {}

impl<T: SubtreeRoster + Hierarchy + Send + Sync> ReplicaRoster for T {}

/// The roster shared by every session of a node.
pub type SharedRoster = Arc<dyn ReplicaRoster>;

/// Node meta keys under this prefix are what the node knows of each peer's progress (cursors
/// and heads). A restored node does not keep them: it may lack what they say a peer holds or was
/// sent, so it learns them again by syncing (`backup.rs`).
pub const PEER_SYNC_META_PREFIX: &str = "sync/";

pub fn peer_cursor_key(peer: &str) -> String {
    format!("{PEER_SYNC_META_PREFIX}{peer}/cursor")
}

pub fn peer_heads_key(peer: &str, case: &str) -> String {
    format!("{PEER_SYNC_META_PREFIX}{peer}/heads/{case}")
}

/// The node's store as the sync core sees it. Cheap to clone: sessions of one node share it.
pub struct StoreReplica {
    handle: Arc<dyn StoreHandle>,
    /// The actor peer documents are loaded with: this node's, so that a merge never writes as
    /// another node.
    actor: Vec<u8>,
    /// The node's policy versions: each case derives with the one it was registered under.
    policies: Arc<SharedPolicies>,
    roster: SharedRoster,
    /// Received frames not applied yet, worked out ahead by [`StoreReplica::prepare`]; shared
    /// by clones, so that another thread can do it.
    prepared: Arc<PreparedCases<Prepared>>,
    /// Signers' keys decoded by the session's own checks.
    signer_keys: Arc<Mutex<SignerKeys>>,
    /// Whether received events are checked: always, but in the benchmark that measures what the
    /// checks cost (see [`StoreReplica::without_receipt_checks_for_benchmark`]).
    check_received_events: bool,
    /// Cases received whole and not written yet; this session's own (a clone starts empty).
    staged: Staged,
}

/// Cases received during a batch of frames, new or merged into held ones, written together
/// when the session makes the batch durable, or as soon as anything asks about them: one
/// transaction for a batch costs far less than one per case (a transaction over the store's
/// trees took about 0.3 ms, most of a received case's time on the session's thread).
#[derive(Default)]
struct Staged {
    cases: Vec<StagedCase>,
    /// Peers' changes merged into held cases, each written only if nobody wrote its case since.
    updates: Vec<StagedMerge>,
    /// Peer heads recorded meanwhile: written in the same transaction, so never before the
    /// cases they describe.
    meta: Vec<(String, Vec<u8>)>,
}

struct StagedCase {
    peer: String,
    case: ReceivedCase,
}

/// A peer's bytes merged into a held case, and what they were, to apply them again if the case
/// changes before the update is written.
struct StagedMerge {
    peer: String,
    bytes: Vec<u8>,
    whole: bool,
    update: StagedUpdate,
}

/// Whether a document read to derive a case's routing stays in the store's cache.
#[derive(Debug, Clone, Copy)]
enum DocumentCaching {
    Cached,
    Uncached,
}

/// Whether a merge is written at once or staged with the session's batch.
#[derive(Debug, Clone, Copy)]
enum Staging {
    Stage,
    WriteNow,
}

/// At most this many cases are kept prepared (two windows' worth); beyond it, `apply` does the
/// work itself.
const PREPARED_LIMIT: usize = 128;

/// A frame's changes to one case, as the reader hands them to the preparing threads.
#[derive(Debug)]
pub struct ReceivedChanges {
    pub case: CaseId,
    pub bytes: Vec<u8>,
    /// A whole saved document rather than changes.
    pub whole: bool,
}

/// A peer's whole document, read, before its events are checked.
struct ReadWhole {
    document: CaseDocument,
    header: CaseHeader,
    events: Vec<Event>,
    /// What each event was made on: the receipt checks judge each event on its causal past.
    causal: CausalPast,
}

/// A peer's whole document, loaded and checked, with the summary and routing derived from it.
struct LoadedWhole {
    /// The heads of the document kept (sorted). The document itself is dropped where it was
    /// loaded: the store writes the bytes, and freeing a document is work the session need
    /// not do.
    heads: Vec<ChangeHead>,
    summary: CaseSummary,
    routing: CaseRouting,
    latest_clock: HybridTimestamp,
    /// The document's saved form when changes were left out (else the peer's bytes are it).
    saved: Option<Vec<u8>>,
    /// Changes left out, for the quarantine log.
    refused: Vec<RefusedChange>,
}

/// What a preparing thread worked out ahead for one received frame.
enum Prepared {
    /// A whole document of a case new here.
    New(Box<Result<LoadedWhole, WholeRefusal>>),
    /// Changes merged into a copy of a held case. `None` when that did not simply succeed
    /// (nothing new, refused, failed a check): the session does those itself, as they come.
    Merge(Option<Box<PreparedMerge>>),
}

/// A merged case's heads, and the latest clock among its events (which the node's clock
/// observes).
type MergedHeads = (Vec<ChangeHead>, HybridTimestamp);

/// Changes merged ahead into a copy of a held case and checked, staged to be written only if
/// the case is still as it was then.
struct PreparedMerge {
    heads: Vec<ChangeHead>,
    latest_clock: HybridTimestamp,
    update: StagedUpdate,
}

/// Why nothing of a peer's whole document is kept.
enum WholeRefusal {
    Unreadable(String),
    /// Every refused change may pass once the roster knows more.
    Deferred(String),
    Quarantined {
        message: String,
        refused: Vec<RefusedChange>,
    },
}

impl Clone for StoreReplica {
    fn clone(&self) -> StoreReplica {
        StoreReplica {
            handle: Arc::clone(&self.handle),
            actor: self.actor.clone(),
            policies: Arc::clone(&self.policies),
            roster: Arc::clone(&self.roster),
            prepared: Arc::clone(&self.prepared),
            signer_keys: Arc::clone(&self.signer_keys),
            check_received_events: self.check_received_events,
            staged: Staged::default(),
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
    /// Some event failed the checks on receipt: screen the changes one by one.
    FailedChecks,
    /// The bytes added nothing: nothing is written and the feed does not move.
    Unchanged(Vec<ChangeHead>),
}

impl StoreReplica {
    pub fn new(
        handle: Arc<dyn StoreHandle>,
        actor: &[u8],
        policies: Arc<SharedPolicies>,
        roster: SharedRoster,
    ) -> StoreReplica {
        StoreReplica {
            handle,
            actor: actor.to_vec(),
            policies,
            roster,
            prepared: Arc::new(PreparedCases::new(PREPARED_LIMIT)),
            signer_keys: Arc::default(),
            check_received_events: true,
            staged: Staged::default(),
        }
    }

    /// The replica keeping what peers send unchecked: only for the federation benchmark
    /// (`Federation::start_without_receipt_checks_for_benchmark`), never reachable from a node's
    /// config.
    pub(crate) fn without_receipt_checks_for_benchmark(mut self) -> StoreReplica {
        self.check_received_events = false;
        self
    }

    /// [`receipt::check_received`], or nothing found when checks are off.
    fn check(
        &self,
        case: &str,
        header: &fengqiao_case::CaseHeader,
        held: &[fengqiao_case::Event],
        received: &[fengqiao_case::Event],
        causal: &CausalPast,
        keys: &mut SignerKeys,
    ) -> Vec<receipt::Rejection> {
        let copy = receipt::ReceivedCopy {
            case,
            header,
            before: held,
            after: received,
            causal,
        };
        self.check_many(&[copy], keys).pop().unwrap_or_default()
    }

    /// [`receipt::check_received_many`], or nothing found for any copy when checks are off.
    fn check_many(
        &self,
        copies: &[receipt::ReceivedCopy<'_>],
        keys: &mut SignerKeys,
    ) -> Vec<Vec<receipt::Rejection>> {
        if !self.check_received_events {
            return vec![Vec::new(); copies.len()];
        }
        receipt::check_received_many(copies, &*self.roster, &self.policies.get(), keys)
    }

    /// A replica over a running node: its store, actor and policy versions.
    /// The roster this replica routes and judges with.
    pub fn roster(&self) -> &SharedRoster {
        &self.roster
    }

    pub fn for_node(node: Arc<Node>, roster: SharedRoster) -> StoreReplica {
        let actor = node.identity().actor().to_vec();
        let policies = node.shared_policies();
        StoreReplica::new(node, &actor, policies, roster)
    }

    /// The case's state under the policy version it was registered under.
    fn derive(
        &self,
        header: &fengqiao_case::CaseHeader,
        events: &[fengqiao_case::Event],
    ) -> Result<fengqiao_case::CaseState, fengqiao_case::policy::PolicyError> {
        derive_registered(&self.policies.get(), header, events)
    }

    pub fn store(&self) -> &Store {
        self.handle.store()
    }

    /// How many of the own feed entries after the peer's cursor (at most `cap` of them are
    /// read) hold a case that routing sends to `peer`: what the session would still send it.
    /// Routing is decided as on send ([`Replica::routing`], then [`fengqiao_sync::route`]), so a
    /// case the peer will never receive is never counted as owed to it.
    pub fn pending_for_peer(
        &mut self,
        peer: &PeerDescription,
        cap: usize,
    ) -> Result<u64, ReplicaError> {
        let cursor = self.peer_cursor(&peer.node_id)?;
        let entries = self.store().feed_since(cursor, cap).map_err(storage)?;
        let mut pending = 0;
        for entry in entries {
            // A count over many cases leaves the document cache to the cases people work on.
            let Some(routing) = self.stored_routing(&entry.case, DocumentCaching::Uncached)? else {
                continue;
            };
            if route(&routing, peer, &*self.roster).allows() {
                pending += 1;
            }
        }
        Ok(pending)
    }

    /// What the routing rules read of a stored case: from its summary where that determines it,
    /// else derived from its document.
    fn stored_routing(
        &self,
        case: &str,
        caching: DocumentCaching,
    ) -> Result<Option<CaseRouting>, ReplicaError> {
        // The summary is written in the same transaction as the document, so it describes the
        // stored document exactly.
        let Some(stored_summary) = self.store().summary(case).map_err(storage)? else {
            return Ok(None);
        };
        if let Some(routing) = CaseRouting::from_summary(&stored_summary) {
            return Ok(Some(routing));
        }
        let contents = |document: &mut CaseDocument| document.contents();
        let derived = match caching {
            DocumentCaching::Cached => self.store().with_case(case, contents),
            DocumentCaching::Uncached => self.store().with_case_uncached(case, contents),
        }
        .map_err(storage)?;
        match derived {
            None => Ok(None),
            Some(Ok((header, events))) => {
                let state = self
                    .derive(&header, &events)
                    .map_err(|error| ReplicaError::Storage(format!("case {case}: {error}")))?;
                Ok(Some(CaseRouting::from_case(&header, &state)))
            }
            Some(Err(error)) => Err(ReplicaError::Storage(format!(
                "stored case {case} cannot be read: {error}"
            ))),
        }
    }

    /// Per peer: how many of our cases it refused changes of (the latest refusal per case).
    pub fn refused_by_peer(&self) -> Result<HashMap<String, u64>, ReplicaError> {
        let mut by_peer: HashMap<String, u64> = HashMap::new();
        for (key, _) in self
            .store()
            .meta_scan(PeerRefusal::META_PREFIX, usize::MAX)
            .map_err(storage)?
        {
            // `refused/<case>/<peer>`: the peer is the last segment.
            if let Some((_, peer)) = key.rsplit_once('/') {
                *by_peer.entry(peer.to_owned()).or_default() += 1;
            }
        }
        Ok(by_peer)
    }

    /// Per peer: how many changes from it are in the quarantine log, and why the latest was
    /// refused.
    pub fn quarantine_by_peer(&self) -> Result<HashMap<String, (u64, String)>, ReplicaError> {
        let mut by_peer: HashMap<String, (u64, String)> = HashMap::new();
        let mut after = 0;
        loop {
            let records = self
                .store()
                .quarantine_since(after, 1024)
                .map_err(storage)?;
            let Some((last_id, _)) = records.last() else {
                return Ok(by_peer);
            };
            after = *last_id;
            for (_, bytes) in records {
                let record = decode_quarantine_record(&bytes).map_err(ReplicaError::Storage)?;
                let entry = by_peer.entry(record.peer).or_default();
                entry.0 += 1;
                entry.1 = record.reason;
            }
        }
    }

    /// Do ahead, on another thread, the part of applying received frames that writes nothing.
    /// A peer's whole document of a case not held here is loaded, its events checked (the
    /// signatures of all such cases in one batch) and its summary derived. Changes to a held
    /// case are merged into a copy of it and checked, staged to be written only if the case is
    /// unchanged by then. The results wait for `apply`, which uses one only for the very same
    /// bytes. The driver calls this for frames as they arrive, ahead of the session, so the two
    /// cores share the receiving work. Skipping it changes nothing but the time `apply` takes.
    /// `keys` is the preparing thread's own cache.
    pub fn prepare(&self, received: Vec<ReceivedChanges>, keys: &mut SignerKeys) {
        let mut new_cases = Vec::new();
        let mut changes = Vec::new();
        for ReceivedChanges { case, bytes, whole } in received {
            match whole {
                true => new_cases.push((case, bytes)),
                false => changes.push((case, bytes)),
            }
        }
        self.prepare_new_cases(new_cases, keys);
        self.prepare_merges(changes, keys);
    }

    /// Whole documents of cases new here: loaded, their signatures verified in one batch,
    /// summarized.
    fn prepare_new_cases(&self, cases: Vec<(CaseId, Vec<u8>)>, keys: &mut SignerKeys) {
        if cases.is_empty() {
            return;
        }
        // No store read here: once sled has run a transaction, each of its reads waits while any
        // transaction in the process commits, and the session commits a batch of new cases
        // about every few milliseconds, so asking whether each case is held stalled this thread
        // for a share of every batch. A whole document of a case held meanwhile is rare (its
        // sender believed this node did not hold it); `apply` then merges it and leaves the
        // prepared result unused.
        let claim = self.prepared.claim(cases, |_| true);
        if claim.cases().is_empty() {
            return;
        }
        let read: Vec<Result<ReadWhole, WholeRefusal>> = claim
            .cases()
            .iter()
            .map(|(case, bytes)| self.read_whole(case, bytes))
            .collect();
        let copies: Vec<receipt::ReceivedCopy<'_>> = claim
            .cases()
            .iter()
            .zip(&read)
            .filter_map(|((case, _), read)| {
                let read = read.as_ref().ok()?;
                Some(receipt::ReceivedCopy {
                    case,
                    header: &read.header,
                    before: &[],
                    after: &read.events,
                    causal: &read.causal,
                })
            })
            .collect();
        let mut rejections = self.check_many(&copies, keys).into_iter();
        drop(copies);
        let loaded = claim
            .cases()
            .iter()
            .zip(read)
            .map(|((case, _), read)| {
                Prepared::New(Box::new(read.and_then(|read| {
                    self.finish_whole(case, read, rejections.next().unwrap_or_default())
                })))
            })
            .collect();
        claim.publish(loaded);
    }

    /// Changes to held cases: each merged into a copy of the case and checked, staged for the
    /// session to take if the case has not changed since (see [`Store::stage_update_on_copy`]).
    /// Loading a case not in the cache is most of a merge's cost, and here it runs beside the
    /// session instead of on its thread.
    fn prepare_merges(&self, changes: Vec<(CaseId, Vec<u8>)>, keys: &mut SignerKeys) {
        if changes.is_empty() {
            return;
        }
        let claim = self
            .prepared
            .claim(changes, |case| self.store().contains(case).unwrap_or(false));
        let merges = claim
            .cases()
            .iter()
            .map(|(case, bytes)| {
                let staged = self.store().stage_update_on_copy(case, |document| {
                    self.merge_checked(case, bytes, false, document, keys)
                });
                let Ok(Ok(((heads, latest_clock), update))) = staged else {
                    return Prepared::Merge(None);
                };
                Prepared::Merge(Some(Box::new(PreparedMerge {
                    heads,
                    latest_clock,
                    update,
                })))
            })
            .collect();
        claim.publish(merges);
    }

    /// Load a peer's whole document of `case`, check every event in it, and derive what the store
    /// keeps beside it. Changes that fail the checks are left out (see [`receipt::screen`]).
    fn load_whole(&self, case: &str, bytes: &[u8]) -> Result<LoadedWhole, WholeRefusal> {
        let read = self.read_whole(case, bytes)?;
        let mut keys = lock_ignoring_poison(&self.signer_keys);
        let rejections = self.check(
            case,
            &read.header,
            &[],
            &read.events,
            &read.causal,
            &mut keys,
        );
        drop(keys);
        self.finish_whole(case, read, rejections)
    }

    /// Load a peer's whole document of `case`, reading its header and events.
    fn read_whole(&self, case: &str, bytes: &[u8]) -> Result<ReadWhole, WholeRefusal> {
        // The load's shape check reads header and events anyway; they are used as read.
        let (mut document, header, events) =
            CaseDocument::load_and_read(bytes, &[], &self.actor)
                .map_err(|error| WholeRefusal::Unreadable(error.to_string()))?;
        if header.number != case {
            return Err(WholeRefusal::Unreadable(format!(
                "the document is case {}",
                header.number
            )));
        }
        let causal = document
            .causal_past()
            .map_err(|error| WholeRefusal::Unreadable(error.to_string()))?;
        Ok(ReadWhole {
            document,
            header,
            events,
            causal,
        })
    }

    /// What the store keeps of a peer's whole document whose events the checks judged as
    /// `rejections`: the document less the refused changes, and its summary and routing.
    fn finish_whole(
        &self,
        case: &str,
        read: ReadWhole,
        rejections: Vec<receipt::Rejection>,
    ) -> Result<LoadedWhole, WholeRefusal> {
        let ReadWhole {
            mut document,
            mut header,
            mut events,
            causal: _,
        } = read;
        let mut refused = Vec::new();
        let mut saved = None;
        if !rejections.is_empty() {
            let screened = receipt::screen(
                case,
                None,
                &mut document,
                &self.actor,
                &*self.roster,
                &self.policies.get(),
            )
            .map_err(|error| WholeRefusal::Unreadable(error.to_string()))?;
            refused = refused_changes(screened.refused);
            if screened.kept.is_empty() {
                let message = describe_rejections(&screened.rejections);
                if refused.iter().all(|change| change.may_pass_later) {
                    return Err(WholeRefusal::Deferred(message));
                }
                return Err(WholeRefusal::Quarantined { message, refused });
            }
            document = screened.document;
            (header, events) = document
                .contents()
                .map_err(|error| WholeRefusal::Unreadable(error.to_string()))?;
            saved = Some(document.save());
        }
        // Receipt kept the register event only under a policy version held here.
        let state = self
            .derive(&header, &events)
            .map_err(|error| WholeRefusal::Unreadable(error.to_string()))?;
        Ok(LoadedWhole {
            summary: summary::summarize(&header, &state),
            routing: CaseRouting::from_case(&header, &state),
            latest_clock: latest_clock(&events),
            heads: document.head_hashes(),
            saved,
            refused,
        })
    }

    fn create(
        &mut self,
        peer: &str,
        case: &str,
        bytes: &[u8],
        prepared: Option<Result<LoadedWhole, WholeRefusal>>,
        admit_new_case: &dyn Fn(&CaseRouting) -> Result<(), String>,
    ) -> Result<Applied, ReplicaError> {
        let rejected = |message: String| ReplicaError::Rejected {
            case: case.to_owned(),
            message,
        };
        let loaded = match prepared {
            Some(prepared) => prepared,
            None => self.load_whole(case, bytes),
        };
        let LoadedWhole {
            heads,
            summary: case_summary,
            routing,
            latest_clock,
            saved,
            refused,
        } = match loaded {
            Ok(loaded) => loaded,
            Err(WholeRefusal::Unreadable(message)) => return Err(rejected(message)),
            Err(WholeRefusal::Deferred(message)) => {
                tracing::info!(%peer, %case, reason = %message, "case deferred until the roster knows its makers");
                return Err(ReplicaError::Deferred {
                    case: case.to_owned(),
                    message,
                });
            }
            Err(WholeRefusal::Quarantined { message, refused }) => {
                self.quarantine(peer, case, refused)?;
                return Err(rejected(format!(
                    "every change failed the checks on receipt: {message}"
                )));
            }
        };
        admit_new_case(&routing).map_err(rejected)?;
        // Checked here, not when the batch is written: a bad number refuses this case only.
        fengqiao_store::validate_case_number(case).map_err(|error| rejected(error.to_string()))?;
        // Unless changes were left out, the peer's bytes are a saved form of the document just
        // loaded from them.
        let saved = saved.unwrap_or_else(|| bytes.to_vec());
        self.observe_received_clock(case, latest_clock)?;
        let (quarantined, deferred) = self.quarantine(peer, case, refused)?;
        self.staged.cases.push(StagedCase {
            peer: peer.to_owned(),
            case: ReceivedCase {
                saved,
                heads: heads.clone(),
                summary: case_summary,
            },
        });
        Ok(Applied {
            heads,
            created: true,
            changed: true,
            quarantined,
            deferred,
        })
    }

    /// Write the staged cases, updates and peer heads (see [`Staged`]): the new cases in one
    /// transaction, then the updates in another; the peer heads go in the last of them, after
    /// the cases they describe (so a first sync's batches, which stage no updates, commit
    /// once). A case that another session
    /// created meanwhile is merged into the one held instead, and an update of a case someone
    /// wrote meanwhile is applied again to the case as it is now.
    fn write_staged(&mut self) -> Result<(), ReplicaError> {
        if self.staged.cases.is_empty()
            && self.staged.updates.is_empty()
            && self.staged.meta.is_empty()
        {
            return Ok(());
        }
        let Staged {
            cases,
            updates,
            meta,
        } = std::mem::take(&mut self.staged);
        if updates.is_empty() {
            return self.write_staged_cases(cases, &meta);
        }
        self.write_staged_cases(cases, &[])?;
        self.write_staged_updates(updates, &meta)
    }

    /// Write the staged new cases and `meta` (peer heads recorded for them) in one transaction.
    fn write_staged_cases(
        &mut self,
        cases: Vec<StagedCase>,
        meta: &[(String, Vec<u8>)],
    ) -> Result<(), ReplicaError> {
        if cases.is_empty() && meta.is_empty() {
            return Ok(());
        }
        let mut peers: HashMap<CaseId, String> = HashMap::with_capacity(cases.len());
        let mut cases: Vec<ReceivedCase> = cases
            .into_iter()
            .map(|staged| {
                peers.insert(staged.case.summary.number.clone(), staged.peer);
                staged.case
            })
            .collect();
        loop {
            match self
                .store()
                .create_received_cases_unflushed(&mut cases, meta)
            {
                Ok(_) => return Ok(()),
                Err(StoreError::AlreadyExists(number)) => {
                    let Some(position) =
                        cases.iter().position(|case| case.summary.number == number)
                    else {
                        return Err(ReplicaError::Storage(format!(
                            "case {number} exists, but it is not among the cases being written"
                        )));
                    };
                    let existing = cases.remove(position);
                    let peer = peers.get(&number).cloned().unwrap_or_default();
                    // Received on another session meanwhile: what this peer sent joins it.
                    self.apply_again(&peer, &number, &existing.saved, true)?;
                }
                Err(error) => return Err(storage(error)),
            }
        }
    }

    fn write_staged_updates(
        &mut self,
        staged: Vec<StagedMerge>,
        meta: &[(String, Vec<u8>)],
    ) -> Result<(), ReplicaError> {
        let mut again: HashMap<CaseId, (String, Vec<u8>, bool)> = HashMap::new();
        let mut updates = Vec::with_capacity(staged.len());
        for merge in staged {
            again.insert(
                merge.update.number().to_owned(),
                (merge.peer, merge.bytes, merge.whole),
            );
            updates.push(merge.update);
        }
        loop {
            match self.store().commit_staged_updates(&mut updates, meta) {
                Ok(_) => return Ok(()),
                Err(StoreError::ChangedMeanwhile(number)) => {
                    updates.retain(|update| update.number() != number);
                    let Some((peer, bytes, whole)) = again.remove(&number) else {
                        return Err(ReplicaError::Storage(format!(
                            "case {number} changed, but it is not among the updates being written"
                        )));
                    };
                    self.apply_again(&peer, &number, &bytes, whole)?;
                }
                Err(error) => return Err(storage(error)),
            }
        }
    }

    /// Apply a peer's bytes again, written at once, to a case someone else wrote after `apply`
    /// staged them. `apply` told the session they were taken in, and its acknowledgement waits
    /// for this write: if they cannot be taken in now, failing the session drops the
    /// acknowledgement, so the peer sends them again and `apply` meets the case as it is.
    fn apply_again(
        &mut self,
        peer: &str,
        case: &str,
        bytes: &[u8],
        whole: bool,
    ) -> Result<(), ReplicaError> {
        match self.merge_into_held(peer, case, bytes, whole, Staging::WriteNow) {
            Ok(_) => Ok(()),
            Err(ReplicaError::Rejected { message, .. })
            | Err(ReplicaError::Deferred { message, .. }) => Err(ReplicaError::Storage(format!(
                "changes to case {case} from {peer}, written meanwhile by someone else, could \
                 not be applied again: {message}"
            ))),
            Err(error) => Err(error),
        }
    }

    /// Write what is staged first if it touches `case`, so that what is asked about the case is
    /// answered from the store.
    fn write_staged_if_holds(&mut self, case: &str) -> Result<(), ReplicaError> {
        let staged = &self.staged;
        if staged
            .cases
            .iter()
            .any(|staged| staged.case.summary.number == case)
            || staged
                .updates
                .iter()
                .any(|merge| merge.update.number() == case)
        {
            self.write_staged()?;
        }
        Ok(())
    }

    /// Apply a peer's bytes to a case held here. The bytes are applied in place and checked; if
    /// any event fails, the store drops that attempt and [`StoreReplica::merge_screened`] keeps
    /// only the changes that pass.
    fn merge_into_held(
        &mut self,
        peer: &str,
        case: &str,
        bytes: &[u8],
        whole: bool,
        staging: Staging,
    ) -> Result<Applied, ReplicaError> {
        // The store drops its cached document when the closure fails, so applying in place is
        // applying to a copy: refused bytes never reach disk nor linger in memory.
        let merge = |document: &mut CaseDocument| {
            let mut keys = lock_ignoring_poison(&self.signer_keys);
            self.merge_checked(case, bytes, whole, document, &mut keys)
        };
        let outcome = match staging {
            Staging::WriteNow => self
                .store()
                .update_case_unflushed(case, merge)
                .map_err(|error| rejected_or_storage(case, error))?
                .map(|(merged, _feed_seq)| merged),
            Staging::Stage => {
                let staged = self
                    .store()
                    .stage_update(case, merge)
                    .map_err(|error| rejected_or_storage(case, error))?;
                staged.map(|(merged, update)| {
                    self.staged.updates.push(StagedMerge {
                        peer: peer.to_owned(),
                        bytes: bytes.to_vec(),
                        whole,
                        update,
                    });
                    merged
                })
            }
        };
        match outcome {
            Err(ApplyRefusal::FailedChecks) => self.merge_screened(peer, case, bytes, whole),
            outcome => self.merged(case, outcome, Vec::new(), false),
        }
    }

    /// Apply a peer's bytes to `document` and check the events they add: the new summary, heads
    /// and latest clock, or why the merge is refused.
    fn merge_checked(
        &self,
        case: &str,
        bytes: &[u8],
        whole: bool,
        document: &mut CaseDocument,
        keys: &mut SignerKeys,
    ) -> Result<(CaseSummary, MergedHeads), ApplyRefusal> {
        let before = document.head_hashes();
        let held_events = match self.check_received_events {
            true => document.events().map_err(refusal)?,
            false => Vec::new(),
        };
        apply_bytes(document, bytes, whole, &self.actor)?;
        let after = document.head_hashes();
        if after == before {
            return Err(ApplyRefusal::Unchanged(after));
        }
        let (header, events) = document.contents().map_err(refusal)?;
        if header.number != case {
            return Err(ApplyRefusal::Rejected(format!(
                "the document is case {}",
                header.number
            )));
        }
        let causal = document.causal_past().map_err(refusal)?;
        let rejections = self.check(case, &header, &held_events, &events, &causal, keys);
        if !rejections.is_empty() {
            return Err(ApplyRefusal::FailedChecks);
        }
        let state = self
            .derive(&header, &events)
            .map_err(|error| ApplyRefusal::Rejected(error.to_string()))?;
        Ok((
            summary::summarize(&header, &state),
            (after, latest_clock(&events)),
        ))
    }

    /// The slow path of [`StoreReplica::merge_into_held`]: keep the peer's changes that pass the
    /// checks, quarantine the rest.
    fn merge_screened(
        &mut self,
        peer: &str,
        case: &str,
        bytes: &[u8],
        whole: bool,
    ) -> Result<Applied, ReplicaError> {
        let actor = self.actor.clone();
        let policies = self.policies.get();
        let mut refused = Vec::new();
        let outcome = self
            .store()
            .update_case_unflushed(case, |document: &mut CaseDocument| {
                let mut incoming = document.fork(&actor);
                apply_bytes(&mut incoming, bytes, whole, &actor)?;
                let screened = receipt::screen(
                    case,
                    Some(document),
                    &mut incoming,
                    &actor,
                    &*self.roster,
                    &policies,
                )
                .map_err(refusal)?;
                refused = refused_changes(screened.refused);
                if screened.kept.is_empty() {
                    return Err(ApplyRefusal::Unchanged(document.head_hashes()));
                }
                document
                    .automerge()
                    .apply_changes(screened.kept)
                    .map_err(|error| ApplyRefusal::Rejected(error.to_string()))?;
                let (header, events) = document.contents().map_err(refusal)?;
                let state = derive_registered(&policies, &header, &events)
                    .map_err(|error| ApplyRefusal::Rejected(error.to_string()))?;
                Ok((
                    summary::summarize(&header, &state),
                    (document.head_hashes(), latest_clock(&events)),
                ))
            })
            .map_err(|error| rejected_or_storage(case, error))?;
        let (quarantined, deferred) = self.quarantine(peer, case, refused)?;
        let outcome = outcome.map(|(merged, _feed_seq)| merged);
        self.merged(case, outcome, quarantined, deferred)
    }

    /// What a merge into a held case comes to, for the session.
    /// Take a received case's latest hybrid time into the node's clock; one too far ahead is
    /// not taken in, and the case keeps a note of it for a person (`ReceivedAheadNote`).
    fn observe_received_clock(
        &self,
        case: &str,
        received: HybridTimestamp,
    ) -> Result<(), ReplicaError> {
        let Some(ahead_ms) = self.handle.observe_clock(received) else {
            return Ok(());
        };
        let note = fengqiao_case::model::ReceivedAheadNote {
            version: fengqiao_case::model::ReceivedAheadNote::VERSION,
            received_at: crate::wall_clock::now(),
            ahead_ms,
        };
        let value = serde_json::to_vec(&note)
            .map_err(|error| ReplicaError::Storage(format!("cannot encode a note: {error}")))?;
        // Unflushed: a note, made durable with the case's own writes.
        self.store()
            .meta_put_unflushed(
                &fengqiao_case::model::ReceivedAheadNote::meta_key(case),
                &value,
            )
            .map_err(|error| ReplicaError::Storage(error.to_string()))?;
        Ok(())
    }

    fn merged(
        &self,
        case: &str,
        outcome: Result<MergedHeads, ApplyRefusal>,
        quarantined: Vec<String>,
        deferred: bool,
    ) -> Result<Applied, ReplicaError> {
        let rejected = |message: String| ReplicaError::Rejected {
            case: case.to_owned(),
            message,
        };
        match outcome {
            Ok((heads, clock)) => {
                self.observe_received_clock(case, clock)?;
                Ok(Applied {
                    heads,
                    created: false,
                    changed: true,
                    quarantined,
                    deferred,
                })
            }
            Err(ApplyRefusal::Unchanged(heads)) => Ok(Applied {
                heads,
                created: false,
                changed: false,
                quarantined,
                deferred,
            }),
            Err(ApplyRefusal::FailedChecks) | Err(ApplyRefusal::Rejected(_))
                if !quarantined.is_empty() =>
            {
                Err(rejected(quarantined.join("; ")))
            }
            Err(ApplyRefusal::FailedChecks) => Err(rejected(
                "the peer's changes failed the checks on receipt".to_owned(),
            )),
            Err(ApplyRefusal::Rejected(message)) => Err(rejected(message)),
        }
    }

    /// Record refused changes in the store's quarantine log and the node's log, except those that
    /// may pass later, which the session asks for again. Returns the quarantined changes'
    /// reasons, and whether any was deferred.
    fn quarantine(
        &self,
        peer: &str,
        case: &str,
        refused: Vec<RefusedChange>,
    ) -> Result<(Vec<String>, bool), ReplicaError> {
        let (deferred, refused): (Vec<RefusedChange>, Vec<RefusedChange>) = refused
            .into_iter()
            .partition(|change| change.may_pass_later);
        for change in &deferred {
            tracing::info!(
                %peer,
                %case,
                change = %change.hash,
                reason = %change.reason,
                "change from a peer deferred until the roster knows its maker"
            );
        }
        for change in &refused {
            let record = QuarantineRecord {
                format_version: QUARANTINE_RECORD_VERSION,
                received_at: crate::wall_clock::now(),
                peer: peer.to_owned(),
                case: case.to_owned(),
                change_hash: change.hash.clone(),
                reason: change.reason.clone(),
                change: change.bytes.clone(),
            };
            let encoded = encode_quarantine_record(&record)?;
            // The same change comes again whenever the peer re-sends from heads without it (a
            // reconnect, or a later change built on them); the log keeps its first arrival.
            let key = QuarantineKey {
                peer,
                case,
                change_hash: &change.hash,
            };
            let recorded = self
                .store()
                .quarantine_unflushed(&key, &encoded)
                .map_err(storage)?;
            match recorded {
                Some(_) => tracing::warn!(
                    %peer,
                    %case,
                    change = %change.hash,
                    reason = %change.reason,
                    "change from a peer quarantined"
                ),
                None => tracing::debug!(
                    %peer,
                    %case,
                    change = %change.hash,
                    "change from a peer refused again; it is in the quarantine log already"
                ),
            }
        }
        Ok((
            refused.into_iter().map(|change| change.reason).collect(),
            !deferred.is_empty(),
        ))
    }
}

/// A refused change as the replica records it.
struct RefusedChange {
    hash: String,
    bytes: Vec<u8>,
    reason: String,
    may_pass_later: bool,
}

fn refused_changes(refused: Vec<receipt::RefusedChange>) -> Vec<RefusedChange> {
    refused
        .into_iter()
        .map(|refused| RefusedChange {
            hash: refused.change.hash().to_string(),
            bytes: refused.change.raw_bytes().to_vec(),
            reason: refused.reason,
            may_pass_later: refused.may_pass_later,
        })
        .collect()
}

fn describe_rejections(rejections: &[fengqiao_case::receipt::Rejection]) -> String {
    rejections
        .iter()
        .map(|rejection| rejection.error.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The latest hybrid time among `events`, for the node's clock to move past.
fn latest_clock(events: &[fengqiao_case::Event]) -> HybridTimestamp {
    events
        .iter()
        .map(|event| event.hlc)
        .max()
        .unwrap_or(HybridTimestamp::ZERO)
}

/// Apply a peer's bytes (a whole saved document, or changes) to `document` in place.
fn apply_bytes(
    document: &mut CaseDocument,
    bytes: &[u8],
    whole: bool,
    actor: &[u8],
) -> Result<(), ApplyRefusal> {
    if whole {
        let mut incoming = CaseDocument::load(bytes, &[], actor).map_err(refusal)?;
        document.merge(&mut incoming).map_err(refusal)
    } else {
        document
            .automerge()
            .load_incremental(bytes)
            .map(|_| ())
            .map_err(|error| ApplyRefusal::Rejected(format!("changes cannot be decoded: {error}")))
    }
}

fn refusal(error: fengqiao_case::DocumentError) -> ApplyRefusal {
    ApplyRefusal::Rejected(error.to_string())
}

/// A quarantine record as stored: JSON, so that an operator's tools read it as they read the API.
pub fn encode_quarantine_record(record: &QuarantineRecord) -> Result<Vec<u8>, ReplicaError> {
    serde_json::to_vec(record).map_err(|error| {
        ReplicaError::Storage(format!("cannot encode a quarantine record: {error}"))
    })
}

pub fn decode_quarantine_record(bytes: &[u8]) -> Result<QuarantineRecord, String> {
    serde_json::from_slice(bytes).map_err(|error| format!("unreadable quarantine record: {error}"))
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
        self.write_staged()?;
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
        self.write_staged()?;
        self.store().feed_head().map_err(storage)
    }

    fn heads(&mut self, case: &str) -> Result<Option<Vec<ChangeHead>>, ReplicaError> {
        self.write_staged_if_holds(case)?;
        self.store().heads(case).map_err(storage)
    }

    fn changes_since(&mut self, case: &str, heads: &[ChangeHead]) -> Result<Vec<u8>, ReplicaError> {
        self.write_staged_if_holds(case)?;
        self.store()
            .with_case(case, |document| document.changes_since(heads))
            .map_err(storage)?
            .ok_or_else(|| ReplicaError::Storage(format!("case {case} is not held here")))
    }

    fn save(&mut self, case: &str) -> Result<Vec<u8>, ReplicaError> {
        self.write_staged_if_holds(case)?;
        // The stored bytes as they are: loading and encoding the document again would cost more
        // than everything else a whole send does.
        self.store()
            .saved_form(case)
            .map_err(storage)?
            .ok_or_else(|| ReplicaError::Storage(format!("case {case} is not held here")))
    }

    fn apply(
        &mut self,
        peer: &str,
        case: &str,
        bytes: &[u8],
        whole: bool,
        admit_new_case: &dyn Fn(&CaseRouting) -> Result<(), String>,
    ) -> Result<Applied, ReplicaError> {
        self.write_staged_if_holds(case)?;
        let held = self.store().contains(case).map_err(storage)?;
        let prepared = Arc::clone(&self.prepared);
        let (prepared, _applying) = prepared.take(case, bytes);
        if !held {
            if !whole {
                return Err(ReplicaError::Rejected {
                    case: case.to_owned(),
                    message: "changes for a case not held here".to_owned(),
                });
            }
            let prepared = match prepared {
                // "Its maker is not known yet" was judged against the roster of when the case
                // was prepared, ahead of the session. The roster may have learned the maker
                // since, and told the session so while nothing was deferred yet: the session
                // would then never ask again. Only a check against today's roster defers.
                Some(Prepared::New(loaded))
                    if !matches!(*loaded, Err(WholeRefusal::Deferred(_))) =>
                {
                    Some(*loaded)
                }
                _ => None,
            };
            return self.create(peer, case, bytes, prepared, admit_new_case);
        }
        if let Some(Prepared::Merge(Some(merge))) = prepared {
            // Taken only if nobody wrote the case since; the commit checks that again.
            let position = self.store().feed_position(case).map_err(storage)?;
            if position == Some(merge.update.based_on()) {
                self.staged.updates.push(StagedMerge {
                    peer: peer.to_owned(),
                    bytes: bytes.to_vec(),
                    whole,
                    update: merge.update,
                });
                return self.merged(
                    case,
                    Ok((merge.heads, merge.latest_clock)),
                    Vec::new(),
                    false,
                );
            }
        }
        self.merge_into_held(peer, case, bytes, whole, Staging::Stage)
    }

    fn make_durable(&mut self) -> Result<(), ReplicaError> {
        self.write_staged()?;
        self.store().flush().map_err(storage)
    }

    fn has_heads(&mut self, case: &str, heads: &[ChangeHead]) -> Result<bool, ReplicaError> {
        self.write_staged_if_holds(case)?;
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

    fn history_of_contains(
        &mut self,
        case: &str,
        tips: &[ChangeHead],
        heads: &[ChangeHead],
    ) -> Result<bool, ReplicaError> {
        if heads.iter().all(|head| tips.contains(head)) {
            return Ok(true);
        }
        self.write_staged_if_holds(case)?;
        Ok(self
            .store()
            .with_case(case, |document| document.history_of_contains(tips, heads))
            .map_err(storage)?
            .unwrap_or(false))
    }

    fn routing(&mut self, case: &str) -> Result<Option<CaseRouting>, ReplicaError> {
        self.write_staged_if_holds(case)?;
        // A case routed is usually sent next, which reads its document anyway.
        self.stored_routing(case, DocumentCaching::Cached)
    }

    fn roster(&self) -> &dyn SubtreeRoster {
        &*self.roster
    }

    fn peer_cursor(&mut self, peer: &str) -> Result<FeedSequence, ReplicaError> {
        self.write_staged()?;
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
        self.write_staged()?;
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
        if self.staged.meta.iter().any(|(staged, _)| *staged == key) {
            self.write_staged()?;
        }
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
        let key = peer_heads_key(peer, case);
        if !self.staged.cases.is_empty() || !self.staged.updates.is_empty() {
            // Written with what is staged, after it, as it would have been without staging.
            self.staged.meta.retain(|(staged, _)| *staged != key);
            self.staged.meta.push((key, value));
            return Ok(());
        }
        self.store()
            .meta_put_unflushed(&key, &value)
            .map_err(storage)
    }

    fn record_refusal_by_peer(
        &mut self,
        peer: &PeerDescription,
        case: &str,
        reasons: &[String],
    ) -> Result<(), ReplicaError> {
        let record = fengqiao_sync::replica::peer_refusal(peer, case, reasons);
        let value = serde_json::to_vec(&record)
            .map_err(|error| ReplicaError::Storage(format!("cannot encode a refusal: {error}")))?;
        self.store()
            .meta_put_unflushed(&PeerRefusal::meta_key(case, &peer.node_id), &value)
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

    /// A federation in which every node is an office everywhere: these tests are about storing
    /// what arrives, not about who may send it.
    struct EveryoneIsAnOffice;

    impl SubtreeRoster for EveryoneIsAnOffice {
        fn is_in_subtree(&self, subtree_root: &str, node: &str) -> bool {
            subtree_root == node
        }
    }

    impl Hierarchy for EveryoneIsAnOffice {
        fn is_strict_ancestor(&self, _ancestor: &str, _node: &str) -> bool {
            false
        }

        fn region_of(&self, _node: &str) -> Option<String> {
            Some(String::new())
        }
    }

    fn replica_at(path: &std::path::Path) -> StoreReplica {
        let store = Store::open(path, StoreOptions::new(8, OWN_ACTOR.to_vec())).unwrap();
        let roster: SharedRoster = Arc::new(EveryoneIsAnOffice);
        StoreReplica::new(Arc::new(store), &OWN_ACTOR, Arc::default(), roster)
    }

    fn peer_key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[5; 32])
    }

    /// An event of `CASE` made and signed by the peer.
    fn event(id: &str, kind: EventKind) -> Event {
        event_of(CASE, id, kind)
    }

    /// An event of `case` made and signed by the peer.
    fn event_of(case: &str, id: &str, kind: EventKind) -> Event {
        let mut event = Event {
            id: id.to_owned(),
            kind,
            at: Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap(),
            node: fengqiao_case::signature::node_id_for_public_key(
                &fengqiao_case::signature::NodeSigner::public_key(&peer_key()),
            ),
            operator: "王五".to_owned(),
            prev: None,
            hlc: Default::default(),
            signature: None,
            imported: None,
            backdated_reason: None,
        };
        fengqiao_case::signature::sign_event(case, &mut event, &peer_key()).unwrap();
        event
    }

    /// The case as the peer holds it, written with the peer's actor.
    fn peer_document() -> CaseDocument {
        peer_document_of(CASE)
    }

    /// Case `case` as the peer holds it.
    fn peer_document_of(case: &str) -> CaseDocument {
        let header = CaseHeader {
            number: case.to_owned(),
            channel: Channel::Visit,
            petitioners: vec![Petitioner {
                name: "张三".to_owned(),
                id_number: "430702199001010000".to_owned(),
                id_type: Default::default(),
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
            &event_of(
                case,
                "register",
                EventKind::Register {
                    header: Some(Box::new(header.clone())),
                    policy_version: 0,
                },
            ),
            &PEER_ACTOR,
        )
        .unwrap()
    }

    /// A roster that learns the peer's office only when told, as a real one learns an entry
    /// that travels on the roster stream, apart from the cases.
    #[derive(Default)]
    struct LearningRoster {
        knows_the_peer: std::sync::atomic::AtomicBool,
    }

    impl SubtreeRoster for LearningRoster {
        fn is_in_subtree(&self, subtree_root: &str, node: &str) -> bool {
            subtree_root == node
        }
    }

    impl Hierarchy for LearningRoster {
        fn is_strict_ancestor(&self, _ancestor: &str, _node: &str) -> bool {
            false
        }

        fn region_of(&self, _node: &str) -> Option<String> {
            self.knows_the_peer
                .load(std::sync::atomic::Ordering::SeqCst)
                .then(String::new)
        }
    }

    /// Regression (a federation test stalled on a loaded CI machine): a new case prepared while
    /// the roster did not know its maker was deferred on that old verdict after the roster had
    /// learned the maker, and the session, told of the roster change before it had anything
    /// deferred, never asked for the case again.
    #[test]
    fn a_case_prepared_before_the_roster_knew_its_maker_is_judged_again_when_applied() {
        let directory = tempfile::tempdir().unwrap();
        let store =
            Store::open(directory.path(), StoreOptions::new(8, OWN_ACTOR.to_vec())).unwrap();
        let roster = Arc::new(LearningRoster::default());
        let shared: SharedRoster = roster.clone();
        let mut replica = StoreReplica::new(Arc::new(store), &OWN_ACTOR, Arc::default(), shared);
        let admit = |_: &CaseRouting| Ok(());
        let saved = peer_document().save();
        replica.prepare(
            vec![received(CASE, &saved, true)],
            &mut SignerKeys::default(),
        );
        assert_eq!(replica.prepared.len(), 1);
        roster
            .knows_the_peer
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let applied = replica.apply("peer", CASE, &saved, true, &admit).unwrap();
        assert!(applied.created && applied.changed, "{applied:?}");
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
        replica.prepare(
            vec![received(CASE, &damaged, true)],
            &mut SignerKeys::default(),
        );
        let created = replica.apply("peer", CASE, &saved, true, &admit).unwrap();
        assert!(created.created && created.changed);
        assert!(replica.prepared.len() == 0);
        replica.make_durable().unwrap();

        // Prepared from the very bytes applied: the same outcome as without.
        let other_directory = tempfile::tempdir().unwrap();
        let mut other = replica_at(other_directory.path());
        other.prepare(
            vec![received(CASE, &saved, true)],
            &mut SignerKeys::default(),
        );
        assert_eq!(other.prepared.len(), 1);
        let prepared = other.apply("peer", CASE, &saved, true, &admit).unwrap();
        assert_eq!(prepared, created);
        assert!(other.prepared.len() == 0);
        other.make_durable().unwrap();
        assert_eq!(
            other.store().summary(CASE).unwrap(),
            replica.store().summary(CASE).unwrap()
        );
        // A case held already is prepared as well (claiming reads no store), but its result
        // goes unused: the apply merges into the held case, which the same bytes leave as it
        // was, and the slot is taken, not left behind.
        other.prepare(
            vec![received(CASE, &saved, true)],
            &mut SignerKeys::default(),
        );
        assert_eq!(other.prepared.len(), 1);
        let again = other.apply("peer", CASE, &saved, true, &admit).unwrap();
        assert!(!again.created && !again.changed, "{again:?}");
        assert!(other.prepared.len() == 0);
        other.make_durable().unwrap();
        assert_eq!(
            other.store().summary(CASE).unwrap(),
            replica.store().summary(CASE).unwrap()
        );

        // A refusal still comes from the apply, whoever loaded the document.
        let third_directory = tempfile::tempdir().unwrap();
        let mut third = replica_at(third_directory.path());
        third.prepare(
            vec![received(CASE, &saved, true)],
            &mut SignerKeys::default(),
        );
        let refuse = |_: &CaseRouting| Err("not from this peer".to_owned());
        assert!(matches!(
            third.apply("peer", CASE, &saved, true, &refuse),
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
            let created = replica.apply("peer", CASE, &saved, true, &admit).unwrap();
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
            let merged = replica
                .apply("peer", CASE, &changes, false, &admit)
                .unwrap();
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

    #[test]
    fn cases_received_in_one_batch_are_written_together_with_their_peer_heads() {
        let directory = tempfile::tempdir().unwrap();
        let mut replica = replica_at(directory.path());
        let admit = |_: &CaseRouting| Ok(());
        let other_case = "430702001001-2026-000002";
        let feed_before = replica.store().feed_head().unwrap();
        let mut applied = Vec::new();
        for case in [CASE, other_case] {
            let created = replica
                .apply("peer", case, &peer_document_of(case).save(), true, &admit)
                .unwrap();
            assert!(created.created && created.changed);
            replica
                .set_peer_heads("peer", case, &created.heads)
                .unwrap();
            applied.push(created.heads);
        }
        // Whatever this replica is asked next sees the cases.
        assert_eq!(
            replica.heads(other_case).unwrap().as_ref(),
            Some(&applied[1])
        );
        replica.make_durable().unwrap();

        assert_eq!(replica.store().feed_head().unwrap(), feed_before + 2);
        let reopened_directory = directory.path().to_owned();
        drop(replica);
        let mut reopened = replica_at(&reopened_directory);
        for (case, heads) in [CASE, other_case].into_iter().zip(&applied) {
            assert_eq!(reopened.heads(case).unwrap().as_ref(), Some(heads));
            assert_eq!(
                reopened.peer_heads("peer", case).unwrap().as_ref(),
                Some(heads)
            );
        }
    }

    #[test]
    fn a_case_another_session_wrote_first_takes_in_what_this_one_received() {
        let directory = tempfile::tempdir().unwrap();
        let mut replica = replica_at(directory.path());
        let mut other_session = replica.clone();
        let admit = |_: &CaseRouting| Ok(());
        let mut plain = peer_document();
        let mut with_note = plain.fork(&PEER_ACTOR);
        with_note
            .push_event(&event(
                "note-1",
                EventKind::Note {
                    text: "第一次调解".to_owned(),
                },
            ))
            .unwrap();

        replica
            .apply("peer", CASE, &with_note.save(), true, &admit)
            .unwrap();
        // The other session receives the case from its own peer and writes it first.
        other_session
            .apply("other peer", CASE, &plain.save(), true, &admit)
            .unwrap();
        other_session.make_durable().unwrap();
        replica.make_durable().unwrap();

        let events = replica
            .store()
            .with_case(CASE, |document| document.events().unwrap().len())
            .unwrap();
        assert_eq!(events, Some(2));
        assert_eq!(replica.store().case_count(), 1);
    }

    fn received(case: &str, bytes: &[u8], whole: bool) -> ReceivedChanges {
        ReceivedChanges {
            case: case.to_owned(),
            bytes: bytes.to_vec(),
            whole,
        }
    }

    /// A note added to a branch of the peer's copy, as one of its users (`actor`) made it: the
    /// change bytes.
    fn noted(source: &mut CaseDocument, id: &str, actor: [u8; 16]) -> Vec<u8> {
        let mut branch = source.fork(&actor);
        branch
            .push_event(&event(
                id,
                EventKind::Note {
                    text: "电话回访".to_owned(),
                },
            ))
            .unwrap();
        branch.save_incremental()
    }

    fn event_ids(replica: &StoreReplica) -> Vec<String> {
        let mut ids = replica
            .store()
            .with_case(CASE, |document| {
                document
                    .events()
                    .unwrap()
                    .into_iter()
                    .map(|event| event.id)
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .unwrap();
        ids.sort();
        ids
    }

    #[test]
    fn changes_merged_ahead_are_taken_only_while_their_case_is_unchanged() {
        let directory = tempfile::tempdir().unwrap();
        let mut replica = replica_at(directory.path());
        let mut other_session = replica.clone();
        let admit = |_: &CaseRouting| Ok(());
        let mut source = peer_document();
        let first = noted(&mut source, "note-1", [3; 16]);
        let second = noted(&mut source, "note-2", [4; 16]);
        let third = noted(&mut source, "note-3", [5; 16]);

        // Changes to a case not held here are not prepared.
        replica.prepare(
            vec![received(CASE, &first, false)],
            &mut SignerKeys::default(),
        );
        assert_eq!(replica.prepared.len(), 0);
        replica
            .apply("peer", CASE, &source.save(), true, &admit)
            .unwrap();
        replica.make_durable().unwrap();

        // Merged ahead into a copy: the held case is untouched until the session applies it.
        replica.prepare(
            vec![received(CASE, &first, false)],
            &mut SignerKeys::default(),
        );
        assert_eq!(replica.prepared.len(), 1);
        let merged_ahead = |replica: &StoreReplica| {
            replica.prepared.look_at_ready(CASE, |prepared| {
                matches!(prepared, Prepared::Merge(Some(_)))
            })
        };
        assert_eq!(merged_ahead(&replica), Some(true));
        assert_eq!(event_ids(&replica), vec!["register"]);
        let applied = replica.apply("peer", CASE, &first, false, &admit).unwrap();
        assert!(applied.changed && !applied.created);
        assert_eq!(replica.prepared.len(), 0);
        replica.make_durable().unwrap();
        assert_eq!(event_ids(&replica), vec!["note-1", "register"]);
        assert_eq!(replica.heads(CASE).unwrap(), Some(applied.heads.clone()));
        assert_eq!(
            replica.store().summary(CASE).unwrap().unwrap().event_count,
            2
        );

        // Merged ahead, then another session writes the case: the merge is done again on the
        // case as it is now, and nothing either session took in is lost.
        replica.prepare(
            vec![received(CASE, &second, false)],
            &mut SignerKeys::default(),
        );
        assert_eq!(merged_ahead(&replica), Some(true));
        other_session
            .apply("other peer", CASE, &third, false, &admit)
            .unwrap();
        other_session.make_durable().unwrap();
        replica.apply("peer", CASE, &second, false, &admit).unwrap();
        replica.make_durable().unwrap();
        assert_eq!(
            event_ids(&replica),
            vec!["note-1", "note-2", "note-3", "register"]
        );
        assert_eq!(
            replica.store().summary(CASE).unwrap().unwrap().event_count,
            4
        );
    }

    #[test]
    fn changes_staged_while_another_session_writes_the_case_are_applied_again() {
        let directory = tempfile::tempdir().unwrap();
        let mut replica = replica_at(directory.path());
        let mut other_session = replica.clone();
        let admit = |_: &CaseRouting| Ok(());
        let mut source = peer_document();
        replica
            .apply("peer", CASE, &source.save(), true, &admit)
            .unwrap();
        replica.make_durable().unwrap();

        let first = noted(&mut source, "note-1", [3; 16]);
        let second = noted(&mut source, "note-2", [4; 16]);
        let staged = replica.apply("peer", CASE, &first, false, &admit).unwrap();
        assert!(staged.changed);
        replica.set_peer_heads("peer", CASE, &staged.heads).unwrap();
        // Another session writes the case before this one's batch is written.
        other_session
            .apply("other peer", CASE, &second, false, &admit)
            .unwrap();
        other_session.make_durable().unwrap();
        replica.make_durable().unwrap();

        assert_eq!(event_ids(&replica), vec!["note-1", "note-2", "register"]);
        assert_eq!(
            replica.peer_heads("peer", CASE).unwrap().as_ref(),
            Some(&staged.heads)
        );
    }

    /// The store's pipeline and the one function every replica takes peers' bytes through keep
    /// the same of them: the honest change, not the forged one beside it, for a case new here
    /// received whole and for changes to a held case.
    #[test]
    fn the_store_keeps_what_receipt_keep_received_keeps() {
        let admit = |_: &CaseRouting| Ok(());
        let mut source = peer_document();
        let mut forged = event(
            "forged",
            EventKind::Note {
                text: "当事人已撤回".to_owned(),
            },
        );
        let other_key = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
        fengqiao_case::signature::sign_event(CASE, &mut forged, &other_key).unwrap();
        let mut bad = source.fork(&[3; 16]);
        bad.push_event(&forged).unwrap();
        let mut honest = source.fork(&[4; 16]);
        honest
            .push_event(&event(
                "honest",
                EventKind::Note {
                    text: "电话回访".to_owned(),
                },
            ))
            .unwrap();
        let mut peer_copy = source.fork(&PEER_ACTOR);
        peer_copy.merge(&mut bad).unwrap();
        peer_copy.merge(&mut honest).unwrap();
        let keep = |held: Option<&mut CaseDocument>, bytes: receipt::PeerBytes<'_>| {
            receipt::keep_received(
                CASE,
                held,
                bytes,
                &OWN_ACTOR,
                &EveryoneIsAnOffice,
                &fengqiao_case::policy::PolicyBook::default(),
            )
            .unwrap()
        };
        let reasons = |kept: &receipt::Kept| -> Vec<String> {
            kept.refused
                .iter()
                .map(|change| change.reason.clone())
                .collect()
        };

        let whole = peer_copy.save();
        let mut expected = keep(None, receipt::PeerBytes::Whole(&whole));
        let directory = tempfile::tempdir().unwrap();
        let mut replica = replica_at(directory.path());
        let applied = replica.apply("peer", CASE, &whole, true, &admit).unwrap();
        replica.make_durable().unwrap();
        assert_eq!(applied.heads, expected.document.head_hashes());
        assert_eq!(applied.quarantined, reasons(&expected));
        assert_eq!(applied.quarantined.len(), 1);
        assert_eq!(event_ids(&replica), vec!["honest", "register"]);

        let changes = peer_copy.changes_since(&source.head_hashes());
        let mut held = CaseDocument::load(&source.save(), &[], &OWN_ACTOR).unwrap();
        let mut expected = keep(Some(&mut held), receipt::PeerBytes::Changes(&changes));
        let directory = tempfile::tempdir().unwrap();
        let mut replica = replica_at(directory.path());
        replica
            .apply("peer", CASE, &source.save(), true, &admit)
            .unwrap();
        let applied = replica
            .apply("peer", CASE, &changes, false, &admit)
            .unwrap();
        replica.make_durable().unwrap();
        assert_eq!(applied.heads, expected.document.head_hashes());
        assert_eq!(applied.quarantined, reasons(&expected));
        assert_eq!(applied.quarantined.len(), 1);
        assert_eq!(event_ids(&replica), vec!["honest", "register"]);
    }
}
