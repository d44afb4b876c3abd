//! A part of a world that remembers its own anonymous hash until it
//! changes: what makes a world's canonical fingerprint incremental.
//!
//! Worlds share their machines, store and provider behind `Arc`s until a
//! step changes one (`Arc::make_mut`). A part wrapped in [`Printed`] keeps
//! the hash [`crate::symmetry`] computed for it inside that shared
//! allocation, so the successor of a world hashes afresh only what its
//! step touched; every other part's hash is the one its parent's
//! fingerprint already paid for. Any mutable access forgets the hash
//! (`DerefMut`), so a stale one cannot outlive a change.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicU32;
use std::sync::OnceLock;

/// A value's bytes hashed with owner ids anonymised from the point of view
/// of replica `me` (or of no replica), and the replicas other than `me`
/// they named, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnonymousPrint {
    /// Whose part it is: its owner id reads as "itself".
    pub me: Option<u8>,
    /// XXH3-128 of the anonymous bytes.
    pub print: u128,
    /// The other replicas named, in the order their ids were hashed.
    pub others: super::Names,
}

impl AnonymousPrint {
    /// `value`'s print as `me`'s part.
    pub fn of(me: Option<u8>, value: &impl Hash) -> AnonymousPrint {
        super::Part::of(me, |h| value.hash(h)).into_print(me)
    }

    /// One number for the whole print: two values of one type at the same
    /// replica have the same identity exactly when they are equal (up to
    /// a 128-bit collision, as for the explorer's fingerprints).
    pub fn identity(&self) -> u128 {
        if self.others.is_empty() && self.me.is_none() {
            return self.print;
        }
        crate::fingerprint::gathered(|bytes| {
            let h = &mut crate::fingerprint::Gather(bytes);
            (self.me, self.print, &self.others).hash(h);
        })
    }
}

/// `T` with its anonymous print, kept until `T` is next borrowed mutably.
/// Equality, hashing and `Debug` are `T`'s: the print is a cache, never
/// part of the state.
pub struct Printed<T> {
    value: T,
    print: OnceLock<AnonymousPrint>,
    /// The interner this copy is the shared one of, if any
    /// ([`super::Interner`]): a world whose part is already the shared
    /// copy needs no look-up. Zero for none.
    pub(super) interned_by: AtomicU32,
}

impl<T> Printed<T> {
    /// Wraps `value`, not yet hashed.
    pub fn new(value: T) -> Printed<T> {
        Printed {
            value,
            print: OnceLock::new(),
            interned_by: AtomicU32::new(0),
        }
    }

    /// The value, without its print.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The value's print as `me`'s part, computed by `compute` the first
    /// time it is asked for since the value last changed.
    pub(super) fn print(
        &self,
        me: Option<u8>,
        compute: impl Fn(&T) -> AnonymousPrint,
    ) -> std::borrow::Cow<'_, AnonymousPrint> {
        let print = self.print.get_or_init(|| compute(&self.value));
        // A part stays with one replica in the explorer's worlds; one moved
        // to another (a test's permuted copy) is hashed afresh, since a
        // print made for another replica names the wrong "itself".
        if print.me == me {
            std::borrow::Cow::Borrowed(print)
        } else {
            std::borrow::Cow::Owned(compute(&self.value))
        }
    }
}

impl<T: Hash> Printed<T> {
    /// The value's anonymous print as `me`'s part (see [`super`]), kept
    /// until the value changes.
    pub fn anonymous(&self, me: Option<u8>) -> std::borrow::Cow<'_, AnonymousPrint> {
        self.print(me, |value| AnonymousPrint::of(me, value))
    }
}

impl<T> Deref for Printed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Printed<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.print.take();
        // Changed, it is no longer what the interner shares.
        *self.interned_by.get_mut() = 0;
        &mut self.value
    }
}

impl<T: Clone> Clone for Printed<T> {
    fn clone(&self) -> Self {
        // An equal copy has the same print until one of them changes.
        Printed {
            value: self.value.clone(),
            print: self.print.clone(),
            interned_by: AtomicU32::new(0),
        }
    }
}

impl<T: PartialEq> PartialEq for Printed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Printed<T> {}

impl<T: Hash> Hash for Printed<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl<T: fmt::Debug> fmt::Debug for Printed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print_of(value: &u32) -> AnonymousPrint {
        AnonymousPrint {
            me: Some(0),
            print: u128::from(*value),
            others: crate::symmetry::Names::new(),
        }
    }

    #[test]
    fn a_change_forgets_the_print_and_a_copy_keeps_it() {
        let mut a = Printed::new(1u32);
        assert_eq!(a.print(Some(0), print_of).print, 1);
        let b = a.clone();
        *a = 2;
        assert_eq!(a.print(Some(0), print_of).print, 2, "stale after a change");
        assert_eq!(
            b.print(Some(0), |_| unreachable!()).print,
            1,
            "copy rehashed"
        );
    }

    #[test]
    fn a_print_for_another_replica_is_computed_afresh() {
        let a = Printed::new(7u32);
        assert_eq!(a.print(Some(0), print_of).me, Some(0));
        let other = a.print(Some(1), |v| AnonymousPrint {
            me: Some(1),
            ..print_of(v)
        });
        assert_eq!(other.me, Some(1));
    }
}
