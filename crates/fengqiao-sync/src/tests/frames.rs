//! The frame codec: every variant round-trips; short, oversized, garbled and foreign-version
//! input is an error value; arbitrary bytes never panic.

use fengqiao_case::model::sync::{SYNC_PROTOCOL_VERSION, SyncFrame};
use proptest::prelude::*;

use crate::codec::{FRAME_FORMAT_VERSION, FrameCodec, FrameError, decode_frame, encode_frame};

fn every_variant() -> Vec<SyncFrame> {
    vec![
        SyncFrame::Hello {
            protocol_version: SYNC_PROTOCOL_VERSION,
            node_id: "3f2a9c".to_owned(),
            feed_head: 42,
        },
        SyncFrame::Changes {
            case: "430702001001-2026-000123".to_owned(),
            feed_seq: 7,
            base_heads: vec![[1; 32]],
            sender_heads: vec![[2; 32], [3; 32]],
            bytes: vec![0x85, 0x6f, 0x4a, 0x83, 0, 255],
            whole: false,
        },
        SyncFrame::Changes {
            case: "430702001001-2026-000124".to_owned(),
            feed_seq: u64::MAX,
            base_heads: Vec::new(),
            sender_heads: vec![[9; 32]],
            bytes: vec![7; 3000],
            whole: true,
        },
        SyncFrame::Ack {
            case: "430702001001-2026-000123".to_owned(),
            feed_seq: 7,
            heads: vec![[2; 32]],
        },
        SyncFrame::Need {
            case: "430702001001-2026-000123".to_owned(),
            have_heads: Vec::new(),
        },
        SyncFrame::Refused {
            case: "430702001002-2026-000001".to_owned(),
            feed_seq: 9,
            reason: "案件不在本辖区".to_owned(),
        },
        SyncFrame::CaughtUp { feed_head: 1 << 40 },
        SyncFrame::Error {
            message: "对端协议版本不符".to_owned(),
        },
    ]
}

#[test]
fn every_variant_round_trips() {
    for frame in every_variant() {
        let encoded = encode_frame(&frame).expect("encodes");
        let (decoded, used) = decode_frame(&encoded).expect("decodes");
        assert_eq!(decoded, frame);
        assert_eq!(used, encoded.len());
    }
}

/// The wire layout of a `Changes` frame, written out byte by byte (bincode 2, standard
/// configuration: variable-length integers, a length before every string and sequence). Its
/// `bytes` go as one length and the raw bytes: encoding them as a byte string rather than a
/// sequence of numbers is faster and must not change a byte on the wire.
#[test]
fn a_changes_frame_has_the_documented_layout() {
    for (length_varint, bytes) in [
        (vec![6], vec![0x85, 0x6f, 0x4a, 0x83, 0, 255]),
        (
            // 3000 needs the two-byte form: a 0xfb marker, then the value little-endian.
            vec![0xfb, 0xb8, 0x0b],
            vec![7; 3000],
        ),
    ] {
        let case = "430702001001-2026-000123";
        let frame = SyncFrame::Changes {
            case: case.to_owned(),
            feed_seq: 7,
            base_heads: vec![[1; 32]],
            sender_heads: vec![[2; 32], [3; 32]],
            bytes: bytes.clone(),
            whole: false,
        };
        let mut body = vec![1]; // the variant: Changes is the second
        body.push(24); // the case number's length
        body.extend_from_slice(case.as_bytes());
        body.push(7); // feed_seq
        body.push(1); // one base head, its 32 bytes
        body.extend_from_slice(&[1; 32]);
        body.push(2); // two sender heads
        body.extend_from_slice(&[2; 32]);
        body.extend_from_slice(&[3; 32]);
        body.extend_from_slice(&length_varint);
        body.extend_from_slice(&bytes);
        body.push(0); // whole: false
        let mut expected = u32::try_from(body.len() + 1)
            .expect("small")
            .to_be_bytes()
            .to_vec();
        expected.push(FRAME_FORMAT_VERSION);
        expected.extend_from_slice(&body);
        assert_eq!(encode_frame(&frame).expect("encodes"), expected);
        assert_eq!(decode_frame(&expected).expect("decodes").0, frame);
    }
}

#[test]
fn frames_back_to_back_decode_one_at_a_time() {
    let frames = every_variant();
    let mut stream = Vec::new();
    for frame in &frames {
        stream.extend(encode_frame(frame).expect("encodes"));
    }
    let mut offset = 0;
    for frame in &frames {
        let (decoded, used) = decode_frame(&stream[offset..]).expect("decodes");
        assert_eq!(&decoded, frame);
        offset += used;
    }
    assert_eq!(offset, stream.len());
}

#[test]
fn every_truncation_is_incomplete() {
    for frame in every_variant() {
        let encoded = encode_frame(&frame).expect("encodes");
        for length in 0..encoded.len() {
            let error = decode_frame(&encoded[..length]).expect_err("a prefix is not a frame");
            assert!(error.is_incomplete(), "prefix of {length}: {error}");
        }
    }
}

#[test]
fn an_oversized_length_is_refused_before_the_body_arrives() {
    let codec = FrameCodec::new(1024);
    let claimed = (2000u32).to_be_bytes();
    assert_eq!(
        codec.decode(&claimed),
        Err(FrameError::TooLarge {
            size: 2004,
            max: 1024
        })
    );
    let absurd = u32::MAX.to_be_bytes();
    assert!(matches!(
        decode_frame(&absurd),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn a_frame_too_large_for_the_peer_is_not_encoded() {
    let codec = FrameCodec::new(1024);
    let frame = SyncFrame::Changes {
        case: "c".to_owned(),
        feed_seq: 1,
        base_heads: Vec::new(),
        sender_heads: Vec::new(),
        bytes: vec![0; 4096],
        whole: true,
    };
    let error = codec.encode(&frame).expect_err("too large");
    assert!(
        matches!(error, FrameError::TooLarge { max: 1024, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("exceeds the limit"));
}

#[test]
fn another_format_version_is_refused() {
    let mut encoded = encode_frame(&SyncFrame::CaughtUp { feed_head: 3 }).expect("encodes");
    encoded[4] = FRAME_FORMAT_VERSION + 1;
    let error = decode_frame(&encoded).expect_err("foreign version");
    assert_eq!(
        error,
        FrameError::UnsupportedVersion {
            found: FRAME_FORMAT_VERSION + 1,
            supported: FRAME_FORMAT_VERSION
        }
    );
    assert!(
        error
            .to_string()
            .starts_with("frame format version 2 is not supported")
    );
}

#[test]
fn an_empty_frame_is_refused() {
    assert_eq!(decode_frame(&[0, 0, 0, 0]), Err(FrameError::Empty));
}

#[test]
fn garbage_bodies_are_malformed() {
    // Variant index 200 does not exist.
    let unknown_variant = [0, 0, 0, 2, FRAME_FORMAT_VERSION, 200];
    assert!(matches!(
        decode_frame(&unknown_variant),
        Err(FrameError::Malformed(_))
    ));
    // An Error frame (variant 6) whose message claims far more bytes than the frame holds:
    // refused without allocating what the length claims.
    let lying_length = [
        0,
        0,
        0,
        7,
        FRAME_FORMAT_VERSION,
        6,
        252,
        0xff,
        0xff,
        0xff,
        0x7f,
    ];
    assert!(matches!(
        decode_frame(&lying_length),
        Err(FrameError::Malformed(_))
    ));
    // Invalid UTF-8 in a text field.
    let bad_text = [0, 0, 0, 5, FRAME_FORMAT_VERSION, 6, 2, 0xff, 0xfe];
    assert!(matches!(
        decode_frame(&bad_text),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn bytes_after_the_body_inside_the_frame_are_refused() {
    let mut encoded = encode_frame(&SyncFrame::CaughtUp { feed_head: 3 }).expect("encodes");
    encoded.push(0);
    let length = u32::try_from(encoded.len() - 4).expect("small");
    encoded[..4].copy_from_slice(&length.to_be_bytes());
    assert_eq!(
        decode_frame(&encoded),
        Err(FrameError::TrailingBytes { extra: 1 })
    );
}

fn any_frame() -> impl Strategy<Value = SyncFrame> {
    let heads = proptest::collection::vec(any::<[u8; 32]>(), 0..4);
    prop_oneof![
        (any::<u32>(), ".{0,20}", any::<u64>()).prop_map(
            |(protocol_version, node_id, feed_head)| {
                SyncFrame::Hello {
                    protocol_version,
                    node_id,
                    feed_head,
                }
            }
        ),
        (
            ".{0,30}",
            any::<u64>(),
            heads.clone(),
            heads.clone(),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<bool>()
        )
            .prop_map(|(case, feed_seq, base_heads, sender_heads, bytes, whole)| {
                SyncFrame::Changes {
                    case,
                    feed_seq,
                    base_heads,
                    sender_heads,
                    bytes,
                    whole,
                }
            }),
        (".{0,30}", any::<u64>(), heads.clone()).prop_map(|(case, feed_seq, heads)| {
            SyncFrame::Ack {
                case,
                feed_seq,
                heads,
            }
        }),
        (".{0,30}", heads).prop_map(|(case, have_heads)| SyncFrame::Need { case, have_heads }),
        (".{0,30}", any::<u64>(), ".{0,30}").prop_map(|(case, feed_seq, reason)| {
            SyncFrame::Refused {
                case,
                feed_seq,
                reason,
            }
        }),
        any::<u64>().prop_map(|feed_head| SyncFrame::CaughtUp { feed_head }),
        ".{0,40}".prop_map(|message| SyncFrame::Error { message }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame(&bytes);
        let codec = FrameCodec::new(64);
        let _ = codec.decode(&bytes);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_envelope_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut input = u32::try_from(body.len() + 1).expect("small").to_be_bytes().to_vec();
        input.push(FRAME_FORMAT_VERSION);
        input.extend(&body);
        if let Ok((_, used)) = decode_frame(&input) {
            prop_assert_eq!(used, input.len());
        }
    }

    #[test]
    fn arbitrary_frames_round_trip(frame in any_frame()) {
        let encoded = encode_frame(&frame).expect("encodes");
        let (decoded, used) = decode_frame(&encoded).expect("decodes");
        prop_assert_eq!(decoded, frame);
        prop_assert_eq!(used, encoded.len());
    }
}
