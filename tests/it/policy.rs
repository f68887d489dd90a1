//! The federation's policy between real nodes over QUIC (issue 12, item 5): the county issues a
//! policy with `fengqiao policy issue`, it reaches a village through its township, the village's
//! own `[limits]` are ignored, and a case the village registers derives alike at the county.

use std::time::Duration;

use fengqiao_tests::{
    NodeProcess, Office, VILLAGE_REGION as VILLAGE, case_number, http_post, path_str,
    register_sample, run_cli, run_cli_json, run_cli_ok, start_chain, wait_for,
};

/// Longest a test waits for replication to settle; polls end as soon as it has.
const SETTLE: Duration = Duration::from_secs(60);

/// The version a node registers new cases under and its max_extension_days.
fn current_policy(node: &NodeProcess) -> (u64, u64) {
    let view = run_cli_json(&["policy", "show", "--node", &node.url()]);
    let current = view["current"].as_u64().expect("a current version");
    let max_extension = view["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|version| version["version"].as_u64() == Some(current))
        .and_then(|version| version["limits"]["max_extension_days"].as_u64())
        .expect("the current version's limits");
    (current, max_extension)
}

fn extend(node: &NodeProcess, number: &str, days: u32) -> (u16, serde_json::Value) {
    http_post(
        node.address,
        &format!("/api/cases/{number}/events"),
        &serde_json::json!({"kind": "extend", "payload": {
            "days": days, "approver": "王主任", "reason": "需补充调查"}}),
    )
    .expect("post an extension")
}

#[test]
fn the_county_policy_reaches_a_village_and_both_derive_its_cases_alike() {
    let temp = tempfile::tempdir().expect("temp dir");
    let county = Office::county(temp.path());
    let township = Office::township(temp.path());
    let village = Office::village(temp.path(), "village", VILLAGE);
    // The village's own settings, which used to decide its cases: ignored below the root.
    let mut village_config = fengqiao::config::load(&village.dir).expect("village config");
    village_config.limits.max_extension_days = 90;
    fengqiao::config::save(&village.dir, &village_config).expect("village config saved");

    let (county_node, township_node, village_node) = start_chain(&county, &township, &village);
    assert_eq!(
        current_policy(&village_node),
        (0, 30),
        "built in until issued"
    );

    let policy_file = temp.path().join("policy.toml");
    std::fs::write(
        &policy_file,
        "note = \"延长期限试行\"\n[limits]\nmax_extension_days = 45\n\
         holidays = [2027-01-01]\n",
    )
    .expect("write the policy file");
    let issued = run_cli_ok(&[
        "policy",
        "issue",
        "--file",
        path_str(&policy_file),
        "--dir",
        county.path(),
    ]);
    assert!(issued.contains("policy version 1 issued"), "{issued}");

    for node in [&township_node, &village_node] {
        wait_for(
            "the county's policy reaches the office",
            SETTLE,
            || match current_policy(node) {
                (1, 45) => Ok(()),
                other => Err(format!("{} holds {other:?}", node.url())),
            },
        );
    }
    let shown = run_cli_ok(&["policy", "show", "--node", &village_node.url()]);
    assert!(shown.contains("current policy version: 1"), "{shown}");
    assert!(shown.contains(&county.id), "issued by the county: {shown}");

    // Only the root issues.
    let refused = fengqiao_tests::run_cli(&[
        "policy",
        "issue",
        "--file",
        path_str(&policy_file),
        "--dir",
        township.path(),
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("root"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A case the village registers records v1 and is handled under it: an extension of 40
    // days passes (the regulation's 30 would refuse it), 60 is refused although the village's
    // own config allows 90.
    let view = register_sample(&village_node, VILLAGE, 1);
    let number = case_number(&view);
    assert_eq!(view["events"][0]["payload"]["policy_version"], 1, "{view}");
    let (status, accepted) = http_post(
        village_node.address,
        &format!("/api/cases/{number}/events"),
        &serde_json::json!({"kind": "accept", "payload": {}}),
    )
    .expect("accept");
    assert_eq!(status, 200, "{accepted}");
    let (status, refused) = extend(&village_node, &number, 60);
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|error| error.contains("1 to 45"))
    );
    let (status, extended) = extend(&village_node, &number, 40);
    assert_eq!(status, 200, "{extended}");

    let village_state = extended["state"].clone();
    assert_eq!(village_state["timeline"]["extended_days"], 40);
    wait_for(
        "the county derives the case as the village does",
        SETTLE,
        || {
            // Until the case reaches the county, `case show` there fails ("no case"): a reason
            // to wait, not a failure.
            let output = run_cli(&[
                "--json",
                "case",
                "show",
                &number,
                "--node",
                &county_node.url(),
            ]);
            if !output.status.success() {
                return Err(format!(
                    "county: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            let shown: serde_json::Value = serde_json::from_slice(&output.stdout)
                .map_err(|error| format!("county answered no JSON: {error}"))?;
            if shown["state"] == village_state {
                Ok(())
            } else {
                Err(format!("county: {}", shown["state"]))
            }
        },
    );
    let quarantined = run_cli_ok(&["quarantine", "--node", &county_node.url()]);
    assert!(!quarantined.contains(&number), "{quarantined}");
}
