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
mod prepared;
mod replica;
mod roster;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use fengqiao_sync::{PeerDescription, PeerRelation, SessionConfig};
use fengqiao_transport::{
    AdmittedPeers, NodeCredentials, NodeEndpoint, PeerConnection, TransportError, TransportSettings,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use driver::{ChangeNotifier, DriverError, SessionEnd, StreamRole, SyncDriver};
pub use links::{LinkRegistry, PeerLinkReport, PeerView};
pub use replica::{
    PEER_SYNC_META_PREFIX, SharedRoster, StoreHandle, StoreReplica, peer_cursor_key, peer_heads_key,
};
pub use roster::{LiveRoster, ROSTER_META_KEY, RosterStoreError, tier_of_region_code};

use crate::service::Node;

/// Own feed entries read for a link's `pending` figure (those routing sends the peer are counted):
/// the same cap as the backlog a session announces to its peer, so both directions read alike.
const PENDING_COUNT_CAP: usize = fengqiao_sync::session::BACKLOG_COUNT_CAP;

/// An office at the other end of a link (or known from the roster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeEntry {
    pub node_id: String,
    pub name: String,
    /// Other names the office goes by; a complaint naming any of them is never sent to it.
    pub aliases: Vec<String>,
    pub region_code: String,
    /// The node this child replaced (`admit --successor-of`); `None` for a parent.
    pub successor_of: Option<String>,
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
                successor_of: None,
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
            .map(|child| OfficeEntry {
                successor_of: child.successor_of.clone(),
                ..office(
                    &child.node_id,
                    &child.name,
                    &child.region_code,
                    &child.aliases,
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
    roster: Arc<LiveRoster>,
    /// Weak, so that the API holding this view never keeps a stopped federation's tasks alive.
    shared: std::sync::Weak<Shared>,
}

impl std::fmt::Debug for FederationStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FederationStatus")
            .finish_non_exhaustive()
    }
}

impl FederationStatus {
    /// Issue the next policy version as the federation's root (`POST /api/policy`): numbered,
    /// signed with `node`'s key, persisted, and announced on every link. Blocking: run it off
    /// the async runtime. The outer error is the store's; the inner one says why the roster
    /// refused (not the root, or a policy that does not validate).
    pub fn issue_policy(
        &self,
        node: &Node,
        request: fengqiao_case::model::policy::IssuePolicy,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<
        Result<fengqiao_case::model::policy::SignedPolicy, fengqiao_sync::RosterError>,
        RosterStoreError,
    > {
        self.roster.update(|roster| {
            roster.issue_policy(
                node.identity(),
                request.limits,
                request.warnings,
                request.note,
                now,
            )
        })
    }

    /// The node's roster as people read it: the root it trusts, every member, and the offices
    /// revoked.
    pub fn roster(&self) -> fengqiao_case::model::roster::RosterView {
        let roster = self.roster.read();
        let view = |entry: &fengqiao_case::model::roster::RosterEntry| {
            fengqiao_case::model::roster::RosterMemberView {
                node_id: entry.node_id.clone(),
                name: entry.name.clone(),
                tier: entry.tier,
                region_code: entry.region_code.clone(),
                admitted_by: entry.parent.clone(),
                issued_at: entry.issued_at,
                revoked: entry.revoked,
            }
        };
        fengqiao_case::model::roster::RosterView {
            schema_version: fengqiao_case::SCHEMA_VERSION,
            root: roster.root().map(str::to_owned),
            members: roster.members().map(view).collect(),
            revoked: roster.revoked().map(view).collect(),
            entries: roster.entry_count(),
        }
    }

    /// Apply a re-read `[federation]` section to the running federation: children admitted,
    /// revoked or changed take effect at once; a changed parent is reported as needing a restart.
    pub async fn reload(
        &self,
        section: &crate::config::FederationSection,
    ) -> Result<fengqiao_case::model::roster::FederationReload, FederationError> {
        let shared = self.shared.upgrade().ok_or(FederationError::Stopped)?;
        let config = FederationConfig::from_section(section, None);
        let running_parent = shared.parent.clone();
        let mut reload =
            tokio::task::spawn_blocking(move || shared.set_children(&config.children)).await??;
        let same_parent = match (&running_parent, &config.parent) {
            (None, None) => true,
            (Some(running), Some(configured)) => running == configured,
            _ => false,
        };
        if !same_parent {
            reload.needs_restart.push(match &config.parent {
                Some(parent) => format!(
                    "the parent is now {} (node {}) at {}: restart the node to dial it",
                    parent.office.name, parent.office.node_id, parent.address
                ),
                None => "the parent was removed: restart the node to stop dialing it".to_owned(),
            });
        }
        tracing::info!(
            admitted = reload.admitted.len(),
            revoked = reload.revoked.len(),
            updated = reload.updated.len(),
            signed = reload.roster_entries_signed,
            "federation configuration reloaded"
        );
        Ok(reload)
    }

    /// Wake the links after a local write.
    pub fn notify_local_change(&self) {
        self.notifier.notify();
    }

    /// Each link's state, with the pending figure read from the store.
    pub async fn peers(&self) -> Result<Vec<PeerLinkReport>, FederationError> {
        let mut reports = self.links.snapshot();
        // The pending figure counts what routing sends each peer, so it needs the peer as its
        // sessions describe it. The federation is let go before counting, so that a count never
        // keeps a stopping federation waiting.
        let described: Vec<Option<PeerDescription>> = {
            let shared = self.shared.upgrade().ok_or(FederationError::Stopped)?;
            reports
                .iter()
                .map(|report| shared.describe_peer(&report.node_id, report.relation))
                .collect()
        };
        let mut replica = self.replica.clone();
        let reports = tokio::task::spawn_blocking(move || {
            let quarantined = replica.quarantine_by_peer()?;
            let refused = replica.refused_by_peer()?;
            let rebuild = crate::rebuild::report(replica.store()).unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot read the rebuild state for the parent's link");
                None
            });
            for (report, peer) in reports.iter_mut().zip(described) {
                if let Some(rebuild) = &rebuild
                    && report.node_id == rebuild.parent
                {
                    report.rebuild = Some(rebuild.clone());
                }
                report.refused_by_peer = refused.get(&report.node_id).copied().unwrap_or(0);
                // A link dropped since the snapshot is owed nothing.
                report.pending = match peer {
                    Some(peer) => replica.pending_for_peer(&peer, PENDING_COUNT_CAP)?,
                    None => 0,
                };
                if let Some((count, last)) = quarantined.get(&report.node_id) {
                    report.quarantined = *count;
                    report.last_quarantine = Some(last.clone());
                }
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
    #[error("{0}")]
    Roster(#[from] RosterStoreError),
    #[error("the federation has stopped")]
    Stopped,
}

/// The node's transport credentials: the same key as its identity, so the two can never disagree.
pub fn node_credentials(node: &Node) -> anyhow::Result<NodeCredentials> {
    node.identity()
        .transport_credentials()
        .context("cannot make transport credentials from the node key")
}

/// What this node vouches for in the roster: itself when it is the root, and each admitted child.
fn admission_of(office: &OfficeEntry) -> Option<fengqiao_sync::Admission> {
    let Some(tier) = tier_of_region_code(&office.region_code) else {
        tracing::warn!(
            node = %office.node_id,
            region_code = %office.region_code,
            "the region code names no tier; the office is left out of the roster"
        );
        return None;
    };
    Some(fengqiao_sync::Admission {
        node_id: office.node_id.clone(),
        name: office.name.clone(),
        aliases: office.aliases.clone(),
        tier,
        region_code: office.region_code.clone(),
        revoked: false,
        successor_of: office.successor_of.clone(),
    })
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

/// The root's first policy version, from its `[limits]` (with the shipped calendar) and
/// `[warnings]`, unless it holds a version of its own already (later ones: `fengqiao policy
/// issue`) or its proposal is the built-in policy (version 0 says it all).
fn issue_first_policy(node: &Node, roster: &LiveRoster) -> anyhow::Result<()> {
    let own = node.node_id();
    let issued_before = roster.read().policies().any(|signed| {
        fengqiao_case::policy::verify_policy(signed).is_ok_and(|issuer| issuer == own)
    });
    if issued_before {
        return Ok(());
    }
    let (limits, warnings) = crate::service::policy::root_proposal(node.config());
    let built_in = fengqiao_case::policy::built_in_policy();
    if limits == built_in.limits && warnings == built_in.warnings {
        return Ok(());
    }
    let signed = roster
        .update(|roster| {
            roster.issue_policy(
                node.identity(),
                limits,
                warnings,
                "根据县级节点配置 [limits] [warnings] 首次发布".to_owned(),
                crate::wall_clock::now(),
            )
        })
        .context("cannot issue the federation's first policy")?
        .context("cannot issue the federation's first policy from [limits] and [warnings]")?;
    tracing::info!(
        version = signed.policy.version,
        "federation policy issued from this root's [limits] and [warnings]"
    );
    Ok(())
}

/// Load the node's roster and make it vouch for what the configuration says: the node itself when
/// it has no parent (it is then the federation's root), and its admitted children.
async fn start_roster(
    node: &Arc<Node>,
    config: &FederationConfig,
    own_admission: Option<fengqiao_sync::Admission>,
) -> anyhow::Result<LiveRoster> {
    let node = Arc::clone(node);
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let own_root = own_admission
            .as_ref()
            .map(|admission| admission.node_id.clone());
        let roster = LiveRoster::load(
            Arc::clone(&node) as Arc<dyn StoreHandle>,
            own_root,
            node.shared_policies(),
        )
        .context("cannot load the federation roster")?;
        let children: Vec<_> = config.children.iter().filter_map(admission_of).collect();
        let signed = roster
            .vouch(node.identity(), own_admission.as_ref(), &children)
            .context("cannot sign the node's roster entries")?;
        if signed > 0 {
            tracing::info!(signed, "roster entries signed for this node's admissions");
        }
        if own_admission.is_some() {
            issue_first_policy(&node, &roster)?;
        }
        Ok(roster)
    })
    .await
    .context("the roster task failed")?
}

/// Run the roster exchange beside a link's sync session; it ends with the returned guard.
fn spawn_roster_link(
    shared: &Shared,
    connection: &PeerConnection,
    relation: PeerRelation,
) -> driver::AbortOnDrop {
    driver::AbortOnDrop(tokio::spawn(
        roster::run_roster_link(
            connection.connection.clone(),
            relation,
            Arc::clone(&shared.roster),
        )
        .instrument(connection.span.clone()),
    ))
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
    /// Admitted children by node ID; changed live by [`FederationStatus::reload`].
    children: Mutex<HashMap<String, OfficeEntry>>,
    /// Who may complete a handshake with us: the children and the parent.
    admitted: AdmittedPeers,
    roster: Arc<LiveRoster>,
    /// Signs this node's roster entries.
    node: Arc<Node>,
    /// The node's own roster entry when it is the federation's root.
    own_admission: Option<fengqiao_sync::Admission>,
    /// The parent the federation was started with; changing it takes a restart.
    parent: Option<ParentLink>,
}

impl Shared {
    /// The office on the other end of a link, as its sessions describe it.
    fn describe_peer(&self, node_id: &str, relation: PeerRelation) -> Option<PeerDescription> {
        match relation {
            PeerRelation::Parent => self
                .parent
                .as_ref()
                .filter(|parent| parent.office.node_id == node_id)
                .map(|parent| describe(&parent.office, relation)),
            PeerRelation::Child => self.child(node_id).map(|child| describe(&child, relation)),
        }
    }

    fn child(&self, node_id: &str) -> Option<OfficeEntry> {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node_id)
            .cloned()
    }

    fn close_child_connection(&self, node_id: &str) {
        let connection = self
            .child_connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node_id);
        if let Some(connection) = connection {
            let _ = connection.send(true);
        }
    }

    /// Make `children` the admitted children from now on: admit the new ones, refuse and
    /// disconnect the dropped ones, restart the links of changed ones, and sign the roster entries
    /// that say so. Blocking (the roster is flushed to disk).
    fn set_children(
        &self,
        children: &[OfficeEntry],
    ) -> Result<fengqiao_case::model::roster::FederationReload, FederationError> {
        let mut parsed = Vec::with_capacity(children.len());
        for child in children {
            parsed.push((parse_node_id(&child.node_id)?, child));
        }
        let mut reload = fengqiao_case::model::roster::FederationReload {
            schema_version: fengqiao_case::SCHEMA_VERSION,
            ..Default::default()
        };
        // The roster first: a successor's entry must be there before its first session, whose
        // routing reads it (its predecessor's cases are its own only through that entry, and a
        // case withheld once is passed by the link's cursor).
        let admissions: Vec<_> = children.iter().filter_map(admission_of).collect();
        reload.roster_entries_signed = self.roster.vouch(
            self.node.identity(),
            self.own_admission.as_ref(),
            &admissions,
        )?;
        {
            let mut current = self.children.lock().unwrap_or_else(PoisonError::into_inner);
            for (node_id, child) in &parsed {
                match current.get(&child.node_id) {
                    None => {
                        self.admitted.admit(*node_id);
                        self.links
                            .declare(&child.node_id, &child.name, PeerRelation::Child);
                        reload.admitted.push(child.node_id.clone());
                    }
                    Some(previous) if previous != *child => {
                        self.close_child_connection(&child.node_id);
                        self.links.forget(&child.node_id);
                        self.links
                            .declare(&child.node_id, &child.name, PeerRelation::Child);
                        reload.updated.push(child.node_id.clone());
                    }
                    Some(_) => {}
                }
            }
            let dropped: Vec<String> = current
                .keys()
                .filter(|node_id| !children.iter().any(|child| &child.node_id == *node_id))
                .cloned()
                .collect();
            for node_id in dropped {
                if let Ok(parsed) = parse_node_id(&node_id) {
                    self.admitted.revoke(&parsed);
                }
                self.close_child_connection(&node_id);
                self.links.forget(&node_id);
                tracing::warn!(
                    peer = %node_id,
                    "child revoked; its connections are refused from now on"
                );
                reload.revoked.push(node_id);
            }
            *current = children
                .iter()
                .map(|child| (child.node_id.clone(), child.clone()))
                .collect();
        }
        Ok(reload)
    }
}

/// Whether a federation checks the events peers send: always, except in the benchmark that
/// measures what the checks cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReceiptChecks {
    On,
    Off,
}

/// A running federation: the node's QUIC endpoint, its parent link and its children's links.
pub struct Federation {
    shared: Arc<Shared>,
    endpoint: Arc<NodeEndpoint>,
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
    /// Bind the endpoint and start the links. Must run inside a tokio runtime. Every event a
    /// peer sends is checked before it is kept (signature, maker, authority); no config turns
    /// that off.
    pub async fn start(node: Arc<Node>, config: FederationConfig) -> anyhow::Result<Federation> {
        Federation::start_with(node, config, ReceiptChecks::On).await
    }

    /// [`Federation::start`] keeping received events unchecked: only for the federation
    /// benchmark, to measure what the checks cost. Never used by a node.
    #[doc(hidden)]
    pub async fn start_without_receipt_checks_for_benchmark(
        node: Arc<Node>,
        config: FederationConfig,
    ) -> anyhow::Result<Federation> {
        Federation::start_with(node, config, ReceiptChecks::Off).await
    }

    async fn start_with(
        node: Arc<Node>,
        config: FederationConfig,
        checks: ReceiptChecks,
    ) -> anyhow::Result<Federation> {
        let credentials = Arc::new(node_credentials(&node)?);
        let own_admission = config.parent.is_none().then(|| {
            let own = &node.config().node;
            fengqiao_sync::Admission {
                node_id: node.node_id().to_owned(),
                name: own.name.clone(),
                aliases: Vec::new(),
                tier: own.tier,
                region_code: own.region_code.clone(),
                revoked: false,
                successor_of: None,
            }
        });
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

        let live_roster = Arc::new(start_roster(&node, &config, own_admission.clone()).await?);
        // The node judges its own events against the authority table over the same roster.
        node.set_hierarchy(Arc::clone(&live_roster) as _);
        let roster: SharedRoster = Arc::clone(&live_roster) as SharedRoster;
        let mut replica = StoreReplica::for_node(Arc::clone(&node), roster);
        if checks == ReceiptChecks::Off {
            replica = replica.without_receipt_checks_for_benchmark();
        }

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
        // The node judges its clock against what the links measure of their peers'.
        node.set_peer_clocks(Arc::new(links.clone()));

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
            roster: live_roster,
            children: Mutex::new(
                config
                    .children
                    .iter()
                    .map(|child| (child.node_id.clone(), child.clone()))
                    .collect(),
            ),
            admitted,
            node: Arc::clone(&node),
            own_admission,
            parent: config.parent.clone(),
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

    /// Refuse a child from now on, close its current connection and sign its revocation. Returns
    /// whether it had been admitted. Its cases stay here; only the link goes. Blocking.
    pub fn revoke_child(&self, node_id: &str) -> Result<bool, FederationError> {
        parse_node_id(node_id)?;
        let mut children: Vec<OfficeEntry> = self
            .shared
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let before = children.len();
        children.retain(|child| child.node_id != node_id);
        if children.len() == before {
            return Ok(false);
        }
        let reload = self.shared.set_children(&children)?;
        Ok(!reload.revoked.is_empty())
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
            roster: Arc::clone(&self.shared.roster),
            shared: Arc::downgrade(&self.shared),
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
                // The first reading wakes the sessions too: a write made after a session's first
                // walk of the feed but before this reading would otherwise wait for the next
                // write (a federation test once waited 60 s for a case registered just then).
                if last_head != Some(head) {
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
    let Some(child) = shared.child(&node_id) else {
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
    let _roster_link = spawn_roster_link(&shared, &connection, PeerRelation::Child);
    let driver = SyncDriver {
        connection,
        role: StreamRole::Acceptor,
        local_node_id: shared.local_node_id.clone(),
        peer: describe(&child, PeerRelation::Child),
        session_config: shared.session.clone(),
        replica: shared.replica.clone(),
        notifier: shared.notifier.clone(),
        links: shared.links.clone(),
        roster_changes: shared.roster.subscribe(),
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
                let _roster_link = spawn_roster_link(&shared, &connection, PeerRelation::Parent);
                let driver = SyncDriver {
                    connection,
                    role: StreamRole::Dialer,
                    local_node_id: shared.local_node_id.clone(),
                    peer: describe(&parent.office, PeerRelation::Parent),
                    session_config: shared.session.clone(),
                    replica: shared.replica.clone(),
                    notifier: shared.notifier.clone(),
                    links: shared.links.clone(),
                    roster_changes: shared.roster.subscribe(),
                };
                let outcome = driver.run(stopped(shared.shutdown.clone())).await;
                if matches!(outcome, Ok(SessionEnd::Stopped)) {
                    return;
                }
                // A link that held for a while dropped for a new reason: redial quickly. One that
                // fails as soon as it is up (a protocol mismatch, say) keeps backing off. A
                // stateless reset comes from the parent's endpoint itself, up again at its
                // address after a restart: it can take the redial now.
                let reset = outcome
                    .as_ref()
                    .is_err_and(|error| fengqiao_transport::is_stateless_reset(error));
                if reset {
                    tracing::info!(
                        parent = %parent.office.node_id,
                        "the parent reset the connection (it restarted); redialling"
                    );
                }
                if reset || began.elapsed() > backoff.maximum {
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
