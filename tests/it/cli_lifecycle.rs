//! A case's whole life driven through the CLI against a running node, then a restart.

use fengqiao_tests::{NodeProcess, init_node, run_cli, run_cli_json, run_cli_ok};

const VILLAGE: &str = "430702001001";

#[test]
fn register_accept_mediate_reply_evaluate_close_survives_restart() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("luodishan");
    init_node(&dir, "芦荻山村调解室", "village", VILLAGE);
    let node = NodeProcess::start(&dir).expect("start node");
    let url = node.url();
    let url = url.as_str();

    let registered = run_cli_json(&[
        "case",
        "register",
        "--node",
        url,
        "--channel",
        "visit",
        "--category",
        "wage_arrears",
        "--matter-type",
        "appeal",
        "--summary",
        "反映台秤厂拖欠工资、公积金、保险，要求补发",
        "--petitioner",
        "张国强,210202196605120030,13998765432,中山区桃源街道",
        "--headcount",
        "1",
        "--region",
        VILLAGE,
        "--village",
        "芦荻山村",
        "--respondent",
        "大连市台秤厂",
    ]);
    let number = registered["header"]["number"]
        .as_str()
        .expect("case number in the register answer")
        .to_owned();
    assert!(
        number.starts_with(&format!("{VILLAGE}-")),
        "case number {number} carries the node's region code"
    );
    assert_eq!(registered["state"]["status"], "registered");

    let steps: Vec<Vec<&str>> = vec![
        vec!["case", "accept", &number],
        vec![
            "case",
            "mediate",
            &number,
            "--type",
            "people",
            "--mediator",
            "李调解",
            "--result",
            "agreement",
            "--agreement",
            "厂方分三期补发工资",
        ],
        vec![
            "case",
            "reply",
            &number,
            "--outcome",
            "support",
            "--text",
            "支持诉求，按调解协议补发",
        ],
        vec!["case", "evaluate", &number, "--satisfaction", "satisfied"],
        vec!["case", "close", &number, "--note", "已按协议补发，销号"],
    ];
    for step in &steps {
        let mut args = step.clone();
        args.extend_from_slice(&["--node", url]);
        run_cli_ok(&args);
    }

    // An invalid transition is refused with a reason and a non-zero exit.
    let refused = run_cli(&["case", "accept", &number, "--node", url]);
    assert!(
        !refused.status.success(),
        "accepting a closed case must fail"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("cannot accept") && stderr.to_lowercase().contains("closed"),
        "the refusal says why: {stderr}"
    );

    let before = run_cli_json(&["case", "show", &number, "--node", url]);
    assert_eq!(before["state"]["status"], "closed");
    assert_eq!(before["state"]["resolved"], true);
    assert_eq!(before["state"]["satisfaction"], "satisfied");
    let kinds: Vec<&str> = before["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "register", "accept", "mediate", "reply", "evaluate", "close"
        ]
    );
    for event in before["events"].as_array().expect("events") {
        assert_eq!(event["operator"], fengqiao_tests::TEST_OPERATOR);
    }

    assert!(node.stop().expect("stop node"), "graceful stop exits 0");
    let node = NodeProcess::start(&dir).expect("restart node");
    let url = node.url();
    let after = run_cli_json(&["case", "show", &number, "--node", &url]);
    assert_eq!(after["state"], before["state"]);
    assert_eq!(after["events"], before["events"]);
    assert_eq!(after["header"], before["header"]);

    let listed = run_cli_json(&["case", "list", "--node", &url]);
    let listed = listed.as_array().expect("list is an array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["summary"]["number"], number.as_str());

    let stats = run_cli_json(&["stats", "--node", &url]);
    assert_eq!(stats["total"]["cases"], 1);
    assert_eq!(stats["total"]["satisfaction"]["numerator"], 1);
    assert_eq!(stats["total"]["resolution"]["numerator"], 1);

    // The human table names the case too.
    let table = run_cli_ok(&["case", "list", "--node", &url]);
    assert!(table.contains(&number), "table lists the case:\n{table}");
}

#[test]
fn mutating_without_an_account_is_refused_with_a_clear_message() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("node");
    init_node(&dir, "芦荻山村", "village", VILLAGE);
    let node = NodeProcess::start(&dir).expect("start node");
    let output = fengqiao_tests::fengqiao_command()
        .env_remove("FENGQIAO_USER")
        .args([
            "case",
            "accept",
            "430702001001-2026-000001",
            "--node",
            &node.url(),
        ])
        .output()
        .expect("run fengqiao");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("needs an account") && stderr.contains("--as"),
        "names what is missing: {stderr}"
    );
}

#[test]
fn unreachable_node_is_reported_not_a_panic() {
    // Port 9 (discard) on loopback: nothing of ours listens there.
    let output = run_cli(&["case", "list", "--node", "http://127.0.0.1:9"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
