//! The audit commands: `audit log CASE` (who did what, from which node, when, signature status),
//! `audit verify` (every signature of every case; exits non-zero on any failure) and
//! `quarantine` (changes refused on receipt), all asked of a running node through its API.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fengqiao_case::HybridTimestamp;
use fengqiao_case::audit::{AuditEvent, AuditLog, AuditReport, QuarantineListing};
use fengqiao_case::deadlines::china_offset;
use fengqiao_case::event_time;

use super::output::{emit, print_json};
use super::render::{new_table, plural, short_node};
use crate::client::NodeClient;
use crate::import::values::china_time;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Who did what to a case, from which node, when, and whether each signature holds
    Log {
        /// The case number, e.g. 430702001002-2026-000123
        number: String,
    },
    /// Check every signature and event of every case on the node; exits 1 on any failure
    Verify,
}

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    /// Only records after this id (the previous listing's last id)
    #[arg(long, value_name = "ID")]
    pub after: Option<u64>,
    /// At most this many records (the node hands out at most 1000 at once)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

pub fn run(command: AuditCommand, client: &NodeClient, json: bool) -> anyhow::Result<()> {
    match command {
        AuditCommand::Log { number } => log(client, &number, json),
        AuditCommand::Verify => verify(client, json),
    }
}

fn log(client: &NodeClient, number: &str, json: bool) -> anyhow::Result<()> {
    // The same escaping as every case path, under the audit prefix.
    let path = super::case::case_path(number).replacen("/api/cases/", "/api/audit/cases/", 1);
    let answer = client.get(&path, &[])?;
    if json {
        return print_json(&answer);
    }
    let log: AuditLog =
        serde_json::from_value(answer).with_context(|| format!("unexpected answer from {path}"))?;
    emit(audit_log_text(&log))
}

fn verify(client: &NodeClient, json: bool) -> anyhow::Result<()> {
    let answer = client.get("/api/audit/verify", &[])?;
    let report: AuditReport = serde_json::from_value(answer.clone())
        .context("unexpected answer from /api/audit/verify")?;
    if json {
        print_json(&answer)?;
    } else {
        emit(audit_report_text(&report))?;
    }
    if !report.is_clean() {
        // The exit status is what scripts and monitoring read; the reason goes to stderr.
        bail!(
            "audit verify failed: {} failure{} in {} case{} checked",
            report.failures.len(),
            plural(report.failures.len()),
            report.cases_checked,
            plural(report.cases_checked),
        );
    }
    Ok(())
}

pub fn quarantine(args: QuarantineArgs, client: &NodeClient, json: bool) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(after) = args.after {
        query.push(("after", after.to_string()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let answer = client.get("/api/quarantine", &query)?;
    if json {
        return print_json(&answer);
    }
    let listing: QuarantineListing =
        serde_json::from_value(answer).context("unexpected answer from /api/quarantine")?;
    emit(quarantine_text(&listing))
}

/// A hybrid time for people: its wall part in China time, the full date to the millisecond (a
/// clock days off shows as days off), and the counter.
fn hybrid_time_text(hlc: HybridTimestamp) -> String {
    if hlc == HybridTimestamp::ZERO {
        return "-".to_owned();
    }
    match hlc.wall_time() {
        Some(wall) => format!(
            "{} #{}",
            wall.with_timezone(&china_offset())
                .format("%Y-%m-%d %H:%M:%S%.3f"),
            hlc.counter
        ),
        None => format!("{}ms #{}", hlc.wall_ms, hlc.counter),
    }
}

/// What an audit row says besides who and when: the import that made the event, if one did
/// (its time is then the ledger's), the time the node recorded it when that differs from the
/// time it claims, the reason for back-dating it, and the event's non-personal details.
fn details_text(event: &AuditEvent) -> String {
    let mut parts = Vec::new();
    if let Some(mark) = &event.imported {
        parts.push(format!("imported 导入 (import {})", mark.import_id));
    }
    if event_time::times_differ(event.at, event.hlc)
        && let Some(recorded) = event.hlc.wall_time()
    {
        parts.push(format!(
            "dated {} but recorded 记录于 {}",
            china_time(&event.at),
            china_time(&recorded)
        ));
    }
    if let Some(reason) = &event.backdated_reason {
        parts.push(format!("补录原因 back-dated because: {reason}"));
    }
    if !event.summary.is_empty() {
        parts.push(event.summary.clone());
    }
    if parts.is_empty() {
        return "-".to_owned();
    }
    parts.join("; ")
}

/// A case's audit trail as a table, one row per event.
pub fn audit_log_text(log: &AuditLog) -> String {
    if log.events.is_empty() {
        return format!("case {}: no events", log.case);
    }
    let mut table = new_table([
        "TIME",
        "HLC",
        "NODE",
        "OPERATOR",
        "KIND",
        "DETAILS",
        "SIGNATURE",
    ]);
    for event in &log.events {
        let node = match &event.office {
            Some(office) => format!("{office} ({})", short_node(&event.node)),
            None => short_node(&event.node),
        };
        table.add_row([
            china_time(&event.at),
            hybrid_time_text(event.hlc),
            node,
            event.operator.clone(),
            event.kind.clone(),
            details_text(event),
            event.signature.to_string(),
        ]);
    }
    let not_valid = log
        .events
        .iter()
        .filter(|event| !event.signature.is_valid())
        .count();
    let verdict = if not_valid == 0 {
        "all signatures valid".to_owned()
    } else {
        format!("{not_valid} not valid")
    };
    format!(
        "case {}: {} event{}, {verdict} (times in China time)\n{table}",
        log.case,
        log.events.len(),
        plural(log.events.len())
    )
}

/// The verification report: one line when clean, else the failures and the summary.
pub fn audit_report_text(report: &AuditReport) -> String {
    let checked = format!(
        "checked {} case{}, {} event{}",
        report.cases_checked,
        plural(report.cases_checked),
        report.events_checked,
        plural(report.events_checked)
    );
    let quarantined = if report.quarantined == 0 {
        String::new()
    } else {
        format!(
            "\n{} change{} from peers quarantined (not applied): `fengqiao quarantine` lists them",
            report.quarantined,
            plural(report.quarantined)
        )
    };
    if report.is_clean() {
        return format!("{checked}: all signatures valid{quarantined}");
    }
    let mut table = new_table(["CASE", "EVENT", "NODE", "REASON"]);
    for failure in &report.failures {
        table.add_row([
            failure.case.clone(),
            failure
                .event
                .as_deref()
                .map_or_else(|| "-".to_owned(), short_node),
            failure
                .node
                .as_deref()
                .map_or_else(|| "-".to_owned(), short_node),
            failure.reason.clone(),
        ]);
    }
    let unsigned = if report.unsigned == 0 {
        String::new()
    } else {
        format!(
            " ({} unsigned event{}: documents of schema 1 were never signed, so their events \
             count as failures)",
            report.unsigned,
            plural(report.unsigned)
        )
    };
    format!(
        "{table}\n{checked}: {} failure{}{unsigned}{quarantined}",
        report.failures.len(),
        plural(report.failures.len())
    )
}

/// The quarantine listing as a table, or a line saying there is nothing in it.
pub fn quarantine_text(listing: &QuarantineListing) -> String {
    let unreadable = if listing.unreadable == 0 {
        String::new()
    } else {
        format!(
            "\n{} record{} could not be read (see the node's log)",
            listing.unreadable,
            plural(listing.unreadable)
        )
    };
    if listing.entries.is_empty() {
        return format!("no quarantined changes{unreadable}");
    }
    let mut table = new_table([
        "ID", "RECEIVED", "PEER", "CASE", "CHANGE", "BYTES", "REASON",
    ]);
    for entry in &listing.entries {
        table.add_row([
            entry.id.to_string(),
            china_time(&entry.received_at),
            short_node(&entry.peer),
            entry.case.clone(),
            short_node(&entry.change_hash),
            entry.change_bytes.to_string(),
            entry.reason.clone(),
        ]);
    }
    let more = match listing.next_after {
        Some(after) => format!("\nmore: fengqiao quarantine --after {after}"),
        None => String::new(),
    };
    format!("{table}{more}{unreadable}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fengqiao_case::audit::{AuditEvent, AuditFailure, SignatureStatus};

    fn report(failures: Vec<AuditFailure>, unsigned: u64) -> AuditReport {
        AuditReport {
            schema_version: fengqiao_case::SCHEMA_VERSION,
            cases_checked: 2,
            events_checked: 5,
            unsigned,
            failures,
            quarantined: 0,
        }
    }

    #[test]
    fn a_clean_report_is_one_line() {
        assert_eq!(
            audit_report_text(&report(Vec::new(), 0)),
            "checked 2 cases, 5 events: all signatures valid"
        );
    }

    #[test]
    fn failures_are_listed_with_the_unsigned_explained() {
        let failure = AuditFailure {
            case: "430702001002-2026-000001".to_owned(),
            event: Some("e1".to_owned()),
            node: Some("n1".to_owned()),
            reason: "unsigned (schema 1)".to_owned(),
        };
        let text = audit_report_text(&report(vec![failure], 1));
        assert!(text.contains("430702001002-2026-000001"), "{text}");
        assert!(
            text.contains("checked 2 cases, 5 events: 1 failure (1 unsigned event"),
            "{text}"
        );
        assert!(text.contains("count as failures"), "{text}");
    }

    #[test]
    fn the_log_shows_office_operator_and_signature() {
        let log = AuditLog {
            schema_version: fengqiao_case::SCHEMA_VERSION,
            case: "430702001002-2026-000001".to_owned(),
            events: vec![AuditEvent {
                backdated_reason: None,
                id: "e1".to_owned(),
                kind: "accept".to_owned(),
                summary: String::new(),
                at: chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("a valid time"),
                hlc: HybridTimestamp {
                    wall_ms: 1_780_000_000_000,
                    counter: 2,
                },
                node: "0123456789abcdef0123456789abcdef".to_owned(),
                office: Some("芦荻山村调解室".to_owned()),
                operator: "李四".to_owned(),
                signature: SignatureStatus::Invalid {
                    reason: "the signature does not verify".to_owned(),
                },
                imported: Some(fengqiao_case::ImportMark {
                    import_id: "20260305T093000-1f2e3d4c".to_owned(),
                    row_key: "sha256:00".to_owned(),
                }),
            }],
        };
        let text = audit_log_text(&log);
        assert!(text.contains("1 event, 1 not valid"), "{text}");
        assert!(text.contains("芦荻山村调解室 (0123456789…)"), "{text}");
        assert!(text.contains("李四") && text.contains("#2"), "{text}");
        assert!(
            text.contains("imported 导入 (import 20260305T093000-1f2e3d4c)"),
            "{text}"
        );
        assert!(
            text.contains("invalid: the signature does not verify"),
            "{text}"
        );
    }
}
