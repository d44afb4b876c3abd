//! Properties of the explorer itself: budgets never pass for proofs, shards
//! together cover one run, counterexamples are shortest and replay.

#[path = "support/sample.rs"]
mod sample;

use std::path::PathBuf;

use baton_sim::explore::{check, explore, Options, Shard, Verdict};
use baton_sim::report::timeline;
use baton_sim::scenario::load;
use baton_sim::spec::WorldSpec;
use baton_sim::zoo::Algorithm;

fn scenario_spec(name: &str, algorithm: Algorithm) -> WorldSpec {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
    load(&path).unwrap().spec_for(algorithm)
}

#[test]
fn an_exhausted_budget_is_never_a_proof() {
    let spec = scenario_spec("winner_never_writes", Algorithm::BATON);
    let options = Options {
        max_states: 50,
        ..Options::default()
    };
    let run = explore(&spec, &options, &mut |_| {}).unwrap();
    assert_eq!(run.verdict, Verdict::BudgetExhausted);
    assert_eq!(run.stats.states, 50);
}

#[test]
fn shards_together_cover_the_whole_exploration() {
    let spec = scenario_spec("winner_never_writes", Algorithm::BATON);
    let whole = explore(&spec, &Options::default(), &mut |_| {}).unwrap();
    assert_eq!(whole.verdict, Verdict::Holds);
    let mut largest_shard = 0;
    for index in 0..3 {
        let options = Options {
            shard: Some(Shard { index, count: 3 }),
            ..Options::default()
        };
        let part = explore(&spec, &options, &mut |_| {}).unwrap();
        assert_eq!(part.verdict, Verdict::Holds, "shard {index}");
        largest_shard = largest_shard.max(part.stats.states);
    }
    assert!(
        largest_shard < whole.stats.states,
        "sharding split nothing: {largest_shard} vs {}",
        whole.stats.states
    );

    // A bug is found by some shard.
    let spec = scenario_spec("winner_never_writes", Algorithm::REREAD_ON_REJECT);
    let found = (0..3).any(|index| {
        let options = Options {
            shard: Some(Shard { index, count: 3 }),
            ..Options::default()
        };
        matches!(
            explore(&spec, &options, &mut |_| {}).unwrap().verdict,
            Verdict::Violated(_)
        )
    });
    assert!(found, "no shard found the violation the whole run finds");
}

#[test]
fn counterexamples_break_only_at_their_last_step_and_replay() {
    let spec = scenario_spec("two_replicas_single_use", Algorithm::NAIVE);
    let run = explore(&spec, &Options::default(), &mut |_| {}).unwrap();
    let Verdict::Violated(cx) = run.verdict else {
        panic!("naive must break two_replicas_single_use")
    };
    let invariants = Options::default().invariants;
    let (steps, end) = timeline(&spec, &cx.actions).unwrap();
    assert_eq!(steps.len(), cx.actions.len());
    assert_eq!(
        check(&end, &spec, &invariants).map(|(i, _)| i),
        Some(cx.invariant)
    );
    // Breadth-first: every prefix of the run keeps every invariant.
    for len in 0..cx.actions.len() {
        let (_, world) = timeline(&spec, &cx.actions[..len]).unwrap();
        assert_eq!(
            check(&world, &spec, &invariants),
            None,
            "prefix of {len} steps"
        );
    }
}

#[test]
fn shard_syntax_is_checked() {
    assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
    for bad in ["0/4", "5/4", "1/0", "x/2", "3"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

/// The verdict as compared across reductions: which invariant broke, if
/// any (the run itself may differ: a reduced search takes commuting steps
/// first).
fn outcome(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Holds => "holds".into(),
        Verdict::Violated(c) => format!("violates {}", c.invariant),
        Verdict::BudgetExhausted => "budget exhausted".into(),
    }
}

/// Explores `spec` with and without partial-order reduction; the verdicts
/// must agree and the reduced search must not be larger. Returns the
/// states of each.
fn compare_reduction(
    spec: &WorldSpec,
    invariants: &[baton_sim::invariants::Invariant],
    what: &str,
) -> (usize, usize) {
    let run = |reduce| {
        let options = Options {
            max_states: 300_000,
            invariants: invariants.to_vec(),
            reduce,
            ..Options::default()
        };
        explore(spec, &options, &mut |_| {}).unwrap()
    };
    let (full, reduced) = (run(false), run(true));
    assert_eq!(
        outcome(&reduced.verdict),
        outcome(&full.verdict),
        "{what}: partial-order reduction changed the verdict"
    );
    if full.verdict == Verdict::Holds {
        assert!(
            reduced.stats.states <= full.stats.states,
            "{what}: the reduced search is larger ({} > {})",
            reduced.stats.states,
            full.stats.states
        );
    }
    (full.stats.states, reduced.stats.states)
}

#[test]
fn partial_order_reduction_keeps_every_scenario_verdict() {
    let scenarios = sample::scenarios();
    let (mut full_total, mut reduced_total) = (0, 0);
    for (scenario, algorithm) in sample::sampled(&scenarios) {
        let spec = scenario.spec_for(algorithm);
        let what = format!("{} × {algorithm}", scenario.name);
        let (full, reduced) = compare_reduction(&spec, &scenario.invariants, &what);
        full_total += full;
        reduced_total += reduced;
    }
    assert!(
        reduced_total < full_total,
        "the reduction never applied ({reduced_total} states either way)"
    );
}

/// What the invariants can see of a world: everything but the replicas'
/// machines and the messages in flight, and whether it has settled (the
/// moment the end-state invariants are judged).
fn observation(world: &baton_sim::world::World, spec: &WorldSpec) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (
        world.can_progress(spec),
        &world.store,
        &world.provider,
        &world.callers,
        &world.used,
        &world.budget,
        world.now,
        &world.lost_tokens,
    )
        .hash(&mut h);
    h.finish()
}

/// Every observation reachable in `spec`, searching with or without the
/// reduction (the explorer's loop, cycle proviso included, minus the
/// invariants): a sound reduction skips states, never what they show.
fn observations(spec: &WorldSpec, reduce: bool) -> (std::collections::BTreeSet<u64>, usize) {
    use baton_sim::world::World;
    use std::collections::{BTreeSet, HashSet};
    let key = |w: &World| {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        w.hash(&mut h);
        h.finish()
    };
    let initial = World::initial(spec).unwrap();
    let mut seen = HashSet::from([key(&initial)]);
    let mut shown = BTreeSet::from([observation(&initial, spec)]);
    let mut frontier = vec![initial];
    while let Some(world) = frontier.pop() {
        let single = reduce
            .then(|| baton_sim::reduction::commuting_step(&world, spec))
            .flatten()
            .filter(|(_, next)| !seen.contains(&key(next)));
        let successors: Vec<World> = match single {
            Some((_, next)) => vec![next],
            None => world
                .actions(spec)
                .into_iter()
                .map(|action| {
                    let mut next = world.clone();
                    next.apply(spec, action, None);
                    next
                })
                .collect(),
        };
        for next in successors {
            if seen.insert(key(&next)) {
                shown.insert(observation(&next, spec));
                frontier.push(next);
            }
        }
    }
    (shown, seen.len())
}

/// Generated fault-free and single-fault worlds: every provider model,
/// 1–2 replicas × 1–2 callers, for baton and three zoo models. The reduced search must reach every
/// observation the full one does — a stronger check than equal verdicts,
/// which a wrong reduction can keep by luck.
#[test]
fn partial_order_reduction_hides_no_observable_state() {
    use baton_sim::shape::{WorldShape, PROVIDERS};
    let mut reduced_somewhere = false;
    for replicas in 1..=2 {
        for callers in 1..=2 {
            for provider in 0..PROVIDERS.len() {
                // The five generated faults one at a time, none, or a clock
                // jump (after which the reduction applies again).
                for fault in 0..=6 {
                    let mut faults = [0u8; 5];
                    if fault < 5 {
                        faults[fault] = 1;
                    }
                    let shape = WorldShape {
                        replicas,
                        callers,
                        provider,
                        faults,
                    };
                    for algorithm in [
                        Algorithm::BATON,
                        Algorithm::NAIVE,
                        Algorithm::SINGLEFLIGHT,
                        Algorithm::DB_LEASE,
                    ] {
                        let mut spec = shape.spec(algorithm);
                        spec.faults.clock_jumps = u8::from(fault == 6);
                        let (full, full_states) = observations(&spec, false);
                        let (reduced, reduced_states) = observations(&spec, true);
                        assert_eq!(
                            full.len(),
                            reduced.len(),
                            "{shape:?} × {algorithm}: the reduction hid observable states"
                        );
                        assert_eq!(full, reduced, "{shape:?} × {algorithm}");
                        reduced_somewhere |= reduced_states < full_states;
                    }
                }
            }
        }
    }
    assert!(reduced_somewhere, "the reduction never applied");
}
