//! The cut and the heal: one township goes offline while its villages keep registering cases
//! (they queue durably), then comes back; the county's counts are watched until it holds every
//! case registered below it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Days;
use fengqiao_case::{CaseListItem, CaseView, RegisterCase, Tier};
use fengqiao_samples::sample_ledger;

use crate::cli::federation::peers_text;
use crate::cli::output::emit;
use crate::cli::render::new_table;
use crate::client::NodeClient;
use crate::federation::PeerView;

use super::offices::{COUNTY, CUT_TOWNSHIP, Office, Servers};

/// Cases each village registers while the township is cut off, one round at a time.
const ROUNDS_DURING_CUT: usize = 3;
/// Pause between rounds, so the registrations spread over the cut as a day's would.
const PAUSE_BETWEEN_ROUNDS: Duration = Duration::from_millis(300);
/// Longest the demo waits for the county to hold everything registered below it.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The case numbers of every case an office holds.
fn numbers_at(client: &NodeClient) -> anyhow::Result<BTreeSet<String>> {
    let items: Vec<CaseListItem> = client.get_as("/api/cases", &[])?;
    Ok(items.into_iter().map(|item| item.summary.number).collect())
}

/// What each office below the county registered, and how much of it the county holds.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Per office (same indexes as the offices), the numbers it registered itself. An office
    /// that is down keeps what it was last seen to hold.
    registered: Vec<BTreeSet<String>>,
    county: BTreeSet<String>,
}

impl Tally {
    pub fn new(office_count: usize) -> Tally {
        Tally {
            registered: vec![BTreeSet::new(); office_count],
            county: BTreeSet::new(),
        }
    }

    /// Read every running office's cases again.
    fn refresh(&mut self, offices: &[Office], servers: &Servers) -> anyhow::Result<()> {
        for (index, office) in offices.iter().enumerate() {
            if !servers.is_running(index) {
                continue;
            }
            let numbers = numbers_at(servers.client(index))
                .with_context(|| format!("list the cases of {}", office.name))?;
            if index == COUNTY {
                self.county = numbers;
            } else {
                let prefix = office.number_prefix();
                self.registered[index] = numbers
                    .into_iter()
                    .filter(|number| number.starts_with(&prefix))
                    .collect();
            }
        }
        Ok(())
    }

    fn missing_at_county<'t>(&'t self, offices: &'t [Office]) -> impl Iterator<Item = &'t String> {
        offices
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != COUNTY)
            .flat_map(|(index, _)| self.registered[index].iter())
            .filter(|number| !self.county.contains(*number))
    }

    fn registered_below(&self) -> usize {
        self.registered.iter().map(BTreeSet::len).sum()
    }

    fn at_county_of(&self, index: usize) -> usize {
        self.registered[index]
            .iter()
            .filter(|number| self.county.contains(*number))
            .count()
    }

    /// Per office below the county: registered there, held by the county, missing there.
    pub fn table(&self, offices: &[Office], servers: &Servers) -> String {
        let mut table = new_table([
            "office 办公室",
            "region",
            "link up",
            "registered there 本级登记",
            "at the county 区已收到",
            "missing 未到",
        ]);
        for (index, office) in offices.iter().enumerate().skip(1) {
            let registered = self.registered[index].len();
            let at_county = self.at_county_of(index);
            let indent = if office.tier == Tier::Village {
                "  "
            } else {
                ""
            };
            table.add_row([
                format!("{indent}{}", office.name),
                office.region.clone(),
                // A link is up while both ends run: a village under the stopped township is cut
                // off too, though its own node keeps working.
                if servers.is_running(index)
                    && office
                        .parent
                        .is_none_or(|parent| servers.is_running(parent))
                {
                    "up".to_owned()
                } else {
                    "DOWN".to_owned()
                },
                registered.to_string(),
                at_county.to_string(),
                (registered - at_county).to_string(),
            ]);
        }
        let registered = self.registered_below();
        let missing = self.missing_at_county(offices).count();
        table.add_row([
            "all below the county".to_owned(),
            String::new(),
            String::new(),
            registered.to_string(),
            (registered - missing).to_string(),
            missing.to_string(),
        ]);
        table.to_string()
    }
}

/// One line of the convergence table: how far the county had got, and when.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConvergenceStep {
    pub after_ms: u64,
    pub registered_below: usize,
    pub at_county: usize,
}

/// Poll until the county holds every case registered below it; returns the steps at which the
/// county's count changed.
pub fn wait_converged(
    offices: &[Office],
    servers: &Servers,
    tally: &mut Tally,
    only_below: Option<&[usize]>,
) -> anyhow::Result<Vec<ConvergenceStep>> {
    let started = Instant::now();
    let mut steps: Vec<ConvergenceStep> = Vec::new();
    loop {
        servers.check_interrupted()?;
        tally.refresh(offices, servers)?;
        let missing: Vec<&String> = tally
            .missing_at_county(offices)
            .filter(|number| {
                only_below.is_none_or(|watched| {
                    watched
                        .iter()
                        .any(|index| number.starts_with(&offices[*index].number_prefix()))
                })
            })
            .collect();
        let registered = tally.registered_below();
        let step = ConvergenceStep {
            after_ms: started.elapsed().as_millis() as u64,
            registered_below: registered,
            at_county: registered - tally.missing_at_county(offices).count(),
        };
        if steps
            .last()
            .is_none_or(|last| last.at_county != step.at_county)
        {
            steps.push(step);
        }
        if missing.is_empty() {
            return Ok(steps);
        }
        if started.elapsed() > CONVERGENCE_TIMEOUT {
            let examples: Vec<&str> = missing
                .iter()
                .take(5)
                .map(|number| number.as_str())
                .collect();
            bail!(
                "the county did not converge within {} s: {} case(s) registered below it are \
                 still missing there (e.g. {}); see `fengqiao peers` at each node, and run the \
                 demo with -v for the federation's log",
                CONVERGENCE_TIMEOUT.as_secs(),
                missing.len(),
                examples.join(", ")
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn steps_table(steps: &[ConvergenceStep]) -> String {
    let mut table = new_table([
        "after heal",
        "registered below 乡村登记",
        "at the county 区已收到",
        "missing 未到",
    ]);
    for step in steps {
        table.add_row([
            format!("{:.1} s", step.after_ms as f64 / 1000.0),
            step.registered_below.to_string(),
            step.at_county.to_string(),
            (step.registered_below - step.at_county).to_string(),
        ]);
    }
    table.to_string()
}

/// Fresh registrations for `office`'s village, as its operators would type them in today.
fn walk_ins(office: &Office, offices: &[Office], seed: u64, count: usize) -> Vec<RegisterCase> {
    let now = crate::wall_clock::now();
    let yesterday = now.checked_sub_days(Days::new(1)).unwrap_or(now);
    sample_ledger(
        seed,
        count,
        &office.sample_villages(offices),
        yesterday,
        now,
    )
    .into_iter()
    .map(|row| RegisterCase {
        number: None,
        registered_at: None,
        ..row.case
    })
    .collect()
}

/// What the cut showed, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CutReport {
    pub township: String,
    /// Numbers registered at the cut township's villages while it was down.
    pub registered_during_cut: Vec<String>,
    pub convergence: Vec<ConvergenceStep>,
}

fn peers_of(client: &NodeClient) -> anyhow::Result<String> {
    let peers: Vec<PeerView> = client.get_as("/api/peers", &[])?;
    Ok(peers_text(&peers))
}

/// Take the township offline, keep registering at every village, show the links and the counts,
/// bring the township back and watch the county converge.
pub fn cut_and_heal(
    offices: &[Office],
    servers: &mut Servers,
    tally: &mut Tally,
    seed: u64,
    quiet: bool,
) -> anyhow::Result<CutReport> {
    let township = &offices[CUT_TOWNSHIP];
    let say = |text: String| if quiet { Ok(()) } else { emit(text) };
    say(format!(
        "\n== The cut: {} ({}) goes offline. Its node stops, so its link to the county and its \
         villages' links to it are down; the villages keep registering and queue what they \
         register. ==",
        township.name, township.region
    ))?;
    servers
        .stop(CUT_TOWNSHIP)
        .context("stop the cut township")?;

    let villages: Vec<usize> = offices
        .iter()
        .enumerate()
        .filter(|(_, office)| office.tier == Tier::Village)
        .map(|(index, _)| index)
        .collect();
    let mut pending: Vec<(usize, Vec<RegisterCase>)> = villages
        .iter()
        .map(|&index| {
            let cases = walk_ins(
                &offices[index],
                offices,
                seed ^ 0x5eed_0000 ^ index as u64,
                ROUNDS_DURING_CUT,
            );
            (index, cases)
        })
        .collect();
    let mut registered_during_cut = Vec::new();
    for round in 0..ROUNDS_DURING_CUT {
        servers.check_interrupted()?;
        if round > 0 {
            std::thread::sleep(PAUSE_BETWEEN_ROUNDS);
        }
        for (index, cases) in &mut pending {
            let Some(case) = cases.pop() else { continue };
            let view: CaseView = servers
                .client(*index)
                .post_as("/api/cases", &case)
                .with_context(|| format!("register a case at {}", offices[*index].name))?;
            if offices[*index].parent == Some(CUT_TOWNSHIP) {
                registered_during_cut.push(view.header.number);
            }
        }
    }

    // The other township's villages are unaffected: their new cases reach the county meanwhile.
    let unaffected: Vec<usize> = offices
        .iter()
        .enumerate()
        .filter(|(index, office)| {
            *index != COUNTY && *index != CUT_TOWNSHIP && office.parent != Some(CUT_TOWNSHIP)
        })
        .map(|(index, _)| index)
        .collect();
    wait_converged(offices, servers, tally, Some(&unaffected))
        .context("the county did not receive the unaffected township's cases during the cut")?;
    tally.refresh(offices, servers)?;

    let county = &offices[COUNTY];
    let cut_village = villages
        .iter()
        .copied()
        .find(|&index| offices[index].parent == Some(CUT_TOWNSHIP))
        .context("the cut township has no village")?;
    say(format!(
        "\nDuring the cut, `fengqiao peers` at the county ({}):\n{}",
        county.name,
        peers_of(servers.client(COUNTY))?
    ))?;
    say(format!(
        "\n… and at {} (its new cases wait under PENDING):\n{}",
        offices[cut_village].name,
        peers_of(servers.client(cut_village))?
    ))?;
    say(format!(
        "\nCases during the cut:\n{}",
        tally.table(offices, servers)
    ))?;
    say(format!(
        "registered while {} was cut off: {}",
        township.name,
        registered_during_cut.join(" ")
    ))?;

    say(format!(
        "\n== The heal: {} comes back on the same addresses; its villages redial it (with \
         backoff) and it redials the county. ==",
        township.name
    ))?;
    servers
        .start(CUT_TOWNSHIP, township)
        .context("restart the cut township")?;
    let convergence = wait_converged(offices, servers, tally, None)?;
    say(format!(
        "\nThe county's counts converging:\n{}",
        steps_table(&convergence)
    ))?;
    say(format!(
        "\nAfter the heal:\n{}",
        tally.table(offices, servers)
    ))?;
    Ok(CutReport {
        township: township.region.clone(),
        registered_during_cut,
        convergence,
    })
}
