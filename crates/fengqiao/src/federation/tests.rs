//! Federation over real QUIC on 127.0.0.1 and real sled stores: cases flow up through the tree,
//! links survive a township going away, siblings stay apart, unknown nodes are refused.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fengqiao_case::{
    AppendEvent, Category, Channel, EventKind, Location, MatterType, Petitioner, RegisterCase, Tier,
};
use fengqiao_sync::Replica;

use super::*;
use crate::service::{InitOptions, init_node};

const COUNTY: &str = "430702";
const TOWNSHIP: &str = "430702001";
const VILLAGE: &str = "430702001001";
const SIBLING_VILLAGE: &str = "430702001002";
const OPERATOR: &str = "李建国";

/// The account the tests act as: both case roles, under the operator name they always used.
fn tester() -> fengqiao_accounts::Actor {
    fengqiao_accounts::Actor {
        operator: OPERATOR.to_owned(),
        roles: fengqiao_accounts::RoleSet::of(&[
            fengqiao_accounts::Role::Operator,
            fengqiao_accounts::Role::Supervisor,
        ]),
    }
}

/// Generous: two shared cores, debug build, sled flushes.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(60);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // Info by default: a test that fails (a stall seen only on a loaded CI machine)
                // then shows what its links did; a passing test's output is not printed.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

struct TestOffice {
    node: Arc<Node>,
    office: OfficeEntry,
}

fn open_office(root: &Path, label: &str, name: &str, tier: Tier, region_code: &str) -> TestOffice {
    let dir = root.join(label);
    init_node(
        &dir,
        InitOptions {
            name: name.to_owned(),
            tier,
            region_code: region_code.to_owned(),
            listen: None,
            parent: None,
            lan_names: Vec::new(),
        },
    )
    .unwrap();
    let node = Arc::new(Node::open(&dir).unwrap());
    let office = OfficeEntry {
        node_id: node.node_id().to_owned(),
        name: name.to_owned(),
        aliases: Vec::new(),
        region_code: region_code.to_owned(),
        successor_of: None,
    };
    TestOffice { node, office }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Short QUIC timeouts, so a dead link is noticed within the tests' patience.
fn config(
    listen: SocketAddr,
    parent: Option<(SocketAddr, &TestOffice)>,
    children: &[&TestOffice],
) -> FederationConfig {
    let mut config = FederationConfig::new(listen);
    config.parent = parent.map(|(address, office)| ParentLink {
        address,
        office: office.office.clone(),
    });
    config.children = children.iter().map(|child| child.office.clone()).collect();
    config.transport.keep_alive_interval = Duration::from_millis(500);
    config.transport.idle_timeout = Duration::from_secs(5);
    config.reconnect.maximum = Duration::from_secs(1);
    config
}

/// Start on `address`, retrying while a just-stopped endpoint still holds the port.
async fn start_at(node: &TestOffice, config: FederationConfig) -> Federation {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Federation::start(Arc::clone(&node.node), config.clone()).await {
            Ok(federation) => return federation,
            Err(error) if Instant::now() < deadline => {
                tracing::info!(%error, "retrying federation start");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("federation did not start: {error:#}"),
        }
    }
}

fn registration(region_code: &str, summary: &str) -> RegisterCase {
    RegisterCase {
        backdated_reason: None,
        number: None,
        registered_at: None,
        channel: Channel::Visit,
        petitioners: vec![Petitioner {
            name: "王秀英".into(),
            id_number: "430702198503120029".into(),
            id_type: Default::default(),
            phone: "13807361234".into(),
            address: "芦荻山乡 3 组".into(),
            representative: false,
        }],
        headcount: 1,
        respondent: "常德市台秤厂".into(),
        category: Category::WageArrears,
        matter_type: MatterType::Appeal,
        litigation_related: false,
        summary: summary.into(),
        location: Location {
            region_code: region_code.into(),
            village: "芦荻山村".into(),
            grid: "第三网格".into(),
            grid_worker: "李建国".into(),
        },
        ownership: Default::default(),
    }
}

async fn register(office: &TestOffice, summary: &str) -> String {
    let node = Arc::clone(&office.node);
    let region = office.office.region_code.clone();
    let summary = summary.to_owned();
    tokio::task::spawn_blocking(move || {
        node.register(&tester(), Utc::now(), registration(&region, &summary))
            .unwrap()
            .header
            .number
    })
    .await
    .unwrap()
}

async fn add_note(office: &TestOffice, case: &str, text: &str) {
    let node = Arc::clone(&office.node);
    let case = case.to_owned();
    let text = text.to_owned();
    tokio::task::spawn_blocking(move || {
        node.append(
            &tester(),
            Utc::now(),
            &case,
            AppendEvent {
                backdated_reason: None,
                kind: EventKind::Note { text },
                at: None,
            },
        )
        .unwrap();
    })
    .await
    .unwrap();
}

fn heads(office: &TestOffice, case: &str) -> Option<Vec<String>> {
    office
        .node
        .store()
        .with_case(case, |document| document.heads())
        .unwrap()
}

fn notes(office: &TestOffice, case: &str) -> Vec<String> {
    let mut notes: Vec<String> = office
        .node
        .store()
        .with_case(case, |document| document.events().unwrap())
        .unwrap()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|event| match event.kind {
            EventKind::Note { text } => Some(text),
            _ => None,
        })
        .collect();
    notes.sort();
    notes
}

/// Poll `check` until it holds; fail with `what` after the timeout.
async fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_or_report(what, check, || "no report asked for".to_owned()).await;
}

/// [`eventually`], saying on a timeout what `report` finds (link states, say) so that a stall
/// seen once on a loaded machine can be understood from its output.
async fn eventually_or_report(
    what: &str,
    mut check: impl FnMut() -> bool,
    report: impl Fn() -> String,
) {
    let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}; {}",
            report()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn same_heads_everywhere(offices: &[&TestOffice], case: &str) -> bool {
    let first = heads(offices[0], case);
    first.is_some() && offices.iter().all(|office| heads(office, case) == first)
}

struct ThreeTiers {
    _root: tempfile::TempDir,
    county: TestOffice,
    township: TestOffice,
    village: TestOffice,
    sibling: TestOffice,
}

fn three_tiers() -> ThreeTiers {
    let root = tempfile::tempdir().unwrap();
    let county = open_office(root.path(), "county", "武陵区", Tier::County, COUNTY);
    let township = open_office(
        root.path(),
        "township",
        "芦荻山乡",
        Tier::Township,
        TOWNSHIP,
    );
    let village = open_office(root.path(), "village", "芦荻山村", Tier::Village, VILLAGE);
    let sibling = open_office(
        root.path(),
        "sibling",
        "新河村",
        Tier::Village,
        SIBLING_VILLAGE,
    );
    ThreeTiers {
        _root: root,
        county,
        township,
        village,
        sibling,
    }
}

struct Running {
    county: Federation,
    township: Federation,
    village: Federation,
    sibling: Federation,
}

async fn start_all(tiers: &ThreeTiers) -> Running {
    let ThreeTiers {
        county,
        township,
        village,
        sibling,
        ..
    } = tiers;
    let county_federation = start_at(county, config(loopback(), None, &[township])).await;
    let township_federation = start_at(
        township,
        config(
            loopback(),
            Some((county_federation.local_address(), county)),
            &[village, sibling],
        ),
    )
    .await;
    let township_address = township_federation.local_address();
    let village_federation = start_at(
        village,
        config(loopback(), Some((township_address, township)), &[]),
    )
    .await;
    let sibling_federation = start_at(
        sibling,
        config(loopback(), Some((township_address, township)), &[]),
    )
    .await;
    Running {
        county: county_federation,
        township: township_federation,
        village: village_federation,
        sibling: sibling_federation,
    }
}

impl Running {
    async fn shutdown(self) {
        self.village.shutdown().await;
        self.sibling.shutdown().await;
        self.township.shutdown().await;
        self.county.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_registered_at_a_village_reaches_the_county_through_its_township() {
    init_tracing();
    let tiers = three_tiers();
    let running = start_all(&tiers).await;
    let case = register(&tiers.village, "反映原单位拖欠工资").await;
    let offices = [&tiers.village, &tiers.township, &tiers.county];
    eventually(
        "the county holds the village's case at the same heads",
        || same_heads_everywhere(&offices, &case),
    )
    .await;
    let at_county = tiers.county.node.store().summary(&case).unwrap().unwrap();
    assert_eq!(at_county.registered_by, tiers.village.office.node_id);

    // Every link reports a completed sync and, once the cursors settle, nothing left to send.
    let county_links = running.county.peers().await.unwrap();
    assert_eq!(county_links.len(), 1);
    assert!(county_links[0].connected);
    let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
    for federation in [&running.village, &running.township, &running.county] {
        loop {
            let links = federation.peers().await.unwrap();
            let connected = links.iter().filter(|link| link.connected);
            if connected.clone().count() > 0 && connected.clone().all(|link| link.pending == 0) {
                break;
            }
            assert!(Instant::now() < deadline, "links still pending: {links:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eventually("the village's link shows a successful sync", || {
        links_now(&running.village)
            .iter()
            .all(|link| link.connected && link.last_successful_sync.is_some())
    })
    .await;
    running.shutdown().await;
}

/// Link states without the pending count (which needs the store), for polling in `eventually`.
fn links_now(federation: &Federation) -> Vec<PeerLinkReport> {
    federation.shared.links.snapshot()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_township_restart_loses_nothing_while_village_and_county_keep_editing() {
    init_tracing();
    let tiers = three_tiers();
    let running = start_all(&tiers).await;
    let all = [&tiers.village, &tiers.township, &tiers.county];
    let first = register(&tiers.village, "第一件：拖欠工资").await;
    eventually("the first case reaches the county", || {
        same_heads_everywhere(&all, &first)
    })
    .await;
    // Holding the case is not yet the township's acknowledgement reaching the village; stop the
    // township only once the village knows the case arrived, or the village rightly sends it
    // whole again after the restart and the count below means nothing.
    let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
    while running.village.peers().await.unwrap()[0].pending > 0 {
        assert!(
            Instant::now() < deadline,
            "the village never learns that the township has the first case"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let township_address = running.township.local_address();
    let Running {
        county,
        township,
        village,
        sibling,
    } = running;
    township.shutdown().await;

    // The township is away: both ends keep working and queue their changes.
    add_note(&tiers.village, &first, "村里补充：已联系施工方").await;
    add_note(&tiers.county, &first, "县里批示：限期答复").await;
    let second = register(&tiers.village, "第二件：宅基地纠纷").await;
    add_note(&tiers.village, &second, "村里：双方已到场").await;
    assert!(heads(&tiers.county, &second).is_none());

    let township = start_at(
        &tiers.township,
        config(
            township_address,
            Some((county.local_address(), &tiers.county)),
            &[&tiers.village, &tiers.sibling],
        ),
    )
    .await;
    // And they keep editing while the links come back.
    eventually("the second case reaches the county", || {
        heads(&tiers.county, &second).is_some()
    })
    .await;
    add_note(&tiers.county, &second, "县里：请乡里跟进").await;

    eventually("every case converges on all three nodes", || {
        same_heads_everywhere(&all, &first) && same_heads_everywhere(&all, &second)
    })
    .await;
    let expected_first = vec![
        "县里批示：限期答复".to_owned(),
        "村里补充：已联系施工方".to_owned(),
    ];
    let mut expected_first_sorted = expected_first.clone();
    expected_first_sorted.sort();
    let mut expected_second = vec!["县里：请乡里跟进".to_owned(), "村里：双方已到场".to_owned()];
    expected_second.sort();
    // The reconnect resent nothing already acknowledged: the first case went as changes, and only
    // the case new to the township went whole (a later reconnect would send nothing whole).
    let village_link = links_now(&village)[0].clone();
    if village_link.connections == 2 {
        assert_eq!(
            village_link.session.whole_documents_sent, 1,
            "{village_link:?}"
        );
    } else {
        assert!(
            village_link.session.whole_documents_sent <= 1,
            "{village_link:?}"
        );
    }
    let county_link = links_now(&county)[0].clone();
    assert_eq!(
        county_link.session.whole_documents_sent, 0,
        "{county_link:?}"
    );
    for office in all {
        assert_eq!(notes(office, &first), expected_first_sorted);
        assert_eq!(notes(office, &second), expected_second);
        // Derived state agrees too: the summaries index the same event count.
        let summary = office.node.store().summary(&second).unwrap().unwrap();
        assert_eq!(summary.event_count, 3);
    }
    Running {
        county,
        township,
        village,
        sibling,
    }
    .shutdown()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_village_never_receives_another_villages_case() {
    init_tracing();
    let tiers = three_tiers();
    let running = start_all(&tiers).await;
    let village_case = register(&tiers.village, "芦荻山村的案件").await;
    let sibling_case = register(&tiers.sibling, "新河村的案件").await;
    eventually("both villages' cases reach the county", || {
        heads(&tiers.county, &village_case).is_some()
            && heads(&tiers.county, &sibling_case).is_some()
    })
    .await;
    // A township note on each case travels down to its own village. The township's feed lists
    // the other village's case before the note, so once the note arrives that case was already
    // considered for this link, and withheld.
    add_note(&tiers.township, &village_case, "乡里：已转办").await;
    add_note(&tiers.township, &sibling_case, "乡里：已转办").await;
    eventually("the notes reach each village", || {
        same_heads_everywhere(&[&tiers.township, &tiers.village], &village_case)
            && same_heads_everywhere(&[&tiers.township, &tiers.sibling], &sibling_case)
    })
    .await;
    assert!(heads(&tiers.sibling, &village_case).is_none());
    assert!(heads(&tiers.village, &sibling_case).is_none());
    assert_eq!(tiers.sibling.node.store().case_count(), 1);
    assert_eq!(tiers.village.node.store().case_count(), 1);
    running.shutdown().await;
}

/// The county's `pending` figure for its link to `child`.
async fn pending_at(federation: &Federation, child: &TestOffice) -> u64 {
    federation
        .peers()
        .await
        .unwrap()
        .into_iter()
        .find(|link| link.node_id == child.office.node_id)
        .map(|link| link.pending)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_out_counts_only_the_cases_routing_sends_to_each_township() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let county = open_office(root.path(), "county", "武陵区", Tier::County, COUNTY);
    let first = open_office(root.path(), "first", "芦荻山乡", Tier::Township, TOWNSHIP);
    let second = open_office(root.path(), "second", "丹洲乡", Tier::Township, "430702002");
    let county_federation = start_at(&county, config(loopback(), None, &[&first, &second])).await;
    // The second township never connects: its link stays down throughout.
    let first_federation = start_at(
        &first,
        config(
            loopback(),
            Some((county_federation.local_address(), &county)),
            &[],
        ),
    )
    .await;
    let cases = [
        register(&first, "第一件：拖欠工资").await,
        register(&first, "第二件：宅基地纠纷").await,
    ];
    eventually("the first township's cases reach the county", || {
        cases
            .iter()
            .all(|case| same_heads_everywhere(&[&first, &county], case))
    })
    .await;
    let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
    while pending_at(&county_federation, &first).await > 0 {
        assert!(Instant::now() < deadline, "the first link stays pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both cases lie in the first township's region: nothing is owed to the second.
    assert_eq!(pending_at(&county_federation, &second).await, 0);

    // With the first township away, the county's note is owed to it, and still not to the second.
    first_federation.shutdown().await;
    add_note(&county, &cases[0], "县里批示：限期答复").await;
    assert_eq!(pending_at(&county_federation, &first).await, 1);
    assert_eq!(pending_at(&county_federation, &second).await, 0);
    county_federation.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_an_unknown_key_is_refused() {
    init_tracing();
    let tiers = three_tiers();
    let root = tempfile::tempdir().unwrap();
    let stranger = open_office(
        root.path(),
        "stranger",
        "冒名村",
        Tier::Village,
        "430702001009",
    );
    let running = start_all(&tiers).await;
    let stranger_federation = start_at(
        &stranger,
        config(
            loopback(),
            Some((running.township.local_address(), &tiers.township)),
            &[],
        ),
    )
    .await;
    eventually("the stranger learns it was refused", || {
        links_now(&stranger_federation)
            .iter()
            .any(|link| link.last_error.is_some())
    })
    .await;
    let links = links_now(&stranger_federation);
    assert!(!links[0].connected);
    assert_eq!(links[0].connections, 0);
    let error = links[0].last_error.clone().unwrap();
    assert!(error.contains("refused"), "{error}");

    // The township never lists it nor holds a session with it.
    let township_links = links_now(&running.township);
    assert!(
        township_links
            .iter()
            .all(|link| link.node_id != stranger.office.node_id)
    );

    // Nothing it registers reaches the township.
    let case = register(&stranger, "冒名登记").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(heads(&tiers.township, &case).is_none());
    stranger_federation.shutdown().await;
    running.shutdown().await;
}

#[test]
fn store_replica_refuses_bad_bytes_and_keeps_the_document() {
    let tiers = three_tiers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let case = runtime.block_on(register(&tiers.village, "完好的案件"));
    let roster: SharedRoster = Arc::new(fengqiao_sync::Roster::default());
    let mut replica = StoreReplica::for_node(Arc::clone(&tiers.village.node), roster);
    let before = heads(&tiers.village, &case);
    let admit = |_: &fengqiao_sync::CaseRouting| Ok(());
    // automerge skips undecodable change bytes rather than failing, so garbage changes either
    // are refused or add nothing; both leave the stored document as it was.
    match replica.apply("peer", &case, b"not automerge at all", false, &admit) {
        Err(fengqiao_sync::ReplicaError::Rejected { .. }) => {}
        Ok(applied) => assert!(!applied.changed),
        Err(other) => panic!("unexpected {other}"),
    }
    let refused_whole = replica.apply("peer", &case, b"not automerge at all", true, &admit);
    assert!(matches!(
        refused_whole,
        Err(fengqiao_sync::ReplicaError::Rejected { .. })
    ));
    assert_eq!(heads(&tiers.village, &case), before);

    // Re-applying what is already held changes nothing and does not move the feed.
    let feed_head = tiers.village.node.store().feed_head().unwrap();
    let saved = replica.save(&case).unwrap();
    let applied = replica.apply("peer", &case, &saved, true, &admit).unwrap();
    assert!(!applied.changed);
    assert_eq!(tiers.village.node.store().feed_head().unwrap(), feed_head);

    // A whole document under another case's number is refused.
    let wrong_number = format!("{case}9");
    let refused_number = replica.apply("peer", &wrong_number, &saved, true, &admit);
    assert!(matches!(
        refused_number,
        Err(fengqiao_sync::ReplicaError::Rejected { .. })
    ));

    // Per-peer state round-trips through the store's meta tree.
    replica.set_peer_cursor("peer", 42).unwrap();
    assert_eq!(replica.peer_cursor("peer").unwrap(), 42);
    let held = replica.heads(&case).unwrap().unwrap();
    replica.set_peer_heads("peer", &case, &held).unwrap();
    assert_eq!(replica.peer_heads("peer", &case).unwrap(), Some(held));
    assert_eq!(replica.peer_heads("other", &case).unwrap(), None);
}

/// A note in `claimed_node`'s name signed with `signer`'s key, written into `office`'s copy of
/// `case` behind every check, as a tampered store would send it.
fn push_forged_note(office: &TestOffice, case: &str, claimed_node: &str, signer: &TestOffice) {
    let now = Utc::now();
    let mut forged = fengqiao_case::Event {
        id: "forged-note".to_owned(),
        kind: EventKind::Note {
            text: "村里同意撤回".to_owned(),
        },
        at: fengqiao_case::deadlines::truncate_to_millis(now),
        node: claimed_node.to_owned(),
        operator: "tamperer".to_owned(),
        prev: None,
        hlc: fengqiao_case::HybridTimestamp {
            wall_ms: now.timestamp_millis(),
            counter: 0,
        },
        signature: None,
        imported: None,
        backdated_reason: None,
    };
    fengqiao_case::signature::sign_event(case, &mut forged, signer.node.identity()).unwrap();
    let limits = office.node.config().limits.clone();
    office
        .node
        .store()
        .update_case(case, |document| {
            document.push_event(&forged)?;
            let (header, events) = document.contents()?;
            let state = fengqiao_case::derive(&header, &events, &limits);
            Ok::<_, fengqiao_case::DocumentError>((
                fengqiao_case::summary::summarize(&header, &state),
                (),
            ))
        })
        .unwrap()
        .unwrap();
}

#[test]
fn a_forged_change_sent_again_is_quarantined_once() {
    let tiers = three_tiers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let case = runtime.block_on(register(&tiers.village, "被篡改的案件"));
    let roster: SharedRoster = Arc::new(fengqiao_sync::Roster::default());
    let admit = |_: &fengqiao_sync::CaseRouting| Ok(());
    let village_id = tiers.village.office.node_id.clone();
    // The township holds the village's case as registered.
    let mut village = StoreReplica::for_node(Arc::clone(&tiers.village.node), Arc::clone(&roster));
    // Seeded without the checks: this test's empty roster would defer the registration itself.
    let mut seeding = StoreReplica::for_node(Arc::clone(&tiers.township.node), Arc::clone(&roster))
        .without_receipt_checks_for_benchmark();
    let saved = village.save(&case).unwrap();
    seeding
        .apply(&village_id, &case, &saved, true, &admit)
        .unwrap();
    seeding.make_durable().unwrap();
    let held = heads(&tiers.township, &case);

    // The village's store gains a note in its own name signed with another office's key, and
    // sends it twice: as after a reconnect that lost the acknowledgement, or with a later change
    // built on the heads the township acknowledged.
    let township_heads = seeding.heads(&case).unwrap().unwrap();
    push_forged_note(&tiers.village, &case, &village_id, &tiers.sibling);
    let forged = village.changes_since(&case, &township_heads).unwrap();
    let mut township = StoreReplica::for_node(Arc::clone(&tiers.township.node), roster);
    for attempt in 0..2 {
        let applied = township
            .apply(&village_id, &case, &forged, false, &admit)
            .unwrap();
        assert_eq!(
            applied.quarantined.len(),
            1,
            "attempt {attempt}: {applied:?}"
        );
        township.make_durable().unwrap();
    }
    assert_eq!(heads(&tiers.township, &case), held);
    let records = tiers.township.node.store().quarantine_since(0, 10).unwrap();
    assert_eq!(records.len(), 1, "one record for one refused change");
    let record = replica::decode_quarantine_record(&records[0].1).unwrap();
    assert_eq!((record.peer, record.case), (village_id, case));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_closes_the_link_and_touches_no_data() {
    init_tracing();
    let tiers = three_tiers();
    let township = start_at(&tiers.township, config(loopback(), None, &[&tiers.village])).await;
    let cases_before = tiers.township.node.store().case_count();

    // A client holding the village's key, speaking garbage after the handshake.
    let township_id: fengqiao_transport::NodeId = tiers.township.office.node_id.parse().unwrap();
    let endpoint = NodeEndpoint::bind(
        loopback(),
        Arc::new(node_credentials(&tiers.village.node).unwrap()),
        AdmittedPeers::new([township_id]).admission_check(),
    )
    .unwrap();
    let connection = endpoint
        .connect(township.local_address(), township_id)
        .await
        .unwrap();
    let (mut send, mut receive) = connection.connection.open_bi().await.unwrap();
    // A length-prefixed frame whose format version byte no build knows.
    fengqiao_transport::write_frame(&mut send, &[0, 0, 0, 4, 0xee, 1, 2, 3], 1024)
        .await
        .unwrap();
    let closed = tokio::time::timeout(CONVERGENCE_TIMEOUT, async {
        // The township's hello may come first; then the stream breaks.
        while let Ok(Some(_)) = fengqiao_transport::read_frame(&mut receive, 1 << 24).await {}
        connection.connection.closed().await
    })
    .await;
    assert!(closed.is_ok(), "the township kept the link open");
    eventually("the township records why the link failed", || {
        links_now(&township).iter().any(|link| {
            link.last_error
                .as_deref()
                .is_some_and(|error| error.contains("bad frame"))
        })
    })
    .await;
    assert_eq!(tiers.township.node.store().case_count(), cases_before);
    endpoint.close();

    // The real village connects afterwards and syncs as usual.
    let village = start_at(
        &tiers.village,
        config(
            loopback(),
            Some((township.local_address(), &tiers.township)),
            &[],
        ),
    )
    .await;
    let case = register(&tiers.village, "坏帧之后的案件").await;
    eventually("the case reaches the township", || {
        same_heads_everywhere(&[&tiers.village, &tiers.township], &case)
    })
    .await;
    village.shutdown().await;
    township.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_child_is_cut_off_and_refused_afterwards() {
    init_tracing();
    let tiers = three_tiers();
    let township = start_at(&tiers.township, config(loopback(), None, &[&tiers.village])).await;
    let village = start_at(
        &tiers.village,
        config(
            loopback(),
            Some((township.local_address(), &tiers.township)),
            &[],
        ),
    )
    .await;
    let first = register(&tiers.village, "撤销前的案件").await;
    eventually_or_report(
        "the first case reaches the township",
        || heads(&tiers.township, &first).is_some(),
        || {
            format!(
                "village links {:#?}\ntownship links {:#?}",
                links_now(&village),
                links_now(&township)
            )
        },
    )
    .await;

    assert!(
        township
            .revoke_child(&tiers.village.office.node_id)
            .unwrap()
    );
    eventually("the village's link is down and refused", || {
        links_now(&village).iter().all(|link| {
            !link.connected
                && link
                    .last_error
                    .as_deref()
                    .is_some_and(|error| error.contains("refused"))
        })
    })
    .await;
    let second = register(&tiers.village, "撤销后的案件").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(heads(&tiers.township, &second).is_none());
    assert!(heads(&tiers.township, &first).is_some());
    village.shutdown().await;
    township.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_the_window_syncs_in_one_session() {
    init_tracing();
    let tiers = three_tiers();
    const BACKLOG: u64 = 150;
    for index in 0..BACKLOG {
        register(&tiers.village, &format!("积压案件 {index}")).await;
    }
    let township = start_at(&tiers.township, config(loopback(), None, &[&tiers.village])).await;
    let began = Instant::now();
    let village = start_at(
        &tiers.village,
        config(
            loopback(),
            Some((township.local_address(), &tiers.township)),
            &[],
        ),
    )
    .await;
    eventually("the whole backlog reaches the township", || {
        tiers.township.node.store().case_count() == BACKLOG
    })
    .await;
    tracing::info!(
        cases = BACKLOG,
        elapsed_ms = began.elapsed().as_millis() as u64,
        "backlog synced"
    );
    let link = links_now(&village)[0].clone();
    assert_eq!(link.connections, 1, "{link:?}");
    assert_eq!(link.session.whole_documents_sent, BACKLOG, "{link:?}");
    village.shutdown().await;
    township.shutdown().await;
}
