//! An index from token prefix to link for a [`FakeProvider`](super::FakeProvider)
//! that knows many families, so that finding the family behind a presented
//! token, and checking a new prefix is unused, do not scan every family.
//!
//! Without it, a provider with 100,000 enrolled links scans them all on
//! every exchange (under the fake IdP's lock) and on every enrolment
//! (quadratic): the benchmarks of the `Refresher` with many links would
//! measure the fake, not the refresher.
//!
//! The explorer's providers know a family or two and are cloned millions of
//! times, so the index stays empty — no allocation, nothing to clone —
//! until the provider knows [`INDEXED_FROM`] families; from then on it holds
//! every prefix, current and superseded. It is derived state: left out of
//! equality and hashing, like the journal.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use baton_core::LinkId;

/// Families from which on the index is kept (below, a scan is cheaper than
/// a hash map's allocation in every clone).
pub(super) const INDEXED_FROM: usize = 32;

/// Every prefix a family was given, and the link it belongs to; empty while
/// the provider knows fewer than [`INDEXED_FROM`] families.
#[derive(Clone, Debug, Default)]
pub(super) struct Prefixes(HashMap<Arc<str>, LinkId>);

impl PartialEq for Prefixes {
    fn eq(&self, _: &Prefixes) -> bool {
        true
    }
}

impl Eq for Prefixes {}

impl Hash for Prefixes {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

impl Prefixes {
    /// Whether the index holds every prefix (else the caller scans).
    pub(super) fn active(&self) -> bool {
        !self.0.is_empty()
    }

    /// The link whose family uses `prefix`, if the index is active and
    /// knows it. Only meaningful when [`active`](Self::active).
    pub(super) fn link(&self, prefix: &str) -> Option<&LinkId> {
        self.0.get(prefix)
    }

    /// Records a new family's prefix, given `known`, every family the
    /// provider now knows (the new one included), `count` of them: builds
    /// the index from them once there are enough.
    pub(super) fn add<'a>(
        &mut self,
        prefix: &Arc<str>,
        link: &LinkId,
        count: usize,
        known: impl Iterator<Item = (&'a LinkId, &'a Arc<str>)>,
    ) {
        if self.active() {
            self.0.insert(Arc::clone(prefix), link.clone());
        } else if count >= INDEXED_FROM {
            self.0 = known
                .map(|(link, prefix)| (Arc::clone(prefix), link.clone()))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baton_core::{ExchangeOutcome, LinkId, RefreshToken, Timestamp};

    use super::INDEXED_FROM;
    use crate::{FakeProvider, ProviderModel};

    fn user(i: usize) -> LinkId {
        LinkId::new("github", format!("user-{i}"))
    }

    /// Past the threshold, with re-links on both sides of it, every token
    /// still finds its family, current or superseded.
    #[test]
    fn an_indexed_provider_finds_every_family() {
        let mut p = FakeProvider::new(ProviderModel::SingleUse, Duration::from_secs(3600));
        let mut first = Vec::new();
        for i in 0..INDEXED_FROM * 3 {
            let set = p.enroll(&user(i), &format!("u{i}."), Timestamp::ZERO);
            first.push(set.refresh_token.unwrap());
            if i % 10 == 0 {
                p.relink(&user(i), Timestamp::ZERO);
            }
        }
        assert!(p.prefixes.active());
        for (i, token) in first.iter().enumerate() {
            assert_eq!(p.link_of(token), Some(&user(i)));
            let outcome = p.exchange(Timestamp::ZERO, token, None);
            assert!(matches!(outcome, ExchangeOutcome::Issued(_)), "{i}");
        }
        let relinked = RefreshToken::new("u10.g1.R0");
        assert_eq!(p.link_of(&relinked), Some(&user(10)));
        assert_eq!(p.link_of(&RefreshToken::new("nobody.R0")), None);
    }

    #[test]
    #[should_panic(expected = "already used by another link")]
    fn an_indexed_provider_still_refuses_a_used_prefix() {
        let mut p = FakeProvider::new(ProviderModel::SingleUse, Duration::from_secs(3600));
        for i in 0..INDEXED_FROM {
            p.enroll(&user(i), &format!("u{i}."), Timestamp::ZERO);
        }
        p.enroll(&user(1000), "u3.", Timestamp::ZERO);
    }

    /// The index is derived: it changes neither equality nor hashing.
    #[test]
    fn the_index_is_not_part_of_equality() {
        let mut p = FakeProvider::new(ProviderModel::SingleUse, Duration::from_secs(3600));
        for i in 0..INDEXED_FROM {
            p.enroll(&user(i), &format!("u{i}."), Timestamp::ZERO);
        }
        let mut q = p.clone();
        q.prefixes = super::Prefixes::default();
        assert_eq!(p, q);
    }
}
