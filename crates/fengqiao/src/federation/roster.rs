//! The replicated roster in a running node: kept in memory behind a lock, persisted in the store's
//! meta tree, and exchanged on its own QUIC stream on every link (the sans-IO rules are
//! `fengqiao_sync::roster`).
//!
//! Routing reads it on every case it considers, so reads take a shared lock and never touch disk;
//! a change (an admission here, entries from a link) is written and flushed before the other
//! links hear of it, so what a node told its peers it also still knows after a crash.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use fengqiao_case::authority::Hierarchy;
use fengqiao_case::model::roster::{RosterFrame, SignedRosterEntry};
use fengqiao_case::{NodeId, Tier};
use fengqiao_sync::{
    Admission, FrameCodec, PeerRelation, Roster, RosterEvent, RosterExchange, RosterSigner,
    SubtreeRoster, decode_snapshot, encode_snapshot,
};
use fengqiao_transport::{quinn, read_frame, write_frame};
use tokio::sync::{mpsc, watch};

use super::driver::AbortOnDrop;
use super::replica::StoreHandle;
use crate::service::policy::SharedPolicies;

pub use crate::service::ROSTER_META_KEY;

/// Roster frames are small (a county's offices); a bigger one is a hostile peer.
const MAX_ROSTER_FRAME: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RosterStoreError {
    #[error("cannot read or write the roster: {0}")]
    Storage(#[from] fengqiao_store::StoreError),
    #[error("the stored roster is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot sign a roster entry: {0}")]
    Sign(#[from] fengqiao_sync::RosterError),
}

/// The node's roster, shared by its links and its routing.
pub struct LiveRoster {
    roster: RwLock<Roster>,
    store: Arc<dyn StoreHandle>,
    changed: watch::Sender<u64>,
    /// The node's policy versions: rewritten from the roster whenever it changes, so the node
    /// derives with every version its root issued as soon as it is held.
    policies: Arc<SharedPolicies>,
}

impl std::fmt::Debug for LiveRoster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roster = self.read();
        formatter
            .debug_struct("LiveRoster")
            .field("root", &roster.root())
            .field("entries", &roster.entry_count())
            .finish()
    }
}

impl LiveRoster {
    /// The roster saved in `store`, or an empty one. A node without a parent is a root and
    /// trusts itself; a child learns its root from its parent.
    pub fn load(
        store: Arc<dyn StoreHandle>,
        own_root: Option<NodeId>,
        policies: Arc<SharedPolicies>,
    ) -> Result<LiveRoster, RosterStoreError> {
        let snapshot = match store.store().meta_get(ROSTER_META_KEY)? {
            None => None,
            Some(value) => Some(
                decode_snapshot(&value)
                    .map_err(|error| RosterStoreError::Corrupt(error.to_string()))?,
            ),
        };
        let mut roster = match snapshot {
            None => Roster::new(None),
            Some(snapshot) => {
                let (roster, merge) = Roster::from_snapshot(snapshot);
                for reason in &merge.refused {
                    tracing::warn!(%reason, "stored roster entry no longer verifies; dropped");
                }
                roster
            }
        };
        if let Some(root) = own_root {
            roster.set_root(&root);
        }
        policies.set(roster.policy_book());
        Ok(LiveRoster {
            roster: RwLock::new(roster),
            store,
            changed: watch::channel(0).0,
            policies,
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Roster> {
        self.roster.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Change the roster; if its entries or root changed, persist (flushed) and wake the links.
    /// Blocking: run it off the async runtime.
    pub fn update<T>(&self, change: impl FnOnce(&mut Roster) -> T) -> Result<T, RosterStoreError> {
        let mut roster = self.roster.write().unwrap_or_else(PoisonError::into_inner);
        let before = (roster.digest(), roster.root().map(str::to_owned));
        let result = change(&mut roster);
        let after = (roster.digest(), roster.root().map(str::to_owned));
        if before != after {
            let bytes = encode_snapshot(&roster.snapshot())?;
            self.store.store().meta_put(ROSTER_META_KEY, &bytes)?;
            // Persisted first: a node never derives with a version it would forget in a crash.
            self.policies.set(roster.policy_book());
            drop(roster);
            self.changed
                .send_modify(|counter| *counter = counter.wrapping_add(1));
        }
        Ok(result)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Make the roster say what this node's configuration says about the offices it vouches
    /// for: itself (when it is the root) and its children. Entries it issued for nodes no longer
    /// among its children become revocations, except for a child a current child replaced
    /// (`successor_of`): its entry stays, so its earlier events stay valid, and the successor's
    /// entry retires it. Returns how many entries it signed.
    pub fn vouch(
        &self,
        signer: &dyn RosterSigner,
        own: Option<&Admission>,
        children: &[Admission],
    ) -> Result<usize, RosterStoreError> {
        let own_id = fengqiao_sync::node_id_for_public_key(&signer.public_key());
        self.update(|roster| {
            let now = crate::wall_clock::now();
            let mut wanted: Vec<Admission> = own.into_iter().chain(children).cloned().collect();
            let is_issued_here = |signed: &&SignedRosterEntry| {
                signed.entry.parent.as_deref() == Some(own_id.as_str()) && !signed.entry.revoked
            };
            // Nodes a configured child replaced, and those they replaced in turn (a successor's
            // successor keeps the first one's events valid too): kept, not revoked. A line
            // whose last successor is dropped is revoked whole.
            let mut replaced: std::collections::HashSet<String> = std::collections::HashSet::new();
            let mut next: Vec<String> = children
                .iter()
                .filter_map(|child| child.successor_of.clone())
                .collect();
            while let Some(node) = next.pop() {
                if !replaced.insert(node.clone()) {
                    continue;
                }
                if let Some(earlier) = roster
                    .issued(&node, &own_id)
                    .filter(|signed| !signed.entry.revoked)
                    .and_then(|signed| signed.entry.successor_of.clone())
                {
                    next.push(earlier);
                }
            }
            let issued_elsewhere: Vec<Admission> = roster
                .entries()
                .filter(is_issued_here)
                .filter(|signed| {
                    !replaced.contains(&signed.entry.node_id)
                        && !children
                            .iter()
                            .any(|child| child.node_id == signed.entry.node_id)
                })
                .map(|signed| Admission {
                    revoked: true,
                    ..Admission::from_entry(&signed.entry)
                })
                .collect();
            wanted.extend(issued_elsewhere);
            let mut signed = 0;
            for admission in wanted {
                let current = roster
                    .issued(&admission.node_id, &own_id)
                    .map(|held| Admission::from_entry(&held.entry));
                if current.as_ref() != Some(&admission) {
                    roster.issue(signer, admission, now)?;
                    signed += 1;
                }
            }
            Ok::<_, RosterStoreError>(signed)
        })?
    }
}

impl SubtreeRoster for LiveRoster {
    fn is_in_subtree(&self, subtree_root: &str, node: &str) -> bool {
        self.read().is_in_subtree(subtree_root, node)
    }

    fn is_successor(&self, node: &str) -> bool {
        self.read().is_successor(node)
    }
}

/// Who is who, for judging the events peers send (see `fengqiao_case::receipt`).
impl Hierarchy for LiveRoster {
    fn is_strict_ancestor(&self, ancestor: &str, node: &str) -> bool {
        self.read().is_strict_ancestor(ancestor, node)
    }

    fn region_of(&self, node: &str) -> Option<String> {
        self.read().region_of(node)
    }

    fn retirement(&self, node: &str) -> Option<fengqiao_case::model::roster::Retirement> {
        self.read().retirement(node).cloned()
    }
}

/// The tier an office's region code says it is (6 digits county, 9 township, 12 village).
pub fn tier_of_region_code(region_code: &str) -> Option<Tier> {
    match region_code.len() {
        4 => Some(Tier::City),
        6 => Some(Tier::County),
        9 => Some(Tier::Township),
        12 => Some(Tier::Village),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
enum RosterLinkError {
    #[error("cannot open the roster stream: {0}")]
    Open(#[from] quinn::ConnectionError),
    #[error("roster stream: {0}")]
    Frame(#[from] fengqiao_transport::FrameError),
    #[error("the peer sent a bad roster frame: {0}")]
    BadFrame(#[from] fengqiao_sync::FrameError),
    #[error("{0}")]
    Store(#[from] RosterStoreError),
    #[error("a blocking roster task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
}

/// Run the roster exchange on `connection` until the connection ends. Failures end only this
/// exchange: the sync session on the same connection goes on.
pub async fn run_roster_link(
    connection: quinn::Connection,
    relation: PeerRelation,
    roster: Arc<LiveRoster>,
) {
    match roster_link(connection, relation, roster).await {
        Ok(()) => {}
        Err(error @ (RosterLinkError::BadFrame(_) | RosterLinkError::Store(_))) => {
            tracing::warn!(%error, "roster exchange stopped");
        }
        // The connection went away: the sync session reports that.
        Err(error) => tracing::debug!(%error, "roster exchange ended"),
    }
}

async fn roster_link(
    connection: quinn::Connection,
    relation: PeerRelation,
    roster: Arc<LiveRoster>,
) -> Result<(), RosterLinkError> {
    let codec = FrameCodec::new(MAX_ROSTER_FRAME);
    // A QUIC stream reaches the peer with its first bytes, so each side opens its own stream and
    // writes before it waits for the peer's: waiting first would leave both sides waiting.
    let mut send = connection.open_uni().await?;
    let (frames_in, mut frames) = mpsc::channel(4);
    let reader = tokio::spawn(read_roster_frames(connection, codec, frames_in));
    let _abort_reader = AbortOnDrop(reader);
    let mut changes = roster.subscribe();
    changes.borrow_and_update();
    let mut exchange = RosterExchange::new(relation, &roster.read());
    loop {
        while let Some(frame) = exchange.poll_transmit() {
            let bytes = codec.encode_message(&frame)?;
            write_frame(&mut send, &bytes, MAX_ROSTER_FRAME).await?;
        }
        while let Some(event) = exchange.poll_event() {
            match event {
                RosterEvent::Changed { added } => {
                    tracing::info!(added, "roster entries received");
                }
                RosterEvent::PoliciesChanged { added } => {
                    let current = roster.read().policy_book().current().version;
                    tracing::info!(added, current, "federation policy versions received");
                }
                RosterEvent::Refused { reasons } => {
                    for reason in reasons {
                        tracing::warn!(%reason, "roster entry refused");
                    }
                }
                RosterEvent::RootPinned { root } => {
                    tracing::info!(%root, "federation root learned from the parent");
                }
                RosterEvent::RootMismatch { ours, parents } => {
                    tracing::warn!(
                        %ours,
                        %parents,
                        "the parent trusts another federation root; its roster is not believed"
                    );
                }
                RosterEvent::Failed { message } => {
                    tracing::warn!(%message, "roster exchange stopped");
                    return Ok(());
                }
            }
        }
        tokio::select! {
            received = frames.recv() => {
                let Some(received) = received else { return Ok(()) };
                let frame = received?;
                let shared = Arc::clone(&roster);
                exchange = tokio::task::spawn_blocking(move || {
                    shared.update(|roster| exchange.handle_frame(roster, frame))?;
                    Ok::<_, RosterStoreError>(exchange)
                })
                .await??;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                exchange.on_roster_change(&roster.read());
            }
        }
    }
}

async fn read_roster_frames(
    connection: quinn::Connection,
    codec: FrameCodec,
    frames: mpsc::Sender<Result<RosterFrame, RosterLinkError>>,
) {
    let mut stream = match connection.accept_uni().await {
        Ok(stream) => stream,
        Err(error) => {
            let _ = frames.send(Err(RosterLinkError::Open(error))).await;
            return;
        }
    };
    loop {
        let item = match read_frame(&mut stream, MAX_ROSTER_FRAME).await {
            Ok(Some(payload)) => match codec.decode_message::<RosterFrame>(&payload) {
                Ok((frame, used)) if used == payload.len() => Ok(frame),
                Ok((_, used)) => Err(RosterLinkError::BadFrame(
                    fengqiao_sync::FrameError::TrailingBytes {
                        extra: payload.len() - used,
                    },
                )),
                Err(error) => Err(RosterLinkError::BadFrame(error)),
            },
            Ok(None) => return,
            Err(error) => Err(RosterLinkError::Frame(error)),
        };
        let last = item.is_err();
        if frames.send(item).await.is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use fengqiao_store::{Store, StoreOptions};

    use super::*;
    use crate::identity::NodeIdentity;

    fn open(path: &std::path::Path) -> Arc<dyn StoreHandle> {
        Arc::new(Store::open(path, StoreOptions::new(8, vec![1; 16])).unwrap())
    }

    fn admission(identity: &NodeIdentity, tier: Tier, region: &str) -> Admission {
        Admission {
            node_id: identity.node_id().to_owned(),
            name: format!("office {region}"),
            aliases: Vec::new(),
            tier,
            region_code: region.to_owned(),
            revoked: false,
            successor_of: None,
        }
    }

    #[test]
    fn vouching_is_idempotent_persists_and_revokes_dropped_children() {
        let directory = tempfile::tempdir().unwrap();
        let county = NodeIdentity::from_seed([1; 32]);
        let township = NodeIdentity::from_seed([2; 32]);
        let own = admission(&county, Tier::County, "430702");
        let child = admission(&township, Tier::Township, "430702001");
        let digest = {
            let roster = LiveRoster::load(
                open(directory.path()),
                Some(own.node_id.clone()),
                Arc::default(),
            )
            .unwrap();
            let mut changes = roster.subscribe();
            changes.borrow_and_update();
            assert_eq!(
                roster
                    .vouch(&county, Some(&own), std::slice::from_ref(&child))
                    .unwrap(),
                2
            );
            assert!(changes.has_changed().unwrap(), "the links are woken");
            assert_eq!(
                roster
                    .vouch(&county, Some(&own), std::slice::from_ref(&child))
                    .unwrap(),
                0
            );
            assert!(roster.is_in_subtree(&own.node_id, &child.node_id));
            roster.read().digest()
        };
        // Reopened: the same roster, without signing anything again.
        let roster = LiveRoster::load(
            open(directory.path()),
            Some(own.node_id.clone()),
            Arc::default(),
        )
        .unwrap();
        assert_eq!(roster.read().digest(), digest);
        assert_eq!(
            roster
                .vouch(&county, Some(&own), std::slice::from_ref(&child))
                .unwrap(),
            0
        );
        // The child is no longer configured: a revocation is signed and it leaves the roster.
        assert_eq!(roster.vouch(&county, Some(&own), &[]).unwrap(), 1);
        assert!(roster.read().member(&child.node_id).is_none());
        assert!(roster.read().member(&own.node_id).is_some());
    }

    #[test]
    fn a_replaced_child_is_retired_not_revoked_through_a_chain_of_successors() {
        let directory = tempfile::tempdir().unwrap();
        let county = NodeIdentity::from_seed([1; 32]);
        let own = admission(&county, Tier::County, "430702");
        let first = admission(
            &NodeIdentity::from_seed([2; 32]),
            Tier::Township,
            "430702001",
        );
        let successor = |identity: &NodeIdentity, replaced: &Admission| Admission {
            successor_of: Some(replaced.node_id.clone()),
            ..admission(identity, Tier::Township, "430702001")
        };
        let second = successor(&NodeIdentity::from_seed([3; 32]), &first);
        let third = successor(&NodeIdentity::from_seed([4; 32]), &second);
        let roster = LiveRoster::load(
            open(directory.path()),
            Some(own.node_id.clone()),
            Arc::default(),
        )
        .unwrap();
        roster
            .vouch(&county, Some(&own), std::slice::from_ref(&first))
            .unwrap();
        // The first node is replaced: only the successor's entry is signed, no revocation.
        assert_eq!(
            roster
                .vouch(&county, Some(&own), std::slice::from_ref(&second))
                .unwrap(),
            1
        );
        assert_eq!(
            roster
                .retirement(&first.node_id)
                .map(|retired| retired.successor),
            Some(second.node_id.clone())
        );
        assert_eq!(
            roster
                .vouch(&county, Some(&own), std::slice::from_ref(&third))
                .unwrap(),
            1
        );
        let read = roster.read();
        for replaced in [&first, &second] {
            assert!(read.member(&replaced.node_id).is_some(), "still an office");
            assert!(read.retirement(&replaced.node_id).is_some());
            assert!(read.is_in_subtree(&third.node_id, &replaced.node_id));
        }
        drop(read);
        // Dropping the last successor revokes the whole line.
        assert_eq!(roster.vouch(&county, Some(&own), &[]).unwrap(), 3);
        let read = roster.read();
        for office in [&first, &second, &third] {
            assert!(read.member(&office.node_id).is_none());
        }
    }

    #[test]
    fn a_corrupt_stored_roster_is_an_error_not_a_panic() {
        let directory = tempfile::tempdir().unwrap();
        let store = open(directory.path());
        store
            .store()
            .meta_put(ROSTER_META_KEY, &[1, 0xff, 0xff, 0xff])
            .unwrap();
        let error = LiveRoster::load(Arc::clone(&store), None, Arc::default()).unwrap_err();
        assert!(matches!(error, RosterStoreError::Corrupt(_)), "{error}");
        store.store().meta_put(ROSTER_META_KEY, &[9]).unwrap();
        let error = LiveRoster::load(store, None, Arc::default()).unwrap_err();
        assert!(error.to_string().contains("version 9"), "{error}");
    }
}
