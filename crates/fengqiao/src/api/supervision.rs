//! The supervisors' breakdown as the API (`GET /api/stats/by-child`) and the console's 统计分析
//! page both show it: the node's measures child by child, the offices named from the live
//! roster (children admitted since the node opened, their children, and the offices revoked
//! since, whose cases still count under their last names), and each direct child's link health
//! from the running federation.

use chrono::{DateTime, Utc};
use fengqiao_case::model::roster::RosterMemberView;
use fengqiao_case::model::stats::{StatsBreakdown, SyncHealth};
use fengqiao_sync::PeerRelation;

use crate::federation::{FederationStatus, PeerLinkReport};

/// The offices the roster names, members and revoked alike; none without a federation.
pub(crate) fn roster_offices(federation: Option<&FederationStatus>) -> Vec<RosterMemberView> {
    federation
        .map(|federation| {
            let roster = federation.roster();
            let mut offices = roster.members;
            offices.extend(roster.revoked);
            offices
        })
        .unwrap_or_default()
}

/// Each direct child's link state, from the running federation. The measures stand without it:
/// if the links cannot be read, the children's links are left unknown.
pub(crate) async fn add_sync_health(
    breakdown: &mut StatsBreakdown,
    federation: Option<&FederationStatus>,
) {
    let Some(federation) = federation else {
        return;
    };
    match federation.peers().await {
        Ok(reports) => fill_sync_health(breakdown, &reports, crate::wall_clock::now()),
        Err(error) => tracing::warn!(%error, "cannot read the federation links for stats"),
    }
}

fn fill_sync_health(
    breakdown: &mut StatsBreakdown,
    reports: &[PeerLinkReport],
    now: DateTime<Utc>,
) {
    for child in &mut breakdown.children {
        let Some(node_id) = &child.node_id else {
            continue;
        };
        let Some(report) = reports
            .iter()
            .find(|report| report.relation == PeerRelation::Child && &report.node_id == node_id)
        else {
            continue;
        };
        child.sync = Some(SyncHealth {
            connected: report.connected,
            since: report.since,
            last_contact: if report.connected {
                Some(now)
            } else {
                report.since
            },
            last_successful_sync: report.last_successful_sync,
            pending_out: report.pending,
            pending_in: report.pending_inbound,
            quarantined: report.quarantined,
            refused_by_peer: report.refused_by_peer,
        });
    }
}
