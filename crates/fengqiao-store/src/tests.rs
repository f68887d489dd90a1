//! Store tests: tree-level behaviour on raw bytes, and whole-document behaviour through the public API.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use fengqiao_case::{CaseSummary, Category, Status};

use crate::storage::{DocumentWrite, PreparedCase, PreparedUpdate};
use crate::test_support::{TEST_ACTOR, create_documents, document_for, instant, note, summary_for};
use crate::{
    CaseFilter, FeedEntry, NewCase, QuarantineKey, ReceivedCase, StagedUpdate, Store, StoreError,
    StoreOptions,
};

fn open_store(path: &Path) -> Store {
    open_with(path, 8, 4)
}

fn open_with(path: &Path, cache_capacity: usize, compact_after_chunks: u32) -> Store {
    let options = StoreOptions {
        compact_after_chunks,
        ..StoreOptions::new(cache_capacity, TEST_ACTOR.to_vec())
    };
    Store::open(path, options).expect("store opens")
}

fn number(sequence: u32) -> String {
    format!("430702001001-2026-{sequence:06}")
}

/// Stand-in for an automerge save: distinct, recognisable bytes per case.
fn fake_saved(number: &str) -> Vec<u8> {
    let mut saved = b"saved:".to_vec();
    saved.extend_from_slice(number.as_bytes());
    saved.resize(400, b'.');
    saved
}

fn create_raw(store: &Store, summaries: &[CaseSummary]) -> Result<Vec<u64>, StoreError> {
    let prepared = summaries
        .iter()
        .map(|summary| PreparedCase::new(fake_saved(&summary.number), summary))
        .collect::<Result<Vec<_>, _>>()?;
    store.create_prepared(&prepared, &[])
}

fn update_raw(store: &Store, summary: &CaseSummary, write: DocumentWrite) -> u64 {
    let update = PreparedUpdate::new(summary, write).expect("update encodes");
    let seq = store
        .storage
        .write_update(&summary.number, &update)
        .expect("update commits");
    store.storage.flush().expect("flush");
    seq
}

fn numbers_of(summaries: &[CaseSummary]) -> Vec<String> {
    summaries
        .iter()
        .map(|summary| summary.number.clone())
        .collect()
}

fn tree_len(store: &Store, name: &str) -> usize {
    store.storage.raw_tree(name).expect("known tree").len()
}

/// Keys of the index tree, not counting the counts kept beside them.
fn index_key_count(store: &Store) -> usize {
    let indexes = store.storage.raw_tree("indexes").expect("indexes");
    indexes.len() - indexes.scan_prefix(b"#").count()
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Corrupt { .. })),
        "expected a corrupt-record error, got {result:?}"
    );
}

#[test]
fn raw_cases_round_trip_through_reopen() {
    let directory = tempfile::tempdir().expect("tempdir");
    let summaries: Vec<_> = (1..=3)
        .map(|sequence| summary_for(&number(sequence), Status::Registered, "node-a"))
        .collect();
    {
        let store = open_store(directory.path());
        assert_eq!(create_raw(&store, &summaries).ok(), Some(vec![1, 2, 3]));
    }
    let store = open_store(directory.path());
    assert_eq!(store.case_count(), 3);
    for summary in &summaries {
        assert_eq!(
            store.summary(&summary.number).ok().flatten().as_ref(),
            Some(summary)
        );
        let stored = store
            .storage
            .read_document(&summary.number)
            .expect("document reads")
            .expect("document exists");
        assert_eq!(stored.saved, fake_saved(&summary.number));
        assert!(stored.chunks.is_empty());
        assert!(store.contains(&summary.number).expect("contains"));
    }
    assert_eq!(store.summary(&number(99)).ok(), Some(None));
    assert!(!store.contains(&number(99)).expect("contains"));
}

#[test]
fn raw_updates_append_chunks_and_compaction_replaces_them_atomically() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_with(directory.path(), 8, 2);
    let summary = summary_for(&number(1), Status::Registered, "node-a");
    create_raw(&store, std::slice::from_ref(&summary)).expect("created");

    update_raw(&store, &summary, DocumentWrite::Append(b"chunk-0".to_vec()));
    update_raw(&store, &summary, DocumentWrite::Append(b"chunk-1".to_vec()));
    let stored = store
        .storage
        .read_document(&summary.number)
        .expect("reads")
        .expect("exists");
    assert_eq!(stored.saved, fake_saved(&summary.number));
    assert_eq!(
        stored.chunks,
        vec![b"chunk-0".to_vec(), b"chunk-1".to_vec()]
    );
    assert_eq!(tree_len(&store, "changes"), 2);

    let record = store
        .storage
        .read_case_record(&summary.number)
        .expect("reads")
        .expect("exists");
    assert_eq!(record.chunk_count, 2);
    assert_eq!(record.chunk_bytes, 14);
    // A third chunk exceeds the limit of two.
    assert!(crate::storage::should_compact(&record, 7, 2));
    // Chunks outweighing the saved form trigger it too.
    assert!(crate::storage::should_compact(&record, 400, 100));
    assert!(!crate::storage::should_compact(&record, 7, 100));

    update_raw(
        &store,
        &summary,
        DocumentWrite::Compact(b"compacted".to_vec()),
    );
    let stored = store
        .storage
        .read_document(&summary.number)
        .expect("reads")
        .expect("exists");
    assert_eq!(stored.saved, b"compacted".to_vec());
    assert!(stored.chunks.is_empty());
    assert_eq!(tree_len(&store, "changes"), 0);

    // Chunk numbering restarts after compaction and survives a reopen.
    update_raw(
        &store,
        &summary,
        DocumentWrite::Append(b"chunk-after".to_vec()),
    );
    update_raw(&store, &summary, DocumentWrite::Unchanged);
    drop(store);
    let store = open_store(directory.path());
    let stored = store
        .storage
        .read_document(&summary.number)
        .expect("reads")
        .expect("exists");
    assert_eq!(stored.saved, b"compacted".to_vec());
    assert_eq!(stored.chunks, vec![b"chunk-after".to_vec()]);
}

#[test]
fn create_with_any_taken_number_writes_nothing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let first = summary_for(&number(1), Status::Registered, "node-a");
    create_raw(&store, std::slice::from_ref(&first)).expect("created");
    let tree_sizes = |store: &Store| {
        [
            "documents",
            "case_records",
            "summaries",
            "indexes",
            "feed",
            "meta",
        ]
        .map(|name| tree_len(store, name))
    };
    let before = tree_sizes(&store);

    let fresh = summary_for(&number(2), Status::Registered, "node-a");
    let batch = [fresh.clone(), first.clone()];
    assert!(matches!(
        create_raw(&store, &batch),
        Err(StoreError::AlreadyExists(taken)) if taken == first.number
    ));
    // A duplicate inside one batch is refused the same way.
    let batch = [fresh.clone(), fresh.clone()];
    assert!(matches!(
        create_raw(&store, &batch),
        Err(StoreError::AlreadyExists(taken)) if taken == fresh.number
    ));

    assert_eq!(tree_sizes(&store), before);
    assert_eq!(store.case_count(), 1);
    assert_eq!(store.summary(&fresh.number).ok(), Some(None));
    assert_eq!(store.feed_head().ok(), Some(1));
    drop(store);
    assert_eq!(open_store(directory.path()).case_count(), 1);
}

#[test]
fn feed_keeps_one_latest_entry_per_case_in_order() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let summaries: Vec<_> = (1..=4)
        .map(|sequence| summary_for(&number(sequence), Status::Registered, "node-a"))
        .collect();
    assert_eq!(create_raw(&store, &summaries).ok(), Some(vec![1, 2, 3, 4]));

    assert_eq!(
        update_raw(&store, &summaries[1], DocumentWrite::Unchanged),
        5
    );
    assert_eq!(
        update_raw(&store, &summaries[0], DocumentWrite::Unchanged),
        6
    );
    assert_eq!(
        update_raw(&store, &summaries[1], DocumentWrite::Unchanged),
        7
    );

    let entry = |seq: u64, index: usize| FeedEntry {
        seq,
        case: summaries[index].number.clone(),
    };
    let all = store.feed_since(0, 100).expect("feed");
    assert_eq!(
        all,
        vec![entry(3, 2), entry(4, 3), entry(6, 0), entry(7, 1)]
    );
    assert_eq!(tree_len(&store, "feed"), summaries.len());

    // A reader whose cursor is 4 sees exactly the cases changed after it.
    assert_eq!(
        store.feed_since(4, 100).ok(),
        Some(vec![entry(6, 0), entry(7, 1)])
    );
    // Paging with a limit and the last seen seq as cursor.
    let first_page = store.feed_since(0, 2).expect("page");
    assert_eq!(first_page, vec![entry(3, 2), entry(4, 3)]);
    let second_page = store.feed_since(first_page[1].seq, 2).expect("page");
    assert_eq!(second_page, vec![entry(6, 0), entry(7, 1)]);
    assert_eq!(store.feed_since(7, 10).ok(), Some(vec![]));
    assert_eq!(store.feed_since(u64::MAX, 10).ok(), Some(vec![]));
    assert_eq!(store.feed_since(0, 0).ok(), Some(vec![]));
    assert_eq!(store.feed_head().ok(), Some(7));

    // The sequence continues after a reopen instead of restarting.
    drop(store);
    let store = open_store(directory.path());
    assert_eq!(
        update_raw(&store, &summaries[2], DocumentWrite::Unchanged),
        8
    );
}

#[test]
fn index_filters_follow_updates() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let mut one = summary_for(&number(1), Status::Registered, "node-a");
    one.timeline.acceptance_deadline = Some(instant(16, 0));
    let mut two = summary_for(&number(2), Status::Accepted, "node-b");
    two.timeline.handling_deadline = Some(instant(20, 0));
    two.category = Category::Environment;
    let mut three = summary_for(&number(3), Status::Closed, "node-a");
    three.region_code = "430702002003".to_owned();
    three.timeline.acceptance_deadline = Some(instant(2, 0));
    let mut four = summary_for(&number(4), Status::Registered, "node-a");
    four.region_code = "430703001001".to_owned();
    four.timeline.acceptance_deadline = Some(instant(10, 0));
    create_raw(
        &store,
        &[one.clone(), two.clone(), three.clone(), four.clone()],
    )
    .expect("created");

    let list = |filter: CaseFilter| numbers_of(&store.list(&filter).expect("lists"));
    assert_eq!(
        list(CaseFilter {
            status: Some(Status::Registered),
            ..CaseFilter::default()
        }),
        vec![number(1), number(4)]
    );
    assert_eq!(
        list(CaseFilter {
            holder: Some("node-a".to_owned()),
            ..CaseFilter::default()
        }),
        vec![number(1), number(3), number(4)]
    );
    assert_eq!(
        list(CaseFilter {
            category: Some(Category::Environment),
            ..CaseFilter::default()
        }),
        vec![number(2)]
    );
    // A township code takes all its villages, and only them.
    assert_eq!(
        list(CaseFilter {
            region_prefix: Some("430702".to_owned()),
            ..CaseFilter::default()
        }),
        vec![number(1), number(2), number(3)]
    );
    assert_eq!(
        list(CaseFilter {
            region_prefix: Some("430702002".to_owned()),
            ..CaseFilter::default()
        }),
        vec![number(3)]
    );
    // Closed cases have no open deadline; open ones come most urgent first.
    assert_eq!(
        list(CaseFilter {
            deadline_before: Some(instant(20, 0)),
            ..CaseFilter::default()
        }),
        vec![number(4), number(1), number(2)]
    );
    assert_eq!(
        list(CaseFilter {
            deadline_before: Some(instant(15, 0)),
            ..CaseFilter::default()
        }),
        vec![number(4)]
    );
    assert_eq!(
        list(CaseFilter {
            holder: Some("node-a".to_owned()),
            status: Some(Status::Registered),
            region_prefix: Some("430702".to_owned()),
            ..CaseFilter::default()
        }),
        vec![number(1)]
    );
    assert_eq!(
        list(CaseFilter {
            limit: Some(2),
            ..CaseFilter::default()
        }),
        vec![number(1), number(2)]
    );
    assert_eq!(
        list(CaseFilter {
            holder: Some("node-a".to_owned()),
            limit: Some(1),
            ..CaseFilter::default()
        }),
        vec![number(1)]
    );

    // Case 1 is escalated: new holder, accepted there, with a handling deadline.
    one.status = Status::Accepted;
    one.holder = "node-c".to_owned();
    one.timeline.handling_deadline = Some(instant(25, 0));
    update_raw(&store, &one, DocumentWrite::Unchanged);
    assert_eq!(
        list(CaseFilter {
            status: Some(Status::Registered),
            ..CaseFilter::default()
        }),
        vec![number(4)]
    );
    assert_eq!(
        list(CaseFilter {
            holder: Some("node-a".to_owned()),
            ..CaseFilter::default()
        }),
        vec![number(3), number(4)]
    );
    assert_eq!(
        list(CaseFilter {
            holder: Some("node-c".to_owned()),
            ..CaseFilter::default()
        }),
        vec![number(1)]
    );
    assert_eq!(
        list(CaseFilter {
            deadline_before: Some(instant(20, 0)),
            ..CaseFilter::default()
        }),
        vec![number(4), number(2)]
    );
    assert_eq!(
        list(CaseFilter {
            status: Some(Status::Accepted),
            deadline_before: Some(instant(30, 0)),
            ..CaseFilter::default()
        }),
        vec![number(2), number(1)]
    );
    // Only the changed keys moved: six keys per case (status, holder, category, region, the
    // deadline order, registration), the closed one's deadline key at the end of the order.
    assert_eq!(index_key_count(&store), 4 * 6);
    assert_index_counts_equal_their_keys(&store);

    let mut seen = Vec::new();
    store
        .for_each_summary(|summary| seen.push(summary.number.clone()))
        .expect("visits");
    assert_eq!(seen, vec![number(1), number(2), number(3), number(4)]);
}

#[test]
fn case_count_and_sequences_survive_reopen_and_never_repeat() {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut handed_out = HashSet::new();
    for round in 0..3u32 {
        let store = open_store(directory.path());
        assert_eq!(store.case_count(), u64::from(round) * 2);
        let summaries: Vec<_> = (1..=2)
            .map(|offset| summary_for(&number(round * 10 + offset), Status::Registered, "n"))
            .collect();
        create_raw(&store, &summaries).expect("created");
        assert_eq!(store.case_count(), u64::from(round) * 2 + 2);
        for _ in 0..5 {
            let sequence = store
                .next_case_sequence("430702001001-2026")
                .expect("sequence");
            assert!(handed_out.insert(sequence), "sequence {sequence} repeated");
        }
        // Another prefix counts on its own.
        assert_eq!(
            store
                .next_case_sequence(&format!("430702001002-{round}"))
                .ok(),
            Some(1)
        );
    }
    let mut sorted: Vec<_> = handed_out.into_iter().collect();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=15).collect::<Vec<u64>>());
}

#[test]
fn corrupt_records_give_errors_not_panics() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let summaries: Vec<_> = (1..=4)
        .map(|sequence| summary_for(&number(sequence), Status::Registered, "node-a"))
        .collect();
    create_raw(&store, &summaries).expect("created");
    let tree = |name: &str| store.storage.raw_tree(name).expect("known tree");

    tree("summaries")
        .insert(number(1).as_bytes(), &[1u8, 0xff, 0xfe, 0x03][..])
        .expect("damage");
    assert_corrupt(store.summary(&number(1)));
    assert_corrupt(store.list(&CaseFilter::default()));
    assert_corrupt(store.for_each_summary(|_| {}));
    assert_corrupt(store.list(&CaseFilter {
        holder: Some("node-a".to_owned()),
        ..CaseFilter::default()
    }));

    tree("case_records")
        .insert(number(2).as_bytes(), &[1u8, 2, 3][..])
        .expect("damage");
    assert_corrupt(store.with_case(&number(2), |_| ()));
    assert_corrupt(store.update_case(&number(2), |_| Err::<(CaseSummary, ()), ()>(())));

    // A document record of an unknown layout version is refused before automerge sees it.
    tree("documents")
        .insert(number(3).as_bytes(), &[9u8, 1, 2, 3][..])
        .expect("damage");
    assert_corrupt(store.with_case(&number(3), |_| ()));

    // A missing chunk the bookkeeping record promises.
    let record = crate::codec::CaseRecord {
        chunk_count: 1,
        ..store
            .storage
            .read_case_record(&number(4))
            .expect("reads")
            .expect("exists")
    };
    tree("case_records")
        .insert(number(4).as_bytes(), record.encode())
        .expect("damage");
    assert_corrupt(store.with_case(&number(4), |_| ()));

    tree("feed")
        .insert(&4u64.to_be_bytes()[..], &[3u8][..])
        .expect("damage");
    assert_corrupt(store.feed_since(0, 10));

    tree("counters")
        .insert(&b"430702001001-2026"[..], &b"xx"[..])
        .expect("damage");
    assert_corrupt(store.next_case_sequence("430702001001-2026"));

    // A damaged case count is reported at open.
    tree("meta")
        .insert(&b"store/case_count"[..], &b"bad"[..])
        .expect("damage");
    drop(store);
    assert_corrupt(Store::open(
        directory.path(),
        StoreOptions::new(2, TEST_ACTOR.to_vec()),
    ));
}

#[test]
fn an_update_rewrites_a_corrupt_summary() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let summary = summary_for(&number(1), Status::Registered, "node-a");
    create_raw(&store, std::slice::from_ref(&summary)).expect("created");
    store
        .storage
        .raw_tree("summaries")
        .expect("known tree")
        .insert(number(1).as_bytes(), &[1u8][..])
        .expect("damage");
    update_raw(&store, &summary, DocumentWrite::Unchanged);
    assert_eq!(store.summary(&number(1)).ok().flatten(), Some(summary));
}

#[test]
fn unknown_cases_are_reported_as_missing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    assert!(matches!(store.with_case(&number(1), |_| ()), Ok(None)));
    let mut called = false;
    let result = store.update_case(&number(1), |_| {
        called = true;
        Err::<(CaseSummary, ()), ()>(())
    });
    assert!(matches!(result, Err(StoreError::NotFound(missing)) if missing == number(1)));
    assert!(!called);
    let update = PreparedUpdate::new(
        &summary_for(&number(1), Status::Registered, "n"),
        DocumentWrite::Unchanged,
    )
    .expect("encodes");
    assert!(matches!(
        store.storage.write_update(&number(1), &update),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(tree_len(&store, "feed"), 0);
}

#[test]
fn metadata_is_namespaced_and_the_access_log_appends() {
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(directory.path());
        assert_eq!(store.meta_get("node_name").ok(), Some(None));
        store
            .meta_put("node_name", "河洑镇".as_bytes())
            .expect("put");
        // A caller's key named like the store's own cannot disturb it.
        store.meta_put("store/case_count", b"x").expect("put");
        store.log_access(b"first").expect("log");
        store.log_access(b"second").expect("log");
        assert_eq!(store.case_count(), 0);
    }
    let store = open_store(directory.path());
    assert_eq!(store.case_count(), 0);
    assert_eq!(
        store.meta_get("node_name").ok().flatten(),
        Some("河洑镇".as_bytes().to_vec())
    );
    store.log_access(b"third").expect("log");
    let log = store.access_log_since(0, 10).expect("reads");
    let records: Vec<_> = log.iter().map(|(_, record)| record.clone()).collect();
    assert_eq!(
        records,
        vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
    );
    assert!(log.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let after_first = store.access_log_since(log[0].0, 1).expect("reads");
    assert_eq!(after_first, vec![log[1].clone()]);
}

#[test]
fn a_refused_change_is_quarantined_once_per_peer_case_and_hash() {
    let directory = tempfile::tempdir().expect("tempdir");
    let key = |peer, case, change_hash| QuarantineKey {
        peer,
        case,
        change_hash,
    };
    {
        let store = open_store(directory.path());
        let first = store
            .quarantine_unflushed(&key("village", "N1", "aa"), b"first")
            .expect("recorded");
        assert!(first.is_some());
        let again = store
            .quarantine_unflushed(&key("village", "N1", "aa"), b"again")
            .expect("checked");
        assert_eq!(again, None);
        // Another peer, case or change is another record, even where plain concatenation of
        // the parts would read alike.
        for other in [
            key("sibling", "N1", "aa"),
            key("village", "N2", "aa"),
            key("village", "N1", "bb"),
            key("village", "N1a", "a"),
        ] {
            assert!(
                store
                    .quarantine_unflushed(&other, b"other")
                    .expect("recorded")
                    .is_some(),
                "{other:?}"
            );
        }
        store.flush().expect("flush");
    }
    // The keys outlive a restart: the same change sent after it is not recorded again.
    let store = open_store(directory.path());
    assert_eq!(
        store
            .quarantine_unflushed(&key("village", "N1", "aa"), b"after a restart")
            .expect("checked"),
        None
    );
    let records = store.quarantine_since(0, 100).expect("reads");
    assert_eq!(records.len(), 5);
    assert_eq!(records[0].1, b"first".to_vec());
}

#[test]
fn unsupported_format_version_is_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(directory.path());
        store
            .storage
            .raw_tree("meta")
            .expect("known tree")
            .insert(&b"store/format_version"[..], &2u32.to_be_bytes()[..])
            .expect("writes");
    }
    assert!(matches!(
        Store::open(directory.path(), StoreOptions::new(2, TEST_ACTOR.to_vec())),
        Err(StoreError::UnsupportedFormat {
            found: 2,
            supported: 1
        })
    ));
}

#[test]
fn concurrent_writers_get_distinct_increasing_feed_positions() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open_store(directory.path()));
    let summaries: Vec<_> = (1..=8)
        .map(|sequence| summary_for(&number(sequence), Status::Registered, "node-a"))
        .collect();
    create_raw(&store, &summaries).expect("created");
    let threads: Vec<_> = summaries
        .into_iter()
        .map(|summary| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| update_raw(&store, &summary, DocumentWrite::Append(b"c".to_vec())))
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for thread in threads {
        let seqs = thread.join().expect("thread finishes");
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]));
        all.extend(seqs);
    }
    let distinct: HashSet<_> = all.iter().copied().collect();
    assert_eq!(distinct.len(), 160);
    assert_eq!(store.feed_head().ok(), Some(8 + 160));
    assert_eq!(
        store.feed_since(0, 100).map(|feed| feed.len()).ok(),
        Some(8)
    );
}

#[test]
fn case_numbers_with_nul_or_empty_are_refused() {
    assert!(crate::validate_case_number("430702-2026-000001").is_ok());
    assert!(matches!(
        crate::validate_case_number(""),
        Err(StoreError::InvalidCaseNumber { .. })
    ));
    assert!(matches!(
        crate::validate_case_number("4307\u{0}02"),
        Err(StoreError::InvalidCaseNumber { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// With real case documents (need `fengqiao_case::CaseDocument`).
// ---------------------------------------------------------------------------------------------

fn add_note(store: &Store, case: &str, id: &str, text: &str) -> u64 {
    let (_, seq) = store
        .update_case(case, |document| {
            document.push_event(&note(id, text))?;
            let mut summary = summary_for(case, Status::Accepted, "node-a");
            summary.event_count = document.events()?.len() as u32;
            Ok::<_, fengqiao_case::DocumentError>((summary, ()))
        })
        .expect("store works")
        .expect("change applies");
    seq
}

/// Append the note "n1" to `case` without the flush, leaving it accepted; returns its feed position.
fn add_note_unflushed(store: &Store, case: &str) -> u64 {
    let ((), seq) = store
        .update_case_unflushed(case, |document| {
            document.push_event(&note("n1", "第一次调解"))?;
            Ok::<_, fengqiao_case::DocumentError>((
                summary_for(case, Status::Accepted, "node-a"),
                (),
            ))
        })
        .expect("store works")
        .expect("change applies");
    seq
}

fn event_ids(store: &Store, case: &str) -> Vec<String> {
    store
        .with_case(case, |document| document.events().expect("events read"))
        .expect("store works")
        .expect("case exists")
        .into_iter()
        .map(|event| event.id)
        .collect()
}

#[test]
fn documents_round_trip_through_reopen() {
    let directory = tempfile::tempdir().expect("tempdir");
    let case = number(1);
    {
        let store = open_store(directory.path());
        assert_eq!(
            create_documents(&store, std::slice::from_ref(&case)).ok(),
            Some(vec![1])
        );
        assert_eq!(add_note(&store, &case, "n1", "第一次调解"), 2);
    }
    let store = open_store(directory.path());
    let header = store
        .with_case(&case, |document| document.header().expect("header reads"))
        .expect("store works")
        .expect("case exists");
    assert_eq!(header, crate::test_support::header_for(&case));
    assert_eq!(
        event_ids(&store, &case),
        vec![format!("register-{case}"), "n1".to_owned()]
    );
    assert_eq!(
        store.summary(&case).ok().flatten().map(|s| s.status),
        Some(Status::Accepted)
    );
    assert_eq!(add_note(&store, &case, "n2", "第二次调解"), 3);
    drop(store);
    let store = open_store(directory.path());
    assert_eq!(event_ids(&store, &case).len(), 3);
}

/// A document loaded for an update keeps what its load read for the update's first read
/// (`ReadAtLoad`), but no document the cache holds keeps it: neither one a reader loaded, nor
/// one an update did not read before it was cached. A first landing kept it on every load and
/// doubled a node's memory. (Reading the header or events takes it, so neither reads them.)
#[test]
fn no_cached_document_holds_its_events_twice() {
    let directory = tempfile::tempdir().expect("tempdir");
    let case = number(1);
    {
        let store = open_store(directory.path());
        create_documents(&store, std::slice::from_ref(&case)).expect("created");
    }
    let holds_read_at_load = |store: &Store| {
        store
            .with_case(&case, |document| document.holds_read_at_load())
            .expect("store works")
            .expect("case exists")
    };

    // A reader loads the document into the cache and asks only for its heads.
    let store = open_store(directory.path());
    store
        .with_case(&case, fengqiao_case::CaseDocument::head_hashes)
        .expect("store works")
        .expect("case exists");
    assert!(!holds_read_at_load(&store));
    drop(store);

    // An update loads it for the update and neither reads nor changes it.
    let store = open_store(directory.path());
    let ((), _) = store
        .update_case(&case, |document| {
            assert!(document.holds_read_at_load());
            Ok::<_, fengqiao_case::DocumentError>((
                summary_for(&case, Status::Accepted, "node-a"),
                (),
            ))
        })
        .expect("store works")
        .expect("change applies");
    assert!(!holds_read_at_load(&store));
}

#[test]
fn updates_store_incremental_bytes_and_compaction_keeps_content() {
    let directory = tempfile::tempdir().expect("tempdir");
    let case = number(1);
    let store = open_with(directory.path(), 4, 3);
    create_documents(&store, std::slice::from_ref(&case)).expect("created");
    let saved_before = store
        .storage
        .read_document(&case)
        .expect("reads")
        .expect("exists")
        .saved;

    add_note(&store, &case, "n1", "短");
    let stored = store
        .storage
        .read_document(&case)
        .expect("reads")
        .expect("exists");
    assert_eq!(
        stored.saved, saved_before,
        "an update must not rewrite the saved document"
    );
    assert_eq!(stored.chunks.len(), 1);
    assert!(stored.chunks[0].len() < saved_before.len());

    let mut expected = vec![format!("register-{case}"), "n1".to_owned()];
    for index in 2..=12 {
        let id = format!("n{index}");
        add_note(&store, &case, &id, "调解记录");
        expected.push(id);
        let record = store
            .storage
            .read_case_record(&case)
            .expect("reads")
            .expect("exists");
        assert!(record.chunk_count <= 3);
        assert!(record.chunk_bytes <= record.saved_bytes);
    }
    let stored = store
        .storage
        .read_document(&case)
        .expect("reads")
        .expect("exists");
    assert_ne!(stored.saved, saved_before, "compaction happened");
    assert_eq!(event_ids(&store, &case), expected);
    // A fresh load from disk (no cache) sees the same content.
    drop(store);
    let store = open_with(directory.path(), 4, 3);
    assert_eq!(event_ids(&store, &case), expected);
}

#[test]
fn create_cases_is_all_or_nothing_through_the_public_api() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    create_documents(&store, &[number(1)]).expect("created");
    let result = create_documents(&store, &[number(2), number(3), number(1)]);
    assert!(matches!(result, Err(StoreError::AlreadyExists(taken)) if taken == number(1)));
    assert_eq!(store.case_count(), 1);
    assert!(!store.contains(&number(2)).expect("contains"));
    assert!(
        store
            .with_case(&number(2), |_| ())
            .expect("store works")
            .is_none()
    );
    let result = create_documents(&store, &[number(4), number(4)]);
    assert!(matches!(result, Err(StoreError::AlreadyExists(_))));
    assert_eq!(
        create_documents(&store, &[number(2), number(3)]).ok(),
        Some(vec![2, 3])
    );
    assert_eq!(store.case_count(), 3);
}

#[test]
fn cache_stays_bounded() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_with(directory.path(), 2, 4);
    let numbers: Vec<_> = (1..=10).map(number).collect();
    create_documents(&store, &numbers).expect("created");
    for round in 0..2 {
        for case in &numbers {
            add_note(&store, case, &format!("{case}-{round}"), "回访");
            assert!(store.cache.len() <= 2);
        }
    }
    for case in &numbers {
        assert_eq!(event_ids(&store, case).len(), 3);
        assert!(store.cache.len() <= 2);
    }
}

#[test]
fn a_failing_change_writes_nothing_and_drops_the_cached_copy() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let case = number(1);
    create_documents(&store, std::slice::from_ref(&case)).expect("created");
    add_note(&store, &case, "n1", "第一次");
    let feed_before = store.feed_since(0, 10).expect("feed");
    let summary_before = store.summary(&case).expect("reads");
    let changes_before = tree_len(&store, "changes");

    let result = store
        .update_case(&case, |document| {
            // The change gets as far as touching the document, then fails.
            document
                .push_event(&note("half", "半途而废"))
                .expect("event applies");
            Err::<(CaseSummary, ()), &str>("refused")
        })
        .expect("store works");
    assert_eq!(result.err(), Some("refused"));
    assert!(store.cache.get(&case).is_none());
    assert_eq!(store.feed_since(0, 10).ok(), Some(feed_before));
    assert_eq!(store.summary(&case).expect("reads"), summary_before);
    assert_eq!(tree_len(&store, "changes"), changes_before);
    // Reloaded clean: the half-made change is gone, and the next update does not carry it.
    assert_eq!(
        event_ids(&store, &case),
        vec![format!("register-{case}"), "n1".to_owned()]
    );
    add_note(&store, &case, "n2", "第二次");
    drop(store);
    let store = open_store(directory.path());
    assert_eq!(
        event_ids(&store, &case),
        vec![format!("register-{case}"), "n1".to_owned(), "n2".to_owned()]
    );
}

#[test]
fn corrupt_document_bytes_give_an_error() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let case = number(1);
    create_documents(&store, std::slice::from_ref(&case)).expect("created");
    store
        .storage
        .raw_tree("documents")
        .expect("known tree")
        .insert(case.as_bytes(), &[1u8, 0x85, 0x6f, 0x4a, 0x83, 0, 1, 2][..])
        .expect("damage");
    assert_corrupt(store.with_case(&case, |_| ()));
    assert_corrupt(store.update_case(&case, |_| Err::<(CaseSummary, ()), ()>(())));
}

// ---------------------------------------------------------------------------------------------
// Scale check, run by hand in two processes so the open is measured without the fill's memory:
//   FENGQIAO_STORE_SCALE_DIR=/tmp/scale cargo test -p fengqiao-store --release -- --ignored scale_fill
//   FENGQIAO_STORE_SCALE_DIR=/tmp/scale cargo test -p fengqiao-store --release -- --ignored scale_open
// ---------------------------------------------------------------------------------------------

const SCALE_CASES: u32 = 100_000;

fn scale_directory() -> Option<std::path::PathBuf> {
    std::env::var_os("FENGQIAO_STORE_SCALE_DIR").map(std::path::PathBuf::from)
}

fn resident_mebibytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kibibytes / 1024)
}

#[test]
#[ignore = "scale check, run by hand"]
fn scale_fill() {
    let Some(directory) = scale_directory() else {
        return;
    };
    let store = open_store(&directory);
    let started = std::time::Instant::now();
    for batch in 0..SCALE_CASES / 1_000 {
        let summaries: Vec<_> = (0..1_000)
            .map(|offset| {
                let sequence = batch * 1_000 + offset + 1;
                let mut summary = summary_for(&number(sequence), Status::Registered, "node-a");
                summary.region_code = format!("430702{:03}{:03}", sequence % 20, sequence % 300);
                summary.timeline.acceptance_deadline = Some(instant(1 + sequence % 28, 0));
                summary
            })
            .collect();
        let prepared = summaries
            .iter()
            .map(|summary| {
                let mut saved = fake_saved(&summary.number);
                saved.resize(2_080, b'x');
                PreparedCase::new(saved, summary)
            })
            .collect::<Result<Vec<_>, _>>()
            .expect("encodes");
        store.create_prepared(&prepared, &[]).expect("created");
    }
    eprintln!(
        "filled {SCALE_CASES} cases in {:?}, resident {:?} MiB",
        started.elapsed(),
        resident_mebibytes()
    );
}

#[test]
#[ignore = "scale check, run by hand"]
fn scale_open() {
    let Some(directory) = scale_directory() else {
        return;
    };
    let started = std::time::Instant::now();
    let store = open_store(&directory);
    let opened = started.elapsed();
    let resident = resident_mebibytes();
    eprintln!("opened in {opened:?}, resident {resident:?} MiB");
    assert_eq!(store.case_count(), u64::from(SCALE_CASES));
    assert!(opened < std::time::Duration::from_secs(1));
    assert!(resident.is_some_and(|mebibytes| mebibytes < 150));

    let started = std::time::Instant::now();
    let township = store
        .list(&CaseFilter {
            region_prefix: Some("430702007".to_owned()),
            limit: Some(100),
            ..CaseFilter::default()
        })
        .expect("lists");
    let urgent = store
        .list(&CaseFilter {
            deadline_before: Some(instant(2, 0)),
            limit: Some(100),
            ..CaseFilter::default()
        })
        .expect("lists");
    eprintln!(
        "two listings ({} + {}) in {:?}",
        township.len(),
        urgent.len(),
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let mut visited = 0u64;
    store.for_each_summary(|_| visited += 1).expect("visits");
    eprintln!(
        "visited {visited} summaries in {:?}, resident {:?} MiB",
        started.elapsed(),
        resident_mebibytes()
    );
}

#[test]
fn a_reloaded_document_does_not_write_its_chunks_again() {
    let directory = tempfile::tempdir().expect("tempdir");
    let case = number(1);
    {
        let store = open_with(directory.path(), 4, 100);
        create_documents(&store, std::slice::from_ref(&case)).expect("created");
        add_note(&store, &case, "n1", "调解");
        add_note(&store, &case, "n2", "调解");
    }
    let store = open_with(directory.path(), 4, 100);
    add_note(&store, &case, "n3", "调解");
    let stored = store
        .storage
        .read_document(&case)
        .expect("reads")
        .expect("exists");
    let record = store
        .storage
        .read_case_record(&case)
        .expect("reads")
        .expect("exists");
    assert_eq!(record.chunk_count, 3);
    let first = stored.chunks[0].len();
    let last = stored.chunks[2].len();
    assert!(
        last < first * 2,
        "the chunk after a reload ({last} bytes) repeats earlier chunks ({first} bytes each)"
    );
    assert_eq!(
        event_ids(&store, &case),
        vec![
            format!("register-{case}"),
            "n1".to_owned(),
            "n2".to_owned(),
            "n3".to_owned()
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Advisory meta: unflushed, and committed with case writes.
// ---------------------------------------------------------------------------------------------

#[test]
fn unflushed_meta_is_visible_at_once_and_survives_a_clean_reopen() {
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(directory.path());
        store
            .meta_put_unflushed("sync/peer/cursor", b"\x01cursor")
            .expect("put");
        assert_eq!(
            store.meta_get("sync/peer/cursor").ok().flatten(),
            Some(b"\x01cursor".to_vec())
        );
        store
            .meta_put_many_unflushed(&[
                ("sync/peer/heads/a", b"heads-a".as_slice()),
                ("sync/peer/heads/b", b"heads-b".as_slice()),
                // Namespaced like every caller's key: cannot disturb the store's own.
                ("store/case_count", b"x".as_slice()),
            ])
            .expect("put many");
        assert_eq!(
            store.meta_get("sync/peer/heads/b").ok().flatten(),
            Some(b"heads-b".to_vec())
        );
        assert_eq!(store.case_count(), 0);
    }
    let store = open_store(directory.path());
    assert_eq!(store.case_count(), 0);
    for (key, value) in [
        ("sync/peer/cursor", b"\x01cursor".as_slice()),
        ("sync/peer/heads/a", b"heads-a"),
        ("sync/peer/heads/b", b"heads-b"),
    ] {
        assert_eq!(store.meta_get(key).ok().flatten().as_deref(), Some(value));
    }
}

/// Runs `test` (this binary's test of that name) again in a child process with `variable` naming
/// a fresh store directory, which the child writes in and then aborts without a clean close; the
/// directory is returned for the parent to reopen.
fn write_in_a_child_that_aborts(test: &str, variable: &str) -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--test-threads=1", "--quiet"])
        .env(variable, directory.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("child runs");
    assert!(!status.success(), "the child aborts after its writes");
    directory
}

/// Set in the child process of the test below: the store directory it writes and then aborts in.
const ABORT_CHILD_DIRECTORY: &str = "FENGQIAO_STORE_TEST_ABORT_DIRECTORY";

#[test]
fn a_following_flushed_write_makes_unflushed_meta_durable() {
    let case = number(1);
    if let Some(directory) = std::env::var_os(ABORT_CHILD_DIRECTORY) {
        // The child: bookkeeping without a flush, then a flushed case write, then no clean close.
        let store = open_store(Path::new(&directory));
        create_documents(&store, std::slice::from_ref(&case)).expect("case created");
        store
            .meta_put_unflushed("sync/peer/cursor", b"after-create")
            .expect("put");
        add_note(&store, &case, "n1", "第一次调解");
        std::process::abort();
    }
    let directory = write_in_a_child_that_aborts(
        "tests::a_following_flushed_write_makes_unflushed_meta_durable",
        ABORT_CHILD_DIRECTORY,
    );
    let store = open_store(directory.path());
    assert_eq!(
        event_ids(&store, &case).len(),
        2,
        "the flushed update survives"
    );
    assert_eq!(
        store.meta_get("sync/peer/cursor").ok().flatten(),
        Some(b"after-create".to_vec()),
        "meta written before a flushed write survives an abrupt stop"
    );
}

#[test]
fn meta_entries_commit_with_case_writes_or_not_at_all() {
    let directory = tempfile::tempdir().expect("tempdir");
    let case = number(1);
    {
        let store = open_store(directory.path());
        let mut document = document_for(&case);
        let summary = summary_for(&case, Status::Registered, "node-a");
        let created = store
            .create_cases_with_meta(
                &mut [NewCase {
                    document: &mut document,
                    summary: &summary,
                }],
                &[("sync/peer/heads/created", b"v1".as_slice())],
            )
            .expect("created");
        assert_eq!(created, vec![1]);
        // A taken number writes neither the case nor the meta.
        let mut again = document_for(&case);
        assert!(matches!(
            store.create_cases_with_meta(
                &mut [NewCase {
                    document: &mut again,
                    summary: &summary,
                }],
                &[("sync/peer/heads/taken", b"v1".as_slice())],
            ),
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(store.meta_get("sync/peer/heads/taken").ok(), Some(None));

        let (value, seq) = store
            .update_case_with_meta(&case, |document| {
                document.push_event(&note("n1", "第一次调解"))?;
                let summary = summary_for(&case, Status::Accepted, "node-a");
                let meta = vec![("sync/peer/heads/updated".to_owned(), b"v2".to_vec())];
                Ok::<_, fengqiao_case::DocumentError>((summary, meta, "done"))
            })
            .expect("store works")
            .expect("change applies");
        assert_eq!((value, seq), ("done", 2));
        // A refused change writes no meta either.
        let refused = store
            .update_case_with_meta(&case, |_document| {
                Err::<(CaseSummary, Vec<crate::MetaEntry>, ()), _>("refused")
            })
            .expect("store works");
        assert_eq!(refused, Err("refused"));
        assert_eq!(store.feed_head().ok(), Some(2));
    }
    let store = open_store(directory.path());
    assert_eq!(
        store.meta_get("sync/peer/heads/created").ok().flatten(),
        Some(b"v1".to_vec())
    );
    assert_eq!(
        store.meta_get("sync/peer/heads/updated").ok().flatten(),
        Some(b"v2".to_vec())
    );
    assert_eq!(event_ids(&store, &case).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Unflushed case writes, made durable together by one flush.
// ---------------------------------------------------------------------------------------------

/// A case as the federation's receiver writes it: a real document's saved bytes and heads.
fn received_case(case: &str, holder: &str) -> ReceivedCase {
    let mut document = document_for(case);
    ReceivedCase {
        saved: document.save(),
        heads: document.head_hashes(),
        summary: summary_for(case, Status::Registered, holder),
    }
}

fn create_received(store: &Store, case: ReceivedCase) -> Result<u64, StoreError> {
    let positions =
        store.create_received_cases_unflushed(&mut vec![case], &[] as &[(&str, &[u8])])?;
    Ok(positions.first().copied().expect("one position per case"))
}

#[test]
fn received_cases_are_written_in_one_transaction_or_left_to_the_caller() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let saved_case = |sequence: u32| received_case(&number(sequence), "node-a");
    let meta = [("sync/peer/heads/x", &b"heads"[..])];
    create_received(&store, saved_case(1)).expect("created");

    // A number taken in the store, or twice in the batch: nothing written, the batch handed back.
    for mut cases in [
        vec![saved_case(2), saved_case(1)],
        vec![saved_case(2), saved_case(2)],
    ] {
        let refused = store.create_received_cases_unflushed(&mut cases, &meta);
        assert!(
            matches!(refused, Err(StoreError::AlreadyExists(_))),
            "{refused:?}"
        );
        assert_eq!(cases.len(), 2);
        assert_eq!(store.case_count(), 1);
        assert_eq!(store.meta_get("sync/peer/heads/x").expect("reads"), None);
    }

    let mut cases = vec![saved_case(2), saved_case(3)];
    let positions = store
        .create_received_cases_unflushed(&mut cases, &meta)
        .expect("created");
    assert_eq!(positions, vec![2, 3]);
    assert!(cases.is_empty());
    assert_eq!(store.case_count(), 3);
    assert_eq!(
        store.meta_get("sync/peer/heads/x").expect("reads"),
        Some(b"heads".to_vec())
    );
    store.flush().expect("flushed");
    drop(store);
    let reopened = open_store(directory.path());
    assert_eq!(
        event_ids(&reopened, &number(3)),
        vec![format!("register-{}", number(3))]
    );
}

#[test]
fn staged_updates_are_written_together_unless_their_case_changed_meanwhile() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let cases = [number(1), number(2)];
    create_documents(&store, &cases).expect("created");
    let stage = |case: &str, id: &str| {
        store
            .stage_update(case, |document| {
                document.push_event(&note(id, "电话回访"))?;
                Ok::<_, fengqiao_case::DocumentError>((
                    summary_for(case, Status::Accepted, "node-a"),
                    (),
                ))
            })
            .expect("store works")
            .expect("change applies")
            .1
    };
    let meta = [("sync/peer/heads/x", &b"heads"[..])];

    // Staged, then the first case is written by another writer: nothing of the batch is written.
    let mut updates = vec![stage(&cases[0], "staged-1"), stage(&cases[1], "staged-2")];
    let other = add_note(&store, &cases[0], "other-writer", "上门走访");
    let refused = store.commit_staged_updates(&mut updates, &meta);
    assert!(
        matches!(&refused, Err(StoreError::ChangedMeanwhile(case)) if *case == cases[0]),
        "{refused:?}"
    );
    assert_eq!(updates.len(), 2);
    assert_eq!(store.meta_get("sync/peer/heads/x").expect("reads"), None);
    assert!(!event_ids(&store, &cases[1]).contains(&"staged-2".to_owned()));

    // Without it, the rest is written, with the meta entries, after the other writer's update.
    updates.retain(|update| update.number() != cases[0]);
    let positions = store
        .commit_staged_updates(&mut updates, &meta)
        .expect("written");
    assert_eq!(positions, vec![other + 1]);
    assert!(updates.is_empty());
    assert_eq!(
        store.meta_get("sync/peer/heads/x").expect("reads"),
        Some(b"heads".to_vec())
    );
    assert!(event_ids(&store, &cases[1]).contains(&"staged-2".to_owned()));
    assert!(!event_ids(&store, &cases[0]).contains(&"staged-1".to_owned()));
    store.flush().expect("flushed");
    drop(store);
    let reopened = open_store(directory.path());
    assert!(event_ids(&reopened, &cases[1]).contains(&"staged-2".to_owned()));
    assert!(event_ids(&reopened, &cases[0]).contains(&"other-writer".to_owned()));
}

fn stage_note_on_copy(store: &Store, case: &str, id: &str) -> StagedUpdate {
    store
        .stage_update_on_copy(case, |document| {
            document.push_event(&note(id, "电话回访"))?;
            Ok::<_, fengqiao_case::DocumentError>((
                summary_for(case, Status::Accepted, "node-a"),
                (),
            ))
        })
        .expect("store works")
        .expect("change applies")
        .1
}

#[test]
fn an_update_staged_on_a_copy_leaves_the_case_alone_until_committed_while_current() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let case = number(1);
    create_documents(&store, std::slice::from_ref(&case)).expect("created");
    // From the cached document and from disk alike, the held case does not see the copy.
    let position = store.feed_position(&case).expect("reads");
    let cached = stage_note_on_copy(&store, &case, "ahead-1");
    assert_eq!(Some(cached.based_on()), position);
    assert!(!event_ids(&store, &case).contains(&"ahead-1".to_owned()));
    drop(store);
    let store = open_store(directory.path());
    let loaded = stage_note_on_copy(&store, &case, "ahead-2");
    assert!(!event_ids(&store, &case).contains(&"ahead-2".to_owned()));

    // Committed while the case is as it was: written, and the cache holds the new document.
    let mut updates = vec![loaded];
    store
        .commit_staged_updates(&mut updates, &[] as &[(&str, &[u8])])
        .expect("written");
    assert!(event_ids(&store, &case).contains(&"ahead-2".to_owned()));
    assert_ne!(store.feed_position(&case).expect("reads"), position);

    // A copy made before that write is stale now: refused, nothing written.
    let mut updates = vec![cached];
    let refused = store.commit_staged_updates(&mut updates, &[] as &[(&str, &[u8])]);
    assert!(
        matches!(&refused, Err(StoreError::ChangedMeanwhile(number)) if *number == case),
        "{refused:?}"
    );
    assert!(!event_ids(&store, &case).contains(&"ahead-1".to_owned()));
    assert_eq!(store.feed_position("no such case").expect("reads"), None);
}

#[test]
fn unflushed_received_cases_are_visible_at_once_and_read_from_disk() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let case = number(1);
    let summary = summary_for(&case, Status::Registered, "node-a");
    let seq = create_received(&store, received_case(&case, "node-a")).expect("created");
    assert_eq!(seq, 1);
    assert_eq!(store.case_count(), 1);
    assert_eq!(store.summary(&case).ok().flatten(), Some(summary.clone()));
    assert_eq!(
        store.cache.len(),
        0,
        "a received case does not push the cases people work on out of the cache"
    );
    assert_eq!(
        store.heads(&case).expect("reads"),
        Some(document_for(&case).head_hashes()),
        "the heads given are recorded"
    );
    assert!(matches!(
        create_received(&store, received_case(&case, "node-a")),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(store.case_count(), 1);

    let (value, seq) = store
        .update_case_unflushed(&case, |document| {
            document.push_event(&note("n1", "第一次调解"))?;
            Ok::<_, fengqiao_case::DocumentError>((
                summary_for(&case, Status::Accepted, "node-a"),
                "done",
            ))
        })
        .expect("store works")
        .expect("change applies");
    assert_eq!((value, seq), ("done", 2));
    assert_eq!(
        store
            .summary(&case)
            .ok()
            .flatten()
            .map(|stored| stored.status),
        Some(Status::Accepted)
    );
    // The document loaded from disk has the right save mark: the update stored only the new
    // change.
    let record = store
        .storage
        .read_case_record(&case)
        .expect("record reads")
        .expect("recorded");
    assert_eq!(record.chunk_count, 1);
    assert!(record.chunk_bytes < record.saved_bytes, "{record:?}");
    assert_eq!(event_ids(&store, &case).len(), 2);
    assert!(matches!(
        create_received(&store, received_case("", "x")),
        Err(StoreError::InvalidCaseNumber { .. })
    ));
}

/// Set in the child process of the test below: the store directory it writes and then aborts in.
const ABORT_AFTER_FLUSH_DIRECTORY: &str = "FENGQIAO_STORE_TEST_ABORT_AFTER_FLUSH_DIRECTORY";

#[test]
fn one_flush_makes_earlier_unflushed_case_writes_durable() {
    let created = number(1);
    let updated = number(2);
    if let Some(directory) = std::env::var_os(ABORT_AFTER_FLUSH_DIRECTORY) {
        // The child: unflushed writes, one flush, then no clean close.
        let store = open_store(Path::new(&directory));
        create_documents(&store, std::slice::from_ref(&updated)).expect("case created");
        create_received(&store, received_case(&created, "node-a")).expect("created");
        add_note_unflushed(&store, &updated);
        store.flush().expect("flush");
        std::process::abort();
    }
    let directory = write_in_a_child_that_aborts(
        "tests::one_flush_makes_earlier_unflushed_case_writes_durable",
        ABORT_AFTER_FLUSH_DIRECTORY,
    );
    let store = open_store(directory.path());
    assert_eq!(store.case_count(), 2);
    assert_eq!(event_ids(&store, &created).len(), 1);
    assert_eq!(event_ids(&store, &updated).len(), 2);
    assert_eq!(
        store
            .summary(&updated)
            .ok()
            .flatten()
            .map(|stored| stored.status),
        Some(Status::Accepted)
    );
}

#[test]
fn heads_and_the_saved_form_are_read_without_loading_the_document() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_with(directory.path(), 1, 16);
    let case = number(1);
    let other = number(2);
    create_documents(&store, &[case.clone(), other.clone()]).expect("created");
    add_note(&store, &case, "n1", "第一次调解");
    add_note(&store, &case, "n2", "第二次调解");
    // The one-document cache now holds the other case only.
    store.with_case(&other, |_| ()).expect("reads");
    let expected = store
        .with_case(&case, fengqiao_case::CaseDocument::head_hashes)
        .expect("reads")
        .expect("exists");
    store.with_case(&other, |_| ()).expect("reads");
    assert_eq!(store.heads(&case).ok().flatten(), Some(expected.clone()));
    assert_eq!(store.heads(&number(3)).ok(), Some(None));

    let saved_form = store.saved_form(&case).expect("reads").expect("exists");
    let mut reloaded =
        fengqiao_case::CaseDocument::load(&saved_form, &[], &TEST_ACTOR).expect("loads whole");
    assert_eq!(reloaded.head_hashes(), expected);
    assert_eq!(reloaded.events().expect("events").len(), 3);
    assert_eq!(store.saved_form(&number(3)).ok(), Some(None));

    // A record written by an earlier build has no heads: they come from the document.
    let record = crate::codec::CaseRecord {
        heads: None,
        ..store
            .storage
            .read_case_record(&case)
            .expect("reads")
            .expect("exists")
    };
    assert_eq!(record.encode()[0], crate::codec::CASE_RECORD_VERSION);
    store
        .storage
        .raw_tree("case_records")
        .expect("tree")
        .insert(case.as_bytes(), record.encode())
        .expect("rewrite");
    assert_eq!(store.heads(&case).ok().flatten(), Some(expected));
}

#[test]
fn the_summary_observer_sees_every_committed_summary_and_no_refused_one() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let seen: Arc<std::sync::Mutex<Vec<(String, Status)>>> = Arc::default();
    {
        let seen = Arc::clone(&seen);
        store.set_summary_observer(Arc::new(move |summary: &CaseSummary| {
            seen.lock()
                .expect("observer lock")
                .push((summary.number.clone(), summary.status));
        }));
    }
    let take = || std::mem::take(&mut *seen.lock().expect("observer lock"));

    // A batch of new cases: each is observed once.
    create_documents(&store, &[number(1), number(2)]).expect("created");
    assert_eq!(
        take(),
        vec![
            (number(1), Status::Registered),
            (number(2), Status::Registered)
        ]
    );
    // A batch refused as a whole (a number already taken) commits nothing and tells nothing.
    assert!(create_documents(&store, &[number(3), number(1)]).is_err());
    assert_eq!(take(), Vec::new());

    // One new case without a flush, as the federation's receiver writes it.
    let received = number(4);
    create_received(&store, received_case(&received, "node-b")).expect("created");
    assert_eq!(take(), vec![(received.clone(), Status::Registered)]);

    // Updates, flushed or not, with or without meta.
    add_note(&store, &number(1), "n1", "第一次调解");
    assert_eq!(take(), vec![(number(1), Status::Accepted)]);
    store
        .update_case_unflushed(&received, |_document| {
            Ok::<_, StoreError>((summary_for(&received, Status::Closed, "node-b"), ()))
        })
        .expect("store works")
        .expect("change applies");
    store
        .update_case_with_meta(&number(2), |_document| {
            Ok::<_, StoreError>((
                summary_for(&number(2), Status::Replied, "node-a"),
                vec![("sync/peer/cursor".to_owned(), vec![1])],
                (),
            ))
        })
        .expect("store works")
        .expect("change applies");
    assert_eq!(
        take(),
        vec![(received, Status::Closed), (number(2), Status::Replied)]
    );

    // A refused change writes nothing and is not observed.
    let refused = store
        .update_case(&number(1), |_document| {
            Err::<(CaseSummary, ()), _>("refused by the lifecycle")
        })
        .expect("store works");
    assert!(refused.is_err());
    assert_eq!(take(), Vec::new());
    // Every observation matches what the store now holds.
    assert_eq!(
        store
            .summary(&number(2))
            .ok()
            .flatten()
            .map(|stored| stored.status),
        Some(Status::Replied)
    );
}

#[test]
fn a_pass_over_cases_reads_uncached_ones_without_caching_them() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let (first, second) = (number(1), number(2));
    for case in [&first, &second] {
        create_received(&store, received_case(case, "node-a")).expect("created");
    }
    let event_count = |case: &str| {
        store
            .with_case_uncached(case, |document| document.events().expect("events").len())
            .expect("reads")
    };
    assert_eq!(event_count(&first), Some(1));
    assert_eq!(store.cache.len(), 0, "the pass left nothing in the cache");
    assert_eq!(event_count(&number(3)), None);

    // A case in the cache is read there, changes and all.
    add_note_unflushed(&store, &second);
    assert_eq!(store.cache.len(), 1);
    assert_eq!(event_count(&second), Some(2));
    assert_eq!(store.cache.len(), 1);
}

fn assert_disk_full<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::DiskFull { .. })),
        "{what}: expected DiskFull, got {result:?}"
    );
}

#[test]
fn below_the_reserve_every_write_is_refused_and_none_is_visible() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let case = number(1);
    create_documents(&store, std::slice::from_ref(&case)).expect("created");
    add_note(&store, &case, "n1", "第一次");
    assert_eq!(store.next_case_sequence("430702001001-2026").ok(), Some(1));
    let feed_before = store.feed_since(0, 10).expect("feed");
    let summary_before = store.summary(&case).expect("reads");

    // The disk fills while a change is being made: the document is already changed when the
    // write is refused, and the changed copy must not outlive the refusal.
    let refused = store.update_case(&case, |document| {
        document
            .push_event(&note("lost", "磁盘已满"))
            .expect("event applies");
        store.storage.pretend_available(Some(0));
        let summary = summary_for(&case, Status::Closed, "node-a");
        Ok::<_, fengqiao_case::DocumentError>((summary, ()))
    });
    assert_disk_full(refused, "update");
    assert!(store.cache.get(&case).is_none(), "no changed copy cached");
    assert_eq!(
        event_ids(&store, &case),
        vec![format!("register-{case}"), "n1".to_owned()]
    );
    assert_eq!(store.summary(&case).expect("reads"), summary_before);

    assert_disk_full(create_documents(&store, &[number(2)]), "create cases");
    let mut received = vec![received_case(&number(3), "node-b")];
    assert_disk_full(
        store.create_received_cases_unflushed(&mut received, &[] as &[(&str, &[u8])]),
        "received cases",
    );
    assert_eq!(received.len(), 1, "refused received cases are handed back");
    assert_disk_full(
        store.next_case_sequence("430702001001-2026"),
        "case sequence",
    );
    assert_disk_full(store.meta_put("cursor", b"1"), "meta");
    assert_disk_full(store.meta_put_unflushed("cursor", b"1"), "unflushed meta");
    assert_disk_full(
        store.meta_put_many_unflushed(&[("cursor", b"1")]),
        "meta batch",
    );
    let quarantine_key = QuarantineKey {
        peer: "peer",
        case: &case,
        change_hash: "00",
    };
    assert_disk_full(
        store.quarantine_unflushed(&quarantine_key, b"refused change"),
        "quarantine",
    );
    // A staged update computed before the disk filled is refused at commit.
    store.storage.pretend_available(None);
    let mut staged = vec![stage_note_on_copy(&store, &case, "staged")];
    store.storage.pretend_available(Some(0));
    assert_disk_full(
        store.commit_staged_updates(&mut staged, &[] as &[(&str, &[u8])]),
        "staged updates",
    );
    assert_eq!(staged.len(), 1, "refused staged updates are handed back");

    assert_eq!(store.feed_since(0, 10).ok(), Some(feed_before.clone()));
    assert_eq!(store.case_count(), 1);
    assert!(!store.contains(&number(2)).expect("contains"));
    assert_eq!(store.meta_get("cursor").ok(), Some(None));

    // Space returns: writes go through again at once, and the refused ones left no trace.
    store.storage.pretend_available(None);
    store.check_free_space().expect("room again");
    assert_eq!(store.next_case_sequence("430702001001-2026").ok(), Some(2));
    add_note(&store, &case, "n2", "第二次");
    drop(store);
    let store = open_store(directory.path());
    assert_eq!(
        event_ids(&store, &case),
        vec![format!("register-{case}"), "n1".to_owned(), "n2".to_owned()]
    );
    assert_eq!(store.case_count(), 1);
    assert_eq!(store.quarantine_since(0, 10).expect("reads"), Vec::new());
    assert_eq!(store.feed_since(0, 10).expect("feed").len(), 1);
}

fn access_records(store: &Store) -> Vec<Vec<u8>> {
    store
        .access_log_since(0, 100_000)
        .expect("reads")
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

#[test]
fn reads_below_the_reserve_are_held_and_logged_in_order_when_space_returns() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    store.log_access(b"before").expect("log");
    store.storage.pretend_available(Some(0));
    store
        .log_access(b"while full 1")
        .expect("a read is never refused");
    store
        .log_access(b"while full 2")
        .expect("a read is never refused");
    assert_eq!(access_records(&store), vec![b"before".to_vec()]);
    assert_eq!(store.held_access_records_count(), (2, 0));

    store.storage.pretend_available(None);
    store.log_access(b"after").expect("log");
    assert_eq!(
        access_records(&store),
        vec![
            b"before".to_vec(),
            b"while full 1".to_vec(),
            b"while full 2".to_vec(),
            b"after".to_vec()
        ]
    );
    assert_eq!(store.held_access_records_count(), (0, 0));

    // Beyond what is held, reads are counted, and the count is logged.
    store.storage.pretend_available(Some(0));
    for index in 0..super::MAX_HELD_ACCESS_RECORDS + 2 {
        store
            .log_access(format!("full {index}").as_bytes())
            .expect("a read is never refused");
    }
    assert_eq!(
        store.held_access_records_count(),
        (super::MAX_HELD_ACCESS_RECORDS, 2)
    );
    store.storage.pretend_available(None);
    // Any write that gets through writes them, not only the next read.
    store.meta_put("cursor", b"1").expect("meta");
    let records = access_records(&store);
    assert_eq!(records.len(), 4 + super::MAX_HELD_ACCESS_RECORDS + 1);
    let note = String::from_utf8(records.last().expect("a record").clone()).expect("text");
    assert!(
        note.contains(r#""action":"access_records_dropped","dropped":2"#),
        "{note}"
    );
}

#[test]
fn a_clean_close_writes_the_held_access_records() {
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(directory.path());
        store.storage.pretend_available(Some(0));
        store.log_access(b"held").expect("log");
        store.storage.pretend_available(None);
    }
    let store = open_store(directory.path());
    assert_eq!(access_records(&store), vec![b"held".to_vec()]);
}

/// N1 (RELIABILITY.md): a staged update of a case whose old document sat in the cache wrote the
/// new heads and feed position while the cache still held the old document, until the commit put
/// the new one there. A sync session that walked the feed in that window read the new heads but
/// found no changes beyond the peer's in the old document, passed the case by, and the peer
/// stayed an event behind. A reader during the commit now waits for the new document.
#[test]
fn a_reader_during_a_staged_commit_never_sees_the_old_document_beside_the_new_heads() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open_store(directory.path()));
    let case = number(1);
    create_documents(&store, std::slice::from_ref(&case)).expect("created");
    // The document is cached, and an update staged on a copy leaves it there.
    let before = store
        .with_case(&case, |document| document.head_hashes())
        .expect("reads")
        .expect("held");
    let staged = stage_note_on_copy(&store, &case, "staged-1");

    // Right after the write, before the commit returns: what does a reader on another thread see?
    let (seen_sender, seen) = std::sync::mpsc::channel();
    {
        let store = Arc::clone(&store);
        let case = case.clone();
        store
            .clone()
            .set_summary_observer(Arc::new(move |_summary: &CaseSummary| {
                let store = Arc::clone(&store);
                let case = case.clone();
                let seen_sender = seen_sender.clone();
                let (read_sender, read) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let record = store.heads(&case).expect("reads").expect("held");
                    let document = store
                        .with_case(&case, |document| document.head_hashes())
                        .expect("reads")
                        .expect("held");
                    let _ = read_sender.send(());
                    let _ = seen_sender.send((record, document));
                });
                // A reader that does not wait for the commit answers at once; one that waits
                // for the case lock cannot answer before the commit ends.
                let _ = read.recv_timeout(std::time::Duration::from_millis(300));
            }));
    }
    let mut updates = vec![staged];
    store
        .commit_staged_updates(&mut updates, &[] as &[(&str, &[u8])])
        .expect("written");
    let (record, document) = seen
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the reader answers");
    assert_ne!(record, before, "the write is visible to the reader");
    assert_eq!(
        document, record,
        "the document a reader gets has the heads the store says it has"
    );
    store.set_summary_observer(Arc::new(|_: &CaseSummary| {}));
}

// ---------------------------------------------------------------------------------------------
// Snapshots (backups) and their restore.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_snapshot_holds_every_case_as_at_its_position_while_writes_go_on() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(&directory.path().join("store"));
    let numbers: Vec<String> = (1..=6).map(number).collect();
    create_documents(&store, &numbers).expect("cases created");
    add_note(&store, &numbers[0], "before-0", "快照前");
    store.meta_put("roster", b"roster bytes").expect("meta");
    store
        .meta_put("sync/peer/cursor", b"peer progress")
        .expect("meta");
    let counter = store
        .next_case_sequence("430702001001-2026")
        .expect("counter");

    let snapshot = store.snapshot(&["sync/"]).expect("snapshot starts");
    let position = snapshot.position();
    assert_eq!(position, store.feed_head().expect("head"));
    assert!(matches!(
        store.snapshot(&[]),
        Err(StoreError::SnapshotRunning)
    ));
    // Writes made while the snapshot runs: on a case already taken, on cases not yet reached
    // (twice on one of them), and a new case; none of them may be in the snapshot.
    let mut entries = Vec::new();
    let mut wrote = false;
    let counts = snapshot
        .write_to(|entry| {
            if !wrote && entry.tree == "case_records" && entry.key == numbers[1].as_bytes() {
                wrote = true;
                add_note(&store, &numbers[0], "after-0", "快照后");
                add_note(&store, &numbers[4], "after-4", "快照后");
                add_note(&store, &numbers[4], "after-4b", "快照后再次");
                add_note(&store, &numbers[5], "after-5", "快照后");
                create_documents(&store, &[number(7)]).expect("new case");
            }
            entries.push(entry);
            Ok::<(), StoreError>(())
        })
        .expect("snapshot written");
    assert!(wrote);
    assert_eq!(counts.cases, 6);
    // The snapshot ended: another may start.
    drop(
        store
            .snapshot(&[])
            .expect("a second snapshot starts after the first"),
    );
    assert_eq!(event_ids(&store, &numbers[4]).len(), 3);

    let restored_path = directory.path().join("restored");
    let mut restore = crate::StoreRestore::create(&restored_path).expect("restore starts");
    for entry in &entries {
        restore
            .add(entry.tree, &entry.key, &entry.value)
            .expect("entry restored");
    }
    assert_eq!(restore.finish().expect("restore finishes"), 6);
    let restored = open_store(&restored_path);
    assert_eq!(restored.case_count(), 6);
    assert_eq!(restored.feed_head().expect("head"), position);
    assert_index_counts_equal_their_keys(&restored);
    assert_eq!(
        event_ids(&restored, &numbers[0]),
        vec![format!("register-{}", numbers[0]), "before-0".to_owned()]
    );
    for number in &numbers[1..] {
        assert_eq!(
            event_ids(&restored, number),
            vec![format!("register-{number}")]
        );
        assert_eq!(
            restored
                .summary(number)
                .expect("summary")
                .map(|summary| summary.status),
            Some(Status::Registered)
        );
    }
    assert!(!restored.contains(&number(7)).expect("contains"));
    // The feed and the indexes are rebuilt: every restored case is listed and fed once.
    let feed = restored.feed_since(0, 100).expect("feed");
    assert_eq!(feed.len(), 6);
    assert!(feed.iter().all(|entry| entry.seq <= position));
    let registered = restored
        .list(&CaseFilter {
            status: Some(Status::Registered),
            ..CaseFilter::default()
        })
        .expect("list");
    assert_eq!(registered.len(), 5);
    assert_eq!(
        restored.meta_get("roster").expect("meta"),
        Some(b"roster bytes".to_vec())
    );
    assert_eq!(restored.meta_get("sync/peer/cursor").expect("meta"), None);
    assert!(
        restored
            .next_case_sequence("430702001001-2026")
            .expect("counter")
            > counter
    );
    // A restore writes only into a new store.
    drop(restored);
    assert!(matches!(
        crate::StoreRestore::create(&restored_path),
        Err(StoreError::NotEmpty { .. })
    ));
}

/// A store of many cases in every status, held by three offices, with deadlines spread over the
/// month and directives on some (open, crossed off), made from a fixed seed.
fn mixed_summaries(count: u32) -> Vec<CaseSummary> {
    use fengqiao_case::{DirectiveState, DirectiveStatus};
    let statuses = Status::ALL;
    let categories = [
        Category::WageArrears,
        Category::Environment,
        Category::Family,
    ];
    let holders = ["node-a", "node-b", "node-c"];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    (1..=count)
        .map(|sequence| {
            let status = statuses[next(statuses.len() as u64) as usize];
            let holder = holders[next(holders.len() as u64) as usize];
            let mut summary = summary_for(&number(sequence), status, holder);
            summary.category = categories[next(categories.len() as u64) as usize];
            summary.region_code = format!("43070200{}00{}", 1 + next(2), 1 + next(3));
            let day = |days: u64| Some(instant(1 + days as u32, 12));
            summary.timeline.acceptance_deadline = day(next(28));
            summary.timeline.objection_deadline = day(next(28));
            summary.timeline.handling_deadline = day(next(28));
            summary.timeline.review_deadline = day(next(28));
            // Some cases from before registration times were kept.
            summary.timeline.registered_at =
                (next(10) != 0).then(|| instant(1 + next(14) as u32, 9));
            for index in 0..next(3) {
                let crossed_off = next(2) == 0;
                summary.directives.push(DirectiveState {
                    id: format!("d{sequence}-{index}"),
                    issuer_node: "node-c".to_owned(),
                    issued_by: "督办人".to_owned(),
                    issued_at: instant(1, 9),
                    target_node: holder.to_owned(),
                    requirement: "限期报告".to_owned(),
                    due: instant(1 + next(28) as u32, 12),
                    listed: false,
                    status: if crossed_off {
                        DirectiveStatus::CrossedOff
                    } else {
                        DirectiveStatus::Issued
                    },
                    reports: Vec::new(),
                    crossed_off_at: None,
                });
            }
            summary
        })
        .collect()
}

/// Filters touching every index, alone and combined, as the console and the API ask them.
fn filters_over_every_index() -> Vec<CaseFilter> {
    use crate::DirectiveScope;
    let mut filters = Vec::new();
    let statuses = [
        Status::Registered,
        Status::AwaitingReceiver,
        Status::Accepted,
        Status::Closed,
        Status::Final,
    ];
    for holder in [None, Some("node-a".to_owned())] {
        for status in statuses.iter().copied().map(Some).chain([None]) {
            for deadline_before in [None, Some(instant(10, 0)), Some(instant(14, 12))] {
                filters.push(CaseFilter {
                    status,
                    holder: holder.clone(),
                    deadline_before,
                    ..CaseFilter::default()
                });
            }
        }
        for directives in [Some(DirectiveScope::Open), Some(DirectiveScope::Any)] {
            filters.push(CaseFilter {
                holder: holder.clone(),
                directives,
                ..CaseFilter::default()
            });
            filters.push(CaseFilter {
                status: Some(Status::Accepted),
                directives,
                deadline_before: Some(instant(14, 12)),
                ..CaseFilter::default()
            });
        }
        filters.push(CaseFilter {
            holder: holder.clone(),
            category: Some(Category::Environment),
            region_prefix: Some("4307020010".to_owned()),
            ..CaseFilter::default()
        });
    }
    filters
}

/// What a filter must answer: every summary, checked one by one.
fn full_scan(store: &Store, filter: &CaseFilter) -> Vec<String> {
    let mut found = Vec::new();
    store
        .for_each_summary(|summary| {
            if crate::index::matches(filter, summary) {
                found.push(summary.number.clone());
            }
        })
        .expect("scans");
    found.sort();
    found
}

fn assert_indexed_answers_equal_full_scans(store: &Store) {
    let filters = filters_over_every_index();
    let mut nonempty = 0;
    for filter in &filters {
        let mut indexed = numbers_of(&store.list(filter).expect("lists"));
        indexed.sort();
        let expected = full_scan(store, filter);
        assert_eq!(indexed, expected, "{filter:?}");
        nonempty += usize::from(!expected.is_empty());
        // Not by deadline, a listing comes in case number order, and a limit keeps its first.
        if filter.deadline_before.is_none() && filter.limit.is_none() {
            let limited = CaseFilter {
                limit: Some(5),
                ..filter.clone()
            };
            assert_eq!(
                numbers_of(&store.list(&limited).expect("lists")),
                expected.iter().take(5).cloned().collect::<Vec<_>>(),
                "{filter:?} limited"
            );
        }
    }
    // The comparison means something only if most filters find cases.
    assert!(
        nonempty * 4 >= filters.len() * 3,
        "{nonempty} of {}",
        filters.len()
    );
}

/// The 台账's order: earliest open deadline first, cases without one last, then number.
fn in_ledger_order(store: &Store, filter: &CaseFilter) -> Vec<String> {
    let mut found = Vec::new();
    store
        .for_each_summary(|summary| {
            if crate::index::matches(filter, summary) {
                found.push((
                    fengqiao_case::summary::earliest_open_deadline(summary)
                        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
                    summary.number.clone(),
                ));
            }
        })
        .expect("scans");
    found.sort();
    found.into_iter().map(|(_, number)| number).collect()
}

/// Filters of the 台账's pages: those of every index, plus deadline ranges (a warning grade),
/// registration ranges, a number search, and their mixes.
fn page_filters() -> Vec<CaseFilter> {
    let mut filters = filters_over_every_index();
    for holder in [None, Some("node-b".to_owned())] {
        for status in [None, Some(Status::Accepted), Some(Status::Closed)] {
            for category in [None, Some(Category::Family)] {
                let base = CaseFilter {
                    holder: holder.clone(),
                    status,
                    category,
                    ..CaseFilter::default()
                };
                filters.push(base.clone());
                filters.push(CaseFilter {
                    deadline_from: Some(instant(8, 0)),
                    deadline_before: Some(instant(20, 12)),
                    ..base.clone()
                });
                filters.push(CaseFilter {
                    registered_from: Some(instant(3, 0)),
                    registered_before: Some(instant(12, 0)),
                    ..base.clone()
                });
                filters.push(CaseFilter {
                    text: Some("00001".to_owned()),
                    ..base.clone()
                });
                filters.push(CaseFilter {
                    region_prefix: Some("4307020010".to_owned()),
                    deadline_before: Some(instant(14, 12)),
                    ..base
                });
            }
        }
    }
    filters.push(CaseFilter {
        registered_before: Some(instant(9, 0)),
        region_prefix: Some("4307020020".to_owned()),
        ..CaseFilter::default()
    });
    filters
}

fn assert_pages_equal_sorted_full_scans(store: &Store) {
    let filters = page_filters();
    let mut nonempty = 0;
    for filter in &filters {
        let expected = in_ledger_order(store, filter);
        nonempty += usize::from(!expected.is_empty());
        for (skip, take) in [
            (0, 7),
            (7, 7),
            (0, 1000),
            (expected.len().saturating_sub(3), 7),
        ] {
            let page = store.list_page(filter, skip, take).expect("pages");
            assert_eq!(page.total, expected.len(), "{filter:?}");
            let wanted: Vec<String> = expected.iter().skip(skip).take(take).cloned().collect();
            assert_eq!(
                numbers_of(&page.summaries),
                wanted,
                "{filter:?} {skip}+{take}"
            );
        }
    }
    assert!(
        nonempty * 4 >= filters.len() * 3,
        "{nonempty} of {}",
        filters.len()
    );
}

/// Every count kept in the index tree equals the number of keys of its component, and every
/// counted component with keys has its count.
fn assert_index_counts_equal_their_keys(store: &Store) {
    let indexes = store.storage.raw_tree("indexes").expect("indexes");
    let mut walked: std::collections::BTreeMap<Vec<u8>, u64> = std::collections::BTreeMap::new();
    let mut stored: std::collections::BTreeMap<Vec<u8>, u64> = std::collections::BTreeMap::new();
    for item in indexes.iter() {
        let (key, value) = item.expect("reads");
        if key.first() == Some(&b'#') {
            let count = u64::from_be_bytes(value.as_ref().try_into().expect("8 bytes"));
            if count > 0 {
                stored.insert(key.to_vec(), count);
            }
        } else if let Some(count_key) = crate::index::count_key_of(&key) {
            *walked.entry(count_key).or_default() += 1;
        }
    }
    assert!(!walked.is_empty(), "no counted keys");
    assert_eq!(stored, walked);
}

#[test]
fn warming_the_indexes_reads_every_index_key() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    create_raw(&store, &mixed_summaries(50)).expect("created");
    let keys = store.storage.raw_tree("indexes").expect("indexes").len() as u64;
    assert!(keys > 50 * 5, "{keys} index keys");
    assert_eq!(store.warm_indexes(&|| false).expect("warms"), keys);
}

#[test]
fn indexed_listings_and_ledger_pages_equal_a_full_scan_on_a_mixed_store() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    let mut summaries = mixed_summaries(300);
    create_raw(&store, &summaries).expect("created");
    assert_indexed_answers_equal_full_scans(&store);
    assert_pages_equal_sorted_full_scans(&store);
    assert_index_counts_equal_their_keys(&store);

    // Updates move cases between statuses, holders and deadlines, and cross directives off.
    for summary in summaries.iter_mut().step_by(3) {
        summary.status = match summary.status {
            Status::Registered => Status::Accepted,
            Status::Accepted => Status::Closed,
            _ => Status::Registered,
        };
        summary.holder = "node-b".to_owned();
        for directive in &mut summary.directives {
            directive.status = fengqiao_case::DirectiveStatus::CrossedOff;
        }
        update_raw(&store, summary, DocumentWrite::Unchanged);
    }
    assert_indexed_answers_equal_full_scans(&store);
    assert_pages_equal_sorted_full_scans(&store);
    assert_index_counts_equal_their_keys(&store);
}

#[test]
fn a_store_indexed_by_an_earlier_build_gains_the_directive_index_on_open() {
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(directory.path());
        create_raw(&store, &mixed_summaries(120)).expect("created");
        // As an earlier build left it: no directive keys, no index version.
        let indexes = store.storage.raw_tree("indexes").expect("indexes");
        let directive_keys: Vec<_> = indexes
            .scan_prefix(b"v")
            .keys()
            .collect::<Result<_, _>>()
            .expect("keys");
        assert!(!directive_keys.is_empty());
        for key in directive_keys {
            indexes.remove(key).expect("removed");
        }
        let meta = store.storage.raw_tree("meta").expect("meta");
        meta.remove(b"store/index_version").expect("removed");
        store.storage.flush().expect("flush");
    }
    let store = open_store(directory.path());
    assert_indexed_answers_equal_full_scans(&store);
    let meta = store.storage.raw_tree("meta").expect("meta");
    assert_eq!(
        meta.get(b"store/index_version").expect("reads").as_deref(),
        Some(&crate::index::INDEX_VERSION.to_be_bytes()[..])
    );
}

#[test]
fn a_store_indexed_under_index_version_2_is_cleared_and_rebuilt_on_open() {
    let directory = tempfile::tempdir().expect("tempdir");
    let stale_key = {
        let mut key = b"sregistered\0".to_vec();
        key.extend_from_slice(number(1).as_bytes());
        key
    };
    {
        let store = open_store(directory.path());
        create_raw(&store, &mixed_summaries(120)).expect("created");
        // As version 2 left it: keys without the urgency, the version recorded as 2.
        let indexes = store.storage.raw_tree("indexes").expect("indexes");
        indexes
            .insert(stale_key.as_slice(), &[][..])
            .expect("inserted");
        // Nor did it keep counts (version 4).
        for key in indexes.scan_prefix(b"#").keys() {
            indexes.remove(key.expect("reads")).expect("removed");
        }
        let meta = store.storage.raw_tree("meta").expect("meta");
        meta.insert(b"store/index_version", &2u32.to_be_bytes()[..])
            .expect("inserted");
        store.storage.flush().expect("flush");
    }
    let store = open_store(directory.path());
    let indexes = store.storage.raw_tree("indexes").expect("indexes");
    assert_eq!(indexes.get(&stale_key).expect("reads"), None);
    assert_indexed_answers_equal_full_scans(&store);
    assert_pages_equal_sorted_full_scans(&store);
    assert_index_counts_equal_their_keys(&store);
    let meta = store.storage.raw_tree("meta").expect("meta");
    assert_eq!(
        meta.get(b"store/index_version").expect("reads").as_deref(),
        Some(&crate::index::INDEX_VERSION.to_be_bytes()[..])
    );
}

/// A case document whose header names these petitioners, and its summary as this build writes it.
fn case_with_petitioners(
    number: &str,
    names: &[&str],
) -> (fengqiao_case::CaseDocument, CaseSummary) {
    let mut header = crate::test_support::header_for(number);
    let template = header.petitioners[0].clone();
    header.petitioners = names
        .iter()
        .map(|name| fengqiao_case::Petitioner {
            name: (*name).to_owned(),
            ..template.clone()
        })
        .collect();
    let register = fengqiao_case::EventKind::Register {
        header: Some(Box::new(header.clone())),
        policy_version: 0,
    };
    let document = fengqiao_case::CaseDocument::create(
        &header,
        &crate::test_support::event(&format!("register-{number}"), register, None),
        &TEST_ACTOR,
    )
    .expect("test document builds");
    let mut summary = summary_for(number, Status::Registered, "node-a");
    summary.petitioner_names = names.iter().map(|name| (*name).to_owned()).collect();
    (document, summary)
}

/// Petitioners of the name-search tests: shared surnames, a shared given name, a repeated
/// character, a long name past the index's 16 characters, two petitioners on one case.
const PETITIONERS: [&[&str]; 10] = [
    &["张国强"],
    &["张伟"],
    &["李秀英", "王伟"],
    &["欧阳娜娜"],
    &["阿卜杜热合曼·买买提·艾力·吐尔逊·阿不都拉"],
    &["王芳芳"],
    &["赵强"],
    &["张国"],
    &["孙丽"],
    &["周伟强"],
];

const NAME_SEARCHES: [&str; 14] = [
    "张",
    "国强",
    "伟",
    "张国",
    "芳芳",
    "芳",
    "王",
    "欧阳娜娜",
    "买买提·艾力",
    "吐尔逊·阿不都拉",
    "阿卜杜热合曼·买买提·艾力·吐尔逊·阿不都拉",
    "强",
    "钱",
    "伟强",
];

fn create_cases_with_petitioners(store: &Store) -> Vec<String> {
    let mut built: Vec<_> = PETITIONERS
        .iter()
        .enumerate()
        .map(|(index, names)| case_with_petitioners(&number(index as u32 + 1), names))
        .collect();
    let mut cases: Vec<_> = built
        .iter_mut()
        .map(|(document, summary)| NewCase {
            document,
            summary: &*summary,
        })
        .collect();
    store.create_cases(&mut cases).expect("created");
    built
        .into_iter()
        .map(|(_, summary)| summary.number)
        .collect()
}

/// What a name search must answer: each case whose header (read from its document) has a
/// petitioner whose name contains `text`.
fn by_document_scan(store: &Store, numbers: &[String], text: &str) -> Vec<String> {
    numbers
        .iter()
        .filter(|number| {
            store
                .with_case(number, |document| document.header().expect("header reads"))
                .expect("store works")
                .expect("case exists")
                .petitioners
                .iter()
                .any(|petitioner| petitioner.name.contains(text))
        })
        .cloned()
        .collect()
}

fn by_name_index(store: &Store, text: &str) -> Vec<String> {
    let mut found = numbers_of(
        &store
            .list(&CaseFilter {
                petitioner_name: Some(text.to_owned()),
                ..CaseFilter::default()
            })
            .expect("lists"),
    );
    found.sort();
    found
}

/// Each of [`NAME_SEARCHES`] finds by name what a scan of the cases' documents finds.
fn assert_every_name_search_equals_a_document_scan(store: &Store, numbers: &[String]) {
    for text in NAME_SEARCHES {
        let expected = by_document_scan(store, numbers, text);
        assert_eq!(by_name_index(store, text), expected, "{text}");
    }
}

#[test]
fn a_name_search_on_the_index_equals_a_scan_of_the_documents() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    assert!(
        store.petitioner_names_indexed(),
        "a new store needs no migration"
    );
    let numbers = create_cases_with_petitioners(&store);
    assert_every_name_search_equals_a_document_scan(&store, &numbers);
    assert_eq!(by_name_index(&store, "张").len(), 3);
    assert!(by_name_index(&store, "钱").is_empty());
    // Two names of one case are not one text.
    assert!(by_name_index(&store, "英王").is_empty());
}

/// Names are held in memory, not as index keys: the index tree holds none of their text, and a
/// search answers the same once the names are read, after later writes, and after a reopen.
#[test]
fn names_are_searched_in_memory_and_follow_every_write() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = open_store(directory.path());
    // The first search reads the (no) names; every write after it is told.
    assert!(by_name_index(&store, "张").is_empty());
    let numbers = create_cases_with_petitioners(&store);
    let indexes = store.storage.raw_tree("indexes").expect("indexes");
    for key in indexes.iter().keys() {
        let key = key.expect("reads");
        for names in PETITIONERS {
            for name in names {
                assert!(
                    !key.windows(name.len())
                        .any(|window| window == name.as_bytes()),
                    "an index key holds {name}"
                );
            }
        }
    }
    assert_every_name_search_equals_a_document_scan(&store, &numbers);
    // An update that changes a case's names: the old ones no longer find it, the new ones do.
    let case = number(2);
    store
        .update_case(&case, |document| {
            document.push_event(&note("n-rename", "更正当事人"))?;
            let mut summary = summary_for(&case, Status::Accepted, "node-a");
            summary.petitioner_names = vec!["钱多多".to_owned()];
            Ok::<_, fengqiao_case::DocumentError>((summary, ()))
        })
        .expect("store works")
        .expect("change applies");
    assert_eq!(by_name_index(&store, "钱"), vec![case.clone()]);
    assert!(!by_name_index(&store, "张伟").contains(&case));
    // The 台账's text search finds a case by a name too.
    let page = store
        .list_page(
            &CaseFilter {
                text: Some("多多".to_owned()),
                ..CaseFilter::default()
            },
            0,
            10,
        )
        .expect("pages");
    assert_eq!(numbers_of(&page.summaries), vec![case.clone()]);
    drop(store);
    let store = open_store(directory.path());
    assert_eq!(by_name_index(&store, "钱"), vec![case]);
    assert_eq!(by_name_index(&store, "张").len(), 2);
}

/// A store indexed under version 4 has a key per character position of every name; this build
/// drops them on open and still finds every name.
#[test]
fn the_name_keys_of_index_version_4_are_dropped_on_open() {
    let directory = tempfile::tempdir().expect("tempdir");
    let numbers = {
        let store = open_store(directory.path());
        let numbers = create_cases_with_petitioners(&store);
        let indexes = store.storage.raw_tree("indexes").expect("indexes");
        let mut name_key = b"n".to_vec();
        name_key.extend_from_slice("国强".as_bytes());
        name_key.push(0);
        name_key.extend_from_slice(number(1).as_bytes());
        indexes.insert(name_key, &[][..]).expect("inserted");
        let meta = store.storage.raw_tree("meta").expect("meta");
        meta.insert(b"store/index_version", &4u32.to_be_bytes()[..])
            .expect("inserted");
        store.storage.flush().expect("flush");
        numbers
    };
    let store = open_store(directory.path());
    let indexes = store.storage.raw_tree("indexes").expect("indexes");
    assert_eq!(indexes.scan_prefix(b"n").count(), 0);
    assert_index_counts_equal_their_keys(&store);
    assert_every_name_search_equals_a_document_scan(&store, &numbers);
}

/// Turns the store into one an earlier build wrote: version-2 summaries (no names), no mark
/// that the names are in.
fn strip_names_as_an_earlier_build(store: &Store) {
    let summaries = store.storage.raw_tree("summaries").expect("summaries");
    for item in summaries.iter() {
        let (key, value) = item.expect("reads");
        let number = std::str::from_utf8(&key).expect("utf-8");
        let mut summary = crate::codec::decode_summary(number, &value).expect("decodes");
        summary.petitioner_names.clear();
        let mut old = crate::codec::encode_summary(&summary).expect("encodes");
        old.pop();
        old[0] = crate::codec::SUMMARY_RECORD_BEFORE_NAMES_VERSION;
        summaries.insert(key, old).expect("written");
    }
    let meta = store.storage.raw_tree("meta").expect("meta");
    meta.remove(b"store/petitioner_names_complete")
        .expect("removed");
    store.storage.flush().expect("flush");
}

#[test]
fn the_names_migration_fills_an_earlier_builds_store_and_resumes_after_a_stop() {
    let directory = tempfile::tempdir().expect("tempdir");
    let numbers = {
        let store = open_store(directory.path());
        let numbers = create_cases_with_petitioners(&store);
        strip_names_as_an_earlier_build(&store);
        numbers
    };

    // Opened by this build: not indexed, so callers read the documents; one step, then a stop.
    {
        let store = open_store(directory.path());
        assert!(!store.petitioner_names_indexed());
        assert!(
            by_name_index(&store, "张").is_empty(),
            "no names before the migration"
        );
        let step = store.migrate_petitioner_names(4).expect("a step runs");
        assert_eq!(
            step,
            crate::NamesMigrationStep {
                read: 4,
                rewritten: 4,
                complete: false
            }
        );
        assert!(!store.petitioner_names_indexed());
    }

    // Reopened (as after a kill): the migration resumes after the 4 cases done, and ends.
    let store = open_store(directory.path());
    assert!(!store.petitioner_names_indexed());
    assert_eq!(
        store
            .storage
            .petitioner_names_through()
            .expect("reads")
            .as_deref(),
        Some(number(4).as_str())
    );
    let step = store.migrate_petitioner_names(4).expect("a step runs");
    assert_eq!((step.read, step.rewritten, step.complete), (4, 4, false));
    let step = store.migrate_petitioner_names(4).expect("a step runs");
    assert_eq!((step.read, step.rewritten, step.complete), (2, 2, true));
    assert!(store.petitioner_names_indexed());
    assert_every_name_search_equals_a_document_scan(&store, &numbers);
    // Every summary is in this build's layout now, and the mark survives a reopen.
    let summaries = store.storage.raw_tree("summaries").expect("summaries");
    for item in summaries.iter() {
        let (_, value) = item.expect("reads");
        assert_eq!(value[0], crate::codec::SUMMARY_RECORD_VERSION);
    }
    drop(store);
    let store = open_store(directory.path());
    assert!(store.petitioner_names_indexed());
    store
        .complete_petitioner_names(&|| false)
        .expect("nothing left to do");
}

#[test]
fn a_case_written_during_the_names_migration_keeps_its_new_summary() {
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(directory.path());
        create_cases_with_petitioners(&store);
        strip_names_as_an_earlier_build(&store);
    }
    let store = open_store(directory.path());
    // A write by this build lands before the migration reaches the case: its summary, with the
    // names and a new status, is what stays.
    let case = number(7);
    store
        .update_case(&case, |document| {
            document.push_event(&note("n-during", "迁移期间的记录"))?;
            let mut summary = summary_for(&case, Status::Accepted, "node-a");
            summary.petitioner_names = vec!["赵强".to_owned()];
            Ok::<_, fengqiao_case::DocumentError>((summary, ()))
        })
        .expect("store works")
        .expect("change applies");
    store
        .complete_petitioner_names(&|| false)
        .expect("migrates");
    let summary = store.summary(&case).expect("reads").expect("exists");
    assert_eq!(summary.status, Status::Accepted);
    assert_eq!(by_name_index(&store, "赵"), vec![case]);
}
