//! `fengqiao export`: the 台账 of a running node as an Excel workbook or CSV, through
//! `GET /api/export/ledger` (the console's download too), in the columns `fengqiao import` reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use fengqiao_case::{Category, Status, WarningGrade};

use crate::client::NodeClient;
use crate::import::export::LedgerFileFormat;
use crate::import::values::{parse_date, parse_labelled, snake_name};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// xlsx or csv [default: from the --to file's extension, else xlsx]
    #[arg(long, value_enum)]
    pub format: Option<LedgerFileFormat>,
    /// The file to write (replaced once the export is whole) [default: stdout]
    #[arg(long, value_name = "FILE")]
    pub to: Option<PathBuf>,
    /// Only this lifecycle status (accepted, 已受理, …)
    #[arg(long, value_parser = parse_labelled::<Status>)]
    pub status: Option<Status>,
    /// Only this category (wage_arrears, 拖欠工资, …)
    #[arg(long, value_parser = parse_labelled::<Category>)]
    pub category: Option<Category>,
    /// Only cases whose worst warning is this grade (yellow, 黄色, …)
    #[arg(long, value_parser = parse_labelled::<WarningGrade>)]
    pub grade: Option<WarningGrade>,
    /// Only cases registered on or after this day (China time)
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub registered_from: Option<NaiveDate>,
    /// Only cases registered on or before this day (China time)
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub registered_to: Option<NaiveDate>,
    /// Only cases this office (node ID) holds
    #[arg(long, value_name = "NODE_ID")]
    pub holder: Option<String>,
    /// Only cases located in this region (a township's code: its villages too)
    #[arg(long, value_name = "CODE")]
    pub region: Option<String>,
    /// A case number (or part of one) or a petitioner's name; the search is logged
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// ID numbers and phones whole (an admin only; the export is logged either way)
    #[arg(long)]
    pub full: bool,
}

impl ExportArgs {
    /// The file format: `--format`, else the `--to` file's extension, else xlsx.
    pub fn file_format(&self) -> LedgerFileFormat {
        self.format
            .or_else(|| {
                self.to
                    .as_deref()
                    .and_then(Path::extension)
                    .and_then(|extension| extension.to_str())
                    .and_then(LedgerFileFormat::from_name)
            })
            .unwrap_or(LedgerFileFormat::Xlsx)
    }

    /// The query of `GET /api/export/ledger`.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("format", self.file_format().name().to_owned())];
        let day = |date: NaiveDate| date.format("%Y-%m-%d").to_string();
        query.extend(self.status.map(|status| ("status", snake_name(&status))));
        query.extend(
            self.category
                .map(|category| ("category", snake_name(&category))),
        );
        query.extend(self.grade.map(|grade| ("grade", snake_name(&grade))));
        query.extend(self.registered_from.map(|from| ("from", day(from))));
        query.extend(self.registered_to.map(|to| ("to", day(to))));
        query.extend(self.holder.clone().map(|holder| ("holder", holder)));
        query.extend(self.region.clone().map(|region| ("region", region)));
        query.extend(self.search.clone().map(|search| ("q", search)));
        if self.full {
            query.push(("full", "true".to_owned()));
        }
        query
    }
}

/// Run `fengqiao export`: the node writes, this copies the bytes to the file (whole or not at
/// all) or to stdout.
pub fn run(args: &ExportArgs, client: &NodeClient) -> anyhow::Result<()> {
    let query = args.query();
    let Some(path) = &args.to else {
        let mut stdout = std::io::stdout().lock();
        client.download("/api/export/ledger", &query, &mut stdout)?;
        return stdout.flush().context("cannot write to stdout");
    };
    let bytes = super::output::write_file_whole(path, |file| {
        client.download("/api/export/ledger", &query, file)
    })?;
    eprintln!(
        "wrote {} ({bytes} bytes, {})",
        path.display(),
        args.file_format().name()
    );
    Ok(())
}
