//! `--mode rebuild`: a village holding `--cases` cases (imported, with their histories, and
//! synced to its township) loses its directory and key; a new node made with `fengqiao init
//! --restore-from-parent` is admitted at the running township with `admit --successor-of`, and
//! is timed from that admission until its rebuild reports complete (every case the township
//! owed it back, `fengqiao peers`). Bytes are the change bytes the new node received on the
//! link, from its `/metrics`; real processes over QUIC on 127.0.0.1.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use fengqiao_samples::{SampleVillage, sample_ledger};

use super::{NodeRun, Options, get};

const TOWNSHIP_REGION: &str = "430702001";
const VILLAGE_REGION: &str = "430702001001";
const TOWNSHIP_NAME: &str = "芦荻山乡调处中心";
const VILLAGE_NAME: &str = "芦荻山村调解室";

/// Longest the benchmark waits for a sync or the rebuild.
const PATIENCE: Duration = Duration::from_secs(1_800);

pub fn measure(options: &Options, root: &Path) -> anyhow::Result<()> {
    let fengqiao = &options.fengqiao;
    let township_dir = root.join("rebuild-township");
    let village_dir = root.join("rebuild-village");
    let rebuilt_dir = root.join("rebuild-village-rebuilt");
    for dir in [&township_dir, &village_dir, &rebuilt_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
        }
    }
    let township_id = init_office(
        fengqiao,
        &township_dir,
        TOWNSHIP_NAME,
        "township",
        TOWNSHIP_REGION,
        &[],
    )?;
    let village_id = init_office(
        fengqiao,
        &village_dir,
        VILLAGE_NAME,
        "village",
        VILLAGE_REGION,
        &[],
    )?;
    cli(
        fengqiao,
        &[
            "admit",
            path(&township_dir)?,
            "--node-id",
            &village_id,
            "--name",
            VILLAGE_NAME,
            "--region",
            VILLAGE_REGION,
            "--quic-listen",
            "127.0.0.1:0",
        ],
    )?;
    let township = NodeRun::start(fengqiao, &township_dir)?;
    let township_quic = quic_address(&township_dir)?.to_string();
    // The parent as `join` and `init --restore-from-parent` name it.
    let parent = [
        "--parent-id",
        &township_id,
        "--parent-name",
        TOWNSHIP_NAME,
        "--parent-region",
        TOWNSHIP_REGION,
        "--quic-listen",
        "127.0.0.1:0",
    ];
    let join = [
        "join",
        path(&village_dir)?,
        "--parent-address",
        &township_quic,
    ];
    cli(fengqiao, &[&join[..], &parent].concat())?;
    let village = NodeRun::start(fengqiao, &village_dir)?;

    let started = Instant::now();
    fill(village.address, options.cases, options.batch)?;
    println!(
        "filled: {} cases imported at the village in {:.1} s (not measured)",
        options.cases,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    wait_until("the township holds the village's cases", || {
        let (_, health) = get(township.address, "/api/health")?;
        Ok(health["case_count"].as_u64() == Some(options.cases as u64))
    })?;
    println!(
        "synced up to the township in {:.1} s (not measured)",
        started.elapsed().as_secs_f64()
    );

    // The village's disk dies, key and all.
    let mut village = village;
    village.child.kill().context("kill the village")?;
    let _ = village.child.wait();
    std::fs::remove_dir_all(&village_dir).context("remove the village's directory")?;

    let new_id = init_office(
        fengqiao,
        &rebuilt_dir,
        VILLAGE_NAME,
        "village",
        VILLAGE_REGION,
        &[&["--restore-from-parent", &township_quic][..], &parent].concat(),
    )?;
    let rebuilt = NodeRun::start(fengqiao, &rebuilt_dir)?;
    let started = Instant::now();
    cli(
        fengqiao,
        &[
            "admit",
            path(&township_dir)?,
            "--node-id",
            &new_id,
            "--name",
            VILLAGE_NAME,
            "--region",
            VILLAGE_REGION,
            "--successor-of",
            &village_id,
        ],
    )?;
    let admitted = started.elapsed();
    let report = wait_for_rebuild(rebuilt.address)?;
    let seconds = started.elapsed().as_secs_f64();
    let recovered = report["cases_recovered"].as_u64().unwrap_or(0);
    ensure!(
        recovered == options.cases as u64,
        "the rebuild recovered {recovered} cases, not {}: {report}",
        options.cases
    );
    let bytes = change_bytes_received(rebuilt.address)?;
    println!(
        "rebuild from the township: {} cases back in {seconds:.1} s from admission ({:.0} \
         cases/s; the admit command itself {:.0} ms), {:.1} MiB of changes received ({} \
         bytes per case)",
        options.cases,
        options.cases as f64 / seconds,
        admitted.as_secs_f64() * 1e3,
        bytes as f64 / 1_048_576.0,
        bytes / options.cases.max(1) as u64
    );
    rebuilt.stop();
    township.stop();
    Ok(())
}

fn path(dir: &Path) -> anyhow::Result<&str> {
    dir.to_str().context("a directory path that is UTF-8")
}

fn cli(fengqiao: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(fengqiao)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("run fengqiao {args:?}"))?;
    ensure!(
        output.status.success(),
        "fengqiao {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `fengqiao init` an office with the bench account; returns its node ID.
fn init_office(
    fengqiao: &Path,
    dir: &Path,
    name: &str,
    tier: &str,
    region: &str,
    more: &[&str],
) -> anyhow::Result<String> {
    let mut args = vec![
        "init",
        path(dir)?,
        "--name",
        name,
        "--tier",
        tier,
        "--region",
        region,
    ];
    args.extend_from_slice(more);
    let printed = cli(fengqiao, &args)?;
    let Some(node_id) = printed
        .lines()
        .find_map(|line| line.trim().strip_prefix("node id: "))
    else {
        bail!("fengqiao init printed no node id:\n{printed}");
    };
    fengqiao_bench::add_bench_account(dir, "bench-password")?;
    Ok(node_id.trim().to_owned())
}

fn quic_address(dir: &Path) -> anyhow::Result<SocketAddr> {
    let text = std::fs::read_to_string(dir.join("quic.addr"))
        .with_context(|| format!("read {}/quic.addr", dir.display()))?;
    Ok(text.trim().parse()?)
}

/// Import `count` sample cases of the village, with their histories, numbered by the node.
fn fill(address: SocketAddr, count: usize, batch: usize) -> anyhow::Result<()> {
    let village = SampleVillage {
        region_code: VILLAGE_REGION.to_owned(),
        name: "芦荻山村".to_owned(),
    };
    let now = chrono::Utc::now();
    super::seed_with(address, count, batch, |seed, count| {
        sample_ledger(
            seed,
            count,
            std::slice::from_ref(&village),
            now - chrono::Duration::days(300),
            now,
        )
    })?;
    Ok(())
}

fn wait_until(what: &str, mut done: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    while !done()? {
        ensure!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The rebuild report of the new node's parent link, once it says complete.
fn wait_for_rebuild(address: SocketAddr) -> anyhow::Result<serde_json::Value> {
    let mut report = serde_json::Value::Null;
    wait_until("the rebuild completes", || {
        let (_, peers) = get(address, "/api/peers")?;
        report = peers[0]["rebuild"].clone();
        Ok(report["completed_at"].is_string())
    })?;
    Ok(report)
}

/// Change bytes received on every link's current connection, from the node's `/metrics` (a
/// connection that broke during the rebuild would make this an undercount).
fn change_bytes_received(address: SocketAddr) -> anyhow::Result<u64> {
    let mut response = super::agent()
        .get(format!("http://{address}/metrics"))
        .call()?;
    let text = response.body_mut().read_to_string()?;
    Ok(text
        .lines()
        .filter(|line| {
            line.starts_with("fengqiao_link_change_bytes_total")
                && line.contains("direction=\"in\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum())
}
