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
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
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

/// A fingerprint as four 32-bit words. A `u128` is aligned to 16 bytes,
/// which pads a slot holding a fingerprint and a state's index from 20
/// bytes to 32; in words it packs to 20, and the index table is most of a
/// graph-keeping search's memory.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Packed([u32; 4]);

impl From<u128> for Packed {
    fn from(print: u128) -> Packed {
        Packed([
            print as u32,
            (print >> 32) as u32,
            (print >> 64) as u32,
            (print >> 96) as u32,
        ])
    }
}

impl From<Packed> for u128 {
    fn from(Packed(words): Packed) -> u128 {
        words
            .iter()
            .rev()
            .fold(0u128, |print, word| print << 32 | u128::from(*word))
    }
}

impl Hash for Packed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The low 64 bits, as a `u128` fingerprint hashes.
        state.write_u64(u64::from(self.0[0]) | u64::from(self.0[1]) << 32);
    }
}

/// Each state's index by fingerprint: the visited set of a search that
/// keeps its graph (see [`crate::livelock`]), whose steps are resolved to
/// indices through it. 20 bytes and a control byte per slot.
#[derive(Default)]
pub struct Index(HashMap<Packed, u32, BuildHasherDefault<FingerprintHasher>>);

impl Index {
    /// An empty index with room for `capacity` states.
    pub fn with_capacity(capacity: usize) -> Index {
        Index(HashMap::with_capacity_and_hasher(
            capacity,
            Default::default(),
        ))
    }

    /// The index of the state fingerprinted `print`, if seen.
    pub fn get(&self, print: u128) -> Option<u32> {
        self.0.get(&Packed::from(print)).copied()
    }

    /// Notes `print` as state `index`; false (and no change) if it was
    /// seen already.
    pub fn insert(&mut self, print: u128, index: u32) -> bool {
        match self.0.entry(Packed::from(print)) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(index);
                true
            }
        }
    }

    /// The fingerprint of state `index`: a scan, for the few states of a
    /// cycle found.
    pub fn print_of(&self, index: u32) -> Option<u128> {
        self.0
            .iter()
            .find(|(_, at)| **at == index)
            .map(|(print, _)| u128::from(*print))
    }

    /// Slots the table can fill before it grows.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// The bytes of one slot's entry.
    const ENTRY: usize = std::mem::size_of::<(Packed, u32)>();
}

impl FromIterator<(u128, u32)> for Index {
    fn from_iter<I: IntoIterator<Item = (u128, u32)>>(items: I) -> Index {
        let mut index = Index::default();
        for (print, at) in items {
            index.insert(print, at);
        }
        index
    }
}

/// What a search has seen: fingerprints alone, or each with its state's
/// index where the graph is kept. One table either way: an index beside a
/// set would hold every fingerprint twice.
pub enum Seen {
    /// 16 bytes and a control byte per slot.
    Set(Visited),
    /// 20 bytes (a fingerprint and an index) and a control byte per slot.
    Indexed(Index),
}

impl Seen {
    /// An empty table, indexed if `indexed`, with room for `capacity`.
    pub fn new(indexed: bool, capacity: usize) -> Seen {
        if indexed {
            Seen::Indexed(Index::with_capacity(capacity))
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
            Seen::Indexed(index) => index.get(*print).is_some(),
        }
    }

    /// Notes `print` as state `index`; false if it was seen already.
    pub fn insert(&mut self, print: u128, index: u32) -> bool {
        match self {
            Seen::Set(set) => set.insert(print),
            Seen::Indexed(table) => table.insert(print, index),
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
            Seen::Indexed(index) => (index.capacity(), Index::ENTRY),
        };
        (capacity * 8 / 7).next_power_of_two() * (entry + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_fingerprint_is_the_fingerprint_and_packs_a_slot_to_twenty_bytes() {
        for print in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            assert_eq!(u128::from(Packed::from(print)), print);
        }
        assert_eq!(Index::ENTRY, 20);
        let mut index = Index::default();
        assert!(index.insert(u128::MAX - 1, 7));
        assert!(!index.insert(u128::MAX - 1, 8), "seen already");
        assert_eq!(index.get(u128::MAX - 1), Some(7));
        assert_eq!(index.get(u128::MAX), None);
        assert_eq!(index.print_of(7), Some(u128::MAX - 1));
    }
}
