//! Who may append which event to a case: the one authority table. The API reads it before it
//! appends a local event, and every node reads it again for each event it receives from a peer,
//! against the case's derived state at that point, so that no office acts beyond its authority,
//! not even by relaying.
//!
//! An office's authority over a case follows from its relation to the case (holder, the office
//! an assignment awaits, an ancestor of the holder, a directive's target or issuer, the
//! registering office, and for a `succeed` the successor the roster names) and from the
//! federation's hierarchy, which the caller supplies (the replicated roster, in a running node).
//! No IO.

use serde::Serialize;

use crate::model::{CaseState, EventKind, HeaderAmendment, NodeId};

/// The federation's hierarchy, as far as authority needs it.
pub trait Hierarchy {
    /// Whether `ancestor` lies strictly above `node` (its parent, its parent's parent, …).
    fn is_strict_ancestor(&self, ancestor: &str, node: &str) -> bool;
    /// The region code of an office of the federation, or `None` for a node that is not one.
    fn region_of(&self, node: &str) -> Option<String>;
    /// Whether `node` was replaced by a successor (a rebuilt office with a new key), and from
    /// when: receipt then refuses its newer events (`receipt.rs`). Outside a federation, never.
    fn retirement(&self, _node: &str) -> Option<crate::model::roster::Retirement> {
        None
    }

    /// Whether the roster names `node` as the successor of `predecessor`, directly or through
    /// a chain (a successor itself replaced later): the `Successor` relation, and what receipt
    /// asks of a `succeed` event (`succession.rs` says how a case reads successions).
    fn is_successor_of(&self, node: &str, predecessor: &str) -> bool {
        let mut current = predecessor.to_owned();
        for _ in 0..MAX_SUCCESSION_CHAIN {
            let Some(retirement) = self.retirement(&current) else {
                return false;
            };
            if retirement.successor == node {
                return true;
            }
            current = retirement.successor;
        }
        false
    }
}

/// More successions in a row than any federation has; bounds the walk along a chain, so a
/// (forged) cycle ends.
pub(crate) const MAX_SUCCESSION_CHAIN: usize = 64;

/// The hierarchy of a node outside any federation (or before its federation has started): it
/// knows only itself and nobody lies above anybody, so such a node holds its own cases but issues
/// no directive and takes nothing over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandaloneOffice {
    pub node: NodeId,
    pub region_code: String,
}

impl Hierarchy for StandaloneOffice {
    fn is_strict_ancestor(&self, _ancestor: &str, _node: &str) -> bool {
        false
    }

    fn region_of(&self, node: &str) -> Option<String> {
        (node == self.node).then(|| self.region_code.clone())
    }
}

/// A node's relation to a case, each granting some event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// 承办: the office that holds the case.
    Holder,
    /// The office a forward or an assignment (转送, 交办) waits on, until it accepts or objects.
    AwaitedReceiver,
    /// 上级: any office above the holder.
    AncestorOfHolder,
    /// 登记: the office that registered the case.
    Registrar,
    /// 督办对象: the target of the directive the event names.
    DirectiveTarget,
    /// 督办单位: the issuer of the directive the event names.
    DirectiveIssuer,
    /// 接替: the office the roster names as the successor of the predecessor a `succeed` event
    /// names (`Hierarchy::is_successor_of`).
    Successor,
}

/// The event kinds, without their payloads: the rows of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KindTag {
    Register,
    Accept,
    Reject,
    Forward,
    Assign,
    AcceptAssignment,
    Object,
    Divert,
    Escalate,
    Extend,
    Reply,
    Evaluate,
    Close,
    RequestReview,
    DecideReview,
    Reopen,
    TakeOver,
    Resolve,
    Mediate,
    UpdateJudicialConfirmation,
    LinkRepeat,
    IssueDirective,
    AcknowledgeDirective,
    ReportDirective,
    CrossOffDirective,
    ReturnDirective,
    AmendHeader,
    Note,
    Succeed,
}

impl KindTag {
    /// Every kind, for the test that the table has exactly one row per kind but `Register`.
    pub const ALL: [KindTag; 29] = [
        KindTag::Register,
        KindTag::Accept,
        KindTag::Reject,
        KindTag::Forward,
        KindTag::Assign,
        KindTag::AcceptAssignment,
        KindTag::Object,
        KindTag::Divert,
        KindTag::Escalate,
        KindTag::Extend,
        KindTag::Reply,
        KindTag::Evaluate,
        KindTag::Close,
        KindTag::RequestReview,
        KindTag::DecideReview,
        KindTag::Reopen,
        KindTag::TakeOver,
        KindTag::Resolve,
        KindTag::Mediate,
        KindTag::UpdateJudicialConfirmation,
        KindTag::LinkRepeat,
        KindTag::IssueDirective,
        KindTag::AcknowledgeDirective,
        KindTag::ReportDirective,
        KindTag::CrossOffDirective,
        KindTag::ReturnDirective,
        KindTag::AmendHeader,
        KindTag::Note,
        KindTag::Succeed,
    ];

    pub fn of(kind: &EventKind) -> KindTag {
        match kind {
            EventKind::Register { .. } => KindTag::Register,
            EventKind::Accept {} => KindTag::Accept,
            EventKind::Reject { .. } => KindTag::Reject,
            EventKind::Forward { .. } => KindTag::Forward,
            EventKind::Assign { .. } => KindTag::Assign,
            EventKind::AcceptAssignment {} => KindTag::AcceptAssignment,
            EventKind::Object { .. } => KindTag::Object,
            EventKind::Divert { .. } => KindTag::Divert,
            EventKind::Escalate { .. } => KindTag::Escalate,
            EventKind::Extend { .. } => KindTag::Extend,
            EventKind::Reply { .. } => KindTag::Reply,
            EventKind::Evaluate { .. } => KindTag::Evaluate,
            EventKind::Close { .. } => KindTag::Close,
            EventKind::RequestReview { .. } => KindTag::RequestReview,
            EventKind::DecideReview { .. } => KindTag::DecideReview,
            EventKind::Reopen { .. } => KindTag::Reopen,
            EventKind::TakeOver { .. } => KindTag::TakeOver,
            EventKind::Resolve { .. } => KindTag::Resolve,
            EventKind::Mediate { .. } => KindTag::Mediate,
            EventKind::UpdateJudicialConfirmation { .. } => KindTag::UpdateJudicialConfirmation,
            EventKind::LinkRepeat { .. } => KindTag::LinkRepeat,
            EventKind::IssueDirective { .. } => KindTag::IssueDirective,
            EventKind::AcknowledgeDirective { .. } => KindTag::AcknowledgeDirective,
            EventKind::ReportDirective { .. } => KindTag::ReportDirective,
            EventKind::CrossOffDirective { .. } => KindTag::CrossOffDirective,
            EventKind::ReturnDirective { .. } => KindTag::ReturnDirective,
            EventKind::AmendHeader { .. } => KindTag::AmendHeader,
            EventKind::Note { .. } => KindTag::Note,
            EventKind::Succeed { .. } => KindTag::Succeed,
        }
    }
}

use Relation::{
    AncestorOfHolder, AwaitedReceiver, DirectiveIssuer, DirectiveTarget, Holder, Registrar,
    Successor,
};

/// THE table: each kind, the relations that may append it, and why (shown in refusals and docs).
/// `Register` has no row: a case is registered by the office that creates it, which the
/// lifecycle checks on its own.
pub const AUTHORITY_TABLE: &[(KindTag, &[Relation], &str)] = &[
    (KindTag::Accept, &[Holder], "the holder decides acceptance"),
    (KindTag::Reject, &[Holder], "the holder decides acceptance"),
    (KindTag::Forward, &[Holder], "the holder sends the case on"),
    (KindTag::Assign, &[Holder], "the holder assigns (交办) down"),
    (
        KindTag::AcceptAssignment,
        &[AwaitedReceiver],
        "only the office an assignment waits on takes it on",
    ),
    (
        KindTag::Object,
        &[AwaitedReceiver],
        "only the office an assignment waits on objects to it",
    ),
    (
        KindTag::Divert,
        &[Holder],
        "the holder diverts litigation matters",
    ),
    (KindTag::Escalate, &[Holder], "the holder escalates (上报)"),
    (
        KindTag::Extend,
        &[Holder],
        "the holder extends its own handling",
    ),
    (KindTag::Reply, &[Holder], "the holder replies"),
    (
        KindTag::Evaluate,
        &[Holder],
        "the holder records the evaluation",
    ),
    (KindTag::Close, &[Holder], "only the holder closes (办结)"),
    (
        KindTag::RequestReview,
        &[Holder, AncestorOfHolder],
        "a review request is recorded by the holder or the reviewing tier above",
    ),
    (
        KindTag::DecideReview,
        &[Holder, AncestorOfHolder],
        "a review is decided by the holder or a tier above",
    ),
    (
        KindTag::Reopen,
        &[Holder, AncestorOfHolder],
        "the holder, or a tier above it, reopens",
    ),
    (
        KindTag::TakeOver,
        &[AncestorOfHolder],
        "a tier above the holder takes the case over (提级办理)",
    ),
    (
        KindTag::Resolve,
        &[Holder, AncestorOfHolder],
        "the holder, or a tier above it, settles a conflict",
    ),
    (KindTag::Mediate, &[Holder], "the holder records mediation"),
    (
        KindTag::UpdateJudicialConfirmation,
        &[Holder],
        "the holder records judicial confirmation",
    ),
    (
        KindTag::LinkRepeat,
        &[Holder, AncestorOfHolder],
        "the holder, or a tier above it, links a repeat petition",
    ),
    (
        KindTag::IssueDirective,
        &[AncestorOfHolder],
        "only a tier above the holder supervises (督办)",
    ),
    (
        KindTag::AcknowledgeDirective,
        &[DirectiveTarget],
        "only a directive's target acknowledges it",
    ),
    (
        KindTag::ReportDirective,
        &[DirectiveTarget],
        "only a directive's target reports on it",
    ),
    (
        KindTag::CrossOffDirective,
        &[DirectiveIssuer],
        "only a directive's issuer crosses it off (销号)",
    ),
    (
        KindTag::ReturnDirective,
        &[DirectiveIssuer],
        "only a directive's issuer sends it back",
    ),
    (
        KindTag::AmendHeader,
        &[Holder],
        "the holder corrects the record",
    ),
    (
        KindTag::Note,
        &[
            Holder,
            AwaitedReceiver,
            AncestorOfHolder,
            Registrar,
            DirectiveTarget,
        ],
        "any office taking part in the case may add a note",
    ),
    (
        KindTag::Succeed,
        &[Successor],
        "only the office the roster names as the predecessor's successor takes its place",
    ),
];

/// Why an office may not append an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error(
        "node {node} may not {kind}: {why} (it is {relations} of this case)",
        kind = kind_name(*kind),
        relations = describe(relations)
    )]
    NotAuthorized {
        node: NodeId,
        kind: KindTag,
        why: &'static str,
        relations: Vec<Relation>,
    },
    #[error("a case is registered only by the office that creates it")]
    RegisterOnExistingCase,
    #[error(
        "node {node} may not place a case in region {region}: it lies outside its jurisdiction \
         ({})",
        node_region.as_deref().map_or("the node is not an office of the federation".to_owned(), |own| format!("region {own}"))
    )]
    OutsideJurisdiction {
        node: NodeId,
        region: String,
        node_region: Option<String>,
    },
}

/// The region an event places its case in, if it does: where a registration or an amended
/// location says the matter is.
pub fn placed_region(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::Register {
            header: Some(header),
            ..
        } => Some(&header.location.region_code),
        EventKind::AmendHeader {
            amendment: HeaderAmendment::Location(location),
        } => Some(&location.region_code),
        _ => None,
    }
}

/// Whether a case located in `region` lies within the region of an office (`office_region`):
/// the one jurisdiction rule. An office places cases only there (the API and the receipt checks),
/// and replication carries a case down only to offices whose region it lies in (`routing.rs` in
/// the sync crate), so an assignment or forward to any other office could never arrive.
pub fn lies_within(region: &str, office_region: &str) -> bool {
    region.starts_with(office_region)
}

/// An office places cases only inside its own jurisdiction: it registers matters located there,
/// and moves a case's location only within it (to hand a case elsewhere it forwards or
/// escalates it instead).
pub fn check_jurisdiction(
    kind: &EventKind,
    node: &str,
    hierarchy: &dyn Hierarchy,
) -> Result<(), AuthorityError> {
    let Some(region) = placed_region(kind) else {
        return Ok(());
    };
    match hierarchy.region_of(node) {
        Some(own) if lies_within(region, &own) => Ok(()),
        node_region => Err(AuthorityError::OutsideJurisdiction {
            node: node.to_owned(),
            region: region.to_owned(),
            node_region,
        }),
    }
}

fn kind_name(kind: KindTag) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn describe(relations: &[Relation]) -> String {
    if relations.is_empty() {
        return "no party".to_owned();
    }
    relations
        .iter()
        .map(|relation| match relation {
            Holder => "the holder",
            AwaitedReceiver => "the awaited receiver",
            AncestorOfHolder => "above the holder",
            Registrar => "the registering office",
            DirectiveTarget => "the directive's target",
            DirectiveIssuer => "the directive's issuer",
            Successor => "the predecessor's successor",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every relation `node` has to the case in `state`, for an event of `kind` (the directive
/// relations count only for the directive the event names).
pub fn relations(
    state: &CaseState,
    kind: &EventKind,
    node: &str,
    hierarchy: &dyn Hierarchy,
) -> Vec<Relation> {
    let mut found = Vec::new();
    if state.holder == node {
        found.push(Holder);
    }
    if state.awaiting.as_deref() == Some(node) {
        found.push(AwaitedReceiver);
    }
    if !state.holder.is_empty() && hierarchy.is_strict_ancestor(node, &state.holder) {
        found.push(AncestorOfHolder);
    }
    if state.registered_by == node {
        found.push(Registrar);
    }
    if let EventKind::Succeed { predecessor } = kind
        && hierarchy.is_successor_of(node, predecessor)
    {
        found.push(Successor);
    }
    let named_directive = match kind {
        EventKind::AcknowledgeDirective { directive }
        | EventKind::ReportDirective { directive, .. }
        | EventKind::CrossOffDirective { directive }
        | EventKind::ReturnDirective { directive, .. } => Some(directive),
        _ => None,
    };
    let directives = state
        .directives
        .iter()
        .filter(|directive| named_directive.is_none_or(|named| &directive.id == named));
    for directive in directives {
        if directive.target_node == node && !found.contains(&DirectiveTarget) {
            found.push(DirectiveTarget);
        }
        if directive.issuer_node == node && !found.contains(&DirectiveIssuer) {
            found.push(DirectiveIssuer);
        }
    }
    found
}

/// The relations that may append `kind`, and why.
pub fn rule(kind: KindTag) -> Option<(&'static [Relation], &'static str)> {
    AUTHORITY_TABLE
        .iter()
        .find(|(tag, _, _)| *tag == kind)
        .map(|(_, allowed, why)| (*allowed, *why))
}

/// Whether the table lets only the holder append `kind`. The lifecycle, which derive runs without
/// the federation's hierarchy, judges exactly this part of the table (the holder is in the state);
/// a kind a tier above may also append is left to [`authorize`], which the API and the receipt
/// checks run with the hierarchy, so the two never disagree on who may act.
pub fn only_the_holder_appends(kind: &EventKind) -> bool {
    rule(KindTag::of(kind)).is_some_and(|(allowed, _)| allowed == [Holder])
}

/// Whether `node` may append an event of `kind` to the case in `state`.
pub fn authorize(
    state: &CaseState,
    kind: &EventKind,
    node: &str,
    hierarchy: &dyn Hierarchy,
) -> Result<(), AuthorityError> {
    let tag = KindTag::of(kind);
    let Some((allowed, why)) = rule(tag) else {
        return Err(AuthorityError::RegisterOnExistingCase);
    };
    let held = relations(state, kind, node, hierarchy);
    if held.iter().any(|relation| allowed.contains(relation)) {
        Ok(())
    } else {
        Err(AuthorityError::NotAuthorized {
            node: node.to_owned(),
            kind: tag,
            why,
            relations: held,
        })
    }
}
