//! A node's durable store. All sled access in the project goes through this crate.
//!
//! sled 0.34 has public reports of corruption after an abrupt stop (sled issue #1533), so sled is
//! kept behind this one small API: if it has to be replaced, nothing else changes.

use fengqiao_case::{CaseDocument, CaseId, CaseSummary, Status, Category};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record {what} is corrupt: {why}")]
    Corrupt { what: String, why: String },
    #[error("case {0} already exists")]
    AlreadyExists(CaseId),
    #[error("no case {0}")]
    NotFound(CaseId),
    #[error(transparent)]
    Document(#[from] fengqiao_case::DocumentError),
}

/// Position in this node's change feed: strictly increasing, one per document update.
pub type FeedSeq = u64;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Loaded documents kept in memory (each ~25 KiB live).
    pub cache_capacity: usize,
    /// The automerge actor id this node writes with.
    pub actor: Vec<u8>,
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
    pub limit: Option<usize>,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub seq: FeedSeq,
    pub case: CaseId,
}

/// A case to write as a new document: the caller has built it with `fengqiao_case::lifecycle`.
#[derive(Debug)]
pub struct NewCase<'a> {
    pub document: &'a mut CaseDocument,
    pub summary: &'a CaseSummary,
}

#[derive(Debug)]
pub struct Store {}

impl Store {
    pub fn open(path: &std::path::Path, options: StoreOptions) -> Result<Store, StoreError> {
        let _ = (path, options);
        todo!()
    }

    /// Write new cases atomically (all or none) and durably; returns their feed positions.
    /// Fails with `AlreadyExists` (writing nothing) if any number is taken.
    pub fn create_cases(&self, cases: &mut [NewCase<'_>]) -> Result<Vec<FeedSeq>, StoreError> {
        let _ = cases;
        todo!()
    }

    /// Load (from cache or disk), let `change` mutate the document and return the new summary
    /// and a value for the caller, then persist the incremental change, summary, indexes and feed
    /// entry atomically and durably. Updates to one case are serialized; if `change` fails,
    /// nothing is written and the cached document is discarded.
    pub fn update_case<T, E>(
        &self,
        number: &str,
        change: impl FnOnce(&mut CaseDocument) -> Result<(CaseSummary, T), E>,
    ) -> Result<Result<(T, FeedSeq), E>, StoreError> {
        let _ = (number, change);
        todo!()
    }

    /// Run `read` on the case document (from cache or disk).
    pub fn with_case<T>(
        &self,
        number: &str,
        read: impl FnOnce(&mut CaseDocument) -> T,
    ) -> Result<Option<T>, StoreError> {
        let _ = (number, read);
        todo!()
    }

    pub fn summary(&self, number: &str) -> Result<Option<CaseSummary>, StoreError> {
        let _ = number;
        todo!()
    }

    pub fn list(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, StoreError> {
        let _ = filter;
        todo!()
    }

    /// Every summary, for measures.
    pub fn for_each_summary(
        &self,
        visit: impl FnMut(&CaseSummary),
    ) -> Result<(), StoreError> {
        let _ = visit;
        todo!()
    }

    pub fn case_count(&self) -> u64 {
        todo!()
    }

    /// Feed entries with `seq > after`, at most `limit`.
    pub fn feed_since(&self, after: FeedSeq, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        let _ = (after, limit);
        todo!()
    }

    /// Next case sequence number for `prefix` (region code + year), durable and never reused.
    pub fn next_case_sequence(&self, prefix: &str) -> Result<u64, StoreError> {
        let _ = prefix;
        todo!()
    }

    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = key;
        todo!()
    }

    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let _ = (key, value);
        todo!()
    }

    /// Append a line to the local access log (reads of personal data).
    pub fn log_access(&self, record: &[u8]) -> Result<(), StoreError> {
        let _ = record;
        todo!()
    }
}
