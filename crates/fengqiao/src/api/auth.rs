//! Who is asking: every request but the health check, the OpenAPI document and the sign-in
//! proves an account, by `Authorization: Bearer` (an account's token, or the node's CLI token
//! with `x-fengqiao-as` naming the account) or by the session cookie. A change made with the
//! cookie must carry the session's CSRF token. Then the route's row of the role table is
//! checked (for events, the service checks the event kind's row, before the office authority
//! check). The authenticated account travels to the handlers as a request extension
//! ([`Principal`]); no handler reads who is acting from anything the caller wrote.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fengqiao_accounts::Action;
use fengqiao_accounts::secret::{CSRF_HEADER, SESSION_COOKIE, check_csrf};

use crate::service::accounts::Credential;
pub use crate::service::accounts::Principal;

use super::{ApiFailure, ApiState, Operation, on_node};

/// With the node's CLI token: the account the CLI acts as (`--as NAME`, `FENGQIAO_USER`).
pub const ACT_AS_HEADER: &str = "x-fengqiao-as";

/// What a route asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the node.
    Public,
    /// Any signed-in account.
    SignedIn,
    /// An account whose roles allow this action (the role table).
    Role(Action),
    /// An account; the service checks the role for the event kind the body names.
    ByEventKind,
    /// Anyone on loopback sending no credential (`api/metrics.rs`); otherwise an account whose
    /// roles allow this action.
    LoopbackOrRole(Action),
}

/// Each operation's access: one match, so a new operation cannot be added without saying.
pub fn access(operation: Operation) -> Access {
    use Operation as O;
    match operation {
        O::Health | O::OpenApi | O::SignIn => Access::Public,
        O::SignOut | O::WhoAmI => Access::SignedIn,
        O::RegisterCase | O::AppendEvent | O::Import => Access::ByEventKind,
        O::ListCases | O::GetCase | O::ListDirectives | O::ExportLedger => {
            Access::Role(Action::ReadCases)
        }
        O::Stats => Access::Role(Action::ReadStats),
        O::StatsByChild => Access::Role(Action::ReadStatsByChild),
        O::Peers | O::Roster => Access::Role(Action::ReadFederation),
        O::Quarantine => Access::Role(Action::ReadQuarantine),
        O::ReloadFederation => Access::Role(Action::ReloadFederation),
        O::Policy => Access::Role(Action::ReadFederation),
        O::IssuePolicy => Access::Role(Action::IssuePolicy),
        O::AuditLog => Access::Role(Action::ReadAuditLog),
        O::AuditVerify => Access::Role(Action::VerifyAudit),
        O::ListUsers
        | O::AddUser
        | O::DisableUser
        | O::ResetPassword
        | O::SetRoles
        | O::ListTokens
        | O::CreateToken
        | O::RevokeToken => Access::Role(Action::ManageAccounts),
        O::Metrics => Access::LoopbackOrRole(Action::ReadMetrics),
        O::Backup => Access::Role(Action::BackupNode),
    }
}

fn operation_of(request: &Request) -> Option<Operation> {
    let path = request.extensions().get::<MatchedPath>()?.as_str();
    let method = request.method();
    super::all_routes()
        .find(|route| route.path == path && route.method.http_name() == method.as_str())
        .map(|route| route.operation)
}

fn unauthorized(message: impl Into<String>) -> ApiFailure {
    ApiFailure {
        status: StatusCode::UNAUTHORIZED,
        message: message.into(),
    }
}

fn forbidden(message: impl Into<String>) -> ApiFailure {
    ApiFailure {
        status: StatusCode::FORBIDDEN,
        message: message.into(),
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    let lines = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok());
    fengqiao_accounts::secret::cookie_value(lines, SESSION_COOKIE)
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware: authenticate, apply the route's access, hand the account on.
pub(super) async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    // Unrouted requests go on to the 404 / 405 answers, which need no account.
    let Some(operation) = operation_of(&request) else {
        return next.run(request).await;
    };
    let access = access(operation);
    if access == Access::Public {
        return next.run(request).await;
    }
    if let Access::LoopbackOrRole(_) = access {
        let behind_proxy = state.node.config().http.behind_proxy;
        if super::metrics::answers_without_credential(&request, behind_proxy) {
            return next.run(request).await;
        }
        if !super::metrics::carries_credential(request.headers()) {
            return super::metrics::remote_needs_credential().into_response();
        }
    }
    let headers = request.headers().clone();
    let method = request.method().clone();
    let principal = match principal_of(&state, &headers, &method).await {
        Ok(principal) => principal,
        Err(failure) => return failure.into_response(),
    };
    if let Access::Role(action) | Access::LoopbackOrRole(action) = access
        && let Err(refusal) = principal.actor().permit(action)
    {
        return forbidden(refusal.to_string()).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

async fn principal_of(
    state: &ApiState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Principal, ApiFailure> {
    if let Some(authorization) = header_text(headers, header::AUTHORIZATION.as_str()) {
        let Some(secret) = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
        else {
            return Err(unauthorized(
                "the Authorization header takes `Bearer TOKEN`",
            ));
        };
        let secret = secret.trim().to_owned();
        let act_as = header_text(headers, ACT_AS_HEADER).map(str::to_owned);
        return on_node(state, move |node| {
            node.authenticate_bearer(&secret, act_as.as_deref())
        })
        .await;
    }
    let Some(secret) = session_cookie(headers) else {
        return Err(unauthorized(
            "sign in first: POST /api/session with login and password (a browser keeps the \
             session cookie), or send `Authorization: Bearer TOKEN` (fengqiao token create)",
        ));
    };
    let now = crate::wall_clock::now();
    let principal = on_node(state, move |node| node.authenticate_session(&secret, now)).await?;
    if let Credential::Session(session) = &principal.credential {
        check_csrf(
            session,
            changes_state(method),
            header_text(headers, CSRF_HEADER),
        )
        .map_err(|refusal| forbidden(refusal.to_string()))?;
    }
    Ok(principal)
}

/// The client's address for the sign-in throttle: the connection's peer, or behind a proxy the
/// address the proxy appended last to `X-Forwarded-For` (earlier entries are the client's word).
pub fn source_address(
    request_headers: &HeaderMap,
    peer: Option<SocketAddr>,
    behind_proxy: bool,
) -> String {
    if behind_proxy
        && let Some(forwarded) = header_text(request_headers, "x-forwarded-for")
        && let Some(last) = forwarded.rsplit(',').next()
    {
        return last.trim().to_owned();
    }
    peer.map_or_else(|| "unknown".to_owned(), |address| address.ip().to_string())
}

/// The connection's peer address, when the server recorded it.
pub fn peer_of(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<super::tls::PeerAddress>>()
        .map(|ConnectInfo(super::tls::PeerAddress(address))| *address)
}
