//! Writes the seed corpora under `fuzz/corpus/`: one valid encoded frame of each kind (and a few
//! streams of several frames) for `decode_frame`, and the same wrapped in transport frames for
//! `read_frame`. Run by `scripts/fuzz --seed`; the output is committed, so this only needs
//! running again when the frame layout changes.

use std::fs;
use std::path::{Path, PathBuf};

use fengqiao_sync::{SYNC_PROTOCOL_VERSION, SyncFrame, encode_frame};

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

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
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
