//! `fengqiao import` of an existing ledger: checked whole, a report per rejected row, re-runnable
//! row by row (also after a `kill -9` of the importer or the node), its events marked as imported.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fengqiao_tests::{
    NodeProcess, TEST_OPERATOR, cli_token_of_url, fengqiao_command, http_get, init_node, path_str,
    run_cli, run_cli_json, run_cli_ok,
};

const COUNTY: &str = "430702";

const HEADER: &str = "number,registered_at,channel,category,matter_type,headcount,summary,region_code,village,grid,petitioner_name,petitioner_id_number,petitioner_phone,petitioner_address,respondent,litigation_related,accepted_at,replied_at,reply_outcome,reply_text,satisfaction,evaluated_at,closed_at,resolved";

fn ledger_row(number: &str, channel: &str, closed: bool) -> String {
    let history = if closed {
        "2026-03-02T09:00:00+08:00,2026-04-01T10:00:00+08:00,support,已协调补发补偿款,basically_satisfied,2026-04-05T10:00:00+08:00,2026-04-06T10:00:00+08:00,true"
    } else {
        ",,,,,,,"
    };
    format!(
        "{number},2026-03-01T09:30:00+08:00,{channel},land_requisition,appeal,3,\"征地补偿款未足额发放，要求补齐\",430702001003,河洑村,第二网格,刘德华,430702196801010013,13907365555,河洑村五组,河洑镇人民政府,false,{history}"
    )
}

#[test]
fn import_is_all_or_nothing_reports_rejected_rows_and_reruns_safely() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("county");
    init_node(&dir, "武陵区信访超市", "county", COUNTY);
    let node = NodeProcess::start(&dir).expect("start node");
    let url = node.url();

    let bad = temp.path().join("bad.csv");
    let rows = [
        HEADER.to_owned(),
        ledger_row("430702001003-2026-000001", "visit", true),
        ledger_row("430702001003-2026-000002", "carrier_pigeon", false),
        ledger_row("430702001003-2026-000003", "letter", false),
    ];
    std::fs::write(&bad, rows.join("\n")).expect("write ledger");
    let output = run_cli(&["import", path_str(&bad), "--node", &url]);
    assert!(!output.status.success(), "a rejected row fails the import");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains('3'), "the report names line 3: {report}");
    assert!(report.contains("carrier_pigeon"), "and why: {report}");
    let listed = run_cli_json(&["case", "list", "--node", &url]);
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(0),
        "nothing half-imported"
    );

    let good = temp.path().join("good.csv");
    let rows = [
        HEADER.to_owned(),
        ledger_row("430702001003-2026-000001", "visit", true),
        ledger_row("430702001003-2026-000002", "online", false),
        ledger_row("430702001003-2026-000003", "letter", false),
    ];
    std::fs::write(&good, rows.join("\n")).expect("write ledger");
    run_cli_ok(&["import", path_str(&good), "--node", &url]);
    let listed = run_cli_json(&["case", "list", "--node", &url]);
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    let closed = run_cli_json(&["case", "show", "430702001003-2026-000001", "--node", &url]);
    assert_eq!(closed["state"]["status"], "closed");
    assert_eq!(closed["state"]["satisfaction"], "basically_satisfied");
    assert_eq!(
        closed["state"]["timeline"]["registered_at"], "2026-03-01T01:30:00Z",
        "the ledger's own dates are kept"
    );

    // Running the same import again changes nothing.
    run_cli_ok(&["import", path_str(&good), "--node", &url]);
    let listed = run_cli_json(&["case", "list", "--node", &url]);
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
}

/// Issue 13, items 4 and 6: a ledger column Excel turned into numbers is refused naming the
/// column as the file does, with how to keep it as text; `import --help` lists the columns.
#[test]
fn excel_mangled_id_numbers_are_refused_by_column_and_the_help_lists_the_columns() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("county");
    init_node(&dir, "武陵区信访超市", "county", COUNTY);
    let node = NodeProcess::start(&dir).expect("start node");
    let url = node.url();

    let ledger = temp.path().join("excel.csv");
    std::fs::write(
        &ledger,
        "编号,登记时间,信访形式,问题类别,事项类型,主要诉求,区划代码,信访人姓名,身份证号,联系电话\n\
         430702001003-2026-000001,2026-03-01 09:30,来访,拖欠工资,申诉求决,欠薪,430702001003,刘德华,430702196801010013,13907365555\n\
         430702001003-2026-000002,2026-03-01 10:30,来访,拖欠工资,申诉求决,欠薪,430702001003,张国强,2.10202E+17,1.39E+10\n",
    )
    .expect("write ledger");
    let output = run_cli(&["import", path_str(&ledger), "--dry-run", "--node", &url]);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "the dry run refuses: {report}");
    assert!(report.contains("1 of 2 row(s)"), "{report}");
    assert!(report.contains("身份证号: `2.10202E+17`"), "{report}");
    assert!(
        report.contains("Excel turned the column into a number"),
        "{report}"
    );
    assert!(report.contains("文本"), "{report}");

    let help = run_cli_ok(&["import", "--help"]);
    assert!(!help.contains("[`CSV_COLUMNS`]"), "{help}");
    for listed in ["petitioner_id_number", "身份证号", "答复内容", "证件类型"] {
        assert!(help.contains(listed), "{listed}: {help}");
    }
}

/// A ledger of `rows` cases without case numbers, as offices keep them: every third one
/// accepted; the last two rows are identical (two visits the ledger recorded alike), and must
/// stay two cases.
fn unnumbered_ledger(rows: usize) -> String {
    let mut text =
        String::from("信访形式,问题类别,事项类型,主要诉求,区划代码,信访人姓名,登记时间,受理时间\n");
    for index in 1..=rows {
        let content = if index == rows && rows > 1 {
            index - 1
        } else {
            index
        };
        let accepted = if content % 3 == 0 {
            "2026-03-02 09:00"
        } else {
            ""
        };
        text.push_str(&format!(
            "来访,拖欠工资,申诉求决,第{content}件：反映拖欠工资,430702001003,张国强,2026-03-01 09:00,{accepted}\n"
        ));
    }
    text
}

fn case_count(node: &NodeProcess) -> u64 {
    let (status, info) = http_get(node.address, "/api/health").expect("health");
    assert_eq!(status, 200, "{info}");
    info["case_count"].as_u64().expect("case_count")
}

/// Rows per request of the imports [`import_killed_part_way`] interrupts.
const IMPORT_BATCH: u64 = 20;

/// Start `fengqiao import` and `kill -9` it once the node holds more than `more_than` cases
/// and fewer than `all`; returns the count it was killed at. With `kill_the_node`, the node is
/// killed instead, in the middle of the import's batches.
fn import_killed_part_way(
    node: NodeProcess,
    ledger: &str,
    more_than: u64,
    all: u64,
    kill_the_node: bool,
) -> u64 {
    let url = node.url();
    let mut import = fengqiao_command();
    if let Some(token) = cli_token_of_url(&url) {
        import.env("FENGQIAO_TOKEN", token);
    }
    let mut import = import
        .args([
            "import",
            ledger,
            "--batch",
            &IMPORT_BATCH.to_string(),
            "--node",
            &url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fengqiao import");
    // The node's count includes a batch committed but not yet flushed, which a `kill -9` of the
    // node may lose (it was never acknowledged). The importer sends a batch only once the one
    // before was acknowledged, so a count a whole batch past `more_than` means at least one
    // batch past it is durable: the node is killed only then.
    let kill_past = more_than + if kill_the_node { IMPORT_BATCH } else { 0 };
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_at = loop {
        let count = case_count(&node);
        if count > kill_past {
            assert!(
                count < all,
                "the import finished ({count} cases) before it could be killed part-way"
            );
            if kill_the_node {
                node.kill_hard();
            } else {
                import.kill().expect("kill -9 fengqiao import");
            }
            break count;
        }
        if let Ok(Some(status)) = import.try_wait() {
            panic!("fengqiao import exited ({status}) before it wrote past {more_than} cases");
        }
        assert!(
            Instant::now() < deadline,
            "the import wrote nothing in 120 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = import.wait();
    killed_at
}

/// The import's per-row reports as `--json` prints them.
fn import_reports(ledger: &str, url: &str) -> Vec<serde_json::Value> {
    let reports = run_cli_json(&["import", ledger, "--batch", "200", "--node", url]);
    reports.as_array().expect("a report per row").clone()
}

fn outcomes(reports: &[serde_json::Value], outcome: &str) -> usize {
    reports
        .iter()
        .filter(|report| report["outcome"] == outcome)
        .count()
}

/// Issue 13 item 6: a 2,000-row ledger without case numbers, its import killed with `kill -9`
/// part-way, then the node killed part-way through the next run, is completed by running it
/// again: exactly 2,000 cases, every row one case of its own, and a further run adds nothing.
#[test]
fn an_import_killed_part_way_is_finished_by_running_it_again_and_registers_nothing_twice() {
    const ROWS: u64 = 2_000;
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("county");
    init_node(&dir, "武陵区信访超市", "county", COUNTY);
    let ledger_path = temp.path().join("ledger.csv");
    std::fs::write(&ledger_path, unnumbered_ledger(ROWS as usize)).expect("write ledger");
    let ledger = path_str(&ledger_path);

    let node = NodeProcess::start(&dir).expect("start node");
    let after_killed_import = import_killed_part_way(node, ledger, 0, ROWS, false);
    let node = NodeProcess::start(&dir).expect("the node is still there; reopen it");
    assert!(case_count(&node) >= after_killed_import);

    let before_node_killed = case_count(&node);
    import_killed_part_way(node, ledger, before_node_killed, ROWS, true);
    let node = NodeProcess::start(&dir).expect("restart after kill -9");
    let url_after = node.url();
    let partial = case_count(&node);
    assert!(
        partial > before_node_killed && partial < ROWS,
        "{before_node_killed} then {partial}"
    );

    let finishing = import_reports(ledger, &url_after);
    assert_eq!(finishing.len(), ROWS as usize);
    assert_eq!(outcomes(&finishing, "rejected"), 0);
    assert_eq!(
        outcomes(&finishing, "already_imported") as u64,
        partial,
        "every case written before the kills is known again"
    );
    assert_eq!(
        outcomes(&finishing, "imported") as u64,
        ROWS - partial,
        "and only the rest is written"
    );
    assert_eq!(case_count(&node), ROWS);

    // Run once more: nothing is added, and each row names its own case.
    let again = import_reports(ledger, &url_after);
    assert_eq!(outcomes(&again, "already_imported") as u64, ROWS);
    assert_eq!(case_count(&node), ROWS);
    let numbers: BTreeSet<&str> = again
        .iter()
        .filter_map(|report| report["number"].as_str())
        .collect();
    assert_eq!(numbers.len() as u64, ROWS, "no two rows share a case");
    let listed = run_cli_json(&["case", "list", "--node", &url_after]);
    let stored: BTreeSet<&str> = listed
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|item| item["summary"]["number"].as_str())
        .collect();
    assert_eq!(
        stored, numbers,
        "the cases stored are exactly the rows' cases"
    );
}

/// Issue 13 items 6 and 2: running a finished import again adds nothing (and says so, row by
/// row); every event it made carries the import's mark, shown in the case JSON, `case show` and
/// `audit log`; the measures with and without imported history differ by the imported cases.
#[test]
fn a_finished_import_run_again_adds_nothing_and_its_events_are_marked_as_imported() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("county");
    init_node(&dir, "武陵区信访超市", "county", COUNTY);
    let node = NodeProcess::start(&dir).expect("start node");
    let url = node.url();
    let ledger_path = temp.path().join("ledger.csv");
    std::fs::write(&ledger_path, unnumbered_ledger(4)).expect("write ledger");
    let ledger = path_str(&ledger_path);

    let first = run_cli_ok(&["import", ledger, "--node", &url]);
    assert!(first.contains("imported 4, already imported 0"), "{first}");
    let import_id = first
        .rsplit("import ")
        .next()
        .and_then(|tail| tail.split(')').next())
        .expect("the summary names the import")
        .to_owned();
    let second = run_cli_ok(&["import", ledger, "--node", &url]);
    assert!(
        second.contains("imported 0, already imported 4 (by an earlier run)"),
        "{second}"
    );
    assert!(
        second.contains("line 2: already imported, case 430702-2026-"),
        "{second}"
    );
    let listed = run_cli_json(&["case", "list", "--node", &url]);
    let listed = listed.as_array().expect("cases");
    assert_eq!(listed.len(), 4, "the two identical rows are two cases");
    assert!(
        listed
            .iter()
            .all(|item| item["summary"]["imported"] == true)
    );

    // The rows accepted in the ledger have two events, both marked by the first run.
    let accepted = listed
        .iter()
        .filter_map(|item| item["summary"]["number"].as_str())
        .find(|number| {
            run_cli_json(&["case", "show", number, "--node", &url])["events"]
                .as_array()
                .is_some_and(|events| events.len() == 2)
        })
        .expect("the accepted row's case")
        .to_owned();
    let view = run_cli_json(&["case", "show", &accepted, "--node", &url]);
    for event in view["events"].as_array().expect("events") {
        assert_eq!(
            event["imported"]["import_id"],
            import_id.as_str(),
            "{event}"
        );
        assert!(
            event["imported"]["row_key"]
                .as_str()
                .is_some_and(|key| key.starts_with("sha256:")),
            "{event}"
        );
        assert_eq!(event["operator"], TEST_OPERATOR);
    }
    assert_eq!(view["state"]["imported"], true);
    let shown = run_cli_ok(&["case", "show", &accepted, "--node", &url]);
    assert!(shown.contains("accept (imported 导入)"), "{shown}");
    let audit = run_cli_ok(&["audit", "log", &accepted, "--node", &url]);
    assert!(
        audit.contains(&format!("imported 导入 (import {import_id})"))
            && audit.contains(TEST_OPERATOR),
        "{audit}"
    );
    let audit_json = run_cli_json(&["audit", "log", &accepted, "--node", &url]);
    assert_eq!(
        audit_json["events"][0]["imported"]["import_id"],
        import_id.as_str()
    );

    // One case registered here and now, beside the four imported ones.
    run_cli_ok(&[
        "case",
        "register",
        "--node",
        &url,
        "--channel",
        "visit",
        "--category",
        "wage_arrears",
        "--matter-type",
        "appeal",
        "--summary",
        "反映拖欠工资",
        "--petitioner",
        "张国强",
        "--headcount",
        "1",
        "--region",
        "430702001003",
    ]);
    let all = run_cli_json(&["stats", "--node", &url]);
    let live = run_cli_json(&["stats", "--without-imported", "--node", &url]);
    assert_eq!(all["total"]["cases"], 5);
    assert_eq!(live["total"]["cases"], 1);
    // Each answer says which it counted.
    assert_eq!(all["imported"], "include");
    assert_eq!(live["imported"], "exclude");
    let live_text = run_cli_ok(&["stats", "--without-imported", "--node", &url]);
    assert!(live_text.contains("不含导入台账"), "{live_text}");
    // The imported cases were decided (2, in time) or ran out of time to be (2) long ago; the
    // case registered now is still within its 15 days.
    assert_eq!(
        all["total"]["timely_acceptance"],
        serde_json::json!({"numerator": 2, "denominator": 4})
    );
    assert_eq!(live["total"]["timely_acceptance"]["denominator"], 0);
    let (status, excluded) = http_get(node.address, "/api/stats?imported=exclude").expect("stats");
    assert_eq!(status, 200);
    assert_eq!(excluded["total"], live["total"]);
}

/// Issue 13 item 6: a history value the node refuses is named by its column as the ledger
/// spells it, not by the event the importer made of it.
#[test]
fn a_refused_history_value_names_its_column_as_the_ledger_spells_it() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("county");
    init_node(&dir, "武陵区信访超市", "county", COUNTY);
    let node = NodeProcess::start(&dir).expect("start node");
    let url = node.url();
    let ledger = temp.path().join("history.csv");
    let too_long = "补".repeat(10_001);
    std::fs::write(
        &ledger,
        format!(
            "信访形式,问题类别,事项类型,主要诉求,区划代码,信访人姓名,登记时间,受理时间,答复时间,答复结果,答复内容\n\
             来访,拖欠工资,申诉求决,欠薪,430702001003,张国强,2026-03-01 09:00,2026-03-02 09:00,2026-03-05 09:00,支持,{too_long}\n\
             来访,拖欠工资,申诉求决,工伤,430702001003,张国强,2026-03-01 09:00,2026-03-09 09:00,2026-03-05 09:00,支持,已答复\n"
        ),
    )
    .expect("write ledger");
    let output = run_cli(&["import", path_str(&ledger), "--node", &url]);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{report}");
    assert!(
        report.contains("答复内容: is 10001 characters long; at most 10000"),
        "{report}"
    );
    assert!(report.contains("答复时间: reply 2026-03-05"), "{report}");
    assert!(
        !report.contains("history"),
        "no internal event index: {report}"
    );
    assert_eq!(case_count(&node), 0);
}
