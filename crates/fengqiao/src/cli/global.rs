//! What every command shares: the global options (which node, as whom, JSON or tables), the
//! client they make, and the async runtime with its stop signal for the commands that serve.

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgAction, Args};

use crate::client::{
    Credentials, NODE_CERT_ENV, NODE_ENV, NodeClient, TOKEN_ENV, USER_ENV, resolve_node_url,
    trusted_certificate,
};

/// Options every command accepts, before or after the subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Node, account and output")]
pub struct GlobalOptions {
    /// URL of the node's API [env: FENGQIAO_NODE] [default: http://127.0.0.1:7370]
    #[arg(long, global = true, value_name = "URL")]
    pub node: Option<String>,
    /// A node directory: client commands read the address `fengqiao run` wrote there
    /// (`api.addr`) and act through its CLI token (`cli.token`, as the account --as names);
    /// `demo` creates or reuses its federation's node directories there.
    #[arg(long, global = true, value_name = "NODE_DIR")]
    pub dir: Option<PathBuf>,
    /// The account to act as with the node directory's CLI token; every change records it.
    /// Elsewhere, set FENGQIAO_TOKEN to a token from `fengqiao token create`.
    #[arg(long = "as", global = true, env = USER_ENV, value_name = "LOGIN")]
    pub act_as: Option<String>,
    /// Print the API's JSON instead of tables, for scripts
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v, -vv); RUST_LOG also works
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// The client for the node the global options point at.
pub fn connect(global: &GlobalOptions) -> anyhow::Result<NodeClient> {
    let environment_node = std::env::var(NODE_ENV).ok();
    let url = resolve_node_url(
        global.node.as_deref(),
        global.dir.as_deref(),
        environment_node.as_deref(),
    )?;
    let environment_certificate = std::env::var(NODE_CERT_ENV).ok();
    match trusted_certificate(
        global.node.as_deref(),
        global.dir.as_deref(),
        environment_certificate.as_deref(),
    )? {
        Some(certificate) => NodeClient::trusting(url, credentials(global)?, &certificate),
        None => Ok(NodeClient::new(url, credentials(global)?)),
    }
}

/// How the CLI proves who it acts as: `FENGQIAO_TOKEN`, else the CLI token of `--dir` acting as
/// `--as`. `None` for neither: the node then answers only its public routes.
pub fn credentials(global: &GlobalOptions) -> anyhow::Result<Option<Credentials>> {
    let act_as = global
        .act_as
        .clone()
        .filter(|login| !login.trim().is_empty());
    if let Ok(token) = std::env::var(TOKEN_ENV)
        && !token.trim().is_empty()
    {
        return Ok(Some(Credentials {
            bearer: token.trim().to_owned(),
            act_as,
        }));
    }
    match &global.dir {
        Some(dir) => Credentials::from_node_dir(dir, act_as).map(Some),
        None => Ok(None),
    }
}

pub fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fengqiao")
        .build()
        .context("cannot start the async runtime")
}

/// A future that completes on Ctrl-C or SIGTERM. Must be called inside the runtime: the signal
/// handlers are installed right away, so a SIGTERM that arrives while the node is still starting
/// stops it gracefully instead of killing it.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt =
            signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C (SIGINT)")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("Ctrl-C received, stopping"),
                _ = terminate.recv() => tracing::info!("SIGTERM received, stopping"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C received, stopping");
            }
        })
    }
}
