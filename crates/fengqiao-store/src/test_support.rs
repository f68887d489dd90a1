//! Test fixtures: summaries, headers and documents built by hand, so store tests need no lifecycle code.

use chrono::{DateTime, TimeZone, Utc};
use fengqiao_case::{
    CaseDocument, CaseHeader, CaseSummary, Category, Channel, Event, EventKind, MatterType,
    SCHEMA_VERSION, Status, Timeline,
};

pub(crate) const TEST_ACTOR: [u8; 16] = [7; 16];

pub(crate) fn instant(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0)
        .single()
        .expect("valid test date")
}

pub(crate) fn summary_for(number: &str, status: Status, holder: &str) -> CaseSummary {
    CaseSummary {
        schema_version: SCHEMA_VERSION,
        number: number.to_owned(),
        channel: Channel::Visit,
        category: Category::WageArrears,
        matter_type: MatterType::Appeal,
        headcount: 1,
        litigation_related: false,
        region_code: "430702001001".to_owned(),
        village: "河洑村".to_owned(),
        respondent: "某建筑公司".to_owned(),
        status,
        holder: holder.to_owned(),
        registered_by: holder.to_owned(),
        timeline: Timeline {
            registered_at: Some(instant(1, 9)),
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
        last_event_at: Some(instant(1, 9)),
        imported: false,
        petitioner_names: Vec::new(),
    }
}

pub(crate) fn header_for(number: &str) -> CaseHeader {
    fengqiao_case::test_support::sample_header(number, "430702001001", "某建筑公司")
}

pub(crate) fn event(id: &str, kind: EventKind, prev: Option<&str>) -> Event {
    Event {
        id: id.to_owned(),
        kind,
        at: instant(1, 10),
        node: "node-a".to_owned(),
        operator: "王五".to_owned(),
        prev: prev.map(str::to_owned),
        hlc: Default::default(),
        signature: None,
        imported: None,
        backdated_reason: None,
    }
}

pub(crate) fn note(id: &str, text: &str) -> Event {
    event(
        id,
        EventKind::Note {
            text: text.to_owned(),
        },
        None,
    )
}

pub(crate) fn document_for(number: &str) -> CaseDocument {
    let header = header_for(number);
    let register = EventKind::Register {
        header: Some(Box::new(header.clone())),
        policy_version: 0,
    };
    CaseDocument::create(
        &header,
        &event(&format!("register-{number}"), register, None),
        &TEST_ACTOR,
    )
    .expect("test document builds")
}

/// Creates one registered case per number, held by `node-a`; returns their feed positions.
pub(crate) fn create_documents(
    store: &crate::Store,
    numbers: &[String],
) -> Result<Vec<u64>, crate::StoreError> {
    let mut documents: Vec<_> = numbers.iter().map(|number| document_for(number)).collect();
    let summaries: Vec<_> = numbers
        .iter()
        .map(|number| summary_for(number, Status::Registered, "node-a"))
        .collect();
    let mut cases: Vec<_> = documents
        .iter_mut()
        .zip(&summaries)
        .map(|(document, summary)| crate::NewCase { document, summary })
        .collect();
    store.create_cases(&mut cases)
}
