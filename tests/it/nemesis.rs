//! Issue 16: a nemesis run over seven real nodes (a county, two townships, four villages), each
//! child behind its own fault proxy, with a checker after the heal (`tests/support/nemesis.rs`).
//!
//! The default run holds the fixed seed, so a regression shows on every run. The run on a fresh
//! seed (printed in the output, so each run explores a new schedule) is ignored by default while
//! finding N1 of RELIABILITY.md is open: about one fresh seed in fifteen ends with an office
//! silently one event behind, and a test run must not fail on a known open bug by chance. Run it
//! with `cargo test -p fengqiao-tests --test it -- nemesis --include-ignored`;
//! `scripts/nemesis --seed S` replays a seed; `--minutes M` soaks over fresh seeds.

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
#[ignore = "N1 and N3 are fixed (RELIABILITY.md); out of the default run until a 60-minute soak of the nemesis with clock skew and directives passes: run with --include-ignored or scripts/nemesis"]
fn a_nemesis_run_on_a_fresh_seed_keeps_every_acknowledged_write_and_converges() {
    let report = run_nemesis(seed_from_env_or_fresh(), seconds_from_env(30));
    assert!(
        report.acknowledged > 0 && !report.faults.is_empty(),
        "the run did too little to mean anything: {}",
        report.summary_line()
    );
}
