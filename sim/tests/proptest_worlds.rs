//! proptest over generated worlds: replicas, callers, provider model and
//! fault plan are drawn with the schedule, and failures shrink toward the
//! smallest world and the fewest, earliest choices.
//!
//! The zoo's known failures are persisted in `proptest-regressions/` and
//! checked in: those cases run first, every time, forever.

#![cfg(feature = "proptest")]

use baton_sim::invariants::Invariant;
use baton_sim::randomized::{search_worlds, PropOptions};
use baton_sim::zoo::Algorithm;
use proptest::test_runner::FileFailurePersistence;

/// The invariants baton keeps in every generated world. `recovers` is left
/// out: a crash right after the exchange on a provider without grace
/// loses the rotation for every algorithm (the unavoidable case of
/// `scenarios/crash_after_exchange.toml`).
const BATON_KEEPS: [Invariant; 6] = [
    Invariant::NoReuse,
    Invariant::SingleFlight,
    Invariant::NoPoisonedFailure,
    Invariant::LinkIsolation,
    Invariant::CallersServed,
    Invariant::NoLostRotation,
];

#[test]
fn baton_holds_on_generated_worlds() {
    let options = PropOptions {
        cases: 256,
        seed: 11,
        max_choices: 40,
    };
    let found = search_worlds(Algorithm::BATON, &BATON_KEEPS, &options, None).unwrap();
    if let Some((shape, failure)) = found {
        panic!(
            "baton breaks {} in {shape:?}: {}\nactions: {:?}",
            failure.invariant, failure.reason, failure.actions
        );
    }
}

fn zoo_case(algorithm: Algorithm, invariant: Invariant, file: &'static str) {
    let options = PropOptions {
        cases: 512,
        seed: 3,
        max_choices: 40,
    };
    let persistence = Box::new(FileFailurePersistence::Direct(file));
    let (shape, failure) = search_worlds(algorithm, &[invariant], &options, Some(persistence))
        .unwrap()
        .unwrap_or_else(|| panic!("proptest did not find {algorithm} breaking {invariant}"));
    assert_eq!(failure.invariant, invariant);
    // Shrunk toward the smallest world that shows it.
    assert!(
        shape.replicas <= 2 && shape.callers <= 2,
        "not shrunk: {shape:?}"
    );
    eprintln!(
        "{algorithm} breaks {invariant} in {shape:?} after {} steps: {}",
        failure.actions.len(),
        failure.reason
    );
}

#[test]
fn naive_reuse_is_found_and_persisted() {
    zoo_case(
        Algorithm::NAIVE,
        Invariant::NoReuse,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/naive_no_reuse.txt"
        ),
    );
}

#[test]
fn optimistic_lock_poisoned_failure_is_found_and_persisted() {
    zoo_case(
        Algorithm::OPTIMISTIC_LOCK,
        Invariant::NoPoisonedFailure,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/optimistic_lock_no_poisoned_failure.txt"
        ),
    );
}

#[test]
fn singleflight_reuse_is_found_and_persisted() {
    zoo_case(
        Algorithm::SINGLEFLIGHT,
        Invariant::NoReuse,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/singleflight_no_reuse.txt"
        ),
    );
}
