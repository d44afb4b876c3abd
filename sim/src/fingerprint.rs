//! Fingerprints of worlds and the set of those visited: a world's `Hash`
//! bytes gathered into a buffer reused from world to world (one per
//! thread), then hashed in one pass of XXH3-128. A collision among a few
//! million states is astronomically unlikely. [`crate::symmetry`] builds
//! its canonical fingerprints from the same pieces.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::world::World;

/// The fingerprint of `world` exactly as it is (no symmetry).
pub fn fingerprint(world: &World) -> u128 {
    gathered(|bytes| world.hash(&mut Gather(bytes)))
}

/// XXH3-128 of whatever `feed` gathers, in this thread's reused buffer.
pub fn gathered(feed: impl FnOnce(&mut Vec<u8>)) -> u128 {
    thread_local! {
        static BYTES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BYTES.with(|bytes| {
        // A nested call (a key computed while a fingerprint is gathered)
        // gets a buffer of its own rather than a borrow panic.
        match bytes.try_borrow_mut() {
            Ok(mut bytes) => {
                bytes.clear();
                feed(&mut bytes);
                xxhash_rust::xxh3::xxh3_128(&bytes)
            }
            Err(_) => {
                let mut own = Vec::new();
                feed(&mut own);
                xxhash_rust::xxh3::xxh3_128(&own)
            }
        }
    })
}

/// A `Hasher` that only collects what it is fed.
pub struct Gather<'a>(pub &'a mut Vec<u8>);

impl Hasher for Gather<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn finish(&self) -> u64 {
        unreachable!("a gathered world is hashed by the fingerprinter")
    }
}

/// Hashes the fingerprints in the visited set: they are hashes already, so
/// their low bits serve as they are.
#[derive(Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The fingerprints of every state seen: 16 bytes each (plus the table's
/// slack), never the worlds.
pub type Visited = HashSet<u128, BuildHasherDefault<FingerprintHasher>>;

/// Each state's index by fingerprint: the visited set of a search that
/// keeps its graph (see [`crate::livelock`]), whose steps are resolved to
/// indices through it.
pub type Index = HashMap<u128, u32, BuildHasherDefault<FingerprintHasher>>;

/// What a search has seen: fingerprints alone, or each with its state's
/// index where the graph is kept. One table either way: an index beside a
/// set would hold every fingerprint twice.
pub enum Seen {
    /// 16 bytes and a control byte per slot.
    Set(Visited),
    /// 32 bytes (a fingerprint and an index, aligned) and a control byte
    /// per slot.
    Indexed(Index),
}

impl Seen {
    /// An empty table, indexed if `indexed`, with room for `capacity`.
    pub fn new(indexed: bool, capacity: usize) -> Seen {
        if indexed {
            Seen::Indexed(Index::with_capacity_and_hasher(
                capacity,
                Default::default(),
            ))
        } else {
            Seen::Set(Visited::with_capacity_and_hasher(
                capacity,
                Default::default(),
            ))
        }
    }

    /// Whether `print` was seen.
    pub fn contains(&self, print: &u128) -> bool {
        match self {
            Seen::Set(set) => set.contains(print),
            Seen::Indexed(index) => index.contains_key(print),
        }
    }

    /// Notes `print` as state `index`; false if it was seen already.
    pub fn insert(&mut self, print: u128, index: u32) -> bool {
        match self {
            Seen::Set(set) => set.insert(print),
            Seen::Indexed(table) => match table.entry(print) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(index);
                    true
                }
            },
        }
    }

    /// The index, where kept.
    pub fn index(&self) -> Option<&Index> {
        match self {
            Seen::Set(_) => None,
            Seen::Indexed(index) => Some(index),
        }
    }

    /// The table's bytes by capacity: a hash table's usable slots are
    /// about 7/8 of those allocated, each with a control byte besides.
    pub fn bytes(&self) -> usize {
        let (capacity, entry) = match self {
            Seen::Set(set) => (set.capacity(), std::mem::size_of::<u128>()),
            Seen::Indexed(index) => (index.capacity(), std::mem::size_of::<(u128, u32)>()),
        };
        (capacity * 8 / 7).next_power_of_two() * (entry + 1)
    }
}
