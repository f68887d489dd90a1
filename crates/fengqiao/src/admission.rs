//! Admitting and revoking a child office: the edit of the node's `[federation]` config that
//! `fengqiao admit` / `revoke` make (offline, in place) and the console's 网络 page makes on a
//! running node, and applying the saved config to the running federation (what `POST
//! /api/federation/reload` does). One rule for the CLI, the API and the console.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fengqiao_case::model::roster::FederationReload;

use crate::config::{
    FederationOffice, FederationSection, NodeConfig, is_region_below, is_valid_node_id,
};
use crate::federation::{FederationError, FederationStatus};

/// A child office to admit: its node ID (as its `fengqiao init` printed it), name and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildOffice {
    pub node_id: String,
    pub name: String,
    pub region_code: String,
}

/// Node IDs are stored lowercase; operators may paste them in either case.
pub fn normalized_node_id(node_id: &str) -> anyhow::Result<String> {
    let normalized = node_id.trim().to_ascii_lowercase();
    if !is_valid_node_id(&normalized) {
        bail!(
            "node id {node_id:?} is not 32 hex characters: copy it from the other node's \
             `fengqiao init` output or `fengqiao info`"
        );
    }
    Ok(normalized)
}

/// This node's own ID, so that it is never admitted or joined to itself.
pub fn own_node_id(dir: &Path) -> anyhow::Result<String> {
    let key_path = crate::config::NodeDir::new(dir).key_path();
    let identity = crate::identity::NodeIdentity::load(&key_path)
        .with_context(|| format!("cannot read the node key {}", key_path.display()))?;
    Ok(identity.node_id().to_owned())
}

pub fn save(dir: &Path, config: &NodeConfig) -> anyhow::Result<()> {
    crate::config::save(dir, config)
        .with_context(|| format!("cannot update the config in {}", dir.display()))
}

/// Admit `child` in the config of the node in `dir` and save it (also setting the QUIC
/// endpoint's address when `quic_listen` names one); returns the saved config and what was
/// done, in words. Does not tell a running node ([`apply_saved_config`] does).
pub fn admit_child(
    dir: &Path,
    child: &ChildOffice,
    quic_listen: Option<SocketAddr>,
) -> anyhow::Result<(NodeConfig, String)> {
    admit(dir, child, None, quic_listen)
}

/// Admit `child` as the successor of the admitted child `predecessor` (a rebuilt office whose
/// old key was lost: `fengqiao admit --successor-of`), in the config of the node in `dir`, and
/// save it. The predecessor leaves the children, so its connections are refused from then on,
/// but is not revoked: the roster entry this node signs for the successor names it, so the
/// events it signed before stay valid everywhere and its cases route to the successor. The
/// successor is the same office: same region. Does not tell a running node.
pub fn admit_successor(
    dir: &Path,
    child: &ChildOffice,
    predecessor: &str,
    quic_listen: Option<SocketAddr>,
) -> anyhow::Result<(NodeConfig, String)> {
    admit(dir, child, Some(predecessor), quic_listen)
}

fn admit(
    dir: &Path,
    child: &ChildOffice,
    predecessor: Option<&str>,
    quic_listen: Option<SocketAddr>,
) -> anyhow::Result<(NodeConfig, String)> {
    let mut config = crate::config::load(dir)?;
    let node_id = normalized_node_id(&child.node_id)?;
    if node_id == own_node_id(dir)? {
        bail!("{node_id} is this node's own ID: give the child's ID");
    }
    let name = child.name.trim();
    if name.is_empty() {
        bail!("the child office needs a name");
    }
    let region = child.region_code.trim();
    let own_region = config.node.region_code.clone();
    if !is_region_below(&own_region, region) {
        bail!(
            "region {region} is not under this node's region {own_region}: a child's region \
             code is longer and starts with {own_region}"
        );
    }
    let federation = config
        .federation
        .get_or_insert_with(FederationSection::default);
    if let Some(existing) = federation
        .children
        .iter()
        .find(|office| office.node_id == node_id)
    {
        bail!(
            "{node_id} is already admitted (as {}, region {})",
            existing.name,
            existing.region_code
        );
    }
    if federation
        .parent
        .as_ref()
        .is_some_and(|parent| parent.node_id == node_id)
    {
        bail!("{node_id} is this node's parent; it cannot also be its child");
    }
    let (successor_of, aliases, replaced) = match predecessor {
        None => (None, Vec::new(), String::new()),
        Some(predecessor) => {
            let predecessor = normalized_node_id(predecessor)?;
            let Some(position) = federation
                .children
                .iter()
                .position(|office| office.node_id == predecessor)
            else {
                bail!(
                    "{predecessor} is not an admitted child of this node: only a child this node                      admitted can be given a successor here"
                );
            };
            let old = &federation.children[position];
            if old.region_code != region {
                bail!(
                    "the successor is the same office as {predecessor}: its region must be {},                      not {region}",
                    old.region_code
                );
            }
            let old = federation.children.remove(position);
            let replaced = format!(
                " replacing {} (node {predecessor}, which is refused from now on; the events it                  signed before stay valid and its cases go to the successor)",
                old.name
            );
            (Some(predecessor), old.aliases, replaced)
        }
    };
    if let Some(listen) = quic_listen {
        federation.listen = listen;
    }
    federation.children.push(FederationOffice {
        node_id: node_id.clone(),
        name: name.to_owned(),
        region_code: region.to_owned(),
        aliases,
        successor_of,
    });
    save(dir, &config)?;
    let what = format!("admitted {name} (node {node_id}, region {region}) as a child{replaced}");
    Ok((config, what))
}

/// Revoke the admitted child `node_id` in the config of the node in `dir` and save it; returns
/// the saved config and what was done, in words. Does not tell a running node
/// ([`apply_saved_config`] does).
pub fn revoke_child(dir: &Path, node_id: &str) -> anyhow::Result<(NodeConfig, String)> {
    let mut config = crate::config::load(dir)?;
    let node_id = normalized_node_id(node_id)?;
    let Some(federation) = config.federation.as_mut() else {
        bail!("this node has no [federation] section: nobody is admitted");
    };
    let Some(position) = federation
        .children
        .iter()
        .position(|child| child.node_id == node_id)
    else {
        bail!("{node_id} is not an admitted child of this node");
    };
    let removed = federation.children.remove(position);
    save(dir, &config)?;
    let what = format!(
        "revoked {} (node {node_id}): its connections are refused and the roster says it is \
         revoked; its cases stay here",
        removed.name
    );
    Ok((config, what))
}

/// Why a saved config could not be applied to the running federation.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the config cannot be read, so nothing changed: {0}")]
    Unreadable(String),
    #[error(
        "the config no longer has a [federation] section: restart the node to stop its federation"
    )]
    NoFederationSection,
    #[error("node id {node_id:?} in the config is invalid: {why}")]
    InvalidNodeId { node_id: String, why: String },
    #[error(transparent)]
    Federation(FederationError),
}

/// Re-read the config of the node in `dir` and apply its `[federation]` section to the running
/// federation: children admitted, revoked or changed take effect at once.
pub async fn apply_saved_config(
    dir: PathBuf,
    federation: &FederationStatus,
) -> Result<FederationReload, ReloadError> {
    let config = tokio::task::spawn_blocking(move || crate::config::load(&dir))
        .await
        .map_err(|error| ReloadError::Unreadable(error.to_string()))?
        .map_err(|error| ReloadError::Unreadable(format!("{error:#}")))?;
    let Some(section) = config.federation else {
        return Err(ReloadError::NoFederationSection);
    };
    federation
        .reload(&section)
        .await
        .map_err(|error| match error {
            FederationError::InvalidNodeId { node_id, why } => {
                ReloadError::InvalidNodeId { node_id, why }
            }
            other => ReloadError::Federation(other),
        })
}
