//! The HTTP JSON API (`/api/...`) and its OpenAPI document, served on 127.0.0.1 by default.
//!
//! A thin shell over [`crate::service::Node`]: it parses and checks the request, runs the node's
//! (blocking) work on a blocking thread, and turns every failure into a JSON [`ApiError`].
//! Routes are declared once, in [`ROUTES`]; the router and the OpenAPI document are both built
//! from that table.

mod accounts;
pub mod auth;
mod bare_refusals;
pub mod console_backend;
pub(crate) mod ledger_export;
mod metrics;
mod openapi;
mod supervision;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, Router};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use fengqiao_case::deadlines::china_offset;
use fengqiao_case::model::audit::{AuditLog, AuditReport, QuarantineListing};
use fengqiao_case::model::policy::{IssuePolicy, PolicyVersionView, PolicyView};
use fengqiao_case::model::roster::{FederationReload, RosterView};
use fengqiao_case::model::stats::StatsBreakdown;
use fengqiao_case::{
    ApiError, AppendEvent, CaseListItem, CaseView, Category, DirectiveListItem, ImportBatch,
    ImportRowReport, ImportedCases, Measures, NodeInfo, NodeUnhealthy, RegisterCase, Status,
    WarningGrade,
};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use self::auth::Principal;
pub use self::openapi::{
    BodySpec, HttpMethod, ParameterLocation, ParameterSpec, ParameterType, RouteSpec, SchemaOf,
    schema_of,
};
use crate::federation::{Federation, FederationConfig, FederationStatus, PeerView};
use crate::service::{ListFilter, Node, ServiceError, StatsQuery};

/// An import batch is validated and written as one; 500 ledger rows need more than axum's 2 MiB.
const IMPORT_BODY_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// How long a server told to stop waits for what is still running (requests, the escalation
/// task, the federation, closing the store) before it gives up on them and returns anyway: a
/// request stuck on a failing disk must not keep the node from stopping. Writes acknowledged
/// before are durable; a write still running is not acknowledged.
pub const STOP_WAIT: Duration = Duration::from_secs(10);

/// Every operation of the API; each has exactly one handler and one entry in [`ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Health,
    OpenApi,
    RegisterCase,
    ListCases,
    GetCase,
    AppendEvent,
    ListDirectives,
    Stats,
    StatsByChild,
    Import,
    Peers,
    Roster,
    ReloadFederation,
    Policy,
    IssuePolicy,
    AuditLog,
    AuditVerify,
    Quarantine,
    SignIn,
    SignOut,
    WhoAmI,
    ListUsers,
    AddUser,
    DisableUser,
    ResetPassword,
    SetRoles,
    ListTokens,
    CreateToken,
    RevokeToken,
    Metrics,
    ExportLedger,
    Backup,
}

impl Operation {
    /// Every operation, for the test that each is routed.
    pub const ALL: [Operation; 32] = [
        Operation::Health,
        Operation::OpenApi,
        Operation::RegisterCase,
        Operation::ListCases,
        Operation::GetCase,
        Operation::AppendEvent,
        Operation::ListDirectives,
        Operation::Stats,
        Operation::StatsByChild,
        Operation::Import,
        Operation::Peers,
        Operation::Roster,
        Operation::ReloadFederation,
        Operation::Policy,
        Operation::IssuePolicy,
        Operation::AuditLog,
        Operation::AuditVerify,
        Operation::Quarantine,
        Operation::SignIn,
        Operation::SignOut,
        Operation::WhoAmI,
        Operation::ListUsers,
        Operation::AddUser,
        Operation::DisableUser,
        Operation::ResetPassword,
        Operation::SetRoles,
        Operation::ListTokens,
        Operation::CreateToken,
        Operation::RevokeToken,
        Operation::Metrics,
        Operation::ExportLedger,
        Operation::Backup,
    ];

    /// The OpenAPI `operationId`.
    pub fn id(self) -> &'static str {
        match self {
            Operation::Health => "health",
            Operation::OpenApi => "openapi",
            Operation::RegisterCase => "register_case",
            Operation::ListCases => "list_cases",
            Operation::GetCase => "get_case",
            Operation::AppendEvent => "append_event",
            Operation::ListDirectives => "list_directives",
            Operation::Stats => "stats",
            Operation::StatsByChild => "stats_by_child",
            Operation::Import => "import",
            Operation::Peers => "peers",
            Operation::Roster => "roster",
            Operation::ReloadFederation => "reload_federation",
            Operation::Policy => "policy",
            Operation::IssuePolicy => "issue_policy",
            Operation::AuditLog => "audit_log",
            Operation::AuditVerify => "audit_verify",
            Operation::Quarantine => "quarantine",
            Operation::SignIn => "sign_in",
            Operation::SignOut => "sign_out",
            Operation::WhoAmI => "who_am_i",
            Operation::ListUsers => "list_users",
            Operation::AddUser => "add_user",
            Operation::DisableUser => "disable_user",
            Operation::ResetPassword => "reset_password",
            Operation::SetRoles => "set_roles",
            Operation::ListTokens => "list_tokens",
            Operation::CreateToken => "create_token",
            Operation::RevokeToken => "revoke_token",
            Operation::Metrics => "metrics",
            Operation::ExportLedger => "export_ledger",
            Operation::Backup => "backup",
        }
    }

    /// This operation's entry in [`ROUTES`] or the account routes.
    pub fn route(self) -> &'static RouteSpec {
        // Every operation is in the table (a test holds it to that); the fallback keeps a
        // mistake from becoming a panic in a request.
        all_routes()
            .find(|route| route.operation == self)
            .unwrap_or(&ROUTES[0])
    }

    fn method_router(self, filter: MethodFilter) -> MethodRouter<ApiState> {
        match self {
            Operation::Health => on(filter, health),
            Operation::OpenApi => on(filter, openapi_document),
            Operation::RegisterCase => on(filter, register_case),
            Operation::ListCases => on(filter, list_cases),
            Operation::GetCase => on(filter, get_case),
            Operation::AppendEvent => on(filter, append_event),
            Operation::ListDirectives => on(filter, list_directives),
            Operation::Stats => on(filter, stats),
            Operation::StatsByChild => on(filter, stats_by_child),
            Operation::Import => {
                on(filter, import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT_BYTES))
            }
            Operation::Peers => on(filter, peers),
            Operation::Roster => on(filter, roster),
            Operation::ReloadFederation => on(filter, reload_federation),
            Operation::Policy => on(filter, policy),
            Operation::IssuePolicy => on(filter, issue_policy),
            Operation::AuditLog => on(filter, audit_log),
            Operation::AuditVerify => on(filter, audit_verify),
            Operation::Quarantine => on(filter, quarantine),
            Operation::Metrics => on(filter, metrics::metrics),
            Operation::ExportLedger => on(filter, export_ledger),
            Operation::Backup => on(filter, backup),
            Operation::SignIn
            | Operation::SignOut
            | Operation::WhoAmI
            | Operation::ListUsers
            | Operation::AddUser
            | Operation::DisableUser
            | Operation::ResetPassword
            | Operation::SetRoles
            | Operation::ListTokens
            | Operation::CreateToken
            | Operation::RevokeToken => accounts::method_router(self, filter),
        }
    }
}

const CASE_NUMBER: ParameterSpec =
    ParameterSpec::path("number", "case number, e.g. 430702001002-2026-000123");

/// Period and category of `/api/stats` and `/api/stats/children`.
const STATS_PARAMETERS: &[ParameterSpec] = &[
    ParameterSpec::query(
        "from",
        ParameterType::InstantOrDate,
        "start of the period (included)",
    ),
    ParameterSpec::query(
        "to",
        ParameterType::InstantOrDate,
        "end of the period (excluded)",
    ),
    ParameterSpec::query(
        "category",
        ParameterType::OneOf(schema_of::<Category>),
        "only this category",
    ),
    ParameterSpec::query(
        "imported",
        ParameterType::OneOf(schema_of::<ImportedCases>),
        "include (default): count the cases a ledger import registered too; exclude: leave \
         that imported history out",
    ),
];

/// The API: every route, with what the OpenAPI document says about it.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        operation: Operation::Health,
        method: HttpMethod::Get,
        path: "/api/health",
        summary: "node identity and case count",
        description: "Answers as soon as the node serves; used to check that it is up. 503 \
                      (`{\"status\": \"unhealthy\", \"store\": why, \"error\": why}`) while \
                      the node takes no writes: its disk is below the free-space reserve \
                      (storage.min_free_bytes). Healthy again by itself once space is freed.",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<NodeInfo>),
        errors: &[500, 503],
    },
    RouteSpec {
        operation: Operation::OpenApi,
        method: HttpMethod::Get,
        path: "/api/openapi.json",
        summary: "this API's OpenAPI 3.1 document",
        description: "Built from the same route table the node serves.",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<openapi::OpenApiDocument>),
        errors: &[500],
    },
    RouteSpec {
        operation: Operation::RegisterCase,
        method: HttpMethod::Post,
        path: "/api/cases",
        summary: "register a case (登记)",
        description: "Without `number`, the node assigns REGION-YEAR-SEQUENCE for its region and \
                      the year of `registered_at` (default now). A given number must be \
                      well formed, in the node's region, and unused.",
        mutating: true,
        parameters: &[],
        request: Some(BodySpec::One(schema_of::<RegisterCase>)),
        success_status: 201,
        response: BodySpec::One(schema_of::<CaseView>),
        errors: &[400, 409, 413, 415, 422, 500, 503, 507],
    },
    RouteSpec {
        operation: Operation::ListCases,
        method: HttpMethod::Get,
        path: "/api/cases",
        summary: "list cases",
        description: "Case summaries (no personal data) with their warnings; every filter given \
                      must match.",
        mutating: false,
        parameters: &[
            ParameterSpec::query(
                "status",
                ParameterType::OneOf(schema_of::<Status>),
                "lifecycle status, e.g. registered, accepted, replied, closed",
            ),
            ParameterSpec::query("holder", ParameterType::String, "node id of the holder"),
            ParameterSpec::query(
                "category",
                ParameterType::OneOf(schema_of::<Category>),
                "category, e.g. land_requisition, wage_arrears",
            ),
            ParameterSpec::query(
                "region",
                ParameterType::String,
                "region code prefix: a village, or a township for all its villages",
            ),
            ParameterSpec::query(
                "overdue",
                ParameterType::Boolean,
                "true: only cases with a deadline already passed, most urgent first",
            ),
            ParameterSpec::query(
                "limit",
                ParameterType::Count { minimum: 0 },
                "at most this many cases (0: none)",
            ),
        ],
        request: None,
        success_status: 200,
        response: BodySpec::ListOf(schema_of::<CaseListItem>),
        errors: &[400, 500],
    },
    RouteSpec {
        operation: Operation::GetCase,
        method: HttpMethod::Get,
        path: "/api/cases/{number}",
        summary: "one case, with its whole history",
        description: "Holds petitioners' personal data: the read is recorded in the node's \
                      access log with the operator header, if given.",
        mutating: false,
        parameters: &[CASE_NUMBER],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<CaseView>),
        errors: &[400, 404, 500],
    },
    RouteSpec {
        operation: Operation::AppendEvent,
        method: HttpMethod::Post,
        path: "/api/cases/{number}/events",
        summary: "append an event (accept, assign, reply, mediate, …)",
        description: "Checked against the case's lifecycle and the authority table: an event this \
                      node has no authority to make is answered 403, one the case's state does \
                      not allow 409, each with the reason.",
        mutating: true,
        parameters: &[CASE_NUMBER],
        request: Some(BodySpec::One(schema_of::<AppendEvent>)),
        success_status: 200,
        response: BodySpec::One(schema_of::<CaseView>),
        errors: &[400, 403, 404, 409, 413, 415, 422, 500, 503, 507],
    },
    RouteSpec {
        operation: Operation::ListDirectives,
        method: HttpMethod::Get,
        path: "/api/directives",
        summary: "supervision directives (督办单)",
        description: "Every directive on the node's cases, earliest due first.",
        mutating: false,
        parameters: &[ParameterSpec::query(
            "open",
            ParameterType::Boolean,
            "true: only directives not yet crossed off (销号)",
        )],
        request: None,
        success_status: 200,
        response: BodySpec::ListOf(schema_of::<DirectiveListItem>),
        errors: &[400, 500],
    },
    RouteSpec {
        operation: Operation::Stats,
        method: HttpMethod::Get,
        path: "/api/stats",
        summary: "the supervisors' measures for a period",
        description: "Cases registered in [from, to). A date means the start of that day in \
                      China time.",
        mutating: false,
        parameters: STATS_PARAMETERS,
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<Measures>),
        errors: &[400, 500],
    },
    RouteSpec {
        operation: Operation::StatsByChild,
        method: HttpMethod::Get,
        path: "/api/stats/children",
        summary: "the measures for the whole subtree and child by child, with each child's sync \
                  health (fengqiao stats --by-child)",
        description: "The same measures as /api/stats for every case the node holds, then for \
                      each child office (the cases located in its region), and under each child \
                      for each of its children (a county: township, then village). Direct \
                      children carry their link's state: connected, last contact, last \
                      successful sync, changes pending each way, quarantined changes. Answered \
                      from state kept as cases change, not a scan.",
        mutating: false,
        parameters: STATS_PARAMETERS,
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<StatsBreakdown>),
        errors: &[400, 500],
    },
    RouteSpec {
        operation: Operation::Import,
        method: HttpMethod::Post,
        path: "/api/import",
        summary: "import ledger rows, all or nothing",
        description: "Every row is checked with its whole history first. Rows whose number is \
                      already stored are already_present; rows without a number that an earlier \
                      batch registered (the same row key: the row's content and `repeat`) are \
                      already_imported with their case's number; so re-running is safe for \
                      every row. If any row is rejected, or with dry_run, nothing is written; \
                      otherwise the new cases and their row keys are written in one \
                      transaction. Every event made is marked `imported` (import_id, row_key).",
        mutating: true,
        parameters: &[],
        request: Some(BodySpec::One(schema_of::<ImportBatch>)),
        success_status: 200,
        response: BodySpec::ListOf(schema_of::<ImportRowReport>),
        errors: &[400, 409, 413, 415, 422, 500, 503, 507],
    },
    RouteSpec {
        operation: Operation::Peers,
        method: HttpMethod::Get,
        path: "/api/peers",
        summary: "federation links: parent and children (fengqiao peers)",
        description: "Each link's state: connected or not, since when, last successful sync, \
                      last error, own changes pending. Empty when the node has no \
                      [federation] section.",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::ListOf(schema_of::<PeerView>),
        errors: &[400, 500],
    },
    RouteSpec {
        operation: Operation::Roster,
        method: HttpMethod::Get,
        path: "/api/roster",
        summary: "the federation roster: which node is which office (fengqiao roster)",
        description: "The root this node trusts and every office its roster counts as a member, \
                      each with its tier, region and the office that admitted it. Entries are \
                      signed by the admitting office and replicated over every link.",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<RosterView>),
        errors: &[400, 409, 500],
    },
    RouteSpec {
        operation: Operation::ReloadFederation,
        method: HttpMethod::Post,
        path: "/api/federation/reload",
        summary: "apply the [federation] section of fengqiao.toml now",
        description: "Re-reads the node's config: children admitted or revoked (fengqiao admit, \
                      revoke) take effect at once, with their roster entries signed; a changed \
                      parent is reported as needing a restart.",
        mutating: true,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<FederationReload>),
        errors: &[400, 409, 500],
    },
    RouteSpec {
        operation: Operation::Policy,
        method: HttpMethod::Get,
        path: "/api/policy",
        summary: "the federation's policy versions: limits, calendar, warnings (fengqiao policy show)",
        description: "Every policy version this node holds (0 is the built-in one: the \
                      regulation's limits and the State Council calendar shipped with the \
                      software; higher versions are issued by the county and replicated down \
                      every link) and the version new cases are registered under. A case derives \
                      with the version its register event names, for ever.",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<fengqiao_case::model::policy::PolicyView>),
        errors: &[400, 500],
    },
    RouteSpec {
        operation: Operation::IssuePolicy,
        method: HttpMethod::Post,
        path: "/api/policy",
        summary: "issue the next policy version (the county, the federation's root, only)",
        description: "Numbers the version one above the last, signs it with the node's key and \
                      sends it down every link; cases registered from then on derive with it, \
                      cases registered before keep theirs. The shipped State Council calendar is \
                      always included; the body's holidays and working weekends add to it. 409 on \
                      a node that is not the root or runs no federation.",
        mutating: true,
        parameters: &[],
        request: Some(BodySpec::One(
            schema_of::<fengqiao_case::model::policy::IssuePolicy>,
        )),
        success_status: 201,
        response: BodySpec::One(schema_of::<fengqiao_case::model::policy::PolicyVersionView>),
        errors: &[400, 409, 500],
    },
    RouteSpec {
        operation: Operation::AuditLog,
        method: HttpMethod::Get,
        path: "/api/audit/cases/{number}",
        summary: "a case's audit trail: who did what, from which node, when, signature status",
        description: "Every event in hybrid-clock order with its node (and office name when \
                      known), operator, times and signature status (valid, unsigned, invalid), \
                      without personal data. A read of the case: recorded in the node's access \
                      log with the operator header, if given.",
        mutating: false,
        parameters: &[CASE_NUMBER],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<AuditLog>),
        errors: &[400, 404, 500],
    },
    RouteSpec {
        operation: Operation::AuditVerify,
        method: HttpMethod::Get,
        path: "/api/audit/verify",
        summary: "check every signature and event of every case in the node's store",
        description: "Answers 200 with the report whatever it found: failures lists each event \
                      whose signature does not verify or is missing (schema-1 documents), \
                      repeated event ids, and cases whose first event is not their \
                      registration. Reads every case: slow on a large store.",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<AuditReport>),
        errors: &[400, 500],
    },
    RouteSpec {
        operation: Operation::Quarantine,
        method: HttpMethod::Get,
        path: "/api/quarantine",
        summary: "changes received from peers and refused (fengqiao quarantine)",
        description: "The quarantine log, oldest first: each refused change's peer, case, change \
                      hash and size, and why it was refused. The changes' bytes stay in the \
                      store.",
        mutating: false,
        parameters: &[
            ParameterSpec::query(
                "after",
                ParameterType::Count { minimum: 0 },
                "only records with a greater id (the previous page's next_after)",
            ),
            ParameterSpec::query(
                "limit",
                ParameterType::Count { minimum: 1 },
                "at most this many records (default 100; more than 1000 lists 1000)",
            ),
        ],
        request: None,
        success_status: 200,
        response: BodySpec::One(schema_of::<QuarantineListing>),
        errors: &[400, 500],
    },
    RouteSpec {
        operation: Operation::Metrics,
        method: HttpMethod::Get,
        path: "/metrics",
        summary: "Prometheus metrics",
        description: "The node's metrics in Prometheus' text format (version 0.0.4): cases by \
                      status and warning grade, open and overdue directives, each federation \
                      link (connected, seconds since contact and last sync, pending cases each \
                      way, quarantined changes, frames and bytes), HTTP requests by route and \
                      status with a latency histogram, the store's size on disk and the build. \
                      Without a credential only from loopback; from elsewhere a bearer token \
                      (or session) of an account whose role may read metrics (supervisor, \
                      admin).",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::Text(
            "Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`)",
        ),
        errors: &[500],
    },
    RouteSpec {
        operation: Operation::ExportLedger,
        method: HttpMethod::Get,
        path: "/api/export/ledger",
        summary: "the 台账 as an Excel workbook or CSV (fengqiao export; the console's download)",
        description: "Every case matching the filters (the console's 台账 filters), most urgent \
                      first, one row each in the columns `fengqiao import` reads, headed by their \
                      Chinese names: an export imports elsewhere as the same cases. Identifiers \
                      (ID numbers, phones) are masked unless full=true, which needs a role that \
                      may export personal data. Written as the cases are read and sent as a \
                      file; the export (who, how many cases, format, full or not) is recorded \
                      in the node's access log.",
        mutating: false,
        parameters: &[
            ParameterSpec::query(
                "format",
                ParameterType::String,
                "xlsx (default) or csv (UTF-8 with a byte-order mark)",
            ),
            ParameterSpec::query(
                "status",
                ParameterType::OneOf(schema_of::<Status>),
                "lifecycle status",
            ),
            ParameterSpec::query(
                "category",
                ParameterType::OneOf(schema_of::<Category>),
                "category",
            ),
            ParameterSpec::query(
                "grade",
                ParameterType::OneOf(schema_of::<WarningGrade>),
                "only cases whose worst warning is this grade",
            ),
            ParameterSpec::query(
                "from",
                ParameterType::String,
                "registered on or after this day (YYYY-MM-DD, China time)",
            ),
            ParameterSpec::query(
                "to",
                ParameterType::String,
                "registered on or before this day (YYYY-MM-DD, China time)",
            ),
            ParameterSpec::query("holder", ParameterType::String, "node id of the holder"),
            ParameterSpec::query(
                "region",
                ParameterType::String,
                "region code prefix: a village, or a township for all its villages",
            ),
            ParameterSpec::query(
                "q",
                ParameterType::String,
                "a case number (or part of one) or a petitioner's name",
            ),
            ParameterSpec::query(
                "full",
                ParameterType::Boolean,
                "true: ID numbers and phones whole (role: export personal data)",
            ),
        ],
        request: None,
        success_status: 200,
        response: BodySpec::File(
            "the ledger file: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet \
             or text/csv",
        ),
        errors: &[400, 403, 500],
    },
    RouteSpec {
        operation: Operation::Backup,
        method: HttpMethod::Get,
        path: "/api/backup",
        summary: "a backup of the whole node, streamed as it is taken (fengqiao backup)",
        description: "A consistent snapshot while writes go on: every case as it was at one \
                      position of the node's change feed (named in the file's header), the \
                      node's config, key, CLI token, roster, policies, accounts, counters and \
                      logs; gzip-compressed, with a SHA-256 of the whole file at its end. The \
                      file's layout is versioned (`fengqiao_case::model::backup`); `fengqiao \
                      restore FILE DIR` checks and restores it. A stream cut short has no valid \
                      checksum. Admins only; one backup at a time (409 while one runs).",
        mutating: false,
        parameters: &[],
        request: None,
        success_status: 200,
        response: BodySpec::File("a Fengqiao backup file (application/octet-stream)"),
        errors: &[400, 409, 500],
    },
];

/// What every handler shares.
#[derive(Debug, Clone)]
struct ApiState {
    node: Arc<Node>,
    /// The running federation, if the node has one: its links and its change notifier.
    federation: Option<FederationStatus>,
    /// Serialized once: the document never changes while the node runs.
    openapi: Bytes,
    /// The HTTP request counters `/metrics` reports (`api/metrics.rs` counts them).
    metrics: Arc<crate::metrics::HttpMetrics>,
}

/// Every route: [`ROUTES`] and the account routes (`api/accounts.rs`).
pub fn all_routes() -> impl Iterator<Item = &'static RouteSpec> {
    ROUTES.iter().chain(accounts::ACCOUNT_ROUTES)
}

/// The OpenAPI 3.1 document of every route.
pub fn openapi_json() -> serde_json::Value {
    openapi::document(&all_routes().copied().collect::<Vec<_>>())
}

/// The API's router over an open node.
pub fn router(node: Arc<Node>) -> anyhow::Result<Router> {
    federated_router(node, None)
}

/// The API's router over an open node and its running federation, which hears of every change
/// made through the API at once.
pub fn federated_router(
    node: Arc<Node>,
    federation: Option<FederationStatus>,
) -> anyhow::Result<Router> {
    let openapi =
        serde_json::to_vec(&openapi_json()).context("cannot encode the OpenAPI document")?;
    // The web console (工作台) at `/`, beside the API: its own routes, asking the same service.
    let console = fengqiao_console::router(Arc::new(console_backend::NodeConsole::new(
        Arc::clone(&node),
        federation.clone(),
    )));
    let http_metrics = Arc::new(crate::metrics::HttpMetrics::default());
    let state = ApiState {
        node,
        federation,
        openapi: Bytes::from(openapi),
        metrics: Arc::clone(&http_metrics),
    };
    let mut router = Router::new();
    let mut methods_of_path: Vec<(&str, MethodRouter<ApiState>)> = Vec::new();
    for route in all_routes() {
        let filter = match route.method {
            HttpMethod::Get => MethodFilter::GET,
            HttpMethod::Post => MethodFilter::POST,
            HttpMethod::Delete => MethodFilter::DELETE,
        };
        let method_router = route.operation.method_router(filter);
        // One path may be served for several methods (`/api/session`): merged, then routed once.
        match methods_of_path
            .iter_mut()
            .find(|(path, _)| *path == route.path)
        {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(method_router),
            None => methods_of_path.push((route.path, method_router)),
        }
    }
    for (path, method_router) in methods_of_path {
        router = router.route(path, method_router);
    }
    Ok(router
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn(refuse_long_uris))
        .layer(middleware::from_fn(trace_requests))
        .with_state(state)
        .merge(console)
        // Outermost, over the console's routes too: every answer is counted, refusals included.
        .layer(middleware::from_fn_with_state(
            http_metrics,
            metrics::count_requests,
        ))
        .layer(compression()))
}

/// The content types compressed when the client accepts gzip or brotli: the console's pages,
/// stylesheet and scripts and the API's JSON. Everything else goes as it is: a backup
/// (`application/octet-stream`) is gzip already, the xlsx export is a zip, and the CSV export
/// and metrics are streamed or scraped by tools that gain little from it.
const COMPRESSED_CONTENT_TYPES: [&str; 4] = [
    "text/html",
    "text/css",
    "text/javascript",
    "application/json",
];

/// Whether an answer of `headers` is worth compressing: one of [`COMPRESSED_CONTENT_TYPES`].
/// (The layer itself leaves alone an answer already encoded, a range, and one the client did
/// not ask to be compressed; `SizeAbove` spares the tiny ones.)
fn compressible(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|content_type| {
            let essence = content_type.split(';').next().unwrap_or_default().trim();
            COMPRESSED_CONTENT_TYPES
                .iter()
                .any(|compressed| essence.eq_ignore_ascii_case(compressed))
        })
}

/// The compression layer over every answer: gzip or brotli, as the client's `Accept-Encoding`
/// prefers, for [`compressible`] answers above a few bytes.
fn compression()
-> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{Predicate, SizeAbove};
    let by_type = |_: StatusCode,
                   _: axum::http::Version,
                   headers: &axum::http::HeaderMap,
                   _: &axum::http::Extensions| compressible(headers);
    tower_http::compression::CompressionLayer::new()
        .gzip(true)
        .br(true)
        .compress_when(SizeAbove::default().and(by_type))
}

/// Open the node in `dir` and serve its API until `shutdown` completes. `listen` overrides the
/// configured address. Writes the bound address to `api.addr` in the node directory once
/// listening, so callers using port 0 can find it. If the config has a `[federation]` section,
/// the federation runs beside the API (`quic_listen` overrides its address).
pub async fn serve(
    dir: &Path,
    listen: Option<SocketAddr>,
    quic_listen: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut server = BoundServer::bind(dir, listen).await?;
    server.start_federation(quic_listen).await?;
    server.run(shutdown).await
}

/// A node opened and its API socket bound, not yet serving: lets a caller learn the address
/// (port 0) before it starts.
#[derive(Debug)]
pub struct BoundServer {
    node: Arc<Node>,
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    address_file: PathBuf,
    federation: Option<Federation>,
}

impl BoundServer {
    /// Open the node, bind the address (`listen`, else the configured one) and write `api.addr`.
    pub async fn bind(dir: &Path, listen: Option<SocketAddr>) -> anyhow::Result<BoundServer> {
        let node_dir = dir.to_path_buf();
        // Opening sled recovers its log: disk work, off the async threads.
        let node = tokio::task::spawn_blocking(move || Node::open(&node_dir))
            .await
            .context("opening the node stopped unexpectedly")??;
        BoundServer::bind_node(Arc::new(node), listen).await
    }

    /// The node this server serves.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Bind the API of an already open node (`listen`, else the configured address) and write
    /// `api.addr`.
    pub async fn bind_node(
        node: Arc<Node>,
        listen: Option<SocketAddr>,
    ) -> anyhow::Result<BoundServer> {
        let wanted = listen.unwrap_or(node.config().http.listen);
        let http = &node.config().http;
        tls::check_listen_address(http, wanted)?;
        if let (Some(cert), Some(key)) = (&http.tls_cert, &http.tls_key) {
            // Read now, so a wrong path stops the start with its reason.
            tls::acceptor(&node.dir().resolve(cert), &node.dir().resolve(key))?;
        }
        let listener = tokio::net::TcpListener::bind(wanted)
            .await
            .with_context(|| {
                format!("cannot listen on {wanted}: is another node or program using that address?")
            })?;
        let address = listener
            .local_addr()
            .context("cannot read the address the API listens on")?;
        let address_file = node.dir().api_address_path();
        write_address_file(&address_file, address)?;
        // The statistics count every stored summary once (~0.8 s at 100,000 cases): done now,
        // beside serving, so that the first `stats` finds them counted; it waits otherwise.
        let counting = Arc::clone(&node);
        tokio::task::spawn_blocking(move || {
            if let Err(error) = counting.prepare_stats() {
                tracing::warn!(%error, "cannot count the stored cases for stats yet; the first stats query will try again");
            }
        });
        // The console (工作台) answers at `/` of the same address: the URL people open.
        let scheme = if node.config().http.serves_tls() {
            "https"
        } else {
            "http"
        };
        tracing::info!(
            %address,
            node_id = node.node_id(),
            name = %node.config().node.name,
            console = %format!("{scheme}://{address}/"),
            "api listening"
        );
        Ok(BoundServer {
            node,
            listener,
            address,
            address_file,
            federation: None,
        })
    }

    /// Start the federation beside the API if the node's config has a `[federation]` section,
    /// and write its bound QUIC address to `quic.addr`. `quic_listen` overrides the configured
    /// address. Returns the bound address, if any.
    pub async fn start_federation(
        &mut self,
        quic_listen: Option<SocketAddr>,
    ) -> anyhow::Result<Option<SocketAddr>> {
        let Some(section) = self.node.config().federation.clone() else {
            return Ok(None);
        };
        let config = FederationConfig::from_section(&section, quic_listen);
        let federation = Federation::start(Arc::clone(&self.node), config).await?;
        let quic_address = federation.local_address();
        write_address_file(&self.node.dir().quic_address_path(), quic_address)?;
        tracing::info!(
            address = %quic_address,
            parent = section.parent.as_ref().map(|parent| parent.node_id.as_str()),
            children = section.children.len(),
            "federation listening"
        );
        self.federation = Some(federation);
        Ok(Some(quic_address))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serve until `shutdown` completes, let running requests finish, then close the node; all
    /// of that within [`STOP_WAIT`] of `shutdown`, or it gives up on what is left and fails.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (signalled, signal_seen) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            let _ = signalled.send(());
        };
        let address_files = [
            self.address_file.clone(),
            self.node.dir().quic_address_path(),
        ];
        match finish_within(STOP_WAIT, signal_seen, self.serve_then_close(shutdown)).await {
            Some(served) => served,
            None => {
                for path in &address_files {
                    let _ = std::fs::remove_file(path);
                }
                tracing::error!(
                    wait = ?STOP_WAIT,
                    "requests were still running when the node had to stop (a disk that does \
                     not answer?); they are abandoned, and none of them was acknowledged"
                );
                anyhow::bail!(
                    "the node did not stop cleanly within {STOP_WAIT:?}: requests still waiting \
                     on the store were abandoned (see the log)"
                )
            }
        }
    }

    async fn serve_then_close(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let BoundServer {
            node,
            listener,
            address,
            address_file,
            federation,
        } = self;
        let status = federation.as_ref().map(Federation::status);
        let app = federated_router(Arc::clone(&node), status)?;
        let (stop_background_work, background_work_stopped) = tokio::sync::watch::channel(false);
        let ledger_rows = tokio::spawn(crate::service::ledger_rows::keep_periodically(
            Arc::clone(&node),
            background_work_stopped.clone(),
        ));
        let escalation = tokio::spawn(crate::service::auto_escalation::run_periodically(
            Arc::clone(&node),
            background_work_stopped,
        ));
        // A store an earlier build wrote gains the petitioners' names (its name index) beside
        // serving. It stops between batches once the server stops, so it never holds the
        // store open past the stop wait; the next start resumes it.
        let migration_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let migration = {
            let node = Arc::clone(&node);
            let stop = Arc::clone(&migration_stop);
            tokio::task::spawn_blocking(move || {
                let stop_requested = || stop.load(std::sync::atomic::Ordering::Relaxed);
                if let Err(error) = node.warm_store_indexes(&stop_requested) {
                    tracing::warn!(%error, "cannot read the case indexes into the cache; the first listings read them from disk");
                }
                if let Err(error) = node.complete_store_migrations(&stop_requested) {
                    tracing::warn!(%error, "cannot finish the store's names migration; searches by name read the cases meanwhile, and the next start resumes it");
                }
            })
        };
        // The peer's address feeds the sign-in throttle.
        let http = &node.config().http;
        let served = match (&http.tls_cert, &http.tls_key) {
            (Some(cert), Some(key)) => {
                let acceptor = tls::acceptor(&node.dir().resolve(cert), &node.dir().resolve(key))?;
                let listener =
                    tls::TlsListener::new(listener, acceptor).context("cannot serve HTTPS")?;
                let listener = bare_refusals::JsonRefusalListener(listener);
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<tls::PeerAddress>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
            _ => {
                axum::serve(
                    bare_refusals::JsonRefusalListener(listener),
                    app.into_make_service_with_connect_info::<tls::PeerAddress>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        }
        .with_context(|| format!("the API server on {address} failed"));
        let _ = stop_background_work.send(true);
        if let Err(error) = escalation.await {
            tracing::warn!(%error, "the automatic escalation task ended abnormally");
        }
        if let Err(error) = ledger_rows.await {
            tracing::warn!(%error, "the ledger rows' keeper ended abnormally");
        }
        migration_stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Err(error) = migration.await {
            tracing::warn!(%error, "the store's names migration ended abnormally");
        }
        // A stale address would send clients to a port nobody answers on.
        if let Err(error) = std::fs::remove_file(&address_file)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %address_file.display(), %error, "cannot remove the address file");
        }
        if let Some(federation) = federation {
            federation.shutdown().await;
            let quic_address_file = node.dir().quic_address_path();
            if let Err(error) = std::fs::remove_file(&quic_address_file)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(
                    path = %quic_address_file.display(),
                    %error,
                    "cannot remove the quic address file"
                );
            }
            tracing::info!("federation stopped");
        }
        close_node(node).await;
        tracing::info!(%address, "api stopped");
        served
    }
}

/// Runs `work` to its end, or, once `signal_seen` fires (or its sender is gone), for at most
/// `bound` more; `None` if it had not finished by then (it is dropped).
async fn finish_within<T>(
    bound: Duration,
    signal_seen: tokio::sync::oneshot::Receiver<()>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    tokio::select! {
        finished = &mut work => return Some(finished),
        _ = signal_seen => {}
    }
    tokio::time::timeout(bound, work).await.ok()
}

/// Drop the node (and with it the store and the directory lock) once no request holds it. A
/// client that hung up mid-request leaves its blocking work running with a reference; `run`
/// bounds the wait.
async fn close_node(mut node: Arc<Node>) {
    loop {
        match Arc::try_unwrap(node) {
            Ok(node) => {
                let dropped = tokio::task::spawn_blocking(move || drop(node)).await;
                if dropped.is_err() {
                    tracing::error!("closing the store failed");
                }
                return;
            }
            Err(shared) => {
                node = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Write the address to a temporary file and rename it, so a reader never sees half of it.
fn write_address_file(path: &Path, address: SocketAddr) -> anyhow::Result<()> {
    let temporary = path.with_extension("addr.tmp");
    std::fs::write(&temporary, format!("{address}\n"))
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A failed request: its status and the message of its [`ApiError`] body.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
}

impl ApiFailure {
    fn bad_request(message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn internal() -> ApiFailure {
        ApiFailure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal error: the node failed to answer; its log says why".to_owned(),
        }
    }
}

impl From<ServiceError> for ApiFailure {
    fn from(error: ServiceError) -> ApiFailure {
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            // Storage and document errors name cases and files, never personal data.
            tracing::error!(%error, "request failed");
        }
        ApiFailure {
            status,
            message: error.to_string(),
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(ApiError {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// axum's rejection texts start with a capital letter; API messages are lowercase.
fn lowercase_first(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_lowercase().chain(characters).collect(),
        None => String::new(),
    }
}

async fn no_such_endpoint(method: Method, uri: Uri) -> ApiFailure {
    ApiFailure {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no such endpoint: {method} {}; GET /api/openapi.json lists them",
            uri.path()
        ),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiFailure {
    let allowed: Vec<&str> = all_routes()
        .filter(|route| route_matches(route.path, uri.path()))
        .map(|route| route.method.http_name())
        .collect();
    ApiFailure {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!(
            "{method} is not allowed on {}; use {}",
            uri.path(),
            allowed.join(" or ")
        ),
    }
}

/// Whether a concrete path fits a route template (`{x}` matches one segment).
fn route_matches(template: &str, path: &str) -> bool {
    let template_segments: Vec<&str> = template.split('/').collect();
    let path_segments: Vec<&str> = path.split('/').collect();
    template_segments.len() == path_segments.len()
        && template_segments
            .iter()
            .zip(&path_segments)
            .all(|(expected, actual)| expected.starts_with('{') || expected == actual)
}

// ---------------------------------------------------------------------------------------------
// Extractors: axum's, with every rejection turned into an ApiError
// ---------------------------------------------------------------------------------------------

/// A JSON body; malformed or mistyped JSON, or a field the body's type does not know, is
/// answered with an [`ApiError`].
struct ApiJson<T>(T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + serde::Serialize,
{
    type Rejection = ApiFailure;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The body is read once, under the route's size limit; axum's JSON extractor then judges
        // its content type and parses it, so its messages (with the field path) stay as they are.
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| ApiFailure {
                status: rejection.status(),
                message: lowercase_first(&rejection.body_text()),
            })?;
        let rebuilt = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        let axum::Json(value) = axum::Json::<T>::from_request(rebuilt, state)
            .await
            .map_err(|rejection| json_failure(&rejection))?;
        let sent: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| ApiFailure::internal())?;
        match crate::unknown_fields::first_unknown_field(&sent, &value) {
            Ok(None) => Ok(ApiJson(value)),
            Ok(Some(unknown)) if unknown.reading == crate::unknown_fields::Reading::Unknown => {
                Err(ApiFailure::bad_request(format!(
                    "{unknown}: check the spelling (GET /api/openapi.json lists the fields)"
                )))
            }
            Ok(Some(misread)) => Err(ApiFailure::bad_request(misread.to_string())),
            Err(_) => Err(ApiFailure::internal()),
        }
    }
}

fn json_failure(rejection: &JsonRejection) -> ApiFailure {
    // The innermost cause is serde's own message, with the field path and position.
    let detail = || {
        let mut cause: &dyn std::error::Error = rejection;
        while let Some(source) = cause.source() {
            cause = source;
        }
        cause.to_string()
    };
    let message = match rejection {
        JsonRejection::JsonSyntaxError(_) => format!("malformed JSON body: {}", detail()),
        JsonRejection::JsonDataError(_) => format!("unexpected JSON body: {}", detail()),
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with the header `content-type: application/json`".to_owned()
        }
        _ => lowercase_first(&rejection.body_text()),
    };
    ApiFailure {
        status: rejection.status(),
        message,
    }
}

/// The `{number}` path segment.
struct CaseNumber(String);

impl<S: Send + Sync> FromRequestParts<S> for CaseNumber {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(number)) => Ok(CaseNumber(number)),
            Err(rejection) => Err(path_failure(&rejection)),
        }
    }
}

fn path_failure(rejection: &PathRejection) -> ApiFailure {
    ApiFailure {
        status: rejection.status(),
        message: format!(
            "invalid case number in the path: {}",
            lowercase_first(&rejection.body_text())
        ),
    }
}

/// The query string as name/value pairs, checked against the route's documented parameters.
struct QueryPairs(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(QueryPairs(pairs)),
            Err(rejection) => Err(query_failure(&rejection)),
        }
    }
}

fn query_failure(rejection: &QueryRejection) -> ApiFailure {
    ApiFailure::bad_request(format!(
        "invalid query string: {}",
        lowercase_first(&rejection.body_text())
    ))
}

/// Query parameters of one route, by name, after checking each is one the route documents.
struct QueryValues {
    operation: Operation,
    values: HashMap<&'static str, String>,
}

impl QueryValues {
    fn new(operation: Operation, pairs: Vec<(String, String)>) -> Result<QueryValues, ApiFailure> {
        let route = operation.route();
        let mut values = HashMap::new();
        for (name, value) in pairs {
            let Some(parameter) = route.query_parameters().find(|known| known.name == name) else {
                let known: Vec<&str> = route.query_parameters().map(|known| known.name).collect();
                return Err(ApiFailure::bad_request(if known.is_empty() {
                    format!(
                        "unknown query parameter {name:?}: {} {} takes none",
                        route.method.http_name(),
                        route.path
                    )
                } else {
                    format!(
                        "unknown query parameter {name:?}: {} {} takes {}",
                        route.method.http_name(),
                        route.path,
                        known.join(", ")
                    )
                }));
            };
            if values.insert(parameter.name, value).is_some() {
                return Err(ApiFailure::bad_request(format!(
                    "query parameter {name:?} is given more than once"
                )));
            }
        }
        Ok(QueryValues { operation, values })
    }

    /// A non-empty value; an empty one (`?holder=`) counts as absent.
    fn text(&self, name: &str) -> Option<&str> {
        debug_assert!(
            self.operation
                .route()
                .query_parameters()
                .any(|parameter| parameter.name == name),
            "{name} is not documented for {:?}",
            self.operation
        );
        self.values
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// A value in the API's snake_case spelling of a model enum.
    fn enumeration<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ApiFailure> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .map(Some)
            .map_err(|error| ApiFailure::bad_request(format!("invalid {name} {text:?}: {error}")))
    }

    fn boolean(&self, name: &str) -> Result<bool, ApiFailure> {
        match self.text(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(other) => Err(ApiFailure::bad_request(format!(
                "invalid {name} {other:?}: expected true or false"
            ))),
        }
    }

    /// A whole number, at least the minimum the route's table gives it (the document says the
    /// same, being built from that table).
    fn count(&self, name: &str) -> Result<Option<usize>, ApiFailure> {
        let minimum = self
            .operation
            .route()
            .query_parameters()
            .find_map(|parameter| match parameter.value_type {
                ParameterType::Count { minimum } if parameter.name == name => Some(minimum),
                _ => None,
            })
            .unwrap_or(0);
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        let count = text.parse::<usize>().map_err(|_| {
            ApiFailure::bad_request(format!("invalid {name} {text:?}: expected a whole number"))
        })?;
        if (count as u64) < minimum {
            return Err(ApiFailure::bad_request(format!(
                "invalid {name} {count}: at least {minimum}"
            )));
        }
        Ok(Some(count))
    }

    fn instant(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiFailure> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        parse_instant_or_date(text).map(Some).ok_or_else(|| {
            ApiFailure::bad_request(format!(
                "invalid {name} {text:?}: expected an RFC 3339 time (2026-03-01T09:30:00+08:00) \
                 or a date (2026-03-01)"
            ))
        })
    }
}

/// An RFC 3339 instant, or a date meaning the start of that day in China time.
fn parse_instant_or_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.with_timezone(&Utc));
    }
    // An unencoded '+' in a query string arrives as a space.
    if text.contains(' ')
        && let Ok(instant) = DateTime::parse_from_rfc3339(&text.replace(' ', "+"))
    {
        return Some(instant.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    date.and_time(NaiveTime::MIN)
        .and_local_timezone(china_offset())
        .single()
        .map(|start| start.with_timezone(&Utc))
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

impl ApiState {
    /// Tell the federation (if any) that the store changed, so the links send it at once
    /// instead of at the next feed poll.
    fn notify_local_change(&self) {
        if let Some(federation) = &self.federation {
            federation.notify_local_change();
        }
    }
}

/// Run the node's work on a blocking thread: it waits on disk flushes.
async fn on_node<T, F>(state: &ApiState, work: F) -> Result<T, ApiFailure>
where
    T: Send + 'static,
    F: FnOnce(&Node) -> Result<T, ServiceError> + Send + 'static,
{
    let node = Arc::clone(&state.node);
    match tokio::task::spawn_blocking(move || work(&node)).await {
        Ok(result) => result.map_err(ApiFailure::from),
        Err(error) => {
            tracing::error!(%error, "request work stopped unexpectedly");
            Err(ApiFailure::internal())
        }
    }
}

/// Answered on the async thread, not a blocking one: it must answer even when every blocking
/// thread waits on the disk. The free-space reading is cached, so it costs no disk access.
async fn health(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiFailure> {
    QueryValues::new(Operation::Health, pairs)?;
    if let Err(error) = state.node.store().check_free_space() {
        let why = error.to_string();
        let body = NodeUnhealthy {
            status: "unhealthy".to_owned(),
            error: format!("the node takes no writes: {why}"),
            store: why,
        };
        return Ok((StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response());
    }
    Ok(axum::Json(state.node.info()).into_response())
}

async fn openapi_document(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiFailure> {
    QueryValues::new(Operation::OpenApi, pairs)?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
        .into_response())
}

async fn register_case(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    QueryPairs(pairs): QueryPairs,
    ApiJson(request): ApiJson<RegisterCase>,
) -> Result<(StatusCode, axum::Json<CaseView>), ApiFailure> {
    // An unknown parameter (`?dry_run=true`) must not be ignored while the change goes ahead.
    QueryValues::new(Operation::RegisterCase, pairs)?;
    let view = on_node(&state, move |node| {
        node.register(&principal.actor(), crate::wall_clock::now(), request)
    })
    .await?;
    state.notify_local_change();
    Ok((StatusCode::CREATED, axum::Json(view)))
}

async fn list_cases(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<Vec<CaseListItem>>, ApiFailure> {
    let query = QueryValues::new(Operation::ListCases, pairs)?;
    let filter = ListFilter {
        status: query.enumeration("status")?,
        holder: query.text("holder").map(str::to_owned),
        category: query.enumeration("category")?,
        region_prefix: query.text("region").map(str::to_owned),
        overdue_only: query.boolean("overdue")?,
        limit: query.count("limit")?,
        ..ListFilter::default()
    };
    let items = on_node(&state, move |node| {
        node.list(crate::wall_clock::now(), &filter)
    })
    .await?;
    Ok(axum::Json(items))
}

async fn get_case(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    CaseNumber(number): CaseNumber,
) -> Result<axum::Json<CaseView>, ApiFailure> {
    let view = on_node(&state, move |node| {
        node.get(
            Some(&principal.operator()),
            crate::wall_clock::now(),
            &number,
        )
    })
    .await?;
    Ok(axum::Json(view))
}

async fn append_event(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    QueryPairs(pairs): QueryPairs,
    CaseNumber(number): CaseNumber,
    ApiJson(request): ApiJson<AppendEvent>,
) -> Result<axum::Json<CaseView>, ApiFailure> {
    // An unknown parameter (`?dry_run=true`) must not be ignored while the change goes ahead.
    QueryValues::new(Operation::AppendEvent, pairs)?;
    let view = on_node(&state, move |node| {
        node.append(
            &principal.actor(),
            crate::wall_clock::now(),
            &number,
            request,
        )
    })
    .await?;
    state.notify_local_change();
    Ok(axum::Json(view))
}

async fn list_directives(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<Vec<DirectiveListItem>>, ApiFailure> {
    let query = QueryValues::new(Operation::ListDirectives, pairs)?;
    let open_only = query.boolean("open")?;
    let items = on_node(&state, move |node| {
        node.directives(crate::wall_clock::now(), open_only)
    })
    .await?;
    Ok(axum::Json(items))
}

async fn stats(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<Measures>, ApiFailure> {
    let query = QueryValues::new(Operation::Stats, pairs)?;
    let stats_query = StatsQuery {
        from: query.instant("from")?,
        to: query.instant("to")?,
        category: query.enumeration("category")?,
        imported: query.enumeration("imported")?.unwrap_or_default(),
    };
    let measures = on_node(&state, move |node| {
        node.stats(crate::wall_clock::now(), &stats_query)
    })
    .await?;
    Ok(axum::Json(measures))
}

async fn stats_by_child(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<StatsBreakdown>, ApiFailure> {
    let query = QueryValues::new(Operation::StatsByChild, pairs)?;
    let stats_query = StatsQuery {
        from: query.instant("from")?,
        to: query.instant("to")?,
        category: query.enumeration("category")?,
        imported: query.enumeration("imported")?.unwrap_or_default(),
    };
    let roster = supervision::roster_offices(state.federation.as_ref());
    let mut breakdown = on_node(&state, move |node| {
        node.stats_by_child_among(crate::wall_clock::now(), &stats_query, &roster)
    })
    .await?;
    supervision::add_sync_health(&mut breakdown, state.federation.as_ref()).await;
    Ok(axum::Json(breakdown))
}

/// `GET /api/export/ledger`: the file is written on a blocking thread into a temporary file
/// (the workbook in constant-memory mode, the CSV as it goes), then sent from that file in
/// chunks, so neither the cases nor the file are held in memory whole.
async fn export_ledger(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiFailure> {
    let query = QueryValues::new(Operation::ExportLedger, pairs)?;
    let format = match query.text("format") {
        None => crate::import::export::LedgerFileFormat::Xlsx,
        Some(name) => {
            crate::import::export::LedgerFileFormat::from_name(name).ok_or_else(|| {
                ApiFailure::bad_request(format!("invalid format {name:?}: expected xlsx or csv"))
            })?
        }
    };
    let identifiers = if query.boolean("full")? {
        principal
            .actor()
            .permit(fengqiao_accounts::Action::ExportPersonalData)
            .map_err(ServiceError::from)?;
        crate::import::export::Identifiers::Full
    } else {
        crate::import::export::Identifiers::Masked
    };
    let day = |name: &str| -> Result<Option<NaiveDate>, ApiFailure> {
        query
            .text(name)
            .map(|text| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                    ApiFailure::bad_request(format!(
                        "invalid {name} {text:?}: expected a date (2026-03-01)"
                    ))
                })
            })
            .transpose()
    };
    let case_query = fengqiao_console::CaseQuery {
        status: query.enumeration("status")?,
        category: query.enumeration("category")?,
        grade: query.enumeration("grade")?,
        registered_from: day("from")?,
        registered_to: day("to")?,
        holder: query.text("holder").map(str::to_owned),
        region: query.text("region").map(str::to_owned),
        search: query.text("q").unwrap_or_default().to_owned(),
        ..fengqiao_console::CaseQuery::default()
    };
    let operator = principal.operator();
    let file = on_node(&state, move |node| {
        let cannot = |error: std::io::Error| {
            ServiceError::Internal(format!("cannot write the export's temporary file: {error}"))
        };
        let mut file = tempfile::tempfile().map_err(cannot)?;
        let exporter = ledger_export::Exporter {
            operator: &operator,
            action: "export_ledger",
        };
        ledger_export::export_ledger(
            node,
            exporter,
            &case_query,
            identifiers,
            format,
            crate::wall_clock::now(),
            &mut file,
        )?;
        std::io::Seek::rewind(&mut file).map_err(cannot)?;
        Ok(file)
    })
    .await?;
    let name = format!(
        "ledger-{}.{}",
        crate::wall_clock::now()
            .with_timezone(&china_offset())
            .format("%Y%m%d-%H%M"),
        format.name()
    );
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        axum::body::Body::from_stream(file_chunks(tokio::fs::File::from_std(file))),
    )
        .into_response())
}

/// A file's bytes in chunks, for a response body; ends after the first read error.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    const CHUNK_BYTES: usize = 64 * 1024;
    futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut chunk = vec![0u8; CHUNK_BYTES];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(read) => {
                chunk.truncate(read);
                Some((Ok(Bytes::from(chunk)), Some(file)))
            }
            Err(error) => Some((Err(error), None)),
        }
    })
}

async fn import(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    QueryPairs(pairs): QueryPairs,
    ApiJson(batch): ApiJson<ImportBatch>,
) -> Result<axum::Json<Vec<ImportRowReport>>, ApiFailure> {
    // An unknown parameter (`?dry_run=true`) must not be ignored while the change goes ahead.
    QueryValues::new(Operation::Import, pairs)?;
    let reports = on_node(&state, move |node| {
        node.import(&principal.actor(), crate::wall_clock::now(), batch)
    })
    .await?;
    state.notify_local_change();
    Ok(axum::Json(reports))
}

async fn peers(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<Vec<PeerView>>, ApiFailure> {
    QueryValues::new(Operation::Peers, pairs)?;
    let Some(federation) = &state.federation else {
        return Ok(axum::Json(Vec::new()));
    };
    match federation.peers().await {
        Ok(reports) => Ok(axum::Json(reports.iter().map(PeerView::from).collect())),
        Err(error) => {
            tracing::error!(%error, "cannot read the federation links");
            Err(ApiFailure::internal())
        }
    }
}

fn no_federation() -> ApiFailure {
    ApiFailure {
        status: StatusCode::CONFLICT,
        message: "this node runs no federation: its config has no [federation] section, or it \
                  was started before one was added (restart it)"
            .to_owned(),
    }
}

async fn roster(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<RosterView>, ApiFailure> {
    QueryValues::new(Operation::Roster, pairs)?;
    let federation = state.federation.as_ref().ok_or_else(no_federation)?;
    Ok(axum::Json(federation.roster()))
}

async fn policy(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<PolicyView>, ApiFailure> {
    QueryValues::new(Operation::Policy, pairs)?;
    Ok(axum::Json(state.node.policy_view()))
}

async fn issue_policy(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    QueryPairs(pairs): QueryPairs,
    ApiJson(mut request): ApiJson<IssuePolicy>,
) -> Result<(StatusCode, axum::Json<PolicyVersionView>), ApiFailure> {
    QueryValues::new(Operation::IssuePolicy, pairs)?;
    let federation = state.federation.clone().ok_or_else(no_federation)?;
    request.limits = fengqiao_case::policy::with_shipped_calendar(request.limits);
    let node = Arc::clone(&state.node);
    let issued = tokio::task::spawn_blocking(move || {
        federation.issue_policy(&node, request, crate::wall_clock::now())
    })
    .await
    .map_err(|_| ApiFailure::internal())?
    .map_err(|error| {
        tracing::error!(%error, "cannot store the issued policy");
        ApiFailure::internal()
    })?;
    let signed = match issued {
        Ok(signed) => signed,
        Err(error @ fengqiao_sync::RosterError::NotRoot { .. }) => {
            return Err(ApiFailure {
                status: StatusCode::CONFLICT,
                message: format!("{error} (只有县级根节点可以发布政策)"),
            });
        }
        Err(error @ fengqiao_sync::RosterError::Policy(_)) => {
            return Err(ApiFailure::bad_request(error.to_string()));
        }
        Err(error) => {
            tracing::error!(%error, "cannot issue the policy");
            return Err(ApiFailure::internal());
        }
    };
    let operator = principal.operator();
    let version = signed.policy.version;
    tracing::info!(%operator, version, "federation policy issued");
    let view = state
        .node
        .policy_view()
        .versions
        .into_iter()
        .find(|held| held.version == version)
        .ok_or_else(ApiFailure::internal)?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

async fn reload_federation(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<FederationReload>, ApiFailure> {
    QueryValues::new(Operation::ReloadFederation, pairs)?;
    let federation = state.federation.as_ref().ok_or_else(no_federation)?;
    let dir = state.node.dir().root.clone();
    match crate::admission::apply_saved_config(dir, federation).await {
        Ok(reload) => {
            let operator = principal.operator();
            tracing::info!(%operator, "federation configuration reloaded by the operator");
            Ok(axum::Json(reload))
        }
        Err(
            error @ (crate::admission::ReloadError::Unreadable(_)
            | crate::admission::ReloadError::NoFederationSection),
        ) => Err(ApiFailure {
            status: StatusCode::CONFLICT,
            message: error.to_string(),
        }),
        Err(error @ crate::admission::ReloadError::InvalidNodeId { .. }) => {
            Err(ApiFailure::bad_request(error.to_string()))
        }
        Err(error) => {
            tracing::error!(%error, "cannot reload the federation configuration");
            Err(ApiFailure::internal())
        }
    }
}

async fn audit_log(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    QueryPairs(pairs): QueryPairs,
    CaseNumber(number): CaseNumber,
) -> Result<axum::Json<AuditLog>, ApiFailure> {
    QueryValues::new(Operation::AuditLog, pairs)?;
    let log = on_node(&state, move |node| {
        node.audit_log(
            Some(&principal.operator()),
            crate::wall_clock::now(),
            &number,
        )
    })
    .await?;
    Ok(axum::Json(log))
}

async fn audit_verify(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<AuditReport>, ApiFailure> {
    QueryValues::new(Operation::AuditVerify, pairs)?;
    let report = on_node(&state, Node::audit_verify).await?;
    Ok(axum::Json(report))
}

async fn quarantine(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<axum::Json<QuarantineListing>, ApiFailure> {
    let query = QueryValues::new(Operation::Quarantine, pairs)?;
    let after = query
        .count("after")?
        .map_or(0, |after| u64::try_from(after).unwrap_or(u64::MAX));
    let limit = query.count("limit")?;
    let listing = on_node(&state, move |node| node.quarantine(after, limit)).await?;
    Ok(axum::Json(listing))
}

/// Streams a backup of the node as [`crate::backup::write_backup`] takes it on a blocking
/// thread: the status is decided once the snapshot has started (409 while another runs); a
/// failure after that cuts the stream, which leaves the client a file without its checksum.
async fn backup(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiFailure> {
    QueryValues::new(Operation::Backup, pairs)?;
    let (chunks, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let (started, start) = tokio::sync::oneshot::channel::<Result<(), ApiFailure>>();
    let node = Arc::clone(&state.node);
    tokio::task::spawn_blocking(move || {
        let mut started = Some(started);
        let mut out = std::io::BufWriter::with_capacity(
            BACKUP_CHUNK_BYTES,
            ChannelWriter {
                chunks: chunks.clone(),
            },
        );
        let written = crate::backup::write_backup(
            &node,
            crate::wall_clock::now(),
            |header| {
                let answer = match header {
                    Ok(header) => {
                        tracing::info!(feed_position = header.feed_position, "backup started");
                        Ok(())
                    }
                    Err(error @ fengqiao_store::StoreError::SnapshotRunning) => Err(ApiFailure {
                        status: StatusCode::CONFLICT,
                        message: error.to_string(),
                    }),
                    Err(error) => {
                        tracing::error!(%error, "cannot start a backup");
                        Err(ApiFailure::internal())
                    }
                };
                if let Some(started) = started.take() {
                    let _ = started.send(answer);
                }
            },
            &mut out,
        );
        let written = written.and_then(|summary| {
            std::io::Write::flush(&mut out)?;
            Ok(summary)
        });
        match written {
            Ok(summary) => tracing::info!(
                cases = summary.cases,
                feed_position = summary.header.feed_position,
                "backup sent"
            ),
            Err(error) => {
                tracing::warn!(%error, "backup stopped; the stream is cut");
                let _ = chunks.blocking_send(Err(std::io::Error::other(error.to_string())));
            }
        }
    });
    match start.await {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => return Err(failure),
        Err(_) => return Err(ApiFailure::internal()),
    }
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Bytes of a backup sent at a time.
const BACKUP_CHUNK_BYTES: usize = 256 * 1024;

/// Hands what is written to the response stream; fails once the client has gone, which ends
/// the snapshot.
struct ChannelWriter {
    chunks: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.chunks
            .blocking_send(Ok(Bytes::copy_from_slice(buffer)))
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the client stopped reading the backup",
                )
            })?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The longest path and query the API reads, in bytes: far beyond any it documents (a case
/// number, a few filters), and below hyper's own bound (64 KiB), which it answers without a
/// body; so a long URI is answered 414 with an [`ApiError`] like every other refusal.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// 414 for a path and query longer than [`MAX_URI_BYTES`], before the account is checked.
async fn refuse_long_uris(request: Request, next: Next) -> Response {
    let length = request
        .uri()
        .path_and_query()
        .map_or(0, |path_and_query| path_and_query.as_str().len());
    if length > MAX_URI_BYTES {
        return ApiFailure {
            status: StatusCode::URI_TOO_LONG,
            message: format!(
                "the request's path and query are {length} bytes long; at most {MAX_URI_BYTES}"
            ),
        }
        .into_response();
    }
    next.run(request).await
}

/// One span per request, with method, route and outcome. The route template is logged, never the
/// concrete path, query or body: those can carry personal data.
async fn trace_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!("request", %method, route = %route);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if response.status().is_server_error() {
            tracing::warn!(status, latency_ms, "answered");
        } else {
            tracing::info!(status, latency_ms, "answered");
        }
    });
    response
}
