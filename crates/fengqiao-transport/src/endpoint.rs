//! A node's QUIC endpoint: one UDP socket that both dials (child to parent) and accepts (parent
//! from children), with mutual TLS 1.3 between node certificates.
//!
//! Each connection gets its own rustls config, built around a verifier that knows what this
//! connection expects (the dialed node ID) and where to leave a refusal, so that `connect` and
//! `accept` return *why* a peer was refused rather than a bare TLS alert.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::sign::SingleCertAndKey;
use tracing::Instrument;

use crate::certificate::{NodeCredentials, PeerRole, crypto_provider, node_id_of_peer_certificate};
use crate::connection_id::NodeConnectionIds;
use crate::error::{PeerRefusal, TransportError};
use crate::frame::{FrameError, read_frame, write_frame};
use crate::node_id::NodeId;
use crate::verifier::{AdmissionCheck, PeerVerifier, RefusalSlot};

/// The application protocol spoken between nodes; bump the number for an incompatible change.
pub const ALPN_PROTOCOL: &[u8] = b"fengqiao/1";

/// The TLS server name a node dials. Peers check node IDs, not names, and one fixed name keeps
/// the dialed node's ID out of the clear-text ClientHello.
const SERVER_NAME: &str = "fengqiao-node";

/// The accepting node's first frame, on its first unidirectional stream.
///
/// TLS 1.3 lets the dialing side finish its handshake before the accepting side has checked the
/// dialer's certificate, so without this a refused child would believe it was connected. The
/// welcome is sent only once the accepting side has admitted the dialer, and `connect` waits for it.
const WELCOME: &[u8] = b"fengqiao/1 welcome";

/// QUIC transport settings shared by every connection of an endpoint.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Keeps NAT bindings and office firewalls open, and notices a dead link well before the
    /// idle timeout. It also bounds how long an idle connection to a peer that crashed and came
    /// back on the same address lingers: the next keep-alive draws the restarted peer's
    /// stateless reset. Each keep-alive is a packet each way on what may be a metered link.
    pub keep_alive_interval: Duration,
    /// A link silent for this long is considered down; the child then redials with backoff.
    pub idle_timeout: Duration,
    pub max_concurrent_bidirectional_streams: u32,
    pub max_concurrent_unidirectional_streams: u32,
}

impl Default for TransportSettings {
    fn default() -> TransportSettings {
        TransportSettings {
            keep_alive_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_concurrent_bidirectional_streams: 64,
            max_concurrent_unidirectional_streams: 16,
        }
    }
}

impl TransportSettings {
    fn quinn_transport_config(&self) -> Result<quinn::TransportConfig, TransportError> {
        let idle_timeout = quinn::IdleTimeout::try_from(self.idle_timeout).map_err(|_| {
            TransportError::Configuration {
                why: format!("idle timeout {:?} is too long", self.idle_timeout),
            }
        })?;
        let mut config = quinn::TransportConfig::default();
        config
            .keep_alive_interval(Some(self.keep_alive_interval))
            .max_idle_timeout(Some(idle_timeout))
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(
                self.max_concurrent_bidirectional_streams,
            ))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(
                self.max_concurrent_unidirectional_streams,
            ));
        Ok(config)
    }
}

/// An authenticated connection with a peer node.
#[derive(Debug)]
pub struct PeerConnection {
    pub connection: quinn::Connection,
    /// Proven by the peer's TLS handshake signature, and admitted when the handshake ran.
    pub node_id: NodeId,
    pub remote_address: SocketAddr,
    /// `peer_connection` span with the peer's node ID and address: instrument the connection's
    /// tasks with it so that every log line says which link it is about.
    pub span: tracing::Span,
}

/// A node's QUIC endpoint. Must be created inside a tokio runtime.
pub struct NodeEndpoint {
    endpoint: quinn::Endpoint,
    credentials: Arc<NodeCredentials>,
    admission: AdmissionCheck,
    transport: Arc<quinn::TransportConfig>,
    welcome_timeout: Duration,
}

impl std::fmt::Debug for NodeEndpoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NodeEndpoint")
            .field("node_id", &self.credentials.node_id())
            .field("local_address", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl NodeEndpoint {
    /// Bind `address` (port 0 picks a free port) with default transport settings.
    ///
    /// `admission` is asked at every handshake, in both directions: a child's check allows its
    /// parent, a parent's allows the children it admitted.
    pub fn bind(
        address: SocketAddr,
        credentials: Arc<NodeCredentials>,
        admission: AdmissionCheck,
    ) -> Result<NodeEndpoint, TransportError> {
        NodeEndpoint::bind_with_settings(
            address,
            credentials,
            admission,
            &TransportSettings::default(),
        )
    }

    pub fn bind_with_settings(
        address: SocketAddr,
        credentials: Arc<NodeCredentials>,
        admission: AdmissionCheck,
        settings: &TransportSettings,
    ) -> Result<NodeEndpoint, TransportError> {
        let transport = Arc::new(settings.quinn_transport_config()?);
        let default_server_config = server_config(&credentials, &admission, &transport, None)?;
        let endpoint_config = endpoint_config(&credentials)?;
        let endpoint = std::net::UdpSocket::bind(address)
            .and_then(|socket| {
                quinn::Endpoint::new(
                    endpoint_config,
                    Some(default_server_config),
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )
            })
            .map_err(|source| TransportError::Bind { address, source })?;
        let node_endpoint = NodeEndpoint {
            endpoint,
            credentials,
            admission,
            transport,
            welcome_timeout: settings.idle_timeout,
        };
        tracing::info!(
            node = %node_endpoint.node_id(),
            address = ?node_endpoint.endpoint.local_addr().ok(),
            "quic endpoint listening"
        );
        Ok(node_endpoint)
    }

    pub fn node_id(&self) -> NodeId {
        self.credentials.node_id()
    }

    pub fn local_address(&self) -> Result<SocketAddr, TransportError> {
        self.endpoint
            .local_addr()
            .map_err(TransportError::LocalAddress)
    }

    /// The underlying quinn endpoint, for statistics and shutdown. Connections made or accepted
    /// on it directly bypass the expected-ID check of `connect`, so use `connect` and `accept`.
    pub fn quinn_endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// Dial `address` and require the node there to be `expected` (and admitted).
    ///
    /// Returns only once the peer has admitted this node too (see `WELCOME`); a peer that refuses
    /// this node gives `TransportError::RefusedByPeer`.
    pub async fn connect(
        &self,
        address: SocketAddr,
        expected: NodeId,
    ) -> Result<PeerConnection, TransportError> {
        let span =
            tracing::info_span!("peer_handshake", %address, expected = %expected, side = "dialing");
        async {
            let refusal_slot = Arc::new(RefusalSlot::default());
            let config = client_config(
                &self.credentials,
                &self.admission,
                &self.transport,
                expected,
                Arc::clone(&refusal_slot),
            )?;
            let connecting = self
                .endpoint
                .connect_with(config, address, SERVER_NAME)
                .map_err(|source| TransportError::Connect { address, source })?;
            let peer = match connecting.await {
                Ok(connection) => established(connection, PeerRole::Server)?,
                Err(source) => return Err(handshake_failure(address, source, &refusal_slot)),
            };
            self.await_welcome(&peer).await?;
            peer.span.in_scope(|| tracing::info!("peer connected"));
            Ok(peer)
        }
        .instrument(span)
        .await
    }

    async fn await_welcome(&self, peer: &PeerConnection) -> Result<(), TransportError> {
        let address = peer.remote_address;
        let receive_welcome = async {
            let mut stream = peer.connection.accept_uni().await?;
            let welcome = read_frame(&mut stream, WELCOME.len()).await?;
            Ok::<_, WelcomeFailure>(welcome)
        };
        let outcome = tokio::time::timeout(self.welcome_timeout, receive_welcome).await;
        let why = match outcome {
            Ok(Ok(Some(welcome))) if welcome == WELCOME => return Ok(()),
            Ok(Ok(_)) => "its first frame was not a welcome".to_owned(),
            // A transport-level close during the welcome is the peer's TLS stack turning this
            // node's certificate down; an application close is something else (a restart, say).
            Ok(Err(WelcomeFailure::Closed(
                source @ quinn::ConnectionError::ConnectionClosed(_),
            ))) => {
                let error = TransportError::RefusedByPeer {
                    address,
                    node_id: peer.node_id,
                    source,
                };
                peer.span
                    .in_scope(|| tracing::warn!("this node was refused: {error}"));
                return Err(error);
            }
            Ok(Err(WelcomeFailure::Closed(source))) => {
                format!("the connection closed before the welcome: {source}")
            }
            Ok(Err(WelcomeFailure::Frame(error))) => error.to_string(),
            Err(_elapsed) => format!("no welcome within {:?}", self.welcome_timeout),
        };
        peer.connection
            .close(quinn::VarInt::from_u32(1), b"no welcome");
        let error = TransportError::NoWelcome {
            address,
            node_id: peer.node_id,
            why,
        };
        peer.span.in_scope(|| tracing::warn!("{error}"));
        Err(error)
    }

    /// Wait for the next incoming connection and complete its handshake.
    ///
    /// A refused or failed handshake is returned as an error for that one connection: call
    /// `accept` again to keep serving. `TransportError::EndpointClosed` means there will be no more.
    /// This handles one handshake at a time; a parent serving many children should use
    /// `accept_incoming` and run each `IncomingPeer::handshake` in its own task, so that one child
    /// on a bad link cannot hold up the others for a whole idle timeout.
    pub async fn accept(&self) -> Result<PeerConnection, TransportError> {
        self.accept_incoming().await?.handshake().await
    }

    /// Wait for the next connection attempt, without running its handshake yet.
    pub async fn accept_incoming(&self) -> Result<IncomingPeer, TransportError> {
        let incoming = self
            .endpoint
            .accept()
            .await
            .ok_or(TransportError::EndpointClosed)?;
        Ok(IncomingPeer {
            incoming,
            credentials: Arc::clone(&self.credentials),
            admission: Arc::clone(&self.admission),
            transport: Arc::clone(&self.transport),
        })
    }

    /// Close every connection and stop accepting; `wait_idle` then waits for the peers to hear.
    pub fn close(&self) {
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"node shutting down");
    }

    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// Whether `error`, or an error that caused it, is a connection ended by a QUIC stateless reset.
///
/// Only the peer's endpoint can make a valid reset (RFC 9000 §10.3), and it sends one when a
/// packet arrives for a connection it does not hold: the peer is up again at the same address and
/// has lost the connection, so it restarted, and a redial can go ahead at once.
pub fn is_stateless_reset(error: &(dyn std::error::Error + 'static)) -> bool {
    // A stream error reaches the caller wrapped in `std::io::Error`, whose `source` is the quinn
    // error's own source, the `ConnectionError`; walking the chain finds it at any depth.
    std::iter::successors(Some(error), |error| error.source()).any(|error| {
        matches!(
            error.downcast_ref::<quinn::ConnectionError>(),
            Some(quinn::ConnectionError::Reset)
        )
    })
}

#[derive(Debug, thiserror::Error)]
enum WelcomeFailure {
    #[error("{0}")]
    Closed(#[from] quinn::ConnectionError),
    #[error("{0}")]
    Frame(#[from] FrameError),
}

async fn send_welcome(peer: &PeerConnection) -> Result<(), TransportError> {
    let handshake_error = |source| TransportError::Handshake {
        address: peer.remote_address,
        source,
    };
    let mut stream = peer.connection.open_uni().await.map_err(handshake_error)?;
    let sent = write_frame(&mut stream, WELCOME, WELCOME.len())
        .await
        .map_err(|error| TransportError::Welcome {
            address: peer.remote_address,
            why: error.to_string(),
        });
    sent?;
    // A finish error means the connection is already gone; the caller learns it at first use.
    let _ = stream.finish();
    Ok(())
}

/// A connection attempt whose handshake has not run yet (see `NodeEndpoint::accept_incoming`).
pub struct IncomingPeer {
    incoming: quinn::Incoming,
    credentials: Arc<NodeCredentials>,
    admission: AdmissionCheck,
    transport: Arc<quinn::TransportConfig>,
}

impl std::fmt::Debug for IncomingPeer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IncomingPeer")
            .field("remote_address", &self.incoming.remote_address())
            .finish_non_exhaustive()
    }
}

impl IncomingPeer {
    /// Where the attempt comes from; not yet authenticated.
    pub fn remote_address(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Run the handshake: check the dialer's certificate against the admission check as it
    /// stands now, and welcome it if admitted.
    pub async fn handshake(self) -> Result<PeerConnection, TransportError> {
        let address = self.incoming.remote_address();
        let span = tracing::info_span!("peer_handshake", %address, side = "accepting");
        async {
            let refusal_slot = Arc::new(RefusalSlot::default());
            let config = server_config(
                &self.credentials,
                &self.admission,
                &self.transport,
                Some(Arc::clone(&refusal_slot)),
            )?;
            let connecting = match self.incoming.accept_with(Arc::new(config)) {
                Ok(connecting) => connecting,
                Err(source) => return Err(handshake_failure(address, source, &refusal_slot)),
            };
            let peer = match connecting.await {
                Ok(connection) => established(connection, PeerRole::Client)?,
                Err(source) => return Err(handshake_failure(address, source, &refusal_slot)),
            };
            send_welcome(&peer).await?;
            peer.span.in_scope(|| tracing::info!("peer connected"));
            Ok(peer)
        }
        .instrument(span)
        .await
    }
}

/// Turn a failed handshake into the refusal our verifier recorded, if that is why it failed.
fn handshake_failure(
    address: SocketAddr,
    source: quinn::ConnectionError,
    refusal_slot: &RefusalSlot,
) -> TransportError {
    match refusal_slot.take() {
        Some(refusal) => {
            tracing::warn!(
                peer = refusal.node_id().map(tracing::field::display),
                %address,
                "refused connection: {refusal}"
            );
            TransportError::Refused { address, refusal }
        }
        None => {
            tracing::info!(%address, "handshake failed: {source}");
            TransportError::Handshake { address, source }
        }
    }
}

/// Read the authenticated node ID back from the finished handshake.
///
/// The verifier already checked the certificate; deriving the ID again from what quinn kept
/// means the ID we return is exactly the one the TLS signature proved.
fn established(
    connection: quinn::Connection,
    peer_role: PeerRole,
) -> Result<PeerConnection, TransportError> {
    let address = connection.remote_address();
    let refuse = |refusal: PeerRefusal| {
        tracing::warn!(%address, "refused connection: {refusal}");
        connection.close(quinn::VarInt::from_u32(1), b"refused");
        TransportError::Refused { address, refusal }
    };
    let protocol = connection
        .handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol);
    if protocol.as_deref() != Some(ALPN_PROTOCOL) {
        return Err(refuse(PeerRefusal::WrongProtocol));
    }
    let certificates = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok());
    let Some(certificates) = certificates else {
        return Err(refuse(PeerRefusal::NoCertificate));
    };
    let Some((end_entity, intermediates)) = certificates.split_first() else {
        return Err(refuse(PeerRefusal::NoCertificate));
    };
    let node_id =
        node_id_of_peer_certificate(end_entity, intermediates, UnixTime::now(), peer_role)
            .map_err(refuse)?;
    let side = match peer_role {
        PeerRole::Server => "dialed",
        PeerRole::Client => "accepted",
    };
    let span = tracing::info_span!("peer_connection", peer = %node_id, %address, side);
    Ok(PeerConnection {
        connection,
        node_id,
        remote_address: address,
        span,
    })
}

/// The endpoint's stateless-reset key and connection IDs, both restart-stable (see
/// `connection_id`): a node that crashed and came back on the same address must recognise the IDs
/// its predecessor issued, and make the same reset token for each.
fn endpoint_config(credentials: &NodeCredentials) -> Result<quinn::EndpointConfig, TransportError> {
    let reset_key =
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, credentials.stateless_reset_key());
    let mut config = quinn::EndpointConfig::new(Arc::new(reset_key));
    let instance = ring::rand::generate::<[u8; 16]>(&ring::rand::SystemRandom::new())
        .map_err(|_| TransportError::Configuration {
            why: "no system randomness for connection ids".to_owned(),
        })?
        .expose();
    let connection_id_key = *credentials.connection_id_key();
    config.cid_generator(move || -> Box<dyn quinn::ConnectionIdGenerator> {
        Box::new(NodeConnectionIds::new(&connection_id_key, instance))
    });
    Ok(config)
}

fn server_config(
    credentials: &NodeCredentials,
    admission: &AdmissionCheck,
    transport: &Arc<quinn::TransportConfig>,
    refusal_slot: Option<Arc<RefusalSlot>>,
) -> Result<quinn::ServerConfig, TransportError> {
    let verifier = PeerVerifier::new(PeerRole::Client, Arc::clone(admission), None, refusal_slot);
    let mut tls = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Tls)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(
            credentials.certified_key(),
        )));
    tls.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    // Resumption would skip the client certificate check, and with it any revocation.
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    let quic = QuicServerConfig::try_from(tls).map_err(|error| TransportError::Configuration {
        why: error.to_string(),
    })?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::clone(transport));
    Ok(config)
}

fn client_config(
    credentials: &NodeCredentials,
    admission: &AdmissionCheck,
    transport: &Arc<quinn::TransportConfig>,
    expected: NodeId,
    refusal_slot: Arc<RefusalSlot>,
) -> Result<quinn::ClientConfig, TransportError> {
    let verifier = PeerVerifier::new(
        PeerRole::Server,
        Arc::clone(admission),
        Some(expected),
        Some(refusal_slot),
    );
    let mut tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TransportError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(
            credentials.certified_key(),
        )));
    tls.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
    // Resumption would skip the server certificate check on reconnect.
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = QuicClientConfig::try_from(tls).map_err(|error| TransportError::Configuration {
        why: error.to_string(),
    })?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::clone(transport));
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::verifier::AdmittedPeers;

    fn bind(credentials: NodeCredentials, admitted: &[NodeId]) -> Arc<NodeEndpoint> {
        let admitted = AdmittedPeers::new(admitted.iter().copied());
        Arc::new(
            NodeEndpoint::bind(
                "127.0.0.1:0".parse().unwrap(),
                Arc::new(credentials),
                admitted.admission_check(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn a_stateless_reset_is_recognised_through_the_stream_error_that_reports_it() {
        let lost = |reason| {
            FrameError::Io(std::io::Error::from(quinn::ReadError::ConnectionLost(
                reason,
            )))
        };
        assert!(is_stateless_reset(&lost(quinn::ConnectionError::Reset)));
        assert!(is_stateless_reset(&quinn::ConnectionError::Reset));
        assert!(!is_stateless_reset(&lost(quinn::ConnectionError::TimedOut)));
        assert!(!is_stateless_reset(&lost(
            quinn::ConnectionError::LocallyClosed
        )));
        assert!(!is_stateless_reset(&FrameError::Truncated {
            expected: 4,
            received: 1
        }));
    }

    /// The handshake signature is what proves the key behind a certificate; a copied certificate
    /// alone must get nobody in, in either direction.
    #[tokio::test]
    async fn a_copied_certificate_without_its_key_is_refused_both_ways() {
        let parent = NodeCredentials::from_seed(&[1; 32]).unwrap();
        let child = NodeCredentials::from_seed(&[2; 32]).unwrap();
        let (parent_id, child_id) = (parent.node_id(), child.node_id());
        let fake_child = NodeCredentials::impostor_of(&child, &[3; 32]).unwrap();
        let fake_parent = NodeCredentials::impostor_of(&parent, &[4; 32]).unwrap();

        // An impostor child dials the real parent.
        let real_parent = bind(parent, &[child_id]);
        let accepting = Arc::clone(&real_parent);
        let parent_side = tokio::spawn(async move { accepting.accept().await });
        let impostor_child = bind(fake_child, &[parent_id]);
        let dial = impostor_child
            .connect(real_parent.local_address().unwrap(), parent_id)
            .await;
        assert!(dial.is_err());
        let accepted = parent_side.await.unwrap();
        assert!(
            matches!(&accepted, Err(TransportError::Handshake { source, .. }) if source.to_string().contains("BadSignature")),
            "{accepted:?}"
        );

        // The real child dials an impostor parent.
        let impostor_parent = bind(fake_parent, &[child_id]);
        let accepting = Arc::clone(&impostor_parent);
        let impostor_side = tokio::spawn(async move { accepting.accept().await });
        let real_child = bind(child, &[parent_id]);
        let dial = real_child
            .connect(impostor_parent.local_address().unwrap(), parent_id)
            .await;
        assert!(
            matches!(dial, Err(TransportError::Handshake { .. })),
            "{dial:?}"
        );
        let message = dial.unwrap_err().to_string();
        assert!(message.contains("BadSignature"), "{message}");
        assert!(impostor_side.await.unwrap().is_err());
    }
}
