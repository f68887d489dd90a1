//! The QUIC connection IDs a node issues, made so that the node's next incarnation recognises
//! them: after a crash it can then answer its peers' packets for the lost connections with a
//! stateless reset (RFC 9000 §10.3), and they redial at once instead of waiting out the idle
//! timeout.
//!
//! quinn sends a stateless reset for an unknown connection only if the packet's connection ID
//! passes its generator's `validate`, and drops the packet as non-QUIC noise otherwise. Its
//! default generator keys that check at random on every start, so a restarted node turned down
//! every ID its predecessor had issued and never reset anything, whatever its reset key.
//!
//! An ID is a nonce and a tag, a keyed MAC of the nonce under a key derived from the node's
//! secret: any incarnation of the node checks the tag, nobody else can make one. The nonce is a
//! MAC of a random per-endpoint instance value and a counter, so IDs never repeat across restarts
//! (the reset key is static, and RFC 9000 §10.3.1 forbids reusing an ID with the same static key)
//! and observers cannot link the IDs of one connection.

use quinn::{ConnectionId, ConnectionIdGenerator};
use ring::hmac;

/// 96 bits: the chance that two IDs the node ever issues collide is negligible.
const NONCE_LENGTH: usize = 12;
/// 32 bits: a stray non-QUIC datagram passes the check (and draws a reset) once in 4 billion.
const TAG_LENGTH: usize = 4;
const CONNECTION_ID_LENGTH: usize = NONCE_LENGTH + TAG_LENGTH;

/// Domain separation between the two uses of the key.
const NONCE_LABEL: &[u8] = b"nonce";
const TAG_LABEL: &[u8] = b"tag";

pub(crate) struct NodeConnectionIds {
    key: hmac::Key,
    /// Fresh at each start, so that the counter's values are never reused by a later incarnation.
    instance: [u8; 16],
    issued: u64,
}

impl NodeConnectionIds {
    pub(crate) fn new(key: &[u8; 32], instance: [u8; 16]) -> NodeConnectionIds {
        NodeConnectionIds {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            instance,
            issued: 0,
        }
    }

    fn tag(&self, nonce: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(TAG_LABEL);
        context.update(nonce);
        context.sign()
    }
}

impl ConnectionIdGenerator for NodeConnectionIds {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(NONCE_LABEL);
        context.update(&self.instance);
        context.update(&self.issued.to_be_bytes());
        self.issued = self.issued.wrapping_add(1);
        let mut id = [0; CONNECTION_ID_LENGTH];
        id[..NONCE_LENGTH].copy_from_slice(&context.sign().as_ref()[..NONCE_LENGTH]);
        let tag = self.tag(&id[..NONCE_LENGTH]);
        id[NONCE_LENGTH..].copy_from_slice(&tag.as_ref()[..TAG_LENGTH]);
        ConnectionId::new(&id)
    }

    fn validate(&self, id: &ConnectionId) -> Result<(), quinn_proto::InvalidCid> {
        if id.len() != CONNECTION_ID_LENGTH {
            return Err(quinn_proto::InvalidCid);
        }
        let (nonce, tag) = id.split_at(NONCE_LENGTH);
        if self.tag(nonce).as_ref()[..TAG_LENGTH] == *tag {
            Ok(())
        } else {
            Err(quinn_proto::InvalidCid)
        }
    }

    fn cid_len(&self) -> usize {
        CONNECTION_ID_LENGTH
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_restarted_node_recognises_its_predecessors_ids_and_issues_new_ones() {
        let mut before = NodeConnectionIds::new(&[7; 32], [1; 16]);
        let mut after = NodeConnectionIds::new(&[7; 32], [2; 16]);
        let stranger = NodeConnectionIds::new(&[8; 32], [1; 16]);
        let issued_before: Vec<ConnectionId> = (0..100).map(|_| before.generate_cid()).collect();
        let issued_after: Vec<ConnectionId> = (0..100).map(|_| after.generate_cid()).collect();
        for id in &issued_before {
            assert_eq!(id.len(), after.cid_len());
            assert!(after.validate(id).is_ok());
            assert!(stranger.validate(id).is_err());
        }
        let distinct: HashSet<&[u8]> = issued_before
            .iter()
            .chain(&issued_after)
            .map(|id| &id[..])
            .collect();
        assert_eq!(distinct.len(), 200);
    }

    #[test]
    fn ids_it_did_not_issue_are_refused() {
        let mut ids = NodeConnectionIds::new(&[7; 32], [1; 16]);
        let mut tampered = ids.generate_cid();
        tampered[0] ^= 1;
        assert!(ids.validate(&tampered).is_err());
        assert!(ids.validate(&ConnectionId::new(&[0; 8])).is_err());
        assert!(ids.validate(&ConnectionId::new(&[])).is_err());
        assert!(
            ids.validate(&ConnectionId::new(&[0; CONNECTION_ID_LENGTH]))
                .is_err()
        );
    }
}
