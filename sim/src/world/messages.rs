//! The messages in flight: a set to the world, kept sorted, each message
//! shared between the worlds that hold it.
//!
//! A step adds or removes one message or two; every other message of a
//! successor world is its parent's. Sharing them (an `Arc` each) makes a
//! world's copy a vector of pointers instead of deep copies of requests,
//! read replies and their rows, which is most of what the explorer's
//! frontier holds and most of what copying a world cost.

use std::hash::{Hash, Hasher};
use std::ops::Index;
use std::sync::Arc;

use super::Message;

/// Messages in flight, in a canonical order (see [`Messages::sort`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Messages(Vec<Arc<Message>>);

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
        self.0.iter().map(|m| &**m)
    }

    /// Sends `message`.
    pub fn push(&mut self, message: Message) {
        self.0.push(Arc::new(message));
    }

    /// Takes message `i` out of flight.
    pub fn remove(&mut self, i: usize) -> Message {
        Arc::unwrap_or_clone(self.0.remove(i))
    }

    /// Message `i`, to change (copied first if another world shares it).
    pub fn get_mut(&mut self, i: usize) -> &mut Message {
        Arc::make_mut(&mut self.0[i])
    }

    /// Keeps the messages `keep` says to, letting it change those it keeps
    /// (each copied first if shared, and only if `keep` asks to change it).
    pub fn retain(&mut self, mut keep: impl FnMut(&Message) -> Keep) {
        self.0.retain_mut(|m| match keep(m) {
            Keep::Drop => false,
            Keep::AsItIs => true,
            Keep::Changed(change) => {
                change(Arc::make_mut(m));
                true
            }
        });
    }

    /// Puts the messages in a canonical order by `key`: which was sent
    /// first changes nothing about what can happen next.
    pub fn sort(&mut self, key: impl FnMut(&Message) -> u64) {
        let mut key = key;
        self.0.sort_by_cached_key(|m| key(m));
    }

    /// Takes every message out, in order.
    pub fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.0)
            .into_iter()
            .map(Arc::unwrap_or_clone)
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
        &self.0[i]
    }
}

impl<'a> IntoIterator for &'a Messages {
    type Item = &'a Message;
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, Arc<Message>>, fn(&Arc<Message>) -> &Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|m| &**m)
    }
}

impl Hash for Messages {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the vector of messages hashed before they were shared.
        self.0.len().hash(state);
        for m in &self.0 {
            m.hash(state);
        }
    }
}
