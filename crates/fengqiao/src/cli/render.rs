//! Human-readable output: tables and text for cases, directives, measures and the node.
//!
//! Times are shown in China time because that is the clock deadlines are counted in, and say so
//! (`UTC+8`). Labels are bilingual: the API spelling (what `--json` and the flags use) next to
//! the Chinese term.
//!
//! Text typed at other offices reaches this terminal: everything printed goes through
//! [`printable`] (or [`printable_json`]), so a control or text-direction character stored before
//! the API refused them (or made by an older peer) is shown escaped, never obeyed.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, Table, presets};
use fengqiao_case::input_bounds;
use fengqiao_case::{
    CaseListItem, CaseSummary, CaseView, DeadlineKind, DirectiveListItem, DirectiveState,
    EventKind, MeasureSet, Measures, NodeInfo, Ratio, Warning,
};

use crate::config::NodeConfig;
use crate::import::values::{bilingual, china_date, china_time, snake_name};

/// `text` safe to print to a terminal: every control or text-direction character except a line
/// break is shown as its escape (`\u{1b}`), so what another office typed cannot move the cursor,
/// retitle the window, write the clipboard or reorder a line.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_here =
        |character: char| character != '\n' && input_bounds::is_control_or_reordering(character);
    if !text.chars().any(unsafe_here) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for character in text.chars() {
        if unsafe_here(character) {
            let _ = write!(shown, "{}", character.escape_unicode());
        } else {
            shown.push(character);
        }
    }
    Cow::Owned(shown)
}

/// JSON text safe to print: serde_json escapes the C0 controls inside strings itself; this
/// escapes the rest of what [`printable`] escapes as JSON escapes (`\u202e`), so a script reads
/// the same values.
pub fn printable_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(input_bounds::is_control_or_reordering) {
        return Cow::Borrowed(json);
    }
    let mut shown = String::with_capacity(json.len() + 16);
    for character in json.chars() {
        // Outside strings JSON holds only ASCII layout; inside them these are all single UTF-16
        // units (C0 is already escaped), so one `\uXXXX` each.
        if input_bounds::is_control_or_reordering(character) && character != '\n' {
            let _ = write!(shown, "\\u{:04x}", u32::from(character));
        } else {
            shown.push(character);
        }
    }
    Cow::Owned(shown)
}

/// A table in the house style; comfy-table measures CJK characters as two columns wide.
pub fn new_table<const N: usize>(headers: [&str; N]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers);
    table
}

/// A two-column table of labelled facts, without a header row.
pub fn new_facts_table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// Node ids are long; the first characters are enough to tell nodes apart on a screen.
pub fn short_node(node: &str) -> String {
    const SHOWN: usize = 10;
    if node.chars().count() <= SHOWN + 1 {
        node.to_owned()
    } else {
        let head: String = node.chars().take(SHOWN).collect();
        format!("{head}…")
    }
}

fn or_dash(text: &str) -> &str {
    if text.trim().is_empty() { "-" } else { text }
}

/// How a China time says it is one where no column header says so; the events table's header
/// says `(UTC+8)` the same way.
pub fn china_time_labelled(instant: &DateTime<Utc>) -> String {
    format!("{} (UTC+8)", china_time(instant))
}

pub fn init_text(
    dir: &Path,
    config: &NodeConfig,
    node_id: Option<&str>,
    admin_password: &str,
    certificate_fingerprint: Option<&str>,
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "created node {} ({}, region {}) in {}",
        config.node.name,
        bilingual(&config.node.tier),
        config.node.region_code,
        dir.display()
    );
    if let Some(node_id) = node_id {
        let _ = writeln!(text, "node id: {node_id}");
        let _ = writeln!(
            text,
            "  (give it to the parent office: fengqiao admit PARENT_DIR --node-id {node_id} \
             --name … --region {})",
            config.node.region_code
        );
    }
    match certificate_fingerprint {
        Some(fingerprint) => {
            let _ = writeln!(text, "API address: https://{}", config.http.listen);
            let _ = writeln!(
                text,
                "HTTPS certificate for the office LAN 局域网证书: {} (self-signed)",
                crate::config::NodeDir::new(dir)
                    .lan_certificate_path()
                    .display()
            );
            let _ = writeln!(text, "  SHA-256 fingerprint 指纹: {fingerprint}");
            let _ = writeln!(
                text,
                "  (a browser warns once: accept the certificate only if it shows this \
                 fingerprint; the CLI with --dir trusts this certificate alone)"
            );
        }
        None => {
            let _ = writeln!(text, "API address: http://{}", config.http.listen);
        }
    }
    let _ = writeln!(
        text,
        "first admin: login {}, one-time password {admin_password}",
        crate::service::accounts::FIRST_ADMIN_LOGIN
    );
    let _ = writeln!(
        text,
        "  (shown only now; on this machine the CLI acts through {} with --as LOGIN)",
        crate::config::NodeDir::new(dir).cli_token_path().display()
    );
    let _ = writeln!(text);
    let _ = writeln!(text, "next steps:");
    let _ = writeln!(text, "  fengqiao run {}", dir.display());
    let _ = writeln!(
        text,
        "  fengqiao user add lizt --display-name 李调解 --role operator --dir {} --as admin",
        dir.display()
    );
    let _ = writeln!(
        text,
        "  fengqiao import LEDGER.csv --dir {} --as lizt",
        dir.display()
    );
    let _ = write!(
        text,
        "  fengqiao case register --dir {} --as lizt --channel visit --category … --matter-type … --summary …",
        dir.display()
    );
    text
}

pub fn node_info_text(info: &NodeInfo, url: &str) -> String {
    let mut table = new_facts_table();
    table.add_row(["name 名称", info.name.as_str()]);
    table.add_row(["tier 层级", bilingual(&info.tier).as_str()]);
    table.add_row(["region 区划", info.region_code.as_str()]);
    table.add_row(["node id", info.node_id.as_str()]);
    table.add_row(["cases 案件数", info.case_count.to_string().as_str()]);
    table.add_row(["schema", info.schema_version.to_string().as_str()]);
    table.add_row(["API", url]);
    if let Some(clock) = &info.clock {
        // What the node's peers say of its clock; skewed, it records nothing until corrected.
        let mark = if clock.skewed { "⚠ " } else { "" };
        table.add_row([
            "clock 时钟",
            format!("{mark}{}", printable(&clock.message)).as_str(),
        ]);
    }
    table.to_string()
}

/// The next deadline: the status's own or an open directive's, whichever comes first (the
/// deadlines the warnings grade, `summary::open_deadlines`).
fn next_deadline(summary: &CaseSummary) -> Option<(DeadlineKind, DateTime<Utc>)> {
    fengqiao_case::summary::open_deadlines(summary)
        .into_iter()
        .map(|deadline| (deadline.kind, deadline.due))
        .min_by_key(|(_, due)| *due)
}

fn deadline_label(kind: DeadlineKind, due: &DateTime<Utc>) -> String {
    let name = crate::import::values::bilingual(&kind);
    let chinese = name
        .split_once(' ')
        .map(|(_, chinese)| chinese)
        .unwrap_or(&name);
    format!("{} {chinese}", china_date(due))
}

/// `超时 overdue (handling)` for the worst of a case's warnings.
fn worst_warning(warnings: &[Warning]) -> String {
    warnings
        .iter()
        .max_by_key(|warning| (warning.grade, std::cmp::Reverse(warning.due)))
        .map(|warning| {
            format!(
                "{} ({})",
                bilingual(&warning.grade),
                snake_name(&warning.deadline)
            )
        })
        .unwrap_or_else(|| "-".to_owned())
}

pub fn case_list_table(items: &[CaseListItem]) -> Table {
    let mut table = new_table([
        "number 编号",
        "status 状态",
        "category 类别",
        "village 村社区",
        "holder 承办",
        "registered 登记",
        "next deadline 时限",
        "warning 预警",
    ]);
    for item in items {
        let summary = &item.summary;
        let mut number = summary.number.clone();
        if summary.in_conflict {
            number.push_str(" ⚠conflict");
        }
        table.add_row([
            number,
            bilingual(&summary.status),
            bilingual(&summary.category),
            or_dash(&summary.village).to_owned(),
            short_node(&summary.holder),
            summary
                .timeline
                .registered_at
                .as_ref()
                .map(china_date)
                .unwrap_or_else(|| "-".to_owned()),
            next_deadline(summary)
                .map(|(kind, due)| deadline_label(kind, &due))
                .unwrap_or_else(|| "-".to_owned()),
            worst_warning(&item.warnings),
        ]);
    }
    table
}

/// One line after a lifecycle command: the case and where it now stands.
pub fn event_result_line(view: &CaseView, kind: &str) -> String {
    let mut line = format!(
        "{}: {kind} recorded; status {} · holder {}",
        view.header.number,
        bilingual(&view.state.status),
        short_node(&view.state.holder)
    );
    let summary = fengqiao_case::summary::summarize(&view.header, &view.state);
    if let Some((deadline, due)) = fengqiao_case::summary::status_deadline(&summary) {
        let _ = write!(line, " · next deadline {}", deadline_label(deadline, &due));
    }
    if view.state.conflict.is_some() {
        line.push_str(" · ⚠ unresolved conflict: see `fengqiao case show`");
    }
    line
}

/// A short description of an event's payload for the events table.
pub fn event_details(kind: &EventKind) -> String {
    match kind {
        EventKind::Register { .. } | EventKind::Accept {} | EventKind::AcceptAssignment {} => {
            String::new()
        }
        EventKind::Reject { reason }
        | EventKind::Object { reason }
        | EventKind::Reopen { reason }
        | EventKind::TakeOver { reason } => reason.clone(),
        EventKind::Forward {
            to_unit,
            to_node,
            reason,
        } => match to_node {
            Some(node) => format!("→ {to_unit} ({}): {reason}", short_node(node)),
            None => format!("→ {to_unit}: {reason}"),
        },
        EventKind::Assign {
            to_node,
            required_result,
            deadline,
        } => format!("→ {} by {deadline}: {required_result}", short_node(to_node)),
        EventKind::Divert { to_unit, reason } => format!("→ {to_unit}: {reason}"),
        EventKind::Escalate { to_node, reason } => format!("→ {}: {reason}", short_node(to_node)),
        EventKind::Extend {
            days,
            approver,
            reason,
        } => format!("+{days} days, approved by {approver}: {reason}"),
        EventKind::Reply { outcome, text } => format!("{}: {text}", bilingual(outcome)),
        EventKind::Evaluate { satisfaction } => bilingual(satisfaction),
        EventKind::Close { resolved, note } => {
            let resolution = if *resolved {
                "resolved 已化解"
            } else {
                "unresolved 未化解"
            };
            format!("{resolution}: {note}")
        }
        EventKind::RequestReview { level, reason } => format!("{}: {reason}", bilingual(level)),
        EventKind::DecideReview {
            level,
            outcome,
            text,
        } => format!("{} {}: {text}", bilingual(level), bilingual(outcome)),
        EventKind::Resolve { chosen, note, .. } => format!("chose {chosen}: {note}"),
        EventKind::Mediate {
            mediation_type,
            mediator,
            result,
            agreement,
            ..
        } => {
            let mut text = format!(
                "{} by {mediator}: {}",
                bilingual(mediation_type),
                bilingual(result)
            );
            if !agreement.is_empty() {
                let _ = write!(text, " — {agreement}");
            }
            text
        }
        EventKind::UpdateJudicialConfirmation { mediation, status } => {
            format!("mediation {mediation}: {}", bilingual(status))
        }
        EventKind::LinkRepeat { earlier } => format!("repeat of {earlier}"),
        EventKind::IssueDirective {
            directive,
            target_node,
            requirement,
            due,
            listed,
        } => format!(
            "{directive}{} → {} by {due}: {requirement}",
            if *listed { " 挂牌督办" } else { "" },
            short_node(target_node)
        ),
        EventKind::AcknowledgeDirective { directive }
        | EventKind::CrossOffDirective { directive } => directive.clone(),
        EventKind::ReportDirective { directive, text } => format!("{directive}: {text}"),
        EventKind::ReturnDirective { directive, reason } => format!("{directive}: {reason}"),
        EventKind::AmendHeader { amendment } => {
            serde_json::to_string(amendment).unwrap_or_default()
        }
        EventKind::Note { text } => text.clone(),
        EventKind::Succeed { predecessor } => format!("in place of node {predecessor}"),
    }
}

/// The English plural ending for `count` things.
pub(crate) fn plural(count: impl TryInto<u64>) -> &'static str {
    if count.try_into().is_ok_and(|count| count == 1) {
        ""
    } else {
        "s"
    }
}

pub fn case_view_text(view: &CaseView, now: DateTime<Utc>) -> String {
    let header = &view.header;
    let state = &view.state;
    let mut text = String::new();
    let _ = writeln!(text, "Case {}", header.number);
    let mut facts = new_facts_table();
    facts.add_row(["channel 渠道".to_owned(), bilingual(&header.channel)]);
    facts.add_row([
        "category 类别".to_owned(),
        format!(
            "{} · {}",
            bilingual(&header.category),
            bilingual(&header.matter_type)
        ),
    ]);
    facts.add_row(["summary 诉求".to_owned(), header.summary.clone()]);
    let petitioners: Vec<String> = header
        .petitioners
        .iter()
        .map(|person| {
            let details: Vec<&str> = [&person.id_number, &person.phone, &person.address]
                .into_iter()
                .map(String::as_str)
                .filter(|value| !value.is_empty())
                .collect();
            let mut line = person.name.clone();
            if person.representative {
                line.push_str(" (代表 representative)");
            }
            if !details.is_empty() {
                let _ = write!(line, ": {}", details.join(", "));
            }
            line
        })
        .collect();
    facts.add_row([
        "petitioners 信访人".to_owned(),
        or_dash(&petitioners.join("\n")).to_owned(),
    ]);
    let mut headcount = header.headcount.to_string();
    if header.headcount >= 5 {
        headcount.push_str(" (集体访 group visit)");
    }
    facts.add_row(["headcount 人数".to_owned(), headcount]);
    facts.add_row([
        "respondent 被反映方".to_owned(),
        or_dash(&header.respondent).to_owned(),
    ]);
    if header.litigation_related {
        facts.add_row(["涉法涉诉".to_owned(), "litigation-related".to_owned()]);
    }
    let location = &header.location;
    let mut place = format!("{} ({})", or_dash(&location.village), location.region_code);
    if !location.grid.is_empty() {
        let _ = write!(place, ", {}", location.grid);
    }
    if !location.grid_worker.is_empty() {
        let _ = write!(place, ", 网格员 {}", location.grid_worker);
    }
    facts.add_row(["location 地点".to_owned(), place]);
    let ownership = &header.ownership;
    let owned: Vec<String> = [
        ("包案领导", ownership.leader.as_str()),
        ("责任单位", ownership.unit.as_str()),
        ("经办人", ownership.officer.as_str()),
        ("方案", ownership.plan.as_str()),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(label, value)| format!("{label} {value}"))
    .chain(ownership.target_date.map(|date| format!("办结时限 {date}")))
    .collect();
    if !owned.is_empty() {
        facts.add_row(["ownership 四定".to_owned(), owned.join("\n")]);
    }
    let _ = writeln!(text, "{facts}");

    let _ = writeln!(text, "\nState 状态");
    let mut status = new_facts_table();
    status.add_row(["status 状态".to_owned(), bilingual(&state.status)]);
    status.add_row(["holder 承办节点".to_owned(), state.holder.clone()]);
    if state.registered_by != state.holder {
        status.add_row([
            "registered by 登记节点".to_owned(),
            state.registered_by.clone(),
        ]);
    }
    if let Some(awaiting) = &state.awaiting {
        let mut waiting = awaiting.clone();
        if let Some(deadline) = state.assignment_deadline {
            let _ = write!(waiting, " (deadline {deadline})");
        }
        status.add_row(["awaiting 待接收".to_owned(), waiting]);
    }
    if !state.escalated_to.is_empty() {
        status.add_row([
            "escalated to 上报".to_owned(),
            state.escalated_to.join(" → "),
        ]);
    }
    if !state.sent_to.is_empty() {
        status.add_row(["sent to 交办/转送".to_owned(), state.sent_to.join(" → ")]);
    }
    let timeline = &state.timeline;
    let dates = [
        ("registered 登记", &timeline.registered_at),
        (
            "acceptance deadline 受理时限",
            &timeline.acceptance_deadline,
        ),
        ("decided 处理决定", &timeline.decided_at),
        ("objection deadline 异议时限", &timeline.objection_deadline),
        ("accepted 受理", &timeline.accepted_at),
        ("handling deadline 办理时限", &timeline.handling_deadline),
        ("replied 答复", &timeline.replied_at),
        (
            "evaluation deadline 评价时限",
            &timeline.evaluation_deadline,
        ),
        ("evaluated 评价", &timeline.evaluated_at),
        ("closed 办结", &timeline.closed_at),
        (
            "review requested 申请复查复核",
            &timeline.review_requested_at,
        ),
        ("review deadline 复查复核时限", &timeline.review_deadline),
    ];
    for (label, instant) in dates {
        if let Some(instant) = instant {
            status.add_row([label.to_owned(), china_time_labelled(instant)]);
        }
    }
    if let Some(days) = timeline.extended_days {
        status.add_row(["extended 延期".to_owned(), format!("{days} days")]);
    }
    if let Some((outcome, reply)) = &state.reply {
        status.add_row([
            "reply 答复".to_owned(),
            format!("{}: {reply}", bilingual(outcome)),
        ]);
    }
    if let Some(satisfaction) = &state.satisfaction {
        status.add_row(["satisfaction 评价".to_owned(), bilingual(satisfaction)]);
    }
    if let Some(resolved) = state.resolved {
        let resolution = if resolved {
            "resolved 已化解"
        } else {
            "unresolved 未化解"
        };
        status.add_row(["resolution 化解".to_owned(), resolution.to_owned()]);
    }
    if let Some((level, outcome)) = &state.review_outcome {
        status.add_row([
            "review 复查复核".to_owned(),
            format!("{} {}", bilingual(level), bilingual(outcome)),
        ]);
    } else if let Some(level) = &state.review_level {
        status.add_row(["review 复查复核".to_owned(), bilingual(level)]);
    }
    if let Some(earlier) = &state.repeat_of {
        status.add_row(["repeat of 重复信访".to_owned(), earlier.clone()]);
    }
    let _ = writeln!(text, "{status}");

    if view.warnings.is_empty() {
        let _ = writeln!(text, "\nWarnings 预警: none");
    } else {
        let _ = writeln!(text, "\nWarnings 预警");
        let mut warnings = new_table([
            "grade 等级",
            "deadline 时限",
            "due 到期 (UTC+8)",
            "directive 督办单",
        ]);
        for warning in &view.warnings {
            let overdue_days = (now - warning.due).num_days();
            let mut due = china_time(&warning.due);
            if overdue_days > 0 {
                let _ = write!(due, " ({overdue_days} days ago)");
            }
            warnings.add_row([
                bilingual(&warning.grade),
                bilingual(&warning.deadline),
                due,
                warning.directive.clone().unwrap_or_else(|| "-".to_owned()),
            ]);
        }
        let _ = writeln!(text, "{warnings}");
    }

    for refusal in &view.refused_by_peers {
        let office = if refusal.peer_name.is_empty() {
            short_node(&refusal.peer)
        } else {
            refusal.peer_name.clone()
        };
        let _ = writeln!(
            text,
            "\n⚠ Refused by {office} 被{office}拒收: {} change{} of ours did not travel on: {}",
            refusal.reasons.len(),
            plural(refusal.reasons.len()),
            refusal.reasons.join("; ")
        );
    }

    // Received events whose times break the time rule (kept, for a person to look at), then
    // this node's own note of an event stamped ahead of its clock.
    for flag in state.time_flags.iter().chain(&view.received_ahead) {
        let _ = writeln!(text, "\n⚠ {}", printable(flag));
    }

    if let Some(conflict) = &state.conflict {
        let _ = writeln!(
            text,
            "\n⚠ Conflict 冲突: concurrent transitions after event {} led to different outcomes.",
            conflict.fork
        );
        let mut branches = new_table([
            "choose with --chosen",
            "events",
            "node",
            "operator",
            "leads to",
            "holder",
        ]);
        for branch in &conflict.branches {
            branches.add_row([
                branch.first.clone(),
                branch.kinds.join(" → "),
                short_node(&branch.node),
                branch.operator.clone(),
                bilingual(&branch.status),
                short_node(&branch.holder),
            ]);
        }
        let _ = writeln!(text, "{branches}");
        if !conflict.disputed.is_empty() {
            let _ = writeln!(
                text,
                "Resolved differently by offices that did not see each other's decision \
                 (决定不一致):"
            );
            let mut decisions = new_table(["resolve", "chose", "node", "operator"]);
            for decision in &conflict.disputed {
                decisions.add_row([
                    decision.event.clone(),
                    decision.chosen.clone(),
                    short_node(&decision.node),
                    decision.operator.clone(),
                ]);
            }
            let _ = writeln!(text, "{decisions}");
        }
        let _ = writeln!(
            text,
            "Settle it: fengqiao case resolve {} --chosen EVENT_ID --note \"why\"",
            header.number
        );
    }

    if !state.directives.is_empty() {
        let _ = writeln!(text, "\nDirectives 督办单");
        let _ = writeln!(text, "{}", directives_of_case_table(&state.directives));
    }

    if !state.mediations.is_empty() {
        let _ = writeln!(text, "\nMediations 调解");
        let mut mediations = new_table([
            "event",
            "time 时间 (UTC+8)",
            "type 类型",
            "mediator 调解员",
            "result 结果",
            "agreement 协议",
            "司法确认",
        ]);
        for mediation in &state.mediations {
            mediations.add_row([
                mediation.event.clone(),
                china_time(&mediation.at),
                bilingual(&mediation.mediation_type),
                mediation.mediator.clone(),
                bilingual(&mediation.result),
                or_dash(&mediation.agreement).to_owned(),
                bilingual(&mediation.judicial_confirmation),
            ]);
        }
        let _ = writeln!(text, "{mediations}");
    }

    let _ = writeln!(text, "\nEvents 记录 ({})", view.events.len());
    let mut events = new_table([
        "time 时间 (UTC+8)",
        "event",
        "kind 事项",
        "node 节点",
        "operator 经办人",
        "details 内容",
    ]);
    for event in &view.events {
        let mut kind = event.kind.name().to_owned();
        if state.superseded.contains(&event.id) {
            kind.push_str(" (superseded)");
        }
        if state.invalid.contains(&event.id) {
            kind.push_str(" (invalid)");
        }
        if event.imported.is_some() {
            // Its time is the ledger's, not when this system recorded it.
            kind.push_str(" (imported 导入)");
        }
        let mut time = china_time(&event.at);
        if let Some(reason) = &event.backdated_reason {
            // 补录: the time given, with when it was recorded and why.
            let recorded = event
                .hlc
                .wall_time()
                .map_or_else(|| "-".to_owned(), |recorded| china_time(&recorded));
            time.push_str(&format!(
                " (补录 recorded {recorded}: {})",
                printable(reason)
            ));
        }
        events.add_row([
            time,
            event.id.clone(),
            kind,
            short_node(&event.node),
            event.operator.clone(),
            event_details(&event.kind),
        ]);
    }
    let _ = write!(text, "{events}");
    text
}

fn directives_of_case_table(directives: &[DirectiveState]) -> Table {
    let mut table = new_table([
        "id",
        "status 状态",
        "issued 下发",
        "target 对象",
        "due 期限",
        "requirement 要求",
        "reports 回复",
    ]);
    for directive in directives {
        let mut id = directive.id.clone();
        if directive.listed {
            id.push_str(" 挂牌");
        }
        table.add_row([
            id,
            bilingual(&directive.status),
            format!(
                "{} {}",
                china_date(&directive.issued_at),
                directive.issued_by
            ),
            short_node(&directive.target_node),
            china_date(&directive.due),
            directive.requirement.clone(),
            directive.reports.join("\n"),
        ]);
    }
    table
}

pub fn directive_table(items: &[DirectiveListItem], now: DateTime<Utc>) -> Table {
    let mut table = new_table([
        "case 案件",
        "directive 督办单",
        "status 状态",
        "target 对象",
        "due 期限",
        "requirement 要求",
        "warning 预警",
    ]);
    for item in items {
        let directive = &item.directive;
        let mut id = directive.id.clone();
        if directive.listed {
            id.push_str(" 挂牌");
        }
        let mut due = china_date(&directive.due);
        if directive.status != fengqiao_case::DirectiveStatus::CrossedOff && directive.due < now {
            due.push_str(" (past)");
        }
        table.add_row([
            item.case.clone(),
            id,
            bilingual(&directive.status),
            short_node(&directive.target_node),
            due,
            directive.requirement.clone(),
            worst_warning(&item.warnings),
        ]);
    }
    table
}

/// `95.8% (115/120)`, or `-` when nothing is in the denominator.
pub fn ratio_text(ratio: &Ratio) -> String {
    match ratio.rate() {
        Some(rate) => format!(
            "{:.1}% ({}/{})",
            rate * 100.0,
            ratio.numerator,
            ratio.denominator
        ),
        None => format!("- ({}/{})", ratio.numerator, ratio.denominator),
    }
}

pub(crate) const RATE_LABELS: [(&str, &str); 6] = [
    ("及时受理率", "timely acceptance"),
    ("按期办结率", "on-time completion"),
    ("参评率", "evaluation"),
    ("满意率", "satisfaction"),
    ("化解率", "resolution"),
    ("重复信访率", "repeat petitions"),
];

pub(crate) fn rates(set: &MeasureSet) -> [&Ratio; 6] {
    [
        &set.timely_acceptance,
        &set.on_time_completion,
        &set.evaluation,
        &set.satisfaction,
        &set.resolution,
        &set.repeat,
    ]
}

/// Whether imported ledger history was counted, said beside every figure it changes.
pub fn imported_cases_text(imported: fengqiao_case::ImportedCases) -> &'static str {
    match imported {
        fengqiao_case::ImportedCases::Include => "imported history counted 含导入台账",
        fengqiao_case::ImportedCases::Exclude => "imported history left out 不含导入台账",
    }
}

pub fn stats_text(measures: &Measures) -> String {
    let mut text = String::new();
    let period = match (&measures.from, &measures.to) {
        (None, None) => "all time 全部".to_owned(),
        (from, to) => {
            let mut period = String::new();
            if let Some(from) = from {
                let _ = write!(period, "from {}", china_date(from));
            }
            if let Some(to) = to {
                let _ = write!(
                    period,
                    "{}before {}",
                    if from.is_some() { " " } else { "" },
                    china_date(to)
                );
            }
            period
        }
    };
    let total = &measures.total;
    let _ = writeln!(
        text,
        "Measures 指标 · cases registered {period}: {} · {} · judged at {}",
        total.cases,
        imported_cases_text(measures.imported),
        china_time_labelled(&measures.now)
    );
    let mut rate_table = new_table(["指标", "measure", "rate (count/base)"]);
    for ((chinese, english), ratio) in RATE_LABELS.iter().zip(rates(total)) {
        rate_table.add_row([chinese.to_string(), english.to_string(), ratio_text(ratio)]);
    }
    let _ = writeln!(text, "{rate_table}");

    let mut open = new_table(["监督", "supervision", "count"]);
    let counts = [
        ("预警", "approaching deadline", total.approaching),
        ("超时", "overdue", total.overdue),
        ("严重超时", "seriously overdue", total.seriously_overdue),
        ("督办未销号", "directives open", total.directives_open),
        ("督办超期", "directives overdue", total.directives_overdue),
        (
            "督办已销号",
            "directives crossed off",
            total.directives_crossed_off,
        ),
        ("上报", "escalated", total.escalated),
        ("交办", "assigned", total.assigned),
        ("冲突待处理", "in conflict", total.in_conflict),
    ];
    for (chinese, english, count) in counts {
        open.add_row([chinese.to_owned(), english.to_owned(), count.to_string()]);
    }
    let _ = writeln!(text, "{open}");

    if !total.by_status.is_empty() {
        let mut statuses = new_table(["status 状态", "cases"]);
        for (status, count) in &total.by_status {
            statuses.add_row([bilingual(status), count.to_string()]);
        }
        let _ = writeln!(text, "{statuses}");
    }

    if !measures.by_category.is_empty() {
        let mut header = vec!["category 类别".to_owned(), "cases".to_owned()];
        header.extend(RATE_LABELS.iter().map(|(chinese, _)| (*chinese).to_owned()));
        header.push("超时".to_owned());
        let mut categories = Table::new();
        categories
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(header);
        for (category, set) in &measures.by_category {
            let mut row = vec![bilingual(category), set.cases.to_string()];
            row.extend(rates(set).iter().map(|ratio| match ratio.rate() {
                Some(rate) => format!("{:.1}%", rate * 100.0),
                None => "-".to_owned(),
            }));
            row.push((set.overdue + set.seriously_overdue).to_string());
            categories.add_row(row);
        }
        let _ = write!(text, "By category 分类\n{categories}");
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use fengqiao_case::*;
    use std::collections::BTreeMap;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 1, 30, 0).unwrap()
    }

    fn timeline() -> Timeline {
        Timeline {
            registered_at: Some(at(1)),
            acceptance_deadline: Some(at(16)),
            accepted_at: Some(at(2)),
            handling_deadline: Some(at(31)),
            ..Timeline::default()
        }
    }

    fn directive() -> DirectiveState {
        DirectiveState {
            id: "D1A2B3C4".into(),
            issuer_node: "county-node-0123456789".into(),
            issued_by: "区信访局 督查科".into(),
            issued_at: at(3),
            target_node: "township-node-0123456789".into(),
            requirement: "七日内约谈厂方负责人，拿出补发方案".into(),
            due: at(10),
            listed: true,
            status: DirectiveStatus::Reported,
            reports: vec!["已约谈，厂方承诺分三期补发".into()],
            crossed_off_at: None,
        }
    }

    fn view() -> CaseView {
        let header = CaseHeader {
            number: "430702001001-2026-000001".into(),
            channel: Channel::Visit,
            petitioners: vec![Petitioner {
                name: "张国强".into(),
                id_number: "210202196605120030".into(),
                id_type: Default::default(),
                phone: "13998765432".into(),
                address: "芦荻山乡3组".into(),
                representative: true,
            }],
            headcount: 23,
            respondent: "常德市台秤厂（已停产）".into(),
            category: Category::WageArrears,
            matter_type: MatterType::Appeal,
            litigation_related: false,
            summary: "反映台秤厂拖欠工资、公积金、保险，要求补发".into(),
            location: Location {
                region_code: "430702001001".into(),
                village: "芦荻山村".into(),
                grid: "第三网格".into(),
                grid_worker: "李建国".into(),
            },
            ownership: Ownership {
                leader: "王副区长".into(),
                unit: "区人社局".into(),
                officer: "赵敏".into(),
                plan: "摸清欠薪底数，协调破产管理人".into(),
                target_date: NaiveDate::from_ymd_opt(2026, 4, 30),
            },
        };
        let event = |id: &str, kind: EventKind, day: u32| Event {
            id: id.into(),
            kind,
            at: at(day),
            node: "county-node-0123456789".into(),
            operator: "测试员 tester".into(),
            prev: None,
            hlc: Default::default(),
            signature: None,
            imported: None,
            backdated_reason: None,
        };
        let events = vec![
            event(
                "e1",
                EventKind::Register {
                    header: None,
                    policy_version: 0,
                },
                1,
            ),
            event("e2", EventKind::Accept {}, 2),
            event(
                "e3",
                EventKind::Mediate {
                    mediation_type: MediationType::Petition,
                    mediator: "李调解".into(),
                    result: MediationResult::Agreement,
                    agreement: "分三期补发".into(),
                    judicial_confirmation: JudicialConfirmation::Applied,
                },
                3,
            ),
            event(
                "e4",
                EventKind::IssueDirective {
                    directive: "D1A2B3C4".into(),
                    target_node: "township-node-0123456789".into(),
                    requirement: "七日内约谈厂方负责人".into(),
                    due: NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
                    listed: true,
                },
                3,
            ),
            event(
                "e5",
                EventKind::Note {
                    text: "电话回访，情绪稳定".into(),
                },
                4,
            ),
        ];
        let state = CaseState {
            time_flags: vec![
                "时间存疑: accept e2 (by node) is dated before the register e1".into(),
            ],
            status: Status::Accepted,
            holder: "county-node-0123456789".into(),
            registered_by: "village-node-0123456789".into(),
            tip: "e2".into(),
            timeline: timeline(),
            reply: None,
            satisfaction: None,
            resolved: None,
            review_level: None,
            review_outcome: None,
            repeat_of: None,
            escalated_to: vec!["county-node-0123456789".into()],
            sent_to: Vec::new(),
            awaiting: None,
            assigned_by: None,
            assignment_deadline: None,
            directives: vec![directive()],
            mediations: vec![MediationRecord {
                event: "e3".into(),
                at: at(3),
                mediation_type: MediationType::Petition,
                mediator: "李调解".into(),
                result: MediationResult::Agreement,
                agreement: "分三期补发".into(),
                judicial_confirmation: JudicialConfirmation::Applied,
            }],
            conflict: Some(Conflict {
                fork: "e2".into(),
                branches: vec![ConflictBranch {
                    first: "e6".into(),
                    kinds: vec!["reply".into()],
                    node: "county-node-0123456789".into(),
                    operator: "甲".into(),
                    status: Status::Replied,
                    holder: "county-node-0123456789".into(),
                }],
                disputed: vec![ResolveDecision {
                    event: "e7".into(),
                    chosen: "e6".into(),
                    node: "county-node-0123456789".into(),
                    operator: "乙".into(),
                }],
            }),
            superseded: vec![],
            invalid: vec!["e5".into()],
            event_count: 5,
            last_event_at: Some(at(4)),
            imported: false,
        };
        CaseView {
            header,
            state,
            events,
            warnings: vec![Warning {
                deadline: DeadlineKind::Directive,
                grade: WarningGrade::Overdue,
                due: at(10),
                directive: Some("D1A2B3C4".into()),
            }],
            refused_by_peers: vec![fengqiao_case::model::sync::PeerRefusal {
                format_version: 1,
                peer: "township-node-0123456789".into(),
                peer_name: "芦荻山乡".into(),
                case: "430702001001-2026-000001".into(),
                reasons: vec!["node x is not allowed to reply".into()],
            }],
            received_ahead: None,
        }
    }

    #[test]
    fn case_view_renders_cjk_without_panicking() {
        let text = case_view_text(&view(), at(20));
        println!("{text}");
        for expected in [
            "430702001001-2026-000001",
            "张国强",
            "集体访",
            "accepted 已受理",
            "overdue 超时",
            "Conflict",
            "决定不一致",
            "被芦荻山乡拒收",
            "node x is not allowed",
            "fengqiao case resolve",
            "D1A2B3C4 挂牌",
            "分三期补发",
            "2026-03-01 09:30 (UTC+8)",
            "(invalid)",
            "⚠ 时间存疑: accept e2",
        ] {
            assert!(text.contains(expected), "missing {expected}:\n{text}");
        }
    }

    #[test]
    fn case_list_shows_next_deadline_and_worst_warning() {
        let view = view();
        let summary = CaseSummary {
            schema_version: SCHEMA_VERSION,
            number: view.header.number.clone(),
            channel: Channel::Visit,
            category: Category::WageArrears,
            matter_type: MatterType::Appeal,
            headcount: 23,
            litigation_related: false,
            region_code: "430702001001".into(),
            village: "芦荻山村".into(),
            respondent: String::new(),
            status: Status::Accepted,
            holder: view.state.holder.clone(),
            registered_by: view.state.holder.clone(),
            timeline: timeline(),
            satisfaction: None,
            resolved: None,
            repeat_of: None,
            escalated: false,
            assigned: false,
            directives: vec![directive()],
            in_conflict: true,
            event_count: 5,
            last_event_at: None,
            imported: false,
            petitioner_names: Vec::new(),
        };
        let items = vec![CaseListItem {
            summary,
            warnings: view.warnings.clone(),
        }];
        let text = case_list_table(&items).to_string();
        println!("{text}");
        assert!(text.contains("芦荻山村"), "{text}");
        assert!(
            text.contains("2026-03-10 督办时限"),
            "directive due first:\n{text}"
        );
        assert!(text.contains("overdue 超时 (directive)"), "{text}");
        assert!(text.contains("conflict"), "{text}");
        let directives = directive_table(
            &[DirectiveListItem {
                case: items[0].summary.number.clone(),
                holder: "county".into(),
                directive: directive(),
                warnings: vec![],
            }],
            at(20),
        )
        .to_string();
        assert!(
            directives.contains("(past)") && directives.contains("七日内"),
            "{directives}"
        );
    }

    #[test]
    fn stats_render_rates_with_counts_and_categories() {
        let mut total = MeasureSet {
            cases: 120,
            timely_acceptance: Ratio {
                numerator: 115,
                denominator: 120,
            },
            ..MeasureSet::default()
        };
        total.by_status.insert(Status::Closed, 100);
        let mut by_category = BTreeMap::new();
        by_category.insert(Category::WageArrears, total.clone());
        let measures = Measures {
            schema_version: SCHEMA_VERSION,
            from: Some(at(1)),
            to: None,
            imported: fengqiao_case::ImportedCases::Exclude,
            now: at(20),
            total,
            by_category,
        };
        let text = stats_text(&measures);
        println!("{text}");
        assert!(
            text.contains("及时受理率") && text.contains("95.8% (115/120)"),
            "{text}"
        );
        assert!(text.contains("- (0/0)"), "empty ratio is a dash:\n{text}");
        assert!(text.contains("wage_arrears 拖欠工资"), "{text}");
        assert!(text.contains("closed 已办结"), "{text}");
        assert!(text.contains("imported history left out"), "{text}");
        assert!(
            text.contains("judged at 2026-03-20 09:30 (UTC+8)"),
            "the time says it is China time:\n{text}"
        );
    }

    #[test]
    fn stored_control_characters_print_escaped() {
        let mut view = view();
        view.header.summary = "欠薪\u{1b}]0;owned\u{7}\n第二行\r\u{202e}".into();
        view.header.location.village = "芦荻山村\u{1b}[2J".into();
        let text = case_view_text(&view, at(20));
        let shown = printable(&text);
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{202e}'),
            "{shown}"
        );
        assert!(!shown.contains('\r') && !shown.contains('\u{7}'), "{shown}");
        for escaped in ["\\u{1b}]0;owned\\u{7}", "\\u{202e}", "芦荻山村\\u{1b}[2J"] {
            assert!(shown.contains(escaped), "missing {escaped}:\n{shown}");
        }
        assert!(
            shown.contains("第二行"),
            "a line break in a summary stays one"
        );
        assert_eq!(printable("张三\n李四"), "张三\n李四");

        let json = serde_json::to_string(&json_text_sample()).unwrap();
        let shown = printable_json(&json);
        let read_back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(
            read_back,
            json_text_sample(),
            "a script reads the same values"
        );
        assert!(
            shown
                .chars()
                .all(|character| !input_bounds::is_control_or_reordering(character)),
            "{shown}"
        );
    }

    fn json_text_sample() -> serde_json::Value {
        serde_json::json!({"summary": "a\u{1b}b\u{9b}c\u{7f}d\u{202e}e\u{2028}f\n"})
    }

    #[test]
    fn event_details_cover_every_kind_briefly() {
        let details = event_details(&EventKind::Close {
            resolved: false,
            note: "息访".into(),
        });
        assert_eq!(details, "unresolved 未化解: 息访");
        assert_eq!(short_node("abcdefghijklmnopqrstuvwxyz"), "abcdefghij…");
        assert_eq!(short_node("short"), "short");
    }
}
