//! The audit commands end to end: `audit log` and `audit verify` against a running node, clean
//! and after an event was forged into its store offline, and `quarantine` on a node with none.

use fengqiao_tests::{
    NodeProcess, TEST_OPERATOR, Tamperer, case_number, init_node, path_str, register_sample,
    run_cli, run_cli_json, run_cli_ok,
};

const VILLAGE: &str = "430702001003";

/// A node ID no node has: the forged event claims it as its maker.
const SOMEONE_ELSE: &str = "00112233445566778899aabbccddeeff";

#[test]
fn audit_log_and_verify_pass_on_a_healthy_node_and_verify_fails_after_forgery() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("luodishan");
    init_node(&dir, "芦荻山村调解室", "village", VILLAGE);
    let dir_arg = path_str(&dir);
    let node = NodeProcess::start(&dir).expect("start node");

    let number = case_number(&register_sample(&node, VILLAGE, 1));
    run_cli_ok(&["case", "accept", &number, "--dir", dir_arg]);
    run_cli_ok(&[
        "case",
        "note",
        &number,
        "--text",
        "王秀英1 来电询问进度",
        "--dir",
        dir_arg,
    ]);

    let log = run_cli_ok(&["audit", "log", &number, "--dir", dir_arg]);
    assert!(
        log.contains(&format!("case {number}: 3 events, all signatures valid")),
        "{log}"
    );
    for expected in [
        "register",
        "accept",
        "note",
        "valid",
        TEST_OPERATOR,
        "芦荻山村调解室",
    ] {
        assert!(log.contains(expected), "{expected} missing from:\n{log}");
    }
    assert!(!log.contains("王秀英"), "no personal data:\n{log}");
    let positions: Vec<usize> = ["register", "accept", "note"]
        .iter()
        .map(|kind| log.find(kind).expect("each kind is shown"))
        .collect();
    assert!(positions.is_sorted(), "events in order:\n{log}");

    let json_log = run_cli_json(&["audit", "log", &number, "--dir", dir_arg]);
    assert_eq!(json_log["events"].as_array().map(Vec::len), Some(3));

    let verified = run_cli_ok(&["audit", "verify", "--dir", dir_arg]);
    assert_eq!(
        verified.trim(),
        "checked 1 case, 3 events: all signatures valid",
        "{verified}"
    );

    let quarantine = run_cli_ok(&["quarantine", "--dir", dir_arg]);
    assert_eq!(quarantine.trim(), "no quarantined changes", "{quarantine}");
    let listing = run_cli_json(&["quarantine", "--dir", dir_arg]);
    assert_eq!(listing["entries"], serde_json::json!([]));

    // Someone with the stopped node's disk and key writes an event in another node's name.
    assert!(
        node.stop().expect("stop the node"),
        "the node stops cleanly"
    );
    {
        let tamperer = Tamperer::open(&dir).expect("open the stopped node");
        let forged = tamperer
            .sign(
                &number,
                "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0",
                SOMEONE_ELSE,
                fengqiao_case::EventKind::Note {
                    text: "written offline".to_owned(),
                },
                None,
            )
            .expect("sign the forged event");
        tamperer.push(&number, &[forged]).expect("push it");
    }
    let node = NodeProcess::start(&dir).expect("restart node");

    let output = run_cli(&["audit", "verify", "--dir", dir_arg]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains(&number), "{stdout}");
    assert!(stdout.contains("re-attributed or forged"), "{stdout}");
    assert!(
        stdout.contains("checked 1 case, 4 events: 1 failure"),
        "{stdout}"
    );
    assert!(
        stderr.contains("audit verify failed: 1 failure in 1 case checked"),
        "{stderr}"
    );

    let log = run_cli_ok(&["audit", "log", &number, "--dir", dir_arg]);
    assert!(log.contains("4 events, 1 not valid"), "{log}");
    assert!(log.contains("invalid: "), "{log}");

    drop(node);
}
