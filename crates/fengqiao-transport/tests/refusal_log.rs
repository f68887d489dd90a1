//! The line an operator reads when an unknown node knocks: its own test binary, because the log
//! capture installs a process-wide subscriber.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fengqiao_transport::{
    AdmittedPeers, NodeCredentials, NodeEndpoint, PeerRefusal, TransportError,
};

/// Log lines written while the test runs.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_unknown_node_is_refused_with_a_clear_log_line_on_both_sides() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let parent_credentials = Arc::new(NodeCredentials::from_seed(&[11; 32]).unwrap());
    let stranger_credentials = Arc::new(NodeCredentials::from_seed(&[12; 32]).unwrap());
    let parent_id = parent_credentials.node_id();
    let stranger_id = stranger_credentials.node_id();
    let local = "127.0.0.1:0".parse().unwrap();
    let parent = Arc::new(
        NodeEndpoint::bind(
            local,
            parent_credentials,
            AdmittedPeers::default().admission_check(),
        )
        .unwrap(),
    );
    let stranger = NodeEndpoint::bind(
        local,
        stranger_credentials,
        AdmittedPeers::new([parent_id]).admission_check(),
    )
    .unwrap();
    let parent_address = parent.local_address().unwrap();

    let accepting = Arc::clone(&parent);
    let parent_side = tokio::spawn(async move { accepting.accept().await });
    let client_error = stranger
        .connect(parent_address, parent_id)
        .await
        .unwrap_err();
    assert!(
        matches!(client_error, TransportError::RefusedByPeer { .. }),
        "{client_error}"
    );

    let server_error = tokio::time::timeout(Duration::from_secs(10), parent_side)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        server_error.refusal(),
        Some(&PeerRefusal::NotAdmitted {
            node_id: stranger_id
        })
    );
    let expected = format!("peer {stranger_id} is not admitted");
    assert!(
        server_error.to_string().contains(&expected),
        "{server_error}"
    );

    let logged = logs.text();
    let refusal_line = logged
        .lines()
        .find(|line| line.contains("refused connection") && line.contains(&expected))
        .unwrap_or_else(|| panic!("no refusal line in:\n{logged}"));
    assert!(refusal_line.contains("WARN"), "{refusal_line}");
    assert!(
        refusal_line.contains(&format!("peer={stranger_id}")),
        "{refusal_line}"
    );
    assert!(
        refusal_line.contains("address=127.0.0.1:"),
        "{refusal_line}"
    );
    assert!(
        logged
            .lines()
            .any(|line| line.contains("this node was refused")
                && line.contains(&parent_id.to_string())),
        "{logged}"
    );
    println!("{logged}");
}
