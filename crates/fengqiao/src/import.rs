//! `fengqiao import`: bring an existing ledger into a node, checked whole, safely re-runnable.
//!
//! The file is parsed here, validated by the node with a dry run of every row, and only when no
//! row is rejected uploaded in batches (each batch atomic on the node). A re-run is idempotent
//! row by row: rows that carry a case number come back "already present"; rows without one come
//! back "already imported" when an earlier run registered them, because the node records each
//! row's identity (`fengqiao_case::import::row_key`, from its content) in the transaction that
//! writes its case. So an import killed part-way is completed by running it again. Every event
//! an import makes carries its mark: this run's import id and the row's key.

pub mod export;
pub mod ledger;
pub mod values;

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};
use comfy_table::Table;
use fengqiao_case::{ImportBatch, ImportOutcome, ImportRow, ImportRowReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::output::{emit, print_json};
use crate::client::NodeClient;
pub use ledger::{LedgerFormat, ParsedLedger, RowProblem, parse_ledger};

/// What `fengqiao import --help` says the command does, README.md too (a test holds them equal):
/// how a re-run behaves, which is what makes an interrupted import safe to finish.
pub const IMPORT_HELP: &str = "\
Import an existing ledger (CSV or JSON lines): checked whole, then written; safe to run again.

The node checks every row before anything is written: if any row is refused, nothing is written, \
and each refusal names its line and the column as the file spells it (答复内容: …). The rows are \
then written in batches (--batch rows each), each batch atomic: all its cases or none.

Running the same import again is idempotent for every row. A row with a case number whose case \
exists is \"already present\". A row without a number is known by its content (the values as \
read, not its line; the second of two identical rows is kept apart from the first): the node \
records it with its case in the same transaction, and on a re-run the row is \"already \
imported, case N\". So an import stopped part-way (kill -9, a power cut, a lost connection) is \
finished by running it again, and nothing is registered twice. A row edited between the runs is \
a new row.

Every event an import makes is marked as imported, with this run's import id and row key; the \
operator is recorded as in any event. Its time is the ledger's. `case show`, the case JSON and \
`audit log` show the mark, and `stats --without-imported` leaves the imported cases out.";

/// Rows per `POST /api/import` unless `--batch` says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 500;

/// What `fengqiao import` was asked to do.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub format: Option<LedgerFormat>,
    pub dry_run: bool,
    pub batch_rows: usize,
    /// Print the node's per-row reports as JSON instead of tables.
    pub json: bool,
}

/// Counts of the outcomes over a whole import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportTotals {
    pub imported: u64,
    pub already_present: u64,
    pub already_imported: u64,
    pub rejected: u64,
}

impl ImportTotals {
    pub fn count(reports: &[ImportRowReport]) -> ImportTotals {
        let mut totals = ImportTotals::default();
        for report in reports {
            match report.outcome {
                ImportOutcome::Imported => totals.imported += 1,
                ImportOutcome::AlreadyPresent => totals.already_present += 1,
                ImportOutcome::AlreadyImported => totals.already_imported += 1,
                ImportOutcome::Rejected => totals.rejected += 1,
            }
        }
        totals
    }
}

/// `fengqiao import --template FILE`: an empty ledger workbook with the import's headers and a
/// sheet explaining them ([`export::write_template`]), written whole or not at all.
pub fn write_template_file(path: &Path) -> anyhow::Result<()> {
    crate::cli::output::write_file_whole(path, |file| Ok(export::write_template(file)?))?;
    emit(format!(
        "wrote the ledger template {}: fill in the sheet {}, see {} for each column, then run \
         `fengqiao import {}`",
        path.display(),
        export::LEDGER_SHEET,
        export::EXPLANATION_SHEET,
        path.display()
    ))
}

/// Run `fengqiao import FILE`: parse, validate everything, then upload or refuse.
pub fn import_file(
    client: &NodeClient,
    path: &Path,
    options: &ImportOptions,
) -> anyhow::Result<ImportTotals> {
    let format = match options.format.or_else(|| LedgerFormat::from_path(path)) {
        Some(format) => format,
        None => bail!(
            "cannot tell the format of {} from its name: pass --format csv, --format jsonl or --format xlsx",
            path.display()
        ),
    };
    // Mutations need an operator; say so before reading a large file.
    client.require_credentials()?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = if format == LedgerFormat::Xlsx {
        ledger::workbook_as_csv(&bytes)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?
    } else {
        String::from_utf8(bytes).with_context(|| {
            format!(
                "{} is not UTF-8 text: save it as UTF-8 (spreadsheets: \"CSV UTF-8\")",
                path.display()
            )
        })?
    };
    let parsed = parse_ledger(&text, format);
    if !parsed.ignored_columns.is_empty() {
        eprintln!(
            "note: ignoring column(s) the importer does not know: {}",
            parsed.ignored_columns.join(", ")
        );
    }
    let batch_rows = options.batch_rows.max(1);
    let total_rows = parsed.rows.len() + parsed.problems.len();
    let import_id = new_import_id()?;

    let mut checked = upload_in_batches(
        client,
        &parsed.rows,
        &import_id,
        batch_rows,
        true,
        "checking",
    )?;
    name_the_columns(&mut checked, &parsed);
    let mut refused: Vec<ImportRowReport> = parsed
        .problems
        .iter()
        .map(|problem| ImportRowReport {
            line: problem.line,
            number: None,
            outcome: ImportOutcome::Rejected,
            error: Some(problem.reason.clone()),
            field: None,
        })
        .collect();
    refused.extend(
        checked
            .iter()
            .filter(|report| report.outcome == ImportOutcome::Rejected)
            .cloned(),
    );
    refused.sort_by_key(|report| report.line);
    if !refused.is_empty() {
        if options.json {
            print_json(&refused)?;
        } else {
            emit(rejected_rows_table(&refused))?;
        }
        bail!(
            "{} of {total_rows} row(s) cannot be imported, so nothing was imported: fix the rows \
             listed above and run the import again",
            refused.len()
        );
    }
    let would = ImportTotals::count(&checked);
    if options.dry_run {
        if options.json {
            print_json(&checked)?;
        } else {
            emit(format!(
                "dry run: all {} row(s) are valid; {} would be imported, {} were imported by an \
                 earlier run, {} are already present. Nothing was written.",
                checked.len(),
                would.imported,
                would.already_imported,
                would.already_present
            ))?;
        }
        return Ok(would);
    }

    let mut reports = upload_in_batches(
        client,
        &parsed.rows,
        &import_id,
        batch_rows,
        false,
        "importing",
    )?;
    name_the_columns(&mut reports, &parsed);
    let totals = ImportTotals::count(&reports);
    if options.json {
        print_json(&reports)?;
    } else {
        let rejected: Vec<ImportRowReport> = reports
            .iter()
            .filter(|report| report.outcome == ImportOutcome::Rejected)
            .cloned()
            .collect();
        if !rejected.is_empty() {
            emit(rejected_rows_table(&rejected))?;
        }
        emit(already_imported_text(&reports))?;
        emit(format!(
            "imported {}, already imported {} (by an earlier run), already present {}, rejected \
             {} (of {} row(s) in {}; import {import_id})",
            totals.imported,
            totals.already_imported,
            totals.already_present,
            totals.rejected,
            reports.len(),
            path.display()
        ))?;
    }
    if totals.rejected > 0 {
        // Validation passed a moment ago, so the node changed in between (another import?).
        bail!(
            "{} row(s) were rejected during the upload although the check passed; the batches \
             without rejections were imported. Fix the rows and run the same import again: rows \
             already imported come back as already present",
            totals.rejected
        );
    }
    Ok(totals)
}

/// This run's id, recorded in every event it makes: the China time it started and 4 random
/// bytes, so that `audit log` tells the runs apart and orders them.
fn new_import_id() -> anyhow::Result<String> {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random)
        .map_err(|error| anyhow::anyhow!("the operating system's random source failed: {error}"))?;
    let started = crate::wall_clock::now().with_timezone(&fengqiao_case::deadlines::china_offset());
    Ok(format!(
        "{}-{}",
        started.format("%Y%m%dT%H%M%S"),
        hex::encode(random)
    ))
}

/// Rewrite the node's refusals of CSV rows to name the column as the file spells it
/// (`答复内容: …` for `history[1].text: …`): the person knows their columns, not the events
/// the importer made of them. JSON lines keep the path, which is the file's own.
pub fn name_the_columns(reports: &mut [ImportRowReport], parsed: &ParsedLedger) {
    if parsed.column_headers.is_empty() {
        return;
    }
    let rows: std::collections::HashMap<u64, &ImportRow> =
        parsed.rows.iter().map(|row| (row.line, row)).collect();
    for report in reports {
        let (Some(field), Some(error), Some(row)) =
            (&report.field, &report.error, rows.get(&report.line))
        else {
            continue;
        };
        // A column the file lacks is named as the importer knows it.
        let Some(header) = ledger::column_for_field(row, field).map(|column| {
            parsed
                .column_headers
                .get(column)
                .map_or(column, String::as_str)
        }) else {
            continue;
        };
        let why = error
            .strip_prefix(field.as_str())
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(error);
        report.error = Some(format!("{header}: {why}"));
    }
}

/// Which rows an earlier run had imported, and the cases they became (so a person can check
/// them); empty when none.
fn already_imported_text(reports: &[ImportRowReport]) -> String {
    let lines: Vec<String> = reports
        .iter()
        .filter(|report| report.outcome == ImportOutcome::AlreadyImported)
        .map(|report| {
            format!(
                "line {}: already imported, case {}",
                report.line,
                report.number.as_deref().unwrap_or("?")
            )
        })
        .collect();
    lines.join("\n")
}

/// POST the rows in batches (each atomic on the node) with a progress bar on stderr, and return
/// every row's report. With `dry_run` the node only validates.
pub fn upload_in_batches(
    client: &NodeClient,
    rows: &[ImportRow],
    import_id: &str,
    batch_rows: usize,
    dry_run: bool,
    activity: &'static str,
) -> anyhow::Result<Vec<ImportRowReport>> {
    let progress = progress_bar(rows.len() as u64, activity);
    let mut reports = Vec::with_capacity(rows.len());
    for batch in rows.chunks(batch_rows.max(1)) {
        let body = ImportBatch {
            rows: batch.to_vec(),
            dry_run,
            import_id: Some(import_id.to_owned()),
        };
        let first_line = batch.first().map(|row| row.line).unwrap_or_default();
        let batch_reports: Vec<ImportRowReport> = client
            .post_as("/api/import", &body)
            .with_context(|| format!("{activity} the batch starting at line {first_line}"))?;
        progress.inc(batch.len() as u64);
        reports.extend(batch_reports);
    }
    progress.finish_and_clear();
    Ok(reports)
}

/// A progress bar on stderr, or a hidden one when stderr is not a terminal (scripts, logs).
pub fn progress_bar(length: u64, activity: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let progress = ProgressBar::new(length);
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} rows ({eta})")
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    progress.set_style(style);
    progress.set_message(activity.to_owned());
    progress
}

/// The rejected rows as a table: line, case number, reason.
pub fn rejected_rows_table(reports: &[ImportRowReport]) -> Table {
    let mut table = crate::cli::render::new_table(["line 行", "number 编号", "reason 原因"]);
    for report in reports {
        table.add_row([
            report.line.to_string(),
            report.number.clone().unwrap_or_default(),
            report
                .error
                .clone()
                .unwrap_or_else(|| "rejected".to_owned()),
        ]);
    }
    table
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The fake node below takes any credentials; the client needs some to post.
    fn test_credentials() -> crate::client::Credentials {
        crate::client::Credentials {
            bearer: "fqt_test".to_owned(),
            act_as: None,
        }
    }

    #[test]
    fn totals_count_each_outcome() {
        let report = |outcome| ImportRowReport {
            line: 1,
            number: None,
            outcome,
            error: None,
            field: None,
        };
        let totals = ImportTotals::count(&[
            report(ImportOutcome::Imported),
            report(ImportOutcome::Imported),
            report(ImportOutcome::AlreadyPresent),
            report(ImportOutcome::AlreadyImported),
            report(ImportOutcome::Rejected),
        ]);
        assert_eq!(
            totals,
            ImportTotals {
                imported: 2,
                already_present: 1,
                already_imported: 1,
                rejected: 1,
            }
        );
    }

    #[test]
    fn rejected_table_renders_chinese_reasons() {
        let table = rejected_rows_table(&[ImportRowReport {
            line: 3,
            number: Some("430702001003-2026-000002".into()),
            outcome: ImportOutcome::Rejected,
            error: Some("channel `carrier_pigeon` is not known: 渠道不明".into()),
            field: None,
        }]);
        let text = table.to_string();
        assert!(text.contains("carrier_pigeon") && text.contains('3'));
    }

    /// A stand-in for the node's `POST /api/import`: rejects rows whose summary says 拒绝,
    /// remembers numbers it imported, and records every call it gets.
    struct FakeNode {
        url: String,
        calls: std::sync::Arc<std::sync::Mutex<Vec<(bool, usize)>>>,
        _runtime: tokio::runtime::Runtime,
    }

    fn fake_node() -> FakeNode {
        use axum::{Json, Router, extract::State, routing::post};
        use std::collections::HashSet;
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Shared {
            calls: Arc<Mutex<Vec<(bool, usize)>>>,
            numbers: Arc<Mutex<HashSet<String>>>,
        }
        async fn import(
            State(shared): State<Shared>,
            Json(batch): Json<ImportBatch>,
        ) -> Json<Vec<ImportRowReport>> {
            shared
                .calls
                .lock()
                .unwrap()
                .push((batch.dry_run, batch.rows.len()));
            let mut numbers = shared.numbers.lock().unwrap();
            let reports = batch
                .rows
                .iter()
                .map(|row| {
                    let number = row.case.number.clone();
                    let (outcome, error) = if row.case.summary.contains("拒绝") {
                        (
                            ImportOutcome::Rejected,
                            Some("region 999999 is outside this node".to_owned()),
                        )
                    } else if number
                        .as_ref()
                        .is_some_and(|number| numbers.contains(number))
                    {
                        (ImportOutcome::AlreadyPresent, None)
                    } else {
                        if !batch.dry_run
                            && let Some(number) = &number
                        {
                            numbers.insert(number.clone());
                        }
                        (ImportOutcome::Imported, None)
                    };
                    ImportRowReport {
                        line: row.line,
                        number,
                        outcome,
                        error,
                        field: None,
                    }
                })
                .collect();
            Json(reports)
        }

        let shared = Shared::default();
        let calls = shared.calls.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/api/import", post(import))
            .with_state(shared);
        runtime.spawn(async move { axum::serve(listener, app).await });
        FakeNode {
            url,
            calls,
            _runtime: runtime,
        }
    }

    fn csv_ledger(rows: &[(&str, &str)]) -> String {
        let mut text = String::from("number,channel,category,matter_type,summary,region_code\n");
        for (number, summary) in rows {
            text.push_str(&format!(
                "{number},visit,labour,appeal,{summary},430702001001\n"
            ));
        }
        text
    }

    #[test]
    fn import_validates_everything_first_and_writes_nothing_on_a_rejection() {
        let node = fake_node();
        let client = NodeClient::new(node.url.clone(), Some(test_credentials()));
        let temp = tempfile::tempdir().unwrap();
        let options = ImportOptions {
            format: None,
            dry_run: false,
            batch_rows: 2,
            json: false,
        };

        let bad = temp.path().join("bad.csv");
        std::fs::write(
            &bad,
            csv_ledger(&[
                ("N-1", "欠薪"),
                ("N-2", "请拒绝"),
                ("N-3", "欠薪"),
                ("N-4", "工伤"),
            ]),
        )
        .unwrap();
        let error = import_file(&client, &bad, &options).unwrap_err();
        assert!(
            format!("{error:#}").contains("nothing was imported"),
            "{error:#}"
        );
        let calls = node.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            [(true, 2), (true, 2)],
            "two dry-run batches, no writes"
        );

        let good = temp.path().join("good.csv");
        std::fs::write(
            &good,
            csv_ledger(&[("N-1", "欠薪"), ("N-2", "工伤"), ("N-3", "欠薪")]),
        )
        .unwrap();
        let totals = import_file(&client, &good, &options).unwrap();
        assert_eq!(totals.imported, 3);
        let again = import_file(&client, &good, &options).unwrap();
        assert_eq!(again.already_present, 3, "re-running is safe");

        let dry = ImportOptions {
            dry_run: true,
            ..options
        };
        let calls_before = node.calls.lock().unwrap().len();
        let checked = import_file(&client, &good, &dry).unwrap();
        assert_eq!(checked.already_present, 3);
        let calls = node.calls.lock().unwrap().clone();
        assert!(calls[calls_before..].iter().all(|(dry_run, _)| *dry_run));
    }

    #[test]
    fn import_of_unparseable_rows_never_posts_a_write() {
        let node = fake_node();
        let client = NodeClient::new(node.url.clone(), Some(test_credentials()));
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("ledger.csv");
        let mut text = csv_ledger(&[("N-1", "欠薪")]);
        text.push_str("N-2,carrier_pigeon,labour,appeal,欠薪,430702001001\n");
        std::fs::write(&path, text).unwrap();
        let options = ImportOptions {
            format: Some(LedgerFormat::Csv),
            dry_run: false,
            batch_rows: 500,
            json: false,
        };
        let error = import_file(&client, &path, &options).unwrap_err();
        assert!(format!("{error:#}").contains("1 of 2"), "{error:#}");
        assert!(
            node.calls
                .lock()
                .unwrap()
                .iter()
                .all(|(dry_run, _)| *dry_run)
        );
    }

    #[test]
    fn unknown_extension_without_format_is_a_clear_error() {
        let client = NodeClient::new("http://127.0.0.1:9", Some(test_credentials()));
        let options = ImportOptions {
            format: None,
            dry_run: true,
            batch_rows: 10,
            json: false,
        };
        let error = import_file(&client, Path::new("ledger.xls"), &options).unwrap_err();
        assert!(format!("{error:#}").contains("--format"));
    }
}
