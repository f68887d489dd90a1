//! Node stats benchmark: `Node::stats` and `Node::stats_by_child` of a real county node holding `--cases` cases.
//!
//! Builds a county node directory (two townships of two villages each, the townships as its
//! configured children) and imports sample ledger rows through `Node::import` in batches (real
//! documents, signed events, the store's batch writes), with the rollup built first so that the
//! store's summary observer keeps it current through the import, and checks it against a scan.
//! Then reopens the node, times the open and the one scan that builds the rollup
//! (`Node::prepare_stats`, which the server runs once it is bound), checks the answers against
//! `measures::measures` over the stored summaries, and times each query `--repeat` times
//! (p50/p99) beside the scan the node did before.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, ensure};
use chrono::{DateTime, TimeZone, Utc};
use clap::Parser;
use fengqiao::config::{FederationOffice, FederationSection};
use fengqiao::service::{InitOptions, Node, StatsQuery, init_node};
use fengqiao_bench::{ImportTarget, Timings, import_sample_cases, print_run_header};
use fengqiao_case::measures::measures;
use fengqiao_case::model::roster::RosterMemberView;
use fengqiao_case::rollup::Rollup;
use fengqiao_case::{CaseSummary, Category, ImportedCases, Tier};
use fengqiao_samples::SampleVillage;

#[derive(Debug, Parser)]
#[command(about = "Benchmark a county node's stats and stats by child, answered from its rollup")]
struct Options {
    /// Cases the county node holds.
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    /// Times each rollup query is run.
    #[arg(long, default_value_t = 200)]
    repeat: usize,
    /// Times the scan of every stored summary is run (it takes about a second each).
    #[arg(long, default_value_t = 10)]
    scan_repeat: usize,
    /// Ledger rows per import batch.
    #[arg(long, default_value_t = 2_000)]
    batch: usize,
    /// Days of registrations before `now`.
    #[arg(long, default_value_t = 730)]
    days: i64,
    /// Build the node here and keep it (reused on the next run when it holds enough cases);
    /// by default a temporary directory, removed afterwards.
    #[arg(long, value_name = "DIR")]
    node_dir: Option<PathBuf>,
}

const OPERATOR: &str = "基准测试";
const COUNTY: &str = "430702";

/// (node id, name, region) of the county's two townships.
const TOWNSHIPS: [(&str, &str, &str); 2] = [
    ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01", "河洑镇", "430702001"),
    ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa02", "丹洲乡", "430702002"),
];

/// (node id, name, region, township node id) of their villages, as the roster would name them.
const VILLAGES: [(&str, &str, &str, &str); 4] = [
    (
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb01",
        "芦荻山村",
        "430702001001",
        TOWNSHIPS[0].0,
    ),
    (
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb02",
        "丹洲村",
        "430702001002",
        TOWNSHIPS[0].0,
    ),
    (
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb03",
        "河洑村",
        "430702002001",
        TOWNSHIPS[1].0,
    ),
    (
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb04",
        "太阳山村",
        "430702002002",
        TOWNSHIPS[1].0,
    ),
];

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    print_run_header();
    let now = Utc
        .with_ymd_and_hms(2026, 11, 20, 2, 30, 0)
        .single()
        .context("bench instant")?;
    let temporary = tempfile::tempdir().context("temporary directory")?;
    let dir = options
        .node_dir
        .clone()
        .unwrap_or_else(|| temporary.path().join("county"));
    build_county(&dir, &options, now)?;

    // Opening counts nothing; the server then has the node count every stored summary once
    // (`Node::prepare_stats`), the one scan a node makes.
    let open_started = Instant::now();
    let node = Node::open(&dir)?;
    let open = open_started.elapsed();
    let prepare_started = Instant::now();
    node.prepare_stats()
        .map_err(|error| anyhow::anyhow!("prepare stats: {error}"))?;
    let prepare = prepare_started.elapsed();
    let mut summaries: Vec<CaseSummary> = Vec::new();
    let scan_started = Instant::now();
    node.store()
        .for_each_summary(|summary| summaries.push(summary.clone()))?;
    let read_summaries = scan_started.elapsed();
    let build_started = Instant::now();
    let mut rollup = Rollup::new(node.config().warnings.clone());
    for summary in &summaries {
        rollup.update(&summary.number, &summary.region_code, Some(summary));
    }
    let build = build_started.elapsed();
    println!(
        "{} cases: Node::open {:.0} ms; then the rollup built at startup (Node::prepare_stats) \
         {:.0} ms, of which reading every summary about {:.0} ms and counting them {:.0} ms",
        summaries.len(),
        open.as_secs_f64() * 1e3,
        prepare.as_secs_f64() * 1e3,
        read_summaries.as_secs_f64() * 1e3,
        build.as_secs_f64() * 1e3
    );
    drop(rollup);

    let roster: Vec<RosterMemberView> = VILLAGES
        .iter()
        .map(|(node_id, name, region_code, township)| RosterMemberView {
            node_id: (*node_id).to_owned(),
            name: (*name).to_owned(),
            tier: Tier::Village,
            region_code: (*region_code).to_owned(),
            admitted_by: Some((*township).to_owned()),
            issued_at: now,
            revoked: false,
        })
        .collect();
    let thresholds = node.config().warnings.clone();
    let month = StatsQuery {
        from: Some(now - chrono::Duration::days(30)),
        to: Some(now),
        category: None,
        imported: ImportedCases::Include,
    };
    let whole = StatsQuery::default();
    let one_category = StatsQuery {
        category: Some(Category::WageArrears),
        ..StatsQuery::default()
    };

    // The answers must be the scan's before their speed means anything.
    for query in [&whole, &month, &one_category] {
        for judged_at in [now, now + chrono::Duration::days(20)] {
            let selected = summaries.iter().filter(|summary| {
                query
                    .category
                    .is_none_or(|wanted| summary.category == wanted)
            });
            let expected = measures(
                selected,
                ImportedCases::Include,
                query.from,
                query.to,
                judged_at,
                &thresholds,
            );
            let found = node
                .stats(judged_at, query)
                .map_err(|error| anyhow::anyhow!("stats: {error}"))?;
            ensure!(found == expected, "node stats differ from the scan");
            let breakdown = node
                .stats_by_child_among(judged_at, query, &roster)
                .map_err(|error| anyhow::anyhow!("stats by child: {error}"))?;
            ensure!(breakdown.total == expected.total, "breakdown total differs");
            for township in &breakdown.children {
                let in_township = summaries.iter().filter(|summary| {
                    summary.region_code.starts_with(&township.region_code)
                        && query
                            .category
                            .is_none_or(|wanted| summary.category == wanted)
                });
                ensure!(
                    township.measures
                        == measures(
                            in_township,
                            ImportedCases::Include,
                            query.from,
                            query.to,
                            judged_at,
                            &thresholds
                        )
                        .total,
                    "township {} differs from the scan",
                    township.region_code
                );
            }
        }
    }
    let breakdown = node
        .stats_by_child_among(now, &whole, &roster)
        .map_err(|error| anyhow::anyhow!("stats by child: {error}"))?;
    println!(
        "checked equal to measures::measures; {} cases: {}",
        breakdown.total.cases,
        breakdown
            .children
            .iter()
            .map(|township| {
                format!(
                    "{} {} ({})",
                    township.name.as_deref().unwrap_or("?"),
                    township.measures.cases,
                    township
                        .children
                        .iter()
                        .map(|village| format!(
                            "{} {}",
                            village.name.as_deref().unwrap_or("?"),
                            village.measures.cases
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    );

    let mut rows: Vec<(String, Timings)> = Vec::new();
    let mut time = |name: &str, runs: usize, work: &dyn Fn(usize) -> anyhow::Result<u64>| {
        let mut samples = Vec::with_capacity(runs);
        let mut checksum = 0u64;
        for run in 0..runs.max(1) {
            let started = Instant::now();
            checksum = checksum.wrapping_add(work(run)?);
            samples.push(started.elapsed());
        }
        std::hint::black_box(checksum);
        rows.push((name.to_owned(), Timings::of(samples)));
        Ok::<_, anyhow::Error>(())
    };
    // Each run judges at a slightly different `now`, so nothing could be reused between runs.
    let at = |run: usize| now + chrono::Duration::milliseconds(run as i64);
    let stats = |run: usize, query: &StatsQuery| -> anyhow::Result<u64> {
        node.stats(at(run), query)
            .map(|answer| answer.total.cases)
            .map_err(|error| anyhow::anyhow!("stats: {error}"))
    };
    let by_child = |run: usize, query: &StatsQuery| -> anyhow::Result<u64> {
        node.stats_by_child_among(at(run), query, &roster)
            .map(|answer| {
                answer
                    .children
                    .iter()
                    .map(|child| child.measures.cases)
                    .sum()
            })
            .map_err(|error| anyhow::anyhow!("stats by child: {error}"))
    };
    time("Node::stats, no period", options.repeat, &|run| {
        stats(run, &whole)
    })?;
    time("Node::stats, 30-day period", options.repeat, &|run| {
        stats(run, &month)
    })?;
    time("Node::stats, one category", options.repeat, &|run| {
        stats(run, &one_category)
    })?;
    time("Node::stats_by_child, no period", options.repeat, &|run| {
        by_child(run, &whole)
    })?;
    time(
        "Node::stats_by_child, 30-day period",
        options.repeat,
        &|run| by_child(run, &month),
    )?;
    time(
        "scan: every stored summary + measures",
        options.scan_repeat,
        &|run| {
            let mut all = Vec::new();
            node.store()
                .for_each_summary(|summary| all.push(summary.clone()))?;
            Ok(measures(
                &all,
                ImportedCases::Include,
                None,
                None,
                at(run),
                &thresholds,
            )
            .total
            .cases)
        },
    )?;

    println!();
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        format!("{} cases, county node", summaries.len()),
        "p50 ms",
        "p99 ms",
        "runs"
    );
    for (name, timings) in &rows {
        println!(
            "{:<44} {:>10.3} {:>10.3} {:>8}",
            name, timings.p50_ms, timings.p99_ms, timings.runs
        );
    }
    let slowest = rows
        .iter()
        .filter(|(name, _)| name.starts_with("Node::"))
        .map(|(_, timings)| timings.p99_ms)
        .fold(0.0, f64::max);
    println!(
        "slowest node query p99 {slowest:.3} ms (target < 50 ms: {})",
        if slowest < 50.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// A county node in `dir` with its two townships configured as children, holding at least
/// `options.cases` imported cases (an existing one with enough is reused).
fn build_county(dir: &Path, options: &Options, now: DateTime<Utc>) -> anyhow::Result<()> {
    if !dir.join("fengqiao.toml").exists() {
        init_node(
            dir,
            InitOptions {
                name: "武陵区信访局".to_owned(),
                tier: Tier::County,
                region_code: COUNTY.to_owned(),
                listen: None,
                parent: None,
                lan_names: Vec::new(),
            },
        )?;
        let mut config = fengqiao::config::load(dir)?;
        config.federation = Some(FederationSection {
            children: TOWNSHIPS
                .iter()
                .map(|(node_id, name, region_code)| FederationOffice {
                    node_id: (*node_id).to_owned(),
                    name: (*name).to_owned(),
                    region_code: (*region_code).to_owned(),
                    aliases: Vec::new(),
                    successor_of: None,
                })
                .collect(),
            ..FederationSection::default()
        });
        fengqiao::config::save(dir, &config)?;
    }
    let node = Node::open(dir)?;
    let villages: Vec<SampleVillage> = VILLAGES
        .iter()
        .map(|(_, name, region_code, _)| SampleVillage {
            region_code: (*region_code).to_owned(),
            name: (*name).to_owned(),
        })
        .collect();
    // Built before the import, so that the import's commits reach it through the observer.
    node.prepare_stats()
        .map_err(|error| anyhow::anyhow!("prepare stats: {error}"))?;
    let started = Instant::now();
    let already = node.store().case_count() as usize;
    import_sample_cases(
        &node,
        OPERATOR,
        &villages,
        ImportTarget {
            count: options.cases,
            batch: options.batch,
            days: options.days,
            now,
            first_seed: 2026 + already as u64,
        },
    )?;
    let imported = node.store().case_count() as usize - already;
    if imported > 0 {
        println!(
            "imported {imported} cases through Node::import in {:.1} s (not measured)",
            started.elapsed().as_secs_f64()
        );
    }
    let mut summaries = Vec::new();
    node.store()
        .for_each_summary(|summary| summaries.push(summary.clone()))?;
    let kept_current = node
        .stats(now, &StatsQuery::default())
        .map_err(|error| anyhow::anyhow!("stats: {error}"))?;
    ensure!(
        kept_current
            == measures(
                &summaries,
                ImportedCases::Include,
                None,
                None,
                now,
                &node.config().warnings
            ),
        "the rollup kept current through the import differs from the scan"
    );
    Ok(())
}
