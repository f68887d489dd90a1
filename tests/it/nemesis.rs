//! Issue 16: a nemesis run over seven real nodes (a county, two townships, four villages), each
//! child behind its own fault proxy, with a checker after the heal (`tests/support/nemesis.rs`).
//!
//! The default run holds the fixed seed, so a regression shows on every run, and one fresh seed
//! (printed in the output, so each run explores a new schedule). A failure on a fresh seed is a
//! real bug until shown otherwise: `scripts/nemesis --seed S` replays it; `--minutes M` soaks
//! over fresh seeds (RELIABILITY.md records the soaks).

use fengqiao_tests::nemesis::{run_nemesis, seconds_from_env, seed_from_env_or_fresh};

/// The seed of the run every test run repeats.
const FIXED_SEED: u64 = 16_020_401;

#[test]
fn a_nemesis_run_on_a_fixed_seed_keeps_every_acknowledged_write_and_converges() {
    let report = run_nemesis(FIXED_SEED, seconds_from_env(60));
    assert!(
        report.acknowledged > 0 && !report.faults.is_empty(),
        "the run did too little to mean anything: {}",
        report.summary_line()
    );
}

#[test]
fn a_nemesis_run_on_a_fresh_seed_keeps_every_acknowledged_write_and_converges() {
    let report = run_nemesis(seed_from_env_or_fresh(), seconds_from_env(30));
    assert!(
        report.acknowledged > 0 && !report.faults.is_empty(),
        "the run did too little to mean anything: {}",
        report.summary_line()
    );
}
