//! Deterministic fake OAuth2 providers: one per row of the provider table in
//! the design brief (single-use, reuse detection, the three kinds of grace
//! window, counted reuse, rotation without revocation, no rotation), plus the
//! faults a token endpoint can inflict on one exchange.
//!
//! A [`FakeProvider`] is part of the state the exhaustive explorer hashes and
//! compares, so it holds only what decides its future behaviour, in canonical
//! form: token texts are derived from a per-link counter instead of being
//! stored, and only consumed refresh tokens and unkilled access tokens are
//! recorded. The journal of presentations, kept for timelines and tests, is
//! deliberately invisible to equality and hashing (see [`FakeProvider`]).

mod family;
mod generations;
mod prefixes;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::vecmap::VecMap;
use family::{apply, decide, split, Family};
use prefixes::Prefixes;

use baton_core::{AccessToken, ExchangeOutcome, LinkId, RefreshToken, Timestamp, TokenSet};

/// What a provider does with refresh tokens, above all with a second
/// presentation of one it already consumed.
///
/// In every windowed model a presentation is inside the window when
/// `now < first_use + window`, where `first_use` is when the provider
/// processed the token's first presentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderModel {
    /// GitHub Apps: a used refresh token is rejected (`bad_refresh_token`)
    /// and the token it was exchanged for stays valid. Using a refresh token
    /// also kills the access token issued with it.
    SingleUse,
    /// Auth0 and Okta outside their windows, Salesforce, django-oauth-toolkit
    /// with reuse protection: a used token presented again is rejected and
    /// the whole family (every refresh and access token of the link) is
    /// revoked.
    ReuseDetection,
    /// django-oauth-toolkit's grace period, Supabase: within `window` of the
    /// first use the same already-issued pair comes back; after it, reuse
    /// detection.
    GraceIdempotent {
        /// How long after the first use a replay is honoured.
        window: Duration,
    },
    /// Auth0's rotation overlap period: within `window` each presentation
    /// gets a different new pair and every one stays live (the family
    /// forks); after it, reuse detection. Caps on live tokens per user
    /// (Salesforce revokes the oldest past five) are not modelled.
    GraceFork {
        /// How long after the first use a re-presentation is honoured.
        window: Duration,
    },
    /// Okta, AWS Cognito, Atlassian: within `window` the used token is
    /// accepted again and a new pair issued; after it, reuse detection
    /// revokes the family. In this fake it behaves exactly like
    /// [`GraceFork`](ProviderModel::GraceFork): the real providers differ in
    /// how long earlier children live, which none of the invariants observe.
    GracePreviousValid {
        /// How long after the first use the used token stays valid.
        window: Duration,
    },
    /// Keycloak's "Refresh Token Max Reuse": each refresh token is accepted
    /// up to `max_reuse` more times after its first use (each time issuing a
    /// new pair); one more presentation detaches the session, revoking the
    /// family.
    CountedReuse {
        /// Extra presentations honoured per token.
        max_reuse: u32,
    },
    /// Microsoft Entra ID: every exchange issues a new refresh token and the
    /// old one keeps working.
    RotatingNoRevocation,
    /// Google: the refresh token never changes (replies carry
    /// `refresh_token: None`); each exchange issues a new access token.
    NonRotating,
}

impl ProviderModel {
    /// The error code this provider answers a refused refresh token with:
    /// GitHub's `bad_refresh_token` for [`SingleUse`](ProviderModel::SingleUse),
    /// the standard `invalid_grant` for every other model.
    pub fn rejection_code(self) -> &'static str {
        match self {
            ProviderModel::SingleUse => "bad_refresh_token",
            _ => "invalid_grant",
        }
    }

    /// The grace window, for the models that grant one.
    pub fn grace_window(self) -> Option<Duration> {
        match self {
            ProviderModel::GraceIdempotent { window }
            | ProviderModel::GraceFork { window }
            | ProviderModel::GracePreviousValid { window } => Some(window),
            _ => None,
        }
    }

    /// Whether an exchange uses up the presented refresh token. Providers
    /// that never consume one cannot see a reuse.
    fn consumes(self) -> bool {
        !matches!(
            self,
            ProviderModel::RotatingNoRevocation | ProviderModel::NonRotating
        )
    }
}

/// A fault the world injects into one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderFault {
    /// The provider refuses to process the request (HTTP 429, or GitHub's
    /// 403 with `retry-after`). The token is not consumed; the reply is
    /// [`ExchangeOutcome::RateLimited`].
    RateLimited {
        /// The `Retry-After` the reply carries.
        retry_after: Option<Duration>,
    },
    /// The request never reaches the provider (connection refused, a
    /// connect or TLS failure), or the token endpoint refuses it with an
    /// error about the client rather than the token. The token is not
    /// consumed; the reply is [`ExchangeOutcome::Transient`].
    Transient,
    /// The provider processes the request normally — rotating the token if
    /// it would — but the reply never arrives: the caller sees
    /// [`ExchangeOutcome::OutcomeUnknown`].
    LostReply,
    /// A gateway in front of the provider forwards the request, the
    /// provider processes it (rotating the token if it would), and the
    /// gateway replaces the reply with `status` (502 or 504): the caller
    /// sees [`ExchangeOutcome::ServerError`].
    GatewayAfterForwarding {
        /// The status the gateway answers with.
        status: u16,
    },
    /// A gateway answers 503 without forwarding the request: the token is
    /// not consumed, but the caller sees the same kind of reply as after
    /// [`ProviderFault::GatewayAfterForwarding`], an
    /// [`ExchangeOutcome::ServerError`].
    GatewayWithoutForwarding,
}

/// The reason text of every gateway's reply: it never says whether the
/// request was forwarded, so that a caller cannot tell.
const GATEWAY_REPLY: &str = "the gateway in front of the token endpoint failed";

/// The reason text of a request that never reached the provider.
const NOT_SENT: &str = "connection refused: the request was not sent";

/// What the provider did with one presentation (before any fault on the
/// reply).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PresentationResult {
    /// A token that was live (or that the model never consumes) was
    /// exchanged for newly minted tokens.
    Issued(TokenSet),
    /// An already-consumed token was accepted again, inside its grace window
    /// or reuse count, and a new pair minted.
    HonouredAgain(TokenSet),
    /// An already-consumed token was presented inside its grace window and
    /// the pair issued at its first use came back
    /// ([`ProviderModel::GraceIdempotent`]).
    Replayed(TokenSet),
    /// The token was refused; nothing else changed.
    Rejected {
        /// The provider's error code.
        reason: String,
    },
    /// The token was refused and, as reuse detection, the link's whole
    /// family was revoked.
    RejectedAndRevoked {
        /// The provider's error code.
        reason: String,
    },
    /// The request was never processed (rate limited, or a 5xx before
    /// processing).
    NotProcessed,
}

/// One presentation of a refresh token, as the provider's journal keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Presentation {
    /// When the provider received it.
    pub at: Timestamp,
    /// Whose family the token belongs to; `None` for a token the provider
    /// never issued.
    pub link: Option<LinkId>,
    /// The token presented.
    pub token: RefreshToken,
    /// The fault injected into this exchange, if any.
    pub fault: Option<ProviderFault>,
    /// What the provider did.
    pub result: PresentationResult,
    /// What the caller saw.
    pub reply: ExchangeOutcome,
    /// Whether this presentation broke `no_reuse`: a consumed token, not
    /// honoured under a grace window or reuse count. Nothing excuses it: a
    /// gateway's 5xx hid the consumption from the client, not from the
    /// provider.
    pub unsafe_reuse: bool,
}

/// The journal of presentations.
///
/// It equals every other journal and hashes to nothing: the explorer
/// deduplicates states by equality and hash, and two worlds whose providers
/// will behave identically from here on must be one state even if they got
/// there by different presentations. Everything that decides future
/// behaviour lives in the provider's other fields.
#[derive(Clone, Debug, Default)]
struct Journal(Vec<Presentation>);

impl PartialEq for Journal {
    fn eq(&self, _: &Journal) -> bool {
        true
    }
}

impl Eq for Journal {}

impl Hash for Journal {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

/// A fake OAuth2 provider with one token family per enrolled link.
///
/// Deterministic: token texts come from per-link counters, and time is
/// whatever the caller passes in. Equality and hashing cover exactly the
/// state that decides future behaviour (the model, live and consumed
/// tokens, grace-window starts, reuse counts, revocations, unsafe-reuse
/// counts); the journal behind [`FakeProvider::presentations`] is ignored by
/// both, so that the explorer merges states that differ only in history.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FakeProvider {
    model: ProviderModel,
    access_lifetime: Duration,
    /// Each link's current family: the newest grant.
    families: VecMap<LinkId, Family>,
    /// Families a re-link superseded, oldest first: still live unless
    /// revoked (a real provider keeps an old grant's refresh token working),
    /// but no longer the link's (see [`FakeProvider::relink`]).
    superseded: Vec<(LinkId, Family)>,
    /// Prefix to link, once there are many families (see `prefixes.rs`).
    prefixes: Prefixes,
    journal: Journal,
}

impl FakeProvider {
    /// A provider behaving as `model` whose access tokens live for
    /// `access_lifetime`. It knows no link yet.
    pub fn new(model: ProviderModel, access_lifetime: Duration) -> Self {
        FakeProvider {
            model,
            access_lifetime,
            families: VecMap::new(),
            superseded: Vec::new(),
            prefixes: Prefixes::default(),
            journal: Journal::default(),
        }
    }

    /// Starts a family for `link` (the user authorised the application) and
    /// returns its first token set: `{prefix}A0` expiring at
    /// `now + access_lifetime`, and `{prefix}R0`. Later pairs count on:
    /// `{prefix}A1` / `{prefix}R1`, and so on.
    ///
    /// # Panics
    ///
    /// If `link` is already enrolled, or another link uses the same
    /// `prefix`: distinct prefixes are what keep token texts unique across
    /// links, and a fake that mixed up families would hide exactly the
    /// link-isolation bugs it exists to expose.
    pub fn enroll(&mut self, link: &LinkId, prefix: &str, now: Timestamp) -> TokenSet {
        assert!(
            !self.families.contains_key(link),
            "{link} is already enrolled"
        );
        assert!(
            self.family_with_prefix(prefix).is_none(),
            "token prefix {prefix:?} is already used by another link"
        );
        let mut family = Family::new(prefix.into(), 0);
        let (n, mut set) = family.mint(self.model, now, self.access_lifetime);
        // Even a non-rotating provider hands out its one refresh token at
        // enrolment.
        set.refresh_token = Some(family.refresh_token(n));
        let prefix = Arc::clone(&family.prefix);
        self.families.insert(link.clone(), family);
        self.index_prefix(&prefix, link);
        set
    }

    /// One presentation of `presented` at `now`, with `fault` injected into
    /// this exchange. Returns the reply the caller sees. A token the provider
    /// never issued is rejected with the model's
    /// [`rejection_code`](ProviderModel::rejection_code).
    pub fn exchange(
        &mut self,
        now: Timestamp,
        presented: &RefreshToken,
        fault: Option<ProviderFault>,
    ) -> ExchangeOutcome {
        let model = self.model;
        let lifetime = self.access_lifetime;
        let processed = !matches!(
            fault,
            Some(
                ProviderFault::RateLimited { .. }
                    | ProviderFault::Transient
                    | ProviderFault::GatewayWithoutForwarding
            )
        );
        let found = self.find_refresh(presented);
        let (link, result, unsafe_reuse) = match found {
            None => {
                let result = if processed {
                    PresentationResult::Rejected {
                        reason: model.rejection_code().into(),
                    }
                } else {
                    PresentationResult::NotProcessed
                };
                (None, result, false)
            }
            Some((link, prefix, n)) => {
                let family = self.family_mut(&prefix);
                let (decision, unsafe_reuse) = decide(model, family, n, now);
                // An unsafe presentation is counted even when the request is
                // then rate limited or fails before processing: the
                // algorithm sent a consumed token all the same.
                if unsafe_reuse {
                    family.unsafe_reuses += 1;
                }
                let result = if processed {
                    apply(model, lifetime, family, n, now, decision)
                } else {
                    PresentationResult::NotProcessed
                };
                (Some(link), result, unsafe_reuse)
            }
        };
        let reply = match fault {
            Some(ProviderFault::RateLimited { retry_after }) => {
                ExchangeOutcome::RateLimited { retry_after }
            }
            Some(ProviderFault::Transient) => ExchangeOutcome::Transient {
                reason: NOT_SENT.into(),
            },
            Some(ProviderFault::GatewayAfterForwarding { status }) => {
                ExchangeOutcome::ServerError {
                    status,
                    reason: GATEWAY_REPLY.into(),
                }
            }
            Some(ProviderFault::GatewayWithoutForwarding) => ExchangeOutcome::ServerError {
                status: 503,
                reason: GATEWAY_REPLY.into(),
            },
            Some(ProviderFault::LostReply) => ExchangeOutcome::OutcomeUnknown,
            None => match &result {
                PresentationResult::Issued(set)
                | PresentationResult::HonouredAgain(set)
                | PresentationResult::Replayed(set) => ExchangeOutcome::Issued(set.clone()),
                PresentationResult::Rejected { reason }
                | PresentationResult::RejectedAndRevoked { reason } => ExchangeOutcome::Rejected {
                    reason: reason.clone(),
                },
                PresentationResult::NotProcessed => {
                    unreachable!("without a fault every presentation is processed")
                }
            },
        };
        self.journal.0.push(Presentation {
            at: now,
            link,
            token: presented.clone(),
            fault,
            result,
            reply: reply.clone(),
            unsafe_reuse,
        });
        reply
    }

    /// The provider's model.
    pub fn model(&self) -> ProviderModel {
        self.model
    }

    /// Whether the provider would take `token` as a first use: issued,
    /// never consumed, its family not revoked. A consumed token still inside
    /// a grace window is not live: it works, but only as a reuse.
    pub fn is_refresh_live(&self, token: &RefreshToken) -> bool {
        self.find_refresh(token)
            .is_some_and(|(_, prefix, n)| self.family(&prefix).refresh_live(self.model, n))
    }

    /// The live refresh tokens of `link`'s current family (see
    /// [`is_refresh_live`](FakeProvider::is_refresh_live)), newest first, so
    /// that the first is the one a correct store should hold. Empty for a
    /// revoked family or an unknown link. A family superseded by a re-link
    /// may still hold live tokens, but they are not the link's any more:
    /// they are not listed.
    pub fn live_refresh_tokens(&self, link: &LinkId) -> Vec<RefreshToken> {
        let Some(family) = self.families.get(link) else {
            return Vec::new();
        };
        (0..family.minted)
            .rev()
            .filter(|&n| family.refresh_live(self.model, n))
            .map(|n| family.refresh_token(n))
            .collect()
    }

    /// Whether the provider's API would accept `token` at `now`: issued, not
    /// killed by a refresh (single-use providers) or a revocation, and
    /// `now` before its expiry.
    pub fn is_access_live(&self, token: &AccessToken, now: Timestamp) -> bool {
        self.find_access(token).is_some_and(|(_, family, n)| {
            !family.revoked && family.access.get(&n).is_some_and(|&expires| now < expires)
        })
    }

    /// Whether `link`'s current family has been revoked (by reuse detection,
    /// or by the user). `false` for a link never enrolled.
    pub fn family_revoked(&self, link: &LinkId) -> bool {
        self.families.get(link).is_some_and(|f| f.revoked)
    }

    /// The link whose family issued the refresh token `token`, dead or
    /// alive; `None` if the provider never issued it.
    pub fn link_of(&self, token: &RefreshToken) -> Option<&LinkId> {
        let (prefix, n) = split(token.expose_secret(), 'R')?;
        self.family_with_prefix(prefix)
            .filter(|(_, f)| f.refresh_issued(self.model, n))
            .map(|(link, _)| link)
    }

    /// The link whose family issued the access token `token`, dead or
    /// alive; `None` if the provider never issued it.
    pub fn link_of_access(&self, token: &AccessToken) -> Option<&LinkId> {
        self.find_access(token).map(|(link, _, _)| link)
    }

    /// How many times `link`'s consumed refresh tokens were presented again
    /// without the provider honouring them under a grace window or reuse
    /// count — breaches of the `no_reuse` invariant. Presentations that were
    /// rate limited or never reached the provider count too: the algorithm
    /// sent a consumed token all the same. Families a re-link superseded
    /// count as well: a reuse of an old grant's token is a reuse.
    pub fn unsafe_reuses(&self, link: &LinkId) -> u32 {
        self.all_families()
            .filter(|(l, _)| *l == link)
            .map(|(_, f)| f.unsafe_reuses)
            .sum()
    }

    /// How many exchanges minted new tokens for `link` (whether or not the
    /// reply arrived). A grace replay of an already-issued pair mints
    /// nothing and is not counted.
    pub fn rotations(&self, link: &LinkId) -> u32 {
        self.families.get(link).map_or(0, |f| f.minted - 1)
    }

    /// Every presentation so far, in order.
    pub fn presentations(&self) -> &[Presentation] {
        &self.journal.0
    }

    /// Every family, current ones first, then the superseded ones.
    fn all_families(&self) -> impl Iterator<Item = (&LinkId, &Family)> {
        self.families
            .iter()
            .chain(self.superseded.iter().map(|(l, f)| (l, f)))
    }

    /// The family that issued refresh token `token`: its link, its prefix
    /// (unique across all families) and the token's index in it.
    fn find_refresh(&self, token: &RefreshToken) -> Option<(LinkId, Arc<str>, u32)> {
        let (prefix, n) = split(token.expose_secret(), 'R')?;
        self.family_with_prefix(prefix)
            .filter(|(_, f)| f.refresh_issued(self.model, n))
            .map(|(link, f)| (link.clone(), f.prefix.clone(), n))
    }

    fn find_access(&self, token: &AccessToken) -> Option<(&LinkId, &Family, u32)> {
        let (prefix, n) = split(token.expose_secret(), 'A')?;
        self.family_with_prefix(prefix)
            .filter(|(_, f)| n < f.minted)
            .map(|(link, f)| (link, f, n))
    }

    /// The family using `prefix` (prefixes are unique), and its link.
    fn family_with_prefix(&self, prefix: &str) -> Option<(&LinkId, &Family)> {
        if !self.prefixes.active() {
            return self.all_families().find(|(_, f)| &*f.prefix == prefix);
        }
        // The index knows every prefix: the link's current family, or one
        // a re-link superseded (few).
        let link = self.prefixes.link(prefix)?;
        self.families
            .get(link)
            .filter(|f| &*f.prefix == prefix)
            .map(|f| (link, f))
            .or_else(|| {
                self.superseded
                    .iter()
                    .find(|(l, f)| l == link && &*f.prefix == prefix)
                    .map(|(l, f)| (l, f))
            })
    }

    fn family(&self, prefix: &str) -> &Family {
        self.family_with_prefix(prefix)
            .map(|(_, f)| f)
            .expect("prefixes come from existing families")
    }

    fn family_mut(&mut self, prefix: &str) -> &mut Family {
        let link = self
            .family_with_prefix(prefix)
            .map(|(link, _)| link.clone())
            .expect("prefixes come from existing families");
        if self
            .families
            .get(&link)
            .is_some_and(|f| &*f.prefix == prefix)
        {
            return self.families.get_mut(&link).expect("just found");
        }
        self.superseded
            .iter_mut()
            .map(|(_, f)| f)
            .find(|f| &*f.prefix == prefix)
            .expect("just found")
    }

    /// Keeps the prefix index in step with a family just added for `link`.
    fn index_prefix(&mut self, prefix: &Arc<str>, link: &LinkId) {
        let count = self.families.len() + self.superseded.len();
        let known = self
            .families
            .iter()
            .chain(self.superseded.iter().map(|(l, f)| (l, f)))
            .map(|(l, f)| (l, &f.prefix));
        self.prefixes.add(prefix, link, count, known);
    }
}

#[cfg(test)]
mod tests;
