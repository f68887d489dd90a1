//! The node's wall clock: the system's time, moved by an offset that only tests set.
//!
//! Every time the node reads (the time it stamps events with, deadlines are judged at, its
//! hybrid clock and its link clocks start from) comes from [`now`], so a test can run a real
//! node whose clock is days off (`fengqiao run --clock-offset-seconds`, documented as for
//! testing) and see what the federation makes of it: the node finds itself off against its
//! peers and refuses to stamp events unless told to allow it, and what it stamped before it
//! knew is kept and flagged at the other offices. The domain crates read no clock; they are
//! given this one's time.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// Milliseconds added to the system's time: 0 outside tests.
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The node's time now.
pub fn now() -> DateTime<Utc> {
    moved(Utc::now(), OFFSET_MS.load(Ordering::Relaxed))
}

/// `system` moved by `offset_ms` (unmoved if that leaves chrono's range).
fn moved(system: DateTime<Utc>, offset_ms: i64) -> DateTime<Utc> {
    if offset_ms == 0 {
        return system;
    }
    system
        .checked_add_signed(TimeDelta::milliseconds(offset_ms))
        .unwrap_or(system)
}

/// For tests only: the node's clock runs `offset` ahead of the system's (behind when negative).
pub fn set_offset_for_testing(offset: TimeDelta) {
    OFFSET_MS.store(offset.num_milliseconds(), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The offset itself is process-wide: the unit tests of this crate run side by side, so
    // they test the arithmetic, and the nemesis runs real nodes with `--clock-offset-seconds`.
    #[test]
    fn an_offset_moves_the_time_either_way_and_never_out_of_range() {
        let system = Utc::now();
        assert_eq!(moved(system, 0), system);
        assert_eq!(moved(system, -3 * 86_400_000), system - TimeDelta::days(3));
        assert_eq!(moved(system, 90_000), system + TimeDelta::seconds(90));
        assert_eq!(moved(DateTime::<Utc>::MAX_UTC, 1), DateTime::<Utc>::MAX_UTC);
    }
}
