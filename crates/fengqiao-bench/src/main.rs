//! Benchmark binary (`scripts/bench`): measures a real node process and prints figures for BENCHMARKS.md.
//!
//! What it measures, each against a `fengqiao run` process started from the given binary:
//! - registrations per second through the HTTP API (each acknowledged only once durable);
//! - bulk import rate and bytes per case on disk once the node holds `--cases` cases;
//! - time to open that node (process start until the API answers) and its resident memory then.
//!
//! With `--mode metrics`: a node filled with `--cases` cases the same way (bulk import through the
//! API), then `--scrapes` scrapes of `GET /metrics` from loopback, one after another, timed from
//! the request to the whole answer (p50, p99, max).
//!
//! With `--mode excel`: `--cases` rows exported with `fengqiao export` (Excel and CSV) and the
//! workbook imported with `fengqiao import` into a fresh node (`excel.rs`).
//! With `--mode backup`: a node filled the same way, then `fengqiao backup` of it while one client
//! registers cases through the API one after another (the backup's time and size, and the API's
//! latency during it against the same load without a backup), then `fengqiao restore` of the
//! file into a new directory (its time) and a start of the restored node.
//! With `--mode rebuild`: a village of `--cases` cases rebuilt from its township after losing its
//! directory and key (`rebuild.rs`).

mod excel;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use fengqiao_bench::{Timings, machine_description, resident_kib};
use fengqiao_samples::{SampleVillage, sample_ledger};

mod console_pages;
mod rebuild;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Registration rate, bulk import, bytes per case, open time and memory.
    Node,
    /// The time of a `/metrics` scrape of a node holding `--cases` cases.
    Metrics,
    /// The console's pages and its Excel export at a node holding `--cases` cases.
    Console,
    /// Export of `--cases` rows to Excel and CSV, and import of the workbook elsewhere.
    Excel,
    /// Backup of a node holding `--cases` cases under API load, and its restore.
    Backup,
    /// A village holding `--cases` cases rebuilt from its township after losing its disk.
    Rebuild,
}

#[derive(Debug, Parser)]
#[command(about = "Benchmark a Fengqiao node")]
struct Options {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Node)]
    mode: Mode,
    /// Scrapes of `/metrics` timed in `--mode metrics`, requests of each page in `--mode console`.
    #[arg(long, default_value_t = 200)]
    scrapes: usize,
    /// The `fengqiao` binary to measure (build it with --release).
    #[arg(long, default_value = "target/release/fengqiao")]
    fengqiao: PathBuf,
    /// Cases the node holds for the open-time and memory measurement.
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    /// Cases registered one by one through the API for the throughput figure.
    #[arg(long, default_value_t = 2_000)]
    api_cases: usize,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 4)]
    api_clients: usize,
    /// Rows per import request while seeding.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Times the node is reopened; the median is reported.
    #[arg(long, default_value_t = 3)]
    reopen_runs: usize,
    /// Keep the node here instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    ensure!(
        options.fengqiao.exists(),
        "{} not found: run scripts/bench, which builds it",
        options.fengqiao.display()
    );
    let temp = tempfile::tempdir().context("create temporary directory")?;
    let root = options
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    println!("machine: {}", machine_description());
    match options.mode {
        Mode::Metrics => return metrics_scrapes(&options, &root),
        Mode::Console => return console_pages::measure(&options, &root),
        Mode::Excel => return excel::round_trip(&options, &root),
        Mode::Backup => return backup_and_restore(&options, &root),
        Mode::Rebuild => return rebuild::measure(&options, &root),
        Mode::Node => {}
    }

    let api_dir = root.join("api-node");
    init(&options.fengqiao, &api_dir)?;
    let node = NodeRun::start(&options.fengqiao, &api_dir)?;
    let rate = api_registration_rate(node.address, options.api_cases, options.api_clients)?;
    node.stop();
    println!(
        "api registration: {} cases, {} clients: {:.0} cases/s",
        options.api_cases, options.api_clients, rate
    );

    let big_dir = root.join("big-node");
    init(&options.fengqiao, &big_dir)?;
    let node = NodeRun::start(&options.fengqiao, &big_dir)?;
    let (seconds, bytes_on_wire) = seed(node.address, options.cases, options.batch)?;
    node.stop();
    println!(
        "bulk import: {} cases in {:.1} s ({:.0} cases/s, {} bytes of JSON per case)",
        options.cases,
        seconds,
        options.cases as f64 / seconds,
        bytes_on_wire / options.cases.max(1) as u64
    );
    let store_bytes = directory_size(&big_dir.join("store"))?;
    println!(
        "on disk: {} bytes for {} cases: {} bytes per case",
        store_bytes,
        options.cases,
        store_bytes / options.cases.max(1) as u64
    );

    let mut open_times = Vec::new();
    let mut resident = Vec::new();
    for _ in 0..options.reopen_runs.max(1) {
        let started = Instant::now();
        let node = NodeRun::start(&options.fengqiao, &big_dir)?;
        open_times.push(started.elapsed());
        resident.push(resident_kib(&node.child.id().to_string())?);
        let (status, info) = get(node.address, "/api/health")?;
        ensure!(status == 200, "health: {info}");
        ensure!(
            info["case_count"].as_u64() == Some(options.cases as u64),
            "node reopened with {} cases, expected {}",
            info["case_count"],
            options.cases
        );
        node.stop();
    }
    open_times.sort();
    resident.sort();
    let median_open = open_times[open_times.len() / 2];
    let median_resident = resident[resident.len() / 2];
    println!(
        "open with {} cases: median {:.0} ms (runs: {:?}), resident {:.1} MiB",
        options.cases,
        median_open.as_secs_f64() * 1000.0,
        open_times
            .iter()
            .map(|time| time.as_millis())
            .collect::<Vec<_>>(),
        median_resident as f64 / 1024.0
    );
    Ok(())
}

/// A node in `root/name` holding `options.cases` cases: made and filled by bulk import (not
/// measured) the first time, reused after (a `--dir` kept from an earlier run); with its
/// directory and the cases it holds.
fn filled_node(
    options: &Options,
    root: &Path,
    name: &str,
) -> anyhow::Result<(PathBuf, NodeRun, usize)> {
    let dir = root.join(name);
    if !dir.join("fengqiao.toml").exists() {
        init(&options.fengqiao, &dir)?;
    }
    let node = NodeRun::start(&options.fengqiao, &dir)?;
    let (status, info) = get(node.address, "/api/health")?;
    ensure!(status == 200, "health: {info}");
    let held = info["case_count"].as_u64().unwrap_or(0) as usize;
    if held == 0 {
        let (seconds, _) = seed(node.address, options.cases, options.batch)?;
        println!(
            "filled: {} cases imported in {seconds:.1} s (not measured)",
            options.cases
        );
        // A fresh process, so that what is measured (latency, peak memory) is not the filling's.
        node.stop();
        let node = NodeRun::start(&options.fengqiao, &dir)?;
        return Ok((dir, node, options.cases));
    } else {
        ensure!(
            held >= options.cases,
            "{} holds {held} cases, fewer than {}: remove it",
            dir.display(),
            options.cases
        );
        println!("reused: {} holding {held} cases", dir.display());
    }
    Ok((dir, node, held.max(options.cases)))
}

/// `--mode metrics`: fill a node (or reuse the one `--dir` holds), then time the scrapes.
fn metrics_scrapes(options: &Options, root: &Path) -> anyhow::Result<()> {
    let (dir, node, held) = filled_node(options, root, "metrics-node")?;
    ensure!(
        held == options.cases,
        "{} holds {held} cases, not {}: remove it or pass --cases {held}",
        dir.display(),
        options.cases
    );
    let agent = agent();
    let url = format!("http://{}/metrics", node.address);
    let scrape = || -> anyhow::Result<String> {
        let mut response = agent.get(&url).call()?;
        ensure!(
            response.status() == 200,
            "GET /metrics answered {}",
            response.status()
        );
        Ok(response.body_mut().read_to_string()?)
    };
    // The first scrape may wait for the statistics rollup's one build scan; not timed.
    let started = Instant::now();
    let text = scrape()?;
    println!(
        "first scrape (waits for the rollup build if still running): {:.0} ms, {} bytes",
        started.elapsed().as_secs_f64() * 1e3,
        text.len()
    );
    let held_line = format!("fengqiao_cases_held {}", options.cases);
    ensure!(
        text.lines().any(|line| line == held_line),
        "the scrape does not say {held_line}:\n{text}"
    );
    let mut times = Vec::with_capacity(options.scrapes);
    for _ in 0..options.scrapes.max(1) {
        let started = Instant::now();
        scrape()?;
        times.push(started.elapsed());
    }
    let max = times.iter().max().copied().unwrap_or_default();
    let timings = Timings::of(times);
    println!(
        "metrics scrape with {} cases: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} scrapes)",
        options.cases,
        timings.p50_ms,
        timings.p99_ms,
        max.as_secs_f64() * 1e3,
        timings.runs
    );
    node.stop();
    Ok(())
}

/// Registers cases one request after another until `stop`, timing each answer.
fn timed_registrations(
    address: SocketAddr,
    stop: &std::sync::atomic::AtomicBool,
    seed: u64,
) -> anyhow::Result<Vec<Duration>> {
    let agent = agent();
    let mut times = Vec::new();
    let mut rows = ledger(seed, 1_000).into_iter().cycle();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let Some(row) = rows.next() else { break };
        let mut case = row.case;
        // A number is handed out by the node; the ledger's would repeat as the rows cycle. The
        // case is registered now, as at a counter: a ledger row's past date needs a reason.
        case.number = None;
        case.registered_at = None;
        let body = serde_json::to_vec(&case)?;
        let started = Instant::now();
        let (status, answer) = post(&agent, address, "/api/cases", &body)?;
        times.push(started.elapsed());
        ensure!(status == 201, "register answered {status}: {answer}");
    }
    Ok(times)
}

/// The API's latency while `during` runs, under one client registering cases back to back.
fn latency_during<T>(
    address: SocketAddr,
    seed: u64,
    during: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Timings, Duration)> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let load = scope.spawn(|| timed_registrations(address, &stop, seed));
        // The load runs a moment before and after, so the figures cover the whole of `during`.
        std::thread::sleep(Duration::from_millis(300));
        let outcome = during();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let times = load
            .join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))??;
        let max = times.iter().max().copied().unwrap_or_default();
        Ok((outcome?, Timings::of(times), max))
    })
}

fn print_latency(when: &str, timings: &Timings, max: Duration) {
    println!(
        "API registration latency {when}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
        timings.p50_ms,
        timings.p99_ms,
        max.as_secs_f64() * 1e3,
        timings.runs
    );
}

/// `--mode backup`: a backup of a filled node under API load, then its restore.
fn backup_and_restore(options: &Options, root: &Path) -> anyhow::Result<()> {
    let (dir, node, held) = filled_node(options, root, "backup-node")?;
    let (_, baseline, baseline_max) = latency_during(node.address, 7, || {
        std::thread::sleep(Duration::from_secs(5));
        Ok(())
    })?;
    print_latency("without a backup", &baseline, baseline_max);
    let file = root.join("node.fqb");
    let _ = std::fs::remove_file(&file);
    let (backup_time, during, during_max) = latency_during(node.address, 8, || {
        let started = Instant::now();
        let output = Command::new(&options.fengqiao)
            .arg("backup")
            .arg("--to")
            .arg(&file)
            .arg("--dir")
            .arg(&dir)
            .args(["--as", "admin"])
            .output()
            .context("run fengqiao backup")?;
        ensure!(
            output.status.success(),
            "fengqiao backup failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(started.elapsed())
    })?;
    let (status, info) = get(node.address, "/api/health")?;
    ensure!(status == 200, "health: {info}");
    node.stop();
    let size = std::fs::metadata(&file)?.len();
    let store_bytes = directory_size(&dir.join("store"))?;
    println!(
        "backup of {held} cases: {:.1} s, {} bytes ({:.0} bytes per case; the store takes {} \
         bytes)",
        backup_time.as_secs_f64(),
        size,
        size as f64 / held.max(1) as f64,
        store_bytes
    );
    print_latency("during the backup", &during, during_max);
    let restored = root.join("restored-node");
    if restored.exists() {
        std::fs::remove_dir_all(&restored)?;
    }
    let started = Instant::now();
    let output = Command::new(&options.fengqiao)
        .arg("restore")
        .arg(&file)
        .arg(&restored)
        .output()
        .context("run fengqiao restore")?;
    let restore_time = started.elapsed();
    ensure!(
        output.status.success(),
        "fengqiao restore failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let started = Instant::now();
    let node = NodeRun::start(&options.fengqiao, &restored)?;
    let open_time = started.elapsed();
    let (status, info) = get(node.address, "/api/health")?;
    ensure!(status == 200, "health of the restored node: {info}");
    let cases = info["case_count"].as_u64().unwrap_or(0);
    ensure!(
        cases >= held as u64,
        "the restored node holds {cases} cases, fewer than the {held} held before the backup"
    );
    node.stop();
    println!(
        "restore of {cases} cases: {:.1} s; the restored node answered {:.0} ms after its start",
        restore_time.as_secs_f64(),
        open_time.as_secs_f64() * 1e3
    );
    Ok(())
}

fn init(fengqiao: &Path, dir: &Path) -> anyhow::Result<()> {
    let output = Command::new(fengqiao)
        .args(["init"])
        .arg(dir)
        .args([
            "--name",
            "武陵区信访超市",
            "--tier",
            "county",
            "--region",
            "430702",
        ])
        .output()
        .context("run fengqiao init")?;
    ensure!(
        output.status.success(),
        "fengqiao init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fengqiao_bench::add_bench_account(dir, "bench-password")
}

/// Header names and values that authenticate as the bench account.
type AuthHeaders = [(String, String); 2];

/// Per node address, the headers that authenticate as the bench account.
static CREDENTIALS: std::sync::Mutex<Vec<(SocketAddr, AuthHeaders)>> =
    std::sync::Mutex::new(Vec::new());

fn authenticated<B>(
    address: SocketAddr,
    mut request: ureq::RequestBuilder<B>,
) -> ureq::RequestBuilder<B> {
    let known = CREDENTIALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(known, _)| *known == address)
        .map(|(_, headers)| headers.clone());
    for (name, value) in known.into_iter().flatten() {
        request = request.header(name, value);
    }
    request
}

struct NodeRun {
    child: Child,
    address: SocketAddr,
}

impl NodeRun {
    fn start(fengqiao: &Path, dir: &Path) -> anyhow::Result<NodeRun> {
        let address_file = dir.join("api.addr");
        let _ = std::fs::remove_file(&address_file);
        let mut child = Command::new(fengqiao)
            .arg("run")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn fengqiao run")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("fengqiao run exited with {status}");
            }
            if let Ok(text) = std::fs::read_to_string(&address_file)
                && let Ok(address) = text.trim().parse::<SocketAddr>()
                && get(address, "/api/health").is_ok()
            {
                CREDENTIALS
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((address, fengqiao_bench::bench_headers(dir)?));
                return Ok(NodeRun { child, address });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("node did not answer within 120 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

fn get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut response =
        authenticated(address, agent().get(format!("http://{address}{path}"))).call()?;
    let status = response.status().as_u16();
    Ok((status, response.body_mut().read_json()?))
}

fn post(
    agent: &ureq::Agent,
    address: SocketAddr,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut response = authenticated(address, agent.post(format!("http://{address}{path}")))
        .header("content-type", "application/json")
        .send(body)?;
    let status = response.status().as_u16();
    Ok((status, response.body_mut().read_json()?))
}

fn villages() -> Vec<SampleVillage> {
    [
        ("430702001001", "芦荻山村"),
        ("430702001002", "白马湖村"),
        ("430702002001", "河洑村"),
        ("430702002002", "丹洲村"),
        ("430702003001", "长港村"),
    ]
    .into_iter()
    .map(|(code, name)| SampleVillage {
        region_code: code.to_owned(),
        name: name.to_owned(),
    })
    .collect()
}

fn ledger(seed: u64, count: usize) -> Vec<fengqiao_case::ImportRow> {
    let now = chrono::Utc::now();
    sample_ledger(
        seed,
        count,
        &villages(),
        now - chrono::Duration::days(365),
        now,
    )
}

/// Register `count` cases one request each from `clients` threads; returns cases per second.
fn api_registration_rate(address: SocketAddr, count: usize, clients: usize) -> anyhow::Result<f64> {
    let bodies: Vec<Vec<u8>> = ledger(1, count)
        .into_iter()
        .map(|row| {
            // Registered now, as at a counter: a ledger row's past date needs a reason.
            let mut case = row.case;
            case.registered_at = None;
            serde_json::to_vec(&case)
        })
        .collect::<Result<_, _>>()?;
    let chunk = count.div_ceil(clients.max(1));
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = bodies
            .chunks(chunk.max(1))
            .map(|bodies| {
                scope.spawn(move || -> anyhow::Result<()> {
                    let agent = agent();
                    for body in bodies {
                        let (status, answer) = post(&agent, address, "/api/cases", body)?;
                        ensure!(status == 201, "register answered {status}: {answer}");
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Import `count` sample cases with their histories; returns (seconds, JSON bytes sent).
fn seed(address: SocketAddr, count: usize, batch: usize) -> anyhow::Result<(f64, u64)> {
    seed_with(address, count, batch, ledger)
}

/// [`seed`] with rows from `rows(seed, count)`, a new seed for each batch.
fn seed_with(
    address: SocketAddr,
    count: usize,
    batch: usize,
    mut rows: impl FnMut(u64, usize) -> Vec<fengqiao_case::ImportRow>,
) -> anyhow::Result<(f64, u64)> {
    let agent = agent();
    let mut sent = 0u64;
    let mut seconds = 0.0;
    let mut done = 0usize;
    let mut seed = 1_000u64;
    while done < count {
        let rows = rows(seed, batch.min(count - done));
        seed += 1;
        let body = serde_json::to_vec(&fengqiao_case::ImportBatch {
            rows,
            dry_run: false,
            import_id: None,
        })?;
        sent += body.len() as u64;
        let started = Instant::now();
        let (status, report) = post(&agent, address, "/api/import", &body)?;
        seconds += started.elapsed().as_secs_f64();
        ensure!(status == 200, "import answered {status}: {report}");
        let imported = report.as_array().map_or(0, |rows| {
            rows.iter()
                .filter(|row| row["outcome"] == "imported")
                .count()
        });
        ensure!(imported > 0, "import imported nothing: {report}");
        done += imported;
        eprint!("\rseeding: {done}/{count}");
        let _ = std::io::stderr().flush();
    }
    eprintln!();
    Ok((seconds, sent))
}

fn directory_size(path: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path).with_context(|| format!("read {}", path.display()))? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            directory_size(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}
