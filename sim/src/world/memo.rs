//! A machine's steps, remembered: a machine is a pure function of its
//! state, the time and the input, and an exploration feeds the same few
//! dozen machine states the same inputs at the same instants over and
//! over, in hundreds of thousands of combinations with the rest of the
//! world. So each core keeps what each (machine, time, input) led to — the
//! machine after it, shared, and the effects it emitted — and a step it
//! has seen before takes the shared machine instead of copying the old
//! one and running it. The shared machine keeps its print, so the
//! fingerprint does not hash it again either.
//!
//! The key is exact up to the fingerprint's own odds (XXH3-128): the
//! machine's anonymous print with whose it is and the replicas it names
//! (which together say all its bytes said, its type and configuration
//! included), the instant, and the input's bytes. Machines equal under
//! their `Hash` behave alike, which state hashing assumes already.
//!
//! The table is per thread and emptied when full, so it costs no lock and
//! bounded memory; what it holds changes no outcome, only how fast one is
//! reached.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash};
use std::sync::Arc;

use baton_core::{Effect, Input, Timestamp};

use crate::fingerprint::{gathered, FingerprintHasher, Gather};
use crate::symmetry::Printed;
use crate::zoo::AnyMachine;

/// Steps remembered per thread before the table is emptied: some 10 MB.
const CAPACITY: usize = 1 << 16;

/// What a step led to.
#[derive(Clone)]
pub(super) struct Outcome {
    pub(super) machine: Arc<Printed<AnyMachine>>,
    pub(super) effects: Arc<[Effect]>,
}

thread_local! {
    static STEPS: RefCell<HashMap<u128, Outcome, BuildHasherDefault<FingerprintHasher>>> =
        RefCell::new(HashMap::default());
}

/// The key of feeding replica `r`'s `machine` `input` at `now`.
pub(super) fn key(machine: &Printed<AnyMachine>, r: u8, now: Timestamp, input: &Input) -> u128 {
    let identity = machine.anonymous(Some(r)).identity();
    gathered(|bytes| {
        let h = &mut Gather(bytes);
        (identity, r, now, input).hash(h);
    })
}

/// What the step keyed `key` led to, if this thread has taken it.
pub(super) fn recall(key: u128) -> Option<Outcome> {
    STEPS.with(|steps| steps.borrow().get(&key).cloned())
}

/// Remembers what the step keyed `key` led to.
pub(super) fn remember(key: u128, outcome: Outcome) {
    STEPS.with(|steps| {
        let mut steps = steps.borrow_mut();
        if steps.len() >= CAPACITY {
            steps.clear();
        }
        steps.insert(key, outcome);
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use baton_fakes::ProviderModel;

    use crate::spec::WorldSpec;
    use crate::world::{Action, World};
    use crate::zoo::Algorithm;

    #[test]
    fn a_step_taken_again_shares_its_machine_and_equals_one_computed_afresh() {
        let spec = WorldSpec {
            replicas: 2,
            ..WorldSpec::new(Algorithm::BATON, ProviderModel::SingleUse)
        };
        let world = World::initial(&spec).unwrap();
        let request = Action::Request {
            caller: 0,
            route: Default::default(),
        };
        let mut first = world.clone();
        first.apply(&spec, request, None);
        let mut again = world.clone();
        again.apply(&spec, request, None);
        assert!(
            Arc::ptr_eq(&first.replicas[0].machine, &again.replicas[0].machine),
            "the second step was recalled"
        );
        assert_eq!(first, again);
        assert_ne!(first, world, "the step changed the world");

        // Another thread's table is empty: it runs the machine itself, and
        // reaches an equal world.
        let (spec_there, world_there) = (spec.clone(), world.clone());
        let fresh = std::thread::spawn(move || {
            let mut fresh = world_there;
            fresh.apply(&spec_there, request, None);
            fresh
        })
        .join()
        .unwrap();
        assert!(!Arc::ptr_eq(
            &fresh.replicas[0].machine,
            &first.replicas[0].machine
        ));
        assert_eq!(fresh, first);
    }
}
