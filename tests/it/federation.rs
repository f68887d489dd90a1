//! Federation end to end, with real `fengqiao run` processes linked by `admit` / `join` over QUIC
//! on 127.0.0.1:
//! (a) a case registered at a village reaches the county through its township;
//! (b) a township stopped while its villages and the county keep editing catches up on restart,
//!     and every holder ends with the same events, none lost;
//! (c) a parent `kill -9`ed mid-sync resumes on restart without the child re-sending what the
//!     parent had acknowledged;
//! (d) a node whose key was never admitted is refused;
//! (e) a village never receives a sibling village's case.
//! Adversarial: a village's unauthorized close of a county-held case, a village moving a case into
//! its sibling's region, and a township's forged, altered and replayed village events, are
//! quarantined by the receiver while the rest flows.
//! Beyond the list: a county's edit reaches the village through the replicated roster,
//! and `admit` / `revoke` take effect on a running parent, roster included.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use fengqiao_tests::{
    NodeProcess, Office, SIBLING_VILLAGE_REGION as SIBLING_VILLAGE, Tamperer,
    VILLAGE_REGION as VILLAGE, case_number, http_get, http_post, init_node_with_id, quic_address,
    register_sample, run_cli, run_cli_json, run_cli_ok, sample_registration, wait_for,
};

/// Longest a test waits for replication to settle; polls end as soon as it has.
const SETTLE: Duration = Duration::from_secs(60);

/// Start `child` joined to the running `parent`.
fn start_child(child: &Office, parent: &Office, parent_node: &NodeProcess) -> NodeProcess {
    child.join(parent, quic_address(parent_node));
    child.start()
}

/// A county, one township and its villages, each admitted by its parent, all running.
struct Tree {
    township: Office,
    villages: Vec<Office>,
    county_node: NodeProcess,
    township_node: NodeProcess,
    village_nodes: Vec<NodeProcess>,
}

fn start_tree(temp: &Path, villages: &[(&'static str, &'static str)]) -> Tree {
    let county = Office::county(temp);
    let township = Office::township(temp);
    let villages: Vec<Office> = villages
        .iter()
        .enumerate()
        .map(|(index, &(name, region))| {
            Office::init(temp, &format!("village{index}"), name, "village", region)
        })
        .collect();
    county.admit(&township);
    for village in &villages {
        township.admit(village);
    }
    let county_node = county.start();
    let township_node = start_child(&township, &county, &county_node);
    let village_nodes = villages
        .iter()
        .map(|village| start_child(village, &township, &township_node))
        .collect();
    Tree {
        township,
        villages,
        county_node,
        township_node,
        village_nodes,
    }
}

/// Register a small case at `node` in `region` through the API; returns its number and the ids of
/// the events the node acknowledged.
fn register(node: &NodeProcess, region: &str, index: usize) -> (String, Vec<String>) {
    let view = register_sample(node, region, index);
    (case_number(&view), event_ids(&view["events"]))
}

/// Append an event at `node`; returns the ids of the events the case held once it was
/// acknowledged.
fn append(node: &NodeProcess, number: &str, event: serde_json::Value) -> Vec<String> {
    let (status, view) = http_post(node.address, &format!("/api/cases/{number}/events"), &event)
        .expect("append an event");
    assert_eq!(
        status,
        200,
        "append {event} to {number} at {}: {view}",
        node.url()
    );
    event_ids(&view["events"])
}

fn note(text: &str) -> serde_json::Value {
    serde_json::json!({"kind": "note", "payload": {"text": text}})
}

fn event_ids(events: &serde_json::Value) -> Vec<String> {
    events
        .as_array()
        .expect("a list of events")
        .iter()
        .map(|event| event["id"].as_str().expect("event id").to_owned())
        .collect()
}

/// The case's events at `node`, or `None` while the node does not hold it.
fn events_at(node: &NodeProcess, number: &str) -> Option<serde_json::Value> {
    match http_get(node.address, &format!("/api/cases/{number}")) {
        Ok((200, view)) => Some(view["events"].clone()),
        _ => None,
    }
}

/// The case numbers `fengqiao case list` shows at `node`.
fn listed_cases(node: &NodeProcess) -> BTreeSet<String> {
    run_cli_json(&["case", "list", "--node", &node.url()])
        .as_array()
        .expect("a list of cases")
        .iter()
        .map(|item| {
            item["summary"]["number"]
                .as_str()
                .expect("case number")
                .to_owned()
        })
        .collect()
}

fn case_count(node: &NodeProcess) -> u64 {
    let (_, info) = http_get(node.address, "/api/health").expect("health");
    info["case_count"].as_u64().expect("case_count")
}

/// The node's links, as `GET /api/peers` reports them.
fn links(node: &NodeProcess) -> Vec<serde_json::Value> {
    let (status, peers) = http_get(node.address, "/api/peers").expect("peers");
    assert_eq!(status, 200, "{peers}");
    peers.as_array().expect("a list of links").clone()
}

/// The node's link to `peer_id`.
fn link(node: &NodeProcess, peer_id: &str) -> serde_json::Value {
    links(node)
        .into_iter()
        .find(|link| link["node_id"] == peer_id)
        .unwrap_or_else(|| panic!("{} has no link to {peer_id}", node.url()))
}

fn counter(link: &serde_json::Value, name: &str) -> u64 {
    link[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {link}"))
}

/// Case number → every event id some node acknowledged on the case: what each holder must end
/// with.
#[derive(Default)]
struct Acknowledged(BTreeMap<String, BTreeSet<String>>);

impl Acknowledged {
    fn add(&mut self, number: &str, ids: Vec<String>) {
        self.0.entry(number.to_owned()).or_default().extend(ids);
    }

    /// Wait until every node `holders` names for each case holds exactly the acknowledged events,
    /// in the same order everywhere.
    fn wait_converged<'n>(&self, what: &str, holders: impl Fn(&str) -> Vec<&'n NodeProcess>) {
        wait_for(what, SETTLE, || {
            for (number, ids) in &self.0 {
                let mut first: Option<serde_json::Value> = None;
                for node in holders(number) {
                    let events = events_at(node, number)
                        .ok_or_else(|| format!("{number} is not at {} yet", node.url()))?;
                    let held: BTreeSet<String> = event_ids(&events).into_iter().collect();
                    if &held != ids {
                        return Err(format!(
                            "{number} at {} holds events {held:?}, expected {ids:?}",
                            node.url()
                        ));
                    }
                    match &first {
                        None => first = Some(events),
                        Some(first) if *first != events => {
                            return Err(format!("{number}: holders disagree on the event list"));
                        }
                        Some(_) => {}
                    }
                }
            }
            Ok(())
        });
    }
}

#[test]
fn a_case_registered_at_a_village_reaches_the_county_through_its_township() {
    let temp = tempfile::tempdir().expect("tempdir");
    let county = Office::county(temp.path());
    let township = Office::township(temp.path());
    let village = Office::village(temp.path(), "village", VILLAGE);

    // The parents admit their children (offline, before they start).
    county.admit(&township);
    township.admit(&village);
    // Refusals: a duplicate, and a region outside the parent's.
    let duplicate = run_cli(&[
        "admit",
        township.path(),
        "--node-id",
        &village.id,
        "--name",
        "again",
        "--region",
        VILLAGE,
    ]);
    assert!(
        !duplicate.status.success(),
        "a duplicate admission is refused"
    );
    let outside = run_cli(&[
        "admit",
        township.path(),
        "--node-id",
        &"ab".repeat(16),
        "--name",
        "elsewhere",
        "--region",
        "430703001001",
    ]);
    assert!(!outside.status.success(), "a region outside is refused");

    // Each child joins its parent at the parent's actual QUIC address.
    let county_node = county.start();
    let township_node = start_child(&township, &county, &county_node);
    let village_node = start_child(&village, &township, &township_node);

    let village_url = village_node.url();
    let registered = run_cli_json(&[
        "case",
        "register",
        "--node",
        &village_url,
        "--channel",
        "visit",
        "--category",
        "wage_arrears",
        "--matter-type",
        "appeal",
        "--summary",
        "反映台秤厂拖欠工资，要求补发",
        "--petitioner",
        "张国强,210202196605120030,13998765432,芦荻山村3组",
        "--headcount",
        "1",
        "--region",
        VILLAGE,
        "--village",
        "芦荻山村",
        "--respondent",
        "常德市台秤厂",
    ]);
    let number = registered["header"]["number"]
        .as_str()
        .expect("case number")
        .to_owned();
    run_cli_ok(&["case", "accept", &number, "--node", &village_url]);
    let at_village = events_at(&village_node, &number).expect("the case at the village");

    wait_for(
        "the case reaches the county with its events",
        SETTLE,
        || match events_at(&county_node, &number) {
            Some(events) if events == at_village => Ok(()),
            held => Err(format!(
                "county holds {held:?}; county peers: {:?}",
                links(&county_node)
            )),
        },
    );

    // The township sees both its links up.
    wait_for("the township's links are both connected", SETTLE, || {
        let links = links(&township_node);
        let connected = |node_id: &str, relation: &str| {
            links.iter().any(|link| {
                link["node_id"] == node_id
                    && link["relation"] == relation
                    && link["connected"] == true
            })
        };
        if links.len() == 2 && connected(&county.id, "parent") && connected(&village.id, "child") {
            Ok(())
        } else {
            Err(format!("{links:#?}"))
        }
    });
    let table = run_cli_ok(&["peers", "--node", &township_node.url()]);
    assert!(table.contains("connected"), "{table}");

    // A node without federation lists no links and says how to make some.
    let alone_dir = temp.path().join("alone");
    init_node_with_id(&alone_dir, "独立调解室", "village", "430702002001");
    let alone = NodeProcess::start(&alone_dir).expect("start a lone node");
    assert_eq!(
        run_cli_json(&["peers", "--node", &alone.url()]),
        serde_json::json!([])
    );
    assert!(run_cli_ok(&["peers", "--node", &alone.url()]).contains("fengqiao join"));

    for node in [village_node, township_node, county_node, alone] {
        assert!(node.stop().expect("stop"), "graceful stop");
    }
}

/// The running village (of `nodes`, running `offices`) whose region holds case `number`.
fn village_of<'t>(nodes: &'t [NodeProcess], offices: &[Office], number: &str) -> &'t NodeProcess {
    nodes
        .iter()
        .zip(offices)
        .find(|(_, office)| number.starts_with(office.region))
        .map(|(node, _)| node)
        .expect("the case's village")
}

#[test]
fn a_township_stopped_while_villages_and_county_edit_catches_up_with_no_event_lost() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut tree = start_tree(
        temp.path(),
        &[
            ("芦荻山村调解室", VILLAGE),
            ("太阳山村调解室", SIBLING_VILLAGE),
        ],
    );
    let mut acknowledged = Acknowledged::default();
    for (index, village) in tree.village_nodes.iter().enumerate() {
        for case in 0..2 {
            let (number, ids) = register(village, tree.villages[index].region, index * 100 + case);
            acknowledged.add(&number, ids);
        }
    }
    let before: Vec<String> = acknowledged.0.keys().cloned().collect();
    acknowledged.wait_converged("the first cases reach the county", |number| {
        vec![
            village_of(&tree.village_nodes, &tree.villages, number),
            &tree.township_node,
            &tree.county_node,
        ]
    });

    let township_quic = quic_address(&tree.township_node);
    let township_node = tree.township_node;
    assert!(
        township_node.stop().expect("stop the township"),
        "the township stops gracefully"
    );

    // With the township down, both villages and the county keep working: new cases, and
    // concurrent edits at a village and at the county on the same earlier cases.
    let mut after = Vec::new();
    for (index, village) in tree.village_nodes.iter().enumerate() {
        for case in 2..4 {
            let (number, ids) = register(village, tree.villages[index].region, index * 100 + case);
            acknowledged.add(&number, ids);
            let ids = append(
                village,
                &number,
                serde_json::json!({"kind": "accept", "payload": {}}),
            );
            acknowledged.add(&number, ids);
            after.push(number);
        }
    }
    for number in &before {
        let ids = append(
            village_of(&tree.village_nodes, &tree.villages, number),
            number,
            note("乡镇断网期间村里补充的情况"),
        );
        acknowledged.add(number, ids);
        let ids = append(&tree.county_node, number, note("县信访局督办：请尽快答复"));
        acknowledged.add(number, ids);
    }
    for number in &after {
        assert!(
            events_at(&tree.county_node, number).is_none(),
            "{number} reached the county while its township was down"
        );
    }

    tree.township_node = tree.township.restart_at(township_quic);
    acknowledged.wait_converged(
        "every case, with every event, at its village, the township and the county",
        |number| {
            vec![
                village_of(&tree.village_nodes, &tree.villages, number),
                &tree.township_node,
                &tree.county_node,
            ]
        },
    );
    stop_tree(tree);
}

/// Stop every node of the tree, children first, each gracefully.
fn stop_tree(tree: Tree) {
    for node in tree
        .village_nodes
        .into_iter()
        .chain([tree.township_node, tree.county_node])
    {
        assert!(node.stop().expect("stop"), "graceful stop");
    }
}

/// Cases the child registers while its parent is down.
const BACKLOG: usize = 300;
/// The parent is killed once it holds at least this many of them (above the session's window of
/// 64 unacknowledged sends, so a resumed push is measurably smaller than a full one).
const KILL_AFTER: u64 = 120;
/// Sends a session may have in flight unacknowledged (`SessionConfig::window`).
const WINDOW: u64 = 64;
/// Generous bound on the redial after a parent's restart: well under the transport's 30 s idle
/// timeout, which is what the child would wait for without a stateless reset.
const REDIAL_WITHIN: Duration = Duration::from_secs(15);

#[test]
fn a_parent_killed_mid_sync_resumes_without_the_child_resending_what_it_acknowledged() {
    let temp = tempfile::tempdir().expect("tempdir");
    let township = Office::township(temp.path());
    let village = Office::village(temp.path(), "village", VILLAGE);
    township.admit(&village);
    // Learn the township's QUIC address, then take it down: the backlog builds up at the village.
    let township_node = township.start();
    let township_quic = quic_address(&township_node);
    village.join(&township, township_quic);
    assert!(township_node.stop().expect("stop"), "graceful stop");
    let village_node = village.start();

    let registered: BTreeSet<String> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..3)
            .map(|writer| {
                let village_node = &village_node;
                scope.spawn(move || {
                    (writer..BACKLOG)
                        .step_by(3)
                        .map(|index| register(village_node, VILLAGE, index).0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|writer| writer.join().expect("writer"))
            .collect()
    });
    assert_eq!(registered.len(), BACKLOG);

    // The township comes up, and is killed while the backlog is arriving.
    let township_node = township.restart_at(township_quic);
    let deadline = Instant::now() + SETTLE;
    let held_before_kill = loop {
        let held = case_count(&township_node);
        if held >= KILL_AFTER {
            break held;
        }
        assert!(Instant::now() < deadline, "the push did not start: {held}");
        std::thread::sleep(Duration::from_millis(1));
    };
    township_node.kill_hard();
    assert!(
        held_before_kill < BACKLOG as u64,
        "the township held all {BACKLOG} cases before it could be killed mid-sync; raise BACKLOG"
    );
    // The restarted township answers the village's packets for the dead connection with a
    // stateless reset, so the village redials within seconds, not after the 30 s idle timeout.
    let township_node = township.restart_at(township_quic);
    let restarted_at = Instant::now();
    wait_for(
        "the village redials the restarted township",
        REDIAL_WITHIN,
        || {
            let link = link(&village_node, &township.id);
            if link["connected"] == true && counter(&link, "connections") == 2 {
                Ok(())
            } else {
                Err(format!("village's link: {link}"))
            }
        },
    );
    eprintln!(
        "the village redialled {:?} after the township restarted",
        restarted_at.elapsed()
    );
    wait_for("the backlog is complete at the township", SETTLE, || {
        let held = case_count(&township_node);
        let link = link(&village_node, &township.id);
        if held == BACKLOG as u64 && link["connected"] == true && counter(&link, "pending") == 0 {
            Ok(())
        } else {
            Err(format!("the township holds {held}; village's link: {link}"))
        }
    });
    assert_eq!(listed_cases(&township_node), registered);

    // Whatever the township had applied before the kill was acknowledged, except at most one
    // window of sends in flight; the village must not push those cases again.
    let resend_limit = BACKLOG as u64 - held_before_kill + WINDOW;
    let at_township = link(&township_node, &village.id);
    let at_village = link(&village_node, &township.id);
    assert_eq!(counter(&at_village, "connections"), 2, "{at_village}");
    let applied = counter(&at_township, "cases_applied");
    eprintln!(
        "killed holding {held_before_kill}/{BACKLOG}; on the reconnect the township applied \
         {applied} cases and the village sent {} frames",
        counter(&at_village, "frames_sent")
    );
    assert!(
        applied <= resend_limit,
        "after restarting with {held_before_kill} of {BACKLOG} cases the township applied \
         {applied} cases from the village, more than the {resend_limit} it could still lack: \
         acknowledged cases were re-sent. township's link: {at_township}"
    );
    // Hello and CaughtUp besides one frame per case.
    let sent = counter(&at_village, "frames_sent");
    assert!(
        sent <= resend_limit + 2,
        "the village sent {sent} frames on the reconnect, more than {resend_limit} cases + 2: \
         {at_village}"
    );
    // Nor does the township echo the village's cases back to it, beyond the few whose advisory
    // peer heads (flushed with the next write) the kill took with it.
    let echoed = counter(&at_village, "cases_applied");
    assert!(
        echoed <= WINDOW,
        "the township sent back {echoed} cases the village already holds: {at_village}"
    );

    assert!(township_node.stop().expect("stop"), "graceful stop");
    assert!(village_node.stop().expect("stop"), "graceful stop");
}

#[test]
fn a_node_whose_key_was_never_admitted_is_refused() {
    let temp = tempfile::tempdir().expect("tempdir");
    let township = Office::township(temp.path());
    let village = Office::village(temp.path(), "village", VILLAGE);
    // Same name and region as the admitted village: only its key differs.
    let stranger = Office::village(temp.path(), "stranger", VILLAGE);
    township.admit(&village);
    let township_node = township.start();
    let stranger_node = start_child(&stranger, &township, &township_node);
    // A number of its own, distinct from the admitted village's first case.
    let stranger_case = format!("{VILLAGE}-2026-009999");
    let mut registration = sample_registration(VILLAGE, 1);
    registration["number"] = serde_json::json!(stranger_case);
    let (status, view) =
        http_post(stranger_node.address, "/api/cases", &registration).expect("register");
    assert_eq!(status, 201, "{view}");
    let village_node = start_child(&village, &township, &township_node);
    let (village_case, _) = register(&village_node, VILLAGE, 2);

    // The admitted village gets through (so the township is reachable and syncing) ...
    wait_for(
        "the admitted village's case reaches the township",
        SETTLE,
        || {
            events_at(&township_node, &village_case)
                .map(drop)
                .ok_or_else(|| format!("township's links: {:?}", links(&township_node)))
        },
    );
    // ... while the stranger has been refused, more than once, and says so.
    let refusal = wait_for("the stranger is refused twice", SETTLE, || {
        let log = stranger_node.log();
        let attempts = log.matches("cannot connect to the parent").count();
        let link = link(&stranger_node, &township.id);
        match link["last_error"].as_str() {
            Some(error) if attempts >= 2 => Ok(error.to_owned()),
            _ => Err(format!("{attempts} attempts logged; link: {link}")),
        }
    });
    let link = link(&stranger_node, &township.id);
    assert_eq!(link["connected"], false, "{link}");
    assert_eq!(counter(&link, "connections"), 0, "{link}");
    assert!(
        refusal.to_lowercase().contains("refused")
            || refusal.to_lowercase().contains("not admitted"),
        "the stranger's last error names the refusal: {refusal}"
    );

    assert!(
        events_at(&township_node, &stranger_case).is_none(),
        "the stranger's case reached the township"
    );
    assert_eq!(listed_cases(&township_node), BTreeSet::from([village_case]));
    let township_links = links(&township_node);
    assert!(
        township_links
            .iter()
            .all(|link| link["node_id"] != stranger.id.as_str()),
        "the township lists the stranger: {township_links:?}"
    );
    // The township's log names the stranger only to refuse it.
    let log = township_node.log();
    assert!(
        log.contains(&format!("peer {} is not admitted", stranger.id)),
        "the township logs the refusal with the stranger's node id:\n{log}"
    );
    let other_mentions: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(&stranger.id) && !line.contains("refused"))
        .collect();
    assert!(
        other_mentions.is_empty(),
        "the township logged more than refusals of the stranger: {other_mentions:#?}"
    );

    for node in [stranger_node, village_node, township_node] {
        assert!(node.stop().expect("stop"), "graceful stop");
    }
}

#[test]
fn a_village_never_receives_a_sibling_villages_case() {
    let temp = tempfile::tempdir().expect("tempdir");
    let tree = start_tree(
        temp.path(),
        &[
            ("芦荻山村调解室", VILLAGE),
            ("太阳山村调解室", SIBLING_VILLAGE),
        ],
    );
    let (county, township) = (&tree.county_node, &tree.township_node);
    let mut acknowledged = Acknowledged::default();
    let mut own: Vec<BTreeSet<String>> = vec![BTreeSet::new(); tree.village_nodes.len()];
    for (index, village) in tree.village_nodes.iter().enumerate() {
        for case in 0..3 {
            let (number, ids) = register(village, tree.villages[index].region, index * 100 + case);
            own[index].insert(number.clone());
            acknowledged.add(&number, ids);
        }
    }
    // The county comments on one case of each village in turn. Each note reaches its village
    // only after the township's feed walk towards that village has passed everything the
    // township received before it, the sibling's cases included: a leak would have arrived too.
    for (index, village) in tree.village_nodes.iter().enumerate() {
        let number = own[index].first().expect("a case").clone();
        wait_for("the case reaches the county", SETTLE, || {
            events_at(county, &number)
                .map(drop)
                .ok_or_else(|| format!("county's links: {:?}", links(county)))
        });
        let ids = append(county, &number, note("县信访局：请村里核实情况"));
        acknowledged.add(&number, ids);
        let with_note = acknowledged.0[&number].clone();
        wait_for("the county's note reaches the village", SETTLE, || {
            let held: BTreeSet<String> = events_at(village, &number)
                .map(|events| event_ids(&events).into_iter().collect())
                .unwrap_or_default();
            if held == with_note {
                Ok(())
            } else {
                Err(format!("the village holds {held:?}"))
            }
        });
    }
    acknowledged.wait_converged(
        "every case converges at its village, the township and the county",
        |number| {
            vec![
                village_of(&tree.village_nodes, &tree.villages, number),
                township,
                county,
            ]
        },
    );

    let everything: BTreeSet<String> = own.iter().flatten().cloned().collect();
    assert_eq!(listed_cases(township), everything);
    assert_eq!(listed_cases(county), everything);
    for (index, village) in tree.village_nodes.iter().enumerate() {
        assert_eq!(
            listed_cases(village),
            own[index],
            "village {} lists only its own cases",
            tree.villages[index].region
        );
        for (other, numbers) in own.iter().enumerate().filter(|(other, _)| *other != index) {
            for number in numbers {
                assert!(
                    events_at(village, number).is_none(),
                    "village {index} holds village {other}'s case {number}"
                );
            }
        }
    }

    stop_tree(tree);
}

#[test]
fn a_county_edit_reaches_the_village_with_only_admit_and_join() {
    let temp = tempfile::tempdir().expect("tempdir");
    let tree = start_tree(temp.path(), &[("芦荻山村调解室", VILLAGE)]);
    let village = &tree.village_nodes[0];
    let (number, ids) = register(village, VILLAGE, 1);
    let mut acknowledged = Acknowledged::default();
    acknowledged.add(&number, ids);
    let all = |_: &str| vec![village, &tree.township_node, &tree.county_node];
    acknowledged.wait_converged("the case reaches the county", all);
    let ids = append(&tree.county_node, &number, note("县信访局督办：请尽快答复"));
    acknowledged.add(&number, ids);
    acknowledged.wait_converged("the county's note reaches the township and village", all);
    stop_tree(tree);
}

/// The members of `node`'s roster: node ID → who admitted it (`None` for the root).
fn roster_members(node: &NodeProcess) -> Result<BTreeMap<String, Option<String>>, String> {
    let roster = run_cli_json(&["roster", "--node", &node.url()]);
    let members = roster["members"]
        .as_array()
        .ok_or_else(|| format!("no members in {roster}"))?;
    Ok(members
        .iter()
        .map(|member| {
            (
                member["node_id"].as_str().unwrap_or_default().to_owned(),
                member["admitted_by"].as_str().map(str::to_owned),
            )
        })
        .collect())
}

#[test]
fn admit_and_revoke_take_effect_on_a_running_parent_and_every_roster_follows() {
    let temp = tempfile::tempdir().expect("tempdir");
    let county = Office::county(temp.path());
    let township = Office::township(temp.path());
    let village = Office::village(temp.path(), "village", VILLAGE);
    county.admit(&township);
    let county_node = county.start();
    let township_node = start_child(&township, &county, &county_node);
    // The village joins a running township that has not admitted it, and is refused.
    let village_node = start_child(&village, &township, &township_node);
    let (number, _) = register(&village_node, VILLAGE, 1);
    wait_for("the village is refused", SETTLE, || {
        let link = link(&village_node, &township.id);
        link["last_error"]
            .as_str()
            .map(drop)
            .ok_or_else(|| link.to_string())
    });

    let printed = run_cli_ok(&[
        "admit",
        township.path(),
        "--node-id",
        &village.id,
        "--name",
        village.name,
        "--region",
        village.region,
    ]);
    assert!(printed.contains("applied it at once"), "{printed}");
    wait_for(
        "the village's case reaches the county without a restart",
        SETTLE,
        || {
            events_at(&county_node, &number)
                .map(drop)
                .ok_or_else(|| format!("village links: {:?}", links(&village_node)))
        },
    );
    // Every node learns who the village is, and that the county is the root.
    for node in [&county_node, &township_node, &village_node] {
        wait_for("the roster reaches every node", SETTLE, || {
            let members = roster_members(node)?;
            let expected = BTreeMap::from([
                (county.id.clone(), None),
                (township.id.clone(), Some(county.id.clone())),
                (village.id.clone(), Some(township.id.clone())),
            ]);
            if members == expected {
                Ok(())
            } else {
                Err(format!("{} holds {members:?}", node.url()))
            }
        });
    }
    let roster = run_cli_json(&["roster", "--node", &village_node.url()]);
    assert_eq!(roster["root"], county.id.as_str(), "{roster}");

    let printed = run_cli_ok(&["revoke", township.path(), "--node-id", &village.id]);
    assert!(printed.contains("applied it at once"), "{printed}");
    wait_for("the county's roster drops the village", SETTLE, || {
        let members = roster_members(&county_node)?;
        if members.contains_key(&village.id) {
            Err(format!("county holds {members:?}"))
        } else {
            Ok(())
        }
    });
    wait_for("the village's link goes down", SETTLE, || {
        let link = link(&village_node, &township.id);
        if link["connected"] == false {
            Ok(())
        } else {
            Err(link.to_string())
        }
    });
    let (later, _) = register(&village_node, VILLAGE, 2);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        events_at(&township_node, &later).is_none(),
        "a case registered after the revocation reached the township"
    );

    for node in [village_node, township_node, county_node] {
        assert!(node.stop().expect("stop"), "graceful stop");
    }
}

/// The case's holder at `node`, or why it cannot be read yet.
fn holder_at(node: &NodeProcess, number: &str) -> Result<String, String> {
    match http_get(node.address, &format!("/api/cases/{number}")) {
        Ok((200, view)) => view["state"]["holder"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no holder in {view}")),
        Ok((status, body)) => Err(format!("{status}: {body}")),
        Err(error) => Err(error.to_string()),
    }
}

/// Wait until `node`'s link to `peer_id` has quarantined at least `at_least` changes; returns
/// the link's last quarantine reason.
fn wait_quarantined(node: &NodeProcess, peer_id: &str, at_least: u64) -> String {
    wait_for("changes quarantined on the link", SETTLE, || {
        let link = link(node, peer_id);
        let quarantined = link["quarantined"].as_u64().unwrap_or(0);
        if quarantined >= at_least {
            Ok(link["last_quarantine"]
                .as_str()
                .unwrap_or_default()
                .to_owned())
        } else {
            Err(format!("{quarantined} quarantined so far: {link}"))
        }
    })
}

fn escalate_to(to_node: &str) -> serde_json::Value {
    serde_json::json!({"kind": "escalate", "payload": {"to_node": to_node, "reason": "涉及多个村，需上级协调"}})
}

#[test]
fn forged_altered_replayed_unauthorized_and_out_of_region_events_are_quarantined_and_the_rest_flows()
 {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut tree = start_tree(
        temp.path(),
        &[
            ("芦荻山村调解室", VILLAGE),
            ("太阳山村调解室", SIBLING_VILLAGE),
        ],
    );
    let village = &tree.villages[0];
    let (escalated, _) = register(&tree.village_nodes[0], VILLAGE, 1);
    let (village_held, _) = register(&tree.village_nodes[0], VILLAGE, 2);
    let (to_move, _) = register(&tree.village_nodes[0], VILLAGE, 5);
    // Escalated village → township → county: the county holds it, the village keeps a copy.
    wait_for("the township holds a copy", SETTLE, || {
        holder_at(&tree.township_node, &escalated)
    });
    append(
        &tree.village_nodes[0],
        &escalated,
        escalate_to(&tree.township.id),
    );
    wait_for("the township holds the case", SETTLE, || {
        match holder_at(&tree.township_node, &escalated)? {
            holder if holder == tree.township.id => Ok(()),
            other => Err(format!("held by {other}")),
        }
    });
    let county_node_id = links(&tree.township_node)
        .into_iter()
        .find(|link| link["relation"] == "parent")
        .and_then(|link| link["node_id"].as_str().map(str::to_owned))
        .expect("the township's parent");
    append(
        &tree.township_node,
        &escalated,
        escalate_to(&county_node_id),
    );
    wait_for(
        "the village sees the county hold the case",
        SETTLE,
        || match holder_at(&tree.village_nodes[0], &escalated)? {
            holder if holder == county_node_id => Ok(()),
            other => Err(format!("held by {other}")),
        },
    );
    wait_for("the village-held cases reach the county", SETTLE, || {
        holder_at(&tree.county_node, &village_held)?;
        holder_at(&tree.township_node, &to_move)
    });

    // 1. A village closes a county-held case behind its node's back, and syncs it.
    let village_node = tree.village_nodes.remove(0);
    assert!(village_node.stop().expect("stop the village"));
    {
        let tamperer = Tamperer::open(&village.dir).expect("open the village");
        let close = tamperer
            .sign(
                &escalated,
                "unauthorized-close",
                &tamperer.node_id(),
                fengqiao_case::EventKind::Close {
                    resolved: true,
                    note: "村里自行办结".to_owned(),
                },
                Some(tamperer.tip(&escalated).expect("tip")),
            )
            .expect("sign");
        tamperer.push(&escalated, &[close]).expect("push");
        // 2. It moves a case it holds into its sibling village's region, which only a forward
        // to that village (or a tier above both) may do.
        let moved = tamperer
            .sign(
                &to_move,
                "moved-to-sibling",
                &tamperer.node_id(),
                fengqiao_case::EventKind::AmendHeader {
                    amendment: fengqiao_case::HeaderAmendment::Location(fengqiao_case::Location {
                        region_code: SIBLING_VILLAGE.to_owned(),
                        village: "太阳山村".to_owned(),
                        grid: String::new(),
                        grid_worker: String::new(),
                    }),
                },
                None,
            )
            .expect("sign");
        tamperer.push(&to_move, &[moved]).expect("push");
    }
    tree.village_nodes.insert(0, village.start());
    wait_quarantined(&tree.township_node, &village.id, 2);
    let (_, listing) = http_get(tree.township_node.address, "/api/quarantine").expect("quarantine");
    let reasons: Vec<String> = listing["entries"]
        .as_array()
        .expect("quarantine entries")
        .iter()
        .map(|entry| entry["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("only the holder closes")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("outside the jurisdiction")),
        "{reasons:?}"
    );
    // The village is told (issue 12, item 3): its link counts the refused cases, and the case
    // says who refused what, and why.
    wait_for("the village learns of the refusals", SETTLE, || {
        let link = links(&tree.village_nodes[0])
            .into_iter()
            .find(|link| link["relation"] == "parent")
            .ok_or("no parent link")?;
        match link["refused_by_peer"].as_u64() {
            Some(2) => Ok(()),
            _ => Err(format!("{link}")),
        }
    });
    let (status, at_village) = http_get(
        tree.village_nodes[0].address,
        &format!("/api/cases/{escalated}"),
    )
    .expect("the case at the village");
    assert_eq!(status, 200, "{at_village}");
    let refusal = &at_village["refused_by_peers"][0];
    assert_eq!(refusal["peer"], tree.township.id.as_str(), "{at_village}");
    assert!(
        refusal["reasons"][0]
            .as_str()
            .is_some_and(|reason| reason.contains("only the holder closes")),
        "{at_village}"
    );
    let shown = run_cli_ok(&[
        "case",
        "show",
        &escalated,
        "--node",
        &tree.village_nodes[0].url(),
    ]);
    assert!(shown.contains("Refused by"), "{shown}");
    let moved_at_township = events_at(&tree.township_node, &to_move).expect("held");
    assert!(!event_ids(&moved_at_township).contains(&"moved-to-sibling".to_owned()));
    // Nothing else on the link is disturbed: a new case still goes up.
    let (after_close, _) = register(&tree.village_nodes[0], VILLAGE, 3);
    wait_for("a later case reaches the county", SETTLE, || {
        holder_at(&tree.county_node, &after_close)
    });
    let at_township = event_ids(&events_at(&tree.township_node, &escalated).expect("held"));
    assert!(!at_township.contains(&"unauthorized-close".to_owned()));

    // 3. The township forges, alters and replays village events on a village-held case.
    let township_quic = quic_address(&tree.township_node);
    assert!(tree.township_node.stop().expect("stop the township"));
    {
        let tamperer = Tamperer::open(&tree.township.dir).expect("open the township");
        let events = tamperer.events(&village_held).expect("events");
        let register_event = events[0].clone();
        let in_village_name = tamperer
            .sign(
                &village_held,
                "forged-own-key",
                &village.id,
                fengqiao_case::EventKind::Note {
                    text: "村里同意撤回".to_owned(),
                },
                None,
            )
            .expect("sign");
        let mut altered = register_event.clone();
        altered.id = "forged-altered".to_owned();
        altered.kind = fengqiao_case::EventKind::Note {
            text: "改过的内容".to_owned(),
        };
        let replayed = register_event;
        tamperer
            .push(&village_held, &[in_village_name, altered, replayed])
            .expect("push");
    }
    tree.township_node = tree.township.restart_at(township_quic);
    let reason = wait_quarantined(&tree.county_node, &tree.township.id, 3);
    assert!(!reason.is_empty());
    let village_reason = wait_quarantined(&tree.village_nodes[0], &tree.township.id, 1);
    assert!(!village_reason.is_empty());

    // The village's own later edit of that case, and new cases, still reach the county.
    append(
        &tree.village_nodes[0],
        &village_held,
        note("村里补充的调查情况"),
    );
    let expected_note_count = 1;
    let (later, _) = register(&tree.village_nodes[1], SIBLING_VILLAGE, 4);
    wait_for(
        "the sibling's case and the village's note reach the county",
        SETTLE,
        || {
            holder_at(&tree.county_node, &later)?;
            let events = events_at(&tree.county_node, &village_held).ok_or("not held")?;
            let notes = events
                .as_array()
                .into_iter()
                .flatten()
                .filter(|event| event["payload"]["text"] == "村里补充的调查情况")
                .count();
            if notes == expected_note_count {
                Ok(())
            } else {
                Err(format!("{notes} notes so far"))
            }
        },
    );
    let at_county = event_ids(&events_at(&tree.county_node, &village_held).expect("held"));
    for forged in ["forged-own-key", "forged-altered"] {
        assert!(
            !at_county.contains(&forged.to_owned()),
            "{forged} at the county"
        );
    }
    assert_eq!(
        at_county.iter().filter(|id| **id == at_county[0]).count(),
        1,
        "the replayed event is held once"
    );
    // Nothing refused reached the receivers' stores: every signature they hold verifies, and
    // what was refused waits in their quarantine logs.
    for (who, node) in [
        ("county", &tree.county_node),
        ("sibling village", &tree.village_nodes[1]),
    ] {
        let (status, report) = http_get(node.address, "/api/audit/verify").expect("verify");
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["failures"], serde_json::json!([]), "{who}: {report}");
        assert!(
            report["events_checked"].as_u64().unwrap_or(0) > 0,
            "{report}"
        );
    }
    let (_, county_report) =
        http_get(tree.county_node.address, "/api/audit/verify").expect("verify");
    assert!(county_report["quarantined"].as_u64().unwrap_or(0) >= 3);
    stop_tree(tree);
}
