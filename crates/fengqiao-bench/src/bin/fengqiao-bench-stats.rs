//! Stats benchmark: `fengqiao stats` answered from an incrementally kept `Rollup` against the scan of every summary.
//!
//! Builds `--cases` realistic summaries (sample ledger rows taken through the real lifecycle:
//! `register` + `append` into automerge documents, then `summarize`), spread over two townships
//! of two villages each, one rollup group per village. Loads them into a `Rollup` (timed), checks
//! that its answers equal `measures::measures` over the same summaries, then times each query
//! `--repeat` times (p50/p99) beside the scan, and single updates.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, ensure};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use clap::Parser;
use fengqiao_bench::{Timings, print_run_header};
use fengqiao_case::ImportedCases;
use fengqiao_case::appending::{append, register};
use fengqiao_case::authority::StandaloneOffice;
use fengqiao_case::lifecycle::NewEvent;
use fengqiao_case::measures::measures;
use fengqiao_case::rollup::Rollup;
use fengqiao_case::signature::NodeSigner;
use fengqiao_case::summary::summarize;
use fengqiao_case::{
    CaseHeader, CaseSummary, Category, DirectiveState, DirectiveStatus, EventKind, ImportRow,
    Limits, WarningThresholds,
};
use fengqiao_samples::{SampleVillage, sample_ledger};

#[derive(Debug, Parser)]
#[command(about = "Benchmark Fengqiao's stats: incremental rollup against a scan of every case")]
struct Options {
    /// Cases in the rollup.
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    /// Times each query is run.
    #[arg(long, default_value_t = 200)]
    repeat: usize,
    /// Single updates timed.
    #[arg(long, default_value_t = 10_000)]
    updates: usize,
    /// Seed of the sample ledger.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Days of registrations before `now`.
    #[arg(long, default_value_t = 730)]
    days: i64,
}

/// Two townships of two villages each; a village's region code is also its rollup group.
const VILLAGES: [(&str, &str); 4] = [
    ("430702001001", "芦荻山村"),
    ("430702001002", "丹洲村"),
    ("430702002001", "河洑村"),
    ("430702002002", "太阳山村"),
];

/// The bench derives states and never verifies signatures, so it spends no time signing.
struct UnsignedBench;

impl NodeSigner for UnsignedBench {
    fn public_key(&self) -> [u8; 32] {
        [7; 32]
    }

    fn sign(&self, _message: &[u8]) -> [u8; 64] {
        [0; 64]
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    print_run_header();
    let now = Utc
        .with_ymd_and_hms(2026, 11, 20, 2, 30, 0)
        .single()
        .context("bench instant")?;
    let start = now - chrono::Duration::days(options.days);

    let villages: Vec<SampleVillage> = VILLAGES
        .iter()
        .map(|(region_code, name)| SampleVillage {
            region_code: (*region_code).to_owned(),
            name: (*name).to_owned(),
        })
        .collect();
    let rows = sample_ledger(options.seed, options.cases, &villages, start, now);
    let derive_started = Instant::now();
    let summaries = summarize_rows(rows)?;
    println!(
        "derived {} summaries through register + append + summarize in {:.1} s (not measured)",
        summaries.len(),
        derive_started.elapsed().as_secs_f64()
    );
    println!("statuses: {:?}", status_counts(&summaries));

    let thresholds = WarningThresholds::default();
    let build_started = Instant::now();
    let mut rollup = Rollup::new(thresholds.clone());
    for summary in &summaries {
        rollup.update(&summary.number, &summary.region_code, Some(summary));
    }
    let build = build_started.elapsed();
    println!(
        "rollup built from {} cases in {:.1} ms ({:.2} us per case)",
        rollup.case_count(),
        build.as_secs_f64() * 1e3,
        build.as_secs_f64() * 1e6 / summaries.len().max(1) as f64
    );

    let month_from = now - chrono::Duration::days(30);
    let year_from = now - chrono::Duration::days(365);
    let township: [&str; 2] = [VILLAGES[0].0, VILLAGES[1].0];
    let category = Category::WageArrears;

    // The rollup must answer what the scan answers before its speed means anything.
    for (from, to) in [
        (None, None),
        (Some(month_from), Some(now)),
        (Some(year_from), None),
    ] {
        for judged_at in [now, now + chrono::Duration::days(20)] {
            let expected = measures(
                &summaries,
                ImportedCases::Include,
                from,
                to,
                judged_at,
                &thresholds,
            );
            let found = rollup.measures(None, None, ImportedCases::Include, from, to, judged_at);
            ensure!(found == expected, "rollup differs from the scan");
        }
    }
    let township_cases = summaries
        .iter()
        .filter(|summary| township.contains(&summary.region_code.as_str()));
    ensure!(
        rollup.measures(
            Some(&township),
            None,
            ImportedCases::Include,
            None,
            None,
            now
        ) == measures(
            township_cases,
            ImportedCases::Include,
            None,
            None,
            now,
            &thresholds
        ),
        "township rollup differs from the scan"
    );
    let counts = rollup
        .measures(None, None, ImportedCases::Include, None, None, now)
        .total;
    println!(
        "checked equal to measures::measures; at now: {} cases, {} approaching, {} overdue, {} seriously overdue, {} open directives",
        counts.cases,
        counts.approaching,
        counts.overdue,
        counts.seriously_overdue,
        counts.directives_open
    );

    let repeat = options.repeat.max(1);
    let mut rows: Vec<(String, Timings)> = Vec::new();
    let mut time = |name: &str, runs: usize, mut work: Box<dyn FnMut(usize) -> u64 + '_>| {
        let mut samples = Vec::with_capacity(runs);
        let mut checksum = 0u64;
        for run in 0..runs {
            let started = Instant::now();
            checksum = checksum.wrapping_add(work(run));
            samples.push(started.elapsed());
        }
        std::hint::black_box(checksum);
        rows.push((name.to_owned(), Timings::of(samples)));
    };
    // Each run judges at a slightly different `now`, so nothing could be reused between runs.
    let at = |run: usize| now + chrono::Duration::milliseconds(run as i64);
    time(
        "rollup: subtree, no period",
        repeat,
        Box::new(|run| {
            rollup
                .measures(None, None, ImportedCases::Include, None, None, at(run))
                .total
                .cases
        }),
    );
    time(
        "rollup: subtree, 30-day period",
        repeat,
        Box::new(|run| {
            rollup
                .measures(
                    None,
                    None,
                    ImportedCases::Include,
                    Some(month_from),
                    Some(now),
                    at(run),
                )
                .total
                .cases
        }),
    );
    time(
        "rollup: subtree, 365-day period",
        repeat,
        Box::new(|run| {
            rollup
                .measures(
                    None,
                    None,
                    ImportedCases::Include,
                    Some(year_from),
                    Some(now),
                    at(run),
                )
                .total
                .cases
        }),
    );
    time(
        "rollup: subtree, one category",
        repeat,
        Box::new(|run| {
            rollup
                .measures(
                    None,
                    Some(category),
                    ImportedCases::Include,
                    None,
                    None,
                    at(run),
                )
                .total
                .cases
        }),
    );
    time(
        "rollup: one township, 30-day period",
        repeat,
        Box::new(|run| {
            rollup
                .measures(
                    Some(&township),
                    None,
                    ImportedCases::Include,
                    Some(month_from),
                    Some(now),
                    at(run),
                )
                .total
                .cases
        }),
    );
    time(
        "rollup: by_group, no period",
        repeat,
        Box::new(|run| {
            rollup
                .by_group(None, ImportedCases::Include, None, None, at(run))
                .values()
                .map(|set| set.cases)
                .sum()
        }),
    );
    time(
        "rollup: by_group, 30-day period",
        repeat,
        Box::new(|run| {
            rollup
                .by_group(
                    None,
                    ImportedCases::Include,
                    Some(month_from),
                    Some(now),
                    at(run),
                )
                .values()
                .map(|set| set.cases)
                .sum()
        }),
    );
    time(
        "scan: measures::measures, no period",
        repeat,
        Box::new(|run| {
            measures(
                &summaries,
                ImportedCases::Include,
                None,
                None,
                at(run),
                &thresholds,
            )
            .total
            .cases
        }),
    );
    time(
        "scan: measures::measures, 30-day period",
        repeat,
        Box::new(|run| {
            measures(
                &summaries,
                ImportedCases::Include,
                Some(month_from),
                Some(now),
                at(run),
                &thresholds,
            )
            .total
            .cases
        }),
    );

    // Single updates: a case gets a directive (and loses it on its next turn), or moves village.
    let update_count = options.updates.max(1);
    let mut changed: Vec<CaseSummary> = summaries.clone();
    let mut update_samples = Vec::with_capacity(update_count);
    let mut move_samples = Vec::with_capacity(update_count);
    for run in 0..update_count {
        let index = (run * 7919) % changed.len().max(1);
        let Some(summary) = changed.get_mut(index) else {
            break;
        };
        if summary.directives.iter().any(|d| d.id == "bench") {
            summary.directives.retain(|d| d.id != "bench");
        } else {
            summary.directives.push(bench_directive(now, run));
        }
        let started = Instant::now();
        rollup.update(&summary.number, &summary.region_code, Some(summary));
        update_samples.push(started.elapsed());

        let other_village = VILLAGES[run % VILLAGES.len()].0;
        let started = Instant::now();
        rollup.update(&summary.number, other_village, Some(summary));
        move_samples.push(started.elapsed());
        rollup.update(&summary.number, &summary.region_code, Some(summary));
    }
    rows.push((
        "rollup: update (one case changed)".to_owned(),
        Timings::of(update_samples),
    ));
    rows.push((
        "rollup: update (case moves group)".to_owned(),
        Timings::of(move_samples),
    ));
    let expected = measures(
        &changed,
        ImportedCases::Include,
        None,
        None,
        now,
        &thresholds,
    );
    ensure!(
        rollup.measures(None, None, ImportedCases::Include, None, None, now) == expected,
        "rollup differs from the scan after the updates"
    );

    println!();
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        format!("{} cases, 4 groups", summaries.len()),
        "p50 ms",
        "p99 ms",
        "runs"
    );
    for (name, timings) in &rows {
        println!(
            "{:<44} {:>10.4} {:>10.4} {:>8}",
            name, timings.p50_ms, timings.p99_ms, timings.runs
        );
    }
    let slowest_query = rows
        .iter()
        .filter(|(name, _)| name.starts_with("rollup:") && !name.contains("update"))
        .map(|(_, timings)| timings.p99_ms)
        .fold(0.0, f64::max);
    println!(
        "slowest rollup query p99 {slowest_query:.3} ms (target < 50 ms: {})",
        if slowest_query < 50.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

fn bench_directive(now: DateTime<Utc>, run: usize) -> DirectiveState {
    DirectiveState {
        id: "bench".to_owned(),
        issuer_node: "node-county".to_owned(),
        issued_by: "县信访局".to_owned(),
        issued_at: now,
        target_node: "node-village".to_owned(),
        requirement: "限期化解".to_owned(),
        due: now + chrono::Duration::hours((run % 400) as i64 - 200),
        listed: false,
        status: DirectiveStatus::Issued,
        reports: Vec::new(),
        crossed_off_at: None,
    }
}

/// Takes every row through the lifecycle as an import would (without the store), on every core.
fn summarize_rows(rows: Vec<ImportRow>) -> anyhow::Result<Vec<CaseSummary>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk_size = rows.len().div_ceil(threads).max(1);
    let results: Vec<anyhow::Result<Vec<CaseSummary>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(chunk_size)
            .map(|chunk| scope.spawn(move || chunk.iter().map(summarize_row).collect()))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a deriving thread panicked")))
            })
            .collect()
    });
    let mut summaries = Vec::with_capacity(rows.len());
    for result in results {
        summaries.extend(result?);
    }
    Ok(summaries)
}

fn summarize_row(row: &ImportRow) -> anyhow::Result<CaseSummary> {
    let limits = Limits::default();
    let registered_at = row.case.registered_at.context("sample row without time")?;
    let number = format!(
        "{}-{}-{:06}",
        row.case.location.region_code,
        registered_at.year(),
        row.line
    );
    let header = CaseHeader {
        number: number.clone(),
        channel: row.case.channel,
        petitioners: row.case.petitioners.clone(),
        headcount: row.case.headcount,
        respondent: row.case.respondent.clone(),
        category: row.case.category,
        matter_type: row.case.matter_type,
        litigation_related: row.case.litigation_related,
        summary: row.case.summary.clone(),
        location: row.case.location.clone(),
        ownership: row.case.ownership.clone(),
    };
    let new_event = |index: usize, kind: EventKind, at: DateTime<Utc>| NewEvent {
        id: format!("{:06}{index:04}", row.line),
        kind,
        at,
        node: "node-bench".to_owned(),
        operator: "导入".to_owned(),
        hlc: Default::default(),
        imported: None,
        backdated_reason: None,
    };
    let (mut document, _, mut state) = register(
        header,
        new_event(
            0,
            EventKind::Register {
                header: None,
                policy_version: 0,
            },
            registered_at,
        ),
        &[7; 16],
        &fengqiao_case::policy::PolicyBook::fixed(limits.clone()),
        &UnsignedBench,
    )
    .with_context(|| format!("line {} refused at registration", row.line))?;
    for (index, event) in row.history.iter().enumerate() {
        let at = event.at.context("sample event without time")?;
        let (_, next, _) = append(
            &mut document,
            new_event(index + 1, event.kind.clone(), at),
            &limits,
            &UnsignedBench,
            // One office registers and handles every sample case, with nobody above it.
            &StandaloneOffice {
                node: "node-bench".to_owned(),
                region_code: row.case.location.region_code.clone(),
            },
        )
        .with_context(|| format!("line {} refused {}", row.line, event.kind.name()))?;
        state = next;
    }
    let header = document.header().context("read header")?;
    Ok(summarize(&header, &state))
}

fn status_counts(summaries: &[CaseSummary]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for summary in summaries {
        *counts.entry(format!("{:?}", summary.status)).or_default() += 1;
    }
    counts
}
