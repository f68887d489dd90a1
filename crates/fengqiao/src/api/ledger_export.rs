//! The 台账 out, for the API's `GET /api/export/ledger` (and so `fengqiao export`) and the
//! console's download alike: the cases matching the ledger's filters, read one at a time into
//! the columns `fengqiao import` reads, written as they are read, and a record in the access log
//! of who exported how many cases, how, and whether identifiers went out whole.

use std::io::{Seek, Write};

use chrono::{DateTime, Utc};
use fengqiao_console::CaseQuery;

use super::console_backend::matching_items;
use crate::import::export::{Identifiers, LedgerFileFormat, ledger_row, write_ledger};
use crate::service::{Node, ServiceError};

/// Who asked for an export, and through what, as the access log records it.
#[derive(Debug, Clone, Copy)]
pub struct Exporter<'a> {
    /// The operator label of the account (`李调解 (lizt)`).
    pub operator: &'a str,
    /// The access log's action: `export_ledger` (API, CLI) or `export_ledger_console`.
    pub action: &'a str,
}

/// Write every case matching `query` as a ledger file of `format` to `writer`, most urgent
/// first (the console's order), and log the export; the number of cases written. Each case is
/// read from the store as its row is written, so memory holds the list's summaries, not the
/// cases.
pub fn export_ledger<W: Write + Seek + Send>(
    node: &Node,
    exporter: Exporter<'_>,
    query: &CaseQuery,
    identifiers: Identifiers,
    format: LedgerFileFormat,
    now: DateTime<Utc>,
    writer: W,
) -> Result<usize, ServiceError> {
    let items = matching_items(node, query, now)?;
    let mut failure: Option<ServiceError> = None;
    let rows = items
        .iter()
        .map_while(|item| {
            let contents = node
                .store()
                .with_case(&item.summary.number, |document| document.contents())
                .map_err(ServiceError::from)
                .and_then(|read| read.transpose().map_err(ServiceError::from));
            match contents {
                // A case gone since the list was read (none are deleted today) is left out.
                Ok(contents) => {
                    Some(contents.map(|(header, events)| ledger_row(&header, &events, identifiers)))
                }
                Err(error) => {
                    failure = Some(error);
                    None
                }
            }
        })
        .flatten();
    let written = write_ledger(format, rows, writer);
    if let Some(error) = failure {
        return Err(error);
    }
    let written = written.map_err(|error| ServiceError::Internal(error.to_string()))?;
    let record = serde_json::json!({
        "at": now,
        "operator": exporter.operator,
        "action": exporter.action,
        "format": format.name(),
        "cases": written,
        "full_identifiers": identifiers == Identifiers::Full,
    });
    node.store().log_access(record.to_string().as_bytes())?;
    Ok(written)
}
