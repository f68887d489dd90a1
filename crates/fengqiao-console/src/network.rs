//! 网络状态: each federation link's health (connected or not and since when, the last
//! successful sync, what waits each way, changes refused either way, the peer's clock, the last
//! error) and the federation tree from the roster (who admitted whom), with the offices revoked.
//! The roster is read through the role table's `read_federation` row; the figures are the
//! federation's own report, the one `fengqiao peers` prints. An admin (the role table's
//! `reload_federation` row) admits a child office and revokes one here, each after a confirm
//! step, through the node's own `fengqiao admit` / `revoke` rule (`ConsoleBackend::admit_child`,
//! `revoke_child`); nobody else is shown the forms.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use fengqiao_accounts::Action;
use fengqiao_case::input_bounds::TextKind;
use fengqiao_case::model::roster::{RosterMemberView, RosterView};
use serde::Deserialize;

use crate::backend::{BackendErrorKind, ConsoleUser, LinkRelation, LinkStatus, NewChildOffice};
use crate::forms::{FormErrors, InputView, Spec, input, spec};
use crate::pages::{
    Backend, failure_page, html, language, signed_in, signed_in_form, signed_in_layout,
};
use crate::texts::{NetworkTexts, Texts, fill};
use crate::views::{Layout, date_time};

/// Tiers are three (county, township, village); deeper is indented as the deepest.
const MAX_INDENTED_DEPTH: usize = 4;

/// One link's row.
#[derive(Debug, Clone)]
pub struct LinkRowView {
    pub relation: String,
    pub name: String,
    /// `link-up` or `link-down`, with its word beside it.
    pub class: &'static str,
    pub state: String,
    pub since: String,
    pub last_sync: String,
    pub pending_out: u64,
    pub pending_in: u64,
    pub quarantined: u64,
    pub refused_by_peer: u64,
    pub clock: String,
    pub last_error: String,
}

/// One office of the tree, at its depth below the root.
#[derive(Debug, Clone)]
pub struct OfficeRowView {
    /// Below the root, capped at the depth the stylesheet indents (`depth-0` … `depth-4`).
    pub depth: usize,
    pub name: String,
    pub tier: String,
    pub region_code: String,
    pub admitted: String,
    pub this_office: bool,
}

#[derive(Debug, Template)]
#[template(path = "network.html")]
pub struct NetworkPage {
    pub layout: Layout,
    pub n: &'static NetworkTexts,
    pub links: Vec<LinkRowView>,
    /// None when the node runs no federation.
    pub offices: Option<Vec<OfficeRowView>>,
    pub revoked: Vec<OfficeRowView>,
    /// For an admin: the children to revoke and the form to admit one; None for anyone else.
    pub manage: Option<ManageView>,
}

/// What an admin may change on 网络: the admitted children, each with its revoke button, the
/// admit form as typed, and why the last change was refused.
#[derive(Debug, Clone)]
pub struct ManageView {
    pub children: Vec<ChildView>,
    pub fields: Vec<InputView>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ChildView {
    pub node_id: String,
    pub name: String,
    pub region_code: String,
}

/// The confirm step of an admission or a revocation: what is about to happen, and the form
/// that does it.
#[derive(Debug, Template)]
#[template(path = "network_confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    pub n: &'static NetworkTexts,
    pub question: String,
    /// `/network/admit` or `/network/revoke`.
    pub href: &'static str,
    /// The form's fields, sent again with `confirmed=1`.
    pub hidden: Vec<(&'static str, String)>,
}

/// The admit and revoke forms as the browser sends them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChildForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub region_code: String,
    /// Set by the confirm step's button; without it the page asks first.
    #[serde(default)]
    pub confirmed: String,
}

/// "快 2.5 秒" / "慢 3 秒" / "一致": how the peer's clock stands against this node's.
fn clock_text(n: &NetworkTexts, offset_ms: Option<i64>) -> String {
    match offset_ms {
        None => "—".to_owned(),
        Some(offset) if offset.abs() < 1000 => n.clock_same.clone(),
        Some(offset) => {
            let seconds = format!("{:.1}", offset.unsigned_abs() as f64 / 1000.0);
            let text = if offset > 0 {
                &n.clock_ahead
            } else {
                &n.clock_behind
            };
            fill(text, &[("seconds", &seconds)])
        }
    }
}

fn link_row(texts: &Texts, link: &LinkStatus) -> LinkRowView {
    let n = &texts.network;
    let t = &texts.ui;
    let optional_time = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map(date_time).unwrap_or_else(|| "—".to_owned())
    };
    LinkRowView {
        relation: match link.relation {
            LinkRelation::Parent => t.link_parent.clone(),
            LinkRelation::Child => t.link_child.clone(),
        },
        name: link.name.clone(),
        class: if link.connected {
            "link-up"
        } else {
            "link-down"
        },
        state: if link.connected {
            t.link_connected.clone()
        } else {
            t.link_offline.clone()
        },
        since: optional_time(link.since),
        last_sync: optional_time(link.detail.last_successful_sync),
        pending_out: link.pending_out,
        pending_in: link.pending_in,
        quarantined: link.detail.quarantined,
        refused_by_peer: link.detail.refused_by_peer,
        clock: clock_text(n, link.detail.clock_offset_ms),
        last_error: link.detail.last_error.clone().unwrap_or_default(),
    }
}

fn office_row(
    texts: &Texts,
    member: &RosterMemberView,
    depth: usize,
    this_node: &str,
) -> OfficeRowView {
    OfficeRowView {
        depth: depth.min(MAX_INDENTED_DEPTH),
        name: member.name.clone(),
        tier: Texts::term(&texts.tier, &member.tier),
        region_code: member.region_code.clone(),
        admitted: date_time(member.issued_at),
        this_office: member.node_id == this_node,
    }
}

/// The members as a tree: each office under the one that admitted it, siblings by region code;
/// an office whose admitter is not a member (an entry still on its way) starts a tree of its own.
fn tree(texts: &Texts, roster: &RosterView, this_node: &str) -> Vec<OfficeRowView> {
    let members: BTreeMap<&str, &RosterMemberView> = roster
        .members
        .iter()
        .map(|member| (member.node_id.as_str(), member))
        .collect();
    let mut children: BTreeMap<&str, Vec<&RosterMemberView>> = BTreeMap::new();
    let mut tops: Vec<&RosterMemberView> = Vec::new();
    for member in &roster.members {
        match member.admitted_by.as_deref() {
            Some(parent) if members.contains_key(parent) && parent != member.node_id => {
                children.entry(parent).or_default().push(member);
            }
            _ => tops.push(member),
        }
    }
    for list in children.values_mut() {
        list.sort_by(|left, right| left.region_code.cmp(&right.region_code));
    }
    tops.sort_by(|left, right| left.region_code.cmp(&right.region_code));
    let mut rows = Vec::new();
    let mut visited: BTreeSet<&str> = BTreeSet::new();
    // Depth-first with an explicit stack (a roster is small, but a loop in it must not recurse
    // for ever: each office is shown once).
    let mut stack: Vec<(&RosterMemberView, usize)> =
        tops.iter().rev().map(|member| (*member, 0)).collect();
    while let Some((member, depth)) = stack.pop() {
        if !visited.insert(member.node_id.as_str()) {
            continue;
        }
        rows.push(office_row(texts, member, depth, this_node));
        if let Some(below) = children.get(member.node_id.as_str()) {
            stack.extend(below.iter().rev().map(|child| (*child, depth + 1)));
        }
    }
    rows
}

/// `GET /network`: 网络状态.
pub async fn network(State(backend): State<Backend>, headers: HeaderMap) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    render_network(&backend, &headers, &user, None).await
}

/// May `user` admit and revoke offices (the role table's `reload_federation` row)?
fn manages_federation(user: &ConsoleUser) -> bool {
    user.account
        .actor()
        .permit(Action::ReloadFederation)
        .is_ok()
}

/// 网络状态, with `refused` (the answer's status, why, and the admit form as typed) when a
/// change was just refused.
async fn render_network(
    backend: &Backend,
    headers: &HeaderMap,
    user: &ConsoleUser,
    refused: Option<(StatusCode, String, ChildForm)>,
) -> Response {
    let language = language(headers);
    let texts = Texts::of(language);
    let n = &texts.network;
    let roster = match backend.roster(user).await {
        Ok(roster) => roster,
        Err(error) => return failure_page(backend, headers, Some(user), &error).await,
    };
    let links = match backend.links().await {
        Ok(links) => links,
        Err(error) => return failure_page(backend, headers, Some(user), &error).await,
    };
    let this_node = backend.office().node_id;
    let offices = roster
        .as_ref()
        .map(|roster| tree(texts, roster, &this_node));
    let revoked = roster
        .as_ref()
        .map(|roster| {
            roster
                .revoked
                .iter()
                .map(|member| office_row(texts, member, 0, &this_node))
                .collect()
        })
        .unwrap_or_default();
    let (status, error, typed) = match refused {
        Some((status, why, typed)) => (status, Some(why), typed),
        None => (StatusCode::OK, None, ChildForm::default()),
    };
    let manage = manages_federation(user).then(|| {
        let errors = FormErrors::default();
        let field = |name: &str, label: &str, kind: TextKind, value: &str| {
            let mut field = input(
                Spec {
                    required: true,
                    ..spec(name, label, kind)
                },
                value,
                &errors,
            );
            field.id = format!("admit-{name}");
            field
        };
        ManageView {
            children: backend
                .neighbours()
                .children
                .into_iter()
                .map(|child| ChildView {
                    node_id: child.node_id,
                    name: child.name,
                    region_code: child.region_code,
                })
                .collect(),
            fields: vec![
                field(
                    "node_id",
                    &n.child_node_id,
                    TextKind::Identifier,
                    &typed.node_id,
                ),
                field("name", &n.child_name, TextKind::Line, &typed.name),
                field(
                    "region_code",
                    &n.region_code,
                    TextKind::Identifier,
                    &typed.region_code,
                ),
            ],
            error,
        }
    });
    let layout =
        signed_in_layout(backend, headers, language, user, "network", n.title.clone()).await;
    html(
        status,
        &NetworkPage {
            layout,
            n,
            links: links.iter().map(|link| link_row(texts, link)).collect(),
            offices,
            revoked,
            manage,
        },
    )
}

/// Which change a form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Admit,
    Revoke,
}

/// `POST /network/admit`: with `confirmed`, admit the child office the form names (as
/// `fengqiao admit` does) and go back to 网络; without, ask first.
pub async fn admit(
    State(backend): State<Backend>,
    headers: HeaderMap,
    body: Result<Form<ChildForm>, FormRejection>,
) -> Response {
    change(backend, headers, body, Change::Admit).await
}

/// `POST /network/revoke`: with `confirmed`, revoke the admitted child the form names (as
/// `fengqiao revoke` does) and go back to 网络; without, ask first.
pub async fn revoke(
    State(backend): State<Backend>,
    headers: HeaderMap,
    body: Result<Form<ChildForm>, FormRejection>,
) -> Response {
    change(backend, headers, body, Change::Revoke).await
}

async fn change(
    backend: Backend,
    headers: HeaderMap,
    body: Result<Form<ChildForm>, FormRejection>,
    change: Change,
) -> Response {
    let (user, form) =
        match signed_in_form(&backend, &headers, body, |form: &ChildForm| &form.csrf).await {
            Ok(signed_in) => signed_in,
            Err(response) => return response,
        };
    let language = language(&headers);
    let texts = Texts::of(language);
    let n = &texts.network;
    if form.confirmed.is_empty() {
        // Ask first; the question names the office as the roster knows it when it is one.
        let name = match change {
            Change::Admit => form.name.trim().to_owned(),
            Change::Revoke => backend
                .neighbours()
                .children
                .into_iter()
                .find(|child| child.node_id == form.node_id.trim())
                .map_or_else(|| form.node_id.trim().to_owned(), |child| child.name),
        };
        let (question, href, hidden) = match change {
            Change::Admit => (
                fill(
                    &n.confirm_admit,
                    &[
                        ("name", &name),
                        ("node_id", &form.node_id.trim()),
                        ("region", &form.region_code.trim()),
                    ],
                ),
                "/network/admit",
                vec![
                    ("node_id", form.node_id.clone()),
                    ("name", form.name.clone()),
                    ("region_code", form.region_code.clone()),
                ],
            ),
            Change::Revoke => (
                fill(
                    &n.confirm_revoke,
                    &[("name", &name), ("node_id", &form.node_id.trim())],
                ),
                "/network/revoke",
                vec![("node_id", form.node_id.clone())],
            ),
        };
        let layout = signed_in_layout(
            &backend,
            &headers,
            language,
            &user,
            "network",
            n.title.clone(),
        )
        .await;
        return html(
            StatusCode::OK,
            &ConfirmPage {
                layout,
                n,
                question,
                href,
                hidden,
            },
        );
    }
    let done = match change {
        Change::Admit => {
            let child = NewChildOffice {
                node_id: form.node_id.trim().to_owned(),
                name: form.name.trim().to_owned(),
                region_code: form.region_code.trim().to_owned(),
            };
            backend.admit_child(&user, child).await
        }
        Change::Revoke => {
            backend
                .revoke_child(&user, form.node_id.trim().to_owned())
                .await
        }
    };
    let error = match done {
        Ok(_) => return Redirect::to("/network").into_response(),
        Err(error) => error,
    };
    let status = match error.kind {
        BackendErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        BackendErrorKind::Refused => StatusCode::CONFLICT,
        _ => return failure_page(&backend, &headers, Some(&user), &error).await,
    };
    let refused_text = match change {
        Change::Admit => &n.admit_refused,
        Change::Revoke => &n.revoke_refused,
    };
    let why = fill(refused_text, &[("why", &error.message)]);
    // A refused revocation keeps nothing typed in the admit form.
    let typed = match change {
        Change::Admit => form,
        Change::Revoke => ChildForm::default(),
    };
    render_network(&backend, &headers, &user, Some((status, why, typed))).await
}
