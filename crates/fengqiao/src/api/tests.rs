//! Tests of the HTTP API against a real server on 127.0.0.1, port 0, and of its OpenAPI document.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use fengqiao_case::Tier;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::service::{InitOptions, init_node};

const VILLAGE: &str = "430702001002";
/// The account the tests act as (operator and supervisor), and the operator its events record.
const TESTER: &str = "tester";
const OPERATOR: &str = "测试员 (tester)";

/// The account the tests act as: both case roles, under the operator name they always used.
fn tester() -> fengqiao_accounts::Actor {
    fengqiao_accounts::Actor {
        operator: OPERATOR.to_owned(),
        roles: fengqiao_accounts::RoleSet::of(&[
            fengqiao_accounts::Role::Operator,
            fengqiao_accounts::Role::Supervisor,
        ]),
    }
}

/// Give a node the tests' account.
fn add_tester(node: &Node) {
    let request = fengqiao_accounts::wire::NewAccount {
        login: TESTER.to_owned(),
        display_name: "测试员".to_owned(),
        roles: tester().roles,
        password: Some("tester-password".to_owned()),
    };
    node.add_account(&request, Utc::now()).unwrap();
}

/// The node directory's CLI token, which acts as any account named in `x-fengqiao-as`.
fn cli_token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("cli.token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// A node serving on an ephemeral port, stopped by [`TestServer::stop`].
struct TestServer {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    address: SocketAddr,
    shutdown: oneshot::Sender<()>,
    running: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    async fn start() -> TestServer {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("village");
        init_node(
            &dir,
            InitOptions {
                name: "芦荻山村调解室".into(),
                tier: Tier::Village,
                region_code: VILLAGE.into(),
                listen: None,
                parent: None,
                lan_names: Vec::new(),
            },
        )
        .unwrap();
        let bound = BoundServer::bind(&dir, Some(SocketAddr::from(([127, 0, 0, 1], 0))))
            .await
            .unwrap();
        add_tester(&bound.node);
        let address = bound.local_addr();
        let (shutdown, stop_signal) = oneshot::channel::<()>();
        let running = tokio::spawn(bound.run(async move {
            let _ = stop_signal.await;
        }));
        TestServer {
            _temp: temp,
            dir,
            address,
            shutdown,
            running,
        }
    }

    /// Ask for a graceful stop and wait for it.
    async fn stop(self) -> (tempfile::TempDir, PathBuf) {
        self.shutdown.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.running)
            .await
            .expect("the server stops within 30 s")
            .unwrap()
            .unwrap();
        (self._temp, self.dir)
    }

    /// One request, acting as the account `login` (through the node's CLI token) or as
    /// nobody; returns the status and the JSON body (every answer has one).
    async fn call(
        &self,
        method: &str,
        path: &str,
        login: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value) {
        let url = format!("http://{}{path}", self.address);
        let method = method.to_owned();
        let token = cli_token(&self.dir);
        let login = login.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let response = match method.as_str() {
                "GET" => {
                    let mut request = agent.get(&url);
                    if let Some(login) = &login {
                        request = request
                            .header("authorization", format!("Bearer {token}"))
                            .header(auth::ACT_AS_HEADER, login);
                    }
                    request.call()
                }
                _ => {
                    let mut request = agent.post(&url).content_type("application/json");
                    if let Some(login) = &login {
                        request = request
                            .header("authorization", format!("Bearer {token}"))
                            .header(auth::ACT_AS_HEADER, login);
                    }
                    request.send(body.unwrap_or_default())
                }
            };
            let mut response = response.unwrap();
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap();
            let value: Value = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{method} {url}: not JSON ({error}): {text}"));
            (status, value)
        })
        .await
        .unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(TESTER), Some(body.to_string()))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, Some(TESTER), None).await
    }
}

fn registration() -> Value {
    json!({
        "channel": "visit",
        "petitioners": [{"name": "王秀英", "id_number": "430702198503120029"}],
        "headcount": 1,
        "category": "wage_arrears",
        "matter_type": "appeal",
        "summary": "反映原单位拖欠工资",
        "location": {"region_code": VILLAGE, "village": "芦荻山村"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_append_get_list_and_measure() {
    let server = TestServer::start().await;
    let written = std::fs::read_to_string(server.dir.join("api.addr")).unwrap();
    assert_eq!(written.trim(), server.address.to_string());

    let (status, view) = server.post("/api/cases", &registration()).await;
    assert_eq!(status, 201, "{view}");
    let number = view["header"]["number"].as_str().unwrap().to_owned();
    assert!(
        number.starts_with("430702001002-") && number.ends_with("-000001"),
        "{number}"
    );
    assert_eq!(view["events"][0]["operator"], OPERATOR);

    let accept = json!({"kind": "accept", "payload": {}});
    let (status, view) = server
        .post(&format!("/api/cases/{number}/events"), &accept)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"]["status"], "accepted");

    let refused = json!({"kind": "accept", "payload": {}});
    let (status, error) = server
        .post(&format!("/api/cases/{number}/events"), &refused)
        .await;
    assert_eq!(status, 409, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot accept"),
        "{error}"
    );

    let (status, view) = server.get(&format!("/api/cases/{number}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["events"].as_array().unwrap().len(), 2);
    assert_eq!(view["header"]["petitioners"][0]["name"], "王秀英");

    let (status, listed) = server
        .get("/api/cases?status=accepted&category=wage_arrears&limit=10")
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (_, none) = server.get("/api/cases?status=closed").await;
    assert_eq!(none.as_array().unwrap().len(), 0);

    let (status, health) = server.get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["case_count"], 1);
    assert_eq!(health["tier"], "village");

    let (status, measures) = server.get("/api/stats?from=2020-01-01").await;
    assert_eq!(status, 200, "{measures}");
    assert_eq!(measures["total"]["cases"], 1);
    let (status, _) = server
        .get("/api/stats?from=2020-01-01T00:00:00%2B08:00&category=wage_arrears")
        .await;
    assert_eq!(status, 200);

    let (status, directives) = server.get("/api/directives?open=true").await;
    assert_eq!(status, 200, "{directives}");
    assert_eq!(directives, json!([]));

    let (status, document) = server.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(document, openapi_json());

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_the_public_ones_needs_an_account() {
    let server = TestServer::start().await;
    for route in all_routes() {
        if auth::access(route.operation) == auth::Access::Public
            || route.method == HttpMethod::Delete
        {
            continue;
        }
        let path = route
            .path
            .replace("{number}", "430702001002-2026-000001")
            .replace("{login}", TESTER)
            .replace("{id}", "0123456789ab");
        for login in [None, Some("nobody")] {
            if login.is_none()
                && matches!(
                    auth::access(route.operation),
                    auth::Access::LoopbackOrRole(_)
                )
            {
                // `/metrics` answers loopback without a credential; this server is on loopback.
                continue;
            }
            let (status, error) = server
                .call(
                    route.method.http_name(),
                    &path,
                    login,
                    Some(registration().to_string()),
                )
                .await;
            assert_eq!(status, 401, "{path} as {login:?}: {error}");
        }
    }
    let (_, health) = server.get("/api/health").await;
    assert_eq!(health["case_count"], 0, "nothing was written");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_and_parameters_get_json_errors() {
    let server = TestServer::start().await;

    let (status, error) = server
        .call(
            "POST",
            "/api/cases",
            Some(TESTER),
            Some("{\"channel\": ".into()),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    let message = error["error"].as_str().unwrap();
    assert!(message.starts_with("malformed JSON body: "), "{message}");
    assert!(message.contains("line 1 column"), "{message}");

    let (status, error) = server
        .post("/api/cases", &json!({"channel": "carrier_pigeon"}))
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("carrier_pigeon"),
        "{error}"
    );

    let (status, error) = server
        .post("/api/import", &json!({"rows": [{"line": 1}]}))
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(error["error"].as_str().unwrap().contains("case"), "{error}");

    for (path, expected) in [
        ("/api/cases?status=lost", "invalid status \"lost\""),
        ("/api/cases?limit=many", "invalid limit"),
        ("/api/cases?overdue=perhaps", "invalid overdue"),
        (
            "/api/cases?colour=red",
            "unknown query parameter \"colour\"",
        ),
        ("/api/cases?limit=1&limit=2", "more than once"),
        ("/api/stats?from=yesterday", "invalid from"),
        (
            "/api/stats?from=2026-03-02&to=2026-03-01",
            "before it starts",
        ),
        ("/api/directives?open=maybe", "invalid open"),
        ("/api/health?verbose=1", "takes none"),
    ] {
        let (status, error) = server.get(path).await;
        assert_eq!(status, 400, "{path}: {error}");
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(expected), "{path}: {message}");
    }

    let (status, error) = server
        .post("/api/import?dry_run=true", &json!({"rows": []}))
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("dry_run"),
        "{error}"
    );

    let (status, error) = server.get("/api/cases/430702001002-2026-000404").await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["error"], "no case 430702001002-2026-000404");

    let (status, error) = server
        .post(
            "/api/cases/430702001002-2026-000404/events",
            &json!({"kind": "accept", "payload": {}}),
        )
        .await;
    assert_eq!(status, 404, "{error}");

    let (status, error) = server.get("/api/nothing-here").await;
    assert_eq!(status, 404);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("no such endpoint"),
        "{error}"
    );

    let (status, error) = server
        .call("POST", "/api/health", Some(TESTER), Some("{}".into()))
        .await;
    assert_eq!(status, 405, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("use GET"),
        "{error}"
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_the_node_and_the_address() {
    let server = TestServer::start().await;
    let (status, _) = server.post("/api/cases", &registration()).await;
    assert_eq!(status, 201);
    let address = server.address;
    let (_temp, dir) = server.stop().await;

    assert!(
        !dir.join("api.addr").exists(),
        "the stale address is removed"
    );
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "nothing listens any more"
    );
    // The store and the directory lock were released, and the write survived.
    let node = tokio::task::spawn_blocking(move || Node::open(&dir).unwrap())
        .await
        .unwrap();
    assert_eq!(node.info().case_count, 1);
}

#[test]
fn every_operation_is_routed_once_and_documented() {
    let document = openapi_json();
    assert_eq!(document["openapi"], "3.1.0");
    let mut seen = HashSet::new();
    for route in all_routes() {
        assert!(
            seen.insert(route.operation),
            "{:?} routed twice",
            route.operation
        );
        let operation = &document["paths"][route.path][route.method.openapi_name()];
        assert_eq!(
            operation["operationId"],
            route.operation.id(),
            "{} {} is documented",
            route.method.http_name(),
            route.path
        );
        let documented: Vec<&str> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|parameter| parameter["in"] == "path")
            .map(|parameter| parameter["name"].as_str().unwrap())
            .collect();
        assert_eq!(documented, route.path_parameter_names(), "{}", route.path);
        let public = auth::access(route.operation) == auth::Access::Public;
        assert_eq!(
            operation["security"].as_array().unwrap().is_empty(),
            public,
            "{}",
            route.path
        );
        assert_eq!(
            operation["requestBody"].is_object(),
            route.request.is_some(),
            "{}",
            route.path
        );
        assert!(operation["responses"][route.success_status.to_string()].is_object());
    }
    for operation in Operation::ALL {
        assert!(seen.contains(&operation), "{operation:?} has no route");
        assert_eq!(operation.route().operation, operation);
    }
    let documented_operations: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented_operations,
        all_routes().count(),
        "nothing undocumented is served"
    );

    // Every schema reference resolves.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let name = reference
            .split('"')
            .next()
            .unwrap()
            .trim_start_matches("#/components/schemas/");
        assert!(
            document["components"]["schemas"][name].is_object(),
            "schema {name} is defined"
        );
    }
}

/// Every enum of the model is a plain `enum` of its serde names, documented values included.
#[test]
fn enums_are_listed_by_their_serde_names() {
    let document = openapi_json();
    let schemas = &document["components"]["schemas"];
    let names = |schema: &str| -> Vec<String> {
        schemas[schema]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} is an enum: {}", schemas[schema]))
            .iter()
            .map(|value| value.as_str().unwrap().to_owned())
            .collect()
    };
    let channels: Vec<String> = [
        fengqiao_case::Channel::Letter,
        fengqiao_case::Channel::Visit,
        fengqiao_case::Channel::Online,
        fengqiao_case::Channel::Phone,
        fengqiao_case::Channel::LeaderMailbox,
        fengqiao_case::Channel::GridScreening,
    ]
    .iter()
    .map(|channel| {
        serde_json::to_value(channel)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    })
    .collect();
    assert_eq!(names("Channel"), channels);
    assert!(names("Category").contains(&"wage_arrears".to_owned()));
    assert_eq!(names("Role"), ["operator", "supervisor", "admin"]);
    assert_eq!(
        schemas["Channel"]["x-enum-descriptions"][1], "来访",
        "{}",
        schemas["Channel"]
    );
}

#[test]
fn instants_and_dates_parse_in_china_time() {
    let start = parse_instant_or_date("2026-03-01").unwrap();
    assert_eq!(start.to_rfc3339(), "2026-02-28T16:00:00+00:00");
    let instant = parse_instant_or_date("2026-03-01T09:30:00+08:00").unwrap();
    assert_eq!(instant.to_rfc3339(), "2026-03-01T01:30:00+00:00");
    let unencoded_plus = parse_instant_or_date("2026-03-01T09:30:00 08:00").unwrap();
    assert_eq!(unencoded_plus, instant);
    assert!(parse_instant_or_date("2026-13-01").is_none());
}

/// Every bound the OpenAPI document gives a registration is the one validation enforces: one
/// past it is refused, naming that field.
#[test]
fn the_documented_bounds_are_the_enforced_ones() {
    let document = openapi_json();
    let schemas = &document["components"]["schemas"];
    // A named type's schema is a reference into components/schemas.
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                schemas[reference.trim_start_matches("#/components/schemas/")].clone()
            }
            None => schema.clone(),
        }
    };
    fn leaves(
        schema: &Value,
        path: String,
        resolve: &dyn Fn(&Value) -> Value,
        found: &mut Vec<(String, Value)>,
    ) {
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            let path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let property = resolve(property);
            let items = resolve(&property["items"]);
            if property["properties"].is_object() {
                leaves(&property, path.clone(), resolve, found);
            } else if items["properties"].is_object() {
                leaves(&items, path.clone(), resolve, found);
            }
            found.push((path, property.clone()));
        }
    }
    let mut bounded = Vec::new();
    leaves(
        &schemas["RegisterCase"],
        String::new(),
        &resolve,
        &mut bounded,
    );
    let header = json!({
        "number": "430702001002-2026-000001",
        "channel": "visit",
        "petitioners": [{"name": "张三", "id_number": "", "phone": "", "address": ""}],
        "headcount": 1,
        "respondent": "",
        "category": "labour",
        "matter_type": "appeal",
        "summary": "工伤赔偿",
        "location": {"region_code": VILLAGE, "village": "", "grid": "", "grid_worker": ""},
        "ownership": {"leader": "", "unit": "", "officer": "", "plan": ""},
    });
    let validate = |header: &Value| {
        let header: fengqiao_case::CaseHeader = serde_json::from_value(header.clone()).unwrap();
        fengqiao_case::lifecycle::validate_header(&header, chrono::Utc::now())
    };
    assert!(validate(&header).is_ok());
    let mut checked = 0;
    fn at<'v>(value: &'v mut Value, path: &str) -> &'v mut Value {
        let found = path.split('.').fold(value, |value, name| match value {
            Value::Array(items) => &mut items[0][name],
            other => &mut other[name],
        });
        match found {
            Value::Array(items) => &mut items[0],
            other => other,
        }
    }
    let with = |path: &str, value: Value| {
        let mut changed = header.clone();
        *at(&mut changed, path) = value;
        changed
    };
    for (path, property) in bounded {
        if path == "backdated_reason" {
            // Not part of the header: the time rule judges it (`fengqiao_case::event_time`,
            // whose tests hold it to the same line rule and length).
            continue;
        }
        let past = if let Some(longest) = property["maxLength"].as_u64() {
            let longest = longest as usize;
            assert!(
                validate(&with(&path, json!("字".repeat(longest)))).is_ok(),
                "{path} takes {longest}"
            );
            json!("字".repeat(longest + 1))
        } else if let Some(maximum) = property["maximum"].as_u64() {
            json!(maximum + 1)
        } else {
            continue;
        };
        match validate(&with(&path, past)) {
            Err(fengqiao_case::CaseError::InvalidInput { field, .. }) => {
                assert_eq!(field, path, "the refusal names the documented field")
            }
            other => panic!("{path} one past its bound: {other:?}"),
        }
        checked += 1;
    }
    // ID numbers and phones are bounded by their shape (`personal_data`), not a length.
    assert!(checked >= 12, "only {checked} bounds documented");
}

// ---------------------------------------------------------------------------------------------
// Audit trail and quarantine
// ---------------------------------------------------------------------------------------------

/// Serve an existing node directory again (after it was stopped and changed offline).
async fn serve_again(temp: tempfile::TempDir, dir: PathBuf) -> TestServer {
    let bound = BoundServer::bind(&dir, Some(SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .expect("the node serves again");
    let address = bound.local_addr();
    let (shutdown, stop_signal) = oneshot::channel::<()>();
    let running = tokio::spawn(bound.run(async move {
        let _ = stop_signal.await;
    }));
    TestServer {
        _temp: temp,
        dir,
        address,
        shutdown,
        running,
    }
}

/// Register a case and append `kinds` (each `{"kind": …, "payload": …}`); returns its number.
async fn case_with_events(server: &TestServer, kinds: &[Value]) -> String {
    let (status, view) = server.post("/api/cases", &registration()).await;
    assert_eq!(status, 201, "{view}");
    let number = view["header"]["number"]
        .as_str()
        .expect("a case number")
        .to_owned();
    for kind in kinds {
        let (status, view) = server
            .post(&format!("/api/cases/{number}/events"), kind)
            .await;
        assert_eq!(status, 200, "{kind}: {view}");
    }
    number
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_shows_every_event_in_order_signed_and_is_recorded_as_a_read() {
    let server = TestServer::start().await;
    let number = case_with_events(
        &server,
        &[
            json!({"kind": "accept", "payload": {}}),
            json!({"kind": "note", "payload": {"text": "王秀英 来电询问进度"}}),
            json!({"kind": "reply", "payload": {"outcome": "explain", "text": "答复王秀英"}}),
        ],
    )
    .await;
    let (_, health) = server.get("/api/health").await;
    let node_id = health["node_id"].as_str().expect("a node id").to_owned();

    let (status, log) = server.get(&format!("/api/audit/cases/{number}")).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["schema_version"], fengqiao_case::SCHEMA_VERSION);
    assert_eq!(log["case"], number.as_str());
    let events = log["events"].as_array().expect("events");
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["kind"].as_str().expect("a kind"))
        .collect();
    assert_eq!(kinds, ["register", "accept", "note", "reply"]);
    let mut previous_hlc = (0, 0);
    for event in events {
        assert_eq!(event["signature"]["status"], "valid", "{event}");
        assert_eq!(event["operator"], OPERATOR, "{event}");
        assert_eq!(event["node"], node_id.as_str(), "{event}");
        assert_eq!(event["office"], "芦荻山村调解室", "{event}");
        let hlc = (
            event["hlc"]["wall_ms"].as_i64().expect("wall_ms"),
            event["hlc"]["counter"].as_u64().expect("counter"),
        );
        assert!(hlc > previous_hlc, "hybrid-clock order: {log}");
        previous_hlc = hlc;
    }
    assert_eq!(events[3]["summary"], "explain");
    assert!(
        !log.to_string().contains("王秀英"),
        "no personal data in the audit log: {log}"
    );

    let (status, error) = server
        .get("/api/audit/cases/430702001002-2026-000404")
        .await;
    assert_eq!(status, 404, "{error}");
    let (status, error) = server
        .get(&format!("/api/audit/cases/{number}?verbose=1"))
        .await;
    assert_eq!(status, 400, "{error}");

    let (_temp, dir) = server.stop().await;
    let reads = tokio::task::spawn_blocking(move || {
        let node = Node::open(&dir).expect("the node opens");
        node.store()
            .access_log_since(0, 100)
            .expect("the access log reads")
    })
    .await
    .expect("the read finishes");
    let audit_reads: Vec<Value> = reads
        .iter()
        .map(|(_, bytes)| serde_json::from_slice(bytes).expect("JSON access records"))
        .filter(|record: &Value| record["action"] == "audit_case")
        .collect();
    assert_eq!(audit_reads.len(), 1, "one audit read recorded: {reads:?}");
    assert_eq!(audit_reads[0]["case"], number.as_str());
    assert_eq!(audit_reads[0]["operator"], OPERATOR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_is_clean_until_an_event_is_tampered_with() {
    let server = TestServer::start().await;
    let accept = json!({"kind": "accept", "payload": {}});
    let forged_case = case_with_events(&server, std::slice::from_ref(&accept)).await;
    let repeated_case = case_with_events(&server, std::slice::from_ref(&accept)).await;
    let untouched_case = case_with_events(&server, &[]).await;

    let (status, report) = server.get("/api/audit/verify").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["cases_checked"], 3, "{report}");
    assert_eq!(report["events_checked"], 5, "{report}");
    assert_eq!(report["unsigned"], 0, "{report}");
    assert_eq!(report["quarantined"], 0, "{report}");
    assert_eq!(report["failures"], json!([]), "{report}");

    let (status, listing) = server.get("/api/quarantine").await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["entries"], json!([]), "{listing}");
    assert_eq!(listing["next_after"], Value::Null, "{listing}");
    for (path, expected) in [
        ("/api/quarantine?limit=0", "limit 0"),
        ("/api/quarantine?after=first", "invalid after"),
        ("/api/audit/verify?deep=true", "takes none"),
    ] {
        let (status, error) = server.get(path).await;
        assert_eq!(status, 400, "{path}: {error}");
        let message = error["error"].as_str().expect("an error message");
        assert!(message.contains(expected), "{path}: {message}");
    }

    // Offline, as someone with the store but not the node's key would: one case gets an event
    // whose signature bytes were altered, another the same event twice.
    let (temp, dir) = server.stop().await;
    let tampered_dir = dir.clone();
    let (forged_id, repeated_id, direct_report) = {
        let forged_case = forged_case.clone();
        let repeated_case = repeated_case.clone();
        tokio::task::spawn_blocking(move || {
            let node = Node::open(&tampered_dir).expect("the node opens");
            let limits = node.config().limits.clone();
            let push = |number: &str, forge: bool| -> String {
                node.store()
                    .update_case(number, |document| {
                        let (header, mut events) = document.contents()?;
                        let mut copied = events.last().expect("an accept event").clone();
                        if forge {
                            copied.id = "f0rged000000000000000000000000ff".to_owned();
                            let signature = copied.signature.as_mut().expect("a signed event");
                            signature.signature[0] ^= 0x01;
                        }
                        document.push_event(&copied)?;
                        events.push(copied.clone());
                        let state = fengqiao_case::derive(&header, &events, &limits);
                        let summary = fengqiao_case::summary::summarize(&header, &state);
                        Ok::<_, fengqiao_case::DocumentError>((summary, copied.id))
                    })
                    .expect("the store writes")
                    .expect("the document takes the event")
                    .0
            };
            let forged_id = push(&forged_case, true);
            let repeated_id = push(&repeated_case, false);
            let report = node.audit_verify().expect("verify runs");
            (forged_id, repeated_id, report)
        })
        .await
        .expect("the tampering finishes")
    };
    assert!(!direct_report.is_clean(), "{direct_report:?}");
    assert_eq!(direct_report.cases_checked, 3);
    assert_eq!(direct_report.events_checked, 7);
    assert_eq!(direct_report.failures.len(), 2, "{direct_report:?}");

    let server = serve_again(temp, dir).await;
    let (status, report) = server.get("/api/audit/verify").await;
    assert_eq!(
        status, 200,
        "a report with failures is still an answer: {report}"
    );
    let failures = report["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 2, "{report}");
    let forged = failures
        .iter()
        .find(|failure| failure["case"] == forged_case.as_str())
        .expect("the forged event is reported");
    assert_eq!(forged["event"], forged_id.as_str());
    assert!(
        forged["reason"]
            .as_str()
            .expect("a reason")
            .contains("does not verify"),
        "{forged}"
    );
    let repeated = failures
        .iter()
        .find(|failure| failure["case"] == repeated_case.as_str())
        .expect("the repeated event is reported");
    assert_eq!(repeated["event"], repeated_id.as_str());
    assert!(
        repeated["reason"]
            .as_str()
            .expect("a reason")
            .contains("more than once"),
        "{repeated}"
    );
    assert!(
        failures
            .iter()
            .all(|failure| failure["case"] != untouched_case.as_str()),
        "{report}"
    );

    let (status, log) = server.get(&format!("/api/audit/cases/{forged_case}")).await;
    assert_eq!(status, 200, "{log}");
    let statuses: Vec<&str> = log["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["signature"]["status"].as_str().expect("a status"))
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == "invalid")
            .count(),
        1
    );

    // The command line exits non-zero on this report.
    let credentials =
        crate::client::Credentials::from_node_dir(&server.dir, Some(TESTER.to_owned())).unwrap();
    let client =
        crate::client::NodeClient::new(format!("http://{}", server.address), Some(credentials));
    let verified = tokio::task::spawn_blocking(move || {
        crate::cli::audit::run(crate::cli::audit::AuditCommand::Verify, &client, false)
    })
    .await
    .expect("the command finishes");
    let error = verified.expect_err("audit verify fails on a tampered store");
    assert!(
        error
            .to_string()
            .contains("audit verify failed: 2 failures"),
        "{error:#}"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Statistics child by child

const TOWNSHIP: &str = "430702001";
const FIRST_VILLAGE: &str = "430702001001";
const SECOND_VILLAGE: &str = "430702001002";
const FIRST_VILLAGE_NODE: &str = "11111111111111111111111111111111";
const SECOND_VILLAGE_NODE: &str = "22222222222222222222222222222222";

/// A node directory of `tier` in `region_code` with `children` (node id, name, region) in its
/// `[federation]` section.
fn node_with_children(
    temp: &tempfile::TempDir,
    name: &str,
    tier: Tier,
    region_code: &str,
    children: &[(&str, &str, &str)],
) -> PathBuf {
    let dir = temp.path().join(region_code);
    init_node(
        &dir,
        InitOptions {
            name: name.into(),
            tier,
            region_code: region_code.into(),
            listen: None,
            parent: None,
            lan_names: Vec::new(),
        },
    )
    .expect("node initialised");
    let mut config = crate::config::load(&dir).expect("config loads");
    config.federation = Some(crate::config::FederationSection {
        children: children
            .iter()
            .map(
                |(node_id, name, region_code)| crate::config::FederationOffice {
                    node_id: (*node_id).to_owned(),
                    name: (*name).to_owned(),
                    region_code: (*region_code).to_owned(),
                    aliases: Vec::new(),
                    successor_of: None,
                },
            )
            .collect(),
        ..crate::config::FederationSection::default()
    });
    crate::config::save(&dir, &config).expect("config saved");
    add_tester(&Node::open(&dir).expect("the node opens"));
    dir
}

fn registration_in(region_code: &str, village: &str) -> Value {
    let mut body = registration();
    body["location"] = json!({"region_code": region_code, "village": village});
    body
}

/// The child of `breakdown` in `region_code`.
fn child_in<'a>(breakdown: &'a Value, region_code: &str) -> &'a Value {
    breakdown["children"]
        .as_array()
        .expect("children")
        .iter()
        .find(|child| child["region_code"] == region_code)
        .unwrap_or_else(|| panic!("no child in {region_code}: {breakdown}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_by_child_add_up_to_the_total_and_follow_each_change_without_a_restart() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = node_with_children(
        &temp,
        "河洑镇信访办",
        Tier::Township,
        TOWNSHIP,
        &[
            (FIRST_VILLAGE_NODE, "芦荻山村", FIRST_VILLAGE),
            (SECOND_VILLAGE_NODE, "丹洲村", SECOND_VILLAGE),
        ],
    );
    let server = serve_again(temp, dir).await;
    let mut numbers = Vec::new();
    for (region_code, village) in [
        (FIRST_VILLAGE, "芦荻山村"),
        (FIRST_VILLAGE, "芦荻山村"),
        (SECOND_VILLAGE, "丹洲村"),
    ] {
        let (status, view) = server
            .post("/api/cases", &registration_in(region_code, village))
            .await;
        assert_eq!(status, 201, "{view}");
        numbers.push(
            view["header"]["number"]
                .as_str()
                .expect("number")
                .to_owned(),
        );
    }

    let (status, breakdown) = server.get("/api/stats/children").await;
    assert_eq!(status, 200, "{breakdown}");
    assert_eq!(breakdown["total"]["cases"], 3);
    assert_eq!(child_in(&breakdown, FIRST_VILLAGE)["measures"]["cases"], 2);
    assert_eq!(child_in(&breakdown, FIRST_VILLAGE)["name"], "芦荻山村");
    assert_eq!(
        child_in(&breakdown, SECOND_VILLAGE)["node_id"],
        SECOND_VILLAGE_NODE
    );
    assert_eq!(child_in(&breakdown, SECOND_VILLAGE)["measures"]["cases"], 1);
    assert_eq!(breakdown["own"]["cases"], 0);
    // No federation runs in this test: the links are not known, and a village has no children.
    assert_eq!(child_in(&breakdown, FIRST_VILLAGE)["sync"], Value::Null);
    assert_eq!(child_in(&breakdown, FIRST_VILLAGE)["children"], json!([]));
    let (_, whole) = server.get("/api/stats").await;
    assert_eq!(whole["total"], breakdown["total"]);

    // An assignment down to the second village shows at once, there and in the total.
    let assign = json!({"kind": "assign", "payload": {
        "to_node": SECOND_VILLAGE_NODE,
        "required_result": "核实工资发放情况",
        "deadline": "2099-12-31"
    }});
    for kind in [json!({"kind": "accept", "payload": {}}), assign] {
        let (status, view) = server
            .post(&format!("/api/cases/{}/events", numbers[2]), &kind)
            .await;
        assert_eq!(status, 200, "{kind}: {view}");
    }
    let (_, breakdown) = server.get("/api/stats/children").await;
    assert_eq!(breakdown["total"]["assigned"], 1, "{breakdown}");
    assert_eq!(
        child_in(&breakdown, SECOND_VILLAGE)["measures"]["assigned"],
        1
    );
    assert_eq!(
        child_in(&breakdown, FIRST_VILLAGE)["measures"]["assigned"],
        0
    );
    let (status, filtered) = server
        .get("/api/stats/children?category=land_requisition")
        .await;
    assert_eq!(status, 200, "{filtered}");
    assert_eq!(filtered["total"]["cases"], 0);
    let (status, error) = server.get("/api/stats/children?by=child").await;
    assert_eq!(status, 400, "{error}");

    // What the rollup answers is what a scan of the stored summaries answers.
    let (_temp, dir) = server.stop().await;
    let node = Node::open(&dir).expect("node reopens");
    let now = Utc::now();
    let mut summaries = Vec::new();
    node.store()
        .for_each_summary(|summary| summaries.push(summary.clone()))
        .expect("summaries read");
    let thresholds = &node.config().warnings;
    let scan = fengqiao_case::measures::measures(
        &summaries,
        fengqiao_case::ImportedCases::Include,
        None,
        None,
        now,
        thresholds,
    );
    let query = StatsQuery::default();
    assert_eq!(node.stats(now, &query).expect("stats"), scan);
    let breakdown = node.stats_by_child(now, &query).expect("breakdown");
    assert_eq!(breakdown.total, scan.total);
    for child in &breakdown.children {
        let in_child = summaries
            .iter()
            .filter(|summary| summary.region_code.starts_with(&child.region_code));
        let child_scan = fengqiao_case::measures::measures(
            in_child,
            fengqiao_case::ImportedCases::Include,
            None,
            None,
            now,
            thresholds,
        );
        assert_eq!(child.measures, child_scan.total, "{}", child.region_code);
    }
    assert_eq!(
        breakdown
            .children
            .iter()
            .map(|child| child.measures.cases)
            .sum::<u64>(),
        breakdown.total.cases
    );
}

#[test]
fn a_county_breaks_down_by_township_then_village_with_names_from_the_roster() {
    const TOWNSHIP_NODE: &str = "33333333333333333333333333333333";
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = node_with_children(
        &temp,
        "武陵区信访局",
        Tier::County,
        "430702",
        &[(TOWNSHIP_NODE, "河洑镇", TOWNSHIP)],
    );
    let node = Node::open(&dir).expect("node opens");
    let now = Utc::now();
    for (region_code, village) in [
        (FIRST_VILLAGE, "芦荻山村"),
        (SECOND_VILLAGE, "丹洲村"),
        (SECOND_VILLAGE, "丹洲村"),
        ("430702002001", "河洑村"),
    ] {
        let request: RegisterCase =
            serde_json::from_value(registration_in(region_code, village)).expect("registration");
        node.register(&tester(), now, request).expect("registered");
    }
    // The roster knows the first village (admitted by the township), not the second.
    let roster = [fengqiao_case::model::roster::RosterMemberView {
        node_id: FIRST_VILLAGE_NODE.to_owned(),
        name: "芦荻山村".to_owned(),
        tier: Tier::Village,
        region_code: FIRST_VILLAGE.to_owned(),
        admitted_by: Some(TOWNSHIP_NODE.to_owned()),
        issued_at: now,
        revoked: false,
    }];
    let breakdown = node
        .stats_by_child_among(now, &StatsQuery::default(), &roster)
        .expect("breakdown");
    assert_eq!(breakdown.total.cases, 4);
    // The case in another township's village lies under no child of this county.
    assert_eq!(breakdown.own.cases, 1);
    assert_eq!(breakdown.children.len(), 1);
    let township = &breakdown.children[0];
    assert_eq!(township.name.as_deref(), Some("河洑镇"));
    assert_eq!(township.measures.cases, 3);
    let villages: Vec<(Option<&str>, &str, u64)> = township
        .children
        .iter()
        .map(|village| {
            (
                village.name.as_deref(),
                village.region_code.as_str(),
                village.measures.cases,
            )
        })
        .collect();
    assert_eq!(
        villages,
        vec![
            (Some("芦荻山村"), FIRST_VILLAGE, 1),
            (None, SECOND_VILLAGE, 2)
        ]
    );
}

#[test]
fn stats_by_child_name_revoked_offices_by_their_last_name_while_their_cases_remain() {
    const TOWNSHIP_NODE: &str = "33333333333333333333333333333333";
    const OTHER_TOWNSHIP: &str = "430702002";
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = node_with_children(
        &temp,
        "武陵区信访局",
        Tier::County,
        "430702",
        &[(TOWNSHIP_NODE, "河洑镇", TOWNSHIP)],
    );
    let node = Node::open(&dir).expect("node opens");
    let now = Utc::now();
    for (region_code, village) in [
        (FIRST_VILLAGE, "芦荻山村"),
        (SECOND_VILLAGE, "丹洲村"),
        ("430702002001", "河洑村"),
    ] {
        let request: RegisterCase =
            serde_json::from_value(registration_in(region_code, village)).expect("registration");
        node.register(&tester(), now, request).expect("registered");
    }
    let office = |node_id: &str, name: &str, tier, region_code: &str, by: &str, revoked| {
        fengqiao_case::model::roster::RosterMemberView {
            node_id: node_id.to_owned(),
            name: name.to_owned(),
            tier,
            region_code: region_code.to_owned(),
            admitted_by: Some(by.to_owned()),
            issued_at: now,
            revoked,
        }
    };
    let county_node = node.node_id().to_owned();
    let roster = [
        // The first village's node was replaced: the current one names its cases.
        office(
            "a".repeat(32).as_str(),
            "旧芦荻山村",
            Tier::Village,
            FIRST_VILLAGE,
            TOWNSHIP_NODE,
            true,
        ),
        office(
            FIRST_VILLAGE_NODE,
            "芦荻山村",
            Tier::Village,
            FIRST_VILLAGE,
            TOWNSHIP_NODE,
            false,
        ),
        // The second village was revoked and nobody took its region over.
        office(
            SECOND_VILLAGE_NODE,
            "丹洲村",
            Tier::Village,
            SECOND_VILLAGE,
            TOWNSHIP_NODE,
            true,
        ),
        // A revoked village without cases is not listed.
        office(
            "b".repeat(32).as_str(),
            "白鹤村",
            Tier::Village,
            "430702001003",
            TOWNSHIP_NODE,
            true,
        ),
        // A township this county revoked, whose cases remain here.
        office(
            "c".repeat(32).as_str(),
            "丹洲乡",
            Tier::Township,
            OTHER_TOWNSHIP,
            &county_node,
            true,
        ),
    ];
    let breakdown = node
        .stats_by_child_among(now, &StatsQuery::default(), &roster)
        .expect("breakdown");
    let named = |offices: &[fengqiao_case::model::stats::OfficeStats]| {
        offices
            .iter()
            .map(|office| {
                (
                    office.name.clone(),
                    office.region_code.clone(),
                    office.revoked,
                    office.measures.cases,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        named(&breakdown.children),
        vec![
            (Some("河洑镇".to_owned()), TOWNSHIP.to_owned(), false, 2),
            (
                Some("丹洲乡".to_owned()),
                OTHER_TOWNSHIP.to_owned(),
                true,
                1
            ),
        ]
    );
    assert_eq!(
        named(&breakdown.children[0].children),
        vec![
            (
                Some("芦荻山村".to_owned()),
                FIRST_VILLAGE.to_owned(),
                false,
                1
            ),
            (
                Some("丹洲村".to_owned()),
                SECOND_VILLAGE.to_owned(),
                true,
                1
            ),
        ]
    );
    // Every case is counted once: the children add up to the total.
    assert_eq!(breakdown.own.cases, 0);
    assert_eq!(breakdown.total.cases, 3);
    let json = serde_json::to_value(&breakdown).expect("json");
    assert_eq!(json["children"][1]["revoked"], true, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_beyond_the_nodes_authority_is_answered_403_with_the_rule() {
    let server = TestServer::start().await;
    let number = case_with_events(&server, &[json!({"kind": "accept", "payload": {}})]).await;
    // Outside a federation nobody is above the village: it cannot supervise its own case.
    let directive = json!({"kind": "issue_directive", "payload": {
        "directive": "D1",
        "target_node": "someone-below",
        "requirement": "七日内报送",
        "due": "2099-12-31",
        "listed": false,
    }});
    let (status, error) = server
        .post(&format!("/api/cases/{number}/events"), &directive)
        .await;
    assert_eq!(status, 403, "{error}");
    let message = error["error"].as_str().expect("an error message");
    assert!(
        message.contains("may not issue_directive: only a tier above the holder supervises"),
        "{message}"
    );
    server.stop().await;
}

#[test]
fn cases_registered_while_the_statistics_are_first_counted_are_all_counted() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = node_with_children(
        &temp,
        "河洑镇信访办",
        Tier::Township,
        TOWNSHIP,
        &[(FIRST_VILLAGE_NODE, "芦荻山村", FIRST_VILLAGE)],
    );
    let node = Node::open(&dir).expect("node opens");
    let now = Utc::now();
    let register = |count: usize| {
        for _ in 0..count {
            let request: RegisterCase =
                serde_json::from_value(registration_in(FIRST_VILLAGE, "芦荻山村"))
                    .expect("registration");
            node.register(&tester(), now, request).expect("registered");
        }
    };
    register(200);
    // The first count scans the store while more cases are registered: those committed during
    // the scan are kept aside and counted after it.
    std::thread::scope(|scope| {
        scope.spawn(|| register(100));
        scope.spawn(|| {
            for _ in 0..20 {
                node.prepare_stats().expect("counted");
            }
        });
    });
    let mut summaries = Vec::new();
    node.store()
        .for_each_summary(|summary| summaries.push(summary.clone()))
        .expect("summaries read");
    assert_eq!(summaries.len(), 300);
    let scan = fengqiao_case::measures::measures(
        &summaries,
        fengqiao_case::ImportedCases::Include,
        None,
        None,
        now,
        &node.config().warnings,
    );
    assert_eq!(
        node.stats(now, &StatsQuery::default()).expect("stats"),
        scan
    );
}

/// A request stuck on the store (here on a case document another thread holds, as a thread
/// stuck on a failing disk would) must not keep a stopped server from returning: it waits
/// `STOP_WAIT` for it, then gives up and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_gives_up_on_a_request_stuck_on_the_store_after_the_stop_wait() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("village");
    init_node(
        &dir,
        InitOptions {
            name: "芦荻山村调解室".into(),
            tier: Tier::Village,
            region_code: VILLAGE.into(),
            listen: None,
            parent: None,
            lan_names: Vec::new(),
        },
    )
    .unwrap();
    let bound = BoundServer::bind(&dir, Some(SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .unwrap();
    let node = Arc::clone(&bound.node);
    add_tester(&node);
    let token = cli_token(&dir);
    let address = bound.local_addr();
    let (shutdown, stop_signal) = oneshot::channel::<()>();
    let running = tokio::spawn(bound.run(async move {
        let _ = stop_signal.await;
    }));
    let request: RegisterCase = serde_json::from_value(registration()).unwrap();
    let number = node
        .register(&tester(), Utc::now(), request)
        .unwrap()
        .header
        .number;

    let (release, released) = std::sync::mpsc::channel::<()>();
    let (holding, held) = std::sync::mpsc::channel::<()>();
    let holder = {
        let number = number.clone();
        std::thread::spawn(move || {
            node.store()
                .with_case(&number, |_| {
                    holding.send(()).unwrap();
                    let _ = released.recv();
                })
                .unwrap()
        })
    };
    held.recv().unwrap();
    let stuck_read = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let _ = agent
            .get(format!("http://{address}/api/cases/{number}"))
            .header("authorization", format!("Bearer {token}"))
            .header(auth::ACT_AS_HEADER, TESTER)
            .call();
    });
    // Time for the read to reach the held document.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = std::time::Instant::now();
    shutdown.send(()).unwrap();
    let stopped = tokio::time::timeout(STOP_WAIT + Duration::from_secs(10), running)
        .await
        .expect("the server stops within its bound although a request is stuck")
        .unwrap();
    let waited = asked.elapsed();
    let error = stopped.expect_err("an unclean stop is an error");
    assert!(
        error.to_string().contains("did not stop cleanly"),
        "{error:#}"
    );
    assert!(
        waited >= STOP_WAIT - Duration::from_millis(100),
        "it waited for the request first: {waited:?}"
    );
    assert!(
        !dir.join("api.addr").exists(),
        "no stale address is left for clients"
    );

    // Here the runtime goes on, so the abandoned read is answered once let go; `fengqiao run`
    // shuts its runtime down instead.
    release.send(()).unwrap();
    holder.join().unwrap();
    let _ = stuck_read.await;
}
