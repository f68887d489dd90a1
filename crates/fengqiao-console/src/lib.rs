//! The web console 工作台: server-rendered pages (askama templates under `templates/`, words in
//! `texts/`, the vendored htmx and one stylesheet under `assets/`, all embedded in the binary)
//! over a [`ConsoleBackend`] the node implements. The console holds no rule: it asks the
//! backend, which asks the one file of each rule. Pages work with JavaScript off; htmx only
//! spares a reload.

pub mod accounts;
pub mod actions;
pub mod assets;
pub mod audit;
pub mod backend;
pub mod case_page;
pub mod directives;
pub mod forms;
pub mod masking;
pub mod network;
pub mod pages;
pub mod registration;
pub mod statistics;
pub mod texts;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use backend::{
    BackendError, BackendErrorKind, BackendFuture, CasePage, CaseQuery, CaseRow, ConsoleBackend,
    ConsoleSignIn, ConsoleUser, LinkDetail, LinkRelation, LinkStatus, Neighbours, NewChildOffice,
    Office, StatsPeriod,
};

/// The CSRF token of the console's session, kept in its own cookie so that the pages can put it
/// in their forms; a form is taken only with the token the session was made with
/// (`fengqiao_accounts::secret::check_csrf`).
pub const CSRF_COOKIE: &str = "fengqiao_console_csrf";
/// The language a person chose (`zh-CN` or `en`).
pub const LANGUAGE_COOKIE: &str = "fengqiao_lang";
/// Rows a list page shows (CONSOLE-NOTES: 50 a page).
pub const PAGE_SIZE: usize = 50;

/// The console's routes, to be merged beside `/api` at `/`.
pub fn router(backend: Arc<dyn ConsoleBackend>) -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(pages::sign_in_form).post(pages::sign_in))
        .route("/logout", post(pages::sign_out))
        .route("/language", get(pages::switch_language))
        .route(
            "/register",
            get(registration::registration_form).post(registration::register),
        )
        .route("/cases", get(pages::ledger))
        .route("/cases/{number}", get(case_page::case_page))
        .route("/cases/{number}/actions", post(case_page::take_action))
        .route("/statistics", get(statistics::statistics))
        .route("/network", get(network::network))
        .route("/network/admit", post(network::admit))
        .route("/network/revoke", post(network::revoke))
        .route("/audit", get(audit::audit))
        .route("/directives", get(directives::directives))
        .route("/export/ledger.xlsx", get(pages::export_ledger))
        .route(
            "/accounts",
            get(accounts::accounts).post(accounts::add_account),
        )
        .route("/accounts/{login}/{action}", post(accounts::account_action))
        .route(
            "/password",
            get(accounts::password_form).post(accounts::change_password),
        )
        .route("/assets/{name}", get(assets::asset))
        .with_state(backend)
}

#[cfg(test)]
mod tests;
