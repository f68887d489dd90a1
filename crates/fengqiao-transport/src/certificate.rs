//! A node's self-signed certificate, made from its Ed25519 key, and the checks a peer's certificate
//! must pass before the node ID derived from it is believed.
//!
//! The certificate carries no trust of its own (nobody signs it but the node): it is only a way to
//! present the public key in TLS. Trust comes from the caller's set of admitted node IDs, as with
//! Syncthing's device IDs.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::sign::CertifiedKey;

use crate::error::{PeerRefusal, TransportError};
use crate::node_id::NodeId;

/// RFC 8410 §7: a PKCS#8 v1 Ed25519 private key is this fixed prefix followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// RFC 8410 §4: an Ed25519 SubjectPublicKeyInfo is this fixed prefix followed by the 32-byte key.
/// Matching it byte for byte refuses every other algorithm and any parameters smuggled in.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The name written in every node certificate. Peers never check it (the node ID is the identity),
/// but a name keeps the certificate ordinary for tools that inspect it.
pub const CERTIFICATE_SUBJECT_NAME: &str = "fengqiao-node";

/// A node's certificate and signing key, ready for rustls.
pub struct NodeCredentials {
    node_id: NodeId,
    certificate: CertificateDer<'static>,
    certified_key: Arc<CertifiedKey>,
    stateless_reset_key: [u8; 32],
    connection_id_key: [u8; 32],
}

// Hand-written so that the private key can never end up in a log line or a panic message.
impl fmt::Debug for NodeCredentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("NodeCredentials")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl NodeCredentials {
    /// Credentials for the node whose Ed25519 secret seed is `seed` (the 32 bytes in `node.key`).
    pub fn from_seed(seed: &[u8; 32]) -> Result<NodeCredentials, TransportError> {
        let signing_key = ed25519_dalek::SigningKey::from_bytes(seed);
        NodeCredentials::from_signing_key(&signing_key)
    }

    pub fn from_signing_key(
        signing_key: &ed25519_dalek::SigningKey,
    ) -> Result<NodeCredentials, TransportError> {
        let node_id = NodeId::from_verifying_key(&signing_key.verifying_key());
        let pkcs8 = ed25519_pkcs8(signing_key);
        let stateless_reset_key = derived_secret(STATELESS_RESET_LABEL, signing_key);
        let connection_id_key = derived_secret(CONNECTION_ID_LABEL, signing_key);

        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
            .map_err(TransportError::Certificate)?;
        let mut parameters =
            rcgen::CertificateParams::new(vec![CERTIFICATE_SUBJECT_NAME.to_owned()])
                .map_err(TransportError::Certificate)?;
        // The node ID in the subject lets an operator match a captured certificate to a node.
        // Validity keeps rcgen's 1975–4096 default on purpose: a node's identity is its key, and a
        // village office PC with a wrong clock must not lose its link over a date.
        parameters.distinguished_name = rcgen::DistinguishedName::new();
        parameters
            .distinguished_name
            .push(rcgen::DnType::CommonName, node_id.to_string());
        let certificate = parameters
            .self_signed(&key_pair)
            .map_err(TransportError::Certificate)?
            .der()
            .clone();

        let signing_key = crypto_provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(pkcs8))
            .map_err(TransportError::Tls)?;
        let certified_key = Arc::new(CertifiedKey::new(vec![certificate.clone()], signing_key));
        Ok(NodeCredentials {
            node_id,
            certificate,
            certified_key,
            stateless_reset_key,
            connection_id_key,
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Another node's (public) certificate paired with a key that is not its own: what an
    /// impostor who copied a certificate off the wire would present.
    #[cfg(test)]
    pub(crate) fn impostor_of(
        victim: &NodeCredentials,
        impostor_seed: &[u8; 32],
    ) -> Result<NodeCredentials, TransportError> {
        let impostor_key = ed25519_dalek::SigningKey::from_bytes(impostor_seed);
        let signing_key = crypto_provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(ed25519_pkcs8(&impostor_key)))
            .map_err(TransportError::Tls)?;
        Ok(NodeCredentials {
            node_id: victim.node_id,
            certificate: victim.certificate.clone(),
            certified_key: Arc::new(CertifiedKey::new(
                vec![victim.certificate.clone()],
                signing_key,
            )),
            stateless_reset_key: derived_secret(STATELESS_RESET_LABEL, &impostor_key),
            connection_id_key: derived_secret(CONNECTION_ID_LABEL, &impostor_key),
        })
    }

    /// The DER certificate this node presents to its peers.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The key QUIC stateless-reset tokens are made with: derived from the node's secret key, so it
    /// stays the same across restarts. A node that crashed and came back can then reset its
    /// peers' stale connections at once; with a random key they would ignore its resets and wait
    /// out the idle timeout (~30 s) before redialling.
    pub(crate) fn stateless_reset_key(&self) -> &[u8; 32] {
        &self.stateless_reset_key
    }

    /// The key the endpoint's connection IDs are checked with, stable across restarts for the
    /// same reason as the reset key: a restarted node resets only connections whose IDs it
    /// recognises as its own (see `connection_id`).
    pub(crate) fn connection_id_key(&self) -> &[u8; 32] {
        &self.connection_id_key
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified_key)
    }
}

const STATELESS_RESET_LABEL: &[u8] = b"fengqiao quic stateless reset key v1";
const CONNECTION_ID_LABEL: &[u8] = b"fengqiao quic connection id key v1";

/// A key derived from the node's secret, separated from every other use of it by its label.
fn derived_secret(label: &[u8], signing_key: &ed25519_dalek::SigningKey) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(label);
    hasher.update(signing_key.to_bytes());
    hasher.finalize().into()
}

fn ed25519_pkcs8(signing_key: &ed25519_dalek::SigningKey) -> PrivatePkcs8KeyDer<'static> {
    let mut pkcs8 = Vec::with_capacity(ED25519_PKCS8_PREFIX.len() + 32);
    pkcs8.extend_from_slice(&ED25519_PKCS8_PREFIX);
    pkcs8.extend_from_slice(signing_key.as_bytes());
    PrivatePkcs8KeyDer::from(pkcs8)
}

/// The one crypto provider this crate uses everywhere, so that certificates, handshakes and
/// signature checks all go through the same implementation.
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which way the peer's certificate is used, so that an extended key usage, if present, must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// The peer accepted our connection.
    Server,
    /// The peer dialed us.
    Client,
}

/// Check that a peer's certificate chain is one well-formed, currently valid, self-signed Ed25519
/// certificate, and return the node ID derived from its public key.
///
/// This says nothing about whether the node is welcome: admission is checked by the caller.
pub fn node_id_of_peer_certificate(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    peer_role: PeerRole,
) -> Result<NodeId, PeerRefusal> {
    if !intermediates.is_empty() {
        return Err(PeerRefusal::ChainPresented {
            count: intermediates.len(),
        });
    }
    let parsed = webpki::EndEntityCert::try_from(end_entity).map_err(|error| {
        PeerRefusal::MalformedCertificate {
            why: error.to_string(),
        }
    })?;
    let public_key = ed25519_public_key_of(parsed.subject_public_key_info().as_ref())?;

    // The certificate is its own trust anchor: this checks its self-signature (Ed25519 only), its
    // validity dates, that it is not a CA certificate, and its extended key usage if any.
    let anchor = webpki::anchor_from_trusted_cert(end_entity).map_err(|error| {
        PeerRefusal::MalformedCertificate {
            why: error.to_string(),
        }
    })?;
    let usage = match peer_role {
        PeerRole::Server => webpki::KeyUsage::server_auth(),
        PeerRole::Client => webpki::KeyUsage::client_auth(),
    };
    parsed
        .verify_for_usage(
            &[webpki::ring::ED25519],
            &[anchor],
            &[],
            now,
            usage,
            None,
            None,
        )
        .map_err(|error| PeerRefusal::NotSelfSigned {
            why: error.to_string(),
        })?;
    Ok(NodeId::from_public_key(&public_key))
}

fn ed25519_public_key_of(subject_public_key_info: &[u8]) -> Result<[u8; 32], PeerRefusal> {
    let key = subject_public_key_info
        .strip_prefix(&ED25519_SPKI_PREFIX[..])
        .ok_or(PeerRefusal::NotEd25519)?;
    key.try_into().map_err(|_| PeerRefusal::NotEd25519)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn node_id_from_the_certificate_equals_the_node_id_from_the_public_key() {
        let seed = [9u8; 32];
        let credentials = NodeCredentials::from_seed(&seed).unwrap();
        let verifying_key = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let from_key = NodeId::from_public_key(verifying_key.as_bytes());
        assert_eq!(credentials.node_id(), from_key);
        for role in [PeerRole::Server, PeerRole::Client] {
            let from_certificate =
                node_id_of_peer_certificate(credentials.certificate(), &[], UnixTime::now(), role)
                    .unwrap();
            assert_eq!(from_certificate, from_key);
        }
    }

    #[test]
    fn the_same_key_always_yields_the_same_node_id() {
        let first = NodeCredentials::from_seed(&[1; 32]).unwrap();
        let again = NodeCredentials::from_seed(&[1; 32]).unwrap();
        let other = NodeCredentials::from_seed(&[2; 32]).unwrap();
        assert_eq!(first.node_id(), again.node_id());
        assert_ne!(first.node_id(), other.node_id());
    }

    #[test]
    fn a_chain_is_refused() {
        let credentials = NodeCredentials::from_seed(&[3; 32]).unwrap();
        let refusal = node_id_of_peer_certificate(
            credentials.certificate(),
            std::slice::from_ref(credentials.certificate()),
            UnixTime::now(),
            PeerRole::Client,
        )
        .unwrap_err();
        assert!(matches!(refusal, PeerRefusal::ChainPresented { count: 1 }));
    }

    #[test]
    fn garbage_and_tampered_certificates_are_refused_without_panicking() {
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let refusal = node_id_of_peer_certificate(&garbage, &[], UnixTime::now(), PeerRole::Client)
            .unwrap_err();
        assert!(matches!(refusal, PeerRefusal::MalformedCertificate { .. }));

        // Flipping a byte of the signature (the certificate's last bytes) must break the
        // self-signature check, not the parse.
        let credentials = NodeCredentials::from_seed(&[4; 32]).unwrap();
        let mut tampered = credentials.certificate().to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        let refusal = node_id_of_peer_certificate(
            &CertificateDer::from(tampered),
            &[],
            UnixTime::now(),
            PeerRole::Client,
        )
        .unwrap_err();
        assert!(
            matches!(refusal, PeerRefusal::NotSelfSigned { .. }),
            "{refusal:?}"
        );
    }

    #[test]
    fn a_certificate_with_another_key_type_is_refused() {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["x".to_owned()])
            .unwrap()
            .self_signed(&key_pair)
            .unwrap();
        let refusal =
            node_id_of_peer_certificate(certificate.der(), &[], UnixTime::now(), PeerRole::Server)
                .unwrap_err();
        assert!(matches!(refusal, PeerRefusal::NotEd25519));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let credentials = NodeCredentials::from_seed(&[0xab; 32]).unwrap();
        let shown = format!("{credentials:?}");
        assert!(shown.contains(&credentials.node_id().to_string()));
        assert!(!shown.contains("ab, ab"));
    }
}
