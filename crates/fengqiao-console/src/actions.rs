//! The case page's actions (办理): which the page offers, and `POST /cases/{number}/actions`.
//!
//! The page offers only what the signed-in person may do now, and the node decides that: for
//! each action the console knows how to ask for, it builds the event it would send and asks the
//! backend (`permitted`: the role table, the authority table and the lifecycle, without writing).
//! A sent action becomes the same `AppendEvent` the API's `POST /api/cases/{number}/events`
//! takes and goes through the same append; a refusal comes back on the case page with the
//! node's reason, in the person's language.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Days, NaiveDate, Utc};
use fengqiao_case::authority::KindTag;
use fengqiao_case::deadlines::local_date;
use fengqiao_case::input_bounds::TextKind;
use fengqiao_case::model::{AppendEvent, CaseView, EventKind, ReplyOutcome};
use serde::Deserialize;

use crate::backend::{BackendError, BackendErrorKind, ConsoleUser, Neighbours};
use crate::case_page::{Refusal, render_case_page};
use crate::pages::{Backend, failure_page, language, office_namer, parse_choice, signed_in_form};
use crate::registration::{FormErrors, InputView, SelectView, Spec, input, select, spec};
use crate::texts::{Texts, Ui, api_name, fill};
use crate::views::{Choice, case_href};

/// The actions the case page knows how to ask for, in the order it shows them.
pub const OFFERED_KINDS: [KindTag; 9] = [
    KindTag::Accept,
    KindTag::Reject,
    KindTag::Reply,
    KindTag::Close,
    KindTag::Escalate,
    KindTag::Assign,
    KindTag::TakeOver,
    KindTag::Resolve,
    KindTag::Note,
];

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
}

/// The event `tag` asks for, built from what the person typed (`form`), or, to ask the node
/// whether it may be taken at all, from placeholders and the first office or branch the page
/// would offer (`form` None; `first_branch`: of the case's conflict, if it has one). None when
/// there is nothing to offer (no parent to escalate to, no child to assign to, no conflict to
/// resolve). What was typed is judged by the node, not here; `Err` names a field that could not
/// be read at all.
fn event_of(
    tag: KindTag,
    form: Option<&ActionForm>,
    first_branch: Option<&str>,
    neighbours: &Neighbours,
    now: DateTime<Utc>,
) -> Option<Result<EventKind, &'static str>> {
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
            let outcome = match form {
                None => ReplyOutcome::Support,
                Some(form) => match parse_choice(&form.outcome, &mut Vec::new()) {
                    Some(outcome) => outcome,
                    None => return Some(Err("outcome")),
                },
            };
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
        _ => return None,
    }))
}

/// One action's form on the case page.
#[derive(Debug, Clone)]
pub struct ActionView {
    /// The event kind's API name: the form's `action`, and part of its elements' ids.
    pub kind: String,
    pub label: String,
    pub selects: Vec<SelectView>,
    pub fields: Vec<InputView>,
    /// 办结 asks whether the matter was resolved.
    pub asks_resolved: bool,
    pub resolved: bool,
}

/// The actions part of the case page.
#[derive(Debug, Clone, Default)]
pub struct ActionsView {
    /// Where the forms are sent.
    pub href: String,
    pub forms: Vec<ActionView>,
    /// Why the action just sent was refused.
    pub error: Option<String>,
    pub conflict_notice: Option<String>,
}

fn action_label(texts: &Texts, tag: KindTag) -> String {
    let name = api_name(&tag);
    texts.event.get(&name).cloned().unwrap_or(name)
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
        KindTag::Reject | KindTag::TakeOver => (
            Vec::new(),
            vec![field("reason", &t.reason, TextKind::Text, &typed.reason)],
        ),
        KindTag::Reply => {
            let mut outcome = select(
                ("outcome", &t.reply_outcome),
                &texts.reply_outcome,
                &ALL_REPLY_OUTCOMES,
                &typed.outcome,
                &errors,
            );
            outcome.id = format!("{kind}-outcome");
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
        _ => (Vec::new(), Vec::new()),
    };
    ActionView {
        label: action_label(texts, tag),
        kind,
        selects,
        fields,
        asks_resolved: tag == KindTag::Close,
        resolved: typed.action != "close" || !typed.resolved.is_empty(),
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
    let first_branch = view
        .state
        .conflict
        .as_ref()
        .and_then(|conflict| conflict.branches.first())
        .map(|branch| branch.first.as_str());
    let (tags, candidates): (Vec<KindTag>, Vec<EventKind>) = OFFERED_KINDS
        .iter()
        .filter_map(
            |tag| match event_of(*tag, None, first_branch, &neighbours, now)? {
                Ok(event) => Some((*tag, event)),
                Err(_) => None,
            },
        )
        .unzip();
    let permitted = backend
        .permitted(user, view.header.number.clone(), candidates)
        .await?;
    let office_name = office_namer(backend);
    let typed = refusal.map(|refusal| &refusal.form);
    let forms = tags
        .iter()
        .zip(permitted)
        .filter(|(_, permitted)| *permitted)
        .map(|(tag, _)| {
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
    })
}

/// The refusal's words: which action, and the node's reason.
fn refusal_text(t: &Ui, texts: &Texts, action: &str, why: &str) -> String {
    let label = texts
        .event
        .get(action)
        .cloned()
        .unwrap_or(action.to_owned());
    fill(&t.action_refused, &[("action", &label), ("why", &why)])
}

/// `POST /cases/{number}/actions`: with the session's CSRF token, append the event the form
/// asks for as the API does, then go back to the case page; a refusal shows the case page with
/// the node's reason and the form as typed.
pub async fn take_action(
    State(backend): State<Backend>,
    headers: HeaderMap,
    Path(number): Path<String>,
    body: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let (user, form) =
        match signed_in_form(&backend, &headers, body, |form: &ActionForm| &form.csrf).await {
            Ok(signed_in) => signed_in,
            Err(response) => return response,
        };
    let texts = Texts::of(language(&headers));
    let t = &texts.ui;
    let tag = OFFERED_KINDS
        .iter()
        .copied()
        .find(|tag| api_name(tag) == form.action);
    let built =
        tag.and_then(|tag| event_of(tag, Some(&form), None, &backend.neighbours(), backend.now()));
    let refusal = match built {
        None => Some((StatusCode::BAD_REQUEST, t.not_a_choice.clone())),
        Some(Err(field)) => {
            let word = if field == "deadline" {
                &t.not_a_date
            } else {
                &t.not_a_choice
            };
            Some((StatusCode::BAD_REQUEST, word.clone()))
        }
        Some(Ok(kind)) => {
            let request = AppendEvent {
                kind,
                at: None,
                backdated_reason: None,
            };
            match backend.append(&user, number.clone(), request).await {
                Ok(_) => None,
                Err(error) => {
                    let status = match error.kind {
                        BackendErrorKind::Forbidden => StatusCode::FORBIDDEN,
                        BackendErrorKind::Refused => StatusCode::CONFLICT,
                        BackendErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
                        _ => return failure_page(&backend, &headers, Some(&user), &error).await,
                    };
                    let why = match &error.field {
                        Some(field) => format!("{field}: {}", error.message),
                        None => error.message.clone(),
                    };
                    Some((status, why))
                }
            }
        }
    };
    let Some((status, why)) = refusal else {
        return Redirect::to(&case_href(&number)).into_response();
    };
    let refusal = Refusal {
        status,
        message: refusal_text(t, texts, &form.action, &why),
        form,
    };
    render_case_page(&backend, &headers, &user, number, false, Some(refusal)).await
}
