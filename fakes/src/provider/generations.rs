//! What the user does at the provider, outside any refresh: authorise the
//! application again (a re-link through the OAuth callback starts a new
//! token family, a new *generation*) and revoke it (every family of the
//! link dies).
//!
//! A re-link does not kill the old family: real providers keep an earlier
//! grant's refresh token working until it is revoked or expires. The old
//! family is *superseded*: its tokens still exchange, but they are no longer
//! the link's, so [`FakeProvider::live_refresh_tokens`] lists the current
//! generation only and a store that ends up holding an older generation's
//! token has lost the user's newest grant.

use baton_core::{AccessToken, LinkId, RefreshToken, Timestamp, TokenSet};

use super::family::{split, Family};
use super::FakeProvider;

impl FakeProvider {
    /// The user authorises the application again for `link` (the OAuth
    /// callback): a new family starts, generation one more than the
    /// current one, with token texts `{prefix}g{generation}.A0` /
    /// `{prefix}g{generation}.R0` (where `prefix` is the enrolment's), and
    /// its first token set is returned. The previous family is superseded
    /// but stays live (see the [module documentation](self)).
    ///
    /// # Panics
    ///
    /// If `link` was never enrolled.
    pub fn relink(&mut self, link: &LinkId, now: Timestamp) -> TokenSet {
        let current = self
            .families
            .get(link)
            .unwrap_or_else(|| panic!("{link} was never enrolled"));
        let generation = current.generation + 1;
        let base = base_prefix(current);
        let prefix = format!("{base}g{generation}.");
        let mut family = Family::new(prefix.into(), generation);
        let (n, mut set) = family.mint(self.model, now, self.access_lifetime);
        // As at enrolment, even a non-rotating provider hands out a refresh
        // token with a new grant.
        set.refresh_token = Some(family.refresh_token(n));
        let prefix = std::sync::Arc::clone(&family.prefix);
        let old = self
            .families
            .insert(link.clone(), family)
            .expect("checked above");
        self.superseded.push((link.clone(), old));
        self.index_prefix(&prefix, link);
        set
    }

    /// The user revokes the application at the provider: every family of
    /// `link`, current and superseded, dies — its refresh and access tokens
    /// stop working. Nothing else changes: a later re-link starts afresh.
    pub fn revoke(&mut self, link: &LinkId) {
        if let Some(family) = self.families.get_mut(link) {
            family.revoke();
        }
        for (_, family) in self.superseded.iter_mut().filter(|(l, _)| l == link) {
            family.revoke();
        }
    }

    /// The generation of `link`'s current family: 0 until the first
    /// re-link. `None` for a link never enrolled.
    pub fn generation(&self, link: &LinkId) -> Option<u32> {
        self.families.get(link).map(|f| f.generation)
    }

    /// The generation of the family that issued refresh token `token`.
    pub fn generation_of_refresh(&self, token: &RefreshToken) -> Option<u32> {
        let (prefix, n) = split(token.expose_secret(), 'R')?;
        self.all_families()
            .find(|(_, f)| &*f.prefix == prefix && f.refresh_issued(self.model, n))
            .map(|(_, f)| f.generation)
    }

    /// The generation of the family that issued access token `token`.
    pub fn generation_of_access(&self, token: &AccessToken) -> Option<u32> {
        self.find_access(token).map(|(_, f, _)| f.generation)
    }
}

/// The enrolment's prefix of a family: its own, less the `g{n}.` a re-link
/// added.
fn base_prefix(family: &Family) -> &str {
    if family.generation == 0 {
        return &family.prefix;
    }
    let suffix = format!("g{}.", family.generation);
    family
        .prefix
        .strip_suffix(suffix.as_str())
        .expect("re-linked families end in their generation")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ProviderModel;

    fn link() -> LinkId {
        LinkId::new("github", "octocat")
    }

    #[test]
    fn a_relink_supersedes_the_family_without_killing_it() {
        let mut p = FakeProvider::new(ProviderModel::SingleUse, Duration::from_secs(60));
        let first = p.enroll(&link(), "u0.", Timestamp::ZERO);
        let r0 = first.refresh_token.unwrap();
        let second = p.relink(&link(), Timestamp::ZERO);
        let g1 = second.refresh_token.clone().unwrap();
        assert_eq!(g1.expose_secret(), "u0.g1.R0");
        assert_eq!(second.access.token.expose_secret(), "u0.g1.A0");
        assert_eq!(p.generation(&link()), Some(1));
        assert_eq!(p.generation_of_refresh(&r0), Some(0));
        assert_eq!(p.generation_of_refresh(&g1), Some(1));
        // The old family still exchanges, but only the new one is the link's.
        assert!(p.is_refresh_live(&r0));
        assert_eq!(p.live_refresh_tokens(&link()), vec![g1.clone()]);
        let third = p.relink(&link(), Timestamp::ZERO);
        assert_eq!(third.refresh_token.unwrap().expose_secret(), "u0.g2.R0");
        let old = p.exchange(Timestamp::ZERO, &r0, None);
        assert!(matches!(old, baton_core::ExchangeOutcome::Issued(_)));
        assert_eq!(p.link_of(&g1), Some(&link()));
    }

    #[test]
    fn a_revocation_kills_every_family_of_the_link() {
        let mut p = FakeProvider::new(ProviderModel::SingleUse, Duration::from_secs(60));
        let first = p.enroll(&link(), "", Timestamp::ZERO);
        let second = p.relink(&link(), Timestamp::ZERO);
        p.revoke(&link());
        assert!(p.family_revoked(&link()));
        assert!(!p.is_refresh_live(&first.refresh_token.unwrap()));
        assert!(!p.is_access_live(&second.access.token, Timestamp::ZERO));
        assert!(p.live_refresh_tokens(&link()).is_empty());
        let third = p.relink(&link(), Timestamp::ZERO);
        assert_eq!(
            p.live_refresh_tokens(&link()),
            vec![third.refresh_token.unwrap()]
        );
    }
}
