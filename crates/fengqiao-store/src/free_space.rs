//! The free-space guard: every write is refused while the disk holding the store has less free
//! space than the configured reserve, so that sled never meets a full disk.
//!
//! sled 0.34 does not survive running out of space: a write that hits `ENOSPC` in its log leaves
//! it failing (or waiting in `make_stable` for ever) until the process restarts. Refusing before
//! the disk is full keeps the store healthy, and it takes writes again as soon as space returns.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::StoreError;
use crate::cache::lock_ignoring_poison;

/// How long a reading that showed room to spare is trusted. A node writes at most a few MiB in
/// this time (the federation's receiver, flat out), far less than any sensible reserve, and one
/// `statvfs` per interval costs nothing next to the writes. A reading below the reserve is never
/// reused: refused writes re-read, so space that returns is seen at once.
const REREAD_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy)]
struct Reading {
    available: u64,
    taken_at: Instant,
}

#[derive(Debug)]
pub(crate) struct FreeSpaceGuard {
    /// A path on the disk to watch: the store's directory.
    path: PathBuf,
    /// Bytes that must stay free; 0 turns the guard off.
    reserve: u64,
    last_reading: Mutex<Option<Reading>>,
    /// What tests pretend the disk has free, instead of asking it.
    #[cfg(test)]
    pretended_available: Mutex<Option<u64>>,
}

impl FreeSpaceGuard {
    pub(crate) fn new(path: &Path, reserve: u64) -> FreeSpaceGuard {
        FreeSpaceGuard {
            path: path.to_path_buf(),
            reserve,
            last_reading: Mutex::new(None),
            #[cfg(test)]
            pretended_available: Mutex::new(None),
        }
    }

    /// `Ok` while at least the reserve is free; otherwise `DiskFull`, saying how much is.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.reserve == 0 {
            return Ok(());
        }
        match self.available() {
            Some(available) if available < self.reserve => Err(StoreError::DiskFull {
                path: self.path.display().to_string(),
                available,
                reserve: self.reserve,
            }),
            _ => Ok(()),
        }
    }

    /// Free bytes for an unprivileged writer, from a recent reading or the disk; `None` if the
    /// disk cannot say (a write then goes ahead: not knowing is no evidence of a full disk, and
    /// sled reports a disk that really fails).
    fn available(&self) -> Option<u64> {
        #[cfg(test)]
        if let Some(pretended) = *lock_ignoring_poison(&self.pretended_available) {
            return Some(pretended);
        }
        // Held while reading the disk, so that writers arriving meanwhile wait for this reading
        // (a few microseconds) instead of each asking the disk again.
        let mut last_reading = lock_ignoring_poison(&self.last_reading);
        let now = Instant::now();
        if let Some(reading) = *last_reading
            && reading.available >= self.reserve
            && now.duration_since(reading.taken_at) < REREAD_INTERVAL
        {
            return Some(reading.available);
        }
        match available_on_disk(&self.path) {
            Ok(available) => {
                *last_reading = Some(Reading {
                    available,
                    taken_at: now,
                });
                Some(available)
            }
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot read the free space of the store's disk");
                *last_reading = None;
                None
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn pretend_available(&self, available: Option<u64>) {
        *lock_ignoring_poison(&self.pretended_available) = available;
    }
}

#[cfg(unix)]
fn available_on_disk(path: &Path) -> std::io::Result<u64> {
    let statistics = rustix::fs::statvfs(path)?;
    // f_bavail, not f_bfree: the blocks root keeps for itself are no use to the node.
    Ok(statistics.f_bavail.saturating_mul(statistics.f_frsize))
}

#[cfg(not(unix))]
fn available_on_disk(_path: &Path) -> std::io::Result<u64> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "free space is only measured on unix",
    ))
}

/// `bytes` for people: "17.5 MiB".
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_below_the_reserve_and_accepts_again_when_space_returns() {
        let directory = tempfile::tempdir().expect("tempdir");
        let guard = FreeSpaceGuard::new(directory.path(), 1024);
        guard.pretend_available(Some(1023));
        let refused = guard.check().expect_err("below the reserve");
        assert!(
            matches!(
                refused,
                StoreError::DiskFull {
                    available: 1023,
                    reserve: 1024,
                    ..
                }
            ),
            "{refused}"
        );
        guard.pretend_available(Some(1024));
        guard.check().expect("exactly the reserve is enough");
    }

    #[test]
    fn reads_the_real_disk_and_a_reserve_beyond_it_refuses() {
        let directory = tempfile::tempdir().expect("tempdir");
        let available = available_on_disk(directory.path()).expect("statvfs");
        assert!(available > 0, "the test disk has some space");
        FreeSpaceGuard::new(directory.path(), 1)
            .check()
            .expect("one byte is free");
        let error = FreeSpaceGuard::new(directory.path(), u64::MAX)
            .check()
            .expect_err("no disk has u64::MAX bytes free");
        let message = error.to_string();
        assert!(message.contains("free space"), "{message}");
    }

    #[test]
    fn a_reading_below_the_reserve_is_never_reused() {
        let directory = tempfile::tempdir().expect("tempdir");
        let guard = FreeSpaceGuard::new(directory.path(), 1024);
        // A stale reading below the reserve, as if the disk had been full a moment ago.
        *lock_ignoring_poison(&guard.last_reading) = Some(Reading {
            available: 0,
            taken_at: Instant::now(),
        });
        guard
            .check()
            .expect("re-read at once, and the test disk has 1 KiB free");
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(16 * 1024 * 1024), "16.0 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
