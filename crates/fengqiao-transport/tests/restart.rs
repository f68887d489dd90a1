//! A node that crashes (no CONNECTION_CLOSE reaches its peers) and comes back on the same UDP
//! address must end its peers' stale connections at once with a QUIC stateless reset, so that a
//! child redials within seconds rather than after the idle timeout.
//!
//! Its own test binary so that `RUST_LOG=quinn_proto=debug` shows what the restarted endpoint
//! does with the child's packets ("sending stateless reset" or "dropping packet with invalid CID").

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fengqiao_transport::{
    AdmittedPeers, NodeCredentials, NodeEndpoint, NodeId, TransportSettings, is_stateless_reset,
    quinn, read_frame,
};

/// Generous bound on how long the reset may take: the child's next keep-alive (5 s) is what
/// incites it, and it must come well before the 30 s idle timeout would end the connection.
const RESET_WITHIN: Duration = Duration::from_secs(12);

#[tokio::test]
async fn a_parent_crashed_and_restarted_on_the_same_address_resets_the_childs_connection_at_once() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let settings = TransportSettings::default();
    assert!(RESET_WITHIN < settings.idle_timeout / 2);
    let parent_credentials = Arc::new(NodeCredentials::from_seed(&[31; 32]).unwrap());
    let child_credentials = Arc::new(NodeCredentials::from_seed(&[32; 32]).unwrap());
    let parent_id = parent_credentials.node_id();
    let child_id = child_credentials.node_id();
    let child = NodeEndpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        child_credentials,
        AdmittedPeers::new([parent_id]).admission_check(),
    )
    .unwrap();

    // The first incarnation of the parent runs on a runtime of its own: shutting that runtime
    // down stops its endpoint and connection drivers where they are, with nothing sent, which is
    // what `kill -9` does to a node.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let credentials = Arc::clone(&parent_credentials);
    let parent = doomed
        .spawn(async move {
            NodeEndpoint::bind(
                "127.0.0.1:0".parse().unwrap(),
                credentials,
                AdmittedPeers::new([child_id]).admission_check(),
            )
            .map(Arc::new)
        })
        .await
        .unwrap()
        .unwrap();
    let parent_address = parent.local_address().unwrap();
    let accepting = Arc::clone(&parent);
    let parent_side = doomed.spawn(async move { accepting.accept().await });
    let link = child.connect(parent_address, parent_id).await.unwrap();
    let accepted = parent_side.await.unwrap().unwrap();
    assert_eq!(accepted.node_id, child_id);
    // Where the child's sync would be waiting for the parent's next frame.
    let (_send, mut receive) = link.connection.open_bi().await.unwrap();

    tokio::task::spawn_blocking(move || doomed.shutdown_timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    // With their drivers gone these hold the only references to the socket; dropping them
    // closes it and frees the port, and sends nothing.
    drop((accepted, parent));
    let crashed_at = Instant::now();

    let restarted = restart(parent_address, parent_credentials, child_id);
    let read = tokio::time::timeout(RESET_WITHIN, read_frame(&mut receive, 1024))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the child's connection to the crashed parent was still open after \
                 {RESET_WITHIN:?} (idle timeout {:?})",
                settings.idle_timeout
            )
        });
    let reason = link.connection.close_reason();
    assert!(
        matches!(reason, Some(quinn::ConnectionError::Reset)),
        "the connection should end with a stateless reset, not {reason:?}"
    );
    // What the child's redial loop looks at to dial again at once.
    let error = read.unwrap_err();
    assert!(is_stateless_reset(&error), "{error:?}");
    assert!(crashed_at.elapsed() < RESET_WITHIN);

    // And the child gets straight back in.
    let accepting = Arc::clone(&restarted);
    let parent_side = tokio::spawn(async move { accepting.accept().await });
    let link = child.connect(parent_address, parent_id).await.unwrap();
    assert_eq!(link.node_id, parent_id);
    assert_eq!(parent_side.await.unwrap().unwrap().node_id, child_id);
}

/// The parent's second incarnation, with the same key on the same address.
fn restart(
    address: SocketAddr,
    credentials: Arc<NodeCredentials>,
    child_id: NodeId,
) -> Arc<NodeEndpoint> {
    let endpoint = NodeEndpoint::bind(
        address,
        credentials,
        AdmittedPeers::new([child_id]).admission_check(),
    )
    .unwrap_or_else(|error| panic!("the crashed parent's port should be free again: {error}"));
    Arc::new(endpoint)
}
