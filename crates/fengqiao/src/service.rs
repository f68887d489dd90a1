//! The node's service layer: ties the case lifecycle to the store, with the operator and `now`
//! passed in. The HTTP API is a thin shell over it.

use std::net::SocketAddr;
use std::path::Path;

use fengqiao_case::Tier;

use crate::config::NodeConfig;

/// What `fengqiao init` needs to create a node directory.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub name: String,
    pub tier: Tier,
    pub region_code: String,
    pub listen: Option<SocketAddr>,
    pub parent: Option<String>,
}

/// Create a node directory: config file and identity key. Refuses an existing node directory.
pub fn init_node(dir: &Path, options: InitOptions) -> anyhow::Result<NodeConfig> {
    let _ = (dir, options);
    anyhow::bail!("not yet implemented")
}
