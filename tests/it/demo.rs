//! The README's main command: `fengqiao demo` seeds a node that then serves what it seeded.

use fengqiao_tests::{NodeProcess, http_get, path_str, run_cli_ok};

#[test]
fn demo_seeds_a_node_that_serves_the_seeded_cases() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("demo");
    let printed = run_cli_ok(&[
        "demo",
        "--dir",
        path_str(&dir),
        "--listen",
        "127.0.0.1:0",
        "--cases",
        "40",
        "--no-serve",
    ]);
    assert!(
        printed.contains("及时受理率"),
        "the demo prints the measures:\n{printed}"
    );

    let node = NodeProcess::start(&dir).expect("start the demo node");
    let (status, info) = http_get(node.address, "/api/health").expect("health");
    assert_eq!(status, 200);
    let cases = info["case_count"].as_u64().expect("case_count");
    assert!(
        cases >= 40,
        "40 sample cases plus the scripted ones, got {cases}"
    );

    let (_, stats) = http_get(node.address, "/api/stats").expect("stats");
    assert_eq!(stats["total"]["cases"].as_u64(), Some(cases));
    assert!(
        stats["total"]["directives_crossed_off"].as_u64() >= Some(1),
        "the scripted directive was crossed off: {stats}"
    );
    let (_, listed) = http_get(node.address, "/api/cases?status=closed&limit=5").expect("list");
    assert!(
        !listed.as_array().expect("list").is_empty(),
        "some sample cases ran their whole course"
    );
}
