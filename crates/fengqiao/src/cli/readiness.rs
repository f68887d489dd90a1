//! Telling the service manager how `fengqiao run` stands (systemd's `Type=notify`): `READY=1`
//! once the node serves, `STOPPING=1` once it was told to stop. Sent only when systemd set
//! `NOTIFY_SOCKET`; elsewhere (a terminal, the tests' nodes) these do nothing.

use std::net::SocketAddr;

use sd_notify::NotifyState;

/// The node serves: its store is open, its API listens on `address` and its federation (if
/// configured) has started. systemd then counts the service as started, and units ordered after
/// it start.
pub fn notify_ready(address: SocketAddr) {
    let status = format!("serving on {address}");
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// The node was told to stop and is finishing its requests and closing its store.
pub fn notify_stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing requests, closing links and the store"),
    ]);
}

fn notify(states: &[NotifyState<'_>]) {
    // A lost notification costs systemd's view of the state (a start that times out), not the
    // node's work: logged, not fatal.
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}
