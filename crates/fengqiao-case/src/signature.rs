//! Node identities and event signatures: who made an event, proven with the node's Ed25519 key.
//!
//! A node's ID is derived from its public key (the first 16 bytes of its SHA-256, in hex), so an
//! event that carries its signer's public key names its maker without a lookup: the key must hash
//! to the event's `node`, and the signature must verify over the event's signing bytes and the
//! case number. A relay therefore cannot forge an event in another node's name (it lacks the key),
//! alter one (the signature breaks), or re-attribute one (the key no longer hashes to `node`).
//! Whether the maker may act on the case at all is [`crate::authority`]'s question, not this one.
//!
//! The signing bytes are the JSON encoding of a fixed structure of the event's fields. Every field
//! is a typed value that reads back to itself, so a verifier that parsed the event from a document
//! re-encodes exactly the bytes its maker signed. Changing that structure changes every signature:
//! bump [`EVENT_SIGNATURE_VERSION`] and keep verifying the old form.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::batch_verification::{BatchEntry, BatchKey, verify_batch_by_key};
use crate::clock::HybridTimestamp;
use crate::model::{CaseId, Event, EventKind, EventSignature, NodeId};

/// Version of the signing bytes; signed, so a signature of one version never verifies as another.
pub const EVENT_SIGNATURE_VERSION: u32 = 1;

/// Length of a node ID in bytes (its automerge actor ID); the hex form is twice as long.
pub const NODE_ID_BYTES: usize = 16;

/// Why an event's signature is not accepted. Messages name the event, never its contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("event {event} is not signed")]
    Unsigned { event: String },
    #[error("event {event} has signature version {found}; this build verifies version {supported}")]
    UnsupportedVersion {
        event: String,
        found: u32,
        supported: u32,
    },
    #[error("event {event}: the signer key is not a valid ed25519 public key")]
    BadKey { event: String },
    #[error(
        "event {event} names node {claimed} as its maker but is signed by node {signer}: it was \
         re-attributed or forged"
    )]
    WrongSigner {
        event: String,
        claimed: NodeId,
        signer: NodeId,
    },
    #[error("event {event}: the signature does not verify (the event was altered or forged)")]
    BadSignature { event: String },
    #[error("event {event} cannot be encoded for signing: {message}")]
    Encode { event: String, message: String },
}

/// Whoever signs for a node: its identity in the shell, a bare key in tests. The same key signs
/// events and roster entries.
pub trait NodeSigner {
    fn public_key(&self) -> [u8; 32];
    fn sign(&self, message: &[u8]) -> [u8; 64];
}

impl NodeSigner for SigningKey {
    fn public_key(&self) -> [u8; 32] {
        self.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        Signer::sign(self, message).to_bytes()
    }
}

/// The node ID of an Ed25519 public key: the first 16 bytes of its SHA-256, as lowercase hex.
/// The same derivation as the node's identity and the transport's certificate check.
pub fn node_id_for_public_key(public_key: &[u8; 32]) -> NodeId {
    hex::encode(node_actor_for_public_key(public_key))
}

/// The same 16 bytes raw: the node's automerge actor ID.
pub fn node_actor_for_public_key(public_key: &[u8; 32]) -> [u8; NODE_ID_BYTES] {
    let digest = Sha256::digest(public_key);
    let mut actor = [0u8; NODE_ID_BYTES];
    actor.copy_from_slice(&digest[..NODE_ID_BYTES]);
    actor
}

/// The fields an event's signature covers, in a fixed order. The case number is included so an
/// event cannot be copied into another case; the register event's payload carries the header as
/// registered, so the registration is covered too.
#[derive(Serialize)]
struct SigningContent<'a> {
    context: &'static str,
    version: u32,
    case: &'a str,
    id: &'a str,
    kind: &'a EventKind,
    at_ms: i64,
    hlc: HybridTimestamp,
    node: &'a str,
    operator: &'a str,
    prev: Option<&'a str>,
}

/// The bytes a node signs for `event` of `case`.
pub fn signing_bytes(case: &str, event: &Event) -> Result<Vec<u8>, SignatureError> {
    let content = SigningContent {
        context: "fengqiao event",
        version: EVENT_SIGNATURE_VERSION,
        case,
        id: &event.id,
        kind: &event.kind,
        at_ms: event.at.timestamp_millis(),
        hlc: event.hlc,
        node: &event.node,
        operator: &event.operator,
        prev: event.prev.as_deref(),
    };
    serde_json::to_vec(&content).map_err(|error| SignatureError::Encode {
        event: event.id.clone(),
        message: error.to_string(),
    })
}

/// Sign `event` of `case` as `signer`, replacing any signature it had.
pub fn sign_event(
    case: &str,
    event: &mut Event,
    signer: &dyn NodeSigner,
) -> Result<(), SignatureError> {
    event.signature = None;
    let signature = signer.sign(&signing_bytes(case, event)?);
    event.signature = Some(EventSignature {
        version: EVENT_SIGNATURE_VERSION,
        public_key: signer.public_key().to_vec(),
        signature: signature.to_vec(),
    });
    Ok(())
}

/// Check that `event` of `case` is signed by the node it names, and unaltered since.
pub fn verify_event(case: &CaseId, event: &Event) -> Result<(), SignatureError> {
    verify_event_with(case, event, &mut SignerKeys::default())
}

/// Signers' public keys already decoded: decoding a key (a point decompression) costs about a
/// fifth of a verification, and a case's events come from a handful of offices.
#[derive(Debug, Default)]
pub struct SignerKeys {
    /// Each key decoded, with the node ID it hashes to.
    decoded: HashMap<[u8; 32], (VerifyingKey, NodeId)>,
}

impl SignerKeys {
    fn decode_with_node(&mut self, key_bytes: &[u8; 32]) -> Option<&(VerifyingKey, NodeId)> {
        if !self.decoded.contains_key(key_bytes) {
            let key = VerifyingKey::from_bytes(key_bytes).ok()?;
            // Bounded: a peer's copy names at most a few offices, but a hostile one could name
            // many.
            if self.decoded.len() >= 1024 {
                self.decoded.clear();
            }
            self.decoded
                .insert(*key_bytes, (key, node_id_for_public_key(key_bytes)));
        }
        self.decoded.get(key_bytes)
    }

    fn decode(&mut self, key_bytes: &[u8; 32]) -> Option<VerifyingKey> {
        self.decode_with_node(key_bytes).map(|(key, _)| *key)
    }

    /// The key, decoded, if it hashes to `node`: the signer an event names must be the one
    /// whose key signed it.
    fn decode_for(&mut self, key_bytes: &[u8; 32], node: &str) -> Option<VerifyingKey> {
        match self.decode_with_node(key_bytes) {
            Some((key, key_node)) if key_node == node => Some(*key),
            _ => None,
        }
    }
}

/// Whether every one of `events` of `case` is signed by the node it names and unaltered, checked
/// in one batch: cheaper than one by one, but on `false` it does not say which failed (verify
/// them one by one to learn). Deterministic: the batch's random weights come from a hash of its
/// inputs, not from the operating system (see [`crate::batch_verification`]).
pub fn verify_all(case: &str, events: &[&Event], keys: &mut SignerKeys) -> bool {
    verify_all_of_cases(&[(case, events)], keys)
}

/// [`verify_all`] over the new events of several cases at once: one batch costs less per
/// signature the larger it is (with ed25519-dalek's `verify_batch`, on this project's machine,
/// about 21 µs each in a batch of 6, 16 µs in a batch of 96), and the events of a batch are
/// signed by a few offices, whose keys enter it once each, so a receiver verifies the cases of
/// a whole received batch together.
pub fn verify_all_of_cases(cases: &[(&str, &[&Event])], keys: &mut SignerKeys) -> bool {
    let count = cases.iter().map(|(_, events)| events.len()).sum();
    let mut messages = Vec::with_capacity(count);
    let mut signatures = Vec::with_capacity(count);
    let mut signers = Vec::with_capacity(count);
    let mut batch_keys: Vec<BatchKey> = Vec::new();
    let mut key_indexes: HashMap<[u8; 32], usize> = HashMap::new();
    for (case, events) in cases {
        for event in *events {
            let Some(signed) = &event.signature else {
                return false;
            };
            if signed.version != EVENT_SIGNATURE_VERSION {
                return false;
            }
            let (Ok(key_bytes), Ok(signature_bytes)) = (
                <[u8; 32]>::try_from(signed.public_key.as_slice()),
                <[u8; 64]>::try_from(signed.signature.as_slice()),
            ) else {
                return false;
            };
            let (Some(key), Ok(message)) = (
                keys.decode_for(&key_bytes, &event.node),
                signing_bytes(case, event),
            ) else {
                return false;
            };
            let signer = *key_indexes.entry(key_bytes).or_insert_with(|| {
                batch_keys.push(BatchKey {
                    encoded: key_bytes,
                    point: key.to_edwards(),
                });
                batch_keys.len() - 1
            });
            messages.push(message);
            signatures.push(signature_bytes);
            signers.push(signer);
        }
    }
    let entries: Vec<BatchEntry<'_>> = messages
        .iter()
        .zip(signatures)
        .zip(signers)
        .map(|((message, signature), key)| BatchEntry {
            message,
            signature,
            key,
        })
        .collect();
    verify_batch_by_key(&entries, &batch_keys)
}

/// [`verify_event`], reusing keys decoded for earlier events.
pub fn verify_event_with(
    case: &CaseId,
    event: &Event,
    keys: &mut SignerKeys,
) -> Result<(), SignatureError> {
    let event_name = || event.id.clone();
    let Some(signed) = &event.signature else {
        return Err(SignatureError::Unsigned {
            event: event_name(),
        });
    };
    if signed.version != EVENT_SIGNATURE_VERSION {
        return Err(SignatureError::UnsupportedVersion {
            event: event_name(),
            found: signed.version,
            supported: EVENT_SIGNATURE_VERSION,
        });
    }
    let key_bytes: [u8; 32] =
        signed
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| SignatureError::BadKey {
                event: event_name(),
            })?;
    let signer = node_id_for_public_key(&key_bytes);
    if signer != event.node {
        return Err(SignatureError::WrongSigner {
            event: event_name(),
            claimed: event.node.clone(),
            signer,
        });
    }
    let signature_bytes: [u8; 64] =
        signed
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| SignatureError::BadSignature {
                event: event_name(),
            })?;
    let key = keys
        .decode(&key_bytes)
        .ok_or_else(|| SignatureError::BadKey {
            event: event_name(),
        })?;
    key.verify_strict(
        &signing_bytes(case, event)?,
        &Signature::from_bytes(&signature_bytes),
    )
    .map_err(|_| SignatureError::BadSignature {
        event: event_name(),
    })
}
