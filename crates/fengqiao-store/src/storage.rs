//! The sled trees and every read and atomic multi-tree write of them; documents are opaque bytes here.
//!
//! Nothing in this module flushes: [`crate::Store`] commits here under its per-case locks and
//! flushes after releasing them, so concurrent writers share one flush (group commit). Node meta
//! written without a flush becomes durable with the next flush of any write, since sled's log is
//! written in order.
//!
//! Every write first asks the [`FreeSpaceGuard`] whether the disk has room beyond the reserve, and
//! writes nothing if not; flushes are not refused, since they only make durable what is already
//! committed.
//!
//! sled 0.34 runs every transaction closure under one process-wide write lock, and transactional
//! trees can only do point reads. So closures here only do point reads and writes of bytes that
//! were encoded beforehand, and per-case bookkeeping ([`CaseRecord`]) says which keys to touch.

use std::path::Path;
use std::time::{Duration, Instant};

use fengqiao_case::{CaseId, CaseSummary};
use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};

use crate::codec::{
    CHUNK_RECORD_VERSION, CaseRecord, DOCUMENT_RECORD_VERSION, LOG_RECORD_VERSION, corrupt,
    decode_feed_value, decode_summary, decode_u64_key, decode_u64_value, decode_versioned,
    encode_feed_value, encode_versioned,
};
use crate::free_space::FreeSpaceGuard;
use crate::index::{
    CountChanges, INDEX_VERSION, IndexScan, KEY_SEPARATOR, changed_count, index_keys, matches,
    number_from_index_key, plan_scan,
};
use crate::snapshot::SnapshotEntry;
use crate::{CaseFilter, FeedEntry, FeedSeq, StoreError};

/// Version of the whole on-disk layout (tree names, key formats, meta keys).
pub(crate) const STORE_FORMAT_VERSION: u32 = 1;

const FORMAT_VERSION_KEY: &[u8] = b"store/format_version";
const CASE_COUNT_KEY: &[u8] = b"store/case_count";
const FEED_HEAD_KEY: &[u8] = b"store/feed_head";
/// The [`INDEX_VERSION`] the index tree was last built under (u32 BE); absent: version 1.
const INDEX_VERSION_KEY: &[u8] = b"store/index_version";
/// Present (one byte, 1) once every summary carries its petitioners' names: in a store this build
/// created, and in an older one once `Store::migrate_petitioner_names` has gone through it.
const NAMES_COMPLETE_KEY: &[u8] = b"store/petitioner_names_complete";
/// The last case number (in key order) whose summary the names migration has rewritten; written
/// in the same transaction as that batch, so a migration stopped part-way resumes after it.
const NAMES_THROUGH_KEY: &[u8] = b"store/petitioner_names_through";
/// How many summaries the index rebuild reads between progress lines in the log.
const INDEX_REBUILD_PROGRESS_EVERY: u64 = 10_000;
/// Index keys [`Storage::warm_indexes`] reads between asking whether to stop.
const WARM_STOP_CHECK_EVERY: u64 = 10_000;
/// Cases whose index keys a rebuild writes in one batch (a rebuild of 100,000 cases takes about
/// 25 s either way: reading and decoding the summaries and the million inserts are the cost).
const INDEX_REBUILD_BATCH_CASES: u64 = 1_000;
/// Callers' metadata lives under its own prefix so it can never overwrite the store's own keys.
const NODE_META_PREFIX: &[u8] = b"node/";

#[derive(Debug)]
struct Trees {
    /// case number → `[version] ++ automerge save()`.
    documents: sled::Tree,
    /// case number ++ 0x00 ++ chunk index (u32 BE) → `[version] ++ save_incremental()`.
    changes: sled::Tree,
    /// case number → [`CaseRecord`].
    case_records: sled::Tree,
    /// case number → `[version] ++ bincode(CaseSummary)`.
    summaries: sled::Tree,
    /// see [`crate::index`]; values are empty.
    indexes: sled::Tree,
    /// feed seq (u64 BE) → `[version] ++ case number`; one live entry per case.
    feed: sled::Tree,
    /// store keys (`store/…`, u64/u32 BE) and node keys (`node/…`, caller's bytes).
    meta: sled::Tree,
    /// case number prefix (region code + year) → last sequence handed out (u64 BE).
    counters: sled::Tree,
    /// sled-generated id + 1 (u64 BE, increasing, never 0) → `[version] ++ caller's record`.
    access_log: sled::Tree,
    /// Changes received from peers and refused, keyed and encoded as the access log.
    quarantine: sled::Tree,
    /// [`QuarantineKey`] (peer, case, change hash) → id (u64 BE) of its record in `quarantine`:
    /// a refused change is recorded once, however often a peer sends it.
    quarantine_keys: sled::Tree,
    /// case number → `[version] ++ feed seq (u64 BE) ++ JSON(LedgerFacts)`, the facts of the
    /// case's 台账 row as of that feed position, written by the keeper beside serving
    /// (`ledger_rows.rs`); and [`LEDGER_ROWS_THROUGH_KEY`] → the feed position it has gone
    /// through (u64 BE). Derived, so neither snapshotted nor restored: a restored store's keeper
    /// starts again from the feed's beginning.
    ledger_rows: sled::Tree,
}

/// The key of the ledger rows' keeper position in the `ledger_rows` tree: it begins with a 0x00
/// byte, which no valid case number does.
const LEDGER_ROWS_THROUGH_KEY: &[u8] = b"\0through";

/// The append-only logs of caller records the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Reads of personal data.
    Access,
    /// Events received from peers and refused, with the reason.
    Quarantine,
}

impl Log {
    fn name(self) -> &'static str {
        match self {
            Log::Access => "access log",
            Log::Quarantine => "quarantine",
        }
    }
}

/// What makes a quarantined change the same change: the peer that sent it, its case, and the
/// change's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineKey<'a> {
    pub peer: &'a str,
    pub case: &'a str,
    pub change_hash: &'a str,
}

impl QuarantineKey<'_> {
    /// Each part behind its length (u32 BE), so that no choice of the peer's strings (a case
    /// number is the peer's word) can make two different keys encode alike.
    fn encode(&self) -> Vec<u8> {
        let parts = [self.peer, self.case, self.change_hash];
        let mut key = Vec::with_capacity(parts.iter().map(|part| 4 + part.len()).sum());
        for part in parts {
            let length = u32::try_from(part.len()).unwrap_or(u32::MAX);
            key.extend_from_slice(&length.to_be_bytes());
            key.extend_from_slice(part.as_bytes());
        }
        key
    }
}

/// A new case, encoded and ready to commit.
#[derive(Debug, Clone)]
pub(crate) struct PreparedCase {
    pub(crate) number: CaseId,
    /// Raw `save()` bytes.
    pub(crate) saved: Vec<u8>,
    pub(crate) summary_record: Vec<u8>,
    pub(crate) index_keys: Vec<Vec<u8>>,
    /// The document's heads, sorted, kept in its [`CaseRecord`] (`None`: not known).
    pub(crate) heads: Option<Vec<[u8; 32]>>,
}

impl PreparedCase {
    pub(crate) fn new(saved: Vec<u8>, summary: &CaseSummary) -> Result<PreparedCase, StoreError> {
        Ok(PreparedCase {
            number: summary.number.clone(),
            saved,
            summary_record: crate::codec::encode_summary(summary)?,
            index_keys: index_keys(summary),
            heads: None,
        })
    }

    /// A new case whose document's heads (sorted) are known.
    pub(crate) fn with_heads(
        saved: Vec<u8>,
        heads: Vec<[u8; 32]>,
        summary: &CaseSummary,
    ) -> Result<PreparedCase, StoreError> {
        Ok(PreparedCase {
            heads: Some(heads),
            ..PreparedCase::new(saved, summary)?
        })
    }
}

/// What an update does to the document bytes.
#[derive(Debug, Clone)]
pub(crate) enum DocumentWrite {
    /// The change left the document as it was (the summary and feed still move).
    Unchanged,
    /// Raw `save_incremental()` bytes, stored as the next chunk.
    Append(Vec<u8>),
    /// Raw `save()` bytes replacing the saved document and all its chunks.
    Compact(Vec<u8>),
}

/// Node meta entries committed with a case write: stored keys (prefixed) and values.
pub(crate) type PreparedMeta = Vec<(Vec<u8>, Vec<u8>)>;

/// Prefixes the caller's keys, so they land in the node's namespace of the meta tree.
pub(crate) fn prepare_meta<K: AsRef<str>, V: AsRef<[u8]>>(entries: &[(K, V)]) -> PreparedMeta {
    entries
        .iter()
        .map(|(key, value)| (node_meta_key(key.as_ref()), value.as_ref().to_vec()))
        .collect()
}

#[derive(Debug, Clone)]
pub(crate) struct PreparedUpdate {
    pub(crate) summary_record: Vec<u8>,
    pub(crate) index_keys: Vec<Vec<u8>>,
    pub(crate) document_write: DocumentWrite,
    /// Node meta written in the same transaction (e.g. the sync record that a peer has the case).
    pub(crate) meta: PreparedMeta,
    /// The document's heads after the update, sorted (`None`: not known).
    pub(crate) heads: Option<Vec<[u8; 32]>>,
}

impl PreparedUpdate {
    pub(crate) fn new(
        summary: &CaseSummary,
        document_write: DocumentWrite,
    ) -> Result<PreparedUpdate, StoreError> {
        Ok(PreparedUpdate {
            summary_record: crate::codec::encode_summary(summary)?,
            index_keys: index_keys(summary),
            document_write,
            meta: PreparedMeta::new(),
            heads: None,
        })
    }
}

/// One summary rewritten by the names migration: the stored bytes it was computed from, the new
/// record, and both summaries' index keys (sorted).
#[derive(Debug, Clone)]
pub(crate) struct SummaryRewrite {
    pub(crate) number: CaseId,
    pub(crate) based_on: Vec<u8>,
    pub(crate) record: Vec<u8>,
    /// The names `record` holds.
    pub(crate) petitioner_names: Vec<String>,
}

/// A case's document as stored: the saved bytes and the incremental chunks after them, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredDocument {
    pub(crate) saved: Vec<u8>,
    pub(crate) chunks: Vec<Vec<u8>>,
}

/// Whether appending a chunk of `incremental_length` bytes should rather rewrite the document:
/// too many chunks make loading slow, and chunks outweighing the saved form waste space.
pub(crate) fn should_compact(
    record: &CaseRecord,
    incremental_length: usize,
    chunk_limit: u32,
) -> bool {
    let chunks_after = u64::from(record.chunk_count) + 1;
    let chunk_bytes_after = record.chunk_bytes.saturating_add(incremental_length as u64);
    chunks_after > u64::from(chunk_limit) || chunk_bytes_after > record.saved_bytes
}

fn chunk_key(number: &str, index: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(number.len() + 5);
    key.extend_from_slice(number.as_bytes());
    key.push(KEY_SEPARATOR);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

fn node_meta_key(key: &str) -> Vec<u8> {
    let mut stored = NODE_META_PREFIX.to_vec();
    stored.extend_from_slice(key.as_bytes());
    stored
}

fn abort<T>(error: StoreError) -> ConflictableTransactionResult<T, StoreError> {
    Err(ConflictableTransactionError::Abort(error))
}

/// Adds `changes` to the counts kept in the index tree, in the transaction writing the keys.
fn write_count_changes(
    indexes: &TransactionalTree,
    changes: &CountChanges,
) -> ConflictableTransactionResult<(), StoreError> {
    for (key, change) in changes.entries() {
        let count = match changed_count(indexes.get(key)?.as_deref(), change) {
            Ok(count) => count,
            Err(error) => return abort(error),
        };
        indexes.insert(key, &count.to_be_bytes()[..])?;
    }
    Ok(())
}

/// Counts counted from nothing (a rebuild, a restore into an empty tree) as the values to store.
fn fresh_counts_batch(changes: &CountChanges) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (count_key, count) in changes.entries() {
        batch.insert(count_key, &count.unsigned_abs().to_be_bytes()[..]);
    }
    batch
}

fn finish<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    result.map_err(|error| match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => StoreError::Sled(error),
    })
}

fn read_meta_u64_in(
    meta: &TransactionalTree,
    key: &[u8],
) -> ConflictableTransactionResult<u64, StoreError> {
    match meta.get(key)? {
        None => Ok(0),
        Some(value) => match decode_u64_value(&String::from_utf8_lossy(key), &value) {
            Ok(number) => Ok(number),
            Err(error) => abort(error),
        },
    }
}

/// How long `open` waits for sled's file lock before saying the store is in use.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Open the sled database, waiting briefly for its file lock.
///
/// sled's background flusher keeps the database (and its lock) alive for a moment after the last
/// handle is dropped, so a store closed and reopened in one process (a restart inside the node, a
/// test) would otherwise fail at random. A lock still held after `LOCK_WAIT` is another process.
fn open_database(path: &Path, page_cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let started = Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(page_cache_bytes)
            .open();
        match opened {
            Err(sled::Error::Io(error)) if error.to_string().contains("could not acquire lock") => {
                if started.elapsed() > LOCK_WAIT {
                    return Err(StoreError::Locked {
                        path: path.display().to_string(),
                    });
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return Ok(other?),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Storage {
    database: sled::Db,
    trees: Trees,
    free_space: FreeSpaceGuard,
}

impl Storage {
    /// Opens the database at `path`, whose writes keep `min_free_bytes` free on its disk and
    /// whose pages sled keeps up to `page_cache_bytes` of in memory.
    pub(crate) fn open(
        path: &Path,
        min_free_bytes: u64,
        page_cache_bytes: u64,
    ) -> Result<Storage, StoreError> {
        let database = open_database(path, page_cache_bytes)?;
        let trees = Trees {
            documents: database.open_tree("documents")?,
            changes: database.open_tree("changes")?,
            case_records: database.open_tree("case_records")?,
            summaries: database.open_tree("summaries")?,
            indexes: database.open_tree("indexes")?,
            feed: database.open_tree("feed")?,
            meta: database.open_tree("meta")?,
            counters: database.open_tree("counters")?,
            access_log: database.open_tree("access_log")?,
            quarantine: database.open_tree("quarantine")?,
            quarantine_keys: database.open_tree("quarantine_keys")?,
            ledger_rows: database.open_tree("ledger_rows")?,
        };
        let storage = Storage {
            database,
            trees,
            free_space: FreeSpaceGuard::new(path, min_free_bytes),
        };
        storage.check_format_version()?;
        storage.bring_indexes_up_to_date()?;
        Ok(storage)
    }

    /// Adds the index keys a store written by an earlier build lacks (a kind of index it did not
    /// keep), from the summaries. Inserting a key that is there already changes nothing, so a
    /// rebuild stopped part-way is simply run again on the next open; the version is recorded
    /// only once every summary has been indexed.
    fn bring_indexes_up_to_date(&self) -> Result<(), StoreError> {
        let found = match self.trees.meta.get(INDEX_VERSION_KEY)? {
            None => 1,
            Some(value) => {
                let bytes: [u8; 4] = value.as_ref().try_into().map_err(|_| {
                    corrupt("store index version", format!("{} bytes", value.len()))
                })?;
                u32::from_be_bytes(bytes)
            }
        };
        if found >= INDEX_VERSION {
            return Ok(());
        }
        self.free_space.check()?;
        let started = Instant::now();
        let total = self.trees.summaries.len();
        if total > 0 {
            tracing::info!(
                from = found,
                to = INDEX_VERSION,
                cases = total,
                "rebuilding the case indexes"
            );
        }
        // Keys of an older layout would stay beside the new ones: start from an empty tree.
        // Stopped part-way, the version is not recorded and the next open starts over.
        self.trees.indexes.clear()?;
        let mut done = 0u64;
        let mut count_changes = CountChanges::default();
        let mut batch = sled::Batch::default();
        for summary in self.readable_summaries() {
            let keys = index_keys(&summary?);
            count_changes.replace(&[], &keys);
            for index_key in keys {
                batch.insert(index_key, &[][..]);
            }
            done += 1;
            if done.is_multiple_of(INDEX_REBUILD_BATCH_CASES) {
                self.trees.indexes.apply_batch(std::mem::take(&mut batch))?;
            }
            if done.is_multiple_of(INDEX_REBUILD_PROGRESS_EVERY) {
                tracing::info!(done, cases = total, "rebuilding the case indexes");
            }
        }
        self.trees.indexes.apply_batch(batch)?;
        self.trees
            .indexes
            .apply_batch(fresh_counts_batch(&count_changes))?;
        self.trees
            .meta
            .insert(INDEX_VERSION_KEY, &INDEX_VERSION.to_be_bytes()[..])?;
        self.flush()?;
        if total > 0 {
            tracing::info!(
                cases = done,
                seconds = started.elapsed().as_secs_f64(),
                "case indexes rebuilt"
            );
        }
        Ok(())
    }

    fn check_format_version(&self) -> Result<(), StoreError> {
        match self.trees.meta.get(FORMAT_VERSION_KEY)? {
            Some(value) => {
                let bytes: [u8; 4] = value.as_ref().try_into().map_err(|_| {
                    corrupt("store format version", format!("{} bytes", value.len()))
                })?;
                let found = u32::from_be_bytes(bytes);
                if found != STORE_FORMAT_VERSION {
                    return Err(StoreError::UnsupportedFormat {
                        found,
                        supported: STORE_FORMAT_VERSION,
                    });
                }
                Ok(())
            }
            None if self.trees.case_records.is_empty() && self.trees.documents.is_empty() => {
                self.free_space.check()?;
                self.trees
                    .meta
                    .insert(FORMAT_VERSION_KEY, &STORE_FORMAT_VERSION.to_be_bytes()[..])?;
                // Every summary this build writes carries the names: nothing to migrate.
                self.trees.meta.insert(NAMES_COMPLETE_KEY, &[1][..])?;
                self.flush()
            }
            None => Err(corrupt(
                "store format version",
                "missing in a store that holds cases",
            )),
        }
    }

    /// The database, for the trees kept beside the cases' (`accounts.rs`).
    pub(crate) fn database(&self) -> &sled::Db {
        &self.database
    }

    /// `Ok` while the disk has room beyond the reserve; `DiskFull` otherwise.
    pub(crate) fn check_free_space(&self) -> Result<(), StoreError> {
        self.free_space.check()
    }

    #[cfg(test)]
    pub(crate) fn pretend_available(&self, available: Option<u64>) {
        self.free_space.pretend_available(available);
    }

    /// Makes every committed write durable. Callers sharing a moment share the disk sync.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.database.flush()?;
        Ok(())
    }

    pub(crate) fn read_case_count(&self) -> Result<u64, StoreError> {
        self.read_meta_u64(CASE_COUNT_KEY)
    }

    fn read_meta_u64(&self, key: &[u8]) -> Result<u64, StoreError> {
        match self.trees.meta.get(key)? {
            None => Ok(0),
            Some(value) => decode_u64_value(&String::from_utf8_lossy(key), &value),
        }
    }

    /// The highest feed position handed out so far (0 before the first write).
    pub(crate) fn feed_head(&self) -> Result<FeedSeq, StoreError> {
        self.read_meta_u64(FEED_HEAD_KEY)
    }

    pub(crate) fn contains(&self, number: &str) -> Result<bool, StoreError> {
        Ok(self.trees.case_records.contains_key(number.as_bytes())?)
    }

    /// Commits all cases, and the node meta entries `meta`, or none. Returns their feed
    /// positions, in order.
    pub(crate) fn write_new_cases(
        &self,
        cases: &[PreparedCase],
        meta_entries: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<FeedSeq>, StoreError> {
        self.free_space.check()?;
        let trees = &self.trees;
        let mut count_changes = CountChanges::default();
        for case in cases {
            count_changes.replace(&[], &case.index_keys);
        }
        // Encoded here, not in the closure, because the closure runs under sled's global lock.
        let document_records: Vec<Vec<u8>> = cases
            .iter()
            .map(|case| encode_versioned(DOCUMENT_RECORD_VERSION, &case.saved))
            .collect();
        let result = (
            &trees.documents,
            &trees.case_records,
            &trees.summaries,
            &trees.indexes,
            &trees.feed,
            &trees.meta,
        )
            .transaction(
                |(documents, case_records, summaries, indexes, feed, meta)| {
                    let mut feed_head = read_meta_u64_in(meta, FEED_HEAD_KEY)?;
                    let case_count = read_meta_u64_in(meta, CASE_COUNT_KEY)?;
                    let mut feed_positions = Vec::with_capacity(cases.len());
                    for (case, document_record) in cases.iter().zip(&document_records) {
                        let number = case.number.as_bytes();
                        // Every write of a case writes its record with its document, so the
                        // record alone says whether the case is here (one lookup, not two: in
                        // an initial sync these lookups were 7 % of the receiver's time).
                        if case_records.get(number)?.is_some() {
                            return abort(StoreError::AlreadyExists(case.number.clone()));
                        }
                        feed_head += 1;
                        let record = CaseRecord {
                            feed_seq: feed_head,
                            chunk_count: 0,
                            chunk_bytes: 0,
                            saved_bytes: case.saved.len() as u64,
                            heads: case.heads.clone(),
                        };
                        documents.insert(number, document_record.as_slice())?;
                        case_records.insert(number, record.encode())?;
                        summaries.insert(number, case.summary_record.as_slice())?;
                        for key in &case.index_keys {
                            indexes.insert(key.as_slice(), &[][..])?;
                        }
                        feed.insert(
                            &feed_head.to_be_bytes()[..],
                            encode_feed_value(&case.number),
                        )?;
                        feed_positions.push(feed_head);
                    }
                    write_count_changes(indexes, &count_changes)?;
                    meta.insert(FEED_HEAD_KEY, &feed_head.to_be_bytes()[..])?;
                    let new_count = case_count.saturating_add(cases.len() as u64);
                    meta.insert(CASE_COUNT_KEY, &new_count.to_be_bytes()[..])?;
                    for (key, value) in meta_entries {
                        meta.insert(key.as_slice(), value.as_slice())?;
                    }
                    Ok(feed_positions)
                },
            );
        finish(result)
    }

    /// Commits one update of an existing case: document bytes, summary, index difference, its
    /// feed entry moved to a new position, and the update's node meta entries.
    pub(crate) fn write_update(
        &self,
        number: &str,
        update: &PreparedUpdate,
    ) -> Result<FeedSeq, StoreError> {
        let positions = self.write_updates(&[(number, update, None)], &[])?;
        positions
            .first()
            .copied()
            .ok_or_else(|| crate::codec::corrupt("feed position of an update", "none handed out"))
    }

    /// Commits updates of several cases, and node meta entries, in one transaction, in order.
    /// An update given the feed position its case had when it was computed is written only if
    /// the case is still there: otherwise nothing is written and the error is
    /// `ChangedMeanwhile` for that case.
    pub(crate) fn write_updates(
        &self,
        updates: &[(&str, &PreparedUpdate, Option<FeedSeq>)],
        meta_entries: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<FeedSeq>, StoreError> {
        self.free_space.check()?;
        let trees = &self.trees;
        // Encoded here, not in the closure, because the closure runs under sled's global lock.
        let document_records: Vec<Option<Vec<u8>>> = updates
            .iter()
            .map(|(_, update, _)| match &update.document_write {
                DocumentWrite::Unchanged => None,
                DocumentWrite::Append(chunk) => Some(encode_versioned(CHUNK_RECORD_VERSION, chunk)),
                DocumentWrite::Compact(saved) => {
                    Some(encode_versioned(DOCUMENT_RECORD_VERSION, saved))
                }
            })
            .collect();
        let result = (
            &trees.documents,
            &trees.changes,
            &trees.case_records,
            &trees.summaries,
            &trees.indexes,
            &trees.feed,
            &trees.meta,
        )
            .transaction(
                |(documents, changes, case_records, summaries, indexes, feed, meta)| {
                    let mut positions = Vec::with_capacity(updates.len());
                    let mut count_changes = CountChanges::default();
                    for ((number, update, based_on), document_record) in
                        updates.iter().zip(&document_records)
                    {
                        let number = *number;
                        let key = number.as_bytes();
                        let record = match case_records.get(key)? {
                            None => return abort(StoreError::NotFound(number.to_owned())),
                            Some(bytes) => match CaseRecord::decode(number, &bytes) {
                                Ok(record) => record,
                                Err(error) => return abort(error),
                            },
                        };
                        if based_on.is_some_and(|based_on| based_on != record.feed_seq) {
                            return abort(StoreError::ChangedMeanwhile(number.to_owned()));
                        }
                        let old_index_keys = match summaries.get(key)? {
                            Some(bytes) => match decode_summary(number, &bytes) {
                                Ok(summary) => index_keys(&summary),
                                Err(error) => {
                                    // The update rewrites the summary, which heals it; index entries
                                    // of the damaged one may linger, but listings re-check every
                                    // summary, so they only cost a lookup.
                                    tracing::warn!(case = number, %error, "replacing a corrupt summary");
                                    Vec::new()
                                }
                            },
                            None => Vec::new(),
                        };
                        for old_key in &old_index_keys {
                            if update.index_keys.binary_search(old_key).is_err() {
                                indexes.remove(old_key.as_slice())?;
                            }
                        }
                        for new_key in &update.index_keys {
                            if old_index_keys.binary_search(new_key).is_err() {
                                indexes.insert(new_key.as_slice(), &[][..])?;
                            }
                        }
                        count_changes.replace(&old_index_keys, &update.index_keys);
                        summaries.insert(key, update.summary_record.as_slice())?;

                        let feed_seq = read_meta_u64_in(meta, FEED_HEAD_KEY)? + 1;
                        feed.remove(&record.feed_seq.to_be_bytes()[..])?;
                        feed.insert(&feed_seq.to_be_bytes()[..], encode_feed_value(number))?;
                        meta.insert(FEED_HEAD_KEY, &feed_seq.to_be_bytes()[..])?;
                        for (meta_key, value) in &update.meta {
                            meta.insert(meta_key.as_slice(), value.as_slice())?;
                        }

                        let mut new_record = CaseRecord {
                            feed_seq,
                            heads: update.heads.clone(),
                            ..record.clone()
                        };
                        match (&update.document_write, document_record) {
                            (DocumentWrite::Append(chunk), Some(chunk_record)) => {
                                changes.insert(
                                    chunk_key(number, record.chunk_count),
                                    chunk_record.as_slice(),
                                )?;
                                new_record.chunk_count = record.chunk_count.saturating_add(1);
                                new_record.chunk_bytes =
                                    record.chunk_bytes.saturating_add(chunk.len() as u64);
                            }
                            (DocumentWrite::Compact(saved), Some(saved_record)) => {
                                documents.insert(key, saved_record.as_slice())?;
                                for index in 0..record.chunk_count {
                                    changes.remove(chunk_key(number, index))?;
                                }
                                new_record.chunk_count = 0;
                                new_record.chunk_bytes = 0;
                                new_record.saved_bytes = saved.len() as u64;
                            }
                            _ => {}
                        }
                        case_records.insert(key, new_record.encode())?;
                        positions.push(feed_seq);
                    }
                    write_count_changes(indexes, &count_changes)?;
                    for (key, value) in meta_entries {
                        meta.insert(key.as_slice(), value.as_slice())?;
                    }
                    Ok(positions)
                },
            );
        finish(result)
    }

    pub(crate) fn read_case_record(&self, number: &str) -> Result<Option<CaseRecord>, StoreError> {
        match self.trees.case_records.get(number.as_bytes())? {
            None => Ok(None),
            Some(bytes) => CaseRecord::decode(number, &bytes).map(Some),
        }
    }

    /// The stored bytes of one case. Callers hold the case's lock, so the record, the saved
    /// document and the chunks, read one by one, belong together.
    pub(crate) fn read_document(&self, number: &str) -> Result<Option<StoredDocument>, StoreError> {
        let Some(record) = self.read_case_record(number)? else {
            return Ok(None);
        };
        let what = format!("document of case {number}");
        let document = self
            .trees
            .documents
            .get(number.as_bytes())?
            .ok_or_else(|| corrupt(&what, "missing although the case is recorded"))?;
        let saved = decode_versioned(&what, DOCUMENT_RECORD_VERSION, &document)?.to_vec();
        let mut chunks = Vec::with_capacity(record.chunk_count as usize);
        for index in 0..record.chunk_count {
            let chunk_what = format!("change chunk {index} of case {number}");
            let chunk = self
                .trees
                .changes
                .get(chunk_key(number, index))?
                .ok_or_else(|| corrupt(&chunk_what, "missing"))?;
            chunks.push(decode_versioned(&chunk_what, CHUNK_RECORD_VERSION, &chunk)?.to_vec());
        }
        Ok(Some(StoredDocument { saved, chunks }))
    }

    pub(crate) fn read_summary(&self, number: &str) -> Result<Option<CaseSummary>, StoreError> {
        match self.trees.summaries.get(number.as_bytes())? {
            None => Ok(None),
            Some(bytes) => decode_summary(number, &bytes).map(Some),
        }
    }

    pub(crate) fn for_each_summary(
        &self,
        mut visit: impl FnMut(CaseSummary) -> bool,
    ) -> Result<(), StoreError> {
        for item in self.trees.summaries.iter() {
            let (key, value) = item?;
            let number = std::str::from_utf8(&key)
                .map_err(|error| corrupt("summary key", error.to_string()))?;
            if !visit(decode_summary(number, &value)?) {
                break;
            }
        }
        Ok(())
    }

    /// Case `number`'s stored ledger row record, if the keeper has written one.
    pub(crate) fn read_ledger_row(&self, number: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees
            .ledger_rows
            .get(number.as_bytes())?
            .map(|value| value.to_vec()))
    }

    /// The feed position the ledger rows' keeper has gone through (0: none yet).
    pub(crate) fn ledger_rows_through(&self) -> Result<FeedSeq, StoreError> {
        match self.trees.ledger_rows.get(LEDGER_ROWS_THROUGH_KEY)? {
            None => Ok(0),
            Some(value) => decode_u64_value("ledger rows position", &value),
        }
    }

    /// Writes ledger row records and the keeper's new position in one batch. Unflushed: a crash
    /// loses at most the last batches, which the keeper then writes again (its position is lost
    /// with them).
    pub(crate) fn write_ledger_rows(
        &self,
        rows: &[(CaseId, Vec<u8>)],
        through: FeedSeq,
    ) -> Result<(), StoreError> {
        self.free_space.check()?;
        let mut batch = sled::Batch::default();
        for (number, record) in rows {
            batch.insert(number.as_bytes(), record.as_slice());
        }
        batch.insert(LEDGER_ROWS_THROUGH_KEY, &through.to_be_bytes()[..]);
        self.trees.ledger_rows.apply_batch(batch)?;
        Ok(())
    }

    /// Whether every summary carries its petitioners' names (see [`NAMES_COMPLETE_KEY`]).
    pub(crate) fn petitioner_names_complete(&self) -> Result<bool, StoreError> {
        Ok(self.trees.meta.contains_key(NAMES_COMPLETE_KEY)?)
    }

    /// Where the names migration stopped: the last case number it rewrote, if any.
    pub(crate) fn petitioner_names_through(&self) -> Result<Option<CaseId>, StoreError> {
        match self.trees.meta.get(NAMES_THROUGH_KEY)? {
            None => Ok(None),
            Some(value) => String::from_utf8(value.to_vec())
                .map(Some)
                .map_err(|error| corrupt("names migration position", error.to_string())),
        }
    }

    /// Up to `limit` summary records (number, stored bytes) after `after`, in key order.
    pub(crate) fn summary_records_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(CaseId, Vec<u8>)>, StoreError> {
        let range = match after {
            Some(after) => self.trees.summaries.range::<&[u8], _>((
                std::ops::Bound::Excluded(after.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.trees.summaries.iter(),
        };
        let mut records = Vec::with_capacity(limit.min(1024));
        for item in range.take(limit) {
            let (key, value) = item?;
            let number = String::from_utf8(key.to_vec())
                .map_err(|error| corrupt("summary key", error.to_string()))?;
            records.push((number, value.to_vec()));
        }
        Ok(records)
    }

    /// Writes one batch of the names migration, with its position (`through`) and, when it is
    /// the last, the mark that it is complete, in one transaction. A summary whose stored bytes
    /// are no longer those the rewrite was computed from is left alone: a write meanwhile
    /// replaced it with one that has the names. The feed does not move (the case is unchanged),
    /// nor do the index keys (none holds a name). Answers the rewrites written.
    pub(crate) fn write_named_summaries<'a>(
        &self,
        rewrites: &'a [SummaryRewrite],
        through: Option<&str>,
        complete: bool,
    ) -> Result<Vec<&'a SummaryRewrite>, StoreError> {
        self.free_space.check()?;
        let trees = &self.trees;
        let result = (&trees.summaries, &trees.meta).transaction(|(summaries, meta)| {
            let mut written = Vec::with_capacity(rewrites.len());
            for rewrite in rewrites {
                let key = rewrite.number.as_bytes();
                let current = summaries.get(key)?;
                if current.as_deref() != Some(rewrite.based_on.as_slice()) {
                    continue;
                }
                summaries.insert(key, rewrite.record.as_slice())?;
                written.push(rewrite);
            }
            if let Some(through) = through {
                meta.insert(NAMES_THROUGH_KEY, through.as_bytes())?;
            }
            if complete {
                meta.insert(NAMES_COMPLETE_KEY, &[1][..])?;
            }
            Ok(written)
        });
        finish(result)
    }

    pub(crate) fn warm_indexes(
        &self,
        stop_requested: &dyn Fn() -> bool,
    ) -> Result<u64, StoreError> {
        let mut read = 0u64;
        for key in self.trees.indexes.iter().keys() {
            key?;
            read += 1;
            if read.is_multiple_of(WARM_STOP_CHECK_EVERY) && stop_requested() {
                break;
            }
        }
        Ok(read)
    }

    pub(crate) fn list(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, StoreError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let candidates = match plan_scan(filter) {
            IndexScan::AllSummaries => {
                self.for_each_summary(|summary| {
                    if matches(filter, &summary) {
                        found.push(summary);
                    }
                    found.len() < limit
                })?;
                return Ok(found);
            }
            IndexScan::Prefix(prefix) => {
                // Keys of one component come most urgent first (`index.rs`); a listing not by
                // deadline is in case number order: the numbers are taken from the keys and
                // sorted, then the summaries read in that order until `limit` match.
                let mut numbers = Vec::new();
                for key in self.trees.indexes.scan_prefix(prefix).keys() {
                    numbers.push(number_from_index_key(&key?)?);
                }
                numbers.sort_unstable();
                return self.list_candidates(numbers.into_iter().map(Ok), filter, limit);
            }
            IndexScan::Range { start, end } => self.trees.indexes.range(start..end),
        };
        let numbers = candidates.keys().map(|key| number_from_index_key(&key?));
        self.list_candidates(numbers, filter, limit)
    }

    /// The summaries of the cases `numbers` names that match `filter`, at most its limit, in
    /// that order.
    pub(crate) fn list_numbers(
        &self,
        numbers: impl Iterator<Item = Result<CaseId, StoreError>>,
        filter: &CaseFilter,
    ) -> Result<Vec<CaseSummary>, StoreError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.list_candidates(numbers, filter, limit)
    }

    /// The index tree, for the 台账's pages (`index::page`).
    pub(crate) fn indexes(&self) -> &sled::Tree {
        &self.trees.indexes
    }

    /// Every summary that decodes, in case number order, for the readers that derive something
    /// from all of them (the index rebuild, the names held in memory). A corrupt summary is
    /// skipped with a warning: the next write of the case heals it (and indexes it, and tells
    /// its names), and listings re-check every summary they read.
    pub(crate) fn readable_summaries(
        &self,
    ) -> impl Iterator<Item = Result<CaseSummary, StoreError>> + '_ {
        self.trees.summaries.iter().filter_map(|item| {
            let (key, value) = match item {
                Ok(item) => item,
                Err(error) => return Some(Err(error.into())),
            };
            let number = match std::str::from_utf8(&key) {
                Ok(number) => number,
                Err(error) => return Some(Err(corrupt("summary key", error.to_string()))),
            };
            match decode_summary(number, &value) {
                Ok(summary) => Some(Ok(summary)),
                Err(error) => {
                    tracing::warn!(case = number, %error, "skipping a corrupt summary");
                    None
                }
            }
        })
    }

    /// The summaries of the cases `numbers` names that match `filter`, at most `limit`, in that
    /// order.
    fn list_candidates(
        &self,
        numbers: impl Iterator<Item = Result<CaseId, StoreError>>,
        filter: &CaseFilter,
        limit: usize,
    ) -> Result<Vec<CaseSummary>, StoreError> {
        let mut found = Vec::new();
        // sled iterators are not snapshots: a case updated during the scan can show up under its
        // old and its new key, so numbers already seen are skipped.
        let mut seen = std::collections::HashSet::new();
        for number in numbers {
            let number = number?;
            if !seen.insert(number.clone()) {
                continue;
            }
            let Some(summary) = self.read_summary(&number)? else {
                tracing::warn!(case = number, "index entry without a summary");
                continue;
            };
            if matches(filter, &summary) {
                found.push(summary);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// How many feed entries (cases) come after position `after`.
    pub(crate) fn feed_count_after(&self, after: FeedSeq) -> Result<u64, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(0);
        };
        let mut count = 0u64;
        for item in self.trees.feed.range(first.to_be_bytes()..) {
            item?;
            count += 1;
        }
        Ok(count)
    }

    pub(crate) fn feed_since(
        &self,
        after: FeedSeq,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        for item in self.trees.feed.range(first.to_be_bytes()..).take(limit) {
            let (key, value) = item?;
            let seq = decode_u64_key("feed key", &key)?;
            entries.push(FeedEntry {
                seq,
                case: decode_feed_value(seq, &value)?,
            });
        }
        Ok(entries)
    }

    /// Hands out the next number for `prefix`; durable once the caller has flushed.
    pub(crate) fn next_counter(&self, prefix: &str) -> Result<u64, StoreError> {
        self.update_counter(prefix, |current| {
            current
                .checked_add(1)
                .ok_or_else(|| corrupt(format!("counter {prefix}"), "exhausted"))
        })
    }

    /// Raise the counter of `prefix` to at least `at_least` (never lower it); returns its value.
    pub(crate) fn raise_counter(&self, prefix: &str, at_least: u64) -> Result<u64, StoreError> {
        self.update_counter(prefix, |current| Ok(current.max(at_least)))
    }

    /// Set the counter of `prefix` (0 when none) to what `next` makes of it, in one transaction;
    /// returns the new value.
    fn update_counter(
        &self,
        prefix: &str,
        next: impl Fn(u64) -> Result<u64, StoreError>,
    ) -> Result<u64, StoreError> {
        self.free_space.check()?;
        let result = self.trees.counters.transaction(|counters| {
            let current = match counters.get(prefix.as_bytes())? {
                None => 0,
                Some(value) => match decode_u64_value(&format!("counter {prefix}"), &value) {
                    Ok(current) => current,
                    Err(error) => return abort(error),
                },
            };
            let value = match next(current) {
                Ok(value) => value,
                Err(error) => return abort(error),
            };
            if value != current {
                counters.insert(prefix.as_bytes(), &value.to_be_bytes()[..])?;
            }
            Ok(value)
        });
        finish(result)
    }

    pub(crate) fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees
            .meta
            .get(node_meta_key(key))?
            .map(|value| value.to_vec()))
    }

    pub(crate) fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.free_space.check()?;
        self.trees.meta.insert(node_meta_key(key), value)?;
        Ok(())
    }

    /// Node meta entries whose key starts with `prefix`, in key order, at most `limit`.
    pub(crate) fn meta_scan(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let stored_prefix = node_meta_key(prefix);
        let mut entries = Vec::new();
        for entry in self.trees.meta.scan_prefix(&stored_prefix).take(limit) {
            let (key, value) = entry?;
            let key = String::from_utf8_lossy(&key[NODE_META_PREFIX.len()..]).into_owned();
            entries.push((key, value.to_vec()));
        }
        Ok(entries)
    }

    /// Writes all entries or none (one sled batch).
    pub(crate) fn meta_put_many(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        self.free_space.check()?;
        let mut batch = sled::Batch::default();
        for (key, value) in entries {
            batch.insert(key.as_slice(), value.as_slice());
        }
        self.trees.meta.apply_batch(batch)?;
        Ok(())
    }

    fn log_tree(&self, log: Log) -> &sled::Tree {
        match log {
            Log::Access => &self.trees.access_log,
            Log::Quarantine => &self.trees.quarantine,
        }
    }

    /// Append a caller's record to an append-only log; returns its id.
    pub(crate) fn append_log(&self, log: Log, record: &[u8]) -> Result<u64, StoreError> {
        self.free_space.check()?;
        // sled's id generator never repeats, even after a crash, and increases, which is all an
        // append-only log needs; gaps after a restart are expected. Shifted by one so that 0
        // stays free as the "from the beginning" cursor, as in the feed.
        let id = self
            .database
            .generate_id()?
            .checked_add(1)
            .ok_or_else(|| corrupt("log id generator", "exhausted"))?;
        self.log_tree(log).insert(
            &id.to_be_bytes()[..],
            encode_versioned(LOG_RECORD_VERSION, record),
        )?;
        Ok(id)
    }

    /// Append a quarantine record unless a record under `key` was appended before (one
    /// transaction over the record and its key, so neither is ever written without the other).
    /// Returns the new record's id, or `None` when it was recorded already.
    pub(crate) fn append_quarantine_once(
        &self,
        key: &QuarantineKey<'_>,
        record: &[u8],
    ) -> Result<Option<u64>, StoreError> {
        self.free_space.check()?;
        let key = key.encode();
        let id = self
            .database
            .generate_id()?
            .checked_add(1)
            .ok_or_else(|| corrupt("log id generator", "exhausted"))?;
        let value = encode_versioned(LOG_RECORD_VERSION, record);
        let result =
            (&self.trees.quarantine_keys, &self.trees.quarantine).transaction(|(keys, log)| {
                if keys.get(&key)?.is_some() {
                    return Ok(None);
                }
                keys.insert(key.as_slice(), &id.to_be_bytes()[..])?;
                log.insert(&id.to_be_bytes()[..], value.as_slice())?;
                Ok(Some(id))
            });
        finish(result)
    }

    pub(crate) fn log_since(
        &self,
        log: Log,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut records = Vec::new();
        for item in self.log_tree(log).range(first.to_be_bytes()..).take(limit) {
            let (key, value) = item?;
            let id = decode_u64_key("log key", &key)?;
            let what = format!("{} record {id}", log.name());
            records.push((
                id,
                decode_versioned(&what, LOG_RECORD_VERSION, &value)?.to_vec(),
            ));
        }
        Ok(records)
    }

    #[cfg(test)]
    pub(crate) fn raw_tree(&self, name: &str) -> Option<&sled::Tree> {
        let trees = &self.trees;
        Some(match name {
            "documents" => &trees.documents,
            "changes" => &trees.changes,
            "case_records" => &trees.case_records,
            "summaries" => &trees.summaries,
            "indexes" => &trees.indexes,
            "feed" => &trees.feed,
            "ledger_rows" => &trees.ledger_rows,
            "meta" => &trees.meta,
            "counters" => &trees.counters,
            "access_log" => &trees.access_log,
            "quarantine" => &trees.quarantine,
            "quarantine_keys" => &trees.quarantine_keys,
            _ => return None,
        })
    }

    /// A tree a snapshot copies as it is (`snapshot.rs`), by name; `None` for any other name.
    pub(crate) fn snapshot_tree(&self, name: &str) -> Result<Option<sled::Tree>, StoreError> {
        if !SNAPSHOT_TREES.contains(&name) {
            return Ok(None);
        }
        Ok(Some(self.database.open_tree(name)?))
    }

    /// Every stored entry of one case as it is now (bookkeeping record, saved document, its
    /// chunks, summary) and its feed position; `None` if the case is not stored. The caller
    /// keeps writes of the case out meanwhile.
    pub(crate) fn case_entries(
        &self,
        number: &str,
    ) -> Result<Option<(FeedSeq, Vec<SnapshotEntry>)>, StoreError> {
        let key = number.as_bytes();
        let Some(record_bytes) = self.trees.case_records.get(key)? else {
            return Ok(None);
        };
        let record = CaseRecord::decode(number, &record_bytes)?;
        let missing = |what: &str| corrupt(format!("{what} of case {number}"), "missing");
        let document = self
            .trees
            .documents
            .get(key)?
            .ok_or_else(|| missing("document"))?;
        let summary = self
            .trees
            .summaries
            .get(key)?
            .ok_or_else(|| missing("summary"))?;
        let mut entries = Vec::with_capacity(3 + record.chunk_count as usize);
        entries.push(SnapshotEntry::new("case_records", key, &record_bytes));
        entries.push(SnapshotEntry::new("documents", key, &document));
        for index in 0..record.chunk_count {
            let chunk_key = chunk_key(number, index);
            let chunk = self
                .trees
                .changes
                .get(&chunk_key)?
                .ok_or_else(|| missing(&format!("change chunk {index}")))?;
            entries.push(SnapshotEntry::new("changes", &chunk_key, &chunk));
        }
        entries.push(SnapshotEntry::new("summaries", key, &summary));
        Ok(Some((record.feed_seq, entries)))
    }

    /// The node's meta entries (not the store's own keys), leaving out those whose key starts
    /// with one of `skipped_prefixes` (keys as callers name them).
    pub(crate) fn node_meta_entries(
        &self,
        skipped_prefixes: &[&str],
    ) -> Result<Vec<SnapshotEntry>, StoreError> {
        let skipped: Vec<Vec<u8>> = skipped_prefixes
            .iter()
            .map(|prefix| node_meta_key(prefix))
            .collect();
        let mut entries = Vec::new();
        for item in self.trees.meta.scan_prefix(NODE_META_PREFIX) {
            let (key, value) = item?;
            if skipped.iter().any(|prefix| key.starts_with(prefix)) {
                continue;
            }
            entries.push(SnapshotEntry::new("meta", &key, &value));
        }
        Ok(entries)
    }

    /// The meta entry that sets a restored store's feed head.
    pub(crate) fn feed_head_entry(position: FeedSeq) -> SnapshotEntry {
        SnapshotEntry::new("meta", FEED_HEAD_KEY, &position.to_be_bytes())
    }

    /// Rebuilds what a restore does not copy (the feed, the indexes, the case count) from the
    /// copied bookkeeping records and summaries, checking that each case is whole. Answers the
    /// number of cases.
    pub(crate) fn rebuild_after_restore(&self) -> Result<u64, StoreError> {
        let mut feed_head = self.feed_head()?;
        let mut cases = 0u64;
        let mut count_changes = CountChanges::default();
        for item in self.trees.case_records.iter() {
            let (key, record_bytes) = item?;
            let number = std::str::from_utf8(&key)
                .map_err(|error| corrupt("case record key", error.to_string()))?;
            let record = CaseRecord::decode(number, &record_bytes)?;
            if !self.trees.documents.contains_key(&key)? {
                return Err(corrupt(format!("document of case {number}"), "missing"));
            }
            let summary = self
                .read_summary(number)?
                .ok_or_else(|| corrupt(format!("summary of case {number}"), "missing"))?;
            let keys = index_keys(&summary);
            count_changes.replace(&[], &keys);
            for index_key in keys {
                self.trees.indexes.insert(index_key, &[][..])?;
            }
            let seq_key = record.feed_seq.to_be_bytes();
            if self
                .trees
                .feed
                .insert(&seq_key[..], encode_feed_value(number))?
                .is_some()
            {
                return Err(corrupt(
                    format!("feed entry {}", record.feed_seq),
                    "held by two cases",
                ));
            }
            feed_head = feed_head.max(record.feed_seq);
            cases += 1;
        }
        // A restore writes into a new store (`is_new`): there are no counts to add to.
        self.trees
            .indexes
            .apply_batch(fresh_counts_batch(&count_changes))?;
        self.trees
            .meta
            .insert(FEED_HEAD_KEY, &feed_head.to_be_bytes()[..])?;
        self.trees
            .meta
            .insert(CASE_COUNT_KEY, &cases.to_be_bytes()[..])?;
        // The copied summaries may come from a build that kept no names: the names migration
        // goes over them (rewriting only those whose names differ from their documents').
        self.trees.meta.remove(NAMES_COMPLETE_KEY)?;
        self.trees.meta.remove(NAMES_THROUGH_KEY)?;
        self.flush()?;
        Ok(cases)
    }

    /// Whether nothing but the format version has been written: a restore writes only into such
    /// a store.
    pub(crate) fn is_new(&self) -> Result<bool, StoreError> {
        Ok(self.trees.case_records.is_empty()
            && self.trees.documents.is_empty()
            && self
                .trees
                .meta
                .scan_prefix(NODE_META_PREFIX)
                .next()
                .is_none())
    }
}

/// The trees a snapshot copies entry by entry: the cases' and the meta, then those it reads whole
/// after the cases ([`SNAPSHOT_TREES_AFTER_CASES`]). The feed and the indexes are rebuilt from
/// the cases on restore; sessions are not kept (people sign in again on a restored node).
pub(crate) const SNAPSHOT_TREES: &[&str] = &[
    "documents",
    "changes",
    "case_records",
    "summaries",
    "meta",
    "counters",
    "access_log",
    "quarantine",
    "quarantine_keys",
    "accounts",
    "tokens",
];

/// The trees a snapshot reads whole, after the cases: the tail of [`SNAPSHOT_TREES`].
pub(crate) const SNAPSHOT_TREES_AFTER_CASES: &[&str] = SNAPSHOT_TREES.split_at(5).1;
