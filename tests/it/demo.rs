//! The README's main command: `fengqiao demo` starts a whole federation (county, 2 townships,
//! 4 villages), cuts one township off while its villages keep registering, heals it, and leaves
//! node directories in which the county holds every case registered below it.

use std::collections::BTreeMap;
use std::path::Path;

use fengqiao_tests::{NodeProcess, path_str, run_cli_json, run_cli_ok};

/// The demo's node directories (under `--dir`) and their regions.
const COUNTY: (&str, &str) = ("county-430702", "430702");
const CUT_TOWNSHIP: (&str, &str) = ("township-430702001", "430702001");
const VILLAGES: [(&str, &str); 4] = [
    ("village-430702001001", "430702001001"),
    ("village-430702001002", "430702001002"),
    ("village-430702002001", "430702002001"),
    ("village-430702002002", "430702002002"),
];

/// Every case a running node lists: number → region code of its location.
fn listed(node: &NodeProcess) -> BTreeMap<String, String> {
    run_cli_json(&["case", "list", "--node", &node.url()])
        .as_array()
        .expect("a list of cases")
        .iter()
        .map(|item| {
            let summary = &item["summary"];
            (
                summary["number"].as_str().expect("number").to_owned(),
                summary["region_code"].as_str().expect("region").to_owned(),
            )
        })
        .collect()
}

fn start(dir: &Path) -> NodeProcess {
    // The demo's nodes have its own accounts; the tests act as theirs.
    fengqiao_tests::add_test_account(dir);
    // Free ports: the demo's own addresses stay in the configs, unused by these runs.
    NodeProcess::start_federated(dir)
        .unwrap_or_else(|error| panic!("start {}: {error:#}", dir.display()))
}

#[test]
fn demo_federation_converges_at_the_county_after_a_cut() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("demo");
    // Below the ephemeral port range (32768 and up on Linux): the other tests' nodes bind port 0
    // and can take a free port the demo chose before it binds it; these they never pick.
    let base_port = (20_000 + (std::process::id() % 400) * 20).to_string();
    let printed = run_cli_ok(&[
        "demo",
        "--dir",
        path_str(&dir),
        "--base-port",
        &base_port,
        "--cases",
        "40",
        "--no-serve",
    ]);
    assert!(
        printed.contains("及时受理率"),
        "the demo prints the county's measures:\n{printed}"
    );
    let registered_during_cut: Vec<String> = printed
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix("registered while ")?;
            let (_, numbers) = rest.split_once(" was cut off: ")?;
            Some(numbers.split_whitespace().map(str::to_owned).collect())
        })
        .unwrap_or_else(|| {
            panic!("the demo names the cases registered during the cut:\n{printed}")
        });
    assert!(
        !registered_during_cut.is_empty(),
        "the cut township's villages registered cases during the cut:\n{printed}"
    );

    let county = start(&dir.join(COUNTY.0));
    let at_county = listed(&county);
    assert!(
        at_county.len() >= 40,
        "the county holds the seeded cases, got {}",
        at_county.len()
    );
    let (_, stats) = fengqiao_tests::http_get(county.address, "/api/stats").expect("stats");
    assert!(
        stats["total"]["directives_crossed_off"].as_u64() >= Some(1),
        "the county crossed off the township's directive: {stats}"
    );

    let mut registered_at_villages = 0;
    for (key, region) in VILLAGES {
        let village = start(&dir.join(key));
        let held = listed(&village);
        let own_prefix = format!("{region}-");
        let registered_here: Vec<&String> = held
            .keys()
            .filter(|number| number.starts_with(&own_prefix))
            .collect();
        assert!(!registered_here.is_empty(), "{key} registered sample cases");
        registered_at_villages += registered_here.len();
        for number in &registered_here {
            assert!(
                at_county.contains_key(*number),
                "{number}, registered at {key}, is at the county"
            );
        }
        for (number, case_region) in &held {
            assert!(
                case_region.starts_with(region),
                "{key} holds {number} located in {case_region}: a sibling's case"
            );
        }
        let cut_here: Vec<&String> = registered_during_cut
            .iter()
            .filter(|number| number.starts_with(&own_prefix))
            .collect();
        if region.starts_with(CUT_TOWNSHIP.1) {
            assert!(
                !cut_here.is_empty(),
                "{key} registered cases while its township was cut off"
            );
        }
        for number in cut_here {
            assert!(held.contains_key(number), "{number} is held at {key}");
        }
        assert!(village.stop().expect("stop a village"), "graceful stop");
    }
    for number in &registered_during_cut {
        assert!(
            VILLAGES
                .iter()
                .filter(|(_, region)| region.starts_with(CUT_TOWNSHIP.1))
                .any(|(_, region)| number.starts_with(&format!("{region}-"))),
            "{number} was registered at a village of the cut township"
        );
        assert!(
            at_county.contains_key(number),
            "{number}, registered during the cut, reached the county after the heal"
        );
    }
    assert!(
        registered_at_villages >= 4 * 3,
        "every village registered cases"
    );

    let township = start(&dir.join(CUT_TOWNSHIP.0));
    for (number, case_region) in listed(&township) {
        assert!(
            case_region.starts_with(CUT_TOWNSHIP.1),
            "the township holds {number} located in {case_region}, outside its region"
        );
    }
    assert!(township.stop().expect("stop the township"), "graceful stop");
    assert!(county.stop().expect("stop the county"), "graceful stop");
}

#[test]
fn demo_without_dir_removes_its_temporary_directory_at_exit() {
    let temp = tempfile::tempdir().expect("tempdir");
    // Another range than the test above, which may run at the same time.
    let base_port = (28_000 + (std::process::id() % 200) * 20).to_string();
    let output = fengqiao_tests::fengqiao_command()
        .env("TMPDIR", temp.path())
        .args([
            "demo",
            "--base-port",
            &base_port,
            "--cases",
            "8",
            "--no-serve",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run fengqiao demo");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(temp.path())
        .expect("read the temporary directory")
        .map(|entry| entry.map(|entry| entry.path()))
        .collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
    assert!(
        printed.contains("temporary directory is removed"),
        "the demo says what became of its directory:\n{printed}"
    );
}
