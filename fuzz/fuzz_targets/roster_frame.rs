//! Fuzz target: a roster frame from a peer, decoded and handed to a roster exchange, as the
//! roster stream of a link would.
//!
//! Beyond "never panics": whatever the frame, every office the roster then counts as a member is
//! backed by an entry whose signature verifies, and the exchange settles (answers at most once).

#![no_main]

use fengqiao_case::model::roster::RosterFrame;
use fengqiao_sync::roster::verify_entry;
use fengqiao_sync::{FrameCodec, PeerRelation, Roster, RosterExchange};
use libfuzzer_sys::fuzz_target;

/// The root the seeds' entries chain to (the node ID of the key of 32 bytes of 1).
const ROOT: &str = include_str!("../corpus/roster_root.txt");

fuzz_target!(|data: &[u8]| {
    let codec = FrameCodec::default();
    let Ok((frame, used)) = codec.decode_message::<RosterFrame>(data) else {
        return;
    };
    assert!(used <= data.len());
    let mut roster = Roster::new(Some(ROOT.trim().to_owned()));
    let mut exchange = RosterExchange::new(PeerRelation::Parent, &roster);
    while exchange.poll_transmit().is_some() {}
    exchange.handle_frame(&mut roster, frame.clone());
    while exchange.poll_transmit().is_some() {}
    for member in roster.members() {
        let backed = roster.entries().any(|signed| {
            signed.entry == *member && verify_entry(signed).is_ok()
        });
        assert!(backed, "member {} has no verified entry", member.node_id);
    }
    // The same frame again is answered at most by a digest: nothing new to merge or send twice.
    exchange.handle_frame(&mut roster, frame);
    let mut again = 0;
    while exchange.poll_transmit().is_some() {
        again += 1;
    }
    assert!(again <= 1, "the same frame twice made {again} more frames");
});
