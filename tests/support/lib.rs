//! Helpers for the end-to-end tests: find the binary, start nodes on port 0, run CLI commands.
//!
//! Tests drive real `fengqiao` processes: the same binary an operator runs, talking HTTP on
//! 127.0.0.1, killed with SIGKILL where a test needs a crash.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod fault_proxy;
pub mod nemesis;

/// The account the tests act as (every node `init_node` makes has it), with every role: the
/// existing tests register, supervise and admit offices as one person. The tests of roles use
/// accounts of their own (`tests/it/accounts.rs`).
pub const TEST_LOGIN: &str = "tester";
pub const TEST_DISPLAY_NAME: &str = "测试员";
pub const TEST_PASSWORD: &str = "tester-password";

/// The operator the node records for the tests' account.
pub const TEST_OPERATOR: &str = "测试员 (tester)";

/// Header naming the account the node's CLI token acts as.
pub const ACT_AS_HEADER: &str = "x-fengqiao-as";

/// Region codes of the test federation: a county, its township, two of the township's villages.
pub const COUNTY_REGION: &str = "430702";
pub const TOWNSHIP_REGION: &str = "430702001";
pub const VILLAGE_REGION: &str = "430702001001";
pub const SIBLING_VILLAGE_REGION: &str = "430702001002";

/// The `fengqiao` binary built by `cargo build --bins` (scripts/test does that first).
/// `FENGQIAO_BIN` overrides, e.g. to test a release build.
pub fn fengqiao_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FENGQIAO_BIN") {
        return PathBuf::from(path);
    }
    // The test executable lives in target/<profile>/deps/; the binary in target/<profile>/.
    let test_executable = std::env::current_exe().expect("current test executable");
    let profile_dir = test_executable
        .parent()
        .and_then(Path::parent)
        .expect("test executable is inside target/<profile>/deps");
    let binary = profile_dir.join("fengqiao");
    assert!(
        binary.exists(),
        "{} not found: run the tests with scripts/test, which builds the binary first \
         (or `cargo build --bins` before `cargo test`)",
        binary.display()
    );
    binary
}

/// A `fengqiao` command acting as the tests' account, logs kept quiet.
pub fn fengqiao_command() -> Command {
    let mut command = Command::new(fengqiao_binary());
    command
        .env("FENGQIAO_USER", TEST_LOGIN)
        // Nodes and the CLI log warnings only, unless FENGQIAO_TEST_NODE_LOG asks for more (a
        // RUST_LOG filter, e.g. `info,fengqiao_sync=debug` to follow a nemesis replay).
        .env(
            "RUST_LOG",
            std::env::var("FENGQIAO_TEST_NODE_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .env_remove("FENGQIAO_NODE")
        .env_remove("FENGQIAO_TOKEN");
    command
}

/// Run a CLI command to completion and return its output. With `--dir` the CLI acts through
/// the node directory's CLI token; with `--node URL` of a node a test started, through the
/// same token (given as `FENGQIAO_TOKEN`).
pub fn run_cli(args: &[&str]) -> Output {
    let mut command = fengqiao_command();
    if let Some(token) = node_url_argument(args).and_then(|url| cli_token_of_url(&url)) {
        command.env("FENGQIAO_TOKEN", token);
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run fengqiao")
}

fn node_url_argument(args: &[&str]) -> Option<String> {
    args.windows(2)
        .find(|pair| pair[0] == "--node")
        .map(|pair| pair[1].to_owned())
}

/// Node directories of the nodes the tests started, by API address.
static STARTED: Mutex<Vec<(SocketAddr, PathBuf)>> = Mutex::new(Vec::new());

fn dir_of(address: SocketAddr) -> Option<PathBuf> {
    STARTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .rev()
        .find(|(started, _)| *started == address)
        .map(|(_, dir)| dir.clone())
}

/// The CLI token of the node directory whose node serves `url`, if a test started it.
pub fn cli_token_of_url(url: &str) -> Option<String> {
    let address: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .ok()?;
    cli_token(&dir_of(address)?)
}

/// A node directory's CLI token.
pub fn cli_token(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("cli.token"))
        .ok()
        .map(|token| token.trim().to_owned())
}

/// Open a stopped node in this process. A process another test thread forks at that moment
/// holds the node's lock file (and sled's) until it execs, so a busy lock is tried again.
pub fn open_stopped_node(dir: &Path) -> fengqiao::service::Node {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match fengqiao::service::Node::open(dir) {
            Ok(node) => return node,
            Err(error) if Instant::now() < deadline && format!("{error:#}").contains("in use") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("open the stopped node in {}: {error:#}", dir.display()),
        }
    }
}

/// Give the (stopped) node in `dir` the tests' account.
pub fn add_test_account(dir: &Path) {
    add_account(
        dir,
        TEST_LOGIN,
        TEST_DISPLAY_NAME,
        &["operator", "supervisor", "admin"],
    );
}

/// Give the (stopped) node in `dir` an account with `roles` and [`TEST_PASSWORD`], unless it has
/// one with that login.
pub fn add_account(dir: &Path, login: &str, display_name: &str, roles: &[&str]) {
    let node = open_stopped_node(dir);
    if node
        .store()
        .account(login)
        .expect("read accounts")
        .is_some()
    {
        return;
    }
    let roles = fengqiao_accounts::RoleSet::parse(&roles.join(",")).expect("roles");
    let request = fengqiao_accounts::wire::NewAccount {
        login: login.to_owned(),
        display_name: display_name.to_owned(),
        roles,
        password: Some(TEST_PASSWORD.to_owned()),
    };
    node.add_account(&request, chrono::Utc::now())
        .unwrap_or_else(|error| panic!("add account {login}: {error}"));
}

/// Run a CLI command that must succeed; returns its stdout.
pub fn run_cli_ok(args: &[&str]) -> String {
    let output = run_cli(args);
    assert!(
        output.status.success(),
        "fengqiao {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Run a CLI command with `--json` that must succeed; returns the parsed JSON.
pub fn run_cli_json(args: &[&str]) -> serde_json::Value {
    let mut with_json: Vec<&str> = vec!["--json"];
    with_json.extend_from_slice(args);
    let stdout = run_cli_ok(&with_json);
    serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!("fengqiao {args:?} printed invalid JSON ({error}):\n{stdout}")
    })
}

/// Create a node directory with `fengqiao init`, with the tests' account.
pub fn init_node(dir: &Path, name: &str, tier: &str, region_code: &str) {
    init_node_with_id(dir, name, tier, region_code);
}

/// Create a node directory with `fengqiao init` and return the node ID it printed.
pub fn init_node_with_id(dir: &Path, name: &str, tier: &str, region_code: &str) -> String {
    let node_id = init_node_without_test_account(dir, name, tier, region_code);
    add_test_account(dir);
    node_id
}

/// `fengqiao init` only (its first admin, not the tests' account); returns the node ID.
pub fn init_node_without_test_account(
    dir: &Path,
    name: &str,
    tier: &str,
    region_code: &str,
) -> String {
    let stdout = run_cli_ok(&[
        "init",
        path_str(dir),
        "--name",
        name,
        "--tier",
        tier,
        "--region",
        region_code,
    ]);
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("node id: "))
        .map(|node_id| node_id.trim().to_owned())
        .unwrap_or_else(|| panic!("fengqiao init printed no node id:\n{stdout}"))
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// A running `fengqiao run` process. Dropping it kills the process.
#[derive(Debug)]
pub struct NodeProcess {
    pub dir: PathBuf,
    pub address: SocketAddr,
    child: Child,
}

impl NodeProcess {
    /// Start `fengqiao run DIR` on an ephemeral port and wait until its API answers.
    pub fn start(dir: &Path) -> anyhow::Result<NodeProcess> {
        NodeProcess::start_with(dir, &[])
    }

    /// Start `fengqiao run DIR` with the federation's QUIC endpoint on an ephemeral port too;
    /// once the API answers, `quic.addr` holds the bound QUIC address.
    pub fn start_federated(dir: &Path) -> anyhow::Result<NodeProcess> {
        let _ = std::fs::remove_file(dir.join("quic.addr"));
        NodeProcess::start_with(dir, &["--quic-listen", "127.0.0.1:0"])
    }

    /// Start `fengqiao run DIR` with the federation's QUIC endpoint at `quic_address`: a parent
    /// restarted where its children's `join` said it is.
    pub fn start_federated_at(dir: &Path, quic_address: SocketAddr) -> anyhow::Result<NodeProcess> {
        NodeProcess::start_federated_at_with(dir, quic_address, &[])
    }

    /// [`NodeProcess::start_federated_at`] with more arguments for `fengqiao run`.
    pub fn start_federated_at_with(
        dir: &Path,
        quic_address: SocketAddr,
        extra_args: &[&str],
    ) -> anyhow::Result<NodeProcess> {
        let _ = std::fs::remove_file(dir.join("quic.addr"));
        let address = quic_address.to_string();
        let mut args = vec!["--quic-listen", address.as_str()];
        args.extend_from_slice(extra_args);
        NodeProcess::start_with(dir, &args)
    }

    /// Start `fengqiao run DIR --listen 127.0.0.1:0 EXTRA…` and wait until its API answers.
    /// The node's stderr (its logs) is appended to [`NodeProcess::log_path`].
    pub fn start_with(dir: &Path, extra_args: &[&str]) -> anyhow::Result<NodeProcess> {
        let address_file = dir.join("api.addr");
        // A stale address from a killed run would point at a dead port.
        let _ = std::fs::remove_file(&address_file);
        let log_path = NodeProcess::log_path_of(dir);
        let log_start = std::fs::metadata(&log_path).map_or(0, |metadata| metadata.len());
        let spawn = || -> anyhow::Result<std::process::Child> {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("open {}", log_path.display()))?;
            fengqiao_command()
                .args(["run", path_str(dir), "--listen", "127.0.0.1:0"])
                .args(extra_args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("spawn fengqiao run")
        };
        let mut child = spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lock_retries_left = 10;
        loop {
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Ok(mut file) = std::fs::File::open(&log_path) {
                    let _ = file.read_to_string(&mut stderr);
                }
                let this_run = stderr
                    .get(log_start as usize..)
                    .unwrap_or(&stderr)
                    .to_owned();
                // The node lock is an flock: a test thread that opened this directory in the test
                // process (to add an account) shares it with any child another test forked
                // meanwhile, until that child execs. Such a lock goes within moments; a node
                // really running holds it for good, and the retries end with this error.
                if this_run.contains("is in use by another process")
                    && lock_retries_left > 0
                    && Instant::now() < deadline
                {
                    lock_retries_left -= 1;
                    std::thread::sleep(Duration::from_millis(200));
                    child = spawn()?;
                    continue;
                }
                bail!("fengqiao run exited early with {status}: {this_run}");
            }
            if let Ok(text) = std::fs::read_to_string(&address_file)
                && let Ok(address) = text.trim().parse::<SocketAddr>()
                && http_get(address, "/api/health").is_ok()
            {
                STARTED
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((address, dir.to_path_buf()));
                return Ok(NodeProcess {
                    dir: dir.to_path_buf(),
                    address,
                    child,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("fengqiao run did not answer within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The bound QUIC address the node wrote to `quic.addr`.
    pub fn quic_address(&self) -> anyhow::Result<SocketAddr> {
        let path = self.dir.join("quic.addr");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("parse {}: {text:?}", path.display()))
    }

    /// Where `start_with` appends the stderr (logs) of every run of the node in `dir`.
    pub fn log_path_of(dir: &Path) -> PathBuf {
        dir.join("run.log")
    }

    /// Everything the node in this directory logged, over all its runs so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(NodeProcess::log_path_of(&self.dir)).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a graceful exit; returns whether it exited successfully.
    pub fn stop(mut self) -> anyhow::Result<bool> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("send SIGTERM")?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("fengqiao run did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Authenticate as `login` through the CLI token of the node a test started at `address`
/// (nothing for a node the tests did not start).
fn acting_as<B>(
    address: SocketAddr,
    login: &str,
    mut request: ureq::RequestBuilder<B>,
) -> ureq::RequestBuilder<B> {
    if let Some(token) = dir_of(address).and_then(|dir| cli_token(&dir)) {
        request = request
            .header("authorization", format!("Bearer {token}"))
            .header(ACT_AS_HEADER, login);
    }
    request
}

/// GET a path as the tests' account; returns (status, JSON body).
pub fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut response = acting_as(
        address,
        TEST_LOGIN,
        agent().get(format!("http://{address}{path}")),
    )
    .call()?;
    let status = response.status().as_u16();
    let body: serde_json::Value = read_json_body(&mut response)?;
    Ok((status, body))
}

/// A JSON answer of any size: ureq stops at 10 MiB by default, and a soak's listing of tens of
/// thousands of cases is larger (the node itself has no such limit on what it answers).
fn read_json_body(
    response: &mut ureq::http::Response<ureq::Body>,
) -> anyhow::Result<serde_json::Value> {
    const ANSWER_LIMIT_BYTES: u64 = 1 << 30;
    Ok(response
        .body_mut()
        .with_config()
        .limit(ANSWER_LIMIT_BYTES)
        .read_json()?)
}

/// POST JSON as the tests' account; returns (status, JSON body).
pub fn http_post(
    address: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    http_post_as(address, path, TEST_LOGIN, body)
}

/// POST JSON as the account `login` (through the node's CLI token); returns (status, JSON
/// body).
pub fn http_post_as(
    address: SocketAddr,
    path: &str,
    login: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut response = acting_as(
        address,
        login,
        agent().post(format!("http://{address}{path}")),
    )
    .send_json(body)?;
    let status = response.status().as_u16();
    let body: serde_json::Value = read_json_body(&mut response)?;
    Ok((status, body))
}

/// A request with no credentials but what the test adds; answers are not errors.
pub fn bare_agent() -> ureq::Agent {
    agent()
}

/// Register sample case `index` in `region_code` at `node` through the API, which must answer
/// 201; returns the case as the node answered it.
pub fn register_sample(node: &NodeProcess, region_code: &str, index: usize) -> serde_json::Value {
    let (status, view) = http_post(
        node.address,
        "/api/cases",
        &sample_registration(region_code, index),
    )
    .expect("register");
    assert_eq!(status, 201, "register at {}: {view}", node.url());
    view
}

/// The number of a case as the API answers it.
pub fn case_number(view: &serde_json::Value) -> String {
    view["header"]["number"]
        .as_str()
        .expect("case number")
        .to_owned()
}

/// A registration body for a small realistic case in `region_code`.
pub fn sample_registration(region_code: &str, index: usize) -> serde_json::Value {
    serde_json::json!({
        "channel": "visit",
        "petitioners": [{
            "name": format!("王秀英{index}"),
            "id_number": "430702198503120029",
            "phone": "13807361234",
            "address": "武陵区芦荻山乡 3 组"
        }],
        "headcount": 1,
        "respondent": "常德市台秤厂",
        "category": "wage_arrears",
        "matter_type": "appeal",
        "summary": format!("反映原单位拖欠工资、公积金和社保费用，第 {index} 件"),
        "location": {"region_code": region_code, "village": "芦荻山村", "grid": "第三网格", "grid_worker": "李建国"}
    })
}

/// What someone with a stopped node's disk and key can do that the node's API would refuse:
/// write events straight into a case's document, with no lifecycle or authority check. The
/// adversarial tests use it to make a node send forged or unauthorized changes to its peers.
#[derive(Debug)]
pub struct Tamperer {
    node: fengqiao::service::Node,
}

impl Tamperer {
    /// Open the stopped node in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Tamperer> {
        let node = fengqiao::service::Node::open(dir)
            .with_context(|| format!("open the stopped node in {}", dir.display()))?;
        Ok(Tamperer { node })
    }

    pub fn node_id(&self) -> String {
        self.node.node_id().to_owned()
    }

    /// The case's events as this node holds them.
    pub fn events(&self, number: &str) -> anyhow::Result<Vec<fengqiao_case::Event>> {
        self.node
            .store()
            .with_case(number, |document| document.events())?
            .with_context(|| format!("{number} is not held"))?
            .context("read the events")
    }

    /// The case's current lifecycle tip (the `prev` of a next transition).
    pub fn tip(&self, number: &str) -> anyhow::Result<String> {
        let (header, events) = self
            .node
            .store()
            .with_case(number, |document| document.contents())?
            .with_context(|| format!("{number} is not held"))?
            .context("read the case")?;
        Ok(fengqiao_case::derive(&header, &events, &self.node.config().limits).tip)
    }

    /// An event claiming to be made by `claimed_node`, signed with this node's key.
    pub fn sign(
        &self,
        number: &str,
        id: &str,
        claimed_node: &str,
        kind: fengqiao_case::EventKind,
        prev: Option<String>,
    ) -> anyhow::Result<fengqiao_case::Event> {
        let now = chrono::Utc::now();
        let mut event = fengqiao_case::Event {
            id: id.to_owned(),
            kind,
            at: fengqiao_case::deadlines::truncate_to_millis(now),
            node: claimed_node.to_owned(),
            operator: "tamperer".to_owned(),
            prev,
            hlc: fengqiao_case::HybridTimestamp {
                wall_ms: now.timestamp_millis(),
                counter: 0,
            },
            signature: None,
            imported: None,
            backdated_reason: None,
        };
        fengqiao_case::signature::sign_event(number, &mut event, self.node.identity())?;
        Ok(event)
    }

    /// An event of this node itself, claiming it happened at `at` and stamped by a clock that
    /// read `at` (a node whose clock is wrong by that much), signed with this node's key.
    pub fn sign_dated(
        &self,
        number: &str,
        id: &str,
        kind: fengqiao_case::EventKind,
        at: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<fengqiao_case::Event> {
        let mut event = self.sign(number, id, &self.node_id(), kind, None)?;
        event.at = fengqiao_case::deadlines::truncate_to_millis(at);
        event.hlc = fengqiao_case::HybridTimestamp {
            wall_ms: at.timestamp_millis(),
            counter: 0,
        };
        fengqiao_case::signature::sign_event(number, &mut event, self.node.identity())?;
        Ok(event)
    }

    /// Push each event into the case's document as a change of its own, bypassing every check.
    pub fn push(&self, number: &str, events: &[fengqiao_case::Event]) -> anyhow::Result<()> {
        let limits = self.node.config().limits.clone();
        let outcome = self.node.store().update_case(number, |document| {
            for event in events {
                document.push_event(event)?;
            }
            let (header, all) = document.contents()?;
            let state = fengqiao_case::derive(&header, &all, &limits);
            Ok::<_, fengqiao_case::DocumentError>((
                fengqiao_case::summary::summarize(&header, &state),
                (),
            ))
        })?;
        outcome?;
        Ok(())
    }

    /// Create a case this node registers itself, wherever it is located, bypassing the check
    /// that a node registers only matters in its own jurisdiction.
    pub fn register_anywhere(&self, header: fengqiao_case::CaseHeader) -> anyhow::Result<()> {
        let number = header.number.clone();
        let register = self.sign(
            &number,
            "forged-register",
            &self.node_id(),
            fengqiao_case::EventKind::Register {
                header: Some(Box::new(header.clone())),
                policy_version: 0,
            },
            None,
        )?;
        let mut document =
            fengqiao_case::CaseDocument::create(&header, &register, self.node.identity().actor())?;
        let state = fengqiao_case::derive(
            &header,
            std::slice::from_ref(&register),
            &self.node.config().limits,
        );
        let summary = fengqiao_case::summary::summarize(&header, &state);
        self.node
            .store()
            .create_cases(&mut [fengqiao_store::NewCase {
                document: &mut document,
                summary: &summary,
            }])?;
        Ok(())
    }
}

/// One office's node directory and identity.
#[derive(Debug)]
pub struct Office {
    pub dir: PathBuf,
    pub id: String,
    pub name: &'static str,
    pub region: &'static str,
}

impl Office {
    /// `fengqiao init` a node for the office in `parent_dir/key`.
    pub fn init(
        parent_dir: &Path,
        key: &str,
        name: &'static str,
        tier: &str,
        region: &'static str,
    ) -> Office {
        let dir = parent_dir.join(key);
        let id = init_node_with_id(&dir, name, tier, region);
        Office {
            dir,
            id,
            name,
            region,
        }
    }

    pub fn county(parent_dir: &Path) -> Office {
        Office::init(
            parent_dir,
            "county",
            "武陵区信访局",
            "county",
            COUNTY_REGION,
        )
    }

    pub fn township(parent_dir: &Path) -> Office {
        Office::init(
            parent_dir,
            "township",
            "芦荻山乡调处中心",
            "township",
            TOWNSHIP_REGION,
        )
    }

    pub fn village(parent_dir: &Path, key: &str, region: &'static str) -> Office {
        Office::init(parent_dir, key, "芦荻山村调解室", "village", region)
    }

    pub fn path(&self) -> &str {
        path_str(&self.dir)
    }

    /// `fengqiao admit` at this (parent) office, offline.
    pub fn admit(&self, child: &Office) {
        run_cli_ok(&[
            "admit",
            self.path(),
            "--node-id",
            &child.id,
            "--name",
            child.name,
            "--region",
            child.region,
        ]);
    }

    /// `fengqiao join` this (child) office to `parent`, whose QUIC endpoint is at `address`.
    pub fn join(&self, parent: &Office, address: SocketAddr) {
        run_cli_ok(&[
            "join",
            self.path(),
            "--parent-address",
            &address.to_string(),
            "--parent-id",
            &parent.id,
            "--parent-name",
            parent.name,
            "--parent-region",
            parent.region,
        ]);
    }

    /// Run the node with its QUIC endpoint on a free port.
    pub fn start(&self) -> NodeProcess {
        NodeProcess::start_federated(&self.dir)
            .unwrap_or_else(|error| panic!("start {}: {error:#}", self.name))
    }

    /// Run the node again at the QUIC address its children joined.
    pub fn restart_at(&self, address: SocketAddr) -> NodeProcess {
        self.restart_at_with(address, &[])
    }

    /// [`Office::restart_at`] with more arguments for `fengqiao run` (a clock offset).
    pub fn restart_at_with(&self, address: SocketAddr, extra_args: &[&str]) -> NodeProcess {
        NodeProcess::start_federated_at_with(&self.dir, address, extra_args)
            .unwrap_or_else(|error| panic!("restart {} at {address}: {error:#}", self.name))
    }
}

/// Link a county, its township and the township's village (each admitted by its parent, each
/// joined to it) and run them, parents first so that each child dials a running parent. Returns
/// the running nodes: county, township, village.
pub fn start_chain(
    county: &Office,
    township: &Office,
    village: &Office,
) -> (NodeProcess, NodeProcess, NodeProcess) {
    county.admit(township);
    township.admit(village);
    let county_node = county.start();
    township.join(county, quic_address(&county_node));
    let township_node = township.start();
    village.join(township, quic_address(&township_node));
    let village_node = village.start();
    (county_node, township_node, village_node)
}

/// The node's QUIC address, as `run` wrote it.
pub fn quic_address(node: &NodeProcess) -> SocketAddr {
    node.quic_address().expect("the node's quic.addr")
}

/// Poll `probe` every 50 ms until it answers `Ok`, for at most `timeout`; on timeout, fail with
/// `what` and the probe's last explanation.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(why) => assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}: {why}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the roster of every one of `nodes` lists every one of `members` (node IDs): a node
/// judges authority, on the API and on receipt, against its replicated roster.
pub fn wait_for_roster(nodes: &[&NodeProcess], members: &[&str], timeout: Duration) {
    for node in nodes {
        wait_for("the roster reaches every office", timeout, || {
            let (_, roster) = http_get(node.address, "/api/roster").map_err(|e| e.to_string())?;
            let listed = roster.to_string();
            match members.iter().find(|member| !listed.contains(*member)) {
                Some(missing) => Err(format!("{} does not list {missing}", node.url())),
                None => Ok(()),
            }
        });
    }
}
