//! `fengqiao import`: bring an existing ledger into a node, all or nothing, safely re-runnable.
//!
//! The file is parsed here, validated by the node with a dry run of every row, and only when no
//! row is rejected uploaded in batches (each batch atomic on the node). Rows that carry a case
//! number come back "already present" on a second run, which is what makes re-running safe; rows
//! without one get a fresh number each time, so ledgers should carry their numbers.

pub mod ledger;
pub mod values;

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};
use comfy_table::Table;
use fengqiao_case::{ImportBatch, ImportOutcome, ImportRow, ImportRowReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{emit, print_json};
use crate::client::NodeClient;
pub use ledger::{LedgerFormat, ParsedLedger, RowProblem, parse_ledger};

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
    pub rejected: u64,
}

impl ImportTotals {
    pub fn count(reports: &[ImportRowReport]) -> ImportTotals {
        let mut totals = ImportTotals::default();
        for report in reports {
            match report.outcome {
                ImportOutcome::Imported => totals.imported += 1,
                ImportOutcome::AlreadyPresent => totals.already_present += 1,
                ImportOutcome::Rejected => totals.rejected += 1,
            }
        }
        totals
    }
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
            "cannot tell the format of {} from its name: pass --format csv or --format jsonl",
            path.display()
        ),
    };
    // Mutations need an operator; say so before reading a large file.
    client.require_credentials()?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).with_context(|| {
        format!(
            "{} is not UTF-8 text: save it as UTF-8 (spreadsheets: \"CSV UTF-8\")",
            path.display()
        )
    })?;
    let parsed = parse_ledger(&text, format);
    if !parsed.ignored_columns.is_empty() {
        eprintln!(
            "note: ignoring column(s) the importer does not know: {}",
            parsed.ignored_columns.join(", ")
        );
    }
    let unnumbered = parsed
        .rows
        .iter()
        .filter(|row| row.case.number.is_none())
        .count();
    if unnumbered > 0 {
        eprintln!(
            "note: {unnumbered} row(s) have no case number: the node assigns one, so running this \
             import again would register them a second time. Include the ledger's numbers to make \
             re-runs safe."
        );
    }
    let batch_rows = options.batch_rows.max(1);
    let total_rows = parsed.rows.len() + parsed.problems.len();

    let checked = upload_in_batches(client, &parsed.rows, batch_rows, true, "checking")?;
    let mut refused: Vec<ImportRowReport> = parsed
        .problems
        .iter()
        .map(|problem| ImportRowReport {
            line: problem.line,
            number: None,
            outcome: ImportOutcome::Rejected,
            error: Some(problem.reason.clone()),
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
                "dry run: all {} row(s) are valid; {} would be imported, {} are already present. \
                 Nothing was written.",
                checked.len(),
                would.imported,
                would.already_present
            ))?;
        }
        return Ok(would);
    }

    let reports = upload_in_batches(client, &parsed.rows, batch_rows, false, "importing")?;
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
        emit(format!(
            "imported {}, already present {}, rejected {} (of {} row(s) in {})",
            totals.imported,
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

/// POST the rows in batches (each atomic on the node) with a progress bar on stderr, and return
/// every row's report. With `dry_run` the node only validates.
pub fn upload_in_batches(
    client: &NodeClient,
    rows: &[ImportRow],
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
        };
        let totals = ImportTotals::count(&[
            report(ImportOutcome::Imported),
            report(ImportOutcome::Imported),
            report(ImportOutcome::AlreadyPresent),
            report(ImportOutcome::Rejected),
        ]);
        assert_eq!(
            totals,
            ImportTotals {
                imported: 2,
                already_present: 1,
                rejected: 1
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
        let error = import_file(&client, Path::new("ledger.xlsx"), &options).unwrap_err();
        assert!(format!("{error:#}").contains("--format"));
    }
}
