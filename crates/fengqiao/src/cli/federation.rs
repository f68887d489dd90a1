//! Federation commands: `admit`, `revoke` and `join` edit the node's `fengqiao.toml` (offline, in
//! place, atomically); `peers` asks a running node for its links.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use crate::admission::{ChildOffice, normalized_node_id, own_node_id, revoke_child, save};
use crate::client::NodeClient;
use crate::config::{FederationParent, FederationSection, NodeConfig, is_region_below};
use crate::federation::PeerView;
use fengqiao_case::model::roster::{FederationReload, RebuildReport, RosterView};

use super::global::GlobalOptions;
use super::output::{emit, print_json};

#[derive(Debug, Args)]
pub struct AdmitArgs {
    /// The parent's node directory (or --dir)
    pub dir: Option<PathBuf>,
    /// The child's node ID, as its `fengqiao init` printed it (32 hex characters)
    #[arg(long, value_name = "ID")]
    pub node_id: String,
    /// The child office's name
    #[arg(long)]
    pub name: String,
    /// The child's region code: must lie under this node's region
    #[arg(long, value_name = "CODE")]
    pub region: String,
    /// Also set the UDP address this node's QUIC endpoint listens on
    #[arg(long, value_name = "ADDR")]
    pub quic_listen: Option<SocketAddr>,
    /// The admitted child this node replaces: a rebuilt office (`init --restore-from-parent`)
    /// whose old key was lost. The old ID is refused from now on; its earlier events stay valid
    #[arg(long, value_name = "OLD_ID")]
    pub successor_of: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The parent's node directory (or --dir)
    pub dir: Option<PathBuf>,
    /// The child's node ID
    #[arg(long, value_name = "ID")]
    pub node_id: String,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The child's node directory (or --dir)
    pub dir: Option<PathBuf>,
    /// UDP address of the parent's QUIC endpoint (its `quic.addr`), e.g. 10.0.0.1:7380
    #[arg(long, value_name = "ADDR")]
    pub parent_address: SocketAddr,
    /// The parent's node ID (32 hex characters)
    #[arg(long, value_name = "ID")]
    pub parent_id: String,
    /// The parent office's name
    #[arg(long, value_name = "NAME")]
    pub parent_name: String,
    /// The parent's region code: a prefix of this node's region
    #[arg(long, value_name = "CODE")]
    pub parent_region: String,
    /// Also set the UDP address this node's QUIC endpoint listens on
    #[arg(long, value_name = "ADDR")]
    pub quic_listen: Option<SocketAddr>,
}

/// `init --restore-from-parent`: the flags that make the new node a rebuild of a lost one.
#[derive(Debug, Args)]
pub struct RestoreFromParentArgs {
    /// Rebuild a lost node: join the parent whose QUIC endpoint is at this UDP address (its
    /// `quic.addr`) and, once it admits this node (with `admit … --successor-of OLD_ID` when the
    /// old key is lost too), take back every case of this office from it. Needs --parent-id,
    /// --parent-name and --parent-region
    #[arg(
        long,
        value_name = "ADDR",
        requires_all = ["parent_id", "parent_name", "parent_region"]
    )]
    pub restore_from_parent: Option<SocketAddr>,
    /// With --restore-from-parent: the parent's node ID (32 hex characters)
    #[arg(long, value_name = "ID", requires = "restore_from_parent")]
    pub parent_id: Option<String>,
    /// With --restore-from-parent: the parent office's name
    #[arg(long, value_name = "NAME", requires = "restore_from_parent")]
    pub parent_name: Option<String>,
    /// With --restore-from-parent: the parent's region code, a prefix of this node's region
    #[arg(long, value_name = "CODE", requires = "restore_from_parent")]
    pub parent_region: Option<String>,
    /// With --restore-from-parent: the UDP address this node's QUIC endpoint listens on
    #[arg(long, value_name = "ADDR", requires = "restore_from_parent")]
    pub quic_listen: Option<SocketAddr>,
}

impl RestoreFromParentArgs {
    /// The `join` these flags amount to, if a rebuild was asked for.
    fn join_args(&self, dir: &Path) -> anyhow::Result<Option<JoinArgs>> {
        let Some(parent_address) = self.restore_from_parent else {
            return Ok(None);
        };
        let (Some(parent_id), Some(parent_name), Some(parent_region)) =
            (&self.parent_id, &self.parent_name, &self.parent_region)
        else {
            bail!("--restore-from-parent needs --parent-id, --parent-name and --parent-region");
        };
        Ok(Some(JoinArgs {
            dir: Some(dir.to_owned()),
            parent_address,
            parent_id: normalized_node_id(parent_id)?,
            parent_name: parent_name.trim().to_owned(),
            parent_region: parent_region.trim().to_owned(),
            quic_listen: self.quic_listen,
        }))
    }

    /// Check the flags against the node about to be made (region `own_region`), before init
    /// writes anything, so a typo leaves no half-made node.
    pub fn check(&self, dir: &Path, own_region: &str) -> anyhow::Result<()> {
        if let Some(join) = self.join_args(dir)?
            && !is_region_below(&join.parent_region, own_region.trim())
        {
            bail!(
                "the parent's region {} must be a prefix of this node's region {own_region}",
                join.parent_region
            );
        }
        Ok(())
    }
}

/// After `init` made the node in `dir`: if a rebuild was asked for, join the parent and mark
/// the node as being rebuilt (`crate::rebuild`), so it registers nothing until its cases are
/// back. Returns what was done, in words, with what the parent's admin must run.
pub fn restore_from_parent(
    dir: &Path,
    args: &RestoreFromParentArgs,
) -> anyhow::Result<Option<String>> {
    let Some(join) = args.join_args(dir)? else {
        return Ok(None);
    };
    let (config, joined) = join_parent(dir, &join)?;
    let node_dir = crate::config::NodeDir::new(dir);
    let identity = crate::identity::NodeIdentity::load(&node_dir.key_path())
        .context("cannot read the new node's key")?;
    {
        let options = fengqiao_store::StoreOptions {
            min_free_bytes: 0,
            ..fengqiao_store::StoreOptions::new(
                config.storage.cache_capacity,
                identity.actor().to_vec(),
            )
        };
        let store = fengqiao_store::Store::open(&node_dir.store_path(), options)
            .context("cannot open the new node's store")?;
        crate::rebuild::begin(
            &store,
            &join.parent_id,
            &join.parent_name,
            &config.node.region_code,
            crate::wall_clock::now(),
        )
        .context("cannot mark the node as being rebuilt")?;
    }
    Ok(Some(format!(
        "{joined}\nthis node is a rebuild: once {} admits it, it takes back every case of this \
         office from there, and registers none until they are all back (`fengqiao peers` shows \
         how it stands). If the lost node's key is lost too, the parent's admin admits this node \
         as its successor:\n  fengqiao admit PARENT_DIR --node-id {} --name \"{}\" --region {} \
         --successor-of OLD_NODE_ID",
        join.parent_name,
        identity.node_id(),
        config.node.name,
        config.node.region_code
    )))
}

fn node_dir(
    dir: Option<PathBuf>,
    global: &GlobalOptions,
    command: &str,
) -> anyhow::Result<PathBuf> {
    let Some(dir) = dir.or_else(|| global.dir.clone()) else {
        bail!("which node? pass its directory: fengqiao {command} NODE_DIR …");
    };
    Ok(dir)
}

/// Say what changed, and have a running node apply it.
fn tell(
    dir: &Path,
    config: &NodeConfig,
    what: &str,
    global: &GlobalOptions,
    command: &str,
) -> anyhow::Result<()> {
    let config_path = crate::config::NodeDir::new(dir).config_path();
    let mut text = format!("{what}\nsaved {}", config_path.display());
    match apply_to_running_node(dir, global, command) {
        Some(Ok((url, reload))) => {
            text.push_str(&format!(
                "\nthe running node ({url}) applied it at once: {} admitted, {} revoked, {} \
                 changed, {} roster entries signed",
                reload.admitted.len(),
                reload.revoked.len(),
                reload.updated.len(),
                reload.roster_entries_signed
            ));
            for note in &reload.needs_restart {
                text.push_str(&format!("\nnot yet in effect: {note}"));
            }
        }
        Some(Err(error)) => text.push_str(&format!(
            "\nthe running node could not apply it ({error:#}); restart it (fengqiao run {}) \
             for it to take effect",
            dir.display()
        )),
        None => text.push_str(&format!(
            "\nthe node is not running: it takes effect when it starts (fengqiao run {})",
            dir.display()
        )),
    }
    if let Some(federation) = &config.federation
        && federation.listen.ip().is_loopback()
    {
        text.push_str(&format!(
            "\nnote: the QUIC endpoint listens on {}, reachable from this machine only; set \
             federation.listen (or --quic-listen 0.0.0.0:7380) for offices on other machines",
            federation.listen
        ));
    }
    emit(text)
}

/// Ask the node serving from `dir`, if one is, to apply its edited config. `None` when no node
/// answers there (not running, or an `api.addr` left by a crash).
fn apply_to_running_node(
    dir: &Path,
    global: &GlobalOptions,
    command: &str,
) -> Option<anyhow::Result<(String, FederationReload)>> {
    let url = crate::client::resolve_node_url(None, Some(dir), None).ok()?;
    // Applied through the node's CLI token, as the admin named with --as (the first admin by
    // default): admitting and revoking are an admin's.
    let act_as = global
        .act_as
        .clone()
        .unwrap_or_else(|| crate::service::accounts::FIRST_ADMIN_LOGIN.to_owned());
    NodeClient::new(url.clone(), None)
        .get("/api/health", &[])
        .ok()?;
    let credentials = match crate::client::Credentials::from_node_dir(dir, Some(act_as)) {
        Ok(credentials) => credentials,
        Err(error) => {
            return Some(Err(
                error.context(format!("cannot {command} on the running node"))
            ));
        }
    };
    let client = NodeClient::new(url.clone(), Some(credentials));
    Some(
        client
            .post_as::<FederationReload>("/api/federation/reload", &serde_json::json!({}))
            .map(|reload| (url, reload)),
    )
}

pub fn admit(args: AdmitArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let dir = node_dir(args.dir.clone(), global, "admit")?;
    let (config, what) = admit_child(&dir, &args)?;
    tell(&dir, &config, &what, global, "admit")
}

/// Admit a child in the config of the node in `dir` and save it; returns the saved config and
/// what was done, in words. Does not tell a running node (`admit` does).
pub fn admit_child(dir: &Path, args: &AdmitArgs) -> anyhow::Result<(NodeConfig, String)> {
    let child = ChildOffice {
        node_id: args.node_id.clone(),
        name: args.name.clone(),
        region_code: args.region.clone(),
    };
    match &args.successor_of {
        None => crate::admission::admit_child(dir, &child, args.quic_listen),
        Some(predecessor) => {
            crate::admission::admit_successor(dir, &child, predecessor, args.quic_listen)
        }
    }
}

pub fn revoke(args: RevokeArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let dir = node_dir(args.dir, global, "revoke")?;
    let (config, what) = revoke_child(&dir, &args.node_id)?;
    tell(&dir, &config, &what, global, "revoke")
}

pub fn join(args: JoinArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let dir = node_dir(args.dir.clone(), global, "join")?;
    let (config, what) = join_parent(&dir, &args)?;
    tell(&dir, &config, &what, global, "join")
}

/// Set the parent in the config of the node in `dir` and save it; returns the saved config and
/// what was done, in words. Does not tell a running node (`join` does).
pub fn join_parent(dir: &Path, args: &JoinArgs) -> anyhow::Result<(NodeConfig, String)> {
    let mut config = crate::config::load(dir)?;
    let parent_id = normalized_node_id(&args.parent_id)?;
    if parent_id == own_node_id(dir)? {
        bail!("{parent_id} is this node's own ID: give the parent's ID");
    }
    let own_region = config.node.region_code.clone();
    if !is_region_below(&args.parent_region, &own_region) {
        bail!(
            "the parent's region {} must be a prefix of this node's region {own_region}",
            args.parent_region
        );
    }
    let federation = config
        .federation
        .get_or_insert_with(FederationSection::default);
    if federation
        .children
        .iter()
        .any(|office| office.node_id == parent_id)
    {
        bail!("{parent_id} is listed below this node; it cannot also be its parent");
    }
    if let Some(listen) = args.quic_listen {
        federation.listen = listen;
    }
    let replaced = federation.parent.replace(FederationParent {
        address: args.parent_address,
        node_id: parent_id.clone(),
        name: args.parent_name.clone(),
        region_code: args.parent_region.clone(),
        aliases: Vec::new(),
    });
    let mut what = format!(
        "joined {} (node {parent_id}, region {}) at {} as this node's parent",
        args.parent_name, args.parent_region, args.parent_address
    );
    if let Some(previous) = replaced {
        what.push_str(&format!(
            "\nreplaced the previous parent {} (node {})",
            previous.name, previous.node_id
        ));
    }
    what.push_str(&format!(
        "\nthe parent must admit this node: fengqiao admit PARENT_DIR --node-id {} --name \"{}\" \
         --region {own_region}",
        own_node_id(dir)?,
        config.node.name
    ));
    save(dir, &config)?;
    Ok((config, what))
}

pub fn roster(client: &NodeClient, json: bool) -> anyhow::Result<()> {
    let answer = client.get("/api/roster", &[])?;
    if json {
        return print_json(&answer);
    }
    let view: RosterView =
        serde_json::from_value(answer).context("unexpected answer from /api/roster")?;
    emit(roster_text(&view))
}

/// The roster as a table: each member office under the office that admitted it.
pub fn roster_text(view: &RosterView) -> String {
    let Some(root) = &view.root else {
        return "this node does not know its federation's root yet: its parent tells it on the \
                first connection (fengqiao peers shows the link)"
            .to_owned();
    };
    let name_of = |node_id: &str| {
        view.members
            .iter()
            .chain(&view.revoked)
            .find(|member| member.node_id == node_id)
            .map_or_else(|| node_id.to_owned(), |member| member.name.clone())
    };
    let mut table = super::render::new_table([
        "TIER",
        "NAME",
        "REGION",
        "NODE ID",
        "ADMITTED BY",
        "STATE 状态",
    ]);
    // Revoked offices are listed too, under the office that revoked them: their events stay
    // valid and their cases stay where they are, so people still meet their names.
    let mut rows: Vec<_> = view.members.iter().chain(&view.revoked).collect();
    rows.sort_by(|left, right| {
        (&left.region_code, left.revoked).cmp(&(&right.region_code, right.revoked))
    });
    for member in rows {
        let state = if member.revoked {
            format!(
                "revoked 已撤销 {}",
                super::render::china_time_labelled(&member.issued_at)
            )
        } else {
            "member 成员".to_owned()
        };
        table.add_row([
            crate::config::tier_name(member.tier).to_owned(),
            member.name.clone(),
            member.region_code.clone(),
            member.node_id.clone(),
            member
                .admitted_by
                .as_deref()
                .map_or_else(|| "(root)".to_owned(), name_of),
            state,
        ]);
    }
    format!(
        "root: {} ({root}); {} members, {} revoked, {} signed entries held\n{}",
        name_of(root),
        view.members.len(),
        view.revoked.len(),
        view.entries,
        table
    )
}

pub fn peers(client: &NodeClient, json: bool) -> anyhow::Result<()> {
    let answer = client.get("/api/peers", &[])?;
    if json {
        return print_json(&answer);
    }
    let peers: Vec<PeerView> =
        serde_json::from_value(answer).context("unexpected answer from /api/peers")?;
    emit(peers_text(&peers))
}

/// This node's clock against a peer's (the peer's offset turned round): agreeing, or off beyond
/// the allowance, marked so that it stands out.
fn clock_text(peer_offset_ms: Option<i64>) -> String {
    let Some(peer_offset_ms) = peer_offset_ms else {
        return "-".to_owned();
    };
    let ours = peer_offset_ms.saturating_neg();
    let described = fengqiao_case::clock::describe_offset(ours);
    let allowance = fengqiao_case::event_time::CLOCK_SKEW_ALLOWANCE
        .num_milliseconds()
        .unsigned_abs();
    if ours.unsigned_abs() > allowance {
        format!("SKEWED 偏差: ours {described}")
    } else {
        format!("ok ({described})")
    }
}

/// The links as a table, or a hint when there are none.
pub fn peers_text(peers: &[PeerView]) -> String {
    if peers.is_empty() {
        return "no federation links: this node has no parent and no children.\n\
                to link nodes: `fengqiao join CHILD_DIR --parent-address … --parent-id … \
                --parent-name … --parent-region …` at the child, `fengqiao admit PARENT_DIR \
                --node-id … --name … --region …` at the parent"
            .to_owned();
    }
    let time = |instant: Option<chrono::DateTime<chrono::Utc>>| {
        instant.map_or_else(
            || "-".to_owned(),
            |instant| {
                instant
                    .with_timezone(&fengqiao_case::deadlines::china_offset())
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            },
        )
    };
    let mut table = super::render::new_table([
        "RELATION",
        "NAME",
        "NODE ID",
        "STATE",
        "SINCE",
        "LAST SYNC",
        "PENDING OUT",
        "PENDING IN",
        // Changes from the peer we refused, and cases of ours whose changes it refused.
        "QUARANTINED",
        "REFUSED THERE",
        // This node's clock against the peer's, as the last connection measured it.
        "CLOCK",
        "LAST ERROR",
    ]);
    for peer in peers {
        table.add_row([
            peer.relation.clone(),
            peer.name.clone(),
            peer.node_id.clone(),
            if peer.connected {
                "connected".to_owned()
            } else {
                "down".to_owned()
            },
            time(peer.since),
            time(peer.last_successful_sync),
            peer.pending.to_string(),
            peer.pending_inbound.to_string(),
            peer.quarantined.to_string(),
            peer.refused_by_peer.to_string(),
            clock_text(peer.clock_offset_ms),
            peer.last_error.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let mut text = table.to_string();
    for peer in peers {
        if let Some(rebuild) = &peer.rebuild {
            text.push('\n');
            text.push_str(&rebuild_text(rebuild, &time));
        }
    }
    text
}

/// How a rebuild from the parent stands: what came back and, of the office's own numbers, what
/// did not (what the old node changed after its last sync is not anywhere to be had).
fn rebuild_text(
    rebuild: &RebuildReport,
    time: &dyn Fn(Option<chrono::DateTime<chrono::Utc>>) -> String,
) -> String {
    let Some(completed_at) = rebuild.completed_at else {
        return format!(
            "rebuilding from {} ({}) since {}: cases are coming back; no case is registered \
             here until they all have",
            rebuild.parent_name,
            rebuild.parent,
            time(Some(rebuild.started_at))
        );
    };
    let mut text = format!(
        "rebuilt from {} ({}), completed {}: {} cases came back",
        rebuild.parent_name,
        rebuild.parent,
        time(Some(completed_at)),
        rebuild.cases_recovered
    );
    for sequence in &rebuild.sequences {
        text.push_str(&format!(
            "\n  {}: numbering continues after {:06}",
            sequence.prefix, sequence.highest
        ));
        if sequence.missing_count == 0 {
            text.push_str("; no number below it is missing");
        } else {
            let listed: Vec<String> = sequence
                .missing
                .iter()
                .map(|missing| format!("{}-{missing:06}", sequence.prefix))
                .collect();
            text.push_str(&format!(
                "; {} numbers below it did not come back (registered by the old node after \
                 its last sync, or refused on the way): {}{}",
                sequence.missing_count,
                listed.join(", "),
                if sequence.missing_count > listed.len() as u64 {
                    ", …"
                } else {
                    ""
                }
            ));
        }
    }
    text.push_str(
        "\n  changes the old node made after its last sync, and numbers it handed out after \
         the highest above, could not be recovered",
    );
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;
    use fengqiao_case::Tier;
    use fengqiao_case::model::roster::RosterMemberView;

    use super::*;

    fn office(
        node_id: &str,
        name: &str,
        region: &str,
        admitted_by: Option<&str>,
    ) -> RosterMemberView {
        RosterMemberView {
            node_id: node_id.to_owned(),
            name: name.to_owned(),
            tier: Tier::Village,
            region_code: region.to_owned(),
            admitted_by: admitted_by.map(str::to_owned),
            issued_at: chrono::Utc.with_ymd_and_hms(2026, 11, 3, 2, 0, 0).unwrap(),
            revoked: false,
        }
    }

    #[test]
    fn the_roster_table_lists_revoked_offices_with_when() {
        let view = RosterView {
            schema_version: 1,
            root: Some("aa".to_owned()),
            members: vec![
                RosterMemberView {
                    tier: Tier::Township,
                    ..office("aa", "芦荻山乡", "430702001", None)
                },
                office("bb", "芦荻山村", "430702001001", Some("aa")),
            ],
            revoked: vec![RosterMemberView {
                revoked: true,
                ..office("cc", "丹洲村", "430702001002", Some("aa"))
            }],
            entries: 3,
        };
        let text = roster_text(&view);
        assert!(text.contains("2 members, 1 revoked"), "{text}");
        let revoked_row = text
            .lines()
            .find(|line| line.contains("丹洲村"))
            .unwrap_or_else(|| panic!("the revoked office is listed:\n{text}"));
        assert!(revoked_row.contains("已撤销"), "{revoked_row}");
        assert!(
            revoked_row.contains("芦荻山乡"),
            "revoked by its admitter: {revoked_row}"
        );
    }
}
