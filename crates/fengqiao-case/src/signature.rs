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
//!
//! One validation rule for every Ed25519 signature a node checks, here and nowhere else: events
//! alone ([`verify_event`]) and in batches ([`verify_all`]), `audit verify`, and roster entries
//! ([`verify_signature`]). The rule is ZIP-215 as `ed25519-zebra` implements it: the cofactored
//! equation `[8][s]B = [8]R + [8][k]A`, `s` canonical (below ℓ), `A` and `R` any encodings of
//! curve points (small-order and mixed-order points accepted, non-canonical encodings too, each
//! hashed as sent). Its batch equation is multiplied by the cofactor as well, so a batch passes
//! exactly when every member passes alone. Ed25519's other rules disagree on such inputs
//! (RFC 8032's cofactorless equation, ed25519-dalek's `verify_strict`), and a cofactorless batch
//! disagrees with its own single check: an office holding its key could make a signature that
//! some receivers keep and others refuse. Signing stays with ed25519-dalek: its signatures are
//! RFC 8032 signatures, which verify under ZIP-215.

use std::collections::HashMap;

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;
use ed25519_dalek::{Signer, SigningKey};
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes, batch};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::HybridTimestamp;
use crate::model::{CaseId, Event, EventKind, EventSignature, ImportMark, NodeId};

/// Version of the signing bytes; signed, so a signature of one version never verifies as another.
pub const EVENT_SIGNATURE_VERSION: u32 = 1;

/// Version of the signing bytes of an event a ledger import made: version 1's fields and its
/// [`crate::model::ImportMark`]. A build that knows only version 1 refuses such an event as of a
/// version it does not verify, rather than as altered, and every other event is signed as before.
pub const IMPORTED_EVENT_SIGNATURE_VERSION: u32 = 2;

/// Version of the signing bytes of a register event that names a policy version
/// (`EventKind::Register::policy_version` above 0, `crate::policy`): version 2's structure (the
/// import mark when there is one), the policy version inside the kind. A build that does not
/// know policies refuses such an event as of an unknown version, rather than as altered, and
/// every event without a policy version is signed as before.
pub const POLICY_REGISTER_SIGNATURE_VERSION: u32 = 3;

/// Version of the signing bytes of an event that gives a reason for being dated in the past
/// (`Event::backdated_reason`): version 3's fields (the import mark and the policy version, if
/// any) and the reason. As with the versions before it, a build that knows only the earlier
/// versions refuses such an event as of an unknown version, and a reason cannot be stripped or
/// altered.
pub const BACKDATED_EVENT_SIGNATURE_VERSION: u32 = 4;

/// Version of the signing bytes of a `succeed` event (`EventKind::Succeed`, a successor taking
/// its predecessor's place in a case, `crate::succession`): version 4's structure (with the
/// optional fields it may carry), the new kind inside it. A build that does not know successions
/// refuses such an event as of an unknown version, rather than as altered, and every other event
/// is signed as before.
pub const SUCCESSION_EVENT_SIGNATURE_VERSION: u32 = 5;

/// The signature version `event` must carry: the one whose signing bytes hold all its fields.
/// Each optional field is left out of the bytes when absent, so the version is that of the
/// newest field the event carries.
pub fn signature_version(event: &Event) -> u32 {
    if matches!(event.kind, EventKind::Succeed { .. }) {
        SUCCESSION_EVENT_SIGNATURE_VERSION
    } else if event.backdated_reason.is_some() {
        BACKDATED_EVENT_SIGNATURE_VERSION
    } else if matches!(event.kind, EventKind::Register { policy_version, .. } if policy_version > 0)
    {
        POLICY_REGISTER_SIGNATURE_VERSION
    } else if event.imported.is_some() {
        IMPORTED_EVENT_SIGNATURE_VERSION
    } else {
        EVENT_SIGNATURE_VERSION
    }
}

/// Length of a node ID in bytes (its automerge actor ID); the hex form is twice as long.
pub const NODE_ID_BYTES: usize = 16;

/// Why an event's signature is not accepted. Messages name the event, never its contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("event {event} is not signed")]
    Unsigned { event: String },
    #[error(
        "event {event} has signature version {found}; this build verifies version {supported} \
         for it"
    )]
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
    /// Version 2 only; left out of version 1's bytes, which stay as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    imported: Option<&'a ImportMark>,
    /// Version 4 only; left out of the bytes of versions 1 to 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    backdated_reason: Option<&'a str>,
}

/// The bytes a node signs for `event` of `case`.
pub fn signing_bytes(case: &str, event: &Event) -> Result<Vec<u8>, SignatureError> {
    let content = SigningContent {
        context: "fengqiao event",
        version: signature_version(event),
        case,
        id: &event.id,
        kind: &event.kind,
        at_ms: event.at.timestamp_millis(),
        hlc: event.hlc,
        node: &event.node,
        operator: &event.operator,
        prev: event.prev.as_deref(),
        imported: event.imported.as_ref(),
        backdated_reason: event.backdated_reason.as_deref(),
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
        version: signature_version(event),
        public_key: signer.public_key().to_vec(),
        signature: signature.to_vec(),
    });
    Ok(())
}

/// Why a bare signature is refused by [`verify_signature`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ed25519Refusal {
    #[error("the public key is not the encoding of a curve point")]
    BadKey,
    #[error("the signature does not verify")]
    BadSignature,
}

/// One signature to check in a batch: the signer's public key, the message, the signature.
#[derive(Debug, Clone, Copy)]
pub struct SignedMessage<'a> {
    pub public_key: [u8; 32],
    pub message: &'a [u8],
    pub signature: [u8; 64],
}

/// Whether `signature` is `public_key`'s signature of `message`, under the one rule (ZIP-215,
/// see the module's documentation). Roster entries are checked here; events through
/// [`verify_event`], which applies the same rule.
pub fn verify_signature(
    public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), Ed25519Refusal> {
    let key = VerificationKey::try_from(*public_key).map_err(|_| Ed25519Refusal::BadKey)?;
    verify_with_decoded_key(&key, message, signature)
}

/// [`verify_signature`] with the key already decoded: the single check itself.
fn verify_with_decoded_key(
    key: &VerificationKey,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), Ed25519Refusal> {
    key.verify(&Signature::from_bytes(signature), message)
        .map_err(|_| Ed25519Refusal::BadSignature)
}

/// Whether every one of `signatures` verifies, checked together: the same verdict as
/// [`verify_signature`] on each (ed25519-zebra's batch equation is cofactored like its single
/// one), cheaper per signature the larger the batch, but on `false` it does not say which failed.
///
/// The batch equation weighs each signature with a random 128-bit scalar. The weights come from
/// a ChaCha20 generator seeded with a SHA-256 of every input of the batch (every key, message and
/// signature, each length-prefixed), not from the operating system, so the check is a pure
/// function of its inputs and the domain crate stays free of IO. That is sound for the same
/// reason Fiat–Shamir is: whoever made the signatures had to fix all of them before the weights
/// exist, and changing any one input changes every weight unpredictably. A set of invalid
/// signatures passes only if their weighted errors cancel, which for weights they cannot choose
/// happens with probability about 2^-128 per attempt; the cofactor in the equation already
/// removes the small-order components whose cancellation depended only on a weight's parity.
pub fn verify_signature_batch(signatures: &[SignedMessage<'_>]) -> bool {
    let mut seed = Sha256::new();
    seed.update(b"fengqiao ed25519 batch weights v2");
    seed.update((signatures.len() as u64).to_le_bytes());
    let mut verifier = batch::Verifier::new();
    for signed in signatures {
        seed.update(signed.public_key);
        seed.update(signed.signature);
        seed.update((signed.message.len() as u64).to_le_bytes());
        seed.update(signed.message);
        verifier.queue((
            VerificationKeyBytes::from(signed.public_key),
            Signature::from_bytes(&signed.signature),
            signed.message,
        ));
    }
    let weights = ChaCha20Rng::from_seed(seed.finalize().into());
    verifier.verify(weights).is_ok()
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
    decoded: HashMap<[u8; 32], (VerificationKey, NodeId)>,
}

impl SignerKeys {
    fn decode_with_node(&mut self, key_bytes: &[u8; 32]) -> Option<&(VerificationKey, NodeId)> {
        if !self.decoded.contains_key(key_bytes) {
            let key = VerificationKey::try_from(*key_bytes).ok()?;
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

    fn decode(&mut self, key_bytes: &[u8; 32]) -> Option<VerificationKey> {
        self.decode_with_node(key_bytes).map(|(key, _)| *key)
    }

    /// Whether the key decodes and hashes to `node`: the signer an event names must be the one
    /// whose key signed it.
    fn decodes_for(&mut self, key_bytes: &[u8; 32], node: &str) -> bool {
        matches!(self.decode_with_node(key_bytes), Some((_, key_node)) if key_node == node)
    }
}

/// Whether every one of `events` of `case` is signed by the node it names and unaltered, checked
/// in one batch: cheaper than one by one, but on `false` it does not say which failed (verify
/// them one by one to learn). The same verdict as [`verify_event`] on each; deterministic (see
/// [`verify_signature_batch`]).
pub fn verify_all(case: &str, events: &[&Event], keys: &mut SignerKeys) -> bool {
    verify_all_of_cases(&[(case, events)], keys)
}

/// [`verify_all`] over the new events of several cases at once: one batch costs less per
/// signature the larger it is, and the events of a batch are signed by a few offices, whose keys
/// enter it once each (ed25519-zebra sums the terms of each distinct key), so a receiver
/// verifies the cases of a whole received batch together.
pub fn verify_all_of_cases(cases: &[(&str, &[&Event])], keys: &mut SignerKeys) -> bool {
    let count = cases.iter().map(|(_, events)| events.len()).sum();
    let mut messages = Vec::with_capacity(count);
    let mut signers = Vec::with_capacity(count);
    for (case, events) in cases {
        for event in *events {
            let Some(signed) = &event.signature else {
                return false;
            };
            if signed.version != signature_version(event) {
                return false;
            }
            let (Ok(public_key), Ok(signature)) = (
                <[u8; 32]>::try_from(signed.public_key.as_slice()),
                <[u8; 64]>::try_from(signed.signature.as_slice()),
            ) else {
                return false;
            };
            if !keys.decodes_for(&public_key, &event.node) {
                return false;
            }
            let Ok(message) = signing_bytes(case, event) else {
                return false;
            };
            messages.push(message);
            signers.push((public_key, signature));
        }
    }
    let batch: Vec<SignedMessage<'_>> = messages
        .iter()
        .zip(signers)
        .map(|(message, (public_key, signature))| SignedMessage {
            public_key,
            message,
            signature,
        })
        .collect();
    verify_signature_batch(&batch)
}

/// What the audit log and the console's timeline say of `event`'s signature: [`verify_event`]'s
/// answer, an unsigned (schema-1) event told apart from one whose signature does not hold.
pub fn signature_status(case: &CaseId, event: &Event) -> crate::model::audit::SignatureStatus {
    use crate::model::audit::SignatureStatus;
    match verify_event(case, event) {
        Ok(()) => SignatureStatus::Valid,
        Err(SignatureError::Unsigned { .. }) => SignatureStatus::Unsigned,
        Err(error) => SignatureStatus::Invalid {
            reason: error.to_string(),
        },
    }
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
    let required = signature_version(event);
    if signed.version != required {
        return Err(SignatureError::UnsupportedVersion {
            event: event_name(),
            found: signed.version,
            supported: required,
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
    verify_with_decoded_key(&key, &signing_bytes(case, event)?, &signature_bytes).map_err(|_| {
        SignatureError::BadSignature {
            event: event_name(),
        }
    })
}
