//! The console's words: one TOML file per language (`texts/zh-CN.toml`, the default, and
//! `texts/en.toml`), embedded in the binary and read into one struct, so a translation is a file
//! and templates never hold a literal word. `Ui` names every page word as a field (a missing or
//! extra key in either file fails to load, which a test checks); the tables of the domain's
//! enums are keyed by the enum's API (serde) name.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    Chinese,
    English,
}

impl Language {
    /// The cookie value and `?lang=` spelling.
    pub fn code(self) -> &'static str {
        match self {
            Language::Chinese => "zh-CN",
            Language::English => "en",
        }
    }

    /// The language a code names; anything else is the default.
    pub fn from_code(code: &str) -> Language {
        if code.eq_ignore_ascii_case("en") {
            Language::English
        } else {
            Language::Chinese
        }
    }

    pub fn other(self) -> Language {
        match self {
            Language::Chinese => Language::English,
            Language::English => Language::Chinese,
        }
    }
}

pub const CHINESE_SOURCE: &str = include_str!("../texts/zh-CN.toml");
pub const ENGLISH_SOURCE: &str = include_str!("../texts/en.toml");

/// Every word of the pages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ui {
    pub console_title: String,
    pub lang_name: String,
    pub switch_language: String,
    pub sign_in: String,
    pub sign_out: String,
    pub login: String,
    pub password: String,
    pub sign_in_failed: String,
    pub sign_in_throttled: String,
    pub sign_in_missing: String,
    pub signed_in_as: String,
    pub session_form_expired: String,
    pub dashboard: String,
    pub ledger: String,
    pub case_detail: String,
    pub office: String,
    pub link_connected: String,
    pub link_offline: String,
    pub link_none: String,
    pub link_since: String,
    pub link_pending_up: String,
    pub link_pending_down: String,
    pub link_parent: String,
    pub link_child: String,
    pub due_cases: String,
    pub no_due_cases: String,
    pub case_number: String,
    pub petitioner: String,
    pub id_number: String,
    pub phone: String,
    pub address: String,
    pub summary: String,
    pub status: String,
    pub category: String,
    pub matter_type: String,
    pub channel: String,
    pub headcount: String,
    pub respondent: String,
    pub village: String,
    pub region_code: String,
    pub holder: String,
    pub registered_at: String,
    pub warning: String,
    pub deadline: String,
    pub due_date: String,
    pub all: String,
    pub filter: String,
    pub no_warning: String,
    pub warning_grade: String,
    pub no_cases: String,
    pub page_of: String,
    pub previous_page: String,
    pub next_page: String,
    pub events: String,
    pub event_at: String,
    pub event_kind: String,
    pub event_who: String,
    pub event_office: String,
    pub deadlines: String,
    pub days_left: String,
    pub days_overdue: String,
    pub due_today: String,
    pub show_full: String,
    pub show_masked: String,
    pub full_shown_logged: String,
    pub masked_notice: String,
    pub no_permission: String,
    pub not_found: String,
    pub bad_filter: String,
    pub internal_error: String,
    pub skip_to_content: String,
    pub yes: String,
    pub no: String,
    pub litigation_related: String,
    pub leader: String,
    pub representative: String,
    pub register: String,
    pub register_intro: String,
    pub section_petitioners: String,
    pub section_matter: String,
    pub section_location: String,
    pub section_ownership: String,
    pub petitioner_name: String,
    pub id_type: String,
    pub add_row: String,
    pub group_visit_hint: String,
    pub grid: String,
    pub grid_worker: String,
    pub responsible_unit: String,
    pub case_officer: String,
    pub plan: String,
    pub target_date: String,
    pub submit_registration: String,
    pub registration_refused: String,
    pub field_refused: String,
    pub not_a_number: String,
    pub not_a_date: String,
    pub not_a_choice: String,
    pub actions: String,
    pub no_actions: String,
    pub action_refused: String,
    pub reason: String,
    pub reply_outcome: String,
    pub text: String,
    pub note: String,
    pub resolved: String,
    pub assign_to: String,
    pub required_result: String,
    pub assign_deadline: String,
    pub escalate_to: String,
    pub conflict_notice: String,
    pub chosen_branch: String,
    pub section_backdating: String,
    pub backdating_hint: String,
    pub backdated_at: String,
    pub backdated_reason: String,
    pub not_a_time: String,
}

/// One language's texts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub ui: Ui,
    pub status: BTreeMap<String, String>,
    pub category: BTreeMap<String, String>,
    pub matter_type: BTreeMap<String, String>,
    pub channel: BTreeMap<String, String>,
    pub tier: BTreeMap<String, String>,
    pub grade: BTreeMap<String, String>,
    pub deadline: BTreeMap<String, String>,
    pub event: BTreeMap<String, String>,
    pub id_type: BTreeMap<String, String>,
    pub reply_outcome: BTreeMap<String, String>,
}

/// Why a texts file does not load.
#[derive(Debug, thiserror::Error)]
#[error("the console's {language} texts do not load: {source}")]
pub struct TextsError {
    language: &'static str,
    source: toml::de::Error,
}

impl Texts {
    pub fn parse(language: &'static str, source: &str) -> Result<Texts, TextsError> {
        toml::from_str(source).map_err(|source| TextsError { language, source })
    }

    /// The texts of `language`. The files are part of the binary and a test loads both, so a
    /// file that fails to parse is a build that fails its tests; if one ever got through, the
    /// pages fall back to the other language rather than stop the node.
    pub fn of(language: Language) -> &'static Texts {
        static LOADED: LazyLock<(Option<Texts>, Option<Texts>)> = LazyLock::new(|| {
            let load = |name, source| match Texts::parse(name, source) {
                Ok(texts) => Some(texts),
                Err(error) => {
                    tracing::error!(%error, "console texts");
                    None
                }
            };
            (load("zh-CN", CHINESE_SOURCE), load("en", ENGLISH_SOURCE))
        });
        let (chinese, english) = &*LOADED;
        let wanted = match language {
            Language::Chinese => chinese.as_ref().or(english.as_ref()),
            Language::English => english.as_ref().or(chinese.as_ref()),
        };
        wanted.unwrap_or(&FALLBACK)
    }

    /// The word for an enum value in one of the tables, by its API name; the API name itself
    /// when the table lacks it (a newer peer's value).
    pub fn term<T: serde::Serialize>(table: &BTreeMap<String, String>, value: &T) -> String {
        let name = api_name(value);
        table.get(&name).cloned().unwrap_or(name)
    }
}

/// An enum value's API (serde) name, e.g. `wage_arrears`.
pub fn api_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Fill `{name}` placeholders of a text.
pub fn fill(text: &str, values: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut filled = text.to_owned();
    for (name, value) in values {
        filled = filled.replace(&format!("{{{name}}}"), &value.to_string());
    }
    filled
}

/// Only if both embedded files failed to parse, which the tests rule out: empty words, so a
/// page still renders rather than the node stopping.
static FALLBACK: LazyLock<Texts> = LazyLock::new(Texts::default);
