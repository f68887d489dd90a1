//! Fields a JSON request names that its type does not know: a typo (`adress`, `notes`) would
//! otherwise drop what was typed without a word, so the API and the ledger import refuse them.
//! Likewise what serde reads leniently and so changes without a word: an object sent as a list
//! of its fields' values (serde's sequence form of a struct), and a date or time with control
//! characters around it (chrono skips them).
//!
//! The check compares the JSON as sent with the value it parsed into, serialized back: a field
//! the type does not know is missing from the second. This works at any depth, through
//! `#[serde(flatten)]` and tagged enums, and leaves the types alone: the same types are stored
//! and sent between nodes, where `#[serde(deny_unknown_fields)]` would make an older node refuse
//! what a newer one writes.

use serde::Serialize;
use serde_json::Value;

/// A field the request named that its type does not know, with the ones it does know there;
/// or a value the type read as something else than was sent ([`Reading`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    /// Where, as `petitioners[0].adress`.
    pub path: String,
    pub known: Vec<String>,
    pub reading: Reading,
}

/// What was wrong with the field at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The type has no such field.
    Unknown,
    /// An object was sent as a list: its values would be taken by position.
    ListForObject,
    /// A text holding control characters that the type's parser skipped.
    ControlCharactersSkipped,
}

impl std::fmt::Display for UnknownField {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reading {
            Reading::Unknown => write!(formatter, "unknown field `{}`", self.path)?,
            Reading::ListForObject => {
                return write!(
                    formatter,
                    "`{}` is a list where an object belongs (fields {})",
                    self.path,
                    self.known.join(", ")
                );
            }
            Reading::ControlCharactersSkipped => {
                return write!(
                    formatter,
                    "`{}` holds control or text-direction characters, which are refused",
                    self.path
                );
            }
        }
        if !self.known.is_empty() {
            write!(formatter, " (known here: {})", self.known.join(", "))?;
        }
        Ok(())
    }
}

/// The first field of `sent` that `parsed` did not keep. `parsed` must come from `sent`.
pub fn first_unknown_field(
    sent: &Value,
    parsed: &impl Serialize,
) -> Result<Option<UnknownField>, serde_json::Error> {
    let understood = serde_json::to_value(parsed)?;
    Ok(first_missing(sent, &understood, &mut String::new()))
}

/// Fields a type leaves out when they hold their default, so that what was stored before they
/// existed encodes (and stays signed) as it was: sent with that default, they are known. Each is
/// `(field, default, a field its type always writes)`, the last telling the type apart
/// (a `Petitioner` always writes `id_number`).
const OMITTED_WHEN_DEFAULT: &[(&str, &str, &str)] = &[("id_type", "resident_id", "id_number")];

fn omitted_default(name: &str, sent: &Value, understood: &serde_json::Map<String, Value>) -> bool {
    OMITTED_WHEN_DEFAULT
        .iter()
        .any(|(field, default, sibling)| {
            *field == name && sent.as_str() == Some(default) && understood.contains_key(*sibling)
        })
}

fn first_missing(sent: &Value, understood: &Value, path: &mut String) -> Option<UnknownField> {
    match (sent, understood) {
        (Value::Object(sent), Value::Object(understood)) => {
            for (name, sent_value) in sent {
                let length = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
                let Some(understood_value) = understood.get(name) else {
                    if omitted_default(name, sent_value, understood) {
                        path.truncate(length);
                        continue;
                    }
                    return Some(UnknownField {
                        path: path.clone(),
                        known: understood.keys().cloned().collect(),
                        reading: Reading::Unknown,
                    });
                };
                if let Some(unknown) = first_missing(sent_value, understood_value, path) {
                    return Some(unknown);
                }
                path.truncate(length);
            }
            None
        }
        (Value::Array(sent), Value::Array(understood)) => {
            for (index, (sent_value, understood_value)) in sent.iter().zip(understood).enumerate() {
                let length = path.len();
                path.push_str(&format!("[{index}]"));
                if let Some(unknown) = first_missing(sent_value, understood_value, path) {
                    return Some(unknown);
                }
                path.truncate(length);
            }
            None
        }
        (Value::Array(_), Value::Object(understood)) => Some(UnknownField {
            path: path.clone(),
            known: understood.keys().cloned().collect(),
            reading: Reading::ListForObject,
        }),
        (Value::String(sent), Value::String(understood))
            if sent != understood
                && sent
                    .chars()
                    .any(fengqiao_case::input_bounds::is_control_or_reordering) =>
        {
            Some(UnknownField {
                path: path.clone(),
                known: Vec::new(),
                reading: Reading::ControlCharactersSkipped,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use fengqiao_case::{AppendEvent, ImportBatch, RegisterCase};
    use serde_json::json;

    fn registration() -> Value {
        json!({
            "channel": "visit",
            "petitioners": [{"name": "张三", "address": "三组"}],
            "headcount": 1,
            "category": "labour",
            "matter_type": "appeal",
            "summary": "工伤赔偿",
            "location": {"region_code": "430702"}
        })
    }

    fn unknown_in<T: serde::de::DeserializeOwned + Serialize>(sent: &Value) -> Option<String> {
        let parsed: T = serde_json::from_value(sent.clone()).unwrap();
        first_unknown_field(sent, &parsed)
            .unwrap()
            .map(|unknown| unknown.to_string())
    }

    #[test]
    fn a_request_with_only_known_fields_passes() {
        assert_eq!(unknown_in::<RegisterCase>(&registration()), None);
        let note = json!({"kind": "note", "payload": {"text": "回访"}, "at": null});
        assert_eq!(unknown_in::<AppendEvent>(&note), None);
        let accept = json!({"kind": "accept", "payload": {}});
        assert_eq!(unknown_in::<AppendEvent>(&accept), None);
    }

    #[test]
    fn a_default_the_type_leaves_out_is_known_when_sent() {
        let mut resident = registration();
        resident["petitioners"][0]["id_type"] = json!("resident_id");
        assert_eq!(unknown_in::<RegisterCase>(&resident), None);
        let mut passport = registration();
        passport["petitioners"][0]["id_type"] = json!("passport");
        assert_eq!(unknown_in::<RegisterCase>(&passport), None);
        let mut elsewhere = registration();
        elsewhere["id_type"] = json!("resident_id");
        assert!(
            unknown_in::<RegisterCase>(&elsewhere)
                .unwrap()
                .starts_with("unknown field `id_type`")
        );
    }

    #[test]
    fn unknown_fields_are_named_with_their_path_at_any_depth() {
        let mut top = registration();
        top["sumary"] = json!("typo");
        let message = unknown_in::<RegisterCase>(&top).unwrap();
        assert!(
            message.starts_with("unknown field `sumary` (known here: "),
            "{message}"
        );
        assert!(message.contains("summary"), "{message}");

        let mut nested = registration();
        nested["petitioners"][0]["adress"] = json!("三组");
        assert_eq!(
            unknown_in::<RegisterCase>(&nested).unwrap(),
            "unknown field `petitioners[0].adress` (known here: address, id_number, name, phone, \
             representative)"
        );

        let flattened =
            json!({"kind": "close", "payload": {"resolved": true, "note": "", "notes": "x"}});
        assert!(
            unknown_in::<AppendEvent>(&flattened)
                .unwrap()
                .starts_with("unknown field `payload.notes`")
        );
        let beside = json!({"kind": "accept", "payload": {}, "when": "2026-03-01"});
        assert!(
            unknown_in::<AppendEvent>(&beside)
                .unwrap()
                .starts_with("unknown field `when`")
        );
        let mut listed = registration();
        listed["petitioners"][0] = json!(["张三"]);
        assert_eq!(
            unknown_in::<RegisterCase>(&listed).unwrap(),
            "`petitioners[0]` is a list where an object belongs (fields address, id_number, \
             name, phone, representative)"
        );
        let mut dated = registration();
        dated["ownership"] = json!({"target_date": "\r2026-02-01"});
        assert_eq!(
            unknown_in::<RegisterCase>(&dated).unwrap(),
            "`ownership.target_date` holds control or text-direction characters, which are \
             refused"
        );
        let batch = json!({"rows": [{"line": 1, "case": registration(), "histroy": []}]});
        assert!(
            unknown_in::<ImportBatch>(&batch)
                .unwrap()
                .starts_with("unknown field `rows[0].histroy`")
        );
    }
}
