//! The ledger rows: per case, the facts of its 台账 row (`LedgerFacts`), kept beside the document
//! by a keeper that follows the change feed, so that an export of the whole ledger reads one
//! small record per case instead of loading every automerge document (the most of its time).
//!
//! A row is stamped with the case's feed position when the keeper read the case, and is used
//! only while the case is still at that position: a case written since (the keeper not there
//! yet) is read from its document instead, so an export is never stale, only slower. The keeper
//! runs outside the write path, so writes and sync pay nothing for it.

use fengqiao_case::model::ledger::{LEDGER_FACTS_VERSION, LedgerFacts};
use fengqiao_case::summary::ledger_facts;

use crate::codec::corrupt;
use crate::{FeedSeq, Store, StoreError};

/// One step of [`Store::keep_ledger_rows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerRowsStep {
    /// Feed entries read.
    pub read: usize,
    /// Rows written (the others were current already, or their case had moved on).
    pub written: usize,
    /// Whether the keeper has reached the feed's head.
    pub caught_up: bool,
}

fn encode_row(feed_seq: FeedSeq, facts: &LedgerFacts) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(facts).map_err(|error| {
        corrupt(
            format!("ledger row of case {}", facts.header.number),
            error.to_string(),
        )
    })?;
    let mut record = Vec::with_capacity(1 + 8 + json.len());
    record.push(LEDGER_FACTS_VERSION);
    record.extend_from_slice(&feed_seq.to_be_bytes());
    record.extend_from_slice(&json);
    Ok(record)
}

fn row_name(number: &str) -> String {
    format!("ledger row of case {number}")
}

/// The feed position a row was stamped with and the rest of the record (its facts), without
/// reading the facts; `None` for a record of another version (the case is then read from its
/// document).
fn split_row<'a>(
    number: &str,
    record: &'a [u8],
) -> Result<Option<(FeedSeq, &'a [u8])>, StoreError> {
    match record.split_first() {
        Some((&LEDGER_FACTS_VERSION, rest)) if rest.len() >= 8 => {
            let (seq, json) = rest.split_at(8);
            let mut seq_bytes = [0u8; 8];
            seq_bytes.copy_from_slice(seq);
            Ok(Some((u64::from_be_bytes(seq_bytes), json)))
        }
        Some((&LEDGER_FACTS_VERSION, _)) | None => {
            Err(corrupt(row_name(number), "record too short"))
        }
        Some(_) => Ok(None),
    }
}

/// A row's facts, checked to be case `number`'s.
fn decode_facts(number: &str, json: &[u8]) -> Result<LedgerFacts, StoreError> {
    let facts: LedgerFacts = serde_json::from_slice(json)
        .map_err(|error| corrupt(row_name(number), error.to_string()))?;
    if facts.header.number != number {
        return Err(corrupt(
            row_name(number),
            "it belongs to another case number",
        ));
    }
    Ok(facts)
}

impl Store {
    /// Case `number`'s ledger facts as the keeper kept them, if they are current: the case has
    /// not been written since. `None` when there is no current row (the caller reads the
    /// document); a damaged row counts as none, with a warning, as the document is still there.
    pub fn current_ledger_facts(&self, number: &str) -> Result<Option<LedgerFacts>, StoreError> {
        let Some(record) = self.storage.read_ledger_row(number)? else {
            return Ok(None);
        };
        // The stamp is compared first: a row the case has moved on from is not parsed at all.
        let facts = match split_row(number, &record) {
            Ok(Some((stamped, _))) if self.feed_position(number)? != Some(stamped) => {
                return Ok(None);
            }
            Ok(Some((_, json))) => decode_facts(number, json),
            Ok(None) => return Ok(None),
            Err(error) => Err(error),
        };
        match facts {
            Ok(facts) => Ok(Some(facts)),
            Err(error) => {
                tracing::warn!(case = number, %error, "ignoring a damaged ledger row; the case is read from its document");
                Ok(None)
            }
        }
    }

    /// Case `number`'s ledger facts: its kept row while current ([`Store::current_ledger_facts`]),
    /// else read from its document without caching it. `None` if there is no such case. The
    /// one way the 台账's pages and its export read a case's row.
    pub fn ledger_facts(&self, number: &str) -> Result<Option<LedgerFacts>, StoreError> {
        if let Some(facts) = self.current_ledger_facts(number)? {
            return Ok(Some(facts));
        }
        let Some(contents) = self.with_case_uncached(number, |document| document.contents())?
        else {
            return Ok(None);
        };
        let (header, events) = contents?;
        Ok(Some(ledger_facts(&header, &events)))
    }

    /// One step of the ledger rows' keeper: reads up to `batch` feed entries after its position,
    /// and for each case still at its entry's position whose row is not stamped with it, reads
    /// the case (from the cache, or loaded without caching it) and writes its row, with the new
    /// position, in one batch. Stopped or killed at any point, the next step resumes after the
    /// last batch written.
    pub fn keep_ledger_rows(&self, batch: usize) -> Result<LedgerRowsStep, StoreError> {
        let batch = batch.max(1);
        let through = self.storage.ledger_rows_through()?;
        let entries = self.storage.feed_since(through, batch)?;
        let Some(last) = entries.last().map(|entry| entry.seq) else {
            return Ok(LedgerRowsStep {
                read: 0,
                written: 0,
                caught_up: true,
            });
        };
        let mut rows = Vec::new();
        for entry in &entries {
            // The position is read before the document: a write after it moves the case on, so
            // the row is stamped with a position the case has left and is never used, and the
            // write's own feed entry brings the keeper back to the case.
            if self.feed_position(&entry.case)? != Some(entry.seq) {
                continue;
            }
            if let Some(record) = self.storage.read_ledger_row(&entry.case)?
                && matches!(split_row(&entry.case, &record), Ok(Some((stamped, json)))
                    if stamped == entry.seq && decode_facts(&entry.case, json).is_ok())
            {
                continue;
            }
            let contents = match self
                .with_case_uncached(&entry.case, |document| document.contents())
            {
                Ok(Some(Ok(contents))) => contents,
                Ok(None) => continue,
                Ok(Some(Err(error))) => {
                    tracing::warn!(case = entry.case, %error, "the ledger rows' keeper cannot read a case; exports read its document");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(case = entry.case, %error, "the ledger rows' keeper cannot load a case; exports read its document");
                    continue;
                }
            };
            let (header, events) = contents;
            let facts = ledger_facts(&header, &events);
            if facts.header.number != entry.case {
                continue;
            }
            rows.push((entry.case.clone(), encode_row(entry.seq, &facts)?));
        }
        self.storage.write_ledger_rows(&rows, last)?;
        Ok(LedgerRowsStep {
            read: entries.len(),
            written: rows.len(),
            caught_up: entries.len() < batch,
        })
    }

    /// Cases written since the keeper last passed (0 when it has caught up): the exports read
    /// these from their documents. Counts feed entries, one per case, so it costs a range scan
    /// as long as the keeper is behind.
    pub fn ledger_rows_pending(&self) -> Result<u64, StoreError> {
        self.storage
            .feed_count_after(self.storage.ledger_rows_through()?)
    }
}

#[cfg(test)]
mod tests {
    use fengqiao_case::summary::ledger_facts;
    use fengqiao_case::{EventKind, ReplyOutcome, Status};

    use crate::test_support::{TEST_ACTOR, create_documents, event, summary_for};
    use crate::{LedgerRowsStep, Store, StoreOptions};

    fn open(path: &std::path::Path) -> Store {
        Store::open(path, StoreOptions::new(8, TEST_ACTOR.to_vec())).expect("store opens")
    }

    fn number(sequence: u32) -> String {
        format!("430702001001-2026-{sequence:06}")
    }

    fn create(store: &Store, count: u32) {
        let numbers: Vec<String> = (1..=count).map(number).collect();
        create_documents(store, &numbers).expect("created");
    }

    /// The facts the case's document says now: what a current row must hold.
    fn from_document(store: &Store, number: &str) -> fengqiao_case::model::ledger::LedgerFacts {
        let (header, events) = store
            .with_case(number, |document| document.contents())
            .expect("reads")
            .expect("exists")
            .expect("valid");
        ledger_facts(&header, &events)
    }

    #[test]
    fn the_keeper_follows_the_feed_and_a_row_is_used_only_while_its_case_is_unchanged() {
        let directory = tempfile::tempdir().expect("tempdir");
        {
            let store = open(directory.path());
            create(&store, 3);
            assert_eq!(store.current_ledger_facts(&number(1)).expect("reads"), None);
            assert_eq!(store.ledger_rows_pending().expect("counts"), 3);
            let step = store.keep_ledger_rows(2).expect("a step runs");
            assert_eq!(
                step,
                LedgerRowsStep {
                    read: 2,
                    written: 2,
                    caught_up: false
                }
            );
            assert_eq!(
                store.current_ledger_facts(&number(1)).expect("reads"),
                Some(from_document(&store, &number(1)))
            );
            assert_eq!(store.current_ledger_facts(&number(3)).expect("reads"), None);
            assert_eq!(store.ledger_rows_pending().expect("counts"), 1);
        }

        // Reopened (as after a kill): the keeper resumes after what it wrote.
        let store = open(directory.path());
        let step = store.keep_ledger_rows(2).expect("a step runs");
        assert_eq!((step.read, step.written, step.caught_up), (1, 1, true));
        assert_eq!(store.ledger_rows_pending().expect("counts"), 0);
        for sequence in 1..=3 {
            let facts = store
                .current_ledger_facts(&number(sequence))
                .expect("reads")
                .expect("current");
            assert_eq!(facts, from_document(&store, &number(sequence)));
            assert_eq!(facts.reply, None);
        }

        // A reply written: the row is stale at once (never used), and the keeper's next step
        // brings it up to date with the reply.
        let case = number(2);
        store
            .update_case(&case, |document| {
                document.push_event(&event(
                    "reply-2",
                    EventKind::Reply {
                        outcome: ReplyOutcome::Support,
                        text: "已协调发放工资".to_owned(),
                    },
                    None,
                ))?;
                Ok::<_, fengqiao_case::DocumentError>((
                    summary_for(&case, Status::Replied, "node-a"),
                    (),
                ))
            })
            .expect("store works")
            .expect("change applies");
        assert_eq!(store.current_ledger_facts(&case).expect("reads"), None);
        assert_eq!(store.ledger_rows_pending().expect("counts"), 1);
        let step = store.keep_ledger_rows(8).expect("a step runs");
        assert_eq!((step.read, step.written, step.caught_up), (1, 1, true));
        let facts = store
            .current_ledger_facts(&case)
            .expect("reads")
            .expect("current");
        assert_eq!(
            facts.reply.as_ref().map(|reply| reply.text.as_str()),
            Some("已协调发放工资")
        );
        assert_eq!(facts, from_document(&store, &case));
        let idle = store.keep_ledger_rows(8).expect("a step runs");
        assert_eq!((idle.read, idle.written, idle.caught_up), (0, 0, true));
    }

    #[test]
    fn a_damaged_or_foreign_row_is_not_used() {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = open(directory.path());
        create(&store, 2);
        store.keep_ledger_rows(8).expect("a step runs");
        let rows = store.storage.raw_tree("ledger_rows").expect("tree");
        let first = rows
            .get(number(1).as_bytes())
            .expect("reads")
            .expect("kept");
        // Truncated JSON, a record of an unknown version, case 1's row under case 2's number.
        rows.insert(number(1).as_bytes(), &first[..first.len() - 3])
            .expect("written");
        assert_eq!(store.current_ledger_facts(&number(1)).expect("reads"), None);
        let mut other_version = first.to_vec();
        other_version[0] = 200;
        rows.insert(number(1).as_bytes(), other_version)
            .expect("written");
        assert_eq!(store.current_ledger_facts(&number(1)).expect("reads"), None);
        rows.insert(number(2).as_bytes(), &first[..])
            .expect("written");
        assert_eq!(store.current_ledger_facts(&number(2)).expect("reads"), None);
        rows.insert(number(2).as_bytes(), &[1u8, 2, 3][..])
            .expect("written");
        assert_eq!(store.current_ledger_facts(&number(2)).expect("reads"), None);
    }
}
