//! The audit trail: who did what to a case from which node and whether each event's signature
//! holds (`Node::audit_log`), a check of every case in the store (`Node::audit_verify`), and the
//! quarantine log of changes refused on receipt (`Node::quarantine`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use fengqiao_case::audit::{
    AuditEvent, AuditFailure, AuditLog, AuditReport, QuarantineEntry, QuarantineListing,
};
use fengqiao_case::signature::{SignatureError, signature_status, verify_event};
use fengqiao_case::sync::QuarantineRecord;
use fengqiao_case::{CaseId, Event, EventKind, HybridTimestamp, NodeId, SCHEMA_VERSION};
use fengqiao_store::StoreError;
use fengqiao_sync::roster::{Roster, decode_snapshot};

use super::{Node, ServiceError};
use crate::service::ROSTER_META_KEY;

/// Records per read of the quarantine log when counting it whole.
const QUARANTINE_COUNT_PAGE: usize = 4096;

/// Page size of `Node::quarantine` when the caller gives none, and the most it hands out at once.
pub const DEFAULT_QUARANTINE_LIMIT: usize = 100;
pub const MAX_QUARANTINE_LIMIT: usize = 1000;

/// Cases each verifying thread takes at a time: small enough to share the work evenly, large
/// enough that taking the next batch costs nothing next to verifying it.
const VERIFY_BATCH_CASES: usize = 64;

impl Node {
    /// Every event of case `number` in hybrid-clock order with its maker, operator and signature
    /// status, and no personal data. An audit read is a read of the case: it is recorded in the
    /// access log like [`Node::get`].
    pub fn audit_log(
        &self,
        operator: Option<&str>,
        now: DateTime<Utc>,
        number: &str,
    ) -> Result<AuditLog, ServiceError> {
        let events = self
            .store
            .with_case(number, |document| document.events())?
            .ok_or_else(|| ServiceError::NotFound(number.to_owned()))??;
        let record = serde_json::json!({
            "at": now,
            "operator": operator,
            "action": "audit_case",
            "case": number,
        });
        self.store.log_access(record.to_string().as_bytes())?;
        let offices = self.office_names();
        let case: CaseId = number.to_owned();
        let mut events: Vec<AuditEvent> = events
            .iter()
            .map(|event| AuditEvent {
                id: event.id.clone(),
                kind: event.kind.name().to_owned(),
                summary: non_personal_summary(&event.kind),
                at: event.at,
                hlc: event.hlc,
                node: event.node.clone(),
                office: offices.get(&event.node).cloned(),
                operator: event.operator.clone(),
                signature: signature_status(&case, event),
                imported: event.imported.clone(),
                backdated_reason: event.backdated_reason.clone(),
            })
            .collect();
        events.sort_by(|left, right| {
            audit_order_key(left.hlc, left.at)
                .cmp(&audit_order_key(right.hlc, right.at))
                .then_with(|| left.node.cmp(&right.node))
                .then_with(|| left.id.cmp(&right.id))
        });
        Ok(AuditLog {
            schema_version: SCHEMA_VERSION,
            case,
            events,
        })
    }

    /// Check every event of every case in the store: its signature, that no event id repeats
    /// within a case, and that the case's first event registers it. Unsigned events (schema-1
    /// documents) are failures too: nothing proves who made them.
    ///
    /// Not checked yet: whether each maker was allowed to append its event (the authority table
    /// over the roster); the node checks that on receipt, not here.
    pub fn audit_verify(&self) -> Result<AuditReport, ServiceError> {
        let mut numbers: Vec<CaseId> =
            Vec::with_capacity(usize::try_from(self.store.case_count()).unwrap_or(0));
        self.store
            .for_each_summary(|summary| numbers.push(summary.number.clone()))?;
        // Signature checks dominate; spread the cases over the cores.
        let threads = std::thread::available_parallelism()
            .map(std::num::NonZero::get)
            .unwrap_or(1)
            .clamp(1, 8);
        let next_batch = std::sync::atomic::AtomicUsize::new(0);
        let outcomes: Vec<Result<CaseAudit, ServiceError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut audit = CaseAudit::default();
                        loop {
                            let start = next_batch.fetch_add(
                                VERIFY_BATCH_CASES,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            let Some(batch) = numbers.get(start..) else {
                                return Ok(audit);
                            };
                            if batch.is_empty() {
                                return Ok(audit);
                            }
                            for number in batch.iter().take(VERIFY_BATCH_CASES) {
                                self.audit_one_case(number, &mut audit)?;
                            }
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker.join().unwrap_or_else(|_| {
                        Err(ServiceError::Internal(
                            "a verifying thread stopped unexpectedly".to_owned(),
                        ))
                    })
                })
                .collect()
        });
        let mut total = CaseAudit::default();
        for outcome in outcomes {
            let audit = outcome?;
            total.cases_checked += audit.cases_checked;
            total.events_checked += audit.events_checked;
            total.unsigned += audit.unsigned;
            total.failures.extend(audit.failures);
        }
        // Threads finish in any order; a report should read the same every time.
        total.failures.sort_by(|left, right| {
            (&left.case, &left.event, &left.reason).cmp(&(&right.case, &right.event, &right.reason))
        });
        let quarantined = self.quarantine_count()?;
        tracing::info!(
            cases = total.cases_checked,
            events = total.events_checked,
            failures = total.failures.len(),
            unsigned = total.unsigned,
            quarantined,
            "audit verify done"
        );
        Ok(AuditReport {
            schema_version: SCHEMA_VERSION,
            cases_checked: total.cases_checked,
            events_checked: total.events_checked,
            unsigned: total.unsigned,
            failures: total.failures,
            quarantined,
        })
    }

    /// Quarantine records with an id greater than `after`, oldest first, at most `limit`
    /// (default [`DEFAULT_QUARANTINE_LIMIT`], at most [`MAX_QUARANTINE_LIMIT`]), without the
    /// changes' bytes.
    pub fn quarantine(
        &self,
        after: u64,
        limit: Option<usize>,
    ) -> Result<QuarantineListing, ServiceError> {
        let limit = limit.unwrap_or(DEFAULT_QUARANTINE_LIMIT);
        if limit == 0 {
            return Err(ServiceError::InvalidInput(
                "limit 0 lists nothing: give at least 1".to_owned(),
            ));
        }
        let limit = limit.min(MAX_QUARANTINE_LIMIT);
        let records = self.store.quarantine_since(after, limit)?;
        let full_page = records.len() == limit;
        let last_id = records.last().map(|(id, _)| *id);
        let mut entries = Vec::with_capacity(records.len());
        let mut unreadable = 0;
        for (id, bytes) in records {
            match serde_json::from_slice::<QuarantineRecord>(&bytes) {
                Ok(record) => entries.push(QuarantineEntry {
                    id,
                    received_at: record.received_at,
                    peer: record.peer,
                    case: record.case,
                    change_hash: record.change_hash,
                    change_bytes: u64::try_from(record.change.len()).unwrap_or(u64::MAX),
                    reason: record.reason,
                }),
                Err(error) => {
                    tracing::warn!(id, %error, "unreadable quarantine record");
                    unreadable += 1;
                }
            }
        }
        Ok(QuarantineListing {
            schema_version: SCHEMA_VERSION,
            entries,
            unreadable,
            next_after: if full_page { last_id } else { None },
        })
    }

    /// How many records the quarantine log holds.
    fn quarantine_count(&self) -> Result<u64, ServiceError> {
        let mut count = 0u64;
        let mut after = 0;
        loop {
            let records = self.store.quarantine_since(after, QUARANTINE_COUNT_PAGE)?;
            let Some((last_id, _)) = records.last() else {
                return Ok(count);
            };
            after = *last_id;
            count += u64::try_from(records.len()).unwrap_or(u64::MAX);
            if records.len() < QUARANTINE_COUNT_PAGE {
                return Ok(count);
            }
        }
    }

    /// Check one case into `audit`. A case that cannot be read is a failure of the audit, not an
    /// error of it; only a failing store (disk) stops the walk.
    fn audit_one_case(&self, number: &CaseId, audit: &mut CaseAudit) -> Result<(), ServiceError> {
        audit.cases_checked += 1;
        let case_failure = |reason: String| AuditFailure {
            case: number.clone(),
            event: None,
            node: None,
            reason,
        };
        let events = match self
            .store
            .with_case_uncached(number, |document| document.events())
        {
            Ok(Some(Ok(events))) => events,
            Ok(Some(Err(error))) => {
                audit.failures.push(case_failure(format!(
                    "the case document is unreadable: {error}"
                )));
                return Ok(());
            }
            // Listed a moment ago; nothing deletes cases, so the index and the documents disagree.
            Ok(None) => {
                audit.failures.push(case_failure(
                    "the case is indexed but its document is missing".to_owned(),
                ));
                return Ok(());
            }
            Err(error @ (StoreError::Corrupt { .. } | StoreError::Document(_))) => {
                audit.failures.push(case_failure(format!(
                    "the case's stored records are unreadable: {error}"
                )));
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        audit.events_checked += u64::try_from(events.len()).unwrap_or(u64::MAX);
        audit
            .failures
            .extend(event_failures(number, &events, &mut audit.unsigned));
        Ok(())
    }

    /// Office names by node ID, from the config (this node, its parent, its children) and the
    /// roster the federation stored. Only for showing people: a name missing is not an error.
    fn office_names(&self) -> HashMap<NodeId, String> {
        let mut names = HashMap::new();
        match self.store.meta_get(ROSTER_META_KEY) {
            Ok(Some(bytes)) => match decode_snapshot(&bytes) {
                Ok(snapshot) => {
                    let (roster, _merge) = Roster::from_snapshot(snapshot);
                    for member in roster.members() {
                        names.insert(member.node_id.clone(), member.name.clone());
                    }
                }
                Err(error) => tracing::debug!(%error, "stored roster unreadable; no office names"),
            },
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "cannot read the stored roster; no office names"),
        }
        // The config is what this node's operators wrote: it wins over the roster's spelling.
        if let Some(federation) = &self.config.federation {
            if let Some(parent) = &federation.parent {
                names.insert(parent.node_id.clone(), parent.name.clone());
            }
            for child in &federation.children {
                names.insert(child.node_id.clone(), child.name.clone());
            }
        }
        names.insert(
            self.identity.node_id().to_owned(),
            self.config.node.name.clone(),
        );
        names
    }
}

/// What one verifying thread found.
#[derive(Debug, Default)]
struct CaseAudit {
    cases_checked: u64,
    events_checked: u64,
    unsigned: u64,
    failures: Vec<AuditFailure>,
}

/// The failures among a case's events (in document order); counts unsigned ones in `unsigned`.
fn event_failures(case: &CaseId, events: &[Event], unsigned: &mut u64) -> Vec<AuditFailure> {
    let mut failures = Vec::new();
    let failure = |event: &Event, reason: String| AuditFailure {
        case: case.clone(),
        event: Some(event.id.clone()),
        node: Some(event.node.clone()),
        reason,
    };
    match events.first() {
        None => failures.push(AuditFailure {
            case: case.clone(),
            event: None,
            node: None,
            reason: "the case has no events: nothing registers it".to_owned(),
        }),
        Some(first) => match &first.kind {
            EventKind::Register {
                header: Some(header),
                ..
            } if header.number != *case => failures.push(failure(
                first,
                format!(
                    "the register event registers case {}, not this one",
                    header.number
                ),
            )),
            EventKind::Register { .. } => {}
            other => failures.push(failure(
                first,
                format!(
                    "the first event is {}, not the registration of the case",
                    other.name()
                ),
            )),
        },
    }
    let mut seen_ids = HashSet::with_capacity(events.len());
    for (position, event) in events.iter().enumerate() {
        if !seen_ids.insert(event.id.as_str()) {
            failures.push(failure(
                event,
                "the event id appears more than once in the case".to_owned(),
            ));
        }
        if position > 0 && matches!(event.kind, EventKind::Register { .. }) {
            failures.push(failure(
                event,
                "a second register event: a case is registered once".to_owned(),
            ));
        }
        match verify_event(case, event) {
            Ok(()) => {}
            Err(SignatureError::Unsigned { .. }) => {
                *unsigned += 1;
                failures.push(failure(
                    event,
                    "unsigned (made before events were signed, schema 1): its maker is unproven"
                        .to_owned(),
                ));
            }
            Err(error) => failures.push(failure(event, format!("invalid signature: {error}"))),
        }
    }
    failures
}

/// The hybrid time an event is ordered by; schema-1 events have none, so their wall time stands
/// in (a hybrid time is never behind the wall time it was stamped at, so the two compare).
fn audit_order_key(hlc: HybridTimestamp, at: DateTime<Utc>) -> HybridTimestamp {
    if hlc == HybridTimestamp::ZERO {
        HybridTimestamp {
            wall_ms: at.timestamp_millis(),
            counter: 0,
        }
    } else {
        hlc
    }
}

/// The payload fields of an event that say what happened without naming anyone: target nodes
/// and units, dates, ids, outcomes. Free text (reasons, replies, notes) and the header (names, ID
/// numbers) are left out: they are personal data, and the audit log is about who acted.
fn non_personal_summary(kind: &EventKind) -> String {
    match kind {
        EventKind::Register { .. }
        | EventKind::Accept {}
        | EventKind::Reject { .. }
        | EventKind::AcceptAssignment {}
        | EventKind::Object { .. }
        | EventKind::Reopen { .. }
        // The new holder is the event's maker, already in the node column.
        | EventKind::TakeOver { .. }
        | EventKind::Note { .. } => String::new(),
        EventKind::Succeed { predecessor } => format!("in place of node {predecessor}"),
        EventKind::Forward {
            to_unit, to_node, ..
        } => match to_node {
            Some(node) => format!("to {to_unit} (node {node})"),
            None => format!("to {to_unit}"),
        },
        EventKind::Assign {
            to_node, deadline, ..
        } => format!("to node {to_node}, deadline {deadline}"),
        EventKind::Divert { to_unit, .. } => format!("to {to_unit}"),
        EventKind::Escalate { to_node, .. } => format!("to node {to_node}"),
        EventKind::Extend { days, .. } => format!("{days} days"),
        EventKind::Reply { outcome, .. } => snake(outcome),
        EventKind::Evaluate { satisfaction } => snake(satisfaction),
        EventKind::Close { resolved, .. } => {
            if *resolved {
                "resolved".to_owned()
            } else {
                "not resolved".to_owned()
            }
        }
        EventKind::RequestReview { level, .. } => snake(level),
        EventKind::DecideReview { level, outcome, .. } => {
            format!("{}: {}", snake(level), snake(outcome))
        }
        EventKind::Resolve { chosen, .. } => format!("chose event {chosen}"),
        EventKind::Mediate {
            mediation_type,
            result,
            ..
        } => format!("{}: {}", snake(mediation_type), snake(result)),
        EventKind::UpdateJudicialConfirmation { mediation, status } => {
            format!("mediation {mediation}: {}", snake(status))
        }
        EventKind::LinkRepeat { earlier } => format!("repeats case {earlier}"),
        EventKind::IssueDirective {
            directive,
            target_node,
            due,
            listed,
            ..
        } => format!(
            "directive {directive} to node {target_node}, due {due}{}",
            if *listed { ", listed" } else { "" }
        ),
        EventKind::AcknowledgeDirective { directive }
        | EventKind::ReportDirective { directive, .. }
        | EventKind::CrossOffDirective { directive }
        | EventKind::ReturnDirective { directive, .. } => format!("directive {directive}"),
        EventKind::AmendHeader { amendment } => {
            // Only which field changed: the new value may be a name or an ID number.
            let field = serde_json::to_value(amendment)
                .ok()
                .and_then(|value| {
                    value
                        .get("field")
                        .and_then(|field| field.as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| "header".to_owned());
            format!("amended {field}")
        }
    }
}

/// A model enum in its API spelling (`not_support`, `re_review`).
fn snake(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_one_events_are_ordered_by_their_wall_time() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_000).expect("a valid time");
        let stamped = HybridTimestamp {
            wall_ms: 1_700_000_000_000,
            counter: 3,
        };
        assert_eq!(
            audit_order_key(HybridTimestamp::ZERO, at).wall_ms,
            at.timestamp_millis()
        );
        assert_eq!(audit_order_key(stamped, at), stamped);
    }

    #[test]
    fn summaries_leave_free_text_out() {
        let reject = EventKind::Reject {
            reason: "王秀英 430702198503120029".to_owned(),
        };
        assert_eq!(non_personal_summary(&reject), "");
        let escalate = EventKind::Escalate {
            to_node: "abc".to_owned(),
            reason: "王秀英".to_owned(),
        };
        assert_eq!(non_personal_summary(&escalate), "to node abc");
    }
}
