//! The scenario suite alone, as the test cargo-mutants runs against
//! baton-core's algorithm (BENCHMARKS.md, "Checker power"): every
//! expectation `scenarios/` states for baton, under the explorer. Ignored
//! in the normal run (`scenarios.rs` checks the same and more); run it with
//!
//! ```text
//! cargo test -p baton-sim --test mutants_suite -- --ignored
//! ```
//!
//! It leaves out `three_replicas_crash_cancel`, the explorer's 2-million-
//! state benchmark (a minute per mutant), so a mutant that only that world
//! would catch counts as missed, not caught.
//!
//! Each check has a budget of [`MAX_STATES`], some 10× baton's largest
//! cell: a mutant that makes a world grow without end (refreshing on every
//! call, so the clock never stops) fails at the budget, as an inconclusive
//! verdict is not the expected one, instead of running into cargo-mutants'
//! timeout.
//!
//! With `BATON_MUTANTS_BENCH=1` it also runs the worlds in
//! `scenarios/bench/` that state an expectation for baton within a budget
//! of at most [`MAX_BENCH_STATES`] (`three_replicas_clear_race`, 1.09 M
//! states, about 20 s), last, so only mutants that survive everything
//! else pay for them.

use std::path::PathBuf;

use baton_sim::run::{check_one, CheckOptions};
use baton_sim::scenario::load_all;
use baton_sim::zoo::Algorithm;

/// States per check: baton's largest cell in `scenarios/` (but the
/// benchmark) is under 15,000.
const MAX_STATES: usize = 150_000;

/// States per bench world, with `BATON_MUTANTS_BENCH=1`.
const MAX_BENCH_STATES: usize = 4_000_000;

#[test]
#[ignore = "the cargo-mutants suite: run with --ignored"]
fn baton_meets_every_expectation_of_the_scenario_suite() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let scenarios = load_all(std::slice::from_ref(&dir)).expect("scenarios load");
    let bench = std::env::var_os("BATON_MUTANTS_BENCH").is_some_and(|v| v == "1");
    let bench_worlds = if bench {
        load_all(&[dir.join("bench")]).expect("bench scenarios load")
    } else {
        Vec::new()
    };
    let out_dir = std::env::temp_dir().join(format!("baton-mutants-{}", std::process::id()));
    let options = CheckOptions {
        max_states: Some(MAX_STATES),
        ..CheckOptions::explore(out_dir.clone())
    };
    let mut checked = 0;
    // Hand-written scenarios first, matrix cells after: a mutant is caught
    // at the first failure, and most fail one of the small worlds at once.
    let (cells, files): (Vec<_>, Vec<_>) = scenarios.iter().partition(|s| s.name.contains('['));
    for scenario in files.into_iter().chain(cells) {
        if scenario.name == "three_replicas_crash_cancel" {
            continue;
        }
        for (algorithm, expected) in &scenario.expectations {
            if *algorithm != Algorithm::BATON {
                continue;
            }
            let result = check_one(scenario, *algorithm, *expected, &options).unwrap();
            checked += 1;
            assert!(
                result.ok,
                "{}: expected {}, found {}",
                result.scenario, result.expected, result.found
            );
        }
    }
    for scenario in bench_worlds
        .iter()
        .filter(|s| s.max_states <= MAX_BENCH_STATES)
    {
        let Some((_, expected)) = scenario
            .expectations
            .iter()
            .find(|(a, _)| *a == Algorithm::BATON)
        else {
            continue;
        };
        let options = CheckOptions {
            max_states: None,
            ..options.clone()
        };
        let result = check_one(scenario, Algorithm::BATON, *expected, &options).unwrap();
        assert!(
            result.ok,
            "{}: expected {}, found {}",
            result.scenario, result.expected, result.found
        );
    }
    let _ = std::fs::remove_dir_all(out_dir);
    assert!(checked > 500, "only {checked} checks: scenarios missing");
}
