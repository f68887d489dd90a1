//! Links cut and healed under running nodes, through the fault proxy: the village's uplink fails
//! and returns while both ends keep running, as a real uplink does.
//!
//! Issue 12, item 1, as real processes: concurrent resolves made on the two sides of a cut link
//! must leave every replica with the same events and the same derived state, the disagreement
//! shown as a conflict, and nothing quarantined.

use std::time::Duration;

use fengqiao_tests::fault_proxy::FaultProxy;
use fengqiao_tests::{
    COUNTY_REGION, NodeProcess, Office, TOWNSHIP_REGION, VILLAGE_REGION, case_number, http_get,
    http_post, quic_address, register_sample, wait_for, wait_for_roster,
};
use serde_json::{Value, json};

/// Longest a test waits for replication after a heal: QUIC must notice the path is back, or a
/// new connection be made after the old one timed out.
const SETTLE: Duration = Duration::from_secs(60);

/// A county, a township, and a village whose link to the township runs through a fault proxy.
struct CutFederation {
    county_node: NodeProcess,
    township_node: NodeProcess,
    village_node: NodeProcess,
    township_id: String,
    village_id: String,
    uplink: FaultProxy,
}

impl CutFederation {
    fn start(temp: &std::path::Path) -> CutFederation {
        let county = Office::init(temp, "county", "武陵区信访局", "county", COUNTY_REGION);
        let township = Office::init(
            temp,
            "township",
            "芦荻山乡调处中心",
            "township",
            TOWNSHIP_REGION,
        );
        let village = Office::init(temp, "village", "芦荻山村调解室", "village", VILLAGE_REGION);
        county.admit(&township);
        township.admit(&village);
        let county_node = county.start();
        township.join(&county, quic_address(&county_node));
        let township_node = township.start();
        let uplink = FaultProxy::start(quic_address(&township_node), 12).expect("fault proxy");
        village.join(&township, uplink.address());
        let village_node = village.start();
        let federation = CutFederation {
            county_node,
            township_node,
            village_node,
            township_id: township.id.clone(),
            village_id: village.id.clone(),
            uplink,
        };
        let members = [
            county.id.as_str(),
            township.id.as_str(),
            village.id.as_str(),
        ];
        wait_for_roster(&federation.nodes(), &members, SETTLE);
        federation
    }

    fn nodes(&self) -> [&NodeProcess; 3] {
        [&self.village_node, &self.township_node, &self.county_node]
    }
}

fn case_at(node: &NodeProcess, number: &str) -> Result<Value, String> {
    match http_get(node.address, &format!("/api/cases/{number}")) {
        Ok((200, view)) => Ok(view),
        Ok((status, body)) => Err(format!("{} answers {status}: {body}", node.url())),
        Err(error) => Err(format!("{}: {error}", node.url())),
    }
}

fn append(node: &NodeProcess, number: &str, event: Value) -> Value {
    let (status, view) = http_post(node.address, &format!("/api/cases/{number}/events"), &event)
        .expect("append an event");
    assert_eq!(status, 200, "append {event} at {}: {view}", node.url());
    view
}

fn event_count(view: &Value) -> usize {
    view["events"].as_array().map_or(0, Vec::len)
}

/// Wait until every node holds the same events and derives the same state, and `accept` holds.
fn wait_agreed(
    what: &str,
    nodes: &[&NodeProcess],
    number: &str,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, SETTLE, || {
        let first = case_at(nodes[0], number)?;
        for node in &nodes[1..] {
            let view = case_at(node, number)?;
            if view["events"] != first["events"] || view["state"] != first["state"] {
                return Err(format!(
                    "{} holds {} events, state {}; {} holds {} events, state {}",
                    nodes[0].url(),
                    event_count(&first),
                    first["state"]["status"],
                    node.url(),
                    event_count(&view),
                    view["state"]["status"],
                ));
            }
        }
        if accept(&first) {
            Ok(first)
        } else {
            Err(format!("agreed, but the case is {}", first["state"]))
        }
    })
}

/// The `first` event of the conflict branch made by `node`.
fn branch_of(view: &Value, node: &str) -> String {
    view["state"]["conflict"]["branches"]
        .as_array()
        .and_then(|branches| branches.iter().find(|branch| branch["node"] == node))
        .and_then(|branch| branch["first"].as_str())
        .unwrap_or_else(|| panic!("a branch made by {node}: {}", view["state"]))
        .to_owned()
}

#[test]
fn resolves_made_on_both_sides_of_a_cut_link_leave_every_replica_agreeing_on_a_visible_dispute() {
    let temp = tempfile::tempdir().expect("tempdir");
    let federation = CutFederation::start(temp.path());
    let CutFederation {
        ref county_node,
        ref township_node,
        ref village_node,
        ref township_id,
        ref village_id,
        ref uplink,
    } = federation;
    let everyone = [village_node, township_node, county_node];

    let number = case_number(&register_sample(village_node, VILLAGE_REGION, 1));
    append(
        village_node,
        &number,
        json!({"kind": "accept", "payload": {}}),
    );
    wait_agreed(
        "the accepted case reaches the county",
        &everyone,
        &number,
        |view| view["state"]["status"] == "accepted",
    );

    // First cut: the village replies and closes while the township takes the case over.
    uplink.cut();
    append(
        village_node,
        &number,
        json!({"kind": "reply", "payload": {"outcome": "support", "text": "企业已结清欠薪"}}),
    );
    append(
        village_node,
        &number,
        json!({"kind": "close", "payload": {"resolved": true, "note": "当事人已领取"}}),
    );
    append(
        township_node,
        &number,
        json!({"kind": "take_over", "payload": {"reason": "涉及多村，乡级提级办理"}}),
    );
    uplink.heal();
    let forked = wait_agreed(
        "the fork is a conflict everywhere",
        &everyone,
        &number,
        |view| !view["state"]["conflict"].is_null(),
    );
    let village_branch = branch_of(&forked, village_id);
    let township_branch = branch_of(&forked, township_id);

    // Second cut: each side resolves for its own branch, neither knowing of the other's resolve.
    uplink.cut();
    append(
        township_node,
        &number,
        json!({"kind": "resolve", "payload": {"chosen": township_branch, "note": "以乡级提级为准"}}),
    );
    append(
        village_node,
        &number,
        json!({"kind": "resolve", "payload": {"chosen": village_branch, "note": "村级已办结"}}),
    );
    uplink.heal();

    // After the heal every replica holds both resolves and derives the same state: the two
    // decisions stand as a dispute for a person, neither silently dropped.
    let settled = wait_agreed(
        "both resolves everywhere, disputed",
        &everyone,
        &number,
        |view| {
            view["events"]
                .as_array()
                .is_some_and(|events| events.iter().filter(|e| e["kind"] == "resolve").count() == 2)
        },
    );
    let disputed = settled["state"]["conflict"]["disputed"]
        .as_array()
        .unwrap_or_else(|| panic!("a disputed conflict: {}", settled["state"]));
    assert_eq!(disputed.len(), 2, "{}", settled["state"]);
    // Nothing an office's own node accepted was refused by a peer.
    for node in everyone {
        let (status, listing) = http_get(node.address, "/api/quarantine").expect("quarantine");
        assert_eq!(status, 200, "{listing}");
        assert_eq!(
            listing["entries"].as_array().map_or(0, Vec::len),
            0,
            "{} quarantined: {listing}",
            node.url()
        );
        let view = case_at(node, &number).expect("the case");
        assert!(
            view["refused_by_peers"]
                .as_array()
                .is_none_or(|refusals| refusals.is_empty()),
            "{}: {}",
            node.url(),
            view["refused_by_peers"]
        );
    }
    assert!(uplink.counts().dropped > 0, "the cuts dropped datagrams");
    drop(federation);
}
