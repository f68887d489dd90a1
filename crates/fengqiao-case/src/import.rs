//! What identifies a ledger row across runs of an import, and what an import's id may be.
//!
//! A re-run of an import must skip the rows an earlier run registered, also after a `kill -9`
//! between two batches, and also for rows that carry no case number. So each row gets a key
//! from its content alone: the parsed values (so `来访` and `visit`, or `2026/3/1` and
//! `2026-03-01`, are the same row), not its line (editing lines above it must not make it new).
//! The node records the key with the case it registered, in the same transaction.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::case_error::CaseError;
use crate::input_bounds::{TextKind, check_text};
use crate::model::{AppendEvent, ImportRow, RegisterCase};

/// Hex digits of the content hash kept in a row key: 128 bits, no collision among any number
/// of ledger rows a node will see.
const ROW_KEY_HASH_HEX_DIGITS: usize = 32;

/// The identity of a ledger row: `number:` and its case number when the row carries one (the
/// number is the case's identity already), otherwise `sha256:` and a hash of its content, with
/// `#` and [`ImportRow::repeat`] for the second and later of identical rows.
///
/// The content is the JSON of the row's registration and history as parsed. Changing what is
/// hashed changes every key, and a re-run of an older import would then register its rows
/// again: never change it, add a new prefix instead.
pub fn row_key(row: &ImportRow) -> String {
    if let Some(number) = &row.case.number {
        return format!("number:{number}");
    }
    #[derive(Serialize)]
    struct Content<'a> {
        case: &'a RegisterCase,
        history: &'a [AppendEvent],
    }
    // Serializing these types cannot fail (no maps with non-string keys); an empty text would
    // still give one key per content-less row, never a wrong match.
    let content = serde_json::to_vec(&Content {
        case: &row.case,
        history: &row.history,
    })
    .unwrap_or_default();
    let digest = hex::encode(Sha256::digest(&content));
    let hash = &digest[..ROW_KEY_HASH_HEX_DIGITS];
    match row.repeat {
        0 => format!("sha256:{hash}"),
        repeat => format!("sha256:{hash}#{repeat}"),
    }
}

/// An import's id, as a client names a run: one line of identifier text, not empty.
pub fn check_import_id(import_id: &str) -> Result<(), CaseError> {
    if import_id.trim().is_empty() {
        return Err(CaseError::InvalidInput {
            field: "import_id",
            why: "is empty".to_owned(),
        });
    }
    check_text("import_id", import_id, TextKind::Identifier)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Category, Channel, EventKind, Location, MatterType};

    fn row(line: u64, summary: &str) -> ImportRow {
        ImportRow {
            line,
            case: RegisterCase {
                backdated_reason: None,
                number: None,
                registered_at: None,
                channel: Channel::Visit,
                petitioners: Vec::new(),
                headcount: 1,
                respondent: String::new(),
                category: Category::Labour,
                matter_type: MatterType::Appeal,
                litigation_related: false,
                summary: summary.to_owned(),
                location: Location {
                    region_code: "430702001001".to_owned(),
                    village: String::new(),
                    grid: String::new(),
                    grid_worker: String::new(),
                },
                ownership: Default::default(),
            },
            history: Vec::new(),
            repeat: 0,
        }
    }

    #[test]
    fn the_key_follows_the_content_not_the_line() {
        let first = row_key(&row(2, "欠薪"));
        assert!(first.starts_with("sha256:"), "{first}");
        assert_eq!(first, row_key(&row(900, "欠薪")), "lines do not count");
        assert_ne!(first, row_key(&row(2, "工伤")));
        let mut with_history = row(2, "欠薪");
        with_history.history.push(AppendEvent {
            backdated_reason: None,
            kind: EventKind::Accept {},
            at: None,
        });
        assert_ne!(first, row_key(&with_history));
    }

    #[test]
    fn identical_rows_are_told_apart_by_their_repeat_and_numbers_are_their_own_key() {
        let mut second = row(3, "欠薪");
        second.repeat = 1;
        assert_eq!(row_key(&second), format!("{}#1", row_key(&row(2, "欠薪"))));
        let mut numbered = row(2, "欠薪");
        numbered.case.number = Some("430702001001-2026-000001".to_owned());
        assert_eq!(row_key(&numbered), "number:430702001001-2026-000001");
    }

    #[test]
    fn import_ids_are_one_line_identifiers() {
        assert!(check_import_id("20260305T0930-1f2e3d4c").is_ok());
        assert!(check_import_id(" ").is_err());
        assert!(check_import_id("a\nb").is_err());
        assert!(check_import_id(&"x".repeat(65)).is_err());
    }
}
