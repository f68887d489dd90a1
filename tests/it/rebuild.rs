//! Rebuilding a lost village from its township (issue 17, part 4), with real `fengqiao run`
//! processes over QUIC: the village's directory and key are gone while its township and county
//! keep running; a new node made with `init --restore-from-parent`, admitted at the township
//! with `admit --successor-of`, gets back every case and event that had reached the township,
//! registers nothing until then, numbers its next case after the highest that came back,
//! `fengqiao peers` names the number that could not be recovered, and the new node works the
//! old node's cases as the same office (a `succeed` before its first event on each), which the
//! township and the county keep.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fengqiao_tests::{
    COUNTY_REGION as COUNTY, NodeProcess, Office, TOWNSHIP_REGION as TOWNSHIP,
    VILLAGE_REGION as VILLAGE, add_test_account, case_number, http_get, http_post, path_str,
    quic_address, run_cli_json, run_cli_ok, sample_registration, start_chain, wait_for,
    wait_for_roster,
};
use serde_json::{Value, json};

/// Longest the test waits for replication; polls end as soon as it has settled.
const SETTLE: Duration = Duration::from_secs(40);

/// Cases the village registers through the import path, in two batches around one case that
/// never leaves it.
const IMPORTED: usize = 300;

fn import(node: &NodeProcess, first: usize, count: usize) {
    let rows: Vec<Value> = (first..first + count)
        .map(|index| json!({"line": index, "case": sample_registration(VILLAGE, index)}))
        .collect();
    let (status, answer) =
        http_post(node.address, "/api/import", &json!({"rows": rows})).expect("import");
    assert_eq!(status, 200, "import at {}: {answer}", node.url());
}

fn append(node: &NodeProcess, number: &str, event: Value) {
    let (status, view) = http_post(node.address, &format!("/api/cases/{number}/events"), &event)
        .expect("append an event");
    assert_eq!(status, 200, "append {event} to {number}: {view}");
}

/// Every case `node` holds located in the village, by number, with its events' ids in order.
fn histories(node: &NodeProcess) -> Result<BTreeMap<String, Vec<String>>, String> {
    let (status, list) = http_get(
        node.address,
        &format!("/api/cases?region={VILLAGE}&limit=100000"),
    )
    .map_err(|error| error.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {list}"));
    }
    let mut histories = BTreeMap::new();
    for item in list.as_array().into_iter().flatten() {
        let number = item["summary"]["number"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (status, view) = http_get(node.address, &format!("/api/cases/{number}"))
            .map_err(|error| error.to_string())?;
        if status != 200 {
            return Err(format!("{number}: {status}: {view}"));
        }
        let ids = view["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|event| event["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        histories.insert(number, ids);
    }
    Ok(histories)
}

fn audit_verify(dir: &Path) {
    // `audit verify` exits 1 on any failure; a pass says so.
    let verified = run_cli_ok(&["audit", "verify", "--dir", path_str(dir)]);
    assert!(verified.contains("all signatures valid"), "{verified}");
}

#[test]
fn a_lost_village_is_rebuilt_from_its_township_and_continues_its_numbering() {
    let temp = tempfile::tempdir().expect("tempdir");
    let county = Office::init(temp.path(), "county", "武陵区信访局", "county", COUNTY);
    let township = Office::init(
        temp.path(),
        "township",
        "芦荻山乡调处中心",
        "township",
        TOWNSHIP,
    );
    let village = Office::init(temp.path(), "village", "芦荻山村调解室", "village", VILLAGE);
    let (county_node, township_node, village_node) = start_chain(&county, &township, &village);
    wait_for_roster(
        &[&county_node, &township_node, &village_node],
        &[&county.id, &township.id, &village.id],
        SETTLE,
    );

    // The village's ledger: 300 cases, and between them one whose respondent is the township
    // itself, which never goes up (条例 Art 30) and so is lost with the village's disk.
    import(&village_node, 1, IMPORTED / 2);
    let mut about_township = sample_registration(VILLAGE, 9_999);
    about_township["respondent"] = json!(township.name);
    let (status, view) =
        http_post(village_node.address, "/api/cases", &about_township).expect("register");
    assert_eq!(status, 201, "{view}");
    let lost_number = case_number(&view);
    assert_eq!(lost_number, format!("{VILLAGE}-{}-000151", year(&view)));
    import(&village_node, IMPORTED / 2 + 1, IMPORTED / 2);

    let own: Vec<String> = histories(&village_node)
        .expect("the village's cases")
        .into_keys()
        .collect();
    assert_eq!(own.len(), IMPORTED + 1);
    // Some escalated to the township, some accepted there and some assigned down by it.
    for number in own.iter().take(5) {
        append(
            &village_node,
            number,
            json!({"kind": "escalate", "payload": {"to_node": township.id, "reason": "需乡里协调"}}),
        );
    }
    for number in own.iter().skip(5).take(20) {
        append(
            &village_node,
            number,
            json!({"kind": "accept", "payload": {}}),
        );
    }
    let mut assigned = Vec::new();
    for index in 0..5 {
        let (status, view) = http_post(
            township_node.address,
            "/api/cases",
            &sample_registration(VILLAGE, 20_000 + index),
        )
        .expect("register at the township");
        assert_eq!(status, 201, "{view}");
        let number = case_number(&view);
        append(
            &township_node,
            &number,
            json!({"kind": "assign", "payload": {
                "to_node": village.id,
                "required_result": "查清欠薪数额并答复",
                "deadline": (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string(),
            }}),
        );
        assigned.push(number);
    }
    for number in &assigned {
        wait_for(
            "the assignment reaches the village",
            SETTLE,
            || match http_get(village_node.address, &format!("/api/cases/{number}")) {
                Ok((200, view)) if view["state"]["awaiting"] == village.id.as_str() => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
        append(
            &village_node,
            number,
            json!({"kind": "accept_assignment", "payload": {}}),
        );
    }

    // Everything but the one case reaches the township; then the village's disk dies.
    let at_village = histories(&village_node).expect("the village's cases");
    let expected: BTreeMap<String, Vec<String>> = at_village
        .iter()
        .filter(|(number, _)| **number != lost_number)
        .map(|(number, events)| (number.clone(), events.clone()))
        .collect();
    assert_eq!(expected.len(), IMPORTED + assigned.len());
    wait_for("the township holds what the village did", SETTLE, || {
        let at_township = histories(&township_node)?;
        if at_township == expected {
            Ok(())
        } else {
            Err(format!(
                "{} of {} cases the same",
                expected
                    .iter()
                    .filter(|(number, events)| at_township.get(*number) == Some(events))
                    .count(),
                expected.len()
            ))
        }
    });
    let old_village_id = village.id.clone();
    village_node.kill_hard();
    std::fs::remove_dir_all(&village.dir).expect("the village's directory is gone");

    // A new node for the village, restoring from the township.
    let rebuilt_dir = temp.path().join("village-rebuilt");
    let township_quic = quic_address(&township_node);
    let printed = run_cli_ok(&[
        "init",
        path_str(&rebuilt_dir),
        "--name",
        village.name,
        "--tier",
        "village",
        "--region",
        VILLAGE,
        "--restore-from-parent",
        &township_quic.to_string(),
        "--parent-id",
        &township.id,
        "--parent-name",
        township.name,
        "--parent-region",
        TOWNSHIP,
    ]);
    let new_village_id = printed
        .lines()
        .find_map(|line| line.trim().strip_prefix("node id: "))
        .map(|node_id| node_id.trim().to_owned())
        .unwrap_or_else(|| panic!("init printed no node id:\n{printed}"));
    assert!(printed.contains("--successor-of"), "{printed}");
    add_test_account(&rebuilt_dir);
    let rebuilt_node = NodeProcess::start_federated(&rebuilt_dir).expect("the rebuilt node runs");

    // Not admitted yet: nothing has come back, so it hands out no number.
    let (status, refusal) = http_post(
        rebuilt_node.address,
        "/api/cases",
        &sample_registration(VILLAGE, 30_000),
    )
    .expect("register");
    assert_eq!(status, 503, "{refusal}");
    assert!(refusal.to_string().contains("being rebuilt"), "{refusal}");

    // The township's admin admits it as the old node's successor, on the running township.
    let admitted = run_cli_ok(&[
        "admit",
        township.path(),
        "--node-id",
        &new_village_id,
        "--name",
        village.name,
        "--region",
        VILLAGE,
        "--successor-of",
        &old_village_id,
    ]);
    assert!(admitted.contains("applied it at once"), "{admitted}");

    let report = wait_for("the rebuild completes", SETTLE, || {
        let peers = run_cli_json(&["peers", "--dir", path_str(&rebuilt_dir)]);
        let rebuild = peers[0]["rebuild"].clone();
        if rebuild["completed_at"].is_string() {
            Ok(rebuild)
        } else {
            Err(format!("{peers}"))
        }
    });
    let recovered = histories(&rebuilt_node).expect("the rebuilt node's cases");
    assert_eq!(
        recovered, expected,
        "every case and event that reached the township"
    );
    assert_eq!(report["cases_recovered"], json!(expected.len()));
    let sequences = report["sequences"].as_array().expect("sequences");
    assert_eq!(sequences.len(), 1, "{report}");
    assert_eq!(sequences[0]["highest"], json!(IMPORTED + 1));
    assert_eq!(sequences[0]["missing_count"], json!(1));
    assert_eq!(sequences[0]["missing"], json!([151]));
    let peers_text = run_cli_ok(&["peers", "--dir", path_str(&rebuilt_dir)]);
    assert!(peers_text.contains(&lost_number), "{peers_text}");

    // Numbering continues after the highest number the office ever had back: no repeat.
    let (status, view) = http_post(
        rebuilt_node.address,
        "/api/cases",
        &sample_registration(VILLAGE, 30_001),
    )
    .expect("register");
    assert_eq!(status, 201, "{view}");
    assert_eq!(
        case_number(&view),
        format!("{VILLAGE}-{}-{:06}", year(&view), IMPORTED + 2)
    );

    // The new node works the old node's cases as the same office: it accepts a case the old
    // node registered and left waiting, and replies on one the old node had accepted. Each
    // first takes the old node's place with a signed `succeed`; the township and the county
    // keep every event (nothing quarantined) and derive the same state.
    let waiting = &own[30];
    let accepted = &own[5];
    let acted = [
        (waiting, json!({"kind": "accept", "payload": {}})),
        (
            accepted,
            json!({"kind": "reply", "payload": {"outcome": "support", "text": "已协调支付拖欠工资"}}),
        ),
    ];
    for (number, event) in acted {
        let (status, view) = http_post(
            rebuilt_node.address,
            &format!("/api/cases/{number}/events"),
            &event,
        )
        .expect("append an event");
        assert_eq!(status, 200, "the successor acts on {number}: {view}");
        assert_eq!(view["state"]["holder"], new_village_id.as_str(), "{view}");
        let succession = view["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|event| event["kind"] == "succeed")
            .collect::<Vec<_>>();
        assert_eq!(succession.len(), 1, "{view}");
        assert_eq!(
            succession[0]["payload"]["predecessor"],
            old_village_id.as_str()
        );
        assert_eq!(succession[0]["node"], new_village_id.as_str());
        for node in [&township_node, &county_node] {
            wait_for(
                "the successor's events reach the tiers above",
                SETTLE,
                || match http_get(node.address, &format!("/api/cases/{number}")) {
                    Ok((200, there)) if there["events"] == view["events"] => Ok(there),
                    other => Err(format!("{other:?}")),
                },
            );
            let (_, there) =
                http_get(node.address, &format!("/api/cases/{number}")).expect("the case");
            assert_eq!(there["state"], view["state"], "{number} at {}", node.url());
        }
        let (_, quarantine) =
            http_get(township_node.address, "/api/quarantine").expect("quarantine");
        assert!(
            !quarantine.to_string().contains(number.as_str()),
            "{quarantine}"
        );
    }

    // The old node is refused from now on; the roster names the successor.
    let (_, roster) = http_get(township_node.address, "/api/roster").expect("roster");
    assert!(roster.to_string().contains(&new_village_id), "{roster}");
    for dir in [&county.dir, &township.dir, &rebuilt_dir] {
        audit_verify(dir);
    }
    for node in [rebuilt_node, township_node, county_node] {
        assert!(node.stop().expect("stop"), "graceful stop");
    }
}

/// The registration year a case view's number carries.
fn year(view: &Value) -> String {
    case_number(view)
        .split('-')
        .nth(1)
        .expect("a year in the number")
        .to_owned()
}
