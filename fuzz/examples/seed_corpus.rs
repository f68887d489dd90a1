//! Writes the seed corpora under `fuzz/corpus/`: one valid encoded frame of each kind (and a few
//! streams of several frames) for `decode_frame`, the same wrapped in transport frames for
//! `read_frame`, and roster frames with really signed entries for `roster_frame`. Run by `scripts/fuzz --seed`; the output is committed, so this only needs
//! running again when the frame layout changes.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use ed25519_dalek::SigningKey;
use fengqiao_case::model::Tier;
use fengqiao_case::model::roster::RosterFrame;
use fengqiao_sync::{
    Admission, FrameCodec, Roster, RosterSigner, SYNC_PROTOCOL_VERSION, SyncFrame, encode_frame,
    node_id_for_public_key,
};

fn frames() -> Vec<(&'static str, SyncFrame)> {
    let case = "430702001001-2026-000123".to_owned();
    vec![
        (
            "hello",
            SyncFrame::Hello {
                protocol_version: SYNC_PROTOCOL_VERSION,
                node_id: "3f2a9c0b5d7e41a8b6c2d9e0f1a2b3c4".to_owned(),
                feed_head: 42,
            },
        ),
        (
            "changes",
            SyncFrame::Changes {
                case: case.clone(),
                feed_seq: 7,
                base_heads: vec![[1; 32]],
                sender_heads: vec![[2; 32], [3; 32]],
                bytes: vec![0x85, 0x6f, 0x4a, 0x83, 0x11, 0x22, 0x33, 0x44, 0, 255],
                whole: false,
            },
        ),
        (
            "changes_whole",
            SyncFrame::Changes {
                case: "430702001001-2026-000124".to_owned(),
                feed_seq: u64::MAX,
                base_heads: Vec::new(),
                sender_heads: vec![[9; 32]],
                bytes: (0..2048u32).map(|index| (index * 7 % 251) as u8).collect(),
                whole: true,
            },
        ),
        (
            "ack",
            SyncFrame::Ack {
                case: case.clone(),
                feed_seq: 300,
                heads: vec![[2; 32]],
            },
        ),
        (
            "need",
            SyncFrame::Need {
                case: case.clone(),
                have_heads: Vec::new(),
            },
        ),
        (
            "refused",
            SyncFrame::Refused {
                case,
                feed_seq: 70_000,
                reason: "案件不在本辖区".to_owned(),
            },
        ),
        ("caught_up", SyncFrame::CaughtUp { feed_head: 1 << 40 }),
        ("backlog", SyncFrame::Backlog { documents: 300 }),
        (
            "error",
            SyncFrame::Error {
                message: "对端协议版本不符".to_owned(),
            },
        ),
    ]
}

fn write(directory: &Path, name: &str, bytes: &[u8]) {
    fs::write(directory.join(name), bytes).expect("write a seed");
}

/// A transport frame: 4-byte big-endian length, then the payload.
fn transport(payload: &[u8]) -> Vec<u8> {
    let mut framed = u32::try_from(payload.len())
        .expect("a small payload")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(payload);
    framed
}

/// A county (the root, key of 32 bytes of 1), a township and a village, as roster frames.
fn roster_frames() -> (String, Vec<(&'static str, RosterFrame)>) {
    let county = SigningKey::from_bytes(&[1; 32]);
    let township = SigningKey::from_bytes(&[2; 32]);
    let village = SigningKey::from_bytes(&[3; 32]);
    let root = node_id_for_public_key(&county.public_key());
    let mut roster = Roster::new(Some(root.clone()));
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).single().expect("a time");
    let offices = [
        (&county, &county, "武陵区信访局", Tier::County, "430702"),
        (&county, &township, "芦荻山乡", Tier::Township, "430702001"),
        (&township, &village, "芦荻山村", Tier::Village, "430702001001"),
    ];
    for (issuer, office, name, tier, region) in offices {
        let admission = Admission {
            node_id: node_id_for_public_key(&office.public_key()),
            name: name.to_owned(),
            aliases: Vec::new(),
            tier,
            region_code: region.to_owned(),
            revoked: false,
        };
        roster.issue(issuer, admission, at).expect("sign a seed entry");
    }
    let frames = vec![
        (
            "digest",
            RosterFrame::Digest {
                format_version: fengqiao_case::model::roster::ROSTER_FORMAT_VERSION,
                root: Some(root.clone()),
                digest: roster.digest().to_vec(),
                entries: 3,
            },
        ),
        (
            "entries",
            RosterFrame::Entries {
                entries: roster.entries().cloned().collect(),
                digest: roster.digest().to_vec(),
            },
        ),
    ];
    (root, frames)
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let roster_directory = root.join("roster_frame");
    fs::create_dir_all(&roster_directory).expect("create the corpus directory");
    let (root_id, roster_seeds) = roster_frames();
    fs::write(root.join("roster_root.txt"), root_id).expect("write the root");
    for (name, frame) in roster_seeds {
        let bytes = FrameCodec::default()
            .encode_message(&frame)
            .expect("encode a roster seed");
        write(&roster_directory, name, &bytes);
    }
    let decode = root.join("decode_frame");
    let read = root.join("read_frame");
    for directory in [&decode, &read] {
        fs::create_dir_all(directory).expect("create the corpus directory");
    }
    let encoded: Vec<(&str, Vec<u8>)> = frames()
        .into_iter()
        .map(|(name, frame)| (name, encode_frame(&frame).expect("encode a seed frame")))
        .collect();
    for (name, bytes) in &encoded {
        write(&decode, name, bytes);
        // Chunk seed 1, then the sync frame as one transport frame's payload.
        let mut stream = vec![1];
        stream.extend(transport(bytes));
        write(&read, name, &stream);
    }
    let small: Vec<u8> = encoded
        .iter()
        .filter(|(name, _)| *name != "changes_whole")
        .flat_map(|(_, bytes)| bytes.iter().copied())
        .collect();
    write(&decode, "stream_of_frames", &small);
    let mut stream = vec![200];
    for (_, bytes) in &encoded {
        stream.extend(transport(bytes));
    }
    write(&read, "stream_of_frames", &stream);
    write(&read, "empty_frame_then_end", &[3, 0, 0, 0, 0]);
    println!("seed corpora written under {}", root.display());
}
