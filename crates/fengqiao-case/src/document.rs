//! The automerge document of one case: header map, append-only event list, schema version.
//!
//! Layout of the document root (schema version 1):
//! `schema_version` (uint), `header` (map of the `CaseHeader` fields), `events` (list of maps with
//! scalar fields `id`, `kind`, `payload` (JSON text), `at` (timestamp ms), `node`, `operator`, `prev`).

use crate::model::{CaseHeader, Event};

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("case document is corrupt or not a case document: {0}")]
    Malformed(String),
    #[error("case document has schema version {found}, this build reads up to {supported}")]
    UnsupportedVersion { found: u64, supported: u32 },
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// One case's automerge document. Loading does not validate the events' lifecycle: that is
/// [`crate::derive`]'s job; it does check the document's shape.
#[derive(Debug)]
pub struct CaseDocument {
    doc: automerge::AutoCommit,
}

impl CaseDocument {
    /// A new document holding `header` and its `register` event, written by `actor` (the node's
    /// 16-byte actor id, so every change is attributable to the node that made it).
    pub fn create(header: &CaseHeader, register: &Event, actor: &[u8]) -> Result<Self, DocumentError> {
        let _ = (header, register, actor);
        todo!()
    }

    /// Load a document saved with [`CaseDocument::save`], then any incremental chunks after it.
    pub fn load(saved: &[u8], incremental: &[&[u8]], actor: &[u8]) -> Result<Self, DocumentError> {
        let _ = (saved, incremental, actor);
        todo!()
    }

    /// The whole document, compacted.
    pub fn save(&mut self) -> Vec<u8> {
        todo!()
    }

    /// The changes made since the last `save` or `save_incremental` (empty if none).
    pub fn save_incremental(&mut self) -> Vec<u8> {
        todo!()
    }

    pub fn header(&self) -> Result<CaseHeader, DocumentError> {
        todo!()
    }

    pub fn events(&self) -> Result<Vec<Event>, DocumentError> {
        todo!()
    }

    /// Append an event (and, for `amend_header`, apply it to the header map) as one change.
    /// Callers check the lifecycle first: see [`crate::lifecycle::append`].
    pub fn push_event(&mut self, event: &Event) -> Result<(), DocumentError> {
        let _ = event;
        todo!()
    }

    /// Merge another replica of the same case into this one.
    pub fn merge(&mut self, other: &mut CaseDocument) -> Result<(), DocumentError> {
        let _ = other;
        todo!()
    }

    /// A copy that writes as another actor (a second replica, in tests and in sync).
    pub fn fork(&mut self, actor: &[u8]) -> CaseDocument {
        let _ = actor;
        todo!()
    }

    /// Current heads, hex-encoded.
    pub fn heads(&mut self) -> Vec<String> {
        todo!()
    }

    /// Access to the automerge document for the sync layer.
    pub fn automerge(&mut self) -> &mut automerge::AutoCommit {
        &mut self.doc
    }
}
