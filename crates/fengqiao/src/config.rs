//! The node directory and its `fengqiao.toml`: tier, region, name, addresses, limits, warnings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fengqiao_case::{Limits, Tier, WarningThresholds};
use serde::{Deserialize, Serialize};

/// File name of the config inside a node directory.
pub const CONFIG_FILE: &str = "fengqiao.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Config file format version.
    pub version: u32,
    pub node: NodeSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub warnings: WarningThresholds,
    #[serde(default)]
    pub storage: StorageSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub name: String,
    pub tier: Tier,
    /// Administrative region code of this office (6 digits county, 9 township, 12 village).
    pub region_code: String,
    /// The parent node's address, for federation (later).
    #[serde(default)]
    pub parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Defaults to 127.0.0.1:7370: the API is local unless the operator says otherwise.
    pub listen: SocketAddr,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 7370)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Case documents kept loaded in memory.
    pub cache_capacity: usize,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            cache_capacity: 1024,
        }
    }
}

/// Paths inside a node directory.
#[derive(Debug, Clone)]
pub struct NodeDir {
    pub root: PathBuf,
}

impl NodeDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        NodeDir { root: root.into() }
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    pub fn key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }
    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }
    /// Written by `run` once the API listens: the actual address (useful with port 0).
    pub fn api_address_path(&self) -> PathBuf {
        self.root.join("api.addr")
    }
    pub fn exists(path: &Path) -> bool {
        path.join(CONFIG_FILE).exists()
    }
}
