//! `fengqiao directive …`: supervision directives (督办单) on a case, and the open-directive list.

use anyhow::Context;
use chrono::NaiveDate;
use clap::Subcommand;
use fengqiao_case::{AppendEvent, DirectiveListItem, EventKind};

use super::case::append_event;
use super::output::{emit, print_json};
use super::render;
use crate::client::NodeClient;
use crate::import::values::parse_date;

#[derive(Debug, Subcommand)]
pub enum DirectiveCommand {
    /// Issue a directive to the node holding the case; prints the directive id
    Issue {
        /// The case number
        number: String,
        /// Node id the directive is addressed to
        #[arg(long)]
        target: String,
        /// What must be done
        #[arg(long)]
        requirement: String,
        /// Due date, YYYY-MM-DD
        #[arg(long, value_parser = parse_date)]
        due: NaiveDate,
        /// 挂牌督办: listed supervision, the strongest form
        #[arg(long)]
        listed: bool,
        /// Directive id [default: D + random hex]
        #[arg(long)]
        id: Option<String>,
    },
    /// Acknowledge (签收) a directive addressed to this node
    Ack { number: String, id: String },
    /// Report back in writing on a directive
    Report {
        number: String,
        id: String,
        #[arg(long)]
        text: String,
    },
    /// 销号: the issuer crosses a directive off
    CrossOff { number: String, id: String },
    /// The issuer sends a directive back for more work
    Return {
        number: String,
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// List directives
    List {
        /// Only those not yet crossed off
        #[arg(long)]
        open: bool,
    },
}

impl DirectiveCommand {
    /// The case number and event this command stands for (`None` for `list`). `new_id` names a
    /// directive being issued without `--id`.
    pub fn event(&self, new_id: impl FnOnce() -> String) -> Option<(&str, EventKind)> {
        let (number, kind) = match self {
            DirectiveCommand::Issue {
                number,
                target,
                requirement,
                due,
                listed,
                id,
            } => (
                number,
                EventKind::IssueDirective {
                    directive: id.clone().unwrap_or_else(new_id),
                    target_node: target.clone(),
                    requirement: requirement.clone(),
                    due: *due,
                    listed: *listed,
                },
            ),
            DirectiveCommand::Ack { number, id } => (
                number,
                EventKind::AcknowledgeDirective {
                    directive: id.clone(),
                },
            ),
            DirectiveCommand::Report { number, id, text } => (
                number,
                EventKind::ReportDirective {
                    directive: id.clone(),
                    text: text.clone(),
                },
            ),
            DirectiveCommand::CrossOff { number, id } => (
                number,
                EventKind::CrossOffDirective {
                    directive: id.clone(),
                },
            ),
            DirectiveCommand::Return { number, id, reason } => (
                number,
                EventKind::ReturnDirective {
                    directive: id.clone(),
                    reason: reason.clone(),
                },
            ),
            DirectiveCommand::List { .. } => return None,
        };
        Some((number.as_str(), kind))
    }
}

/// `D` and eight random hex digits: unique enough within one case, short enough to type.
pub fn new_directive_id() -> String {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness is rare; the clock still makes collisions within a case unlikely.
        let nanos = crate::wall_clock::now().timestamp_subsec_nanos();
        bytes = nanos.to_le_bytes();
    }
    format!("D{}", hex::encode_upper(bytes))
}

pub fn run(command: DirectiveCommand, client: &NodeClient, json: bool) -> anyhow::Result<()> {
    if let DirectiveCommand::List { open } = command {
        let query = if open {
            vec![("open", "true".to_owned())]
        } else {
            Vec::new()
        };
        let items = client.get("/api/directives", &query)?;
        if json {
            return print_json(&items);
        }
        let items: Vec<DirectiveListItem> =
            serde_json::from_value(items).context("unexpected answer from GET /api/directives")?;
        if items.is_empty() {
            return emit("no directives 没有督办单");
        }
        return emit(format!(
            "{}\n{} directive(s)",
            render::directive_table(&items, crate::wall_clock::now()),
            items.len()
        ));
    }
    let Some((number, kind)) = command.event(new_directive_id) else {
        return Ok(());
    };
    if !json && let EventKind::IssueDirective { directive, .. } = &kind {
        emit(format!("directive 督办单 {directive}"))?;
    }
    append_event(
        client,
        number,
        &AppendEvent {
            backdated_reason: None,
            kind,
            at: None,
        },
        json,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn command(args: &[&str]) -> DirectiveCommand {
        let mut full = vec!["fengqiao", "directive"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Directive(command) => command,
            _ => panic!("directive command expected"),
        }
    }

    #[test]
    fn issue_generates_an_id_unless_given() {
        let issue = command(&[
            "issue",
            "N1",
            "--target",
            "township",
            "--requirement",
            "七日内化解",
            "--due",
            "2026-05-01",
            "--listed",
        ]);
        let (number, kind) = issue.event(|| "DFIXED".to_owned()).unwrap();
        assert_eq!(number, "N1");
        assert_eq!(
            kind,
            EventKind::IssueDirective {
                directive: "DFIXED".into(),
                target_node: "township".into(),
                requirement: "七日内化解".into(),
                due: NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
                listed: true,
            }
        );
        let id = new_directive_id();
        assert!(id.starts_with('D') && id.len() == 9, "{id}");
    }

    #[test]
    fn follow_ups_map_to_their_events() {
        let ack = command(&["ack", "N1", "D1"]).event(String::new).unwrap().1;
        assert_eq!(
            ack,
            EventKind::AcknowledgeDirective {
                directive: "D1".into()
            }
        );
        let report = command(&["report", "N1", "D1", "--text", "已化解"])
            .event(String::new)
            .unwrap()
            .1;
        assert_eq!(
            report,
            EventKind::ReportDirective {
                directive: "D1".into(),
                text: "已化解".into()
            }
        );
        let cross = command(&["cross-off", "N1", "D1"])
            .event(String::new)
            .unwrap()
            .1;
        assert_eq!(
            cross,
            EventKind::CrossOffDirective {
                directive: "D1".into()
            }
        );
        let back = command(&["return", "N1", "D1", "--reason", "未落实"])
            .event(String::new)
            .unwrap()
            .1;
        assert_eq!(
            back,
            EventKind::ReturnDirective {
                directive: "D1".into(),
                reason: "未落实".into()
            }
        );
        assert!(command(&["list", "--open"]).event(String::new).is_none());
    }
}
