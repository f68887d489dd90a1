//! The 台账 to Excel and back: a ledger imported at one office, exported from its console as an
//! `.xlsx` (identifiers whole, for an admin) and imported with `fengqiao import` at another,
//! gives the same cases with the same history; a masked export masks.

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

#[test]
fn a_ledger_exported_to_excel_imports_elsewhere_as_the_same_cases() {
    let temp = tempfile::tempdir().expect("tempdir");
    let first_dir = temp.path().join("first");
    init_node(&first_dir, "武陵区信访超市", "county", COUNTY);
    let first = NodeProcess::start(&first_dir).expect("start the first office");
    let ledger = temp.path().join("ledger.csv");
    std::fs::write(&ledger, LEDGER).expect("write ledger");
    run_cli_ok(&["import", path_str(&ledger), "--node", &first.url()]);
    let original = cases_of(&first.url());
    assert_eq!(original.len(), 2);

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
