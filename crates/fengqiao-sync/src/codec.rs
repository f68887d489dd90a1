//! The frame envelope on a byte stream: a length prefix, a format version byte, a bincode body.
//!
//! Layout of one frame: `length` (u32, big-endian, counts the version byte and the body),
//! `format version` (u8, [`FRAME_FORMAT_VERSION`]), `body` (bincode 2, standard configuration,
//! of a [`SyncFrame`]). Everything read from a peer is untrusted: the length is checked against
//! the configured maximum before any byte of the body is awaited, and the body is decoded with a
//! byte limit, so a hostile length field can neither make us buffer nor allocate without bound.

use fengqiao_case::model::sync::SyncFrame;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version of the envelope and body encoding (not of the conversation: that is
/// [`fengqiao_case::model::sync::SYNC_PROTOCOL_VERSION`] in the hello).
pub const FRAME_FORMAT_VERSION: u8 = 1;

/// Default largest frame accepted or produced: a whole saved case is ~4 KB (saved uncompressed),
/// so this leaves room for cases with years of history and attachments-as-text while bounding one
/// frame's memory.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// Whatever a codec is configured with, no body is decoded past this many bytes.
const HARD_DECODE_LIMIT: usize = 256 * 1024 * 1024;

const LENGTH_PREFIX_SIZE: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not an error in the stream, only a short read: wait for more bytes.
    #[error("frame is incomplete: {available} of {needed} bytes available")]
    Incomplete { available: usize, needed: usize },
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("frame has length zero, so not even a format version byte")]
    Empty,
    #[error("frame format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("frame body cannot be decoded: {0}")]
    Malformed(String),
    #[error("frame body has {extra} unread bytes after the frame")]
    TrailingBytes { extra: usize },
    #[error("frame cannot be encoded: {0}")]
    Encode(String),
}

impl FrameError {
    /// Whether more bytes could still make this a frame (every other error is final).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, FrameError::Incomplete { .. })
    }
}

/// Encoder and decoder with a configured maximum frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame_size: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameCodec {
    /// A codec refusing frames longer than `max_frame_size` bytes (prefix included), capped at
    /// an internal hard limit.
    pub fn new(max_frame_size: usize) -> FrameCodec {
        FrameCodec {
            max_frame_size: max_frame_size.clamp(LENGTH_PREFIX_SIZE + 1, HARD_DECODE_LIMIT),
        }
    }

    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The frame with its length prefix, or [`FrameError::TooLarge`] if the peer would refuse it.
    pub fn encode(&self, frame: &SyncFrame) -> Result<Vec<u8>, FrameError> {
        self.encode_message(frame)
    }

    /// The first frame in `input` and how many bytes it used. A short input is
    /// [`FrameError::Incomplete`]; anything else wrong is a final error for the stream.
    pub fn decode(&self, input: &[u8]) -> Result<(SyncFrame, usize), FrameError> {
        self.decode_message(input)
    }

    /// Any wire message in the same envelope (the roster stream's frames use it too).
    pub fn encode_message<T: Serialize>(&self, frame: &T) -> Result<Vec<u8>, FrameError> {
        let mut encoded = vec![0u8; LENGTH_PREFIX_SIZE];
        encoded.push(FRAME_FORMAT_VERSION);
        bincode::serde::encode_into_std_write(frame, &mut encoded, bincode_configuration())
            .map_err(|error| FrameError::Encode(error.to_string()))?;
        if encoded.len() > self.max_frame_size {
            return Err(FrameError::TooLarge {
                size: encoded.len(),
                max: self.max_frame_size,
            });
        }
        let length = u32::try_from(encoded.len() - LENGTH_PREFIX_SIZE).map_err(|_| {
            FrameError::TooLarge {
                size: encoded.len(),
                max: self.max_frame_size,
            }
        })?;
        encoded[..LENGTH_PREFIX_SIZE].copy_from_slice(&length.to_be_bytes());
        Ok(encoded)
    }

    /// Decode any wire message from the same envelope, as [`FrameCodec::decode`] does.
    pub fn decode_message<T: DeserializeOwned>(
        &self,
        input: &[u8],
    ) -> Result<(T, usize), FrameError> {
        let Some(prefix) = input.first_chunk::<LENGTH_PREFIX_SIZE>() else {
            return Err(FrameError::Incomplete {
                available: input.len(),
                needed: LENGTH_PREFIX_SIZE,
            });
        };
        let length = u32::from_be_bytes(*prefix) as usize;
        // Checked before waiting for the body, so an absurd length is refused at once.
        let total = LENGTH_PREFIX_SIZE.saturating_add(length);
        if total > self.max_frame_size {
            return Err(FrameError::TooLarge {
                size: total,
                max: self.max_frame_size,
            });
        }
        if length == 0 {
            return Err(FrameError::Empty);
        }
        if input.len() < total {
            return Err(FrameError::Incomplete {
                available: input.len(),
                needed: total,
            });
        }
        let version = input[LENGTH_PREFIX_SIZE];
        if version != FRAME_FORMAT_VERSION {
            return Err(FrameError::UnsupportedVersion {
                found: version,
                supported: FRAME_FORMAT_VERSION,
            });
        }
        let body = &input[LENGTH_PREFIX_SIZE + 1..total];
        let (frame, used): (T, usize) =
            bincode::serde::decode_from_slice(body, bincode_configuration())
                .map_err(|error| FrameError::Malformed(error.to_string()))?;
        if used != body.len() {
            return Err(FrameError::TrailingBytes {
                extra: body.len() - used,
            });
        }
        Ok((frame, total))
    }
}

/// Decode the first frame of `input` with the default maximum size: the entry point for fuzzing.
pub fn decode_frame(input: &[u8]) -> Result<(SyncFrame, usize), FrameError> {
    FrameCodec::default().decode(input)
}

/// Encode with the default maximum size.
pub fn encode_frame(frame: &SyncFrame) -> Result<Vec<u8>, FrameError> {
    FrameCodec::default().encode(frame)
}

fn bincode_configuration() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<HARD_DECODE_LIMIT>()
}
