//! What a person may type: the text rule and the bounds of every field, in one place.
//!
//! Every request that makes an event goes through here (the API's registrations and appends, the
//! import's rows and their histories, the operator header), from the existing validation in
//! [`crate::lifecycle`] and the node's service. Received events are not judged here: a peer's
//! event is kept on its signature and authority, and a stored character is escaped when printed.
//!
//! The text rule: no control characters (C0, DEL, C1) and no characters that reorder text on
//! screen (bidi embeddings, overrides, isolates and marks, line and paragraph separators). A line
//! break is the one exception, allowed in long free text (a summary, a reason, a reply, a note).
//! Such characters let one office write into another's terminal (an escape sequence in a village's
//! summary, printed at the county) or make a record read differently from what it holds.
//!
//! The bounds are far beyond what a real office reaches, so they stop typos and abuse, never work.

use chrono::{DateTime, Datelike, Utc};

use crate::case_error::CaseError;
use crate::deadlines::local_date;
use crate::model::{CaseHeader, EventKind, HeaderAmendment, Location, Ownership, Petitioner};
use crate::personal_data;

pub use crate::bounds::{
    CASE_NUMBER_YEARS_AHEAD, FIRST_YEAR, MAX_HEADCOUNT, MAX_OPERATOR_CHARS, MAX_PETITIONERS,
    REFUSED_CHARACTER_RANGES, SEQUENCE_DIGITS, TextKind, is_control_or_reordering, text_pattern,
};

fn invalid(field: &'static str, why: impl Into<String>) -> CaseError {
    CaseError::InvalidInput {
        field,
        why: why.into(),
    }
}

/// The text rule and the length bound of `kind`.
pub fn check_text(field: &'static str, value: &str, kind: TextKind) -> Result<(), CaseError> {
    check_length(field, value, kind.max_chars())?;
    check_characters(field, value, kind.keeps_line_breaks())
}

fn check_length(field: &'static str, value: &str, max_chars: usize) -> Result<(), CaseError> {
    let length = value.chars().count();
    if length > max_chars {
        return Err(invalid(
            field,
            format!("is {length} characters long; at most {max_chars}"),
        ));
    }
    Ok(())
}

/// The text rule. The refusal names the character by its code point and position, never by
/// itself, so the message cannot carry what it refuses.
fn check_characters(
    field: &'static str,
    value: &str,
    keeps_line_breaks: bool,
) -> Result<(), CaseError> {
    let refused = value.chars().enumerate().find(|&(_, character)| {
        is_control_or_reordering(character) && !(character == '\n' && keeps_line_breaks)
    });
    let Some((position, character)) = refused else {
        return Ok(());
    };
    let allowed = if keeps_line_breaks {
        "control and text-direction characters are refused (line breaks are allowed)"
    } else {
        "control characters, line breaks and text-direction characters are refused"
    };
    Err(invalid(
        field,
        format!(
            "character {} is U+{:04X}: {allowed}",
            position + 1,
            u32::from(character)
        ),
    ))
}

/// The operator a person names on a change: one line, at most [`MAX_OPERATOR_CHARS`], and not
/// a name reserved for the node's escalation rules.
pub fn check_operator(field: &'static str, name: &str) -> Result<(), CaseError> {
    check_length(field, name, MAX_OPERATOR_CHARS)?;
    check_characters(field, name, false)?;
    // The node's escalation rules act under these names, and a rule counts as fired once an
    // escalation by its name exists: a person using one could stop that rule for a case.
    if crate::escalation_rules::is_reserved_operator_name(name) {
        return Err(invalid(
            field,
            format!(
                "names starting with \"{}\" (in any case, with either colon) are reserved for \
                 the node's escalation rules: give the operator's own name",
                crate::escalation_rules::RULE_OPERATOR_PREFIX
            ),
        ));
    }
    Ok(())
}

/// The parts of a case number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseNumberParts<'a> {
    pub region_code: &'a str,
    pub year: i32,
    pub sequence: u32,
}

/// Split `REGION-YEAR-SEQUENCE`: a 4-, 6-, 9- or 12-digit region code, a year from
/// [`FIRST_YEAR`] to [`CASE_NUMBER_YEARS_AHEAD`] past `now`'s (China time), and a sequence of
/// exactly [`SEQUENCE_DIGITS`] digits, not zero. The error says what is wrong, for a message.
pub fn parse_case_number(number: &str, now: DateTime<Utc>) -> Result<CaseNumberParts<'_>, String> {
    let all_digits =
        |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let mut parts = number.split('-');
    let (Some(region_code), Some(year), Some(sequence), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("does not have three parts separated by '-'".to_owned());
    };
    if !all_digits(region_code) || !matches!(region_code.len(), 4 | 6 | 9 | 12) {
        return Err("does not start with a 4-, 6-, 9- or 12-digit region code".to_owned());
    }
    let (Ok(year), 4) = (year.parse::<i32>(), year.len()) else {
        return Err("does not have a 4-digit year".to_owned());
    };
    let last_year = local_date(now).year() + CASE_NUMBER_YEARS_AHEAD;
    if !(FIRST_YEAR..=last_year).contains(&year) {
        return Err(format!(
            "has the year {year}, outside {FIRST_YEAR} to {last_year}"
        ));
    }
    if !all_digits(sequence) || sequence.len() != SEQUENCE_DIGITS {
        return Err(format!(
            "does not end with a sequence of {SEQUENCE_DIGITS} digits"
        ));
    }
    let sequence: u32 = sequence
        .parse()
        .map_err(|_| format!("does not end with a sequence of {SEQUENCE_DIGITS} digits"))?;
    if sequence == 0 {
        return Err("has sequence 0 (sequences start at 1)".to_owned());
    }
    Ok(CaseNumberParts {
        region_code,
        year,
        sequence,
    })
}

/// A headcount from 1 to [`MAX_HEADCOUNT`].
pub fn check_headcount(headcount: u32) -> Result<(), CaseError> {
    if headcount == 0 {
        return Err(invalid(
            "headcount",
            "at least one person brought the matter",
        ));
    }
    if headcount > MAX_HEADCOUNT {
        return Err(invalid(
            "headcount",
            format!("{headcount} people; at most {MAX_HEADCOUNT}"),
        ));
    }
    Ok(())
}

/// Everyone listed as a petitioner came, so the headcount counts them all.
fn check_headcount_covers_petitioners(
    headcount: u32,
    petitioners: &[Petitioner],
) -> Result<(), CaseError> {
    if (headcount as usize) < petitioners.len() {
        return Err(invalid(
            "headcount",
            format!(
                "{headcount} is fewer than the {} petitioners listed",
                petitioners.len()
            ),
        ));
    }
    Ok(())
}

/// Every petitioner's fields: the text rule and lengths, then the ID number and phone
/// ([`crate::personal_data`]), with a birth date not after `at` (the registration or amendment).
fn check_petitioners(petitioners: &[Petitioner], at: DateTime<Utc>) -> Result<(), CaseError> {
    if petitioners.len() > MAX_PETITIONERS {
        return Err(invalid(
            "petitioners",
            format!(
                "{} petitioners; at most {MAX_PETITIONERS}",
                petitioners.len()
            ),
        ));
    }
    for (position, petitioner) in petitioners.iter().enumerate() {
        let fields = [
            ("petitioners.name", &petitioner.name, TextKind::Name),
            (
                "petitioners.id_number",
                &petitioner.id_number,
                TextKind::Identifier,
            ),
            ("petitioners.phone", &petitioner.phone, TextKind::Identifier),
            ("petitioners.address", &petitioner.address, TextKind::Line),
        ];
        let of_petitioner = |field: &'static str, why: String| {
            invalid(field, format!("petitioner {}: {why}", position + 1))
        };
        for (field, value, kind) in fields {
            check_text(field, value, kind).map_err(|error| match error {
                CaseError::InvalidInput { field, why } => of_petitioner(field, why),
                other => other,
            })?;
        }
        personal_data::check_id_number(petitioner.id_type, &petitioner.id_number, local_date(at))
            .map_err(|why| of_petitioner("petitioners.id_number", why))?;
        personal_data::check_phone(&petitioner.phone)
            .map_err(|why| of_petitioner("petitioners.phone", why))?;
    }
    Ok(())
}

fn check_location(location: &Location) -> Result<(), CaseError> {
    check_text("location.village", &location.village, TextKind::Line)?;
    check_text("location.grid", &location.grid, TextKind::Line)?;
    check_text(
        "location.grid_worker",
        &location.grid_worker,
        TextKind::Name,
    )
}

fn check_ownership(ownership: &Ownership) -> Result<(), CaseError> {
    check_text("ownership.leader", &ownership.leader, TextKind::Name)?;
    check_text("ownership.unit", &ownership.unit, TextKind::Line)?;
    check_text("ownership.officer", &ownership.officer, TextKind::Name)?;
    check_text("ownership.plan", &ownership.plan, TextKind::Text)
}

/// Every bound and the text rule over a header as registered at `at`.
pub fn check_header(header: &CaseHeader, at: DateTime<Utc>) -> Result<(), CaseError> {
    check_text("number", &header.number, TextKind::Identifier)?;
    check_petitioners(&header.petitioners, at)?;
    check_headcount(header.headcount)?;
    check_headcount_covers_petitioners(header.headcount, &header.petitioners)?;
    check_text("respondent", &header.respondent, TextKind::Line)?;
    check_text("summary", &header.summary, TextKind::Summary)?;
    check_location(&header.location)?;
    check_ownership(&header.ownership)
}

/// Every bound and the text rule over an amendment, and the headcount against the petitioners
/// of the header as amended.
fn check_amendment(
    header: &CaseHeader,
    amendment: &HeaderAmendment,
    at: DateTime<Utc>,
) -> Result<(), CaseError> {
    match amendment {
        HeaderAmendment::Petitioners(petitioners) => {
            check_petitioners(petitioners, at)?;
            check_headcount_covers_petitioners(header.headcount, petitioners)
        }
        HeaderAmendment::Headcount(headcount) => {
            check_headcount(*headcount)?;
            check_headcount_covers_petitioners(*headcount, &header.petitioners)
        }
        HeaderAmendment::Respondent(respondent) => {
            check_text("respondent", respondent, TextKind::Line)
        }
        HeaderAmendment::Summary(summary) => check_text("summary", summary, TextKind::Summary),
        HeaderAmendment::Location(location) => check_location(location),
        HeaderAmendment::Ownership(ownership) => check_ownership(ownership),
        HeaderAmendment::Category(_)
        | HeaderAmendment::MatterType(_)
        | HeaderAmendment::LitigationRelated(_) => Ok(()),
    }
}

/// Every bound and the text rule over the payload of an event a person asks for at `at`, on the
/// case whose header is `header`. Every kind is named, so a new kind must say what its fields
/// hold.
pub fn check_event(
    header: &CaseHeader,
    kind: &EventKind,
    at: DateTime<Utc>,
) -> Result<(), CaseError> {
    use TextKind::{Identifier, Line, Name, Text};
    match kind {
        EventKind::Register {
            header: Some(registered),
            ..
        } => check_header(registered, at),
        EventKind::Register { header: None, .. }
        | EventKind::Accept {}
        | EventKind::AcceptAssignment {}
        | EventKind::Evaluate { .. } => Ok(()),
        EventKind::Reject { reason }
        | EventKind::Object { reason }
        | EventKind::Reopen { reason }
        | EventKind::TakeOver { reason }
        | EventKind::RequestReview { reason, .. } => check_text("reason", reason, Text),
        EventKind::Forward {
            to_unit,
            to_node,
            reason,
        } => {
            check_text("to_unit", to_unit, Line)?;
            if let Some(to_node) = to_node {
                check_text("to_node", to_node, Identifier)?;
            }
            check_text("reason", reason, Text)
        }
        EventKind::Assign {
            to_node,
            required_result,
            ..
        } => {
            check_text("to_node", to_node, Identifier)?;
            check_text("required_result", required_result, Text)
        }
        EventKind::Divert { to_unit, reason } => {
            check_text("to_unit", to_unit, Line)?;
            check_text("reason", reason, Text)
        }
        EventKind::Escalate { to_node, reason } => {
            check_text("to_node", to_node, Identifier)?;
            check_text("reason", reason, Text)
        }
        EventKind::Extend {
            approver, reason, ..
        } => {
            check_text("approver", approver, Name)?;
            check_text("reason", reason, Text)
        }
        EventKind::Reply { text, .. }
        | EventKind::DecideReview { text, .. }
        | EventKind::Note { text } => check_text("text", text, Text),
        EventKind::Close { note, .. } => check_text("note", note, Text),
        EventKind::Resolve { chosen, note, .. } => {
            check_text("chosen", chosen, Identifier)?;
            check_text("note", note, Text)
        }
        EventKind::Mediate {
            mediator,
            agreement,
            ..
        } => {
            check_text("mediator", mediator, Name)?;
            check_text("agreement", agreement, Text)
        }
        EventKind::UpdateJudicialConfirmation { mediation, .. } => {
            check_text("mediation", mediation, Identifier)
        }
        EventKind::LinkRepeat { earlier } => check_text("earlier", earlier, Identifier),
        EventKind::Succeed { predecessor } => check_text("predecessor", predecessor, Identifier),
        EventKind::IssueDirective {
            directive,
            target_node,
            requirement,
            ..
        } => {
            check_text("directive", directive, Identifier)?;
            check_text("target_node", target_node, Identifier)?;
            check_text("requirement", requirement, Text)
        }
        EventKind::AcknowledgeDirective { directive }
        | EventKind::CrossOffDirective { directive } => {
            check_text("directive", directive, Identifier)
        }
        EventKind::ReportDirective { directive, text } => {
            check_text("directive", directive, Identifier)?;
            check_text("text", text, Text)
        }
        EventKind::ReturnDirective { directive, reason } => {
            check_text("directive", directive, Identifier)?;
            check_text("reason", reason, Text)
        }
        EventKind::AmendHeader { amendment } => check_amendment(header, amendment, at),
    }
}

#[cfg(test)]
#[path = "tests/input_bounds.rs"]
mod tests;
