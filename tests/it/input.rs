//! What people type, against a running node (issue 13, items 3, 5 and 8): control characters and
//! implausible values refused with a 400 naming the field, unknown fields refused, what is
//! already stored printed escaped, and China times labelled.

use fengqiao_tests::{
    NodeProcess, Tamperer, VILLAGE_REGION, case_number, http_get, http_post, init_node,
    register_sample, run_cli_json, run_cli_ok, sample_registration,
};
use serde_json::{Value, json};

fn start_village(temp: &tempfile::TempDir) -> NodeProcess {
    let dir = temp.path().join("village");
    init_node(&dir, "芦荻山村调解室", "village", VILLAGE_REGION);
    NodeProcess::start(&dir).expect("start the village node")
}

/// POST `body` to `path`; it must be refused with 400 and an error naming `field`. Returns the
/// message.
fn refused(node: &NodeProcess, path: &str, body: &Value, field: &str) -> String {
    let (status, answer) = http_post(node.address, path, body).expect("POST");
    assert_eq!(status, 400, "{path} {field}: {answer}");
    let message = answer["error"].as_str().expect("an ApiError").to_owned();
    assert!(message.contains(field), "names {field}: {message}");
    message
}

fn registration_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut body = sample_registration(VILLAGE_REGION, 1);
    change(&mut body);
    body
}

#[test]
fn control_characters_are_refused_by_field_and_stored_ones_print_escaped() {
    let temp = tempfile::tempdir().expect("tempdir");
    let node = start_village(&temp);

    for (field, body) in [
        (
            "invalid summary: character 3 is U+001B",
            registration_with(|body| body["summary"] = json!("欠薪\u{1b}]0;owned\u{7}")),
        ),
        (
            "invalid location.village",
            registration_with(|body| body["location"]["village"] = json!("芦荻山村\u{202e}")),
        ),
        (
            "invalid petitioners.name: petitioner 1: character 2 is U+0007",
            registration_with(|body| body["petitioners"][0]["name"] = json!("王\u{7}")),
        ),
        (
            "invalid respondent",
            registration_with(|body| body["respondent"] = json!("台秤厂\r\n")),
        ),
    ] {
        let message = refused(&node, "/api/cases", &body, field);
        assert!(
            !message.chars().any(|character| character.is_control()),
            "the refusal does not echo the characters: {message:?}"
        );
    }

    let number = case_number(&register_sample(&node, VILLAGE_REGION, 2));
    let events = format!("/api/cases/{number}/events");
    refused(
        &node,
        &events,
        &json!({"kind": "note", "payload": {"text": "回访\u{1b}[2J"}}),
        "invalid text",
    );
    refused(
        &node,
        &events,
        &json!({"kind": "mediate", "payload": {"mediation_type": "people", "mediator": "李\u{2066}", "result": "ongoing"}}),
        "invalid mediator",
    );
    let (status, _) = http_post(
        node.address,
        &events,
        &json!({"kind": "note", "payload": {"text": "第一行\n第二行"}}),
    )
    .expect("POST");
    assert_eq!(status, 200, "a line break in a note is text");
    // What an older peer or an older version stored is printed escaped, never obeyed.
    let dir = node.dir.clone();
    assert!(node.stop().expect("stop"), "graceful stop");
    let stored_number = format!("{VILLAGE_REGION}-2026-000900");
    {
        let tamperer = Tamperer::open(&dir).expect("open the stopped node");
        let registration: fengqiao_case::RegisterCase =
            serde_json::from_value(registration_with(|body| {
                body["summary"] = json!("欠薪\u{1b}]0;owned\u{7}\u{202e}");
                body["location"]["village"] = json!("芦荻山村\u{1b}[2J");
            }))
            .expect("a registration");
        tamperer
            .register_anywhere(fengqiao_case::CaseHeader {
                number: stored_number.clone(),
                channel: registration.channel,
                petitioners: registration.petitioners,
                headcount: registration.headcount,
                respondent: registration.respondent,
                category: registration.category,
                matter_type: registration.matter_type,
                litigation_related: false,
                summary: registration.summary,
                location: registration.location,
                ownership: registration.ownership,
            })
            .expect("stored as an older node would have");
    }
    let node = NodeProcess::start(&dir).expect("restart");
    let url = node.url();
    for command in [
        vec!["case", "show", stored_number.as_str()],
        vec!["case", "list"],
    ] {
        let mut args = command.clone();
        args.extend(["--node", url.as_str()]);
        let printed = run_cli_ok(&args);
        assert!(
            !printed.contains('\u{1b}')
                && !printed.contains('\u{7}')
                && !printed.contains('\u{202e}'),
            "{command:?} printed a raw control character: {printed:?}"
        );
        assert!(
            printed.contains("芦荻山村\\u{1b}[2J"),
            "{command:?} shows it escaped:\n{printed}"
        );
    }
    let shown = run_cli_ok(&["case", "show", &stored_number, "--node", &url]);
    assert!(
        shown.contains("欠薪\\u{1b}]0;owned\\u{7}\\u{202e}"),
        "{shown}"
    );
    let json = run_cli_json(&["case", "show", &stored_number, "--node", &url]);
    assert_eq!(
        json["header"]["summary"], "欠薪\u{1b}]0;owned\u{7}\u{202e}",
        "--json gives scripts the stored value, escaped as JSON"
    );
}

#[test]
fn implausible_values_and_unknown_fields_are_refused_by_name() {
    let temp = tempfile::tempdir().expect("tempdir");
    let node = start_village(&temp);

    let two_petitioners = registration_with(|body| {
        let first = body["petitioners"][0].clone();
        body["petitioners"] = json!([first.clone(), first]);
        body["headcount"] = json!(1);
    });
    for (field, body) in [
        (
            "invalid headcount: 4294967295 people; at most 10000",
            registration_with(|body| body["headcount"] = json!(4_294_967_295_u64)),
        ),
        ("fewer than the 2 petitioners", two_petitioners),
        (
            "invalid summary: is 1048576 characters long; at most 4000",
            registration_with(|body| body["summary"] = json!("a".repeat(1 << 20))),
        ),
        (
            "invalid petitioners.name",
            registration_with(|body| body["petitioners"][0]["name"] = json!("名".repeat(10_000))),
        ),
        (
            "invalid registered_at",
            registration_with(|body| body["registered_at"] = json!("1900-01-01T00:00:00Z")),
        ),
        (
            "has the year 9999",
            registration_with(|body| {
                body["number"] = json!(format!("{VILLAGE_REGION}-9999-000001"))
            }),
        ),
        (
            "sequence of 6 digits",
            registration_with(|body| {
                body["number"] = json!(format!("{VILLAGE_REGION}-2026-1234567"))
            }),
        ),
        (
            "unknown field `sumary`",
            registration_with(|body| body["sumary"] = json!("typo")),
        ),
        (
            "unknown field `petitioners[0].adress`",
            registration_with(|body| body["petitioners"][0]["adress"] = json!("三组")),
        ),
    ] {
        refused(&node, "/api/cases", &body, field);
    }

    let number = case_number(&register_sample(&node, VILLAGE_REGION, 3));
    let events = format!("/api/cases/{number}/events");
    refused(
        &node,
        &events,
        &json!({"kind": "close", "payload": {"resolved": true, "note": "", "notes": "已化解"}}),
        "unknown field `payload.notes`",
    );
    refused(
        &node,
        &events,
        &json!({"kind": "amend_header", "payload": {"amendment": {"field": "headcount", "value": 20000}}}),
        "invalid headcount",
    );
    refused(
        &node,
        "/api/import",
        &json!({"rows": [{"line": 1, "case": sample_registration(VILLAGE_REGION, 4), "histroy": []}]}),
        "unknown field `rows[0].histroy`",
    );
    let (status, reports) = http_post(
        node.address,
        "/api/import",
        &json!({"dry_run": true, "rows": [{"line": 7, "case": registration_with(|body| body["registered_at"] = json!("1900-01-01T00:00:00Z"))}]}),
    )
    .expect("POST");
    assert_eq!(status, 200, "{reports}");
    assert_eq!(reports[0]["outcome"], "rejected", "{reports}");
    assert!(
        reports[0]["error"]
            .as_str()
            .is_some_and(|error| error.contains("registered_at") && error.contains("before 2000")),
        "{reports}"
    );

    let (status, document) = http_get(node.address, "/api/openapi.json").expect("GET");
    assert_eq!(status, 200);
    let properties = &document["components"]["schemas"]["RegisterCase"]["properties"];
    assert_eq!(properties["summary"]["maxLength"], 4000, "{properties}");
    assert_eq!(properties["headcount"]["maximum"], 10_000, "{properties}");
    assert_eq!(
        document["components"]["schemas"]["Petitioner"]["properties"]["name"]["maxLength"],
        64
    );
    let (_, health) = http_get(node.address, "/api/health").expect("GET");
    assert_eq!(health["case_count"], 1, "nothing refused was stored");
}

#[test]
fn china_times_say_they_are_utc_plus_8() {
    let temp = tempfile::tempdir().expect("tempdir");
    let node = start_village(&temp);
    let url = node.url();
    let number = case_number(&register_sample(&node, VILLAGE_REGION, 5));

    let shown = run_cli_ok(&["case", "show", &number, "--node", &url]);
    let state = shown
        .split_once("State 状态")
        .and_then(|(_, rest)| rest.split_once("Events 记录"))
        .map(|(state, _)| state)
        .unwrap_or_else(|| panic!("a state section:\n{shown}"));
    let registered = state
        .lines()
        .find(|line| line.contains("registered 登记"))
        .unwrap_or_else(|| panic!("the registration time:\n{state}"));
    assert!(registered.contains("(UTC+8)"), "{registered}");
    let deadline = state
        .lines()
        .find(|line| line.contains("acceptance deadline 受理时限"))
        .unwrap_or_else(|| panic!("the acceptance deadline:\n{state}"));
    assert!(deadline.contains("(UTC+8)"), "{deadline}");

    let stats = run_cli_ok(&["stats", "--node", &url]);
    let judged = stats
        .lines()
        .find(|line| line.contains("judged at"))
        .unwrap_or_else(|| panic!("when the measures were judged:\n{stats}"));
    assert!(judged.trim_end().ends_with("(UTC+8)"), "{judged}");
}

/// Issue 13, item 4: ID numbers and phones checked as people type them.
#[test]
fn id_numbers_and_phones_are_checked_by_field() {
    let temp = tempfile::tempdir().expect("tempdir");
    let node = start_village(&temp);

    for (field, body) in [
        (
            "invalid petitioners.id_number: petitioner 1: has a wrong check character",
            registration_with(|body| {
                body["petitioners"][0]["id_number"] = json!("430702198503120027")
            }),
        ),
        (
            "invalid petitioners.id_number: petitioner 1: has 17 characters",
            registration_with(|body| {
                body["petitioners"][0]["id_number"] = json!("43070219850312002")
            }),
        ),
        (
            "invalid petitioners.id_number: petitioner 1: holds the birth date 19850230",
            registration_with(|body| {
                body["petitioners"][0]["id_number"] = json!("430702198502300021")
            }),
        ),
        (
            "Excel turned the column into a number",
            registration_with(|body| body["petitioners"][0]["id_number"] = json!("2.10202E+17")),
        ),
        (
            "invalid petitioners.phone: petitioner 1: `not-a-phone` is not a phone number",
            registration_with(|body| body["petitioners"][0]["phone"] = json!("not-a-phone")),
        ),
        (
            "invalid petitioners.id_number",
            registration_with(|body| {
                body["petitioners"][0]["id_type"] = json!("passport");
                body["petitioners"][0]["id_number"] = json!("E1");
            }),
        ),
    ] {
        refused(&node, "/api/cases", &body, field);
    }

    for body in [
        registration_with(|body| {
            body["petitioners"][0]["id_number"] = json!("430702198503120029");
            body["petitioners"][0]["phone"] = json!("0736-7221234");
        }),
        registration_with(|body| {
            body["petitioners"][0]["id_number"] = json!("110105491231002");
            body["petitioners"][0]["phone"] = json!("+86 138 0736 1234");
        }),
        registration_with(|body| {
            body["petitioners"][0]["id_type"] = json!("passport");
            body["petitioners"][0]["id_number"] = json!("E12345678");
        }),
    ] {
        let (status, answer) = http_post(node.address, "/api/cases", &body).expect("POST");
        assert!((200..300).contains(&status), "{status}: {answer}");
    }
    let (_, health) = http_get(node.address, "/api/health").expect("GET");
    assert_eq!(health["case_count"], 3, "the refused ones were not stored");
}
