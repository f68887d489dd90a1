//! One connection's sync state machine, sans IO: frames in, frames and events out.
//!
//! Both sides push. Each walks its own change feed from the cursor it persisted for this peer,
//! sends every case routing lets the peer have and the peer is not known to hold at our heads,
//! keeps at most a window of sends unacknowledged, and moves the cursor when everything at or
//! below a sequence is acknowledged. A reconnect with nothing changed is therefore a hello and a
//! caught-up each way, whatever the number of cases; a reconnect after a week walks only the feed
//! entries of that week.
//!
//! The shell owns the transport and the clock: it feeds decoded frames to
//! [`Session::handle_frames`], sends what [`Session::poll_transmit`] yields, reports storage
//! advances with [`Session::on_local_change`], and acts on [`Session::poll_event`]. A connection
//! that breaks is simply dropped; the next session starts from the persisted state.
//!
//! Acknowledged means durable, and the core keeps that promise itself: applies are not durable
//! one by one ([`Replica::apply`]); `handle_frames` applies its whole batch, then calls
//! [`Replica::make_durable`] once before it returns, so no acknowledgement of the batch reaches
//! `poll_transmit` before the disk sync, and a failed sync fails the session with the
//! acknowledgements dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use fengqiao_case::model::sync::{ChangeHead, FeedSequence, SYNC_PROTOCOL_VERSION, SyncFrame};
use fengqiao_case::model::{CaseId, NodeId};

use crate::codec::DEFAULT_MAX_FRAME_SIZE;
use crate::replica::{FeedEntry, Replica, ReplicaError};
use crate::routing::{CaseRouting, PeerDescription, admit_new_case_from, route};

/// Most feed entries counted for the backlog announced at connection.
pub const BACKLOG_COUNT_CAP: usize = 100_000;

/// Room left in a frame for everything but the change bytes (case number, heads, framing).
const FRAME_OVERHEAD_ALLOWANCE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Most sends awaiting an acknowledgement at once.
    pub window: usize,
    /// Feed entries read per storage call.
    pub feed_batch: usize,
    /// The peer must say hello within this long after the session starts.
    pub hello_timeout: Duration,
    /// With sends outstanding, the peer must answer something within this long.
    pub stall_timeout: Duration,
    /// Rounds of `Need` for one case before this side gives the case up for the session.
    pub max_need_rounds: u32,
    /// Largest frame the peer accepts; a case whose bytes would not fit is reported, not sent.
    pub max_frame_size: usize,
    /// A send the peer did not take in full (deferred, refused, or acknowledged with heads
    /// that lack what was sent) is sent again after this long, then after twice as long each
    /// time, up to `resend_after_max`.
    pub resend_after: Duration,
    pub resend_after_max: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            window: 64,
            feed_batch: 256,
            hello_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(120),
            max_need_rounds: 3,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            resend_after: Duration::from_secs(2),
            resend_after_max: Duration::from_secs(300),
        }
    }
}

/// What happened, for the shell to log, show in `fengqiao peers`, or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    PeerHello {
        node_id: NodeId,
        feed_head: FeedSequence,
    },
    /// The peer has up to `documents` changed documents to send us (its count at connection).
    PeerBacklog { documents: u64 },
    /// The peer said its wall clock: it reads `offset_ms` ahead of ours (negative: behind).
    /// The shell judges its own clock from these (`fengqiao_case::clock::judge_clock`).
    PeerClock { offset_ms: i64 },
    /// A peer's changes were applied (`changed`: our document moved, so the feed advanced and the
    /// shell should call `on_local_change` on its other sessions).
    CaseReceived {
        case: CaseId,
        created: bool,
        changed: bool,
    },
    /// The peer has sent us everything in its feed up to `feed_head`.
    PeerCaughtUp { feed_head: FeedSequence },
    /// The peer holds everything our feed up to `cursor` should give it.
    PeerHasAll { cursor: FeedSequence },
    /// A case was not exchanged in this session (refused bytes, unresolvable dependencies, or too
    /// large for one frame); the session goes on with the other cases.
    CaseSkipped { case: CaseId, reason: String },
    /// Some of the peer's changes to a case failed the signature or authority checks and were
    /// quarantined (each reason names the change's refused events); the rest was applied.
    ChangesQuarantined { case: CaseId, reasons: Vec<String> },
    /// The peer refused some of our changes to a case on receipt (quarantined them); each
    /// reason names the refused events and the rule. The replica has recorded it.
    ChangesRefusedByPeer { case: CaseId, reasons: Vec<String> },
    /// Some of the peer's changes to a case wait until this node knows more (their maker is not
    /// in its roster yet); [`Session::retry_deferred`] asks for them again.
    CaseDeferred { case: CaseId, reason: String },
    /// The session is over; the shell closes the connection.
    Failed { message: String },
}

/// Counters for tests, benchmarks and `fengqiao peers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStatistics {
    pub frames_sent: u64,
    pub changes_frames_sent: u64,
    pub whole_documents_sent: u64,
    pub change_bytes_sent: u64,
    pub frames_received: u64,
    /// Bytes of automerge changes and documents the peer sent, kept or not.
    pub change_bytes_received: u64,
    pub cases_applied: u64,
    pub feed_entries_walked: u64,
    /// Received changes not kept because they failed the checks on receipt.
    pub changes_quarantined: u64,
    /// Changes we sent that the peer refused on receipt (it said so in `ChangesRefused`).
    pub changes_refused_by_peer: u64,
    /// Sends the peer did not take in full (deferred, refused, or acknowledged short), each
    /// then sent again.
    pub sends_not_taken: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    Open,
    Failed,
}

#[derive(Debug, Clone)]
struct InFlight {
    case: CaseId,
    sent_heads: Vec<ChangeHead>,
    /// When it was sent, in the order of this session's sends: our heads only grow, so a later
    /// send of a case carries everything an earlier one did.
    sent_order: u64,
}

/// A send that ended without the peer holding what was sent: held against the cursor, so that
/// `pending` counts it and a reconnect walks it again, and sent again at `resend_at`.
///
/// Architecture invariant: the cursor passes a feed entry only once the peer is known to hold
/// the case at least at the heads that entry stood for (acknowledged with heads containing
/// them, or recorded as the peer's), or the peer refused those changes on receipt and said so
/// (`ChangesRefused`), or routing withholds the case from it. An acknowledgement alone is not
/// enough: a peer acknowledges what it kept, which may be less than what it was sent.
#[derive(Debug, Clone)]
struct Unsettled {
    case: CaseId,
    sent_order: u64,
    resend_at: Instant,
}

#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    local_node_id: NodeId,
    peer: PeerDescription,
    phase: Phase,
    started_at: Instant,
    /// Our wall clock when the session started: with the monotonic time since, our wall clock
    /// when the peer's [`SyncFrame::Clock`] arrives, without reading a clock here.
    started_wall: DateTime<Utc>,
    /// The peer's wall clock minus ours, in milliseconds, once it said it.
    peer_clock_offset_ms: Option<i64>,
    /// Where the stall timeout counts from: the last frame heard from the peer, or the send that
    /// ended a quiet spell (nothing outstanding) if that came later. An idle link owes nothing,
    /// so its quiet time must not count against the first send after it.
    stall_clock_from: Instant,
    transmit: VecDeque<SyncFrame>,
    events: VecDeque<SyncEvent>,
    /// Persisted: every case at or below this own feed sequence is acknowledged or not owed.
    cursor: FeedSequence,
    /// Highest own feed sequence already considered in this session.
    walked_to: FeedSequence,
    /// Feed entries read from storage and not yet considered, and the highest sequence read:
    /// a full window leaves the rest of a read for later instead of reading it again.
    feed_buffer: VecDeque<FeedEntry>,
    read_to: FeedSequence,
    /// Nothing in the buffer and nothing in the feed beyond `read_to`.
    feed_exhausted: bool,
    in_flight: BTreeMap<FeedSequence, InFlight>,
    /// Sends the peer did not take in full, by feed sequence (see [`Unsettled`]).
    unsettled: BTreeMap<FeedSequence, Unsettled>,
    /// How many times each case was sent again for not being taken, for the back-off.
    resends: HashMap<CaseId, u32>,
    /// Cases the peer refused changes of on receipt (`ChangesRefused`) whose acknowledgement has
    /// not come yet: that acknowledgement settles the send, since sending the refused changes
    /// again would only be refused again.
    refused_there: BTreeSet<CaseId>,
    next_send_order: u64,
    /// The time of the latest call from the shell (the session reads no clock).
    now: Instant,
    /// Heads sent in this session and not yet acknowledged: the base for the next send of the same
    /// case, so a case changing twice in a row is not sent whole twice.
    assumed_peer_heads: HashMap<CaseId, Vec<ChangeHead>>,
    /// Cases we sent a `Need` for and have not yet received a complete answer to.
    need_rounds: HashMap<CaseId, NeedRounds>,
    /// Cases with changes the replica deferred (see [`ReplicaError::Deferred`]): asked for again
    /// by [`Session::retry_deferred`].
    deferred: BTreeSet<CaseId>,
    /// Something was applied in this batch: it ends with [`Replica::make_durable`], before any
    /// acknowledgement of it goes out.
    applied_not_durable: bool,
    /// Whether changes went out since the last `CaughtUp`: announcing again only then keeps the
    /// cursor's advance over echoes and withheld cases from costing a frame each.
    sent_since_caught_up: bool,
    statistics: SessionStatistics,
}

/// What a received `Changes` frame says about itself besides its bytes.
struct ChangesShape {
    base_heads: Vec<ChangeHead>,
    sender_heads: Vec<ChangeHead>,
    whole: bool,
}

/// A `Need` we sent for a case and the rounds spent on it so far.
#[derive(Debug)]
struct NeedRounds {
    rounds: u32,
    /// The heads we said we had: the answer is computed from exactly these (whole when empty).
    asked_from: Vec<ChangeHead>,
    /// Frames (feed sequence, sender heads) that failed to apply while the `Need` was out and
    /// are not its answer: settled when the answer arrives.
    parked: Vec<(FeedSequence, Vec<ChangeHead>)>,
}

impl NeedRounds {
    /// Whether a `Changes` frame with this base can be the answer to this `Need`.
    fn answered_by(&self, base_heads: &[ChangeHead], whole: bool) -> bool {
        if self.asked_from.is_empty() {
            whole
        } else {
            !whole && base_heads == self.asked_from.as_slice()
        }
    }
}

impl Session {
    /// A session for a new connection to `peer`; it starts from the cursor persisted for the peer
    /// and queues our hello, then our wall clock `wall_now` (read by the shell at `now`).
    pub fn new(
        config: SessionConfig,
        local_node_id: &str,
        peer: PeerDescription,
        replica: &mut dyn Replica,
        now: Instant,
        wall_now: DateTime<Utc>,
    ) -> Result<Session, ReplicaError> {
        let cursor = replica.peer_cursor(&peer.node_id)?;
        let feed_head = replica.feed_head()?;
        let mut session = Session {
            config,
            local_node_id: local_node_id.to_owned(),
            peer,
            phase: Phase::AwaitingHello,
            started_at: now,
            started_wall: wall_now,
            peer_clock_offset_ms: None,
            stall_clock_from: now,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            cursor,
            walked_to: cursor,
            feed_buffer: VecDeque::new(),
            read_to: cursor,
            feed_exhausted: false,
            in_flight: BTreeMap::new(),
            unsettled: BTreeMap::new(),
            resends: HashMap::new(),
            refused_there: BTreeSet::new(),
            next_send_order: 0,
            now,
            assumed_peer_heads: HashMap::new(),
            need_rounds: HashMap::new(),
            deferred: BTreeSet::new(),
            applied_not_durable: false,
            sent_since_caught_up: true,
            statistics: SessionStatistics::default(),
        };
        session.send(SyncFrame::Hello {
            protocol_version: SYNC_PROTOCOL_VERSION,
            node_id: session.local_node_id.clone(),
            feed_head,
        });
        session.send(SyncFrame::Clock {
            wall_ms: wall_now.timestamp_millis(),
        });
        Ok(session)
    }

    /// The peer's wall clock minus ours, in milliseconds, once it said it
    /// ([`SyncFrame::Clock`]).
    pub fn peer_clock_offset_ms(&self) -> Option<i64> {
        self.peer_clock_offset_ms
    }

    /// Our wall clock at `now`, from the one the shell gave at the start.
    fn wall_clock_at(&self, now: Instant) -> DateTime<Utc> {
        let elapsed = now.saturating_duration_since(self.started_at);
        chrono::TimeDelta::from_std(elapsed)
            .ok()
            .and_then(|elapsed| self.started_wall.checked_add_signed(elapsed))
            .unwrap_or(self.started_wall)
    }

    pub fn peer(&self) -> &PeerDescription {
        &self.peer
    }

    pub fn cursor(&self) -> FeedSequence {
        self.cursor
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn is_failed(&self) -> bool {
        self.phase == Phase::Failed
    }

    pub fn statistics(&self) -> &SessionStatistics {
        &self.statistics
    }

    pub fn poll_transmit(&mut self) -> Option<SyncFrame> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SyncEvent> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should next be called, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitingHello => Some(self.started_at + self.config.hello_timeout),
            Phase::Open => {
                let stall = (!self.in_flight.is_empty())
                    .then(|| self.stall_clock_from + self.config.stall_timeout);
                let resend = self.unsettled.values().map(|entry| entry.resend_at).min();
                match (stall, resend) {
                    (Some(stall), Some(resend)) => Some(stall.min(resend)),
                    (stall, resend) => stall.or(resend),
                }
            }
            Phase::Failed => None,
        }
    }

    /// Sends not taken in full whose time has come are sent again (see [`Unsettled`]).
    fn resend_unsettled(&mut self, replica: &mut dyn Replica, now: Instant) {
        let due: Vec<(FeedSequence, CaseId)> = self
            .unsettled
            .iter()
            .filter(|(_, entry)| entry.resend_at <= now)
            .map(|(seq, entry)| (*seq, entry.case.clone()))
            .collect();
        if due.is_empty() {
            return;
        }
        if self.in_flight.is_empty() {
            self.stall_clock_from = now;
        }
        for (seq, case) in due {
            self.unsettled.remove(&seq);
            *self.resends.entry(case.clone()).or_default() += 1;
            let result = self.consider(replica, seq, case);
            self.fail_on_storage_error(result);
            if self.phase == Phase::Failed {
                return;
            }
        }
        let result = self.pump(replica);
        self.fail_on_storage_error(result);
    }

    /// A send that ended without the peer holding what it was sent: kept against the cursor and
    /// sent again later, each time after twice as long.
    fn hold_unsettled(&mut self, feed_seq: FeedSequence, entry: InFlight) {
        let resends = self.resends.get(&entry.case).copied().unwrap_or(0);
        let delay = self
            .config
            .resend_after
            .saturating_mul(1u32 << resends.min(16))
            .min(self.config.resend_after_max);
        self.statistics.sends_not_taken += 1;
        self.unsettled.insert(
            feed_seq,
            Unsettled {
                case: entry.case,
                sent_order: entry.sent_order,
                resend_at: self.now + delay,
            },
        );
    }

    /// The peer holds what a send of `case` carried: every earlier send of the case that it
    /// did not take is settled with it.
    fn settle(&mut self, case: &str, sent_order: u64) {
        self.unsettled
            .retain(|_, entry| entry.case != case || entry.sent_order > sent_order);
        if !self.unsettled.values().any(|entry| entry.case == case) {
            self.resends.remove(case);
        }
    }

    /// Sends the peer did not take in full, waiting to be sent again.
    pub fn unsettled(&self) -> usize {
        self.unsettled.len()
    }

    pub fn handle_timeout(&mut self, replica: &mut dyn Replica, now: Instant) {
        self.now = now;
        if self.phase == Phase::Open {
            self.resend_unsettled(replica, now);
        }
        match self.phase {
            Phase::AwaitingHello if now >= self.started_at + self.config.hello_timeout => {
                self.fail("the peer sent no hello in time".to_owned(), true);
            }
            Phase::Open
                if !self.in_flight.is_empty()
                    && now >= self.stall_clock_from + self.config.stall_timeout =>
            {
                self.fail(
                    format!(
                        "the peer acknowledged nothing for {} s with {} sends outstanding",
                        self.config.stall_timeout.as_secs(),
                        self.in_flight.len()
                    ),
                    true,
                );
            }
            _ => {}
        }
    }

    /// The local feed advanced (a local edit, or a case received on another session) at `now`.
    pub fn on_local_change(&mut self, replica: &mut dyn Replica, now: Instant) {
        self.now = now;
        self.feed_exhausted = false;
        if self.in_flight.is_empty() {
            // Whatever this sends is the oldest send outstanding: the peer's time to answer it
            // starts now, not at the last frame it sent before the link went quiet.
            self.stall_clock_from = now;
        }
        if self.phase == Phase::Open {
            let result = self.pump(replica);
            self.fail_on_storage_error(result);
        }
    }

    /// What this node knows changed (its roster learned offices): ask the peer again for the
    /// changes deferred so far, beyond the heads now held.
    pub fn retry_deferred(&mut self, replica: &mut dyn Replica) {
        if self.phase != Phase::Open {
            return;
        }
        for case in std::mem::take(&mut self.deferred) {
            match replica.heads(&case) {
                Ok(heads) => self.send(SyncFrame::Need {
                    case,
                    have_heads: heads.unwrap_or_default(),
                }),
                Err(error) => {
                    self.fail_on_storage_error(Err(error));
                    return;
                }
            }
        }
    }

    /// Cases with deferred changes, waiting for [`Session::retry_deferred`].
    pub fn deferred_cases(&self) -> usize {
        self.deferred.len()
    }

    /// A frame decoded from the peer: [`Session::handle_frames`] with a batch of one.
    pub fn handle_frame(&mut self, replica: &mut dyn Replica, now: Instant, frame: SyncFrame) {
        self.handle_frames(replica, now, std::iter::once(frame));
    }

    /// Frames decoded from the peer, in order. Tolerates duplicated and reordered frames:
    /// applying is idempotent, stale acknowledgements are ignored, and missing dependencies are
    /// asked for. What the batch applied is made durable once, at the end, before any of its
    /// acknowledgements can be polled: the larger the batch, the fewer disk syncs.
    pub fn handle_frames(
        &mut self,
        replica: &mut dyn Replica,
        now: Instant,
        frames: impl IntoIterator<Item = SyncFrame>,
    ) {
        self.now = now;
        for frame in frames {
            self.handle_one_frame(replica, now, frame);
        }
        if self.applied_not_durable && self.phase != Phase::Failed {
            let result = replica.make_durable();
            self.fail_on_storage_error(result);
        }
        // On failure the queued acknowledgements were dropped with the rest of `transmit`.
        self.applied_not_durable = false;
    }

    fn handle_one_frame(&mut self, replica: &mut dyn Replica, now: Instant, frame: SyncFrame) {
        if self.phase == Phase::Failed {
            return;
        }
        self.stall_clock_from = now;
        self.statistics.frames_received += 1;
        let result = match frame {
            SyncFrame::Hello {
                protocol_version,
                node_id,
                feed_head,
            } => self.receive_hello(replica, protocol_version, node_id, feed_head),
            SyncFrame::Changes {
                case,
                feed_seq,
                base_heads,
                sender_heads,
                bytes,
                whole,
            } => {
                self.statistics.change_bytes_received += bytes.len() as u64;
                self.receive_changes(
                    replica,
                    case,
                    feed_seq,
                    ChangesShape {
                        base_heads,
                        sender_heads,
                        whole,
                    },
                    &bytes,
                )
            }
            SyncFrame::Ack {
                case,
                feed_seq,
                heads,
            } => self.receive_ack(replica, &case, feed_seq, &heads),
            SyncFrame::Need { case, have_heads } => self.answer_need(replica, case, &have_heads),
            SyncFrame::Refused {
                case,
                feed_seq,
                reason,
            } => self.receive_refusal(replica, case, feed_seq, reason),
            SyncFrame::CaughtUp { feed_head } => {
                self.events.push_back(SyncEvent::PeerCaughtUp { feed_head });
                Ok(())
            }
            SyncFrame::Error { message } => {
                self.fail(format!("the peer ended the session: {message}"), false);
                Ok(())
            }
            SyncFrame::Backlog { documents } => {
                self.events.push_back(SyncEvent::PeerBacklog { documents });
                Ok(())
            }
            SyncFrame::ChangesRefused { case, reasons } => {
                self.receive_changes_refused(replica, case, reasons)
            }
            SyncFrame::Clock { wall_ms } => {
                let offset_ms = wall_ms.saturating_sub(self.wall_clock_at(now).timestamp_millis());
                self.peer_clock_offset_ms = Some(offset_ms);
                self.events.push_back(SyncEvent::PeerClock { offset_ms });
                Ok(())
            }
        };
        self.fail_on_storage_error(result);
    }

    fn receive_hello(
        &mut self,
        replica: &mut dyn Replica,
        protocol_version: u32,
        node_id: NodeId,
        feed_head: FeedSequence,
    ) -> Result<(), ReplicaError> {
        if protocol_version != SYNC_PROTOCOL_VERSION {
            self.fail(
                format!(
                    "the peer speaks sync protocol version {protocol_version}, this node speaks \
                     version {SYNC_PROTOCOL_VERSION}"
                ),
                true,
            );
            return Ok(());
        }
        if node_id != self.peer.node_id {
            self.fail(
                format!(
                    "the peer introduced itself as node {node_id}, expected node {}",
                    self.peer.node_id
                ),
                true,
            );
            return Ok(());
        }
        if self.phase == Phase::AwaitingHello {
            self.phase = Phase::Open;
            self.events
                .push_back(SyncEvent::PeerHello { node_id, feed_head });
            // Counted up to a cap, so a week's backlog costs one bounded feed read; nothing is
            // said when there is nothing, so a nothing-changed reconnect stays a few frames.
            let backlog = replica.feed_since(self.cursor, BACKLOG_COUNT_CAP)?.len() as u64;
            if backlog > 0 {
                self.send(SyncFrame::Backlog { documents: backlog });
            }
            self.pump(replica)?;
        }
        Ok(())
    }

    fn receive_changes(
        &mut self,
        replica: &mut dyn Replica,
        case: CaseId,
        feed_seq: FeedSequence,
        shape: ChangesShape,
        bytes: &[u8],
    ) -> Result<(), ReplicaError> {
        let ChangesShape {
            base_heads,
            sender_heads,
            whole,
        } = shape;
        if case.is_empty() {
            self.fail("the peer sent changes for an unnamed case".to_owned(), true);
            return Ok(());
        }
        if !whole && replica.heads(&case)?.is_none() {
            self.ask_for(case, feed_seq, &base_heads, whole, sender_heads, Vec::new());
            return Ok(());
        }
        let peer = &self.peer;
        let admit_new_case = |routing: &CaseRouting| admit_new_case_from(routing, peer);
        let applied = match replica.apply(&peer.node_id, &case, bytes, whole, &admit_new_case) {
            Ok(applied) => {
                self.applied_not_durable = true;
                self.statistics.cases_applied += 1;
                self.events.push_back(SyncEvent::CaseReceived {
                    case: case.clone(),
                    created: applied.created,
                    changed: applied.changed,
                });
                applied
            }
            Err(ReplicaError::Deferred { message, .. }) => {
                // The peer stops waiting; we ask again when we know more.
                self.events.push_back(SyncEvent::CaseDeferred {
                    case: case.clone(),
                    reason: message.clone(),
                });
                self.deferred.insert(case.clone());
                let reason = format!("deferred: {message}");
                self.refuse_with_parked(case, feed_seq, reason);
                return Ok(());
            }
            Err(ReplicaError::Rejected { message, .. }) => {
                // Bad bytes for one case must not stop the others; asking for the whole
                // document once more covers a sender that based its changes on a wrong guess.
                self.events.push_back(SyncEvent::CaseSkipped {
                    case: case.clone(),
                    reason: format!("the peer's bytes were refused: {message}"),
                });
                if whole {
                    self.refuse_with_parked(case, feed_seq, message);
                } else {
                    self.ask_for(case, feed_seq, &base_heads, whole, sender_heads, Vec::new());
                }
                return Ok(());
            }
            Err(storage) => return Err(storage),
        };
        if !applied.quarantined.is_empty() || applied.deferred {
            // The changes left out are not held here (for good, or until we know more), so
            // asking for them now would only loop: acknowledge what was kept, and the peer
            // records our heads as its base.
            if applied.deferred {
                self.deferred.insert(case.clone());
                self.events.push_back(SyncEvent::CaseDeferred {
                    case: case.clone(),
                    reason: "some changes wait for the roster to know their maker".to_owned(),
                });
            }
            if !applied.quarantined.is_empty() {
                self.statistics.changes_quarantined += applied.quarantined.len() as u64;
                // The sender, often the maker, is told what did not travel on, and why.
                self.send(SyncFrame::ChangesRefused {
                    case: case.clone(),
                    reasons: applied.quarantined.clone(),
                });
                self.events.push_back(SyncEvent::ChangesQuarantined {
                    case: case.clone(),
                    reasons: applied.quarantined,
                });
            }
            if applied.deferred {
                // Not taken in full, for now: the sender holds the send against its cursor and
                // sends it again (its next send also carries what we kept, which costs nothing).
                // An acknowledgement would tell a sender that cannot see our heads that we hold
                // its changes.
                let reason =
                    "deferred: some changes wait for the roster to know their maker".to_owned();
                self.refuse_with_parked(case, feed_seq, reason);
                return Ok(());
            }
            for (parked_seq, _) in self.end_need(&case) {
                self.send(SyncFrame::Ack {
                    case: case.clone(),
                    feed_seq: parked_seq,
                    heads: applied.heads.clone(),
                });
            }
            self.send(SyncFrame::Ack {
                case,
                feed_seq,
                heads: applied.heads,
            });
            return Ok(());
        }
        // Usually the peer's heads are exactly ours now, which spares a lookup.
        let holds_sender_heads = sender_heads
            .iter()
            .all(|head| applied.heads.binary_search(head).is_ok())
            || replica.has_heads(&case, &sender_heads)?;
        if holds_sender_heads {
            let parked = self.end_need(&case);
            // The peer holds its own heads, so after this it is known to hold them here too:
            // this is what stops our feed walk from echoing the case straight back.
            replica.set_peer_heads(&self.peer.node_id, &case, &sender_heads)?;
            if self.assumed_peer_heads.contains_key(&case) {
                self.assumed_peer_heads
                    .insert(case.clone(), sender_heads.clone());
            }
            self.send(SyncFrame::Ack {
                case: case.clone(),
                feed_seq,
                heads: applied.heads.clone(),
            });
            // Frames that arrived while the answer was on its way: acknowledged if the answer
            // covered them, asked about afresh if not.
            for (parked_seq, parked_heads) in parked {
                if replica.has_heads(&case, &parked_heads)? {
                    self.send(SyncFrame::Ack {
                        case: case.clone(),
                        feed_seq: parked_seq,
                        heads: applied.heads.clone(),
                    });
                } else {
                    self.ask_for(
                        case.clone(),
                        parked_seq,
                        &[],
                        false,
                        parked_heads,
                        applied.heads.clone(),
                    );
                }
            }
        } else {
            self.ask_for(
                case,
                feed_seq,
                &base_heads,
                whole,
                sender_heads,
                applied.heads,
            );
        }
        Ok(())
    }

    /// Refuse the send `feed_seq` of `case`, and the frames parked while a `Need` for it was
    /// out, with one reason.
    fn refuse_with_parked(&mut self, case: CaseId, feed_seq: FeedSequence, reason: String) {
        for (parked_seq, _) in self.end_need(&case) {
            self.send(SyncFrame::Refused {
                case: case.clone(),
                feed_seq: parked_seq,
                reason: reason.clone(),
            });
        }
        self.send(SyncFrame::Refused {
            case,
            feed_seq,
            reason,
        });
    }

    /// The outstanding `Need` for `case` is settled: the frames parked while it was out.
    fn end_need(&mut self, case: &str) -> Vec<(FeedSequence, Vec<ChangeHead>)> {
        self.need_rounds
            .remove(case)
            .map(|outstanding| outstanding.parked)
            .unwrap_or_default()
    }

    /// Send `Need`, bounded: a peer that cannot supply what it claims is asked for the whole
    /// document once, then refused for this session.
    ///
    /// Only an answer to our outstanding `Need` (its base is what we asked from) counts as a
    /// round: over a link that duplicates and reorders frames, stale copies of the first
    /// `Changes` keep arriving after we asked, and counting each of them gave up on the case
    /// before the first answer arrived. Such a copy is left unanswered; the answer on its way
    /// covers it.
    fn ask_for(
        &mut self,
        case: CaseId,
        feed_seq: FeedSequence,
        base_heads: &[ChangeHead],
        whole: bool,
        sender_heads: Vec<ChangeHead>,
        have_heads: Vec<ChangeHead>,
    ) {
        let (rounds, parked) = match self.need_rounds.get_mut(&case) {
            Some(outstanding) if !outstanding.answered_by(base_heads, whole) => {
                outstanding.parked.push((feed_seq, sender_heads));
                return;
            }
            Some(outstanding) => (
                outstanding.rounds + 1,
                std::mem::take(&mut outstanding.parked),
            ),
            None => (1, Vec::new()),
        };
        if rounds > self.config.max_need_rounds {
            self.need_rounds.remove(&case);
            let reason = format!(
                "the peer could not supply the case's missing changes in {} rounds",
                self.config.max_need_rounds
            );
            for (parked_seq, _) in parked {
                self.send(SyncFrame::Refused {
                    case: case.clone(),
                    feed_seq: parked_seq,
                    reason: reason.clone(),
                });
            }
            self.events.push_back(SyncEvent::CaseSkipped {
                case: case.clone(),
                reason: reason.clone(),
            });
            self.send(SyncFrame::Refused {
                case,
                feed_seq,
                reason,
            });
            return;
        }
        let have_heads = if rounds >= 2 { Vec::new() } else { have_heads };
        self.need_rounds.insert(
            case.clone(),
            NeedRounds {
                rounds,
                asked_from: have_heads.clone(),
                parked,
            },
        );
        self.send(SyncFrame::Need { case, have_heads });
    }

    fn receive_ack(
        &mut self,
        replica: &mut dyn Replica,
        case: &str,
        feed_seq: FeedSequence,
        heads: &[ChangeHead],
    ) -> Result<(), ReplicaError> {
        let matches = self
            .in_flight
            .get(&feed_seq)
            .is_some_and(|entry| entry.case == case);
        if !matches {
            // A duplicate, or the answer to an untracked resend.
            return Ok(());
        }
        let Some(entry) = self.in_flight.remove(&feed_seq) else {
            return Ok(());
        };
        // The peer's own heads are recorded only when we hold them all, so that they can always
        // serve as a base for computing what to send next (usually they are what we sent).
        let peer_heads_held_here = !heads.is_empty()
            && (heads == entry.sent_heads.as_slice() || replica.has_heads(case, heads)?);
        // Whether the peer now holds what we sent. It acknowledges what it kept; it keeps less
        // when it quarantined changes (and said so first), and a replica may keep less for
        // other reasons. When its heads include changes we lack, it acknowledged after taking
        // our heads: a receiver that does not take them refuses the frame instead.
        let took_everything =
            !peer_heads_held_here || replica.history_of_contains(case, heads, &entry.sent_heads)?;
        let known = if peer_heads_held_here {
            heads.to_vec()
        } else {
            entry.sent_heads.clone()
        };
        replica.set_peer_heads(&self.peer.node_id, case, &known)?;
        let still_in_flight = self.in_flight.values().any(|other| other.case == case);
        if !still_in_flight {
            self.assumed_peer_heads.remove(case);
        }
        let refused_there = self.refused_there.remove(case);
        if took_everything || refused_there {
            self.settle(case, entry.sent_order);
        } else {
            self.hold_unsettled(feed_seq, entry);
        }
        self.pump(replica)
    }

    /// The peer quarantined changes we sent for `case`: recorded, so the case and the link show
    /// that they did not travel on. The session goes on; the peer acknowledges what it kept.
    fn receive_changes_refused(
        &mut self,
        replica: &mut dyn Replica,
        case: CaseId,
        reasons: Vec<String>,
    ) -> Result<(), ReplicaError> {
        if reasons.is_empty() {
            return Ok(());
        }
        self.statistics.changes_refused_by_peer += reasons.len() as u64;
        replica.record_refusal_by_peer(&self.peer, &case, &reasons)?;
        self.refused_there.insert(case.clone());
        self.events
            .push_back(SyncEvent::ChangesRefusedByPeer { case, reasons });
        Ok(())
    }

    fn receive_refusal(
        &mut self,
        replica: &mut dyn Replica,
        case: CaseId,
        feed_seq: FeedSequence,
        reason: String,
    ) -> Result<(), ReplicaError> {
        let matches = self
            .in_flight
            .get(&feed_seq)
            .is_some_and(|entry| entry.case == case);
        if matches && let Some(entry) = self.in_flight.remove(&feed_seq) {
            if !self.in_flight.values().any(|other| other.case == case) {
                self.assumed_peer_heads.remove(&case);
            }
            // Not taken: a deferral passes once the peer knows more, dependencies it could not
            // get may come whole next time. Counted as pending and sent again, with back-off.
            self.hold_unsettled(feed_seq, entry);
        }
        self.events.push_back(SyncEvent::CaseSkipped {
            case,
            reason: format!("the peer refused the case: {reason}"),
        });
        self.pump(replica)
    }

    fn answer_need(
        &mut self,
        replica: &mut dyn Replica,
        case: CaseId,
        have_heads: &[ChangeHead],
    ) -> Result<(), ReplicaError> {
        let Some(heads) = replica.heads(&case)? else {
            self.events.push_back(SyncEvent::CaseSkipped {
                reason: "the peer asked for a case not held here".to_owned(),
                case,
            });
            return Ok(());
        };
        // A peer may name any case in a Need: routing, not the question, decides what it gets.
        let allowed = match replica.routing(&case)? {
            Some(routing) => route(&routing, &self.peer, replica.roster()).allows(),
            None => false,
        };
        if !allowed {
            self.events.push_back(SyncEvent::CaseSkipped {
                reason: "the peer asked for a case routing withholds from it".to_owned(),
                case,
            });
            return Ok(());
        }
        let whole = have_heads.is_empty();
        let bytes = if whole {
            replica.save(&case)?
        } else {
            replica.changes_since(&case, have_heads)?
        };
        let feed_seq = self
            .in_flight
            .iter()
            .rev()
            .find(|(_, entry)| entry.case == case)
            .map(|(seq, _)| *seq);
        let sent_order = self.next_send_order;
        if let Some(seq) = feed_seq
            && let Some(entry) = self.in_flight.get_mut(&seq)
        {
            entry.sent_heads = heads.clone();
            entry.sent_order = sent_order;
            self.next_send_order += 1;
        }
        self.assumed_peer_heads.insert(case.clone(), heads.clone());
        self.send_changes(
            case,
            feed_seq.unwrap_or(0),
            have_heads.to_vec(),
            heads,
            bytes,
            whole,
        );
        Ok(())
    }

    /// Fill the window from the feed; announce when everything is acknowledged.
    fn pump(&mut self, replica: &mut dyn Replica) -> Result<(), ReplicaError> {
        while self.in_flight.len() < self.config.window {
            let Some(entry) = self.feed_buffer.pop_front() else {
                if self.feed_exhausted {
                    break;
                }
                let entries = replica.feed_since(self.read_to, self.config.feed_batch)?;
                match entries.last() {
                    Some(last) => self.read_to = last.seq,
                    None => self.feed_exhausted = true,
                }
                self.feed_buffer.extend(entries);
                continue;
            };
            // A buffered entry may be stale (its case changed again and moved up the feed); it
            // then sends the case's current heads, and the newer entry finds nothing to send.
            self.walked_to = entry.seq;
            self.statistics.feed_entries_walked += 1;
            self.consider(replica, entry.seq, entry.case)?;
            if self.phase == Phase::Failed {
                return Ok(());
            }
        }
        self.advance_cursor(replica)?;
        if self.in_flight.is_empty()
            && self.unsettled.is_empty()
            && self.feed_exhausted
            && self.sent_since_caught_up
        {
            self.sent_since_caught_up = false;
            self.send(SyncFrame::CaughtUp {
                feed_head: self.cursor,
            });
            self.events.push_back(SyncEvent::PeerHasAll {
                cursor: self.cursor,
            });
        }
        Ok(())
    }

    /// Send one feed entry's case if routing allows it and the peer lacks our heads.
    fn consider(
        &mut self,
        replica: &mut dyn Replica,
        seq: FeedSequence,
        case: CaseId,
    ) -> Result<(), ReplicaError> {
        let Some(routing) = replica.routing(&case)? else {
            return Ok(());
        };
        if !route(&routing, &self.peer, replica.roster()).allows() {
            return Ok(());
        }
        let Some(heads) = replica.heads(&case)? else {
            return Ok(());
        };
        let known = match self.assumed_peer_heads.get(&case) {
            Some(assumed) => Some(assumed.clone()),
            None => replica.peer_heads(&self.peer.node_id, &case)?,
        };
        let (base_heads, bytes, whole) = match known {
            Some(known) if known == heads => return Ok(()),
            Some(known) => {
                let bytes = replica.changes_since(&case, &known)?;
                if bytes.is_empty() {
                    return Ok(());
                }
                (known, bytes, false)
            }
            None => (Vec::new(), replica.save(&case)?, true),
        };
        if bytes.len().saturating_add(FRAME_OVERHEAD_ALLOWANCE) > self.config.max_frame_size {
            self.events.push_back(SyncEvent::CaseSkipped {
                reason: format!(
                    "{} bytes of changes do not fit in one frame of at most {} bytes",
                    bytes.len(),
                    self.config.max_frame_size
                ),
                case,
            });
            return Ok(());
        }
        self.in_flight.insert(
            seq,
            InFlight {
                case: case.clone(),
                sent_heads: heads.clone(),
                sent_order: self.next_send_order,
            },
        );
        self.next_send_order += 1;
        self.assumed_peer_heads.insert(case.clone(), heads.clone());
        self.send_changes(case, seq, base_heads, heads, bytes, whole);
        Ok(())
    }

    fn advance_cursor(&mut self, replica: &mut dyn Replica) -> Result<(), ReplicaError> {
        let lowest_outstanding = [
            self.in_flight.first_key_value().map(|(seq, _)| *seq),
            self.unsettled.first_key_value().map(|(seq, _)| *seq),
        ]
        .into_iter()
        .flatten()
        .min();
        let acknowledged_to = match lowest_outstanding {
            Some(lowest) => lowest.saturating_sub(1),
            None => self.walked_to,
        };
        if acknowledged_to > self.cursor {
            self.cursor = acknowledged_to;
            replica.set_peer_cursor(&self.peer.node_id, self.cursor)?;
        }
        Ok(())
    }

    fn send_changes(
        &mut self,
        case: CaseId,
        feed_seq: FeedSequence,
        base_heads: Vec<ChangeHead>,
        sender_heads: Vec<ChangeHead>,
        bytes: Vec<u8>,
        whole: bool,
    ) {
        self.sent_since_caught_up = true;
        self.statistics.changes_frames_sent += 1;
        self.statistics.change_bytes_sent += bytes.len() as u64;
        if whole {
            self.statistics.whole_documents_sent += 1;
        }
        self.send(SyncFrame::Changes {
            case,
            feed_seq,
            base_heads,
            sender_heads,
            bytes,
            whole,
        });
    }

    fn send(&mut self, frame: SyncFrame) {
        self.statistics.frames_sent += 1;
        self.transmit.push_back(frame);
    }

    fn fail_on_storage_error(&mut self, result: Result<(), ReplicaError>) {
        if let Err(error) = result {
            // The peer learns only that we stopped; the storage detail stays in our log.
            self.fail_with_peer_message(
                format!("local storage failed during sync: {error}"),
                "the node hit a storage error and ended the session".to_owned(),
            );
        }
    }

    fn fail(&mut self, message: String, tell_peer: bool) {
        if tell_peer {
            let for_peer = message.clone();
            self.fail_with_peer_message(message, for_peer);
        } else {
            self.phase = Phase::Failed;
            self.transmit.clear();
            self.events.push_back(SyncEvent::Failed { message });
        }
    }

    fn fail_with_peer_message(&mut self, message: String, for_peer: String) {
        self.phase = Phase::Failed;
        self.transmit.clear();
        self.send(SyncFrame::Error { message: for_peer });
        self.events.push_back(SyncEvent::Failed { message });
    }
}
