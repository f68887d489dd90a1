//! Back-dated events against a running node (issue 13 item 2): a time more than 5 minutes in
//! the past needs a reason (补录原因) and lies within `[clock] max_backdate_days`, never before
//! what the event follows; the measures count a back-dated acceptance at the time the node
//! recorded it, so back-dating cannot raise 及时受理率; `audit log` shows both times.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use fengqiao_tests::{
    NodeProcess, VILLAGE_REGION, case_number, http_get, http_post, init_node, run_cli, run_cli_ok,
    sample_registration,
};
use serde_json::{Value, json};

fn start_village(temp: &tempfile::TempDir) -> (NodeProcess, std::path::PathBuf) {
    let dir = temp.path().join("village");
    init_node(&dir, "芦荻山村调解室", "village", VILLAGE_REGION);
    (
        NodeProcess::start(&dir).expect("start the village node"),
        dir,
    )
}

fn days_ago(days: i64) -> String {
    (Utc::now() - TimeDelta::days(days)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// POST `body` to `path`; it must be refused with 400 naming each of `words`.
fn refused(node: &NodeProcess, path: &str, body: &Value, words: &[&str]) {
    let (status, answer) = http_post(node.address, path, body).expect("POST");
    assert_eq!(status, 400, "{path} {body}: {answer}");
    let message = answer["error"].as_str().expect("an ApiError");
    for word in words {
        assert!(message.contains(word), "names {word}: {message}");
    }
}

fn posted(node: &NodeProcess, path: &str, body: &Value) -> Value {
    let (status, answer) = http_post(node.address, path, body).expect("POST");
    assert!(status == 200 || status == 201, "{path} {body}: {answer}");
    answer
}

fn time_of(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("a time: {value}"))
}

#[test]
fn back_dated_events_need_a_reason_stay_in_bounds_and_count_when_recorded() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (node, _dir) = start_village(&temp);
    let reason = "纸质登记簿补录";

    // A registration dated 20 days ago: only with a reason.
    let mut registration = sample_registration(VILLAGE_REGION, 1);
    registration["registered_at"] = json!(days_ago(20));
    refused(
        &node,
        "/api/cases",
        &registration,
        &["registered_at", "backdated_reason", "补录"],
    );
    // Beyond the bound (30 days by default), not even with one.
    let mut too_old = sample_registration(VILLAGE_REGION, 2);
    too_old["registered_at"] = json!(days_ago(40));
    too_old["backdated_reason"] = json!(reason);
    refused(&node, "/api/cases", &too_old, &["max_backdate_days"]);
    registration["backdated_reason"] = json!(reason);
    let number = case_number(&posted(&node, "/api/cases", &registration));
    let events = format!("/api/cases/{number}/events");

    // The exploit: an acceptance dated 2020 on a case registered this year.
    refused(
        &node,
        &events,
        &json!({"kind": "accept", "payload": {}, "at": "2020-01-01T00:00:00Z", "backdated_reason": reason}),
        &["at", "before the register it follows"],
    );
    // Dated a day after the registration, 19 days ago: only with a reason.
    let accepted_at = days_ago(19);
    refused(
        &node,
        &events,
        &json!({"kind": "accept", "payload": {}, "at": accepted_at}),
        &["at", "backdated_reason"],
    );
    // A reason on an event that is not back-dated is refused: it would say something untrue.
    refused(
        &node,
        &events,
        &json!({"kind": "note", "payload": {"text": "走访"}, "backdated_reason": reason}),
        &["backdated_reason", "not in the past"],
    );
    let view = posted(
        &node,
        &events,
        &json!({"kind": "accept", "payload": {}, "at": accepted_at, "backdated_reason": reason}),
    );
    let accept = view["events"]
        .as_array()
        .and_then(|events| events.iter().find(|event| event["kind"] == "accept"))
        .expect("the accept event");
    assert_eq!(accept["backdated_reason"], reason, "{accept}");
    assert_eq!(time_of(&accept["at"]), time_of(&json!(accepted_at)));
    // The acceptance counts when the node recorded it: today, after the 15-day limit.
    let decided = time_of(&view["state"]["timeline"]["decided_at"]);
    assert!(
        Utc::now() - decided < TimeDelta::minutes(5),
        "decided_at is the recorded time: {view}"
    );
    assert!(
        view["state"].get("time_flags").is_none(),
        "a back-dating with a reason is not in doubt: {view}"
    );

    // 及时受理率: one decision, late; back-dating did not make it timely.
    let (status, stats) = http_get(node.address, "/api/stats").expect("stats");
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats["total"]["timely_acceptance"],
        json!({"numerator": 0, "denominator": 1}),
        "{stats}"
    );

    // The audit log shows both times and the reason.
    let log = run_cli_ok(&["--node", &node.url(), "audit", "log", &number]);
    assert!(log.contains(reason), "{log}");
    assert!(log.contains("recorded"), "{log}");

    // The CLI's --registered-at follows the same rule, with --backdated-reason.
    let url = node.url();
    let ten_days_ago = days_ago(10);
    let mut register = vec![
        "case",
        "register",
        "--node",
        url.as_str(),
        "--channel",
        "visit",
        "--category",
        "wage_arrears",
        "--matter-type",
        "appeal",
        "--summary",
        "反映拖欠工资",
        "--petitioner",
        "张国强,210202196605120030,13998765432",
        "--region",
        VILLAGE_REGION,
        "--registered-at",
        ten_days_ago.as_str(),
    ];
    let refused_by_cli = run_cli(&register);
    assert!(!refused_by_cli.status.success());
    let stderr = String::from_utf8_lossy(&refused_by_cli.stderr);
    assert!(stderr.contains("backdated_reason"), "{stderr}");
    register.extend(["--backdated-reason", reason]);
    let printed = run_cli_ok(&register);
    assert!(printed.contains(VILLAGE_REGION), "{printed}");
}

/// Issue 12 item 6 against real nodes: each link measures its peer's clock, `/api/health` says
/// how the node's clock stands (against its parent; the county against its children) and
/// `peers` shows the CLOCK column. Nodes on one machine agree, so nothing is skewed and every
/// node goes on recording.
#[test]
fn health_and_peers_show_how_each_clock_stands_against_its_peers() {
    use fengqiao_tests::{
        COUNTY_REGION, Office, TOWNSHIP_REGION, register_sample, run_cli_ok, start_chain, wait_for,
    };
    let temp = tempfile::tempdir().expect("tempdir");
    let county = Office::init(
        temp.path(),
        "county",
        "武陵区信访局",
        "county",
        COUNTY_REGION,
    );
    let township = Office::init(
        temp.path(),
        "township",
        "芦荻山乡",
        "township",
        TOWNSHIP_REGION,
    );
    let village = Office::init(
        temp.path(),
        "village",
        "芦荻山村",
        "village",
        VILLAGE_REGION,
    );
    let (county_node, _township_node, village_node) = start_chain(&county, &township, &village);
    let settle = std::time::Duration::from_secs(30);
    for (node, reference) in [(&village_node, "parent"), (&county_node, "children")] {
        let clock = wait_for("the node judges its clock", settle, || {
            let (status, health) =
                http_get(node.address, "/api/health").map_err(|e| e.to_string())?;
            if status != 200 || health["clock"].is_null() {
                return Err(format!("not judged yet: {health}"));
            }
            Ok(health["clock"].clone())
        });
        assert_eq!(clock["reference"], reference, "{clock}");
        assert_eq!(clock["skewed"], false, "{clock}");
        assert!(
            clock["offset_ms"]
                .as_i64()
                .is_some_and(|offset| offset.abs() < 60_000),
            "{clock}"
        );
    }
    let info = run_cli_ok(&["--node", &village_node.url(), "info"]);
    assert!(info.contains("本机时钟正常"), "{info}");
    let peers = run_cli_ok(&["--node", &village_node.url(), "peers"]);
    assert!(peers.contains("CLOCK"), "{peers}");
    assert!(peers.contains("ok ("), "{peers}");
    register_sample(&village_node, VILLAGE_REGION, 1);
}

/// Issue 12 item 6: an event stamped by a clock days ahead reaches the township, which keeps it
/// (a wrong clock is not a forgery), does not take its time into its own clock, and notes it on
/// the case for a person (时间存疑).
#[test]
fn an_event_stamped_days_ahead_is_kept_by_its_receiver_and_noted_for_a_person() {
    use fengqiao_tests::{
        Office, TOWNSHIP_REGION, Tamperer, quic_address, register_sample, wait_for,
    };
    let temp = tempfile::tempdir().expect("tempdir");
    let township = Office::init(
        temp.path(),
        "township",
        "芦荻山乡",
        "township",
        TOWNSHIP_REGION,
    );
    let village = Office::init(
        temp.path(),
        "village",
        "芦荻山村",
        "village",
        VILLAGE_REGION,
    );
    township.admit(&village);
    let township_node = township.start();
    village.join(&township, quic_address(&township_node));
    let village_node = village.start();
    let number = case_number(&register_sample(&village_node, VILLAGE_REGION, 1));
    let case_path = format!("/api/cases/{number}");
    let settle = std::time::Duration::from_secs(30);
    wait_for("the township holds the case", settle, || {
        match http_get(township_node.address, &case_path) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // The village's clock runs three days ahead for one event (an older build, or told to
    // proceed): its note is dated and stamped three days from now.
    village_node.stop().expect("stop the village");
    let tamperer = Tamperer::open(&village.dir).expect("open the village");
    let fast = tamperer
        .sign_dated(
            &number,
            "fast-note",
            fengqiao_case::EventKind::Note {
                text: "电话回访".to_owned(),
            },
            Utc::now() + TimeDelta::days(3),
        )
        .expect("sign");
    tamperer.push(&number, &[fast]).expect("push");
    drop(tamperer);
    let _village_node = village.start();

    let view = wait_for("the township keeps the event and notes it", settle, || {
        let (status, view) =
            http_get(township_node.address, &case_path).map_err(|error| error.to_string())?;
        let kept = view["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|event| event["id"] == "fast-note"));
        if status != 200 || !kept {
            return Err(format!("not yet: {view}"));
        }
        Ok(view)
    });
    // The township's own observation, beside the derived state (which every replica derives
    // alike and so cannot hold what one node's clock saw).
    let noted = view["received_ahead"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(noted.contains("时间存疑"), "{view}");
    assert!(noted.contains(" d "), "about three days: {noted}");
    assert!(noted.contains("ahead of this node's clock"), "{noted}");
    assert!(
        !view["state"]["time_flags"]
            .to_string()
            .contains("ahead of this node's clock"),
        "{view}"
    );
    let (_, quarantine) = http_get(township_node.address, "/api/quarantine").expect("quarantine");
    assert!(
        !quarantine.to_string().contains("fast-note"),
        "a wrong clock is not a forgery: {quarantine}"
    );
}
