//! Errors of the transport: why a peer was refused, and why a connection could not be made.

use std::net::SocketAddr;

use crate::node_id::NodeId;

/// Why a peer's certificate was refused during the TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    #[error("peer {node_id} is not admitted")]
    NotAdmitted { node_id: NodeId },
    #[error("peer {found} is not the expected node {expected}")]
    UnexpectedNode { expected: NodeId, found: NodeId },
    #[error("peer certificate is malformed: {why}")]
    MalformedCertificate { why: String },
    #[error("peer certificate key is not ed25519")]
    NotEd25519,
    #[error("peer certificate is not validly self-signed: {why}")]
    NotSelfSigned { why: String },
    #[error(
        "peer sent {count} intermediate certificates; a node presents one self-signed certificate"
    )]
    ChainPresented { count: usize },
    #[error("peer presented no certificate")]
    NoCertificate,
    #[error("peer did not negotiate the fengqiao protocol")]
    WrongProtocol,
}

impl PeerRefusal {
    /// The node ID the refused peer proved, when the refusal came after the ID was known.
    pub fn node_id(&self) -> Option<NodeId> {
        match self {
            PeerRefusal::NotAdmitted { node_id } => Some(*node_id),
            PeerRefusal::UnexpectedNode { found, .. } => Some(*found),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot create the node certificate: {0}")]
    Certificate(rcgen::Error),
    #[error("cannot set up tls: {0}")]
    Tls(rustls::Error),
    #[error("cannot set up quic: {why}")]
    Configuration { why: String },
    #[error("cannot bind udp socket {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the endpoint's local address: {0}")]
    LocalAddress(std::io::Error),
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: SocketAddr,
        source: quinn::ConnectError,
    },
    #[error("connection with {address} refused: {refusal}")]
    Refused {
        address: SocketAddr,
        refusal: PeerRefusal,
    },
    #[error("handshake with {address} failed: {source}")]
    Handshake {
        address: SocketAddr,
        source: quinn::ConnectionError,
    },
    #[error("peer {node_id} at {address} refused this node: {source}")]
    RefusedByPeer {
        address: SocketAddr,
        node_id: NodeId,
        source: quinn::ConnectionError,
    },
    #[error("peer {node_id} at {address} did not welcome this node: {why}")]
    NoWelcome {
        address: SocketAddr,
        node_id: NodeId,
        why: String,
    },
    #[error("cannot welcome peer at {address}: {why}")]
    Welcome { address: SocketAddr, why: String },
    #[error("the endpoint is closed")]
    EndpointClosed,
}

impl TransportError {
    /// The refusal, if the connection failed because one side refused the other's identity here.
    pub fn refusal(&self) -> Option<&PeerRefusal> {
        match self {
            TransportError::Refused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}
