//! `fengqiao import` of an existing ledger: all or nothing, a report per rejected row, re-runnable.

use fengqiao_tests::{NodeProcess, init_node, path_str, run_cli, run_cli_json, run_cli_ok};

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
