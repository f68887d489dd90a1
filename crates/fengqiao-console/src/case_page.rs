//! 案件详情 (`GET /cases/{number}`): the case as the signed-in person may read it, with the
//! actions they may take on it now (`crate::actions`). The same page answers an action the node
//! refused, saying why, with what was typed kept.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use fengqiao_accounts::Action;
use serde::Deserialize;

use crate::CSRF_COOKIE;
use crate::actions::{ActionForm, actions_view};
use crate::backend::ConsoleUser;
use crate::pages::{
    Backend, cookie, failure_page, html, language, layout, office_namer, signed_in,
};
use crate::texts::Texts;
use crate::views::case_page_view;

#[derive(Debug, Default, Deserialize)]
pub struct CaseParams {
    #[serde(default)]
    full: String,
}

/// An action the node refused, to show on the page: why, and the form as it was sent.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub form: ActionForm,
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
