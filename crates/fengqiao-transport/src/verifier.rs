//! rustls certificate verifiers for both ends of a connection, and the set of admitted peers they
//! consult.
//!
//! The admission check is asked afresh on every handshake, so an admission or a revocation applies
//! to the next connection without restarting the node. Session resumption is turned off in the
//! configs built by `endpoint`, because a resumed TLS 1.3 session skips these verifiers entirely
//! and would let a revoked node back in.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};

use crate::certificate::{PeerRole, crypto_provider, node_id_of_peer_certificate};
use crate::error::PeerRefusal;
use crate::node_id::NodeId;

/// Whether a node ID may connect now. Called on every handshake.
pub type AdmissionCheck = Arc<dyn Fn(&NodeId) -> bool + Send + Sync>;

/// A shared, changeable set of admitted node IDs. Clones share the same set.
#[derive(Clone, Default)]
pub struct AdmittedPeers {
    node_ids: Arc<RwLock<HashSet<NodeId>>>,
}

impl fmt::Debug for AdmittedPeers {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_set()
            .entries(self.node_ids().iter())
            .finish()
    }
}

impl AdmittedPeers {
    pub fn new(node_ids: impl IntoIterator<Item = NodeId>) -> AdmittedPeers {
        AdmittedPeers {
            node_ids: Arc::new(RwLock::new(node_ids.into_iter().collect())),
        }
    }

    /// Returns whether the node was newly admitted.
    pub fn admit(&self, node_id: NodeId) -> bool {
        // A panic elsewhere cannot leave a HashSet half-updated, so a poisoned lock is still sound.
        self.node_ids
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node_id)
    }

    /// Returns whether the node had been admitted. Existing connections are not closed here: the
    /// caller closes them, since only it knows which connections belong to the node.
    pub fn revoke(&self, node_id: &NodeId) -> bool {
        self.node_ids
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node_id)
    }

    pub fn is_admitted(&self, node_id: &NodeId) -> bool {
        self.node_ids
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(node_id)
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut node_ids: Vec<NodeId> = self
            .node_ids
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        node_ids.sort();
        node_ids
    }

    /// The check for `NodeEndpoint::bind`, reading this set at each handshake.
    pub fn admission_check(&self) -> AdmissionCheck {
        let peers = self.clone();
        Arc::new(move |node_id| peers.is_admitted(node_id))
    }
}

/// Where a verifier leaves its refusal, so that `connect` and `accept` can return it as a typed
/// error and log it with the peer's address (the verifier runs inside quinn and knows neither).
#[derive(Debug, Default)]
pub(crate) struct RefusalSlot {
    refusal: Mutex<Option<PeerRefusal>>,
}

impl RefusalSlot {
    fn record(&self, refusal: PeerRefusal) {
        *self.refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(refusal);
    }

    pub(crate) fn take(&self) -> Option<PeerRefusal> {
        self.refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Verifies the other side's certificate, as a client (`ServerCertVerifier`) or as a server
/// (`ClientCertVerifier`).
pub(crate) struct PeerVerifier {
    peer_role: PeerRole,
    admission: AdmissionCheck,
    expected: Option<NodeId>,
    refusal_slot: Option<Arc<RefusalSlot>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for PeerVerifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PeerVerifier")
            .field("peer_role", &self.peer_role)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl PeerVerifier {
    pub(crate) fn new(
        peer_role: PeerRole,
        admission: AdmissionCheck,
        expected: Option<NodeId>,
        refusal_slot: Option<Arc<RefusalSlot>>,
    ) -> PeerVerifier {
        PeerVerifier {
            peer_role,
            admission,
            expected,
            refusal_slot,
            algorithms: crypto_provider().signature_verification_algorithms,
        }
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let verdict = node_id_of_peer_certificate(end_entity, intermediates, now, self.peer_role)
            .and_then(|node_id| {
                if let Some(expected) = self.expected
                    && node_id != expected
                {
                    return Err(PeerRefusal::UnexpectedNode {
                        expected,
                        found: node_id,
                    });
                }
                if !(self.admission)(&node_id) {
                    return Err(PeerRefusal::NotAdmitted { node_id });
                }
                Ok(node_id)
            });
        match verdict {
            Ok(node_id) => {
                tracing::debug!(peer = %node_id, "peer certificate accepted");
                Ok(())
            }
            Err(refusal) => {
                match &self.refusal_slot {
                    Some(slot) => slot.record(refusal.clone()),
                    // Nobody will pick the refusal up with an address, so say it here.
                    None => tracing::warn!(
                        peer = refusal.node_id().map(tracing::field::display),
                        "refused connection: {refusal}"
                    ),
                }
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(refusal)),
                )))
            }
        }
    }

    fn verify_handshake_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_handshake_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_handshake_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ED25519]
    }
}

/// The configs enable TLS 1.3 only; a TLS 1.2 signature to check would mean a downgrade attempt.
fn tls12_refused() -> rustls::Error {
    rustls::Error::General("tls 1.2 is not used between fengqiao nodes".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn admission_and_revocation_change_the_check() {
        let node_id = NodeId::from_public_key(&[5; 32]);
        let peers = AdmittedPeers::default();
        let check = peers.admission_check();
        assert!(!check(&node_id));
        assert!(peers.admit(node_id));
        assert!(check(&node_id));
        assert_eq!(peers.node_ids(), vec![node_id]);
        assert!(peers.revoke(&node_id));
        assert!(!check(&node_id));
        assert!(!peers.revoke(&node_id));
    }
}
