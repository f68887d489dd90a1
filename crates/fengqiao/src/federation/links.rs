//! Per-peer link state, kept by the peer tasks and read by `fengqiao peers` (through
//! `GET /api/peers`, as [`PeerView`]) and the tests.

use fengqiao_case::model::roster::RebuildReport;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use fengqiao_sync::{PeerRelation, SessionStatistics};

/// What is known about one link, as shown to an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLinkReport {
    pub node_id: String,
    pub name: String,
    pub relation: PeerRelation,
    /// The peer's address on the current (or last) connection.
    pub address: Option<SocketAddr>,
    pub connected: bool,
    /// When the link last came up (if connected) or went down (if not); `None` if it never came up.
    pub since: Option<DateTime<Utc>>,
    /// Last time both sides were known to hold everything the other's feed owed them.
    pub last_successful_sync: Option<DateTime<Utc>>,
    /// Why the link last failed, for the operator; cleared when it comes up again.
    pub last_error: Option<String>,
    /// Cases changed here after the peer's persisted cursor that routing sends the peer (so the
    /// peer has not acknowledged them yet), counted among a capped number of feed entries.
    pub pending: u64,
    /// Documents the peer announced it had for us when the link came up, less those received
    /// since; zero once it has sent everything. Kept from the last connection while down.
    pub pending_inbound: u64,
    /// Changes from this peer refused on receipt and kept in the quarantine log (all time).
    pub quarantined: u64,
    /// Why the latest of them was refused.
    pub last_quarantine: Option<String>,
    /// Our cases whose changes this peer refused on receipt (it quarantined them and said so).
    pub refused_by_peer: u64,
    /// Connections made on this link since the node started.
    pub connections: u64,
    /// Counters of the current (or last) connection's session: frames, whole documents and
    /// change bytes sent, cases applied.
    pub session: SessionStatistics,
    /// The peer's wall clock minus ours, in milliseconds, as its last session measured it.
    pub clock_offset_ms: Option<i64>,
    /// On the parent's link of a node rebuilt from it (`init --restore-from-parent`): how the
    /// rebuild stands, what came back and which own numbers did not (`crate::rebuild`).
    pub rebuild: Option<RebuildReport>,
}

/// One link as `GET /api/peers` answers it and `fengqiao peers` prints it.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct PeerView {
    pub node_id: String,
    pub name: String,
    /// `parent` or `child`.
    #[schemars(extend("enum" = ["parent", "child"]))]
    pub relation: String,
    pub address: Option<String>,
    pub connected: bool,
    pub since: Option<DateTime<Utc>>,
    pub last_successful_sync: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Own changed cases routing sends the peer that it has not acknowledged yet (counted up to
    /// a cap).
    pub pending: u64,
    /// Changed cases the peer had for us at its last connection and has not sent yet (an upper
    /// bound: routing may withhold some).
    pub pending_inbound: u64,
    /// Changes from this peer refused on receipt (forged, altered or unauthorized events), all
    /// time; `fengqiao quarantine` lists them.
    #[serde(default)]
    pub quarantined: u64,
    #[serde(default)]
    pub last_quarantine: Option<String>,
    /// Our cases whose changes this peer refused on receipt: those changes did not travel on
    /// (`fengqiao case show` says why).
    #[serde(default)]
    pub refused_by_peer: u64,
    pub connections: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub cases_applied: u64,
    /// The peer's wall clock minus ours, in milliseconds, as the last connection measured it
    /// (`fengqiao peers`' CLOCK column); absent until it said its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
    /// On the parent's link of a node rebuilt from it: whether the rebuild has completed, how
    /// many cases came back and the office's own numbers that did not (changes made after the
    /// old node's last sync cannot be recovered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<RebuildReport>,
}

impl From<&PeerLinkReport> for PeerView {
    fn from(report: &PeerLinkReport) -> PeerView {
        PeerView {
            node_id: report.node_id.clone(),
            name: report.name.clone(),
            relation: match report.relation {
                PeerRelation::Parent => "parent".to_owned(),
                PeerRelation::Child => "child".to_owned(),
            },
            address: report.address.map(|address| address.to_string()),
            connected: report.connected,
            since: report.since,
            last_successful_sync: report.last_successful_sync,
            last_error: report.last_error.clone(),
            pending: report.pending,
            pending_inbound: report.pending_inbound,
            quarantined: report.quarantined,
            last_quarantine: report.last_quarantine.clone(),
            refused_by_peer: report.refused_by_peer,
            connections: report.connections,
            frames_sent: report.session.frames_sent,
            frames_received: report.session.frames_received,
            cases_applied: report.session.cases_applied,
            clock_offset_ms: report.clock_offset_ms,
            rebuild: report.rebuild.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct LinkEntry {
    report: PeerLinkReport,
    /// Which connection currently owns the entry: an old connection ending after a new one began
    /// must not mark the link down.
    generation: u64,
    peer_has_all: bool,
    peer_caught_up: bool,
}

/// Shared table of link states. Clones share the table.
#[derive(Debug, Clone, Default)]
pub struct LinkRegistry {
    entries: Arc<Mutex<BTreeMap<String, LinkEntry>>>,
    generations: Arc<Mutex<u64>>,
}

impl LinkRegistry {
    fn with_entries<T>(&self, change: impl FnOnce(&mut BTreeMap<String, LinkEntry>) -> T) -> T {
        // A panic in a peer task cannot leave a map entry half-written, so a poisoned lock is sound.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut entries)
    }

    /// Make the link known before it ever connects, so `peers` lists it.
    pub fn declare(&self, node_id: &str, name: &str, relation: PeerRelation) {
        self.with_entries(|entries| {
            entries
                .entry(node_id.to_owned())
                .or_insert_with(|| LinkEntry {
                    report: PeerLinkReport {
                        node_id: node_id.to_owned(),
                        name: name.to_owned(),
                        relation,
                        address: None,
                        connected: false,
                        since: None,
                        last_successful_sync: None,
                        last_error: None,
                        pending: 0,
                        pending_inbound: 0,
                        quarantined: 0,
                        refused_by_peer: 0,
                        last_quarantine: None,
                        connections: 0,
                        session: SessionStatistics::default(),
                        clock_offset_ms: None,
                        rebuild: None,
                    },
                    generation: 0,
                    peer_has_all: false,
                    peer_caught_up: false,
                });
        });
    }

    /// Drop a link that is no longer configured (a revoked child).
    pub fn forget(&self, node_id: &str) {
        self.with_entries(|entries| entries.remove(node_id));
    }

    /// A connection came up; returns its generation for the later calls.
    pub fn connected(&self, node_id: &str, address: SocketAddr) -> u64 {
        let generation = {
            let mut counter = self
                .generations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *counter += 1;
            *counter
        };
        self.with_entries(|entries| {
            if let Some(entry) = entries.get_mut(node_id) {
                entry.generation = generation;
                entry.peer_has_all = false;
                entry.peer_caught_up = false;
                entry.report.address = Some(address);
                entry.report.connected = true;
                entry.report.since = Some(crate::wall_clock::now());
                entry.report.connections += 1;
                entry.report.session = SessionStatistics::default();
                // The link is up again: an old failure would read as a current one.
                entry.report.last_error = None;
            }
        });
        generation
    }

    pub fn disconnected(&self, node_id: &str, generation: u64, error: Option<String>) {
        self.with_current(node_id, generation, |report| {
            report.connected = false;
            report.since = Some(crate::wall_clock::now());
            if error.is_some() {
                report.last_error = error;
            }
        });
    }

    /// A connection attempt failed before any session.
    pub fn failed_to_connect(&self, node_id: &str, error: String) {
        self.with_entries(|entries| {
            if let Some(entry) = entries.get_mut(node_id) {
                entry.report.last_error = Some(error);
            }
        });
    }

    /// The peer holds all we owe it (`peer_has_all`) or sent us all it owes (`!peer_has_all`);
    /// once both hold on one connection the link counts as synced.
    pub fn progress(&self, node_id: &str, generation: u64, peer_has_all: bool) {
        self.with_entries(|entries| {
            if let Some(entry) = entries.get_mut(node_id)
                && entry.generation == generation
            {
                if peer_has_all {
                    entry.peer_has_all = true;
                } else {
                    entry.peer_caught_up = true;
                    entry.report.pending_inbound = 0;
                }
                if entry.peer_has_all && entry.peer_caught_up {
                    entry.report.last_successful_sync = Some(crate::wall_clock::now());
                }
            }
        });
    }

    /// The peer announced how many changed documents it has for us.
    pub fn inbound_backlog(&self, node_id: &str, generation: u64, documents: u64) {
        self.with_current(node_id, generation, |report| {
            report.pending_inbound = documents
        });
    }

    /// The peer said its wall clock: it reads `offset_ms` ahead of ours. Kept after the link goes
    /// down (a clock does not right itself), replaced at the next connection.
    pub fn clock_offset(&self, node_id: &str, generation: u64, offset_ms: i64) {
        self.with_current(node_id, generation, |report| {
            report.clock_offset_ms = Some(offset_ms)
        });
    }

    /// One of the peer's documents arrived.
    pub fn received_one(&self, node_id: &str, generation: u64) {
        self.with_current(node_id, generation, |report| {
            report.pending_inbound = report.pending_inbound.saturating_sub(1);
        });
    }

    /// Change the report of `node_id`'s link if `generation` is still its current connection.
    fn with_current(
        &self,
        node_id: &str,
        generation: u64,
        change: impl FnOnce(&mut PeerLinkReport),
    ) {
        self.with_entries(|entries| {
            if let Some(entry) = entries.get_mut(node_id)
                && entry.generation == generation
            {
                change(&mut entry.report);
            }
        });
    }

    pub fn statistics(&self, node_id: &str, generation: u64, statistics: &SessionStatistics) {
        self.with_current(node_id, generation, |report| {
            if report.session != *statistics {
                report.session = statistics.clone();
            }
        });
    }

    /// Every declared link, without `pending` (the caller fills it from the store).
    pub fn snapshot(&self) -> Vec<PeerLinkReport> {
        self.with_entries(|entries| entries.values().map(|entry| entry.report.clone()).collect())
    }
}

impl crate::service::PeerClocks for LinkRegistry {
    fn offsets(&self) -> (Option<i64>, Vec<i64>) {
        self.with_entries(|entries| {
            let mut parent = None;
            let mut children = Vec::new();
            for entry in entries.values() {
                let Some(offset) = entry.report.clock_offset_ms else {
                    continue;
                };
                match entry.report.relation {
                    PeerRelation::Parent => parent = Some(offset),
                    PeerRelation::Child => children.push(offset),
                }
            }
            (parent, children)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(links: &LinkRegistry) -> u64 {
        links.snapshot()[0].pending_inbound
    }

    #[test]
    fn inbound_pending_counts_down_to_zero_and_an_old_connection_cannot_touch_it() {
        let links = LinkRegistry::default();
        links.declare("township", "芦荻山乡", PeerRelation::Parent);
        let address = SocketAddr::from(([127, 0, 0, 1], 7380));
        let first = links.connected("township", address);
        links.inbound_backlog("township", first, 3);
        links.received_one("township", first);
        assert_eq!(inbound(&links), 2);
        // A newer connection owns the entry; the old one's late news is ignored.
        let second = links.connected("township", address);
        links.inbound_backlog("township", second, 5);
        links.received_one("township", first);
        assert_eq!(inbound(&links), 5);
        links.disconnected("township", first, Some("stale".to_owned()));
        assert!(links.snapshot()[0].connected);
        // The peer says it sent everything: nothing is pending, whatever the count said.
        links.progress("township", second, false);
        assert_eq!(inbound(&links), 0);
        links.received_one("township", second);
        assert_eq!(inbound(&links), 0);
    }
}
