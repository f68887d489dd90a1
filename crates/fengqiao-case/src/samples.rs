//! Realistic sample cases drawn from the scenarios in the seed documents, for demo, tests and benches.

use chrono::{DateTime, Utc};

use crate::model::ImportRow;

/// A village (or community) that sample cases are located in.
#[derive(Debug, Clone)]
pub struct SampleVillage {
    pub region_code: String,
    pub name: String,
}

/// `count` cases registered between `start` and `now` in the given villages, each with the history
/// a case of its age would have. Deterministic for a given `seed`.
pub fn sample_ledger(
    seed: u64,
    count: usize,
    villages: &[SampleVillage],
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<ImportRow> {
    let _ = (seed, count, villages, start, now);
    todo!()
}
