//! Byte layouts of every record the store keeps, each behind a leading version byte so the format can evolve.
//!
//! Decoding never trusts stored bytes: anything unexpected becomes [`StoreError::Corrupt`], because
//! sled 0.34 can leave damaged records behind after an abrupt stop (sled issue #1533).

use fengqiao_case::{CaseId, CaseSummary};

use crate::StoreError;

/// Layout version of a saved document record: `[1] ++ automerge save()`.
pub(crate) const DOCUMENT_RECORD_VERSION: u8 = 1;
/// Layout version of an incremental chunk record: `[1] ++ automerge save_incremental()`.
pub(crate) const CHUNK_RECORD_VERSION: u8 = 1;
/// Layout version of a summary record: `[3] ++ bincode(CaseSummary)`.
pub(crate) const SUMMARY_RECORD_VERSION: u8 = 3;
/// Layout version of a summary record written before `CaseSummary::petitioner_names`: the same
/// bincode without that last field. Read still, with no names; the store fills the names in
/// from the documents after opening (`Store::migrate_petitioner_names`).
pub(crate) const SUMMARY_RECORD_BEFORE_NAMES_VERSION: u8 = 2;
/// Layout version of a summary record written before `CaseSummary::imported`: the same bincode
/// without that last field. Read still, as not imported (no build before it could import with
/// a mark).
pub(crate) const SUMMARY_RECORD_BEFORE_IMPORTED_VERSION: u8 = 1;
/// Layout version of a case bookkeeping record without the document's heads (see
/// [`CaseRecord`]); written by earlier builds, and read still.
pub(crate) const CASE_RECORD_VERSION: u8 = 1;
/// Layout version of a case bookkeeping record with the document's heads.
pub(crate) const CASE_RECORD_WITH_HEADS_VERSION: u8 = 2;
/// Layout version of a feed entry value: `[1] ++ case number (UTF-8)`.
pub(crate) const FEED_RECORD_VERSION: u8 = 1;
/// Layout version of an access log value: `[1] ++ caller's record bytes`.
pub(crate) const LOG_RECORD_VERSION: u8 = 1;

/// A summary is a few hundred bytes; anything claiming more than this is a damaged length prefix,
/// and refusing it keeps a corrupt record from asking for an enormous allocation.
const SUMMARY_DECODE_LIMIT_BYTES: usize = 1 << 24;

pub(crate) fn corrupt(what: impl Into<String>, why: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        why: why.into(),
    }
}

pub(crate) fn encode_versioned(version: u8, payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(payload.len() + 1);
    record.push(version);
    record.extend_from_slice(payload);
    record
}

/// The payload of a versioned record, after checking its version byte.
pub(crate) fn decode_versioned<'record>(
    what: &str,
    expected_version: u8,
    record: &'record [u8],
) -> Result<&'record [u8], StoreError> {
    match record.split_first() {
        None => Err(corrupt(what, "empty record")),
        Some((&version, payload)) if version == expected_version => Ok(payload),
        Some((&version, _)) => Err(corrupt(
            what,
            format!("record version {version}, this build reads {expected_version}"),
        )),
    }
}

pub(crate) fn encode_summary(summary: &CaseSummary) -> Result<Vec<u8>, StoreError> {
    let encoded =
        bincode::serde::encode_to_vec(summary, bincode::config::standard()).map_err(|error| {
            corrupt(
                format!("summary of case {}", summary.number),
                error.to_string(),
            )
        })?;
    Ok(encode_versioned(SUMMARY_RECORD_VERSION, &encoded))
}

pub(crate) fn decode_summary(number: &str, record: &[u8]) -> Result<CaseSummary, StoreError> {
    let what = format!("summary of case {number}");
    let completed;
    let payload = match record.first() {
        // bincode writes a struct's fields one after another: `imported`, a bool (one byte, 0
        // for false), then `petitioner_names`, a sequence (its length first, a varint: one 0
        // byte when empty). An older payload with the missing fields' zeros after it is this
        // layout.
        Some(&SUMMARY_RECORD_BEFORE_IMPORTED_VERSION) => {
            let mut payload = record[1..].to_vec();
            payload.extend_from_slice(&[0, 0]);
            completed = payload;
            completed.as_slice()
        }
        Some(&SUMMARY_RECORD_BEFORE_NAMES_VERSION) => {
            let mut payload = record[1..].to_vec();
            payload.push(0);
            completed = payload;
            completed.as_slice()
        }
        _ => decode_versioned(&what, SUMMARY_RECORD_VERSION, record)?,
    };
    let config = bincode::config::standard().with_limit::<SUMMARY_DECODE_LIMIT_BYTES>();
    let (summary, consumed): (CaseSummary, usize) =
        bincode::serde::decode_from_slice(payload, config)
            .map_err(|error| corrupt(&what, error.to_string()))?;
    if consumed != payload.len() {
        return Err(corrupt(
            &what,
            format!("{} trailing bytes", payload.len() - consumed),
        ));
    }
    if summary.number != number {
        return Err(corrupt(
            &what,
            "stored summary belongs to another case number",
        ));
    }
    Ok(summary)
}

pub(crate) fn encode_feed_value(number: &str) -> Vec<u8> {
    encode_versioned(FEED_RECORD_VERSION, number.as_bytes())
}

pub(crate) fn decode_feed_value(seq: u64, record: &[u8]) -> Result<CaseId, StoreError> {
    let what = format!("feed entry {seq}");
    let payload = decode_versioned(&what, FEED_RECORD_VERSION, record)?;
    String::from_utf8(payload.to_vec()).map_err(|error| corrupt(what, error.to_string()))
}

pub(crate) fn decode_u64_key(what: &str, key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| corrupt(what, format!("key of {} bytes, expected 8", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Plain big-endian u64 values (counters, case count, feed head); their meaning is fixed by the
/// store format version kept in the meta tree.
pub(crate) fn decode_u64_value(what: &str, value: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| corrupt(what, format!("value of {} bytes, expected 8", value.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Per-case bookkeeping that lets a transaction find everything it must touch with point reads
/// (sled 0.34 transactions cannot scan): the case's current feed entry and its incremental chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaseRecord {
    /// The case's one live entry in the change feed.
    pub(crate) feed_seq: u64,
    /// Chunks stored under keys `number ++ 0x00 ++ 0..chunk_count` in the changes tree.
    pub(crate) chunk_count: u32,
    pub(crate) chunk_bytes: u64,
    pub(crate) saved_bytes: u64,
    /// The document's heads (sorted), so that the federation can tell what a case is at without
    /// loading it; `None` in records of earlier builds (and of raw test writes), whose readers
    /// load the document instead.
    pub(crate) heads: Option<Vec<[u8; 32]>>,
}

/// Version 1: `[1] ++ feed_seq u64 BE ++ chunk_count u32 BE ++ chunk_bytes u64 BE ++ saved_bytes
/// u64 BE`. Version 2: `[2]`, the same fields, then the heads, 32 bytes each, to the end.
const CASE_RECORD_LENGTH: usize = 1 + 8 + 4 + 8 + 8;

impl CaseRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let heads = self.heads.as_deref().unwrap_or_default();
        let mut record = Vec::with_capacity(CASE_RECORD_LENGTH + heads.len() * 32);
        record.push(match self.heads {
            None => CASE_RECORD_VERSION,
            Some(_) => CASE_RECORD_WITH_HEADS_VERSION,
        });
        record.extend_from_slice(&self.feed_seq.to_be_bytes());
        record.extend_from_slice(&self.chunk_count.to_be_bytes());
        record.extend_from_slice(&self.chunk_bytes.to_be_bytes());
        record.extend_from_slice(&self.saved_bytes.to_be_bytes());
        for head in heads {
            record.extend_from_slice(head);
        }
        record
    }

    pub(crate) fn decode(number: &str, record: &[u8]) -> Result<CaseRecord, StoreError> {
        let what = format!("bookkeeping record of case {number}");
        let (payload, heads) = match record.split_first() {
            Some((&CASE_RECORD_WITH_HEADS_VERSION, payload))
                if payload.len() >= CASE_RECORD_LENGTH - 1 =>
            {
                let (fields, heads) = payload.split_at(CASE_RECORD_LENGTH - 1);
                if heads.len() % 32 != 0 {
                    return Err(corrupt(
                        what,
                        format!("{} bytes of heads, not whole 32-byte hashes", heads.len()),
                    ));
                }
                let heads = heads
                    .chunks_exact(32)
                    .map(|head| {
                        let mut hash = [0u8; 32];
                        hash.copy_from_slice(head);
                        hash
                    })
                    .collect();
                (fields, Some(heads))
            }
            Some((&CASE_RECORD_WITH_HEADS_VERSION, _)) => {
                return Err(corrupt(
                    what,
                    format!(
                        "{} bytes, expected at least {CASE_RECORD_LENGTH}",
                        record.len()
                    ),
                ));
            }
            _ => (decode_versioned(&what, CASE_RECORD_VERSION, record)?, None),
        };
        if payload.len() != CASE_RECORD_LENGTH - 1 {
            return Err(corrupt(
                what,
                format!("{} bytes, expected {}", record.len(), CASE_RECORD_LENGTH),
            ));
        }
        let (feed_seq, rest) = payload.split_at(8);
        let (chunk_count, rest) = rest.split_at(4);
        let (chunk_bytes, saved_bytes) = rest.split_at(8);
        let as_u64 = |bytes: &[u8]| decode_u64_value(&what, bytes);
        let chunk_count: [u8; 4] = chunk_count
            .try_into()
            .map_err(|_| corrupt(&what, "short chunk count"))?;
        Ok(CaseRecord {
            feed_seq: as_u64(feed_seq)?,
            chunk_count: u32::from_be_bytes(chunk_count),
            chunk_bytes: as_u64(chunk_bytes)?,
            saved_bytes: as_u64(saved_bytes)?,
            heads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_record_round_trips_and_rejects_damage() {
        let record = CaseRecord {
            feed_seq: 7,
            chunk_count: 3,
            chunk_bytes: 900,
            saved_bytes: 2_000,
            heads: None,
        };
        let encoded = record.encode();
        assert_eq!(CaseRecord::decode("n", &encoded).ok(), Some(record.clone()));
        let with_heads = CaseRecord {
            heads: Some(vec![[1; 32], [2; 32]]),
            ..record
        };
        let encoded_with_heads = with_heads.encode();
        assert_eq!(encoded_with_heads[0], CASE_RECORD_WITH_HEADS_VERSION);
        assert_eq!(
            CaseRecord::decode("n", &encoded_with_heads).ok(),
            Some(with_heads)
        );
        for damaged in [
            &encoded_with_heads[..encoded_with_heads.len() - 1],
            &encoded_with_heads[..10],
        ] {
            assert!(matches!(
                CaseRecord::decode("n", damaged),
                Err(StoreError::Corrupt { .. })
            ));
        }
        assert!(matches!(
            CaseRecord::decode("n", &encoded[..10]),
            Err(StoreError::Corrupt { .. })
        ));
        let mut wrong_version = encoded.clone();
        wrong_version[0] = 9;
        assert!(matches!(
            CaseRecord::decode("n", &wrong_version),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            CaseRecord::decode("n", &[]),
            Err(StoreError::Corrupt { .. })
        ));
    }

    /// A store written before `CaseSummary::imported` holds version-1 summaries: the same
    /// bincode without the last field. They read as not imported.
    #[test]
    fn summaries_written_before_the_imported_field_still_read() {
        let mut summary = crate::test_support::summary_for(
            "430702001001-2026-000007",
            fengqiao_case::Status::Accepted,
            "node-a",
        );
        summary.imported = true;
        let current = encode_summary(&summary).expect("encodes");
        assert_eq!(current[0], SUMMARY_RECORD_VERSION);
        assert_eq!(
            current[current.len() - 2..],
            [1, 0],
            "`imported`, then no names, are the last bytes"
        );
        let mut version_1 = current[..current.len() - 2].to_vec();
        version_1[0] = SUMMARY_RECORD_BEFORE_IMPORTED_VERSION;
        let read = decode_summary(&summary.number, &version_1).expect("a version-1 record reads");
        summary.imported = false;
        assert_eq!(read, summary);
        assert!(
            decode_summary(&summary.number, &current)
                .expect("reads")
                .imported
        );
    }

    /// A store written before `CaseSummary::petitioner_names` holds version-2 summaries: the
    /// same bincode without the last field. They read with no names (the migration adds them).
    #[test]
    fn summaries_written_before_the_names_still_read() {
        let mut summary = crate::test_support::summary_for(
            "430702001001-2026-000008",
            fengqiao_case::Status::Accepted,
            "node-a",
        );
        summary.imported = true;
        let without_names = encode_summary(&summary).expect("encodes");
        assert_eq!(without_names.last(), Some(&0), "no names: a zero length");
        let mut version_2 = without_names[..without_names.len() - 1].to_vec();
        version_2[0] = SUMMARY_RECORD_BEFORE_NAMES_VERSION;
        let read = decode_summary(&summary.number, &version_2).expect("a version-2 record reads");
        assert_eq!(read, summary);

        summary.petitioner_names = vec!["张国强".to_owned(), "李秀英".to_owned()];
        let with_names = encode_summary(&summary).expect("encodes");
        assert_eq!(
            decode_summary(&summary.number, &with_names).expect("reads"),
            summary
        );
    }

    #[test]
    fn garbage_summary_bytes_are_corrupt_not_a_panic() {
        for garbage in [
            vec![],
            vec![SUMMARY_RECORD_VERSION],
            vec![
                SUMMARY_RECORD_VERSION,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
            ],
            vec![9, 1, 2, 3],
            vec![SUMMARY_RECORD_VERSION; 300],
            vec![SUMMARY_RECORD_BEFORE_IMPORTED_VERSION],
        ] {
            assert!(matches!(
                decode_summary("430702-2026-000001", &garbage),
                Err(StoreError::Corrupt { .. })
            ));
        }
    }
}
