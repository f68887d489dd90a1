//! `fengqiao stats --by-child` at a county whose township and village run over QUIC: cases
//! registered at the village are counted under the township and, beneath it, the village, and
//! the township's link reads as connected; once the village is revoked, its cases are still
//! counted under its last known name, marked as revoked.

use std::time::Duration;

use fengqiao_tests::{
    COUNTY_REGION as COUNTY, Office, TOWNSHIP_REGION as TOWNSHIP, VILLAGE_REGION as VILLAGE,
    http_get, register_sample, run_cli_json, run_cli_ok, start_chain, wait_for,
};
use serde_json::Value;

/// Longest the test waits for replication to settle; polls end as soon as it has.
const SETTLE: Duration = Duration::from_secs(30);

/// The member of `children` in `region`, or why not.
fn office_in<'a>(children: &'a Value, region: &str) -> Result<&'a Value, String> {
    children
        .as_array()
        .and_then(|offices| {
            offices
                .iter()
                .find(|office| office["region_code"] == region)
        })
        .ok_or_else(|| format!("no office in {region}: {children}"))
}

#[test]
fn stats_by_child_at_the_county_counts_village_cases_under_the_township_and_the_village() {
    let temp = tempfile::tempdir().expect("tempdir");
    let county = Office::init(temp.path(), "county", "武陵区信访局", "county", COUNTY);
    let township = Office::init(temp.path(), "township", "芦荻山乡", "township", TOWNSHIP);
    let village = Office::init(temp.path(), "village", "芦荻山村", "village", VILLAGE);
    let (county_node, township_node, village_node) = start_chain(&county, &township, &village);

    for index in 0..3 {
        register_sample(&village_node, VILLAGE, index);
    }

    let county_url = county_node.url();
    let breakdown = wait_for("the county counts the village's cases", SETTLE, || {
        let breakdown = run_cli_json(&["--node", &county_url, "stats", "--by-child"]);
        let township_stats = office_in(&breakdown["children"], TOWNSHIP)?;
        let village_stats = office_in(&township_stats["children"], VILLAGE)?;
        if breakdown["total"]["cases"] != 3
            || township_stats["measures"]["cases"] != 3
            || village_stats["measures"]["cases"] != 3
        {
            return Err(format!("not all counted yet: {breakdown}"));
        }
        // The village's name comes from the replicated roster.
        if village_stats["name"] != village.name {
            return Err(format!("the village is not named yet: {breakdown}"));
        }
        if township_stats["sync"]["connected"] != true {
            return Err(format!("the township's link is not up: {breakdown}"));
        }
        Ok(breakdown)
    });
    let township_stats = office_in(&breakdown["children"], TOWNSHIP).expect("township");
    assert_eq!(township_stats["node_id"], township.id.as_str());
    assert!(
        township_stats["sync"]["last_contact"].is_string(),
        "{breakdown}"
    );
    // The plain measures agree with the breakdown's total.
    let (status, measures) = http_get(county_node.address, "/api/stats").expect("stats");
    assert_eq!(status, 200, "{measures}");
    assert_eq!(measures["total"], breakdown["total"]);
    // And people get a table with the township and the village beneath it.
    let text = run_cli_ok(&["--node", &county_url, "stats", "--by-child"]);
    assert!(text.contains("芦荻山乡"), "{text}");
    assert!(text.contains("└ 芦荻山村"), "{text}");
    assert!(text.contains("connected since"), "{text}");

    // The township revokes the village: its cases stay, still under its last known name,
    // marked as revoked, at the township and, once the revocation travels up, at the county.
    let printed = run_cli_ok(&["revoke", township.path(), "--node-id", &village.id]);
    assert!(printed.contains("applied it at once"), "{printed}");
    let township_url = township_node.url();
    for (at, url, path) in [
        ("township", &township_url, vec![VILLAGE]),
        ("county", &county_url, vec![TOWNSHIP, VILLAGE]),
    ] {
        wait_for(
            &format!("the {at} names the revoked village"),
            SETTLE,
            || {
                let breakdown = run_cli_json(&["--node", url, "stats", "--by-child"]);
                let mut office = &breakdown;
                for region in &path {
                    office = office_in(&office["children"], region)?;
                }
                if office["revoked"] != true {
                    return Err(format!("not revoked yet: {breakdown}"));
                }
                assert_eq!(office["name"], village.name, "{breakdown}");
                assert_eq!(office["measures"]["cases"], 3, "{breakdown}");
                Ok(())
            },
        );
    }
    let text = run_cli_ok(&["--node", &county_url, "stats", "--by-child"]);
    assert!(text.contains("└ 芦荻山村 (revoked 已撤销)"), "{text}");

    for (name, node) in [
        ("village", village_node),
        ("township", township_node),
        ("county", county_node),
    ] {
        assert!(
            node.stop()
                .unwrap_or_else(|error| panic!("stop the {name}: {error:#}")),
            "graceful stop of the {name}"
        );
    }
}
