//! The OpenAPI document against a running node (issue 13, item 7): every route driven once on
//! its happy path and once into an error, and every answer's body validated (JSON Schema 2020-12,
//! formats checked) against the schema the document gives for that route and status; every
//! answer is JSON, a 414 included; the limits declare the minimum the node takes.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use fengqiao_tests::{
    ACT_AS_HEADER, NodeProcess, Office, TEST_LOGIN, TEST_PASSWORD, VILLAGE_REGION, bare_agent,
    cli_token, sample_registration,
};
use serde_json::{Value, json};

/// One answer: status, content type, body as JSON (`Value::Null` if it was not JSON).
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    raw: String,
}

/// How a request proves its account.
#[derive(Debug, Clone, Copy)]
enum Credentials<'a> {
    None,
    /// The node's CLI token acting as the tests' account.
    Token,
    /// A session cookie and its CSRF token.
    Session(&'a str, &'a str),
}

struct Client {
    address: SocketAddr,
    token: String,
}

impl Client {
    fn send(
        &self,
        method: &str,
        path: &str,
        credentials: Credentials<'_>,
        body: Option<&str>,
        content_type: Option<&str>,
    ) -> (Answer, Vec<String>) {
        let url = format!("http://{}{path}", self.address);
        let agent = bare_agent();
        let mut headers: Vec<(String, String)> = Vec::new();
        match credentials {
            Credentials::None => {}
            Credentials::Token => {
                headers.push(("authorization".into(), format!("Bearer {}", self.token)));
                headers.push((ACT_AS_HEADER.into(), TEST_LOGIN.into()));
            }
            Credentials::Session(cookie, csrf) => {
                headers.push(("cookie".into(), cookie.to_owned()));
                headers.push(("x-csrf-token".into(), csrf.to_owned()));
            }
        }
        if let Some(content_type) = content_type {
            headers.push(("content-type".into(), content_type.to_owned()));
        }
        let result = match method {
            "GET" | "DELETE" => {
                let mut request = if method == "GET" {
                    agent.get(&url)
                } else {
                    agent.delete(&url)
                };
                for (name, value) in &headers {
                    request = request.header(name, value);
                }
                request.call()
            }
            _ => {
                let mut request = agent.post(&url);
                for (name, value) in &headers {
                    request = request.header(name, value);
                }
                request.send(body.unwrap_or("").as_bytes())
            }
        };
        let mut response = result.unwrap_or_else(|error| {
            panic!(
                "{method} {}: {error}",
                path.chars().take(200).collect::<String>()
            )
        });
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or("").to_owned())
            .collect();
        let raw = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        (
            Answer {
                status,
                content_type,
                body,
                raw,
            },
            cookies,
        )
    }
}

/// Send `request` (a whole HTTP/1.1 request head) as bytes on a new connection and read the
/// answer until the node closes it.
fn raw_request(address: SocketAddr, request: &str) -> Answer {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("a read timeout");
    // The node may answer and close before it has read all of a too large request.
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        raw: text.chars().take(500).collect(),
    }
}

/// Checks answers against the document, and remembers which routes answered what.
struct Conformance {
    document: Value,
    answered: BTreeSet<(String, String, u16)>,
}

impl Conformance {
    /// `answer` to `METHOD template` conforms: the status is one the document lists for the
    /// route, the body is JSON and valid against that status's schema.
    fn check(&mut self, method: &str, template: &str, answer: &Answer) {
        let operation = &self.document["paths"][template][method.to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not in the document"
        );
        let response = &operation["responses"][answer.status.to_string()];
        assert!(
            response.is_object(),
            "{method} {template} answered {}, a status the document does not list for it: {}",
            answer.status,
            answer.raw
        );
        // A file (the ledger export, a backup) is described as bytes: an Excel workbook, CSV or
        // a backup file.
        if response["content"]["application/octet-stream"].is_object() {
            assert!(
                answer.content_type.starts_with("text/csv")
                    || answer
                        .content_type
                        .starts_with("application/vnd.openxmlformats")
                    || answer.content_type.starts_with("application/octet-stream"),
                "{method} {template} answered {} as {:?}, not a file",
                answer.status,
                answer.content_type
            );
            self.answered
                .insert((method.to_owned(), template.to_owned(), answer.status));
            return;
        }
        // A text answer (the Prometheus scrape) is described as text, not as a JSON schema.
        if response["content"]["text/plain"].is_object() {
            assert!(
                answer.content_type.starts_with("text/plain"),
                "{method} {template} answered {} as {:?}, not text: {:?}",
                answer.status,
                answer.content_type,
                answer.raw
            );
            assert!(
                !answer.raw.is_empty(),
                "{method} {template}: an empty answer"
            );
            self.answered
                .insert((method.to_owned(), template.to_owned(), answer.status));
            return;
        }
        assert!(
            answer.content_type.starts_with("application/json"),
            "{method} {template} answered {} as {:?}, not JSON: {:?}",
            answer.status,
            answer.content_type,
            answer.raw
        );
        assert!(
            !answer.body.is_null(),
            "{method} {template} answered {} without a JSON body: {:?}",
            answer.status,
            answer.raw
        );
        let mut schema = response["content"]["application/json"]["schema"].clone();
        schema["components"] = self.document["components"].clone();
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|error| panic!("the schema of {method} {template}: {error}"));
        let errors: Vec<String> = validator
            .iter_errors(&answer.body)
            .map(|error| format!("{error} (at {})", error.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} answered {} with a body the document does not describe: \
             {errors:#?}\n{}",
            answer.status,
            answer.raw
        );
        self.answered
            .insert((method.to_owned(), template.to_owned(), answer.status));
    }

    /// The validator is not vacuous: the document's schemas refuse a case without its fields,
    /// an unknown enum value, and a registration whose summary holds an escape character.
    fn validator_refuses_what_the_document_rules_out(&self) {
        let validator_of = |schema: Value| {
            let mut schema = schema;
            schema["components"] = self.document["components"].clone();
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&schema)
                .expect("the schema compiles")
        };
        let case_view = validator_of(json!({"$ref": "#/components/schemas/CaseView"}));
        assert!(!case_view.is_valid(&json!({"header": {}})));
        let registration = validator_of(json!({"$ref": "#/components/schemas/RegisterCase"}));
        assert!(registration.is_valid(&sample_registration(VILLAGE_REGION, 1)));
        let mut lost = sample_registration(VILLAGE_REGION, 1);
        lost["channel"] = json!("carrier_pigeon");
        assert!(!registration.is_valid(&lost));
        let mut escaped = sample_registration(VILLAGE_REGION, 1);
        escaped["summary"] = json!("欠薪\u{1b}[2J");
        assert!(!registration.is_valid(&escaped));
        let mut crowd = sample_registration(VILLAGE_REGION, 1);
        crowd["headcount"] = json!(10_001);
        assert!(!registration.is_valid(&crowd));
    }
}

#[test]
fn every_route_answers_as_the_document_says_happy_and_refused() {
    let temp = tempfile::tempdir().expect("tempdir");
    // A county with an admitted township: the federation routes have a roster and a link.
    let county = Office::county(temp.path());
    let township = Office::township(temp.path());
    county.admit(&township);
    let node: NodeProcess = county.start();
    let client = Client {
        address: node.address,
        token: cli_token(&county.dir).expect("the node's CLI token"),
    };
    let (answer, _) = client.send("GET", "/api/openapi.json", Credentials::None, None, None);
    assert_eq!(answer.status, 200);
    let mut conformance = Conformance {
        document: answer.body.clone(),
        answered: BTreeSet::new(),
    };
    conformance.check("GET", "/api/openapi.json", &answer);
    conformance.validator_refuses_what_the_document_rules_out();

    let json = Some("application/json");
    let token = Credentials::Token;
    let mut call = |method: &str, template: &str, path: &str, body: Option<Value>| {
        let text = body.map(|body| body.to_string());
        let (answer, _) = client.send(method, path, token, text.as_deref(), json);
        conformance.check(method, template, &answer);
        answer
    };

    // The node and its document.
    call("GET", "/api/health", "/api/health", None);
    let refused = call("GET", "/api/health", "/api/health?verbose=1", None);
    assert_eq!(refused.status, 400);
    let long = format!("/api/openapi.json?x={}", "a".repeat(9_000));
    let too_long = call("GET", "/api/openapi.json", &long, None);
    assert_eq!(too_long.status, 414, "{}", too_long.raw);
    // Past hyper's own bounds (a 64 KiB URI, its header buffer) hyper refuses before any
    // handler runs: a JSON body still. Sent raw: HTTP clients refuse to send them.
    let longer = format!("GET /api/cases/{} HTTP/1.1\r\n\r\n", "4".repeat(70_000));
    let too_long = raw_request(client.address, &longer);
    assert_eq!(too_long.status, 414, "{}", too_long.raw);
    conformance.check("GET", "/api/cases/{number}", &too_long);
    let huge_header = format!(
        "GET /api/health HTTP/1.1\r\nx-padding: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let too_large = raw_request(client.address, &huge_header);
    assert_eq!(too_large.status, 431, "{}", too_large.raw);
    conformance.check("GET", "/api/health", &too_large);
    let mut call = |method: &str, template: &str, path: &str, body: Option<Value>| {
        let text = body.map(|body| body.to_string());
        let (answer, _) = client.send(method, path, token, text.as_deref(), json);
        conformance.check(method, template, &answer);
        answer
    };

    // Cases.
    let registered = call(
        "POST",
        "/api/cases",
        "/api/cases",
        Some(sample_registration(VILLAGE_REGION, 1)),
    );
    assert_eq!(registered.status, 201, "{}", registered.raw);
    let number = registered.body["header"]["number"]
        .as_str()
        .expect("a case number")
        .to_owned();
    let mut control = sample_registration(VILLAGE_REGION, 2);
    control["summary"] = json!("欠薪\u{1b}[2J");
    assert_eq!(
        call("POST", "/api/cases", "/api/cases", Some(control)).status,
        400
    );
    let mut missing = sample_registration(VILLAGE_REGION, 3);
    missing.as_object_mut().map(|body| body.remove("channel"));
    assert_eq!(
        call("POST", "/api/cases", "/api/cases", Some(missing)).status,
        422
    );
    let (not_json, _) = client.send(
        "POST",
        "/api/cases",
        token,
        Some(&sample_registration(VILLAGE_REGION, 4).to_string()),
        Some("text/plain"),
    );
    assert_eq!(not_json.status, 415);
    conformance.check("POST", "/api/cases", &not_json);
    let mut call = |method: &str, template: &str, path: &str, body: Option<Value>| {
        let text = body.map(|body| body.to_string());
        let (answer, _) = client.send(method, path, token, text.as_deref(), json);
        conformance.check(method, template, &answer);
        answer
    };

    let listed = call("GET", "/api/cases", "/api/cases", None);
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    let none = call("GET", "/api/cases", "/api/cases?limit=0", None);
    assert_eq!(none.status, 200, "the documented minimum 0 is taken");
    assert_eq!(none.body, json!([]));
    assert_eq!(
        call("GET", "/api/cases", "/api/cases?status=lost", None).status,
        400
    );
    let case_path = format!("/api/cases/{number}");
    assert_eq!(
        call("GET", "/api/cases/{number}", &case_path, None).status,
        200
    );
    assert_eq!(
        call(
            "GET",
            "/api/cases/{number}",
            "/api/cases/430702-2026-999999",
            None
        )
        .status,
        404
    );
    let events = format!("/api/cases/{number}/events");
    let template = "/api/cases/{number}/events";
    let accept = json!({"kind": "accept", "payload": {}});
    assert_eq!(
        call("POST", template, &events, Some(accept.clone())).status,
        200
    );
    assert_eq!(call("POST", template, &events, Some(accept)).status, 409);
    let note = json!({"kind": "note", "payload": {"text": "已电话回访"}});
    assert_eq!(call("POST", template, &events, Some(note)).status, 200);
    assert_eq!(
        call(
            "POST",
            template,
            "/api/cases/430702-2026-999999/events",
            Some(json!({"kind": "accept", "payload": {}}))
        )
        .status,
        404
    );
    call("GET", "/api/directives", "/api/directives?open=true", None);
    assert_eq!(
        call("GET", "/api/directives", "/api/directives?open=maybe", None).status,
        400
    );

    // The 台账 as a file: CSV reads as text here.
    let exported = call(
        "GET",
        "/api/export/ledger",
        "/api/export/ledger?format=csv&category=wage_arrears",
        None,
    );
    assert_eq!(exported.status, 200, "{}", exported.raw);
    assert!(exported.raw.contains("编号"), "{}", exported.raw);
    assert_eq!(
        call(
            "GET",
            "/api/export/ledger",
            "/api/export/ledger?format=pdf",
            None
        )
        .status,
        400
    );

    // Measures.
    call("GET", "/api/stats", "/api/stats?from=2026-01-01", None);
    assert_eq!(
        call("GET", "/api/stats", "/api/stats?from=yesterday", None).status,
        400
    );
    call("GET", "/api/stats/children", "/api/stats/children", None);
    assert_eq!(
        call(
            "GET",
            "/api/stats/children",
            "/api/stats/children?category=lost",
            None
        )
        .status,
        400
    );

    // Import.
    let batch = json!({
        "rows": [{"line": 2, "case": sample_registration(VILLAGE_REGION, 5), "history": [
            {"kind": "accept", "payload": {}, "at": "2026-01-05T09:00:00+08:00"}
        ]}],
        "dry_run": true,
    });
    let imported = call("POST", "/api/import", "/api/import", Some(batch));
    assert_eq!(imported.status, 200, "{}", imported.raw);
    assert_eq!(
        call(
            "POST",
            "/api/import",
            "/api/import",
            Some(json!({"rows": [], "dryrun": true}))
        )
        .status,
        400
    );

    // Federation.
    let peers = call("GET", "/api/peers", "/api/peers", None);
    assert_eq!(
        peers.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        peers.raw
    );
    assert_eq!(
        call("GET", "/api/peers", "/api/peers?all=1", None).status,
        400
    );
    call("GET", "/api/roster", "/api/roster", None);
    assert_eq!(
        call("GET", "/api/roster", "/api/roster?all=1", None).status,
        400
    );
    let reload = call(
        "POST",
        "/api/federation/reload",
        "/api/federation/reload",
        None,
    );
    assert_eq!(reload.status, 200, "{}", reload.raw);
    assert_eq!(
        call(
            "POST",
            "/api/federation/reload",
            "/api/federation/reload?dry_run=1",
            None
        )
        .status,
        400
    );

    // The federation's policy: read, issued at the root (this county), refused by name.
    let policy = call("GET", "/api/policy", "/api/policy", None);
    assert_eq!(policy.status, 200, "{}", policy.raw);
    let issued = call(
        "POST",
        "/api/policy",
        "/api/policy",
        Some(json!({"limits": {"max_extension_days": 45}, "note": "延期上限四十五天"})),
    );
    assert_eq!(issued.status, 201, "{}", issued.raw);
    let spoiled = call(
        "POST",
        "/api/policy",
        "/api/policy",
        Some(json!({"limits": {"max_extension_days": "四十五"}})),
    );
    assert!(
        (400..500).contains(&spoiled.status) && spoiled.raw.contains("max_extension_days"),
        "{}",
        spoiled.raw
    );

    // Audit and quarantine.
    let audit_path = format!("/api/audit/cases/{number}");
    call("GET", "/api/audit/cases/{number}", &audit_path, None);
    assert_eq!(
        call(
            "GET",
            "/api/audit/cases/{number}",
            "/api/audit/cases/430702-2026-999999",
            None
        )
        .status,
        404
    );
    let verify = call("GET", "/api/audit/verify", "/api/audit/verify", None);
    assert_eq!(verify.body["failures"], json!([]));
    assert_eq!(
        call("GET", "/api/audit/verify", "/api/audit/verify?deep=1", None).status,
        400
    );
    call("GET", "/api/quarantine", "/api/quarantine?limit=1", None);
    let zero = call("GET", "/api/quarantine", "/api/quarantine?limit=0", None);
    assert_eq!(zero.status, 400, "below the documented minimum 1");

    // Accounts.
    call("GET", "/api/session", "/api/session", None);
    call("GET", "/api/users", "/api/users", None);
    let clerk = json!({"login": "clerk", "display_name": "书记员", "roles": ["operator"]});
    assert_eq!(
        call("POST", "/api/users", "/api/users", Some(clerk.clone())).status,
        201
    );
    assert_eq!(
        call("POST", "/api/users", "/api/users", Some(clerk)).status,
        409
    );
    let password = "/api/users/{login}/password";
    assert_eq!(
        call(
            "POST",
            password,
            "/api/users/clerk/password",
            Some(json!({}))
        )
        .status,
        200
    );
    assert_eq!(
        call(
            "POST",
            password,
            "/api/users/nobody/password",
            Some(json!({}))
        )
        .status,
        404
    );
    let roles = "/api/users/{login}/roles";
    let supervisor = json!({"roles": ["supervisor"]});
    assert_eq!(
        call("POST", roles, "/api/users/clerk/roles", Some(supervisor)).status,
        200
    );
    let king = call(
        "POST",
        roles,
        "/api/users/clerk/roles",
        Some(json!({"roles": ["king"]})),
    );
    assert!(king.status == 400 || king.status == 422, "{}", king.raw);
    let disable = "/api/users/{login}/disable";
    assert_eq!(
        call("POST", disable, "/api/users/clerk/disable", None).status,
        200
    );
    assert_eq!(
        call("POST", disable, "/api/users/nobody/disable", None).status,
        404
    );
    call("GET", "/api/tokens", "/api/tokens", None);
    let created = call(
        "POST",
        "/api/tokens",
        "/api/tokens",
        Some(json!({"login": TEST_LOGIN, "name": "报表脚本"})),
    );
    assert_eq!(created.status, 201, "{}", created.raw);
    assert_eq!(
        call(
            "POST",
            "/api/tokens",
            "/api/tokens",
            Some(json!({"login": "nobody", "name": "x"}))
        )
        .status,
        404
    );
    let id = created.body["token"]["id"]
        .as_str()
        .expect("a token id")
        .to_owned();
    let revoke = "/api/tokens/{id}/revoke";
    assert_eq!(
        call("POST", revoke, &format!("/api/tokens/{id}/revoke"), None).status,
        200
    );
    let unknown = call("POST", revoke, "/api/tokens/000000000000/revoke", None);
    assert!(unknown.status >= 400, "{}", unknown.raw);

    // Sign in, who am I, sign out, with a session; and without an account.
    let sign_in = json!({"login": TEST_LOGIN, "password": TEST_PASSWORD}).to_string();
    let (signed_in, cookies) = client.send(
        "POST",
        "/api/session",
        Credentials::None,
        Some(&sign_in),
        json,
    );
    assert_eq!(signed_in.status, 200, "{}", signed_in.raw);
    conformance.check("POST", "/api/session", &signed_in);
    let wrong = json!({"login": TEST_LOGIN, "password": "not-the-password"}).to_string();
    let (refused, _) = client.send(
        "POST",
        "/api/session",
        Credentials::None,
        Some(&wrong),
        json,
    );
    assert_eq!(refused.status, 401);
    conformance.check("POST", "/api/session", &refused);
    let cookie = cookies.join("; ");
    let csrf = signed_in.body["csrf_token"]
        .as_str()
        .expect("a CSRF token")
        .to_owned();
    let session = Credentials::Session(&cookie, &csrf);
    let (signed_out, _) = client.send("DELETE", "/api/session", session, None, None);
    assert_eq!(signed_out.status, 200, "{}", signed_out.raw);
    conformance.check("DELETE", "/api/session", &signed_out);
    let (anonymous, _) = client.send("DELETE", "/api/session", Credentials::None, None, None);
    assert_eq!(anonymous.status, 401);
    conformance.check("DELETE", "/api/session", &anonymous);
    let (anonymous, _) = client.send("GET", "/api/cases", Credentials::None, None, None);
    assert_eq!(anonymous.status, 401);
    conformance.check("GET", "/api/cases", &anonymous);

    // The Prometheus scrape, as text; from loopback it needs no credential.
    let (scraped, _) = client.send("GET", "/metrics", Credentials::None, None, None);
    assert_eq!(scraped.status, 200, "{}", scraped.raw);
    conformance.check("GET", "/metrics", &scraped);
    let (refused, _) = client.send("GET", "/metrics?x=1", Credentials::None, None, None);
    assert_eq!(refused.status, 400, "{}", refused.raw);
    conformance.check("GET", "/metrics", &refused);

    // A backup, streamed as bytes (the tests' account is an admin).
    let (backup, _) = client.send("GET", "/api/backup", Credentials::Token, None, None);
    assert_eq!(backup.status, 200, "{}", backup.raw);
    conformance.check("GET", "/api/backup", &backup);

    // Every route the document lists answered its success status at least once.
    let document = conformance.document.clone();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let success = operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .filter_map(|status| status.parse::<u16>().ok())
                .find(|status| *status < 300)
                .expect("a success status");
            assert!(
                conformance.answered.contains(&(
                    method.to_ascii_uppercase(),
                    path.clone(),
                    success
                )),
                "{method} {path} was not driven to its {success}"
            );
        }
    }
}

/// The document's limits say what the node takes: `GET /api/cases?limit` from 0, `GET
/// /api/quarantine?limit` from 1 (0 lists nothing and is refused).
#[test]
fn the_documented_limit_minimums_are_the_ones_the_node_takes() {
    let temp = tempfile::tempdir().expect("tempdir");
    let county = Office::county(temp.path());
    let node = county.start();
    let client = Client {
        address: node.address,
        token: cli_token(&county.dir).expect("the node's CLI token"),
    };
    let (document, _) = client.send("GET", "/api/openapi.json", Credentials::None, None, None);
    let minimum = |path: &str| {
        document.body["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|parameter| parameter["name"] == "limit")
            .map(|parameter| parameter["schema"]["minimum"].as_u64().expect("a minimum"))
            .expect("a limit parameter")
    };
    for path in ["/api/cases", "/api/quarantine"] {
        let least = minimum(path);
        let (taken, _) = client.send(
            "GET",
            &format!("{path}?limit={least}"),
            Credentials::Token,
            None,
            None,
        );
        assert_eq!(taken.status, 200, "{path} limit {least}: {}", taken.raw);
        if least > 0 {
            let (refused, _) = client.send(
                "GET",
                &format!("{path}?limit={}", least - 1),
                Credentials::Token,
                None,
                None,
            );
            assert_eq!(refused.status, 400, "{path}: {}", refused.raw);
            assert!(
                refused.body["error"]
                    .as_str()
                    .is_some_and(|error| error.contains("limit")),
                "{}",
                refused.raw
            );
        }
    }
}
