//! `fengqiao policy show` and `fengqiao policy issue --file policy.toml`: the federation's policy
//! (limits, calendar, warning thresholds) through the node's API (`GET` / `POST /api/policy`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use fengqiao_case::model::policy::{IssuePolicy, PolicyVersionView, PolicyView};

use super::output::{emit, print_json};
use crate::client::NodeClient;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The policy versions the node holds and the one new cases are registered under
    Show,
    /// Issue the next policy version (the county, the federation's root; admin). The file is
    /// TOML: `note = "…"`, a `[limits]` table (acceptance_days, objection_working_days,
    /// handling_days, max_extension_days, evaluation_days, review_request_days,
    /// review_decision_days, holidays, working_weekends) and a `[warnings]` table
    /// (approaching_days, serious_overdue_days); what is left out takes the regulation's
    /// figures. The shipped State Council calendar is always included; the file's dates add to
    /// it (e.g. next year's notice). Cases registered before keep the version they had.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The policy file (TOML)
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(command: PolicyCommand, client: &NodeClient, json: bool) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Show => {
            let answer = client.get("/api/policy", &[])?;
            if json {
                return print_json(&answer);
            }
            let view: PolicyView =
                serde_json::from_value(answer).context("unexpected answer from /api/policy")?;
            emit(policy_text(&view))
        }
        PolicyCommand::Issue(args) => {
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            // TOML dates (`holidays = [2027-01-01]`) read as the dates they are, as in the
            // node's own config.
            let mut table: toml::Value = toml::from_str(&text)
                .with_context(|| format!("{} is not TOML", args.file.display()))?;
            crate::config::dates_as_strings(&mut table);
            let request: IssuePolicy = table
                .try_into()
                .with_context(|| format!("{} is not a policy file", args.file.display()))?;
            let answer = client.post("/api/policy", &request)?;
            if json {
                return print_json(&answer);
            }
            let issued: PolicyVersionView =
                serde_json::from_value(answer).context("unexpected answer from /api/policy")?;
            emit(format!(
                "policy version {} issued; it travels down every link, and cases registered from \
                 now on derive with it\n{}",
                issued.version,
                version_text(&issued)
            ))
        }
    }
}

fn version_text(version: &PolicyVersionView) -> String {
    let limits = &version.limits;
    let issued = match (&version.issued_by, version.issued_at) {
        (Some(issuer), Some(at)) => format!("issued by {issuer} at {}", at.to_rfc3339()),
        _ => "built in".to_owned(),
    };
    format!(
        "version {} ({issued}) {}\n  受理 {} days, 异议 {} working days, 办理 {} days (+{} max), \
         评价 {} days, 复查请求 {} days, 复查决定 {} days\n  holidays: {} days ({}), working \
         weekends: {}\n  warnings: 预警 {} days before, 严重超时 after {} days",
        version.version,
        version.note,
        limits.acceptance_days,
        limits.objection_working_days,
        limits.handling_days,
        limits.max_extension_days,
        limits.evaluation_days,
        limits.review_request_days,
        limits.review_decision_days,
        limits.holidays.len(),
        match (limits.holidays.first(), limits.holidays.last()) {
            (Some(first), Some(last)) => format!("{first} … {last}"),
            _ => "none".to_owned(),
        },
        limits.working_weekends.len(),
        version.warnings.approaching_days,
        version.warnings.serious_overdue_days,
    )
}

pub fn policy_text(view: &PolicyView) -> String {
    let mut text = format!("current policy version: {}\n", view.current);
    for version in &view.versions {
        text.push_str(&version_text(version));
        text.push('\n');
    }
    text
}
