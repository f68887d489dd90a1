//! What the console asks of the node: exactly what its pages need, as one object-safe trait. The
//! node crate implements it over its service (`crates/fengqiao/src/api/console_backend.rs`), so
//! every rule (roles, sessions, jurisdiction, warnings) stays in its one file and the console
//! holds none. Types are the domain's (`fengqiao_case::model`) and the accounts'
//! (`fengqiao_accounts`), plus the few views below that only the console reads.

use std::future::Future;
use std::pin::Pin;

use axum::http::{Extensions, HeaderMap};
use chrono::{DateTime, Utc};
use fengqiao_accounts::secret::Session;
use fengqiao_accounts::wire::{AccountWithPassword, NewAccount};
use fengqiao_accounts::{Account, AccountView};
use fengqiao_case::model::audit::{AuditLog, AuditReport, QuarantineListing};
use fengqiao_case::model::roster::RosterView;
use fengqiao_case::model::stats::StatsBreakdown;
use fengqiao_case::model::{
    AppendEvent, CaseListItem, CaseView, Category, DirectiveListItem, EventKind, ImportedCases,
    Measures, NodeId, NodeInfo, Petitioner, RegisterCase, Status, WarningGrade,
};

/// A backend call's answer, boxed so that the trait stays object-safe.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// Why the backend refused or failed; the message is the service's own (shown beside a word of
/// the console's texts, never instead of one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    pub kind: BackendErrorKind,
    pub message: String,
    /// The field of the request the refusal names, as a path into it
    /// (`petitioners.id_number`), when the node names one; `message` then says only what is
    /// wrong with it.
    pub field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// Wrong login or password, no session, an ended session.
    Unauthenticated,
    /// Too many failed sign-ins: wait this long.
    Throttled {
        retry_after_seconds: u64,
    },
    /// The role table or the office's jurisdiction says no.
    Forbidden,
    NotFound,
    InvalidInput,
    /// The case's state does not allow the event now (the lifecycle says why).
    Refused,
    Internal,
}

impl BackendError {
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> BackendError {
        BackendError {
            kind,
            message: message.into(),
            field: None,
        }
    }

    /// A refusal of one field of the request.
    pub fn of_field(field: impl Into<String>, message: impl Into<String>) -> BackendError {
        BackendError {
            field: Some(field.into()),
            ..BackendError::new(BackendErrorKind::InvalidInput, message)
        }
    }
}

/// The account behind the session cookie, with its session (for the CSRF rule,
/// `fengqiao_accounts::secret::check_csrf`).
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub account: Account,
    pub session: Session,
}

/// A new session: the secrets are handed to the browser once, in cookies.
#[derive(Clone)]
pub struct ConsoleSignIn {
    pub account: Account,
    pub session_secret: String,
    pub csrf_token: String,
}

impl std::fmt::Debug for ConsoleSignIn {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConsoleSignIn")
            .field("login", &self.account.login)
            .finish_non_exhaustive()
    }
}

/// Which cases a list shows: the 台账's filters (kept in the URL) and the 工作台's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseQuery {
    pub status: Option<Status>,
    pub category: Option<Category>,
    /// Only cases whose worst warning is this grade.
    pub grade: Option<WarningGrade>,
    /// Only cases with any warning (due soon or overdue).
    pub warned_only: bool,
    /// Only cases this office holds.
    pub held_here: bool,
    /// Only cases registered on or after this day (China time).
    pub registered_from: Option<chrono::NaiveDate>,
    /// Only cases registered on or before this day (China time).
    pub registered_to: Option<chrono::NaiveDate>,
    /// Only cases this office holds now.
    pub holder: Option<NodeId>,
    /// Only cases located in this region (a child office's code: its villages too).
    pub region: Option<String>,
    /// A case number, or part of one, or a petitioner's name: a search by person goes to the
    /// access log.
    pub search: String,
    /// 0-based page of `page_size` rows.
    pub page: usize,
    pub page_size: usize,
}

/// One page of a case list: its rows (with the registered petitioners, for the masked columns)
/// and how many cases match in all.
#[derive(Debug, Clone, Default)]
pub struct CasePage {
    pub rows: Vec<CaseRow>,
    pub total: usize,
}

#[derive(Debug, Clone)]
pub struct CaseRow {
    pub item: CaseListItem,
    pub petitioners: Vec<Petitioner>,
    /// The request in the petitioner's words (the list shows its beginning).
    pub summary: String,
}

/// Which way a federation link goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRelation {
    Parent,
    Child,
}

/// One federation link as the link banner shows it (what `GET /api/peers` reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    pub name: String,
    pub relation: LinkRelation,
    pub connected: bool,
    /// Since when it is connected, or when it was last connected.
    pub since: Option<DateTime<Utc>>,
    /// Changed cases waiting to go to the peer.
    pub pending_out: u64,
    /// Changed cases the peer holds for us.
    pub pending_in: u64,
    /// What 网络状态 shows beyond the banner.
    pub detail: LinkDetail,
}

/// A link's health beyond the banner's words, as `fengqiao peers` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkDetail {
    pub node_id: NodeId,
    pub last_successful_sync: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The peer's changes this node refused on receipt.
    pub quarantined: u64,
    /// This node's changes the peer refused.
    pub refused_by_peer: u64,
    /// How far the peer's clock is ahead of this node's (negative: behind).
    pub clock_offset_ms: Option<i64>,
}

/// The cases a figure of 统计分析 counts: registered in `[from, to)` (open bounds when absent),
/// of one category or all, with or without the cases a ledger import registered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsPeriod {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub category: Option<Category>,
    pub imported: ImportedCases,
}

/// An office of the federation, as a select list offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    pub node_id: NodeId,
    pub name: String,
    /// Its region code (a child's: the 台账 filters cases located below it).
    pub region_code: String,
}

/// The offices next to this one in the federation's roster: where a case is escalated (上报)
/// and assigned (交办) to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Neighbours {
    pub parent: Option<Office>,
    pub children: Vec<Office>,
}

/// A child office an admin admits from 网络: its node ID (as its `fengqiao init` printed it),
/// name and region code, as `fengqiao admit` takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewChildOffice {
    pub node_id: String,
    pub name: String,
    pub region_code: String,
}

/// Everything the console's pages ask of the node.
pub trait ConsoleBackend: Send + Sync + 'static {
    /// The office this node serves.
    fn office(&self) -> NodeInfo;

    /// The name of an office by node ID, as the roster knows it (None when unknown).
    fn office_name(&self, node: &NodeId) -> Option<String>;

    /// Sign in with a password (throttled per login and per source address, as the API's
    /// sign-in); `headers` and `extensions` are the request's, for the client's address.
    fn sign_in<'a>(
        &'a self,
        login: String,
        password: String,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> BackendFuture<'a, ConsoleSignIn>;

    /// The account behind a session cookie's secret.
    fn session<'a>(&'a self, session_secret: String) -> BackendFuture<'a, ConsoleUser>;

    /// End a session.
    fn sign_out<'a>(&'a self, session_secret: String) -> BackendFuture<'a, ()>;

    /// The `Set-Cookie` value for a console cookie (the session cookie is the API's own, with
    /// the same attributes: HttpOnly, SameSite=Strict, Secure over TLS or behind a proxy).
    /// `max_age` `Some(0)` clears it.
    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String;

    /// One page of the cases `user` may read, filtered, most urgent first.
    fn cases<'a>(&'a self, user: &'a ConsoleUser, query: CaseQuery) -> BackendFuture<'a, CasePage>;

    /// One case as `user` reads it (the read goes to the node's access log).
    fn case<'a>(&'a self, user: &'a ConsoleUser, number: String) -> BackendFuture<'a, CaseView>;

    /// The office's measures for each of `periods`, in order, as `fengqiao stats` counts them
    /// (the role table's `read_stats` row).
    fn measures<'a>(
        &'a self,
        user: &'a ConsoleUser,
        periods: Vec<StatsPeriod>,
    ) -> BackendFuture<'a, Vec<Measures>>;

    /// The measures child by child, each child's link health beside it, as `fengqiao stats
    /// --by-child` counts them (the role table's `read_stats_by_child` row).
    fn measures_by_child<'a>(
        &'a self,
        user: &'a ConsoleUser,
        period: StatsPeriod,
    ) -> BackendFuture<'a, StatsBreakdown>;

    /// The 台账 matching `query`'s filters (all pages) as an Excel workbook in the columns the
    /// ledger import reads; identifiers masked unless `full` (the role table's
    /// `export_personal_data` row). The export goes to the access log.
    fn export_ledger<'a>(
        &'a self,
        user: &'a ConsoleUser,
        query: CaseQuery,
        full: bool,
    ) -> BackendFuture<'a, Vec<u8>>;

    /// The directives on the cases this node holds, crossed-off ones too unless `open_only`, as
    /// `GET /api/directives` lists them (the role table's `read_cases` row).
    fn directives<'a>(
        &'a self,
        user: &'a ConsoleUser,
        open_only: bool,
    ) -> BackendFuture<'a, Vec<DirectiveListItem>>;

    /// A case's audit trail as `GET /api/audit/cases/{number}` gives it (the role table's
    /// `read_audit_log` row; the read goes to the access log).
    fn audit_log<'a>(
        &'a self,
        user: &'a ConsoleUser,
        number: String,
    ) -> BackendFuture<'a, AuditLog>;

    /// Every signature in the store checked, as `fengqiao audit verify` does (the role table's
    /// `verify_audit` row).
    fn audit_verify<'a>(&'a self, user: &'a ConsoleUser) -> BackendFuture<'a, AuditReport>;

    /// The quarantine after record `after`, oldest first, a page at a time (the role table's
    /// `read_quarantine` row).
    fn quarantine<'a>(
        &'a self,
        user: &'a ConsoleUser,
        after: u64,
    ) -> BackendFuture<'a, QuarantineListing>;

    /// The federation as this node knows it (None when the node runs none), for `user` (the
    /// role table's `read_federation` row).
    fn roster<'a>(&'a self, user: &'a ConsoleUser) -> BackendFuture<'a, Option<RosterView>>;
    /// Register a case as `POST /api/cases` does (the same principal, the same checks); a
    /// refused field comes back with [`BackendError::field`].
    fn register<'a>(
        &'a self,
        user: &'a ConsoleUser,
        request: RegisterCase,
    ) -> BackendFuture<'a, CaseView>;

    /// Append an event as `POST /api/cases/{number}/events` does.
    fn append<'a>(
        &'a self,
        user: &'a ConsoleUser,
        number: String,
        request: AppendEvent,
    ) -> BackendFuture<'a, CaseView>;

    /// For each candidate event (in order), whether `user` may append it to the case now: the
    /// node's role table, authority table and lifecycle, asked without writing anything.
    fn permitted<'a>(
        &'a self,
        user: &'a ConsoleUser,
        number: String,
        candidates: Vec<EventKind>,
    ) -> BackendFuture<'a, Vec<bool>>;

    /// The node's accounts (the role table's `manage_accounts` row).
    fn accounts<'a>(&'a self, user: &'a ConsoleUser) -> BackendFuture<'a, Vec<AccountView>>;

    /// Add an account; without a password in the request the node makes a one-time password,
    /// answered this once (`manage_accounts`).
    fn add_account<'a>(
        &'a self,
        user: &'a ConsoleUser,
        request: NewAccount,
    ) -> BackendFuture<'a, AccountWithPassword>;

    /// Disable an account: it signs in no more, its sessions and tokens end (`manage_accounts`).
    fn disable_account<'a>(
        &'a self,
        user: &'a ConsoleUser,
        login: String,
    ) -> BackendFuture<'a, AccountView>;

    /// Give an account a new one-time password, answered this once; its sessions end
    /// (`manage_accounts`).
    fn reset_password<'a>(
        &'a self,
        user: &'a ConsoleUser,
        login: String,
    ) -> BackendFuture<'a, AccountWithPassword>;

    /// The signed-in person changes their own password, giving the current one (checked and
    /// throttled as a sign-in is); every session of the account ends, this one included.
    /// `headers` and `extensions` are the request's, for the client's address.
    fn change_own_password<'a>(
        &'a self,
        user: &'a ConsoleUser,
        current: String,
        new: String,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> BackendFuture<'a, ()>;

    /// Admit a child office as `fengqiao admit` does (the same checks, the config saved) and
    /// apply it to the running federation at once (the role table's `reload_federation` row);
    /// answers what was done, in words.
    fn admit_child<'a>(
        &'a self,
        user: &'a ConsoleUser,
        child: NewChildOffice,
    ) -> BackendFuture<'a, String>;

    /// Revoke an admitted child office as `fengqiao revoke` does and apply it at once
    /// (`reload_federation`); answers what was done, in words.
    fn revoke_child<'a>(
        &'a self,
        user: &'a ConsoleUser,
        node_id: String,
    ) -> BackendFuture<'a, String>;

    /// This office's parent and children in the federation (none when it runs alone).
    fn neighbours(&self) -> Neighbours;

    /// The federation's links (empty when the node runs none).
    fn links<'a>(&'a self) -> BackendFuture<'a, Vec<LinkStatus>>;

    /// The time pages are judged at (deadlines, warnings): the backend's clock.
    fn now(&self) -> DateTime<Utc>;
}
