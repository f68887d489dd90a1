//! Fuzz target: `fengqiao_sync::decode_frame` on arbitrary bytes, as a peer's stream would feed it.
//!
//! Beyond "never panics", it checks what the session relies on: a decoded frame used no more bytes
//! than it was given and re-encodes to a frame that decodes to itself (never longer than what was
//! read); every proper prefix of a decoded frame is `Incomplete`; an `Incomplete` asks for more
//! bytes than were available and no more than the size limit. Frames are decoded back to back, as
//! the session walks a receive buffer, until the first error.

#![no_main]

use fengqiao_sync::{DEFAULT_MAX_FRAME_SIZE, FrameError, decode_frame, encode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut offset = 0;
    while offset < data.len() {
        let input = &data[offset..];
        match decode_frame(input) {
            Ok((frame, used)) => {
                assert!(
                    used > 0 && used <= input.len(),
                    "used {used} of {}",
                    input.len()
                );
                let encoded = encode_frame(&frame).expect("a decoded frame encodes");
                assert!(
                    encoded.len() <= used,
                    "re-encoding grew the frame from {used} to {} bytes",
                    encoded.len()
                );
                let (again, again_used) =
                    decode_frame(&encoded).expect("a re-encoded frame decodes");
                assert_eq!(again, frame, "the frame does not survive a round trip");
                assert_eq!(again_used, encoded.len());
                let short =
                    decode_frame(&input[..used - 1]).expect_err("a proper prefix is not a frame");
                assert!(short.is_incomplete(), "a proper prefix gave {short:?}");
                offset += used;
            }
            Err(FrameError::Incomplete { available, needed }) => {
                assert_eq!(available, input.len());
                assert!(needed > available && needed <= DEFAULT_MAX_FRAME_SIZE);
                break;
            }
            Err(FrameError::TooLarge { size, max }) => {
                assert!(size > max);
                break;
            }
            Err(FrameError::Encode(message)) => {
                panic!("the decoder reported an encode error: {message}")
            }
            Err(_) => break,
        }
    }
});
