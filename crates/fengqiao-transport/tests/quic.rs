//! Real QUIC on 127.0.0.1: mutual TLS between node certificates, refusals, revocation and frames.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fengqiao_transport::{
    AdmittedPeers, FrameError, NodeCredentials, NodeEndpoint, NodeId, PeerRefusal, TransportError,
    read_frame, write_frame,
};

const MAXIMUM: usize = 64 * 1024;
const PATIENCE: Duration = Duration::from_secs(10);

fn any_local_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct TestNode {
    endpoint: Arc<NodeEndpoint>,
    admitted: AdmittedPeers,
    node_id: NodeId,
}

fn node(seed: u8, admitted: &[NodeId]) -> TestNode {
    let credentials = Arc::new(NodeCredentials::from_seed(&[seed; 32]).unwrap());
    let node_id = credentials.node_id();
    let admitted = AdmittedPeers::new(admitted.iter().copied());
    let endpoint =
        NodeEndpoint::bind(any_local_port(), credentials, admitted.admission_check()).unwrap();
    TestNode {
        endpoint: Arc::new(endpoint),
        admitted,
        node_id,
    }
}

fn node_id_of_seed(seed: u8) -> NodeId {
    NodeCredentials::from_seed(&[seed; 32]).unwrap().node_id()
}

/// A refused client learns it from `connect`, because `connect` waits for the server's welcome.
async fn assert_client_is_turned_away(client: &NodeEndpoint, address: SocketAddr, server: NodeId) {
    let error = tokio::time::timeout(PATIENCE, client.connect(address, server))
        .await
        .expect("the refused client should see an error, not hang")
        .unwrap_err();
    assert!(
        matches!(&error, TransportError::RefusedByPeer { node_id, .. } if *node_id == server),
        "{error}"
    );
}

#[tokio::test]
async fn two_admitted_nodes_connect_with_mutual_tls_and_exchange_frames_both_ways() {
    let parent_id = node_id_of_seed(1);
    let child_id = node_id_of_seed(2);
    let parent = node(1, &[child_id]);
    let child = node(2, &[parent_id]);
    let parent_address = parent.endpoint.local_address().unwrap();

    let parent_endpoint = Arc::clone(&parent.endpoint);
    let parent_side = tokio::spawn(async move {
        let peer = parent_endpoint.accept().await.unwrap();
        assert_eq!(peer.node_id, child_id);
        let (mut send, mut receive) = peer.connection.accept_bi().await.unwrap();
        let request = read_frame(&mut receive, MAXIMUM).await.unwrap().unwrap();
        assert_eq!(request, "村里登记了一件信访事项".as_bytes());
        write_frame(&mut send, b"received at the township", MAXIMUM)
            .await
            .unwrap();
        send.finish().unwrap();

        // The parent can also open a stream of its own towards the child.
        let mut push = peer.connection.open_uni().await.unwrap();
        write_frame(&mut push, b"directive from above", MAXIMUM)
            .await
            .unwrap();
        push.finish().unwrap();
        peer.connection.closed().await;
    });

    let peer = child
        .endpoint
        .connect(parent_address, parent_id)
        .await
        .unwrap();
    assert_eq!(peer.node_id, parent_id);
    assert_eq!(peer.remote_address, parent_address);
    let (mut send, mut receive) = peer.connection.open_bi().await.unwrap();
    write_frame(&mut send, "村里登记了一件信访事项".as_bytes(), MAXIMUM)
        .await
        .unwrap();
    send.finish().unwrap();
    let reply = read_frame(&mut receive, MAXIMUM).await.unwrap().unwrap();
    assert_eq!(reply, b"received at the township");
    assert!(read_frame(&mut receive, MAXIMUM).await.unwrap().is_none());

    let mut pushed = peer.connection.accept_uni().await.unwrap();
    let directive = read_frame(&mut pushed, MAXIMUM).await.unwrap().unwrap();
    assert_eq!(directive, b"directive from above");

    peer.connection.close(0u32.into(), b"done");
    tokio::time::timeout(PATIENCE, parent_side)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_server_that_is_not_the_expected_node_is_refused_by_the_client() {
    let impostor_id = node_id_of_seed(21);
    let real_parent_id = node_id_of_seed(22);
    let child_id = node_id_of_seed(23);
    let impostor = node(21, &[child_id]);
    let child = node(23, &[real_parent_id, impostor_id]);
    let impostor_address = impostor.endpoint.local_address().unwrap();

    let impostor_endpoint = Arc::clone(&impostor.endpoint);
    let impostor_side = tokio::spawn(async move { impostor_endpoint.accept().await });

    let error = child
        .endpoint
        .connect(impostor_address, real_parent_id)
        .await
        .unwrap_err();
    assert_eq!(
        error.refusal(),
        Some(&PeerRefusal::UnexpectedNode {
            expected: real_parent_id,
            found: impostor_id
        }),
        "{error}"
    );
    // The impostor's handshake fails too, without a refusal of its own.
    let impostor_error = tokio::time::timeout(PATIENCE, impostor_side)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(impostor_error.refusal().is_none(), "{impostor_error}");
}

#[tokio::test]
async fn a_client_refuses_a_server_it_has_not_admitted_even_when_it_is_the_one_dialed() {
    let parent_id = node_id_of_seed(31);
    let child_id = node_id_of_seed(32);
    let parent = node(31, &[child_id]);
    let child = node(32, &[]);
    let parent_address = parent.endpoint.local_address().unwrap();
    let parent_endpoint = Arc::clone(&parent.endpoint);
    let _parent_side = tokio::spawn(async move { parent_endpoint.accept().await });

    let error = child
        .endpoint
        .connect(parent_address, parent_id)
        .await
        .unwrap_err();
    assert_eq!(
        error.refusal(),
        Some(&PeerRefusal::NotAdmitted { node_id: parent_id })
    );
}

#[tokio::test]
async fn revoking_a_node_refuses_its_next_connection_and_admitting_it_again_lets_it_back() {
    let parent_id = node_id_of_seed(41);
    let child_id = node_id_of_seed(42);
    let parent = node(41, &[child_id]);
    let child = node(42, &[parent_id]);
    let parent_address = parent.endpoint.local_address().unwrap();

    let parent_endpoint = Arc::clone(&parent.endpoint);
    let parent_side = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            outcomes.push(parent_endpoint.accept().await.map(|peer| {
                let node_id = peer.node_id;
                // Keep the connection alive until the test ends.
                std::mem::forget(peer);
                node_id
            }));
        }
        outcomes
    });

    let first = child
        .endpoint
        .connect(parent_address, parent_id)
        .await
        .unwrap();
    assert_eq!(first.node_id, parent_id);

    assert!(parent.admitted.revoke(&child_id));
    assert_client_is_turned_away(&child.endpoint, parent_address, parent_id).await;

    assert!(parent.admitted.admit(child_id));
    let third = child
        .endpoint
        .connect(parent_address, parent_id)
        .await
        .unwrap();
    assert_eq!(third.node_id, parent_id);

    let outcomes = tokio::time::timeout(PATIENCE, parent_side)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0].as_ref().unwrap(), &child_id);
    assert_eq!(
        outcomes[1].as_ref().unwrap_err().refusal(),
        Some(&PeerRefusal::NotAdmitted { node_id: child_id })
    );
    assert_eq!(outcomes[2].as_ref().unwrap(), &child_id);
    let _ = child.admitted;
}

#[tokio::test]
async fn an_oversized_frame_on_a_quic_stream_is_an_error_not_an_allocation() {
    let parent_id = node_id_of_seed(51);
    let child_id = node_id_of_seed(52);
    let parent = node(51, &[child_id]);
    let child = node(52, &[parent_id]);
    let parent_address = parent.endpoint.local_address().unwrap();

    let parent_endpoint = Arc::clone(&parent.endpoint);
    let parent_side = tokio::spawn(async move {
        let peer = parent_endpoint.accept().await.unwrap();
        let mut receive = peer.connection.accept_uni().await.unwrap();
        let result = read_frame(&mut receive, MAXIMUM).await;
        drop(peer);
        result
    });

    let peer = child
        .endpoint
        .connect(parent_address, parent_id)
        .await
        .unwrap();
    let mut send = peer.connection.open_uni().await.unwrap();
    // A hostile length prefix announcing 4 GiB, followed by a few bytes.
    tokio::io::AsyncWriteExt::write_all(&mut send, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    send.finish().unwrap();

    let error = tokio::time::timeout(PATIENCE, parent_side)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, FrameError::Oversized { length: 0xffff_ffff, maximum } if maximum == MAXIMUM),
        "{error}"
    );
}

#[tokio::test]
async fn the_connected_peer_id_is_the_id_of_its_raw_public_key() {
    let parent_seed = [61u8; 32];
    let parent_public_key = ed25519_dalek::SigningKey::from_bytes(&parent_seed).verifying_key();
    let parent_id_from_key = NodeId::from_public_key(parent_public_key.as_bytes());
    let child_id = node_id_of_seed(62);
    let parent = node(61, &[child_id]);
    let child = node(62, &[parent_id_from_key]);
    assert_eq!(parent.node_id, parent_id_from_key);

    let parent_endpoint = Arc::clone(&parent.endpoint);
    let parent_side = tokio::spawn(async move { parent_endpoint.accept().await.unwrap() });
    let peer = child
        .endpoint
        .connect(parent.endpoint.local_address().unwrap(), parent_id_from_key)
        .await
        .unwrap();
    assert_eq!(peer.node_id, parent_id_from_key);
    assert_eq!(
        tokio::time::timeout(PATIENCE, parent_side)
            .await
            .unwrap()
            .unwrap()
            .node_id,
        child.node_id
    );
}

#[tokio::test]
async fn several_children_handshake_concurrently_through_accept_incoming() {
    let parent_id = node_id_of_seed(71);
    let first_child = node(72, &[parent_id]);
    let second_child = node(73, &[parent_id]);
    let parent = node(71, &[first_child.node_id, second_child.node_id]);
    let parent_address = parent.endpoint.local_address().unwrap();

    let parent_endpoint = Arc::clone(&parent.endpoint);
    let parent_side = tokio::spawn(async move {
        let mut handshakes = tokio::task::JoinSet::new();
        for _ in 0..2 {
            let incoming = parent_endpoint.accept_incoming().await.unwrap();
            handshakes.spawn(incoming.handshake());
        }
        let mut node_ids = Vec::new();
        let mut connections = Vec::new();
        while let Some(outcome) = handshakes.join_next().await {
            let peer = outcome.unwrap().unwrap();
            node_ids.push(peer.node_id);
            connections.push(peer);
        }
        node_ids.sort();
        (node_ids, connections)
    });

    let (first, second) = tokio::join!(
        first_child.endpoint.connect(parent_address, parent_id),
        second_child.endpoint.connect(parent_address, parent_id),
    );
    assert_eq!(first.unwrap().node_id, parent_id);
    assert_eq!(second.unwrap().node_id, parent_id);
    let (node_ids, _connections) = tokio::time::timeout(PATIENCE, parent_side)
        .await
        .unwrap()
        .unwrap();
    let mut expected = vec![first_child.node_id, second_child.node_id];
    expected.sort();
    assert_eq!(node_ids, expected);
}
