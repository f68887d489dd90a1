//! Length-prefixed frames over a stream: a 4-byte big-endian length, then that many bytes.
//!
//! Reading never allocates more than the caller's maximum, and grows the buffer only as bytes
//! actually arrive, so a peer that announces a large frame and then stalls costs little memory.
//! The helpers take any tokio reader or writer; quinn's `RecvStream` and `SendStream` are both.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A sensible ceiling for sync frames: far above one case's changes, far below a node's memory.
pub const DEFAULT_MAXIMUM_FRAME_LENGTH: usize = 8 * 1024 * 1024;

const LENGTH_PREFIX_BYTES: usize = 4;

/// Reads go through a small stack buffer so that the payload's allocation follows received bytes.
const READ_CHUNK_BYTES: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {length} bytes exceeds the maximum of {maximum} bytes")]
    Oversized { length: u64, maximum: usize },
    #[error("frame of {length} bytes is too large to send (maximum {maximum} bytes)")]
    TooLargeToSend { length: usize, maximum: usize },
    #[error("stream ended inside a frame: {received} of {expected} bytes received")]
    Truncated { expected: usize, received: usize },
    #[error("frame stream error: {0}")]
    Io(#[from] std::io::Error),
}

/// Write one frame. Refuses a payload over `maximum`, which the peer would refuse anyway.
pub async fn write_frame<Writer>(
    writer: &mut Writer,
    payload: &[u8],
    maximum: usize,
) -> Result<(), FrameError>
where
    Writer: AsyncWrite + Unpin + ?Sized,
{
    let too_large = || FrameError::TooLargeToSend {
        length: payload.len(),
        maximum,
    };
    if payload.len() > maximum {
        return Err(too_large());
    }
    let length = u32::try_from(payload.len()).map_err(|_| too_large())?;
    writer.write_all(&length.to_be_bytes()).await?;
    writer.write_all(payload).await?;
    writer.flush().await?;
    Ok(())
}

/// Read one frame. `Ok(None)` when the stream ends cleanly between frames; an error when it ends
/// inside one or announces more than `maximum` bytes.
pub async fn read_frame<Reader>(
    reader: &mut Reader,
    maximum: usize,
) -> Result<Option<Vec<u8>>, FrameError>
where
    Reader: AsyncRead + Unpin + ?Sized,
{
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    let mut prefix_filled = 0;
    while prefix_filled < LENGTH_PREFIX_BYTES {
        let received = reader.read(&mut prefix[prefix_filled..]).await?;
        if received == 0 {
            if prefix_filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                expected: LENGTH_PREFIX_BYTES,
                received: prefix_filled,
            });
        }
        prefix_filled += received;
    }
    let announced = u32::from_be_bytes(prefix);
    let length = match usize::try_from(announced) {
        Ok(length) if length <= maximum => length,
        _ => {
            return Err(FrameError::Oversized {
                length: u64::from(announced),
                maximum,
            });
        }
    };

    let mut payload: Vec<u8> = Vec::with_capacity(length.min(READ_CHUNK_BYTES));
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    while payload.len() < length {
        let wanted = (length - payload.len()).min(READ_CHUNK_BYTES);
        let received = reader.read(&mut chunk[..wanted]).await?;
        if received == 0 {
            return Err(FrameError::Truncated {
                expected: length,
                received: payload.len(),
            });
        }
        // Grow by doubling for speed, but never past the announced length, which is itself
        // bounded by the maximum (Vec's own growth could round up beyond it).
        if payload.capacity() - payload.len() < received {
            let target = (payload.capacity() * 2)
                .max(payload.len() + received)
                .min(length);
            payload.reserve_exact(target - payload.len());
        }
        payload.extend_from_slice(&chunk[..received]);
    }
    Ok(Some(payload))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_including_empty_ones() {
        let mut buffer = Vec::new();
        let large = vec![0x5a; 100_000];
        write_frame(&mut buffer, b"hello", 1 << 20).await.unwrap();
        write_frame(&mut buffer, b"", 1 << 20).await.unwrap();
        write_frame(&mut buffer, &large, 1 << 20).await.unwrap();
        let mut reader = buffer.as_slice();
        assert_eq!(
            read_frame(&mut reader, 1 << 20).await.unwrap().unwrap(),
            b"hello"
        );
        assert_eq!(
            read_frame(&mut reader, 1 << 20).await.unwrap().unwrap(),
            b""
        );
        let received = read_frame(&mut reader, 1 << 20).await.unwrap().unwrap();
        assert_eq!(received, large);
        assert!(received.capacity() <= large.len());
        assert!(read_frame(&mut reader, 1 << 20).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_announced_length_over_the_maximum_is_refused_before_reading_it() {
        let mut reader: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let error = read_frame(&mut reader, 1024).await.unwrap_err();
        assert!(matches!(
            error,
            FrameError::Oversized {
                length: 0xffff_ffff,
                maximum: 1024
            }
        ));
        assert_eq!(
            error.to_string(),
            "frame of 4294967295 bytes exceeds the maximum of 1024 bytes"
        );
    }

    #[tokio::test]
    async fn truncated_prefixes_and_payloads_are_errors() {
        let mut reader: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut reader, 1024).await.unwrap_err(),
            FrameError::Truncated {
                expected: 4,
                received: 2
            }
        ));
        let mut reader: &[u8] = &[0, 0, 0, 10, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut reader, 1024).await.unwrap_err(),
            FrameError::Truncated {
                expected: 10,
                received: 3
            }
        ));
    }

    #[tokio::test]
    async fn writing_over_the_maximum_is_refused() {
        let mut buffer = Vec::new();
        let error = write_frame(&mut buffer, &[0; 11], 10).await.unwrap_err();
        assert!(matches!(error, FrameError::TooLargeToSend { .. }));
        assert!(buffer.is_empty());
    }
}
