//! The federation's sync protocol as a sans-IO core: frames and their codec, routing rules, and
//! a per-peer session state machine, with no sockets, runtime, clock reads or storage of its own.
//!
//! In the style of quinn-proto: the shell (QUIC transport plus the node's store) feeds bytes and
//! the time in, and sends out what the core yields. Storage is reached through the [`Replica`]
//! trait; an in-memory implementation serves the tests and the multi-node harness.

pub mod codec;
pub mod replica;
pub mod roster;
pub mod routing;
pub mod session;

pub use codec::{DEFAULT_MAX_FRAME_SIZE, FrameCodec, FrameError, decode_frame, encode_frame};
pub use fengqiao_case::model::sync::{ChangeHead, FeedSequence, SYNC_PROTOCOL_VERSION, SyncFrame};
pub use replica::{Applied, FeedEntry, InMemoryReplica, Replica, ReplicaError};
pub use roster::{
    Admission, Roster, RosterError, RosterEvent, RosterExchange, RosterMerge, RosterSigner,
    decode_snapshot, encode_snapshot, node_actor_for_public_key, node_id_for_public_key,
};
pub use routing::{
    CaseRouting, PeerDescription, PeerRelation, RoutingDecision, SubtreeRoster, route,
};
pub use session::{Session, SessionConfig, SessionStatistics, SyncEvent};

#[cfg(test)]
mod tests;
