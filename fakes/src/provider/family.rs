//! One link's token family at the provider, and what each model decides
//! to do with a presentation: the part of [`FakeProvider`](super::FakeProvider)
//! that changes with every exchange.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{AccessGrant, AccessToken, RefreshToken, Timestamp, TokenSet};

use super::{PresentationResult, ProviderModel};

/// What the provider remembers about a refresh token it consumed. Fields a
/// model does not use keep a fixed value, so that states differing only in
/// irrelevant history compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Consumption {
    /// When the first presentation was processed; [`Timestamp::ZERO`] for
    /// models without a grace window.
    pub(super) first_use: Timestamp,
    /// The index of the pair the first use issued, for
    /// [`ProviderModel::GraceIdempotent`] replays only.
    pub(super) replay: Option<u32>,
    /// Re-presentations honoured so far; [`ProviderModel::CountedReuse`]
    /// only.
    pub(super) reuses: u32,
}

/// One link's token family. Token `n` of the family is the text
/// `{prefix}A{n}` / `{prefix}R{n}`; pairs are minted with `n` counting from
/// zero, so which tokens exist follows from `minted` alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Family {
    pub(super) prefix: Arc<str>,
    /// Pairs minted so far, the enrolment's included.
    pub(super) minted: u32,
    /// Consumed refresh tokens by index. Any other issued refresh token is
    /// live unless the family is revoked.
    pub(super) consumed: BTreeMap<u32, Consumption>,
    /// Access tokens not killed, by index, with their expiry.
    pub(super) access: BTreeMap<u32, Timestamp>,
    pub(super) revoked: bool,
    pub(super) unsafe_reuses: u32,
    /// Which grant of its link this family is: 0 at enrolment, one more per
    /// re-link.
    pub(super) generation: u32,
}

impl Family {
    /// A family with nothing minted yet.
    pub(super) fn new(prefix: Arc<str>, generation: u32) -> Family {
        Family {
            prefix,
            minted: 0,
            consumed: BTreeMap::new(),
            access: BTreeMap::new(),
            revoked: false,
            unsafe_reuses: 0,
            generation,
        }
    }

    pub(super) fn access_token(&self, n: u32) -> AccessToken {
        AccessToken::new(format!("{}A{n}", self.prefix))
    }

    pub(super) fn refresh_token(&self, n: u32) -> RefreshToken {
        RefreshToken::new(format!("{}R{n}", self.prefix))
    }

    pub(super) fn refresh_issued(&self, model: ProviderModel, n: u32) -> bool {
        n < self.minted && (n == 0 || model != ProviderModel::NonRotating)
    }

    pub(super) fn refresh_live(&self, model: ProviderModel, n: u32) -> bool {
        !self.revoked && self.refresh_issued(model, n) && !self.consumed.contains_key(&n)
    }

    /// Mints the next pair at `now` and returns its index and the token set
    /// the reply carries.
    pub(super) fn mint(
        &mut self,
        model: ProviderModel,
        now: Timestamp,
        lifetime: Duration,
    ) -> (u32, TokenSet) {
        let n = self.minted;
        self.minted += 1;
        let expires_at = now + lifetime;
        self.access.insert(n, expires_at);
        let refresh_token = (model != ProviderModel::NonRotating).then(|| self.refresh_token(n));
        let set = TokenSet {
            access: AccessGrant {
                token: self.access_token(n),
                expires_at,
                lifetime: Some(lifetime),
            },
            refresh_token,
        };
        (n, set)
    }

    pub(super) fn revoke(&mut self) {
        self.revoked = true;
        // Revoked access tokens are dead whatever their expiry; forgetting
        // them keeps revoked states canonical.
        self.access.clear();
    }
}

/// What the provider decides to do with a presentation, before doing it.
pub(super) enum Decision {
    /// A live token (or one the model never consumes): mint a new pair.
    FirstUse,
    /// A consumed token inside its window or count: mint a new pair.
    Honour,
    /// A consumed token inside a [`ProviderModel::GraceIdempotent`] window:
    /// return pair `n` again.
    Replay(u32),
    Reject,
    RejectAndRevoke,
}

/// Splits a token text `{prefix}{marker}{n}` into prefix and index. The
/// index is all digits, so the last `marker` is the separator whatever the
/// prefix contains; non-canonical numbers (`R01`) are not tokens we issued.
pub(super) fn split(text: &str, marker: char) -> Option<(&str, u32)> {
    let at = text.rfind(marker)?;
    let digits = &text[at + marker.len_utf8()..];
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return None;
    }
    Some((&text[..at], digits.parse().ok()?))
}

/// What `model` does with a presentation of token `n` of `family` at `now`,
/// and whether that presentation breaks `no_reuse`.
pub(super) fn decide(
    model: ProviderModel,
    family: &Family,
    n: u32,
    now: Timestamp,
) -> (Decision, bool) {
    let Some(consumption) = family.consumed.get(&n) else {
        let decision = if family.revoked {
            Decision::Reject
        } else {
            Decision::FirstUse
        };
        return (decision, false);
    };
    let (decision, unsafe_reuse) = judge(model, consumption, now);
    // A revoked family (by the user, or for an earlier reuse, counted
    // then) rejects everything; the presentation is a reuse only if it
    // would have been one in a live family.
    if family.revoked {
        return (Decision::Reject, unsafe_reuse);
    }
    (decision, unsafe_reuse)
}

/// What `model` does with a re-presentation of a consumed token, in a
/// family not revoked, and whether it breaks `no_reuse`.
fn judge(model: ProviderModel, consumption: &Consumption, now: Timestamp) -> (Decision, bool) {
    let in_window = model
        .grace_window()
        .is_some_and(|window| now < consumption.first_use + window);
    let decision = match model {
        ProviderModel::SingleUse => Decision::Reject,
        ProviderModel::GraceIdempotent { .. } if in_window => Decision::Replay(
            consumption
                .replay
                .expect("idempotent consumptions record their pair"),
        ),
        ProviderModel::GraceFork { .. } | ProviderModel::GracePreviousValid { .. } if in_window => {
            Decision::Honour
        }
        ProviderModel::CountedReuse { max_reuse } if consumption.reuses < max_reuse => {
            Decision::Honour
        }
        ProviderModel::RotatingNoRevocation | ProviderModel::NonRotating => {
            unreachable!("models that never consume record no consumption")
        }
        _ => Decision::RejectAndRevoke,
    };
    let unsafe_reuse = !matches!(decision, Decision::Honour | Decision::Replay(_));
    (decision, unsafe_reuse)
}

/// Carries out a processed presentation's decision on `family`.
pub(super) fn apply(
    model: ProviderModel,
    lifetime: Duration,
    family: &mut Family,
    n: u32,
    now: Timestamp,
    decision: Decision,
) -> PresentationResult {
    let reason = || model.rejection_code().to_string();
    match decision {
        Decision::FirstUse => {
            let (issued, set) = family.mint(model, now, lifetime);
            if model.consumes() {
                family.consumed.insert(
                    n,
                    Consumption {
                        first_use: if model.grace_window().is_some() {
                            now
                        } else {
                            Timestamp::ZERO
                        },
                        replay: matches!(model, ProviderModel::GraceIdempotent { .. })
                            .then_some(issued),
                        reuses: 0,
                    },
                );
            }
            if model == ProviderModel::SingleUse {
                // GitHub kills the access token issued with the refresh
                // token just used.
                family.access.remove(&n);
            }
            PresentationResult::Issued(set)
        }
        Decision::Honour => {
            let consumption = family
                .consumed
                .get_mut(&n)
                .expect("only consumed tokens are honoured again");
            if matches!(model, ProviderModel::CountedReuse { .. }) {
                consumption.reuses += 1;
            }
            let (_, set) = family.mint(model, now, lifetime);
            PresentationResult::HonouredAgain(set)
        }
        Decision::Replay(pair) => {
            let first_use = family.consumed[&n].first_use;
            PresentationResult::Replayed(TokenSet {
                access: AccessGrant {
                    token: family.access_token(pair),
                    expires_at: first_use + lifetime,
                    lifetime: Some(lifetime),
                },
                refresh_token: Some(family.refresh_token(pair)),
            })
        }
        Decision::Reject => PresentationResult::Rejected { reason: reason() },
        Decision::RejectAndRevoke => {
            family.revoke();
            PresentationResult::RejectedAndRevoked { reason: reason() }
        }
    }
}
