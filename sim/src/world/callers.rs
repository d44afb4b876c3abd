//! [`Callers`]: a world's callers, shared between worlds until a step
//! changes one of them.
//!
//! Most steps leave every caller as it was: a message reaches the store or
//! the provider, a timer fires, a reply arrives that answers nobody. A
//! world and its successor then share one list, and the explorer's
//! frontier shares equal lists across a whole level (see
//! [`crate::symmetry::Interner`]): callers go through few states, met in
//! many combinations with the rest of the world.

use std::ops::Deref;
use std::sync::Arc;

use super::Caller;

/// The callers, replica-major. Read as a slice; [`Callers::to_mut`]
/// copies the list first if another world shares it. Equal, hashed and
/// printed as the slice, so a world's fingerprint is the one it had with
/// a vector.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Callers(Arc<[Caller]>);

impl Callers {
    /// The callers, to change: copied first if shared.
    pub fn to_mut(&mut self) -> &mut [Caller] {
        if Arc::get_mut(&mut self.0).is_none() {
            self.0 = self.0.iter().cloned().collect();
        }
        Arc::get_mut(&mut self.0).expect("copied, so held alone")
    }

    /// Whether both worlds hold the same list (not only an equal one).
    pub fn shares(&self, other: &Callers) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for Callers {
    type Target = [Caller];
    fn deref(&self) -> &[Caller] {
        &self.0
    }
}

impl FromIterator<Caller> for Callers {
    fn from_iter<I: IntoIterator<Item = Caller>>(callers: I) -> Callers {
        Callers(callers.into_iter().collect())
    }
}

impl std::fmt::Debug for Callers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{Hash, Hasher};

    fn caller(requests_left: u8) -> Caller {
        Caller {
            replica: 0,
            link: 0,
            requests_left,
            waiting: false,
            cancelled: false,
            died: false,
            bad: None,
            min_generation: 0,
        }
    }

    fn hash_of(value: &impl Hash) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        value.hash(&mut h);
        h.finish()
    }

    #[test]
    fn a_change_copies_a_shared_list_and_hashing_is_the_vectors() {
        let a: Callers = [caller(1), caller(2)].into_iter().collect();
        let mut b = a.clone();
        assert!(b.shares(&a));
        assert_eq!(hash_of(&a), hash_of(&vec![caller(1), caller(2)]));
        b.to_mut()[0].requests_left = 0;
        assert!(!b.shares(&a), "copied before the change");
        assert_eq!(a[0].requests_left, 1, "the other world's list is untouched");
        assert_eq!(b[0].requests_left, 0);
        let held = b.to_mut().as_ptr();
        assert_eq!(
            b.to_mut().as_ptr(),
            held,
            "a list held alone is changed in place"
        );
    }
}
