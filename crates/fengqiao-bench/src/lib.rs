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

/// Resident memory (VmRSS) of a process in KiB; `process` is a pid or `self`.
pub fn resident_kib(process: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{process}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("VmRSS not found")
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
