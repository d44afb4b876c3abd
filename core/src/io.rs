//! The machine's vocabulary: [`Input`]s a driver feeds in, [`Effect`]s it
//! carries out. Every effect that expects a result carries an [`EffectId`];
//! the driver hands that id back with the result.

use std::time::Duration;

use crate::error::RefreshError;
use crate::ids::{CallerId, EffectId, LinkId};
use crate::row::{AccessGrant, StoredLink, Write};
use crate::secret::{AccessToken, RefreshToken};
use crate::time::Timestamp;

/// What the provider issued for a refresh token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenSet {
    /// The new access token and its expiry (the driver turns the provider's
    /// `expires_in` into an instant).
    pub access: AccessGrant,
    /// The new refresh token; `None` when the provider did not send one
    /// (non-rotating providers), in which case the presented one stays.
    pub refresh_token: Option<RefreshToken>,
}

/// How an exchange of a refresh token ended, as the driver saw it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExchangeOutcome {
    /// The provider issued new tokens.
    Issued(TokenSet),
    /// The provider refused the refresh token (`invalid_grant`,
    /// `bad_refresh_token`, ...). The refresh token is dead.
    Rejected {
        /// The provider's error code and description; never token text.
        reason: String,
    },
    /// The provider asked us to slow down. The token was not consumed.
    RateLimited {
        /// The provider's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The provider certainly did not consume the token: the request was
    /// never sent (connection refused, DNS, TLS or connect failure), or the
    /// token endpoint answered with an error of its own that is not about
    /// the token (`invalid_client`, a misconfigured scope).
    Transient {
        /// What went wrong, for humans; never token text.
        reason: String,
    },
    /// The request was sent and a server error (HTTP 5xx) came back — from
    /// the provider, or from a gateway in front of it. That is no proof the
    /// token was not consumed: a load balancer answers 502 or 504 after
    /// forwarding the request, often after the provider rotated, or while
    /// the request still waits in the provider's queue. The machine treats
    /// it as [`OutcomeUnknown`](ExchangeOutcome::OutcomeUnknown) unless the
    /// configuration explicitly chose to retry server errors
    /// ([`ServerErrorAfterSend`](crate::ServerErrorAfterSend)).
    ServerError {
        /// The HTTP status (500–599).
        status: u16,
        /// What went wrong, for humans; never token text.
        reason: String,
    },
    /// The request was sent and no usable reply came (a timeout or a reset
    /// after sending, a success whose body could not be read). The provider
    /// may or may not have rotated the token.
    OutcomeUnknown,
}

/// How validating a freshly issued access token ended (an API call made
/// with it, for applications that configure one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValidationOutcome {
    /// The API accepted the token.
    Valid,
    /// The API refused the token.
    Invalid {
        /// Why, for humans.
        reason: String,
    },
    /// The call failed without an answer about the token (5xx, rate limit,
    /// a cancelled request).
    Inconclusive {
        /// Why, for humans.
        reason: String,
    },
}

/// A store operation failed, and a write may or may not have been applied
/// (a dropped connection, a failed commit).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreFailure {
    /// What went wrong, for humans; never token text.
    pub reason: String,
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// So a callback can `?` the failure of an enrolment into its own error.
impl std::error::Error for StoreFailure {}

/// Everything that can happen to the machine. Each is handed to
/// [`Machine::handle_input`](crate::Machine::handle_input) together with the
/// time it happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// A caller wants a live access token for a link.
    TokenRequested {
        /// Who is asking; answered by exactly one [`Effect::Answer`] unless
        /// it goes away first.
        caller: CallerId,
        /// Which link.
        link: LinkId,
    },
    /// A caller stopped waiting (its request was cancelled). The refresh it
    /// was waiting for, if any, goes on for the others and for the store.
    CallerGone {
        /// The caller that went away.
        caller: CallerId,
    },
    /// The result of [`Effect::ReadLink`].
    LinkRead {
        /// The effect's id.
        id: EffectId,
        /// The row, or `None` if the link has none.
        row: Option<StoredLink>,
    },
    /// A [`Effect::CompareAndSwap`] applied its update.
    CompareAndSwapWon {
        /// The effect's id.
        id: EffectId,
        /// The row after the write.
        row: StoredLink,
    },
    /// A [`Effect::CompareAndSwap`]'s guard did not hold; nothing changed.
    CompareAndSwapLost {
        /// The effect's id.
        id: EffectId,
        /// The row as it is now, or `None` if the link has none.
        row: Option<StoredLink>,
    },
    /// A store operation ([`Effect::ReadLink`] or [`Effect::CompareAndSwap`])
    /// failed; a write may or may not have been applied.
    StoreFailed {
        /// The effect's id.
        id: EffectId,
        /// What went wrong.
        failure: StoreFailure,
    },
    /// The result of [`Effect::Exchange`].
    ExchangeFinished {
        /// The effect's id.
        id: EffectId,
        /// What the provider (or the network) did.
        outcome: ExchangeOutcome,
    },
    /// The result of [`Effect::Validate`].
    ValidationFinished {
        /// The effect's id.
        id: EffectId,
        /// What the API said.
        outcome: ValidationOutcome,
    },
    /// The time returned by
    /// [`Machine::poll_timeout`](crate::Machine::poll_timeout) has come.
    TimerExpired,
}

impl Input {
    /// The effect this input answers, if it is a result.
    pub fn effect_id(&self) -> Option<EffectId> {
        match self {
            Input::LinkRead { id, .. }
            | Input::CompareAndSwapWon { id, .. }
            | Input::CompareAndSwapLost { id, .. }
            | Input::StoreFailed { id, .. }
            | Input::ExchangeFinished { id, .. }
            | Input::ValidationFinished { id, .. } => Some(*id),
            Input::TokenRequested { .. } | Input::CallerGone { .. } | Input::TimerExpired => None,
        }
    }
}

/// What the machine asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[expect(
    clippy::large_enum_variant,
    reason = "effects are transient (made, polled, carried out once); boxing the write \
              would cost an allocation per compare-and-swap to save bytes in a short queue"
)]
pub enum Effect {
    /// Read the link's row; answer with [`Input::LinkRead`] or
    /// [`Input::StoreFailed`].
    ReadLink {
        /// Hand back with the result.
        id: EffectId,
        /// Which row.
        link: LinkId,
    },
    /// Compare-and-swap the link's row (see [`Write`] and
    /// [`StoredLink::compare_and_swap`]); answer with
    /// [`Input::CompareAndSwapWon`], [`Input::CompareAndSwapLost`] or
    /// [`Input::StoreFailed`].
    CompareAndSwap {
        /// Hand back with the result.
        id: EffectId,
        /// Which row.
        link: LinkId,
        /// The guarded write.
        write: Write,
    },
    /// Present the refresh token to the provider's token endpoint: one
    /// request, never re-sent, whatever happens. Answer with
    /// [`Input::ExchangeFinished`]; if no reply has come by `deadline`,
    /// answer [`ExchangeOutcome::OutcomeUnknown`].
    Exchange {
        /// Hand back with the result.
        id: EffectId,
        /// Whose token.
        link: LinkId,
        /// The token to present.
        refresh_token: RefreshToken,
        /// When to stop waiting for the reply.
        deadline: Timestamp,
    },
    /// Call the provider's API with a freshly issued access token; answer
    /// with [`Input::ValidationFinished`]. Only emitted when configured.
    Validate {
        /// Hand back with the result.
        id: EffectId,
        /// Whose token.
        link: LinkId,
        /// The token to try.
        access_token: AccessToken,
    },
    /// Give a caller its answer. Needs no result.
    Answer {
        /// Who asked.
        caller: CallerId,
        /// The link it asked for.
        link: LinkId,
        /// A live access token, or why there is none.
        result: Result<AccessGrant, RefreshError>,
    },
}

impl Effect {
    /// The id to hand back with this effect's result; `None` for answers.
    pub fn id(&self) -> Option<EffectId> {
        match self {
            Effect::ReadLink { id, .. }
            | Effect::CompareAndSwap { id, .. }
            | Effect::Exchange { id, .. }
            | Effect::Validate { id, .. } => Some(*id),
            Effect::Answer { .. } => None,
        }
    }

    /// The link this effect concerns.
    pub fn link(&self) -> &LinkId {
        match self {
            Effect::ReadLink { link, .. }
            | Effect::CompareAndSwap { link, .. }
            | Effect::Exchange { link, .. }
            | Effect::Validate { link, .. }
            | Effect::Answer { link, .. } => link,
        }
    }
}
