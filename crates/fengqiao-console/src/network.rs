//! 网络状态: each federation link's health (connected or not and since when, the last
//! successful sync, what waits each way, changes refused either way, the peer's clock, the last
//! error) and the federation tree from the roster (who admitted whom), with the offices revoked.
//! The roster is read through the role table's `read_federation` row; the figures are the
//! federation's own report, the one `fengqiao peers` prints.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use fengqiao_case::model::roster::{RosterMemberView, RosterView};

use crate::backend::{LinkRelation, LinkStatus};
use crate::pages::{Backend, failure_page, html, language, signed_in, signed_in_layout};
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
    let language = language(&headers);
    let texts = Texts::of(language);
    let roster = match backend.roster(&user).await {
        Ok(roster) => roster,
        Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
    };
    let links = match backend.links().await {
        Ok(links) => links,
        Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
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
    let layout = signed_in_layout(
        &backend,
        &headers,
        language,
        &user,
        "network",
        texts.network.title.clone(),
    )
    .await;
    html(
        StatusCode::OK,
        &NetworkPage {
            layout,
            n: &texts.network,
            links: links.iter().map(|link| link_row(texts, link)).collect(),
            offices,
            revoked,
        },
    )
}
