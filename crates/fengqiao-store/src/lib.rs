//! A node's durable store. All sled access in the project goes through this crate.
//!
//! sled 0.34 has public reports of corruption after an abrupt stop (sled issue #1533), so sled is
//! kept behind this one small API: if it has to be replaced, nothing else changes.
//!
//! Every write commits in one sled transaction across all the trees it touches and is flushed to
//! disk before the call returns. Per-case locks serialize updates of one case; the flush happens
//! after they are released, so writers that commit together share one disk sync. A caller that
//! writes many cases and reports them stored only afterwards may commit them with the
//! `_unflushed` variants ([`Store::create_received_cases_unflushed`],
//! [`Store::update_case_unflushed`]) and make them durable together with one [`Store::flush`]
//! (the federation acknowledges a batch of received cases that way).
//!
//! The one exception is advisory bookkeeping (the federation's per-peer cursors and heads), which
//! may be written without a flush ([`Store::meta_put_unflushed`]) or together with a case write
//! ([`Store::update_case_with_meta`], [`Store::create_cases_with_meta`]): it is visible at once and
//! durable with the next flush of any write; a crash may lose only the latest of it.
//!
//! Every write is refused (`StoreError::DiskFull`, nothing written) while the disk holding the
//! store has less free space than [`StoreOptions::min_free_bytes`]: sled does not survive a full
//! disk, and a node that stops writing in time keeps serving reads and writes again as soon as
//! space returns. Reads of personal data made meanwhile are recorded in memory and written to the
//! access log then ([`Store::log_access`]).
//!
//! The on-disk layout is described in the `storage` and `codec` modules.

mod accounts;
mod cache;
mod codec;
mod free_space;
mod index;
mod ledger_rows;
mod petitioner_names;
mod snapshot;
mod storage;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fengqiao_case::{CaseDocument, CaseId, CaseSummary, Category, DocumentError, Status};

use crate::cache::{CaseLocks, DocumentCache, DocumentHandle, lock_ignoring_poison};
use crate::codec::CaseRecord;
pub use crate::index::SummaryPage;
pub use crate::ledger_rows::LedgerRowsStep;
pub use crate::snapshot::{Snapshot, SnapshotCounts, SnapshotEntry, StoreRestore};
pub use crate::storage::QuarantineKey;
use crate::storage::{
    DocumentWrite, Log, PreparedCase, PreparedUpdate, Storage, SummaryRewrite, prepare_meta,
    should_compact,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("the store at {path} is in use by another process (its lock is held)")]
    Locked { path: String },
    #[error("stored record {what} is corrupt: {why}")]
    Corrupt { what: String, why: String },
    #[error("case {0} already exists")]
    AlreadyExists(CaseId),
    #[error("account {0} already exists")]
    AccountExists(String),
    #[error("no case {0}")]
    NotFound(CaseId),
    #[error(transparent)]
    Document(#[from] fengqiao_case::DocumentError),
    #[error("store format version {found} is not supported, this build reads {supported}")]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("invalid case number {number:?}: {why}")]
    InvalidCaseNumber { number: String, why: String },
    #[error("update of case {expected} returned the summary of case {found}")]
    SummaryMismatch { expected: CaseId, found: CaseId },
    #[error("case {0} was changed by another writer after this update was computed")]
    ChangedMeanwhile(CaseId),
    #[error("a snapshot (backup) of this store is already being taken; try again when it is done")]
    SnapshotRunning,
    #[error("{path} already holds a store: a restore writes only into a new one")]
    NotEmpty { path: String },
    /// Nothing was written: the disk is below the reserve ([`StoreOptions::min_free_bytes`]).
    #[error(
        "not enough free space on the disk holding {path}: {} left, and the store keeps {} in \
         reserve; writes are refused until space is freed on that disk",
        free_space::human_bytes(*.available),
        free_space::human_bytes(*.reserve)
    )]
    DiskFull {
        path: String,
        available: u64,
        reserve: u64,
    },
}

/// Position in this node's change feed: strictly increasing, one per document update.
pub type FeedSeq = u64;

/// Incremental chunks a case may collect before its saved document is rewritten.
pub const DEFAULT_COMPACT_AFTER_CHUNKS: u32 = 16;

/// Free space a store keeps on its disk unless told otherwise: room for sled to finish what it
/// has started and for a person to log in and clean up.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;

/// sled's page cache defaults to 1 GiB; a node must stay small. At 64 MiB a county's index tree
/// (about a million keys at 100,000 cases) did not stay in it, so every 台账 search read its part
/// of the index from disk again (2–3x slower); at 256 MiB it stays, for about 190 MiB more
/// resident memory at 100,000 cases (BENCHMARKS.md). A small office's store never fills it.
pub const DEFAULT_PAGE_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Access log records kept in memory while the disk is below the reserve (a few hundred bytes
/// each); reads beyond them are counted, and the count is logged when space returns.
const MAX_HELD_ACCESS_RECORDS: usize = 4096;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Loaded documents kept in memory (each ~25 KiB live).
    pub cache_capacity: usize,
    /// The automerge actor id this node writes with.
    pub actor: Vec<u8>,
    /// Rewrite a case's saved document once it has more incremental chunks than this (it is
    /// also rewritten when its chunks outweigh the saved document).
    pub compact_after_chunks: u32,
    /// Writes are refused while the disk holding the store has less free than this (0: never).
    pub min_free_bytes: u64,
    /// The most sled keeps of the store's pages in memory ([`DEFAULT_PAGE_CACHE_BYTES`]).
    pub page_cache_bytes: u64,
}

impl StoreOptions {
    pub fn new(cache_capacity: usize, actor: Vec<u8>) -> StoreOptions {
        StoreOptions {
            cache_capacity,
            actor,
            compact_after_chunks: DEFAULT_COMPACT_AFTER_CHUNKS,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            page_cache_bytes: DEFAULT_PAGE_CACHE_BYTES,
        }
    }
}

/// Reads of personal data not yet in the access log because the disk was below the reserve.
#[derive(Debug, Default)]
struct HeldAccessRecords {
    records: Vec<Vec<u8>>,
    /// Reads not kept because `records` was full.
    dropped: u64,
}

/// Told of every summary the store commits, whoever writes it (a local edit, an import batch, a
/// case received from a peer), right after the commit and before the write returns. Called once
/// per case written, never for a refused update. It runs while the store holds the order of
/// commits (see [`Store::set_summary_observer`]), so it must be quick and must not write to the
/// store.
pub type SummaryObserver = Arc<dyn Fn(&CaseSummary) + Send + Sync>;

/// The observer, if one is set, and the lock that keeps observations in commit order.
#[derive(Default)]
struct SummaryObservation {
    observer: RwLock<Option<SummaryObserver>>,
    /// Held around each commit and its observation, so that an observer sees a case's summaries
    /// in the order they were committed even when a batch of new cases (which holds no case
    /// lock) races an update of one of them. Commits already serialize in sled on the feed head,
    /// so this costs no concurrency.
    commit_order: Mutex<()>,
    /// Told of every committed summary before the observer, under the same order.
    petitioner_names: petitioner_names::PetitionerNames,
}

impl std::fmt::Debug for SummaryObservation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let observed = self
            .observer
            .read()
            .map(|observer| observer.is_some())
            .unwrap_or(false);
        formatter
            .debug_struct("SummaryObservation")
            .field("observed", &observed)
            .finish_non_exhaustive()
    }
}

impl SummaryObservation {
    /// Runs `commit` and then tells the observer of `summaries` if it succeeded, all in commit
    /// order.
    fn commit_and_observe<T>(
        &self,
        summaries: &[&CaseSummary],
        commit: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _order = lock_ignoring_poison(&self.commit_order);
        let committed = commit()?;
        self.petitioner_names.record(summaries);
        let observer = self
            .observer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(observer) = observer {
            for summary in summaries {
                observer(summary);
            }
        }
        Ok(committed)
    }

    /// Runs `work` between commits: no commit starts or ends while it runs.
    fn in_commit_order<T>(&self, work: impl FnOnce() -> T) -> T {
        let _order = lock_ignoring_poison(&self.commit_order);
        work()
    }
}

/// Filter for listing summaries; all set fields must match.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub status: Option<Status>,
    pub holder: Option<String>,
    pub category: Option<Category>,
    /// Region code prefix (a village code, or a township's to take all its villages).
    pub region_prefix: Option<String>,
    /// Open deadline (acceptance / objection / handling / review) on or before this instant.
    pub deadline_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Earliest open deadline on or after this instant (with `deadline_before`, a warning
    /// grade's range: `fengqiao_case::warnings::grade_deadline_range`).
    pub deadline_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Registered at or after this instant.
    pub registered_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Registered before this instant (exclusive).
    pub registered_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only cases whose number contains this text, or with a petitioner whose name does (the
    /// 台账's search); names as [`CaseFilter::petitioner_name`] finds them.
    pub text: Option<String>,
    /// Only cases with directives: those with one not crossed off, or with any.
    pub directives: Option<DirectiveScope>,
    /// Only cases with a petitioner whose name contains this text (as `str::contains`). Answered
    /// from the name index only once [`Store::petitioner_names_indexed`]; before that, summaries
    /// carry no names yet and this matches none.
    pub petitioner_name: Option<String>,
    pub limit: Option<usize>,
}

/// Which cases with directives [`CaseFilter::directives`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectiveScope {
    /// A directive not yet crossed off.
    Open,
    /// Any directive, crossed off or not.
    Any,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub seq: FeedSeq,
    pub case: CaseId,
}

/// A node meta entry (key, value) written together with a case update, in the same transaction.
pub type MetaEntry = (String, Vec<u8>);

/// How a stored document is turned into a [`CaseDocument`]: [`CaseDocument::load`], or
/// [`CaseDocument::load_for_update`] on the update paths.
type DocumentLoader = fn(&[u8], &[&[u8]], &[u8]) -> Result<CaseDocument, DocumentError>;

/// An update computed by [`Store::stage_update`], written by [`Store::commit_staged_updates`].
/// Dropped unwritten, it changes nothing stored.
#[derive(Debug)]
pub struct StagedUpdate {
    number: CaseId,
    handle: DocumentHandle,
    summary: CaseSummary,
    update: PreparedUpdate,
    /// The case's feed position when the update was computed: written only if still so.
    based_on: FeedSeq,
}

impl StagedUpdate {
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The case's feed position the update was computed on.
    pub fn based_on(&self) -> FeedSeq {
        self.based_on
    }
}

/// A new case received whole from a peer, as the federation writes it: the bytes it was received
/// as, the heads of the document they hold (sorted) and its summary. It carries no document: the
/// copy the receiver loaded to check it is dropped where it was loaded, not in the writer.
#[derive(Debug)]
pub struct ReceivedCase {
    pub saved: Vec<u8>,
    pub heads: Vec<[u8; 32]>,
    pub summary: CaseSummary,
}

/// A case to write as a new document: the caller has built it with `fengqiao_case::lifecycle`.
#[derive(Debug)]
pub struct NewCase<'a> {
    pub document: &'a mut CaseDocument,
    pub summary: &'a CaseSummary,
}

#[derive(Debug)]
pub struct Store {
    storage: Storage,
    options: StoreOptions,
    cache: DocumentCache,
    case_locks: CaseLocks,
    /// Mirrors the count kept in the meta tree, because sled's `Tree::len` is a full scan.
    case_count: AtomicU64,
    summary_observation: SummaryObservation,
    held_access_records: Mutex<HeldAccessRecords>,
    account_trees: accounts::AccountTrees,
    /// The snapshot (backup) being taken, if any: commits keep what it has not yet copied.
    snapshots: snapshot::SnapshotRegistry,
    /// Whether every summary carries its petitioners' names (the name index is whole): mirrors
    /// the store's mark, which the names migration sets when it is done.
    petitioner_names_indexed: AtomicBool,
}

/// How far one step of [`Store::migrate_petitioner_names`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamesMigrationStep {
    /// Summaries read in this step.
    pub read: usize,
    /// Of those, summaries rewritten with their names.
    pub rewritten: usize,
    /// Whether every summary now carries its names.
    pub complete: bool,
}

/// How many summaries one step of the names migration reads, and commits in one transaction.
pub const NAMES_MIGRATION_BATCH: usize = 500;

/// Case numbers are keys and key components; the index layout relies on them holding no 0x00.
/// The numbers of cases to create together, each valid and none twice (a repeat is
/// `AlreadyExists`, as the store would find it), in order.
fn distinct_case_numbers<'a>(
    numbers: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeSet<String>, StoreError> {
    let mut distinct = BTreeSet::new();
    for number in numbers {
        validate_case_number(number)?;
        if !distinct.insert(number.to_owned()) {
            return Err(StoreError::AlreadyExists(number.to_owned()));
        }
    }
    Ok(distinct)
}

/// Whether `number` can key a case in the store.
pub fn validate_case_number(number: &str) -> Result<(), StoreError> {
    let invalid = |why: &str| StoreError::InvalidCaseNumber {
        number: number.to_owned(),
        why: why.to_owned(),
    };
    if number.is_empty() {
        return Err(invalid("empty"));
    }
    if number.contains('\0') {
        return Err(invalid("contains a nul character"));
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the store at `path`. Reads no documents: open time and memory do not
    /// grow with the number of cases beyond what sled itself needs to recover.
    pub fn open(path: &std::path::Path, options: StoreOptions) -> Result<Store, StoreError> {
        let storage = Storage::open(path, options.min_free_bytes, options.page_cache_bytes)?;
        let case_count = storage.read_case_count()?;
        let petitioner_names_indexed = storage.petitioner_names_complete()?;
        let account_trees = accounts::AccountTrees::open(storage.database())?;
        tracing::debug!(case_count, "store opened");
        Ok(Store {
            storage,
            cache: DocumentCache::new(options.cache_capacity),
            options,
            case_locks: CaseLocks::new(),
            case_count: AtomicU64::new(case_count),
            summary_observation: SummaryObservation::default(),
            held_access_records: Mutex::new(HeldAccessRecords::default()),
            account_trees,
            snapshots: snapshot::SnapshotRegistry::default(),
            petitioner_names_indexed: AtomicBool::new(petitioner_names_indexed),
        })
    }

    /// `Ok` while the store's disk has room beyond [`StoreOptions::min_free_bytes`]; otherwise
    /// `DiskFull`, saying how much is left: every write is refused until then. Cheap (the disk
    /// is asked at most every few hundred milliseconds while there is room), for health checks.
    pub fn check_free_space(&self) -> Result<(), StoreError> {
        self.storage.check_free_space()
    }

    /// Tell `observer` of every summary committed from now on (replacing any observer set
    /// before): by [`Store::create_cases`] and its variants,
    /// [`Store::create_received_cases_unflushed`] and every update, once per case, after the
    /// commit and in commit order. A refused update commits nothing and is not observed.
    /// Summaries already stored are not replayed: a caller that keeps state from them sets the
    /// observer first, then reads them with [`Store::for_each_summary`] and lets what it was
    /// told meanwhile win over what it read (the node's statistics do).
    pub fn set_summary_observer(&self, observer: SummaryObserver) {
        *self
            .summary_observation
            .observer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(observer);
    }

    /// Write new cases atomically (all or none) and durably; returns their feed positions.
    /// Fails with `AlreadyExists` (writing nothing) if any number is taken, also within `cases`.
    /// The cases are keyed by `summary.number`.
    pub fn create_cases(&self, cases: &mut [NewCase<'_>]) -> Result<Vec<FeedSeq>, StoreError> {
        self.create_cases_with_meta(cases, &[] as &[(&str, &[u8])])
    }

    /// [`Store::create_cases`], also writing the node meta entries `meta` (as
    /// [`Store::meta_put`] would) in the same transaction: all of it is committed and flushed,
    /// or none. With no cases, nothing is written.
    pub fn create_cases_with_meta<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        cases: &mut [NewCase<'_>],
        meta: &[(K, V)],
    ) -> Result<Vec<FeedSeq>, StoreError> {
        if cases.is_empty() {
            return Ok(Vec::new());
        }
        distinct_case_numbers(cases.iter().map(|case| case.summary.number.as_str()))?;
        let prepared = cases
            .iter_mut()
            .map(|case| {
                let saved = case.document.save();
                PreparedCase::with_heads(saved, case.document.head_hashes(), case.summary)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let summaries: Vec<&CaseSummary> = cases.iter().map(|case| case.summary).collect();
        self.create_prepared_observed(&prepared, &summaries, &prepare_meta(meta))
    }

    /// New cases received whole from a peer, and node meta entries (as [`Store::meta_put`] would
    /// write them), in one transaction: all or none, as [`Store::create_cases_with_meta`] writes
    /// them but without the flush. Committed and visible at once, durable after the next
    /// [`Store::flush`] (or the next flushed write of any kind, since sled's log is written in
    /// order): the federation makes a batch of received cases durable with one flush before it
    /// acknowledges any of them. One transaction per batch costs far less than one per case.
    ///
    /// Fails with `AlreadyExists` (writing nothing) if any number is taken, also within `cases`.
    /// On success `cases` is left empty; on failure it is left as it was, so that a caller told
    /// a case exists can take that one out and write the rest.
    ///
    /// Nothing enters the document cache: a receiver takes in cases far faster than anyone
    /// reads them, so caching each would only push out the cases people work on, and free an
    /// evicted document per case on the writer's thread. Read later, such a case is loaded from
    /// disk.
    pub fn create_received_cases_unflushed<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        cases: &mut Vec<ReceivedCase>,
        meta: &[(K, V)],
    ) -> Result<Vec<FeedSeq>, StoreError> {
        distinct_case_numbers(cases.iter().map(|case| case.summary.number.as_str()))?;
        let prepared = cases
            .iter()
            .map(|case| {
                PreparedCase::with_heads(case.saved.clone(), case.heads.clone(), &case.summary)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let summaries: Vec<&CaseSummary> = cases.iter().map(|case| &case.summary).collect();
        // No case lock: nothing is cached, so there is no cached copy to keep equal to the disk,
        // and a writer of the same number meanwhile makes this transaction fail as taken.
        let feed_positions = self.commit_new_cases(&prepared, &summaries, &prepare_meta(meta))?;
        cases.clear();
        Ok(feed_positions)
    }

    /// Makes every write committed so far durable, including those of the `_unflushed` methods.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush_written()
    }

    /// The flush after a write: it also writes the access records held while the disk was
    /// below the reserve, now that a write got through, so they are not kept in memory longer
    /// than needed.
    fn flush_written(&self) -> Result<(), StoreError> {
        self.write_held_access_records()?;
        self.storage.flush()
    }

    /// Tests write raw prepared cases, which carry no summary to observe.
    #[cfg(test)]
    fn create_prepared(
        &self,
        prepared: &[PreparedCase],
        meta: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<FeedSeq>, StoreError> {
        self.create_prepared_observed(prepared, &[], meta)
    }

    fn create_prepared_observed(
        &self,
        prepared: &[PreparedCase],
        summaries: &[&CaseSummary],
        meta: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<FeedSeq>, StoreError> {
        let feed_positions = self.commit_new_cases(prepared, summaries, meta)?;
        self.flush_written()?;
        Ok(feed_positions)
    }

    /// `summaries` are those `prepared` was made from, for the summary observer.
    fn commit_new_cases(
        &self,
        prepared: &[PreparedCase],
        summaries: &[&CaseSummary],
        meta: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<FeedSeq>, StoreError> {
        let feed_positions = self
            .summary_observation
            .commit_and_observe(summaries, || self.storage.write_new_cases(prepared, meta))?;
        self.case_count
            .fetch_add(prepared.len() as u64, Ordering::SeqCst);
        tracing::debug!(
            cases = prepared.len(),
            last_feed_seq = feed_positions.last().copied(),
            "cases created"
        );
        Ok(feed_positions)
    }

    /// Load (from cache or disk), let `change` mutate the document and return the new summary
    /// and a value for the caller, then persist the incremental change, summary, indexes and feed
    /// entry atomically and durably. Updates to one case are serialized; if `change` fails,
    /// nothing is written and the cached document is discarded.
    ///
    /// `change` runs holding the case's lock: it may read other cases through the store, but
    /// must not call `update_case` or `with_case` for this same case (that would deadlock).
    /// The summary it returns must carry `number`.
    pub fn update_case<T, E>(
        &self,
        number: &str,
        change: impl FnOnce(&mut CaseDocument) -> Result<(CaseSummary, T), E>,
    ) -> Result<Result<(T, FeedSeq), E>, StoreError> {
        let outcome = self.update_case_unflushed(number, change)?;
        self.flush_if_written(outcome)
    }

    /// [`Store::update_case`] where `change` also returns node meta entries (keys as for
    /// [`Store::meta_put`]), committed in the same transaction as the update and flushed with it:
    /// e.g. a case received from a peer and the record that the peer holds it.
    pub fn update_case_with_meta<T, E>(
        &self,
        number: &str,
        change: impl FnOnce(&mut CaseDocument) -> Result<(CaseSummary, Vec<MetaEntry>, T), E>,
    ) -> Result<Result<(T, FeedSeq), E>, StoreError> {
        let outcome = self.commit_update(number, change)?;
        self.flush_if_written(outcome)
    }

    /// Flushes after an update that was committed (not after a refused change, which wrote
    /// nothing), outside the case lock so that concurrent writers share the flush.
    fn flush_if_written<T, E>(&self, outcome: Result<T, E>) -> Result<Result<T, E>, StoreError> {
        if outcome.is_ok() {
            self.flush_written()?;
        }
        Ok(outcome)
    }

    /// [`Store::update_case`] without the flush: committed and visible at once, durable after the
    /// next [`Store::flush`] (see [`Store::create_received_cases_unflushed`]).
    pub fn update_case_unflushed<T, E>(
        &self,
        number: &str,
        change: impl FnOnce(&mut CaseDocument) -> Result<(CaseSummary, T), E>,
    ) -> Result<Result<(T, FeedSeq), E>, StoreError> {
        self.commit_update(number, |document| {
            change(document).map(|(summary, value)| (summary, Vec::new(), value))
        })
    }

    /// Commits an update under the case lock; the caller flushes (after the lock is released, so
    /// that concurrent writers share one flush).
    fn commit_update<T, E>(
        &self,
        number: &str,
        change: impl FnOnce(&mut CaseDocument) -> Result<(CaseSummary, Vec<MetaEntry>, T), E>,
    ) -> Result<Result<(T, FeedSeq), E>, StoreError> {
        let case_guard = self.case_locks.lock(number);
        // Out of the cache while it changes: readers arriving now wait on the case lock and then
        // see either the committed document or a clean reload, never a half-applied change.
        let handle = self.take_for_update(number)?;
        let mut document = lock_ignoring_poison(&handle);
        // Everything in a loaded document is stored, so the new chunk is exactly the changes
        // that are not ancestors of these heads. Asking automerge for changes since its own
        // save mark instead would need the mark set after every load, which costs an encode of
        // every change in the document.
        let stored_heads = document.change_heads();
        let (summary, meta, value) = match change(&mut document) {
            Ok(changed) => changed,
            Err(error) => {
                tracing::debug!(case = number, "change refused; cached document dropped");
                return Ok(Err(error));
            }
        };
        if summary.number != number {
            return Err(StoreError::SummaryMismatch {
                expected: number.to_owned(),
                found: summary.number,
            });
        }
        let incremental = document.save_after(&stored_heads);
        let (update, _) =
            self.prepare_update(number, &mut document, incremental, &summary, &meta)?;
        let feed_seq = self
            .summary_observation
            .commit_and_observe(&[&summary], || {
                self.keep_for_snapshot(&[number])?;
                self.storage.write_update(number, &update)
            })?;
        drop(document);
        self.cache.insert(number, handle);
        drop(case_guard);
        tracing::debug!(case = number, feed_seq, "case updated");
        Ok(Ok((value, feed_seq)))
    }

    /// What writing `document` takes, given the changes it gained since it was stored
    /// (`incremental`): the new chunk (or a compacted document), summary, index keys and meta
    /// entries, and the feed position the case has now.
    fn prepare_update(
        &self,
        number: &str,
        document: &mut CaseDocument,
        incremental: Vec<u8>,
        summary: &CaseSummary,
        meta: &[MetaEntry],
    ) -> Result<(PreparedUpdate, FeedSeq), StoreError> {
        let record = self
            .storage
            .read_case_record(number)?
            .ok_or_else(|| StoreError::NotFound(number.to_owned()))?;
        let document_write = if incremental.is_empty() {
            DocumentWrite::Unchanged
        } else if should_compact(
            &record,
            incremental.len(),
            self.options.compact_after_chunks,
        ) {
            tracing::debug!(
                case = number,
                chunks = record.chunk_count,
                "compacting case document"
            );
            DocumentWrite::Compact(document.save())
        } else {
            DocumentWrite::Append(incremental)
        };
        let update = PreparedUpdate {
            meta: prepare_meta(meta),
            heads: Some(document.head_hashes()),
            ..PreparedUpdate::new(summary, document_write)?
        };
        Ok((update, record.feed_seq))
    }

    /// The case's document out of the cache (loaded if it was not there), for the caller to
    /// change and put back once written, or drop. The caller holds the case's lock.
    fn take_for_update(&self, number: &str) -> Result<DocumentHandle, StoreError> {
        match self.cache.take(number) {
            Some(handle) => Ok(handle),
            None => match self.load_document_for_update(number)? {
                Some(document) => Ok(Arc::new(Mutex::new(document))),
                None => Err(StoreError::NotFound(number.to_owned())),
            },
        }
    }

    /// A copy of the case's document, cached or loaded, that the cache does not hold. The
    /// caller holds the case's lock.
    fn copy_for_update(&self, number: &str) -> Result<DocumentHandle, StoreError> {
        let document = match self.cache.get(number) {
            Some(handle) => lock_ignoring_poison(&handle).fork(&self.options.actor),
            None => self
                .load_document_for_update(number)?
                .ok_or_else(|| StoreError::NotFound(number.to_owned()))?,
        };
        Ok(Arc::new(Mutex::new(document)))
    }

    /// [`Store::update_case_unflushed`] in two steps, so that the updates of many cases can be
    /// written in one transaction: this one runs `change` and computes the write, without
    /// writing; [`Store::commit_staged_updates`] writes. No lock is held in between: the case
    /// is out of the cache, so a reader meanwhile loads it as stored, and a writer meanwhile
    /// makes the staged update fail to commit (`ChangedMeanwhile`) instead of being lost.
    pub fn stage_update<T, E>(
        &self,
        number: &str,
        change: impl FnOnce(&mut CaseDocument) -> Result<(CaseSummary, T), E>,
    ) -> Result<Result<(T, StagedUpdate), E>, StoreError> {
        self.stage_update_of(number, Store::take_for_update, change)
    }

    /// [`Store::stage_update`] on a copy of the case's document, leaving the cached one as it
    /// is: for a thread that computes an update ahead of the caller that will decide whether to
    /// commit it. The copy costs a load (or a fork of the cached document); what it saves is
    /// doing that work on the committing thread. [`StagedUpdate::based_on`] against
    /// [`Store::feed_position`] tells whether it is still current; the commit checks it anyway.
    pub fn stage_update_on_copy<T, E>(
        &self,
        number: &str,
        change: impl FnOnce(&mut CaseDocument) -> Result<(CaseSummary, T), E>,
    ) -> Result<Result<(T, StagedUpdate), E>, StoreError> {
        self.stage_update_of(number, Store::copy_for_update, change)
    }

    /// The case's feed position: it moves with every write of the case. `None` if not held.
    pub fn feed_position(&self, number: &str) -> Result<Option<FeedSeq>, StoreError> {
        Ok(self
            .storage
            .read_case_record(number)?
            .map(|record| record.feed_seq))
    }

    fn stage_update_of<T, E>(
        &self,
        number: &str,
        document_for_update: impl FnOnce(&Store, &str) -> Result<DocumentHandle, StoreError>,
        change: impl FnOnce(&mut CaseDocument) -> Result<(CaseSummary, T), E>,
    ) -> Result<Result<(T, StagedUpdate), E>, StoreError> {
        let _case_guard = self.case_locks.lock(number);
        let handle = document_for_update(self, number)?;
        let mut document = lock_ignoring_poison(&handle);
        let stored_heads = document.change_heads();
        let (summary, value) = match change(&mut document) {
            Ok(changed) => changed,
            Err(error) => return Ok(Err(error)),
        };
        if summary.number != number {
            return Err(StoreError::SummaryMismatch {
                expected: number.to_owned(),
                found: summary.number,
            });
        }
        let incremental = document.save_after(&stored_heads);
        let (update, based_on) =
            self.prepare_update(number, &mut document, incremental, &summary, &[])?;
        drop(document);
        Ok(Ok((
            value,
            StagedUpdate {
                number: number.to_owned(),
                handle,
                summary,
                update,
                based_on,
            },
        )))
    }

    /// Write staged updates (of distinct cases) and node meta entries in one transaction, all or
    /// none, without a flush. If a case was written by someone else since its update was
    /// staged, nothing is written, the error is `ChangedMeanwhile` naming it, and `updates` is
    /// left as it was, so that the caller can take that one out (and redo it) and write the
    /// rest. On success `updates` is left empty and the documents are in the cache.
    pub fn commit_staged_updates<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        updates: &mut Vec<StagedUpdate>,
        meta: &[(K, V)],
    ) -> Result<Vec<FeedSeq>, StoreError> {
        let numbers = distinct_case_numbers(updates.iter().map(|update| update.number.as_str()))?;
        // Held from before the check that nobody wrote meanwhile until the documents are cached.
        let _case_guards: Vec<_> = numbers
            .iter()
            .map(|number| self.case_locks.lock(number))
            .collect();
        // Out of the cache before the write, back (the new ones) after it. The cache may hold
        // the document as it was before the update: an update staged on a copy leaves it there,
        // and a reader may have loaded it since an update was staged. Between the write and the
        // new documents entering the cache, a reader would otherwise see the new feed position
        // and heads beside the old document, and a sync session walking the feed then found
        // "no changes beyond the peer's heads" and passed the case by (N1 in RELIABILITY.md).
        // Without a cached document a reader waits for the case lock, and so for the new one.
        for number in &numbers {
            drop(self.cache.take(number));
        }
        let writes: Vec<(&str, &PreparedUpdate, Option<FeedSeq>)> = updates
            .iter()
            .map(|staged| {
                (
                    staged.number.as_str(),
                    &staged.update,
                    Some(staged.based_on),
                )
            })
            .collect();
        let summaries: Vec<&CaseSummary> = updates.iter().map(|staged| &staged.summary).collect();
        let feed_positions = self
            .summary_observation
            .commit_and_observe(&summaries, || {
                let numbers: Vec<&str> = writes.iter().map(|(number, _, _)| *number).collect();
                self.keep_for_snapshot(&numbers)?;
                self.storage.write_updates(&writes, &prepare_meta(meta))
            })?;
        for staged in updates.drain(..) {
            self.cache.insert(&staged.number, staged.handle);
        }
        Ok(feed_positions)
    }

    /// Run `read` on the case document (from cache or disk). `read` must not change the
    /// document: changes go through [`Store::update_case`], or they are never stored. It runs
    /// holding the document, so it must not call `update_case` for the same case.
    pub fn with_case<T>(
        &self,
        number: &str,
        read: impl FnOnce(&mut CaseDocument) -> T,
    ) -> Result<Option<T>, StoreError> {
        let handle = match self.cache.get(number) {
            Some(handle) => handle,
            None => {
                let _case_guard = self.case_locks.lock(number);
                match self.cache.get(number) {
                    Some(handle) => handle,
                    None => match self.load_document(number)? {
                        None => return Ok(None),
                        Some(document) => {
                            let handle = Arc::new(Mutex::new(document));
                            self.cache.insert(number, Arc::clone(&handle));
                            handle
                        }
                    },
                }
            }
        };
        let mut document = lock_ignoring_poison(&handle);
        Ok(Some(read(&mut document)))
    }

    /// [`Store::with_case`] for a pass over many cases (`audit verify`, the escalation rules): a
    /// case not in the cache is loaded for this read only, so the pass does not push the cases
    /// people work on out of the cache, nor make a scan's documents outlive it.
    pub fn with_case_uncached<T>(
        &self,
        number: &str,
        read: impl FnOnce(&mut CaseDocument) -> T,
    ) -> Result<Option<T>, StoreError> {
        if let Some(handle) = self.cache.get(number) {
            let mut document = lock_ignoring_poison(&handle);
            return Ok(Some(read(&mut document)));
        }
        let loaded = {
            let _case_guard = self.case_locks.lock(number);
            self.load_document(number)?
        };
        Ok(loaded.map(|mut document| read(&mut document)))
    }

    /// Callers hold the case lock.
    fn load_document(&self, number: &str) -> Result<Option<CaseDocument>, StoreError> {
        self.load_document_as(number, CaseDocument::load)
    }

    /// [`Store::load_document`] for an update that reads the document before the cache may
    /// hold it ([`CaseDocument::load_for_update`]). Callers hold the case lock.
    fn load_document_for_update(&self, number: &str) -> Result<Option<CaseDocument>, StoreError> {
        self.load_document_as(number, CaseDocument::load_for_update)
    }

    fn load_document_as(
        &self,
        number: &str,
        load: DocumentLoader,
    ) -> Result<Option<CaseDocument>, StoreError> {
        let Some(stored) = self.storage.read_document(number)? else {
            return Ok(None);
        };
        let chunks: Vec<&[u8]> = stored.chunks.iter().map(Vec::as_slice).collect();
        let document =
            load(&stored.saved, &chunks, &self.options.actor).map_err(|error| match error {
                DocumentError::UnsupportedVersion { .. } => StoreError::Document(error),
                other => codec::corrupt(format!("document of case {number}"), other.to_string()),
            })?;
        tracing::debug!(case = number, chunks = chunks.len(), "case document loaded");
        Ok(Some(document))
    }

    /// The case's heads (sorted), or `None` if there is no such case. Read from its bookkeeping
    /// record, without loading the document, except for cases last written by an earlier build.
    pub fn heads(&self, number: &str) -> Result<Option<Vec<[u8; 32]>>, StoreError> {
        match self.storage.read_case_record(number)? {
            None => Ok(None),
            Some(CaseRecord {
                heads: Some(heads), ..
            }) => Ok(Some(heads)),
            Some(_) => self.with_case(number, CaseDocument::head_hashes),
        }
    }

    /// The case's document as stored, in one piece that loads into it (its saved form followed
    /// by its incremental chunks), or `None` if there is no such case. Reads no document into
    /// memory and encodes nothing: for sending a case whole.
    pub fn saved_form(&self, number: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // The record, saved form and chunks are read one by one; the case lock keeps an update
        // (which may compact them) from committing in between.
        let stored = {
            let _case_guard = self.case_locks.lock(number);
            self.storage.read_document(number)?
        };
        Ok(stored.map(|stored| {
            let mut bytes = stored.saved;
            for chunk in stored.chunks {
                bytes.extend_from_slice(&chunk);
            }
            bytes
        }))
    }

    pub fn summary(&self, number: &str) -> Result<Option<CaseSummary>, StoreError> {
        self.storage.read_summary(number)
    }

    /// Summaries matching `filter`. With `deadline_before` they come most urgent first,
    /// otherwise in case number order.
    pub fn list(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, StoreError> {
        if let Some(needle) = filter
            .petitioner_name
            .as_deref()
            .filter(|needle| !needle.is_empty())
        {
            // Few cases match a name: they are listed from the names held in memory, in number
            // order, each summary then checked against the whole filter.
            let numbers = self.cases_with_petitioner_named(needle)?;
            return self
                .storage
                .list_numbers(numbers.into_iter().map(Ok), filter);
        }
        self.storage.list(filter)
    }

    /// The cases with a petitioner whose name contains `needle`, by number, from the names held
    /// in memory (`petitioner_names.rs`), which are read from the summaries on first use.
    fn cases_with_petitioner_named(&self, needle: &str) -> Result<Vec<CaseId>, StoreError> {
        if let Some(numbers) = self.summary_observation.petitioner_names.matching(needle) {
            return Ok(numbers);
        }
        self.build_petitioner_names()?;
        Ok(self
            .summary_observation
            .petitioner_names
            .matching(needle)
            .unwrap_or_default())
    }

    /// Reads every case's petitioners' names into memory, unless done already. Commits go on
    /// meanwhile (`petitioner_names.rs` keeps what they tell aside).
    fn build_petitioner_names(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let read = self.summary_observation.petitioner_names.read_from(|| {
            self.storage
                .readable_summaries()
                .map(|summary| summary.map(|summary| (summary.number, summary.petitioner_names)))
        })?;
        if read {
            tracing::debug!(
                seconds = started.elapsed().as_secs_f64(),
                "petitioners' names read into memory"
            );
        }
        Ok(())
    }

    /// One page of the summaries matching `filter` in the 台账's order (earliest open deadline
    /// first, cases without one last, ties by number), skipping `skip`, and how many match in
    /// all: counted from index keys, reading only the page's summaries (see `index::page`).
    /// `filter.limit` is not applied.
    pub fn list_page(
        &self,
        filter: &CaseFilter,
        skip: usize,
        take: usize,
    ) -> Result<SummaryPage, StoreError> {
        crate::index::page(
            self.storage.indexes(),
            filter,
            skip,
            take,
            &|number| self.storage.read_summary(number),
            &|filter| self.list(filter),
        )
    }

    /// Whether every summary carries its petitioners' names, so that a
    /// [`CaseFilter::petitioner_name`] listing finds every case it should. False in a store an
    /// earlier build wrote until [`Store::migrate_petitioner_names`] has gone through it.
    pub fn petitioner_names_indexed(&self) -> bool {
        self.petitioner_names_indexed.load(Ordering::SeqCst)
    }

    /// One step of filling the petitioners' names into summaries an earlier build wrote without
    /// them: reads up to `batch` summaries after the last step's, takes the names from each
    /// case's document (the header as amended), and writes the summaries whose names differ,
    /// with their index keys and the step's position, in one transaction. Stopped at any point
    /// (even killed), the next step resumes after the last committed batch. Runs beside other
    /// writes: a case written meanwhile already has its names, and keeps them. Logs counts only,
    /// never a name.
    pub fn migrate_petitioner_names(&self, batch: usize) -> Result<NamesMigrationStep, StoreError> {
        if self.petitioner_names_indexed() {
            return Ok(NamesMigrationStep {
                read: 0,
                rewritten: 0,
                complete: true,
            });
        }
        let after = self.storage.petitioner_names_through()?;
        let records = self
            .storage
            .summary_records_after(after.as_deref(), batch.max(1))?;
        let complete = records.len() < batch.max(1);
        let mut rewrites = Vec::new();
        for (number, stored) in &records {
            let summary = match codec::decode_summary(number, stored) {
                Ok(summary) => summary,
                Err(error) => {
                    // Its next write heals it, with names; a search cannot find it meanwhile,
                    // as it could not read it before either.
                    tracing::warn!(case = number, %error, "names migration skips a corrupt summary");
                    continue;
                }
            };
            let header = match self.with_case_uncached(number, |document| document.header()) {
                Ok(Some(Ok(header))) => header,
                Ok(None) => continue,
                Ok(Some(Err(error))) => {
                    tracing::warn!(case = number, %error, "names migration cannot read a case's header");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(case = number, %error, "names migration cannot load a case");
                    continue;
                }
            };
            let names: Vec<String> = header
                .petitioners
                .iter()
                .map(|petitioner| petitioner.name.clone())
                .collect();
            if names == summary.petitioner_names
                && stored.first() == Some(&codec::SUMMARY_RECORD_VERSION)
            {
                continue;
            }
            let named = CaseSummary {
                petitioner_names: names,
                ..summary.clone()
            };
            // No index key holds a name, so the rewrite leaves the index keys as they are.
            rewrites.push(SummaryRewrite {
                number: number.clone(),
                based_on: stored.clone(),
                record: codec::encode_summary(&named)?,
                petitioner_names: named.petitioner_names,
            });
        }
        let numbers: Vec<&str> = rewrites
            .iter()
            .map(|rewrite| rewrite.number.as_str())
            .collect();
        self.keep_for_snapshot(&numbers)?;
        let through = records.last().map(|(number, _)| number.as_str());
        let observation = &self.summary_observation;
        observation.in_commit_order(|| -> Result<(), StoreError> {
            let written = self
                .storage
                .write_named_summaries(&rewrites, through, complete)?;
            for rewrite in written {
                observation
                    .petitioner_names
                    .record_names(&rewrite.number, &rewrite.petitioner_names);
            }
            Ok(())
        })?;
        self.storage.flush()?;
        if complete {
            self.petitioner_names_indexed.store(true, Ordering::SeqCst);
        }
        Ok(NamesMigrationStep {
            read: records.len(),
            rewritten: rewrites.len(),
            complete,
        })
    }

    /// Reads every key of the index tree once, so that sled holds its nodes in its cache: right
    /// after a start each node is read from disk on first use, and the first 台账 walks of a
    /// large store took twice as long as later ones. Then reads the petitioners' names into
    /// memory, so that the first search by name does not wait for them. Answers how many index
    /// keys were read; stops early (answering what it read) once `stop_requested`.
    pub fn warm_indexes(&self, stop_requested: &dyn Fn() -> bool) -> Result<u64, StoreError> {
        let keys = self.storage.warm_indexes(stop_requested)?;
        if !stop_requested() {
            self.build_petitioner_names()?;
        }
        Ok(keys)
    }

    /// Runs [`Store::migrate_petitioner_names`] to the end, with its progress in the log.
    /// `stop_requested` is asked between batches: a node that is stopping leaves the rest for
    /// its next start (each batch is committed with its position), instead of holding the store
    /// open past its stop wait.
    pub fn complete_petitioner_names(
        &self,
        stop_requested: &dyn Fn() -> bool,
    ) -> Result<(), StoreError> {
        if self.petitioner_names_indexed() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let total = self.case_count();
        tracing::info!(
            cases = total,
            "filling petitioners' names into the case summaries, for the name index"
        );
        let (mut read, mut rewritten) = (0u64, 0u64);
        let mut logged_at = 0u64;
        loop {
            let step = self.migrate_petitioner_names(NAMES_MIGRATION_BATCH)?;
            read += step.read as u64;
            rewritten += step.rewritten as u64;
            if step.complete {
                break;
            }
            if stop_requested() {
                tracing::info!(
                    read,
                    cases = total,
                    "filling petitioners' names paused by the node's stop; the next start resumes it"
                );
                return Ok(());
            }
            if read - logged_at >= 10_000 {
                logged_at = read;
                tracing::info!(read, cases = total, "filling petitioners' names");
            }
        }
        tracing::info!(
            read,
            rewritten,
            seconds = started.elapsed().as_secs_f64(),
            "petitioners' names filled in: searches by name use the index"
        );
        Ok(())
    }

    /// Every summary, for measures.
    pub fn for_each_summary(&self, mut visit: impl FnMut(&CaseSummary)) -> Result<(), StoreError> {
        self.storage.for_each_summary(|summary| {
            visit(&summary);
            true
        })
    }

    pub fn case_count(&self) -> u64 {
        self.case_count.load(Ordering::SeqCst)
    }

    /// Bytes the store's database takes on disk (sled's log file and blobs), as sled measures
    /// them: a few `stat`s, no scan. For the node's metrics.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.storage.database().size_on_disk()?)
    }

    /// Whether a case with this number is stored.
    pub fn contains(&self, number: &str) -> Result<bool, StoreError> {
        self.storage.contains(number)
    }

    /// Feed entries with `seq > after`, at most `limit`.
    pub fn feed_since(&self, after: FeedSeq, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        self.storage.feed_since(after, limit)
    }

    /// The highest feed position handed out so far (0 on an empty store).
    pub fn feed_head(&self) -> Result<FeedSeq, StoreError> {
        self.storage.feed_head()
    }

    /// Next case sequence number for `prefix` (region code + year), durable and never reused.
    /// The first number for a prefix is 1.
    pub fn next_case_sequence(&self, prefix: &str) -> Result<u64, StoreError> {
        let sequence = self.storage.next_counter(prefix)?;
        self.flush_written()?;
        Ok(sequence)
    }

    /// Make the next sequence for `prefix` come after `highest` (a counter only ever grows, so
    /// this never lowers it), durably: a rebuilt node continues its numbering after the cases
    /// that came back. Returns the counter's value.
    pub fn raise_case_sequence(&self, prefix: &str, highest: u64) -> Result<u64, StoreError> {
        let value = self.storage.raise_counter(prefix, highest)?;
        self.flush_written()?;
        Ok(value)
    }

    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.storage.meta_get(key)
    }

    /// Node meta entries whose key starts with `prefix` (keys without the store's own prefix),
    /// in key order, at most `limit`.
    pub fn meta_scan(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.storage.meta_scan(prefix, limit)
    }

    /// Writes a node meta entry and flushes it.
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.storage.meta_put(key, value)?;
        self.flush_written()
    }

    /// Writes a node meta entry without waiting for a disk sync, for advisory bookkeeping that
    /// may be lost in a crash (the federation's per-peer cursors and heads: losing the latest
    /// only causes re-sends). It is visible at once, kept by a clean close, and durable with the
    /// next flush of any write (e.g. the next case write; sled also flushes in the background).
    /// It must only describe state that is itself already durable.
    pub fn meta_put_unflushed(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.storage.meta_put(key, value)
    }

    /// [`Store::meta_put_unflushed`] for several entries, written all or none.
    pub fn meta_put_many_unflushed<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        entries: &[(K, V)],
    ) -> Result<(), StoreError> {
        self.storage.meta_put_many(&prepare_meta(entries))
    }

    /// Append a line to the local access log (reads of personal data), durably.
    ///
    /// While the disk is below the reserve the record is held in memory instead (up to
    /// `MAX_HELD_ACCESS_RECORDS`; further reads are counted) and written, in order, with the next
    /// write that gets through, or when the store closes. So a read never waits on a disk that
    /// cannot take the record, and every read is recorded as soon as the disk allows; only a
    /// crash while the disk is full loses the held records. Refusing reads instead would stop
    /// petitioners' cases being looked up at all for as long as the disk stays full.
    pub fn log_access(&self, record: &[u8]) -> Result<(), StoreError> {
        match self.storage.check_free_space() {
            Ok(()) => {}
            Err(StoreError::DiskFull { .. }) => {
                let mut held = lock_ignoring_poison(&self.held_access_records);
                if held.records.len() < MAX_HELD_ACCESS_RECORDS {
                    held.records.push(record.to_vec());
                } else {
                    held.dropped += 1;
                }
                return Ok(());
            }
            Err(other) => return Err(other),
        }
        // The held records first, so the log stays in the order the reads happened.
        self.write_held_access_records()?;
        self.storage.append_log(Log::Access, record)?;
        self.storage.flush()
    }

    /// Access records held in memory because the disk was below the reserve, and reads not
    /// even held (counted only).
    pub fn held_access_records_count(&self) -> (usize, u64) {
        let held = lock_ignoring_poison(&self.held_access_records);
        (held.records.len(), held.dropped)
    }

    /// Writes the access records held while the disk was below the reserve, and a record of
    /// how many reads could not be held, unflushed. Keeps whatever it could not write.
    fn write_held_access_records(&self) -> Result<(), StoreError> {
        let mut held = lock_ignoring_poison(&self.held_access_records);
        if held.records.is_empty() && held.dropped == 0 {
            return Ok(());
        }
        let records = std::mem::take(&mut held.records);
        let mut written = 0;
        for record in &records {
            if let Err(error) = self.storage.append_log(Log::Access, record) {
                held.records = records.into_iter().skip(written).collect();
                return Err(error);
            }
            written += 1;
        }
        if held.dropped > 0 {
            // The store's own record; the node's records have the same "action" field.
            let note = format!(
                r#"{{"action":"access_records_dropped","dropped":{},"reason":"the disk was below the store's free-space reserve"}}"#,
                held.dropped
            );
            self.storage.append_log(Log::Access, note.as_bytes())?;
            tracing::warn!(
                dropped = held.dropped,
                "reads made while the disk was full could not all be held for the access log"
            );
            held.dropped = 0;
        }
        tracing::info!(
            written,
            "access records held while the disk was full are written"
        );
        Ok(())
    }

    /// Access log records with an id greater than `after`, oldest first, at most `limit`.
    pub fn access_log_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.storage.log_since(Log::Access, after, limit)
    }

    /// Record a change refused from a peer, once per [`QuarantineKey`]: a peer that sends the
    /// same change again (a re-send after a reconnect, or with a later change built on its
    /// heads) adds no record, and `None` is returned. One point read, never a scan. Not
    /// flushed: it becomes durable with the batch of applies it was refused in (the peer sends it
    /// again if it is lost).
    pub fn quarantine_unflushed(
        &self,
        key: &QuarantineKey<'_>,
        record: &[u8],
    ) -> Result<Option<u64>, StoreError> {
        self.storage.append_quarantine_once(key, record)
    }

    /// Quarantine records with an id greater than `after`, oldest first, at most `limit`.
    pub fn quarantine_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.storage.log_since(Log::Quarantine, after, limit)
    }
}

impl Drop for Store {
    /// A clean close writes the access records still held, if the disk now has room.
    fn drop(&mut self) {
        if self.held_access_records_count() == (0, 0) {
            return;
        }
        let result = self
            .write_held_access_records()
            .and_then(|()| self.storage.flush());
        if let Err(error) = result {
            let held = lock_ignoring_poison(&self.held_access_records);
            tracing::error!(
                %error,
                held = held.records.len(),
                dropped = held.dropped,
                "the store closes with reads of personal data not written to the access log"
            );
        }
    }
}
