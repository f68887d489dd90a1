//! People sign in: accounts, roles, sessions, CSRF, tokens and the CLI token, through a real
//! `fengqiao run`. Every refusal leaves the store as it was: the case count is unchanged and
//! `audit verify` passes.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fengqiao_tests::{
    NodeProcess, TEST_OPERATOR, TEST_PASSWORD, VILLAGE_REGION, add_account, bare_agent,
    case_number, fengqiao_command, http_get, init_node, path_str, run_cli, run_cli_json,
    run_cli_ok, sample_registration,
};
use serde_json::{Value, json};

/// A village node with the tests' account and an operator `lizt` (李调解), sessions ending after
/// `idle_seconds` without a request.
fn village_with_operator(dir: &Path, idle_seconds: u64) -> NodeProcess {
    init_node(dir, "芦荻山村调解室", "village", VILLAGE_REGION);
    add_account(dir, "lizt", "李调解", &["operator"]);
    let config_path = dir.join("fengqiao.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    let config = config.replace(
        "session_idle_seconds = 28800",
        &format!("session_idle_seconds = {idle_seconds}"),
    );
    std::fs::write(&config_path, config).expect("config written");
    NodeProcess::start(dir).expect("start node")
}

/// An HTTP answer: status, `Set-Cookie`, JSON body.
struct Answer {
    status: u16,
    cookie: Option<String>,
    body: Value,
}

/// A request with only the headers given (no credentials of the tests' own).
fn call(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let url = format!("http://{address}{path}");
    let agent = bare_agent();
    let response = match method {
        "GET" => {
            let mut request = agent.get(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.call()
        }
        "DELETE" => {
            let mut request = agent.delete(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.call()
        }
        _ => {
            let mut request = agent.post(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send_json(body.cloned().unwrap_or_else(|| json!({})))
        }
    };
    let mut response = response.expect("the node answers");
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.body_mut().read_json().expect("a JSON answer");
    Answer {
        status,
        cookie,
        body,
    }
}

fn sign_in(address: SocketAddr, login: &str, password: &str) -> Answer {
    call(
        address,
        "POST",
        "/api/session",
        &[],
        Some(&json!({"login": login, "password": password})),
    )
}

/// `fengqiao_session=…` from a `Set-Cookie` value, as a browser sends it back.
fn session_cookie(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("a cookie")
        .trim()
        .to_owned()
}

fn case_count(node: &NodeProcess) -> u64 {
    let (status, health) = http_get(node.address, "/api/health").expect("health");
    assert_eq!(status, 200, "{health}");
    health["case_count"].as_u64().expect("case_count")
}

fn audit_verify_passes(node: &NodeProcess) {
    run_cli_ok(&["audit", "verify", "--dir", path_str(&node.dir)]);
}

/// Run the CLI with `stdin` as its input.
fn run_cli_with_stdin(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = fengqiao_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fengqiao");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("fengqiao finishes")
}

#[test]
fn sign_in_csrf_operator_from_the_account_and_idle_expiry() {
    let temp = tempfile::tempdir().expect("tempdir");
    let node = village_with_operator(&temp.path().join("village"), 3);
    let address = node.address;

    // Wrong password and unknown login: the same refusal.
    let wrong = sign_in(address, "lizt", "not-the-password");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let unknown = sign_in(address, "nobody", "not-the-password");
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    assert_eq!(wrong.body, unknown.body);
    assert!(wrong.cookie.is_none());

    let signed_in = sign_in(address, "lizt", TEST_PASSWORD);
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let set_cookie = signed_in.cookie.expect("a session cookie");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP on loopback: {set_cookie}"
    );
    assert_eq!(signed_in.body["operator"], "李调解 (lizt)");
    let csrf = signed_in.body["csrf_token"]
        .as_str()
        .expect("a CSRF token")
        .to_owned();
    let cookie = session_cookie(&set_cookie);

    let me = call(address, "GET", "/api/session", &[("cookie", &cookie)], None);
    assert_eq!((me.status, me.body["via"].as_str()), (200, Some("session")));

    // A change by cookie without, or with a wrong, CSRF token: refused, nothing written.
    let registration = sample_registration(VILLAGE_REGION, 1);
    let before = case_count(&node);
    let missing = call(
        address,
        "POST",
        "/api/cases",
        &[("cookie", &cookie)],
        Some(&registration),
    );
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert!(
        missing.body["error"]
            .as_str()
            .is_some_and(|message| message.contains("missing CSRF token")),
        "{}",
        missing.body
    );
    // The last character changed: to '0', or to '1' if it was '0' (it was a right token by
    // chance one run in dozens before).
    let last = if csrf.ends_with('0') { '1' } else { '0' };
    let wrong_csrf = format!("{}{last}", &csrf[..csrf.len() - 1]);
    let wrong = call(
        address,
        "POST",
        "/api/cases",
        &[("cookie", &cookie), ("x-csrf-token", &wrong_csrf)],
        Some(&registration),
    );
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(
        wrong.body["error"]
            .as_str()
            .is_some_and(|message| message.contains("wrong CSRF token")),
        "{}",
        wrong.body
    );
    assert_eq!(case_count(&node), before, "nothing was written");

    // With the token the change goes through, and whatever the caller claims, the event
    // records the signed-in account.
    let registered = call(
        address,
        "POST",
        "/api/cases",
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("x-fengqiao-operator", "王书记"),
            ("x-fengqiao-as", "tester"),
        ],
        Some(&registration),
    );
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["events"][0]["operator"], "李调解 (lizt)");
    let number = case_number(&registered.body);
    let shown = run_cli_json(&["case", "show", &number, "--dir", path_str(&node.dir)]);
    assert_eq!(shown["events"][0]["operator"], "李调解 (lizt)");

    // Idle past the limit: the session is over.
    std::thread::sleep(Duration::from_millis(3_500));
    let expired = call(address, "GET", "/api/session", &[("cookie", &cookie)], None);
    assert_eq!(expired.status, 401, "{}", expired.body);
    assert!(
        expired.body["error"]
            .as_str()
            .is_some_and(|message| message.contains("expired")),
        "{}",
        expired.body
    );
    let late = call(
        address,
        "POST",
        "/api/cases",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        Some(&registration),
    );
    assert_eq!(late.status, 401, "{}", late.body);
    assert_eq!(case_count(&node), before + 1);
    audit_verify_passes(&node);
}

#[test]
fn a_disabled_account_or_a_reset_password_ends_its_sessions() {
    let temp = tempfile::tempdir().expect("tempdir");
    let node = village_with_operator(&temp.path().join("village"), 3600);
    let dir = path_str(&node.dir).to_owned();
    let address = node.address;

    let first = sign_in(address, "lizt", TEST_PASSWORD);
    assert_eq!(first.status, 200, "{}", first.body);
    let cookie = session_cookie(&first.cookie.expect("cookie"));
    let reset = run_cli_with_stdin(
        &[
            "user",
            "reset-password",
            "lizt",
            "--password-stdin",
            "--dir",
            &dir,
            "--as",
            "admin",
        ],
        "a-new-password-2026\n",
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let after_reset = call(address, "GET", "/api/session", &[("cookie", &cookie)], None);
    assert_eq!(after_reset.status, 401, "{}", after_reset.body);
    assert_eq!(sign_in(address, "lizt", TEST_PASSWORD).status, 401);

    let second = sign_in(address, "lizt", "a-new-password-2026");
    assert_eq!(second.status, 200, "{}", second.body);
    let cookie = session_cookie(&second.cookie.expect("cookie"));
    run_cli_ok(&["user", "disable", "lizt", "--dir", &dir, "--as", "admin"]);
    let after_disable = call(address, "GET", "/api/session", &[("cookie", &cookie)], None);
    assert_eq!(after_disable.status, 401, "{}", after_disable.body);
    let refused = sign_in(address, "lizt", "a-new-password-2026");
    assert_eq!(refused.status, 401);
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|message| message.contains("disabled")),
        "{}",
        refused.body
    );
    // The CLI token cannot act as a disabled account either.
    let as_disabled = run_cli(&["case", "list", "--dir", &dir, "--as", "lizt"]);
    assert!(!as_disabled.status.success());

    let accounts = run_cli_json(&["user", "list", "--dir", &dir, "--as", "admin"]);
    let lizt = accounts
        .as_array()
        .expect("accounts")
        .iter()
        .find(|account| account["login"] == "lizt")
        .expect("lizt is listed");
    assert!(lizt["disabled_at"].is_string(), "{lizt}");
    assert!(lizt.get("password_hash").is_none(), "{lizt}");
}

#[test]
fn a_token_revoked_mid_use_stops_at_once_and_writes_nothing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let node = village_with_operator(&temp.path().join("village"), 3600);
    let dir = path_str(&node.dir).to_owned();
    let created = run_cli_json(&[
        "token",
        "create",
        "--user",
        "tester",
        "--name",
        "ledger-sync",
        "--dir",
        &dir,
        "--as",
        "admin",
    ]);
    let secret = created["secret"].as_str().expect("a secret").to_owned();
    let id = created["token"]["id"].as_str().expect("an id").to_owned();
    let bearer = format!("Bearer {secret}");

    let registered = call(
        node.address,
        "POST",
        "/api/cases",
        &[("authorization", &bearer), ("x-fengqiao-operator", "冒名")],
        Some(&sample_registration(VILLAGE_REGION, 1)),
    );
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["events"][0]["operator"], TEST_OPERATOR);
    // A token acts as its own account only.
    let other = call(
        node.address,
        "GET",
        "/api/cases",
        &[("authorization", &bearer), ("x-fengqiao-as", "admin")],
        None,
    );
    assert_eq!(other.status, 401, "{}", other.body);

    let listed = run_cli_json(&["token", "list", "--dir", &dir, "--as", "admin"]);
    assert_eq!(listed[0]["name"], "ledger-sync");
    assert!(
        !listed.to_string().contains(&secret),
        "listed without its secret"
    );
    run_cli_ok(&["token", "revoke", &id, "--dir", &dir, "--as", "admin"]);

    let before = case_count(&node);
    let revoked = call(
        node.address,
        "POST",
        "/api/cases",
        &[("authorization", &bearer)],
        Some(&sample_registration(VILLAGE_REGION, 2)),
    );
    assert_eq!(revoked.status, 401, "{}", revoked.body);
    assert_eq!(case_count(&node), before, "nothing was written");
    audit_verify_passes(&node);
}

#[test]
fn an_operator_trying_a_supervisors_action_is_refused_with_the_rule() {
    let temp = tempfile::tempdir().expect("tempdir");
    let node = village_with_operator(&temp.path().join("village"), 3600);
    let dir = path_str(&node.dir).to_owned();
    let registered = run_cli_json(&[
        "case",
        "register",
        "--dir",
        &dir,
        "--as",
        "lizt",
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
        "--headcount",
        "1",
        "--region",
        VILLAGE_REGION,
        "--village",
        "芦荻山村",
    ]);
    let number = case_number(&registered);
    assert_eq!(registered["events"][0]["operator"], "李调解 (lizt)");

    let refused = run_cli(&[
        "case",
        "escalate",
        &number,
        "--to-node",
        "0123456789abcdef0123456789abcdef",
        "--reason",
        "群体性",
        "--dir",
        &dir,
        "--as",
        "lizt",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("李调解 (lizt) may not escalate: only a supervisor (督查) escalates"),
        "{stderr}"
    );
    // Over HTTP it is a 403 naming the rule; reading the audit log is a supervisor's too.
    let (status, answer) = fengqiao_tests::http_post_as(
        node.address,
        &format!("/api/cases/{number}/events"),
        "lizt",
        &json!({"kind": "issue_directive", "payload": {
            "directive": "D1", "target_node": "x", "requirement": "七日内报送",
            "due": "2099-12-31", "listed": false,
        }}),
    )
    .expect("POST");
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|message| message.contains("only a supervisor (督查) issues a directive")),
        "{answer}"
    );
    let audit = run_cli(&["audit", "log", &number, "--dir", &dir, "--as", "lizt"]);
    assert!(String::from_utf8_lossy(&audit.stderr).contains("may not read_audit_log"));
    // An admin alone handles no case.
    let admin = run_cli(&["case", "list", "--dir", &dir, "--as", "admin"]);
    assert!(String::from_utf8_lossy(&admin.stderr).contains("may not read_cases"));
    // And an account command is an admin's.
    let (status, _) = fengqiao_tests::http_post_as(
        node.address,
        "/api/users",
        "lizt",
        &json!({"login": "x", "display_name": "X", "roles": ["admin"]}),
    )
    .expect("POST");
    assert_eq!(status, 403);

    let shown = run_cli_json(&["case", "show", &number, "--dir", &dir]);
    assert_eq!(
        shown["events"].as_array().map(Vec::len),
        Some(1),
        "nothing appended"
    );
    audit_verify_passes(&node);
}

#[test]
fn display_names_follow_the_operator_rule() {
    let temp = tempfile::tempdir().expect("tempdir");
    let node = village_with_operator(&temp.path().join("village"), 3600);
    let dir = path_str(&node.dir).to_owned();
    for name in ["李\u{202e}调解", "rule:overdue", "RULE：x"] {
        let output = run_cli(&[
            "user",
            "add",
            "wang",
            "--display-name",
            name,
            "--role",
            "operator",
            "--dir",
            &dir,
            "--as",
            "admin",
        ]);
        assert!(!output.status.success(), "{name:?} was accepted");
    }
    let accounts = run_cli_json(&["user", "list", "--dir", &dir, "--as", "admin"]);
    assert!(!accounts.to_string().contains("wang"), "{accounts}");
}

#[test]
fn no_password_token_or_session_secret_reaches_the_log() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("village");
    init_node(&dir, "芦荻山村调解室", "village", VILLAGE_REGION);
    // Debug logging: the most a node says.
    let node = NodeProcess::start_with(&dir, &["-vv"]).expect("start node");
    let dir_text = path_str(&dir).to_owned();
    let password = "lizt-secret-password-9";
    let added = run_cli_with_stdin(
        &[
            "user",
            "add",
            "lizt",
            "--display-name",
            "李调解",
            "--role",
            "operator",
            "--password-stdin",
            "--dir",
            &dir_text,
            "--as",
            "admin",
        ],
        &format!("{password}\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let wrong_password = "wrong-password-guess-7";
    assert_eq!(sign_in(node.address, "lizt", wrong_password).status, 401);
    let signed_in = sign_in(node.address, "lizt", password);
    assert_eq!(signed_in.status, 200);
    let session = session_cookie(&signed_in.cookie.expect("cookie"));
    let csrf = signed_in.body["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_owned();
    call(
        node.address,
        "POST",
        "/api/cases",
        &[("cookie", &session), ("x-csrf-token", &csrf)],
        Some(&sample_registration(VILLAGE_REGION, 1)),
    );
    let token = run_cli_json(&[
        "token", "create", "--user", "lizt", "--name", "script", "--dir", &dir_text, "--as",
        "admin",
    ]);
    let secret = token["secret"].as_str().expect("secret").to_owned();
    call(
        node.address,
        "GET",
        "/api/cases",
        &[("authorization", &format!("Bearer {secret}"))],
        None,
    );
    let reset = run_cli_json(&[
        "user",
        "reset-password",
        "lizt",
        "--dir",
        &dir_text,
        "--as",
        "admin",
    ]);
    let one_time = reset["one_time_password"]
        .as_str()
        .expect("a one-time password")
        .to_owned();
    let cli_token = fengqiao_tests::cli_token(&dir).expect("the CLI token");
    assert!(node.stop().expect("stop"), "graceful stop");

    let log = std::fs::read_to_string(NodeProcess::log_path_of(&dir)).expect("the log");
    assert!(log.contains("signed in"), "the log is the node's: {log}");
    let session_secret = session.trim_start_matches("fengqiao_session=");
    for (what, value) in [
        ("password", password),
        ("wrong password", wrong_password),
        ("one-time password", one_time.as_str()),
        ("token", secret.as_str()),
        ("session", session_secret),
        ("CSRF token", csrf.as_str()),
        ("CLI token", cli_token.as_str()),
    ] {
        assert!(!log.contains(value), "the {what} is in the log");
    }
}

#[test]
fn plain_http_beyond_loopback_is_refused_saying_what_to_set() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("village");
    init_node(&dir, "芦荻山村调解室", "village", VILLAGE_REGION);
    let output = fengqiao_command()
        .args(["run", path_str(&dir), "--listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run fengqiao");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("http.tls_cert") && stderr.contains("http.behind_proxy = true"),
        "{stderr}"
    );
    assert!(!dir.join("api.addr").exists(), "it never served");
}

/// `init --listen` beyond loopback makes the office LAN certificate and prints its fingerprint;
/// the node serves HTTPS with it; the CLI on the machine (`--dir`) trusts that certificate alone,
/// and elsewhere only with `FENGQIAO_NODE_CERT` naming it.
#[test]
fn a_node_on_the_lan_gets_its_own_certificate_and_the_cli_pins_it() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("township");
    let stdout = run_cli_ok(&[
        "init",
        path_str(&dir),
        "--name",
        "芦荻山乡综治中心",
        "--tier",
        "township",
        "--region",
        "430702001",
        "--listen",
        "0.0.0.0:0",
        "--lan-name",
        "luodi-xiang.local",
    ]);
    let fingerprint = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("SHA-256 fingerprint 指纹: "))
        .unwrap_or_else(|| panic!("init printed no fingerprint:\n{stdout}"))
        .to_owned();
    assert_eq!(fingerprint.split(':').count(), 32, "{fingerprint}");
    assert!(
        stdout.contains("API address: https://0.0.0.0:0"),
        "{stdout}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("https.key"))
            .expect("the key is written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only the node's user reads the key");
    }
    fengqiao_tests::add_test_account(&dir);

    let mut node = fengqiao_command()
        .args(["run", path_str(&dir)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fengqiao run");
    let info = fengqiao_tests::wait_for(
        "the node answers over HTTPS",
        Duration::from_secs(30),
        || {
            let output = run_cli(&["info", "--dir", path_str(&dir), "--json"]);
            if output.status.success() {
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        },
    );
    assert!(info.contains("芦荻山乡综治中心"), "{info}");

    let address = std::fs::read_to_string(dir.join("api.addr")).expect("api.addr");
    let port = address
        .trim()
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    let url = format!("https://127.0.0.1:{port}");
    let token = std::fs::read_to_string(dir.join("cli.token")).expect("the CLI token");
    // Another machine's CLI: the public roots do not vouch for a self-signed certificate …
    let refused = fengqiao_command()
        .args(["info", "--node", &url])
        .env("FENGQIAO_TOKEN", token.trim())
        .stdin(Stdio::null())
        .output()
        .expect("run fengqiao");
    assert!(
        !refused.status.success(),
        "an unpinned client must not trust it"
    );
    let refusal = String::from_utf8_lossy(&refused.stderr);
    assert!(refusal.to_lowercase().contains("certificate"), "{refusal}");
    // … the certificate copied from the node does.
    let pinned = fengqiao_command()
        .args(["info", "--node", &url])
        .env("FENGQIAO_TOKEN", token.trim())
        .env("FENGQIAO_NODE_CERT", dir.join("https.crt"))
        .stdin(Stdio::null())
        .output()
        .expect("run fengqiao");
    assert!(
        pinned.status.success(),
        "{}",
        String::from_utf8_lossy(&pinned.stderr)
    );
    // Plain HTTP is not served on that port.
    assert!(
        http_get(
            format!("127.0.0.1:{port}").parse().expect("address"),
            "/api/health"
        )
        .is_err()
    );
    let _ = node.kill();
    let _ = node.wait();
}
