//! The hot path's cache: each thread's own copy of the tokens a refresher
//! holds, so serving a live token takes no lock and writes no memory that
//! another thread reads.
//!
//! A copy is the machine's answer for as long as the coordinator's epoch
//! (bumped by every input the machine handles) is the one it was taken at,
//! and the coarse clock is before the instant the machine would stop
//! serving it. The copies belong to the refresher (a [`ThreadLocal`] field,
//! not a `thread_local!` static), so they are freed when it is dropped.
//!
//! The machine forgetting links (issue 17) cannot leave a copy serving what
//! the machine dropped. A held token is dropped only once it is no longer
//! live, which is the `until` every copy checks against itself; and a live
//! token evicted by the bound on held links is evicted while the machine
//! handles an input, which moves the epoch and so retires every copy.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use thread_local::ThreadLocal;

use crate::{AccessGrant, AccessToken, LinkId, Timestamp};

/// A small, fast hasher for the cache's keys (FxHash's multiply-rotate):
/// the hot path hashes a link on every call, and the keys are the
/// application's own link ids, not attacker-chosen.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A thread's copy of a cached token: still the machine's answer while the
/// coordinator's epoch is `epoch` and the clock is before `until`.
struct HotEntry {
    epoch: u64,
    until: Timestamp,
    grant: AccessGrant,
}

type HotLinks = HashMap<LinkId, HotEntry, BuildHasherDefault<FastHasher>>;

/// Entries beyond which a thread's copies are cleared (links churn; the
/// cache is an accelerator, never the source of truth).
const LIMIT: usize = 4096;

/// One refresher's per-thread token copies.
#[derive(Default)]
pub(crate) struct HotCache {
    threads: ThreadLocal<RefCell<HotLinks>>,
}

impl HotCache {
    /// This thread's copy for `link`, if it was taken at `epoch` and `now`
    /// is before its end.
    #[inline]
    pub(crate) fn get(&self, link: &LinkId, epoch: u64, now: Timestamp) -> Option<AccessGrant> {
        let links = self.threads.get()?.borrow();
        let entry = links.get(link)?;
        (entry.epoch == epoch && now < entry.until).then(|| entry.grant.clone())
    }

    /// Keeps a copy of `grant` for this thread. The text is copied into a
    /// string of this thread's own, so serving it later touches no
    /// reference count that other threads share.
    pub(crate) fn put(&self, link: &LinkId, epoch: u64, until: Timestamp, grant: &AccessGrant) {
        let mut links = self.threads.get_or_default().borrow_mut();
        if links.len() >= LIMIT {
            links.clear();
        }
        let grant = AccessGrant {
            token: AccessToken::new(grant.token.expose_secret()),
            expires_at: grant.expires_at,
            lifetime: grant.lifetime,
        };
        links.insert(
            link.clone(),
            HotEntry {
                epoch,
                until,
                grant,
            },
        );
    }
}

impl std::fmt::Debug for HotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotCache").finish_non_exhaustive()
    }
}
