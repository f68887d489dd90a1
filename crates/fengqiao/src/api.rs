//! The HTTP JSON API (`/api/...`) and its OpenAPI document, served on 127.0.0.1 by default.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

/// Open the node in `dir` and serve its API until `shutdown` completes. `listen` overrides the
/// configured address. Writes the bound address to `api.addr` in the node directory once
/// listening, so callers using port 0 can find it.
pub async fn serve(
    dir: &Path,
    listen: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = (dir, listen, shutdown);
    anyhow::bail!("not yet implemented")
}
