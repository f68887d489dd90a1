//! A hybrid logical clock (Kulkarni et al., 2014): the order of events across nodes whose wall
//! clocks drift or are wrong by days.
//!
//! A timestamp is the greatest wall time the node has seen (its own or any it received), in
//! milliseconds, and a counter that orders events within one millisecond. It never runs backwards
//! on one node, it orders every event after the events its node had seen, and it stays close to
//! real time while clocks are roughly right. Wall time (`Event::at`) is kept beside it for
//! deadlines, which the regulation counts in calendar and working days. No IO: `now` is passed in.

use chrono::{DateTime, Utc};

use crate::bounds::CLOCK_SKEW_ALLOWANCE;
pub use crate::model::HybridTimestamp;
use crate::model::{ClockHealth, ClockReference, ReceivedAheadNote};

/// Why a timestamp from a peer is not taken into the clock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error(
        "a timestamp {ahead_ms} ms ahead of this node's clock exceeds the allowed {max_ms} ms: \
         the sender's clock is wrong, or this node's is"
    )]
    TooFarAhead { ahead_ms: i64, max_ms: i64 },
}

/// How far ahead of the local wall clock a received timestamp is taken into the clock: the clock
/// skew allowance (5 minutes). A peer whose clock is further ahead is wrong (or this node is,
/// and its peers say so through [`judge_clock`]); taking its time in would keep this node's
/// clock, and every clock it talks to, ahead for as long as the error lasts. Its events are kept
/// all the same: `derive` follows their causal structure (`prev`, a directive's steps after its
/// issue), not the hybrid clock, wherever cause and effect matter.
pub const DEFAULT_MAX_AHEAD_MS: i64 = CLOCK_SKEW_ALLOWANCE.num_milliseconds();

/// How this node's clock stands against its peers', from the offsets its sessions measured
/// (each the peer's wall clock minus this node's, in milliseconds, `None` for a peer not heard
/// yet): against the parent when it has one; otherwise (a county) against the median of its
/// children. `None` when no reference has said its time yet. Skewed beyond
/// [`CLOCK_SKEW_ALLOWANCE`]; `allowed` says whether the node stamps events all the same.
pub fn judge_clock(
    parent_offset_ms: Option<i64>,
    child_offsets_ms: &[i64],
    allowed: bool,
) -> Option<ClockHealth> {
    let (peer_ahead_ms, reference) = match parent_offset_ms {
        Some(offset) => (offset, ClockReference::Parent),
        None => (median(child_offsets_ms)?, ClockReference::Children),
    };
    let offset_ms = peer_ahead_ms.saturating_neg();
    let skewed = offset_ms.unsigned_abs() > CLOCK_SKEW_ALLOWANCE.num_milliseconds().unsigned_abs();
    let against = match reference {
        ClockReference::Parent => "上级节点 the parent office",
        ClockReference::Children => "下级节点 the child offices (median)",
    };
    let by = describe_offset(offset_ms);
    let message = if !skewed {
        format!("本机时钟正常 clock agrees with {against} ({by})")
    } else if allowed {
        format!(
            "本机时钟偏差 {by}，已按配置继续记录 this node's clock is off by {by} against {against};              events are stamped anyway (allow_skew): deadlines counted from them are off too"
        )
    } else {
        format!(
            "本机时钟偏差 {by}，暂停记录，请校正系统时间 this node's clock is off by {by} against              {against}: it records no events until the clock is corrected (or it is told to              proceed: [clock] allow_skew = true, or fengqiao run --allow-clock-skew)"
        )
    };
    Some(ClockHealth {
        offset_ms,
        reference,
        skewed,
        allowed,
        message,
    })
}

/// `3 d 2 h slow 慢`, `4 min 10 s fast 快`: an offset for people.
pub fn describe_offset(offset_ms: i64) -> String {
    let direction = if offset_ms < 0 {
        "slow 慢"
    } else {
        "fast 快"
    };
    format!("{} {direction}", describe_duration(offset_ms))
}

/// The flag a person reads (时间存疑) for a case received with an event stamped ahead of this
/// node's clock.
pub fn received_ahead_flag(note: &ReceivedAheadNote) -> String {
    format!(
        "时间存疑: received on {} with an event stamped {} ahead of this node's clock: the \
         sender's clock (or this node's) is wrong; the event is kept as stamped",
        note.received_at.format("%Y-%m-%d %H:%M:%S UTC"),
        describe_duration(note.ahead_ms)
    )
}

/// `3 d 2 h`, `4 min 10 s`, `800 ms`: how long, whichever the sign.
pub fn describe_duration(milliseconds: i64) -> String {
    let seconds = milliseconds.unsigned_abs() / 1000;
    let (days, hours, minutes, rest) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {minutes} min")
    } else if minutes > 0 {
        format!("{minutes} min {rest} s")
    } else {
        format!("{} ms", milliseconds.unsigned_abs())
    }
}

fn median(values: &[i64]) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        length if length % 2 == 1 => Some(sorted[middle]),
        _ => Some(sorted[middle - 1] / 2 + sorted[middle] / 2),
    }
}

/// A node's clock: the last timestamp it issued or observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HybridClock {
    last: HybridTimestamp,
    /// How far ahead of our wall clock a received timestamp may be before it is refused, so that
    /// one node with its clock years ahead cannot drag every clock of the federation with it.
    max_ahead_ms: i64,
}

impl HybridClock {
    /// A clock that resumes after `last` (persisted by the shell), refusing peer timestamps more
    /// than `max_ahead_ms` ahead of the wall clock.
    pub fn new(last: HybridTimestamp, max_ahead_ms: i64) -> HybridClock {
        HybridClock { last, max_ahead_ms }
    }

    pub fn last(&self) -> HybridTimestamp {
        self.last
    }

    /// The timestamp of a local event at wall time `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> HybridTimestamp {
        let wall_ms = now.timestamp_millis();
        self.last = if wall_ms > self.last.wall_ms {
            HybridTimestamp {
                wall_ms,
                counter: 0,
            }
        } else {
            self.successor_of(self.last)
        };
        self.last
    }

    /// Take in a timestamp received from a peer at wall time `now`, so that what this node does
    /// next is ordered after it.
    pub fn observe(
        &mut self,
        received: HybridTimestamp,
        now: DateTime<Utc>,
    ) -> Result<HybridTimestamp, ClockError> {
        let wall_ms = now.timestamp_millis();
        let ahead_ms = received.wall_ms.saturating_sub(wall_ms);
        if ahead_ms > self.max_ahead_ms {
            return Err(ClockError::TooFarAhead {
                ahead_ms,
                max_ms: self.max_ahead_ms,
            });
        }
        let greatest = self.last.max(received);
        self.last = if wall_ms > greatest.wall_ms {
            HybridTimestamp {
                wall_ms,
                counter: 0,
            }
        } else {
            self.successor_of(greatest)
        };
        Ok(self.last)
    }

    /// The next timestamp after `timestamp`; a full counter moves to the next millisecond rather
    /// than wrapping.
    fn successor_of(&self, timestamp: HybridTimestamp) -> HybridTimestamp {
        match timestamp.counter.checked_add(1) {
            Some(counter) => HybridTimestamp {
                wall_ms: timestamp.wall_ms,
                counter,
            },
            None => HybridTimestamp {
                wall_ms: timestamp.wall_ms.saturating_add(1),
                counter: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    /// Clocks off by ±3 days must still work together; a week bounds how far ahead is believed.
    const WEEK_MS: i64 = 7 * DAY_MS;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
            .single()
            .expect("a valid time")
            + Duration::seconds(seconds)
    }

    #[test]
    fn a_clock_never_runs_backwards_even_when_the_wall_clock_does() {
        let mut clock = HybridClock::new(HybridTimestamp::ZERO, WEEK_MS);
        let first = clock.tick(at(10));
        let second = clock.tick(at(10));
        let after_step_back = clock.tick(at(-3 * 24 * 3600));
        assert!(first < second && second < after_step_back);
        assert_eq!(
            after_step_back.wall_ms, first.wall_ms,
            "it holds the wall time it saw"
        );
        let later = clock.tick(at(20));
        assert_eq!(
            (later.wall_ms, later.counter),
            (at(20).timestamp_millis(), 0)
        );
    }

    #[test]
    fn what_a_node_does_after_receiving_is_ordered_after_what_it_received() {
        // The village's clock is three days behind the county's.
        let mut county = HybridClock::new(HybridTimestamp::ZERO, WEEK_MS);
        let mut village = HybridClock::new(HybridTimestamp::ZERO, WEEK_MS);
        let directive = county.tick(at(3 * 24 * 3600));
        village
            .observe(directive, at(0))
            .expect("three days of skew is within the bound");
        let acknowledgement = village.tick(at(1));
        assert!(acknowledgement > directive);
        // The county, receiving the answer, orders its next step after it too.
        county
            .observe(acknowledgement, at(3 * 24 * 3600 + 5))
            .expect("observe");
        assert!(county.tick(at(3 * 24 * 3600 + 5)) > acknowledgement);
    }

    #[test]
    fn a_timestamp_too_far_ahead_is_refused_and_leaves_the_clock_alone() {
        let mut clock = HybridClock::new(HybridTimestamp::ZERO, WEEK_MS);
        let before = clock.tick(at(0));
        let from_the_future = HybridTimestamp {
            wall_ms: at(0).timestamp_millis() + 30 * DAY_MS,
            counter: 0,
        };
        let error = clock
            .observe(from_the_future, at(0))
            .expect_err("a month ahead is refused");
        assert!(error.to_string().contains("ahead"), "{error}");
        assert_eq!(clock.last(), before);
    }

    #[test]
    fn by_default_a_peer_more_than_five_minutes_ahead_is_not_taken_in() {
        let mut clock = HybridClock::new(HybridTimestamp::ZERO, DEFAULT_MAX_AHEAD_MS);
        let before = clock.tick(at(0));
        let five_minutes_ahead = HybridTimestamp {
            wall_ms: at(300).timestamp_millis(),
            counter: 0,
        };
        assert!(clock.observe(five_minutes_ahead, at(0)).is_ok());
        let three_days_ahead = HybridTimestamp {
            wall_ms: at(3 * 24 * 3600).timestamp_millis(),
            counter: 0,
        };
        let held = clock.last();
        assert!(clock.observe(three_days_ahead, at(1)).is_err());
        assert_eq!(clock.last(), held);
        assert!(held > before);
        // The next local event stays near this node's own wall clock, not days ahead.
        let next = clock.tick(at(400));
        assert_eq!(next.wall_ms, at(400).timestamp_millis());
    }

    #[test]
    fn a_node_is_judged_against_its_parent_or_else_the_median_of_its_children() {
        let minute = 60_000;
        // The parent's clock is 3 days ahead of ours: we are 3 days slow.
        let slow = judge_clock(Some(3 * DAY_MS), &[0, 0], false).expect("judged");
        assert_eq!(slow.offset_ms, -3 * DAY_MS);
        assert_eq!(slow.reference, ClockReference::Parent);
        assert!(slow.skewed && !slow.allowed);
        assert!(slow.message.contains("3 d 0 h slow"), "{}", slow.message);
        assert!(
            slow.message.contains("allow-clock-skew"),
            "{}",
            slow.message
        );
        assert!(
            judge_clock(Some(3 * DAY_MS), &[], true)
                .is_some_and(|health| health.skewed && health.allowed)
        );
        // Within 5 minutes is agreement.
        let fine = judge_clock(Some(4 * minute), &[], false).expect("judged");
        assert!(!fine.skewed, "{fine:?}");
        // A county: the median of its children, so one wrong village does not move it.
        let county = judge_clock(None, &[-minute, 3 * DAY_MS, 0], false).expect("judged");
        assert_eq!(county.reference, ClockReference::Children);
        assert_eq!(county.offset_ms, 0);
        assert!(!county.skewed);
        // Every child says the county is 3 days fast.
        let fast = judge_clock(None, &[-3 * DAY_MS, -3 * DAY_MS - minute], false).expect("judged");
        assert!(fast.skewed && fast.offset_ms > 0, "{fast:?}");
        // Nobody has said their time yet.
        assert_eq!(judge_clock(None, &[], false), None);
    }

    #[test]
    fn a_full_counter_moves_to_the_next_millisecond() {
        let start = HybridTimestamp {
            wall_ms: at(0).timestamp_millis(),
            counter: u32::MAX,
        };
        let mut clock = HybridClock::new(start, WEEK_MS);
        let next = clock.tick(at(0));
        assert_eq!((next.wall_ms, next.counter), (start.wall_ms + 1, 0));
        assert!(next > start);
    }
}
