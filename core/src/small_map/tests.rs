//! The representation never shows: equality, hashing, iteration and
//! `Debug` follow the entries alone, on either side of the thresholds.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use super::{SmallMap, SmallSet, GROW, SHRINK};

fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The bytes a value feeds its hasher, as the explorer's fingerprint sees
/// them.
fn bytes_of<T: Hash + ?Sized>(value: &T) -> Vec<u8> {
    struct Gather(Vec<u8>);
    impl Hasher for Gather {
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut g = Gather(Vec::new());
    value.hash(&mut g);
    g.0
}

/// A pseudo-random permutation of `0..n`, so that inserts are not in order.
fn shuffled(n: u32) -> Vec<u32> {
    let mut keys: Vec<u32> = (0..n).collect();
    let mut x = 0x2545_f491_u32;
    for i in (1..keys.len()).rev() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        keys.swap(i, x as usize % (i + 1));
    }
    keys
}

fn assert_same(map: &SmallMap<u32, String>, model: &BTreeMap<u32, String>) {
    assert_eq!(map.len(), model.len());
    assert!(map.iter().eq(model.iter()), "iteration in key order");
    assert_eq!(map.first(), model.first_key_value());
    assert_eq!(bytes_of(map), bytes_of(model), "hashes as a BTreeMap");
    assert_eq!(format!("{map:?}"), format!("{model:?}"));
    for k in 0..(GROW as u32 * 3) {
        assert_eq!(map.get(&k), model.get(&k), "get {k}");
    }
}

#[test]
fn empty_maps_are_equal_whatever_their_history() {
    let mut grown: SmallMap<u32, u32> = (0..100).map(|k| (k, k)).collect();
    assert!(grown.is_tree());
    for k in 0..100 {
        grown.remove(&k);
    }
    assert!(!grown.is_tree());
    assert!(grown.is_empty());
    assert_eq!(grown, SmallMap::new());
    assert_eq!(hash_of(&grown), hash_of(&SmallMap::<u32, u32>::new()));
    assert_eq!(bytes_of(&grown), bytes_of(&BTreeMap::<u32, u32>::new()));
}

#[test]
fn crossing_the_thresholds_both_ways_follows_a_btreemap() {
    let mut map = SmallMap::new();
    let mut model = BTreeMap::new();
    // Up: a vector until an insert would pass GROW.
    for (n, k) in shuffled(GROW as u32 * 3).into_iter().enumerate() {
        assert_eq!(map.insert(k, k.to_string()), model.insert(k, k.to_string()));
        assert_eq!(map.is_tree(), n + 1 > GROW, "after {} inserts", n + 1);
        assert_same(&map, &model);
    }
    // Replacing an existing key neither grows nor shrinks.
    assert_eq!(map.insert(5, "five".into()), model.insert(5, "five".into()));
    assert_same(&map, &model);
    // Down: a tree until a removal leaves fewer than SHRINK.
    for (n, k) in shuffled(GROW as u32 * 3).into_iter().enumerate() {
        assert_eq!(map.remove(&k), model.remove(&k));
        let left = GROW * 3 - n - 1;
        assert_eq!(map.is_tree(), left >= SHRINK, "with {left} left");
        assert_same(&map, &model);
    }
    assert!(map.remove(&0).is_none());
}

#[test]
fn no_flapping_between_the_thresholds() {
    let mut map: SmallMap<u32, ()> = (0..=GROW as u32).map(|k| (k, ())).collect();
    assert!(map.is_tree());
    // Back and forth just below GROW: stays a tree.
    for _ in 0..10 {
        map.remove(&0);
        map.remove(&1);
        assert!(map.is_tree());
        map.insert(0, ());
        map.insert(1, ());
    }
    assert!(map.is_tree());
}

#[test]
fn grown_and_shrunk_equals_and_hashes_like_built_directly() {
    // The same 20 entries, built directly (a vector) and by removing 40
    // from a tree of 60 (still a tree: 20 is not under SHRINK).
    let direct: SmallMap<u32, String> = (0..20).map(|k| (k, k.to_string())).collect();
    let mut via_tree: SmallMap<u32, String> = (0..60).map(|k| (k, k.to_string())).collect();
    for k in 20..60 {
        via_tree.remove(&k);
    }
    assert!(!direct.is_tree());
    assert!(via_tree.is_tree(), "20 entries left: not under SHRINK");
    assert_eq!(direct, via_tree);
    assert_eq!(via_tree, direct);
    assert_eq!(hash_of(&direct), hash_of(&via_tree));
    assert_eq!(bytes_of(&direct), bytes_of(&via_tree));
    assert_eq!(format!("{direct:?}"), format!("{via_tree:?}"));
    // And a tree shrunk back to a vector equals one that never grew.
    for k in 5..20 {
        via_tree.remove(&k);
    }
    let small: SmallMap<u32, String> = (0..5).map(|k| (k, k.to_string())).collect();
    assert!(!via_tree.is_tree());
    assert_eq!(small, via_tree);
    assert_eq!(hash_of(&small), hash_of(&via_tree));
    // Different contents differ in either representation.
    let mut other = via_tree.clone();
    other.insert(3, "three".into());
    assert_ne!(other, via_tree);
    assert_ne!(hash_of(&other), hash_of(&via_tree));
}

#[test]
fn get_or_insert_default_grows_and_finds() {
    let mut map: SmallMap<u32, Vec<u32>> = SmallMap::new();
    for k in shuffled(100) {
        map.get_or_insert_default(k % 50).push(k);
    }
    assert!(map.is_tree());
    assert_eq!(map.len(), 50);
    assert!(map.keys().copied().eq(0..50));
    for (k, v) in &map {
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|x| x % 50 == *k));
    }
    // At exactly GROW entries, finding an existing key does not convert.
    let mut full: SmallMap<u32, u32> = (0..GROW as u32).map(|k| (k, 0)).collect();
    *full.get_or_insert_default(3) += 1;
    assert!(!full.is_tree());
    *full.get_or_insert_default(GROW as u32) += 1;
    assert!(full.is_tree());
    assert_eq!(full.get(&3), Some(&1));
    assert_eq!(full.get(&(GROW as u32)), Some(&1));
    if let Some(v) = full.get_mut(&0) {
        *v = 7;
    }
    assert_eq!(full.first(), Some((&0, &7)));
}

#[test]
fn sets_pop_in_order_across_the_thresholds() {
    let mut set = SmallSet::new();
    let mut model = BTreeSet::new();
    for k in shuffled(100) {
        assert_eq!(set.insert(k), model.insert(k));
        assert_eq!(set.insert(k), model.insert(k), "twice");
    }
    assert!(set.is_tree());
    assert!(set.iter().eq(model.iter()));
    assert_eq!(bytes_of(&set), bytes_of(&model), "hashes as a BTreeSet");
    assert_eq!(format!("{set:?}"), format!("{model:?}"));
    assert!(set.contains(&42));
    assert!(set.remove(&42) && model.remove(&42));
    assert!(!set.remove(&42));
    while let Some(k) = set.pop_first() {
        assert_eq!(Some(k), model.pop_first());
        assert_eq!(set.first(), model.first());
        assert_eq!(set.len(), model.len());
        assert_eq!(set.is_tree(), set.len() >= SHRINK);
        assert!(set.iter().eq(model.iter()));
    }
    assert!(set.is_empty() && model.is_empty());
    assert_eq!(set, SmallSet::new());
}
