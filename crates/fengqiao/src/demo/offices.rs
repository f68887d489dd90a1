//! The demo federation's seven offices: who they are, where they listen, their node directories
//! (made with the functions behind `fengqiao init`, `admit` and `join`) and their servers, each
//! an `api::serve` on one shared runtime, started and stopped as `fengqiao run` would be.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fengqiao_accounts::wire::NewAccount;
use fengqiao_accounts::{Role, RoleSet};
use fengqiao_case::{NodeInfo, Tier};
use fengqiao_samples::SampleVillage;
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::cli::federation::{AdmitArgs, JoinArgs};
use crate::client::NodeClient;
use crate::config::NodeDir;

use super::{DEMO_COUNTY_CODE, DEMO_COUNTY_NAME, demo_villages};

/// An office of the demo federation, as planned before its node exists.
struct OfficePlan {
    /// Its node directory's name under the demo directory.
    key: &'static str,
    name: &'static str,
    tier: Tier,
    region: &'static str,
    /// Index of the parent office in [`PLANS`].
    parent: Option<usize>,
}

/// 1 county, 2 townships, 4 villages. The order is the port order: office `i` listens on
/// base + i (API) and base + 10 + i (QUIC). No office name is part of a sample respondent's name:
/// routing withholds a case from the office its respondent names (条例 Art 30), so a township
/// node named just 芦荻山乡 would never receive complaints about 芦荻山乡芦荻山村村民委员会, nor
/// pass them on to the county.
const PLANS: [OfficePlan; 7] = [
    OfficePlan {
        key: "county-430702",
        name: DEMO_COUNTY_NAME,
        tier: Tier::County,
        region: DEMO_COUNTY_CODE,
        parent: None,
    },
    OfficePlan {
        key: "township-430702001",
        name: "芦荻山乡矛盾纠纷调处中心",
        tier: Tier::Township,
        region: "430702001",
        parent: Some(0),
    },
    OfficePlan {
        key: "township-430702002",
        name: "丹洲乡矛盾纠纷调处中心",
        tier: Tier::Township,
        region: "430702002",
        parent: Some(0),
    },
    OfficePlan {
        key: "village-430702001001",
        name: "芦荻山村调解室",
        tier: Tier::Village,
        region: "430702001001",
        parent: Some(1),
    },
    OfficePlan {
        key: "village-430702001002",
        name: "新坪村调解室",
        tier: Tier::Village,
        region: "430702001002",
        parent: Some(1),
    },
    OfficePlan {
        key: "village-430702002001",
        name: "丹洲村调解室",
        tier: Tier::Village,
        region: "430702002001",
        parent: Some(2),
    },
    OfficePlan {
        key: "village-430702002002",
        name: "白鹤山村调解室",
        tier: Tier::Village,
        region: "430702002002",
        parent: Some(2),
    },
];

/// Index of the county in the office list.
pub const COUNTY: usize = 0;
/// Index of the township whose link the demo cuts (芦荻山乡).
pub const CUT_TOWNSHIP: usize = 1;

/// Distance between an office's API port and its QUIC port.
const QUIC_PORT_OFFSET: u16 = 10;

/// One office of the demo federation with its node directory.
#[derive(Debug, Clone)]
pub struct Office {
    pub name: String,
    pub tier: Tier,
    pub region: String,
    pub dir: PathBuf,
    pub node_id: String,
    /// TCP address of the HTTP API, as configured.
    pub api: SocketAddr,
    /// UDP address of the QUIC endpoint, as configured.
    pub quic: SocketAddr,
    pub parent: Option<usize>,
}

impl Office {
    /// The villages its walk-in and sample cases are located in: its own for a village; for a
    /// township or the county, the demo villages of its region that run no node of their own,
    /// or all of its region's when every one does.
    pub fn sample_villages(&self, offices: &[Office]) -> Vec<SampleVillage> {
        let in_region: Vec<SampleVillage> = demo_villages()
            .into_iter()
            .filter(|village| village.region_code.starts_with(self.region.as_str()))
            .collect();
        if self.tier == Tier::Village {
            return in_region
                .into_iter()
                .filter(|village| village.region_code == self.region)
                .collect();
        }
        let without_node: Vec<SampleVillage> = in_region
            .iter()
            .filter(|village| {
                !offices
                    .iter()
                    .any(|office| office.region == village.region_code)
            })
            .cloned()
            .collect();
        if without_node.is_empty() {
            in_region
        } else {
            without_node
        }
    }

    /// The prefix of the case numbers this office assigns: cases registered here.
    pub fn number_prefix(&self) -> String {
        format!("{}-", self.region)
    }
}

/// The offices of the demo in `dir`: created if `dir` is new or empty, reused if an earlier demo
/// made them there.
pub fn prepare(dir: &Path, base_port: u16) -> anyhow::Result<(Vec<Office>, bool)> {
    let county_dir = dir.join(PLANS[COUNTY].key);
    if NodeDir::exists(&county_dir) {
        eprintln!("reusing the demo federation in {}", dir.display());
        return Ok((reuse(dir)?, true));
    }
    if NodeDir::exists(dir) {
        bail!(
            "{} holds a single node (an older demo's): choose another --dir for the federation",
            dir.display()
        );
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists, is not empty and is not a demo directory: choose another --dir",
            dir.display()
        );
    }
    Ok((create(dir, base_port)?, false))
}

/// Offices an earlier demo created: their addresses and IDs are read back from their directories.
fn reuse(dir: &Path) -> anyhow::Result<Vec<Office>> {
    PLANS
        .iter()
        .map(|plan| {
            let node_dir = dir.join(plan.key);
            let config = crate::config::load(&node_dir)?;
            let Some(federation) = config.federation.as_ref() else {
                bail!(
                    "{} has no [federation] section: not a demo federation node; choose another \
                     --dir",
                    node_dir.display()
                );
            };
            Ok(Office {
                name: config.node.name.clone(),
                tier: config.node.tier,
                region: config.node.region_code.clone(),
                node_id: node_id_of(&node_dir)?,
                api: config.http.listen,
                quic: federation.listen,
                parent: plan.parent,
                dir: node_dir,
            })
        })
        .collect()
}

/// The account the demo's script acts as at every office (through the node's CLI token), with
/// both case roles: it registers, escalates, assigns and supervises.
pub const DEMO_SCRIPT_LOGIN: &str = "demo";

/// The people a newcomer signs in as at every office, with their known demo passwords.
pub const DEMO_PEOPLE: [(&str, &str, &str, Role); 2] = [
    ("operator", "登记员", "demo-operator", Role::Operator),
    ("supervisor", "督查员", "demo-supervisor", Role::Supervisor),
];

/// One operator and one supervisor with known passwords, and the script's own account.
fn add_demo_accounts(node_dir: &Path) -> anyhow::Result<()> {
    let node = crate::service::Node::open(node_dir)?;
    let now = crate::wall_clock::now();
    let mut accounts: Vec<NewAccount> = DEMO_PEOPLE
        .iter()
        .map(|(login, display_name, password, role)| NewAccount {
            login: (*login).to_owned(),
            display_name: (*display_name).to_owned(),
            roles: RoleSet::of(&[*role]),
            password: Some((*password).to_owned()),
        })
        .collect();
    accounts.push(NewAccount {
        login: DEMO_SCRIPT_LOGIN.to_owned(),
        display_name: "演示".to_owned(),
        roles: RoleSet::of(&[Role::Operator, Role::Supervisor]),
        password: None,
    });
    for account in &accounts {
        node.add_account(account, now)?;
    }
    Ok(())
}

fn node_id_of(node_dir: &Path) -> anyhow::Result<String> {
    let key_path = NodeDir::new(node_dir).key_path();
    let identity = crate::identity::NodeIdentity::load(&key_path)
        .with_context(|| format!("cannot read the node key {}", key_path.display()))?;
    Ok(identity.node_id().to_owned())
}

/// Every node directory made as an operator makes it: `init` each office, then at each link
/// `admit` at the parent and `join` at the child (what those commands print is shown as is).
fn create(dir: &Path, base_port: u16) -> anyhow::Result<Vec<Office>> {
    let addresses = choose_addresses(base_port)?;
    let mut offices = Vec::with_capacity(PLANS.len());
    for (plan, (api, quic)) in PLANS.iter().zip(addresses) {
        let node_dir = dir.join(plan.key);
        let options = crate::service::InitOptions {
            name: plan.name.to_owned(),
            tier: plan.tier,
            region_code: plan.region.to_owned(),
            listen: Some(api),
            parent: None,
            lan_names: Vec::new(),
        };
        crate::service::init_node(&node_dir, options).with_context(|| {
            format!(
                "cannot create the node of {} in {}",
                plan.name,
                node_dir.display()
            )
        })?;
        add_demo_accounts(&node_dir)
            .with_context(|| format!("cannot create the demo accounts of {}", plan.name))?;
        offices.push(Office {
            name: plan.name.to_owned(),
            tier: plan.tier,
            region: plan.region.to_owned(),
            node_id: node_id_of(&node_dir)?,
            api,
            quic,
            parent: plan.parent,
            dir: node_dir,
        });
    }
    eprintln!("created 7 node directories under {}", dir.display());
    crate::cli::output::emit(
        "Linking the offices, as their operators do (fengqiao admit / join):",
    )?;
    for child in &offices {
        let Some(parent_index) = child.parent else {
            continue;
        };
        let parent = &offices[parent_index];
        crate::cli::federation::admit_child(
            &parent.dir,
            &AdmitArgs {
                dir: Some(parent.dir.clone()),
                node_id: child.node_id.clone(),
                name: child.name.clone(),
                region: child.region.clone(),
                quic_listen: Some(parent.quic),
                successor_of: None,
            },
        )
        .with_context(|| format!("admit {} at {}", child.name, parent.name))?;
        crate::cli::federation::join_parent(
            &child.dir,
            &JoinArgs {
                dir: Some(child.dir.clone()),
                parent_address: parent.quic,
                parent_id: parent.node_id.clone(),
                parent_name: parent.name.clone(),
                parent_region: parent.region.clone(),
                quic_listen: Some(child.quic),
            },
        )
        .with_context(|| format!("join {} to {}", child.name, parent.name))?;
        crate::cli::output::emit(format!(
            "  {} admitted {}; {} joined it",
            parent.name, child.name, child.name
        ))?;
    }
    Ok(offices)
}

/// (API, QUIC) addresses on 127.0.0.1 for every office: base + i and base + 10 + i, or a free
/// port wherever that one is taken (and everywhere when `base_port` is 0).
fn choose_addresses(base_port: u16) -> anyhow::Result<Vec<(SocketAddr, SocketAddr)>> {
    let localhost = std::net::Ipv4Addr::LOCALHOST;
    // Every socket stays bound until all are chosen, so no two offices get the same free port.
    let mut held_tcp = Vec::new();
    let mut held_udp = Vec::new();
    let mut addresses = Vec::with_capacity(PLANS.len());
    for index in 0..PLANS.len() as u16 {
        let wanted = |offset: u16| -> anyhow::Result<u16> {
            if base_port == 0 {
                return Ok(0);
            }
            base_port
                .checked_add(offset + index)
                .with_context(|| format!("--base-port {base_port} leaves no room for 7 offices"))
        };
        let api_port = wanted(0)?;
        let tcp = match TcpListener::bind((localhost, api_port)) {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("API port {api_port} is not available ({error}); using a free port");
                TcpListener::bind((localhost, 0)).context("cannot find a free TCP port")?
            }
        };
        let quic_port = wanted(QUIC_PORT_OFFSET)?;
        let udp = match UdpSocket::bind((localhost, quic_port)) {
            Ok(socket) => socket,
            Err(error) => {
                eprintln!("QUIC port {quic_port} is not available ({error}); using a free port");
                UdpSocket::bind((localhost, 0)).context("cannot find a free UDP port")?
            }
        };
        addresses.push((
            tcp.local_addr()
                .context("cannot read a bound TCP address")?,
            udp.local_addr()
                .context("cannot read a bound UDP address")?,
        ));
        held_tcp.push(tcp);
        held_udp.push(udp);
    }
    Ok(addresses)
}

/// A node being served in-process.
struct RunningNode {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The offices' servers on one runtime. Ctrl-C (or SIGTERM) stops them all.
pub struct Servers {
    runtime: Runtime,
    interrupted: watch::Receiver<bool>,
    running: Vec<Option<RunningNode>>,
    /// Per office, the client of its API. A stopped office keeps its client: calls to it fail
    /// as an operator's would while the node is down.
    clients: Vec<NodeClient>,
    /// The login the script acts as at every office.
    operator: String,
}

impl Servers {
    pub fn new(office_count: usize, operator: String) -> anyhow::Result<Servers> {
        let runtime = crate::cli::global::tokio_runtime()?;
        let (interrupt, interrupted) = watch::channel(false);
        {
            let _entered = runtime.enter();
            let signal = crate::cli::global::shutdown_signal()?;
            runtime.spawn(async move {
                signal.await;
                let _ = interrupt.send(true);
            });
        }
        Ok(Servers {
            runtime,
            interrupted,
            running: (0..office_count).map(|_| None).collect(),
            clients: (0..office_count)
                .map(|_| NodeClient::new(String::new(), None))
                .collect(),
            operator,
        })
    }

    /// Whether Ctrl-C has been pressed.
    pub fn interrupted(&self) -> bool {
        *self.interrupted.borrow()
    }

    /// Fail with a clear message once Ctrl-C has been pressed, so a phase stops early.
    pub fn check_interrupted(&self) -> anyhow::Result<()> {
        if self.interrupted() {
            bail!("interrupted");
        }
        Ok(())
    }

    /// Serve the office's node as `fengqiao run DIR` does (its configured API and QUIC
    /// addresses) and wait until its API answers.
    pub fn start(&mut self, index: usize, office: &Office) -> anyhow::Result<()> {
        // A stale address from an earlier run would point at a dead port.
        let _ = std::fs::remove_file(NodeDir::new(&office.dir).api_address_path());
        let (stop, stopped) = oneshot::channel::<()>();
        let mut interrupted = self.interrupted.clone();
        let shutdown = async move {
            tokio::select! {
                _ = stopped => {}
                _ = interrupted.wait_for(|interrupted| *interrupted) => {}
            }
        };
        let dir = office.dir.clone();
        let mut task = self
            .runtime
            .spawn(async move { crate::api::serve(&dir, None, None, shutdown).await });
        let url = match wait_until_serving(&office.dir, &task) {
            Ok(url) => url,
            Err(_) if task.is_finished() => {
                let outcome = self.runtime.block_on(&mut task);
                let why = match outcome {
                    Ok(Err(failure)) => format!("{failure:#}"),
                    Ok(Ok(())) => "it stopped".to_owned(),
                    Err(join_error) => join_error.to_string(),
                };
                bail!("the node of {} did not start: {why}", office.name);
            }
            Err(error) => {
                let _ = stop.send(());
                return Err(error.context(format!("the node of {} did not start", office.name)));
            }
        };
        let credentials =
            crate::client::Credentials::from_node_dir(&office.dir, Some(self.operator.clone()))?;
        self.clients[index] = NodeClient::new(url, Some(credentials));
        self.running[index] = Some(RunningNode { stop, task });
        Ok(())
    }

    /// Stop the office's node gracefully: its links drop, its store is closed.
    pub fn stop(&mut self, index: usize) -> anyhow::Result<()> {
        let Some(node) = self.running[index].take() else {
            return Ok(());
        };
        let _ = node.stop.send(());
        let outcome = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), node.task).await })
            .context("a demo node did not stop within 30 s")?;
        outcome
            .context("a demo node's server task failed")?
            .context("a demo node stopped with an error")
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.running.get(index).is_some_and(Option::is_some)
    }

    /// The client of a running office's API.
    pub fn client(&self, index: usize) -> &NodeClient {
        &self.clients[index]
    }

    /// Serve until Ctrl-C, then stop every node.
    pub fn serve_until_interrupted(mut self) -> anyhow::Result<()> {
        let mut interrupted = self.interrupted.clone();
        let _ = self
            .runtime
            .block_on(interrupted.wait_for(|interrupted| *interrupted));
        self.stop_all()
    }

    /// Stop every node at once, children before parents so that no child redials a parent that
    /// is already gone; the first failure is reported once all have stopped.
    pub fn stop_all(&mut self) -> anyhow::Result<()> {
        let stopping: Vec<RunningNode> = self
            .running
            .iter_mut()
            .rev()
            .filter_map(Option::take)
            .collect();
        let tasks: Vec<JoinHandle<anyhow::Result<()>>> = stopping
            .into_iter()
            .map(|node| {
                let _ = node.stop.send(());
                node.task
            })
            .collect();
        let outcomes = self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), join_all_in_order(tasks)).await
        });
        let outcomes = outcomes.context("the demo nodes did not stop within 30 s")?;
        for outcome in outcomes {
            outcome
                .context("a demo node's server task failed")?
                .context("a demo node stopped with an error")?;
        }
        Ok(())
    }
}

/// Await every task, in order; they run concurrently meanwhile, being spawned already.
async fn join_all_in_order(
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
) -> Vec<Result<anyhow::Result<()>, tokio::task::JoinError>> {
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await);
    }
    outcomes
}

/// Wait for the in-process server to write `api.addr` and answer `/api/health`.
fn wait_until_serving(
    dir: &Path,
    serving: &JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<String> {
    let address_path = NodeDir::new(dir).api_address_path();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if serving.is_finished() {
            bail!("the node stopped while starting");
        }
        if let Ok(text) = std::fs::read_to_string(&address_path)
            && let Ok(address) = text.trim().parse::<SocketAddr>()
        {
            let url = format!("http://{address}");
            if NodeClient::new(url.clone(), None)
                .get_as::<NodeInfo>("/api/health", &[])
                .is_ok()
            {
                return Ok(url);
            }
        }
        if Instant::now() > deadline {
            bail!("the node did not answer within 30 s");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plans_form_a_tree_inside_the_county() {
        for plan in &PLANS {
            crate::config::validate_region_code(plan.tier, plan.region).unwrap();
            if let Some(parent) = plan.parent {
                assert!(crate::config::is_region_below(
                    PLANS[parent].region,
                    plan.region
                ));
            }
            assert!(
                demo_villages()
                    .iter()
                    .any(|village| village.region_code.starts_with(plan.region)),
                "{} has sample villages",
                plan.name
            );
        }
        assert_eq!(PLANS[CUT_TOWNSHIP].tier, Tier::Township);
    }

    #[test]
    fn busy_ports_fall_back_to_free_ones() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = taken.local_addr().unwrap().port();
        let Ok(addresses) = choose_addresses(base) else {
            // The port is near the top of the range; nothing to check there.
            return;
        };
        assert_ne!(addresses[0].0.port(), base);
        let mut ports: Vec<u16> = addresses.iter().map(|(api, _)| api.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), PLANS.len());
        let free = choose_addresses(0).unwrap();
        assert!(
            free.iter()
                .all(|(api, quic)| api.port() != 0 && quic.port() != 0)
        );
    }
}
