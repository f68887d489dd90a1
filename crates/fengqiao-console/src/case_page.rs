//! 案件详情 (`GET /cases/{number}`): the case as the signed-in person may read it, with the
//! actions they may take on it now (`crate::actions`), and `POST /cases/{number}/actions`, which
//! appends the event an action's form asks for as the API does. A refused action is answered
//! with the same page, saying why, with what was typed kept.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use fengqiao_accounts::Action;
use fengqiao_case::model::AppendEvent;
use serde::Deserialize;

use crate::CSRF_COOKIE;
use crate::actions::{ActionForm, Offer, Refusal, actions_view, event_of, offered_kinds};
use crate::backend::{BackendErrorKind, ConsoleUser};
use crate::pages::{
    Backend, cookie, failure_page, html, language, layout, office_namer, signed_in, signed_in_form,
};
use crate::texts::{Texts, Ui, api_name, fill};
use crate::views::{case_href, case_page_view};

#[derive(Debug, Default, Deserialize)]
pub struct CaseParams {
    #[serde(default)]
    full: String,
}

/// `GET /cases/{number}`: 案件详情. Identifiers masked unless the role may read personal data
/// and the person asked for it (`?full=1`, the "查看完整信息" link); every read of a case goes to
/// the node's access log (the backend's `case`).
pub async fn case_page(
    State(backend): State<Backend>,
    headers: HeaderMap,
    Path(number): Path<String>,
    Query(params): Query<CaseParams>,
) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    render_case_page(&backend, &headers, &user, number, params.full == "1", None).await
}

/// The case page, with the actions the node permits `user` now, and `refusal` if an action
/// was just refused.
pub(crate) async fn render_case_page(
    backend: &Backend,
    headers: &HeaderMap,
    user: &ConsoleUser,
    number: String,
    full_asked: bool,
    refusal: Option<Refusal>,
) -> Response {
    let language = language(headers);
    let texts = Texts::of(language);
    let view = match backend.case(user, number).await {
        Ok(view) => view,
        Err(error) => return failure_page(backend, headers, Some(user), &error).await,
    };
    let actions = match actions_view(backend, user, &view, texts, refusal.as_ref()).await {
        Ok(actions) => actions,
        Err(error) => return failure_page(backend, headers, Some(user), &error).await,
    };
    let may_read_personal_data = user.account.actor().permit(Action::ReadCases).is_ok();
    let full = may_read_personal_data && full_asked;
    let csrf = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    let title = format!("{} {}", texts.ui.case_detail, view.header.number);
    let layout = layout(backend, language, Some(user), csrf, "ledger", title).await;
    let namer = office_namer(backend);
    let mut page = case_page_view(
        layout,
        texts,
        &view,
        full,
        may_read_personal_data,
        &namer,
        backend.now(),
    );
    page.actions = actions;
    let status = refusal.map_or(StatusCode::OK, |refusal| refusal.status);
    html(status, &page)
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
    let tag = offered_kinds().find(|tag| api_name(tag) == form.action);
    let offer = Offer {
        first_branch: None,
        first_open_directive: None,
        // With a form, every office, mediation and level is the one it names.
        holder: "",
        first_agreement: None,
        pending_review: None,
    };
    let built = tag.and_then(|tag| {
        event_of(
            tag,
            Some(&form),
            offer,
            &backend.neighbours(),
            backend.now(),
        )
    });
    let refusal = match built {
        None => Some((StatusCode::BAD_REQUEST, t.not_a_choice.clone())),
        Some(Err(field)) => {
            let word = match field {
                "deadline" | "due" => &t.not_a_date,
                "days" => &t.not_a_number,
                _ => &t.not_a_choice,
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
