//! The stored link row and the one write every store must implement:
//! compare-and-swap of some fields, guarded by others.
//!
//! The semantics live here, as plain functions on [`StoredLink`], so the
//! in-memory store, the Postgres store and the simulator cannot disagree on
//! what a write means; the store contract tests check the Postgres SQL
//! against these functions.

use crate::ids::OwnerId;
use crate::io::TokenSet;
use crate::secret::{AccessToken, RefreshToken};
use crate::time::Timestamp;
use std::time::Duration;

/// An access token with the instant it stops working.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccessGrant {
    /// The token callers present to the provider's API.
    pub token: AccessToken,
    /// When the provider stops accepting it.
    pub expires_at: Timestamp,
    /// How long the token lives from when it was asked for, where the
    /// writer knew: a provider adapter sets the provider's `expires_in`,
    /// and baton's machine replaces it, before storing a refreshed token,
    /// with what it measured (its expiry less the instant the request was
    /// first sent — an upper bound). It decides until when the token is
    /// served: a token that lives no longer than the expiry margin is
    /// served for a fraction of its life instead of never (see
    /// [`SHORT_LIVED_SERVED_FRACTION`](crate::SHORT_LIVED_SERVED_FRACTION)). Stored with the token, so every replica
    /// serves it until the same instant. `None` (rows written before baton
    /// stored it, an enrolment that did not say): the configured margin.
    pub lifetime: Option<Duration>,
}

impl AccessGrant {
    /// A grant whose lifetime nobody stated (see [`AccessGrant::lifetime`]).
    pub fn new(token: AccessToken, expires_at: Timestamp) -> AccessGrant {
        AccessGrant {
            token,
            expires_at,
            lifetime: None,
        }
    }

    /// This grant, stating that it lived `lifetime` when issued.
    pub fn with_lifetime(self, lifetime: Duration) -> AccessGrant {
        AccessGrant {
            lifetime: Some(lifetime),
            ..self
        }
    }
}

/// Why the stored refresh token is not to be presented again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CachedFailure {
    /// The provider rejected the stored refresh token (for example
    /// `invalid_grant` or GitHub's `bad_refresh_token`).
    Rejected {
        /// The provider's error code and description. Never token text.
        reason: String,
    },
    /// The stored refresh token was presented and nobody knows what the
    /// provider did with it (a reply that never came, or a lease that expired
    /// while its holder's exchange was in flight). Presenting it again could
    /// revoke the whole token family, so nobody does; whoever later learns
    /// the outcome settles it.
    OutcomeUnknown {
        /// The lease the token was presented under (or may have been),
        /// when the writer knew it: its holder, should it come back knowing
        /// it never presented under that lease, may then clear the record
        /// — and only then, since another record over the same token would
        /// name another lease. `None` in rows written before baton named
        /// it, which nobody clears.
        lease: Option<LeaseMark>,
    },
}

impl CachedFailure {
    /// An unknown outcome judged under `lease`.
    pub fn outcome_unknown_under(lease: &Lease) -> CachedFailure {
        CachedFailure::OutcomeUnknown {
            lease: Some(lease.mark()),
        }
    }
}

/// What names one lease without the token it guards: its owner (one
/// machine incarnation) and its expiry. Among the leases over one refresh
/// token — the token a record of an unknown outcome sits beside — it tells
/// them apart exactly as the compare-and-swap on the whole lease does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseMark {
    /// The machine incarnation that took the lease.
    pub owner: OwnerId,
    /// When the lease expired (or expires).
    pub expires_at: Timestamp,
}

/// The cross-replica refresh lease, stored on the row.
///
/// It names its owner and the refresh token it was taken to present, so a
/// lease over a token the row no longer holds is recognisably stale.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The machine incarnation that took it.
    pub owner: OwnerId,
    /// The refresh token its owner may present.
    pub presenting: RefreshToken,
    /// When other replicas stop waiting for the owner. Only liveness depends
    /// on this bound; safety never does.
    pub expires_at: Timestamp,
}

impl Lease {
    /// This lease's name, for a record of an unknown outcome judged under it.
    pub fn mark(&self) -> LeaseMark {
        LeaseMark {
            owner: self.owner.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// One link's row, as a store holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StoredLink {
    /// The current access token, if any.
    pub access: Option<AccessGrant>,
    /// The current refresh token; `None` where none is stored (or an older
    /// algorithm emptied it).
    pub refresh_token: Option<RefreshToken>,
    /// A cached failure. It describes the refresh token stored beside it:
    /// every write that replaces the refresh token also sets this field.
    pub failure: Option<CachedFailure>,
    /// The refresh lease, if one is held (or was, and expired).
    pub lease: Option<Lease>,
}

/// A condition on one field of a row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expect<T> {
    /// Whatever the field holds.
    Any,
    /// The field must hold exactly this.
    Exactly(T),
}

impl<T: PartialEq> Expect<T> {
    /// Whether `actual` satisfies this condition.
    pub fn admits(&self, actual: &T) -> bool {
        match self {
            Expect::Any => true,
            Expect::Exactly(expected) => expected == actual,
        }
    }
}

/// What a write does to one field of a row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Change<T> {
    /// Leave the field as it is.
    Keep,
    /// Replace the field.
    Set(T),
}

impl<T: Clone> Change<T> {
    fn apply_to(&self, field: &mut T) {
        if let Change::Set(value) = self {
            *field = value.clone();
        }
    }
}

/// The conditions under which a [`Write`] applies. The access token is
/// never a condition: it is derived from the refresh token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Guard {
    /// Condition on the refresh token.
    pub refresh_token: Expect<Option<RefreshToken>>,
    /// Condition on the cached failure.
    pub failure: Expect<Option<CachedFailure>>,
    /// Condition on the lease.
    pub lease: Expect<Option<Lease>>,
}

impl Guard {
    /// A guard that admits any row: an unconditional write. baton never
    /// issues one; the historical algorithms do.
    pub const ANY: Guard = Guard {
        refresh_token: Expect::Any,
        failure: Expect::Any,
        lease: Expect::Any,
    };

    /// A guard on the refresh token alone.
    pub fn refresh_token(token: Option<RefreshToken>) -> Guard {
        Guard {
            refresh_token: Expect::Exactly(token),
            ..Guard::ANY
        }
    }
}

/// The field changes of a [`Write`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Update {
    /// Change to the access token.
    pub access: Change<Option<AccessGrant>>,
    /// Change to the refresh token.
    pub refresh_token: Change<Option<RefreshToken>>,
    /// Change to the cached failure.
    pub failure: Change<Option<CachedFailure>>,
    /// Change to the lease.
    pub lease: Change<Option<Lease>>,
}

impl Update {
    /// An update that changes nothing; set the fields you need on top.
    pub const NOTHING: Update = Update {
        access: Change::Keep,
        refresh_token: Change::Keep,
        failure: Change::Keep,
        lease: Change::Keep,
    };
}

/// Why a write is made. Stores ignore it; timelines and logs print it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteIntent {
    /// Take the refresh lease.
    TakeLease,
    /// Give the refresh lease back.
    ReleaseLease,
    /// Persist a freshly issued token set.
    StoreTokens,
    /// Record that the stored refresh token is not to be presented again.
    CacheFailure,
    /// Remove a cached failure that turned out to be unfounded.
    ClearFailure,
}

/// A compare-and-swap on one link's row: if the row satisfies `guard`,
/// apply `update`, atomically.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Write {
    /// Why the write is made.
    pub intent: WriteIntent,
    /// When it applies.
    pub guard: Guard,
    /// What it changes.
    pub update: Update,
}

/// What a compare-and-swap did.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CasOutcome {
    /// The guard held; the update was applied. Carries the row after it.
    Won(StoredLink),
    /// The guard did not hold; nothing changed. Carries the row as it is
    /// (`None` if the link has no row).
    Lost(Option<StoredLink>),
}

impl StoredLink {
    /// Whether this row satisfies `guard`.
    pub fn satisfies(&self, guard: &Guard) -> bool {
        guard.refresh_token.admits(&self.refresh_token)
            && guard.failure.admits(&self.failure)
            && guard.lease.admits(&self.lease)
    }

    /// Applies `update` unconditionally.
    pub fn apply(&mut self, update: &Update) {
        update.access.apply_to(&mut self.access);
        update.refresh_token.apply_to(&mut self.refresh_token);
        update.failure.apply_to(&mut self.failure);
        update.lease.apply_to(&mut self.lease);
    }

    /// The row an enrolment writes (the reference semantics of
    /// [`LinkStore::enroll`](crate::driver::LinkStore::enroll)): the fresh
    /// pair from the authorization-code exchange, no cached failure (it
    /// described the old refresh token) and **no lease** (a lease names the
    /// token it guards; the old one's holder cannot write over the new pair
    /// anyway, and replicas may refresh the new pair at once). A pair
    /// without a refresh token (a provider that issues none) stores none.
    pub fn enrolled(pair: TokenSet) -> StoredLink {
        StoredLink {
            access: Some(pair.access),
            refresh_token: pair.refresh_token,
            failure: None,
            lease: None,
        }
    }

    /// The reference semantics of a store's compare-and-swap on a row that
    /// may not exist. Every store must behave exactly like this.
    pub fn compare_and_swap(row: &mut Option<StoredLink>, write: &Write) -> CasOutcome {
        match row {
            Some(current) if current.satisfies(&write.guard) => {
                current.apply(&write.update);
                CasOutcome::Won(current.clone())
            }
            other => CasOutcome::Lost(other.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(refresh: &str) -> StoredLink {
        StoredLink {
            access: None,
            refresh_token: Some(RefreshToken::new(refresh)),
            failure: None,
            lease: None,
        }
    }

    fn cache_failure_if(refresh: &str) -> Write {
        Write {
            intent: WriteIntent::CacheFailure,
            guard: Guard::refresh_token(Some(RefreshToken::new(refresh))),
            update: Update {
                failure: Change::Set(Some(CachedFailure::OutcomeUnknown { lease: None })),
                ..Update::NOTHING
            },
        }
    }

    #[test]
    fn compare_and_swap_applies_only_when_the_guard_holds() {
        let mut stored = Some(row("R1"));
        assert_eq!(
            StoredLink::compare_and_swap(&mut stored, &cache_failure_if("R0")),
            CasOutcome::Lost(Some(row("R1")))
        );
        let won = StoredLink::compare_and_swap(&mut stored, &cache_failure_if("R1"));
        let mut expected = row("R1");
        expected.failure = Some(CachedFailure::OutcomeUnknown { lease: None });
        assert_eq!(won, CasOutcome::Won(expected.clone()));
        assert_eq!(stored, Some(expected));
    }

    #[test]
    fn compare_and_swap_on_a_missing_row_loses() {
        let mut stored = None;
        let any = Write {
            guard: Guard::ANY,
            ..cache_failure_if("R0")
        };
        assert_eq!(
            StoredLink::compare_and_swap(&mut stored, &any),
            CasOutcome::Lost(None)
        );
    }

    #[test]
    fn lease_guard_compares_the_whole_lease() {
        let lease = Lease {
            owner: OwnerId::new("a"),
            presenting: RefreshToken::new("R0"),
            expires_at: Timestamp::from_millis(10),
        };
        let mut held = row("R0");
        held.lease = Some(lease.clone());
        let other = Lease {
            owner: OwnerId::new("b"),
            ..lease.clone()
        };
        let guard = Guard {
            lease: Expect::Exactly(Some(other)),
            ..Guard::ANY
        };
        assert!(!held.satisfies(&guard));
        let guard = Guard {
            lease: Expect::Exactly(Some(lease)),
            ..Guard::ANY
        };
        assert!(held.satisfies(&guard));
    }
}
