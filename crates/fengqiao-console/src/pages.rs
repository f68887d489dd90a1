//! The console's handlers: who is signed in (the API's session cookie), what to ask the backend,
//! which page to render. A page that needs an account sends a signed-out visitor to 登录; a form
//! that changes state (sign-out) is taken only with the session's CSRF token.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use fengqiao_accounts::Action;
use fengqiao_accounts::secret::{SESSION_COOKIE, check_csrf};
use fengqiao_case::model::{Category, Status, WarningGrade};
use serde::Deserialize;

use crate::backend::{BackendError, BackendErrorKind, CaseQuery, ConsoleBackend, ConsoleUser};
use crate::forms::{Choice, choices, parse_choice};
use crate::texts::{Language, Texts, fill};
use crate::views::{
    DashboardPage, Layout, LedgerPage, MessagePage, SignInPage, banner, row_view,
    switch_language_href,
};
use crate::{CSRF_COOKIE, LANGUAGE_COOKIE, PAGE_SIZE};

pub(crate) type Backend = Arc<dyn ConsoleBackend>;

/// A cookie's value from the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let lines = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok());
    fengqiao_accounts::secret::cookie_value(lines, name)
}

pub(crate) fn language(headers: &HeaderMap) -> Language {
    cookie(headers, LANGUAGE_COOKIE)
        .map_or_else(Language::default, |code| Language::from_code(&code))
}

/// A rendered page, or the plain error if a template fails (it cannot for the data it gets:
/// every value is already text).
pub(crate) fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "console page did not render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The layout of a signed-in person's page, the session's CSRF token for its forms taken from
/// the request's cookie.
pub(crate) async fn signed_in_layout(
    backend: &Backend,
    headers: &HeaderMap,
    language: Language,
    user: &ConsoleUser,
    active: &'static str,
    title: String,
) -> Layout {
    let csrf = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    layout(backend, language, Some(user), csrf, active, title).await
}

/// The layout of a page; with a user, the link banner asks the federation.
pub(crate) async fn layout(
    backend: &Backend,
    language: Language,
    user: Option<&ConsoleUser>,
    csrf: String,
    active: &'static str,
    title: String,
) -> Layout {
    let texts = Texts::of(language);
    let office = backend.office();
    let banner_lines = match user {
        Some(_) => match backend.links().await {
            Ok(links) => banner(texts, &links),
            Err(error) => {
                tracing::warn!(%error, "console: cannot read the federation links");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    Layout {
        t: &texts.ui,
        lang: language.code(),
        switch_language_href: switch_language_href(language),
        office: office.name,
        office_tier: Texts::term(&texts.tier, &office.tier),
        user: user.map(|user| user.account.operator_label()),
        csrf,
        active,
        manages_accounts: user
            .is_some_and(|user| user.account.actor().permit(Action::ManageAccounts).is_ok()),
        banner: banner_lines,
        title,
        assets: crate::assets::hrefs(),
    }
}

/// The signed-in account, or the answer that sends the visitor to sign in.
pub(crate) async fn signed_in(
    backend: &Backend,
    headers: &HeaderMap,
) -> Result<ConsoleUser, Response> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Err(Redirect::to("/login").into_response());
    };
    match backend.session(secret).await {
        Ok(user) => Ok(user),
        Err(error) if error.kind == BackendErrorKind::Unauthenticated => {
            Err(Redirect::to("/login").into_response())
        }
        Err(error) => Err(failure_page(backend, headers, None, &error).await),
    }
}

/// A page saying why the backend refused, in the person's language.
pub(crate) async fn failure_page(
    backend: &Backend,
    headers: &HeaderMap,
    user: Option<&ConsoleUser>,
    error: &BackendError,
) -> Response {
    let language = language(headers);
    let t = &Texts::of(language).ui;
    let (status, message) = match error.kind {
        BackendErrorKind::Forbidden => (
            StatusCode::FORBIDDEN,
            fill(&t.no_permission, &[("why", &error.message)]),
        ),
        BackendErrorKind::NotFound => (
            StatusCode::NOT_FOUND,
            fill(&t.not_found, &[("number", &error.message)]),
        ),
        BackendErrorKind::InvalidInput => (
            StatusCode::BAD_REQUEST,
            fill(&t.bad_filter, &[("value", &error.message)]),
        ),
        BackendErrorKind::Refused => (StatusCode::CONFLICT, error.message.clone()),
        BackendErrorKind::Unauthenticated | BackendErrorKind::Throttled { .. } => {
            return Redirect::to("/login").into_response();
        }
        BackendErrorKind::Internal => {
            tracing::error!(%error, "console: the node failed");
            (StatusCode::INTERNAL_SERVER_ERROR, t.internal_error.clone())
        }
    };
    let csrf = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    let layout = layout(backend, language, user, csrf, "", t.console_title.clone()).await;
    html(status, &MessagePage { layout, message })
}

/// `GET /login`.
pub async fn sign_in_form(State(backend): State<Backend>, headers: HeaderMap) -> Response {
    let language = language(&headers);
    let title = Texts::of(language).ui.sign_in.clone();
    let layout = layout(&backend, language, None, String::new(), "", title).await;
    html(
        StatusCode::OK,
        &SignInPage {
            layout,
            error: None,
            login: String::new(),
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

/// `POST /login`: sign in as the API does, then set the session cookie and the console's CSRF
/// cookie and go to 工作台. A refusal shows the form again with the login typed kept.
pub async fn sign_in(State(backend): State<Backend>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let language = language(&parts.headers);
    let t = &Texts::of(language).ui;
    let form = Form::<SignInForm>::from_request(Request::from_parts(parts.clone(), body), &())
        .await
        .map(|Form(form)| form);
    let (login, result) = match form {
        Ok(form) if !form.login.trim().is_empty() && !form.password.is_empty() => {
            let login = form.login.trim().to_owned();
            let result = backend
                .sign_in(
                    login.clone(),
                    form.password,
                    &parts.headers,
                    &parts.extensions,
                )
                .await
                .map_err(Some);
            (login, result)
        }
        Ok(form) => (form.login, Err(None)),
        Err(_) => (String::new(), Err(None)),
    };
    match result {
        Ok(signed_in) => {
            let cookies = [
                backend.cookie(SESSION_COOKIE, &signed_in.session_secret, None),
                backend.cookie(CSRF_COOKIE, &signed_in.csrf_token, None),
            ];
            let mut response = Redirect::to("/").into_response();
            for value in cookies {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(refusal) => {
            let (status, message) = match refusal {
                None => (StatusCode::BAD_REQUEST, t.sign_in_missing.clone()),
                Some(error) => match error.kind {
                    BackendErrorKind::Throttled {
                        retry_after_seconds,
                    } => (
                        StatusCode::TOO_MANY_REQUESTS,
                        fill(&t.sign_in_throttled, &[("seconds", &retry_after_seconds)]),
                    ),
                    BackendErrorKind::Unauthenticated => {
                        (StatusCode::UNAUTHORIZED, t.sign_in_failed.clone())
                    }
                    _ => {
                        tracing::error!(%error, "console sign-in failed");
                        (StatusCode::INTERNAL_SERVER_ERROR, t.internal_error.clone())
                    }
                },
            };
            let layout = layout(
                &backend,
                language,
                None,
                String::new(),
                "",
                t.sign_in.clone(),
            )
            .await;
            html(
                status,
                &SignInPage {
                    layout,
                    error: Some(message),
                    login,
                },
            )
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: with the session's CSRF token, end the session and clear the cookies.
pub async fn sign_out(
    State(backend): State<Backend>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    if let Err(refusal) = require_csrf(&backend, &headers, &user, &form.csrf).await {
        return refusal;
    }
    if let Some(secret) = cookie(&headers, SESSION_COOKIE)
        && let Err(error) = backend.sign_out(secret).await
    {
        return failure_page(&backend, &headers, Some(&user), &error).await;
    }
    let mut response = Redirect::to("/login").into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(value) = HeaderValue::from_str(&backend.cookie(name, "", Some(0))) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A form that changes state is taken only with the session's CSRF token
/// (`fengqiao_accounts::secret::check_csrf`); otherwise the answer says the page expired.
pub(crate) async fn require_csrf(
    backend: &Backend,
    headers: &HeaderMap,
    user: &ConsoleUser,
    presented: &str,
) -> Result<(), Response> {
    if check_csrf(&user.session, true, Some(presented)).is_ok() {
        return Ok(());
    }
    let language = language(headers);
    let t = &Texts::of(language).ui;
    let csrf = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    let layout = layout(
        backend,
        language,
        Some(user),
        csrf,
        "",
        t.console_title.clone(),
    )
    .await;
    Err(html(
        StatusCode::FORBIDDEN,
        &MessagePage {
            layout,
            message: t.session_form_expired.clone(),
        },
    ))
}

/// The signed-in account and the form it sent, taken only with the session's CSRF token
/// (`csrf_of` reads it from the form); otherwise the answer to give instead.
pub(crate) async fn signed_in_form<T>(
    backend: &Backend,
    headers: &HeaderMap,
    body: Result<Form<T>, FormRejection>,
    csrf_of: fn(&T) -> &str,
) -> Result<(ConsoleUser, T), Response> {
    let user = signed_in(backend, headers).await?;
    let form = match body {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let error = BackendError::new(BackendErrorKind::InvalidInput, rejection.body_text());
            return Err(failure_page(backend, headers, Some(&user), &error).await);
        }
    };
    require_csrf(backend, headers, &user, csrf_of(&form)).await?;
    Ok((user, form))
}

#[derive(Debug, Deserialize)]
pub struct LanguageChoice {
    #[serde(default)]
    to: String,
}

/// `GET /language?to=en`: remember the person's language in a cookie (a preference, not a
/// change to anything the node keeps) and go back to 工作台.
pub async fn switch_language(
    State(backend): State<Backend>,
    Query(choice): Query<LanguageChoice>,
) -> Response {
    let language = Language::from_code(&choice.to);
    let mut response = Redirect::to("/").into_response();
    let value = backend.cookie(LANGUAGE_COOKIE, language.code(), Some(365 * 24 * 3600));
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The office's name of a node, for the holder and timeline columns.
pub(crate) fn office_namer(backend: &Backend) -> impl Fn(&String) -> String + '_ {
    let own = backend.office();
    move |node: &String| {
        if *node == own.node_id {
            own.name.clone()
        } else {
            backend
                .office_name(node)
                .unwrap_or_else(|| node.chars().take(8).collect())
        }
    }
}

/// `GET /`: 工作台.
pub async fn dashboard(State(backend): State<Backend>, headers: HeaderMap) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let language = language(&headers);
    let texts = Texts::of(language);
    let query = CaseQuery {
        warned_only: true,
        held_here: true,
        page: 0,
        page_size: PAGE_SIZE,
        ..CaseQuery::default()
    };
    let page = match backend.cases(&user, query).await {
        Ok(page) => page,
        Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
    };
    // Cases held here that wait for this office's first step: registered here or escalated
    // here (受理 or not), and sent here by 交办 or 转送 (接收 or 退回).
    let held_in = |status| CaseQuery {
        status: Some(status),
        held_here: true,
        page: 0,
        page_size: PAGE_SIZE,
        ..CaseQuery::default()
    };
    let awaiting_decision = match backend.cases(&user, held_in(Status::Registered)).await {
        Ok(page) => page,
        Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
    };
    let awaiting = match backend
        .cases(&user, held_in(Status::AwaitingReceiver))
        .await
    {
        Ok(page) => page,
        Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
    };
    let mut directives = match backend.directives(&user, true).await {
        Ok(items) => items,
        Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
    };
    let own = backend.office().node_id;
    directives.retain(|item| {
        item.directive.target_node == own
            && crate::views::directive_awaits_its_target(item.directive.status)
    });
    // 挂牌督办 first (CONSOLE-NOTES), then the backend's order: by due date.
    directives.sort_by_key(|item| !item.directive.listed);
    let now = backend.now();
    let namer = office_namer(&backend);
    let rows = page
        .rows
        .iter()
        .map(|row| row_view(texts, row, &namer, now))
        .collect();
    let awaiting_receipt = awaiting
        .rows
        .iter()
        .map(|row| row_view(texts, row, &namer, now))
        .collect();
    let awaiting_decision_total = awaiting_decision.total;
    let awaiting_decision = awaiting_decision
        .rows
        .iter()
        .map(|row| row_view(texts, row, &namer, now))
        .collect();
    let directives = directives
        .iter()
        .map(|item| crate::views::directive_row(texts, item, &namer, now))
        .collect();
    let csrf = cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    let title = texts.ui.dashboard.clone();
    let layout = layout(&backend, language, Some(&user), csrf, "dashboard", title).await;
    html(
        StatusCode::OK,
        &DashboardPage {
            layout,
            rows,
            total: page.total,
            directives,
            d: &texts.directives,
            awaiting_receipt,
            awaiting_decision,
            awaiting_decision_total,
        },
    )
}

/// The 台账's filters as the URL carries them (the enums' API names, a 1-based page).
#[derive(Debug, Default, Deserialize)]
pub struct LedgerParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    grade: String,
    /// Registered on or after this day (`2026-12-01`).
    #[serde(default)]
    from: String,
    /// Registered on or before this day.
    #[serde(default)]
    to: String,
    /// The holder's node ID.
    #[serde(default)]
    holder: String,
    /// A child office's region code.
    #[serde(default)]
    region: String,
    /// A case number (or part of one) or a petitioner's name.
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: String,
}

pub(crate) const ALL_STATUSES: [Status; 11] = Status::ALL;

pub(crate) const ALL_CATEGORIES: [Category; 11] = [
    Category::LandRequisition,
    Category::WageArrears,
    Category::DemolitionRelocation,
    Category::SchoolConsolidation,
    Category::Labour,
    Category::Environment,
    Category::Neighbourhood,
    Category::Family,
    Category::PropertyManagement,
    Category::SocialSecurity,
    Category::Other,
];

pub(crate) const ALL_GRADES: [WarningGrade; 3] = [
    WarningGrade::Approaching,
    WarningGrade::Overdue,
    WarningGrade::SeriouslyOverdue,
];

/// A ledger URL with these filters and page (1-based); the values are API names (ASCII
/// letters and `_`) and a number, so they need no percent-encoding.
fn ledger_href(params: &LedgerParams, page: usize) -> String {
    filtered_href("/cases", params, &[("page", page.to_string())])
}

/// `path` with the 台账's filters and `extra` pairs, percent-encoded: the search box holds
/// whatever a person typed.
fn filtered_href(path: &str, params: &LedgerParams, extra: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = [
        ("status", &params.status),
        ("category", &params.category),
        ("grade", &params.grade),
        ("from", &params.from),
        ("to", &params.to),
        ("holder", &params.holder),
        ("region", &params.region),
        ("q", &params.q),
    ]
    .into_iter()
    .filter(|(_, value)| !value.trim().is_empty())
    .map(|(name, value)| (name, value.as_str()))
    .collect();
    pairs.extend(extra.iter().map(|(name, value)| (*name, value.as_str())));
    match serde_urlencoded::to_string(&pairs) {
        Ok(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    }
}

/// The 台账's filters from the URL, naming in `refused` what it could not read.
fn ledger_filters(params: &LedgerParams, refused: &mut Vec<String>) -> CaseQuery {
    let mut day = |text: &str| -> Option<chrono::NaiveDate> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| refused.push(text.to_owned()))
            .ok()
    };
    let registered_from = day(&params.from);
    let registered_to = day(&params.to);
    let holder = params.holder.trim();
    let holder = if holder.is_empty() {
        None
    } else if holder.len() == 32 && holder.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        Some(holder.to_owned())
    } else {
        refused.push(holder.to_owned());
        None
    };
    let region = params.region.trim();
    let region = if region.is_empty() {
        None
    } else if region.len() <= 12 && region.bytes().all(|byte| byte.is_ascii_digit()) {
        Some(region.to_owned())
    } else {
        refused.push(region.to_owned());
        None
    };
    CaseQuery {
        status: parse_choice(&params.status, refused),
        category: parse_choice(&params.category, refused),
        grade: parse_choice(&params.grade, refused),
        registered_from,
        registered_to,
        holder,
        region,
        search: params.q.trim().chars().take(64).collect(),
        ..CaseQuery::default()
    }
}

/// The offices a case may be held by, as the 台账's holder filter offers them: this one, its
/// parent and its children.
fn holder_choices(backend: &Backend, selected: Option<&str>) -> Vec<Choice> {
    let own = backend.office();
    let neighbours = backend.neighbours();
    std::iter::once((own.node_id, own.name))
        .chain(
            neighbours
                .parent
                .into_iter()
                .chain(neighbours.children)
                .map(|office| (office.node_id, office.name)),
        )
        .map(|(node_id, name)| Choice {
            selected: selected == Some(node_id.as_str()),
            value: node_id,
            label: name,
        })
        .collect()
}

/// The child offices whose regions the 台账 filters by (cases located there or below).
fn region_choices(backend: &Backend, selected: Option<&str>) -> Vec<Choice> {
    backend
        .neighbours()
        .children
        .into_iter()
        .map(|office| Choice {
            selected: selected == Some(office.region_code.as_str()),
            value: office.region_code,
            label: office.name,
        })
        .collect()
}

/// `GET /cases`: 台账, filtered by the URL, 50 a page.
pub async fn ledger(
    State(backend): State<Backend>,
    headers: HeaderMap,
    Query(params): Query<LedgerParams>,
) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let language = language(&headers);
    let texts = Texts::of(language);
    let t = &texts.ui;
    let mut refused = Vec::new();
    let filters = ledger_filters(&params, &mut refused);
    let (status, category, grade) = (filters.status, filters.category, filters.grade);
    let (holder, region) = (filters.holder.clone(), filters.region.clone());
    let page_number = match params.page.trim() {
        "" => 1,
        text => text.parse::<usize>().unwrap_or_else(|_| {
            refused.push(text.to_owned());
            1
        }),
    }
    .max(1);
    let query = CaseQuery {
        page: page_number - 1,
        page_size: PAGE_SIZE,
        ..filters
    };
    let page = match backend.cases(&user, query).await {
        Ok(page) => page,
        Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
    };
    let now = backend.now();
    let namer = office_namer(&backend);
    let rows = page
        .rows
        .iter()
        .map(|row| row_view(texts, row, &namer, now))
        .collect();
    let pages = page.total.div_ceil(PAGE_SIZE).max(1);
    let page_text = fill(
        &t.page_of,
        &[
            ("page", &page_number),
            ("pages", &pages),
            ("total", &page.total),
        ],
    );
    let error =
        (!refused.is_empty()).then(|| fill(&t.bad_filter, &[("value", &refused.join("、"))]));
    let layout = signed_in_layout(
        &backend,
        &headers,
        language,
        &user,
        "ledger",
        t.ledger.clone(),
    )
    .await;
    html(
        StatusCode::OK,
        &LedgerPage {
            layout,
            statuses: choices(&texts.status, &ALL_STATUSES, status.as_ref()),
            categories: choices(&texts.category, &ALL_CATEGORIES, category.as_ref()),
            grades: choices(&texts.grade, &ALL_GRADES, grade.as_ref()),
            holders: holder_choices(&backend, holder.as_deref()),
            regions: region_choices(&backend, region.as_deref()),
            from: params.from.trim().to_owned(),
            to: params.to.trim().to_owned(),
            search: params.q.trim().to_owned(),
            rows,
            page_text,
            previous_href: (page_number > 1).then(|| ledger_href(&params, page_number - 1)),
            next_href: (page_number < pages).then(|| ledger_href(&params, page_number + 1)),
            error,
            export_href: filtered_href("/export/ledger.xlsx", &params, &[]),
            export_full_href: user
                .account
                .actor()
                .permit(Action::ExportPersonalData)
                .is_ok()
                .then(|| {
                    filtered_href("/export/ledger.xlsx", &params, &[("full", "1".to_owned())])
                }),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct ExportParams {
    #[serde(flatten)]
    filters: LedgerParams,
    #[serde(default)]
    full: String,
}

/// `GET /export/ledger.xlsx`: the 台账 with the URL's filters, every page, as an Excel file in the
/// columns the ledger import reads (identifiers masked unless `?full=1` and the role may).
pub async fn export_ledger(
    State(backend): State<Backend>,
    headers: HeaderMap,
    Query(params): Query<ExportParams>,
) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let mut refused = Vec::new();
    let query = ledger_filters(&params.filters, &mut refused);
    if !refused.is_empty() {
        let error = BackendError::new(BackendErrorKind::InvalidInput, refused.join("、"));
        return failure_page(&backend, &headers, Some(&user), &error).await;
    }
    match backend
        .export_ledger(&user, query, params.full == "1")
        .await
    {
        Ok(bytes) => {
            let name = format!(
                "ledger-{}.xlsx",
                backend
                    .now()
                    .with_timezone(&fengqiao_case::deadlines::china_offset())
                    .format("%Y%m%d-%H%M")
            );
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                            .to_owned(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(error) => failure_page(&backend, &headers, Some(&user), &error).await,
    }
}
