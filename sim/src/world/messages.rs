//! The messages in flight: a set to the world, kept sorted, each message
//! shared between the worlds that hold it.
//!
//! A step adds or removes one message or two; every other message of a
//! successor world is its parent's. Sharing them (an `Arc` each) makes a
//! world's copy a vector of pointers instead of deep copies of requests,
//! read replies and their rows, which is most of what the explorer's
//! frontier holds and most of what copying a world cost.
//!
//! Each message keeps the key it is sorted by and, like a machine, its
//! anonymous print for [`crate::symmetry`] ([`Printed`]): both are
//! computed once, when it is sent or changed, not once per world.

use std::hash::{Hash, Hasher};
use std::ops::Index;
use std::sync::Arc;

use super::Message;
use crate::symmetry::Printed;

/// Messages in flight, in a canonical order: by a hash of their content.
/// Which was sent first changes nothing about what can happen next, and
/// keeping them in this order lets the explorer recognise equal worlds
/// reached by sending in different orders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Messages(Vec<Entry>);

/// One message, its sort key, shared.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    key: u64,
    message: Arc<Printed<Message>>,
}

impl Entry {
    fn new(message: Message) -> Entry {
        Entry {
            key: sort_key(&message),
            message: Arc::new(Printed::new(message)),
        }
    }
}

/// The order's key: SipHash with fixed keys, so that the order, and with
/// it the numbering of a world's steps (replay files name messages by
/// index), is the same in every run and on every machine.
fn sort_key(message: &Message) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    message.hash(&mut h);
    h.finish()
}

impl Messages {
    /// How many are in flight.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Message> + Clone {
        self.0.iter().map(|e| &**e.message)
    }

    /// The messages, in order, with their prints.
    pub fn printed(&self) -> impl ExactSizeIterator<Item = &Printed<Message>> {
        self.0.iter().map(|e| &*e.message)
    }

    /// Sends `message`, in its place in the order.
    pub fn push(&mut self, message: Message) {
        let entry = Entry::new(message);
        // After equal keys, as a stable sort of the appended message would.
        let at = self.0.partition_point(|e| e.key <= entry.key);
        self.0.insert(at, entry);
    }

    /// Takes message `i` out of flight.
    pub fn remove(&mut self, i: usize) -> Message {
        let entry = self.0.remove(i);
        Arc::unwrap_or_clone(entry.message).into_inner()
    }

    /// Changes message `i` with `change` (copied first if another world
    /// shares it), then moves it to its new place in the order.
    pub fn change<T>(&mut self, i: usize, change: impl FnOnce(&mut Message) -> T) -> T {
        let mut entry = self.0.remove(i);
        // Through `Printed`'s `DerefMut`, which forgets the print.
        let message: &mut Message = Arc::<Printed<Message>>::make_mut(&mut entry.message);
        let out = change(message);
        entry.key = sort_key(&entry.message);
        let at = self.0.partition_point(|e| e.key <= entry.key);
        self.0.insert(at, entry);
        out
    }

    /// Keeps the messages `keep` says to, letting it change those it keeps
    /// (each copied first if shared, and only if `keep` asks to change it).
    pub fn retain(&mut self, mut keep: impl FnMut(&Message) -> Keep) {
        let mut changed = false;
        self.0.retain_mut(|e| match keep(&e.message) {
            Keep::Drop => false,
            Keep::AsItIs => true,
            Keep::Changed(change) => {
                let message: &mut Message = Arc::<Printed<Message>>::make_mut(&mut e.message);
                change(message);
                e.key = sort_key(&e.message);
                changed = true;
                true
            }
        });
        if changed {
            self.0.sort_by_key(|e| e.key);
        }
    }

    /// Each message's shared copy, to replace by an equal one (the
    /// explorer's [`crate::symmetry::Interner`]). Only an equal message may
    /// be put in its place: the order and the sort keys stay as they are.
    pub(crate) fn shared_mut(&mut self) -> impl Iterator<Item = &mut Arc<Printed<Message>>> {
        self.0.iter_mut().map(|e| &mut e.message)
    }

    /// Takes every message out, in order.
    pub fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.0)
            .into_iter()
            .map(|e| Arc::unwrap_or_clone(e.message).into_inner())
            .collect()
    }
}

/// What [`Messages::retain`] does with one message.
pub enum Keep {
    /// Out of flight.
    Drop,
    /// Kept unchanged.
    AsItIs,
    /// Kept, changed by the function.
    Changed(fn(&mut Message)),
}

impl Index<usize> for Messages {
    type Output = Message;
    fn index(&self, i: usize) -> &Message {
        &self.0[i].message
    }
}

impl Hash for Messages {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the vector of messages hashed before they were shared.
        self.0.len().hash(state);
        for e in &self.0 {
            e.message.hash(state);
        }
    }
}
