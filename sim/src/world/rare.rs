//! [`Rare`]: a collection that is empty in nearly every world, boxed so
//! that it costs the world one pointer there.
//!
//! The explorer holds a whole level of worlds at once, millions of them in
//! a large search, and every byte inline in a world is paid once per world
//! on the frontier. A replica's `Retry-After` periods and the refresh
//! tokens nobody received are empty unless a run met a rate limit or lost
//! a reply. `Rare<T>` hashes, compares and prints as `T`, so a world's
//! fingerprint is the one it had with `T` inline.

use std::fmt;
use std::hash::{Hash, Hasher};

/// `T`, boxed when not empty. Equal, hashed and printed as `T` (an absent
/// one as `T::default()`).
#[derive(Clone, Default)]
pub struct Rare<T>(Option<Box<T>>);

impl<T: Default> Rare<T> {
    /// The collection, if anything was ever put in it.
    pub fn get(&self) -> Option<&T> {
        self.0.as_deref()
    }

    /// The collection, to change (boxed on first use).
    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

impl<T: Default + PartialEq> PartialEq for Rare<T> {
    fn eq(&self, other: &Self) -> bool {
        match (self.get(), other.get()) {
            (None, None) => true,
            (Some(one), None) | (None, Some(one)) => *one == T::default(),
            (Some(a), Some(b)) => a == b,
        }
    }
}

impl<T: Default + Eq> Eq for Rare<T> {}

impl<T: Default + Hash> Hash for Rare<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self.get() {
            Some(value) => value.hash(state),
            None => T::default().hash(state),
        }
    }
}

impl<T: Default + fmt::Debug> fmt::Debug for Rare<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(value) => value.fmt(f),
            None => T::default().fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn hash_of(value: &impl Hash) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        value.hash(&mut h);
        h.finish()
    }

    #[test]
    fn it_is_equal_and_hashed_as_what_it_holds_and_costs_a_pointer() {
        let mut rare: Rare<BTreeSet<u8>> = Rare::default();
        assert_eq!(hash_of(&rare), hash_of(&BTreeSet::<u8>::new()));
        rare.get_mut().insert(3);
        assert_eq!(hash_of(&rare), hash_of(&BTreeSet::from([3u8])));
        assert_eq!(format!("{rare:?}"), "{3}");
        rare.get_mut().remove(&3);
        assert_eq!(rare, Rare::default(), "emptied equals never filled");
        assert_eq!(hash_of(&rare), hash_of(&Rare::<BTreeSet<u8>>::default()));
        assert_eq!(std::mem::size_of::<Rare<BTreeSet<u8>>>(), 8);
    }
}
