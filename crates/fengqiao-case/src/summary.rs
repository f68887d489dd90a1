//! The compact per-case record a node stores beside the document, built from header and state.

use chrono::{DateTime, Utc};

use crate::model::ledger::{LedgerClosure, LedgerEvaluation, LedgerFacts, LedgerReply};
use crate::model::{
    CaseHeader, CaseState, CaseSummary, DeadlineKind, DirectiveId, DirectiveStatus, Event,
    EventKind, SCHEMA_VERSION, Status,
};

pub fn summarize(header: &CaseHeader, state: &CaseState) -> CaseSummary {
    CaseSummary {
        schema_version: SCHEMA_VERSION,
        number: header.number.clone(),
        channel: header.channel,
        category: header.category,
        matter_type: header.matter_type,
        headcount: header.headcount,
        litigation_related: header.litigation_related,
        region_code: header.location.region_code.clone(),
        village: header.location.village.clone(),
        respondent: header.respondent.clone(),
        status: state.status,
        holder: state.holder.clone(),
        registered_by: state.registered_by.clone(),
        timeline: state.timeline.clone(),
        satisfaction: state.satisfaction,
        resolved: state.resolved,
        repeat_of: state.repeat_of.clone(),
        // The federation routes cases from summaries while these two flags are clear (so that it
        // need not load the document); it relies on them covering `escalated_to` and `awaiting`.
        escalated: !state.escalated_to.is_empty(),
        // `sent_to` names every forward or assignment's receiver for good (an objection clears
        // `assigned_by` and `awaiting`, not it), so it alone says "it was sent down or across".
        assigned: !state.sent_to.is_empty()
            || state.assigned_by.is_some()
            || state.awaiting.is_some(),
        directives: state.directives.clone(),
        in_conflict: state.conflict.is_some(),
        event_count: state.event_count,
        last_event_at: state.last_event_at,
        imported: state.imported,
        petitioner_names: header
            .petitioners
            .iter()
            .map(|petitioner| petitioner.name.clone())
            .collect(),
    }
}

/// What the case's 台账 row is made of: the header (as amended) and, from the events in list
/// order, the register event's time, the first acceptance and the last reply, evaluation and
/// closure. The export writes its row from these alone; the store keeps them per case.
pub fn ledger_facts(header: &CaseHeader, events: &[Event]) -> LedgerFacts {
    let registered_at = events.first().map(|event| event.at);
    let accepted_at = events.iter().find_map(|event| match event.kind {
        EventKind::Accept {} => Some(event.at),
        _ => None,
    });
    let reply = events.iter().rev().find_map(|event| match &event.kind {
        EventKind::Reply { outcome, text } => Some(LedgerReply {
            at: event.at,
            outcome: *outcome,
            text: text.clone(),
        }),
        _ => None,
    });
    let evaluation = events.iter().rev().find_map(|event| match &event.kind {
        EventKind::Evaluate { satisfaction } => Some(LedgerEvaluation {
            at: event.at,
            satisfaction: *satisfaction,
        }),
        _ => None,
    });
    let closure = events.iter().rev().find_map(|event| match &event.kind {
        EventKind::Close { resolved, note } => Some(LedgerClosure {
            at: event.at,
            resolved: *resolved,
            note: note.clone(),
        }),
        _ => None,
    });
    LedgerFacts {
        header: header.clone(),
        registered_at,
        accepted_at,
        reply,
        evaluation,
        closure,
    }
}

/// One time limit the case is currently running against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDeadline {
    pub kind: DeadlineKind,
    pub due: DateTime<Utc>,
    /// For directive deadlines, which directive.
    pub directive: Option<DirectiveId>,
}

/// The status deadline the holder is working against, if the status has one.
///
/// The evaluation window is deliberately absent: it is the petitioner's time, not the staff's, so
/// its expiry feeds the 参评率 and never a warning or an overdue list.
pub fn status_deadline(summary: &CaseSummary) -> Option<(DeadlineKind, DateTime<Utc>)> {
    let timeline = &summary.timeline;
    let (kind, due) = match summary.status {
        Status::Registered => (DeadlineKind::Acceptance, timeline.acceptance_deadline),
        Status::AwaitingReceiver => (DeadlineKind::Objection, timeline.objection_deadline),
        Status::Accepted => (DeadlineKind::Handling, timeline.handling_deadline),
        Status::UnderReview => (DeadlineKind::ReviewDecision, timeline.review_deadline),
        Status::NotAccepted
        | Status::Diverted
        | Status::ForwardedOut
        | Status::Replied
        | Status::Evaluated
        | Status::Closed
        | Status::Final => return None,
    };
    due.map(|due| (kind, due))
}

/// Every deadline open on the case: the status deadline, then each directive not crossed off,
/// in the order the directives were issued.
pub fn open_deadlines(summary: &CaseSummary) -> Vec<OpenDeadline> {
    let mut deadlines = Vec::with_capacity(1 + summary.directives.len());
    if let Some((kind, due)) = status_deadline(summary) {
        deadlines.push(OpenDeadline {
            kind,
            due,
            directive: None,
        });
    }
    deadlines.extend(
        summary
            .directives
            .iter()
            .filter(|directive| directive.status != DirectiveStatus::CrossedOff)
            .map(|directive| OpenDeadline {
                kind: DeadlineKind::Directive,
                due: directive.due,
                directive: Some(directive.id.clone()),
            }),
    );
    deadlines
}

/// The earliest deadline open on the case (status deadline or open directive), for the store's
/// deadline index. It covers exactly the deadlines [`crate::warnings::warnings`] grades, so a
/// listing by deadline and the warnings shown beside it never disagree.
pub fn earliest_open_deadline(summary: &CaseSummary) -> Option<DateTime<Utc>> {
    open_deadlines(summary)
        .into_iter()
        .map(|deadline| deadline.due)
        .min()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Hand-built summaries for the summary, warning and measure tests.

    use chrono::{DateTime, TimeZone, Utc};

    use crate::model::{
        CaseSummary, Category, Channel, DirectiveState, DirectiveStatus, MatterType,
        SCHEMA_VERSION, Status, Timeline,
    };

    /// Noon UTC on a day of March 2026 (days past 31 roll into April).
    pub(crate) fn day(day_of_march: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("valid date")
            + chrono::Duration::days(day_of_march - 1)
    }

    pub(crate) fn summary(status: Status) -> CaseSummary {
        CaseSummary {
            schema_version: SCHEMA_VERSION,
            number: "430702001001-2026-000001".to_owned(),
            channel: Channel::Visit,
            category: Category::WageArrears,
            matter_type: MatterType::Appeal,
            headcount: 1,
            litigation_related: false,
            region_code: "430702001001".to_owned(),
            village: "芦荻山村".to_owned(),
            respondent: "大连市台秤厂".to_owned(),
            status,
            holder: "node-village".to_owned(),
            registered_by: "node-village".to_owned(),
            timeline: Timeline {
                registered_at: Some(day(1)),
                ..Timeline::default()
            },
            satisfaction: None,
            resolved: None,
            repeat_of: None,
            escalated: false,
            assigned: false,
            directives: Vec::new(),
            in_conflict: false,
            event_count: 1,
            last_event_at: Some(day(1)),
            imported: false,
            petitioner_names: Vec::new(),
        }
    }

    pub(crate) fn directive(
        id: &str,
        due: DateTime<Utc>,
        status: DirectiveStatus,
    ) -> DirectiveState {
        DirectiveState {
            id: id.to_owned(),
            issuer_node: "node-county".to_owned(),
            issued_by: "县信访局 王督办".to_owned(),
            issued_at: day(2),
            target_node: "node-village".to_owned(),
            requirement: "限期化解并书面报告".to_owned(),
            due,
            listed: false,
            status,
            reports: Vec::new(),
            crossed_off_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{day, directive, summary};
    use super::*;
    use crate::model::{
        CaseHeader, Category, Channel, Conflict, Location, MatterType, Ownership, Petitioner,
        Satisfaction, Timeline,
    };

    fn header() -> CaseHeader {
        CaseHeader {
            number: "430702001001-2026-000007".to_owned(),
            channel: Channel::Online,
            petitioners: vec![Petitioner {
                name: "张国强".to_owned(),
                id_number: String::new(),
                id_type: Default::default(),
                phone: String::new(),
                address: String::new(),
                representative: false,
            }],
            headcount: 6,
            respondent: "芦荻山村民委员会".to_owned(),
            category: Category::LandRequisition,
            matter_type: MatterType::Appeal,
            litigation_related: true,
            summary: "反映征地补偿款未发放".to_owned(),
            location: Location {
                region_code: "430702001001".to_owned(),
                village: "芦荻山村".to_owned(),
                grid: "第三网格".to_owned(),
                grid_worker: "李秀英".to_owned(),
            },
            ownership: Ownership::default(),
        }
    }

    fn state() -> CaseState {
        CaseState {
            status: Status::Accepted,
            holder: "node-township".to_owned(),
            registered_by: "node-village".to_owned(),
            tip: "e3".to_owned(),
            timeline: Timeline {
                registered_at: Some(day(1)),
                handling_deadline: Some(day(61)),
                ..Timeline::default()
            },
            reply: None,
            satisfaction: Some(Satisfaction::BasicallySatisfied),
            resolved: Some(true),
            review_level: None,
            review_outcome: None,
            repeat_of: Some("430702001001-2025-000099".to_owned()),
            escalated_to: vec!["node-township".to_owned()],
            sent_to: Vec::new(),
            awaiting: None,
            assigned_by: None,
            assignment_deadline: None,
            directives: vec![directive("d1", day(20), DirectiveStatus::Issued)],
            mediations: Vec::new(),
            conflict: None,
            superseded: Vec::new(),
            invalid: Vec::new(),
            event_count: 3,
            last_event_at: Some(day(5)),
            imported: false,
            time_flags: Vec::new(),
        }
    }

    #[test]
    fn summary_copies_header_and_state_and_derives_flags() {
        let summary = summarize(&header(), &state());
        assert_eq!(summary.schema_version, SCHEMA_VERSION);
        assert_eq!(summary.number, "430702001001-2026-000007");
        assert_eq!(summary.channel, Channel::Online);
        assert_eq!(summary.category, Category::LandRequisition);
        assert_eq!(summary.headcount, 6);
        assert!(summary.litigation_related);
        assert_eq!(summary.region_code, "430702001001");
        assert_eq!(summary.village, "芦荻山村");
        assert_eq!(summary.respondent, "芦荻山村民委员会");
        assert_eq!(summary.status, Status::Accepted);
        assert_eq!(summary.holder, "node-township");
        assert_eq!(summary.registered_by, "node-village");
        assert_eq!(summary.timeline.handling_deadline, Some(day(61)));
        assert_eq!(summary.satisfaction, Some(Satisfaction::BasicallySatisfied));
        assert_eq!(summary.resolved, Some(true));
        assert_eq!(
            summary.repeat_of.as_deref(),
            Some("430702001001-2025-000099")
        );
        assert!(summary.escalated);
        assert!(!summary.assigned);
        assert!(!summary.in_conflict);
        assert_eq!(summary.directives.len(), 1);
        assert_eq!(summary.event_count, 3);
        assert_eq!(summary.last_event_at, Some(day(5)));
    }

    #[test]
    fn assigned_when_awaiting_a_receiver_or_after_one_took_it_on() {
        let mut awaiting = state();
        awaiting.awaiting = Some("node-village-2".to_owned());
        assert!(summarize(&header(), &awaiting).assigned);

        let mut taken_on = state();
        taken_on.assigned_by = Some("node-county".to_owned());
        assert!(summarize(&header(), &taken_on).assigned);
    }

    #[test]
    fn conflict_and_no_escalation_are_reported() {
        let mut conflicted = state();
        conflicted.escalated_to.clear();
        conflicted.conflict = Some(Conflict {
            fork: "e2".to_owned(),
            branches: Vec::new(),
            disputed: Vec::new(),
        });
        let summary = summarize(&header(), &conflicted);
        assert!(summary.in_conflict);
        assert!(!summary.escalated);
    }

    #[test]
    fn earliest_open_deadline_follows_status_and_ignores_the_evaluation_window() {
        let mut case = summary(Status::Registered);
        case.timeline.acceptance_deadline = Some(day(1));
        case.timeline.objection_deadline = Some(day(2));
        case.timeline.handling_deadline = Some(day(3));
        case.timeline.review_deadline = Some(day(4));
        case.timeline.evaluation_deadline = Some(day(5));
        let expected = [
            (Status::Registered, Some(day(1))),
            (Status::AwaitingReceiver, Some(day(2))),
            (Status::Accepted, Some(day(3))),
            (Status::UnderReview, Some(day(4))),
            (Status::Replied, None),
            (Status::Evaluated, None),
            (Status::NotAccepted, None),
            (Status::Diverted, None),
            (Status::ForwardedOut, None),
            (Status::Closed, None),
            (Status::Final, None),
        ];
        for (status, deadline) in expected {
            case.status = status;
            assert_eq!(earliest_open_deadline(&case), deadline, "{status:?}");
        }
    }

    #[test]
    fn earliest_open_deadline_includes_open_directives_only() {
        let mut case = summary(Status::Accepted);
        case.timeline.handling_deadline = Some(day(60));
        case.directives = vec![
            directive("crossed", day(5), DirectiveStatus::CrossedOff),
            directive("open", day(20), DirectiveStatus::Reported),
        ];
        assert_eq!(earliest_open_deadline(&case), Some(day(20)));

        case.status = Status::Closed;
        assert_eq!(earliest_open_deadline(&case), Some(day(20)));

        case.directives.pop();
        assert_eq!(earliest_open_deadline(&case), None);
    }
}
