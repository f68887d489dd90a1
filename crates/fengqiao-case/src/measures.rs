//! The supervisors' measures (及时受理率, 按期办结率, …) over case summaries, per period and category.

use chrono::{DateTime, Utc};

use crate::model::{CaseSummary, Measures, WarningThresholds};

/// Measures over the cases registered in `[from, to)`, judged at `now`.
pub fn measures<'a>(
    summaries: impl IntoIterator<Item = &'a CaseSummary>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    thresholds: &WarningThresholds,
) -> Measures {
    let _ = (summaries, from, to, now, thresholds);
    todo!()
}
