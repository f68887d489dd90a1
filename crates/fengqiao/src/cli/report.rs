//! `fengqiao report --month 2026-11 --to report.xlsx`: the monthly supervision report as an
//! Excel workbook, one sheet each: the measures for the month office by office (the answer of
//! `GET /api/stats/children` to the query `fengqiao stats --by-child` sends for that month:
//! nothing is counted here), the cases overdue now (`GET /api/cases?overdue=true`) and the
//! directives not yet crossed off (`GET /api/directives?open=true`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use clap::Args;
use fengqiao_case::model::roster::RosterView;
use fengqiao_case::model::stats::{OfficeStats, StatsBreakdown};
use fengqiao_case::summary::earliest_open_deadline;
use fengqiao_case::warnings::worst_grade;
use fengqiao_case::{CaseListItem, DirectiveListItem, MeasureSet};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::output::{emit, write_file_whole};
use super::render::{RATE_LABELS, imported_cases_text, rates};
use crate::client::NodeClient;
use crate::import::export::label;
use crate::import::values::china_time;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The month reported on (China time), e.g. 2026-11
    #[arg(long, value_parser = parse_month, value_name = "YYYY-MM")]
    pub month: NaiveDate,
    /// The workbook to write (.xlsx)
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Leave out the cases a ledger import registered (as `stats --without-imported`)
    #[arg(long)]
    pub without_imported: bool,
}

/// The sheets of the report, in order.
pub const MEASURES_SHEET: &str = "分级统计";
pub const OVERDUE_SHEET: &str = "超期案件";
pub const DIRECTIVES_SHEET: &str = "未销号督办";

/// The columns of the measures sheet after office and region: cases, the six rates (as
/// `stats` labels them), then the counts.
pub const COUNT_HEADERS: [&str; 9] = [
    "预警",
    "超时",
    "严重超时",
    "督办中",
    "督办超期",
    "督办已销号",
    "上报",
    "交办",
    "冲突",
];

/// `2026-11` as the first day of that month.
pub fn parse_month(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(&format!("{}-01", text.trim()), "%Y-%m-%d")
        .map_err(|_| format!("`{}` is not a month like 2026-11", text.trim()))
}

/// The last day of the month that `first` starts.
fn last_day_of_month(first: NaiveDate) -> anyhow::Result<NaiveDate> {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.and_then(|next| next.pred_opt())
        .with_context(|| format!("the month {} has no end", first.format("%Y-%m")))
}

/// The query `stats --by-child --from FIRST --to LAST` sends for the month: the report asks
/// exactly what it asks.
pub fn month_query(args: &ReportArgs) -> anyhow::Result<Vec<(&'static str, String)>> {
    Ok(super::stats::period_query(
        Some(args.month),
        Some(last_day_of_month(args.month)?),
        None,
        args.without_imported,
    ))
}

/// Run `fengqiao report`: ask the node, write the workbook whole or not at all.
pub fn run(args: &ReportArgs, client: &NodeClient) -> anyhow::Result<()> {
    if args
        .to
        .extension()
        .is_none_or(|extension| !extension.eq_ignore_ascii_case("xlsx"))
    {
        bail!(
            "{}: the report is an Excel workbook; name it *.xlsx",
            args.to.display()
        );
    }
    let breakdown: StatsBreakdown = client.get_as("/api/stats/children", &month_query(args)?)?;
    let overdue: Vec<CaseListItem> =
        client.get_as("/api/cases", &[("overdue", "true".to_owned())])?;
    let directives: Vec<DirectiveListItem> =
        client.get_as("/api/directives", &[("open", "true".to_owned())])?;
    // Office names for node IDs; a node without a federation (or a role that may not read the
    // roster) shows the IDs.
    let names: HashMap<String, String> = client
        .get_as::<RosterView>("/api/roster", &[])
        .map(|roster| {
            roster
                .members
                .into_iter()
                .chain(roster.revoked)
                .map(|member| (member.node_id, member.name))
                .collect()
        })
        .unwrap_or_default();
    let report = MonthlyReport {
        month: args.month,
        breakdown: &breakdown,
        overdue: &overdue,
        directives: &directives,
        names: &names,
    };
    write_file_whole(&args.to, |file| {
        report
            .write(file)
            .with_context(|| format!("cannot write the report {}", args.to.display()))
    })?;
    emit(format!(
        "wrote the report for {} to {}: {} office row(s), {} overdue case(s), {} open directive(s)",
        args.month.format("%Y-%m"),
        args.to.display(),
        1 + breakdown
            .children
            .iter()
            .map(|child| 1 + child.children.len())
            .sum::<usize>(),
        overdue.len(),
        directives.len()
    ))
}

/// What the report shows, as the node answered.
#[derive(Debug)]
struct MonthlyReport<'a> {
    month: NaiveDate,
    breakdown: &'a StatsBreakdown,
    overdue: &'a [CaseListItem],
    directives: &'a [DirectiveListItem],
    names: &'a HashMap<String, String>,
}

impl MonthlyReport<'_> {
    fn write<W: std::io::Write + std::io::Seek + Send>(&self, writer: W) -> Result<(), XlsxError> {
        let mut workbook = Workbook::new();
        let bold = Format::new().set_bold();
        let percent = Format::new().set_num_format("0.0%");
        self.write_measures(workbook.add_worksheet(), &bold, &percent)?;
        self.write_overdue(workbook.add_worksheet(), &bold)?;
        self.write_directives(workbook.add_worksheet(), &bold)?;
        workbook.save_to_writer(writer)
    }

    fn office_name(&self, node_id: &str) -> String {
        self.names
            .get(node_id)
            .cloned()
            .unwrap_or_else(|| node_id.to_owned())
    }

    fn write_measures(
        &self,
        sheet: &mut Worksheet,
        bold: &Format,
        percent: &Format,
    ) -> Result<(), XlsxError> {
        sheet.set_name(MEASURES_SHEET)?;
        let headers: Vec<&str> = ["单位", "区划代码", "登记件数"]
            .into_iter()
            .chain(RATE_LABELS.iter().map(|(chinese, _)| *chinese))
            .chain(COUNT_HEADERS)
            .collect();
        write_headers(sheet, &headers, bold)?;
        let mut rows: Vec<(String, String, &MeasureSet)> =
            vec![("全部".to_owned(), String::new(), &self.breakdown.total)];
        for child in &self.breakdown.children {
            rows.push(office_row(child, ""));
            for grandchild in &child.children {
                rows.push(office_row(grandchild, "  "));
            }
        }
        if self.breakdown.own.cases > 0 {
            rows.push(("本级".to_owned(), String::new(), &self.breakdown.own));
        }
        let mut row = 1u32;
        for (name, region, set) in &rows {
            sheet.write_string(row, 0, name)?;
            sheet.write_string(row, 1, region)?;
            sheet.write_number(row, 2, set.cases as f64)?;
            let mut column = 3u16;
            for ratio in rates(set) {
                match ratio.rate() {
                    Some(rate) => sheet.write_number_with_format(row, column, rate, percent)?,
                    None => sheet.write_string(row, column, "-")?,
                };
                column += 1;
            }
            for count in [
                set.approaching,
                set.overdue,
                set.seriously_overdue,
                set.directives_open,
                set.directives_overdue,
                set.directives_crossed_off,
                set.escalated,
                set.assigned,
                set.in_conflict,
            ] {
                sheet.write_number(row, column, count as f64)?;
                column += 1;
            }
            row += 1;
        }
        let last_day = last_day_of_month(self.month).unwrap_or(self.month);
        sheet.write_string(
            row + 1,
            0,
            format!(
                "统计期间 {} 至 {}（北京时间，按登记时间）；{}；统计时点 {}",
                self.month.format("%Y-%m-%d"),
                last_day.format("%Y-%m-%d"),
                imported_cases_text(self.breakdown.imported),
                china_time(&self.breakdown.now)
            ),
        )?;
        sheet.set_column_width(0, 24)?;
        sheet.set_column_width(1, 14)?;
        sheet.set_freeze_panes(1, 1)?;
        Ok(())
    }

    fn write_overdue(&self, sheet: &mut Worksheet, bold: &Format) -> Result<(), XlsxError> {
        sheet.set_name(OVERDUE_SHEET)?;
        write_headers(
            sheet,
            &[
                "编号",
                "状态",
                "办理单位",
                "问题类别",
                "区划代码",
                "村",
                "预警等级",
                "最早期限",
                "登记时间",
            ],
            bold,
        )?;
        for (index, item) in self.overdue.iter().enumerate() {
            let summary = &item.summary;
            let cells = [
                summary.number.clone(),
                label(&summary.status),
                self.office_name(&summary.holder),
                label(&summary.category),
                summary.region_code.clone(),
                summary.village.clone(),
                worst_grade(&item.warnings)
                    .map(|grade| label(&grade))
                    .unwrap_or_default(),
                optional_time(earliest_open_deadline(summary)),
                optional_time(summary.timeline.registered_at),
            ];
            write_text_row(sheet, index, &cells)?;
        }
        sheet.set_column_width(0, 26)?;
        sheet.set_freeze_panes(1, 1)?;
        Ok(())
    }

    fn write_directives(&self, sheet: &mut Worksheet, bold: &Format) -> Result<(), XlsxError> {
        sheet.set_name(DIRECTIVES_SHEET)?;
        write_headers(
            sheet,
            &[
                "案件编号",
                "督办单号",
                "督办要求",
                "督办单位",
                "督办人",
                "督办时间",
                "办结时限",
                "状态",
                "被督办单位",
                "案件办理单位",
                "预警等级",
            ],
            bold,
        )?;
        for (index, item) in self.directives.iter().enumerate() {
            let directive = &item.directive;
            let cells = [
                item.case.clone(),
                directive.id.clone(),
                directive.requirement.clone(),
                self.office_name(&directive.issuer_node),
                directive.issued_by.clone(),
                china_time(&directive.issued_at),
                china_time(&directive.due),
                label(&directive.status),
                self.office_name(&directive.target_node),
                self.office_name(&item.holder),
                worst_grade(&item.warnings)
                    .map(|grade| label(&grade))
                    .unwrap_or_default(),
            ];
            write_text_row(sheet, index, &cells)?;
        }
        sheet.set_column_width(0, 26)?;
        sheet.set_column_width(2, 40)?;
        sheet.set_freeze_panes(1, 1)?;
        Ok(())
    }
}

/// An office's row of the measures sheet: its name (marked if revoked), region and measures.
fn office_row<'s>(office: &'s OfficeStats, indent: &str) -> (String, String, &'s MeasureSet) {
    let mut name = office
        .name
        .clone()
        .unwrap_or_else(|| "（未在名册中的单位）".to_owned());
    if office.revoked {
        name.push_str("（已撤销）");
    }
    (
        format!("{indent}{name}"),
        office.region_code.clone(),
        &office.measures,
    )
}

fn optional_time(instant: Option<DateTime<Utc>>) -> String {
    instant.as_ref().map(china_time).unwrap_or_default()
}

fn write_headers(sheet: &mut Worksheet, headers: &[&str], bold: &Format) -> Result<(), XlsxError> {
    for (column, header) in headers.iter().enumerate() {
        let column = u16::try_from(column).map_err(|_| XlsxError::RowColumnLimitError)?;
        sheet.write_string_with_format(0, column, *header, bold)?;
    }
    Ok(())
}

/// Data row `index` (0-based, below the header) as text cells.
fn write_text_row(sheet: &mut Worksheet, index: usize, cells: &[String]) -> Result<(), XlsxError> {
    let row = u32::try_from(index + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
    for (column, cell) in cells.iter().enumerate() {
        let column = u16::try_from(column).map_err(|_| XlsxError::RowColumnLimitError)?;
        sheet.write_string(row, column, cell)?;
    }
    Ok(())
}
