//! The example's checks, from `cargo test`: Go's `ReuseTokenSource` on its
//! own scenarios (each stating the verdict the explorer must find), and on
//! baton's shipped two-replica world, where it must fail the way the
//! scenario file says.

use std::path::PathBuf;

use baton_sim::registry::{register, Algorithm};
use baton_sim::run::Found;
use baton_sim::testing::Suite;

fn here(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn suite() -> Suite {
    let go = register(bring_your_own::registration()).expect("registers");
    Suite::new(go)
        .replay_with("cargo run -p bring-your-own --bin check --")
        .out_dir(std::env::temp_dir().join("bring-your-own"))
}

#[test]
fn go_reuse_token_source_meets_the_verdicts_of_its_scenarios() {
    let results = suite().check([here("scenarios")]);
    assert!(results.len() >= 5, "{} checks", results.len());
    // The verdicts are found, not assumed: every violation has a replay.
    for r in &results {
        if let Found::Violates { .. } = r.found {
            assert!(r.replay.is_some(), "{}", r.scenario);
        }
    }
}

#[test]
fn baton_meets_the_verdicts_the_example_states_for_it() {
    // The example's files state baton's verdicts beside Go's: they are
    // checked too, so the comparison the README shows is not assumed.
    register(bring_your_own::registration()).expect("registers");
    let results = Suite::new(Algorithm::BATON)
        .out_dir(std::env::temp_dir().join("bring-your-own-baton"))
        .check([here("scenarios")]);
    assert!(results.len() >= 5, "{} checks", results.len());
}

#[test]
fn on_a_shipped_world_it_is_held_to_what_baton_achieves_and_fails() {
    // two_replicas_single_use names no verdict for it: it is expected to
    // hold, as baton does, and the report says how it does not.
    let report = suite()
        .run([here("../../scenarios/two_replicas_single_use.toml")])
        .expect_err("Go's pattern is not race-free across processes");
    assert!(
        report.contains("expected holds, found violates"),
        "{report}"
    );
    assert!(
        report.contains("replay:  cargo run -p bring-your-own --bin check -- replay"),
        "{report}"
    );
}
