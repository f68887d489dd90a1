//! Time limits: calendar days and working days, counted in China time (UTC+8).
//!
//! Offices count limits by the local calendar, not in 24-hour slices: a limit of N days from an
//! instant ends at the last millisecond of the N-th local day after the day the instant falls on.
//! Working-day limits (the 5-day objection window, 条例 Art 23) skip weekends and public holidays but
//! count the weekend days the State Council declares working days (调休).

use chrono::{
    DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday,
};

use crate::model::Limits;

/// Seconds east of UTC of China Standard Time; China has one time zone and no daylight saving.
const CHINA_OFFSET_SECONDS: i32 = 8 * 3600;

/// China Standard Time as a fixed offset (checked at compile time, so never a runtime failure).
const CHINA_OFFSET: FixedOffset = match FixedOffset::east_opt(CHINA_OFFSET_SECONDS) {
    Some(offset) => offset,
    None => panic!("china offset out of range"),
};

/// 23:59:59.999, the instant a day-counted limit ends.
const LAST_MILLISECOND_OF_DAY: NaiveTime = match NaiveTime::from_hms_milli_opt(23, 59, 59, 999) {
    Some(time) => time,
    None => panic!("last millisecond of the day out of range"),
};

/// China Standard Time as a fixed offset.
pub fn china_offset() -> FixedOffset {
    CHINA_OFFSET
}

/// The date an instant falls on in China.
pub fn local_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&china_offset()).date_naive()
}

/// The first instant (00:00 China time) of `date`, as a UTC instant: `local_date(at) >= date`
/// exactly when `at` is at or after it.
pub fn start_of_local_day(date: NaiveDate) -> DateTime<Utc> {
    let local = date.and_time(NaiveTime::MIN);
    // As in `end_of_local_day`: clamp at the start of chrono's range instead of panicking.
    local
        .checked_sub_signed(TimeDelta::seconds(i64::from(CHINA_OFFSET_SECONDS)))
        .unwrap_or(local)
        .and_utc()
}

/// The last millisecond (23:59:59.999 China time) of `date`, as a UTC instant.
pub fn end_of_local_day(date: NaiveDate) -> DateTime<Utc> {
    let local = date.and_time(LAST_MILLISECOND_OF_DAY);
    // Subtracting the offset can only overflow at the very end of chrono's range; clamp there so
    // an absurd configured limit gives a far-future deadline instead of a panic.
    local
        .checked_sub_signed(TimeDelta::seconds(i64::from(CHINA_OFFSET_SECONDS)))
        .unwrap_or(local)
        .and_utc()
}

/// `date` plus `days`, saturating at the end of the calendar chrono can represent.
fn add_days_saturating(date: NaiveDate, days: u32) -> NaiveDate {
    date.checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(NaiveDate::MAX)
}

/// Deadline of a limit of `days` calendar days starting at `at`: the end of the local day
/// `days` days after the local date of `at`.
pub fn calendar_deadline(at: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    end_of_local_day(add_days_saturating(local_date(at), days))
}

/// Whether offices work on `date`: weekdays that are not holidays, and 调休 weekend working days.
pub fn is_working_day(date: NaiveDate, limits: &Limits) -> bool {
    if limits.working_weekends.contains(&date) {
        return true;
    }
    if limits.holidays.contains(&date) {
        return false;
    }
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The local date on which a limit of `days` working days starting at `at` ends: the `days`-th
/// working day after the local date of `at` (the day of `at` itself does not count).
pub fn working_day_end_date(at: DateTime<Utc>, days: u32, limits: &Limits) -> NaiveDate {
    let mut date = local_date(at);
    let mut counted = 0;
    while counted < days {
        let Some(next) = date.succ_opt() else {
            return NaiveDate::MAX;
        };
        date = next;
        if is_working_day(date, limits) {
            counted += 1;
        }
    }
    date
}

/// Deadline of a limit of `days` working days starting at `at`: the end of the local day on which
/// the `days`-th working day after the local date of `at` falls.
pub fn working_day_deadline(at: DateTime<Utc>, days: u32, limits: &Limits) -> DateTime<Utc> {
    end_of_local_day(working_day_end_date(at, days, limits))
}

/// `at` truncated to whole milliseconds: the precision the case document stores.
pub fn truncate_to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

/// Whole calendar days in China from `now` to `due`, as offices count them on screen: positive
/// is "剩余 N 天", 0 is due today, negative is "已超期 N 天". Counted between the local dates,
/// since every time limit ends at the end of a local day.
pub fn calendar_days_until(due: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (local_date(due) - local_date(now)).num_days()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// An instant given in China local time.
    fn china(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        china_offset()
            .with_ymd_and_hms(year, month, day, hour, minute, 0)
            .single()
            .expect("valid test instant")
            .with_timezone(&Utc)
    }

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).expect("valid test date")
    }

    #[test]
    fn end_of_local_day_is_the_last_millisecond_in_china() {
        let end = end_of_local_day(date(2026, 3, 2));
        assert_eq!(
            end,
            Utc.with_ymd_and_hms(2026, 3, 2, 15, 59, 59).unwrap() + TimeDelta::milliseconds(999)
        );
        assert_eq!(local_date(end), date(2026, 3, 2));
        assert_eq!(
            local_date(end + TimeDelta::milliseconds(1)),
            date(2026, 3, 3)
        );
    }

    #[test]
    fn local_date_uses_china_time_not_utc() {
        // 2026-03-01 20:00 UTC is already the morning of 2 March in China.
        let evening_utc = Utc.with_ymd_and_hms(2026, 3, 1, 20, 0, 0).unwrap();
        assert_eq!(local_date(evening_utc), date(2026, 3, 2));
    }

    #[test]
    fn calendar_deadline_counts_local_days() {
        let registered = china(2026, 3, 2, 9, 30);
        assert_eq!(
            calendar_deadline(registered, 15),
            end_of_local_day(date(2026, 3, 17))
        );
        // Late in the evening, China time, still counts from that local day.
        let late = china(2026, 3, 2, 23, 59);
        assert_eq!(
            calendar_deadline(late, 15),
            end_of_local_day(date(2026, 3, 17))
        );
        // Just after midnight China time (still 1 March in UTC) counts from 2 March.
        let early = china(2026, 3, 2, 0, 5);
        assert_eq!(
            calendar_deadline(early, 1),
            end_of_local_day(date(2026, 3, 3))
        );
    }

    #[test]
    fn calendar_deadline_crosses_month_and_year_ends() {
        assert_eq!(
            calendar_deadline(china(2026, 1, 31, 10, 0), 30),
            end_of_local_day(date(2026, 3, 2))
        );
        assert_eq!(
            calendar_deadline(china(2028, 2, 28, 10, 0), 1),
            end_of_local_day(date(2028, 2, 29))
        );
        assert_eq!(
            calendar_deadline(china(2026, 12, 20, 10, 0), 60),
            end_of_local_day(date(2027, 2, 18))
        );
        assert_eq!(
            calendar_deadline(china(2026, 3, 2, 10, 0), 0),
            end_of_local_day(date(2026, 3, 2))
        );
    }

    #[test]
    fn calendar_deadline_saturates_instead_of_panicking() {
        let far = calendar_deadline(china(2026, 3, 2, 10, 0), u32::MAX);
        assert!(far > china(9999, 1, 1, 0, 0));
    }

    #[test]
    fn working_days_skip_weekends() {
        let limits = Limits::default();
        // Monday 2 March 2026 → five working days end Monday 9 March.
        assert_eq!(
            working_day_deadline(china(2026, 3, 2, 10, 0), 5, &limits),
            end_of_local_day(date(2026, 3, 9))
        );
        // Friday 6 March → Friday 13 March.
        assert_eq!(
            working_day_deadline(china(2026, 3, 6, 10, 0), 5, &limits),
            end_of_local_day(date(2026, 3, 13))
        );
        // Saturday 7 March → the count starts on Monday: Friday 13 March.
        assert_eq!(
            working_day_deadline(china(2026, 3, 7, 10, 0), 5, &limits),
            end_of_local_day(date(2026, 3, 13))
        );
        assert_eq!(
            working_day_deadline(china(2026, 3, 7, 10, 0), 0, &limits),
            end_of_local_day(date(2026, 3, 7))
        );
    }

    #[test]
    fn working_days_skip_holidays_and_count_working_weekends() {
        // 劳动节 2026: 1–5 May off, Saturday 9 May worked (调休).
        let limits = Limits {
            holidays: (1..=5).map(|day| date(2026, 5, day)).collect(),
            working_weekends: vec![date(2026, 5, 9)],
            ..Limits::default()
        };
        // Thursday 30 April: 6, 7, 8 May (Wed–Fri), 9 May (Sat, worked), 11 May (Mon).
        assert_eq!(
            working_day_deadline(china(2026, 4, 30, 16, 0), 5, &limits),
            end_of_local_day(date(2026, 5, 11))
        );
        assert!(is_working_day(date(2026, 5, 9), &limits));
        assert!(!is_working_day(date(2026, 5, 4), &limits));
        assert!(!is_working_day(date(2026, 5, 10), &limits));
    }

    #[test]
    fn working_days_cross_month_ends() {
        // Thursday 29 January 2026: 30 Jan, 2, 3, 4, 5 Feb.
        assert_eq!(
            working_day_deadline(china(2026, 1, 29, 9, 0), 5, &Limits::default()),
            end_of_local_day(date(2026, 2, 5))
        );
    }

    #[test]
    fn truncation_keeps_whole_milliseconds() {
        let at =
            Utc.with_ymd_and_hms(2026, 3, 2, 1, 2, 3).unwrap() + TimeDelta::nanoseconds(4_567_891);
        let truncated = truncate_to_millis(at);
        assert_eq!(truncated.timestamp_millis(), at.timestamp_millis());
        assert_eq!(truncated.timestamp_subsec_nanos(), 4_000_000);
    }

    #[test]
    fn days_until_a_deadline_are_counted_between_china_dates() {
        let due = calendar_deadline(china(2026, 12, 1, 9, 0), 3); // end of 4 December
        assert_eq!(calendar_days_until(due, china(2026, 12, 1, 23, 30)), 3);
        // 00:30 on 2 December in China is still 1 December in UTC: China's date counts.
        assert_eq!(calendar_days_until(due, china(2026, 12, 2, 0, 30)), 2);
        assert_eq!(calendar_days_until(due, china(2026, 12, 4, 23, 59)), 0);
        assert_eq!(calendar_days_until(due, china(2026, 12, 6, 8, 0)), -2);
    }
}
