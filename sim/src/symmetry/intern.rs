//! Hash-consing of the frontier: worlds waiting in a level share one copy
//! of each equal machine, store, provider, message in flight and list of
//! callers.
//!
//! A step changes one machine (or the store, or the provider) and copies
//! it to do so, and sends a message or two; those copies are the bulk of
//! a new world. Across a level, most
//! of those copies are equal to one another: three replicas' machines go
//! through a few dozen states in all, met in hundreds of thousands of
//! combinations. The explorer holds the next level's worlds in full, so
//! without sharing, a wide level holds every copy. Interning each new
//! world's parts against the parts already in the level keeps one of each,
//! as explicit-state checkers that store whole states do (TLC and SPIN
//! compress states by sharing their components the same way).
//!
//! Identities are the parts' anonymous prints ([`AnonymousPrint`]), which
//! the canonical fingerprint computes anyway and keeps with each part (a
//! message's is the one [`super::message_print`] gives), and for callers (which name no replica by owner id) a hash of the list. An
//! interner lives for one level: the worlds hold what they share, and the
//! table's own references go when the level is complete.
//!
//! The explorer interns each new world on the core that built it, so the
//! table is split into [`SHARDS`] locked parts by identity: two cores meet
//! on one lock only when they intern parts that hash alike.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use baton_fakes::{FakeProvider, InMemoryStore};

use super::{AnonymousPrint, Printed};
use crate::fingerprint::{gathered, FingerprintHasher, Gather};
use crate::world::{Callers, Message, World};
use crate::zoo::AnyMachine;

type Table<T> = HashMap<u128, Arc<Printed<T>>, BuildHasherDefault<FingerprintHasher>>;

/// Locked parts per table: enough that cores rarely wait on each other.
pub const SHARDS: usize = 16;

/// One kind of part, its table split by identity.
struct Sharded<T>([Mutex<Table<T>>; SHARDS]);

impl<T> Default for Sharded<T> {
    fn default() -> Self {
        Sharded(std::array::from_fn(|_| Mutex::new(Table::default())))
    }
}

/// The level's lists of callers, split by identity.
struct CallerLists([Mutex<HashMap<u128, Callers, BuildHasherDefault<FingerprintHasher>>>; SHARDS]);

impl Default for CallerLists {
    fn default() -> Self {
        CallerLists(std::array::from_fn(|_| Mutex::new(HashMap::default())))
    }
}

/// The parts of one level's worlds, one copy of each.
pub struct Interner {
    /// This interner's number, never zero: a part marked with it is the
    /// copy its table holds.
    id: u32,
    machines: Sharded<AnyMachine>,
    stores: Sharded<InMemoryStore>,
    providers: Sharded<FakeProvider>,
    messages: Sharded<Message>,
    callers: CallerLists,
    /// Parts replaced by an equal one already held: what sharing saved.
    pub shared: AtomicUsize,
}

impl Default for Interner {
    fn default() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        // Wrapping past zero after four billion interners would only cost
        // a look-up: zero marks nothing.
        let id = NEXT.fetch_add(1, Ordering::Relaxed).max(1);
        Interner {
            id,
            machines: Sharded::default(),
            stores: Sharded::default(),
            providers: Sharded::default(),
            messages: Sharded::default(),
            callers: CallerLists::default(),
            shared: AtomicUsize::new(0),
        }
    }
}

impl Interner {
    /// Replaces each part of `world` by the equal part an earlier world of
    /// the level holds, or keeps it for later ones.
    pub fn intern(&self, world: &mut World) {
        let mut shared = 0;
        for (r, replica) in world.replicas.iter_mut().enumerate() {
            let me = Some(r as u8);
            let machine = &mut replica.machine;
            shared += usize::from(one(self.id, &self.machines, machine, |m| identity(m, me)));
        }
        let store = &mut world.store;
        shared += usize::from(one(self.id, &self.stores, store, |s| identity(s, None)));
        let provider = &mut world.provider;
        shared += usize::from(one(self.id, &self.providers, provider, |p| {
            identity(p, None)
        }));
        for message in world.messages.shared_mut() {
            let print = |m: &Printed<Message>| super::message_print(m).identity();
            shared += usize::from(one(self.id, &self.messages, message, print));
        }
        shared += usize::from(self.callers.intern(&mut world.callers));
        self.shared.fetch_add(shared, Ordering::Relaxed);
    }
}

impl CallerLists {
    /// Replaces `callers` by the equal list the level holds, if any.
    fn intern(&self, callers: &mut Callers) -> bool {
        use std::hash::Hash;
        let identity = gathered(|bytes| callers.hash(&mut Gather(bytes)));
        share(&self.0, identity, callers, Callers::shares, |_| {})
    }
}

/// Replaces `part` by the equal part `table` holds, or keeps it there;
/// `identity` is what equal parts, and only they, share.
fn one<T>(
    id: u32,
    table: &Sharded<T>,
    part: &mut Arc<Printed<T>>,
    identity: impl Fn(&Printed<T>) -> u128,
) -> bool {
    // Most of a new world's parts are its parent's, which its siblings
    // interned already: the shared copy, marked.
    if part.interned_by.load(Ordering::Relaxed) == id {
        return false;
    }
    let identity = identity(part);
    share(&table.0, identity, part, Arc::ptr_eq, |part| {
        part.interned_by.store(id, Ordering::Relaxed)
    })
}

/// Replaces `part` by the value `shards` holds under `identity`, or keeps
/// it there (after `keep` marks it); false if nothing was replaced.
/// `same` tells the held value itself from an equal copy.
fn share<V: Clone>(
    shards: &[Mutex<HashMap<u128, V, BuildHasherDefault<FingerprintHasher>>>; SHARDS],
    identity: u128,
    part: &mut V,
    same: impl Fn(&V, &V) -> bool,
    keep: impl FnOnce(&V),
) -> bool {
    let shard = &shards[(identity as usize) % SHARDS];
    let held = {
        let mut shard = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match shard.get(&identity) {
            Some(held) if same(held, part) => return false,
            Some(held) => held.clone(),
            None => {
                keep(part);
                shard.insert(identity, part.clone());
                return false;
            }
        }
    };
    // The copy is freed here, outside the lock.
    *part = held;
    true
}

fn identity<T: std::hash::Hash>(part: &Printed<T>, me: Option<u8>) -> u128 {
    let print: std::borrow::Cow<'_, AnonymousPrint> = part.anonymous(me);
    print.identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::WorldSpec;
    use crate::world::Action;
    use crate::zoo::Algorithm;
    use baton_fakes::ProviderModel;

    fn spec() -> WorldSpec {
        WorldSpec {
            replicas: 2,
            ..WorldSpec::new(Algorithm::BATON, ProviderModel::SingleUse)
        }
    }

    #[test]
    fn equal_parts_are_shared_and_different_ones_kept_apart() {
        let spec = spec();
        let mut a = World::initial(&spec).unwrap();
        let mut b = World::initial(&spec).unwrap();
        assert!(!Arc::ptr_eq(&a.replicas[0].machine, &b.replicas[0].machine));
        let interner = Interner::default();
        interner.intern(&mut a);
        interner.intern(&mut b);
        assert!(Arc::ptr_eq(&a.replicas[0].machine, &b.replicas[0].machine));
        assert!(Arc::ptr_eq(&a.store, &b.store));
        assert!(Arc::ptr_eq(&a.provider, &b.provider));
        assert!(a.callers.shares(&b.callers));
        assert_eq!(
            interner.shared.load(Ordering::Relaxed),
            5,
            "two machines, the store, the provider, the callers"
        );
        // Replicas 0 and 1 start alike but for their names: never merged.
        assert!(!Arc::ptr_eq(&a.replicas[0].machine, &a.replicas[1].machine));

        // Replica 0 asks: its machine changes, the other parts do not.
        let mut c = a.clone();
        c.apply(
            &spec,
            Action::Request {
                caller: 0,
                route: Default::default(),
            },
            None,
        );
        interner.intern(&mut c);
        assert!(!Arc::ptr_eq(&c.replicas[0].machine, &a.replicas[0].machine));
        assert_ne!(c.replicas[0].machine, a.replicas[0].machine);
        assert!(Arc::ptr_eq(&c.replicas[1].machine, &a.replicas[1].machine));
        assert_eq!(c, {
            let mut d = a.clone();
            d.apply(
                &spec,
                Action::Request {
                    caller: 0,
                    route: Default::default(),
                },
                None,
            );
            d
        });
    }
}
