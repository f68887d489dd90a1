//! Consistent snapshots of a running store (a node's backup) and the writing of one into a new
//! store (its restore).
//!
//! A snapshot is of one feed position P: every case as it was once the commits up to P were
//! made, none after. sled keeps no old versions, so the snapshot keeps them itself while it runs
//! (copy on write): P is read, and the snapshot registered, under the store's commit order; from
//! then on every commit of a case the snapshot has not yet copied first copies that case's
//! entries as they are (at P) into the snapshot. The snapshot walks the cases in key order,
//! taking each case's kept copy if a commit made one, otherwise the case as stored, which is
//! still as it was at P (or was created after P, and is left out). Writes go on meanwhile: each
//! waits at most for one case's entries to be read. The node's meta entries are read with P;
//! the counters, logs and accounts at the end (counters only grow, so a restored node never
//! hands out a case number twice).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use crate::cache::lock_ignoring_poison;
use crate::storage::{SNAPSHOT_TREES_AFTER_CASES, Storage};
use crate::{FeedSeq, Store, StoreError};

/// One entry of one store tree, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub tree: &'static str,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl SnapshotEntry {
    pub(crate) fn new(tree: &'static str, key: &[u8], value: &[u8]) -> SnapshotEntry {
        SnapshotEntry {
            tree,
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }
}

/// What a finished snapshot held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotCounts {
    pub cases: u64,
    pub entries: u64,
}

/// The running snapshot, if any (one at a time).
#[derive(Debug, Default)]
pub(crate) struct SnapshotRegistry {
    active: Mutex<Option<ActiveSnapshot>>,
}

#[derive(Debug)]
struct ActiveSnapshot {
    position: FeedSeq,
    /// The greatest case number (key order) the snapshot has taken; commits of cases up to it
    /// need no copy.
    taken_up_to: Option<Vec<u8>>,
    /// Cases committed to since P before the snapshot took them: their entries at P.
    kept: HashMap<Vec<u8>, Vec<SnapshotEntry>>,
}

impl ActiveSnapshot {
    fn taken(&self, key: &[u8]) -> bool {
        self.taken_up_to
            .as_deref()
            .is_some_and(|taken| key <= taken)
    }
}

impl Store {
    /// Starts a snapshot of the store at its current feed position. `skipped_meta_prefixes`:
    /// node meta keys (as [`Store::meta_put`] names them) left out, e.g. what a node keeps about
    /// its peers that a restored node must learn again. Fails with `SnapshotRunning` while
    /// another snapshot runs.
    pub fn snapshot(&self, skipped_meta_prefixes: &[&str]) -> Result<Snapshot<'_>, StoreError> {
        self.summary_observation.in_commit_order(|| {
            let mut active = lock_ignoring_poison(&self.snapshots.active);
            if active.is_some() {
                return Err(StoreError::SnapshotRunning);
            }
            let position = self.storage.feed_head()?;
            let meta = self.storage.node_meta_entries(skipped_meta_prefixes)?;
            *active = Some(ActiveSnapshot {
                position,
                taken_up_to: None,
                kept: HashMap::new(),
            });
            Ok(Snapshot {
                store: self,
                position,
                meta,
            })
        })
    }

    /// Called in commit order before `numbers` are committed: keeps for the running snapshot,
    /// if any, the entries at P of each case it has not taken yet.
    pub(crate) fn keep_for_snapshot(&self, numbers: &[&str]) -> Result<(), StoreError> {
        let mut active = lock_ignoring_poison(&self.snapshots.active);
        let Some(snapshot) = active.as_mut() else {
            return Ok(());
        };
        for number in numbers {
            let key = number.as_bytes();
            if snapshot.taken(key) || snapshot.kept.contains_key(key) {
                continue;
            }
            if let Some((feed_seq, entries)) = self.storage.case_entries(number)?
                && feed_seq <= snapshot.position
            {
                snapshot.kept.insert(key.to_vec(), entries);
            }
        }
        Ok(())
    }

    /// The entries of one case for the snapshot at `position`, taken in commit order; none if
    /// the case was created after it.
    fn take_case_for_snapshot(
        &self,
        number: &str,
        position: FeedSeq,
    ) -> Result<Vec<SnapshotEntry>, StoreError> {
        self.summary_observation.in_commit_order(|| {
            let mut active = lock_ignoring_poison(&self.snapshots.active);
            let Some(snapshot) = active.as_mut() else {
                return Err(StoreError::SnapshotRunning);
            };
            let key = number.as_bytes();
            snapshot.taken_up_to = Some(key.to_vec());
            if let Some(kept) = snapshot.kept.remove(key) {
                return Ok(kept);
            }
            match self.storage.case_entries(number)? {
                Some((feed_seq, entries)) if feed_seq <= position => Ok(entries),
                _ => Ok(Vec::new()),
            }
        })
    }
}

/// A snapshot being taken; writes go on. Dropping it ends it.
#[derive(Debug)]
pub struct Snapshot<'store> {
    store: &'store Store,
    position: FeedSeq,
    meta: Vec<SnapshotEntry>,
}

impl Snapshot<'_> {
    /// The feed position the snapshot is of.
    pub fn position(&self) -> FeedSeq {
        self.position
    }

    /// Hands every entry of the snapshot to `emit`, in an order [`StoreRestore`] takes: the
    /// node's meta, the cases in key order, then the counters, logs and accounts. `emit` may be
    /// slow (a network): no lock is held while it runs.
    pub fn write_to<E: From<StoreError>>(
        mut self,
        mut emit: impl FnMut(SnapshotEntry) -> Result<(), E>,
    ) -> Result<SnapshotCounts, E> {
        let mut counts = SnapshotCounts::default();
        let mut emit_counted = |entry: SnapshotEntry, counts: &mut SnapshotCounts| {
            counts.entries += 1;
            emit(entry)
        };
        emit_counted(Storage::feed_head_entry(self.position), &mut counts)?;
        for entry in std::mem::take(&mut self.meta) {
            emit_counted(entry, &mut counts)?;
        }
        let case_records = self
            .store
            .storage
            .snapshot_tree("case_records")?
            .ok_or_else(|| crate::codec::corrupt("case records", "tree missing"))?;
        for item in case_records.iter().keys() {
            let key = item.map_err(StoreError::from)?;
            let number = std::str::from_utf8(&key)
                .map_err(|error| crate::codec::corrupt("case record key", error.to_string()))?;
            let entries = self.store.take_case_for_snapshot(number, self.position)?;
            if !entries.is_empty() {
                counts.cases += 1;
            }
            for entry in entries {
                emit_counted(entry, &mut counts)?;
            }
        }
        for tree_name in SNAPSHOT_TREES_AFTER_CASES {
            let tree = self
                .store
                .storage
                .snapshot_tree(tree_name)?
                .ok_or_else(|| crate::codec::corrupt(*tree_name, "not a snapshot tree"))?;
            for item in tree.iter() {
                let (key, value) = item.map_err(StoreError::from)?;
                emit_counted(SnapshotEntry::new(tree_name, &key, &value), &mut counts)?;
            }
        }
        Ok(counts)
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        *lock_ignoring_poison(&self.store.snapshots.active) = None;
    }
}

/// A new store being written from a snapshot's entries.
#[derive(Debug)]
pub struct StoreRestore {
    storage: Storage,
}

impl StoreRestore {
    /// Creates the store at `path`, which must hold no store yet (or an empty one).
    pub fn create(path: &Path) -> Result<StoreRestore, StoreError> {
        let storage = Storage::open(path, 0, crate::DEFAULT_PAGE_CACHE_BYTES)?;
        if !storage.is_new()? {
            return Err(StoreError::NotEmpty {
                path: path.display().to_string(),
            });
        }
        Ok(StoreRestore { storage })
    }

    /// Writes one entry of a snapshot as it is.
    pub fn add(&mut self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let tree = self.storage.snapshot_tree(tree)?.ok_or_else(|| {
            crate::codec::corrupt(format!("snapshot tree {tree:?}"), "not a tree of the store")
        })?;
        tree.insert(key, value)?;
        Ok(())
    }

    /// Rebuilds the feed, indexes and case count from the cases written, checks every case is
    /// whole, flushes. Answers the number of cases.
    pub fn finish(self) -> Result<u64, StoreError> {
        self.storage.rebuild_after_restore()
    }
}
