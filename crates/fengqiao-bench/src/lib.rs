//! What the benchmark binaries share: the machine and a process's memory, and timing percentiles.

use std::time::Duration;

use anyhow::Context;

/// CPU model, core count and memory, for the "machine" line of BENCHMARKS.md.
pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .next()
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kib| {
            format!(", {:.0} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    format!("{cpu}, {cores} cores{memory}")
}

/// Import sample cases (`fengqiao_samples::sample_ledger`, dated within `days` before
/// `now`) through `Node::import`, a batch of rows a call, until the node holds the count asked; a refused
/// row is an error. `first_seed` makes each batch's cases distinct and the run repeatable.
pub fn import_sample_cases(
    node: &fengqiao::service::Node,
    operator: &str,
    villages: &[fengqiao_samples::SampleVillage],
    target: ImportTarget,
) -> anyhow::Result<()> {
    let mut seed = target.first_seed;
    while (node.store().case_count() as usize) < target.count {
        let wanted = target
            .batch
            .max(1)
            .min(target.count - node.store().case_count() as usize);
        let rows = fengqiao_samples::sample_ledger(
            seed,
            wanted,
            villages,
            target.now - chrono::Duration::days(target.days),
            target.now,
        );
        seed += 1;
        let reports = node
            .import(
                &bench_actor(operator),
                target.now,
                fengqiao_case::ImportBatch {
                    rows,
                    dry_run: false,
                    import_id: None,
                },
            )
            .map_err(|error| anyhow::anyhow!("import: {error}"))?;
        if let Some(rejected) = reports.iter().find(|report| report.error.is_some()) {
            anyhow::bail!(
                "import refused line {}: {:?}",
                rejected.line,
                rejected.error
            );
        }
    }
    Ok(())
}

/// How many sample cases [`import_sample_cases`] brings a node to, and how.
#[derive(Debug, Clone, Copy)]
pub struct ImportTarget {
    pub count: usize,
    pub batch: usize,
    pub days: i64,
    pub now: chrono::DateTime<chrono::Utc>,
    pub first_seed: u64,
}

/// The lines every benchmark opens with: the machine, and whether the build's numbers count.
pub fn print_run_header() {
    println!("machine: {}", machine_description());
    println!(
        "build: {}",
        if cfg!(debug_assertions) {
            "debug (numbers are not representative: use --release)"
        } else {
            "release"
        }
    );
}

/// Resident memory (VmRSS) of a process in KiB; `process` is a pid or `self`.
pub fn resident_kib(process: &str) -> anyhow::Result<u64> {
    status_kib(process, "VmRSS")
}

/// Peak resident memory (VmHWM, the high-water mark since the process started) in KiB.
pub fn peak_resident_kib(process: &str) -> anyhow::Result<u64> {
    status_kib(process, "VmHWM")
}

/// A memory figure of `/proc/{process}/status` in KiB: `VmRSS` (resident now), `VmHWM` (the
/// peak resident since the process started).
fn status_kib(process: &str, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{process}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let prefix = format!("{field}:");
    status
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("{field} not found in {path}"))
}

/// CPU time (user and system, all threads) a process has used so far, in seconds; `process` is
/// a pid or `self`. /proc counts it in USER_HZ ticks, which the Linux ABI fixes at 100 per second.
pub fn cpu_seconds(process: &str) -> anyhow::Result<f64> {
    const USER_HZ: f64 = 100.0;
    let path = format!("/proc/{process}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // The command name (field 2) may hold spaces; the fields after it start with the state.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no command name in /proc stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
            .map(|ticks| ticks as f64)
            .with_context(|| format!("field {} of {path}", index + 3))
    };
    // utime and stime are fields 14 and 15 of the whole line.
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// Percentiles of repeated timings, in milliseconds.
#[derive(Debug)]
pub struct Timings {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub runs: usize,
}

impl Timings {
    pub fn of(mut samples: Vec<Duration>) -> Timings {
        samples.sort();
        let at = |fraction: f64| {
            let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
            samples
                .get(index)
                .map_or(0.0, |duration| duration.as_secs_f64() * 1e3)
        };
        Timings {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            runs: samples.len(),
        }
    }
}

/// The benchmarks act as one person holding both case roles, recorded as `operator`.
pub fn bench_actor(operator: &str) -> fengqiao_accounts::Actor {
    use fengqiao_accounts::{Actor, Role, RoleSet};
    Actor {
        operator: operator.to_owned(),
        roles: RoleSet::of(&[Role::Operator, Role::Supervisor]),
    }
}

/// The account the benchmarks that drive a real node act as, created in its directory before it
/// runs (the node's CLI token then acts as it).
pub const BENCH_LOGIN: &str = "bench";

/// Create [`BENCH_LOGIN`] in the stopped node in `dir`, with `password`.
pub fn add_bench_account(dir: &std::path::Path, password: &str) -> anyhow::Result<()> {
    let node = fengqiao::service::Node::open(dir)?;
    let request = fengqiao_accounts::wire::NewAccount {
        login: BENCH_LOGIN.to_owned(),
        display_name: "基准测试".to_owned(),
        roles: bench_actor("").roles,
        password: Some(password.to_owned()),
    };
    node.add_account(&request, chrono::Utc::now())
        .map_err(|error| anyhow::anyhow!("cannot create the bench account: {error}"))?;
    Ok(())
}

/// `Authorization` and act-as headers for the node directory's CLI token acting as
/// [`BENCH_LOGIN`].
pub fn bench_headers(dir: &std::path::Path) -> anyhow::Result<[(String, String); 2]> {
    let token = std::fs::read_to_string(dir.join("cli.token"))?;
    Ok([
        (
            "authorization".to_owned(),
            format!("Bearer {}", token.trim()),
        ),
        (
            fengqiao::api::auth::ACT_AS_HEADER.to_owned(),
            BENCH_LOGIN.to_owned(),
        ),
    ])
}
