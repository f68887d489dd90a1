//! What a node checks in a peer's version of a case before it keeps it: every event it has not
//! seen is signed by the office it names, that office belongs to the federation, and the
//! authority table lets it make that event; every event it already holds is still there,
//! unchanged. No IO: the caller reads both versions of the case and supplies the roster.
//! [`keep_received`] is the whole of it, from a peer's bytes to the document to keep and the
//! changes refused: every replica takes in what peers send through it (or, batched, through the
//! same [`check_received_many`] and [`screen`]).
//!
//! Authority is judged against the case's state where the event was made: the state derived from
//! the event's causal past (`crate::causal_past`), the events its maker held when it made it.
//! Architecture invariant: a verdict is a function of the event and its causal past only, never
//! of what else the receiver holds, so the maker's node and every receiver judge an event alike
//! (a receiver that also holds a concurrent event, say a conflicting resolve, still keeps it).

use std::collections::{HashMap, HashSet};

use automerge::{Change, ChangeHash};

use crate::authority::{AuthorityError, Hierarchy, authorize, lies_within, placed_region};
use crate::causal_past::CausalPast;
use crate::derive::derive_from_refs;
use crate::document::{CaseDocument, DocumentError};
use crate::model::{CaseHeader, CaseId, Event, EventId, EventKind, NodeId};
use crate::policy::{PolicyBook, PolicyError};
use crate::signature::{
    SignatureError, SignerKeys, verify_all, verify_all_of_cases, verify_event_with,
};

/// Why an event from a peer is not kept. Messages name events and offices, never case contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("event {event} is made by node {node}, which is not an office of the federation")]
    UnknownMaker { event: EventId, node: NodeId },
    #[error("event {event}: {source}")]
    Unauthorized {
        event: EventId,
        source: AuthorityError,
    },
    #[error(
        "event {event} places the case in region {region}, outside the jurisdiction of its maker \
         {node} (region {node_region})"
    )]
    OutsideJurisdiction {
        event: EventId,
        node: NodeId,
        region: String,
        node_region: String,
    },
    #[error("event {event} is not the case's first event but registers it again")]
    RegisteredAgain { event: EventId },
    #[error("event {event} held here was changed in the peer's copy")]
    Altered { event: EventId },
    #[error("event {event} held here is missing from the peer's copy")]
    Removed { event: EventId },
    #[error("event {event} appears more than once in the peer's copy (a replayed event)")]
    Duplicated { event: EventId },
    #[error("event {event} cannot be judged: what it was made on is not known")]
    UnknownPast { event: EventId },
    #[error("event {event}: {source}")]
    UnknownPolicy { event: EventId, source: PolicyError },
    #[error(
        "event {event} is signed by node {node}, which its successor {successor} replaced at \
         {since}: the old key makes no new events"
    )]
    MadeAfterSuccession {
        event: EventId,
        node: NodeId,
        successor: NodeId,
        since: chrono::DateTime<chrono::Utc>,
    },
    #[error(
        "event {event}: node {node} takes the place of node {predecessor}, but the roster held \
         here does not name it that node's successor"
    )]
    SuccessionNotInRoster {
        event: EventId,
        node: NodeId,
        predecessor: NodeId,
    },
}

impl ReceiptError {
    /// Whether the error is about events this node already held: such a copy cannot be taken in
    /// part, because no single new event is to blame.
    pub fn is_about_held_events(&self) -> bool {
        matches!(
            self,
            ReceiptError::Altered { .. } | ReceiptError::Removed { .. }
        )
    }

    /// Whether the event may pass once this node knows more: a maker missing from the roster
    /// may be an office whose entry is still on its way (entries and cases travel separately),
    /// and a policy version not held here may be one still on its way from the root (policies
    /// travel on the roster stream), and so may a successor's `succeed` whose roster entry
    /// naming it the successor has not arrived (a node first admitted as a new office may be
    /// made a successor later).
    pub fn may_pass_later(&self) -> bool {
        matches!(
            self,
            ReceiptError::UnknownMaker { .. }
                | ReceiptError::UnknownPolicy { .. }
                | ReceiptError::SuccessionNotInRoster { .. }
        )
    }
}

/// One event of a peer's copy that is not kept, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub event: EventId,
    /// The office the event names as its maker (not necessarily who made it).
    pub node: NodeId,
    pub error: ReceiptError,
}

/// Check the peer's copy of case `case` (`after`: its header and events) against what this node
/// holds (`before`, empty for a case new here). Returns every event that must not be kept; an
/// empty result means the whole copy may be.
pub fn check_received(
    case: &str,
    after_header: &CaseHeader,
    before: &[Event],
    after: &[Event],
    causal: &CausalPast,
    federation: &dyn Hierarchy,
    policies: &PolicyBook,
) -> Vec<Rejection> {
    let copy = ReceivedCopy {
        case,
        header: after_header,
        before,
        after,
        causal,
    };
    check_received_many(&[copy], federation, policies, &mut SignerKeys::default())
        .pop()
        .unwrap_or_default()
}

/// A peer's copy of one case as [`check_received_many`] judges it.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedCopy<'a> {
    pub case: &'a str,
    /// The header the copy's events give.
    pub header: &'a CaseHeader,
    /// The events this node held of the case (empty for a case new here).
    pub before: &'a [Event],
    /// The copy's events.
    pub after: &'a [Event],
    /// Which of the copy's events each was made on ([`crate::CaseDocument::causal_past`] of the
    /// copy; [`CausalPast::linear`] for a history without concurrency).
    pub causal: &'a CausalPast,
}

/// [`check_received`] for several copies at once, in order: the signatures of all their new
/// events are verified in one batch, which costs less per signature than a batch per case. Only
/// if that batch fails is each copy's verified on its own, to find the culprits. `keys` keeps
/// signers' decoded keys between calls.
pub fn check_received_many(
    copies: &[ReceivedCopy<'_>],
    federation: &dyn Hierarchy,
    policies: &PolicyBook,
    keys: &mut SignerKeys,
) -> Vec<Vec<Rejection>> {
    let sorted: Vec<SortedCopy<'_>> = copies
        .iter()
        .map(|copy| sort_events(copy.before, copy.after))
        .collect();
    // Copies refused for their held events are judged no further, and not batched.
    let judged: Vec<(&ReceivedCopy<'_>, &SortedCopy<'_>)> = copies
        .iter()
        .zip(&sorted)
        .filter(|(_, sorted)| !sorted.refused_whole())
        .collect();
    let batch: Vec<(&str, Vec<&Event>)> = judged
        .iter()
        .map(|(copy, sorted)| (copy.case, sorted.new_events(copy.after)))
        .collect();
    let batch_slices: Vec<(&str, &[&Event])> = batch
        .iter()
        .map(|(case, events)| (*case, events.as_slice()))
        .collect();
    let all_verified = verify_all_of_cases(&batch_slices, keys);

    copies
        .iter()
        .zip(sorted)
        .map(|(copy, sorted)| {
            if sorted.refused_whole() {
                return sorted.rejections;
            }
            // A failed batch of one copy says all there is to say about that copy.
            let signatures_verified = all_verified
                || (batch.len() > 1 && verify_all(copy.case, &sorted.new_events(copy.after), keys));
            let mut judge = Judge {
                case: copy.case.to_owned(),
                after_header: copy.header,
                federation,
                policies,
                keys: &mut *keys,
                signatures_verified,
            };
            judge.judge_new_events(copy.after, copy.causal, sorted)
        })
        .collect()
}

/// A copy's events sorted against what was held: the first occurrence of each id is the event;
/// an id this node already held twice (a peer's earlier replay, kept before it was refused) is
/// not a new offence.
struct SortedCopy<'a> {
    /// The first held occurrence of each held id.
    held: HashMap<&'a str, &'a Event>,
    /// Positions in `after` of repeated occurrences: not judged as events of their own.
    repeated: HashSet<usize>,
    /// Replays, and held events altered or removed.
    rejections: Vec<Rejection>,
}

impl<'a> SortedCopy<'a> {
    /// Whether the copy is refused whole: no single new event is to blame for a changed or
    /// missing held event.
    fn refused_whole(&self) -> bool {
        self.rejections
            .iter()
            .any(|rejection| rejection.error.is_about_held_events())
    }

    /// The copy's events this node did not hold, each once.
    fn new_events<'b>(&self, after: &'b [Event]) -> Vec<&'b Event> {
        after
            .iter()
            .enumerate()
            .filter(|(position, event)| {
                !self.repeated.contains(position) && !self.held.contains_key(event.id.as_str())
            })
            .map(|(_, event)| event)
            .collect()
    }
}

fn rejection(event: &Event, error: ReceiptError) -> Rejection {
    Rejection {
        event: event.id.clone(),
        node: event.node.clone(),
        error,
    }
}

fn sort_events<'a>(before: &'a [Event], after: &[Event]) -> SortedCopy<'a> {
    let mut sorted = SortedCopy {
        held: HashMap::new(),
        repeated: HashSet::new(),
        rejections: Vec::new(),
    };
    let mut held_occurrences: HashMap<&str, usize> = HashMap::new();
    for event in before {
        sorted.held.entry(event.id.as_str()).or_insert(event);
        *held_occurrences.entry(event.id.as_str()).or_default() += 1;
    }
    let mut occurrences: HashMap<&str, usize> = HashMap::new();
    for (position, event) in after.iter().enumerate() {
        let seen = occurrences.entry(event.id.as_str()).or_default();
        *seen += 1;
        if *seen > 1 {
            sorted.repeated.insert(position);
            let allowed = held_occurrences
                .get(event.id.as_str())
                .copied()
                .unwrap_or(1);
            if *seen > allowed {
                sorted.rejections.push(rejection(
                    event,
                    ReceiptError::Duplicated {
                        event: event.id.clone(),
                    },
                ));
            }
            continue;
        }
        if let Some(held_event) = sorted.held.get(event.id.as_str())
            && *held_event != event
        {
            sorted.rejections.push(rejection(
                event,
                ReceiptError::Altered {
                    event: event.id.clone(),
                },
            ));
        }
    }
    for event in before {
        if !occurrences.contains_key(event.id.as_str()) {
            sorted.rejections.push(rejection(
                event,
                ReceiptError::Removed {
                    event: event.id.clone(),
                },
            ));
        }
    }
    sorted
}

/// What judging one case's new events shares.
struct Judge<'a> {
    case: CaseId,
    after_header: &'a CaseHeader,
    federation: &'a dyn Hierarchy,
    policies: &'a PolicyBook,
    keys: &'a mut SignerKeys,
    /// Every new event's signature was verified in one batch up front.
    signatures_verified: bool,
}

impl Judge<'_> {
    /// Judge the copy's new events, each against the kept events of its causal past, in an
    /// order where that past is judged first.
    fn judge_new_events(
        &mut self,
        after: &[Event],
        causal: &CausalPast,
        sorted: SortedCopy<'_>,
    ) -> Vec<Rejection> {
        let mut rejections = sorted.rejections;
        if causal.len() != after.len() {
            // The caller read the events and their causal past from different documents: no
            // verdict can be given on a past that is not this copy's, so nothing new is kept.
            for (position, event) in after.iter().enumerate() {
                if !sorted.repeated.contains(&position)
                    && !sorted.held.contains_key(event.id.as_str())
                {
                    rejections.push(rejection(
                        event,
                        ReceiptError::UnknownPast {
                            event: event.id.clone(),
                        },
                    ));
                }
            }
            return rejections;
        }
        // Which events are kept so far. Held events always are; a new one once it passes.
        let mut kept: Vec<bool> = after
            .iter()
            .enumerate()
            .map(|(position, event)| {
                !sorted.repeated.contains(&position) && sorted.held.contains_key(event.id.as_str())
            })
            .collect();
        for &position in causal.order() {
            let event = &after[position];
            if sorted.repeated.contains(&position) || kept[position] {
                continue;
            }
            // References, not copies, in list order (amendments apply in list order): every
            // event is judged against its past, so copies would cost the square of its length.
            let past: Vec<&Event> = after
                .iter()
                .enumerate()
                .filter(|(earlier, _)| kept[*earlier] && causal.precedes(*earlier, position))
                .map(|(_, earlier)| earlier)
                .collect();
            match self.check_new_event(position, event, &past) {
                Ok(()) => kept[position] = true,
                Err(error) => rejections.push(rejection(event, error)),
            }
        }
        rejections
    }

    fn check_new_event(
        &mut self,
        position: usize,
        event: &Event,
        past: &[&Event],
    ) -> Result<(), ReceiptError> {
        let (after_header, federation, policies) =
            (self.after_header, self.federation, self.policies);
        if !self.signatures_verified {
            verify_event_with(&self.case, event, self.keys)?;
        }
        let Some(node_region) = federation.region_of(&event.node) else {
            return Err(ReceiptError::UnknownMaker {
                event: event.id.clone(),
                node: event.node.clone(),
            });
        };
        check_not_after_succession(event, past, federation)?;
        // A registration, or an amended location, places the case: only inside the maker's
        // jurisdiction (the same rule the API applies, `authority::check_jurisdiction`).
        let placed = match &event.kind {
            EventKind::Register { header: None, .. } => {
                Some(after_header.location.region_code.as_str())
            }
            kind => placed_region(kind),
        };
        if let Some(region) = placed
            && !lies_within(region, &node_region)
        {
            return Err(ReceiptError::OutsideJurisdiction {
                event: event.id.clone(),
                node: event.node.clone(),
                region: region.to_owned(),
                node_region,
            });
        }
        if let EventKind::Register { policy_version, .. } = &event.kind {
            if position != 0 {
                return Err(ReceiptError::RegisteredAgain {
                    event: event.id.clone(),
                });
            }
            // The case will derive with this version everywhere: it must be one the root
            // issued and this node holds (or it may pass once it arrives).
            if policies.get(*policy_version).is_none() {
                return Err(ReceiptError::UnknownPolicy {
                    event: event.id.clone(),
                    source: PolicyError::Unknown {
                        version: *policy_version,
                    },
                });
            }
            return Ok(());
        }
        let Some(register) = past.first() else {
            // Nothing registered the case before this event: derive treats it as unreachable.
            return Ok(());
        };
        let base_header = header_at(register, past, after_header);
        let limits = policies
            .limits_for_case(past.iter().copied())
            .map_err(|source| ReceiptError::UnknownPolicy {
                event: event.id.clone(),
                source,
            })?;
        if let EventKind::Succeed { predecessor } = &event.kind
            && !federation.is_successor_of(&event.node, predecessor)
        {
            return Err(ReceiptError::SuccessionNotInRoster {
                event: event.id.clone(),
                node: event.node.clone(),
                predecessor: predecessor.clone(),
            });
        }
        let state = derive_from_refs(&base_header, past, limits);
        authorize(&state, &event.kind, &event.node, federation).map_err(|source| {
            ReceiptError::Unauthorized {
                event: event.id.clone(),
                source,
            }
        })
    }
}

/// The succession cut: an event signed by a node that a successor replaced is kept only if it
/// was made before the replacement, that is, recorded (`hlc`) before the successor's roster
/// entry was issued and not made on anything the successor made. So everything the old office
/// did before its disk was lost stays valid everywhere (unlike a revocation), while its key, if
/// found or stolen later, cannot add to a case the successor has worked on or stamp a time after
/// the replacement. (A key holder who forges an early time on a branch the successor has not
/// touched is not caught by this rule: only a revocation refuses every event of a key.)
fn check_not_after_succession(
    event: &Event,
    past: &[&Event],
    federation: &dyn Hierarchy,
) -> Result<(), ReceiptError> {
    let Some(retirement) = federation.retirement(&event.node) else {
        return Ok(());
    };
    let recorded_after = event.hlc.wall_ms >= retirement.since.timestamp_millis();
    let built_on_successor = past
        .iter()
        .any(|earlier| earlier.node == retirement.successor);
    if recorded_after || built_on_successor {
        return Err(ReceiptError::MadeAfterSuccession {
            event: event.id.clone(),
            node: event.node.clone(),
            successor: retirement.successor,
            since: retirement.since,
        });
    }
    Ok(())
}

/// The header as of `events`: the registered one with the amendments among them applied.
fn header_at(register: &Event, events: &[&Event], fallback: &CaseHeader) -> CaseHeader {
    let mut header = match &register.kind {
        EventKind::Register {
            header: Some(header),
            ..
        } => header.as_ref().clone(),
        _ => fallback.clone(),
    };
    for event in events {
        if let EventKind::AmendHeader { amendment } = &event.kind {
            header.amend(amendment);
        }
    }
    header
}

/// [`check_received`] on a whole document: its header, events and causal past read from it.
fn check_document(
    case: &str,
    document: &mut CaseDocument,
    held_events: &[Event],
    federation: &dyn Hierarchy,
    policies: &PolicyBook,
) -> Result<Vec<Rejection>, DocumentError> {
    let (header, events) = document.contents()?;
    let causal = document.causal_past()?;
    Ok(check_received(
        case,
        &header,
        held_events,
        &events,
        &causal,
        federation,
        policies,
    ))
}

/// A peer's copy of a case, screened change by change after [`check_received`] refused some of
/// its events: the changes that may be kept and those that may not.
#[derive(Debug)]
pub struct Screened {
    /// The held document (or, for a case new here, an empty one) with the kept changes applied.
    pub document: CaseDocument,
    /// Changes of the peer's copy beyond what was held, kept, in causal order.
    pub kept: Vec<Change>,
    /// Refused changes: ones that made a refused event, or were built on such a change
    /// (automerge cannot keep a change without the changes it depends on).
    pub refused: Vec<RefusedChange>,
    /// The refused events, as [`check_received`] named them.
    pub rejections: Vec<Rejection>,
}

/// A change of a peer's copy that is not kept, and why.
#[derive(Debug, Clone)]
pub struct RefusedChange {
    pub change: Change,
    pub reason: String,
    /// Every refused event behind it may pass once this node knows more (see
    /// [`ReceiptError::may_pass_later`]): worth asking the peer for again, not quarantining.
    pub may_pass_later: bool,
}

/// Split the peer's copy `incoming` of `case` into the changes this node may keep and those it
/// may not. `held` is this node's document (`None` for a case new here); `actor` writes the
/// document built for a new case. Honest changes the refused ones do not depend on are kept, so
/// a relay that forged one event does not stop the rest of the case from arriving.
///
/// A copy in which an event this node held was altered or dropped is refused whole, as is one
/// whose kept part still fails the checks: no single change is to blame for those.
pub fn screen(
    case: &str,
    held: Option<&mut CaseDocument>,
    incoming: &mut CaseDocument,
    actor: &[u8],
    federation: &dyn Hierarchy,
    policies: &PolicyBook,
) -> Result<Screened, DocumentError> {
    let (held_heads, held_events, base) = match held {
        Some(held) => {
            let events = held.events()?;
            (held.change_heads(), events, held.fork(actor))
        }
        None => (Vec::new(), Vec::new(), CaseDocument::empty(actor)),
    };
    let mut rejections = check_document(case, incoming, &held_events, federation, policies)?;
    let new_changes = incoming.automerge().get_changes(&held_heads);
    if rejections
        .iter()
        .any(|rejection| rejection.error.is_about_held_events())
    {
        let refused = refuse_all(new_changes, &rejections);
        return Ok(Screened {
            document: base,
            kept: Vec::new(),
            refused,
            rejections,
        });
    }

    let mut base = base;
    for _round in 0..SCREENING_ROUNDS {
        let pass = screen_pass(&mut base, &held_events, &new_changes, &rejections, actor)?;
        if pass.kept.is_empty() {
            return Ok(Screened {
                document: base,
                kept: Vec::new(),
                refused: pass.refused,
                rejections,
            });
        }
        // What is kept must pass on its own: an event judged against a refused one (an
        // annotation after a refused transition) is judged again, and refused in turn.
        let mut document = pass.document;
        let again = check_document(case, &mut document, &held_events, federation, policies)?;
        if again.is_empty() {
            return Ok(Screened {
                document,
                kept: pass.kept,
                refused: pass.refused,
                rejections,
            });
        }
        rejections.extend(again);
    }
    // Screening does not settle: no change can be singled out, so none is kept.
    let refused = refuse_all(new_changes, &rejections);
    Ok(Screened {
        document: base,
        kept: Vec::new(),
        refused,
        rejections,
    })
}

/// A peer's bytes of one case, as a sync frame carries them.
#[derive(Debug, Clone, Copy)]
pub enum PeerBytes<'a> {
    /// A whole saved document (possibly followed by incremental changes).
    Whole(&'a [u8]),
    /// Changes (automerge's incremental form) to apply to the document held here.
    Changes(&'a [u8]),
}

/// What a node keeps of a peer's bytes of a case: see [`keep_received`].
#[derive(Debug)]
pub struct Kept {
    /// The document to hold from now on: the held one (for a case new here, an empty one) with
    /// every change of the peer's that passed the checks. Its heads are the held heads when
    /// nothing passed.
    pub document: CaseDocument,
    /// The peer's changes not kept, each with why and whether it may pass later.
    pub refused: Vec<RefusedChange>,
}

/// What a node keeps of a peer's bytes of case `case`: the peer's copy is built on a fork of
/// `held` (`None` for a case new here, which only [`PeerBytes::Whole`] can bring), every new
/// event is judged on its causal past ([`check_received`]), and when any fails the copy is
/// [`screen`]ed, so the honest changes are kept and the rest refused. `actor` writes the
/// documents built here. The one way every replica takes in a peer's bytes; the store's replica
/// reaches the same verdicts through the same two functions, batched.
///
/// An error means the bytes cannot be read as this case at all (undecodable, another case, or a
/// document created separately under its number); `held` is never changed.
pub fn keep_received(
    case: &str,
    mut held: Option<&mut CaseDocument>,
    bytes: PeerBytes<'_>,
    actor: &[u8],
    federation: &dyn Hierarchy,
    policies: &PolicyBook,
) -> Result<Kept, DocumentError> {
    let mut copy = match (held.as_deref_mut(), bytes) {
        (None, PeerBytes::Whole(saved)) => CaseDocument::load(saved, &[], actor)?,
        (Some(held), PeerBytes::Whole(saved)) => {
            let mut copy = held.fork(actor);
            copy.merge(&mut CaseDocument::load(saved, &[], actor)?)?;
            copy
        }
        (Some(held), PeerBytes::Changes(changes)) => {
            let mut copy = held.fork(actor);
            copy.automerge()
                .load_incremental(changes)
                .map_err(|error| {
                    DocumentError::Malformed(format!("changes cannot be decoded: {error}"))
                })?;
            copy
        }
        (None, PeerBytes::Changes(_)) => {
            return Err(DocumentError::Malformed(format!(
                "changes to case {case}, which is not held here"
            )));
        }
    };
    let header = copy.header()?;
    if header.number != case {
        return Err(DocumentError::Malformed(format!(
            "the document is case {}",
            header.number
        )));
    }
    let held_events = match held.as_deref() {
        Some(held) => held.events()?,
        None => Vec::new(),
    };
    let rejections = check_document(case, &mut copy, &held_events, federation, policies)?;
    if rejections.is_empty() {
        return Ok(Kept {
            document: copy,
            refused: Vec::new(),
        });
    }
    let screened = screen(case, held, &mut copy, actor, federation, policies)?;
    Ok(Kept {
        document: screened.document,
        refused: screened.refused,
    })
}

/// How many times screening re-judges what it kept before it gives up on the peer's copy.
const SCREENING_ROUNDS: usize = 4;

/// One pass of [`screen`]: apply the peer's changes one by one to a copy of `base`, leaving out
/// each change that adds a refused event (or repeats an event) and each change built on one.
struct ScreeningPass {
    document: CaseDocument,
    kept: Vec<Change>,
    refused: Vec<RefusedChange>,
}

fn screen_pass(
    base: &mut CaseDocument,
    held_events: &[Event],
    changes: &[Change],
    rejections: &[Rejection],
    actor: &[u8],
) -> Result<ScreeningPass, DocumentError> {
    let mut trial = base.fork(actor);
    let mut occurrences: HashMap<EventId, usize> = HashMap::new();
    for event in held_events {
        *occurrences.entry(event.id.clone()).or_default() += 1;
    }
    let mut kept = Vec::new();
    let mut refused: Vec<RefusedChange> = Vec::new();
    // Refused change hash → whether it may pass later, for the changes built on it.
    let mut refused_hashes: HashMap<ChangeHash, bool> = HashMap::new();
    for change in changes {
        if let Some((missing, may_pass_later)) = change.deps().iter().find_map(|dependency| {
            refused_hashes
                .get(dependency)
                .map(|later| (dependency, *later))
        }) {
            refused_hashes.insert(change.hash(), may_pass_later);
            refused.push(RefusedChange {
                change: change.clone(),
                reason: format!("built on the refused change {missing}"),
                may_pass_later,
            });
            continue;
        }
        let mut attempt = trial.fork(actor);
        attempt.automerge().apply_changes([change.clone()])?;
        let events = match attempt.events() {
            Ok(events) => events,
            Err(error) => {
                refused_hashes.insert(change.hash(), false);
                refused.push(RefusedChange {
                    change: change.clone(),
                    reason: format!("it leaves the case unreadable: {error}"),
                    may_pass_later: false,
                });
                continue;
            }
        };
        let mut after: HashMap<EventId, usize> = HashMap::new();
        for event in events {
            *after.entry(event.id).or_default() += 1;
        }
        // Ids this change introduced, and ids it repeated.
        let mut introduced = HashSet::new();
        let mut repeated = HashSet::new();
        for (id, count) in &after {
            let before = occurrences.get(id).copied().unwrap_or(0);
            if *count > before {
                if before == 0 {
                    introduced.insert(id.clone());
                } else {
                    repeated.insert(id.clone());
                }
            }
        }
        let refused_here: Vec<Rejection> = rejections
            .iter()
            .filter(|rejection| match rejection.error {
                ReceiptError::Duplicated { .. } => repeated.contains(&rejection.event),
                _ => introduced.contains(&rejection.event),
            })
            .cloned()
            .collect();
        if !refused_here.is_empty() || !repeated.is_empty() {
            let reason = if refused_here.is_empty() {
                "it repeats an event the case already holds".to_owned()
            } else {
                describe(&refused_here)
            };
            let may_pass_later = !refused_here.is_empty()
                && refused_here
                    .iter()
                    .all(|rejection| rejection.error.may_pass_later());
            refused_hashes.insert(change.hash(), may_pass_later);
            refused.push(RefusedChange {
                change: change.clone(),
                reason,
                may_pass_later,
            });
            continue;
        }
        occurrences = after;
        trial = attempt;
        kept.push(change.clone());
    }
    Ok(ScreeningPass {
        document: trial,
        kept,
        refused,
    })
}

fn refuse_all(changes: Vec<Change>, rejections: &[Rejection]) -> Vec<RefusedChange> {
    let reason = describe(rejections);
    let may_pass_later = rejections
        .iter()
        .all(|rejection| rejection.error.may_pass_later());
    changes
        .into_iter()
        .map(|change| RefusedChange {
            change,
            reason: reason.clone(),
            may_pass_later,
        })
        .collect()
}

fn describe(rejections: &[Rejection]) -> String {
    rejections
        .iter()
        .map(|rejection| rejection.error.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
