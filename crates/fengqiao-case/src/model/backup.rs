//! The backup file's header (`fengqiao backup`, `fengqiao restore`): the one versioned type that
//! says what a backup holds, read before anything else in the file.
//!
//! The file is `BACKUP_MAGIC`, the header's length (u32 big-endian), the header as JSON, the
//! body (gzip of the node's records, framed by `fengqiao::backup`), then the SHA-256 of every
//! byte before it. A reader checks the magic, then the header's `format_version`, then the
//! checksum, and only then reads the body; a change to any of these layouts bumps
//! [`BACKUP_FORMAT_VERSION`], and the restore of the older layout is kept.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The first bytes of every backup file.
pub const BACKUP_MAGIC: &[u8; 16] = b"FENGQIAO-BACKUP\n";

/// Layout version of the backup file (header, body framing, trailer).
pub const BACKUP_FORMAT_VERSION: u32 = 1;

/// A header longer than this is damage, not a header: refused before it is read into memory.
pub const MAX_BACKUP_HEADER_BYTES: u32 = 64 * 1024;

/// What a backup is of, written before its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// [`BACKUP_FORMAT_VERSION`] of the build that wrote it.
    pub format_version: u32,
    /// The node whose store and directory the backup holds.
    pub node_id: String,
    /// The office's name, for a person choosing among backups.
    pub office: String,
    /// The node's change feed position the backup is of: every case as it was once the writes
    /// up to this position were committed, none of the writes after it.
    pub feed_position: u64,
    /// When the snapshot was taken (the node's clock).
    pub taken_at: DateTime<Utc>,
    /// The version of the fengqiao build that wrote it.
    pub software_version: String,
}
