//! [`SmallMap`] and [`SmallSet`]: ordered maps and sets that are a sorted
//! `Vec` while small and a `BTreeMap` once large.
//!
//! The machine's link table, callers, awaited effects and indexes are
//! ordered maps. A process serving a million links needs a B-tree there,
//! so that no input costs more with more links (issue 17); but the
//! explorer's machines hold one or two links, a few callers and effects,
//! and are cloned, hashed and compared millions of times. A `BTreeMap`
//! allocates a whole node (room for 11 entries) for its first entry and
//! clones node by node; a sorted vector holds its entries in one exactly
//! sized allocation (it grows one entry at a time) and clones into one.
//!
//! So a map starts as a sorted vector and becomes a B-tree when an insert
//! would take it past [`GROW`] entries; it goes back to a vector when a
//! removal leaves it under [`SHRINK`]. The gap between the two keeps a map
//! hovering around one size from converting back and forth.
//!
//! The representation is invisible: iteration is in key order either way,
//! and equality, hashing and `Debug` follow the entries alone, so a map
//! that grew and shrank equals and hashes like one built directly. The
//! hash feeds exactly what a `BTreeMap` (or `BTreeSet`) with the same
//! entries feeds — the length, then each key and value — so fingerprints
//! are those the machine had with B-trees.

use std::borrow::Borrow;
use std::collections::{btree_map, BTreeMap};
use std::fmt;
use std::hash::{Hash, Hasher};

/// A vector holding this many entries becomes a B-tree on the next insert
/// of a new key. Below it, a binary search and a shift of at most this
/// many entries beat a B-tree's node walk and allocation.
pub(crate) const GROW: usize = 32;

/// A B-tree left with fewer entries than this by a removal becomes a vector
/// again. Half of [`GROW`]: a map must lose half its entries to convert
/// back, so it cannot convert at every input.
pub(crate) const SHRINK: usize = GROW / 2;

/// An ordered map: a sorted vector up to [`GROW`] entries, a `BTreeMap`
/// beyond. See the [module docs](self).
#[derive(Clone)]
pub(crate) struct SmallMap<K, V>(Repr<K, V>);

#[derive(Clone)]
enum Repr<K, V> {
    /// Sorted by key, keys distinct.
    Vec(Vec<(K, V)>),
    Tree(BTreeMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::new()
    }
}

impl<K, V> SmallMap<K, V> {
    /// An empty map; allocates nothing.
    pub(crate) const fn new() -> Self {
        SmallMap(Repr::Vec(Vec::new()))
    }

    /// How many entries it holds.
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Repr::Vec(v) => v.len(),
            Repr::Tree(t) => t.len(),
        }
    }

    /// Whether it holds no entry.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        match &self.0 {
            Repr::Vec(v) => Iter::Vec(v.iter()),
            Repr::Tree(t) => Iter::Tree(t.iter()),
        }
    }

    /// The keys in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Whether it is a B-tree now: for tests and benches only.
    #[cfg(test)]
    pub(crate) fn is_tree(&self) -> bool {
        matches!(self.0, Repr::Tree(_))
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// The entry with the smallest key.
    pub(crate) fn first(&self) -> Option<(&K, &V)> {
        match &self.0 {
            Repr::Vec(v) => v.first().map(|(k, v)| (k, v)),
            Repr::Tree(t) => t.first_key_value(),
        }
    }

    /// Where `key` is in a vector, or where it would go.
    fn search<Q>(v: &[(K, V)], key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        v.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value under `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match &self.0 {
            Repr::Vec(v) => Self::search(v, key).ok().map(|i| &v[i].1),
            Repr::Tree(t) => t.get(key),
        }
    }

    /// The value under `key`, to change.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match &mut self.0 {
            Repr::Vec(v) => Self::search(v, key).ok().map(|i| &mut v[i].1),
            Repr::Tree(t) => t.get_mut(key),
        }
    }

    /// Whether `key` has a value.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Puts `value` under `key`; returns the value it replaces, if any.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match &mut self.0 {
            Repr::Vec(v) => match Self::search(v, &key) {
                Ok(i) => Some(std::mem::replace(&mut v[i].1, value)),
                Err(_) if v.len() >= GROW => {
                    self.grow();
                    self.insert(key, value)
                }
                Err(i) => {
                    Self::insert_at(v, i, (key, value));
                    None
                }
            },
            Repr::Tree(t) => t.insert(key, value),
        }
    }

    /// The value under `key`, inserted as `V::default()` if there was none.
    pub(crate) fn get_or_insert_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if let Repr::Vec(v) = &self.0 {
            if v.len() >= GROW && Self::search(v, &key).is_err() {
                self.grow();
            }
        }
        match &mut self.0 {
            Repr::Vec(v) => {
                let i = Self::search(v, &key).unwrap_or_else(|i| {
                    Self::insert_at(v, i, (key, V::default()));
                    i
                });
                &mut v[i].1
            }
            Repr::Tree(t) => t.entry(key).or_default(),
        }
    }

    /// Takes the value under `key` out.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let removed = match &mut self.0 {
            Repr::Vec(v) => Self::search(v, key).ok().map(|i| v.remove(i).1),
            Repr::Tree(t) => t.remove(key),
        };
        self.shrink();
        removed
    }

    /// Takes the entry with the smallest key out.
    pub(crate) fn pop_first(&mut self) -> Option<(K, V)> {
        let first = match &mut self.0 {
            Repr::Vec(v) if v.is_empty() => None,
            Repr::Vec(v) => Some(v.remove(0)),
            Repr::Tree(t) => t.pop_first(),
        };
        self.shrink();
        first
    }

    /// Inserts into a vector, growing it by one entry at a time: a machine
    /// the explorer keeps is a clone (exactly sized) changed by one input,
    /// and doubling would leave most of its vectors half empty. A vector
    /// never reallocates more than [`GROW`] times.
    fn insert_at(v: &mut Vec<(K, V)>, i: usize, entry: (K, V)) {
        if v.len() == v.capacity() {
            v.reserve_exact(1);
        }
        v.insert(i, entry);
    }

    /// A full vector becomes a tree.
    fn grow(&mut self) {
        if let Repr::Vec(v) = &mut self.0 {
            // Sorted with distinct keys: the tree is built in one pass.
            let tree = std::mem::take(v).into_iter().collect();
            self.0 = Repr::Tree(tree);
        }
    }

    /// A tree under [`SHRINK`] entries becomes a vector.
    fn shrink(&mut self) {
        if let Repr::Tree(t) = &mut self.0 {
            if t.len() < SHRINK {
                let v = std::mem::take(t).into_iter().collect();
                self.0 = Repr::Vec(v);
            }
        }
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = SmallMap::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for SmallMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<K: Eq, V: Eq> Eq for SmallMap<K, V> {}

/// What a `BTreeMap` with these entries feeds: the length, then each key
/// and value in key order.
impl<K: Hash, V: Hash> Hash for SmallMap<K, V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for (k, v) in self.iter() {
            k.hash(state);
            v.hash(state);
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SmallMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a, K, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;
    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

/// A [`SmallMap`]'s entries in key order.
pub(crate) enum Iter<'a, K, V> {
    Vec(std::slice::Iter<'a, (K, V)>),
    Tree(btree_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Vec(i) => i.next().map(|(k, v)| (k, v)),
            Iter::Tree(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Vec(i) => i.size_hint(),
            Iter::Tree(i) => i.size_hint(),
        }
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

/// An ordered set: a [`SmallMap`] with no values. Hashes like a `BTreeSet`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct SmallSet<T>(SmallMap<T, ()>);

impl<T> Default for SmallSet<T> {
    fn default() -> Self {
        SmallSet::new()
    }
}

impl<T> SmallSet<T> {
    /// An empty set; allocates nothing.
    pub(crate) const fn new() -> Self {
        SmallSet(SmallMap::new())
    }

    /// How many elements it holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds nothing.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The elements in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.keys()
    }

    /// Whether it is a B-tree now: for tests only.
    #[cfg(test)]
    pub(crate) fn is_tree(&self) -> bool {
        self.0.is_tree()
    }
}

impl<T: Ord> SmallSet<T> {
    /// The smallest element.
    pub(crate) fn first(&self) -> Option<&T> {
        self.0.first().map(|(k, ())| k)
    }

    /// Adds `value`; whether it was new.
    pub(crate) fn insert(&mut self, value: T) -> bool {
        self.0.insert(value, ()).is_none()
    }

    /// Takes `value` out; whether it was there.
    pub(crate) fn remove<Q>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.remove(value).is_some()
    }

    /// Whether `value` is in.
    #[cfg(test)]
    pub(crate) fn contains<Q>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.contains_key(value)
    }

    /// Takes the smallest element out.
    pub(crate) fn pop_first(&mut self) -> Option<T> {
        self.0.pop_first().map(|(k, ())| k)
    }
}

impl<T: Ord> FromIterator<T> for SmallSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        SmallSet(iter.into_iter().map(|t| (t, ())).collect())
    }
}

impl<T: fmt::Debug> fmt::Debug for SmallSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests;
