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
const OPERATOR: &str = "测试员 tester";

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
            },
        )
        .unwrap();
        let bound = BoundServer::bind(&dir, Some(SocketAddr::from(([127, 0, 0, 1], 0))))
            .await
            .unwrap();
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

    /// One request; returns the status and the JSON body (every answer has one).
    async fn call(
        &self,
        method: &str,
        path: &str,
        operator: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value) {
        let url = format!("http://{}{path}", self.address);
        let method = method.to_owned();
        let operator = operator.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let response = match method.as_str() {
                "GET" => {
                    let mut request = agent.get(&url);
                    if let Some(operator) = &operator {
                        request = request.header(OPERATOR_HEADER, operator);
                    }
                    request.call()
                }
                _ => {
                    let mut request = agent.post(&url).content_type("application/json");
                    if let Some(operator) = &operator {
                        request = request.header(OPERATOR_HEADER, operator);
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
        self.call("POST", path, Some(OPERATOR), Some(body.to_string()))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, Some(OPERATOR), None).await
    }
}

fn registration() -> Value {
    json!({
        "channel": "visit",
        "petitioners": [{"name": "王秀英", "id_number": "430702198503120027"}],
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
async fn every_change_must_name_its_operator() {
    let server = TestServer::start().await;
    for route in ROUTES.iter().filter(|route| route.mutating) {
        let path = route.path.replace("{number}", "430702001002-2026-000001");
        for operator in [None, Some(""), Some("   ")] {
            let (status, error) = server
                .call(
                    route.method.http_name(),
                    &path,
                    operator,
                    Some(registration().to_string()),
                )
                .await;
            assert_eq!(status, 400, "{path} with {operator:?}: {error}");
            let message = error["error"].as_str().unwrap();
            assert!(
                message.contains("every change must name its operator")
                    && message.contains(OPERATOR_HEADER),
                "{message}"
            );
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
            Some(OPERATOR),
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
        .call("POST", "/api/health", Some(OPERATOR), Some("{}".into()))
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
    for route in ROUTES {
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
        let operator = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == OPERATOR_HEADER)
            .unwrap();
        assert_eq!(operator["required"], route.mutating);
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
        ROUTES.len(),
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

#[test]
fn operator_names_are_checked() {
    let name = |bytes: &[u8]| operator_name(&HeaderValue::from_bytes(bytes).unwrap());
    assert_eq!(
        name("  测试员 tester ".as_bytes()).unwrap(),
        "测试员 tester"
    );
    assert!(name(b"\xff\xfe").unwrap_err().message.contains("not UTF-8"));
    assert!(name("x".repeat(101).as_bytes()).is_err());
    assert!(name(b"a\tb").is_err());
}
