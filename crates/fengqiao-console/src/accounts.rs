//! 用户 (accounts, for admins) and 修改密码 (every signed-in person).
//!
//! The node decides: listing, adding, disabling and resetting are the role table's
//! `manage_accounts` row, asked by the backend; the password rule and the check of the current
//! password are the node's accounts service, as for the API and `fengqiao user`. A one-time
//! password the node makes is shown on the answering page once and kept nowhere else.

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use fengqiao_accounts::secret::SESSION_COOKIE;
use fengqiao_accounts::wire::{AccountWithPassword, NewAccount};
use fengqiao_accounts::{AccountView, Role, RoleSet};
use serde::Deserialize;

use crate::CSRF_COOKIE;
use crate::backend::{BackendError, BackendErrorKind, ConsoleUser};
use crate::pages::{
    Backend, failure_page, html, language, require_csrf, signed_in, signed_in_form,
    signed_in_layout,
};
use crate::texts::{Texts, fill};
use crate::views::{Layout, date_time};

/// One account's row on 用户.
#[derive(Debug, Clone)]
pub struct AccountRowView {
    pub login: String,
    pub display_name: String,
    pub roles: String,
    pub disabled: bool,
    pub last_sign_in: String,
    pub failed_sign_ins: u32,
}

#[derive(Debug, Template)]
#[template(path = "accounts.html")]
pub struct AccountsPage {
    pub layout: Layout,
    pub rows: Vec<AccountRowView>,
    /// What the last action did (an added account, a reset), with the one-time password.
    pub notice: Option<String>,
    pub one_time_password: Option<String>,
    pub error: Option<String>,
    /// The add form as typed, kept on a refusal.
    pub typed: AddAccountForm,
}

#[derive(Debug, Template)]
#[template(path = "password.html")]
pub struct PasswordPage {
    pub layout: Layout,
    pub error: Option<String>,
    pub done: bool,
}

fn role_words(texts: &Texts, roles: RoleSet) -> String {
    roles
        .iter()
        .map(|role| Texts::term(&texts.role, &role))
        .collect::<Vec<_>>()
        .join("、")
}

fn rows(texts: &Texts, accounts: &[AccountView]) -> Vec<AccountRowView> {
    accounts
        .iter()
        .map(|account| AccountRowView {
            login: account.login.clone(),
            display_name: account.display_name.clone(),
            roles: role_words(texts, account.roles),
            disabled: account.disabled_at.is_some(),
            last_sign_in: account.last_sign_in_at.map(date_time).unwrap_or_default(),
            failed_sign_ins: account.failed_sign_ins,
        })
        .collect()
}

/// The 用户 page with `outcome` of the action just taken.
async fn accounts_page(
    backend: &Backend,
    headers: &HeaderMap,
    user: &ConsoleUser,
    outcome: Outcome,
) -> Response {
    let language = language(headers);
    let texts = Texts::of(language);
    let accounts = match backend.accounts(user).await {
        Ok(accounts) => accounts,
        Err(error) => return failure_page(backend, headers, Some(user), &error).await,
    };
    let layout = signed_in_layout(
        backend,
        headers,
        language,
        user,
        "accounts",
        texts.ui.accounts.clone(),
    )
    .await;
    let (status, notice, one_time_password, error, typed) = match outcome {
        Outcome::None => (StatusCode::OK, None, None, None, AddAccountForm::default()),
        Outcome::Done(notice, password) => (
            StatusCode::OK,
            Some(notice),
            password,
            None,
            AddAccountForm::default(),
        ),
        Outcome::Refused(status, why, typed) => (status, None, None, Some(why), typed),
    };
    html(
        status,
        &AccountsPage {
            layout,
            rows: rows(texts, &accounts),
            notice,
            one_time_password,
            error,
            typed,
        },
    )
}

enum Outcome {
    None,
    /// What was done, and the one-time password the node made, if it made one.
    Done(String, Option<String>),
    Refused(StatusCode, String, AddAccountForm),
}

/// `GET /accounts`: 用户.
pub async fn accounts(State(backend): State<Backend>, headers: HeaderMap) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    accounts_page(&backend, &headers, &user, Outcome::None).await
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AddAccountForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub login: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub role_operator: String,
    #[serde(default)]
    pub role_supervisor: String,
    #[serde(default)]
    pub role_admin: String,
}

impl AddAccountForm {
    fn roles(&self) -> RoleSet {
        let chosen: Vec<Role> = [
            (Role::Operator, &self.role_operator),
            (Role::Supervisor, &self.role_supervisor),
            (Role::Admin, &self.role_admin),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(role, _)| role)
        .collect();
        RoleSet::of(&chosen)
    }
}

/// What the page says of a refusal: the node's reason beside the console's word.
fn refusal(texts: &Texts, error: &BackendError) -> Option<(StatusCode, String)> {
    let status = match error.kind {
        BackendErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        BackendErrorKind::Refused => StatusCode::CONFLICT,
        BackendErrorKind::NotFound => StatusCode::NOT_FOUND,
        _ => return None,
    };
    Some((
        status,
        fill(&texts.ui.account_refused, &[("why", &error.message)]),
    ))
}

/// `POST /accounts`: add an account with the roles ticked; the node makes its one-time
/// password.
pub async fn add_account(
    State(backend): State<Backend>,
    headers: HeaderMap,
    body: Result<Form<AddAccountForm>, FormRejection>,
) -> Response {
    let (user, form) =
        match signed_in_form(&backend, &headers, body, |form: &AddAccountForm| &form.csrf).await {
            Ok(signed_in) => signed_in,
            Err(response) => return response,
        };
    let texts = Texts::of(language(&headers));
    let request = NewAccount {
        login: form.login.trim().to_owned(),
        display_name: form.display_name.trim().to_owned(),
        roles: form.roles(),
        password: None,
    };
    let outcome = match backend.add_account(&user, request).await {
        Ok(added) => done(texts, &texts.ui.account_added, &added),
        Err(error) => match refusal(texts, &error) {
            Some((status, why)) => Outcome::Refused(status, why, form),
            None => return failure_page(&backend, &headers, Some(&user), &error).await,
        },
    };
    accounts_page(&backend, &headers, &user, outcome).await
}

fn done(texts: &Texts, what: &str, answer: &AccountWithPassword) -> Outcome {
    let account = &answer.account;
    Outcome::Done(
        fill(
            what,
            &[
                ("name", &account.display_name),
                ("login", &account.login),
                ("roles", &role_words(texts, account.roles)),
            ],
        ),
        answer.one_time_password.clone(),
    )
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /accounts/{login}/disable` (it signs in no more) and `POST /accounts/{login}/reset` (a
/// new one-time password for it).
pub async fn account_action(
    State(backend): State<Backend>,
    headers: HeaderMap,
    Path((login, action)): Path<(String, String)>,
    body: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    let (user, _) =
        match signed_in_form(&backend, &headers, body, |form: &CsrfOnly| &form.csrf).await {
            Ok(signed_in) => signed_in,
            Err(response) => return response,
        };
    let texts = Texts::of(language(&headers));
    let answer = match action.as_str() {
        "disable" => {
            backend
                .disable_account(&user, login)
                .await
                .map(|account| AccountWithPassword {
                    account,
                    one_time_password: None,
                })
        }
        "reset" => backend.reset_password(&user, login).await,
        other => Err(BackendError::new(BackendErrorKind::NotFound, other)),
    };
    let outcome = match answer {
        Ok(answer) if action == "disable" => done(texts, &texts.ui.account_disabled, &answer),
        Ok(answer) => done(texts, &texts.ui.password_reset, &answer),
        Err(error) => match refusal(texts, &error) {
            Some((status, why)) => Outcome::Refused(status, why, AddAccountForm::default()),
            None => return failure_page(&backend, &headers, Some(&user), &error).await,
        },
    };
    accounts_page(&backend, &headers, &user, outcome).await
}

/// `GET /password`: 修改密码.
pub async fn password_form(State(backend): State<Backend>, headers: HeaderMap) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    password_page(&backend, &headers, &user, StatusCode::OK, None).await
}

async fn password_page(
    backend: &Backend,
    headers: &HeaderMap,
    user: &ConsoleUser,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let language = language(headers);
    let title = Texts::of(language).ui.change_password.clone();
    let layout = signed_in_layout(backend, headers, language, user, "password", title).await;
    html(
        status,
        &PasswordPage {
            layout,
            error,
            done: false,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    repeat: String,
}

/// `POST /password`: change one's own password. Every session of the account ends with it, so
/// the answer signs this browser out and asks for the new password.
pub async fn change_password(State(backend): State<Backend>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers.clone();
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let form =
        match Form::<PasswordForm>::from_request(Request::from_parts(parts.clone(), body), &())
            .await
        {
            Ok(Form(form)) => form,
            Err(rejection) => {
                let error =
                    BackendError::new(BackendErrorKind::InvalidInput, rejection.body_text());
                return failure_page(&backend, &headers, Some(&user), &error).await;
            }
        };
    if let Err(refused) = require_csrf(&backend, &headers, &user, &form.csrf).await {
        return refused;
    }
    let language = language(&headers);
    let t = &Texts::of(language).ui;
    if form.new != form.repeat {
        let error = Some(t.passwords_differ.clone());
        return password_page(&backend, &headers, &user, StatusCode::BAD_REQUEST, error).await;
    }
    match backend
        .change_own_password(&user, form.current, form.new, &headers, &parts.extensions)
        .await
    {
        Ok(()) => {
            let layout = signed_in_layout(
                &backend,
                &headers,
                language,
                &user,
                "password",
                t.change_password.clone(),
            )
            .await;
            let mut response = html(
                StatusCode::OK,
                &PasswordPage {
                    layout,
                    error: None,
                    done: true,
                },
            );
            for name in [SESSION_COOKIE, CSRF_COOKIE] {
                if let Ok(value) = HeaderValue::from_str(&backend.cookie(name, "", Some(0))) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(error) => {
            let (status, why) = match error.kind {
                BackendErrorKind::Unauthenticated => {
                    (StatusCode::FORBIDDEN, t.current_password_wrong.clone())
                }
                BackendErrorKind::Throttled {
                    retry_after_seconds,
                } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    fill(
                        &t.sign_in_throttled,
                        &[("seconds", &retry_after_seconds.to_string())],
                    ),
                ),
                BackendErrorKind::InvalidInput => (
                    StatusCode::BAD_REQUEST,
                    fill(&t.new_password_refused, &[("why", &error.message)]),
                ),
                _ => return failure_page(&backend, &headers, Some(&user), &error).await,
            };
            password_page(&backend, &headers, &user, status, Some(why)).await
        }
    }
}
