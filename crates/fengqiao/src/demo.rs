//! `fengqiao demo`: a whole federation on this machine (1 county, 2 townships, 4 villages: real
//! nodes, real QUIC on 127.0.0.1, sled in their own node directories), seeded with realistic cases
//! through each office's own API; one township's link is cut while its villages keep registering,
//! then healed, and the county's counts are shown converging. Then it serves until Ctrl-C.
//!
//! The seven nodes run in this process (one `api::serve` each on a shared runtime) but are
//! created and configured exactly as operators create theirs (`init`, `admit`, `join`), so each
//! node directory can be inspected or run with the normal commands.

mod convergence;
mod offices;
mod scenarios;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::Days;
use clap::Args;
use fengqiao_case::{Measures, NodeInfo};
use fengqiao_samples::{SampleVillage, sample_ledger};

use crate::cli::global::GlobalOptions;
use crate::cli::output::emit;
use crate::cli::render;
use crate::cli::render::new_table;
use crate::import::{ImportTotals, upload_in_batches};

use convergence::{CutReport, Tally};
use offices::{COUNTY, Office, Servers};
use scenarios::ScenarioCase;

/// The demo county: 常德市武陵区.
pub const DEMO_COUNTY_CODE: &str = "430702";
pub const DEMO_COUNTY_NAME: &str = "常德市武陵区社会矛盾纠纷调处化解中心";

/// First API port: office `i` serves its API on 7370 + i and QUIC on 7380 + i.
const DEFAULT_BASE_PORT: u16 = 7370;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Office i serves its API on port BASE+i and QUIC on BASE+10+i (127.0.0.1); a taken port is
    /// replaced by a free one; 0 uses free ports throughout (another program may take one between
    /// the choice and the bind: a base below 32768 avoids the ports the system hands out)
    #[arg(long, value_name = "BASE", default_value_t = DEFAULT_BASE_PORT)]
    pub base_port: u16,
    /// How many sample cases to seed, over all offices (most at the villages)
    #[arg(long = "cases", value_name = "N", default_value_t = 200)]
    pub case_count: usize,
    /// Seed of the sample generator (same seed, same cases)
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Exit after the cut and the heal instead of serving until Ctrl-C
    #[arg(long)]
    pub no_serve: bool,
}

/// Villages and communities of the demo county, with 12-digit codes under 430702.
pub fn demo_villages() -> Vec<SampleVillage> {
    [
        ("430702001001", "芦荻山乡芦荻山村"),
        ("430702001002", "芦荻山乡新坪村"),
        ("430702001003", "芦荻山乡新河村"),
        ("430702001004", "芦荻山乡桃花村"),
        ("430702002001", "丹洲乡丹洲村"),
        ("430702002002", "丹洲乡白鹤山村"),
        ("430702003001", "东江街道东江社区"),
        ("430702003002", "东江街道南坪岗社区"),
        ("430702004001", "芙蓉街道芙蓉社区"),
        ("430702004002", "穿紫河街道穿紫河社区"),
        ("430702005001", "长庚街道长庚社区"),
        ("430702005002", "白马湖街道白马湖社区"),
    ]
    .into_iter()
    .map(|(region_code, name)| SampleVillage {
        region_code: region_code.to_owned(),
        name: name.to_owned(),
    })
    .collect()
}

pub fn run(args: DemoArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let began = Instant::now();
    // Without --dir the directory is the demo's own, removed when it exits (README).
    let (dir, temporary) = match &global.dir {
        Some(dir) => (dir.clone(), false),
        None => (fresh_demo_dir()?, true),
    };
    let quiet = global.json;
    let (offices, reused) = offices::prepare(&dir, args.base_port)?;
    // The script acts as its own account at every office (FENGQIAO_USER is for the commands
    // people type afterwards).
    let operator = offices::DEMO_SCRIPT_LOGIN.to_owned();
    let mut servers = Servers::new(offices.len(), operator)?;
    let report = match demonstrate(&args, &offices, &mut servers, quiet, reused) {
        Ok(report) => report,
        Err(error) => {
            // The nodes hold their stores open; close them before reporting.
            if let Err(stop_error) = servers.stop_all() {
                tracing::warn!(error = %format!("{stop_error:#}"), "a demo node did not stop cleanly");
            }
            if servers.interrupted() {
                // The nodes stopping under the demo's feet is what made it fail: say so instead.
                bail!(
                    "interrupted before the demo finished; its node directories are in {}",
                    dir.display()
                );
            }
            return Err(error);
        }
    };
    if quiet {
        crate::cli::output::print_json(&report.json(&dir, &offices, temporary))?;
    } else {
        emit(render::stats_text(&report.county_measures))?;
        emit(guide(
            &dir,
            &offices,
            &report,
            args.no_serve,
            temporary,
            began,
        ))?;
    }
    if args.no_serve {
        servers.stop_all()?;
    } else {
        eprintln!("serving the 7 nodes until Ctrl-C …");
        servers.serve_until_interrupted()?;
    }
    if temporary {
        // Every node has stopped and closed its store: nothing holds the directory.
        std::fs::remove_dir_all(&dir).with_context(|| {
            format!(
                "cannot remove the temporary demo directory {}",
                dir.display()
            )
        })?;
    }
    Ok(())
}

/// What the demo did, for the closing summary.
struct DemoReport {
    seeded: Vec<ImportTotals>,
    scenario_cases: Vec<ScenarioCase>,
    cut: CutReport,
    county_measures: Measures,
}

impl DemoReport {
    fn json(&self, dir: &Path, offices: &[Office], temporary: bool) -> serde_json::Value {
        let offices: Vec<serde_json::Value> = offices
            .iter()
            .zip(&self.seeded)
            .map(|(office, seeded)| {
                serde_json::json!({
                    "name": office.name,
                    "tier": crate::config::tier_name(office.tier),
                    "region_code": office.region,
                    "node_id": office.node_id,
                    "dir": office.dir,
                    "api": office.api.to_string(),
                    "quic": office.quic.to_string(),
                    "seeded": seeded.imported,
                })
            })
            .collect();
        let scenarios: Vec<&str> = self
            .scenario_cases
            .iter()
            .map(|case| case.number.as_str())
            .collect();
        serde_json::json!({
            "dir": dir,
            "dir_removed_at_exit": temporary,
            "offices": offices,
            "scenario_cases": scenarios,
            "cut": self.cut,
            "county_measures": self.county_measures,
        })
    }
}

fn demonstrate(
    args: &DemoArgs,
    offices: &[Office],
    servers: &mut Servers,
    quiet: bool,
    reused: bool,
) -> anyhow::Result<DemoReport> {
    let say = |text: String| if quiet { Ok(()) } else { emit(text) };
    // Parents first, so that each child finds its parent up when it first dials.
    for (index, office) in offices.iter().enumerate() {
        servers.check_interrupted()?;
        servers.start(index, office)?;
    }
    say(format!("\n{}", offices_table(offices, servers)))?;

    let mut seeded = Vec::with_capacity(offices.len());
    for (index, office) in offices.iter().enumerate() {
        servers.check_interrupted()?;
        let count = sample_share(args.case_count, index, offices);
        seeded.push(
            seed_office(index, office, offices, servers, count, args.seed)
                .with_context(|| format!("seed the sample cases of {}", office.name))?,
        );
    }
    let scenario_cases =
        scenarios::play(offices, servers).context("play the scripted scenarios")?;
    say(format!(
        "\nSeeded {} sample case(s){} and {} scripted case(s), each through its own office's API.",
        seeded.iter().map(|totals| totals.imported).sum::<u64>(),
        if reused {
            " (offices that held cases were left as they were)"
        } else {
            ""
        },
        scenario_cases.len()
    ))?;

    let mut tally = Tally::new(offices.len());
    convergence::wait_converged(offices, servers, &mut tally, None)
        .context("the county did not receive the seeded cases")?;
    say(format!(
        "\nBefore the cut, the county holds every case registered below it:\n{}",
        tally.table(offices, servers)
    ))?;

    let cut = convergence::cut_and_heal(offices, servers, &mut tally, args.seed, quiet)?;
    let county_measures: Measures = servers.client(COUNTY).get_as("/api/stats", &[])?;
    Ok(DemoReport {
        seeded,
        scenario_cases,
        cut,
        county_measures,
    })
}

/// How many of the `total` sample cases office `index` registers: villages carry most of the
/// work (weight 4 each), townships and the county see walk-ins (1 each, the county 2 and the
/// remainder).
fn sample_share(total: usize, index: usize, offices: &[Office]) -> usize {
    let weight = |office: &Office| match office.tier {
        fengqiao_case::Tier::Village => 4,
        fengqiao_case::Tier::Township => 1,
        _ => 2,
    };
    let all: usize = offices.iter().map(weight).sum();
    let share = |office: &Office| total * weight(office) / all.max(1);
    if index == COUNTY {
        let others: usize = offices
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != COUNTY)
            .map(|(_, office)| share(office))
            .sum();
        total - others
    } else {
        share(&offices[index])
    }
}

/// Import `count` sample cases at one office through its API, unless it already holds cases.
fn seed_office(
    index: usize,
    office: &Office,
    offices: &[Office],
    servers: &Servers,
    count: usize,
    seed: u64,
) -> anyhow::Result<ImportTotals> {
    let client = servers.client(index);
    let node: NodeInfo = client.get_as("/api/health", &[])?;
    if node.case_count > 0 || count == 0 {
        // Sample rows carry no numbers (the node assigns them), so importing them again would
        // register every case twice: a reused office keeps what it has.
        return Ok(ImportTotals::default());
    }
    let now = crate::wall_clock::now();
    let start = now.checked_sub_days(Days::new(180)).unwrap_or(now);
    let villages = office.sample_villages(offices);
    let rows = sample_ledger(
        seed.wrapping_add(index as u64),
        count,
        &villages,
        start,
        now,
    );
    let import_id = format!("demo-seed-{seed}-{index}");
    let reports = upload_in_batches(client, &rows, &import_id, 100, false, "seeding")
        .context("seed the sample cases through POST /api/import")?;
    let totals = ImportTotals::count(&reports);
    if totals.rejected > 0 {
        for report in reports
            .iter()
            .filter(|report| report.error.is_some())
            .take(5)
        {
            eprintln!(
                "sample row {} rejected: {}",
                report.line,
                report.error.as_deref().unwrap_or_default()
            );
        }
        bail!("{} sample case(s) were rejected", totals.rejected);
    }
    Ok(totals)
}

/// A new directory under the system temp dir, for a demo run without `--dir`.
fn fresh_demo_dir() -> anyhow::Result<PathBuf> {
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let dir = std::env::temp_dir().join(format!("fengqiao-demo-{}", hex::encode(suffix)));
    Ok(dir)
}

/// The name of an office's node directory under the demo directory.
fn dir_name(office: &Office) -> String {
    office
        .dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn offices_table(offices: &[Office], servers: &Servers) -> String {
    let mut table = new_table([
        "office 办公室",
        "tier",
        "region",
        "API",
        "QUIC",
        "node id",
        "directory",
    ]);
    for (index, office) in offices.iter().enumerate() {
        let indent = "  ".repeat(match office.tier {
            fengqiao_case::Tier::Village => 2,
            fengqiao_case::Tier::Township => 1,
            _ => 0,
        });
        table.add_row([
            format!("{indent}{}", office.name),
            crate::config::tier_name(office.tier).to_owned(),
            office.region.clone(),
            servers.client(index).base_url().to_owned(),
            office.quic.to_string(),
            render::short_node(&office.node_id),
            dir_name(office),
        ]);
    }
    table.to_string()
}

fn guide(
    dir: &Path,
    offices: &[Office],
    report: &DemoReport,
    no_serve: bool,
    temporary: bool,
    began: Instant,
) -> String {
    let county = &offices[COUNTY];
    let cut_village = offices
        .iter()
        .find(|office| office.parent == Some(offices::CUT_TOWNSHIP));
    let mut lines = vec![
        String::new(),
        format!(
            "Demo federation of {DEMO_COUNTY_NAME} ({DEMO_COUNTY_CODE}): {} offices, ready in \
             {:.1} s.",
            offices.len(),
            began.elapsed().as_secs_f64()
        ),
        format!("demo directory: {}", dir.display()),
    ];
    if no_serve && temporary {
        lines.push(
            "The nodes are stopped and their temporary directory is removed: give --dir DIR to \
             keep the offices and run them again."
                .to_owned(),
        );
        return lines.join("\n");
    }
    if no_serve {
        lines.push(format!(
            "The nodes are stopped. Run any of them again with: fengqiao run {}",
            county.dir.display()
        ));
    } else {
        lines.push(format!(
            "The 7 nodes are serving (county API: http://{}; OpenAPI at /api/openapi.json).",
            county.api
        ));
        if temporary {
            lines.push(
                "The directory is temporary: it is removed when the demo stops (give --dir DIR \
                 to keep it)."
                    .to_owned(),
            );
        }
    }
    lines.push(String::new());
    lines.push(if no_serve {
        "Inspect a node once it runs again, e.g.:".to_owned()
    } else {
        "Try, in another terminal (each node answers at its own directory):".to_owned()
    });
    lines.push(
        "Sign in at any office's console (工作台: open its URL below in a browser) or its API \
         (POST /api/session) with these demo accounts:"
            .to_owned(),
    );
    for (login, display_name, password, role) in offices::DEMO_PEOPLE {
        lines.push(format!(
            "  {login} / {password}    {display_name} ({})",
            role.name()
        ));
    }
    for office in offices {
        lines.push(format!("  http://{}/  {}", office.api, office.name));
    }
    let at = |office: &Office| {
        format!(
            "fengqiao --dir {} --as {}",
            office.dir.display(),
            offices::DEMO_SCRIPT_LOGIN
        )
    };
    lines.push(format!("  {} stats", at(county)));
    lines.push(format!("  {} peers", at(county)));
    lines.push(format!("  {} case list --overdue", at(county)));
    if let Some(village) = cut_village {
        lines.push(format!("  {} case list", at(village)));
        lines.push(format!("  {} peers", at(village)));
    }
    if let Some(number) = report.cut.registered_during_cut.first() {
        lines.push(format!(
            "  {} case show {number}    # registered during the cut",
            at(county)
        ));
    }
    for case in &report.scenario_cases {
        lines.push(format!(
            "  {} case show {}    # {}",
            at(&offices[case.office]),
            case.number,
            case.title
        ));
    }
    lines.push(format!("  {} directive list", at(county)));
    lines.push(format!(
        "  {} case note {} --text \"电话回访\"",
        at(county),
        report
            .scenario_cases
            .first()
            .map(|case| case.number.as_str())
            .unwrap_or("NUMBER")
    ));
    lines.push("Other offices' directories:".to_owned());
    for office in offices.iter().skip(1) {
        lines.push(format!("  {}  {}", office.dir.display(), office.name));
    }
    lines.join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn demo_villages_are_twelve_digit_codes_in_the_county() {
        let villages = demo_villages();
        assert!(villages.len() >= 10);
        for village in &villages {
            assert_eq!(village.region_code.len(), 12);
            assert!(village.region_code.starts_with(DEMO_COUNTY_CODE));
        }
    }
}
