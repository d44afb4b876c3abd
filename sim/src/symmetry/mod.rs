//! Symmetry reduction over replicas: the explorer fingerprints one member
//! of each world's orbit under permutations of interchangeable replicas,
//! so a world and its copies with the replicas' names swapped count as
//! one state.
//!
//! The technique is canonical sorting by a permutation-invariant key, the
//! pragmatic form of TLC's `SYMMETRY` sets (Lamport, "Specifying Systems",
//! §14.3.4) and of stateright's `Representative` (a state maps itself to a
//! representative of its orbit; `stateright::actor::RepresentativeIndex`
//! does it by sorting actors and rewriting ids the same way):
//! 1. Each replica gets a key: a hash of its machine, incarnation, callers
//!    and the set of messages to and from it, with owner ids renamed to
//!    "itself" or "another" ([`Anonymise`]), so the key does not depend on
//!    anyone's name.
//! 2. Within each class of interchangeable replicas, members are placed in
//!    the class's positions in key order.
//! 3. Keys can tie without the replicas being the same up to names. Every
//!    placement of the tied members is then tried and the smallest
//!    fingerprint wins, which keeps the representative canonical; past
//!    [`MAX_PLACEMENTS`] the tie stays in index order instead, which stays
//!    sound (the fingerprint is still of a member of the orbit) and only
//!    reduces less.
//! 4. The fingerprint is of the world with replicas moved to their new
//!    positions and renamed consistently everywhere: callers (replica-
//!    major, moved as blocks), messages' replica fields, and owner ids
//!    inside machines, store rows, leases and messages. The messages in
//!    flight are a set to the world, which keeps them sorted by a hash
//!    that names replicas; renamed, they are sorted again.
//!
//! Each part of the world (a replica with its callers, a message, the
//! rest) is hashed once per world, anonymised: owner ids become "itself"
//! or "another", and the others named are noted in order ([`rename`]).
//! The part's hash and that list say all its bytes said. Machines, the
//! store, the provider and each message keep their own anonymous hash
//! ([`Printed`]) until they change: they are shared between worlds until
//! a step changes them, so a successor world hashes afresh only what its
//! step touched. Keys are built from the parts' hashes, and each placement
//! only maps the lists and hashes the parts' hashes in the new order, so
//! trying several placements costs little more than one. The provider,
//! the clock, the fault budget and the outside writers' state name no
//! replica.
//!
//! Only the fingerprint is canonical: the explorer keeps, checks and
//! expands the worlds as they were reached, so a counterexample is a run of
//! real steps with real replica names and replays as it is.
//!
//! Which replicas are interchangeable: those with the same algorithm
//! (`fleet`) and the same clock skew. Everything else about a replica is
//! the same for all (callers per replica, configuration but for the owner
//! id), and fault budgets are the world's, not a replica's. A rolling
//! deploy or a skewed fleet is split into classes; a class of one is never
//! permuted, so a world of all-different replicas is explored as without
//! symmetry. Callers within a replica are not permuted: their ids live
//! inside the machine as integers, which the renaming cannot tell apart
//! from other integers; the world's own rule that only the first untouched
//! caller of a replica and link may start ([`crate::world`]) is what is
//! reduced there.
//!
//! Sound because every invariant judges a world the same way as any of its
//! renamings, and a renamed world steps exactly as the original with the
//! names swapped. `sim/tests/symmetry.rs` checks it: verdicts kept on every
//! scenario, the same orbits reached on generated worlds, and a
//! deliberately wrong canonicaliser ([`Flaw`]) caught.

mod intern;
mod printed;
mod rename;

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use smallvec::SmallVec;

pub use intern::Interner;
pub use printed::{AnonymousPrint, Printed};
pub use rename::{parse_owner, Anonymise};

use crate::fingerprint::{fingerprint, gathered, Gather};
use crate::spec::WorldSpec;
use crate::world::{Caller, Message, Replica, World};

/// The replicas a part names besides its own, in order. Inline up to
/// eight: fingerprinting a world builds a dozen of these, and a heap
/// allocation each was a tenth of the explorer's time.
pub type Names = SmallVec<[u8; 8]>;

/// Where each replica goes: `to[r]` is replica `r`'s new index.
type Placement = SmallVec<[u8; 8]>;

/// Placements of tied replicas tried per world before settling for index
/// order: 4! covers any tie among four replicas.
pub const MAX_PLACEMENTS: usize = 24;

/// Whether and how the explorer reduces by symmetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symmetry {
    /// Every world fingerprinted as it is.
    Off,
    /// Interchangeable replicas permuted.
    Replicas,
    /// A deliberately wrong canonicaliser, kept so the soundness tests can
    /// show that they catch one.
    #[doc(hidden)]
    Flawed(Flaw),
}

/// A mistake a canonicaliser could make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// Owner ids in the store's rows (the leases) are not renamed.
    LeaseOwnersKept,
}

/// The canonicaliser of one world spec.
#[derive(Clone, Debug)]
pub struct Canon {
    /// Per class of interchangeable replicas (two or more), its members'
    /// indices, ascending.
    classes: Vec<Vec<u8>>,
    flaw: Option<Flaw>,
}

/// One part of a world, hashed anonymously, and the replicas it names
/// other than its own, in order.
struct Part {
    print: u128,
    others: Names,
}

impl From<&AnonymousPrint> for Part {
    fn from(print: &AnonymousPrint) -> Part {
        Part {
            print: print.print,
            others: print.others.clone(),
        }
    }
}

impl Part {
    fn into_print(self, me: Option<u8>) -> AnonymousPrint {
        AnonymousPrint {
            me,
            print: self.print,
            others: self.others,
        }
    }

    fn of(me: Option<u8>, feed: impl FnOnce(&mut Anonymise<'_, Gather<'_>>)) -> Part {
        let mut others = Names::new();
        let print = gathered(|bytes| {
            let mut gather = Gather(bytes);
            let mut h = Anonymise {
                inner: &mut gather,
                me,
                others: Names::new(),
            };
            feed(&mut h);
            others = h.others;
        });
        Part { print, others }
    }

    /// Hashes the part as it reads after renaming replica `r` to `to[r]`.
    fn hash_renamed(&self, to: &[u8], h: &mut impl Hasher) {
        self.print.hash(h);
        self.others.len().hash(h);
        for &other in &self.others {
            to.get(usize::from(other)).copied().unwrap_or(other).hash(h);
        }
    }
}

impl Canon {
    /// The canonicaliser for `spec` under `symmetry`.
    pub fn new(spec: &WorldSpec, symmetry: Symmetry) -> Canon {
        let flaw = match symmetry {
            Symmetry::Off => {
                return Canon {
                    classes: Vec::new(),
                    flaw: None,
                }
            }
            Symmetry::Replicas => None,
            Symmetry::Flawed(flaw) => Some(flaw),
        };
        let mut classes: Vec<Vec<u8>> = Vec::new();
        let alike = |a: usize, b: usize| spec.alike(a, b) && spec.algorithm_of(a).symmetric();
        for r in 0..spec.replicas {
            match classes
                .iter_mut()
                .find(|class| alike(usize::from(class[0]), usize::from(r)))
            {
                Some(class) => class.push(r),
                None => classes.push(vec![r]),
            }
        }
        classes.retain(|class| class.len() > 1);
        Canon { classes, flaw }
    }

    /// Whether any replicas are permuted at all.
    pub fn active(&self) -> bool {
        !self.classes.is_empty()
    }

    /// The fingerprint of `world`'s orbit representative.
    pub fn fingerprint(&self, world: &World) -> u128 {
        if !self.active() {
            return fingerprint(world);
        }
        let parts = Parts::of(world, self.flaw);
        let keys: SmallVec<[u128; 8]> = (0..world.replicas.len() as u8)
            .map(|r| parts.key(r))
            .collect();
        self.placements(world.replicas.len(), &keys)
            .iter()
            .map(|to| parts.fingerprint(to))
            .min()
            .expect("at least one placement")
    }

    /// The placements to try (`to[r]`: replica `r`'s new index): members
    /// of each class in key order, each run of tied keys every way (up to
    /// [`MAX_PLACEMENTS`] in all).
    fn placements(&self, replicas: usize, keys: &[u128]) -> SmallVec<[Placement; 1]> {
        let mut placements: SmallVec<[Placement; 1]> =
            smallvec::smallvec![(0..replicas as u8).collect()];
        for class in &self.classes {
            let mut members: SmallVec<[(u128, u8); 8]> =
                class.iter().map(|&r| (keys[usize::from(r)], r)).collect();
            members.sort_unstable();
            let mut start = 0;
            while start < members.len() {
                let end = start
                    + members[start..]
                        .iter()
                        .take_while(|m| m.0 == members[start].0)
                        .count();
                let tied: Placement = members[start..end].iter().map(|m| m.1).collect();
                let positions = &class[start..end];
                if tied.len() == 1 {
                    // The common case: a member alone in its key.
                    for to in &mut placements {
                        to[usize::from(tied[0])] = positions[0];
                    }
                    start = end;
                    continue;
                }
                let orders = orderings(&tied);
                let orders = if placements.len() * orders.len() > MAX_PLACEMENTS {
                    vec![tied]
                } else {
                    orders
                };
                placements = placements
                    .into_iter()
                    .flat_map(|to| {
                        orders.iter().map(move |order| {
                            let mut to = to.clone();
                            for (&member, &position) in order.iter().zip(positions) {
                                to[usize::from(member)] = position;
                            }
                            to
                        })
                    })
                    .collect();
                start = end;
            }
        }
        placements
    }
}

/// A world cut into anonymous parts.
struct Parts {
    /// Per replica: its machine, incarnation, touch and callers.
    replicas: SmallVec<[Part; 4]>,
    /// Per message in flight: its replica and the rest of it.
    messages: SmallVec<[(u8, Part); 8]>,
    /// Everything else: clock, store, provider, budgets, writers.
    rest: Part,
}

impl Parts {
    fn of(world: &World, flaw: Option<Flaw>) -> Parts {
        // Spelled out so that a new field cannot be left out unnoticed.
        let World {
            now,
            replicas,
            callers: _,
            store,
            provider,
            messages,
            budget,
            used,
            lost_tokens,
            links,
            unlinked,
        } = world;
        let replicas = (0..replicas.len() as u8)
            .map(|r| {
                // Spelled out so that a new field cannot be left out unnoticed.
                let Replica {
                    machine,
                    incarnation,
                    touched,
                    quiet,
                    ignored_retry_after,
                } = &replicas[usize::from(r)];
                // The machine's print is kept with the machine until it
                // changes: most steps change one replica, and the others'
                // machines are the ones their parent world hashed.
                let machine = machine.anonymous(Some(r));
                let mut part = Part::of(Some(r), |h| {
                    (machine.print, machine.others.len(), incarnation, touched).hash(h.inner);
                    (quiet, ignored_retry_after).hash(h.inner);
                    for caller in callers_of(world, r) {
                        hash_caller(caller, h);
                    }
                });
                part.others.insert_many(0, machine.others.iter().copied());
                part
            })
            .collect();
        let messages = messages
            .printed()
            .map(|m| {
                let r = m.sender().0;
                (r, Part::from(&*message_print(m)))
            })
            .collect();
        let store = match flaw {
            Some(Flaw::LeaseOwnersKept) => {
                Cow::Owned(Part::of(None, |h| store.hash(h.inner)).into_print(None))
            }
            None => store.anonymous(None),
        };
        let provider = provider.anonymous(None);
        let mut rest = Part::of(None, |h| {
            (now, store.print, store.others.len()).hash(h.inner);
            (provider.print, provider.others.len()).hash(h.inner);
            (budget, used, lost_tokens, links, unlinked).hash(h);
        });
        let named = store.others.iter().chain(&provider.others).copied();
        rest.others.insert_many(0, named);
        Parts {
            replicas,
            messages,
            rest,
        }
    }

    /// Replica `r`'s sort key: its part and the set of its messages,
    /// naming nobody.
    fn key(&self, r: u8) -> u128 {
        let mut messages: SmallVec<[u128; 8]> = self
            .messages
            .iter()
            .filter(|(sender, _)| *sender == r)
            .map(|(_, part)| part.print)
            .collect();
        messages.sort_unstable();
        gathered(|bytes| {
            let h = &mut Gather(bytes);
            self.replicas[usize::from(r)].print.hash(h);
            messages.hash(h);
        })
    }

    /// The fingerprint of the world with replica `r` moved to `to[r]`.
    fn fingerprint(&self, to: &[u8]) -> u128 {
        let mut from: Placement = smallvec::smallvec![0u8; to.len()];
        for (r, &p) in to.iter().enumerate() {
            from[usize::from(p)] = r as u8;
        }
        // Messages in flight are a set (see `World::apply`): renamed, they
        // enter sorted, whatever order their old names put them in.
        let mut messages: SmallVec<[u128; 8]> = self
            .messages
            .iter()
            .map(|(r, part)| {
                gathered(|bytes| {
                    let h = &mut Gather(bytes);
                    to[usize::from(*r)].hash(h);
                    part.hash_renamed(to, h);
                })
            })
            .collect();
        messages.sort_unstable();
        gathered(|bytes| {
            let h = &mut Gather(bytes);
            self.rest.hash_renamed(to, h);
            for &r in &from {
                self.replicas[usize::from(r)].hash_renamed(to, h);
            }
            messages.hash(h);
        })
    }
}

/// Every ordering of `items`.
fn orderings(items: &[u8]) -> Vec<Placement> {
    if items.len() <= 1 {
        return vec![items.into()];
    }
    let mut out = Vec::new();
    for (i, &first) in items.iter().enumerate() {
        let mut rest: Placement = items.into();
        rest.remove(i);
        for mut tail in orderings(&rest) {
            tail.insert(0, first);
            out.push(tail);
        }
    }
    out
}

/// Replica `r`'s callers: the world keeps them replica-major, the same
/// number for every replica.
fn callers_of(world: &World, r: u8) -> &[Caller] {
    let per = world.callers.len() / world.replicas.len().max(1);
    &world.callers[usize::from(r) * per..(usize::from(r) + 1) * per]
}

/// Hashes a caller without its replica (its part says whose it is).
fn hash_caller(caller: &Caller, h: &mut impl Hasher) {
    // Spelled out so that a new field cannot be left out unnoticed.
    let Caller {
        replica: _,
        link,
        requests_left,
        waiting,
        cancelled,
        died,
        bad,
        min_generation,
    } = caller;
    (
        link,
        requests_left,
        waiting,
        cancelled,
        died,
        bad,
        min_generation,
    )
        .hash(h);
}

/// A message's anonymous print as its replica's part: its bytes with the
/// replica field left out (the part says whose it is) and owner ids
/// anonymised from that replica's view. Together with the replica, it
/// identifies the message (the interner shares messages by it).
pub(crate) fn message_print(message: &Printed<Message>) -> Cow<'_, AnonymousPrint> {
    let r = message.sender().0;
    message.print(Some(r), |m| {
        AnonymousPrint::of(Some(r), &with_replica(m, 0))
    })
}

/// `message` as if its replica were `to`.
fn with_replica(message: &Message, to: u8) -> Message {
    let mut message = message.clone();
    match &mut message {
        Message::Sent { replica, .. }
        | Message::Reply { replica, .. }
        | Message::ReadReply { replica, .. }
        | Message::Lost { replica, .. } => *replica = to,
    }
    message
}
