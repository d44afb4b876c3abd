//! Fingerprints of worlds and the set of those visited: a world's `Hash`
//! bytes gathered into a buffer reused from world to world (one per
//! thread), then hashed in one pass of XXH3-128. A collision among a few
//! million states is astronomically unlikely. [`crate::symmetry`] builds
//! its canonical fingerprints from the same pieces.

use std::collections::HashSet;
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
