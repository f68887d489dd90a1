//! `fengqiao case …`: register, list, show, and one subcommand per lifecycle event.
//!
//! Each lifecycle subcommand maps to exactly one [`EventKind`] ([`CaseCommand::event`]), sent as
//! `POST /api/cases/{number}/events`; the node checks whether it may happen and records who did it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use fengqiao_case::{
    AppendEvent, CaseListItem, CaseView, Category, Channel, EventKind, JudicialConfirmation,
    Location, MatterType, MediationResult, MediationType, NodeInfo, Ownership, Petitioner,
    RegisterCase, ReplyOutcome, ReviewLevel, ReviewOutcome, Satisfaction, Status,
};

use super::output::{emit, print_json};
use super::render;
use crate::client::NodeClient;
use crate::import::values::{bilingual, parse_date, parse_labelled, parse_time, snake_name};

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Register a new case (登记) from flags or a JSON file; prints its number
    Register(Box<RegisterArgs>),
    /// List cases, most urgent first as the node orders them
    List(ListArgs),
    /// Everything about one case: header, state, warnings, directives, events
    Show { number: String },
    /// 受理: accept the case (starts the 60-day handling limit)
    Accept { number: String },
    /// 不予受理: do not accept, with a written reason
    Reject {
        number: String,
        #[arg(long)]
        reason: String,
    },
    /// 转送: forward to the competent unit
    Forward {
        number: String,
        #[arg(long)]
        to_unit: String,
        /// The receiving node, when the unit runs Fengqiao
        #[arg(long)]
        to_node: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// 交办: assign to a node with the required result and a deadline
    Assign {
        number: String,
        #[arg(long)]
        to_node: String,
        /// The result required of the receiver
        #[arg(long)]
        result: String,
        /// YYYY-MM-DD
        #[arg(long, value_parser = parse_date)]
        deadline: NaiveDate,
    },
    /// Take on a case forwarded or assigned to this node
    AcceptAssignment { number: String },
    /// Object to a forward or assignment (not competent); the case returns
    Object {
        number: String,
        #[arg(long)]
        reason: String,
    },
    /// Route a litigation-related matter to a court or 政法 department
    Divert {
        number: String,
        #[arg(long)]
        to_unit: String,
        #[arg(long)]
        reason: String,
    },
    /// 上报: escalate to the tier above
    Escalate {
        number: String,
        #[arg(long)]
        to_node: String,
        #[arg(long)]
        reason: String,
    },
    /// Extend the handling limit once, by at most 30 days
    Extend {
        number: String,
        #[arg(long)]
        days: u32,
        /// The unit head who approved it
        #[arg(long)]
        approver: String,
        #[arg(long)]
        reason: String,
    },
    /// Record a mediation (调解)
    Mediate {
        number: String,
        /// people | administrative | judicial | petition (人民调解 / 行政调解 / 司法调解 / 信访调解)
        #[arg(long = "type", value_parser = parse_labelled::<MediationType>)]
        mediation_type: MediationType,
        #[arg(long)]
        mediator: String,
        /// agreement | no_agreement | ongoing
        #[arg(long, value_parser = parse_labelled::<MediationResult>)]
        result: MediationResult,
        /// The agreement's terms
        #[arg(long, default_value = "", hide_default_value = true)]
        agreement: String,
    },
    /// Update the judicial confirmation (司法确认) of a mediation agreement
    JudicialConfirmation {
        number: String,
        /// Event id of the mediation record
        #[arg(long)]
        mediation: String,
        /// not_applied | applied | confirmed | refused
        #[arg(long, value_parser = parse_labelled::<JudicialConfirmation>)]
        status: JudicialConfirmation,
    },
    /// 答复: reply to the petitioner
    Reply {
        number: String,
        /// support | explain | not_support (支持 / 解释 / 不支持)
        #[arg(long, value_parser = parse_labelled::<ReplyOutcome>)]
        outcome: ReplyOutcome,
        #[arg(long)]
        text: String,
    },
    /// Record the petitioner's satisfaction evaluation
    Evaluate {
        number: String,
        /// satisfied | basically_satisfied | unsatisfied (满意 / 基本满意 / 不满意)
        #[arg(long, value_parser = parse_labelled::<Satisfaction>)]
        satisfaction: Satisfaction,
    },
    /// 办结 / 销号: close the case (resolved unless --unresolved)
    Close {
        number: String,
        /// The matter was closed without being resolved (counts against the 化解率)
        #[arg(long)]
        unresolved: bool,
        #[arg(long)]
        note: String,
    },
    /// The petitioner requests 复查 (review) or 复核 (re-review)
    Review {
        number: String,
        /// review | re_review (复查 / 复核)
        #[arg(long, value_parser = parse_labelled::<ReviewLevel>)]
        level: ReviewLevel,
        #[arg(long)]
        reason: String,
    },
    /// The reviewing tier decides a 复查 / 复核
    DecideReview {
        number: String,
        /// review | re_review
        #[arg(long, value_parser = parse_labelled::<ReviewLevel>)]
        level: ReviewLevel,
        /// upheld | revised
        #[arg(long, value_parser = parse_labelled::<ReviewOutcome>)]
        outcome: ReviewOutcome,
        #[arg(long)]
        text: String,
    },
    /// Reopen a closed case
    Reopen {
        number: String,
        #[arg(long)]
        reason: String,
    },
    /// 提级办理: this office, above the case's holder, takes the case over and becomes its holder
    TakeOver {
        number: String,
        #[arg(long)]
        reason: String,
    },
    /// Mark the case as a repeat (重复信访) of an earlier case
    LinkRepeat {
        number: String,
        /// The earlier case's number
        #[arg(long)]
        earlier: String,
    },
    /// Add a note to the case
    Note {
        number: String,
        #[arg(long)]
        text: String,
    },
    /// Settle a conflict: choose the branch starting at event --chosen
    Resolve {
        number: String,
        /// First event of the winning branch (see `case show`)
        #[arg(long)]
        chosen: String,
        #[arg(long)]
        note: String,
    },
    /// Append any event given as JSON: '{"kind": "...", "payload": {...}, "at": optional}'
    /// (or `-` to read it from stdin, `@FILE` to read it from a file)
    Event {
        number: String,
        #[arg(value_name = "EVENT_JSON")]
        event: String,
    },
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// A RegisterCase JSON file (the `POST /api/cases` body) instead of the flags below
    #[arg(long, conflicts_with_all = ["channel", "category", "matter_type", "summary", "petitioners"])]
    pub file: Option<PathBuf>,
    /// letter | visit | online | phone | leader_mailbox | grid_screening (来信 / 来访 / …)
    #[arg(long, required_unless_present = "file", value_parser = parse_labelled::<Channel>)]
    pub channel: Option<Channel>,
    /// land_requisition | wage_arrears | demolition_relocation | school_consolidation | labour |
    /// environment | neighbourhood | family | property_management | social_security | other
    #[arg(long, required_unless_present = "file", value_parser = parse_labelled::<Category>)]
    pub category: Option<Category>,
    /// suggestion | accusation | appeal (建议意见 / 检举控告 / 申诉求决)
    #[arg(long, required_unless_present = "file", value_parser = parse_labelled::<MatterType>)]
    pub matter_type: Option<MatterType>,
    /// The request in the petitioner's own words
    #[arg(long, required_unless_present = "file")]
    pub summary: Option<String>,
    /// "name[,id_number[,phone[,address]]]"; repeat for several petitioners
    #[arg(long = "petitioner", value_name = "PERSON", value_parser = parse_petitioner)]
    pub petitioners: Vec<Petitioner>,
    /// People who came [default: the number of petitioners, at least 1]
    #[arg(long)]
    pub headcount: Option<u32>,
    /// Region code where the matter arose [default: the node's own region]
    #[arg(long, value_name = "CODE")]
    pub region: Option<String>,
    /// Village or community name, e.g. 芦荻山村
    #[arg(long, default_value = "", hide_default_value = true)]
    pub village: String,
    /// Grid (网格) name or number
    #[arg(long, default_value = "", hide_default_value = true)]
    pub grid: String,
    /// The grid worker (网格员) responsible
    #[arg(long, default_value = "", hide_default_value = true)]
    pub grid_worker: String,
    /// The person or unit complained about (被反映方)
    #[arg(long, default_value = "", hide_default_value = true)]
    pub respondent: String,
    /// 涉法涉诉: routed to courts and 政法 departments
    #[arg(long)]
    pub litigation_related: bool,
    /// 包案领导
    #[arg(long, default_value = "", hide_default_value = true)]
    pub leader: String,
    /// Responsible unit
    #[arg(long, default_value = "", hide_default_value = true)]
    pub unit: String,
    /// Case officer
    #[arg(long, default_value = "", hide_default_value = true)]
    pub officer: String,
    /// The plan to resolve it (化解方案)
    #[arg(long, default_value = "", hide_default_value = true)]
    pub plan: String,
    /// Closing date the leader committed to (YYYY-MM-DD)
    #[arg(long, value_parser = parse_date)]
    pub target_date: Option<NaiveDate>,
    /// Use this case number instead of the next one (when copying from a paper register)
    #[arg(long)]
    pub number: Option<String>,
    /// When the petition was received, if not now (China time unless an offset is given).
    /// More than 5 minutes in the past only with --backdated-reason, and at most
    /// `[clock] max_backdate_days` (default 30) back; older records come in by `import`
    #[arg(long, value_parser = parse_time)]
    pub registered_at: Option<DateTime<Utc>>,
    /// 补录原因: why --registered-at lies in the past (a paper record entered later)
    #[arg(long, requires = "registered_at")]
    pub backdated_reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// registered | awaiting_receiver | accepted | replied | evaluated | closed | … (or 已受理 …)
    #[arg(long, value_parser = parse_labelled::<Status>)]
    pub status: Option<Status>,
    /// Node id of the holder
    #[arg(long)]
    pub holder: Option<String>,
    #[arg(long, value_parser = parse_labelled::<Category>)]
    pub category: Option<Category>,
    /// Region code prefix
    #[arg(long)]
    pub region: Option<String>,
    /// Only cases with an overdue deadline
    #[arg(long)]
    pub overdue: bool,
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `"name[,id_number[,phone[,address]]]"`; the address keeps any further commas, and full-width
/// commas work too because that is what a Chinese keyboard types.
pub fn parse_petitioner(text: &str) -> Result<Petitioner, String> {
    let mut parts = text.splitn(4, [',', '，']).map(str::trim);
    let name = parts.next().unwrap_or_default();
    if name.is_empty() {
        return Err("a petitioner needs a name: \"name[,id_number[,phone[,address]]]\"".into());
    }
    Ok(Petitioner {
        name: name.to_owned(),
        id_number: parts.next().unwrap_or_default().to_owned(),
        id_type: Default::default(),
        phone: parts.next().unwrap_or_default().to_owned(),
        address: parts.next().unwrap_or_default().to_owned(),
        representative: false,
    })
}

impl CaseCommand {
    /// The case number and event a lifecycle subcommand stands for; `None` for the others.
    pub fn event(&self) -> Option<(&str, EventKind)> {
        let owned = |text: &String| text.clone();
        let (number, kind) = match self {
            CaseCommand::Register(_) | CaseCommand::List(_) | CaseCommand::Show { .. } => {
                return None;
            }
            CaseCommand::Event { .. } => return None,
            CaseCommand::Accept { number } => (number, EventKind::Accept {}),
            CaseCommand::Reject { number, reason } => (
                number,
                EventKind::Reject {
                    reason: owned(reason),
                },
            ),
            CaseCommand::Forward {
                number,
                to_unit,
                to_node,
                reason,
            } => (
                number,
                EventKind::Forward {
                    to_unit: owned(to_unit),
                    to_node: to_node.clone(),
                    reason: owned(reason),
                },
            ),
            CaseCommand::Assign {
                number,
                to_node,
                result,
                deadline,
            } => (
                number,
                EventKind::Assign {
                    to_node: owned(to_node),
                    required_result: owned(result),
                    deadline: *deadline,
                },
            ),
            CaseCommand::AcceptAssignment { number } => (number, EventKind::AcceptAssignment {}),
            CaseCommand::Object { number, reason } => (
                number,
                EventKind::Object {
                    reason: owned(reason),
                },
            ),
            CaseCommand::Divert {
                number,
                to_unit,
                reason,
            } => (
                number,
                EventKind::Divert {
                    to_unit: owned(to_unit),
                    reason: owned(reason),
                },
            ),
            CaseCommand::Escalate {
                number,
                to_node,
                reason,
            } => (
                number,
                EventKind::Escalate {
                    to_node: owned(to_node),
                    reason: owned(reason),
                },
            ),
            CaseCommand::Extend {
                number,
                days,
                approver,
                reason,
            } => (
                number,
                EventKind::Extend {
                    days: *days,
                    approver: owned(approver),
                    reason: owned(reason),
                },
            ),
            CaseCommand::Mediate {
                number,
                mediation_type,
                mediator,
                result,
                agreement,
            } => (
                number,
                EventKind::Mediate {
                    mediation_type: *mediation_type,
                    mediator: owned(mediator),
                    result: *result,
                    agreement: owned(agreement),
                    judicial_confirmation: JudicialConfirmation::NotApplied,
                },
            ),
            CaseCommand::JudicialConfirmation {
                number,
                mediation,
                status,
            } => (
                number,
                EventKind::UpdateJudicialConfirmation {
                    mediation: owned(mediation),
                    status: *status,
                },
            ),
            CaseCommand::Reply {
                number,
                outcome,
                text,
            } => (
                number,
                EventKind::Reply {
                    outcome: *outcome,
                    text: owned(text),
                },
            ),
            CaseCommand::Evaluate {
                number,
                satisfaction,
            } => (
                number,
                EventKind::Evaluate {
                    satisfaction: *satisfaction,
                },
            ),
            CaseCommand::Close {
                number,
                unresolved,
                note,
            } => (
                number,
                EventKind::Close {
                    resolved: !unresolved,
                    note: owned(note),
                },
            ),
            CaseCommand::Review {
                number,
                level,
                reason,
            } => (
                number,
                EventKind::RequestReview {
                    level: *level,
                    reason: owned(reason),
                },
            ),
            CaseCommand::DecideReview {
                number,
                level,
                outcome,
                text,
            } => (
                number,
                EventKind::DecideReview {
                    level: *level,
                    outcome: *outcome,
                    text: owned(text),
                },
            ),
            CaseCommand::Reopen { number, reason } => (
                number,
                EventKind::Reopen {
                    reason: owned(reason),
                },
            ),
            CaseCommand::TakeOver { number, reason } => (
                number,
                EventKind::TakeOver {
                    reason: owned(reason),
                },
            ),
            CaseCommand::LinkRepeat { number, earlier } => (
                number,
                EventKind::LinkRepeat {
                    earlier: owned(earlier),
                },
            ),
            CaseCommand::Note { number, text } => (number, EventKind::Note { text: owned(text) }),
            CaseCommand::Resolve {
                number,
                chosen,
                note,
            } => (
                number,
                EventKind::Resolve {
                    chosen: owned(chosen),
                    note: owned(note),
                    overrides: Vec::new(),
                },
            ),
        };
        Some((number.as_str(), kind))
    }
}

pub fn run(command: CaseCommand, client: &NodeClient, json: bool) -> anyhow::Result<()> {
    if let Some((number, kind)) = command.event() {
        let event = AppendEvent {
            backdated_reason: None,
            kind,
            at: None,
        };
        return append_event(client, number, &event, json);
    }
    match command {
        CaseCommand::Register(args) => register(client, *args, json),
        CaseCommand::List(args) => list(client, &args, json),
        CaseCommand::Show { number } => {
            let view = client.get(&case_path(&number), &[])?;
            if json {
                return print_json(&view);
            }
            let view: CaseView = serde_json::from_value(view)
                .with_context(|| format!("unexpected answer for case {number}"))?;
            emit(render::case_view_text(&view, crate::wall_clock::now()))
        }
        CaseCommand::Event { number, event } => {
            let text = read_argument_text(&event)?;
            let event: AppendEvent = serde_json::from_str(&text).context(
                "the event must be JSON like {\"kind\": \"note\", \"payload\": {\"text\": \"…\"}}",
            )?;
            append_event(client, &number, &event, json)
        }
        _ => bail!("internal: lifecycle command without an event"),
    }
}

/// `-` reads stdin, `@path` reads a file, anything else is the text itself.
fn read_argument_text(argument: &str) -> anyhow::Result<String> {
    if argument == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the event from stdin")?;
        Ok(text)
    } else if let Some(path) = argument.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
    } else {
        Ok(argument.to_owned())
    }
}

/// URL path of a case; case numbers are `[0-9A-Za-z-]`, but a typo should not build a bad URL.
pub fn case_path(number: &str) -> String {
    let safe: String = number
        .trim()
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '-' || character == '_' {
                character.to_string()
            } else {
                let mut buffer = [0u8; 4];
                character
                    .encode_utf8(&mut buffer)
                    .bytes()
                    .map(|byte| format!("%{byte:02X}"))
                    .collect()
            }
        })
        .collect();
    format!("/api/cases/{safe}")
}

pub(crate) fn append_event(
    client: &NodeClient,
    number: &str,
    event: &AppendEvent,
    json: bool,
) -> anyhow::Result<()> {
    let path = format!("{}/events", case_path(number));
    let view = client
        .post(&path, event)
        .with_context(|| format!("{} on case {number}", event.kind.name()))?;
    if json {
        return print_json(&view);
    }
    let view: CaseView = serde_json::from_value(view)
        .with_context(|| format!("unexpected answer for case {number}"))?;
    emit(render::event_result_line(&view, event.kind.name()))
}

fn register(client: &NodeClient, args: RegisterArgs, json: bool) -> anyhow::Result<()> {
    let body = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str::<RegisterCase>(&text)
                .with_context(|| format!("{} is not a RegisterCase JSON body", path.display()))?
        }
        None => {
            let region = match &args.region {
                Some(region) => region.clone(),
                None => {
                    client.require_credentials()?;
                    let info: NodeInfo = client.get_as("/api/health", &[])?;
                    info.region_code
                }
            };
            registration_from_flags(args, region)?
        }
    };
    let view = client
        .post("/api/cases", &body)
        .context("register the case")?;
    if json {
        return print_json(&view);
    }
    let view: CaseView =
        serde_json::from_value(view).context("unexpected answer from POST /api/cases")?;
    emit(format!(
        "{}\nregistered 已登记: {} · {} · holder {}",
        view.header.number,
        bilingual(&view.header.category),
        bilingual(&view.state.status),
        render::short_node(&view.state.holder),
    ))
}

/// The `POST /api/cases` body the flags describe.
pub fn registration_from_flags(args: RegisterArgs, region: String) -> anyhow::Result<RegisterCase> {
    let (Some(channel), Some(category), Some(matter_type), Some(summary)) =
        (args.channel, args.category, args.matter_type, args.summary)
    else {
        bail!("--channel, --category, --matter-type and --summary are required (or --file)");
    };
    let headcount = args.headcount.unwrap_or_else(|| {
        u32::try_from(args.petitioners.len())
            .unwrap_or(u32::MAX)
            .max(1)
    });
    Ok(RegisterCase {
        backdated_reason: args.backdated_reason,
        number: args.number,
        registered_at: args.registered_at,
        channel,
        petitioners: args.petitioners,
        headcount,
        respondent: args.respondent,
        category,
        matter_type,
        litigation_related: args.litigation_related,
        summary,
        location: Location {
            region_code: region,
            village: args.village,
            grid: args.grid,
            grid_worker: args.grid_worker,
        },
        ownership: Ownership {
            leader: args.leader,
            unit: args.unit,
            officer: args.officer,
            plan: args.plan,
            target_date: args.target_date,
        },
    })
}

fn list(client: &NodeClient, args: &ListArgs, json: bool) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(status) = &args.status {
        query.push(("status", snake_name(status)));
    }
    if let Some(holder) = &args.holder {
        query.push(("holder", holder.clone()));
    }
    if let Some(category) = &args.category {
        query.push(("category", snake_name(category)));
    }
    if let Some(region) = &args.region {
        query.push(("region", region.clone()));
    }
    if args.overdue {
        query.push(("overdue", "true".to_owned()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let items = client.get("/api/cases", &query)?;
    if json {
        return print_json(&items);
    }
    let items: Vec<CaseListItem> =
        serde_json::from_value(items).context("unexpected answer from GET /api/cases")?;
    if items.is_empty() {
        return emit("no cases match 没有符合条件的案件");
    }
    emit(format!(
        "{}\n{} case(s)",
        render::case_list_table(&items),
        items.len()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn event_of(args: &[&str]) -> (String, EventKind) {
        let mut full = vec!["fengqiao", "case"];
        full.extend_from_slice(args);
        let cli = Cli::try_parse_from(full).unwrap();
        let Command::Case(command) = cli.command else {
            panic!("case command expected")
        };
        let (number, kind) = command.event().expect("a lifecycle command");
        (number.to_owned(), kind)
    }

    #[test]
    fn lifecycle_subcommands_map_to_their_event_kinds() {
        const N: &str = "430702-2026-000001";
        let cases: Vec<(Vec<&str>, EventKind)> = vec![
            (vec!["accept", N], EventKind::Accept {}),
            (
                vec!["reject", N, "--reason", "不属于信访事项"],
                EventKind::Reject {
                    reason: "不属于信访事项".into(),
                },
            ),
            (
                vec![
                    "forward",
                    N,
                    "--to-unit",
                    "区人社局",
                    "--reason",
                    "职能部门",
                ],
                EventKind::Forward {
                    to_unit: "区人社局".into(),
                    to_node: None,
                    reason: "职能部门".into(),
                },
            ),
            (
                vec![
                    "assign",
                    N,
                    "--to-node",
                    "abc",
                    "--result",
                    "化解",
                    "--deadline",
                    "2026-05-01",
                ],
                EventKind::Assign {
                    to_node: "abc".into(),
                    required_result: "化解".into(),
                    deadline: NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
                },
            ),
            (vec!["accept-assignment", N], EventKind::AcceptAssignment {}),
            (
                vec!["object", N, "--reason", "非本级管辖"],
                EventKind::Object {
                    reason: "非本级管辖".into(),
                },
            ),
            (
                vec!["divert", N, "--to-unit", "区法院", "--reason", "涉诉"],
                EventKind::Divert {
                    to_unit: "区法院".into(),
                    reason: "涉诉".into(),
                },
            ),
            (
                vec!["escalate", N, "--to-node", "city", "--reason", "集体访"],
                EventKind::Escalate {
                    to_node: "city".into(),
                    reason: "集体访".into(),
                },
            ),
            (
                vec![
                    "extend",
                    N,
                    "--days",
                    "30",
                    "--approver",
                    "局长",
                    "--reason",
                    "情况复杂",
                ],
                EventKind::Extend {
                    days: 30,
                    approver: "局长".into(),
                    reason: "情况复杂".into(),
                },
            ),
            (
                vec![
                    "mediate",
                    N,
                    "--type",
                    "人民调解",
                    "--mediator",
                    "李调解",
                    "--result",
                    "agreement",
                    "--agreement",
                    "分三期补发",
                ],
                EventKind::Mediate {
                    mediation_type: MediationType::People,
                    mediator: "李调解".into(),
                    result: MediationResult::Agreement,
                    agreement: "分三期补发".into(),
                    judicial_confirmation: JudicialConfirmation::NotApplied,
                },
            ),
            (
                vec![
                    "judicial-confirmation",
                    N,
                    "--mediation",
                    "e1",
                    "--status",
                    "applied",
                ],
                EventKind::UpdateJudicialConfirmation {
                    mediation: "e1".into(),
                    status: JudicialConfirmation::Applied,
                },
            ),
            (
                vec!["reply", N, "--outcome", "not-support", "--text", "于法无据"],
                EventKind::Reply {
                    outcome: ReplyOutcome::NotSupport,
                    text: "于法无据".into(),
                },
            ),
            (
                vec!["evaluate", N, "--satisfaction", "基本满意"],
                EventKind::Evaluate {
                    satisfaction: Satisfaction::BasicallySatisfied,
                },
            ),
            (
                vec!["close", N, "--note", "销号"],
                EventKind::Close {
                    resolved: true,
                    note: "销号".into(),
                },
            ),
            (
                vec!["close", N, "--unresolved", "--note", "息访"],
                EventKind::Close {
                    resolved: false,
                    note: "息访".into(),
                },
            ),
            (
                vec!["review", N, "--level", "re_review", "--reason", "不服"],
                EventKind::RequestReview {
                    level: ReviewLevel::ReReview,
                    reason: "不服".into(),
                },
            ),
            (
                vec![
                    "decide-review",
                    N,
                    "--level",
                    "复查",
                    "--outcome",
                    "upheld",
                    "--text",
                    "维持",
                ],
                EventKind::DecideReview {
                    level: ReviewLevel::Review,
                    outcome: ReviewOutcome::Upheld,
                    text: "维持".into(),
                },
            ),
            (
                vec!["reopen", N, "--reason", "新情况"],
                EventKind::Reopen {
                    reason: "新情况".into(),
                },
            ),
            (
                vec!["take-over", N, "--reason", "久拖不决，县级提级办理"],
                EventKind::TakeOver {
                    reason: "久拖不决，县级提级办理".into(),
                },
            ),
            (
                vec!["link-repeat", N, "--earlier", "430702-2025-000009"],
                EventKind::LinkRepeat {
                    earlier: "430702-2025-000009".into(),
                },
            ),
            (
                vec!["note", N, "--text", "电话回访"],
                EventKind::Note {
                    text: "电话回访".into(),
                },
            ),
            (
                vec!["resolve", N, "--chosen", "e2", "--note", "以区级意见为准"],
                EventKind::Resolve {
                    chosen: "e2".into(),
                    note: "以区级意见为准".into(),
                    overrides: Vec::new(),
                },
            ),
        ];
        for (args, expected) in cases {
            let (number, kind) = event_of(&args);
            assert_eq!(number, N, "{args:?}");
            assert_eq!(kind, expected, "{args:?}");
        }
    }

    #[test]
    fn non_lifecycle_commands_have_no_event() {
        let cli = Cli::try_parse_from(["fengqiao", "case", "show", "X"]).unwrap();
        let Command::Case(command) = cli.command else {
            panic!()
        };
        assert!(command.event().is_none());
    }

    #[test]
    fn register_flags_build_the_api_body() {
        let cli = Cli::try_parse_from([
            "fengqiao",
            "case",
            "register",
            "--channel",
            "来访",
            "--category",
            "wage_arrears",
            "--matter-type",
            "appeal",
            "--summary",
            "反映拖欠工资",
            "--petitioner",
            "张国强,210202196605120030,13998765432,中山区桃源街道,3号楼",
            "--petitioner",
            "李梅",
            "--village",
            "芦荻山村",
            "--target-date",
            "2026-06-30",
        ])
        .unwrap();
        let Command::Case(CaseCommand::Register(args)) = cli.command else {
            panic!("register expected")
        };
        let body = registration_from_flags(*args, "430702001001".into()).unwrap();
        assert_eq!(body.channel, Channel::Visit);
        assert_eq!(body.headcount, 2);
        assert_eq!(body.petitioners[0].address, "中山区桃源街道,3号楼");
        assert_eq!(body.petitioners[1].name, "李梅");
        assert_eq!(body.location.region_code, "430702001001");
        assert_eq!(
            body.ownership.target_date,
            NaiveDate::from_ymd_opt(2026, 6, 30)
        );
    }

    #[test]
    fn register_needs_flags_or_a_file() {
        let error = Cli::try_parse_from(["fengqiao", "case", "register", "--channel", "visit"])
            .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(Cli::try_parse_from(["fengqiao", "case", "register", "--file", "c.json"]).is_ok());
    }

    #[test]
    fn petitioner_spec_with_full_width_commas() {
        let person = parse_petitioner("王秀英，430702198503120029，13807361234").unwrap();
        assert_eq!(person.name, "王秀英");
        assert_eq!(person.phone, "13807361234");
        assert!(parse_petitioner(" ,123").is_err());
    }

    #[test]
    fn case_paths_escape_stray_characters() {
        assert_eq!(
            case_path("430702-2026-000001"),
            "/api/cases/430702-2026-000001"
        );
        assert_eq!(case_path("a/b"), "/api/cases/a%2Fb");
    }
}
