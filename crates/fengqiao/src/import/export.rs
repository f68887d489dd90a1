//! The ledger out: a case as one row of the columns `fengqiao import` reads
//! ([`ledger::CSV_COLUMNS`], headed by their Chinese names), and a whole ledger as an Excel
//! workbook, so that an export can be imported elsewhere and read in the spreadsheets offices
//! keep. Identifiers are masked unless the caller asks for full values (and logs that it did).

use std::io::{Seek, Write};

use chrono::{DateTime, Utc};
use fengqiao_case::model::ledger::LedgerFacts;
use fengqiao_console::masking::{mask_id_number, mask_phone};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::ledger::{CSV_COLUMNS, chinese_header, column_explanations};
use super::values::{ChineseLabels, snake_name};

/// Whether identifiers (ID numbers, phones) go out whole or masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifiers {
    Masked,
    Full,
}

/// Between several petitioners in one cell; the importer splits on it.
const PERSON_SEPARATOR: &str = "；";

/// The Chinese label of a model value (the first the importer accepts), or its API spelling.
pub(crate) fn label<T: ChineseLabels + serde::Serialize>(value: &T) -> String {
    let name = snake_name(value);
    T::ALIASES
        .iter()
        .find(|(snake, _)| *snake == name)
        .map_or(name, |(_, chinese)| (*chinese).to_owned())
}

/// A time as the importer reads it: China time to the second.
fn time(at: DateTime<Utc>) -> String {
    at.with_timezone(&fengqiao_case::deadlines::china_offset())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn yes_no(value: bool) -> String {
    if value { "是" } else { "否" }.to_owned()
}

/// One case as a ledger row, cell by cell in [`CSV_COLUMNS`] order, from what a row is made of
/// ([`fengqiao_case::summary::ledger_facts`]: the registration's fields, then the first
/// acceptance, the last reply, evaluation and closure).
pub fn ledger_row(facts: &LedgerFacts, identifiers: Identifiers) -> Vec<String> {
    let header = &facts.header;
    let (reply, evaluation, closure) = (
        facts.reply.as_ref(),
        facts.evaluation.as_ref(),
        facts.closure.as_ref(),
    );
    let people = |part: &dyn Fn(&fengqiao_case::model::Petitioner) -> String| {
        header
            .petitioners
            .iter()
            .map(part)
            .collect::<Vec<_>>()
            .join(PERSON_SEPARATOR)
    };
    CSV_COLUMNS
        .iter()
        .map(|column| match *column {
            "number" => header.number.clone(),
            "registered_at" => facts.registered_at.map(time).unwrap_or_default(),
            "channel" => label(&header.channel),
            "category" => label(&header.category),
            "matter_type" => label(&header.matter_type),
            "headcount" => header.headcount.to_string(),
            "summary" => header.summary.clone(),
            "region_code" => header.location.region_code.clone(),
            "village" => header.location.village.clone(),
            "grid" => header.location.grid.clone(),
            "grid_worker" => header.location.grid_worker.clone(),
            "petitioner_name" => people(&|person| person.name.clone()),
            "petitioner_id_number" => people(&|person| match identifiers {
                Identifiers::Full => person.id_number.clone(),
                Identifiers::Masked => mask_id_number(&person.id_number),
            }),
            "petitioner_id_type" => people(&|person| label(&person.id_type)),
            "petitioner_phone" => people(&|person| match identifiers {
                Identifiers::Full => person.phone.clone(),
                Identifiers::Masked => mask_phone(&person.phone),
            }),
            "petitioner_address" => people(&|person| person.address.clone()),
            "respondent" => header.respondent.clone(),
            "litigation_related" => yes_no(header.litigation_related),
            "leader" => header.ownership.leader.clone(),
            "unit" => header.ownership.unit.clone(),
            "officer" => header.ownership.officer.clone(),
            "plan" => header.ownership.plan.clone(),
            "target_date" => header
                .ownership
                .target_date
                .map(|date| date.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            "accepted_at" => facts.accepted_at.map(time).unwrap_or_default(),
            "replied_at" => reply.map(|reply| time(reply.at)).unwrap_or_default(),
            "reply_outcome" => reply.map(|reply| label(&reply.outcome)).unwrap_or_default(),
            "reply_text" => reply.map(|reply| reply.text.clone()).unwrap_or_default(),
            "satisfaction" => evaluation
                .map(|evaluation| label(&evaluation.satisfaction))
                .unwrap_or_default(),
            "evaluated_at" => evaluation
                .map(|evaluation| time(evaluation.at))
                .unwrap_or_default(),
            "closed_at" => closure.map(|closure| time(closure.at)).unwrap_or_default(),
            "resolved" => closure
                .map(|closure| yes_no(closure.resolved))
                .unwrap_or_default(),
            "close_note" => closure
                .map(|closure| closure.note.clone())
                .unwrap_or_default(),
            // A column added to the importer without a value here exports empty, never wrong.
            _ => String::new(),
        })
        .collect()
}

/// The file an export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LedgerFileFormat {
    /// An Excel workbook (`.xlsx`), every cell text.
    Xlsx,
    /// UTF-8 CSV with a byte-order mark (so Excel reads the Chinese), headed like the workbook.
    Csv,
}

impl LedgerFileFormat {
    /// The value of `?format=` and `--format`.
    pub fn name(self) -> &'static str {
        match self {
            LedgerFileFormat::Xlsx => "xlsx",
            LedgerFileFormat::Csv => "csv",
        }
    }

    /// The format `?format=` names, if any.
    pub fn from_name(name: &str) -> Option<LedgerFileFormat> {
        [LedgerFileFormat::Xlsx, LedgerFileFormat::Csv]
            .into_iter()
            .find(|format| format.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The HTTP content type of a file of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            LedgerFileFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
            LedgerFileFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// Why a ledger file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write the Excel ledger: {0}")]
    Workbook(#[from] XlsxError),
    #[error("cannot write the CSV ledger: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot write the CSV ledger: {0}")]
    Io(#[from] std::io::Error),
}

/// Write `rows` (from [`ledger_row`]) as a ledger file of `format` to `writer`; the number of
/// rows written. Either way rows are written as they come, never held whole.
pub fn write_ledger<W: Write + Seek + Send>(
    format: LedgerFileFormat,
    rows: impl Iterator<Item = Vec<String>>,
    writer: W,
) -> Result<usize, ExportError> {
    match format {
        LedgerFileFormat::Xlsx => write_workbook(rows, writer),
        LedgerFileFormat::Csv => write_csv(rows, writer),
    }
}

/// Write `rows` as CSV headed by the columns' Chinese names, after a UTF-8 byte-order mark
/// (the importer skips it; without it Excel reads the file as the local code page).
pub fn write_csv<W: Write>(
    rows: impl Iterator<Item = Vec<String>>,
    mut writer: W,
) -> Result<usize, ExportError> {
    writer.write_all("\u{feff}".as_bytes())?;
    let mut csv = csv::Writer::from_writer(writer);
    csv.write_record(CSV_COLUMNS.iter().map(|name| chinese_header(name)))?;
    let mut written = 0usize;
    for row in rows {
        csv.write_record(&row)?;
        written += 1;
    }
    csv.flush()?;
    Ok(written)
}

/// Write `rows` (from [`ledger_row`]) as an Excel workbook to `writer`: one sheet 台账 headed by
/// the columns' Chinese names, every cell text (so that Excel never turns an ID number into
/// 4.30702E+17), written in constant-memory mode (rows go to a temporary file as they come, not
/// into a grid held whole).
pub fn write_workbook<W: Write + Seek + Send>(
    rows: impl Iterator<Item = Vec<String>>,
    writer: W,
) -> Result<usize, ExportError> {
    let mut workbook = Workbook::new();
    let header_format = Format::new().set_bold();
    let text_format = Format::new().set_num_format("@");
    let sheet = workbook.add_worksheet_with_constant_memory()?;
    sheet.set_name(LEDGER_SHEET)?;
    write_header_row(sheet, &header_format, &text_format)?;
    let mut written = 0usize;
    for (index, row) in rows.enumerate() {
        let row_number = u32::try_from(index + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
        for (column, value) in row.iter().enumerate() {
            if !value.is_empty() {
                sheet.write_string_with_format(
                    row_number,
                    column_index(column)?,
                    value,
                    &text_format,
                )?;
            }
        }
        written += 1;
    }
    workbook.save_to_writer(writer)?;
    Ok(written)
}

/// The name of the template's second sheet, which explains each column.
pub const EXPLANATION_SHEET: &str = "填写说明";

/// The headers of the explanation sheet's columns.
pub const EXPLANATION_HEADERS: [&str; 5] = ["表头", "列名", "必填", "可填写的值", "也可用的表头"];

/// An empty ledger to fill in (`fengqiao import --template`): the sheet 台账 with the headers an
/// export has and no rows (so it imports as nothing), then the sheet 填写说明 with a row per
/// column from [`column_explanations`]: its header, its English name, whether it is required,
/// the values the importer accepts, and the other headers it knows the column by.
pub fn write_template<W: Write + Seek + Send>(writer: W) -> Result<(), ExportError> {
    let mut workbook = Workbook::new();
    let header_format = Format::new().set_bold();
    let text_format = Format::new().set_num_format("@");
    let wrapped = Format::new().set_text_wrap();
    let ledger = workbook.add_worksheet();
    ledger.set_name(LEDGER_SHEET)?;
    write_header_row(ledger, &header_format, &text_format)?;
    let explanation = workbook.add_worksheet();
    explanation.set_name(EXPLANATION_SHEET)?;
    for (column, name) in EXPLANATION_HEADERS.iter().enumerate() {
        explanation.write_string_with_format(0, column_index(column)?, *name, &header_format)?;
    }
    for (index, column) in column_explanations().iter().enumerate() {
        let row = u32::try_from(index + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
        explanation.write_string(row, 0, column.header)?;
        explanation.write_string(row, 1, column.column)?;
        explanation.write_string(row, 2, yes_no(column.required))?;
        explanation.write_string_with_format(row, 3, &column.allowed, &wrapped)?;
        explanation.write_string(row, 4, column.other_headers.join("、"))?;
    }
    explanation.set_column_width(0, 14)?;
    explanation.set_column_width(1, 22)?;
    explanation.set_column_width(3, 70)?;
    explanation.set_column_width(4, 30)?;
    explanation.set_freeze_panes(1, 0)?;
    workbook.save_to_writer(writer)?;
    Ok(())
}

/// The name of the ledger's sheet, in an export and a template.
pub const LEDGER_SHEET: &str = "台账";

/// Row 0 of a ledger sheet: the columns' Chinese names, bold, each column formatted as text,
/// the row frozen.
fn write_header_row(
    sheet: &mut rust_xlsxwriter::Worksheet,
    header_format: &Format,
    text_format: &Format,
) -> Result<(), XlsxError> {
    for (column, name) in CSV_COLUMNS.iter().enumerate() {
        let column = column_index(column)?;
        sheet.write_string_with_format(0, column, chinese_header(name), header_format)?;
        sheet.set_column_format(column, text_format)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

fn column_index(column: usize) -> Result<u16, XlsxError> {
    u16::try_from(column).map_err(|_| XlsxError::RowColumnLimitError)
}
