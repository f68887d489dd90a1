//! Frames of the federation sync protocol: what two nodes say to each other over one connection.
//!
//! The frame layout on the wire (length prefix, format version byte, size limit) belongs to
//! `fengqiao-sync`'s codec; the types live here because every type that goes on the wire lives in
//! `fengqiao_case::model`. Changing a variant's fields or order changes the wire format: bump
//! [`SYNC_PROTOCOL_VERSION`] and keep reading the old form.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CaseId, NodeId};

/// Version of the sync conversation, exchanged in [`SyncFrame::Hello`]; peers of different
/// versions refuse each other with [`SyncFrame::Error`] instead of guessing. The layout of
/// `Hello` (the first variant) never changes, so that any two versions can read each other's
/// hello and refuse cleanly; what a version adds goes into new variants.
///
/// Version 2 added [`SyncFrame::Backlog`]. Version 3: every event is signed (case schema 2) and
/// every received change is checked, so an older peer's unsigned events would all be refused.
/// Version 4 added [`SyncFrame::ChangesRefused`], and judges every received event on its causal
/// past (a version-3 peer may quarantine what a version-4 one keeps). Version 5: the roster
/// stream carries the federation's policies (`RosterFrame::Policies`), register events name
/// the policy version their case derives with (a version-4 peer would derive them with its own
/// limits), and [`SyncFrame::Clock`] follows `Hello`: each side's wall clock, so each can tell how
/// far off its own clock is (a version-4 peer would take the frame for garbage).
pub const SYNC_PROTOCOL_VERSION: u32 = 5;

/// One automerge change hash (SHA-256 of the change). Raw bytes, not hex: a frame for one new
/// event carries a few of these, and hex would double their share of the bytes on the wire.
pub type ChangeHead = [u8; 32];

/// Position in a node's change feed (strictly increasing per case update).
pub type FeedSequence = u64;

/// One message of the sync protocol. Both sides push: each walks its own change feed and sends
/// what the other lacks, and acknowledges what it receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncFrame {
    /// First frame on a connection, from both sides.
    Hello {
        protocol_version: u32,
        node_id: NodeId,
        /// The sender's feed head when it connected (for showing how far behind a peer is).
        feed_head: FeedSequence,
    },
    /// The changes of one case. `bytes` is either the concatenated automerge changes the sender
    /// has beyond `base_heads`, or, when `whole` is set, the sender's whole saved document (used
    /// when the receiver is not known to hold the case).
    Changes {
        case: CaseId,
        /// The sender's feed sequence this send answers to; echoed back in the [`SyncFrame::Ack`].
        /// Zero when the send is not tracked (an answer to an unsolicited [`SyncFrame::Need`]).
        feed_seq: FeedSequence,
        base_heads: Vec<ChangeHead>,
        /// The sender's heads: after applying, the receiver holds at least these.
        sender_heads: Vec<ChangeHead>,
        /// A byte string, not a sequence of numbers: the same bytes on the wire, encoded and
        /// decoded as one copy instead of one call per byte.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        whole: bool,
    },
    /// The receiver applied a [`SyncFrame::Changes`]; `heads` are the receiver's own heads after
    /// applying. It then holds the frame's `sender_heads`, unless it quarantined some of the
    /// changes, which it said first in [`SyncFrame::ChangesRefused`]. A sender that finds the
    /// `heads` lacking what it sent, with no such refusal, sends the case again.
    Ack {
        case: CaseId,
        feed_seq: FeedSequence,
        heads: Vec<ChangeHead>,
    },
    /// The receiver could not reach the sender's heads (missing dependencies, or it does not hold
    /// the case at all when `have_heads` is empty): resend everything beyond `have_heads`.
    Need {
        case: CaseId,
        have_heads: Vec<ChangeHead>,
    },
    /// The receiver did not take this send (bytes it cannot apply, a case the sender may not
    /// introduce, dependencies never supplied, or changes deferred until it knows their maker).
    /// The sender stops waiting for an acknowledgement, keeps its cursor before the send (so the
    /// link shows it pending) and sends it again later, backing off.
    Refused {
        case: CaseId,
        feed_seq: FeedSequence,
        reason: String,
    },
    /// Everything in the sender's feed up to `feed_head` that routing lets the receiver have has
    /// been sent and acknowledged.
    CaughtUp { feed_head: FeedSequence },
    /// The sender gives up on this connection; `message` says why (for the receiver's log).
    Error { message: String },
    /// Sent after [`SyncFrame::Hello`] when the sender's feed holds entries the receiver may not
    /// have yet: how many documents changed since the receiver last held everything (an upper
    /// bound: routing may withhold some). Lets `fengqiao peers` show what is pending inbound.
    Backlog { documents: u64 },
    /// The receiver kept only part of a [`SyncFrame::Changes`]: these changes failed its checks
    /// on receipt and were quarantined, each reason naming the refused events and the rule. Sent
    /// before the [`SyncFrame::Ack`] of what was kept, so the maker learns that its change did
    /// not travel on, and why, instead of seeing nothing pending.
    ChangesRefused { case: CaseId, reasons: Vec<String> },
    /// Sent right after [`SyncFrame::Hello`]: the sender's wall clock as it queued the frame, in
    /// milliseconds since the Unix epoch. The receiver compares it with its own at receipt (the
    /// transit time, well under a second, counts as the sender being slow; the bound it is
    /// judged by is 5 minutes).
    Clock { wall_ms: i64 },
}

impl SyncFrame {
    /// The variant's name, for logs and counters (never the contents: frames carry personal data).
    pub fn kind_name(&self) -> &'static str {
        match self {
            SyncFrame::Hello { .. } => "hello",
            SyncFrame::Changes { .. } => "changes",
            SyncFrame::Ack { .. } => "ack",
            SyncFrame::Need { .. } => "need",
            SyncFrame::Refused { .. } => "refused",
            SyncFrame::CaughtUp { .. } => "caught_up",
            SyncFrame::Error { .. } => "error",
            SyncFrame::Backlog { .. } => "backlog",
            SyncFrame::ChangesRefused { .. } => "changes_refused",
            SyncFrame::Clock { .. } => "clock",
        }
    }
}

/// Version of [`QuarantineRecord`].
pub const QUARANTINE_RECORD_VERSION: u32 = 1;

/// A change received from a peer and not kept, as the receiving node stores it (its quarantine
/// log) and shows it (`fengqiao quarantine`, `fengqiao peers`). The change's bytes are kept so an
/// operator can hand them to whoever investigates; they never enter a case document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub format_version: u32,
    /// When this node refused it, by its clock.
    pub received_at: DateTime<Utc>,
    /// The peer that sent it (not necessarily who made it: a relay passes on others' changes).
    pub peer: NodeId,
    pub case: CaseId,
    /// The automerge change hash, hex.
    pub change_hash: String,
    /// Why it was refused: the refused events and the check each failed.
    pub reason: String,
    /// The raw automerge change.
    pub change: Vec<u8>,
}

/// Version of [`PeerRefusal`] as a node stores it.
pub const PEER_REFUSAL_VERSION: u32 = 1;

/// Changes of ours to one case that a peer refused on receipt ([`SyncFrame::ChangesRefused`]),
/// as this node records them (the latest refusal per peer and case) and shows them: on the case
/// (`refused by 芦荻山乡: reason`), in `fengqiao peers` and in the link's sync health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PeerRefusal {
    pub format_version: u32,
    pub peer: NodeId,
    /// The peer office's name as this node knows it.
    pub peer_name: String,
    pub case: CaseId,
    /// One per refused change: the refused events and the rule each failed.
    pub reasons: Vec<String>,
}

impl PeerRefusal {
    /// Where a node keeps refusals in its store's meta: `refused/<case>/<peer>`, JSON, the latest
    /// per peer and case (so a case's refusals are one prefix scan).
    pub const META_PREFIX: &'static str = "refused/";

    pub fn meta_key(case: &str, peer: &str) -> String {
        format!("{}{case}/{peer}", PeerRefusal::META_PREFIX)
    }

    pub fn meta_prefix_of_case(case: &str) -> String {
        format!("{}{case}/", PeerRefusal::META_PREFIX)
    }
}
