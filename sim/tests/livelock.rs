//! `no_livelock` can fail: a machine that re-reads the row forever instead
//! of answering keeps every state invariant (nobody is handed anything
//! wrong, and the world never settles with a caller waiting), and only the
//! explorer's cycle check sees it. The report names the loop, and the run
//! replays to the same verdict.

use std::collections::BTreeSet;
use std::path::PathBuf;

use baton_core::{
    CallerId, Effect, EffectId, Input, InputError, LinkId, RefreshMachine, Timestamp,
};
use baton_sim::explore::{explore, Options, Verdict};
use baton_sim::invariants::Invariant;
use baton_sim::livelock::judge_run;
use baton_sim::reduction::commuting_step;
use baton_sim::registry::{register, Algorithm, Registration};
use baton_sim::scenario::load;
use baton_sim::world::World;

/// Reads the row, and on every reply reads it again: never answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct RereadsForever {
    waiting: BTreeSet<CallerId>,
    reading: Option<LinkId>,
    outbox: Vec<Effect>,
}

impl RereadsForever {
    fn read(&mut self, link: LinkId) {
        // Always effect id 0: the machine's state stays the same from one
        // read to the next, which is what makes the loop a cycle.
        self.outbox.push(Effect::ReadLink {
            id: EffectId(0),
            link: link.clone(),
        });
        self.reading = Some(link);
    }
}

impl RefreshMachine for RereadsForever {
    fn handle_input(&mut self, _now: Timestamp, input: Input) -> Result<(), InputError> {
        match input {
            Input::TokenRequested { caller, link } => {
                self.waiting.insert(caller);
                if self.reading.is_none() {
                    self.read(link);
                }
            }
            Input::LinkRead { .. } => {
                let link = self.reading.take().expect("a read was sent");
                self.read(link);
            }
            Input::CallerGone { caller } => {
                self.waiting.remove(&caller);
            }
            _ => {}
        }
        Ok(())
    }
    fn poll_output(&mut self) -> Option<Effect> {
        (!self.outbox.is_empty()).then(|| self.outbox.remove(0))
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }
}

fn rereads_forever() -> Algorithm {
    register(
        Registration::new("rereads_forever", |_config| RereadsForever::default())
            .describe("re-reads the row on every reply and never answers (a livelock)"),
    )
    .expect("registers")
}

fn scenario(name: &str) -> baton_sim::scenario::Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
    load(&path).unwrap()
}

#[test]
fn a_machine_that_never_stops_reading_breaks_no_livelock_and_nothing_else() {
    let spec = scenario("two_replicas_single_use").spec_for(rereads_forever());
    let with_livelock = explore(&spec, &Options::default(), &mut |_| {}).unwrap();
    let Verdict::Violated(cx) = &with_livelock.verdict else {
        panic!("expected a livelock, found {:?}", with_livelock.verdict);
    };
    assert_eq!(cx.invariant, Invariant::NoLivelock);
    assert!(cx.reason.contains("back to it"), "{}", cx.reason);
    assert!(cx.reason.contains("waiting throughout"), "{}", cx.reason);
    // The run replays to the same words.
    assert_eq!(judge_run(&spec, &cx.actions).as_deref(), Some(&*cx.reason));

    // Every state invariant alone is kept: only the cycle check sees it.
    let without = Options {
        invariants: Invariant::ALL
            .into_iter()
            .filter(|i| *i != Invariant::NoLivelock)
            .collect(),
        ..Options::default()
    };
    let run = explore(&spec, &without, &mut |_| {}).unwrap();
    assert_eq!(run.verdict, Verdict::Holds);
}

#[test]
fn baton_has_no_livelock_with_or_without_symmetry() {
    let spec = scenario("two_replicas_single_use").spec_for(Algorithm::BATON);
    for symmetry in [
        baton_sim::symmetry::Symmetry::Replicas,
        baton_sim::symmetry::Symmetry::Off,
    ] {
        let options = Options {
            symmetry,
            ..Options::default()
        };
        let run = explore(&spec, &options, &mut |_| {}).unwrap();
        assert_eq!(run.verdict, Verdict::Holds, "{symmetry:?}");
    }
}

/// Partial-order reduction and symmetry each drop steps from the graph the
/// cycle is looked for in. Neither may hide this loop: its steps are the
/// very read replies the reduction may explore alone. Each leads back to a
/// known state, so the cycle proviso expands those states in full, and the
/// edge back is kept either way.
#[test]
fn the_loop_is_found_with_and_without_reduction_and_symmetry() {
    let spec = scenario("two_replicas_single_use").spec_for(rereads_forever());
    for reduce in [true, false] {
        for symmetry in [
            baton_sim::symmetry::Symmetry::Replicas,
            baton_sim::symmetry::Symmetry::Off,
        ] {
            let options = Options {
                reduce,
                symmetry,
                ..Options::default()
            };
            let run = explore(&spec, &options, &mut |_| {}).unwrap();
            let Verdict::Violated(cx) = &run.verdict else {
                panic!(
                    "reduce {reduce}, {symmetry:?}: expected a livelock, found {:?}",
                    run.verdict
                );
            };
            assert_eq!(
                cx.invariant,
                Invariant::NoLivelock,
                "reduce {reduce}, {symmetry:?}"
            );
            assert_eq!(
                judge_run(&spec, &cx.actions).as_deref(),
                Some(&*cx.reason),
                "reduce {reduce}, {symmetry:?}: the run replays"
            );
            if reduce {
                // The loop's read replies are steps the reduction may take
                // alone; each leads back to a known state, so the proviso
                // expands those states in full and the loop's edges stay.
                let mut world = World::initial(&spec).unwrap();
                let mut commuting = 0;
                for action in &cx.actions {
                    commuting += usize::from(commuting_step(&world, &spec).is_some());
                    world.apply(&spec, *action, None);
                }
                assert!(
                    commuting > 0,
                    "{symmetry:?}: no state of the loop has a commuting step, so this proves nothing about the reduction"
                );
            }
        }
    }
}
