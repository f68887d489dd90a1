//! The 台账 to Excel and back: a ledger imported at one office, exported from its console as an
//! `.xlsx` (identifiers whole, for an admin) and imported with `fengqiao import` at another,
//! gives the same cases with the same history; a masked export masks. `fengqiao export` (the
//! API's `GET /api/export/ledger`, which the console's download shares) does the same in Excel
//! and CSV, and the access log records each export.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use calamine::{Data, Reader, Xlsx};
use fengqiao_tests::{
    NodeProcess, TEST_LOGIN, TEST_PASSWORD, init_node, path_str, run_cli_json, run_cli_ok,
};

const COUNTY: &str = "430702";

const LEDGER: &str = "number,registered_at,channel,category,matter_type,headcount,summary,region_code,village,grid,petitioner_name,petitioner_id_number,petitioner_phone,petitioner_address,respondent,litigation_related,leader,accepted_at,replied_at,reply_outcome,reply_text,satisfaction,evaluated_at,closed_at,resolved,close_note
430702001003-2026-000001,2026-03-01T09:30:00+08:00,visit,land_requisition,appeal,3,\"征地补偿款未足额发放，要求补齐\",430702001003,河洑村,第二网格,刘德华;张学友,430702196801010013;430702196801010013,13907365555;13907365556,河洑村五组,河洑镇人民政府,false,王书记,2026-03-02T09:00:00+08:00,2026-04-01T10:00:00+08:00,support,已协调补发补偿款,basically_satisfied,2026-04-05T10:00:00+08:00,2026-04-06T10:00:00+08:00,true,已化解
430702001003-2026-000002,2026-03-03 10:00,online,wage_arrears,appeal,1,拖欠工资两个月,430702001003,河洑村,,黎明,430702196801010013,13907365557,河洑村一组,某建筑公司,true,,2026-03-04 08:00,,,,,,,,
";

/// Sign in at the console as the tests' account; the session cookie (`name=value`).
fn console_session(address: SocketAddr) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent
        .post(format!("http://{address}/login"))
        .send_form([("login", TEST_LOGIN), ("password", TEST_PASSWORD)])
        .expect("sign in");
    assert_eq!(response.status().as_u16(), 303, "signed in");
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|cookie| cookie.starts_with("fengqiao_session="))
        .and_then(|cookie| cookie.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

fn download(address: SocketAddr, cookie: &str, path: &str) -> Vec<u8> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent
        .get(format!("http://{address}{path}"))
        .header("cookie", cookie)
        .call()
        .expect("export");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .expect("workbook bytes")
}

/// The first sheet's rows as text (the console's browser test reads its export with it too).
pub(crate) fn sheet(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut workbook: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("an xlsx workbook");
    let range = workbook
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    range
        .rows()
        .map(|row| {
            row.iter()
                .map(|cell| match cell {
                    Data::String(text) => text.clone(),
                    Data::Empty => String::new(),
                    other => panic!("every cell is text, not {other:?}"),
                })
                .collect()
        })
        .collect()
}

/// What must survive the round trip, per case: header fields and each event's kind, time and
/// payload.
fn cases_of(url: &str) -> BTreeMap<String, serde_json::Value> {
    let listed = run_cli_json(&["case", "list", "--node", url]);
    listed
        .as_array()
        .expect("case list")
        .iter()
        .map(|item| {
            let number = item["summary"]["number"].as_str().expect("number").to_owned();
            let case = run_cli_json(&["case", "show", &number, "--node", url]);
            let mut header = case["header"].clone();
            header.as_object_mut().map(|fields| fields.remove("number"));
            let events: Vec<serde_json::Value> = case["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|event| serde_json::json!([event["kind"], event["at"]]))
                .collect();
            (
                number,
                serde_json::json!({"header": header, "events": events, "status": case["state"]["status"]}),
            )
        })
        .collect()
}

/// An office in `dir` running, with [`LEDGER`] imported: the node and its cases.
fn office_with_the_ledger(
    dir: &std::path::Path,
) -> (NodeProcess, BTreeMap<String, serde_json::Value>) {
    init_node(dir, "武陵区信访超市", "county", COUNTY);
    let node = NodeProcess::start(dir).expect("start the first office");
    let ledger = dir.with_extension("csv");
    std::fs::write(&ledger, LEDGER).expect("write ledger");
    run_cli_ok(&["import", path_str(&ledger), "--node", &node.url()]);
    let original = cases_of(&node.url());
    assert_eq!(original.len(), 2);
    (node, original)
}

#[test]
fn a_ledger_exported_to_excel_imports_elsewhere_as_the_same_cases() {
    let temp = tempfile::tempdir().expect("tempdir");
    let first_dir = temp.path().join("first");
    let (first, original) = office_with_the_ledger(&first_dir);

    let cookie = console_session(first.address);
    let full = download(first.address, &cookie, "/export/ledger.xlsx?full=1");
    let rows = sheet(&full);
    assert_eq!(rows.len(), 3, "a header and two cases: {rows:?}");
    assert_eq!(rows[0][0], "编号", "Chinese headers: {:?}", rows[0]);
    assert!(rows[0].contains(&"身份证号".to_owned()), "{:?}", rows[0]);
    let joined: Vec<String> = rows.iter().map(|row| row.join("|")).collect();
    assert!(
        joined
            .iter()
            .any(|row| row.contains("430702196801010013；430702196801010013")),
        "ID numbers whole and as text: {joined:?}"
    );

    let masked = sheet(&download(first.address, &cookie, "/export/ledger.xlsx"));
    let masked: Vec<String> = masked.iter().map(|row| row.join("|")).collect();
    assert!(
        masked.iter().any(|row| row.contains("430702********0013")),
        "{masked:?}"
    );
    assert!(
        !masked.iter().any(|row| row.contains("430702196801010013")),
        "a masked export shows no ID number whole: {masked:?}"
    );
    let filtered = sheet(&download(
        first.address,
        &cookie,
        "/export/ledger.xlsx?category=wage_arrears",
    ));
    assert_eq!(filtered.len(), 2, "the filter is kept: {filtered:?}");

    // Imported at another office, the workbook gives the same cases and history.
    let workbook = temp.path().join("ledger.xlsx");
    std::fs::write(&workbook, &full).expect("write workbook");
    let second_dir = temp.path().join("second");
    init_node(&second_dir, "武陵区信访超市（备份）", "county", COUNTY);
    let second = NodeProcess::start(&second_dir).expect("start the second office");
    run_cli_ok(&["import", path_str(&workbook), "--node", &second.url()]);
    assert_eq!(cases_of(&second.url()), original);
}

/// The access log of a stopped node, record by record.
fn access_log(dir: &std::path::Path) -> Vec<serde_json::Value> {
    fengqiao_tests::open_stopped_node(dir)
        .store()
        .access_log_since(0, 10_000)
        .expect("the access log")
        .into_iter()
        .map(|(_, record)| serde_json::from_slice(&record).expect("a JSON record"))
        .collect()
}

#[test]
fn fengqiao_export_in_excel_and_csv_imports_elsewhere_as_the_same_cases() {
    let temp = tempfile::tempdir().expect("tempdir");
    let first_dir = temp.path().join("first");
    let (first, original) = office_with_the_ledger(&first_dir);

    let workbook = temp.path().join("export.xlsx");
    let csv = temp.path().join("export.csv");
    let url = first.url();
    let export = |file: &std::path::Path, options: &[&str]| {
        let mut args = vec!["export", "--to", path_str(file), "--node", url.as_str()];
        args.extend(options);
        run_cli_ok(&args);
    };
    export(&workbook, &["--full"]);
    export(&csv, &["--format", "csv", "--full"]);
    let rows = sheet(&std::fs::read(&workbook).expect("the workbook"));
    assert_eq!(rows.len(), 3, "a header and two cases: {rows:?}");
    assert_eq!(rows[0][0], "编号", "Chinese headers: {:?}", rows[0]);
    let csv_text = std::fs::read_to_string(&csv).expect("the CSV");
    let csv_rows: Vec<&str> = csv_text.lines().collect();
    assert_eq!(csv_rows.len(), 3, "{csv_text}");
    assert_eq!(
        csv_rows[0].trim_start_matches('\u{feff}'),
        rows[0].join(","),
        "the CSV is headed as the workbook"
    );
    assert!(
        csv_text.contains("430702196801010013；430702196801010013"),
        "{csv_text}"
    );

    // A filter goes through; a masked export masks; a filter matching nothing gives the headers
    // alone (to stdout without --to); a format the node does not write is refused.
    let filtered = temp.path().join("wages.xlsx");
    export(&filtered, &["--category", "拖欠工资"]);
    let filtered = sheet(&std::fs::read(&filtered).expect("the filtered workbook"));
    assert_eq!(filtered.len(), 2, "{filtered:?}");
    assert!(
        !filtered
            .iter()
            .flatten()
            .any(|cell| cell.contains("430702196801010013")),
        "masked unless --full: {filtered:?}"
    );
    let nothing = fengqiao_tests::run_cli(&[
        "export",
        "--registered-from",
        "2026-03-01",
        "--holder",
        "not-a-node",
        "--format",
        "csv",
        "--node",
        &first.url(),
    ]);
    assert!(nothing.status.success(), "{nothing:?}");
    let headers_alone = String::from_utf8_lossy(&nothing.stdout).into_owned();
    assert_eq!(headers_alone.lines().count(), 1, "{headers_alone}");
    assert!(headers_alone.contains("编号"), "{headers_alone}");
    let (status, error) = fengqiao_tests::http_get(first.address, "/api/export/ledger?format=pdf")
        .expect("ask for a pdf");
    assert_eq!(status, 400, "{error}");

    // Each export is in the access log, as the console's are.
    first.stop().expect("stop the first office");
    let exports: Vec<serde_json::Value> = access_log(&first_dir)
        .into_iter()
        .filter(|record| record["action"] == "export_ledger")
        .collect();
    let seen: Vec<(String, u64, bool)> = exports
        .iter()
        .map(|record| {
            (
                record["format"].as_str().unwrap_or_default().to_owned(),
                record["cases"].as_u64().unwrap_or_default(),
                record["full_identifiers"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen[..3],
        [
            ("xlsx".to_owned(), 2, true),
            ("csv".to_owned(), 2, true),
            ("xlsx".to_owned(), 1, false)
        ],
        "{exports:?}"
    );
    assert!(
        exports.iter().all(|record| record["operator"]
            .as_str()
            .is_some_and(|who| !who.is_empty())),
        "{exports:?}"
    );

    // Both files import at fresh offices as the same cases.
    for (name, file) in [("excel", &workbook), ("csv", &csv)] {
        let dir = temp.path().join(name);
        init_node(&dir, "武陵区信访超市（备份）", "county", COUNTY);
        let node = NodeProcess::start(&dir).expect("start a fresh office");
        run_cli_ok(&["import", path_str(file), "--node", &node.url()]);
        assert_eq!(cases_of(&node.url()), original, "{name}");
    }
}

/// Every sheet of a workbook by name, each cell as text (numbers as Excel holds them).
fn sheets(path: &std::path::Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut workbook: Xlsx<_> = calamine::open_workbook(path).expect("an xlsx workbook");
    workbook
        .worksheets()
        .into_iter()
        .map(|(name, range)| {
            let rows = range
                .rows()
                .map(|row| {
                    row.iter()
                        .map(|cell| match cell {
                            Data::String(text) => text.clone(),
                            Data::Empty => String::new(),
                            Data::Float(number) => number.to_string(),
                            other => panic!("text or a number, not {other:?}"),
                        })
                        .collect()
                })
                .collect();
            (name, rows)
        })
        .collect()
}

#[test]
fn the_template_has_the_import_headers_explains_each_column_and_imports_as_nothing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let template = temp.path().join("ledger.xlsx");
    // Needs no node.
    let printed = run_cli_ok(&["import", "--template", path_str(&template)]);
    assert!(printed.contains("填写说明"), "{printed}");
    let workbook = sheets(&template);
    let names: Vec<&String> = workbook.keys().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let ledger = &workbook["台账"];
    assert_eq!(ledger.len(), 1, "headers only: {ledger:?}");
    let expected: Vec<String> = fengqiao::import::ledger::CSV_COLUMNS
        .iter()
        .map(|column| fengqiao::import::ledger::chinese_header(column).to_owned())
        .collect();
    assert_eq!(ledger[0], expected, "the headers import reads");

    let explanation = &workbook["填写说明"];
    assert_eq!(explanation.len(), expected.len() + 1, "{explanation:?}");
    for (row, header) in explanation[1..].iter().zip(&expected) {
        assert_eq!(&row[0], header, "one row per column, in order");
        assert!(!row[3].is_empty(), "{header}: allowed values: {row:?}");
    }
    let row_of = |column: &str| {
        explanation
            .iter()
            .find(|row| row[1] == column)
            .unwrap_or_else(|| panic!("{column} explained"))
    };
    assert_eq!(row_of("channel")[2], "是", "channel is required");
    assert_eq!(row_of("respondent")[2], "否");
    assert!(
        row_of("category")[3].contains("拖欠工资"),
        "{:?}",
        row_of("category")
    );
    assert!(
        row_of("channel")[3].contains("来访"),
        "{:?}",
        row_of("channel")
    );
    assert!(
        row_of("summary")[4].contains("反映问题"),
        "other headers listed"
    );

    // The empty template imports as no cases, without an error.
    let dir = temp.path().join("node");
    init_node(&dir, "武陵区信访超市", "county", COUNTY);
    let node = NodeProcess::start(&dir).expect("start");
    run_cli_ok(&["import", path_str(&template), "--node", &node.url()]);
    let listed = run_cli_json(&["case", "list", "--node", &node.url()]);
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

/// November's ledger at a village: two cases never accepted (overdue since), and at its sibling
/// one accepted in time, and one from October (outside the month, overdue too).
const VILLAGE_NOVEMBER: &str = "registered_at,channel,category,matter_type,headcount,summary,region_code,petitioner_name,accepted_at
2026-11-03 09:00,visit,wage_arrears,appeal,1,拖欠工资三个月,430702001001,王秀英,
2026-11-05 10:00,phone,neighbourhood,appeal,2,邻里宅基地纠纷,430702001001,李四,
";
const SIBLING_NOVEMBER: &str = "registered_at,channel,category,matter_type,headcount,summary,region_code,petitioner_name,accepted_at
2026-11-10 09:00,visit,family,appeal,1,婚姻家庭纠纷,430702001002,赵六,2026-11-11 09:00
2026-10-15 09:00,letter,labour,appeal,1,劳动合同纠纷,430702001002,钱七,
";

#[test]
fn the_monthly_report_holds_the_stats_by_child_the_overdue_cases_and_the_open_directives() {
    use fengqiao_tests::{
        SIBLING_VILLAGE_REGION, TOWNSHIP_REGION, VILLAGE_REGION, quic_address, wait_for,
    };
    let temp = tempfile::tempdir().expect("tempdir");
    let township = fengqiao_tests::Office::init(
        temp.path(),
        "township",
        "芦荻山乡",
        "township",
        TOWNSHIP_REGION,
    );
    let village = fengqiao_tests::Office::init(
        temp.path(),
        "village",
        "芦荻山村",
        "village",
        VILLAGE_REGION,
    );
    let sibling = fengqiao_tests::Office::init(
        temp.path(),
        "sibling",
        "花山村",
        "village",
        SIBLING_VILLAGE_REGION,
    );
    township.admit(&village);
    township.admit(&sibling);
    let township_node = township.start();
    village.join(&township, quic_address(&township_node));
    sibling.join(&township, quic_address(&township_node));
    let village_node = village.start();
    let sibling_node = sibling.start();
    for (node, ledger, name) in [
        (&village_node, VILLAGE_NOVEMBER, "village.csv"),
        (&sibling_node, SIBLING_NOVEMBER, "sibling.csv"),
    ] {
        let path = temp.path().join(name);
        std::fs::write(&path, ledger).expect("write ledger");
        run_cli_ok(&["import", path_str(&path), "--node", &node.url()]);
    }
    let url = township_node.url();
    let november = [
        "stats",
        "--by-child",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
    ];
    wait_for(
        "the township holds every case",
        Duration::from_secs(30),
        || {
            let everything = run_cli_json(&["--node", &url, "stats", "--by-child"]);
            match everything["total"]["cases"].as_u64() {
                Some(4) => Ok(()),
                _ => Err(everything.to_string()),
            }
        },
    );
    // The township directs the village on one of its overdue cases.
    let village_cases = run_cli_json(&["--node", &url, "case", "list", "--region", VILLAGE_REGION]);
    let directed = village_cases[0]["summary"]["number"]
        .as_str()
        .expect("a number")
        .to_owned();
    run_cli_ok(&[
        "--node",
        &url,
        "directive",
        "issue",
        &directed,
        "--target",
        &village.id,
        "--requirement",
        "限期受理并报告",
        "--due",
        "2027-01-31",
        "--id",
        "D-report-1",
    ]);

    let report = temp.path().join("report.xlsx");
    let printed = run_cli_ok(&[
        "--node",
        &url,
        "report",
        "--month",
        "2026-11",
        "--to",
        path_str(&report),
    ]);
    assert!(printed.contains("2026-11"), "{printed}");
    let mut args = vec!["--node", url.as_str()];
    args.extend(november);
    let stats = run_cli_json(&args);
    let workbook = sheets(&report);
    assert_eq!(
        workbook.keys().collect::<Vec<_>>(),
        ["分级统计", "未销号督办", "超期案件"],
        "one sheet each"
    );

    // The measures: the rows `stats --by-child` gives for the month, figure for figure.
    let measures = &workbook["分级统计"];
    let row = |name: &str| {
        measures
            .iter()
            .find(|row| row[0].trim() == name)
            .unwrap_or_else(|| panic!("a row for {name}: {measures:?}"))
    };
    let township_children = stats["children"].as_array().expect("children");
    let figures = [
        ("全部", &stats["total"]),
        ("芦荻山村", &township_children[0]["measures"]),
        ("花山村", &township_children[1]["measures"]),
    ];
    assert_eq!(stats["total"]["cases"], 3, "November's cases: {stats}");
    for (name, set) in figures {
        let row = row(name);
        assert_eq!(row[2], set["cases"].to_string(), "{name}: {row:?} {set}");
        let rates = [
            "timely_acceptance",
            "on_time_completion",
            "evaluation",
            "satisfaction",
            "resolution",
            "repeat",
        ];
        for (offset, rate) in rates.iter().enumerate() {
            let ratio = &set[rate];
            let denominator = ratio["denominator"].as_u64().expect("denominator");
            let cell = &row[3 + offset];
            if denominator == 0 {
                assert_eq!(cell, "-", "{name} {rate}");
            } else {
                let numerator = ratio["numerator"].as_u64().expect("numerator");
                let rate_value: f64 = cell.parse().expect("a rate");
                assert!(
                    (rate_value - numerator as f64 / denominator as f64).abs() < 1e-9,
                    "{name} {rate}: {cell} vs {ratio}"
                );
            }
        }
        let counts = [
            "approaching",
            "overdue",
            "seriously_overdue",
            "directives_open",
            "directives_overdue",
            "directives_crossed_off",
            "escalated",
            "assigned",
            "in_conflict",
        ];
        for (offset, count) in counts.iter().enumerate() {
            assert_eq!(row[9 + offset], set[count].to_string(), "{name} {count}");
        }
    }
    assert_eq!(row("芦荻山村")[1], VILLAGE_REGION);

    // The overdue cases: those `case list --overdue` lists, October's too.
    let overdue = run_cli_json(&["--node", &url, "case", "list", "--overdue"]);
    let mut expected: Vec<String> = overdue
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| {
            item["summary"]["number"]
                .as_str()
                .expect("number")
                .to_owned()
        })
        .collect();
    expected.sort();
    // November's two unaccepted cases and October's; November's accepted one is due later.
    assert!(expected.len() >= 3, "{overdue}");
    let mut listed: Vec<String> = workbook["超期案件"][1..]
        .iter()
        .map(|row| row[0].clone())
        .collect();
    listed.sort();
    assert_eq!(listed, expected);
    assert!(
        workbook["超期案件"][1..]
            .iter()
            .any(|row| row[2] == "芦荻山村" && row[1] == "已登记"),
        "holder by name, status in Chinese: {:?}",
        workbook["超期案件"]
    );

    // The open directive, with the offices by name.
    let directives = &workbook["未销号督办"];
    assert_eq!(directives.len(), 2, "{directives:?}");
    assert_eq!(directives[1][0], directed);
    assert_eq!(directives[1][1], "D-report-1");
    assert_eq!(directives[1][2], "限期受理并报告");
    assert_eq!(directives[1][3], "芦荻山乡");
    assert_eq!(directives[1][8], "芦荻山村");

    let refused = fengqiao_tests::run_cli(&[
        "--node", &url, "report", "--month", "2026-13", "--to", "x.xlsx",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a month"),
        "{refused:?}"
    );
}
