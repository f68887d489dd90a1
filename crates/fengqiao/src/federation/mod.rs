//! Federation: the async shell that runs the sans-IO sync core (`fengqiao-sync`) over QUIC
//! (`fengqiao-transport`) and the node's store, as quinn runs quinn-proto.
//!
//! - [`StoreReplica`] backs the core's `Replica` trait with sled;
//! - [`SyncDriver`] runs one connection's session;
//! - [`Federation`] binds the node's QUIC endpoint, dials the parent (reconnecting with backoff),
//!   accepts admitted children, and keeps each link's state for `fengqiao peers`.
//!
//! Configuration comes in as a [`FederationConfig`], made from `fengqiao.toml`'s `[federation]`
//! section by [`FederationConfig::from_section`].

mod driver;
mod links;
mod replica;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use fengqiao_sync::{PeerDescription, PeerRelation, SessionConfig, SubtreeRoster};
use fengqiao_transport::{
    AdmittedPeers, NodeCredentials, NodeEndpoint, PeerConnection, TransportError, TransportSettings,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use driver::{ChangeNotifier, DriverError, SessionEnd, StreamRole, SyncDriver};
pub use links::{LinkRegistry, PeerLinkReport, PeerView};
pub use replica::{SharedRoster, StoreHandle, StoreReplica, peer_cursor_key, peer_heads_key};

use crate::service::Node;

/// Feed entries counted for a link's `pending` figure before giving up counting.
const PENDING_COUNT_CAP: usize = 100_000;

/// An office at the other end of a link (or known from the roster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeEntry {
    pub node_id: String,
    pub name: String,
    /// Other names the office goes by; a complaint naming any of them is never sent to it.
    pub aliases: Vec<String>,
    pub region_code: String,
}

/// The parent this node dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentLink {
    pub address: SocketAddr,
    pub office: OfficeEntry,
}

/// When to redial a lost parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub maximum: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            maximum: Duration::from_secs(5),
        }
    }
}

/// Everything the federation needs beyond the node itself.
#[derive(Debug, Clone)]
pub struct FederationConfig {
    /// UDP address of the node's QUIC endpoint (port 0 picks a free port).
    pub listen: SocketAddr,
    pub parent: Option<ParentLink>,
    /// Children this node has admitted; only they may connect.
    pub children: Vec<OfficeEntry>,
    /// Other offices below this node (grandchildren and deeper), by node ID and region code,
    /// so that routing can tell which child's subtree a node belongs to. Stands in for the
    /// replicated roster.
    pub roster: Vec<OfficeEntry>,
    pub session: SessionConfig,
    pub transport: TransportSettings,
    pub reconnect: Backoff,
    /// How often the store's feed head is checked for local changes. The service layer does not
    /// notify yet; [`Federation::notifier`] lets it do so later.
    pub feed_poll_interval: Duration,
}

impl FederationConfig {
    pub fn new(listen: SocketAddr) -> FederationConfig {
        FederationConfig {
            listen,
            parent: None,
            children: Vec::new(),
            roster: Vec::new(),
            session: SessionConfig::default(),
            transport: TransportSettings::default(),
            reconnect: Backoff::default(),
            feed_poll_interval: Duration::from_millis(50),
        }
    }
}

impl FederationConfig {
    /// The federation of a node whose config has a `[federation]` section; `listen_override`
    /// replaces the configured QUIC address (as `run --quic-listen` does).
    pub fn from_section(
        section: &crate::config::FederationSection,
        listen_override: Option<SocketAddr>,
    ) -> FederationConfig {
        let office =
            |node_id: &str, name: &str, region_code: &str, aliases: &[String]| OfficeEntry {
                node_id: node_id.to_owned(),
                name: name.to_owned(),
                aliases: aliases.to_vec(),
                region_code: region_code.to_owned(),
            };
        let mut config = FederationConfig::new(listen_override.unwrap_or(section.listen));
        config.parent = section.parent.as_ref().map(|parent| ParentLink {
            address: parent.address,
            office: office(
                &parent.node_id,
                &parent.name,
                &parent.region_code,
                &parent.aliases,
            ),
        });
        config.children = section
            .children
            .iter()
            .map(|child| {
                office(
                    &child.node_id,
                    &child.name,
                    &child.region_code,
                    &child.aliases,
                )
            })
            .collect();
        config.roster = section
            .roster
            .iter()
            .map(|entry| {
                office(
                    &entry.node_id,
                    &entry.name,
                    &entry.region_code,
                    &entry.aliases,
                )
            })
            .collect();
        config
    }
}

/// A cheap, clonable view of a running federation for the API: link reports and the change
/// notifier. It holds no task guard, so it never delays [`Federation::shutdown`].
#[derive(Clone)]
pub struct FederationStatus {
    links: LinkRegistry,
    replica: StoreReplica,
    notifier: ChangeNotifier,
}

impl std::fmt::Debug for FederationStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FederationStatus")
            .finish_non_exhaustive()
    }
}

impl FederationStatus {
    /// Wake the links after a local write.
    pub fn notify_local_change(&self) {
        self.notifier.notify();
    }

    /// Each link's state, with the pending figure read from the store.
    pub async fn peers(&self) -> Result<Vec<PeerLinkReport>, FederationError> {
        let mut reports = self.links.snapshot();
        let mut replica = self.replica.clone();
        let reports = tokio::task::spawn_blocking(move || {
            for report in &mut reports {
                report.pending = replica.pending_for_peer(&report.node_id, PENDING_COUNT_CAP)?;
            }
            Ok::<_, FederationError>(reports)
        })
        .await??;
        Ok(reports)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("node id {node_id:?} in the federation configuration is invalid: {why}")]
    InvalidNodeId { node_id: String, why: String },
    #[error("cannot start the quic endpoint: {0}")]
    Transport(#[from] TransportError),
    #[error("a blocking federation task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
    #[error("cannot read the sync state: {0}")]
    Storage(#[from] fengqiao_sync::ReplicaError),
}

/// Subtree membership by region code: a node belongs to the subtree of every office whose region
/// code is a prefix of its own (village 12 digits, township 9, county 6).
#[derive(Debug, Clone, Default)]
pub struct RegionRoster {
    region_of: HashMap<String, String>,
}

impl RegionRoster {
    pub fn new(offices: impl IntoIterator<Item = (String, String)>) -> RegionRoster {
        RegionRoster {
            region_of: offices.into_iter().collect(),
        }
    }
}

impl SubtreeRoster for RegionRoster {
    fn is_in_subtree(&self, subtree_root: &str, node: &str) -> bool {
        if subtree_root == node {
            return true;
        }
        match (self.region_of.get(subtree_root), self.region_of.get(node)) {
            (Some(root_region), Some(node_region)) => {
                !root_region.is_empty() && node_region.starts_with(root_region.as_str())
            }
            _ => false,
        }
    }
}

/// The node's transport credentials, made from its `node.key`.
///
/// `NodeIdentity` does not hand out its seed, so the key file is read again here; the result is
/// checked against the node's ID so that both can never disagree.
pub fn node_credentials(node: &Node) -> anyhow::Result<NodeCredentials> {
    let path = node.dir().key_path();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the node key {}", path.display()))?;
    let seed_hex = text
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("ed25519 "))
        .with_context(|| format!("the node key {} has no ed25519 line", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(seed_hex.trim(), &mut seed)
        .with_context(|| format!("the node key {} is not 32 hex bytes", path.display()))?;
    let credentials = NodeCredentials::from_seed(&seed)
        .with_context(|| format!("cannot make credentials from {}", path.display()))?;
    anyhow::ensure!(
        credentials.node_id().to_string() == node.node_id(),
        "the node key {} does not belong to node {}",
        path.display(),
        node.node_id()
    );
    Ok(credentials)
}

fn parse_node_id(node_id: &str) -> Result<fengqiao_transport::NodeId, FederationError> {
    fengqiao_transport::NodeId::from_str(node_id).map_err(|error| FederationError::InvalidNodeId {
        node_id: node_id.to_owned(),
        why: error.to_string(),
    })
}

fn describe(office: &OfficeEntry, relation: PeerRelation) -> PeerDescription {
    PeerDescription {
        node_id: office.node_id.clone(),
        name: office.name.clone(),
        aliases: office.aliases.clone(),
        region_code: office.region_code.clone(),
        relation,
    }
}

/// Completes once `shutdown` says so (or its sender is gone).
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens when the federation is dropped.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// What every task of one running federation shares.
struct Shared {
    local_node_id: String,
    replica: StoreReplica,
    notifier: ChangeNotifier,
    links: LinkRegistry,
    session: SessionConfig,
    shutdown: watch::Receiver<bool>,
    /// Held by every task; the federation has stopped once every clone is dropped.
    task_alive: mpsc::Sender<()>,
    /// The stop switch of each child's current connection: a child that reconnects replaces its
    /// old connection instead of running two sessions on the same cursor.
    child_connections: Mutex<HashMap<String, watch::Sender<bool>>>,
    children: HashMap<String, OfficeEntry>,
}

/// A running federation: the node's QUIC endpoint, its parent link and its children's links.
pub struct Federation {
    shared: Arc<Shared>,
    endpoint: Arc<NodeEndpoint>,
    admitted: AdmittedPeers,
    shutdown: watch::Sender<bool>,
    tasks_done: mpsc::Receiver<()>,
    tasks: Vec<JoinHandle<()>>,
    local_address: SocketAddr,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Federation")
            .field("node_id", &self.shared.local_node_id)
            .field("local_address", &self.local_address)
            .finish_non_exhaustive()
    }
}

impl Federation {
    /// Bind the endpoint and start the links. Must run inside a tokio runtime.
    pub async fn start(node: Arc<Node>, config: FederationConfig) -> anyhow::Result<Federation> {
        let credentials = Arc::new(node_credentials(&node)?);
        let mut admitted = Vec::new();
        for office in config
            .children
            .iter()
            .chain(config.parent.iter().map(|parent| &parent.office))
        {
            admitted.push(parse_node_id(&office.node_id)?);
        }
        let admitted = AdmittedPeers::new(admitted);
        let endpoint = Arc::new(
            NodeEndpoint::bind_with_settings(
                config.listen,
                credentials,
                admitted.admission_check(),
                &config.transport,
            )
            .with_context(|| format!("cannot start federation on {}", config.listen))?,
        );
        let local_address = endpoint.local_address()?;

        let mut regions: Vec<(String, String)> = config
            .children
            .iter()
            .chain(config.roster.iter())
            .chain(config.parent.iter().map(|parent| &parent.office))
            .map(|office| (office.node_id.clone(), office.region_code.clone()))
            .collect();
        regions.push((
            node.node_id().to_owned(),
            node.config().node.region_code.clone(),
        ));
        let roster: SharedRoster = Arc::new(RegionRoster::new(regions));
        let replica = StoreReplica::for_node(Arc::clone(&node), roster);

        let links = LinkRegistry::default();
        if let Some(parent) = &config.parent {
            links.declare(
                &parent.office.node_id,
                &parent.office.name,
                PeerRelation::Parent,
            );
        }
        for child in &config.children {
            links.declare(&child.node_id, &child.name, PeerRelation::Child);
        }

        let (shutdown, shutdown_receiver) = watch::channel(false);
        let (task_alive, tasks_done) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            local_node_id: node.node_id().to_owned(),
            replica,
            notifier: ChangeNotifier::default(),
            links,
            session: config.session.clone(),
            shutdown: shutdown_receiver,
            task_alive,
            child_connections: Mutex::new(HashMap::new()),
            children: config
                .children
                .iter()
                .map(|child| (child.node_id.clone(), child.clone()))
                .collect(),
        });
        let span = tracing::info_span!("federation", node = %node.node_id(), %local_address);
        let mut tasks = vec![tokio::spawn(
            watch_feed(Arc::clone(&shared), config.feed_poll_interval).instrument(span.clone()),
        )];
        tasks.push(tokio::spawn(
            accept_children(Arc::clone(&shared), Arc::clone(&endpoint)).instrument(span.clone()),
        ));
        if let Some(parent) = config.parent.clone() {
            tasks.push(tokio::spawn(
                dial_parent(
                    Arc::clone(&shared),
                    Arc::clone(&endpoint),
                    parent,
                    config.reconnect,
                )
                .instrument(span.clone()),
            ));
        }
        span.in_scope(|| {
            tracing::info!(
                parent = config
                    .parent
                    .as_ref()
                    .map(|parent| parent.office.node_id.as_str()),
                children = config.children.len(),
                "federation started"
            );
        });
        Ok(Federation {
            shared,
            endpoint,
            admitted,
            shutdown,
            tasks_done,
            tasks,
            local_address,
        })
    }

    /// The UDP address the endpoint is bound to.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// Call [`ChangeNotifier::notify`] after a local write to wake the links at once, instead of
    /// at the next feed poll.
    pub fn notifier(&self) -> ChangeNotifier {
        self.shared.notifier.clone()
    }

    /// Refuse a child from now on and close its current connection. Returns whether it had been
    /// admitted. Its cases stay here; only the link goes.
    pub fn revoke_child(&self, node_id: &str) -> Result<bool, FederationError> {
        let parsed = parse_node_id(node_id)?;
        if !self.shared.children.contains_key(node_id) {
            return Ok(false);
        }
        let was_admitted = self.admitted.revoke(&parsed);
        let connection = self
            .shared
            .child_connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node_id);
        if let Some(connection) = connection {
            let _ = connection.send(true);
        }
        tracing::warn!(
            peer = node_id,
            "child revoked; its connections are refused from now on"
        );
        Ok(was_admitted)
    }

    /// Each link's state, with the pending figure read from the store.
    pub async fn peers(&self) -> Result<Vec<PeerLinkReport>, FederationError> {
        self.status().peers().await
    }

    /// A view for the API that does not keep the federation alive.
    pub fn status(&self) -> FederationStatus {
        FederationStatus {
            links: self.shared.links.clone(),
            replica: self.shared.replica.clone(),
            notifier: self.shared.notifier.clone(),
        }
    }

    /// Stop every link, close the endpoint, and wait for every task and for the peers to hear.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        self.endpoint.close();
        for task in self.tasks.drain(..) {
            if let Err(error) = task.await {
                tracing::warn!(%error, "a federation task ended abnormally");
            }
        }
        // Peer tasks spawned by the accept loop hold their own guard; wait for them too.
        drop(self.shared);
        let _ = self.tasks_done.recv().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Wakes the sessions when the store's feed head moves: the service layer writes without telling
/// the federation yet, and a feed-head read is one small meta lookup.
async fn watch_feed(shared: Arc<Shared>, interval: Duration) {
    let _alive = shared.task_alive.clone();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_head = None;
    let stop = stopped(shared.shutdown.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticker.tick() => {}
        }
        let replica = shared.replica.clone();
        let head = tokio::task::spawn_blocking(move || replica.store().feed_head()).await;
        match head {
            Ok(Ok(head)) => {
                if last_head.is_some_and(|last| last != head) {
                    shared.notifier.notify();
                }
                last_head = Some(head);
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot read the feed head"),
            Err(error) => tracing::warn!(%error, "feed watcher task failed"),
        }
    }
}

async fn accept_children(shared: Arc<Shared>, endpoint: Arc<NodeEndpoint>) {
    let _alive = shared.task_alive.clone();
    let stop = stopped(shared.shutdown.clone());
    tokio::pin!(stop);
    loop {
        let incoming = tokio::select! {
            () = &mut stop => return,
            incoming = endpoint.accept_incoming() => incoming,
        };
        match incoming {
            Ok(incoming) => {
                // One handshake per task, so a child on a bad link cannot hold up the others.
                let shared = Arc::clone(&shared);
                tokio::spawn(
                    async move {
                        let _alive = shared.task_alive.clone();
                        let address = incoming.remote_address();
                        match incoming.handshake().await {
                            Ok(connection) => serve_child(shared, connection).await,
                            Err(error) => {
                                tracing::warn!(%address, %error, "incoming connection refused");
                            }
                        }
                    }
                    .in_current_span(),
                );
            }
            Err(TransportError::EndpointClosed) => return,
            Err(error) => tracing::warn!(%error, "cannot accept a connection"),
        }
    }
}

async fn serve_child(shared: Arc<Shared>, connection: PeerConnection) {
    let node_id = connection.node_id.to_string();
    let Some(child) = shared.children.get(&node_id).cloned() else {
        // Admitted at the handshake only as our parent: a parent never dials its child.
        tracing::warn!(
            peer = %node_id,
            address = %connection.remote_address,
            "refused a connection from a node that is not an admitted child"
        );
        connection.connection.close(
            fengqiao_transport::quinn::VarInt::from_u32(3),
            b"not a child",
        );
        return;
    };
    let (stop_this, stop_receiver) = watch::channel(false);
    let stop_this_connection = stop_this.clone();
    let replaced = shared
        .child_connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(node_id.clone(), stop_this);
    if let Some(previous) = replaced {
        tracing::info!(peer = %node_id, "child reconnected; its previous connection is closed");
        let _ = previous.send(true);
    }
    let driver = SyncDriver {
        connection,
        role: StreamRole::Acceptor,
        local_node_id: shared.local_node_id.clone(),
        peer: describe(&child, PeerRelation::Child),
        session_config: shared.session.clone(),
        replica: shared.replica.clone(),
        notifier: shared.notifier.clone(),
        links: shared.links.clone(),
    };
    let federation_stop = stopped(shared.shutdown.clone());
    let connection_stop = stopped(stop_receiver);
    let stop = async move {
        tokio::select! {
            () = federation_stop => {}
            () = connection_stop => {}
        }
    };
    // The driver logs how the session ended; nothing more to do with the outcome here.
    let _ = driver.run(stop).await;
    let mut connections = shared
        .child_connections
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // Only our own entry: a newer connection of the same child has replaced it otherwise.
    if connections
        .get(&node_id)
        .is_some_and(|current| current.same_channel(&stop_this_connection))
    {
        connections.remove(&node_id);
    }
}

async fn dial_parent(
    shared: Arc<Shared>,
    endpoint: Arc<NodeEndpoint>,
    parent: ParentLink,
    backoff: Backoff,
) {
    let _alive = shared.task_alive.clone();
    let expected = match parse_node_id(&parent.office.node_id) {
        Ok(expected) => expected,
        Err(error) => {
            tracing::error!(%error, "cannot dial the parent");
            return;
        }
    };
    let mut delay = backoff.initial;
    let stop = stopped(shared.shutdown.clone());
    tokio::pin!(stop);
    loop {
        let connected = tokio::select! {
            () = &mut stop => return,
            connected = endpoint.connect(parent.address, expected) => connected,
        };
        match connected {
            Ok(connection) => {
                let began = std::time::Instant::now();
                let driver = SyncDriver {
                    connection,
                    role: StreamRole::Dialer,
                    local_node_id: shared.local_node_id.clone(),
                    peer: describe(&parent.office, PeerRelation::Parent),
                    session_config: shared.session.clone(),
                    replica: shared.replica.clone(),
                    notifier: shared.notifier.clone(),
                    links: shared.links.clone(),
                };
                let outcome = driver.run(stopped(shared.shutdown.clone())).await;
                if matches!(outcome, Ok(SessionEnd::Stopped)) {
                    return;
                }
                // A link that held for a while dropped for a new reason: redial quickly. One that
                // fails as soon as it is up (a protocol mismatch, say) keeps backing off.
                if began.elapsed() > backoff.maximum {
                    delay = backoff.initial;
                }
            }
            Err(error) => {
                tracing::warn!(
                    parent = %parent.office.node_id,
                    address = %parent.address,
                    %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot connect to the parent"
                );
                shared
                    .links
                    .failed_to_connect(&parent.office.node_id, error.to_string());
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(backoff.maximum);
    }
}
