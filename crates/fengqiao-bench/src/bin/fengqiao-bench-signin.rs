//! Sign-in benchmark (`scripts/bench-signin`): what one sign-in costs, and whether the API stays
//! responsive to other requests during a burst of parallel sign-ins. Figures for BENCHMARKS.md.
//!
//! - the argon2id hash and verification alone, in this process (`fengqiao_accounts::password`);
//! - sign-ins one after another against a real `fengqiao run` (answer time as a client sees it);
//! - a burst of `--burst` parallel sign-ins while one client reads `/api/health` and another
//!   lists cases, each every 20 ms: their answer times during the burst against before it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use fengqiao_accounts::password::{hash_password, verify_password};
use fengqiao_bench::{add_bench_account, bench_headers, machine_description};

const PASSWORD: &str = "bench-password-2026";

#[derive(Debug, Parser)]
#[command(about = "Benchmark sign-ins of a Fengqiao node")]
struct Options {
    /// The `fengqiao` binary to measure (build it with --release).
    #[arg(long, default_value = "target/release/fengqiao")]
    fengqiao: PathBuf,
    /// Sign-ins one after another.
    #[arg(long, default_value_t = 20)]
    sequential: usize,
    /// Parallel sign-ins in the burst.
    #[arg(long, default_value_t = 50)]
    burst: usize,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn sign_in(address: SocketAddr) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = agent()
        .post(format!("http://{address}/api/session"))
        .send_json(serde_json::json!({"login": "bench", "password": PASSWORD}))?;
    let elapsed = started.elapsed();
    ensure!(
        response.status().as_u16() == 200,
        "sign-in answered {}",
        response.status()
    );
    Ok(elapsed)
}

fn timed_get(
    address: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut request = agent().get(format!("http://{address}{path}"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.call()?;
    let elapsed = started.elapsed();
    ensure!(
        response.status().as_u16() == 200,
        "{path}: {}",
        response.status()
    );
    Ok(elapsed)
}

/// (median, 90th percentile, max) in milliseconds.
fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |fraction: f64| {
        let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
        samples[index].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.9), at(1.0))
}

fn print_summary(what: &str, samples: Vec<Duration>) {
    let count = samples.len();
    let (median, p90, max) = summary(samples);
    println!("{what}: n={count} median {median:.1} ms, p90 {p90:.1} ms, max {max:.1} ms");
}

/// Read `path` every 20 ms until `stop`; the answer times.
fn poll(
    address: SocketAddr,
    path: &'static str,
    headers: Vec<(String, String)>,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        samples.push(timed_get(address, path, &headers)?);
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(samples)
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    ensure!(
        options.fengqiao.exists(),
        "{} not found: run scripts/bench-signin, which builds it",
        options.fengqiao.display()
    );
    println!("machine: {}", machine_description());
    println!(
        "argon2id m={} KiB, t={}, p={}",
        fengqiao_accounts::password::MEMORY_KIB,
        fengqiao_accounts::password::ITERATIONS,
        fengqiao_accounts::password::LANES
    );

    let hash = hash_password(PASSWORD, &[7; 16])?;
    let verifications: Vec<Duration> = (0..options.sequential)
        .map(|_| {
            let started = Instant::now();
            assert!(verify_password(PASSWORD, &hash));
            started.elapsed()
        })
        .collect();
    print_summary("argon2id verification alone (in process)", verifications);

    let temp = tempfile::tempdir().context("create temporary directory")?;
    let dir = temp.path().join("node");
    let output = Command::new(&options.fengqiao)
        .arg("init")
        .arg(&dir)
        .args([
            "--name",
            "芦荻山村调解室",
            "--tier",
            "village",
            "--region",
            "430702001001",
        ])
        .output()
        .context("run fengqiao init")?;
    ensure!(output.status.success(), "fengqiao init failed");
    add_bench_account(&dir, PASSWORD)?;
    let mut node = start(&options.fengqiao, &dir)?;
    let address = node.1;
    let headers: Vec<(String, String)> = bench_headers(&dir)?.to_vec();

    let sequential: Vec<Duration> = (0..options.sequential)
        .map(|_| sign_in(address))
        .collect::<anyhow::Result<_>>()?;
    print_summary("one sign-in, one after another (HTTP)", sequential);

    let quiet_health: Vec<Duration> = (0..20)
        .map(|_| timed_get(address, "/api/health", &[]))
        .collect::<anyhow::Result<_>>()?;
    let quiet_list: Vec<Duration> = (0..20)
        .map(|_| timed_get(address, "/api/cases", &headers))
        .collect::<anyhow::Result<_>>()?;
    print_summary("GET /api/health, quiet", quiet_health);
    print_summary("GET /api/cases, quiet", quiet_list);

    let stop = AtomicBool::new(false);
    let (burst, health, list, burst_seconds) = std::thread::scope(|scope| {
        let health = scope.spawn(|| poll(address, "/api/health", Vec::new(), &stop));
        let list = scope.spawn(|| poll(address, "/api/cases", headers.clone(), &stop));
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let signing: Vec<_> = (0..options.burst)
            .map(|_| scope.spawn(|| sign_in(address)))
            .collect();
        let burst: anyhow::Result<Vec<Duration>> = signing
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| bail!("a sign-in panicked"))
            })
            .collect();
        let burst_seconds = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let health = health
            .join()
            .unwrap_or_else(|_| bail!("the health poll panicked"));
        let list = list
            .join()
            .unwrap_or_else(|_| bail!("the list poll panicked"));
        (burst, health, list, burst_seconds)
    });
    println!(
        "burst of {} parallel sign-ins: all answered in {burst_seconds:.2} s",
        options.burst
    );
    print_summary("  each sign-in of the burst", burst?);
    print_summary("  GET /api/health during the burst", health?);
    print_summary("  GET /api/cases during the burst", list?);

    let _ = node.0.kill();
    let _ = node.0.wait();
    Ok(())
}

fn start(fengqiao: &Path, dir: &Path) -> anyhow::Result<(Child, SocketAddr)> {
    let address_file = dir.join("api.addr");
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
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("fengqiao run exited with {status}");
        }
        if let Ok(text) = std::fs::read_to_string(&address_file)
            && let Ok(address) = text.trim().parse::<SocketAddr>()
            && timed_get(address, "/api/health", &[]).is_ok()
        {
            return Ok((child, address));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("node did not answer within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
