//! `--mode excel`: the 台账 out and back in at `--cases` rows, through the real CLI against real
//! nodes: `fengqiao export --full` to an `.xlsx` and to CSV from a node holding the cases, then
//! `fengqiao import` of the workbook into a fresh node. Each is timed from the command's start
//! to its exit; memory is the peak resident set (VmHWM) of the node and of the CLI, the node's
//! read after the command (it was restarted before the exports, so seeding does not count), the
//! CLI's polled while it runs.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use fengqiao_bench::peak_resident_kib;

use super::{NodeRun, Options, filled_node, get, init};

/// The account the export acts as: an admin (ID numbers whole, so the file imports) who may also
/// read cases (a supervisor); the bench account has no admin role.
const EXPORTER_LOGIN: &str = "bench-exporter";

pub fn round_trip(options: &Options, root: &Path) -> anyhow::Result<()> {
    let (source_dir, node, _) = filled_node(options, root, "excel-source")?;
    node.stop();
    // The exporting account, also in a node another mode filled (`--dir` reused).
    add_exporter(&source_dir)?;
    // A fresh process, so its peak memory is the exports', not the seeding's.
    let node = NodeRun::start(&options.fengqiao, &source_dir)?;
    let (status, info) = get(node.address, "/api/health")?;
    ensure!(status == 200, "health: {info}");
    ensure!(
        info["case_count"].as_u64() == Some(options.cases as u64),
        "{} holds {} cases, not {}: remove it or pass --cases",
        source_dir.display(),
        info["case_count"],
        options.cases
    );
    let node_pid = node.child.id().to_string();
    let node_before = peak_resident_kib(&node_pid)?;
    let token = std::fs::read_to_string(source_dir.join("cli.token"))?;
    let url = format!("http://{}", node.address);
    let workbook = root.join("ledger.xlsx");
    let csv = root.join("ledger.csv");
    for (format, file) in [("xlsx", &workbook), ("csv", &csv)] {
        let mut args = arguments(&["--node", &url, "--as", EXPORTER_LOGIN, "export", "--full"]);
        args.extend(arguments(&["--format", format, "--to"]));
        args.push(file.as_os_str().to_owned());
        let run = cli_run(&options.fengqiao, &args, token.trim(), root)?;
        let bytes = std::fs::metadata(file)?.len();
        println!(
            "export {format}: {} rows in {:.1} s ({:.0} rows/s), {:.1} MiB file; CLI peak {:.1} MiB",
            options.cases,
            run.seconds,
            options.cases as f64 / run.seconds,
            bytes as f64 / 1_048_576.0,
            run.peak_kib as f64 / 1024.0
        );
    }
    let node_after = peak_resident_kib(&node_pid)?;
    println!(
        "source node peak (VmHWM): {:.1} MiB before the exports, {:.1} MiB after",
        node_before as f64 / 1024.0,
        node_after as f64 / 1024.0
    );
    node.stop();

    let target_dir = root.join("excel-target");
    if target_dir.exists() {
        std::fs::remove_dir_all(&target_dir)
            .with_context(|| format!("remove {}", target_dir.display()))?;
    }
    init(&options.fengqiao, &target_dir)?;
    let node = NodeRun::start(&options.fengqiao, &target_dir)?;
    let token = std::fs::read_to_string(target_dir.join("cli.token"))?;
    let url = format!("http://{}", node.address);
    let mut args = arguments(&[
        "--node",
        &url,
        "--as",
        fengqiao_bench::BENCH_LOGIN,
        "import",
        "--batch",
        &options.batch.to_string(),
    ]);
    args.push(workbook.as_os_str().to_owned());
    let run = cli_run(&options.fengqiao, &args, token.trim(), root)?;
    let (status, info) = get(node.address, "/api/health")?;
    ensure!(status == 200, "health: {info}");
    ensure!(
        info["case_count"].as_u64() == Some(options.cases as u64),
        "the import left {} cases, not {}",
        info["case_count"],
        options.cases
    );
    let node_peak = peak_resident_kib(&node.child.id().to_string())?;
    println!(
        "import xlsx: {} rows in {:.1} s ({:.0} rows/s: every row checked, then written); CLI \
         peak {:.1} MiB, node peak {:.1} MiB",
        options.cases,
        run.seconds,
        options.cases as f64 / run.seconds,
        run.peak_kib as f64 / 1024.0,
        node_peak as f64 / 1024.0
    );
    node.stop();
    Ok(())
}

/// Create [`EXPORTER_LOGIN`] in the stopped node in `dir`.
fn add_exporter(dir: &Path) -> anyhow::Result<()> {
    use fengqiao_accounts::{Role, RoleSet};
    let node = fengqiao::service::Node::open(dir)?;
    let views = node
        .account_views()
        .map_err(|error| anyhow::anyhow!("cannot read the accounts: {error}"))?;
    if views.iter().any(|account| account.login == EXPORTER_LOGIN) {
        return Ok(());
    }
    let request = fengqiao_accounts::wire::NewAccount {
        login: EXPORTER_LOGIN.to_owned(),
        display_name: "基准测试导出".to_owned(),
        roles: RoleSet::of(&[Role::Admin, Role::Supervisor]),
        password: Some("bench-password".to_owned()),
    };
    node.add_account(&request, chrono::Utc::now())
        .map_err(|error| anyhow::anyhow!("cannot create the exporting account: {error}"))?;
    Ok(())
}

/// How a CLI command ran.
struct CliRun {
    seconds: f64,
    /// The highest VmHWM read while it ran (every 20 ms, and just before it exits).
    peak_kib: u64,
}

fn arguments(texts: &[&str]) -> Vec<OsString> {
    texts.iter().map(OsString::from).collect()
}

/// Run the CLI with the node's CLI token to completion, polling its peak memory; its stderr
/// (progress, errors) goes to `cli.log` in `root`, and is shown if it fails.
fn cli_run(fengqiao: &Path, args: &[OsString], token: &str, root: &Path) -> anyhow::Result<CliRun> {
    let log_path = root.join("cli.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("create {}", log_path.display()))?;
    let started = Instant::now();
    let mut child = Command::new(fengqiao)
        .args(args)
        .env("FENGQIAO_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("spawn the fengqiao CLI")?;
    let pid = child.id().to_string();
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(peak) = peak_resident_kib(&pid) {
            peak_kib = peak_kib.max(peak);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        anyhow::bail!("fengqiao {args:?} failed: {log}");
    }
    Ok(CliRun { seconds, peak_kib })
}
