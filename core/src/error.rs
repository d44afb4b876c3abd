//! Errors: what a caller is told when there is no token (and what to do
//! about it), and what a driver is told when it feeds the machine nonsense.
//! No message ever contains token text.

use std::fmt;
use std::time::Duration;

use crate::ids::{CallerId, EffectId};

/// Why a caller got no access token. Each variant says what to do next;
/// the methods answer the caller's three questions without a `match`:
///
/// | variant | [`is_retryable`](Self::is_retryable) | [`retry_after`](Self::retry_after) | [`requires_reauthentication`](Self::requires_reauthentication) |
/// |---|---|---|---|
/// | `ReauthenticationRequired(_)` | no | `None` | yes |
/// | `RetryAfter { delay }` | yes | `Some(delay)` | no |
/// | `Temporary(_)` | yes | `None` (your backoff) | no |
///
/// `Display` is one line naming the kind of failure; the detail is the
/// [`source`](std::error::Error::source) ([`ReauthReason`] or
/// [`TemporaryReason`]). Neither ever contains token text: details come
/// from the provider's error code and description and from store failure
/// reasons, which are built without quoting values.
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

impl RefreshError {
    /// Whether asking again may succeed without the user doing anything:
    /// `true` for [`RetryAfter`](RefreshError::RetryAfter) and
    /// [`Temporary`](RefreshError::Temporary) (the stored link is intact),
    /// `false` when the user must re-authenticate.
    pub fn is_retryable(&self) -> bool {
        !self.requires_reauthentication()
    }

    /// When to ask again, where the error says: the provider's rate-limit
    /// delay. `None` for a temporary failure (retry with your own backoff;
    /// nothing is gained by retrying at once) and for re-authentication
    /// (retrying cannot help).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RefreshError::RetryAfter { delay } => Some(*delay),
            RefreshError::ReauthenticationRequired(_) | RefreshError::Temporary(_) => None,
        }
    }

    /// Whether the user must go through the provider's authorization flow
    /// again (and the callback enrol the new pair) before a token can be
    /// had: the link is missing, holds no refresh token, or its refresh
    /// token was rejected or may have been consumed.
    pub fn requires_reauthentication(&self) -> bool {
        matches!(self, RefreshError::ReauthenticationRequired(_))
    }
}

/// One line, naming the kind of failure; the detail (the provider's or
/// the store's words) is in [`source`](std::error::Error::source).
impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshError::ReauthenticationRequired(reason) => {
                f.write_str("re-authentication required: ")?;
                f.write_str(match reason {
                    ReauthReason::NotLinked => "not linked",
                    ReauthReason::NoRefreshToken => "no refresh token stored",
                    ReauthReason::Rejected { .. } => "refresh token rejected by the provider",
                    ReauthReason::OutcomeUnknown => "refresh outcome unknown",
                })
            }
            RefreshError::RetryAfter { delay } => {
                write!(f, "rate limited by the provider: retry after {delay:?}")
            }
            RefreshError::Temporary(reason) => {
                f.write_str("temporary failure, retry later: ")?;
                f.write_str(match reason {
                    TemporaryReason::ProviderUnavailable { .. } => "token endpoint unavailable",
                    TemporaryReason::StoreUnavailable { .. } => "store unavailable",
                    TemporaryReason::ValidationFailed { .. } => {
                        "the new access token failed validation"
                    }
                    TemporaryReason::Contention => "the stored link kept changing",
                })
            }
        }
    }
}

impl fmt::Display for ReauthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReauthReason::NotLinked => f.write_str(
                "no stored link for this provider and user: enrol one from the OAuth callback",
            ),
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

/// The detail: why re-authentication is required, or what failed.
impl std::error::Error for RefreshError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RefreshError::ReauthenticationRequired(reason) => Some(reason),
            RefreshError::Temporary(reason) => Some(reason),
            RefreshError::RetryAfter { .. } => None,
        }
    }
}

impl std::error::Error for ReauthReason {}

impl std::error::Error for TemporaryReason {}

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
