//! Symmetry reduction over replicas is sound: every scenario keeps its
//! verdict with it, generated worlds reach every orbit they reach without
//! it (judged by an oracle written apart, `support/orbit.rs`), and a
//! canonicaliser that forgets to rename the owner ids in leases is caught
//! by that same check.

#[path = "support/orbit.rs"]
mod orbit;
#[path = "support/sample.rs"]
mod sample;

use std::collections::{BTreeSet, HashSet};

use baton_sim::explore::{explore, Options, Verdict};
use baton_sim::invariants::Invariant;
use baton_sim::report::timeline;
use baton_sim::shape::{WorldShape, PROVIDERS};
use baton_sim::spec::WorldSpec;
use baton_sim::symmetry::{Canon, Flaw, Symmetry};
use baton_sim::world::World;
use baton_sim::zoo::Algorithm;

fn outcome(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Holds => "holds".into(),
        Verdict::Violated(c) => format!("violates {}", c.invariant),
        Verdict::BudgetExhausted => "budget exhausted".into(),
    }
}

fn run(
    spec: &WorldSpec,
    invariants: &[Invariant],
    symmetry: Symmetry,
) -> baton_sim::explore::Exploration {
    let options = Options {
        max_states: 300_000,
        invariants: invariants.to_vec(),
        symmetry,
        ..Options::default()
    };
    explore(spec, &options, &mut |_| {}).unwrap()
}

#[test]
fn symmetry_keeps_every_scenario_verdict_and_counterexamples_replay() {
    // As in the partial-order reduction's test (support/sample.rs).
    let scenarios = sample::scenarios();
    let (mut full_total, mut reduced_total) = (0, 0);
    for (scenario, algorithm) in sample::sampled(&scenarios) {
        let spec = scenario.spec_for(algorithm);
        let what = format!("{} × {algorithm}", scenario.name);
        let full = run(&spec, &scenario.invariants, Symmetry::Off);
        let reduced = run(&spec, &scenario.invariants, Symmetry::Replicas);
        assert_eq!(
            outcome(&reduced.verdict),
            outcome(&full.verdict),
            "{what}: symmetry reduction changed the verdict"
        );
        if full.verdict == Verdict::Holds {
            assert!(
                reduced.stats.states <= full.stats.states,
                "{what}: the reduced search is larger"
            );
            full_total += full.stats.states;
            reduced_total += reduced.stats.states;
        }
        // The run found under symmetry is of real steps: it replays
        // and breaks the same invariant at its end.
        if let Verdict::Violated(cx) = &reduced.verdict {
            let (_, end) = timeline(&spec, &cx.actions).unwrap();
            let broken = baton_sim::explore::check(&end, &spec, &scenario.invariants);
            assert_eq!(broken.map(|(i, _)| i), Some(cx.invariant), "{what}");
        }
    }
    assert!(
        reduced_total < full_total,
        "symmetry never applied ({reduced_total} states either way)"
    );
}

/// The orbits (named by the oracle) of every world a breadth-first search
/// reaches when worlds with equal fingerprints under `symmetry` count as
/// one, and how many states it kept.
fn orbits(spec: &WorldSpec, symmetry: Symmetry) -> (BTreeSet<Vec<u8>>, usize) {
    let canon = Canon::new(spec, symmetry);
    let initial = World::initial(spec).unwrap();
    let mut seen = HashSet::from([canon.fingerprint(&initial)]);
    let mut reached = BTreeSet::from([orbit::orbit(&initial)]);
    let mut frontier = vec![initial];
    while let Some(world) = frontier.pop() {
        for action in world.actions(spec) {
            let mut next = world.clone();
            next.apply(spec, action, None);
            if seen.insert(canon.fingerprint(&next)) {
                reached.insert(orbit::orbit(&next));
                frontier.push(next);
            }
        }
    }
    (reached, seen.len())
}

/// Small generated worlds: 2–3 replicas of one or two callers, a
/// reuse-detecting or a grace-window provider, no fault
/// or one crash, cancel or lost reply (or a clock jump), for baton and
/// zoo models that take leases and that do not.
fn generated() -> Vec<(String, WorldSpec)> {
    let mut out = Vec::new();
    for (replicas, callers) in [(2, 1), (2, 2), (3, 1)] {
        for provider in [1, 2] {
            for fault in 0..=4 {
                let mut faults = [0u8; 5];
                match fault {
                    1 => faults[0] = 1,
                    2 => faults[1] = 1,
                    3 => faults[4] = 1,
                    _ => {}
                }
                let shape = WorldShape {
                    replicas,
                    callers,
                    provider,
                    faults,
                };
                for algorithm in [Algorithm::BATON, Algorithm::DB_LEASE, Algorithm::NAIVE] {
                    let mut spec = shape.spec(algorithm);
                    spec.faults.clock_jumps = u8::from(fault == 4);
                    let what = format!(
                        "{shape:?} jump={} {algorithm} {:?}",
                        fault == 4,
                        PROVIDERS[provider]
                    );
                    out.push((what, spec));
                }
            }
        }
    }
    out
}

#[test]
fn symmetry_reaches_every_orbit_of_generated_worlds() {
    let mut reduced_somewhere = false;
    for (what, spec) in generated() {
        let (full, full_states) = orbits(&spec, Symmetry::Off);
        let (reduced, reduced_states) = orbits(&spec, Symmetry::Replicas);
        assert_eq!(full.len(), reduced.len(), "{what}: orbits lost");
        assert_eq!(full, reduced, "{what}");
        // One state per orbit: the representative is canonical.
        assert_eq!(reduced_states, reduced.len(), "{what}: an orbit kept twice");
        reduced_somewhere |= reduced_states < full_states;
    }
    assert!(reduced_somewhere, "symmetry never applied");
}

#[test]
fn a_canonicaliser_that_forgets_lease_owners_is_caught() {
    let flawed = Symmetry::Flawed(Flaw::LeaseOwnersKept);
    let caught = generated().into_iter().find(|(_, spec)| {
        let (full, _) = orbits(spec, Symmetry::Off);
        let (reduced, _) = orbits(spec, flawed);
        full != reduced
    });
    assert!(
        caught.is_some(),
        "no generated world tells the flawed canonicaliser from a sound one"
    );
}
