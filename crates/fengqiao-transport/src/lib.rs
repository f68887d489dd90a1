//! Fengqiao's federation transport: node certificates made from the node's Ed25519 key, mutual TLS
//! that admits only expected node IDs, QUIC endpoints (quinn) and length-prefixed frames.
//!
//! A node's ID is the first 16 bytes of SHA-256 of its Ed25519 public key, in lowercase hex, and
//! is derived from the peer's certificate during the handshake (as Syncthing derives device IDs).
//! Both sides refuse a peer whose ID the caller has not admitted:
//!
//! - the child dials its parent with [`NodeEndpoint::connect`], naming the parent's node ID;
//! - the parent takes connections with [`NodeEndpoint::accept`], which refuses any node its
//!   [`AdmissionCheck`] (for example [`AdmittedPeers::admission_check`]) does not allow *now*.
//!
//! Both calls return only once *both* sides have admitted each other: TLS 1.3 lets the dialer
//! finish before the acceptor has checked the dialer's certificate, so the acceptor sends a
//! short welcome frame on its first unidirectional stream, which `connect` consumes. The sync
//! protocol therefore sees no stream of this crate's own: every stream after the handshake is its.
//!
//! The sync protocol runs on top of [`write_frame`] / [`read_frame`].

mod certificate;
mod connection_id;
mod endpoint;
mod error;
mod frame;
mod node_id;
mod verifier;

pub use certificate::{
    CERTIFICATE_SUBJECT_NAME, NodeCredentials, PeerRole, node_id_of_peer_certificate,
};
pub use endpoint::{
    ALPN_PROTOCOL, IncomingPeer, NodeEndpoint, PeerConnection, TransportSettings,
    is_stateless_reset,
};
pub use error::{PeerRefusal, TransportError};
pub use frame::{DEFAULT_MAXIMUM_FRAME_LENGTH, FrameError, read_frame, write_frame};
pub use node_id::{NODE_ID_LENGTH, NodeId, NodeIdParseError};
pub use verifier::{AdmissionCheck, AdmittedPeers};

// Re-exported so that callers name exactly the quinn and rustls this crate was built with.
pub use quinn;
pub use rustls;
