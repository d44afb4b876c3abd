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

use std::collections::BTreeMap;

use crate::vecmap::VecMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    AccessGrant, AccessToken, ExchangeOutcome, LinkId, RefreshToken, Timestamp, TokenSet,
};

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
    /// The token endpoint fails before processing (a 5xx from a proxy). The
    /// token is not consumed; the reply is [`ExchangeOutcome::Transient`].
    Transient,
    /// The provider processes the request normally — rotating the token if
    /// it would — but the reply never arrives: the caller sees
    /// [`ExchangeOutcome::OutcomeUnknown`].
    LostReply,
    /// The provider processes the request (rotating the token) and then
    /// answers with a 5xx: the caller sees [`ExchangeOutcome::Transient`],
    /// word for word the reply of [`ProviderFault::Transient`]. A later
    /// presentation of a token consumed this way is not counted by
    /// [`FakeProvider::unsafe_reuses`]: nobody could have known.
    RotatedThen5xx,
}

/// The reason text of every 5xx reply, the same whether or not the provider
/// processed the request first, so that a caller cannot tell the two apart.
const SERVER_ERROR: &str = "HTTP 503 from the token endpoint";

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
    /// honoured, whose consumption no rotated-then-5xx reply had hidden.
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

/// What the provider remembers about a refresh token it consumed. Fields a
/// model does not use keep a fixed value, so that states differing only in
/// irrelevant history compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Consumption {
    /// When the first presentation was processed; [`Timestamp::ZERO`] for
    /// models without a grace window.
    first_use: Timestamp,
    /// The index of the pair the first use issued, for
    /// [`ProviderModel::GraceIdempotent`] replays only.
    replay: Option<u32>,
    /// Re-presentations honoured so far; [`ProviderModel::CountedReuse`]
    /// only.
    reuses: u32,
    /// The first use was answered with a 5xx, hiding the consumption.
    hidden: bool,
}

/// One link's token family. Token `n` of the family is the text
/// `{prefix}A{n}` / `{prefix}R{n}`; pairs are minted with `n` counting from
/// zero, so which tokens exist follows from `minted` alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Family {
    prefix: Arc<str>,
    /// Pairs minted so far, the enrolment's included.
    minted: u32,
    /// Consumed refresh tokens by index. Any other issued refresh token is
    /// live unless the family is revoked.
    consumed: BTreeMap<u32, Consumption>,
    /// Access tokens not killed, by index, with their expiry.
    access: BTreeMap<u32, Timestamp>,
    revoked: bool,
    unsafe_reuses: u32,
}

impl Family {
    fn access_token(&self, n: u32) -> AccessToken {
        AccessToken::new(format!("{}A{n}", self.prefix))
    }

    fn refresh_token(&self, n: u32) -> RefreshToken {
        RefreshToken::new(format!("{}R{n}", self.prefix))
    }

    fn refresh_issued(&self, model: ProviderModel, n: u32) -> bool {
        n < self.minted && (n == 0 || model != ProviderModel::NonRotating)
    }

    fn refresh_live(&self, model: ProviderModel, n: u32) -> bool {
        !self.revoked && self.refresh_issued(model, n) && !self.consumed.contains_key(&n)
    }

    /// Mints the next pair at `now` and returns its index and the token set
    /// the reply carries.
    fn mint(
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
            },
            refresh_token,
        };
        (n, set)
    }

    fn revoke(&mut self) {
        self.revoked = true;
        // Revoked access tokens are dead whatever their expiry; forgetting
        // them keeps revoked states canonical.
        self.access.clear();
    }
}

/// What the provider decides to do with a presentation, before doing it.
enum Decision {
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
    families: VecMap<LinkId, Family>,
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
            self.families.values().all(|f| &*f.prefix != prefix),
            "token prefix {prefix:?} is already used by another link"
        );
        let mut family = Family {
            prefix: prefix.into(),
            minted: 0,
            consumed: BTreeMap::new(),
            access: BTreeMap::new(),
            revoked: false,
            unsafe_reuses: 0,
        };
        let (n, mut set) = family.mint(self.model, now, self.access_lifetime);
        // Even a non-rotating provider hands out its one refresh token at
        // enrolment.
        set.refresh_token = Some(family.refresh_token(n));
        self.families.insert(link.clone(), family);
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
            Some(ProviderFault::RateLimited { .. } | ProviderFault::Transient)
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
            Some((link, n)) => {
                let family = self
                    .families
                    .get_mut(&link)
                    .expect("find_refresh returns enrolled links");
                let (decision, unsafe_reuse) = decide(model, family, n, now);
                // An unsafe presentation is counted even when the request is
                // then rate limited or fails before processing: the
                // algorithm sent a consumed token all the same.
                if unsafe_reuse {
                    family.unsafe_reuses += 1;
                }
                let result = if processed {
                    apply(model, lifetime, family, n, now, decision, fault)
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
            Some(ProviderFault::Transient | ProviderFault::RotatedThen5xx) => {
                ExchangeOutcome::Transient {
                    reason: SERVER_ERROR.into(),
                }
            }
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
            .is_some_and(|(link, n)| self.families[&link].refresh_live(self.model, n))
    }

    /// The live refresh tokens of `link` (see
    /// [`is_refresh_live`](FakeProvider::is_refresh_live)), newest first, so
    /// that the first is the one a correct store should hold. Empty for a
    /// revoked family or an unknown link.
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
        self.find_access(token).is_some_and(|(link, n)| {
            let family = &self.families[link];
            !family.revoked && family.access.get(&n).is_some_and(|&expires| now < expires)
        })
    }

    /// Whether `link`'s family has been revoked by reuse detection. `false`
    /// for a link never enrolled.
    pub fn family_revoked(&self, link: &LinkId) -> bool {
        self.families.get(link).is_some_and(|f| f.revoked)
    }

    /// The link whose family issued the refresh token `token`, dead or
    /// alive; `None` if the provider never issued it.
    pub fn link_of(&self, token: &RefreshToken) -> Option<&LinkId> {
        let (prefix, n) = split(token.expose_secret(), 'R')?;
        self.families
            .iter()
            .find(|(_, f)| &*f.prefix == prefix && f.refresh_issued(self.model, n))
            .map(|(link, _)| link)
    }

    /// The link whose family issued the access token `token`, dead or
    /// alive; `None` if the provider never issued it.
    pub fn link_of_access(&self, token: &AccessToken) -> Option<&LinkId> {
        self.find_access(token).map(|(link, _)| link)
    }

    /// How many times `link`'s consumed refresh tokens were presented again
    /// without the provider honouring them under a grace window or reuse
    /// count — breaches of the `no_reuse` invariant. Presentations of a
    /// token whose consumption a [`ProviderFault::RotatedThen5xx`] reply hid
    /// are not counted; those that were rate limited or failed before
    /// processing are.
    pub fn unsafe_reuses(&self, link: &LinkId) -> u32 {
        self.families.get(link).map_or(0, |f| f.unsafe_reuses)
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

    fn find_refresh(&self, token: &RefreshToken) -> Option<(LinkId, u32)> {
        let link = self.link_of(token)?;
        let (_, n) = split(token.expose_secret(), 'R')?;
        Some((link.clone(), n))
    }

    fn find_access(&self, token: &AccessToken) -> Option<(&LinkId, u32)> {
        let (prefix, n) = split(token.expose_secret(), 'A')?;
        self.families
            .iter()
            .find(|(_, f)| &*f.prefix == prefix && n < f.minted)
            .map(|(link, _)| (link, n))
    }
}

/// Splits a token text `{prefix}{marker}{n}` into prefix and index. The
/// index is all digits, so the last `marker` is the separator whatever the
/// prefix contains; non-canonical numbers (`R01`) are not tokens we issued.
fn split(text: &str, marker: char) -> Option<(&str, u32)> {
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
fn decide(model: ProviderModel, family: &Family, n: u32, now: Timestamp) -> (Decision, bool) {
    let Some(consumption) = family.consumed.get(&n) else {
        let decision = if family.revoked {
            Decision::Reject
        } else {
            Decision::FirstUse
        };
        return (decision, false);
    };
    let unsafe_unless_hidden = !consumption.hidden;
    if family.revoked {
        return (Decision::Reject, unsafe_unless_hidden);
    }
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
    let unsafe_reuse = match decision {
        Decision::Honour | Decision::Replay(_) => false,
        _ => unsafe_unless_hidden,
    };
    (decision, unsafe_reuse)
}

/// Carries out a processed presentation's decision on `family`.
fn apply(
    model: ProviderModel,
    lifetime: Duration,
    family: &mut Family,
    n: u32,
    now: Timestamp,
    decision: Decision,
    fault: Option<ProviderFault>,
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
                        hidden: fault == Some(ProviderFault::RotatedThen5xx),
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

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const WINDOW: Duration = Duration::from_secs(10);

    fn at(millis: u64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    fn r(text: &str) -> RefreshToken {
        RefreshToken::new(text)
    }

    fn a(text: &str) -> AccessToken {
        AccessToken::new(text)
    }

    fn link() -> LinkId {
        LinkId::new("github", "octocat")
    }

    /// A provider with `link()` enrolled at time zero, prefix "".
    fn enrolled(model: ProviderModel) -> FakeProvider {
        let mut provider = FakeProvider::new(model, HOUR);
        provider.enroll(&link(), "", Timestamp::ZERO);
        provider
    }

    fn issued(access: &str, expires_at: Timestamp, refresh: Option<&str>) -> ExchangeOutcome {
        ExchangeOutcome::Issued(TokenSet {
            access: AccessGrant {
                token: a(access),
                expires_at,
            },
            refresh_token: refresh.map(r),
        })
    }

    fn rejected(reason: &str) -> ExchangeOutcome {
        ExchangeOutcome::Rejected {
            reason: reason.into(),
        }
    }

    fn live(provider: &FakeProvider) -> Vec<String> {
        provider
            .live_refresh_tokens(&link())
            .iter()
            .map(|t| t.expose_secret().to_string())
            .collect()
    }

    fn hash_of(value: &impl Hash) -> u64 {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    fn last_result(provider: &FakeProvider) -> &PresentationResult {
        &provider.presentations().last().unwrap().result
    }

    #[test]
    fn enrolment_issues_the_first_pair_with_the_prefix() {
        let mut provider = FakeProvider::new(ProviderModel::SingleUse, HOUR);
        let set = provider.enroll(&link(), "u0.", at(500));
        assert_eq!(set.access.token.expose_secret(), "u0.A0");
        assert_eq!(set.access.expires_at, at(500 + 3_600_000));
        assert_eq!(set.refresh_token.unwrap().expose_secret(), "u0.R0");
        assert!(provider.is_refresh_live(&r("u0.R0")));
        assert!(provider.is_access_live(&a("u0.A0"), at(500)));
        assert_eq!(provider.rotations(&link()), 0);
        assert_eq!(provider.unsafe_reuses(&link()), 0);
        assert!(!provider.family_revoked(&link()));
        assert!(provider.presentations().is_empty());
        assert_eq!(provider.model(), ProviderModel::SingleUse);
    }

    #[test]
    #[should_panic(expected = "already enrolled")]
    fn enrolling_a_link_twice_panics() {
        let mut provider = enrolled(ProviderModel::SingleUse);
        provider.enroll(&link(), "other.", Timestamp::ZERO);
    }

    #[test]
    #[should_panic(expected = "already used by another link")]
    fn sharing_a_prefix_between_links_panics() {
        let mut provider = enrolled(ProviderModel::SingleUse);
        provider.enroll(&LinkId::new("github", "hubot"), "", Timestamp::ZERO);
    }

    #[test]
    fn single_use_rejects_a_second_presentation_and_keeps_the_new_token() {
        let mut p = enrolled(ProviderModel::SingleUse);
        assert_eq!(
            p.exchange(at(1_000), &r("R0"), None),
            issued("A1", at(1_000 + 3_600_000), Some("R1"))
        );
        assert!(!p.is_refresh_live(&r("R0")));
        assert!(p.is_refresh_live(&r("R1")));
        // Refreshing killed the access token issued with R0, long before it
        // would have expired.
        assert!(!p.is_access_live(&a("A0"), at(1_000)));
        assert!(p.is_access_live(&a("A1"), at(1_000)));
        assert_eq!(p.rotations(&link()), 1);

        assert_eq!(
            p.exchange(at(2_000), &r("R0"), None),
            rejected("bad_refresh_token")
        );
        assert_eq!(
            last_result(&p),
            &PresentationResult::Rejected {
                reason: "bad_refresh_token".into()
            }
        );
        assert!(!p.family_revoked(&link()));
        assert_eq!(live(&p), ["R1"]);
        assert!(p.is_access_live(&a("A1"), at(2_000)));
        assert_eq!(p.unsafe_reuses(&link()), 1);
        assert_eq!(p.rotations(&link()), 1);

        // The survivor rotates on, and kills A1 in turn.
        assert_eq!(
            p.exchange(at(3_000), &r("R1"), None),
            issued("A2", at(3_000 + 3_600_000), Some("R2"))
        );
        assert!(!p.is_access_live(&a("A1"), at(3_000)));
        assert_eq!(live(&p), ["R2"]);
        assert_eq!(p.unsafe_reuses(&link()), 1);
    }

    #[test]
    fn reuse_detection_revokes_the_family_on_a_second_presentation() {
        let mut p = enrolled(ProviderModel::ReuseDetection);
        assert_eq!(
            p.exchange(at(1_000), &r("R0"), None),
            issued("A1", at(1_000 + 3_600_000), Some("R1"))
        );
        // Only single-use providers kill the previous access token.
        assert!(p.is_access_live(&a("A0"), at(1_000)));
        assert_eq!(
            p.exchange(at(2_000), &r("R0"), None),
            rejected("invalid_grant")
        );
        assert_eq!(
            last_result(&p),
            &PresentationResult::RejectedAndRevoked {
                reason: "invalid_grant".into()
            }
        );
        assert!(p.family_revoked(&link()));
        assert!(!p.is_refresh_live(&r("R1")));
        assert!(live(&p).is_empty());
        assert!(!p.is_access_live(&a("A0"), at(2_000)));
        assert!(!p.is_access_live(&a("A1"), at(2_000)));
        assert_eq!(p.unsafe_reuses(&link()), 1);

        // The winner's token is dead too; presenting it is no reuse, since
        // it was never consumed.
        assert_eq!(
            p.exchange(at(3_000), &r("R1"), None),
            rejected("invalid_grant")
        );
        assert_eq!(
            last_result(&p),
            &PresentationResult::Rejected {
                reason: "invalid_grant".into()
            }
        );
        assert_eq!(p.unsafe_reuses(&link()), 1);
        // Presenting the consumed one again is another breach.
        assert_eq!(
            p.exchange(at(4_000), &r("R0"), None),
            rejected("invalid_grant")
        );
        assert_eq!(p.unsafe_reuses(&link()), 2);
        assert_eq!(p.rotations(&link()), 1);
    }

    #[test]
    fn grace_idempotent_replays_the_same_pair_inside_the_window() {
        let mut p = enrolled(ProviderModel::GraceIdempotent { window: WINDOW });
        let first = issued("A1", at(1_000 + 3_600_000), Some("R1"));
        assert_eq!(p.exchange(at(1_000), &r("R0"), None), first);
        // The last millisecond of the window: the very same pair, expiry
        // included, and nothing new minted.
        assert_eq!(p.exchange(at(10_999), &r("R0"), None), first);
        assert!(matches!(last_result(&p), PresentationResult::Replayed(_)));
        assert_eq!(p.rotations(&link()), 1);
        assert_eq!(p.unsafe_reuses(&link()), 0);
        assert_eq!(live(&p), ["R1"]);
        assert!(!p.is_refresh_live(&r("R0")));

        // The window is over at first use + window.
        assert_eq!(
            p.exchange(at(11_000), &r("R0"), None),
            rejected("invalid_grant")
        );
        assert!(p.family_revoked(&link()));
        assert!(live(&p).is_empty());
        assert!(!p.is_access_live(&a("A1"), at(11_000)));
        assert_eq!(p.unsafe_reuses(&link()), 1);
    }

    #[test]
    fn grace_idempotent_window_starts_at_each_tokens_own_first_use() {
        let mut p = enrolled(ProviderModel::GraceIdempotent { window: WINDOW });
        p.exchange(at(0), &r("R0"), None);
        p.exchange(at(8_000), &r("R1"), None);
        // R1's window runs to 18 000 although R0's closed at 10 000.
        assert_eq!(
            p.exchange(at(17_000), &r("R1"), None),
            issued("A2", at(8_000 + 3_600_000), Some("R2"))
        );
        assert_eq!(p.unsafe_reuses(&link()), 0);
        assert_eq!(
            p.exchange(at(17_000), &r("R0"), None),
            rejected("invalid_grant")
        );
        assert_eq!(p.unsafe_reuses(&link()), 1);
        assert!(p.family_revoked(&link()));
    }

    #[test]
    fn grace_fork_issues_a_different_pair_each_time_and_keeps_them_all() {
        let mut p = enrolled(ProviderModel::GraceFork { window: WINDOW });
        assert_eq!(
            p.exchange(at(1_000), &r("R0"), None),
            issued("A1", at(1_000 + 3_600_000), Some("R1"))
        );
        assert_eq!(
            p.exchange(at(5_000), &r("R0"), None),
            issued("A2", at(5_000 + 3_600_000), Some("R2"))
        );
        assert!(matches!(
            last_result(&p),
            PresentationResult::HonouredAgain(_)
        ));
        assert_eq!(
            p.exchange(at(10_999), &r("R0"), None),
            issued("A3", at(10_999 + 3_600_000), Some("R3"))
        );
        assert_eq!(live(&p), ["R3", "R2", "R1"]);
        assert!(p.is_access_live(&a("A0"), at(10_999)));
        assert!(p.is_access_live(&a("A1"), at(10_999)));
        assert_eq!(p.rotations(&link()), 3);
        assert_eq!(p.unsafe_reuses(&link()), 0);

        assert_eq!(
            p.exchange(at(11_000), &r("R0"), None),
            rejected("invalid_grant")
        );
        assert!(p.family_revoked(&link()));
        assert!(live(&p).is_empty());
        assert!(!p.is_access_live(&a("A3"), at(11_000)));
        assert_eq!(p.unsafe_reuses(&link()), 1);
    }

    #[test]
    fn grace_previous_valid_accepts_the_used_token_inside_the_window() {
        let mut p = enrolled(ProviderModel::GracePreviousValid { window: WINDOW });
        p.exchange(at(1_000), &r("R0"), None);
        // Accepted, but not live: it works only as a reuse.
        assert!(!p.is_refresh_live(&r("R0")));
        assert_eq!(
            p.exchange(at(2_000), &r("R0"), None),
            issued("A2", at(2_000 + 3_600_000), Some("R2"))
        );
        assert_eq!(live(&p), ["R2", "R1"]);
        assert_eq!(p.unsafe_reuses(&link()), 0);

        assert_eq!(
            p.exchange(at(11_000), &r("R0"), None),
            rejected("invalid_grant")
        );
        assert_eq!(
            last_result(&p),
            &PresentationResult::RejectedAndRevoked {
                reason: "invalid_grant".into()
            }
        );
        assert!(live(&p).is_empty());
        assert!(!p.is_access_live(&a("A2"), at(11_000)));
        assert_eq!(p.unsafe_reuses(&link()), 1);
    }

    #[test]
    fn counted_reuse_honours_max_reuse_extra_presentations_then_detaches() {
        let mut p = enrolled(ProviderModel::CountedReuse { max_reuse: 2 });
        assert_eq!(
            p.exchange(at(1_000), &r("R0"), None),
            issued("A1", at(1_000 + 3_600_000), Some("R1"))
        );
        // No window: an hour later still counts as a reuse, not a breach.
        assert_eq!(
            p.exchange(at(3_601_000), &r("R0"), None),
            issued("A2", at(7_201_000), Some("R2"))
        );
        assert_eq!(
            p.exchange(at(3_602_000), &r("R0"), None),
            issued("A3", at(7_202_000), Some("R3"))
        );
        assert_eq!(p.unsafe_reuses(&link()), 0);
        assert_eq!(live(&p), ["R3", "R2", "R1"]);
        // Each token has its own count.
        assert_eq!(
            p.exchange(at(3_603_000), &r("R1"), None),
            issued("A4", at(7_203_000), Some("R4"))
        );

        assert_eq!(
            p.exchange(at(3_604_000), &r("R0"), None),
            rejected("invalid_grant")
        );
        assert!(p.family_revoked(&link()));
        assert!(live(&p).is_empty());
        assert_eq!(p.unsafe_reuses(&link()), 1);
        assert_eq!(p.rotations(&link()), 4);
    }

    #[test]
    fn counted_reuse_with_no_reuse_allowed_is_reuse_detection() {
        let mut p = enrolled(ProviderModel::CountedReuse { max_reuse: 0 });
        p.exchange(at(1_000), &r("R0"), None);
        assert_eq!(
            p.exchange(at(1_001), &r("R0"), None),
            rejected("invalid_grant")
        );
        assert!(p.family_revoked(&link()));
        assert_eq!(p.unsafe_reuses(&link()), 1);
    }

    #[test]
    fn rotating_without_revocation_keeps_every_token_working() {
        let mut p = enrolled(ProviderModel::RotatingNoRevocation);
        assert_eq!(
            p.exchange(at(1_000), &r("R0"), None),
            issued("A1", at(3_601_000), Some("R1"))
        );
        assert_eq!(
            p.exchange(at(2_000), &r("R0"), None),
            issued("A2", at(3_602_000), Some("R2"))
        );
        assert_eq!(
            p.exchange(at(3_000), &r("R1"), None),
            issued("A3", at(3_603_000), Some("R3"))
        );
        assert!(matches!(last_result(&p), PresentationResult::Issued(_)));
        assert_eq!(live(&p), ["R3", "R2", "R1", "R0"]);
        assert!(p.is_access_live(&a("A0"), at(3_000)));
        assert!(!p.family_revoked(&link()));
        assert_eq!(p.unsafe_reuses(&link()), 0);
        assert_eq!(p.rotations(&link()), 3);
    }

    #[test]
    fn non_rotating_keeps_the_refresh_token_and_issues_new_access_tokens() {
        let mut p = enrolled(ProviderModel::NonRotating);
        assert_eq!(
            p.exchange(at(1_000), &r("R0"), None),
            issued("A1", at(3_601_000), None)
        );
        assert_eq!(
            p.exchange(at(2_000), &r("R0"), None),
            issued("A2", at(3_602_000), None)
        );
        assert_eq!(live(&p), ["R0"]);
        assert!(p.is_access_live(&a("A0"), at(2_000)));
        assert!(p.is_access_live(&a("A2"), at(2_000)));
        assert_eq!(p.link_of(&r("R1")), None);
        assert_eq!(p.link_of_access(&a("A2")), Some(&link()));
        assert_eq!(
            p.exchange(at(3_000), &r("R1"), None),
            rejected("invalid_grant")
        );
        assert_eq!(p.unsafe_reuses(&link()), 0);
        assert_eq!(p.rotations(&link()), 2);
    }

    #[test]
    fn access_tokens_expire_at_their_expiry() {
        let p = enrolled(ProviderModel::NonRotating);
        assert!(p.is_access_live(&a("A0"), at(3_599_999)));
        assert!(!p.is_access_live(&a("A0"), at(3_600_000)));
        assert!(!p.is_access_live(&a("A1"), at(0)));
        assert!(!p.is_access_live(&a("nonsense"), at(0)));
    }

    #[test]
    fn rate_limited_and_transient_presentations_consume_nothing() {
        let mut p = enrolled(ProviderModel::SingleUse);
        let untouched = p.clone();
        let retry_after = Some(Duration::from_secs(5));
        assert_eq!(
            p.exchange(
                at(1_000),
                &r("R0"),
                Some(ProviderFault::RateLimited { retry_after })
            ),
            ExchangeOutcome::RateLimited { retry_after }
        );
        assert_eq!(
            p.exchange(at(2_000), &r("R0"), Some(ProviderFault::Transient)),
            ExchangeOutcome::Transient {
                reason: SERVER_ERROR.into()
            }
        );
        assert_eq!(last_result(&p), &PresentationResult::NotProcessed);
        assert_eq!(p, untouched);
        assert!(p.is_refresh_live(&r("R0")));
        assert!(p.is_access_live(&a("A0"), at(2_000)));
        assert_eq!(p.rotations(&link()), 0);
        assert_eq!(p.presentations().len(), 2);
        // The token still works afterwards.
        assert_eq!(
            p.exchange(at(3_000), &r("R0"), None),
            issued("A1", at(3_603_000), Some("R1"))
        );
    }

    #[test]
    fn a_lost_reply_rotates_and_a_retry_is_an_unsafe_reuse() {
        let mut p = enrolled(ProviderModel::SingleUse);
        assert_eq!(
            p.exchange(at(1_000), &r("R0"), Some(ProviderFault::LostReply)),
            ExchangeOutcome::OutcomeUnknown
        );
        assert_eq!(
            last_result(&p),
            &PresentationResult::Issued(TokenSet {
                access: AccessGrant {
                    token: a("A1"),
                    expires_at: at(3_601_000)
                },
                refresh_token: Some(r("R1")),
            })
        );
        assert_eq!(live(&p), ["R1"]);
        assert!(!p.is_access_live(&a("A0"), at(1_000)));
        assert_eq!(p.rotations(&link()), 1);
        assert_eq!(
            p.exchange(at(2_000), &r("R0"), None),
            rejected("bad_refresh_token")
        );
        assert_eq!(p.unsafe_reuses(&link()), 1);
    }

    #[test]
    fn rotated_then_5xx_looks_transient_and_exempts_the_retry() {
        let mut p = enrolled(ProviderModel::ReuseDetection);
        let transient = p.exchange(at(1_000), &r("R0"), Some(ProviderFault::RotatedThen5xx));
        // Word for word what a 5xx before processing says.
        assert_eq!(
            transient,
            ExchangeOutcome::Transient {
                reason: SERVER_ERROR.into()
            }
        );
        assert!(matches!(last_result(&p), PresentationResult::Issued(_)));
        assert_eq!(live(&p), ["R1"]);
        assert_eq!(p.rotations(&link()), 1);

        // The retry still revokes the family — the provider cannot know —
        // but it is no breach of `no_reuse`: nobody could have known either.
        assert_eq!(
            p.exchange(at(2_000), &r("R0"), None),
            rejected("invalid_grant")
        );
        assert!(p.family_revoked(&link()));
        assert_eq!(p.unsafe_reuses(&link()), 0);
        assert!(!p.presentations().last().unwrap().unsafe_reuse);
    }

    #[test]
    fn rotated_then_5xx_on_a_rejected_presentation_hides_nothing() {
        let mut p = enrolled(ProviderModel::SingleUse);
        p.exchange(at(1_000), &r("R0"), None);
        assert_eq!(
            p.exchange(at(2_000), &r("R0"), Some(ProviderFault::RotatedThen5xx)),
            ExchangeOutcome::Transient {
                reason: SERVER_ERROR.into()
            }
        );
        assert_eq!(p.unsafe_reuses(&link()), 1);
        p.exchange(at(3_000), &r("R0"), None);
        assert_eq!(p.unsafe_reuses(&link()), 2);
    }

    #[test]
    fn a_consumed_token_sent_into_a_rate_limit_still_counts_but_revokes_nothing() {
        let mut p = enrolled(ProviderModel::ReuseDetection);
        p.exchange(at(1_000), &r("R0"), None);
        assert_eq!(
            p.exchange(
                at(2_000),
                &r("R0"),
                Some(ProviderFault::RateLimited { retry_after: None })
            ),
            ExchangeOutcome::RateLimited { retry_after: None }
        );
        assert_eq!(p.unsafe_reuses(&link()), 1);
        assert!(p.presentations().last().unwrap().unsafe_reuse);
        assert!(!p.family_revoked(&link()));
        assert_eq!(live(&p), ["R1"]);
    }

    #[test]
    fn grace_honours_do_not_count_as_unsafe_even_when_rate_limited() {
        let mut p = enrolled(ProviderModel::GraceFork { window: WINDOW });
        p.exchange(at(1_000), &r("R0"), None);
        p.exchange(at(2_000), &r("R0"), Some(ProviderFault::Transient));
        p.exchange(at(3_000), &r("R0"), None);
        assert_eq!(p.unsafe_reuses(&link()), 0);
        assert_eq!(p.rotations(&link()), 2);
    }

    #[test]
    fn unknown_tokens_are_rejected_and_touch_no_family() {
        let mut p = enrolled(ProviderModel::ReuseDetection);
        let before = p.clone();
        for text in ["R1", "R01", "R", "x", "u1.R0", "A0", "R-1", "R99999999999"] {
            assert_eq!(
                p.exchange(at(1_000), &r(text), None),
                rejected("invalid_grant"),
                "{text}"
            );
            let presentation = p.presentations().last().unwrap();
            assert_eq!(presentation.link, None, "{text}");
            assert!(!presentation.unsafe_reuse, "{text}");
            assert_eq!(p.link_of(&r(text)), None, "{text}");
        }
        assert_eq!(p, before);
        assert_eq!(p.presentations().len(), 8);
        assert_eq!(
            p.exchange(at(1_000), &r("R7"), Some(ProviderFault::Transient)),
            ExchangeOutcome::Transient {
                reason: SERVER_ERROR.into()
            }
        );
        assert_eq!(
            p.exchange(at(1_000), &r("R7"), Some(ProviderFault::LostReply)),
            ExchangeOutcome::OutcomeUnknown
        );

        // GitHub speaks its own dialect for every refused token.
        let mut github = enrolled(ProviderModel::SingleUse);
        assert_eq!(
            github.exchange(at(1_000), &r("R5"), None),
            rejected("bad_refresh_token")
        );
    }

    #[test]
    fn links_are_isolated() {
        let alice = LinkId::new("github", "alice");
        let bob = LinkId::new("github", "bob");
        let mut p = FakeProvider::new(ProviderModel::ReuseDetection, HOUR);
        let a0 = p.enroll(&alice, "u0.", Timestamp::ZERO);
        let b0 = p.enroll(&bob, "u1.", Timestamp::ZERO);
        assert_eq!(a0.refresh_token.unwrap().expose_secret(), "u0.R0");
        assert_eq!(b0.refresh_token.unwrap().expose_secret(), "u1.R0");
        assert_eq!(p.link_of(&r("u0.R0")), Some(&alice));
        assert_eq!(p.link_of(&r("u1.R0")), Some(&bob));
        assert_eq!(p.link_of_access(&a("u1.A0")), Some(&bob));
        assert_eq!(p.link_of(&r("R0")), None);

        assert_eq!(
            p.exchange(at(1_000), &r("u0.R0"), None),
            issued("u0.A1", at(3_601_000), Some("u0.R1"))
        );
        assert_eq!(p.link_of(&r("u0.R1")), Some(&alice));
        assert_eq!(p.link_of(&r("u1.R1")), None);
        assert_eq!(
            p.presentations().last().unwrap().link.as_ref(),
            Some(&alice)
        );
        // Bob's counter is his own.
        assert_eq!(
            p.exchange(at(1_000), &r("u1.R0"), None),
            issued("u1.A1", at(3_601_000), Some("u1.R1"))
        );
        // Alice's reuse revokes Alice's family only.
        p.exchange(at(2_000), &r("u0.R0"), None);
        assert!(p.family_revoked(&alice));
        assert!(!p.family_revoked(&bob));
        assert_eq!(p.unsafe_reuses(&alice), 1);
        assert_eq!(p.unsafe_reuses(&bob), 0);
        assert!(p.live_refresh_tokens(&alice).is_empty());
        assert_eq!(p.live_refresh_tokens(&bob), [r("u1.R1")]);
        assert!(p.is_access_live(&a("u1.A1"), at(2_000)));
        assert!(!p.is_access_live(&a("u0.A1"), at(2_000)));
        assert_eq!(p.rotations(&alice), 1);
        assert_eq!(p.rotations(&bob), 1);
        let stranger = LinkId::new("google", "alice");
        assert_eq!(p.rotations(&stranger), 0);
        assert!(!p.family_revoked(&stranger));
        assert!(p.live_refresh_tokens(&stranger).is_empty());
    }

    #[test]
    fn the_journal_records_every_presentation() {
        let mut p = enrolled(ProviderModel::SingleUse);
        p.exchange(at(1_000), &r("R0"), Some(ProviderFault::LostReply));
        p.exchange(at(2_000), &r("R0"), None);
        let journal = p.presentations();
        assert_eq!(journal.len(), 2);
        assert_eq!(journal[0].at, at(1_000));
        assert_eq!(journal[0].link, Some(link()));
        assert_eq!(journal[0].token, r("R0"));
        assert_eq!(journal[0].fault, Some(ProviderFault::LostReply));
        assert_eq!(journal[0].reply, ExchangeOutcome::OutcomeUnknown);
        assert!(!journal[0].unsafe_reuse);
        assert_eq!(journal[1].fault, None);
        assert_eq!(journal[1].reply, rejected("bad_refresh_token"));
        assert!(journal[1].unsafe_reuse);
    }

    #[test]
    fn equal_states_with_different_journals_are_equal_and_hash_equal() {
        let mut quiet = enrolled(ProviderModel::ReuseDetection);
        let mut noisy = quiet.clone();
        noisy.exchange(
            at(1_000),
            &r("R0"),
            Some(ProviderFault::RateLimited { retry_after: None }),
        );
        noisy.exchange(at(1_000), &r("R9"), None);
        assert_eq!(noisy.presentations().len(), 2);
        assert!(quiet.presentations().is_empty());
        assert_eq!(noisy, quiet);
        assert_eq!(hash_of(&noisy), hash_of(&quiet));

        // The same rotation reached by different histories.
        quiet.exchange(at(2_000), &r("R0"), None);
        noisy.exchange(at(2_000), &r("R0"), Some(ProviderFault::LostReply));
        assert_eq!(noisy, quiet);
        assert_eq!(hash_of(&noisy), hash_of(&quiet));
    }

    #[test]
    fn states_that_behave_differently_are_different() {
        let base = enrolled(ProviderModel::ReuseDetection);
        let mut rotated = base.clone();
        rotated.exchange(at(1_000), &r("R0"), None);
        assert_ne!(rotated, base);

        // A hidden consumption changes how a later reuse is counted.
        let mut hidden = base.clone();
        hidden.exchange(at(1_000), &r("R0"), Some(ProviderFault::RotatedThen5xx));
        assert_ne!(hidden, rotated);
        assert_ne!(hash_of(&hidden), hash_of(&rotated));

        // An unsafe reuse that changed nothing else still counts.
        let mut counted = rotated.clone();
        counted.exchange(
            at(2_000),
            &r("R0"),
            Some(ProviderFault::RateLimited { retry_after: None }),
        );
        assert_ne!(counted, rotated);

        // Grace windows remember when they opened.
        let window = ProviderModel::GraceFork { window: WINDOW };
        let mut opened = enrolled(window);
        let mut same = enrolled(window);
        opened.exchange(at(1_000), &r("R0"), None);
        same.exchange(at(1_000), &r("R0"), None);
        assert_eq!(opened, same);
        let mut later = enrolled(window);
        later.exchange(at(1_001), &r("R0"), None);
        assert_ne!(opened, later);

        // Once revoked, when the dead access tokens would have expired no
        // longer matters.
        let mut revoked_early = base.clone();
        revoked_early.exchange(at(1_000), &r("R0"), None);
        revoked_early.exchange(at(3_000), &r("R0"), None);
        let mut revoked_late = base.clone();
        revoked_late.exchange(at(2_000), &r("R0"), None);
        revoked_late.exchange(at(3_000), &r("R0"), None);
        assert_eq!(revoked_early, revoked_late);
        assert_eq!(hash_of(&revoked_early), hash_of(&revoked_late));

        // Models are part of the state.
        assert_ne!(enrolled(ProviderModel::SingleUse), base);
    }

    #[test]
    fn token_texts_split_on_the_last_marker() {
        assert_eq!(split("R0", 'R'), Some(("", 0)));
        assert_eq!(split("uR.R12", 'R'), Some(("uR.", 12)));
        assert_eq!(split("R01", 'R'), None);
        assert_eq!(split("R", 'R'), None);
        assert_eq!(split("R+1", 'R'), None);
        assert_eq!(split("A3", 'R'), None);
        assert_eq!(split("R4294967296", 'R'), None);
    }

    #[test]
    fn model_facts() {
        assert_eq!(
            ProviderModel::SingleUse.rejection_code(),
            "bad_refresh_token"
        );
        assert_eq!(ProviderModel::NonRotating.rejection_code(), "invalid_grant");
        assert_eq!(
            ProviderModel::GracePreviousValid { window: WINDOW }.grace_window(),
            Some(WINDOW)
        );
        assert_eq!(
            ProviderModel::CountedReuse { max_reuse: 3 }.grace_window(),
            None
        );
    }
}
