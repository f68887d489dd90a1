//! The case page's actions (办理): which the page offers, and `POST /cases/{number}/actions`.
//!
//! The page offers only what the signed-in person may do now, and the node decides that: for
//! each action the console knows how to ask for, it builds the event it would send and asks the
//! backend (`permitted`: the role table, the authority table and the lifecycle, without writing).
//! A sent action becomes the same `AppendEvent` the API's `POST /api/cases/{number}/events`
//! takes and goes through the same append; a refusal comes back on the case page with the
//! node's reason, in the person's language.

use axum::http::StatusCode;
use chrono::{DateTime, Days, NaiveDate, Utc};
use fengqiao_case::authority::KindTag;
use fengqiao_case::deadlines::local_date;
use fengqiao_case::input_bounds::TextKind;
use fengqiao_case::model::{
    CaseView, DirectiveStatus, EventKind, JudicialConfirmation, MediationResult, MediationType,
    ReplyOutcome, ReviewLevel, ReviewOutcome, Satisfaction,
};
use serde::Deserialize;

use crate::backend::{BackendError, ConsoleUser, Neighbours};
use crate::forms::Choice;
use crate::forms::parse_choice;
use crate::forms::{FormErrors, InputView, SelectView, Spec, input, select, spec};
use crate::pages::{Backend, office_namer};
use crate::texts::{Texts, api_name};
use crate::views::{ActionView, ActionsView, BranchView, CheckboxView, case_href};

/// The actions the case page knows how to ask for, in the order it shows them: the lifecycle
/// in the order a case goes through it, then supervision (督办), then the annotations.
pub const OFFERED_KINDS: [KindTag; 25] = [
    KindTag::Accept,
    KindTag::Reject,
    KindTag::AcceptAssignment,
    KindTag::Object,
    KindTag::Forward,
    KindTag::Divert,
    KindTag::Extend,
    KindTag::Mediate,
    KindTag::UpdateJudicialConfirmation,
    KindTag::Reply,
    KindTag::Evaluate,
    KindTag::Close,
    KindTag::RequestReview,
    KindTag::DecideReview,
    KindTag::Reopen,
    KindTag::Escalate,
    KindTag::Assign,
    KindTag::TakeOver,
    KindTag::IssueDirective,
    KindTag::AcknowledgeDirective,
    KindTag::ReportDirective,
    KindTag::ReturnDirective,
    KindTag::CrossOffDirective,
    KindTag::Resolve,
    KindTag::LinkRepeat,
];

/// 备注 last: any office taking part may note, so it is nearly always offered.
pub const OFFERED_LAST: KindTag = KindTag::Note;

pub(crate) const ALL_SATISFACTIONS: [Satisfaction; 3] = [
    Satisfaction::Satisfied,
    Satisfaction::BasicallySatisfied,
    Satisfaction::Unsatisfied,
];

pub(crate) const ALL_REVIEW_LEVELS: [ReviewLevel; 2] = [ReviewLevel::Review, ReviewLevel::ReReview];

pub(crate) const ALL_REVIEW_OUTCOMES: [ReviewOutcome; 2] =
    [ReviewOutcome::Upheld, ReviewOutcome::Revised];

pub(crate) const ALL_MEDIATION_TYPES: [MediationType; 3] = [
    MediationType::People,
    MediationType::Administrative,
    MediationType::Judicial,
];

pub(crate) const ALL_MEDIATION_RESULTS: [MediationResult; 3] = [
    MediationResult::Agreement,
    MediationResult::NoAgreement,
    MediationResult::Ongoing,
];

pub(crate) const ALL_JUDICIAL_CONFIRMATIONS: [JudicialConfirmation; 4] = [
    JudicialConfirmation::NotApplied,
    JudicialConfirmation::Applied,
    JudicialConfirmation::Confirmed,
    JudicialConfirmation::Refused,
];

/// The days an extension asks for when the page only asks whether one may be made: the most
/// the law allows (Art 34), which the node's policy may lower.
const CANDIDATE_EXTENSION_DAYS: u32 = 30;

/// What the page offers an action on: the case's first conflict branch and its open directives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offer<'a> {
    pub first_branch: Option<&'a str>,
    pub first_open_directive: Option<&'a str>,
    /// The case's holder: a directive goes to it first (any tier above may supervise a case
    /// held below, not only one held by a direct child).
    pub holder: &'a str,
    /// The case's first mediation that reached an agreement: the one 司法确认 would update.
    pub first_agreement: Option<&'a str>,
    /// The level of the review awaiting its decision (复查决定 decides that one).
    pub pending_review: Option<ReviewLevel>,
}

/// Every action the page knows, in the order it shows them.
pub fn offered_kinds() -> impl Iterator<Item = KindTag> {
    OFFERED_KINDS
        .iter()
        .copied()
        .chain(std::iter::once(OFFERED_LAST))
}

pub(crate) const ALL_REPLY_OUTCOMES: [ReplyOutcome; 3] = [
    ReplyOutcome::Support,
    ReplyOutcome::Explain,
    ReplyOutcome::NotSupport,
];

/// What a candidate event's text fields hold while the node judges whether the action may be
/// taken at all: never stored, only there so that a rule asking for a reason is satisfied.
const CANDIDATE_TEXT: &str = "candidate";

/// An action's form as the browser sends it: one field set for every action, each action
/// reading the fields it has.
/// An action the node refused, to show on the page: why, and the form as it was sent.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub form: ActionForm,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub to_node: String,
    #[serde(default)]
    pub required_result: String,
    #[serde(default)]
    pub deadline: String,
    #[serde(default)]
    pub outcome: String,
    #[serde(default)]
    pub resolved: String,
    #[serde(default)]
    pub chosen: String,
    #[serde(default)]
    pub to_unit: String,
    #[serde(default)]
    pub days: String,
    #[serde(default)]
    pub approver: String,
    #[serde(default)]
    pub satisfaction: String,
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub directive: String,
    #[serde(default)]
    pub requirement: String,
    #[serde(default)]
    pub due: String,
    #[serde(default)]
    pub listed: String,
    #[serde(default)]
    pub mediation_type: String,
    #[serde(default)]
    pub mediator: String,
    #[serde(default)]
    pub result: String,
    #[serde(default)]
    pub agreement: String,
    #[serde(default)]
    pub judicial_confirmation: String,
    /// The mediation record (its event) a 司法确认 updates.
    #[serde(default)]
    pub mediation: String,
    /// The earlier case a 关联重复信访 names.
    #[serde(default)]
    pub earlier: String,
}

/// The choice typed in `form`'s field (`typed`), or `candidate` when the node is only asked
/// whether the action may be taken; `Err` names the field whose value is none of the choices.
fn choice<T: serde::de::DeserializeOwned>(
    form: Option<&ActionForm>,
    typed: fn(&ActionForm) -> &String,
    candidate: T,
    field: &'static str,
) -> Result<T, &'static str> {
    match form {
        None => Ok(candidate),
        Some(form) => parse_choice(typed(form), &mut Vec::new()).ok_or(field),
    }
}

/// The value of a [`choice`], or `event_of`'s answer naming the field it refused.
macro_rules! or_refuse {
    ($chosen:expr) => {
        match $chosen {
            Ok(value) => value,
            Err(field) => return Some(Err(field)),
        }
    };
}

/// The event `tag` asks for, built from what the person typed (`form`), or, to ask the node
/// whether it may be taken at all, from placeholders and the first office or branch the page
/// would offer (`form` None; `first_branch`: of the case's conflict, if it has one). None when
/// there is nothing to offer (no parent to escalate to, no child to assign to, no conflict to
/// resolve). What was typed is judged by the node, not here; `Err` names a field that could not
/// be read at all.
pub(crate) fn event_of(
    tag: KindTag,
    form: Option<&ActionForm>,
    offer: Offer<'_>,
    neighbours: &Neighbours,
    now: DateTime<Utc>,
) -> Option<Result<EventKind, &'static str>> {
    let first_branch = offer.first_branch;
    // The directive an action names: the one chosen in the form, or the case's first open one.
    let directive = || -> Option<String> {
        match form {
            Some(form) => Some(form.directive.trim().to_owned()),
            None => offer.first_open_directive.map(str::to_owned),
        }
    };
    let date_in = |typed: fn(&ActionForm) -> &String, days: u64| -> Result<NaiveDate, ()> {
        match form {
            None => Ok(local_date(now)
                .checked_add_days(Days::new(days))
                .unwrap_or_else(|| local_date(now))),
            Some(form) => NaiveDate::parse_from_str(typed(form).trim(), "%Y-%m-%d").map_err(|_| ()),
        }
    };
    let text = |typed: fn(&ActionForm) -> &String| {
        form.map_or(CANDIDATE_TEXT.to_owned(), |form| {
            typed(form).trim().to_owned()
        })
    };
    let office = |first: Option<&str>| -> Option<String> {
        match form {
            Some(form) => Some(form.to_node.clone()),
            None => first.map(str::to_owned),
        }
    };
    Some(Ok(match tag {
        KindTag::Accept => EventKind::Accept {},
        KindTag::Reject => EventKind::Reject {
            reason: text(|form| &form.reason),
        },
        KindTag::Reply => {
            let outcome = or_refuse!(choice(
                form,
                |form| &form.outcome,
                ReplyOutcome::Support,
                "outcome"
            ));
            EventKind::Reply {
                outcome,
                text: text(|form| &form.text),
            }
        }
        KindTag::Close => EventKind::Close {
            resolved: form.is_none_or(|form| !form.resolved.is_empty()),
            note: text(|form| &form.note),
        },
        KindTag::Escalate => EventKind::Escalate {
            to_node: office(
                neighbours
                    .parent
                    .as_ref()
                    .map(|parent| parent.node_id.as_str()),
            )?,
            reason: text(|form| &form.reason),
        },
        KindTag::Assign => {
            let deadline = match form {
                None => local_date(now)
                    .checked_add_days(Days::new(30))
                    .unwrap_or_else(|| local_date(now)),
                Some(form) => match NaiveDate::parse_from_str(form.deadline.trim(), "%Y-%m-%d") {
                    Ok(date) => date,
                    Err(_) => return Some(Err("deadline")),
                },
            };
            EventKind::Assign {
                to_node: office(
                    neighbours
                        .children
                        .first()
                        .map(|child| child.node_id.as_str()),
                )?,
                required_result: text(|form| &form.required_result),
                deadline,
            }
        }
        KindTag::TakeOver => EventKind::TakeOver {
            reason: text(|form| &form.reason),
        },
        KindTag::Resolve => EventKind::Resolve {
            chosen: match form {
                Some(form) => form.chosen.clone(),
                None => first_branch?.to_owned(),
            },
            note: text(|form| &form.note),
            overrides: Vec::new(),
        },
        KindTag::Note => EventKind::Note {
            text: text(|form| &form.text),
        },
        KindTag::AcceptAssignment => EventKind::AcceptAssignment {},
        KindTag::Object => EventKind::Object {
            reason: text(|form| &form.reason),
        },
        KindTag::Forward => EventKind::Forward {
            to_unit: text(|form| &form.to_unit),
            to_node: None,
            reason: text(|form| &form.reason),
        },
        KindTag::Extend => EventKind::Extend {
            days: match form {
                None => CANDIDATE_EXTENSION_DAYS,
                Some(form) => match form.days.trim().parse::<u32>() {
                    Ok(days) => days,
                    Err(_) => return Some(Err("days")),
                },
            },
            approver: text(|form| &form.approver),
            reason: text(|form| &form.reason),
        },
        KindTag::Evaluate => EventKind::Evaluate {
            satisfaction: or_refuse!(choice(
                form,
                |form| &form.satisfaction,
                Satisfaction::Satisfied,
                "satisfaction"
            )),
        },
        KindTag::RequestReview => EventKind::RequestReview {
            level: or_refuse!(choice(
                form,
                |form| &form.level,
                ReviewLevel::Review,
                "level"
            )),
            reason: text(|form| &form.reason),
        },
        KindTag::Reopen => EventKind::Reopen {
            reason: text(|form| &form.reason),
        },
        KindTag::DecideReview => EventKind::DecideReview {
            // Only a pending review is decided: without one there is nothing to offer (the
            // candidate is its level; a form names the level it decides).
            level: match form {
                None => offer.pending_review?,
                Some(_) => or_refuse!(choice(
                    form,
                    |form| &form.level,
                    ReviewLevel::Review,
                    "level"
                )),
            },
            outcome: or_refuse!(choice(
                form,
                |form| &form.outcome,
                ReviewOutcome::Upheld,
                "outcome"
            )),
            text: text(|form| &form.text),
        },
        KindTag::Divert => EventKind::Divert {
            to_unit: text(|form| &form.to_unit),
            reason: text(|form| &form.reason),
        },
        KindTag::Mediate => {
            let mediation_type = or_refuse!(choice(
                form,
                |form| &form.mediation_type,
                MediationType::People,
                "mediation_type"
            ));
            let result = or_refuse!(choice(
                form,
                |form| &form.result,
                MediationResult::Ongoing,
                "result"
            ));
            let judicial_confirmation = or_refuse!(choice(
                form,
                |form| &form.judicial_confirmation,
                JudicialConfirmation::NotApplied,
                "judicial_confirmation"
            ));
            EventKind::Mediate {
                mediation_type,
                mediator: text(|form| &form.mediator),
                result,
                // The agreement's terms, when there is one; empty otherwise.
                agreement: form.map_or(String::new(), |form| form.agreement.trim().to_owned()),
                judicial_confirmation,
            }
        }
        KindTag::UpdateJudicialConfirmation => EventKind::UpdateJudicialConfirmation {
            mediation: match form {
                Some(form) => form.mediation.trim().to_owned(),
                None => offer.first_agreement?.to_owned(),
            },
            status: or_refuse!(choice(
                form,
                |form| &form.judicial_confirmation,
                JudicialConfirmation::Applied,
                "judicial_confirmation"
            )),
        },
        KindTag::LinkRepeat => EventKind::LinkRepeat {
            earlier: text(|form| &form.earlier),
        },
        KindTag::IssueDirective => EventKind::IssueDirective {
            // The node names a new directive (`ConsoleBackend::append` fills an empty one); the
            // question whether one may be issued names a placeholder.
            directive: match form {
                Some(_) => String::new(),
                None => "D00000000".to_owned(),
            },
            target_node: office(Some(offer.holder))?,
            requirement: text(|form| &form.requirement),
            due: match date_in(|form| &form.due, 15) {
                Ok(date) => date,
                Err(()) => return Some(Err("due")),
            },
            listed: form.is_some_and(|form| !form.listed.is_empty()),
        },
        KindTag::AcknowledgeDirective => EventKind::AcknowledgeDirective {
            directive: directive()?,
        },
        KindTag::ReportDirective => EventKind::ReportDirective {
            directive: directive()?,
            text: text(|form| &form.text),
        },
        KindTag::CrossOffDirective => EventKind::CrossOffDirective {
            directive: directive()?,
        },
        KindTag::ReturnDirective => EventKind::ReturnDirective {
            directive: directive()?,
            reason: text(|form| &form.reason),
        },
        _ => return None,
    }))
}

fn action_label(texts: &Texts, tag: KindTag) -> String {
    let name = api_name(&tag);
    texts.event.get(&name).cloned().unwrap_or(name)
}

/// One of an action form's select lists of an enum, its element id prefixed by the action.
fn enum_select<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq>(
    kind: &str,
    (name, label): (&str, &str),
    table: &std::collections::BTreeMap<String, String>,
    all: &[T],
    value: &str,
) -> SelectView {
    let mut view = select((name, label), table, all, value, &FormErrors::default());
    view.id = format!("{kind}-{name}");
    view
}

/// The fields of `tag`'s form, filled with what was typed when it was refused.
fn action_view(
    tag: KindTag,
    texts: &Texts,
    view: &CaseView,
    neighbours: &Neighbours,
    typed: Option<&ActionForm>,
    office_name: &dyn Fn(&String) -> String,
) -> ActionView {
    let t = &texts.ui;
    let kind = api_name(&tag);
    let blank = ActionForm::default();
    let typed = typed.unwrap_or(&blank);
    let errors = FormErrors::default();
    let field = |name: &str, label: &str, text_kind: TextKind, value: &str| {
        let mut field = input(
            Spec {
                required: true,
                ..spec(name, label, text_kind)
            },
            value,
            &errors,
        );
        field.id = format!("{kind}-{name}");
        field
    };
    let offices = |name: &str, label: &str, offices: Vec<(String, String)>| {
        let choices = offices
            .into_iter()
            .enumerate()
            .map(|(index, (value, label))| Choice {
                selected: if typed.to_node.is_empty() {
                    index == 0
                } else {
                    value == typed.to_node
                },
                value,
                label,
            })
            .collect();
        SelectView {
            id: format!("{kind}-{name}"),
            name: name.to_owned(),
            label: label.to_owned(),
            choices,
            error: None,
            required: true,
        }
    };
    let (selects, fields) = match tag {
        KindTag::Reject | KindTag::TakeOver | KindTag::Object | KindTag::Reopen => (
            Vec::new(),
            vec![field("reason", &t.reason, TextKind::Text, &typed.reason)],
        ),
        KindTag::AcceptAssignment => (Vec::new(), Vec::new()),
        KindTag::Divert => (
            Vec::new(),
            vec![
                field("to_unit", &t.divert_to_unit, TextKind::Line, &typed.to_unit),
                field("reason", &t.reason, TextKind::Text, &typed.reason),
            ],
        ),
        KindTag::Forward => (
            Vec::new(),
            vec![
                field("to_unit", &t.to_unit, TextKind::Line, &typed.to_unit),
                field("reason", &t.reason, TextKind::Text, &typed.reason),
            ],
        ),
        KindTag::Extend => (
            Vec::new(),
            vec![
                InputView {
                    input_type: "number",
                    ..field("days", &t.extension_days, TextKind::Identifier, &typed.days)
                },
                field("approver", &t.approver, TextKind::Name, &typed.approver),
                field("reason", &t.reason, TextKind::Text, &typed.reason),
            ],
        ),
        KindTag::Evaluate => {
            let satisfaction = enum_select(
                &kind,
                ("satisfaction", &t.satisfaction),
                &texts.satisfaction,
                &ALL_SATISFACTIONS,
                &typed.satisfaction,
            );
            (vec![satisfaction], Vec::new())
        }
        KindTag::RequestReview => {
            let level = enum_select(
                &kind,
                ("level", &t.review_level),
                &texts.review_level,
                &ALL_REVIEW_LEVELS,
                &typed.level,
            );
            (
                vec![level],
                vec![field("reason", &t.reason, TextKind::Text, &typed.reason)],
            )
        }
        KindTag::IssueDirective => (
            vec![offices(
                "to_node",
                &t.directive_to,
                // The holder first, wherever below it is; then the other children.
                std::iter::once((view.state.holder.clone(), office_name(&view.state.holder)))
                    .chain(
                        neighbours
                            .children
                            .iter()
                            .filter(|child| child.node_id != view.state.holder)
                            .map(|child| (child.node_id.clone(), child.name.clone())),
                    )
                    .collect(),
            )],
            vec![
                field(
                    "requirement",
                    &t.requirement,
                    TextKind::Text,
                    &typed.requirement,
                ),
                InputView {
                    input_type: "date",
                    ..field("due", &t.directive_due, TextKind::Identifier, &typed.due)
                },
            ],
        ),
        KindTag::AcknowledgeDirective
        | KindTag::ReportDirective
        | KindTag::CrossOffDirective
        | KindTag::ReturnDirective => {
            let open = view
                .state
                .directives
                .iter()
                .filter(|directive| directive.status != DirectiveStatus::CrossedOff)
                .map(|directive| {
                    let requirement: String = directive.requirement.chars().take(24).collect();
                    let label = format!(
                        "{requirement} · {} · {}",
                        office_name(&directive.issuer_node),
                        local_date(directive.due)
                    );
                    (directive.id.clone(), label)
                })
                .collect();
            let mut chosen = offices("directive", &t.directive, open);
            if !typed.directive.is_empty() {
                for choice in &mut chosen.choices {
                    choice.selected = choice.value == typed.directive;
                }
            }
            let fields = match tag {
                KindTag::ReportDirective => {
                    vec![field("text", &t.text, TextKind::Text, &typed.text)]
                }
                KindTag::ReturnDirective => {
                    vec![field("reason", &t.reason, TextKind::Text, &typed.reason)]
                }
                _ => Vec::new(),
            };
            (vec![chosen], fields)
        }
        KindTag::Reply => {
            let outcome = enum_select(
                &kind,
                ("outcome", &t.reply_outcome),
                &texts.reply_outcome,
                &ALL_REPLY_OUTCOMES,
                &typed.outcome,
            );
            (
                vec![outcome],
                vec![field("text", &t.text, TextKind::Text, &typed.text)],
            )
        }
        KindTag::Close => (
            Vec::new(),
            vec![InputView {
                required: false,
                ..field("note", &t.note, TextKind::Text, &typed.note)
            }],
        ),
        KindTag::Escalate => (
            vec![offices(
                "to_node",
                &t.escalate_to,
                neighbours
                    .parent
                    .iter()
                    .map(|parent| (parent.node_id.clone(), parent.name.clone()))
                    .collect(),
            )],
            vec![field("reason", &t.reason, TextKind::Text, &typed.reason)],
        ),
        KindTag::Assign => (
            vec![offices(
                "to_node",
                &t.assign_to,
                neighbours
                    .children
                    .iter()
                    .map(|child| (child.node_id.clone(), child.name.clone()))
                    .collect(),
            )],
            vec![
                field(
                    "required_result",
                    &t.required_result,
                    TextKind::Text,
                    &typed.required_result,
                ),
                InputView {
                    input_type: "date",
                    ..field(
                        "deadline",
                        &t.assign_deadline,
                        TextKind::Identifier,
                        &typed.deadline,
                    )
                },
            ],
        ),
        KindTag::Resolve => {
            let branches = view
                .state
                .conflict
                .iter()
                .flat_map(|conflict| &conflict.branches)
                .map(|branch| {
                    let kinds: Vec<String> = branch
                        .kinds
                        .iter()
                        .map(|name| texts.event.get(name).cloned().unwrap_or(name.clone()))
                        .collect();
                    let label = format!(
                        "{} · {} · {}",
                        kinds.join("、"),
                        branch.operator,
                        office_name(&branch.node)
                    );
                    (branch.first.clone(), label)
                })
                .collect();
            let mut chosen = offices("chosen", &t.chosen_branch, branches);
            for choice in &mut chosen.choices {
                choice.selected = choice.value == typed.chosen;
            }
            (
                vec![chosen],
                vec![InputView {
                    required: false,
                    ..field("note", &t.note, TextKind::Text, &typed.note)
                }],
            )
        }
        KindTag::Note => (
            Vec::new(),
            vec![field("text", &t.text, TextKind::Text, &typed.text)],
        ),
        KindTag::Mediate => (
            vec![
                enum_select(
                    &kind,
                    ("mediation_type", &t.mediation_type),
                    &texts.mediation_type,
                    &ALL_MEDIATION_TYPES,
                    &typed.mediation_type,
                ),
                enum_select(
                    &kind,
                    ("result", &t.mediation_result),
                    &texts.mediation_result,
                    &ALL_MEDIATION_RESULTS,
                    &typed.result,
                ),
                enum_select(
                    &kind,
                    ("judicial_confirmation", &t.judicial_confirmation),
                    &texts.judicial_confirmation,
                    &ALL_JUDICIAL_CONFIRMATIONS,
                    &typed.judicial_confirmation,
                ),
            ],
            vec![
                field("mediator", &t.mediator, TextKind::Name, &typed.mediator),
                InputView {
                    // Only an agreement has terms to write down.
                    required: false,
                    ..field("agreement", &t.agreement, TextKind::Text, &typed.agreement)
                },
            ],
        ),
        KindTag::UpdateJudicialConfirmation => {
            let agreements = view
                .state
                .mediations
                .iter()
                .filter(|record| record.result == MediationResult::Agreement)
                .map(|record| {
                    let label = format!(
                        "{} · {} · {} · {}",
                        local_date(record.at),
                        Texts::term(&texts.mediation_type, &record.mediation_type),
                        record.mediator,
                        Texts::term(&texts.judicial_confirmation, &record.judicial_confirmation)
                    );
                    (record.event.clone(), label)
                })
                .collect();
            let mut chosen = offices("mediation", &t.mediation, agreements);
            if !typed.mediation.is_empty() {
                for choice in &mut chosen.choices {
                    choice.selected = choice.value == typed.mediation;
                }
            }
            let status = enum_select(
                &kind,
                ("judicial_confirmation", &t.judicial_confirmation),
                &texts.judicial_confirmation,
                &ALL_JUDICIAL_CONFIRMATIONS,
                &typed.judicial_confirmation,
            );
            (vec![chosen, status], Vec::new())
        }
        KindTag::DecideReview => {
            // The pending review's level unless a refused form chose another.
            let pending = view.state.review_level.map(|level| api_name(&level));
            let level_typed = match (typed.level.is_empty(), pending) {
                (true, Some(pending)) => pending,
                _ => typed.level.clone(),
            };
            let level = enum_select(
                &kind,
                ("level", &t.review_level),
                &texts.review_level,
                &ALL_REVIEW_LEVELS,
                &level_typed,
            );
            let outcome = enum_select(
                &kind,
                ("outcome", &t.review_outcome),
                &texts.review_outcome,
                &ALL_REVIEW_OUTCOMES,
                &typed.outcome,
            );
            (
                vec![level, outcome],
                vec![field("text", &t.text, TextKind::Text, &typed.text)],
            )
        }
        KindTag::LinkRepeat => (
            Vec::new(),
            vec![field(
                "earlier",
                &t.earlier_case,
                TextKind::Identifier,
                &typed.earlier,
            )],
        ),
        _ => (Vec::new(), Vec::new()),
    };
    ActionView {
        label: action_label(texts, tag),
        kind,
        selects,
        fields,
        checkbox: match tag {
            KindTag::Close => Some(CheckboxView {
                name: "resolved",
                label: t.resolved.clone(),
                // Checked unless a refused form came back without it.
                checked: typed.action != "close" || !typed.resolved.is_empty(),
            }),
            KindTag::IssueDirective => Some(CheckboxView {
                name: "listed",
                label: t.listed.clone(),
                checked: typed.action == "issue_directive" && !typed.listed.is_empty(),
            }),
            _ => None,
        },
    }
}

/// The actions `user` may take on the case now, as forms, with `refusal`'s reason and typed
/// text if an action was just refused.
pub(crate) async fn actions_view(
    backend: &Backend,
    user: &ConsoleUser,
    view: &CaseView,
    texts: &Texts,
    refusal: Option<&Refusal>,
) -> Result<ActionsView, BackendError> {
    let neighbours = backend.neighbours();
    let now = backend.now();
    let offer = Offer {
        first_branch: view
            .state
            .conflict
            .as_ref()
            .and_then(|conflict| conflict.branches.first())
            .map(|branch| branch.first.as_str()),
        first_open_directive: view
            .state
            .directives
            .iter()
            .find(|directive| directive.status != DirectiveStatus::CrossedOff)
            .map(|directive| directive.id.as_str()),
        holder: &view.state.holder,
        first_agreement: view
            .state
            .mediations
            .iter()
            .find(|record| record.result == MediationResult::Agreement)
            .map(|record| record.event.as_str()),
        pending_review: view.state.review_level,
    };
    let (tags, candidates): (Vec<KindTag>, Vec<EventKind>) = offered_kinds()
        .filter_map(|tag| match event_of(tag, None, offer, &neighbours, now)? {
            Ok(event) => Some((tag, event)),
            Err(_) => None,
        })
        .unzip();
    let permitted = backend
        .permitted(user, view.header.number.clone(), candidates)
        .await?;
    let office_name = office_namer(backend);
    let typed = refusal.map(|refusal| &refusal.form);
    let permitted_tags: Vec<KindTag> = tags
        .iter()
        .zip(permitted)
        .filter(|(_, permitted)| *permitted)
        .map(|(tag, _)| *tag)
        .collect();
    let branches = branch_views(view, texts, &office_name);
    let may_resolve = permitted_tags.contains(&KindTag::Resolve);
    let forms = permitted_tags
        .iter()
        // A fork shown side by side is resolved by its branches' own buttons.
        .filter(|tag| branches.is_empty() || **tag != KindTag::Resolve)
        .map(|tag| {
            let typed = typed.filter(|form| form.action == api_name(tag));
            action_view(*tag, texts, view, &neighbours, typed, &office_name)
        })
        .collect();
    Ok(ActionsView {
        href: format!("{}/actions", case_href(&view.header.number)),
        forms,
        error: refusal.map(|refusal| refusal.message.clone()),
        conflict_notice: view
            .state
            .conflict
            .is_some()
            .then(|| texts.ui.conflict_notice.clone()),
        branches,
        may_resolve,
    })
}

/// The branches of the case's fork, each with its transitions, who made them where, and where
/// the case would stand by it; empty when the case has no fork.
fn branch_views(
    view: &CaseView,
    texts: &Texts,
    office_name: &dyn Fn(&String) -> String,
) -> Vec<BranchView> {
    view.state
        .conflict
        .iter()
        .flat_map(|conflict| &conflict.branches)
        .map(|branch| BranchView {
            first: branch.first.clone(),
            kinds: branch
                .kinds
                .iter()
                .map(|name| texts.event.get(name).cloned().unwrap_or(name.clone()))
                .collect::<Vec<_>>()
                .join("、"),
            operator: branch.operator.clone(),
            office: office_name(&branch.node),
            status: Texts::term(&texts.status, &branch.status),
            holder: office_name(&branch.holder),
        })
        .collect()
}
