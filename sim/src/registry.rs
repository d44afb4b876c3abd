//! The algorithms a world can run, by name: baton's machine, the models of
//! historical algorithms (the bug zoo), and any machine a user registers
//! from their own crate. All of them come in through [`register`]; nothing
//! in the explorer, the invariants or the reports knows one from another.
//!
//! A machine the checkers can drive implements
//! [`baton_core::RefreshMachine`] and is [`Checkable`]:
//!
//! - `Clone`: the explorer branches a world into one copy per next step,
//!   and a crashed replica restarts from a fresh machine;
//! - `Eq` and `Hash`: two worlds whose machines are equal are one state,
//!   explored once. They must cover *every* field that can change what the
//!   machine does next, or the explorer merges states that differ and
//!   misses runs (unsound); fields that never matter (statistics) may be
//!   left out, which only makes the search smaller;
//! - `Debug`: counterexamples print the machines;
//! - `Send + Sync + 'static`: the explorer expands states on several
//!   threads, and loom and shuttle run replicas as threads.
//!
//! ```
//! use baton_core::{Config, Machine};
//! use baton_sim::registry::{register, Algorithm, Registration};
//!
//! // A factory: one fresh machine per replica, from the replica's
//! // configuration (its owner id is the replica's identity).
//! let ours = register(
//!     Registration::new("baton_again", |config: Config| Machine::new(config))
//!         .describe("baton's machine under another name")
//!         .takes_lease(true),
//! )
//! .unwrap();
//! assert_eq!("baton_again".parse::<Algorithm>(), Ok(ours));
//! ```
//!
//! Registration is process-wide: scenario files name algorithms, and a
//! name resolves to the same [`Algorithm`] everywhere once registered.
//! Registering a name again with the same machine type returns the same
//! algorithm (tests of one binary may each register it); with another type
//! it is an error.

use std::any::{Any, TypeId};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use baton_core::{
    AccessGrant, Config, Effect, Input, InputError, LinkId, RefreshMachine, Stage, Timestamp,
};

/// What the checkers need of a machine besides [`RefreshMachine`]; see the
/// [module docs](self) for why each.
pub trait Checkable:
    RefreshMachine + Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static
{
}

impl<M> Checkable for M where
    M: RefreshMachine + Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static
{
}

/// An algorithm registered under a name: a cheap handle, `Copy`, ordered
/// by registration (the built-ins first).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Algorithm(u16);

type Factory = dyn Fn(Config) -> AnyMachine + Send + Sync;

struct Entry {
    name: String,
    description: String,
    takes_lease: bool,
    symmetric: bool,
    machine_type: TypeId,
    factory: Arc<Factory>,
}

/// How to make an algorithm's machines, and what the world should know
/// about it. Built with [`Registration::new`], given to [`register`].
pub struct Registration {
    entry: Entry,
}

impl Registration {
    /// An algorithm named `name` (as scenario files and `--algorithm`
    /// spell it: lower case, digits and `_`), whose replicas run
    /// `factory(config)`.
    pub fn new<M, F>(name: &str, factory: F) -> Registration
    where
        M: Checkable,
        F: Fn(Config) -> M + Send + Sync + 'static,
    {
        Registration {
            entry: Entry {
                name: name.to_owned(),
                description: String::new(),
                takes_lease: false,
                symmetric: true,
                machine_type: TypeId::of::<M>(),
                factory: Arc::new(move |config| AnyMachine::new(factory(config))),
            },
        }
    }

    /// One line saying what the algorithm does, for `baton list`.
    pub fn describe(mut self, description: &str) -> Registration {
        self.entry.description = description.to_owned();
        self
    }

    /// Whether every refresh first takes the row's cross-replica lease:
    /// `single_flight` is then judged per link across replicas, not only
    /// per replica (DESIGN.md section 4). Default `false`.
    pub fn takes_lease(mut self, takes_lease: bool) -> Registration {
        self.entry.takes_lease = takes_lease;
        self
    }
}

impl Registration {
    /// Whether the explorer may treat replicas running this algorithm as
    /// interchangeable (symmetry reduction, [`crate::symmetry`]). Default
    /// `true`, which is sound when the machine tells replicas apart only by
    /// the owner id of its `Config`, kept as an `OwnerId` or the string it
    /// holds (the reduction recognises replicas' names in the state it
    /// hashes, as `r{replica}.{incarnation}`). A machine that turns its owner
    /// id into something else — a number, a hash, a substring — must say
    /// `false`, or worlds that differ would be explored as one.
    pub fn symmetric(mut self, symmetric: bool) -> Registration {
        self.entry.symmetric = symmetric;
        self
    }
}

/// Why a registration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// Names are 1 to 64 characters of `a-z`, `0-9` and `_`.
    BadName(String),
    /// The name is registered for a different machine type.
    NameTaken(String),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::BadName(name) => write!(
                f,
                "algorithm name `{name}` is not 1 to 64 characters of a-z, 0-9 and _"
            ),
            RegistryError::NameTaken(name) => write!(
                f,
                "algorithm `{name}` is already registered for another machine type"
            ),
        }
    }
}

impl std::error::Error for RegistryError {}

fn registry() -> &'static RwLock<Vec<Entry>> {
    static REGISTRY: OnceLock<RwLock<Vec<Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let lock = RwLock::new(Vec::new());
        {
            let mut entries = lock.write().unwrap_or_else(|e| e.into_inner());
            for registration in crate::zoo::builtin() {
                insert(&mut entries, registration)
                    .expect("the built-in names are valid and distinct");
            }
        }
        lock
    })
}

fn read() -> RwLockReadGuard<'static, Vec<Entry>> {
    registry().read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> RwLockWriteGuard<'static, Vec<Entry>> {
    registry().write().unwrap_or_else(|e| e.into_inner())
}

fn insert(
    entries: &mut Vec<Entry>,
    registration: Registration,
) -> Result<Algorithm, RegistryError> {
    let entry = registration.entry;
    let valid = (1..=64).contains(&entry.name.len())
        && entry
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(RegistryError::BadName(entry.name));
    }
    if let Some(i) = entries.iter().position(|e| e.name == entry.name) {
        return if entries[i].machine_type == entry.machine_type {
            Ok(Algorithm(i as u16))
        } else {
            Err(RegistryError::NameTaken(entry.name))
        };
    }
    let index = u16::try_from(entries.len()).expect("fewer than 65,536 algorithms");
    entries.push(entry);
    Ok(Algorithm(index))
}

/// Registers an algorithm for every checker, scenario file and report of
/// this process; returns its handle.
pub fn register(registration: Registration) -> Result<Algorithm, RegistryError> {
    // The built-ins first, so they keep their places.
    let _ = registry();
    insert(&mut write(), registration)
}

impl Algorithm {
    /// Exchange, validate, then write unconditionally; any reject-like
    /// answer (a 403 included) empties the token and caches the failure
    /// unconditionally (DESIGN.md failures 1, 2, 3).
    pub const NAIVE: Algorithm = Algorithm(0);
    /// As `naive`, with the failure write guarded on the old refresh token
    /// (failure 5).
    pub const OPTIMISTIC_LOCK: Algorithm = Algorithm(1);
    /// Persist before validating; rate limits are not rejections (failure 6).
    pub const SAVE_BEFORE_VALIDATE: Algorithm = Algorithm(2);
    /// Re-read before caching a failure, with no empty-string guard
    /// (failure 7).
    pub const REREAD_ON_REJECT: Algorithm = Algorithm(3);
    /// Per-process single-flight; each caller's own (possibly stale) read
    /// decides the token the flight presents (failure 8).
    pub const SINGLEFLIGHT: Algorithm = Algorithm(4);
    /// Single-flight plus a row lease; release clears any lease, the
    /// success write is unconditional (failure 9).
    pub const DB_LEASE: Algorithm = Algorithm(5);
    /// baton's machine: the algorithm of DESIGN.md section 2.
    pub const BATON: Algorithm = Algorithm(6);

    /// Every registered algorithm, the built-ins first.
    pub fn all() -> Vec<Algorithm> {
        (0..read().len() as u16).map(Algorithm).collect()
    }

    /// The name scenarios use.
    pub fn name(self) -> String {
        read()[usize::from(self.0)].name.clone()
    }

    /// What it does, in one line.
    pub fn description(self) -> String {
        read()[usize::from(self.0)].description.clone()
    }

    /// A fresh machine of this algorithm (one process, empty memory).
    pub fn machine(self, config: Config) -> AnyMachine {
        let factory = Arc::clone(&read()[usize::from(self.0)].factory);
        factory(config)
    }

    /// Whether every refresh takes a cross-replica lease on the row first
    /// (`single_flight` then holds per link overall, not only per replica).
    pub fn takes_lease(self) -> bool {
        read()[usize::from(self.0)].takes_lease
    }

    /// Whether replicas running it may be permuted by symmetry reduction
    /// (see [`Registration::symmetric`]).
    pub fn symmetric(self) -> bool {
        read()[usize::from(self.0)].symmetric
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&read()[usize::from(self.0)].name)
    }
}

impl fmt::Debug for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Algorithm({self})")
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let entries = read();
        match entries.iter().position(|e| e.name == s) {
            Some(i) => Ok(Algorithm(i as u16)),
            None => {
                let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
                Err(format!(
                    "unknown algorithm `{s}` (registered: {})",
                    names.join(", ")
                ))
            }
        }
    }
}

/// A machine of any registered algorithm: what a world's replica runs.
pub struct AnyMachine(Box<dyn DynMachine>);

impl AnyMachine {
    /// Wraps `machine`.
    pub fn new<M: Checkable>(machine: M) -> AnyMachine {
        AnyMachine(Box::new(machine))
    }

    /// The machine inside, if it is an `M`.
    pub fn downcast_ref<M: Checkable>(&self) -> Option<&M> {
        self.0.as_any().downcast_ref()
    }
}

/// [`Checkable`] as an object: the same operations, through a vtable.
trait DynMachine: Send + Sync {
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError>;
    fn poll_output(&mut self) -> Option<Effect>;
    fn poll_timeout(&self) -> Option<Timestamp>;
    fn cached_token(&self, link: &LinkId, now: Timestamp) -> Option<(AccessGrant, Timestamp)>;
    fn stage_for(&self, now: Timestamp, input: &Input) -> Option<Stage>;
    fn served_cached(&mut self, link: &LinkId);
    fn link_replaced(&mut self, now: Timestamp, link: &LinkId);
    fn clone_box(&self) -> Box<dyn DynMachine>;
    fn eq_dyn(&self, other: &dyn Any) -> bool;
    fn hash_dyn(&self, state: &mut dyn Hasher);
    fn debug_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn as_any(&self) -> &dyn Any;
}

impl<M: Checkable> DynMachine for M {
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        RefreshMachine::handle_input(self, now, input)
    }
    fn poll_output(&mut self) -> Option<Effect> {
        RefreshMachine::poll_output(self)
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        RefreshMachine::poll_timeout(self)
    }
    fn cached_token(&self, link: &LinkId, now: Timestamp) -> Option<(AccessGrant, Timestamp)> {
        RefreshMachine::cached_token(self, link, now)
    }
    fn stage_for(&self, now: Timestamp, input: &Input) -> Option<Stage> {
        RefreshMachine::stage_for(self, now, input)
    }
    fn served_cached(&mut self, link: &LinkId) {
        RefreshMachine::served_cached(self, link)
    }
    fn link_replaced(&mut self, now: Timestamp, link: &LinkId) {
        RefreshMachine::link_replaced(self, now, link)
    }
    fn clone_box(&self) -> Box<dyn DynMachine> {
        Box::new(self.clone())
    }
    fn eq_dyn(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<M>() == Some(self)
    }
    fn hash_dyn(&self, mut state: &mut dyn Hasher) {
        // Machines of different types never share a state.
        TypeId::of::<M>().hash(&mut state);
        self.hash(&mut state);
    }
    fn debug_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Clone for AnyMachine {
    fn clone(&self) -> Self {
        AnyMachine(self.0.clone_box())
    }
}

impl PartialEq for AnyMachine {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(other.0.as_any())
    }
}

impl Eq for AnyMachine {}

impl Hash for AnyMachine {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_dyn(state);
    }
}

impl fmt::Debug for AnyMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug_dyn(f)
    }
}

impl RefreshMachine for AnyMachine {
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        self.0.handle_input(now, input)
    }
    fn poll_output(&mut self) -> Option<Effect> {
        self.0.poll_output()
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.0.poll_timeout()
    }
    fn cached_token(&self, link: &LinkId, now: Timestamp) -> Option<(AccessGrant, Timestamp)> {
        self.0.cached_token(link, now)
    }
    fn stage_for(&self, now: Timestamp, input: &Input) -> Option<Stage> {
        self.0.stage_for(now, input)
    }
    fn served_cached(&mut self, link: &LinkId) {
        self.0.served_cached(link)
    }
    fn link_replaced(&mut self, now: Timestamp, link: &LinkId) {
        self.0.link_replaced(now, link)
    }
}

#[cfg(test)]
mod tests {
    use baton_core::{Machine, OwnerId};

    use super::*;

    #[test]
    fn names_resolve_and_unknown_names_list_the_registered() {
        assert_eq!("baton".parse::<Algorithm>(), Ok(Algorithm::BATON));
        let error = "nope".parse::<Algorithm>().unwrap_err();
        assert!(
            error.starts_with("unknown algorithm `nope` (registered: naive, "),
            "{error}"
        );
        assert!(error.contains("baton"), "{error}");
    }

    #[test]
    fn registering_again_is_idempotent_per_type_and_refused_across_types() {
        let first = register(Registration::new("registry_test_machine", Machine::new)).unwrap();
        let again = register(Registration::new("registry_test_machine", Machine::new)).unwrap();
        assert_eq!(first, again);
        let other = Registration::new("registry_test_machine", |_| bring_other_type::Other);
        assert_eq!(
            register(other),
            Err(RegistryError::NameTaken("registry_test_machine".into()))
        );
        assert!(matches!(
            register(Registration::new("Bad Name", Machine::new)),
            Err(RegistryError::BadName(_))
        ));
    }

    #[test]
    fn machines_compare_and_hash_by_type_and_value() {
        let config = Config::builder(OwnerId::new("r0")).build().unwrap();
        let a = Algorithm::BATON.machine(config.clone());
        let b = Algorithm::BATON.machine(config.clone());
        assert_eq!(a, b);
        assert!(a.downcast_ref::<Machine>().is_some());
        let naive = Algorithm::NAIVE.machine(config);
        assert_ne!(a, naive);
    }

    mod bring_other_type {
        use baton_core::{Effect, Input, InputError, RefreshMachine, Timestamp};

        /// A machine that does nothing, of a type of its own.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
        pub struct Other;

        impl RefreshMachine for Other {
            fn handle_input(&mut self, _: Timestamp, _: Input) -> Result<(), InputError> {
                Ok(())
            }
            fn poll_output(&mut self) -> Option<Effect> {
                None
            }
            fn poll_timeout(&self) -> Option<Timestamp> {
                None
            }
        }
    }
}
