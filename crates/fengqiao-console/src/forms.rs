//! The console's form widgets: a text field and a select list as a page shows them (with the
//! browser's hints from the text bounds, `fengqiao_case::input_bounds`), and what a page says is
//! wrong beside each field. 登记 and the case page's actions build their forms from these.

use std::collections::BTreeMap;

use fengqiao_case::input_bounds::TextKind;

use crate::texts::{Texts, api_name};

/// What the page says is wrong: beside a field (by its form name), or above the form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormErrors {
    pub by_field: BTreeMap<String, String>,
    pub general: Vec<String>,
}

impl FormErrors {
    pub(crate) fn beside(&mut self, field: &str, message: String) {
        self.by_field.insert(field.to_owned(), message);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_field.is_empty() && self.general.is_empty()
    }
}

/// A text field as the page shows it.
#[derive(Debug, Clone)]
pub struct InputView {
    /// The element's id, unique on the page (a case page has several forms).
    pub id: String,
    pub name: String,
    pub label: String,
    pub value: String,
    pub error: Option<String>,
    pub required: bool,
    /// `text`, `number`, `date`, `tel` or `textarea`.
    pub input_type: &'static str,
    pub maxlength: usize,
    /// An in-page hint of the shape (the node still judges); empty for none.
    pub pattern: &'static str,
}

/// A select list as the page shows it.
#[derive(Debug, Clone)]
pub struct SelectView {
    pub id: String,
    pub name: String,
    pub label: String,
    pub choices: Vec<Choice>,
    pub error: Option<String>,
    pub required: bool,
}

/// A field of `kind`'s bound (`fengqiao_case::input_bounds`), as a browser can hint it.
pub(crate) struct Spec {
    pub name: String,
    pub label: String,
    pub kind: TextKind,
    pub required: bool,
    pub input_type: &'static str,
    pub pattern: &'static str,
}

pub(crate) fn input(spec: Spec, value: &str, errors: &FormErrors) -> InputView {
    InputView {
        error: errors.by_field.get(&spec.name).cloned(),
        maxlength: spec.kind.max_chars(),
        id: spec.name.clone(),
        name: spec.name,
        label: spec.label,
        value: value.to_owned(),
        required: spec.required,
        input_type: spec.input_type,
        pattern: spec.pattern,
    }
}

pub(crate) fn spec(name: &str, label: &str, kind: TextKind) -> Spec {
    Spec {
        name: name.to_owned(),
        label: label.to_owned(),
        kind,
        required: false,
        input_type: if kind.keeps_line_breaks() {
            "textarea"
        } else {
            "text"
        },
        pattern: "",
    }
}

pub(crate) fn select<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq>(
    (name, label): (&str, &str),
    table: &BTreeMap<String, String>,
    all: &[T],
    value: &str,
    errors: &FormErrors,
) -> SelectView {
    let selected: Option<T> = parse_choice(value, &mut Vec::new());
    SelectView {
        id: name.to_owned(),
        name: name.to_owned(),
        label: label.to_owned(),
        choices: choices(table, all, selected.as_ref()),
        error: errors.by_field.get(name).cloned(),
        required: true,
    }
}

/// One choice of a filter's select list.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// An enum from its API name; empty is "all"; anything else is "all" too, and named in
/// `refused` so the page says which value it did not take.
pub(crate) fn parse_choice<T: serde::de::DeserializeOwned>(
    value: &str,
    refused: &mut Vec<String>,
) -> Option<T> {
    if value.is_empty() {
        return None;
    }
    match serde_json::from_value(serde_json::Value::String(value.to_owned())) {
        Ok(parsed) => Some(parsed),
        Err(_) => {
            refused.push(value.to_owned());
            None
        }
    }
}

pub(crate) fn choices<T: serde::Serialize + PartialEq>(
    table: &std::collections::BTreeMap<String, String>,
    all: &[T],
    selected: Option<&T>,
) -> Vec<Choice> {
    all.iter()
        .map(|value| Choice {
            value: api_name(value),
            label: Texts::term(table, value),
            selected: selected == Some(value),
        })
        .collect()
}
