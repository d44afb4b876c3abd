//! Errors: what a caller is told when there is no token (and what to do
//! about it), and what a driver is told when it feeds the machine nonsense.
//! No message ever contains token text.

use std::fmt;
use std::time::Duration;

use crate::ids::{CallerId, EffectId};

/// Why a caller got no access token. Each variant says what to do next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RefreshError {
    /// The link cannot be refreshed any more: send the user through the
    /// provider's authorization flow again.
    ReauthenticationRequired(ReauthReason),
    /// The provider is rate limiting: try again after `delay`.
    RetryAfter {
        /// How long to wait (the provider's `Retry-After`, or the configured
        /// default when it sent none).
        delay: Duration,
    },
    /// Something outside the link failed (the provider's token endpoint, the
    /// store, validation): try again later; the stored link is intact.
    Temporary(TemporaryReason),
}

/// Why re-authentication is required.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReauthReason {
    /// There is no stored link for this provider and user.
    NotLinked,
    /// The link holds no refresh token.
    NoRefreshToken,
    /// The provider rejected the refresh token.
    Rejected {
        /// The provider's error code and description.
        provider_reason: String,
    },
    /// The refresh token was presented and the outcome is unknown (a lost
    /// reply, or a refresh lease that expired mid-exchange); presenting it
    /// again could revoke the user's whole token family.
    OutcomeUnknown,
}

/// What failed, for an error worth retrying.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TemporaryReason {
    /// The token endpoint answered with an error that says nothing about the
    /// refresh token (5xx, garbage).
    ProviderUnavailable {
        /// The driver's description.
        detail: String,
    },
    /// The store could not be read or written.
    StoreUnavailable {
        /// The driver's description.
        detail: String,
    },
    /// The provider issued a token and the API refused it on validation.
    /// The stored link is kept.
    ValidationFailed {
        /// The API's description.
        detail: String,
    },
    /// Other writers kept changing the row faster than this one could settle.
    Contention,
}

impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshError::ReauthenticationRequired(reason) => {
                write!(f, "re-authentication required: {reason}")
            }
            RefreshError::RetryAfter { delay } => {
                write!(f, "rate limited by the provider: retry after {delay:?}")
            }
            RefreshError::Temporary(reason) => {
                write!(f, "temporary failure, retry later: {reason}")
            }
        }
    }
}

impl fmt::Display for ReauthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReauthReason::NotLinked => f.write_str("no stored link for this provider and user"),
            ReauthReason::NoRefreshToken => f.write_str("the stored link has no refresh token"),
            ReauthReason::Rejected { provider_reason } => {
                write!(f, "the provider rejected the refresh token ({provider_reason})")
            }
            ReauthReason::OutcomeUnknown => f.write_str(
                "a refresh was sent and its outcome is unknown; presenting the token again could revoke the session",
            ),
        }
    }
}

impl fmt::Display for TemporaryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemporaryReason::ProviderUnavailable { detail } => {
                write!(f, "token endpoint unavailable ({detail})")
            }
            TemporaryReason::StoreUnavailable { detail } => {
                write!(f, "store unavailable ({detail})")
            }
            TemporaryReason::ValidationFailed { detail } => {
                write!(f, "the new access token failed validation ({detail})")
            }
            TemporaryReason::Contention => {
                f.write_str("the stored link kept changing under concurrent writers")
            }
        }
    }
}

impl std::error::Error for RefreshError {}

/// The driver fed the machine an input it cannot use. The machine's state is
/// unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InputError {
    /// No effect with this id is awaiting a result (never emitted, already
    /// answered, or emitted by another machine).
    UnknownEffect(EffectId),
    /// The result does not fit the effect it names (a read result for an
    /// exchange, say).
    MismatchedResult {
        /// The effect named.
        id: EffectId,
        /// What kind of result that effect awaits.
        expected: &'static str,
    },
    /// The caller id is already waiting for an answer.
    CallerAlreadyWaiting(CallerId),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::UnknownEffect(id) => write!(f, "no effect {id} is awaiting a result"),
            InputError::MismatchedResult { id, expected } => {
                write!(f, "effect {id} awaits {expected}, not this result")
            }
            InputError::CallerAlreadyWaiting(caller) => write!(f, "{caller} is already waiting"),
        }
    }
}

impl std::error::Error for InputError {}
