//! The account routes: signing in and out (`/api/session`), and the admin's accounts
//! (`/api/users`) and tokens (`/api/tokens`). Who may call each is in `auth.rs`; what each does is
//! the service's (`service/accounts.rs`).

use std::sync::LazyLock;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, Json};
use fengqiao_accounts::AccountView;
use fengqiao_accounts::secret::{SESSION_COOKIE, Token};
use fengqiao_accounts::wire::{
    AccountWithPassword, NewAccount, NewToken, PasswordReset, RolesChange, SessionView, SignIn,
    TokenCreated,
};
use tokio::sync::Semaphore;

use super::auth::{Principal, peer_of, session_cookie, source_address};
use super::{
    ApiFailure, ApiJson, ApiState, BodySpec, HttpMethod, Operation, ParameterSpec, QueryPairs,
    QueryValues, RouteSpec, on_node, schema_of,
};

/// Password checks running at once: argon2 takes a core and 19 MiB each, so a burst of
/// sign-ins waits its turn here instead of taking every blocking thread, all the memory and the
/// cores the other requests need.
pub(super) static SIGN_IN_PERMITS: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    Semaphore::new(cores.clamp(1, 4))
});

const LOGIN: ParameterSpec = ParameterSpec::path("login", "an account's login, e.g. lizt");

/// The account routes, served and documented beside [`super::ROUTES`].
pub const ACCOUNT_ROUTES: &[RouteSpec] = &[
    RouteSpec {
        operation: Operation::SignIn,
        method: HttpMethod::Post,
        path: "/api/session",
        summary: "sign in with login and password",
        description: "Answers the account and a CSRF token, and sets the session cookie \
                      (HttpOnly, SameSite=Strict, Secure over TLS). Every change made with the \
                      cookie carries the CSRF token in x-csrf-token. Failed sign-ins slow down \
                      per account and per address (429 with Retry-After).",
        mutating: true,
        parameters: &[],
        request: Some(BodySpec::One(schema_of::<SignIn>)),
        success_status: 200,
        response: BodySpec::One(schema_of::<SessionView>),
        errors: &[400, 401, 429, 500],
    },
    RouteSpec {
        operation: Operation::SignOut,
        method: HttpMethod::Delete,
        path: "/api/session",
        summary: "sign out: the session ends",
        description: "Ends the session of the cookie sent and clears the cookie.",
        mutating: true,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<SessionView>),
        errors: &[401, 403, 500],
    },
    RouteSpec {
        operation: Operation::WhoAmI,
        method: HttpMethod::Get,
        path: "/api/session",
        summary: "who the request is authenticated as",
        description: "The account, the operator recorded in its events, and how it was \
                      authenticated (session, token, cli).",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<SessionView>),
        errors: &[401, 500],
    },
    RouteSpec {
        operation: Operation::ListUsers,
        method: HttpMethod::Get,
        path: "/api/users",
        summary: "the node's accounts (admin)",
        description: "Every account with its roles, when it was created, disabled, last signed \
                      in, and its failed sign-ins since.",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::ListOf(schema_of::<AccountView>),
        errors: &[401, 403, 500],
    },
    RouteSpec {
        operation: Operation::AddUser,
        method: HttpMethod::Post,
        path: "/api/users",
        summary: "create an account (admin)",
        description: "Without a password the node makes a one-time password and answers it \
                      once.",
        mutating: true,
        parameters: &[],
        request: Some(BodySpec::One(schema_of::<NewAccount>)),
        success_status: 201,
        response: BodySpec::One(schema_of::<AccountWithPassword>),
        errors: &[400, 401, 403, 409, 500, 507],
    },
    RouteSpec {
        operation: Operation::DisableUser,
        method: HttpMethod::Post,
        path: "/api/users/{login}/disable",
        summary: "disable an account (admin): its sessions end, its tokens stop working",
        description: "The account stays (its events name it); it can no longer sign in.",
        mutating: true,
        parameters: &[LOGIN],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<AccountView>),
        errors: &[401, 403, 404, 500, 507],
    },
    RouteSpec {
        operation: Operation::ResetPassword,
        method: HttpMethod::Post,
        path: "/api/users/{login}/password",
        summary: "set a new password (admin): the account's sessions end",
        description: "Without a password the node makes a one-time password and answers it \
                      once.",
        mutating: true,
        parameters: &[LOGIN],
        request: Some(BodySpec::One(schema_of::<PasswordReset>)),
        success_status: 200,
        response: BodySpec::One(schema_of::<AccountWithPassword>),
        errors: &[400, 401, 403, 404, 500, 507],
    },
    RouteSpec {
        operation: Operation::SetRoles,
        method: HttpMethod::Post,
        path: "/api/users/{login}/roles",
        summary: "set an account's roles (admin)",
        description: "Roles: operator, supervisor, admin (at least one).",
        mutating: true,
        parameters: &[LOGIN],
        request: Some(BodySpec::One(schema_of::<RolesChange>)),
        success_status: 200,
        response: BodySpec::One(schema_of::<AccountView>),
        errors: &[400, 401, 403, 404, 500, 507],
    },
    RouteSpec {
        operation: Operation::ListTokens,
        method: HttpMethod::Get,
        path: "/api/tokens",
        summary: "bearer tokens (admin), without their secrets",
        description: "Each token's id, name, account, creation and revocation.",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::ListOf(schema_of::<Token>),
        errors: &[401, 403, 500],
    },
    RouteSpec {
        operation: Operation::CreateToken,
        method: HttpMethod::Post,
        path: "/api/tokens",
        summary: "create a bearer token acting as an account (admin)",
        description: "Answers the secret once; the node keeps only its hash.",
        mutating: true,
        parameters: &[],
        request: Some(BodySpec::One(schema_of::<NewToken>)),
        success_status: 201,
        response: BodySpec::One(schema_of::<TokenCreated>),
        errors: &[400, 401, 403, 404, 500, 507],
    },
    RouteSpec {
        operation: Operation::RevokeToken,
        method: HttpMethod::Post,
        path: "/api/tokens/{id}/revoke",
        summary: "revoke a bearer token (admin)",
        description: "It stops working at once.",
        mutating: true,
        parameters: &[ParameterSpec::path(
            "id",
            "the token's id, as the list shows it",
        )],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<Token>),
        errors: &[400, 401, 403, 500, 507],
    },
];

pub(super) fn method_router(operation: Operation, filter: MethodFilter) -> MethodRouter<ApiState> {
    match operation {
        Operation::SignIn => on(filter, sign_in),
        Operation::SignOut => on(filter, sign_out),
        Operation::WhoAmI => on(filter, who_am_i),
        Operation::ListUsers => on(filter, list_users),
        Operation::AddUser => on(filter, add_user),
        Operation::DisableUser => on(filter, disable_user),
        Operation::ResetPassword => on(filter, reset_password),
        Operation::SetRoles => on(filter, set_roles),
        Operation::ListTokens => on(filter, list_tokens),
        Operation::CreateToken => on(filter, create_token),
        Operation::RevokeToken => on(filter, revoke_token),
        // Every other operation is routed by `Operation::method_router` itself.
        _ => on(filter, || async { ApiFailure::internal() }),
    }
}

fn session_view(
    principal: &Principal,
    csrf_token: Option<String>,
    idle: Option<u64>,
) -> SessionView {
    SessionView {
        account: principal.account.view(),
        operator: principal.operator(),
        via: principal.credential.name().to_owned(),
        csrf_token,
        idle_expiry_seconds: idle,
    }
}

fn cookie_header(
    state: &ApiState,
    value: &str,
    max_age: Option<u64>,
) -> Result<HeaderValue, ApiFailure> {
    HeaderValue::from_str(&cookie_text(
        &state.node.config().http,
        SESSION_COOKIE,
        value,
        max_age,
    ))
    .map_err(|_| ApiFailure::internal())
}

/// A cookie as the node sets it: the session cookie, and the console's beside it, alike
/// (HttpOnly, SameSite=Strict; Secure over TLS or behind a proxy). `Some(0)` clears it.
pub(super) fn cookie_text(
    http: &crate::config::HttpSection,
    name: &str,
    value: &str,
    max_age: Option<u64>,
) -> String {
    let secure = if http.serves_tls() || http.behind_proxy {
        "; Secure"
    } else {
        ""
    };
    let max_age = max_age.map_or_else(String::new, |seconds| format!("; Max-Age={seconds}"));
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{max_age}")
}

async fn sign_in(State(state): State<ApiState>, request: Request) -> Result<Response, ApiFailure> {
    let source = source_address(
        request.headers(),
        peer_of(&request),
        state.node.config().http.behind_proxy,
    );
    let ApiJson(SignIn { login, password }) =
        ApiJson::<SignIn>::from_request(request, &state).await?;
    let _permit = SIGN_IN_PERMITS
        .acquire()
        .await
        .map_err(|_| ApiFailure::internal())?;
    let signed_in = on_node(&state, move |node| {
        node.sign_in(&login, &password, &source, crate::wall_clock::now())
    })
    .await
    .inspect_err(|failure| {
        if failure.status == StatusCode::TOO_MANY_REQUESTS {
            tracing::warn!("sign-in throttled");
        }
    })?;
    let idle = u64::try_from(state.node.account_book().session_idle().num_seconds()).unwrap_or(0);
    let view = session_view(&signed_in.principal, Some(signed_in.csrf_token), Some(idle));
    tracing::info!(login = %signed_in.principal.account.login, "signed in");
    let cookie = cookie_header(&state, &signed_in.session_secret, None)?;
    Ok(([(header::SET_COOKIE, cookie)], Json(view)).into_response())
}

async fn sign_out(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
    Extension(principal): Extension<Principal>,
    request: Request,
) -> Result<Response, ApiFailure> {
    QueryValues::new(Operation::SignOut, pairs)?;
    if let Some(secret) = session_cookie(request.headers()) {
        on_node(&state, move |node| node.sign_out(&secret)).await?;
    }
    let cookie = cookie_header(&state, "", Some(0))?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(session_view(&principal, None, None)),
    )
        .into_response())
}

async fn who_am_i(
    Extension(principal): Extension<Principal>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<SessionView>, ApiFailure> {
    QueryValues::new(Operation::WhoAmI, pairs)?;
    Ok(Json(session_view(&principal, None, None)))
}

async fn list_users(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Vec<AccountView>>, ApiFailure> {
    QueryValues::new(Operation::ListUsers, pairs)?;
    Ok(Json(on_node(&state, |node| node.account_views()).await?))
}

async fn add_user(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
    ApiJson(request): ApiJson<NewAccount>,
) -> Result<(StatusCode, Json<AccountWithPassword>), ApiFailure> {
    QueryValues::new(Operation::AddUser, pairs)?;
    let created = on_node(&state, move |node| {
        node.add_account(&request, crate::wall_clock::now())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

fn login_in_path(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiFailure> {
    path.map(|Path(value)| value).map_err(|rejection| {
        ApiFailure::bad_request(format!(
            "invalid path: {}",
            rejection.body_text().to_lowercase()
        ))
    })
}

async fn disable_user(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<AccountView>, ApiFailure> {
    QueryValues::new(Operation::DisableUser, pairs)?;
    let login = login_in_path(path)?;
    Ok(Json(
        on_node(&state, move |node| {
            node.disable_account(&login, crate::wall_clock::now())
        })
        .await?,
    ))
}

async fn reset_password(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    ApiJson(request): ApiJson<PasswordReset>,
) -> Result<Json<AccountWithPassword>, ApiFailure> {
    QueryValues::new(Operation::ResetPassword, pairs)?;
    let login = login_in_path(path)?;
    Ok(Json(
        on_node(&state, move |node| {
            node.reset_password(
                &login,
                request.password.as_deref(),
                crate::wall_clock::now(),
            )
        })
        .await?,
    ))
}

async fn set_roles(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    ApiJson(request): ApiJson<RolesChange>,
) -> Result<Json<AccountView>, ApiFailure> {
    QueryValues::new(Operation::SetRoles, pairs)?;
    let login = login_in_path(path)?;
    Ok(Json(
        on_node(&state, move |node| node.set_roles(&login, request.roles)).await?,
    ))
}

async fn list_tokens(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Vec<Token>>, ApiFailure> {
    QueryValues::new(Operation::ListTokens, pairs)?;
    Ok(Json(on_node(&state, |node| node.tokens()).await?))
}

async fn create_token(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
    ApiJson(request): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiFailure> {
    QueryValues::new(Operation::CreateToken, pairs)?;
    let created = on_node(&state, move |node| {
        node.create_token(&request.login, &request.name, crate::wall_clock::now())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn revoke_token(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Token>, ApiFailure> {
    QueryValues::new(Operation::RevokeToken, pairs)?;
    let id = login_in_path(path)?;
    Ok(Json(
        on_node(&state, move |node| {
            node.revoke_token(&id, crate::wall_clock::now())
        })
        .await?,
    ))
}
