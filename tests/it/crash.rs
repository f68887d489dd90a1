//! Durability under `kill -9`: every write the API acknowledged is there after a restart.
//!
//! sled 0.34 has public reports of corruption after an abrupt stop (sled issue #1533), so this is
//! the test that stands behind "a write is acknowledged only after it is durable".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fengqiao_tests::{NodeProcess, http_get, http_post, init_node, sample_registration};

const VILLAGE: &str = "430702001002";

/// Cycles in the default run; `FENGQIAO_CRASH_CYCLES` raises it for a soak.
fn cycles() -> usize {
    std::env::var("FENGQIAO_CRASH_CYCLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(50)
}

/// What the API acknowledged: case number → events the case held when last acknowledged.
type Acknowledged = Arc<Mutex<BTreeMap<String, usize>>>;

fn writer(
    address: std::net::SocketAddr,
    writer_index: usize,
    stop: Arc<AtomicBool>,
    acknowledged: Acknowledged,
) {
    let mut written = 0usize;
    while !stop.load(Ordering::Relaxed) {
        written += 1;
        let body = sample_registration(VILLAGE, writer_index * 1_000_000 + written);
        let Ok((201, view)) = http_post(address, "/api/cases", &body) else {
            return; // the node is gone: a write in flight is not acknowledged
        };
        let Some(number) = view["header"]["number"].as_str().map(str::to_owned) else {
            return;
        };
        acknowledged
            .lock()
            .expect("ack lock")
            .insert(number.clone(), 1);
        // Every other case also gets an event, so updates (not only creations) are exercised.
        if written.is_multiple_of(2) {
            let accept = serde_json::json!({"kind": "accept", "payload": {}});
            match http_post(address, &format!("/api/cases/{number}/events"), &accept) {
                Ok((200, _)) => {
                    acknowledged.lock().expect("ack lock").insert(number, 2);
                }
                _ => return,
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_many_times() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("crashing");
    init_node(&dir, "芦荻山村", "village", VILLAGE);
    let acknowledged: Acknowledged = Arc::default();
    let mut rng_state: u64 = 0x9E37_79B9_7F4A_7C15;

    for cycle in 0..cycles() {
        let node = NodeProcess::start(&dir).unwrap_or_else(|error| {
            panic!("cycle {cycle}: store must open after kill -9: {error}")
        });
        verify(&node, &acknowledged, cycle);

        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|writer_index| {
                let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
                let address = node.address;
                std::thread::spawn(move || writer(address, writer_index, stop, acknowledged))
            })
            .collect();
        // xorshift: a varied but reproducible moment to pull the plug.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        std::thread::sleep(Duration::from_millis(50 + rng_state % 250));
        node.kill_hard();
        stop.store(true, Ordering::Relaxed);
        for handle in writers {
            handle.join().expect("writer thread");
        }
    }

    let node = NodeProcess::start(&dir).expect("final start");
    verify(&node, &acknowledged, cycles());
    let total = acknowledged.lock().expect("ack lock").len();
    assert!(
        total >= cycles(),
        "the test wrote too little to mean anything: {total} acknowledged cases"
    );
    let (_, info) = http_get(node.address, "/api/health").expect("health");
    assert!(
        info["case_count"].as_u64().expect("case_count") >= total as u64,
        "case count covers every acknowledged case: {info}"
    );
    let accepted = acknowledged
        .lock()
        .expect("ack lock")
        .values()
        .filter(|events| **events > 1)
        .count();
    // For RELIABILITY.md's soak records (`FENGQIAO_CRASH_CYCLES=1000 … -- crash --nocapture`).
    eprintln!(
        "crash soak: {} kill -9 cycles, {total} acknowledged registrations and {accepted} \
         acknowledged accepts, every one present after the restarts",
        cycles()
    );
}

fn verify(node: &NodeProcess, acknowledged: &Acknowledged, cycle: usize) {
    let expected = acknowledged.lock().expect("ack lock").clone();
    // One listing per cycle (summaries carry the event count) keeps the check linear.
    let (status, listed) = http_get(node.address, "/api/cases?limit=1000000")
        .unwrap_or_else(|error| panic!("cycle {cycle}: listing cases: {error}"));
    assert_eq!(status, 200, "cycle {cycle}: listing failed: {listed}");
    let held: BTreeMap<String, u64> = listed
        .as_array()
        .expect("case list")
        .iter()
        .map(|item| {
            let summary = &item["summary"];
            let number = summary["number"].as_str().expect("number").to_owned();
            (
                number,
                summary["event_count"].as_u64().expect("event_count"),
            )
        })
        .collect();
    for (number, events) in expected {
        let Some(&held_events) = held.get(&number) else {
            panic!("cycle {cycle}: acknowledged case {number} is lost");
        };
        assert!(
            held_events >= events as u64,
            "cycle {cycle}: case {number} has {held_events} events, {events} were acknowledged"
        );
    }
    // And one full read: the document itself loads, not only its summary.
    if let Some(number) = held.keys().next_back() {
        let (status, view) = http_get(node.address, &format!("/api/cases/{number}"))
            .unwrap_or_else(|error| panic!("cycle {cycle}: reading {number}: {error}"));
        assert_eq!(status, 200, "cycle {cycle}: reading {number}: {view}");
        assert_eq!(
            view["events"].as_array().map_or(0, Vec::len) as u64,
            held[number],
            "document and summary agree"
        );
    }
}
