//! `GET /metrics` against real processes: a township and its village linked over QUIC. Every
//! scrape is parsed with a real Prometheus text-format parser (`prometheus-parse`), and, where
//! Debian's promtool is installed (`scripts/install-promtool`), checked by `promtool check
//! metrics` too. The figures must move: cases by status as the village registers and accepts,
//! the link's connected gauge and frame and byte counters as the offices sync, and the link
//! going to 0 when the village is killed. Then who may read the scrape: loopback without a
//! credential, a wrong token 401, a role without `read_metrics` 403, a forwarded request
//! (behind a proxy) without a credential 401.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use fengqiao_tests::{
    ACT_AS_HEADER, NodeProcess, Office, TOWNSHIP_REGION, VILLAGE_REGION, add_account, bare_agent,
    case_number, cli_token, http_post, init_node, quic_address, register_sample, wait_for,
};
use prometheus_parse::{Scrape, Value};
use serde_json::json;

/// Longest the test waits for replication or a link to settle; polls end as soon as it has.
const SETTLE: Duration = Duration::from_secs(30);

/// How long a parent may take to notice a killed child: QUIC's idle timeout (30 s), plus margin.
const NOTICE_DEATH: Duration = Duration::from_secs(60);

/// One scrape: its text and what the parser read of it.
struct Metrics {
    text: String,
    scrape: Scrape,
}

impl Metrics {
    /// The value of the sample `name` whose labels include every one of `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.scrape
            .samples
            .iter()
            .find(|sample| {
                sample.metric == name
                    && labels
                        .iter()
                        .all(|(label, value)| sample.labels.get(label) == Some(*value))
            })
            .and_then(|sample| match sample.value {
                Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => Some(value),
                Value::Histogram(_) | Value::Summary(_) => None,
            })
    }

    fn expect(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in the scrape:\n{}", self.text))
    }

    /// The histogram `name` with labels including `labels`: its observations' count (the
    /// `+Inf` bucket).
    fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.scrape.samples.iter().find_map(|sample| {
            let matches = sample.metric == name
                && labels
                    .iter()
                    .all(|(label, value)| sample.labels.get(label) == Some(*value));
            match (&sample.value, matches) {
                (Value::Histogram(buckets), true) => buckets
                    .iter()
                    .find(|bucket| bucket.less_than.is_infinite())
                    .map(|bucket| bucket.count),
                _ => None,
            }
        })
    }
}

/// Parse a scrape; every family has its help and type, every sample a family.
fn parse(text: String) -> Metrics {
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .unwrap_or_else(|error| panic!("the scrape does not parse: {error}\n{text}"));
    assert!(
        scrape.samples.len() > 20,
        "the parser read only {} samples:\n{text}",
        scrape.samples.len()
    );
    for sample in &scrape.samples {
        assert!(
            sample.metric.starts_with("fengqiao_"),
            "{} is not a fengqiao_ metric",
            sample.metric
        );
    }
    for line in text.lines().filter(|line| line.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap_or_default();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help text"
        );
    }
    Metrics { text, scrape }
}

/// `GET /metrics` from loopback without a credential; must answer 200 in the text format.
fn scrape(address: SocketAddr) -> Metrics {
    let mut response = bare_agent()
        .get(format!("http://{address}/metrics"))
        .call()
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200, "GET /metrics");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(response.body_mut().read_to_string().expect("the scrape"))
}

/// `promtool check metrics` on the scrape (its lint: names, units, help texts), if promtool
/// is installed; otherwise say that this part is skipped and why.
fn promtool_check(what: &str, metrics: &Metrics) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            eprintln!(
                "metrics: promtool check of the {what} scrape skipped: cannot run promtool \
                 ({error}); scripts/install-promtool installs Debian's prometheus package"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(metrics.text.as_bytes())
        .expect("write the scrape to promtool");
    let output = child.wait_with_output().expect("promtool ran");
    assert!(
        output.status.success(),
        "promtool check metrics refused the {what} scrape:\n{}{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        metrics.text
    );
}

#[test]
fn metrics_move_as_a_village_registers_syncs_and_dies() {
    let temp = tempfile::tempdir().expect("tempdir");
    let township = Office::township(temp.path());
    let village = Office::village(temp.path(), "village", VILLAGE_REGION);
    township.admit(&village);
    let township_node = township.start();
    village.join(&township, quic_address(&township_node));
    let village_node = village.start();

    let before = scrape(village_node.address);
    promtool_check("village's first", &before);
    assert_eq!(
        before.expect("fengqiao_cases", &[("status", "registered")]),
        0.0
    );
    assert_eq!(before.expect("fengqiao_build_info", &[]), 1.0);
    assert!(before.expect("fengqiao_store_size_bytes", &[]) > 0.0);

    // The township's link to its village comes up.
    let village_link = [
        ("peer", village.name),
        ("peer_node_id", village.id.as_str()),
        ("relation", "child"),
    ];
    wait_for("the township's link to the village is up", SETTLE, || {
        let metrics = scrape(township_node.address);
        match metrics.value("fengqiao_link_connected", &village_link) {
            Some(1.0) => Ok(()),
            other => Err(format!("connected {other:?}")),
        }
    });

    // The village registers two cases and accepts one.
    let first = case_number(&register_sample(&village_node, VILLAGE_REGION, 1));
    register_sample(&village_node, VILLAGE_REGION, 2);
    let (status, answer) = http_post(
        village_node.address,
        &format!("/api/cases/{first}/events"),
        &json!({"kind": "accept", "payload": {}}),
    )
    .expect("accept");
    assert_eq!(status, 200, "{answer}");

    let after = scrape(village_node.address);
    assert_eq!(
        after.expect("fengqiao_cases", &[("status", "registered")]),
        1.0
    );
    assert_eq!(
        after.expect("fengqiao_cases", &[("status", "accepted")]),
        1.0
    );
    assert_eq!(after.expect("fengqiao_cases_held", &[]), 2.0);
    // The requests just made, by route template (never the case number) and status.
    assert_eq!(
        after.expect(
            "fengqiao_http_requests_total",
            &[("method", "POST"), ("route", "/api/cases"), ("code", "201")]
        ),
        2.0
    );
    // prometheus-parse cuts a label value at its first `}` (`/api/cases/{number}/events`), so
    // this one is read from the text, which promtool checks below.
    assert!(
        after.text.lines().any(|line| line
            == "fengqiao_http_requests_total{method=\"POST\",route=\"/api/cases/{number}/events\",code=\"200\"} 1"),
        "{}",
        after.text
    );
    assert_eq!(
        after.histogram_count(
            "fengqiao_http_request_duration_seconds",
            &[("method", "POST"), ("route", "/api/cases")]
        ),
        Some(2.0),
        "{}",
        after.text
    );
    assert!(
        !after.text.contains(&first),
        "a case number appears in the scrape"
    );
    promtool_check("village's", &after);

    // The township receives both cases; its link to the village counts frames both ways.
    let township_metrics = wait_for("the township holds the village's cases", SETTLE, || {
        let metrics = scrape(township_node.address);
        let held = metrics.value("fengqiao_cases_held", &[]);
        let accepted = metrics.value("fengqiao_cases", &[("status", "accepted")]);
        if held == Some(2.0) && accepted == Some(1.0) {
            Ok(metrics)
        } else {
            Err(format!("held {held:?}, accepted {accepted:?}"))
        }
    });
    let incoming = [("peer_node_id", village.id.as_str()), ("direction", "in")];
    let outgoing = [("peer_node_id", village.id.as_str()), ("direction", "out")];
    assert!(township_metrics.expect("fengqiao_link_frames_total", &incoming) > 0.0);
    assert!(township_metrics.expect("fengqiao_link_frames_total", &outgoing) > 0.0);
    assert!(
        township_metrics.expect(
            "fengqiao_link_cases_applied_total",
            &[("peer_node_id", village.id.as_str())]
        ) >= 2.0
    );
    assert!(
        township_metrics.expect("fengqiao_link_change_bytes_total", &incoming) > 0.0,
        "the township counts the bytes of the cases it received"
    );
    promtool_check("township's", &township_metrics);
    // The village sent the cases' bytes up to its parent.
    let to_parent = [("peer_node_id", township.id.as_str()), ("direction", "out")];
    wait_for("the village counts what it sent", SETTLE, || {
        let metrics = scrape(village_node.address);
        let bytes = metrics.value("fengqiao_link_change_bytes_total", &to_parent);
        let frames = metrics.value("fengqiao_link_frames_total", &to_parent);
        let connected = metrics.value(
            "fengqiao_link_connected",
            &[
                ("peer_node_id", township.id.as_str()),
                ("relation", "parent"),
            ],
        );
        let pending = metrics.value("fengqiao_link_pending_cases", &to_parent);
        match (bytes, frames, connected, pending) {
            (Some(bytes), Some(frames), Some(1.0), Some(0.0)) if bytes > 0.0 && frames > 0.0 => {
                Ok(())
            }
            other => Err(format!("bytes, frames, connected, pending: {other:?}")),
        }
    });

    // The village dies: the township's link to it goes down.
    village_node.kill_hard();
    let down = wait_for(
        "the township sees the village's link down",
        NOTICE_DEATH,
        || {
            let metrics = scrape(township_node.address);
            match metrics.value("fengqiao_link_connected", &village_link) {
                Some(0.0) => Ok(metrics),
                other => Err(format!("connected {other:?}")),
            }
        },
    );
    assert!(
        down.value("fengqiao_link_last_contact_age_seconds", &village_link)
            .is_some_and(|age| age >= 0.0),
        "{}",
        down.text
    );
    assert!(
        down.value("fengqiao_link_last_sync_age_seconds", &village_link)
            .is_some(),
        "the link synced before it went down:\n{}",
        down.text
    );
    drop(township_node);
}

/// A `GET /metrics` with the given headers: status and body.
fn get_metrics(address: SocketAddr, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = bare_agent().get(format!("http://{address}/metrics"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().expect("GET /metrics");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().expect("a body"),
    )
}

#[test]
fn metrics_answer_loopback_or_a_token_whose_role_may_read_them() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("township");
    init_node(&dir, "芦荻山乡调处中心", "township", TOWNSHIP_REGION);
    add_account(&dir, "lizt", "李调解", &["operator"]);
    // Behind a reverse proxy: a request the proxy forwarded is remote, though it comes from
    // loopback.
    let config_path = dir.join("fengqiao.toml");
    let config = std::fs::read_to_string(&config_path).expect("the config");
    std::fs::write(
        &config_path,
        config.replacen("[http]\n", "[http]\nbehind_proxy = true\n", 1),
    )
    .expect("write the config");
    let node = NodeProcess::start(&dir).expect("start the node");
    let token = cli_token(&dir).expect("the node's CLI token");
    let bearer = format!("Bearer {token}");

    // From loopback, no credential: answered.
    let (status, body) = get_metrics(node.address, &[]);
    assert_eq!(status, 200, "{body}");
    parse(body);

    // A credential is checked, from loopback too.
    let (status, body) = get_metrics(node.address, &[("authorization", "Bearer wrong-token")]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, body) = get_metrics(
        node.address,
        &[("authorization", &bearer), (ACT_AS_HEADER, "tester")],
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_metrics(
        node.address,
        &[("authorization", &bearer), (ACT_AS_HEADER, "lizt")],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read_metrics"), "{body}");

    // Forwarded by the proxy: remote, so a credential is required.
    let forwarded = [("x-forwarded-for", "203.0.113.7")];
    let (status, body) = get_metrics(node.address, &forwarded);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("only from loopback"), "{body}");
    let (status, body) = get_metrics(
        node.address,
        &[
            forwarded[0],
            ("authorization", &bearer),
            (ACT_AS_HEADER, "tester"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let metrics = parse(body);
    // The refusals were counted by route and status.
    assert!(
        metrics.expect(
            "fengqiao_http_requests_total",
            &[("route", "/metrics"), ("code", "401")]
        ) >= 2.0
    );
    assert!(
        metrics.expect(
            "fengqiao_http_requests_total",
            &[("route", "/metrics"), ("code", "403")]
        ) >= 1.0
    );
}
