//! Graded warnings (预警 / 超时 / 严重超时) for open deadlines, judged at a given `now`.

use chrono::{DateTime, Utc};

use crate::model::{CaseSummary, Warning, WarningThresholds};

/// Warnings for every deadline that is open in the case's current status, and for every
/// directive not yet crossed off.
pub fn warnings(summary: &CaseSummary, now: DateTime<Utc>, thresholds: &WarningThresholds) -> Vec<Warning> {
    let _ = (summary, now, thresholds);
    todo!()
}
