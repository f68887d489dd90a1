//! The automerge document of one case: an append-only list of signed events, schema version.
//!
//! Layout of the document root (schema version 2): `schema_version` (uint) and `events` (list of
//! maps with scalar fields `id`, `kind`, `payload` (JSON text), `at` (timestamp ms), `node`,
//! `operator`, `prev`, `hlc_ms` (int), `hlc_counter` (uint), and the signature: `sig_version`
//! (uint), `signer` (32 bytes), `signature` (64 bytes)), and on an event a ledger import made,
//! `imported` (its `ImportMark` as JSON text; absent otherwise, so other events and the builds
//! before it are unchanged), and on an event dated in the past with a reason, `backdated_reason`
//! (text; absent otherwise, likewise).
//!
//! The header is not a map of its own: it is what the register event's payload registered, with
//! every `amend_header` event applied in list order. So everything a case says is in a signed
//! event, and a replica that writes to the document outside an event changes nothing anyone
//! reads. List order is the same on every replica, so concurrent amendments of one field settle
//! on the same value everywhere.
//!
//! Schema version 1 documents (written before events were signed) are still read: their header is
//! a `header` map whose plain fields are scalars and whose nested ones (`petitioners`, `location`,
//! `ownership`) are JSON text, and their events have no clock or signature fields.
//! Enums are stored with their serde (`snake_case`) spelling so the document, the JSON API and CSV
//! imports share one vocabulary.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, ScalarValueRef,
    Value, ValueRef,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::Cell;

use crate::causal_past::CausalPast;
use crate::model::{
    CaseHeader, Event, EventKind, EventSignature, HeaderAmendment, HybridTimestamp, Location,
    Ownership, Petitioner, SCHEMA_VERSION,
};

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("case document is corrupt or not a case document: {0}")]
    Malformed(String),
    #[error("case document has schema version {found}, this build reads up to {supported}")]
    UnsupportedVersion { found: u64, supported: u32 },
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

const SCHEMA_VERSION_KEY: &str = "schema_version";
const HEADER_KEY: &str = "header";
const EVENTS_KEY: &str = "events";

/// One case's automerge document. Loading does not validate the events' lifecycle: that is
/// [`crate::derive`]'s job; it does check the document's shape.
#[derive(Debug)]
pub struct CaseDocument {
    doc: automerge::AutoCommit,
    /// What the load's shape check read, for the first read after
    /// [`CaseDocument::load_for_update`].
    read_at_load: ReadAtLoad,
}

/// The header and events a load read to check the document's shape, kept for the first read
/// that follows: a merge into a stored case reads its events right after the store loaded it,
/// and reading them through automerge a second time was about a tenth of the receiving side's
/// work in a catch-up (BENCHMARKS.md, session 16). Taken by that first read, so a document read
/// after its load does not hold its events twice; dropped by anything that may change the
/// document (every `&mut` path to automerge goes through [`CaseDocument::automerge`],
/// [`CaseDocument::push_event`] or [`CaseDocument::merge`]) and by
/// [`CaseDocument::save_after`], which ends a store's update before the document may be cached.
#[derive(Default)]
struct ReadAtLoad(Cell<Option<Box<Contents>>>);

/// A document's header and events, as [`CaseDocument::contents`] reads them.
type Contents = (CaseHeader, Vec<Event>);

impl ReadAtLoad {
    fn holding(header: CaseHeader, events: Vec<Event>) -> ReadAtLoad {
        ReadAtLoad(Cell::new(Some(Box::new((header, events)))))
    }

    fn take(&self) -> Option<Contents> {
        self.0.take().map(|read| *read)
    }

    fn forget(&mut self) {
        *self.0.get_mut() = None;
    }
}

impl std::fmt::Debug for ReadAtLoad {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Reading the cell would take what it holds; its presence is all that matters here.
        formatter.write_str("ReadAtLoad")
    }
}

impl CaseDocument {
    /// A new document holding its `register` event, written by `actor` (the node's 16-byte actor
    /// id, so every change is attributable to the node that made it). The event's payload must
    /// carry `header`, the header as registered.
    pub fn create(
        header: &CaseHeader,
        register: &Event,
        actor: &[u8],
    ) -> Result<Self, DocumentError> {
        match &register.kind {
            EventKind::Register {
                header: Some(registered),
                ..
            } if registered.as_ref() == header => {}
            _ => {
                return Err(DocumentError::Malformed(format!(
                    "event {} is not the register event of case {}",
                    register.id, header.number
                )));
            }
        }
        let mut doc = AutoCommit::new().with_actor(ActorId::from(actor));
        let built = (|| -> Result<(), DocumentError> {
            doc.put(ROOT, SCHEMA_VERSION_KEY, u64::from(SCHEMA_VERSION))?;
            let events_object = doc.put_object(ROOT, EVENTS_KEY, ObjType::List)?;
            insert_event(&mut doc, &events_object, 0, register)?;
            Ok(())
        })();
        built?;
        doc.commit_with(change_options(register.at));
        Ok(CaseDocument {
            doc,
            read_at_load: ReadAtLoad::default(),
        })
    }

    /// Load a document saved with [`CaseDocument::save`], then any incremental chunks after it.
    ///
    /// An incremental chunk is applied up to its first unreadable change and the rest is ignored,
    /// as automerge does (a torn write loses only its own tail); the shape check that follows
    /// still refuses a document that ends up malformed.
    ///
    /// As with automerge itself, the next [`CaseDocument::save_incremental`] after a load returns
    /// the loaded changes again; callers that already hold them on disk discard that first chunk.
    pub fn load(saved: &[u8], incremental: &[&[u8]], actor: &[u8]) -> Result<Self, DocumentError> {
        Ok(CaseDocument::load_and_read(saved, incremental, actor)?.0)
    }

    /// [`CaseDocument::load`] for a caller about to change the document: what the load read is
    /// kept for the first read after it (see `ReadAtLoad`), which a merge makes right away.
    /// Only for a document that is read or changed before anything keeps it: one that sits in
    /// a cache unread would hold its events twice (a store that kept every loaded document
    /// this way used twice the memory).
    pub fn load_for_update(
        saved: &[u8],
        incremental: &[&[u8]],
        actor: &[u8],
    ) -> Result<Self, DocumentError> {
        let (mut document, header, events) =
            CaseDocument::load_and_read(saved, incremental, actor)?;
        document.read_at_load = ReadAtLoad::holding(header, events);
        Ok(document)
    }

    /// [`CaseDocument::load`], also handing back the header and events its shape check read, so
    /// that a caller which needs them (to derive the state of a case received from a peer) does
    /// not read the document a second time.
    pub fn load_and_read(
        saved: &[u8],
        incremental: &[&[u8]],
        actor: &[u8],
    ) -> Result<(Self, CaseHeader, Vec<Event>), DocumentError> {
        let mut doc = AutoCommit::load(saved)
            .map_err(|error| {
                DocumentError::Malformed(format!("cannot decode the saved document: {error}"))
            })?
            .with_actor(ActorId::from(actor));
        for (index, chunk) in incremental.iter().enumerate() {
            doc.load_incremental(chunk).map_err(|error| {
                DocumentError::Malformed(format!(
                    "cannot decode incremental chunk {index}: {error}"
                ))
            })?;
        }
        let document = CaseDocument {
            doc,
            read_at_load: ReadAtLoad::default(),
        };
        let (header, events) = document.contents()?;
        Ok((document, header, events))
    }

    /// The whole document, compacted, its columns not DEFLATE-compressed: what the store keeps
    /// and what a peer is sent whole. Inflating the columns was a third of every load of a
    /// stored or received case (with the shape check, about 0.19 against 0.13 ms per sample
    /// case in `fengqiao-bench-sync`); the price is about 4.0 KB per sample case instead of
    /// 2.3 KB on disk and in an initial sync. Either form
    /// loads: documents saved compressed before keep loading as they are.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save_nocompress()
    }

    /// The changes made since the last `save` or `save_incremental` (empty if none).
    pub fn save_incremental(&mut self) -> Vec<u8> {
        self.doc.save_incremental()
    }

    pub fn header(&self) -> Result<CaseHeader, DocumentError> {
        Ok(self.contents()?.0)
    }

    pub fn events(&self) -> Result<Vec<Event>, DocumentError> {
        if let Some((_, events)) = self.read_at_load.take() {
            return Ok(events);
        }
        self.check_version()?;
        read_events(&self.doc, &self.events_object()?)
    }

    /// Header and events, read once: what a caller needs to derive the case's state.
    pub fn contents(&self) -> Result<(CaseHeader, Vec<Event>), DocumentError> {
        if let Some(read) = self.read_at_load.take() {
            return Ok(read);
        }
        let version = self.check_version()?;
        let events = read_events(&self.doc, &self.events_object()?)?;
        let header = if version == 1 {
            read_header(&self.doc, &self.header_object()?)?
        } else {
            header_from_events(&events)?
        };
        Ok((header, events))
    }

    /// Append an event (and, for `amend_header`, apply it to the header map) as one change.
    /// Callers check the lifecycle first: see [`crate::appending::append`].
    ///
    /// `at` is stored with millisecond precision; anything finer is dropped.
    pub fn push_event(&mut self, event: &Event) -> Result<(), DocumentError> {
        self.read_at_load.forget();
        let version = self.check_version()?;
        let events_object = self.events_object()?;
        // Only a schema-1 document keeps its header in a map that an amendment must write.
        let header_object = match version {
            1 => Some(self.header_object()?),
            _ => None,
        };
        let length = self.doc.length(&events_object);
        let written = (|| -> Result<(), DocumentError> {
            insert_event(&mut self.doc, &events_object, length, event)?;
            if let (EventKind::AmendHeader { amendment }, Some(header_object)) =
                (&event.kind, &header_object)
            {
                write_amendment(&mut self.doc, header_object, amendment)?;
            }
            Ok(())
        })();
        if let Err(error) = written {
            // Half an event must never reach a later commit.
            self.doc.rollback();
            return Err(error);
        }
        self.doc.commit_with(change_options(event.at));
        Ok(())
    }

    /// Merge another replica of the same case into this one.
    ///
    /// Refuses a document of another case, or one created separately for the same number: their
    /// header and event list are different automerge objects, and merging them would leave two
    /// conflicting roots of which automerge silently shows one.
    pub fn merge(&mut self, other: &mut CaseDocument) -> Result<(), DocumentError> {
        other.check_version()?;
        let ours = self.events_object()?;
        let theirs = other.events_object()?;
        if ours != theirs {
            let our_number = self
                .header()
                .map(|header| header.number)
                .unwrap_or_default();
            let their_number = other
                .header()
                .map(|header| header.number)
                .unwrap_or_default();
            return Err(DocumentError::Malformed(format!(
                "cannot merge case document {their_number:?} into {our_number:?}: they were not \
                 created as replicas of one case"
            )));
        }
        self.read_at_load.forget();
        self.doc.merge(&mut other.doc)?;
        Ok(())
    }

    /// A document with nothing in it yet, writing as `actor`: the start from which a peer's
    /// changes are applied one by one when only some of them may be kept.
    pub fn empty(actor: &[u8]) -> CaseDocument {
        CaseDocument {
            doc: AutoCommit::new().with_actor(ActorId::from(actor)),
            read_at_load: ReadAtLoad::default(),
        }
    }

    /// A copy that writes as another actor (a second replica, in tests and in sync).
    pub fn fork(&mut self, actor: &[u8]) -> CaseDocument {
        CaseDocument {
            doc: self.doc.fork().with_actor(ActorId::from(actor)),
            read_at_load: ReadAtLoad::default(),
        }
    }

    /// Current heads, hex-encoded, sorted.
    pub fn heads(&mut self) -> Vec<String> {
        let mut heads: Vec<String> = self
            .doc
            .get_heads()
            .iter()
            .map(ToString::to_string)
            .collect();
        heads.sort();
        heads
    }

    /// Whether what a load read is still kept for the first read: for tests that a document
    /// kept in a cache does not hold its events twice.
    #[cfg(any(test, feature = "test-support"))]
    pub fn holds_read_at_load(&self) -> bool {
        let kept = self.read_at_load.0.take();
        let holds = kept.is_some();
        self.read_at_load.0.set(kept);
        holds
    }

    /// Current heads as automerge gives them: what [`CaseDocument::save_after`] takes. Unlike a
    /// read through [`CaseDocument::automerge`], this keeps what a load read for the first read.
    pub fn change_heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The changes made after `heads` (see [`CaseDocument::change_heads`]), in automerge's
    /// incremental form: what a store appends to the saved form. Drops what a load kept for
    /// the first read: the store saves at the end of an update, after which the document may
    /// sit in its cache, where that copy of the events would only take memory.
    pub fn save_after(&mut self, heads: &[ChangeHash]) -> Vec<u8> {
        self.read_at_load.forget();
        self.doc.save_after(heads)
    }

    /// Current heads as raw change hashes, sorted: the form records keep and peers compare.
    pub fn head_hashes(&mut self) -> Vec<[u8; 32]> {
        let mut heads: Vec<[u8; 32]> = self
            .doc
            .get_heads()
            .into_iter()
            .map(|hash| hash.0)
            .collect();
        heads.sort_unstable();
        heads
    }

    /// The changes this document has beyond `heads`, concatenated. Heads it does not know are
    /// ignored (a peer may be ahead on another branch): what follows the known ones is sent.
    pub fn changes_since(&mut self, heads: &[[u8; 32]]) -> Vec<u8> {
        let known: Vec<ChangeHash> = heads
            .iter()
            .map(|head| ChangeHash(*head))
            .filter(|hash| self.doc.get_change_by_hash(hash).is_some())
            .collect();
        let mut bytes = Vec::new();
        for change in self.doc.get_changes(&known) {
            bytes.extend_from_slice(change.raw_bytes());
        }
        bytes
    }

    /// Whether every one of `heads` is in the history of `tips`: one of them, or an ancestor of
    /// one. False when any of either is not held here (nothing can be said of it).
    pub fn history_of_contains(&mut self, tips: &[[u8; 32]], heads: &[[u8; 32]]) -> bool {
        if heads.iter().all(|head| tips.contains(head)) {
            return true;
        }
        if !self.has_heads(tips) || !self.has_heads(heads) {
            return false;
        }
        let tips: Vec<ChangeHash> = tips.iter().map(|head| ChangeHash(*head)).collect();
        // The changes beyond the tips: none of `heads` may be among them.
        let beyond: std::collections::HashSet<ChangeHash> = self
            .doc
            .get_changes(&tips)
            .iter()
            .map(|change| change.hash())
            .collect();
        heads
            .iter()
            .all(|head| !beyond.contains(&ChangeHash(*head)))
    }

    /// Whether every one of `heads` is in this document's history.
    pub fn has_heads(&mut self, heads: &[[u8; 32]]) -> bool {
        heads
            .iter()
            .all(|head| self.doc.get_change_by_hash(&ChangeHash(*head)).is_some())
    }

    /// Which events each event of the list was made on (see [`crate::causal_past`]): the events
    /// written by the ancestors of the change that wrote it, or earlier by that same change.
    /// Positions are those of [`CaseDocument::events`].
    pub fn causal_past(&mut self) -> Result<CausalPast, DocumentError> {
        let events_object = self.events_object()?;
        let mut written: Vec<(ChangeHash, u64)> =
            Vec::with_capacity(self.doc.length(&events_object));
        for item in self.doc.list_range(&events_object, ..) {
            let entry = item.id();
            let counter = match &entry {
                ObjId::Id(counter, _, _) => *counter,
                ObjId::Root => 0,
            };
            let Some(hash) = self.doc.hash_for_opid(&entry) else {
                return Err(DocumentError::Malformed(format!(
                    "event {} was written by no change of the document",
                    item.index
                )));
            };
            written.push((hash, counter));
        }
        let changes: Vec<(ChangeHash, Vec<ChangeHash>)> = self
            .doc
            .get_changes_meta(&[])
            .into_iter()
            .map(|meta| (meta.hash, meta.deps))
            .collect();
        CausalPast::from_graph(&changes, &written)
            .map_err(|error| DocumentError::Malformed(error.to_string()))
    }

    /// Access to the automerge document for the sync layer.
    pub fn automerge(&mut self) -> &mut automerge::AutoCommit {
        // The caller may change the document through it.
        self.read_at_load.forget();
        &mut self.doc
    }

    /// The document's schema version, if this build reads it.
    fn check_version(&self) -> Result<u64, DocumentError> {
        let found = match self.doc.get(ROOT, SCHEMA_VERSION_KEY)? {
            Some((Value::Scalar(value), _)) => match value.as_ref() {
                ScalarValue::Uint(version) => *version,
                ScalarValue::Int(version) if *version >= 0 => version.unsigned_abs(),
                other => {
                    return Err(DocumentError::Malformed(format!(
                        "schema_version is {other:?}, not an unsigned integer"
                    )));
                }
            },
            Some((Value::Object(kind), _)) => {
                return Err(DocumentError::Malformed(format!(
                    "schema_version is a {kind} object, not an unsigned integer"
                )));
            }
            None => {
                return Err(DocumentError::Malformed(
                    "schema_version is missing from the document root".to_owned(),
                ));
            }
        };
        if found == 0 {
            return Err(DocumentError::Malformed("schema_version is 0".to_owned()));
        }
        if found > u64::from(SCHEMA_VERSION) {
            return Err(DocumentError::UnsupportedVersion {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(found)
    }

    fn header_object(&self) -> Result<ObjId, DocumentError> {
        root_object(&self.doc, HEADER_KEY, ObjType::Map)
    }

    fn events_object(&self) -> Result<ObjId, DocumentError> {
        root_object(&self.doc, EVENTS_KEY, ObjType::List)
    }
}

/// Change metadata: the event's own time, so automerge's history reads sensibly (never a clock).
fn change_options(at: DateTime<Utc>) -> CommitOptions {
    CommitOptions::default().with_time(at.timestamp())
}

fn root_object(doc: &AutoCommit, key: &str, expected: ObjType) -> Result<ObjId, DocumentError> {
    match doc.get(ROOT, key)? {
        Some((Value::Object(kind), id)) if kind == expected => Ok(id),
        Some((Value::Object(kind), _)) => Err(DocumentError::Malformed(format!(
            "root `{key}` is a {kind}, expected a {expected}"
        ))),
        Some((Value::Scalar(value), _)) => Err(DocumentError::Malformed(format!(
            "root `{key}` is the scalar {value:?}, expected a {expected}"
        ))),
        None => Err(DocumentError::Malformed(format!("root `{key}` is missing"))),
    }
}

/// The serde spelling of a unit enum (`"wage_arrears"`), or of any value as JSON text.
fn to_json_text<T: Serialize>(value: &T, what: &str) -> Result<String, DocumentError> {
    serde_json::to_string(value)
        .map_err(|error| DocumentError::Malformed(format!("cannot encode {what}: {error}")))
}

fn enum_spelling<T: Serialize>(value: &T, what: &str) -> Result<String, DocumentError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(spelling)) => Ok(spelling),
        Ok(other) => Err(DocumentError::Malformed(format!(
            "{what} encodes as {other}, not a name"
        ))),
        Err(error) => Err(DocumentError::Malformed(format!(
            "cannot encode {what}: {error}"
        ))),
    }
}

fn write_amendment(
    doc: &mut AutoCommit,
    header_object: &ObjId,
    amendment: &HeaderAmendment,
) -> Result<(), DocumentError> {
    match amendment {
        HeaderAmendment::Petitioners(petitioners) => doc.put(
            header_object,
            "petitioners",
            to_json_text(petitioners, "petitioners")?,
        )?,
        HeaderAmendment::Headcount(headcount) => {
            doc.put(header_object, "headcount", u64::from(*headcount))?
        }
        HeaderAmendment::Respondent(respondent) => {
            doc.put(header_object, "respondent", respondent.as_str())?
        }
        HeaderAmendment::Category(category) => doc.put(
            header_object,
            "category",
            enum_spelling(category, "category")?,
        )?,
        HeaderAmendment::MatterType(matter_type) => doc.put(
            header_object,
            "matter_type",
            enum_spelling(matter_type, "matter_type")?,
        )?,
        HeaderAmendment::LitigationRelated(flag) => {
            doc.put(header_object, "litigation_related", *flag)?
        }
        HeaderAmendment::Summary(summary) => doc.put(header_object, "summary", summary.as_str())?,
        HeaderAmendment::Location(location) => doc.put(
            header_object,
            "location",
            to_json_text(location, "location")?,
        )?,
        HeaderAmendment::Ownership(ownership) => doc.put(
            header_object,
            "ownership",
            to_json_text(ownership, "ownership")?,
        )?,
    }
    Ok(())
}

fn insert_event(
    doc: &mut AutoCommit,
    events_object: &ObjId,
    index: usize,
    event: &Event,
) -> Result<(), DocumentError> {
    let payload = match serde_json::to_value(&event.kind) {
        Ok(serde_json::Value::Object(mut tagged)) => {
            tagged.remove("payload").unwrap_or(serde_json::Value::Null)
        }
        Ok(other) => {
            return Err(DocumentError::Malformed(format!(
                "event {} encodes as {other}, not a tagged object",
                event.id
            )));
        }
        Err(error) => {
            return Err(DocumentError::Malformed(format!(
                "cannot encode event {}: {error}",
                event.id
            )));
        }
    };
    let entry = doc.insert_object(events_object, index, ObjType::Map)?;
    doc.put(&entry, "id", event.id.as_str())?;
    doc.put(&entry, "kind", event.kind.name())?;
    doc.put(&entry, "payload", payload.to_string())?;
    doc.put(
        &entry,
        "at",
        ScalarValue::Timestamp(event.at.timestamp_millis()),
    )?;
    doc.put(&entry, "node", event.node.as_str())?;
    doc.put(&entry, "operator", event.operator.as_str())?;
    match &event.prev {
        Some(prev) => doc.put(&entry, "prev", prev.as_str())?,
        None => doc.put(&entry, "prev", ScalarValue::Null)?,
    }
    doc.put(&entry, "hlc_ms", event.hlc.wall_ms)?;
    doc.put(&entry, "hlc_counter", u64::from(event.hlc.counter))?;
    if let Some(signed) = &event.signature {
        doc.put(&entry, "sig_version", u64::from(signed.version))?;
        doc.put(
            &entry,
            "signer",
            ScalarValue::Bytes(signed.public_key.clone()),
        )?;
        doc.put(
            &entry,
            "signature",
            ScalarValue::Bytes(signed.signature.clone()),
        )?;
    }
    if let Some(mark) = &event.imported {
        doc.put(&entry, "imported", to_json_text(mark, "imported")?)?;
    }
    if let Some(reason) = &event.backdated_reason {
        doc.put(&entry, "backdated_reason", reason.as_str())?;
    }
    Ok(())
}

/// The header of a schema-2 document: what its register event registered, amended in list order.
fn header_from_events(events: &[Event]) -> Result<CaseHeader, DocumentError> {
    let mut header = match events.first().map(|event| &event.kind) {
        Some(EventKind::Register {
            header: Some(header),
            ..
        }) => header.as_ref().clone(),
        Some(_) => {
            return Err(DocumentError::Malformed(
                "the first event does not register the case's header".to_owned(),
            ));
        }
        None => {
            return Err(DocumentError::Malformed(
                "the case has no events".to_owned(),
            ));
        }
    };
    for event in &events[1..] {
        if let EventKind::AmendHeader { amendment } = &event.kind {
            header.amend(amendment);
        }
    }
    Ok(header)
}

/// A scalar field of a map object, or why it is not there.
fn scalar(
    doc: &AutoCommit,
    object: &ObjId,
    key: &str,
    place: &str,
) -> Result<ScalarValue, DocumentError> {
    match doc.get(object, key)? {
        Some((Value::Scalar(value), _)) => Ok(value.into_owned()),
        Some((Value::Object(kind), _)) => Err(DocumentError::Malformed(format!(
            "{place} field `{key}` is a {kind} object, expected a scalar"
        ))),
        None => Err(DocumentError::Malformed(format!(
            "{place} field `{key}` is missing"
        ))),
    }
}

fn text(doc: &AutoCommit, object: &ObjId, key: &str, place: &str) -> Result<String, DocumentError> {
    match scalar(doc, object, key, place)? {
        ScalarValue::Str(value) => Ok(value.to_string()),
        other => Err(DocumentError::Malformed(format!(
            "{place} field `{key}` is {other:?}, expected text"
        ))),
    }
}

fn parse_json<T: DeserializeOwned>(
    json: &str,
    key: &str,
    place: &dyn std::fmt::Display,
) -> Result<T, DocumentError> {
    serde_json::from_str(json).map_err(|error| {
        DocumentError::Malformed(format!("{place} field `{key}` cannot be read: {error}"))
    })
}

fn named<T: DeserializeOwned>(
    doc: &AutoCommit,
    object: &ObjId,
    key: &str,
    place: &str,
) -> Result<T, DocumentError> {
    let spelling = text(doc, object, key, place)?;
    serde_json::from_value(serde_json::Value::String(spelling.clone())).map_err(|_| {
        DocumentError::Malformed(format!(
            "{place} field `{key}` has the unknown value {spelling:?}"
        ))
    })
}

fn json_field<T: DeserializeOwned>(
    doc: &AutoCommit,
    object: &ObjId,
    key: &str,
    place: &str,
) -> Result<T, DocumentError> {
    parse_json(&text(doc, object, key, place)?, key, &place)
}

fn read_header(doc: &AutoCommit, header_object: &ObjId) -> Result<CaseHeader, DocumentError> {
    const PLACE: &str = "header";
    let headcount = match scalar(doc, header_object, "headcount", PLACE)? {
        ScalarValue::Uint(count) => u32::try_from(count).ok(),
        ScalarValue::Int(count) => u32::try_from(count).ok(),
        _ => None,
    }
    .ok_or_else(|| {
        DocumentError::Malformed("header field `headcount` is not a count".to_owned())
    })?;
    let litigation_related = match scalar(doc, header_object, "litigation_related", PLACE)? {
        ScalarValue::Boolean(flag) => flag,
        other => {
            return Err(DocumentError::Malformed(format!(
                "header field `litigation_related` is {other:?}, expected a boolean"
            )));
        }
    };
    let petitioners: Vec<Petitioner> = json_field(doc, header_object, "petitioners", PLACE)?;
    let location: Location = json_field(doc, header_object, "location", PLACE)?;
    let ownership: Ownership = json_field(doc, header_object, "ownership", PLACE)?;
    Ok(CaseHeader {
        number: text(doc, header_object, "number", PLACE)?,
        channel: named(doc, header_object, "channel", PLACE)?,
        petitioners,
        headcount,
        respondent: text(doc, header_object, "respondent", PLACE)?,
        category: named(doc, header_object, "category", PLACE)?,
        matter_type: named(doc, header_object, "matter_type", PLACE)?,
        litigation_related,
        summary: text(doc, header_object, "summary", PLACE)?,
        location,
        ownership,
    })
}

/// Every event of the list, in order. Each event map is read in one pass over its fields:
/// looking each field up by key costs a search of the map apiece, and this runs for every event of
/// every case a node receives.
fn read_events(doc: &AutoCommit, events_object: &ObjId) -> Result<Vec<Event>, DocumentError> {
    let mut events = Vec::with_capacity(doc.length(events_object));
    for item in doc.list_range(events_object, ..) {
        let index = item.index;
        let entry = match item.value {
            ValueRef::Object(ObjType::Map) => item.id(),
            ValueRef::Object(kind) => {
                return Err(DocumentError::Malformed(format!(
                    "event {index} is a {kind}, expected a map"
                )));
            }
            ValueRef::Scalar(value) => {
                return Err(DocumentError::Malformed(format!(
                    "event {index} is the scalar {value:?}, expected a map"
                )));
            }
        };
        events.push(read_event(doc, &entry, index)?);
    }
    Ok(events)
}

/// The scalar fields of one event map, as read in one pass.
#[derive(Default)]
struct EventFields<'a> {
    id: Option<ScalarValueRef<'a>>,
    kind: Option<ScalarValueRef<'a>>,
    payload: Option<ScalarValueRef<'a>>,
    at: Option<ScalarValueRef<'a>>,
    node: Option<ScalarValueRef<'a>>,
    operator: Option<ScalarValueRef<'a>>,
    prev: Option<ScalarValueRef<'a>>,
    hlc_ms: Option<ScalarValueRef<'a>>,
    hlc_counter: Option<ScalarValueRef<'a>>,
    sig_version: Option<ScalarValueRef<'a>>,
    signer: Option<ScalarValueRef<'a>>,
    signature: Option<ScalarValueRef<'a>>,
    imported: Option<ScalarValueRef<'a>>,
    backdated_reason: Option<ScalarValueRef<'a>>,
}

/// Where in the document an event is, for error messages: "event 3", or "event 3 (e-17)" once
/// its ID is read. Formatted only when an error is: a received case's every event is read, and
/// building these strings eagerly was a seventh of the reading.
struct EventPlace<'a> {
    index: usize,
    id: Option<&'a str>,
}

impl std::fmt::Display for EventPlace<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id {
            None => write!(formatter, "event {}", self.index),
            Some(id) => write!(formatter, "event {} ({id})", self.index),
        }
    }
}

fn read_event(doc: &AutoCommit, entry: &ObjId, index: usize) -> Result<Event, DocumentError> {
    let mut fields = EventFields::default();
    let place = EventPlace { index, id: None };
    for field in doc.map_range(entry, ..) {
        let slot = match field.key.as_ref() {
            "id" => &mut fields.id,
            "kind" => &mut fields.kind,
            "payload" => &mut fields.payload,
            "at" => &mut fields.at,
            "node" => &mut fields.node,
            "operator" => &mut fields.operator,
            "prev" => &mut fields.prev,
            "hlc_ms" => &mut fields.hlc_ms,
            "hlc_counter" => &mut fields.hlc_counter,
            "sig_version" => &mut fields.sig_version,
            "signer" => &mut fields.signer,
            "signature" => &mut fields.signature,
            "imported" => &mut fields.imported,
            "backdated_reason" => &mut fields.backdated_reason,
            // Fields a later schema adds are not this build's business.
            _ => continue,
        };
        match field.value {
            ValueRef::Scalar(value) => *slot = Some(value),
            ValueRef::Object(kind) => {
                return Err(DocumentError::Malformed(format!(
                    "{place} field `{}` is a {kind} object, expected a scalar",
                    field.key
                )));
            }
        }
    }
    let id = text_of(present(fields.id, "id", &place)?, "id", &place)?;
    let place = EventPlace {
        index,
        id: Some(&id),
    };
    let kind_name = text_of(present(fields.kind, "kind", &place)?, "kind", &place)?;
    let payload = text_of(
        present(fields.payload, "payload", &place)?,
        "payload",
        &place,
    )?;
    let kind = parse_kind(&kind_name, &payload, &place)?;
    let at = match present(fields.at, "at", &place)? {
        ScalarValueRef::Timestamp(millis) => DateTime::from_timestamp_millis(millis),
        other => {
            return Err(DocumentError::Malformed(format!(
                "{place} field `at` is {other:?}, expected a timestamp"
            )));
        }
    }
    .ok_or_else(|| DocumentError::Malformed(format!("{place} field `at` is out of range")))?;
    let prev = match present(fields.prev, "prev", &place)? {
        ScalarValueRef::Str(prev) => Some(prev.into_owned()),
        ScalarValueRef::Null => None,
        other => {
            return Err(DocumentError::Malformed(format!(
                "{place} field `prev` is {other:?}, expected text or null"
            )));
        }
    };
    let node = text_of(present(fields.node, "node", &place)?, "node", &place)?;
    let operator = text_of(
        present(fields.operator, "operator", &place)?,
        "operator",
        &place,
    )?;
    let hlc = match (fields.hlc_ms, fields.hlc_counter) {
        (None, None) => HybridTimestamp::ZERO,
        (Some(ScalarValueRef::Int(wall_ms)), Some(counter)) => HybridTimestamp {
            wall_ms,
            counter: unsigned(counter, "hlc_counter", &place)?,
        },
        _ => {
            return Err(DocumentError::Malformed(format!(
                "{place} has an unreadable hybrid clock time"
            )));
        }
    };
    let signature = match (fields.sig_version, fields.signer, fields.signature) {
        (None, None, None) => None,
        (
            Some(version),
            Some(ScalarValueRef::Bytes(signer)),
            Some(ScalarValueRef::Bytes(bytes)),
        ) => Some(EventSignature {
            version: unsigned(version, "sig_version", &place)?,
            public_key: signer.into_owned(),
            signature: bytes.into_owned(),
        }),
        _ => {
            return Err(DocumentError::Malformed(format!(
                "{place} has an incomplete or unreadable signature"
            )));
        }
    };
    let imported = match fields.imported {
        None => None,
        Some(value) => {
            let json = text_of(value, "imported", &place)?;
            Some(parse_json(&json, "imported", &place)?)
        }
    };
    let backdated_reason = match fields.backdated_reason {
        None => None,
        Some(value) => Some(text_of(value, "backdated_reason", &place)?),
    };
    Ok(Event {
        id,
        kind,
        at,
        node,
        operator,
        prev,
        hlc,
        signature,
        imported,
        backdated_reason,
    })
}

fn unsigned(
    value: ScalarValueRef<'_>,
    key: &str,
    place: &dyn std::fmt::Display,
) -> Result<u32, DocumentError> {
    match value {
        ScalarValueRef::Uint(number) => u32::try_from(number).ok(),
        ScalarValueRef::Int(number) => u32::try_from(number).ok(),
        _ => None,
    }
    .ok_or_else(|| DocumentError::Malformed(format!("{place} field `{key}` is not a count")))
}

fn present<'a>(
    value: Option<ScalarValueRef<'a>>,
    key: &str,
    place: &dyn std::fmt::Display,
) -> Result<ScalarValueRef<'a>, DocumentError> {
    value.ok_or_else(|| DocumentError::Malformed(format!("{place} field `{key}` is missing")))
}

fn text_of(
    value: ScalarValueRef<'_>,
    key: &str,
    place: &dyn std::fmt::Display,
) -> Result<String, DocumentError> {
    match value {
        ScalarValueRef::Str(text) => Ok(text.into_owned()),
        other => Err(DocumentError::Malformed(format!(
            "{place} field `{key}` is {other:?}, expected text"
        ))),
    }
}

/// The event kind from its stored name and payload text, parsed once. The payload is first
/// checked to be exactly one JSON value (without building it), so that text stored as a payload
/// can never add fields of its own to the document that is parsed.
fn parse_kind(
    kind_name: &str,
    payload: &str,
    place: &dyn std::fmt::Display,
) -> Result<EventKind, DocumentError> {
    let unreadable = |error: serde_json::Error| {
        DocumentError::Malformed(format!(
            "{place} has kind {kind_name:?} with an unreadable payload: {error}"
        ))
    };
    serde_json::from_str::<serde::de::IgnoredAny>(payload).map_err(|error| {
        DocumentError::Malformed(format!("{place} field `payload` cannot be read: {error}"))
    })?;
    // `{"kind":<name as a JSON string>,"payload":<payload>}`, built in one buffer.
    let mut tagged = Vec::with_capacity(kind_name.len() + payload.len() + 24);
    tagged.extend_from_slice(br#"{"kind":"#);
    serde_json::to_writer(&mut tagged, kind_name).map_err(unreadable)?;
    tagged.extend_from_slice(br#","payload":"#);
    tagged.extend_from_slice(payload.as_bytes());
    tagged.push(b'}');
    serde_json::from_slice(&tagged).map_err(unreadable)
}
