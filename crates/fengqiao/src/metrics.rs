//! The node's Prometheus metrics (`GET /metrics`, served by `api/metrics.rs`): the registry of
//! the counters kept where requests happen, and the figures gathered at scrape time from what
//! the node already keeps.
//!
//! Nothing here scans cases. The case and directive gauges come from the statistics rollup the
//! store keeps current (`service/stats.rs`, the measures `GET /api/stats` answers); the link
//! gauges and counters from the federation's link reports (`FederationStatus::peers`, what
//! `GET /api/peers` answers), whose frame and byte counts the sync session keeps; the store's
//! size from sled's own measure. So a scrape costs the same at 100,000 cases as at ten.
//!
//! Names are stable: prefixed `fengqiao_`, units in the name, counters ending in `_total`.
//! Labels never carry a case number or personal data: routes are axum's path templates.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fengqiao_case::{ImportedCases, MeasureSet, Status};
use fengqiao_sync::PeerRelation;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::federation::PeerLinkReport;
use crate::service::{Node, ServiceError, StatsQuery};

/// The scrape's `Content-Type`: Prometheus' text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the request latency histogram, in seconds: a health check answers in well
/// under a millisecond, an import batch or a sign-in (argon2) in a second or more.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why a scrape could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot read the node's figures: {0}")]
    Node(Box<ServiceError>),
    #[error("cannot measure the store: {0}")]
    Store(#[from] fengqiao_store::StoreError),
    #[error("cannot encode the metrics")]
    Encode(#[from] std::fmt::Error),
}

impl From<ServiceError> for MetricsError {
    fn from(error: ServiceError) -> MetricsError {
        MetricsError::Node(Box::new(error))
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_SECONDS)
}

/// The HTTP server's counters: every request the node answers, API and console alike, by
/// method, route template and status code, and its latency. Clones share the counts.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl HttpMetrics {
    /// One answered request. `route` is the matched route's template (`/api/cases/{number}`),
    /// never the path the client sent; `method` one of the standard methods or `other`.
    pub fn observe(&self, method: &str, route: &str, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "fengqiao_http_requests",
            "HTTP requests answered, by method, route template and status code",
            self.requests.clone(),
        );
        registry.register(
            "fengqiao_http_request_duration_seconds",
            "Time from receiving an HTTP request to its answer's head, by method and route \
             template",
            self.latency.clone(),
        );
    }
}

/// What the node itself says at scrape time (no federation involved).
#[derive(Debug, Clone)]
pub struct NodeFigures {
    /// The measures over every case held, judged at the scrape (the rollup's answer).
    pub measures: MeasureSet,
    pub case_count: u64,
    pub store_bytes: u64,
    /// Cases whose 台账 row the keeper has not written since their last change.
    pub ledger_rows_pending: u64,
}

/// The node's figures, from the statistics rollup and the store. Blocking: the first call
/// after the node opened may wait for the rollup's one build scan (the server starts that as
/// soon as it is bound).
pub fn node_figures(node: &Node, now: DateTime<Utc>) -> Result<NodeFigures, MetricsError> {
    let query = StatsQuery {
        imported: ImportedCases::Include,
        ..StatsQuery::default()
    };
    let measures = node.stats_from_rollup(now, &query)?.total;
    Ok(NodeFigures {
        measures,
        case_count: node.store().case_count(),
        store_bytes: node.store().size_on_disk()?,
        ledger_rows_pending: node.store().ledger_rows_pending()?,
    })
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GradeLabels {
    grade: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    peer: String,
    peer_node_id: String,
    relation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkDirectionLabels {
    peer: String,
    peer_node_id: String,
    relation: String,
    direction: String,
}

fn relation_name(relation: PeerRelation) -> &'static str {
    match relation {
        PeerRelation::Parent => "parent",
        PeerRelation::Child => "child",
    }
}

fn status_name(status: Status) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{status:?}"))
}

fn gauge_family<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Gauge>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Gauge>::default();
    registry.register(name, help, family.clone());
    family
}

fn seconds_family<L>(
    registry: &mut Registry,
    name: &str,
    help: &str,
) -> Family<L, Gauge<f64, std::sync::atomic::AtomicU64>>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    registry.register(name, help, family.clone());
    family
}

fn counter_family<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Counter>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

fn as_gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The scrape: the node's figures, its links (`None` without a federation) and the HTTP
/// counters, in Prometheus' text format.
pub fn encode(
    figures: &NodeFigures,
    links: Option<&[PeerLinkReport]>,
    http: &HttpMetrics,
    now: DateTime<Utc>,
) -> Result<String, MetricsError> {
    let mut registry = Registry::default();

    registry.register(
        "fengqiao_build",
        "The fengqiao build serving this node",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );

    let measures = &figures.measures;
    let by_status = gauge_family::<StatusLabels>(
        &mut registry,
        "fengqiao_cases",
        "Cases held by this node, by lifecycle status (every status listed, 0 included)",
    );
    for status in Status::ALL {
        let count = measures.by_status.get(&status).copied().unwrap_or(0);
        by_status
            .get_or_create(&StatusLabels {
                status: status_name(status),
            })
            .set(as_gauge(count));
    }
    let by_grade = gauge_family::<GradeLabels>(
        &mut registry,
        "fengqiao_cases_warned",
        "Cases whose open time limit carries a warning now, by grade: approaching (预警), \
         overdue (超时), seriously_overdue (严重超时)",
    );
    for (grade, count) in [
        ("approaching", measures.approaching),
        ("overdue", measures.overdue),
        ("seriously_overdue", measures.seriously_overdue),
    ] {
        by_grade
            .get_or_create(&GradeLabels {
                grade: grade.to_owned(),
            })
            .set(as_gauge(count));
    }
    for (name, help, value) in [
        (
            "fengqiao_cases_held",
            "Cases held by this node (the store's count)",
            figures.case_count,
        ),
        (
            "fengqiao_directives_open",
            "Directives (督办) open on the cases held here",
            measures.directives_open,
        ),
        (
            "fengqiao_directives_overdue",
            "Open directives past their due date",
            measures.directives_overdue,
        ),
        (
            "fengqiao_cases_in_conflict",
            "Cases with concurrent transitions waiting for a person to resolve them",
            measures.in_conflict,
        ),
        (
            "fengqiao_store_size_bytes",
            "Bytes the node's store (sled log and blobs) takes on disk",
            figures.store_bytes,
        ),
        (
            "fengqiao_ledger_rows_pending",
            "Cases changed since the 台账 rows' keeper last wrote their row (an export reads \
             these from their documents, more slowly); 0 once it has caught up",
            figures.ledger_rows_pending,
        ),
    ] {
        let gauge = Gauge::<i64>::default();
        gauge.set(as_gauge(value));
        registry.register(name, help, gauge);
    }

    if let Some(links) = links {
        encode_links(&mut registry, links, now);
    }
    http.register(&mut registry);

    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Every link's figures, labelled by the peer office's name and node ID and its relation.
fn encode_links(registry: &mut Registry, links: &[PeerLinkReport], now: DateTime<Utc>) {
    let connected = gauge_family::<LinkLabels>(
        registry,
        "fengqiao_link_connected",
        "1 while the link to the peer office is up, else 0",
    );
    let since_contact = seconds_family::<LinkLabels>(
        registry,
        "fengqiao_link_last_contact_age_seconds",
        "Seconds since the peer was last heard: 0 while connected, else since the link went \
         down; absent if it never came up",
    );
    let since_sync = seconds_family::<LinkLabels>(
        registry,
        "fengqiao_link_last_sync_age_seconds",
        "Seconds since both sides last held everything the other owed them; absent if never",
    );
    let pending = gauge_family::<LinkDirectionLabels>(
        registry,
        "fengqiao_link_pending_cases",
        "Changed cases waiting to travel: out, own cases routing sends the peer not yet \
         acknowledged (counted up to 100000); in, cases the peer announced and has not sent",
    );
    let quarantined = gauge_family::<LinkLabels>(
        registry,
        "fengqiao_link_quarantined_changes",
        "Changes from the peer refused on receipt and kept in the quarantine log (all time)",
    );
    let refused_by_peer = gauge_family::<LinkLabels>(
        registry,
        "fengqiao_link_cases_refused_by_peer",
        "Own cases whose changes the peer refused on receipt",
    );
    let connections = counter_family::<LinkLabels>(
        registry,
        "fengqiao_link_connections",
        "Connections made on the link since the node started",
    );
    let frames = counter_family::<LinkDirectionLabels>(
        registry,
        "fengqiao_link_frames",
        "Sync frames sent (out) and received (in) on the link's current connection (starts \
         again at each connection)",
    );
    let change_bytes = counter_family::<LinkDirectionLabels>(
        registry,
        "fengqiao_link_change_bytes",
        "Bytes of automerge changes and documents sent to (out) and received from (in) the peer \
         on the current connection",
    );
    let applied = counter_family::<LinkLabels>(
        registry,
        "fengqiao_link_cases_applied",
        "Cases from the peer whose received changes were applied here, on the current connection",
    );
    let refused = counter_family::<LinkDirectionLabels>(
        registry,
        "fengqiao_link_changes_refused",
        "Changes refused on receipt on the current connection: in, the peer's changes refused \
         here (quarantined); out, our changes the peer refused",
    );

    for link in links {
        let labels = LinkLabels {
            peer: link.name.clone(),
            peer_node_id: link.node_id.clone(),
            relation: relation_name(link.relation).to_owned(),
        };
        let directed = |direction: &str| LinkDirectionLabels {
            peer: labels.peer.clone(),
            peer_node_id: labels.peer_node_id.clone(),
            relation: labels.relation.clone(),
            direction: direction.to_owned(),
        };
        let age = |then: DateTime<Utc>| ((now - then).num_milliseconds().max(0) as f64) / 1000.0;
        connected
            .get_or_create(&labels)
            .set(i64::from(link.connected));
        let last_contact = if link.connected {
            Some(now)
        } else {
            link.since
        };
        if let Some(last_contact) = last_contact {
            since_contact.get_or_create(&labels).set(age(last_contact));
        }
        if let Some(synced) = link.last_successful_sync {
            since_sync.get_or_create(&labels).set(age(synced));
        }
        pending
            .get_or_create(&directed("out"))
            .set(as_gauge(link.pending));
        pending
            .get_or_create(&directed("in"))
            .set(as_gauge(link.pending_inbound));
        quarantined
            .get_or_create(&labels)
            .set(as_gauge(link.quarantined));
        refused_by_peer
            .get_or_create(&labels)
            .set(as_gauge(link.refused_by_peer));
        connections.get_or_create(&labels).inc_by(link.connections);
        let session = &link.session;
        frames
            .get_or_create(&directed("out"))
            .inc_by(session.frames_sent);
        frames
            .get_or_create(&directed("in"))
            .inc_by(session.frames_received);
        change_bytes
            .get_or_create(&directed("out"))
            .inc_by(session.change_bytes_sent);
        change_bytes
            .get_or_create(&directed("in"))
            .inc_by(session.change_bytes_received);
        applied.get_or_create(&labels).inc_by(session.cases_applied);
        refused
            .get_or_create(&directed("in"))
            .inc_by(session.changes_quarantined);
        refused
            .get_or_create(&directed("out"))
            .inc_by(session.changes_refused_by_peer);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use fengqiao_sync::SessionStatistics;

    fn link(connected: bool, now: DateTime<Utc>) -> PeerLinkReport {
        PeerLinkReport {
            node_id: "0123456789abcdef0123456789abcdef".to_owned(),
            name: "芦荻山乡 \"东\"".to_owned(),
            relation: PeerRelation::Child,
            address: None,
            connected,
            since: Some(now - chrono::Duration::seconds(90)),
            last_successful_sync: None,
            last_error: None,
            pending: 3,
            pending_inbound: 2,
            quarantined: 1,
            last_quarantine: None,
            refused_by_peer: 0,
            connections: 4,
            session: SessionStatistics {
                frames_sent: 10,
                frames_received: 12,
                change_bytes_sent: 2048,
                ..SessionStatistics::default()
            },
            clock_offset_ms: None,
            rebuild: None,
        }
    }

    #[test]
    fn the_scrape_names_every_status_each_link_and_the_build() {
        let now = Utc::now();
        let mut measures = MeasureSet::default();
        measures.by_status.insert(Status::Accepted, 7);
        measures.overdue = 2;
        let figures = NodeFigures {
            measures,
            case_count: 7,
            store_bytes: 4096,
            ledger_rows_pending: 12,
        };
        let http = HttpMetrics::default();
        http.observe("GET", "/api/cases/{number}", 200, Duration::from_millis(3));
        let text = encode(&figures, Some(&[link(false, now)]), &http, now).unwrap();
        for line in [
            "fengqiao_build_info{version=\"",
            "fengqiao_cases{status=\"accepted\"} 7",
            "fengqiao_cases{status=\"final\"} 0",
            "fengqiao_cases_warned{grade=\"overdue\"} 2",
            "fengqiao_store_size_bytes 4096",
            "fengqiao_ledger_rows_pending 12",
            "# TYPE fengqiao_http_requests_total counter",
            "fengqiao_http_requests_total{method=\"GET\",route=\"/api/cases/{number}\",code=\"200\"} 1",
            "fengqiao_http_request_duration_seconds_bucket{",
            "direction=\"out\"} 2048",
            "fengqiao_link_last_contact_age_seconds{peer=\"芦荻山乡 \\\"东\\\"\"",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("fengqiao_link_last_sync_age_seconds{"));
        assert!(
            text.contains("} 90"),
            "the link went down 90 s ago:\n{text}"
        );
    }

    #[test]
    fn a_node_without_a_federation_lists_no_link() {
        let figures = NodeFigures {
            measures: MeasureSet::default(),
            case_count: 0,
            store_bytes: 0,
            ledger_rows_pending: 0,
        };
        let text = encode(&figures, None, &HttpMetrics::default(), Utc::now()).unwrap();
        assert!(!text.contains("fengqiao_link_"), "{text}");
        assert!(text.contains("fengqiao_cases{status=\"registered\"} 0"));
    }
}
