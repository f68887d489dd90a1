//! Parsing an existing ledger (台账) into import rows: JSON lines or CSV with a header row.
//!
//! Parsing never stops at the first bad row: every problem is collected with its line number so the
//! operator can fix the whole file in one pass.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use fengqiao_case::personal_data;
use fengqiao_case::{
    AppendEvent, Category, Channel, EventKind, IdType, ImportRow, Location, MatterType, Ownership,
    Petitioner, RegisterCase, ReplyOutcome, Satisfaction,
};
use serde::Deserialize;

use super::values::{ChineseLabels, parse_bool, parse_date, parse_labelled, parse_time};

/// The file formats `fengqiao import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LedgerFormat {
    /// One JSON object per line: the `POST /api/cases` body plus an optional `history`.
    Jsonl,
    /// Comma-separated with a header row: the columns are listed below.
    Csv,
    /// An Excel workbook (`.xlsx`): its first sheet, read as the CSV would be (the same header
    /// names, the same checks); what `fengqiao` and the console export.
    Xlsx,
}

impl LedgerFormat {
    /// Guess from the file name: `.csv` is CSV, `.jsonl` / `.ndjson` / `.json` are JSON lines.
    pub fn from_path(path: &std::path::Path) -> Option<LedgerFormat> {
        let extension = path.extension()?.to_str()?.to_lowercase();
        match extension.as_str() {
            "csv" => Some(LedgerFormat::Csv),
            "xlsx" => Some(LedgerFormat::Xlsx),
            "jsonl" | "ndjson" | "json" => Some(LedgerFormat::Jsonl),
            _ => None,
        }
    }
}

/// A row that could not be read, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: u64,
    pub reason: String,
}

/// What a ledger file yielded: the rows ready to send, and the rows that were not.
#[derive(Debug, Clone, Default)]
pub struct ParsedLedger {
    pub rows: Vec<ImportRow>,
    pub problems: Vec<RowProblem>,
    /// Header columns the CSV had that mean nothing to the importer (ignored, reported once).
    pub ignored_columns: Vec<String>,
    /// Each column of a CSV's header as the file spells it (`答复内容` for `reply_text`), so
    /// that a refusal names the column the person sees; empty for JSON lines.
    pub column_headers: BTreeMap<&'static str, String>,
}

/// Parse a whole ledger. Duplicate case numbers inside the file are problems too: the second
/// occurrence would silently come back "already present".
pub fn parse_ledger(text: &str, format: LedgerFormat) -> ParsedLedger {
    let mut parsed = match format {
        LedgerFormat::Jsonl => parse_jsonl(text),
        LedgerFormat::Csv | LedgerFormat::Xlsx => parse_csv(text),
    };
    let mut first_line_of_number: HashMap<String, u64> = HashMap::new();
    let mut duplicates = Vec::new();
    parsed.rows.retain(|row| {
        let Some(number) = row.case.number.as_ref() else {
            return true;
        };
        match first_line_of_number.get(number) {
            Some(first_line) => {
                duplicates.push(RowProblem {
                    line: row.line,
                    reason: format!("case number {number} already appears on line {first_line}"),
                });
                false
            }
            None => {
                first_line_of_number.insert(number.clone(), row.line);
                true
            }
        }
    });
    parsed.problems.extend(duplicates);
    parsed.problems.sort_by_key(|problem| problem.line);
    // Identical rows without a number are told apart by how many came before them, so each
    // keeps its own identity in every run of the same file.
    let mut seen: HashMap<String, u32> = HashMap::new();
    for row in &mut parsed.rows {
        if row.case.number.is_none() {
            let count = seen.entry(fengqiao_case::import::row_key(row)).or_default();
            row.repeat = *count;
            *count += 1;
        }
    }
    parsed
}

/// The CSV column a refusal from the node is about, from its `field` (a path into the row as
/// sent: `history[1].text`, `history[0]`, `case.summary`): the column that gave that value, or
/// for a whole history event the column of its time.
pub fn column_for_field(row: &ImportRow, field: &str) -> Option<&'static str> {
    if let Some(rest) = field.strip_prefix("history[") {
        let (position, rest) = rest.split_once(']')?;
        let event = row.history.get(position.parse::<usize>().ok()?)?;
        let payload_field = rest.strip_prefix('.').unwrap_or("at");
        let columns: &[(&str, &'static str)] = match &event.kind {
            EventKind::Accept {} => &[("at", "accepted_at")],
            EventKind::Reply { .. } => &[
                ("at", "replied_at"),
                ("outcome", "reply_outcome"),
                ("text", "reply_text"),
            ],
            EventKind::Evaluate { .. } => {
                &[("at", "evaluated_at"), ("satisfaction", "satisfaction")]
            }
            EventKind::Close { .. } => &[
                ("at", "closed_at"),
                ("resolved", "resolved"),
                ("note", "close_note"),
            ],
            _ => &[],
        };
        return columns
            .iter()
            .find(|(name, _)| *name == payload_field)
            .or_else(|| columns.first())
            .map(|(_, column)| *column);
    }
    let path = field.strip_prefix("case.")?;
    let column = if path == "petitioners" {
        "petitioner_name".to_owned()
    } else if let Some(name) = path.strip_prefix("petitioners.") {
        format!("petitioner_{name}")
    } else {
        path.rsplit('.').next().unwrap_or(path).to_owned()
    };
    CSV_COLUMNS.iter().copied().find(|known| *known == column)
}

pub fn parse_jsonl(text: &str) -> ParsedLedger {
    let mut parsed = ParsedLedger::default();
    for (index, line_text) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let trimmed = line_text.trim().trim_start_matches('\u{feff}');
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("//") {
            continue;
        }
        match parse_json_line(trimmed) {
            Ok((case, history)) => parsed.rows.push(ImportRow {
                line,
                case,
                history,
                repeat: 0,
            }),
            Err(reason) => parsed.problems.push(RowProblem { line, reason }),
        }
    }
    parsed
}

fn parse_json_line(text: &str) -> Result<(RegisterCase, Vec<AppendEvent>), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("not valid JSON: {error}"))?;
    if !value.is_object() {
        return Err("expected a JSON object (one case per line)".to_owned());
    }
    // Untagged enums hide the real cause, so the shape is chosen here and parsed with its own
    // type to keep serde's message ("unknown variant `carrier_pigeon`, expected …").
    if value.get("case").is_some_and(serde_json::Value::is_object) {
        #[derive(Deserialize)]
        struct Nested {
            case: RegisterCase,
            #[serde(default)]
            history: Vec<AppendEvent>,
        }
        let nested: Nested =
            serde_json::from_value(value.clone()).map_err(|error| error.to_string())?;
        refuse_unknown_fields(&value["case"], &nested.case, "case.")?;
        refuse_unknown_fields(&value["history"], &nested.history, "history")?;
        return Ok((nested.case, nested.history));
    }
    let mut object = value;
    let sent_history = object.as_object_mut().and_then(|map| map.remove("history"));
    let history = match &sent_history {
        Some(history) => serde_json::from_value::<Vec<AppendEvent>>(history.clone())
            .map_err(|error| format!("history: {error}"))?,
        None => Vec::new(),
    };
    let case: RegisterCase =
        serde_json::from_value(object.clone()).map_err(|error| error.to_string())?;
    refuse_unknown_fields(&object, &case, "")?;
    if let Some(sent_history) = &sent_history {
        refuse_unknown_fields(sent_history, &history, "history")?;
    }
    Ok((case, history))
}

/// A field the importer would drop (a typo in a column of the ledger) refuses the row, as the
/// API refuses it; `prefix` says where `sent` sits in the line.
fn refuse_unknown_fields(
    sent: &serde_json::Value,
    parsed: &impl serde::Serialize,
    prefix: &str,
) -> Result<(), String> {
    match crate::unknown_fields::first_unknown_field(sent, parsed) {
        Ok(None) => Ok(()),
        Ok(Some(mut unknown)) => {
            unknown.path = format!("{prefix}{}", unknown.path);
            Err(unknown.to_string())
        }
        Err(error) => Err(format!("cannot read the line back: {error}")),
    }
}

/// The CSV columns the importer understands, in the order a template would list them.
/// Only `channel`, `category`, `matter_type`, `summary` and `region_code` are required.
pub const CSV_COLUMNS: &[&str] = &[
    "number",
    "registered_at",
    "channel",
    "category",
    "matter_type",
    "headcount",
    "summary",
    "region_code",
    "village",
    "grid",
    "grid_worker",
    "petitioner_name",
    "petitioner_id_number",
    "petitioner_id_type",
    "petitioner_phone",
    "petitioner_address",
    "respondent",
    "litigation_related",
    "leader",
    "unit",
    "officer",
    "plan",
    "target_date",
    "accepted_at",
    "replied_at",
    "reply_outcome",
    "reply_text",
    "satisfaction",
    "evaluated_at",
    "closed_at",
    "resolved",
    "close_note",
];

const REQUIRED_CSV_COLUMNS: &[&str] = &[
    "channel",
    "category",
    "matter_type",
    "summary",
    "region_code",
];

/// Header names offices use in their own spreadsheets.
const CSV_COLUMN_ALIASES: &[(&str, &str)] = &[
    ("编号", "number"),
    ("案件编号", "number"),
    ("信访件编号", "number"),
    ("登记时间", "registered_at"),
    ("登记日期", "registered_at"),
    ("信访日期", "registered_at"),
    ("渠道", "channel"),
    ("信访形式", "channel"),
    ("来源", "channel"),
    ("类别", "category"),
    ("问题类别", "category"),
    ("问题分类", "category"),
    ("事项类型", "matter_type"),
    ("诉求类型", "matter_type"),
    ("人数", "headcount"),
    ("来访人数", "headcount"),
    ("诉求", "summary"),
    ("主要诉求", "summary"),
    ("反映问题", "summary"),
    ("内容摘要", "summary"),
    ("摘要", "summary"),
    ("区划代码", "region_code"),
    ("行政区划代码", "region_code"),
    ("村", "village"),
    ("村社区", "village"),
    ("村(社区)", "village"),
    ("村（社区）", "village"),
    ("网格", "grid"),
    ("网格员", "grid_worker"),
    ("姓名", "petitioner_name"),
    ("信访人", "petitioner_name"),
    ("信访人姓名", "petitioner_name"),
    ("当事人", "petitioner_name"),
    ("身份证号", "petitioner_id_number"),
    ("身份证号码", "petitioner_id_number"),
    ("证件号码", "petitioner_id_number"),
    ("证件类型", "petitioner_id_type"),
    ("电话", "petitioner_phone"),
    ("联系电话", "petitioner_phone"),
    ("手机", "petitioner_phone"),
    ("住址", "petitioner_address"),
    ("地址", "petitioner_address"),
    ("被反映人", "respondent"),
    ("被反映单位", "respondent"),
    ("被反映对象", "respondent"),
    ("涉法涉诉", "litigation_related"),
    ("包案领导", "leader"),
    ("责任单位", "unit"),
    ("经办人", "officer"),
    ("化解方案", "plan"),
    ("办结时限", "target_date"),
    ("化解时限", "target_date"),
    ("受理时间", "accepted_at"),
    ("受理日期", "accepted_at"),
    ("答复时间", "replied_at"),
    ("答复日期", "replied_at"),
    ("答复结果", "reply_outcome"),
    ("答复意见", "reply_text"),
    ("答复内容", "reply_text"),
    ("满意度", "satisfaction"),
    ("评价结果", "satisfaction"),
    ("评价时间", "evaluated_at"),
    ("评价日期", "evaluated_at"),
    ("办结时间", "closed_at"),
    ("办结日期", "closed_at"),
    ("是否化解", "resolved"),
    ("化解", "resolved"),
    ("办结说明", "close_note"),
];

/// The first sheet of an Excel workbook as CSV text, for [`parse_ledger`]: each cell as Excel
/// shows it (a number that Excel stored as a number comes back as its digits, whole numbers
/// without a decimal point, so that an ID number typed as a number still reads as one).
pub fn workbook_as_csv(bytes: &[u8]) -> Result<String, String> {
    use calamine::{Data, Reader, Xlsx};
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|error| format!("not an Excel workbook (.xlsx): {error}"))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| "the workbook has no sheet".to_owned())?
        .map_err(|error| format!("the first sheet cannot be read: {error}"))?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in range.rows() {
        let cells: Vec<String> = row
            .iter()
            .map(|cell| match cell {
                Data::Empty => String::new(),
                Data::String(text) => text.clone(),
                Data::Float(number) if number.fract() == 0.0 && number.abs() < 1e17 => {
                    format!("{number:.0}")
                }
                Data::Float(number) => number.to_string(),
                Data::Int(number) => number.to_string(),
                Data::Bool(value) => value.to_string(),
                Data::DateTime(value) => value
                    .as_datetime()
                    .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| value.to_string()),
                Data::DateTimeIso(text) | Data::DurationIso(text) => text.clone(),
                Data::Error(error) => format!("#{error:?}"),
            })
            .collect();
        writer
            .write_record(&cells)
            .map_err(|error| format!("cannot convert the sheet: {error}"))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| format!("cannot convert the sheet: {error}"))?;
    String::from_utf8(bytes).map_err(|error| format!("cannot convert the sheet: {error}"))
}

/// The Chinese name a column is headed by in an export and a template: its first alias.
pub fn chinese_header(column: &str) -> &str {
    CSV_COLUMN_ALIASES
        .iter()
        .find(|(_, canonical)| *canonical == column)
        .map_or(column, |(alias, _)| alias)
}

/// One column as the template's 填写说明 sheet explains it, from the tables and parsers above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnExplanation {
    /// The column's name in English (`reply_text`).
    pub column: &'static str,
    /// The header a template and an export use (`答复内容`).
    pub header: &'static str,
    /// Every other header the importer accepts for it.
    pub other_headers: Vec<&'static str>,
    pub required: bool,
    /// The values the importer accepts, as the parser of the column reads them.
    pub allowed: String,
}

/// Every importable column, in [`CSV_COLUMNS`] order, explained: its headers, whether it is
/// required, and the values its parser (in `CsvCells::to_import_row` and `history`) accepts.
pub fn column_explanations() -> Vec<ColumnExplanation> {
    CSV_COLUMNS
        .iter()
        .map(|column| {
            let header = chinese_header(column);
            ColumnExplanation {
                column,
                header,
                other_headers: CSV_COLUMN_ALIASES
                    .iter()
                    .filter(|(alias, canonical)| canonical == column && *alias != header)
                    .map(|(alias, _)| *alias)
                    .collect(),
                required: REQUIRED_CSV_COLUMNS.contains(column),
                allowed: allowed_values(column),
            }
        })
        .collect()
}

/// What a column's parser accepts, in words (Chinese first: the template is for offices).
fn allowed_values(column: &str) -> String {
    fn labels<T: ChineseLabels>() -> String {
        let names: Vec<String> = T::ALIASES
            .iter()
            .map(|(value, chinese)| format!("{chinese}（{value}）"))
            .collect();
        format!("其中之一：{}", names.join("、"))
    }
    let time = "时间：2026-03-01 09:30、2026-03-01 09:30:00、2026/3/1 09:30 或日期 2026-03-01（北京时间）；                也可 2026-03-01T09:30:00+08:00";
    let several = "多名信访人用；或、分隔，与信访人姓名一一对应";
    match column {
        "number" => {
            "案件编号 区划代码-年份-6位序号（如 430702001003-2026-000001）；空则由本节点编号"
                .to_owned()
        }
        "registered_at" | "accepted_at" | "replied_at" | "evaluated_at" | "closed_at" => {
            time.to_owned()
        }
        "target_date" => "日期：2026-03-01、2026/3/1 或 2026年3月1日".to_owned(),
        "channel" => labels::<Channel>(),
        "category" => labels::<Category>(),
        "matter_type" => labels::<MatterType>(),
        "reply_outcome" => format!("{}；填写则须填答复时间", labels::<ReplyOutcome>()),
        "satisfaction" => format!("{}；填写则须填评价时间", labels::<Satisfaction>()),
        "petitioner_id_type" => format!("{}；空为居民身份证；{several}", labels::<IdType>()),
        "headcount" => format!(
            "1 至 {} 的整数，不少于所列信访人数；空则按所列信访人计",
            fengqiao_case::bounds::MAX_HEADCOUNT
        ),
        "litigation_related" | "resolved" => "是 / 否（也可 true/false、1/0）".to_owned(),
        "region_code" => "12 位村级区划代码（或本节点辖区内的乡镇、县级代码）".to_owned(),
        "petitioner_name" => format!(
            "{several}；至多 {} 人",
            fengqiao_case::bounds::MAX_PETITIONERS
        ),
        "petitioner_id_number" => {
            format!("按证件类型校验（居民身份证按 GB 11643）；{several}；请将该列设为文本")
        }
        "petitioner_phone" => format!("手机或座机号码；{several}；请将该列设为文本"),
        "petitioner_address" => "多名信访人用；分隔；只填一个则适用于所有信访人".to_owned(),
        "reply_text" => "答复内容；填写则须填答复时间和答复结果".to_owned(),
        "close_note" => "办结说明；随办结时间和是否化解一并导入".to_owned(),
        _ => "文字".to_owned(),
    }
}

/// The columns with their Chinese aliases, required ones marked, one a line: the help of
/// `fengqiao import` and the list in README.md, made from the tables above so neither drifts.
pub fn csv_columns_help() -> String {
    let mut text = String::from(
        "CSV columns (header names in English or Chinese; * = required; several petitioners in \
         one row separated by ; or 、):\n",
    );
    for column in CSV_COLUMNS {
        let aliases: Vec<&str> = CSV_COLUMN_ALIASES
            .iter()
            .filter(|(_, canonical)| canonical == column)
            .map(|(alias, _)| *alias)
            .collect();
        let required = if REQUIRED_CSV_COLUMNS.contains(column) {
            " *"
        } else {
            ""
        };
        text.push_str(&format!("  {column}{required}"));
        if !aliases.is_empty() {
            text.push_str(&format!("  {}", aliases.join(" ")));
        }
        text.push('\n');
    }
    let id_types: Vec<String> = IdType::ALIASES
        .iter()
        .map(|(value, chinese)| format!("{value} {chinese}"))
        .collect();
    text.push_str(&format!(
        "petitioner_id_type: {} (empty: a resident ID, checked against GB 11643).\n\
         Keep ID numbers and phones as text in Excel (format the column as 文本 before pasting), \
         or Excel turns them into numbers like 2.10202E+17.",
        id_types.join(", ")
    ));
    text
}

/// The canonical column a header cell names, if any.
fn canonical_column(header: &str) -> Option<&'static str> {
    let trimmed = header.trim().trim_start_matches('\u{feff}').trim();
    let snake = trimmed.to_lowercase().replace(['-', ' '], "_");
    CSV_COLUMNS
        .iter()
        .copied()
        .find(|column| *column == snake)
        .or_else(|| {
            CSV_COLUMN_ALIASES
                .iter()
                .find(|(alias, _)| *alias == trimmed)
                .map(|(_, column)| *column)
        })
}

/// A header cell as the person wrote it, without the spaces and byte-order mark around it.
fn spelled_header(header: &str) -> &str {
    header.trim().trim_start_matches('\u{feff}').trim()
}

/// Separators between several petitioners in one cell (`张三;李四`, `张三、李四`).
const PERSON_SEPARATORS: &[char] = &[';', '；', '、', '|'];

pub fn parse_csv(text: &str) -> ParsedLedger {
    let mut parsed = ParsedLedger::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(error) => {
            parsed.problems.push(RowProblem {
                line: 1,
                reason: format!("cannot read the header row: {error}"),
            });
            return parsed;
        }
    };
    let mut column_index: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (index, header) in headers.iter().enumerate() {
        match canonical_column(header) {
            Some(column) => {
                parsed
                    .column_headers
                    .insert(column, spelled_header(header).to_owned());
                if column_index.insert(column, index).is_some() {
                    parsed.problems.push(RowProblem {
                        line: 1,
                        reason: format!("column {column} appears twice in the header"),
                    });
                }
            }
            None if header.trim().is_empty() => {}
            None => parsed.ignored_columns.push(header.to_owned()),
        }
    }
    let missing: Vec<&str> = REQUIRED_CSV_COLUMNS
        .iter()
        .copied()
        .filter(|column| !column_index.contains_key(column))
        .collect();
    if !missing.is_empty() {
        parsed.problems.push(RowProblem {
            line: 1,
            reason: format!(
                "the header row lacks the required column(s) {}; the columns are: {}",
                missing.join(", "),
                CSV_COLUMNS.join(",")
            ),
        });
        return parsed;
    }
    if !parsed.problems.is_empty() {
        return parsed;
    }
    let mut record = csv::StringRecord::new();
    loop {
        let line_before = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record
                    .position()
                    .map(|position| position.line())
                    .unwrap_or(line_before);
                if record.iter().all(str::is_empty) {
                    continue;
                }
                let cells = CsvCells {
                    record: &record,
                    headers: &headers,
                    column_index: &column_index,
                };
                match cells.to_import_row(line) {
                    Ok(row) => parsed.rows.push(row),
                    Err(reason) => parsed.problems.push(RowProblem { line, reason }),
                }
            }
            Err(error) => {
                let line = error
                    .position()
                    .map(|position| position.line())
                    .unwrap_or(line_before);
                parsed.problems.push(RowProblem {
                    line,
                    reason: format!("unreadable CSV: {error}"),
                });
                // A broken quote can swallow the rest of the file: stop rather than report noise.
                if !matches!(error.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    parsed
}

struct CsvCells<'a> {
    record: &'a csv::StringRecord,
    /// The header row as in the file, so a message names a column as the person wrote it.
    headers: &'a csv::StringRecord,
    column_index: &'a BTreeMap<&'static str, usize>,
}

impl CsvCells<'_> {
    /// The header of `column` as the file spells it (`身份证号`), or the canonical name.
    fn header<'h>(&'h self, column: &'h str) -> &'h str {
        self.column_index
            .get(column)
            .and_then(|index| self.headers.get(*index))
            .map(spelled_header)
            .unwrap_or(column)
    }

    /// The cell of `column`, `None` when the column is absent or the cell is blank.
    fn cell(&self, column: &str) -> Option<&str> {
        let index = *self.column_index.get(column)?;
        self.record.get(index).filter(|cell| !cell.is_empty())
    }

    fn text(&self, column: &str) -> String {
        self.cell(column).unwrap_or_default().to_owned()
    }

    fn required(&self, column: &str) -> Result<&str, String> {
        self.cell(column)
            .ok_or_else(|| format!("{column} is empty"))
    }

    fn time(&self, column: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        self.cell(column)
            .map(|text| parse_time(text).map_err(|error| format!("{column}: {error}")))
            .transpose()
    }

    fn to_import_row(&self, line: u64) -> Result<ImportRow, String> {
        let channel: Channel = parse_labelled(self.required("channel")?)?;
        let category: Category = parse_labelled(self.required("category")?)?;
        let matter_type: MatterType = parse_labelled(self.required("matter_type")?)?;
        let registered_at = self.time("registered_at")?;
        let petitioners = self.petitioners(registered_at)?;
        let headcount = match self.cell("headcount") {
            Some(text) => text
                .parse::<u32>()
                .map_err(|_| format!("headcount `{text}` is not a whole number"))?,
            None => petitioners.len().max(1) as u32,
        };
        let litigation_related = match self.cell("litigation_related") {
            Some(text) => {
                parse_bool(text).map_err(|error| format!("litigation_related: {error}"))?
            }
            None => false,
        };
        let target_date = self
            .cell("target_date")
            .map(|text| parse_date(text).map_err(|error| format!("target_date: {error}")))
            .transpose()?;
        let case = RegisterCase {
            backdated_reason: None,
            number: self.cell("number").map(str::to_owned),
            registered_at,
            channel,
            petitioners,
            headcount,
            respondent: self.text("respondent"),
            category,
            matter_type,
            litigation_related,
            summary: self.required("summary")?.to_owned(),
            location: Location {
                region_code: self.required("region_code")?.to_owned(),
                village: self.text("village"),
                grid: self.text("grid"),
                grid_worker: self.text("grid_worker"),
            },
            ownership: Ownership {
                leader: self.text("leader"),
                unit: self.text("unit"),
                officer: self.text("officer"),
                plan: self.text("plan"),
                target_date,
            },
        };
        Ok(ImportRow {
            line,
            case,
            history: self.history()?,
            repeat: 0,
        })
    }

    /// Several petitioners share a row as parallel lists in each personal-data column. ID numbers
    /// and phones are checked here by the node's own rules, so a refusal names the column as the
    /// file does (`身份证号: …`); the birth date against the registration, when the row gives it
    /// (otherwise the node judges it against its clock).
    fn petitioners(
        &self,
        registered_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<Petitioner>, String> {
        let split = |column: &str| -> Vec<String> {
            self.cell(column)
                .map(|cell| {
                    cell.split(PERSON_SEPARATORS)
                        .map(|part| part.trim().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let names = split("petitioner_name");
        let id_numbers = split("petitioner_id_number");
        let phones = split("petitioner_phone");
        let id_types = split("petitioner_id_type")
            .iter()
            .map(|text| {
                if text.is_empty() {
                    Ok(IdType::ResidentId)
                } else {
                    parse_labelled::<IdType>(text)
                        .map_err(|why| format!("{}: {why}", self.header("petitioner_id_type")))
                }
            })
            .collect::<Result<Vec<IdType>, String>>()?;
        // Addresses may themselves contain 、, so only the unambiguous separators split them.
        let addresses: Vec<String> = self
            .cell("petitioner_address")
            .map(|cell| {
                cell.split([';', '；'])
                    .map(|part| part.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() && !(id_numbers.is_empty() && phones.is_empty() && addresses.is_empty())
        {
            return Err("petitioner_name is empty but other petitioner columns are filled".into());
        }
        for (column, count) in [
            ("petitioner_id_number", id_numbers.len()),
            ("petitioner_id_type", id_types.len()),
            ("petitioner_phone", phones.len()),
        ] {
            if count > names.len() {
                return Err(format!(
                    "{} lists {count} entries for {} petitioner name(s)",
                    self.header(column),
                    names.len()
                ));
            }
        }
        let on = registered_at.map_or(NaiveDate::MAX, fengqiao_case::deadlines::local_date);
        let entry = |count: usize, position: usize| {
            if count > 1 {
                format!(" (entry {})", position + 1)
            } else {
                String::new()
            }
        };
        for (position, id_number) in id_numbers.iter().enumerate() {
            let id_type = id_types.get(position).copied().unwrap_or_default();
            personal_data::check_id_number(id_type, id_number, on).map_err(|why| {
                format!(
                    "{}{}: {why}",
                    self.header("petitioner_id_number"),
                    entry(id_numbers.len(), position)
                )
            })?;
        }
        for (position, phone) in phones.iter().enumerate() {
            personal_data::check_phone(phone).map_err(|why| {
                format!(
                    "{}{}: {why}",
                    self.header("petitioner_phone"),
                    entry(phones.len(), position)
                )
            })?;
        }
        let only_one_address = addresses.len() == 1;
        Ok(names
            .iter()
            .enumerate()
            .filter(|(_, name)| !name.is_empty())
            .map(|(index, name)| Petitioner {
                name: name.clone(),
                id_number: id_numbers.get(index).cloned().unwrap_or_default(),
                id_type: id_types.get(index).copied().unwrap_or_default(),
                phone: phones.get(index).cloned().unwrap_or_default(),
                // One address for a whole household is common; it applies to everyone listed.
                address: if only_one_address {
                    addresses[0].clone()
                } else {
                    addresses.get(index).cloned().unwrap_or_default()
                },
                representative: false,
            })
            .collect())
    }

    /// The optional history columns, as the events they stand for, in lifecycle order.
    fn history(&self) -> Result<Vec<AppendEvent>, String> {
        let mut history = Vec::new();
        if let Some(at) = self.time("accepted_at")? {
            history.push(AppendEvent {
                backdated_reason: None,
                kind: EventKind::Accept {},
                at: Some(at),
            });
        }
        let replied_at = self.time("replied_at")?;
        let reply_outcome = self
            .cell("reply_outcome")
            .map(parse_labelled::<ReplyOutcome>)
            .transpose()?;
        match (replied_at, reply_outcome) {
            (Some(at), Some(outcome)) => history.push(AppendEvent {
                backdated_reason: None,
                kind: EventKind::Reply {
                    outcome,
                    text: self.text("reply_text"),
                },
                at: Some(at),
            }),
            (Some(_), None) => return Err("replied_at is given but reply_outcome is empty".into()),
            (None, Some(_)) => return Err("reply_outcome is given but replied_at is empty".into()),
            (None, None) if self.cell("reply_text").is_some() => {
                return Err(
                    "reply_text is given but replied_at and reply_outcome are empty".into(),
                );
            }
            (None, None) => {}
        }
        let evaluated_at = self.time("evaluated_at")?;
        let satisfaction = self
            .cell("satisfaction")
            .map(parse_labelled::<Satisfaction>)
            .transpose()?;
        match (evaluated_at, satisfaction) {
            (Some(at), Some(satisfaction)) => history.push(AppendEvent {
                backdated_reason: None,
                kind: EventKind::Evaluate { satisfaction },
                at: Some(at),
            }),
            (Some(_), None) => return Err("evaluated_at is given but satisfaction is empty".into()),
            (None, Some(_)) => return Err("satisfaction is given but evaluated_at is empty".into()),
            (None, None) => {}
        }
        let resolved = self
            .cell("resolved")
            .map(|text| parse_bool(text).map_err(|error| format!("resolved: {error}")))
            .transpose()?;
        match (self.time("closed_at")?, resolved) {
            (Some(at), Some(resolved)) => history.push(AppendEvent {
                backdated_reason: None,
                kind: EventKind::Close {
                    resolved,
                    note: self
                        .cell("close_note")
                        .unwrap_or("导入自原台账 imported from the ledger")
                        .to_owned(),
                },
                at: Some(at),
            }),
            // 化解率 counts resolved closures, so the ledger must say which it was.
            (Some(_), None) => {
                return Err("closed_at is given but resolved (true/false) is empty".into());
            }
            (None, Some(_)) => return Err("resolved is given but closed_at is empty".into()),
            (None, None) => {}
        }
        Ok(history)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HEADER: &str = "number,registered_at,channel,category,matter_type,headcount,summary,region_code,village,grid,petitioner_name,petitioner_id_number,petitioner_phone,petitioner_address,respondent,litigation_related,accepted_at,replied_at,reply_outcome,reply_text,satisfaction,evaluated_at,closed_at,resolved";

    fn closed_row(number: &str, channel: &str) -> String {
        format!(
            "{number},2026-03-01T09:30:00+08:00,{channel},land_requisition,appeal,3,\"征地补偿款未足额发放，要求补齐\",430702001003,河洑村,第二网格,刘德华,430702196801010013,13907365555,河洑村五组,河洑镇人民政府,false,2026-03-02T09:00:00+08:00,2026-04-01T10:00:00+08:00,support,已协调补发补偿款,basically_satisfied,2026-04-05T10:00:00+08:00,2026-04-06T10:00:00+08:00,true"
        )
    }

    #[test]
    fn csv_good_rows_with_history_and_chinese_text() {
        let text = format!(
            "{HEADER}\n{}\n430702001003-2026-000002,2026-03-01 10:00,来访,拖欠工资,申诉求决,,\"欠薪，要求补发\",430702001003,河洑村,,张三;李四,,,河洑村五组,,否,,,,,,,,\n",
            closed_row("430702001003-2026-000001", "visit")
        );
        let parsed = parse_ledger(&text, LedgerFormat::Csv);
        assert_eq!(parsed.problems, vec![]);
        assert_eq!(parsed.rows.len(), 2);
        let closed = &parsed.rows[0];
        assert_eq!(closed.line, 2);
        assert_eq!(
            closed.case.number.as_deref(),
            Some("430702001003-2026-000001")
        );
        assert_eq!(closed.case.summary, "征地补偿款未足额发放，要求补齐");
        assert_eq!(closed.case.petitioners[0].name, "刘德华");
        assert_eq!(closed.case.petitioners[0].address, "河洑村五组");
        assert_eq!(
            closed.case.registered_at.unwrap().to_rfc3339(),
            "2026-03-01T01:30:00+00:00"
        );
        let kinds: Vec<&str> = closed
            .history
            .iter()
            .map(|event| event.kind.name())
            .collect();
        assert_eq!(kinds, ["accept", "reply", "evaluate", "close"]);
        assert!(matches!(
            closed.history[3].kind,
            EventKind::Close { resolved: true, .. }
        ));
        let open = &parsed.rows[1];
        assert_eq!(open.line, 3);
        assert_eq!(open.case.channel, Channel::Visit);
        assert_eq!(open.case.category, Category::WageArrears);
        assert_eq!(open.case.matter_type, MatterType::Appeal);
        assert_eq!(open.case.headcount, 2, "defaults to the petitioners listed");
        assert_eq!(open.case.petitioners.len(), 2);
        assert_eq!(open.case.petitioners[1].address, "河洑村五组");
        assert!(open.history.is_empty());
    }

    #[test]
    fn csv_bad_rows_are_reported_with_their_line_and_reason() {
        let text = [
            HEADER.to_owned(),
            closed_row("430702001003-2026-000001", "visit"),
            closed_row("430702001003-2026-000002", "carrier_pigeon"),
            closed_row("430702001003-2026-000001", "letter"),
            closed_row("430702001003-2026-000004", "letter").replace(",true", ","),
        ]
        .join("\n");
        let parsed = parse_ledger(&text, LedgerFormat::Csv);
        assert_eq!(parsed.rows.len(), 1);
        let lines: Vec<u64> = parsed.problems.iter().map(|problem| problem.line).collect();
        assert_eq!(lines, [3, 4, 5]);
        assert!(parsed.problems[0].reason.contains("carrier_pigeon"));
        assert!(parsed.problems[1].reason.contains("line 2"));
        assert!(parsed.problems[2].reason.contains("resolved"));
    }

    #[test]
    fn csv_line_numbers_count_multiline_cells() {
        let text = "channel,category,matter_type,summary,region_code\nvisit,other,appeal,\"第一行\n第二行\",430702\nvisit,other,appeal,,430702\n";
        let parsed = parse_ledger(text, LedgerFormat::Csv);
        assert_eq!(parsed.rows[0].case.summary, "第一行\n第二行");
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].line, 4);
        assert!(parsed.problems[0].reason.contains("summary"));
    }

    #[test]
    fn csv_chinese_header_aliases_and_ignored_columns() {
        let text = "\u{feff}编号,登记时间,信访形式,问题类别,事项类型,主要诉求,区划代码,村（社区）,信访人姓名,联系电话,备注\n\
                    430702001001-2025-000009,2025/12/30 15:00,来信,邻里纠纷,申诉求决,宅基地边界争议,430702001001,芦荻山村,王秀英,13807361234,无\n";
        let parsed = parse_ledger(text, LedgerFormat::Csv);
        assert_eq!(parsed.problems, vec![]);
        assert_eq!(parsed.ignored_columns, ["备注"]);
        let row = &parsed.rows[0];
        assert_eq!(row.case.channel, Channel::Letter);
        assert_eq!(row.case.category, Category::Neighbourhood);
        assert_eq!(row.case.location.village, "芦荻山村");
        assert_eq!(row.case.petitioners[0].phone, "13807361234");
        assert_eq!(row.case.headcount, 1);
    }

    #[test]
    fn csv_missing_required_column_is_one_problem_on_line_one() {
        let parsed = parse_ledger("channel,category\nvisit,other\n", LedgerFormat::Csv);
        assert!(parsed.rows.is_empty());
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].line, 1);
        assert!(parsed.problems[0].reason.contains("matter_type"));
    }

    #[test]
    fn jsonl_flat_and_nested_rows_with_history() {
        let text = r#"
{"number":"430702-2026-000001","registered_at":"2026-01-05T08:00:00Z","channel":"visit","petitioners":[{"name":"赵四"}],"headcount":1,"category":"labour","matter_type":"appeal","summary":"工伤赔偿","location":{"region_code":"430702"},"history":[{"kind":"accept","payload":{},"at":"2026-01-06T08:00:00Z"}]}
# comments and blank lines are skipped

{"line":99,"case":{"channel":"online","petitioners":[],"headcount":1,"category":"environment","matter_type":"accusation","summary":"夜间噪声","location":{"region_code":"430702001001"}}}
"#;
        let parsed = parse_ledger(text, LedgerFormat::Jsonl);
        assert_eq!(parsed.problems, vec![]);
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.rows[0].line, 2);
        assert_eq!(parsed.rows[0].case.petitioners[0].name, "赵四");
        assert_eq!(parsed.rows[0].history.len(), 1);
        assert_eq!(parsed.rows[0].history[0].kind, EventKind::Accept {});
        assert_eq!(
            parsed.rows[1].line, 5,
            "the file's line, not the row's own field"
        );
        assert_eq!(parsed.rows[1].case.channel, Channel::Online);
    }

    #[test]
    fn jsonl_bad_lines_name_the_line_and_the_cause() {
        let text = "{\"channel\":\"carrier_pigeon\",\"petitioners\":[],\"headcount\":1,\"category\":\"other\",\"matter_type\":\"appeal\",\"summary\":\"x\",\"location\":{\"region_code\":\"430702\"}}\nnot json\n[1,2]\n";
        let parsed = parse_ledger(text, LedgerFormat::Jsonl);
        assert!(parsed.rows.is_empty());
        let lines: Vec<u64> = parsed.problems.iter().map(|problem| problem.line).collect();
        assert_eq!(lines, [1, 2, 3]);
        assert!(
            parsed.problems[0].reason.contains("carrier_pigeon"),
            "{:?}",
            parsed.problems[0]
        );
        assert!(parsed.problems[1].reason.contains("JSON"));
    }

    #[test]
    fn jsonl_fields_the_importer_does_not_know_refuse_the_row() {
        let text = r#"{"channel":"visit","petitioners":[{"name":"赵四","adress":"三组"}],"headcount":1,"category":"labour","matter_type":"appeal","summary":"工伤赔偿","location":{"region_code":"430702"}}
{"line":7,"case":{"channel":"visit","petitioners":[{"name":"赵四"}],"headcount":1,"category":"labour","matter_type":"appeal","summary":"工伤赔偿","location":{"region_code":"430702"},"respondant":"某厂"}}
{"channel":"visit","petitioners":[{"name":"赵四"}],"headcount":1,"category":"labour","matter_type":"appeal","summary":"工伤赔偿","location":{"region_code":"430702"},"history":[{"kind":"note","payload":{"text":"回访","txt":"x"}}]}
"#;
        let parsed = parse_ledger(text, LedgerFormat::Jsonl);
        assert!(parsed.rows.is_empty(), "{:?}", parsed.rows);
        let reasons: Vec<&str> = parsed
            .problems
            .iter()
            .map(|problem| problem.reason.as_str())
            .collect();
        assert!(
            reasons[0].starts_with("unknown field `petitioners[0].adress`"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].starts_with("unknown field `case.respondant`"),
            "{reasons:?}"
        );
        assert!(
            reasons[2].starts_with("unknown field `history[0].payload.txt`"),
            "{reasons:?}"
        );
    }

    #[test]
    fn csv_id_numbers_and_phones_are_refused_naming_the_column_as_the_file_does() {
        let header = "编号,登记时间,信访形式,问题类别,事项类型,主要诉求,区划代码,信访人姓名,证件类型,身份证号,联系电话\n";
        let row = |id_type: &str, id_number: &str, phone: &str| {
            format!(
                "430702001001-2026-000001,2026-03-01 09:30,来访,拖欠工资,申诉求决,欠薪,430702001001,王秀英,{id_type},{id_number},{phone}\n"
            )
        };
        let reason = |id_type: &str, id_number: &str, phone: &str| {
            let parsed = parse_ledger(
                &format!("{header}{}", row(id_type, id_number, phone)),
                LedgerFormat::Csv,
            );
            parsed
                .problems
                .first()
                .map(|problem| problem.reason.clone())
        };
        assert_eq!(reason("", "430702198503120029", "13807361234"), None);
        assert_eq!(reason("护照", "E12345678", "0736-7221234"), None);
        let excel = reason("", "2.10202E+17", "13807361234").unwrap();
        assert!(
            excel.starts_with("身份证号: `2.10202E+17`: Excel turned the column into a number"),
            "{excel}"
        );
        assert!(excel.contains("文本"), "{excel}");
        let phone = reason("", "", "1.39E+10").unwrap();
        assert!(phone.starts_with("联系电话: `1.39E+10`: Excel"), "{phone}");
        let checksum = reason("", "430702198503120027", "").unwrap();
        assert!(
            checksum.starts_with("身份证号: has a wrong check character"),
            "{checksum}"
        );
        let not_a_phone = reason("", "", "not-a-phone").unwrap();
        assert!(
            not_a_phone.starts_with("联系电话: `not-a-phone`"),
            "{not_a_phone}"
        );
        let born_later = reason("", "430702202603020016", "").unwrap();
        assert!(
            born_later.contains("outside 1900 to 20260301"),
            "{born_later}"
        );
        let id_type = reason("驾照", "E12345678", "").unwrap();
        assert!(id_type.starts_with("证件类型: "), "{id_type}");
    }

    #[test]
    fn the_column_help_lists_every_column_and_alias_and_readme_carries_it() {
        let help = csv_columns_help();
        for column in CSV_COLUMNS {
            assert!(help.contains(&format!("  {column}")), "{column}");
        }
        for (alias, _) in CSV_COLUMN_ALIASES {
            assert!(help.contains(alias), "{alias}");
        }
        assert!(!help.contains('['), "no rustdoc link: {help}");
        let readme = include_str!("../../../../README.md");
        assert!(
            readme.contains(&help),
            "README.md lists the CSV columns as `fengqiao import --help` does:\n{help}"
        );
        assert!(
            readme.contains(crate::import::IMPORT_HELP),
            "README.md says what `fengqiao import --help` says:\n{}",
            crate::import::IMPORT_HELP
        );
    }

    /// Issue 13 item 6: a refusal of a history value names the column as the file spells it,
    /// not the event the importer made of it; identical rows without numbers keep apart.
    #[test]
    fn refusals_name_the_ledger_column_and_identical_rows_are_counted() {
        let text = "信访形式,问题类别,事项类型,主要诉求,区划代码,受理时间,答复时间,答复结果,答复内容\n\
                    来访,拖欠工资,申诉求决,欠薪,430702001001,2026-03-02 09:00,2026-03-05 09:00,支持,已补发\n\
                    来访,拖欠工资,申诉求决,欠薪,430702001001,2026-03-02 09:00,2026-03-05 09:00,支持,已补发\n";
        let parsed = parse_ledger(text, LedgerFormat::Csv);
        assert_eq!(parsed.problems, vec![]);
        assert_eq!(
            parsed.rows.iter().map(|row| row.repeat).collect::<Vec<_>>(),
            [0, 1]
        );
        let row = &parsed.rows[0];
        assert_eq!(column_for_field(row, "history[1].text"), Some("reply_text"));
        assert_eq!(column_for_field(row, "history[1].at"), Some("replied_at"));
        assert_eq!(column_for_field(row, "history[1]"), Some("replied_at"));
        assert_eq!(column_for_field(row, "history[0]"), Some("accepted_at"));
        assert_eq!(column_for_field(row, "history[7].text"), None);
        assert_eq!(column_for_field(row, "case.summary"), Some("summary"));
        assert_eq!(
            column_for_field(row, "case.location.region_code"),
            Some("region_code")
        );
        assert_eq!(
            column_for_field(row, "case.petitioners.name"),
            Some("petitioner_name")
        );
        assert_eq!(
            column_for_field(row, "case.petitioners"),
            Some("petitioner_name")
        );

        let mut reports = vec![fengqiao_case::ImportRowReport {
            line: 2,
            number: None,
            outcome: fengqiao_case::ImportOutcome::Rejected,
            error: Some("history[1].text: is 10001 characters long; at most 10000".into()),
            field: Some("history[1].text".into()),
        }];
        crate::import::name_the_columns(&mut reports, &parsed);
        assert_eq!(
            reports[0].error.as_deref(),
            Some("答复内容: is 10001 characters long; at most 10000")
        );
    }

    #[test]
    fn format_follows_the_extension() {
        use std::path::Path;
        assert_eq!(
            LedgerFormat::from_path(Path::new("a.CSV")),
            Some(LedgerFormat::Csv)
        );
        assert_eq!(
            LedgerFormat::from_path(Path::new("a.jsonl")),
            Some(LedgerFormat::Jsonl)
        );
        assert_eq!(
            LedgerFormat::from_path(Path::new("台账.xlsx")),
            Some(LedgerFormat::Xlsx)
        );
        assert_eq!(LedgerFormat::from_path(Path::new("a.xls")), None);
    }
}
