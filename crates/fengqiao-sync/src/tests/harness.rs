//! An in-memory federation: one replica per office, one connection per tree link, a virtual
//! clock (and each office's wall clock, which a test may set wrong), and faults. Frames go through the real codec on the way.
//!
//! A lost frame is modelled as the connection dropping (as on QUIC, where a stream does not lose
//! bytes but a connection can die): both sessions are discarded and the next round reconnects
//! from the persisted per-peer state. Duplicated and reordered frames are delivered inside a live
//! connection, which the sessions must tolerate.
//!
//! Each office also keeps a real [`Roster`], and each connection runs the roster exchange beside
//! the sync session (frames in order, as on their own QUIC stream), so policies the county issues
//! travel down as they do between nodes; when an office's roster takes new policy versions, its
//! replica derives with them and its sessions ask again for what they deferred.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use fengqiao_case::clock::judge_clock;
use fengqiao_case::model::ClockHealth;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use fengqiao_case::WarningThresholds;
use fengqiao_case::model::Limits;
use fengqiao_case::model::roster::RosterFrame;

use super::support::{OFFICES, describe, node_id, replica_for, signer_of};
use crate::codec::FrameCodec;
use crate::replica::InMemoryReplica;
use crate::roster::{Admission, Roster, RosterEvent, RosterExchange};
use crate::routing::PeerRelation;
use crate::session::{Session, SessionConfig, SyncEvent};

#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Chance that a frame is lost, which drops its connection.
    pub loss: f64,
    /// Chance that a frame is delivered twice.
    pub duplicate: f64,
    /// Chance that a frame overtakes the one queued before it.
    pub reorder: f64,
}

#[derive(Debug)]
struct Connection {
    parent_session: Session,
    child_session: Session,
    to_parent: VecDeque<Vec<u8>>,
    to_child: VecDeque<Vec<u8>>,
    parent_roster: RosterExchange,
    child_roster: RosterExchange,
}

#[derive(Debug)]
struct Link {
    parent: usize,
    child: usize,
    up: bool,
    connection: Option<Connection>,
}

/// Totals over the whole run, for cost assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub frames: u64,
    pub changes_frames: u64,
    pub bytes: u64,
    pub connections_dropped: u64,
}

#[derive(Debug)]
pub struct Federation {
    pub replicas: Vec<InMemoryReplica>,
    /// Each office's roster: the county's starts with every office's entry (each signed by its
    /// parent) and trusts itself; the others learn the root and the entries from their parent.
    pub rosters: Vec<Roster>,
    links: Vec<Link>,
    pub now: Instant,
    /// When the run started, in monotonic and in real (wall) time.
    started: Instant,
    pub real_start: DateTime<Utc>,
    /// Each office's clock error: its wall clock minus real time (zero unless a test skews it).
    pub clock_errors: Vec<TimeDelta>,
    pub faults: Faults,
    pub traffic: Traffic,
    pub failures: Vec<String>,
    codec: FrameCodec,
    rng: SmallRng,
    config: SessionConfig,
}

impl Federation {
    /// The offices `members` of [`OFFICES`], linked along the tree (a member's parent must be a
    /// member too for the link to exist), all links up.
    pub fn new(members: &[usize], seed: u64) -> Federation {
        let replicas = (0..OFFICES.len()).map(replica_for).collect();
        let rosters = initial_rosters();
        let links = members
            .iter()
            .filter_map(|&child| {
                let parent = OFFICES[child].parent?;
                members.contains(&parent).then_some(Link {
                    parent,
                    child,
                    up: true,
                    connection: None,
                })
            })
            .collect();
        let now = Instant::now();
        Federation {
            replicas,
            rosters,
            links,
            now,
            started: now,
            real_start: super::support::instant(2, 9),
            clock_errors: vec![TimeDelta::zero(); OFFICES.len()],
            faults: Faults::default(),
            traffic: Traffic::default(),
            failures: Vec::new(),
            codec: FrameCodec::default(),
            rng: SmallRng::seed_from_u64(seed),
            config: SessionConfig::default(),
        }
    }

    /// The county issues the next policy version (its roster signs and keeps it) and tells its
    /// links, as `fengqiao policy issue` does. Returns the version.
    pub fn issue_policy(&mut self, limits: Limits, now: DateTime<Utc>) -> u64 {
        let county = 0;
        let signed = self.rosters[county]
            .issue_policy(
                &signer_of(county),
                limits,
                WarningThresholds::default(),
                "测试政策".to_owned(),
                now,
            )
            .unwrap_or_else(|error| panic!("the county issues a policy: {error}"));
        self.policies_changed(county);
        signed.policy.version
    }

    /// The shell's duty when an office's roster took new policy versions: derive with them,
    /// announce the new digest on every link, ask again for what was deferred.
    fn policies_changed(&mut self, office: usize) {
        self.replicas[office].set_policies(self.rosters[office].policy_book());
        for link in &mut self.links {
            let Some(connection) = link.connection.as_mut() else {
                continue;
            };
            if link.parent == office {
                connection
                    .parent_roster
                    .on_roster_change(&self.rosters[office]);
                connection
                    .parent_session
                    .retry_deferred(&mut self.replicas[office]);
            }
            if link.child == office {
                connection
                    .child_roster
                    .on_roster_change(&self.rosters[office]);
                connection
                    .child_session
                    .retry_deferred(&mut self.replicas[office]);
            }
        }
    }

    /// Move every queued roster frame of link `index` to the other end, in order. Returns
    /// whether anything moved.
    fn exchange_rosters(&mut self, index: usize) -> bool {
        let (parent, child) = (self.links[index].parent, self.links[index].child);
        let mut moved = false;
        loop {
            let Some(connection) = self.links[index].connection.as_mut() else {
                return moved;
            };
            let mut frames: Vec<(usize, RosterFrame)> = Vec::new();
            while let Some(frame) = connection.parent_roster.poll_transmit() {
                frames.push((child, frame));
            }
            while let Some(frame) = connection.child_roster.poll_transmit() {
                frames.push((parent, frame));
            }
            if frames.is_empty() {
                return moved;
            }
            moved = true;
            for (receiver, frame) in frames {
                let Some(connection) = self.links[index].connection.as_mut() else {
                    return moved;
                };
                let exchange = if receiver == parent {
                    &mut connection.parent_roster
                } else {
                    &mut connection.child_roster
                };
                exchange.handle_frame(&mut self.rosters[receiver], frame);
                let mut changed = false;
                while let Some(event) = exchange.poll_event() {
                    match event {
                        RosterEvent::Changed { .. }
                        | RosterEvent::PoliciesChanged { .. }
                        | RosterEvent::RootPinned { .. } => changed = true,
                        RosterEvent::Refused { reasons } => self.failures.push(format!(
                            "{} refused roster items: {reasons:?}",
                            node_id(receiver)
                        )),
                        RosterEvent::RootMismatch { .. } | RosterEvent::Failed { .. } => {
                            self.failures.push(format!(
                                "roster exchange at {}: {event:?}",
                                node_id(receiver)
                            ))
                        }
                    }
                }
                if changed {
                    self.policies_changed(receiver);
                }
            }
        }
    }

    /// What `office`'s wall clock reads now: real time plus its error.
    pub fn wall_clock(&self, office: usize) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.now.saturating_duration_since(self.started))
            .unwrap_or_default();
        self.real_start + elapsed + self.clock_errors[office]
    }

    /// How `office`'s clock stands against its peers', from what its live sessions measured,
    /// as the shell judges it.
    pub fn clock_health(&self, office: usize) -> Option<ClockHealth> {
        let mut parent = None;
        let mut children = Vec::new();
        for link in &self.links {
            let Some(connection) = &link.connection else {
                continue;
            };
            if link.child == office {
                parent = connection.child_session.peer_clock_offset_ms();
            }
            if link.parent == office {
                children.extend(connection.parent_session.peer_clock_offset_ms());
            }
        }
        judge_clock(parent, &children, false)
    }

    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// (parent, child) of each link.
    pub fn link_ends(&self) -> Vec<(usize, usize)> {
        self.links
            .iter()
            .map(|link| (link.parent, link.child))
            .collect()
    }

    pub fn cut(&mut self, link: usize) {
        if let Some(link) = self.links.get_mut(link) {
            link.up = false;
            if link.connection.take().is_some() {
                self.traffic.connections_dropped += 1;
            }
        }
    }

    pub fn heal(&mut self, link: usize) {
        if let Some(link) = self.links.get_mut(link) {
            link.up = true;
        }
    }

    pub fn heal_all(&mut self) {
        for link in &mut self.links {
            link.up = true;
        }
    }

    /// Drop a live connection without cutting the link (a crash or a lost frame).
    pub fn drop_connection(&mut self, link: usize) {
        if let Some(link) = self.links.get_mut(link)
            && link.connection.take().is_some()
        {
            self.traffic.connections_dropped += 1;
        }
    }

    /// The shell's duty after a local edit: tell every session of that node.
    pub fn local_change(&mut self, office: usize) {
        for link in &mut self.links {
            let Some(connection) = link.connection.as_mut() else {
                continue;
            };
            if link.parent == office {
                connection
                    .parent_session
                    .on_local_change(&mut self.replicas[office], self.now);
            }
            if link.child == office {
                connection
                    .child_session
                    .on_local_change(&mut self.replicas[office], self.now);
            }
        }
    }

    /// One round: connect links that are up, move every queued frame one hop, advance the
    /// clock. Returns whether anything moved.
    pub fn round(&mut self) -> bool {
        self.now += Duration::from_millis(1);
        let mut moved = false;
        for index in 0..self.links.len() {
            moved |= self.connect(index);
            moved |= self.exchange_rosters(index);
            moved |= self.collect_transmits(index);
            moved |= self.deliver(index);
        }
        moved
    }

    /// Rounds until nothing moves; panics if that takes more than `max_rounds`.
    pub fn run_until_quiet(&mut self, max_rounds: usize) -> usize {
        for round in 0..max_rounds {
            if !self.round() {
                return round;
            }
        }
        panic!("the federation did not settle within {max_rounds} rounds");
    }

    fn connect(&mut self, index: usize) -> bool {
        let link = &mut self.links[index];
        if !link.up || link.connection.is_some() {
            return false;
        }
        let (parent, child) = (link.parent, link.child);
        let elapsed = TimeDelta::from_std(self.now.saturating_duration_since(self.started))
            .unwrap_or_default();
        let real = self.real_start + elapsed;
        let parent_session = Session::new(
            self.config.clone(),
            node_id(parent),
            describe(child, PeerRelation::Child),
            &mut self.replicas[parent],
            self.now,
            real + self.clock_errors[parent],
        );
        let child_session = Session::new(
            self.config.clone(),
            node_id(child),
            describe(parent, PeerRelation::Parent),
            &mut self.replicas[child],
            self.now,
            real + self.clock_errors[child],
        );
        match (parent_session, child_session) {
            (Ok(parent_session), Ok(child_session)) => {
                link.connection = Some(Connection {
                    parent_session,
                    child_session,
                    to_parent: VecDeque::new(),
                    to_child: VecDeque::new(),
                    parent_roster: RosterExchange::new(PeerRelation::Child, &self.rosters[parent]),
                    child_roster: RosterExchange::new(PeerRelation::Parent, &self.rosters[child]),
                });
                true
            }
            (Err(error), _) | (_, Err(error)) => {
                self.failures
                    .push(format!("cannot start a session: {error}"));
                false
            }
        }
    }

    fn collect_transmits(&mut self, index: usize) -> bool {
        let faults = self.faults;
        let Some(connection) = self.links[index].connection.as_mut() else {
            return false;
        };
        let mut moved = false;
        let mut outgoing = Vec::new();
        while let Some(frame) = connection.parent_session.poll_transmit() {
            outgoing.push((false, frame));
        }
        while let Some(frame) = connection.child_session.poll_transmit() {
            outgoing.push((true, frame));
        }
        for (to_parent, frame) in outgoing {
            moved = true;
            self.traffic.frames += 1;
            if matches!(frame, fengqiao_case::model::sync::SyncFrame::Changes { .. }) {
                self.traffic.changes_frames += 1;
            }
            let bytes = match self.codec.encode(&frame) {
                Ok(bytes) => bytes,
                Err(error) => {
                    self.failures
                        .push(format!("cannot encode a frame: {error}"));
                    continue;
                }
            };
            self.traffic.bytes += bytes.len() as u64;
            let queue = if to_parent {
                &mut connection.to_parent
            } else {
                &mut connection.to_child
            };
            if self.rng.random_bool(faults.duplicate) {
                queue.push_back(bytes.clone());
            }
            if !queue.is_empty() && self.rng.random_bool(faults.reorder) {
                let last = queue.len() - 1;
                queue.push_back(bytes);
                queue.swap(last, last + 1);
            } else {
                queue.push_back(bytes);
            }
        }
        moved
    }

    fn deliver(&mut self, index: usize) -> bool {
        let (parent, child) = (self.links[index].parent, self.links[index].child);
        let mut moved = false;
        for to_parent in [true, false] {
            let (receiver, sender_name) = if to_parent {
                (parent, node_id(child))
            } else {
                (child, node_id(parent))
            };
            loop {
                let lost = self.faults.loss > 0.0 && self.rng.random_bool(self.faults.loss);
                let Some(connection) = self.links[index].connection.as_mut() else {
                    return moved;
                };
                let queue = if to_parent {
                    &mut connection.to_parent
                } else {
                    &mut connection.to_child
                };
                let Some(bytes) = queue.pop_front() else {
                    break;
                };
                moved = true;
                if lost {
                    self.drop_connection(index);
                    return moved;
                }
                let frame = match self.codec.decode(&bytes) {
                    Ok((frame, used)) if used == bytes.len() => frame,
                    Ok(_) => {
                        self.failures
                            .push(format!("a frame from {sender_name} had trailing bytes"));
                        continue;
                    }
                    Err(error) => {
                        self.failures.push(format!(
                            "a frame from {sender_name} did not decode: {error}"
                        ));
                        continue;
                    }
                };
                let session = if to_parent {
                    &mut connection.parent_session
                } else {
                    &mut connection.child_session
                };
                session.handle_frame(&mut self.replicas[receiver], self.now, frame);
                let mut changed = false;
                let mut failed = false;
                while let Some(event) = session.poll_event() {
                    match event {
                        SyncEvent::CaseReceived { changed: true, .. } => changed = true,
                        SyncEvent::Failed { message } => {
                            self.failures.push(format!(
                                "session at {} with {sender_name} failed: {message}",
                                node_id(receiver)
                            ));
                            failed = true;
                        }
                        SyncEvent::CaseSkipped { case, reason } => self
                            .failures
                            .push(format!("{} skipped {case}: {reason}", node_id(receiver))),
                        _ => {}
                    }
                }
                if failed {
                    self.drop_connection(index);
                    return moved;
                }
                if changed {
                    self.local_change(receiver);
                }
            }
        }
        moved
    }

    /// Frames sent so far on a live connection, (parent side, child side).
    pub fn frames_sent(&self, link: usize) -> Option<(u64, u64)> {
        let connection = self.links.get(link)?.connection.as_ref()?;
        Some((
            connection.parent_session.statistics().frames_sent,
            connection.child_session.statistics().frames_sent,
        ))
    }
}

impl Federation {
    /// Feed entries walked so far on a live connection, (parent side, child side).
    pub fn feed_entries_walked(&self, link: usize) -> Option<(u64, u64)> {
        let connection = self.links.get(link)?.connection.as_ref()?;
        Some((
            connection.parent_session.statistics().feed_entries_walked,
            connection.child_session.statistics().feed_entries_walked,
        ))
    }
}

/// The county's roster holds every office's entry, each signed by its parent (the county signs
/// its own), and trusts itself; every other office starts with nothing and no root.
fn initial_rosters() -> Vec<Roster> {
    let county = 0;
    let mut county_roster = Roster::new(Some(node_id(county).to_owned()));
    let issued_at = DateTime::<Utc>::UNIX_EPOCH;
    for (office, description) in OFFICES.iter().enumerate() {
        let signer = signer_of(description.parent.unwrap_or(county));
        let admission = Admission {
            node_id: node_id(office).to_owned(),
            name: description.name.to_owned(),
            aliases: Vec::new(),
            tier: description.tier,
            region_code: description.region_code.to_owned(),
            revoked: false,
            successor_of: None,
        };
        county_roster
            .issue(&signer, admission, issued_at)
            .unwrap_or_else(|error| panic!("office {office}'s entry is signed: {error}"));
    }
    let mut rosters = vec![county_roster];
    rosters.extend((1..OFFICES.len()).map(|_| Roster::new(None)));
    rosters
}
