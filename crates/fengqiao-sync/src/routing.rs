//! Who receives which case: the one place the federation's replication rules live.
//!
//! Pure functions over a [`CaseRouting`] (what the rules read of a case) and a [`PeerDescription`]
//! (the office on the other end of a link), so each rule is tested directly.
//!
//! - **Up** (to the parent): every case a node has replicates to its parent, so a county sees its
//!   whole county.
//! - **Down** (to a child): only while the child's subtree takes part in the case: the case is
//!   located within the child's region code prefix, and it was registered in the subtree, or is
//!   held by, was ever assigned or forwarded to, escalated to, or the target of a directive at a
//!   node of that subtree. The region condition is what keeps a village from ever receiving a
//!   sibling village's case, whatever events name it.
//!   Architecture invariant: taking part is for good. Every list above only grows (a take-over's
//!   taker is above an office that took part), so an office that once received a case keeps
//!   receiving its changes: no copy goes stale where a person still reads it (N2 in
//!   RELIABILITY.md).
//! - **Both ways**: a case whose respondent is the receiving office itself (a complaint about its
//!   own cadres) is never sent to it (条例 Art 30).

use fengqiao_case::authority::lies_within;
use fengqiao_case::model::{CaseHeader, CaseId, CaseState, CaseSummary, NodeId};
use fengqiao_case::summary;

/// Where the peer sits relative to this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRelation {
    Parent,
    Child,
}

/// The office at the other end of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDescription {
    pub node_id: NodeId,
    /// The office's name as petitioners write it (e.g. `芦荻山乡人民政府`).
    pub name: String,
    /// Other names the office goes by (`芦荻山乡政府`, `芦荻山乡`): a respondent matching any of
    /// them is the office itself.
    pub aliases: Vec<String>,
    pub region_code: String,
    pub relation: PeerRelation,
}

/// What the routing rules read of one case: its header's location and respondent, and the nodes
/// its derived state says take part in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRouting {
    pub case: CaseId,
    pub region_code: String,
    pub respondent: String,
    pub registered_by: NodeId,
    pub holder: NodeId,
    pub awaiting: Option<NodeId>,
    pub escalated_to: Vec<NodeId>,
    /// Every receiver of a forward or assignment, objected or not (`CaseState::sent_to`).
    pub sent_to: Vec<NodeId>,
    pub directive_targets: Vec<NodeId>,
}

impl CaseRouting {
    pub fn from_case(header: &CaseHeader, state: &CaseState) -> CaseRouting {
        CaseRouting::from_summary_and_participants(
            &summary::summarize(header, state),
            state.awaiting.clone(),
            state.escalated_to.clone(),
            state.sent_to.clone(),
        )
    }

    /// The routing of a case read from its stored summary alone, without loading and deriving
    /// the document, when the summary determines it. It does unless the case was escalated or
    /// sent down or across: the summary records those as flags only (`escalated`, `assigned`),
    /// and then the answer is `None` and the caller derives. Summaries stored by any earlier
    /// build carry the same fields; one stored before `sent_to` existed, of a case whose
    /// receiver objected, has `assigned` clear and routes as that build did (without the
    /// objector) until the case's next change rewrites its summary.
    pub fn from_summary(summary: &CaseSummary) -> Option<CaseRouting> {
        // `summarize` sets `escalated` iff `escalated_to` is non-empty and `assigned` whenever
        // `sent_to` or `awaiting` is, so with both flags clear the three lists are empty.
        if summary.escalated || summary.assigned {
            return None;
        }
        Some(CaseRouting::from_summary_and_participants(
            summary,
            None,
            Vec::new(),
            Vec::new(),
        ))
    }

    fn from_summary_and_participants(
        summary: &CaseSummary,
        awaiting: Option<NodeId>,
        escalated_to: Vec<NodeId>,
        sent_to: Vec<NodeId>,
    ) -> CaseRouting {
        CaseRouting {
            case: summary.number.clone(),
            region_code: summary.region_code.clone(),
            respondent: summary.respondent.clone(),
            registered_by: summary.registered_by.clone(),
            holder: summary.holder.clone(),
            awaiting,
            escalated_to,
            sent_to,
            directive_targets: summary
                .directives
                .iter()
                .map(|directive| directive.target_node.clone())
                .collect(),
        }
    }

    /// Every node the case's state names as taking part in it.
    pub fn participants(&self) -> impl Iterator<Item = &NodeId> {
        [&self.registered_by, &self.holder]
            .into_iter()
            .chain(self.awaiting.iter())
            .chain(self.escalated_to.iter())
            .chain(self.sent_to.iter())
            .chain(self.directive_targets.iter())
            .filter(|node| !node.is_empty())
    }
}

/// Whether a node belongs to the subtree rooted at another node (the root included). The
/// replicated roster will answer this later; tests and early shells answer from configuration.
pub trait SubtreeRoster {
    fn is_in_subtree(&self, subtree_root: &str, node: &str) -> bool;

    /// Whether `node` was admitted as the successor of another node (a rebuilt office whose
    /// predecessor's cases are its own). Rosters without successions: never.
    fn is_successor(&self, _node: &str) -> bool {
        false
    }
}

impl<F> SubtreeRoster for F
where
    F: Fn(&str, &str) -> bool,
{
    fn is_in_subtree(&self, subtree_root: &str, node: &str) -> bool {
        self(subtree_root, node)
    }
}

/// Why a case does or does not go to a peer (the reason is shown when an operator asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingDecision {
    Send,
    /// The respondent is the receiving office (条例 Art 30).
    WithheldRespondentIsPeer,
    /// Down: the case is located outside the child's region.
    WithheldOutsideChildRegion,
    /// Down: no node of the child's subtree takes part in the case.
    WithheldChildNotParticipating,
}

impl RoutingDecision {
    pub fn allows(self) -> bool {
        self == RoutingDecision::Send
    }
}

/// The decision for sending `case` to `peer`.
pub fn route(
    case: &CaseRouting,
    peer: &PeerDescription,
    roster: &dyn SubtreeRoster,
) -> RoutingDecision {
    if respondent_is_office(&case.respondent, peer) {
        return RoutingDecision::WithheldRespondentIsPeer;
    }
    match peer.relation {
        PeerRelation::Parent => RoutingDecision::Send,
        PeerRelation::Child => {
            // The jurisdiction rule (`authority::lies_within`): the API refuses to send a case
            // to an office it could never travel down to.
            // A child whose region is not known yet receives nothing.
            if peer.region_code.is_empty() || !lies_within(&case.region_code, &peer.region_code) {
                return RoutingDecision::WithheldOutsideChildRegion;
            }
            let participates = case
                .participants()
                .any(|node| roster.is_in_subtree(&peer.node_id, node));
            if participates {
                RoutingDecision::Send
            } else {
                RoutingDecision::WithheldChildNotParticipating
            }
        }
    }
}

/// Whether a case new to this node may come from `peer`: the receive side of the rules above.
/// A parent is the authority above us and sends what routing gives us; a child may introduce only cases located in its own jurisdiction,
/// so a compromised or misconfigured village cannot plant cases of other places. Later edits of
/// a case we hold are accepted from either side: assignments down and reports up need them.
pub fn admit_new_case_from(routing: &CaseRouting, peer: &PeerDescription) -> Result<(), String> {
    match peer.relation {
        PeerRelation::Parent => Ok(()),
        PeerRelation::Child
            if !peer.region_code.is_empty()
                && lies_within(&routing.region_code, &peer.region_code) =>
        {
            Ok(())
        }
        PeerRelation::Child => Err(format!(
            "a child office of region {} cannot introduce a case located in {}",
            peer.region_code, routing.region_code
        )),
    }
}

/// Whether `respondent` names the office `peer`.
///
/// Containment, not equality, after normalising: a respondent written as `芦荻山乡政府工作人员王某`
/// names the township's office as much as `芦荻山乡政府` does, and withholding by mistake costs a
/// copy (the case still reaches the offices above through their own links), while sending by
/// mistake puts a complaint in the hands of the people it is about.
pub fn respondent_is_office(respondent: &str, peer: &PeerDescription) -> bool {
    let respondent = normalise_office_name(respondent);
    if respondent.is_empty() {
        return false;
    }
    std::iter::once(&peer.name)
        .chain(peer.aliases.iter())
        .map(|name| normalise_office_name(name))
        // A one-character name would match nearly anything.
        .filter(|name| name.chars().count() >= 2)
        .any(|name| respondent.contains(&name))
}

/// Folds the spellings that differ only in form: whitespace and punctuation dropped, full-width
/// ASCII folded to half-width, Latin letters lower-cased.
pub fn normalise_office_name(name: &str) -> String {
    name.chars()
        .map(|character| match character {
            '\u{FF01}'..='\u{FF5E}' => {
                char::from_u32(character as u32 - 0xFF01 + 0x21).unwrap_or(character)
            }
            '\u{3000}' => ' ',
            other => other,
        })
        .filter(|character| {
            !character.is_whitespace()
                && !character.is_ascii_punctuation()
                && !matches!(
                    character,
                    '·' | '（' | '）' | '、' | '，' | '。' | '《' | '》'
                )
        })
        .flat_map(char::to_lowercase)
        .collect()
}
