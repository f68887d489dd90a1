//! Fuzz target: `fengqiao_transport::read_frame` over a reader that hands out the input in
//! fuzzer-chosen chunk sizes, reading frames until the stream ends or errs; each payload is also
//! given to the sync frame decoder.
//!
//! Input layout: byte 0 seeds the chunk sizes (1..=64 bytes per read, varying), the rest is the
//! stream. Checks: no panic; a payload is never longer, nor its buffer larger, than the maximum;
//! the frames read account for exactly the bytes consumed.

#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use fengqiao_transport::{FrameError, read_frame};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

/// Small, so that oversized announcements and multi-chunk payloads are both easy to reach.
const MAXIMUM: usize = 16 * 1024;

/// Yields the stream a few bytes at a time, returning `Pending` (and waking itself) now and then,
/// as a network stream does.
struct ChoppyReader<'a> {
    stream: &'a [u8],
    state: u8,
}

impl AsyncRead for ChoppyReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.state = self.state.wrapping_mul(31).wrapping_add(7);
        if self.state.is_multiple_of(5) {
            context.waker().wake_by_ref();
            return Poll::Pending;
        }
        let size = usize::from(self.state % 64 + 1)
            .min(self.stream.len())
            .min(buffer.remaining());
        let (now, later) = self.stream.split_at(size);
        buffer.put_slice(now);
        self.stream = later;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut reader = ChoppyReader {
        stream,
        state: seed,
    };
    runtime().block_on(async {
        let mut consumed = 0;
        loop {
            match read_frame(&mut reader, MAXIMUM).await {
                Ok(Some(payload)) => {
                    assert!(payload.len() <= MAXIMUM);
                    assert!(
                        payload.capacity() <= MAXIMUM,
                        "a {} byte payload holds a {} byte buffer",
                        payload.len(),
                        payload.capacity()
                    );
                    consumed += 4 + payload.len();
                    assert_eq!(consumed, stream.len() - reader.stream.len());
                    let _ = fengqiao_sync::decode_frame(&payload);
                }
                Ok(None) => {
                    assert_eq!(consumed, stream.len(), "a clean end must be between frames");
                    break;
                }
                Err(FrameError::Oversized { length, maximum }) => {
                    assert!(length > maximum as u64);
                    break;
                }
                Err(FrameError::Truncated { expected, received }) => {
                    assert!(received < expected);
                    assert!(
                        reader.stream.is_empty(),
                        "truncated before the stream ended"
                    );
                    break;
                }
                Err(error) => panic!("unexpected error from an in-memory stream: {error}"),
            }
        }
    });
});
