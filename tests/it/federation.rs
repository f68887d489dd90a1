//! Federation end to end: a county, a township and a village linked with `admit` / `join`, a
//! case registered at the village and seen at the county through the township.

use std::time::{Duration, Instant};

use fengqiao_tests::{NodeProcess, init_node_with_id, path_str, run_cli, run_cli_json, run_cli_ok};

const COUNTY: &str = "430702";
const TOWNSHIP: &str = "430702001";
const VILLAGE: &str = "430702001001";

/// `fengqiao --json case show NUMBER` at `url`, or `None` while the node does not have it.
fn case_at(url: &str, number: &str) -> Option<serde_json::Value> {
    let output = run_cli(&["--json", "case", "show", number, "--node", url]);
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

fn join(child_dir: &str, parent: &NodeProcess, parent_id: &str, name: &str, region: &str) {
    let address = parent.quic_address().expect("parent's quic.addr");
    run_cli_ok(&[
        "join",
        child_dir,
        "--parent-address",
        &address.to_string(),
        "--parent-id",
        parent_id,
        "--parent-name",
        name,
        "--parent-region",
        region,
    ]);
}

#[test]
fn a_case_registered_at_a_village_reaches_the_county_through_its_township() {
    let temp = tempfile::tempdir().expect("tempdir");
    let county_dir = temp.path().join("county");
    let township_dir = temp.path().join("township");
    let village_dir = temp.path().join("village");
    let county_id = init_node_with_id(&county_dir, "武陵区信访局", "county", COUNTY);
    let township_id = init_node_with_id(&township_dir, "芦荻山乡调处中心", "township", TOWNSHIP);
    let village_id = init_node_with_id(&village_dir, "芦荻山村调解室", "village", VILLAGE);
    let (county_path, township_path, village_path) = (
        path_str(&county_dir),
        path_str(&township_dir),
        path_str(&village_dir),
    );

    // The parents admit their children (offline, before they start).
    run_cli_ok(&[
        "admit",
        county_path,
        "--node-id",
        &township_id,
        "--name",
        "芦荻山乡调处中心",
        "--region",
        TOWNSHIP,
    ]);
    run_cli_ok(&[
        "admit",
        township_path,
        "--node-id",
        &village_id,
        "--name",
        "芦荻山村调解室",
        "--region",
        VILLAGE,
    ]);
    // Refusals: a duplicate, and a region outside the parent's.
    let duplicate = run_cli(&[
        "admit",
        township_path,
        "--node-id",
        &village_id,
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
        township_path,
        "--node-id",
        &"ab".repeat(16),
        "--name",
        "elsewhere",
        "--region",
        "430703001001",
    ]);
    assert!(!outside.status.success(), "a region outside is refused");

    // Each child joins its parent at the parent's actual QUIC address.
    let county = NodeProcess::start_federated(&county_dir).expect("start county");
    join(township_path, &county, &county_id, "武陵区信访局", COUNTY);
    let township = NodeProcess::start_federated(&township_dir).expect("start township");
    join(
        village_path,
        &township,
        &township_id,
        "芦荻山乡调处中心",
        TOWNSHIP,
    );
    let village = NodeProcess::start_federated(&village_dir).expect("start village");

    let village_url = village.url();
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
        "张国强,210202196605120035,13998765432,芦荻山村3组",
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
    let at_village = case_at(&village_url, &number).expect("the case at the village");

    let county_url = county.url();
    let deadline = Instant::now() + Duration::from_secs(30);
    let at_county = loop {
        if let Some(view) = case_at(&county_url, &number)
            && view["events"] == at_village["events"]
        {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "case {number} did not reach the county with its events within 30 s; county peers: \
             {}",
            run_cli_ok(&["--json", "peers", "--node", &county_url])
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(at_county["header"]["number"], number);
    assert_eq!(at_county["events"], at_village["events"]);

    // The township sees both its links up.
    let township_url = township.url();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let peers = run_cli_json(&["peers", "--node", &township_url]);
        let links = peers.as_array().expect("a list of links");
        let connected = |node_id: &str, relation: &str| {
            links.iter().any(|link| {
                link["node_id"] == node_id
                    && link["relation"] == relation
                    && link["connected"] == true
            })
        };
        if links.len() == 2 && connected(&county_id, "parent") && connected(&village_id, "child") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the township's links are not both connected: {peers:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let table = run_cli_ok(&["peers", "--node", &township_url]);
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

    for node in [village, township, county, alone] {
        assert!(node.stop().expect("stop"), "graceful stop");
    }
}
