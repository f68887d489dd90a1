//! The bounds of what a person may type and date, as numbers and character classes: one place,
//! read by the checks (`input_bounds.rs`, `event_time.rs`) and by the OpenAPI document
//! (`schema.rs`, the wire types' schema attributes). Nothing here reads a model type, so the
//! document's schemas and the checks take the same figures without depending on each other.

use chrono::TimeDelta;

/// How far two offices' clocks may disagree before it matters: a given time may lie this far
/// past `now`, an event this far before the one it follows, and a node whose clock is off by
/// more than this against its peers says so and stops stamping events.
pub const CLOCK_SKEW_ALLOWANCE: TimeDelta = TimeDelta::minutes(5);

/// How many days in the past a person may date an event by default (`[clock] max_backdate_days`).
pub const DEFAULT_MAX_BACKDATE_DAYS: u32 = 30;

/// The first year a registration, an event or a case number may carry: Fengqiao keeps current
/// work and ledgers of recent years, not archives.
pub const FIRST_YEAR: i32 = 2000;

/// How many years past `now`'s a case number's year may be: a number for next year is given
/// around New Year, never later.
pub const CASE_NUMBER_YEARS_AHEAD: i32 = 1;

/// Digits of the sequence part of a case number (`430702-2026-000123`).
pub const SEQUENCE_DIGITS: usize = 6;

/// Most people one case may record as having come (the largest group visits are hundreds).
pub const MAX_HEADCOUNT: u32 = 10_000;

/// Most petitioners one case may list by name.
pub const MAX_PETITIONERS: usize = 1_000;

/// Longest operator name: a person's name and perhaps a post, not a document.
pub const MAX_OPERATOR_CHARS: usize = 100;

/// What a text field holds, which sets its length and whether it may break lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A person's name: petitioner, grid worker, leader, officer, mediator, approver.
    Name,
    /// An identifier or number: ID number, phone, node, event, directive or case id.
    Identifier,
    /// One line about a place or a body: address, village, grid, unit, respondent.
    Line,
    /// The petitioner's request in their own words.
    Summary,
    /// Free text: reasons, replies, notes, plans, requirements, reports, agreements.
    Text,
}

impl TextKind {
    /// Every kind, for the tables that list the bounds.
    pub const ALL: [TextKind; 5] = [
        TextKind::Name,
        TextKind::Identifier,
        TextKind::Line,
        TextKind::Summary,
        TextKind::Text,
    ];

    /// The most characters (Unicode scalar values) a field of this kind may hold.
    pub const fn max_chars(self) -> usize {
        match self {
            TextKind::Name => 64,
            TextKind::Identifier => 64,
            TextKind::Line => 200,
            TextKind::Summary => 4_000,
            TextKind::Text => 10_000,
        }
    }

    /// Whether the field may hold line breaks (`\n`).
    pub const fn keeps_line_breaks(self) -> bool {
        matches!(self, TextKind::Summary | TextKind::Text)
    }
}

/// The characters the text rule refuses, as inclusive ranges: the control characters (Unicode
/// Cc, what `char::is_control` says) and those that reorder text on screen. The check and the
/// OpenAPI document's `pattern` ([`text_pattern`]) are both made from this table.
pub const REFUSED_CHARACTER_RANGES: [(char, char); 7] = [
    ('\u{0000}', '\u{001F}'),
    ('\u{007F}', '\u{009F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{200E}', '\u{200F}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2066}', '\u{2069}'),
];

/// Whether `character` is a control character or one that reorders text on screen: refused in
/// every field except a line break in long text, and escaped when printed.
pub fn is_control_or_reordering(character: char) -> bool {
    REFUSED_CHARACTER_RANGES
        .iter()
        .any(|&(first, last)| (first..=last).contains(&character))
}

/// The text rule of `kind` as a JSON Schema (ECMA-262) `pattern`: no refused character, except
/// a line break where the kind keeps them. The characters stand in the class as themselves.
pub fn text_pattern(kind: TextKind) -> String {
    let mut class = String::new();
    for &(first, last) in &REFUSED_CHARACTER_RANGES {
        if kind.keeps_line_breaks() && (first..=last).contains(&'\n') {
            // Split the range around the line break it lets through.
            class.extend([first, '-', '\u{0009}', '\u{000B}', '-', last]);
        } else if first == last {
            class.push(first);
        } else {
            class.extend([first, '-', last]);
        }
    }
    format!("^[^{class}]*$")
}
