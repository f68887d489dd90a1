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
    pub export_excel: String,
    pub export_excel_full: String,
    /// The menu's word for 统计分析.
    pub statistics: String,
    /// The menu's word for 网络状态.
    pub network: String,
    /// The menu's word for 督办.
    pub directives: String,
    /// The menu's word for 审计.
    pub audit: String,
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
    pub conflict_branches: String,
    pub choose_branch: String,
    pub accounts: String,
    pub account_refused: String,
    pub account_added: String,
    pub account_disabled: String,
    pub password_reset: String,
    pub one_time_password: String,
    pub change_password: String,
    pub passwords_differ: String,
    pub current_password_wrong: String,
    pub new_password_refused: String,
    pub password_changed: String,
    pub current_password: String,
    pub new_password: String,
    pub repeat_password: String,
    pub display_name: String,
    pub roles: String,
    pub account_status: String,
    pub account_enabled: String,
    pub account_disabled_word: String,
    pub last_sign_in: String,
    pub failed_sign_ins: String,
    pub add_account: String,
    pub disable_account: String,
    pub reset_password: String,
    pub child_office: String,
    pub registered_from: String,
    pub registered_to: String,
    pub search: String,
    pub search_hint: String,
    pub role_operator: String,
    pub role_supervisor: String,
    pub role_admin: String,
    pub directives_awaiting: String,
    pub awaiting_decision: String,
    pub no_awaiting_decision: String,
    pub awaiting_receipt: String,
    pub no_awaiting_receipt: String,
    pub to_unit: String,
    pub extension_days: String,
    pub approver: String,
    pub satisfaction: String,
    pub review_level: String,
    pub directive_to: String,
    pub requirement: String,
    pub directive_due: String,
    pub directive: String,
    pub listed: String,
    pub section_backdating: String,
    pub backdating_hint: String,
    pub backdated_at: String,
    pub backdated_reason: String,
    pub not_a_time: String,
    pub mediation_type: String,
    pub mediator: String,
    pub mediation_result: String,
    pub agreement: String,
    pub judicial_confirmation: String,
    pub mediation: String,
    pub review_outcome: String,
    pub earlier_case: String,
    pub divert_to_unit: String,
    pub mediation_at: String,
    pub time_flags: String,
    pub repeat_of: String,
}

/// The words of 统计分析 (the `[statistics]` section).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatisticsTexts {
    pub title: String,
    pub period_from: String,
    pub period_to: String,
    pub imported: String,
    pub apply: String,
    pub period_text: String,
    pub totals_heading: String,
    pub cases: String,
    pub timely_acceptance: String,
    pub on_time_completion: String,
    pub evaluation: String,
    pub satisfaction: String,
    pub resolution: String,
    pub repeat: String,
    pub approaching: String,
    pub overdue: String,
    pub seriously_overdue: String,
    pub overdue_all: String,
    pub directives_open: String,
    pub directives_overdue: String,
    pub escalated: String,
    pub assigned: String,
    pub in_conflict: String,
    pub by_child: String,
    pub by_child_of: String,
    pub by_child_forbidden: String,
    pub office: String,
    pub region_code: String,
    pub link: String,
    pub revoked: String,
    pub drill_down: String,
    pub link_up: String,
    pub link_down: String,
    pub link_unknown: String,
    pub link_pending: String,
    pub zero_case_villages: String,
    pub no_zero_case_villages: String,
    pub charts_heading: String,
    pub charts_need_js: String,
    pub chart_by_child: String,
    pub chart_monthly_intake: String,
    pub chart_monthly_rates: String,
    /// Whether imported ledger cases count, by `ImportedCases`' API name.
    pub imported_choice: BTreeMap<String, String>,
}

/// The words of 网络状态 (the `[network]` section).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkTexts {
    pub title: String,
    pub links_heading: String,
    pub relation: String,
    pub office: String,
    pub state: String,
    pub since: String,
    pub last_sync: String,
    pub pending_out: String,
    pub pending_in: String,
    pub quarantined: String,
    pub refused_by_peer: String,
    pub clock: String,
    pub last_error: String,
    pub times_note: String,
    pub clock_same: String,
    pub clock_ahead: String,
    pub clock_behind: String,
    pub tree_heading: String,
    pub tier: String,
    pub region_code: String,
    pub admitted: String,
    pub this_office: String,
    pub revoked_heading: String,
    pub revoked_at: String,
    pub roster_empty: String,
    pub manage_heading: String,
    pub no_children: String,
    pub child_node_id: String,
    pub child_name: String,
    pub admit_button: String,
    pub revoke_button: String,
    pub confirm_admit: String,
    pub confirm_revoke: String,
    pub confirm: String,
    pub cancel: String,
    pub admit_refused: String,
    pub revoke_refused: String,
}

/// The words of 督办 (the `[directives]` section).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectivesTexts {
    pub title: String,
    pub to_us: String,
    pub from_us: String,
    pub between_others: String,
    pub none: String,
    pub show_all: String,
    pub show_open: String,
    pub requirement: String,
    pub issuer: String,
    pub target: String,
    pub issued: String,
    pub listed: String,
    /// A directive's state, by `DirectiveStatus`' API name.
    pub status: BTreeMap<String, String>,
}

/// The words of 审计 (the `[audit]` section).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditTexts {
    pub title: String,
    pub trail_heading: String,
    pub case_number: String,
    pub show_trail: String,
    pub ask_for_case: String,
    pub kind: String,
    pub summary: String,
    pub at: String,
    pub recorded: String,
    pub office: String,
    pub operator: String,
    pub signature: String,
    pub note: String,
    pub signature_valid: String,
    pub signature_unsigned: String,
    pub signature_invalid: String,
    pub backdated: String,
    pub imported: String,
    pub verify_heading: String,
    pub verify_button: String,
    pub verify_explain: String,
    pub verify_summary: String,
    pub verify_clean: String,
    pub verify_failed: String,
    pub quarantine_heading: String,
    pub quarantine_empty: String,
    pub received: String,
    pub peer: String,
    pub case: String,
    pub reason: String,
    pub next_page: String,
    pub not_permitted: String,
}

/// One language's texts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub ui: Ui,
    pub statistics: StatisticsTexts,
    pub network: NetworkTexts,
    pub directives: DirectivesTexts,
    pub audit: AuditTexts,
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
    pub satisfaction: BTreeMap<String, String>,
    pub review_level: BTreeMap<String, String>,
    pub review_outcome: BTreeMap<String, String>,
    pub mediation_type: BTreeMap<String, String>,
    pub mediation_result: BTreeMap<String, String>,
    pub judicial_confirmation: BTreeMap<String, String>,
    pub role: BTreeMap<String, String>,
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
