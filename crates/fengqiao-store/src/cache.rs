//! The bounded cache of loaded case documents and the per-case locks that serialize work on one case.
//!
//! A live automerge document costs ~25 KiB (PERF-NOTES), so only `cache_capacity` of them stay
//! loaded.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use fengqiao_case::{CaseDocument, CaseId};
use lru::LruCache;

/// A loaded document, shared between the cache and whoever is reading or updating it.
pub(crate) type DocumentHandle = Arc<Mutex<CaseDocument>>;

/// A panic in a caller's closure poisons a mutex without leaving the protected data in a state
/// the store relies on (an updated document is only put back after a successful commit), so the
/// poison is ignored rather than turned into a panic of every later caller.
pub(crate) fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct DocumentCache {
    documents: Mutex<LruCache<CaseId, DocumentHandle>>,
}

impl std::fmt::Debug for DocumentCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let documents = lock_ignoring_poison(&self.documents);
        formatter
            .debug_struct("DocumentCache")
            .field("loaded", &documents.len())
            .field("capacity", &documents.cap())
            .finish()
    }
}

impl DocumentCache {
    pub(crate) fn new(capacity: usize) -> DocumentCache {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        DocumentCache {
            documents: Mutex::new(LruCache::new(capacity)),
        }
    }

    pub(crate) fn get(&self, number: &str) -> Option<DocumentHandle> {
        lock_ignoring_poison(&self.documents).get(number).cloned()
    }

    /// Takes the document out, so nobody finds it while an update may leave it half-changed.
    pub(crate) fn take(&self, number: &str) -> Option<DocumentHandle> {
        lock_ignoring_poison(&self.documents).pop(number)
    }

    pub(crate) fn insert(&self, number: &str, handle: DocumentHandle) {
        let evicted = lock_ignoring_poison(&self.documents).push(number.to_owned(), handle);
        // Dropped after the lock is released: freeing a whole document takes a while, and
        // every reader of the cache waits on that lock.
        drop(evicted);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock_ignoring_poison(&self.documents).len()
    }
}

/// Per-case locks: the set of case numbers someone is working on. Memory is proportional to the
/// cases being worked on right now, not to the cases stored, and two different cases never wait
/// for each other (so a change to one case may read another through the store).
#[derive(Debug, Default)]
pub(crate) struct CaseLocks {
    held: Mutex<HashSet<CaseId>>,
    released: Condvar,
}

/// Releases its case when dropped.
#[derive(Debug)]
pub(crate) struct CaseGuard<'locks> {
    locks: &'locks CaseLocks,
    number: CaseId,
}

impl CaseLocks {
    pub(crate) fn new() -> CaseLocks {
        CaseLocks::default()
    }

    /// Held while a case is loaded from disk or updated, so a document is never loaded twice
    /// concurrently (the second copy would miss the first one's update) and updates of one case
    /// apply one after another. Not reentrant.
    pub(crate) fn lock(&self, number: &str) -> CaseGuard<'_> {
        let mut held = lock_ignoring_poison(&self.held);
        while held.contains(number) {
            held = self
                .released
                .wait(held)
                .unwrap_or_else(PoisonError::into_inner);
        }
        held.insert(number.to_owned());
        CaseGuard {
            locks: self,
            number: number.to_owned(),
        }
    }
}

impl Drop for CaseGuard<'_> {
    fn drop(&mut self) {
        lock_ignoring_poison(&self.locks.held).remove(&self.number);
        self.locks.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_case_lock_excludes_the_same_case_only() {
        let locks = Arc::new(CaseLocks::new());
        let first = locks.lock("a");
        // Another case is free while "a" is held.
        drop(locks.lock("b"));
        let entered = Arc::new(AtomicBool::new(false));
        let waiter = {
            let locks = Arc::clone(&locks);
            let entered = Arc::clone(&entered);
            std::thread::spawn(move || {
                let _second = locks.lock("a");
                entered.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!entered.load(Ordering::SeqCst));
        drop(first);
        waiter.join().expect("waiter finishes");
        assert!(entered.load(Ordering::SeqCst));
        assert!(lock_ignoring_poison(&locks.held).is_empty());
    }
}
