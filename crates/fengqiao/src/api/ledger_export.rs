//! The 台账 out, for the API's `GET /api/export/ledger` (and so `fengqiao export`) and the
//! console's download alike: the cases matching the ledger's filters, read one at a time into
//! the columns `fengqiao import` reads, written as they are read, and a record in the access log
//! of who exported how many cases, how, and whether identifiers went out whole.

use std::io::{Seek, Write};
use std::sync::mpsc::{Receiver, sync_channel};

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
/// first (the console's order), and log the export; the number of cases written.
///
/// The list's order is kept as case numbers only (the summaries are dropped once sorted).
/// Each case's row comes from `Store::ledger_facts`: the facts the store keeps per case
/// or, for a case written since its keeper last read it, from its automerge document. Reading
/// and rendering runs on [`reader_count`] threads ahead of the writer, each taking every n-th case and
/// handing its rows over a bounded channel, so memory holds at most [`ROWS_AHEAD`] rows per
/// reader besides the numbers, and the writer takes them back in list order. A pass over every
/// case reads documents without putting them in the store's cache.
pub fn export_ledger<W: Write + Seek + Send>(
    node: &Node,
    exporter: Exporter<'_>,
    query: &CaseQuery,
    identifiers: Identifiers,
    format: LedgerFileFormat,
    now: DateTime<Utc>,
    writer: W,
) -> Result<usize, ServiceError> {
    let numbers: Vec<String> = matching_items(node, query, now)?
        .into_iter()
        .map(|item| item.summary.number)
        .collect();
    let readers = reader_count();
    let (written, failure) = std::thread::scope(|scope| {
        let receivers: Vec<Receiver<RowRead>> = (0..readers)
            .map(|reader| {
                let (sender, receiver) = sync_channel::<RowRead>(ROWS_AHEAD);
                let numbers = &numbers;
                scope.spawn(move || {
                    for number in numbers.iter().skip(reader).step_by(readers) {
                        let read = read_row(node, number, identifiers);
                        let failed = read.is_err();
                        // The writer has stopped (an error, or a failed read before): stop too.
                        if sender.send(read).is_err() || failed {
                            break;
                        }
                    }
                });
                receiver
            })
            .collect();
        let mut failure: Option<ServiceError> = None;
        let rows = (0..numbers.len())
            .map_while(|index| match receivers[index % readers].recv() {
                Ok(Ok(row)) => Some(row),
                Ok(Err(error)) => {
                    failure = Some(error);
                    None
                }
                // A reader gone without sending its row has panicked; the scope reports it.
                Err(_) => {
                    failure = Some(ServiceError::Internal(
                        "a ledger export reader stopped early".to_owned(),
                    ));
                    None
                }
            })
            .flatten();
        let written = write_ledger(format, rows, writer);
        // Dropping the receivers stops readers still ahead of a writer that gave up.
        drop(receivers);
        (written, failure)
    });
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

/// Rows each reader may have read ahead of the writer: enough to keep the writer busy while a
/// reader loads a large document, few enough that memory stays flat whatever the ledger's size.
const ROWS_AHEAD: usize = 256;

/// One case read for the export: its row, or None for a case gone since the list was read
/// (none are deleted today; it is left out).
type RowRead = Result<Option<Vec<String>>, ServiceError>;

/// How many threads read cases for an export: one per core (the writer's own work, writing
/// and compressing the workbook, is less than the reading, so the readers share the cores with
/// it), at least one, at most four (the store's reads contend beyond that).
fn reader_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4)
}

/// Case `number`'s ledger row: from the row the store keeps for it while that is current (the
/// case not written since its keeper read it), else from its document, read without caching it.
fn read_row(node: &Node, number: &str, identifiers: Identifiers) -> RowRead {
    Ok(node
        .store()
        .ledger_facts(number)?
        .map(|facts| ledger_row(&facts, identifiers)))
}
