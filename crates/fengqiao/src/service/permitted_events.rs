//! Which events a person may make on a case now, asked without making any: the web console
//! offers only these. Each candidate goes through the checks [`Node::append`] runs, in its
//! order (the role table, a receiver the federation can reach, then `appending::judge_case`:
//! a successor's taking of its predecessors' places, the lifecycle, the authority table, the
//! jurisdiction rule), so the page and the write cannot disagree. Nothing is written and the node's clock does not tick.

use chrono::{DateTime, Utc};
use fengqiao_accounts::{Action, Actor};
use fengqiao_case::authority::KindTag;
use fengqiao_case::{EventKind, HybridTimestamp, NewEvent, appending};

use super::{Node, ServiceError, check_receiver_reachable, sent_to};

/// The id a candidate event carries while it is judged: never stored.
const CANDIDATE_EVENT_ID: &str = "candidate";

impl Node {
    /// For each candidate (in order), whether `actor` may append it to case `number` at `now`,
    /// and if not, why (the refusal `append` would answer with).
    pub fn permitted_events(
        &self,
        actor: &Actor,
        now: DateTime<Utc>,
        number: &str,
        candidates: &[EventKind],
    ) -> Result<Vec<Result<(), ServiceError>>, ServiceError> {
        let (header, events) = self.stored_case(number)?;
        let policies = self.policies();
        let limits = policies
            .limits_for_case(&events)
            .map_err(|error| ServiceError::Internal(format!("case {number}: {error}")))?;
        let state = self.derive_case(&header, &events)?;
        let hierarchy = self.hierarchy();
        let judge = |kind: &EventKind| -> Result<(), ServiceError> {
            actor.permit(Action::Event(KindTag::of(kind)))?;
            if let Some(receiver) = sent_to(kind) {
                check_receiver_reachable(
                    receiver,
                    &header.location.region_code,
                    hierarchy.as_ref(),
                )?;
            }
            let candidate = NewEvent {
                id: CANDIDATE_EVENT_ID.to_owned(),
                kind: kind.clone(),
                at: now,
                node: self.identity.node_id().to_owned(),
                operator: actor.operator.clone(),
                hlc: HybridTimestamp::ZERO,
                imported: None,
                backdated_reason: None,
            };
            // As a successor would act: after taking its predecessors' places in the case, as
            // `append` does before it judges (`appending::as_successor`).
            appending::judge_case(
                &header,
                &events,
                state.clone(),
                &candidate,
                limits,
                hierarchy.as_ref(),
            )?;
            Ok(())
        };
        Ok(candidates.iter().map(judge).collect())
    }
}
