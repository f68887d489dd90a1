//! The node's side of the web console (`fengqiao_console::ConsoleBackend`): each question a page
//! asks, answered by the service that answers the API, with the API's checks: sign-in through
//! the same throttle and argon2 permits, sessions through `authenticate_session`, the role
//! table's `read_cases` row before any case is read, the case read into the access log, the
//! federation's link report for the banner; registrations and events through the service's
//! `register` and `append` as the acting account, as the API's handlers make them; the actions
//! a page offers from `Node::permitted_events`. Nothing here decides a rule of its own.

use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use chrono::{DateTime, Utc};
use fengqiao_accounts::wire::{AccountWithPassword, NewAccount};
use fengqiao_accounts::{AccountView, Action};
use fengqiao_case::model::audit::{AuditLog, AuditReport, QuarantineListing};
use fengqiao_case::model::roster::RosterView;
use fengqiao_case::model::stats::StatsBreakdown;
use fengqiao_case::model::{
    AppendEvent, CaseView, DirectiveListItem, EventKind, Measures, NodeId, NodeInfo, RegisterCase,
    WarningGrade,
};
use fengqiao_case::summary::earliest_open_deadline;
use fengqiao_case::warnings::worst_grade;
use fengqiao_console::{
    BackendError, BackendErrorKind, BackendFuture, CasePage, CaseQuery, CaseRow, ConsoleBackend,
    ConsoleSignIn, ConsoleUser, LinkDetail, LinkRelation, LinkStatus, Neighbours, NewChildOffice,
    Office, StatsPeriod,
};

use super::accounts::{SIGN_IN_PERMITS, cookie_text};
use super::auth::source_address;
use super::ledger_export::Exporter;
use super::supervision;
use super::tls::PeerAddress;
use crate::admission::ChildOffice;
use crate::federation::{FederationStatus, PeerView};
use crate::import::export::{Identifiers, LedgerFileFormat};
use crate::service::accounts::Credential;
use crate::service::{ListFilter, Node, PageRequest, ServiceError, StatsQuery};

/// The console's backend over an open node and its running federation, if any.
#[derive(Debug, Clone)]
pub struct NodeConsole {
    node: Arc<Node>,
    federation: Option<FederationStatus>,
}

impl NodeConsole {
    pub fn new(node: Arc<Node>, federation: Option<FederationStatus>) -> NodeConsole {
        NodeConsole { node, federation }
    }

    /// Run blocking service work on a blocking thread, as the API's handlers do.
    /// The client's address as the throttle counts it (the proxy's word only behind one).
    fn client_source(&self, headers: &HeaderMap, extensions: &Extensions) -> String {
        let peer = extensions
            .get::<ConnectInfo<PeerAddress>>()
            .map(|ConnectInfo(PeerAddress(address))| *address);
        source_address(headers, peer, self.node.config().http.behind_proxy)
    }

    async fn on_node<T, F>(&self, work: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Node) -> Result<T, ServiceError> + Send + 'static,
    {
        let node = Arc::clone(&self.node);
        match tokio::task::spawn_blocking(move || work(&node)).await {
            Ok(result) => result.map_err(backend_error),
            Err(error) => Err(BackendError::new(
                BackendErrorKind::Internal,
                format!("request work stopped unexpectedly: {error}"),
            )),
        }
    }
}

impl NodeConsole {
    /// Edit the node's `[federation]` config with `edit` (`crate::admission`'s admit or revoke,
    /// the CLI's rule) and apply it to the running federation at once, as `fengqiao admit`
    /// then `POST /api/federation/reload` do; answers what was done, in words.
    async fn change_children<F>(&self, user: &ConsoleUser, edit: F) -> Result<String, BackendError>
    where
        F: FnOnce(&std::path::Path) -> anyhow::Result<(crate::config::NodeConfig, String)>
            + Send
            + 'static,
    {
        // A node running alone has no federation to apply a change to: its first child is
        // admitted with `fengqiao admit`, and the node restarted.
        let Some(federation) = &self.federation else {
            return Err(BackendError::new(
                BackendErrorKind::Refused,
                "this node runs no federation: admit its first child with `fengqiao admit` and \
                 restart it",
            ));
        };
        let dir = self.node.dir().root.clone();
        let edited_dir = dir.clone();
        let (_, what) = tokio::task::spawn_blocking(move || edit(&edited_dir))
            .await
            .map_err(|error| {
                BackendError::new(
                    BackendErrorKind::Internal,
                    format!("request work stopped unexpectedly: {error}"),
                )
            })?
            .map_err(|error| {
                BackendError::new(BackendErrorKind::InvalidInput, format!("{error:#}"))
            })?;
        crate::admission::apply_saved_config(dir, federation)
            .await
            .map_err(|error| BackendError::new(BackendErrorKind::Refused, error.to_string()))?;
        let operator = user.account.operator_label();
        tracing::info!(%operator, %what, "federation changed from the console");
        Ok(what)
    }

    /// Tell the federation (if any) that the store changed, as the API's writes do, so the
    /// links send it at once.
    fn notify_local_change(&self) {
        if let Some(federation) = &self.federation {
            federation.notify_local_change();
        }
    }
}

/// The service's refusal as the console reads it (the kinds the API answers with 401, 429,
/// 403, 404, 400, 409; the rest are failures). A refused field keeps its name.
fn backend_error(error: ServiceError) -> BackendError {
    if let ServiceError::InvalidField { field, why } = error {
        return BackendError::of_field(field, why);
    }
    let kind = match &error {
        ServiceError::Unauthenticated(_) => BackendErrorKind::Unauthenticated,
        ServiceError::Throttled {
            retry_after_seconds,
        } => BackendErrorKind::Throttled {
            retry_after_seconds: *retry_after_seconds,
        },
        ServiceError::NotPermitted(_) | ServiceError::Forbidden(_) => BackendErrorKind::Forbidden,
        ServiceError::NotFound(_) => BackendErrorKind::NotFound,
        ServiceError::InvalidInput(_) => BackendErrorKind::InvalidInput,
        ServiceError::Refused(_) | ServiceError::Unreachable { .. } => BackendErrorKind::Refused,
        _ => BackendErrorKind::Internal,
    };
    let message = match &error {
        // The page names the case it did not find.
        ServiceError::NotFound(number) => number.clone(),
        other => other.to_string(),
    };
    BackendError::new(kind, message)
}

/// The role table's answer for reading cases (the row `GET /api/cases` and `GET
/// /api/cases/{number}` are behind).
fn may_read_cases(user: &ConsoleUser) -> Result<(), BackendError> {
    permitted(user, Action::ReadCases)
}

/// The role table's answer for `action` (a row the API's routes are behind too).
fn permitted(user: &ConsoleUser, action: Action) -> Result<(), BackendError> {
    user.account
        .actor()
        .permit(action)
        .map_err(|refusal| BackendError::new(BackendErrorKind::Forbidden, refusal.to_string()))
}

fn stats_query(period: StatsPeriod) -> StatsQuery {
    StatsQuery {
        from: period.from,
        to: period.to,
        category: period.category,
        imported: period.imported,
    }
}

fn link_status(view: PeerView) -> LinkStatus {
    LinkStatus {
        relation: if view.relation == "parent" {
            LinkRelation::Parent
        } else {
            LinkRelation::Child
        },
        name: if view.name.is_empty() {
            view.node_id.clone()
        } else {
            view.name
        },
        connected: view.connected,
        since: view.since,
        pending_out: view.pending,
        pending_in: view.pending_inbound,
        detail: LinkDetail {
            node_id: view.node_id,
            last_successful_sync: view.last_successful_sync,
            last_error: view.last_error,
            quarantined: view.quarantined,
            refused_by_peer: view.refused_by_peer,
            clock_offset_ms: view.clock_offset_ms,
        },
    }
}

impl ConsoleBackend for NodeConsole {
    fn office(&self) -> NodeInfo {
        self.node.info()
    }

    fn office_name(&self, node: &NodeId) -> Option<String> {
        let roster = self.federation.as_ref()?.roster();
        roster
            .members
            .iter()
            .chain(&roster.revoked)
            .find(|member| member.node_id == *node)
            .map(|member| member.name.clone())
    }

    fn sign_in<'a>(
        &'a self,
        login: String,
        password: String,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> BackendFuture<'a, ConsoleSignIn> {
        let source = self.client_source(headers, extensions);
        Box::pin(async move {
            let _permit = SIGN_IN_PERMITS.acquire().await.map_err(|_| {
                BackendError::new(BackendErrorKind::Internal, "sign-in permits closed")
            })?;
            let signed_in = self
                .on_node(move |node| {
                    node.sign_in(&login, &password, &source, crate::wall_clock::now())
                })
                .await?;
            tracing::info!(login = %signed_in.principal.account.login, "signed in (console)");
            Ok(ConsoleSignIn {
                account: signed_in.principal.account,
                session_secret: signed_in.session_secret,
                csrf_token: signed_in.csrf_token,
            })
        })
    }

    fn session<'a>(&'a self, session_secret: String) -> BackendFuture<'a, ConsoleUser> {
        Box::pin(async move {
            let principal = self
                .on_node(move |node| {
                    node.authenticate_session(&session_secret, crate::wall_clock::now())
                })
                .await?;
            match principal.credential {
                Credential::Session(session) => Ok(ConsoleUser {
                    account: principal.account,
                    session,
                }),
                _ => Err(BackendError::new(
                    BackendErrorKind::Unauthenticated,
                    "not a session",
                )),
            }
        })
    }

    fn sign_out<'a>(&'a self, session_secret: String) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            self.on_node(move |node| node.sign_out(&session_secret))
                .await
        })
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        cookie_text(&self.node.config().http, name, value, max_age)
    }

    fn cases<'a>(&'a self, user: &'a ConsoleUser, query: CaseQuery) -> BackendFuture<'a, CasePage> {
        Box::pin(async move {
            may_read_cases(user)?;
            let operator = user.account.operator_label();
            self.on_node(move |node| case_page(node, &operator, &query, crate::wall_clock::now()))
                .await
        })
    }

    fn case<'a>(&'a self, user: &'a ConsoleUser, number: String) -> BackendFuture<'a, CaseView> {
        Box::pin(async move {
            may_read_cases(user)?;
            let operator = user.account.operator_label();
            self.on_node(move |node| node.get(Some(&operator), crate::wall_clock::now(), &number))
                .await
        })
    }

    fn measures<'a>(
        &'a self,
        user: &'a ConsoleUser,
        periods: Vec<StatsPeriod>,
    ) -> BackendFuture<'a, Vec<Measures>> {
        Box::pin(async move {
            permitted(user, Action::ReadStats)?;
            self.on_node(move |node| {
                let now = crate::wall_clock::now();
                periods
                    .into_iter()
                    .map(|period| node.stats(now, &stats_query(period)))
                    .collect()
            })
            .await
        })
    }

    fn measures_by_child<'a>(
        &'a self,
        user: &'a ConsoleUser,
        period: StatsPeriod,
    ) -> BackendFuture<'a, StatsBreakdown> {
        Box::pin(async move {
            permitted(user, Action::ReadStatsByChild)?;
            let roster = supervision::roster_offices(self.federation.as_ref());
            let query = stats_query(period);
            let mut breakdown = self
                .on_node(move |node| {
                    node.stats_by_child_among(crate::wall_clock::now(), &query, &roster)
                })
                .await?;
            supervision::add_sync_health(&mut breakdown, self.federation.as_ref()).await;
            Ok(breakdown)
        })
    }

    fn export_ledger<'a>(
        &'a self,
        user: &'a ConsoleUser,
        query: CaseQuery,
        full: bool,
    ) -> BackendFuture<'a, Vec<u8>> {
        Box::pin(async move {
            may_read_cases(user)?;
            let identifiers = if full {
                permitted(user, Action::ExportPersonalData)?;
                Identifiers::Full
            } else {
                Identifiers::Masked
            };
            let operator = user.account.operator_label();
            self.on_node(move |node| {
                export_ledger(
                    node,
                    &operator,
                    &query,
                    identifiers,
                    crate::wall_clock::now(),
                )
            })
            .await
        })
    }

    fn directives<'a>(
        &'a self,
        user: &'a ConsoleUser,
        open_only: bool,
    ) -> BackendFuture<'a, Vec<DirectiveListItem>> {
        Box::pin(async move {
            may_read_cases(user)?;
            self.on_node(move |node| node.directives(crate::wall_clock::now(), open_only))
                .await
        })
    }

    fn audit_log<'a>(
        &'a self,
        user: &'a ConsoleUser,
        number: String,
    ) -> BackendFuture<'a, AuditLog> {
        Box::pin(async move {
            permitted(user, Action::ReadAuditLog)?;
            let operator = user.account.operator_label();
            self.on_node(move |node| {
                node.audit_log(Some(&operator), crate::wall_clock::now(), &number)
            })
            .await
        })
    }

    fn audit_verify<'a>(&'a self, user: &'a ConsoleUser) -> BackendFuture<'a, AuditReport> {
        Box::pin(async move {
            permitted(user, Action::VerifyAudit)?;
            self.on_node(Node::audit_verify).await
        })
    }

    fn quarantine<'a>(
        &'a self,
        user: &'a ConsoleUser,
        after: u64,
    ) -> BackendFuture<'a, QuarantineListing> {
        Box::pin(async move {
            permitted(user, Action::ReadQuarantine)?;
            self.on_node(move |node| node.quarantine(after, Some(fengqiao_console::PAGE_SIZE)))
                .await
        })
    }

    fn roster<'a>(&'a self, user: &'a ConsoleUser) -> BackendFuture<'a, Option<RosterView>> {
        Box::pin(async move {
            permitted(user, Action::ReadFederation)?;
            Ok(self.federation.as_ref().map(FederationStatus::roster))
        })
    }

    fn register<'a>(
        &'a self,
        user: &'a ConsoleUser,
        request: RegisterCase,
    ) -> BackendFuture<'a, CaseView> {
        Box::pin(async move {
            let actor = user.account.actor();
            let view = self
                .on_node(move |node| node.register(&actor, crate::wall_clock::now(), request))
                .await?;
            self.notify_local_change();
            Ok(view)
        })
    }

    fn append<'a>(
        &'a self,
        user: &'a ConsoleUser,
        number: String,
        request: AppendEvent,
    ) -> BackendFuture<'a, CaseView> {
        let mut request = request;
        // A directive issued from the console is named here, as the CLI names its own.
        if let EventKind::IssueDirective { directive, .. } = &mut request.kind
            && directive.is_empty()
        {
            *directive = crate::cli::directive::new_directive_id();
        }
        Box::pin(async move {
            let actor = user.account.actor();
            let view = self
                .on_node(move |node| {
                    node.append(&actor, crate::wall_clock::now(), &number, request)
                })
                .await?;
            self.notify_local_change();
            Ok(view)
        })
    }

    fn permitted<'a>(
        &'a self,
        user: &'a ConsoleUser,
        number: String,
        candidates: Vec<EventKind>,
    ) -> BackendFuture<'a, Vec<bool>> {
        Box::pin(async move {
            let actor = user.account.actor();
            let answers = self
                .on_node(move |node| {
                    node.permitted_events(&actor, crate::wall_clock::now(), &number, &candidates)
                })
                .await?;
            Ok(answers.iter().map(Result::is_ok).collect())
        })
    }

    fn admit_child<'a>(
        &'a self,
        user: &'a ConsoleUser,
        child: NewChildOffice,
    ) -> BackendFuture<'a, String> {
        Box::pin(async move {
            permitted(user, Action::ReloadFederation)?;
            let child = ChildOffice {
                node_id: child.node_id,
                name: child.name,
                region_code: child.region_code,
            };
            self.change_children(user, move |dir| {
                crate::admission::admit_child(dir, &child, None)
            })
            .await
        })
    }

    fn revoke_child<'a>(
        &'a self,
        user: &'a ConsoleUser,
        node_id: String,
    ) -> BackendFuture<'a, String> {
        Box::pin(async move {
            permitted(user, Action::ReloadFederation)?;
            self.change_children(user, move |dir| {
                crate::admission::revoke_child(dir, &node_id)
            })
            .await
        })
    }

    fn accounts<'a>(&'a self, user: &'a ConsoleUser) -> BackendFuture<'a, Vec<AccountView>> {
        Box::pin(async move {
            permitted(user, Action::ManageAccounts)?;
            self.on_node(Node::account_views).await
        })
    }

    fn add_account<'a>(
        &'a self,
        user: &'a ConsoleUser,
        request: NewAccount,
    ) -> BackendFuture<'a, AccountWithPassword> {
        Box::pin(async move {
            permitted(user, Action::ManageAccounts)?;
            let added = self
                .on_node(move |node| node.add_account(&request, crate::wall_clock::now()))
                .await?;
            tracing::info!(by = %user.account.login, login = %added.account.login, "account added (console)");
            Ok(added)
        })
    }

    fn disable_account<'a>(
        &'a self,
        user: &'a ConsoleUser,
        login: String,
    ) -> BackendFuture<'a, AccountView> {
        Box::pin(async move {
            permitted(user, Action::ManageAccounts)?;
            self.on_node(move |node| node.disable_account(&login, crate::wall_clock::now()))
                .await
        })
    }

    fn reset_password<'a>(
        &'a self,
        user: &'a ConsoleUser,
        login: String,
    ) -> BackendFuture<'a, AccountWithPassword> {
        Box::pin(async move {
            permitted(user, Action::ManageAccounts)?;
            self.on_node(move |node| node.reset_password(&login, None, crate::wall_clock::now()))
                .await
        })
    }

    fn change_own_password<'a>(
        &'a self,
        user: &'a ConsoleUser,
        current: String,
        new: String,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> BackendFuture<'a, ()> {
        let source = self.client_source(headers, extensions);
        Box::pin(async move {
            // The current password costs an argon2 verification, like a sign-in.
            let _permit = SIGN_IN_PERMITS.acquire().await.map_err(|_| {
                BackendError::new(BackendErrorKind::Internal, "sign-in permits closed")
            })?;
            let login = user.account.login.clone();
            self.on_node(move |node| {
                node.change_own_password(&login, &current, &new, &source, crate::wall_clock::now())
            })
            .await
        })
    }

    fn neighbours(&self) -> Neighbours {
        let Some(federation) = &self.federation else {
            return Neighbours::default();
        };
        let roster = federation.roster();
        let own = self.node.node_id();
        let office = |member: &fengqiao_case::model::roster::RosterMemberView| Office {
            node_id: member.node_id.clone(),
            name: member.name.clone(),
            region_code: member.region_code.clone(),
        };
        let parent_id = roster
            .members
            .iter()
            .find(|member| member.node_id == own)
            .and_then(|member| member.admitted_by.clone());
        Neighbours {
            parent: roster
                .members
                .iter()
                .find(|member| Some(&member.node_id) == parent_id.as_ref())
                .map(office),
            children: roster
                .members
                .iter()
                .filter(|member| member.admitted_by.as_deref() == Some(own) && !member.revoked)
                .map(office)
                .collect(),
        }
    }

    fn links<'a>(&'a self) -> BackendFuture<'a, Vec<LinkStatus>> {
        Box::pin(async move {
            let Some(federation) = &self.federation else {
                return Ok(Vec::new());
            };
            let reports = federation.peers().await.map_err(|error| {
                BackendError::new(BackendErrorKind::Internal, error.to_string())
            })?;
            Ok(reports
                .iter()
                .map(|report| link_status(PeerView::from(report)))
                .collect())
        })
    }

    fn now(&self) -> DateTime<Utc> {
        crate::wall_clock::now()
    }
}

/// The service's filter for the console's query, and whether its search goes to the store's
/// name index as a name.
fn list_filter(node: &Node, query: &CaseQuery) -> (ListFilter, bool) {
    let search = query.search.trim();
    // Text with anything but digits and dashes cannot be part of a case number
    // (`REGION-YEAR-SEQUENCE`): it is a name, which the store answers from its name index once
    // that is whole, instead of a listing of every case filtered here.
    let name_from_index = search
        .chars()
        .any(|character| !(character.is_ascii_digit() || character == '-'))
        && node.store().petitioner_names_indexed();
    let filter = ListFilter {
        status: query.status,
        category: query.category,
        holder: match (&query.holder, query.held_here) {
            (Some(holder), _) => Some(holder.clone()),
            (None, true) => Some(node.node_id().to_owned()),
            (None, false) => None,
        },
        // The store reads warned cases from its deadline index; a grade is narrowed further by
        // the page (`PageRequest::grade`) or checked in `matching_items`.
        warned_only: query.warned_only || query.grade.is_some(),
        region_prefix: query.region.clone(),
        petitioner_name: name_from_index.then(|| search.to_owned()),
        ..ListFilter::default()
    };
    (filter, name_from_index)
}

/// The cases matching the console's filters, most urgent first (worst grade, then earliest
/// open deadline, then number).
pub(super) fn matching_items(
    node: &Node,
    query: &CaseQuery,
    now: DateTime<Utc>,
) -> Result<Vec<fengqiao_case::model::CaseListItem>, ServiceError> {
    let search = query.search.trim();
    let (filter, name_from_index) = list_filter(node, query);
    let registered_day = |item: &fengqiao_case::model::CaseListItem| {
        item.summary
            .timeline
            .registered_at
            .map(fengqiao_case::deadlines::local_date)
    };
    let mut items: Vec<_> = node
        .list(now, &filter)?
        .into_iter()
        .filter(|item| !query.warned_only || !item.warnings.is_empty())
        .filter(|item| query.grade.is_none() || worst_grade(&item.warnings) == query.grade)
        .filter(|item| {
            query
                .registered_from
                .is_none_or(|from| registered_day(item).is_some_and(|day| day >= from))
        })
        .filter(|item| {
            query
                .registered_to
                .is_none_or(|to| registered_day(item).is_some_and(|day| day <= to))
        })
        .collect();
    if !search.is_empty() && !name_from_index {
        // A number is matched on the summary; a name through the store's name index, or, while
        // a store from an earlier build is still gaining it, on each case's header.
        let named = node.cases_with_petitioner_named(search)?;
        let mut found = Vec::with_capacity(items.len());
        for item in items {
            let by_number = item.summary.number.contains(search);
            let by_person = !by_number
                && match &named {
                    Some(named) => named.contains(&item.summary.number),
                    None => node
                        .store()
                        .with_case(&item.summary.number, |document| document.header())?
                        .transpose()?
                        .is_some_and(|header| {
                            header
                                .petitioners
                                .iter()
                                .any(|petitioner| petitioner.name.contains(search))
                        }),
                };
            if by_number || by_person {
                found.push(item);
            }
        }
        items = found;
    }
    items.sort_by(|left, right| {
        let urgency = |grade: Option<WarningGrade>| std::cmp::Reverse(grade);
        urgency(worst_grade(&left.warnings))
            .cmp(&urgency(worst_grade(&right.warnings)))
            .then_with(|| {
                let due = |item: &fengqiao_case::model::CaseListItem| {
                    earliest_open_deadline(&item.summary).unwrap_or(DateTime::<Utc>::MAX_UTC)
                };
                due(left).cmp(&due(right))
            })
            .then_with(|| left.summary.number.cmp(&right.summary.number))
    });
    Ok(items)
}

/// The 台账 as an Excel workbook, through the API's export (`ledger_export.rs`): the same
/// columns, the same access-log record under the console's action.
fn export_ledger(
    node: &Node,
    operator: &str,
    query: &CaseQuery,
    identifiers: Identifiers,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, ServiceError> {
    let mut workbook = std::io::Cursor::new(Vec::new());
    let exporter = Exporter {
        operator,
        action: "export_ledger_console",
    };
    super::ledger_export::export_ledger(
        node,
        exporter,
        query,
        identifiers,
        LedgerFileFormat::Xlsx,
        now,
        &mut workbook,
    )?;
    Ok(workbook.into_inner())
}

/// One page of the node's cases for the console: the service's page (`Node::list_page`: found and
/// counted from the store's index keys, most urgent first: worst grade, then earliest open
/// deadline, then number), and the registered header of each row on the page for its
/// petitioners and request. The page's rows show petitioners' names, so the read goes to the
/// access log like a case's.
fn case_page(
    node: &Node,
    operator: &str,
    query: &CaseQuery,
    now: DateTime<Utc>,
) -> Result<CasePage, ServiceError> {
    let search = query.search.trim();
    let page_size = query.page_size.max(1);
    let (items, total) = if !search.is_empty() && !node.store().petitioner_names_indexed() {
        // A store an earlier build wrote, still gaining its names: a search by person reads
        // the documents (matching_items), the whole list cut here.
        let items = matching_items(node, query, now)?;
        let total = items.len();
        let page = items
            .into_iter()
            .skip(query.page.saturating_mul(page_size))
            .take(page_size)
            .collect();
        (page, total)
    } else {
        let (filter, name_from_index) = list_filter(node, query);
        let request = PageRequest {
            grade: query.grade,
            registered_from: query.registered_from,
            registered_to: query.registered_to,
            // A name goes to the name index through the filter; anything else may be part of a
            // number or of a name.
            text: (!search.is_empty() && !name_from_index).then(|| search.to_owned()),
            skip: query.page.saturating_mul(page_size),
            take: page_size,
        };
        node.list_page(now, &filter, &request)?
    };
    if !search.is_empty() {
        // A search may be for a person: who searched for what is kept, found or not.
        let record = serde_json::json!({
            "at": now,
            "operator": operator,
            "action": "search_cases_console",
            "search": query.search.trim(),
            "found": total,
        });
        node.store().log_access(record.to_string().as_bytes())?;
    }
    let rows: Vec<CaseRow> = items
        .into_iter()
        .map(|item| {
            // The row's facts as the export reads them (`Store::ledger_facts`: the kept row,
            // not the document, unless the case changed since its keeper passed); loading 50
            // documents was most of a page's time.
            let header = node
                .store()
                .ledger_facts(&item.summary.number)?
                .map(|facts| facts.header);
            Ok(CaseRow {
                petitioners: header
                    .as_ref()
                    .map(|header| header.petitioners.clone())
                    .unwrap_or_default(),
                summary: header.map(|header| header.summary).unwrap_or_default(),
                item,
            })
        })
        .collect::<Result<_, ServiceError>>()?;
    if !rows.is_empty() {
        let record = serde_json::json!({
            "at": now,
            "operator": operator,
            "action": "list_cases_console",
            "cases": rows.iter().map(|row| row.item.summary.number.as_str()).collect::<Vec<_>>(),
        });
        node.store().log_access(record.to_string().as_bytes())?;
    }
    Ok(CasePage { rows, total })
}
