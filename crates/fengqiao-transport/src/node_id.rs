//! Node IDs: the first 16 bytes of SHA-256 of a node's Ed25519 public key, shown as lowercase hex.
//!
//! This is the same derivation as `fengqiao::identity::derive_node_id`, so the ID a peer proves over
//! TLS is the ID its automerge changes carry as their actor.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Bytes of SHA-256(public key) that make a node ID (and a node's automerge actor id).
pub const NODE_ID_LENGTH: usize = 16;

/// A node's identity as peers see it. Compared as bytes, so hex case can never make two IDs differ.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; NODE_ID_LENGTH]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeIdParseError {
    #[error("a node id is {expected} hexadecimal digits, not {found}", expected = NODE_ID_LENGTH * 2)]
    WrongLength { found: usize },
    #[error("a node id is hexadecimal: {text:?} is not")]
    NotHexadecimal { text: String },
}

impl NodeId {
    /// The node ID of a 32-byte Ed25519 public key.
    pub fn from_public_key(public_key: &[u8; 32]) -> NodeId {
        let digest = Sha256::digest(public_key);
        let mut bytes = [0u8; NODE_ID_LENGTH];
        bytes.copy_from_slice(&digest[..NODE_ID_LENGTH]);
        NodeId(bytes)
    }

    pub fn from_verifying_key(verifying_key: &ed25519_dalek::VerifyingKey) -> NodeId {
        NodeId::from_public_key(verifying_key.as_bytes())
    }

    pub fn from_bytes(bytes: [u8; NODE_ID_LENGTH]) -> NodeId {
        NodeId(bytes)
    }

    /// The raw 16 bytes, which are also the node's automerge actor id.
    pub fn as_bytes(&self) -> &[u8; NODE_ID_LENGTH] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = NodeIdParseError;

    /// Accepts upper or lower case, since operators may copy an ID from anywhere.
    fn from_str(text: &str) -> Result<NodeId, NodeIdParseError> {
        let text = text.trim();
        if text.len() != NODE_ID_LENGTH * 2 {
            return Err(NodeIdParseError::WrongLength { found: text.len() });
        }
        let mut bytes = [0u8; NODE_ID_LENGTH];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| NodeIdParseError::NotHexadecimal {
            text: text.to_owned(),
        })?;
        Ok(NodeId(bytes))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn display_is_lowercase_hex_and_parses_back() {
        let node_id = NodeId::from_public_key(&[7; 32]);
        let shown = node_id.to_string();
        assert_eq!(shown.len(), 32);
        assert_eq!(shown, shown.to_lowercase());
        assert_eq!(shown.parse::<NodeId>().unwrap(), node_id);
        assert_eq!(shown.to_uppercase().parse::<NodeId>().unwrap(), node_id);
    }

    #[test]
    fn derivation_is_the_first_sixteen_bytes_of_sha256() {
        let public_key = [42u8; 32];
        let digest = Sha256::digest(public_key);
        assert_eq!(
            NodeId::from_public_key(&public_key).to_string(),
            hex::encode(&digest[..16])
        );
    }

    #[test]
    fn malformed_text_is_refused() {
        assert_eq!(
            "abc".parse::<NodeId>(),
            Err(NodeIdParseError::WrongLength { found: 3 })
        );
        assert!(matches!(
            "zz".repeat(16).parse::<NodeId>(),
            Err(NodeIdParseError::NotHexadecimal { .. })
        ));
    }
}
