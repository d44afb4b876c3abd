//! Properties of the explorer itself: budgets never pass for proofs, shards
//! together cover one run, counterexamples are shortest and replay.

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
    let spec = scenario_spec("winner_never_writes", Algorithm::Baton);
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
    let spec = scenario_spec("winner_never_writes", Algorithm::Baton);
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
    let spec = scenario_spec("winner_never_writes", Algorithm::RereadOnReject);
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
    let spec = scenario_spec("two_replicas_single_use", Algorithm::Naive);
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
