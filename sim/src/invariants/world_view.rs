//! The explorer's [`World`] as the invariants see it.

use baton_core::{LinkId, RefreshToken, StoredLink, Timestamp};
use baton_fakes::{FakeProvider, InMemoryStore};

use super::{CallerView, Observed};
use crate::spec::WorldSpec;
use crate::world::{FaultsUsed, World};

/// The row of a link, for reports.
pub fn row_of<'a>(world: &'a World, link: &LinkId) -> Option<&'a StoredLink> {
    world.store.row(link)
}

impl Observed for World {
    fn links(&self) -> &[LinkId] {
        &self.links
    }
    fn provider(&self) -> &FakeProvider {
        &self.provider
    }
    fn store(&self) -> &InMemoryStore {
        &self.store
    }
    fn now(&self) -> Timestamp {
        self.now
    }
    fn awaited_exchanges(&self) -> impl Iterator<Item = ((u8, u32), &LinkId)> {
        self.messages
            .iter()
            .filter_map(|m| Some((m.sender(), m.awaited_exchange()?)))
    }
    fn callers(&self) -> impl Iterator<Item = CallerView<'_>> {
        self.callers.iter().map(|c| CallerView {
            link: &self.links[usize::from(c.link)],
            bad: c.bad.as_deref(),
            waiting: c.waiting,
        })
    }
    fn faults(&self) -> &FaultsUsed {
        &self.used
    }
    fn known_live(&self, link: &LinkId) -> Vec<RefreshToken> {
        World::known_live(self, link)
    }
    fn can_progress(&self, spec: &WorldSpec) -> bool {
        World::can_progress(self, spec)
    }
    fn quiescent(&self) -> bool {
        World::quiescent(self)
    }
    fn ignored_retry_after(&self) -> Option<String> {
        self.replicas.iter().enumerate().find_map(|(r, replica)| {
            let ignored = replica.ignored_retry_after.as_deref()?;
            Some(format!(
                "r{r} presented a refresh token for {} at t={}ms, though the provider had \
                 rate-limited it until t={}ms (Retry-After, on r{r}'s clock)",
                self.links[usize::from(ignored.link)],
                ignored.sent_at.as_millis(),
                ignored.quiet_until.as_millis(),
            ))
        })
    }
    fn unlinked(&self, link: &LinkId) -> bool {
        self.links
            .iter()
            .position(|l| l == link)
            .is_some_and(|i| self.is_unlinked(i))
    }
}
