//! JSON Schemas of the wire types' bounded fields (feature `schema`), for the OpenAPI document.
//!
//! The `#[schemars(transform = …)]` attributes in `model/` call these: each states a bound the
//! node checks in [`crate::input_bounds`] (lengths, the text rule, the case number's shape, the
//! time window), read from there, so the document cannot drift from the check. Also the
//! examples of the main request bodies.

use schemars::Schema;
use serde_json::{Value, json};

use crate::bounds::{self, FIRST_YEAR, SEQUENCE_DIGITS, TextKind};

fn text(schema: &mut Schema, kind: TextKind) {
    schema.insert("maxLength".to_owned(), json!(kind.max_chars()));
    schema.insert(
        "pattern".to_owned(),
        Value::String(bounds::text_pattern(kind)),
    );
}

/// A person's name ([`TextKind::Name`]).
pub fn name_text(schema: &mut Schema) {
    text(schema, TextKind::Name);
}

/// A petitioner's name: a name that must be given (the lifecycle refuses a blank one).
pub fn required_name_text(schema: &mut Schema) {
    text(schema, TextKind::Name);
    schema.insert("minLength".to_owned(), json!(1));
}

/// An identifier: node, event, directive or case id, ID number, phone ([`TextKind::Identifier`]).
pub fn identifier_text(schema: &mut Schema) {
    text(schema, TextKind::Identifier);
}

/// One line about a place or a body ([`TextKind::Line`]).
pub fn line_text(schema: &mut Schema) {
    text(schema, TextKind::Line);
}

/// The petitioner's request ([`TextKind::Summary`]).
pub fn summary_text(schema: &mut Schema) {
    text(schema, TextKind::Summary);
}

/// Free text: reasons, replies, notes, plans ([`TextKind::Text`]).
pub fn long_text(schema: &mut Schema) {
    text(schema, TextKind::Text);
}

/// A case number as `input_bounds::parse_case_number` reads it: REGION-YEAR-SEQUENCE.
pub fn case_number(schema: &mut Schema) {
    schema.insert(
        "pattern".to_owned(),
        Value::String(format!(
            "^([0-9]{{4}}|[0-9]{{6}}|[0-9]{{9}}|[0-9]{{12}})-[0-9]{{4}}-[0-9]{{{SEQUENCE_DIGITS}}}$"
        )),
    );
    schema.insert(
        "maxLength".to_owned(),
        json!(TextKind::Identifier.max_chars()),
    );
}

/// A time a person gives for a registration or an event (`event_time.rs`, the one time rule).
pub fn given_time(schema: &mut Schema) {
    schema.insert(
        "description".to_owned(),
        Value::String(format!(
            "RFC 3339; not before {FIRST_YEAR} (China time), not later than {allowance} minutes \
             past the node's clock, not before the event it follows (the transition, the \
             registration, the directive answered) by more than {allowance} minutes; more than \
             {allowance} minutes in the past only with `backdated_reason` and at most `[clock] \
             max_backdate_days` (default {max_days}) days; defaults to now. The measures count a \
             back-dated decision or reply at the time the node recorded it",
            allowance = bounds::CLOCK_SKEW_ALLOWANCE.num_minutes(),
            max_days = bounds::DEFAULT_MAX_BACKDATE_DAYS,
        )),
    );
}

/// An example registration (`POST /api/cases`).
pub fn example_registration() -> Value {
    json!({
        "channel": "visit",
        "petitioners": [{
            "name": "张三",
            "id_number": "430702198001011236",
            "phone": "13800000000",
            "address": "芦荻山村三组",
            "representative": true,
        }],
        "headcount": 1,
        "respondent": "某建筑公司",
        "category": "wage_arrears",
        "matter_type": "appeal",
        "summary": "2025年在村道工程务工，工资三个月未结清。",
        "location": {
            "region_code": "430702001001",
            "village": "芦荻山村",
            "grid": "第三网格",
            "grid_worker": "李网格",
        },
    })
}

/// An example event (`POST /api/cases/{number}/events`).
pub fn example_event() -> Value {
    json!({
        "kind": "reply",
        "payload": {"outcome": "support", "text": "工程方已于三月结清欠薪。"},
    })
}
